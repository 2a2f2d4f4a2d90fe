"""Positions on the sphere: one place for the unit vectors the grids, distances and the nature
run's motion are built from."""

from __future__ import annotations

import numpy as np

__all__ = ["grid_unit_vectors", "unit_vectors"]


def unit_vectors(latitude, longitude) -> np.ndarray:
    """Earth-centred unit vectors of points, broadcasting ``latitude`` and ``longitude`` [°].

    Returns
    -------
    ndarray, (..., 3)
        ``(cos φ cos λ, cos φ sin λ, sin φ)``. [1]
    """
    la = np.deg2rad(np.asarray(latitude, dtype=float))
    lo = np.deg2rad(np.asarray(longitude, dtype=float))
    return np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo),
                     np.sin(la) * np.ones_like(lo)], axis=-1)


def grid_unit_vectors(latitude, longitude) -> np.ndarray:
    """Unit vectors of the cells of a latitude × longitude grid, flattened latitude-major,
    (ny · nx, 3). [1]"""
    lat = np.asarray(latitude, dtype=float)[:, None]
    lon = np.asarray(longitude, dtype=float)[None, :]
    return unit_vectors(lat, lon).reshape(-1, 3)
