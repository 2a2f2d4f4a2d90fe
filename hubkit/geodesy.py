"""Positions on the sphere: one place for the unit vectors the grids, distances and the nature
run's motion are built from, and for the distances between points (great-circle by the haversine
formula, chordal). Distances come out in the unit of ``radius``."""

from __future__ import annotations

import numpy as np

from hubkit.constants import EARTH_RADIUS

__all__ = ["chordal_distance", "great_circle_distance", "grid_unit_vectors", "unit_vectors"]


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


def _haversine_term(lat1, lon1, lat2, lon2) -> np.ndarray:
    """``sin²(Δφ/2) + cos φ1 cos φ2 sin²(Δλ/2)`` = ``sin²(θ/2)`` (θ: central angle), in [0, 1]."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dlam = np.radians(np.asarray(lon2, dtype=float) - np.asarray(lon1, dtype=float))
    h = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlam / 2) ** 2
    return np.clip(h, 0.0, 1.0)


def great_circle_distance(lat1, lon1, lat2, lon2, radius=EARTH_RADIUS):
    """Great-circle distance by the haversine formula (Sinnott 1984, Sky & Telescope 68, 159),
    accurate for small distances too.

    Parameters
    ----------
    lat1, lon1, lat2, lon2 : array_like
        Latitudes and longitudes, broadcast against each other. [°]
    radius : float
        Sphere radius; the distance comes out in its unit. [m by default]

    Returns
    -------
    ndarray
        Distance along the sphere. [unit of ``radius``]
    """
    return 2.0 * radius * np.arcsin(np.sqrt(_haversine_term(lat1, lon1, lat2, lon2)))


def chordal_distance(lat1, lon1, lat2, lon2, radius=EARTH_RADIUS):
    """Chordal distance ``2R sin(θ/2)`` (θ: central angle): the straight line through the
    sphere, the distance correlation models on the sphere are positive definite in.

    Parameters
    ----------
    lat1, lon1, lat2, lon2 : array_like
        Latitudes and longitudes, broadcast against each other. [°]
    radius : float
        Sphere radius; the distance comes out in its unit. [m by default]
    """
    return 2.0 * radius * np.sqrt(_haversine_term(lat1, lon1, lat2, lon2))
