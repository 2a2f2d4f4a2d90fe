"""Localisation of ensemble analyses: the Gaspari-Cohn taper, distances (periodic, on the
sphere), and the observations each grid point sees with their weights (``LocalObservations``),
found without a grid x observations matrix where the geometry allows (a periodic line, the
sphere), and tapered in the vertical.

References
----------
.. [1] Gaspari, Cohn, "Construction of correlation functions in two and three dimensions",
   Q. J. R. Meteorol. Soc. 125, 723-757, 1999. doi:10.1002/qj.49712555417
.. [2] Hunt, Kostelich, Szunyogh, Physica D 230, 112-126, 2007 (local analyses, R-localisation).
   doi:10.1016/j.physd.2006.11.008
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hubkit.constants import EARTH_RADIUS
from hubkit.errors import AssimilationInputError
from hubkit.geodesy import great_circle_distance, unit_vectors

__all__ = [
    "LocalObservations", "finite_array", "gaspari_cohn", "great_circle_distance",
    "local_observations", "local_observations_periodic", "local_observations_sphere",
    "periodic_distance", "vertical_localisation",
]


def finite_array(name: str, value, ndim: int | tuple[int, ...]) -> np.ndarray:
    """``value`` as a float array with ``ndim`` dimensions (or one of several) and only finite
    numbers, else :class:`AssimilationInputError` naming ``name`` and what was found."""
    a = np.asarray(value, dtype=float)
    allowed = (ndim,) if isinstance(ndim, int) else ndim
    if a.ndim not in allowed:
        raise AssimilationInputError(
            f"{name} has {a.ndim} dimension(s) (shape {a.shape}), "
            f"expected {' or '.join(map(str, allowed))}")
    if not np.all(np.isfinite(a)):
        raise AssimilationInputError(
            f"{name} contains NaN or infinite values; expected finite numbers")
    return a


def gaspari_cohn(distance, half_width):
    """Gaspari–Cohn compactly supported fifth-order piecewise rational correlation function.

    Parameters
    ----------
    distance : array_like
        Separation, ``≥ 0``. [any length unit]
    half_width : float
        Half of the support ``c``: the function is 1 at zero, about 0.208 at ``c`` and exactly
        0 from ``2c``. [same unit as ``distance``]

    Returns
    -------
    rho : ndarray
        Correlation (localisation weight) in [0, 1]. [1]

    References
    ----------
    .. [1] Gaspari, Cohn, Q. J. R. Meteorol. Soc. 125, 723-757, 1999, eq. (4.10).
       doi:10.1002/qj.49712555417
    """
    c = float(half_width)
    if not c > 0:
        raise AssimilationInputError(f"half_width={half_width!r}: expected a length > 0")
    z = np.abs(np.asarray(distance, dtype=float)) / c
    out = np.zeros_like(z)
    inner = z <= 1.0
    outer = (z > 1.0) & (z < 2.0)
    zi = z[inner]
    out[inner] = (((-0.25 * zi + 0.5) * zi + 0.625) * zi - 5.0 / 3.0) * zi**2 + 1.0
    zo = z[outer]
    out[outer] = ((((zo / 12.0 - 0.5) * zo + 0.625) * zo + 5.0 / 3.0) * zo - 5.0) * zo + 4.0 \
        - 2.0 / (3.0 * zo)
    return out


def periodic_distance(a, b, period):
    """Distance on a circle of circumference ``period``: ``min(|a − b| mod P, P − …)``.

    Parameters
    ----------
    a, b : array_like
        Positions, broadcast against each other. [any length unit]
    period : float
        Length of the periodic domain. [same unit]

    Returns
    -------
    distance : ndarray
        Shortest distance around the circle. [same unit]
    """
    d = np.abs(np.asarray(a, dtype=float) - np.asarray(b, dtype=float)) % period
    return np.minimum(d, period - d)


@dataclass(frozen=True)
class LocalObservations:
    """The observations each grid point sees, padded to a common count.

    Attributes
    ----------
    index : ndarray of int, (G, k)
        Observation indices per grid point; padding slots hold 0.
    weight : ndarray, (G, k)
        Localisation weight of each slot (Gaspari–Cohn of the distance), 0 for padding. [1]
    """

    index: np.ndarray
    weight: np.ndarray


def _compact(rows: np.ndarray, cols: np.ndarray, weights: np.ndarray, n_rows: int):
    """Scatter (row, col, weight) triples, sorted by row, into padded ``(n_rows, k)`` arrays."""
    counts = np.bincount(rows, minlength=n_rows)
    k = max(int(counts.max()) if counts.size else 0, 1)
    start = np.concatenate(([0], np.cumsum(counts)[:-1]))
    slot = np.arange(rows.size) - start[rows]
    index = np.zeros((n_rows, k), dtype=np.intp)
    weight = np.zeros((n_rows, k))
    index[rows, slot] = cols
    weight[rows, slot] = weights
    return LocalObservations(index, weight)


def local_observations(distance, half_width) -> LocalObservations:
    """Local observation lists from a dense ``(G, p)`` grid-point-to-observation distance matrix.

    Parameters
    ----------
    distance : array_like, (G, p)
        Distance from each grid point to each observation (e.g. :func:`periodic_distance`).
        [length]
    half_width : float
        Gaspari–Cohn half-width ``c``; observations at ``≥ 2c`` are left out. [same unit]

    Returns
    -------
    LocalObservations
    """
    d = finite_array("distance", distance, 2)
    w = gaspari_cohn(d, half_width)
    rows, cols = np.nonzero(w > 0)
    return _compact(rows, cols, w[rows, cols], d.shape[0])


def vertical_localisation(local, level_coord, obs_coord, half_width) -> LocalObservations:
    """Add vertical localisation to horizontal local observation lists.

    Each grid column's list is repeated for each of its ``V`` levels, and the weight of
    observation ``k`` at level ``v`` becomes the horizontal weight times the Gaspari–Cohn weight
    of the vertical separation, ``w_gk · GC(|z_v − z_k|, c_v)`` (R-localisation in 3-D; Hunt et
    al. 2007, section 2.3 and eq. 37; vertical coordinate e.g. ``ln p`` or the level index). Pass
    the result to :func:`letkf_analysis` with the ensemble reshaped from ``(N, G, V)`` to
    ``(N, G·V)``: every (column, level) then gets its own batched local analysis — ``V`` times
    the work of the column analysis, which it equals when ``c_v`` is large.

    Parameters
    ----------
    local : LocalObservations
        Horizontal lists of ``G`` columns, e.g. from :func:`local_observations_sphere`.
    level_coord : array_like, (V,) or (G, V)
        Vertical coordinate of each level (per column if 2-D). [e.g. 1 for ln p, or levels]
    obs_coord : array_like, (p,)
        Vertical coordinate of each observation. [same unit]
    half_width : float
        Gaspari–Cohn half-width ``c_v`` in that coordinate (zero weight from ``2c_v``).
        [same unit]

    Returns
    -------
    LocalObservations
        ``G·V`` lists in (column, level) order, slots with zero weight kept (they cost nothing
        in the analysis: a zero weight removes the observation).

    References
    ----------
    .. [1] Hunt, Kostelich, Szunyogh, Physica D 230, 112-126, 2007.
       doi:10.1016/j.physd.2006.11.008
    .. [2] Gaspari, Cohn, Q. J. R. Meteorol. Soc. 125, 723-757, 1999.
       doi:10.1002/qj.49712555417
    """
    G, k = local.index.shape
    z = finite_array("level_coord", level_coord, (1, 2))
    zo = finite_array("obs_coord", obs_coord, 1)
    if z.ndim == 1:
        z = np.broadcast_to(z, (G, z.size))
    if z.shape[0] != G:
        raise AssimilationInputError(f"level_coord has shape {z.shape}, expected (V,) or "
                                     f"({G}, V)")
    if local.index.size and local.index.max() >= zo.size:
        raise AssimilationInputError(f"obs_coord has {zo.size} values; local refers to "
                                     f"observation {local.index.max()}")
    V = z.shape[1]
    wv = gaspari_cohn(z[:, :, None] - zo[local.index][:, None, :], half_width)  # (G, V, k)
    index = np.broadcast_to(local.index[:, None, :], (G, V, k)).reshape(G * V, k)
    weight = (local.weight[:, None, :] * wv).reshape(G * V, k)
    return LocalObservations(np.ascontiguousarray(index), weight)


def local_observations_periodic(grid_pos, obs_pos, period, half_width) -> LocalObservations:
    """Local observation lists on a periodic line, without a dense grid × observation matrix.

    Observations are sorted once; the ones within ``2c`` of each grid point are a contiguous run
    of the sorted positions (two runs where the window wraps), found by bisection, so time and
    memory grow with ``G + p + G k`` (``k`` neighbours per point), not with ``G × p``. The lists
    and weights equal :func:`local_observations` of the :func:`periodic_distance` matrix.

    Parameters
    ----------
    grid_pos : array_like, (G,)
        Grid-point positions, in ``[0, period)``. [length]
    obs_pos : array_like, (p,)
        Observation positions, in ``[0, period)``. [same unit]
    period : float
        Length of the periodic domain (e.g. the number of Lorenz-96 variables). [same unit]
    half_width : float
        Gaspari–Cohn half-width ``c``; observations at ``≥ 2c`` are left out. [same unit]

    Returns
    -------
    LocalObservations
        Indices into ``obs_pos`` as given, in increasing distance-window order.
    """
    g = finite_array("grid_pos", grid_pos, 1)
    o = finite_array("obs_pos", obs_pos, 1)
    P = float(period)
    if not P > 0:
        raise AssimilationInputError(f"period={period!r}: expected a length > 0")
    reach = min(2.0 * float(half_width), P / 2.0)
    order = np.argsort(o, kind="stable")
    so = o[order]
    # the sorted positions three times (shifted by -P, 0, +P): every window is one run
    ext = np.concatenate((so - P, so, so + P))
    lo = np.searchsorted(ext, g - reach, side="left")
    hi = np.searchsorted(ext, g + reach, side="right")
    counts = hi - lo
    rows = np.repeat(np.arange(g.size), counts)
    start = np.repeat(lo - np.concatenate(([0], np.cumsum(counts)[:-1])), counts)
    pos = np.arange(rows.size) + start
    cols = order[pos % max(o.size, 1)]
    w = gaspari_cohn(periodic_distance(g[rows], o[cols], P), half_width)
    keep = w > 0
    rows, cols, w = rows[keep], cols[keep], w[keep]
    # a window wider than the domain would count an observation twice: keep the first
    if 2.0 * reach >= P and rows.size:
        uniq = np.unique(rows * o.size + cols, return_index=True)[1]
        uniq.sort()
        rows, cols, w = rows[uniq], cols[uniq], w[uniq]
    return _compact(rows, cols, w, g.size)


def local_observations_sphere(grid_lat, grid_lon, obs_lat, obs_lon, half_width,
                              radius=EARTH_RADIUS) -> LocalObservations:
    """Local observation lists on the sphere, without a dense grid × observation matrix.

    Observations are sorted by latitude; each grid point is compared only with those in the
    latitude band that can lie within ``2c`` of it (chordal test by a dot product of unit
    vectors), so the cost grows with the number of neighbours, not with ``G × p``. Call it on
    chunks of grid points (as :func:`letkf_sphere` does) to bound memory.

    Parameters
    ----------
    grid_lat, grid_lon : array_like, (G,)
        Grid-point (column) positions. [°]
    obs_lat, obs_lon : array_like, (p,)
        Observation positions. [°]
    half_width : float
        Gaspari–Cohn half-width ``c``. [m]
    radius : float
        Sphere radius. [m]

    Returns
    -------
    LocalObservations
        Indices into the observation arrays as given (not sorted).
    """
    glat, glon = (finite_array(n, v, 1)
                  for n, v in (("grid_lat", grid_lat), ("grid_lon", grid_lon)))
    olat, olon = (finite_array(n, v, 1) for n, v in (("obs_lat", obs_lat), ("obs_lon", obs_lon)))
    if glat.shape != glon.shape or olat.shape != olon.shape:
        raise AssimilationInputError(
            f"grid_lat/grid_lon shapes {glat.shape}/{glon.shape} and obs_lat/obs_lon shapes "
            f"{olat.shape}/{olon.shape} must match pairwise")
    cutoff = 2.0 * float(half_width) / radius  # angular support [rad]
    order = np.argsort(olat, kind="stable")
    slat = olat[order]
    band = np.degrees(cutoff)
    lo = np.searchsorted(slat, glat.min() - band, side="left")
    hi = np.searchsorted(slat, glat.max() + band, side="right")
    cand = order[lo:hi]
    # longitude pruning: within angular distance δ of a point at latitude φ, |Δλ| ≤
    # arcsin(sin δ / cos φ) (when sin δ < cos φ); the chunk's longitudes are measured from its
    # first point, wrapped to [-180, 180)
    cos_max = np.cos(np.radians(np.abs(glat).max()))
    if cutoff < np.pi / 2 and np.sin(cutoff) < cos_max:
        dlam = np.degrees(np.arcsin(np.sin(cutoff) / cos_max))
        lon0 = glon[0]
        span = np.abs((glon - lon0 + 180.0) % 360.0 - 180.0).max()
        if span + dlam < 180.0:
            rel_lon = np.abs((olon[cand] - lon0 + 180.0) % 360.0 - 180.0)
            cand = cand[rel_lon <= span + dlam]
    gvec = unit_vectors(glat, glon)
    dot = gvec @ unit_vectors(olat[cand], olon[cand]).T
    rows, cols = np.nonzero(dot > np.cos(min(cutoff, np.pi)))
    dist = radius * np.arccos(np.clip(dot[rows, cols], -1.0, 1.0))
    w = gaspari_cohn(dist, half_width)
    keep = w > 0
    return _compact(rows[keep], cand[cols[keep]], w[keep], glat.size)
