"""The WMO lapse-rate tropopause, found in every column at once.

References
----------
.. [1] WMO, "Meteorology — a three-dimensional science: second session of the Commission for
   Aerology", WMO Bull. 6, 134-138, 1957.
.. [2] Reichler, Dameris, Sausen, "Determining the tropopause height from gridded data",
   Geophys. Res. Lett. 30, 2042, 2003. doi:10.1029/2003GL018240
"""

from __future__ import annotations

import numpy as np

from hubkit.ozone.atmosphere import OzoneInputError

__all__ = ["lapse_rate_tropopause"]


def lapse_rate_tropopause(temperature, altitude, *, pressure=None, lapse_rate_threshold=2e-3,
                          depth=2000.0, pressure_range=(7500.0, 55000.0)):
    """WMO lapse-rate tropopause (LRT) height by the Reichler et al. (2003) interpolation.

    The WMO (1957) first tropopause is the lowest level at which the lapse rate
    ``Γ = -dT/dz`` decreases to 2 K/km or less, provided that the average lapse rate between
    this level and all higher levels within 2 km does not exceed 2 K/km. Lapse rates are taken
    between adjacent levels and assigned to the mid-points ``z_{k+1/2}``; the height where
    ``Γ`` crosses the threshold is interpolated linearly between the mid-points of the two
    layers that straddle it (Reichler et al. 2003 [2]_, with height in place of
    ``p^κ``):

    .. math:: z_{tp} = z_{k-1/2} + (Γ_c - Γ_{k-1/2})
              \\frac{z_{k+1/2} - z_{k-1/2}}{Γ_{k+1/2} - Γ_{k-1/2}}

    where level ``k`` is the WMO level (``Γ_{k-1/2} > Γ_c ≥ Γ_{k+1/2}``). The 2-km condition
    is tested from that level to every higher level ``j`` with ``z_j ≤ z_tp + depth``:
    ``(T_k - T_j) / (z_j - z_k) ≤ Γ_c``. For a sharp tropopause (a kink in T) on a grid of
    spacing Δz the interpolated height lies +0.16 Δz to +0.39 Δz above the kink, depending on
    where the kink falls between levels (+0.19 Δz when it falls on a level).
    Columns where no level qualifies (polar night, deep inversions) give NaN.

    Parameters
    ----------
    temperature : array_like, (..., level)
        Air temperature. [K]
    altitude : array_like, (..., level)
        Altitude of the same levels, increasing or decreasing along the last axis (geopotential
        or geometric; the result is in the same kind). [m]
    pressure : array_like, (..., level), optional
        Pressure of the levels; when given, only crossings at levels with a pressure within
        ``pressure_range`` count (Reichler et al.: 550-75 hPa). [Pa]
    lapse_rate_threshold : float
        ``Γ_c``. [K m-1]
    depth : float
        Depth of the layer above the tropopause the mean lapse rate is tested over. [m]
    pressure_range : tuple of float
        ``(p_min, p_max)`` of the search when ``pressure`` is given. [Pa]

    Returns
    -------
    height : ndarray, (...)
        Tropopause altitude, NaN where no level meets the criterion. [m]

    References
    ----------
    .. [1] WMO, "Meteorology — a three-dimensional science", WMO Bull. 6, 134-138, 1957.
    .. [2] Reichler, Dameris, Sausen, GRL 30, 2042, 2003. doi:10.1029/2003GL018240

    Examples
    --------
    >>> z = np.arange(0.0, 20001.0, 250.0)
    >>> t = np.where(z < 11000.0, 288.15 - 6.5e-3 * z, 216.65)
    >>> round(float(lapse_rate_tropopause(t, z)))
    11048
    """
    t = np.asarray(temperature, dtype=float)
    z = np.asarray(altitude, dtype=float)
    p = None if pressure is None else np.asarray(pressure, dtype=float)
    t, z = np.broadcast_arrays(t, z)
    if p is not None:
        t, z, p = np.broadcast_arrays(t, z, p)
    if t.ndim < 1 or t.shape[-1] < 3:
        raise OzoneInputError(f"temperature has shape {t.shape}; expected (..., level) with at "
                              "least 3 levels [K]")
    if np.ravel(z[..., 0])[0] > np.ravel(z[..., -1])[0]:  # top first: turn the column over
        t, z = t[..., ::-1], z[..., ::-1]
        p = None if p is None else p[..., ::-1]
    return _lrt_up(t, z, p, lapse_rate_threshold, depth, pressure_range)[0]


def _lrt_up(t, z, p, threshold, depth, pressure_range):
    """Kernel: levels surface first. Returns ``(height, T at the tropopause)``.

    With pressures, only the levels that can matter are looked at: those inside the pressure
    window in some column, one below, and those up to ``depth`` above the window.
    """
    n = t.shape[-1]
    if p is not None and t.ndim > 1 and t.size:
        inside = ((p >= pressure_range[0]) & (p <= pressure_range[1])).reshape(-1, n).any(axis=0)
        if not inside.any():
            nan = np.full(t.shape[:-1], np.nan)
            return nan, nan
        k = np.flatnonzero(inside)
        lo, hi = max(k[0] - 1, 0), min(k[-1] + 1, n - 1)
        z_low = np.fmin.reduce(z.reshape(-1, n), axis=0)  # NaN columns ignored
        reach = np.fmax.reduce(z[..., hi], axis=None) + depth
        end = min(hi + int(np.searchsorted(z_low[hi:], reach, side="right")) + 1, n)
        if (lo > 0 or end < n) and end - lo >= 3:
            return _lrt_up(t[..., lo:end], z[..., lo:end], p[..., lo:end], threshold, depth,
                           pressure_range)
    dz = np.diff(z, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        gam = -np.diff(t, axis=-1) / dz  # (..., n-1) at the mid-points
    g_lo, g_hi = gam[..., :-1], gam[..., 1:]  # layers below / above level j = 1 … n-2
    cand = (g_lo > threshold) & (g_hi <= threshold)
    if p is not None:
        pj = p[..., 1:-1]
        cand &= (pj >= pressure_range[0]) & (pj <= pressure_range[1])
    shape = t.shape[:-1]
    t2, z2, g2, c2 = (v.reshape(-1, v.shape[-1]) for v in (t, z, gam, cand))
    height = np.full(c2.shape[0], np.nan)
    t_tp = np.full(c2.shape[0], np.nan)
    todo = np.flatnonzero(c2.any(axis=-1))
    c2 = c2[todo]
    # the first candidate of each column, then the next one where the 2-km test fails (rare)
    while todo.size:
        j = np.argmax(c2, axis=-1) + 1  # level index of the first remaining candidate
        tc, zc, gc = t2[todo], z2[todo], g2[todo]
        rows = np.arange(todo.size)
        zj, tj = zc[rows, j], tc[rows, j]
        g0, g1 = gc[rows, j - 1], gc[rows, j]
        zm0, zm1 = 0.5 * (zc[rows, j - 1] + zj), 0.5 * (zj + zc[rows, j + 1])
        with np.errstate(divide="ignore", invalid="ignore"):
            ztp = zm0 + (threshold - g0) * (zm1 - zm0) / (g1 - g0)
        # the 2-km condition from the WMO level j to every higher level within `depth` of z_tp
        ok = np.ones(todo.size, dtype=bool)
        for m in range(2, n):
            i = j + m
            inside = i < n
            ii = np.minimum(i, n - 1)
            zi = zc[rows, ii]
            inside &= zi <= ztp + depth
            if not inside.any():
                break
            with np.errstate(divide="ignore", invalid="ignore"):
                mean_lapse = (tj - tc[rows, ii]) / (zi - zj)
            ok &= ~inside | (mean_lapse <= threshold)
        done = todo[ok]
        height[done] = ztp[ok]
        with np.errstate(invalid="ignore"):  # T at the tropopause, linear between the levels
            t_at = tj - np.where(ztp < zj, g0, g1) * (ztp - zj)
        t_tp[done] = t_at[ok]
        again = ~ok
        c2 = c2[again]
        c2[np.arange(c2.shape[0]), j[again] - 1] = False
        keep = c2.any(axis=-1)
        todo, c2 = todo[again][keep], c2[keep]
    return height.reshape(shape), t_tp.reshape(shape)
