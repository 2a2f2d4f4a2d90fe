"""The level-major TROC kernel behind :func:`hubkit.ozone.tropospheric_ozone_arrays`.

Arrays are ``(level, column)``: one row per level, the columns of a block along the contiguous
axis. Fields stored (time, level, lat, lon) are read without a transpose, every operation runs
over a long contiguous row, and a block of a couple of thousand columns costs a few hundred NumPy
calls (the interpreter's share, and the time the GIL is held, stays small). Pressures, heights
and the tropopause are computed operation for operation as the public per-column functions do
(:func:`.hybrid_pressure`, :func:`.hydrostatic_altitude`, :func:`.lapse_rate_tropopause`,
:func:`.subcolumn_edges`: the same bits); the sub-columns are those of
:func:`.regrid_mass_conserving` with pressure edges interpolated in ``ln p``, found without a
search and evaluated in the isothermal layer (the same numbers to rounding, ~1e-15 relative).
The tests check all of it against those functions.
"""

from __future__ import annotations

import numpy as np

from hubkit.ozone.atmosphere import DU_PER_VMR_PA, GRAVITY, R_DRY
from hubkit.ozone.columns import N_SUBCOLUMNS

#: Pressure window of the LRT search (Reichler et al. 2003) and the level cut above it. [Pa]
P_MIN, P_MAX, P_CUT = 7500.0, 55000.0, 3750.0
#: WMO lapse-rate threshold [K m-1] and depth of the 2-km test [m].
THRESHOLD, DEPTH = 2e-3, 2000.0


def troc_levels(x, t, ps, zs, a, b, fixed_altitude, out):
    """TROC outputs of a block of columns on (level, column) arrays, surface first.

    Parameters
    ----------
    x, t : ndarray, (level, column)
        Ozone VMR [mol mol-1] and temperature [K]; any float dtype, any strides (only the rows
        below the level cut are read, converted to float64 as they are used).
    ps, zs : ndarray, (column,)
        Surface pressure [Pa] and altitude [m], float64.
    a, b : ndarray, (level + 1, 1) or (level + 1, column)
        Hybrid coefficients of the interfaces, surface first. [Pa], [1]
    fixed_altitude : float
        [m]
    out : dict of ndarray
        Where to write the outputs of :func:`hubkit.ozone.tropospheric_ozone_arrays`, (column)
        each and (column, subcolumn).
    """
    n, ncol = x.shape
    # the range of each full level's pressure over the block: it grows with p_s (b >= 0), so
    # shared coefficients give it from the extreme p_s (the same rounding, monotonic too)
    if a.shape[1] == b.shape[1] == 1:
        a1, b1 = a[:, 0], b[:, 0]
        p_hi, p_lo = np.fmax.reduce(ps), np.fmin.reduce(ps)
        pf_hi = 0.5 * ((a1[1:] + b1[1:] * p_hi) + (a1[:-1] + b1[:-1] * p_hi))
        pf_lo = 0.5 * ((a1[1:] + b1[1:] * p_lo) + (a1[:-1] + b1[:-1] * p_lo))
    else:
        ph_all = a + b * ps
        pf_all = 0.5 * (ph_all[1:] + ph_all[:-1])
        pf_hi, pf_lo = np.fmax.reduce(pf_all, axis=1), np.fmin.reduce(pf_all, axis=1)
    # nothing above 37.5 hPa matters: the LRT is searched below 75 hPa, and 2 km above it the
    # pressure is still > 47 hPa for any scale height > 4.4 km (T > 150 K)
    nk = min(max(int(np.count_nonzero(pf_hi >= P_CUT)), 3), n)
    # levels where some column is inside the LRT pressure window (with a level on either side),
    # and those where every column is
    some = (pf_hi[:nk] >= P_MIN) & (pf_lo[:nk] <= P_MAX)
    some[0] = some[-1] = False
    every = some & (pf_lo[:nk] >= P_MIN) & (pf_hi[:nk] <= P_MAX)
    window = np.flatnonzero(some)
    j0 = int(window[0]) if window.size else nk
    t = np.asarray(t[:nk], dtype=float)
    ph = a[:nk + 1] + b[:nk + 1] * ps  # (nk + 1, column)
    with np.errstate(divide="ignore", invalid="ignore"):
        lnp = np.log(ph)
        zh, zf, scale = _hydrostatic_levels(ph, t, zs, lnp, max(j0 - 1, 0))
    if window.size:
        z_tp, j_tp = _lrt_levels(t, zf, ph, j0, int(window[-1]), every)
    else:
        z_tp, j_tp = np.full(ncol, np.nan), np.zeros(ncol, dtype=np.intp)
    _columns_levels(x, ph, lnp, zh, scale, zs, z_tp, j_tp, fixed_altitude, out)
    out["surface_o3_vmr"][...] = x[0]
    out["tropopause_altitude"][...] = z_tp


def _hydrostatic_levels(ph, t, zs, lnp, k0):
    """:func:`hubkit.ozone.hydrostatic_altitude` on (level, column) arrays, surface first: the
    interface heights, the full-level heights from level ``k0`` up (the rows below are left
    unset) and the scale height ``R_d T / g0`` of each layer."""
    lower, upper = ph[k0:-1], ph[k0 + 1:]
    scale = (R_DRY / GRAVITY) * t
    log_ratio = lnp[:-1] - lnp[1:]  # inf for a top at p = 0
    alpha = lower - upper
    np.divide(upper, alpha, out=alpha)
    alpha *= log_ratio[k0:]
    np.subtract(1.0, alpha, out=alpha)
    if not np.all(upper[-1] > 0):
        alpha = np.where(upper > 0, alpha, np.log(2.0))
    log_ratio *= scale  # now the thickness of each layer
    zh = np.empty(ph.shape)
    _cumsum_rows(log_ratio, out=zh[1:])
    zh[1:] += zs
    zh[0] = zs
    zf = np.empty(t.shape)
    np.multiply(alpha, scale[k0:], out=zf[k0:])
    zf[k0:] += zh[k0:-1]
    return zh, zf, scale


def _lrt_levels(t, z, ph, j0, j1, every):
    """:func:`hubkit.ozone.lapse_rate_tropopause` on (level, column) arrays, surface first, the
    WMO level searched at levels ``j0 … j1`` (inside the pressure window where ``every`` is
    false; ``z`` is needed from level ``j0 - 1`` up).

    Returns the LRT altitude (NaN where there is none) and its WMO level ``j`` (where the lapse
    rate falls to the threshold: the LRT lies between the mid-points of the layers below and
    above it; 0 where there is none).
    """
    n, ncol = t.shape
    z_tp = np.full(ncol, np.nan)
    j_tp = np.zeros(ncol, dtype=np.intp)
    with np.errstate(divide="ignore", invalid="ignore"):
        gam = t[j0:j1 + 2] - t[j0 - 1:j1 + 1]  # lapse rates at the mid-points j0 - 1/2 …
        gam /= z[j0:j1 + 2] - z[j0 - 1:j1 + 1]
        np.negative(gam, out=gam)
        cand = gam[:-1] > THRESHOLD
        cand &= gam[1:] <= THRESHOLD
    for j in range(j0, j1 + 1):
        if not every[j]:  # the pressure window cuts through this level
            pj = ph[j + 1] + ph[j]
            pj *= 0.5
            cand[j - j0] &= (pj >= P_MIN) & (pj <= P_MAX)
    # the lowest candidate of each column, then the next one where the 2-km test fails (rare)
    rows = cand.shape[0]
    first = np.full(ncol, rows, dtype=np.intp)
    for r in range(rows - 1, -1, -1):
        np.copyto(first, r, where=cand[r])
    cols = np.flatnonzero(first < rows)
    r = first[cols]
    while cols.size:
        j = r + j0
        fz = j * ncol + cols
        fg = r * ncol + cols
        zj, tj = np.take(z, fz), np.take(t, fz)
        g0, g1 = np.take(gam, fg), np.take(gam, fg + ncol)
        zm0, zm1 = 0.5 * (np.take(z, fz - ncol) + zj), 0.5 * (zj + np.take(z, fz + ncol))
        with np.errstate(divide="ignore", invalid="ignore"):
            ztp = zm0 + (THRESHOLD - g0) * (zm1 - zm0) / (g1 - g0)
        # the 2-km condition from the WMO level j to every higher level within DEPTH of z_tp
        ok = np.ones(cols.size, dtype=bool)
        reach = ztp + DEPTH
        for m in range(2, n):
            i = j + m
            within = i < n
            fi = np.minimum(i, n - 1) * ncol + cols
            zi = np.take(z, fi)
            within &= zi <= reach
            if not within.any():
                break
            with np.errstate(divide="ignore", invalid="ignore"):
                mean_lapse = (tj - np.take(t, fi)) / (zi - zj)
            ok &= ~within | (mean_lapse <= THRESHOLD)
        z_tp[cols[ok]] = ztp[ok]
        j_tp[cols[ok]] = j[ok]
        cols, r = cols[~ok], r[~ok]
        if cols.size:
            later = cand[:, cols]
            later[np.arange(rows)[:, None] <= r] = False
            has = later.any(axis=0)
            cols, r = cols[has], np.argmax(later, axis=0)[has]
    return z_tp, j_tp


def _cumsum_rows(v, out):
    """``np.cumsum(v, axis=0, out=out)``, row by row (the same sums, several times faster on
    (level, column) arrays)."""
    out[0] = v[0]
    for k in range(1, v.shape[0]):
        np.add(out[k - 1], v[k], out=out[k])
    return out


def _columns_levels(x, ph, lnp, zh, scale, zs, z_tp, j_tp, fixed_altitude, out, step=1000.0):
    """Sub-columns, columns and pressures at the targets, on (level, column) arrays.

    The targets are the edges of :func:`.subcolumn_edges` (the surface, the whole kilometres
    above it, the LRT) and the fixed-level tropopause, each found among the interfaces ``zh``
    up to the first one above every target of the block (and clamped to them). Within the layer
    ``k`` around a target the temperature is constant, so ``ln p`` falls linearly with height,
    ``ln p = ln p_k - (z - z_k) / H_k`` with ``H_k = R_d T_k / g0`` (what interpolating ``ln p``
    linearly between the interfaces gives), and the mixing ratio is constant, so the column
    below it is ``C_k + 7891 x_k (p_k - p)`` [DU]: the partial-column regridding of
    :func:`.regrid_mass_conserving` in pressure. Finding the targets needs no search: interface
    ``k`` lies above ``r_k = ceil((z_k - first) / step)`` whole-km edges, so a histogram of
    ``r_k`` counts the interfaces below each; the LRT lies within two interfaces of its WMO
    level; the fixed level is counted among the interfaces that straddle it somewhere in the
    block. ``zh`` increases upwards (positive temperatures).
    """
    nk, ncol = scale.shape
    n_sub = N_SUBCOLUMNS
    col = np.arange(ncol)
    first = np.floor(zs / step)
    first += 1.0
    first *= step
    with np.errstate(invalid="ignore"):
        merged = first + step * (n_sub - 1) < z_tp
        # whole-km edges below the LRT, #{m < n_sub - 1: first + step m < z_tp} (as
        # subcolumn_edges), from an estimate that can be one off at a tie
        est = np.ceil((z_tp - first) * (1.0 / step))
        np.fmax(est, 0.0, out=est)  # NaN (no LRT) gives 0
        np.fmin(est, n_sub - 1, out=est)
        est -= (est > 0) & ~(first + step * (est - 1) < z_tp)
        est += (est < n_sub - 1) & (first + step * est < z_tp)
    count = est.astype(np.intp)
    n_km = int(count.max())
    # only the interfaces up to the first one above every target take part
    z_max = max(float(np.fmax.reduce(np.fmax(zs, z_tp))), float(fixed_altitude))
    z_low = np.fmin.reduce(zh[:-1], axis=1)  # NaN columns ignored (they give NaN)
    top = min(max(int(np.searchsorted(z_low, z_max, side="left")) + 1, 2), nk)
    zt = zh[:top]
    lo, hi = zt[0], zt[-1]
    bad = ~np.isfinite(hi)  # zh is a cumulative sum: a NaN or inf below stays there
    # rows: the whole-km edges, the fixed level, the LRT
    target = np.empty((n_km + 2, ncol))
    np.add(first, step * np.arange(n_km)[:, None], out=target[:n_km])
    np.clip(fixed_altitude, lo, hi, out=target[-2])
    np.clip(z_tp, lo, hi, out=target[-1])
    i0 = np.empty((n_km + 2, ncol), dtype=np.intp)  # interfaces at or below each target
    if n_km:  # from a histogram of r_k
        r = zt - first
        r *= 1.0 / step
        np.ceil(r, out=r)
        np.fmax(r, 0.0, out=r)  # NaN (a bad column) gives 0
        np.fmin(r, n_km, out=r)
        r *= ncol
        r += col
        hist = np.bincount(r.astype(np.intp).ravel(), minlength=(n_km + 1) * ncol)
        _cumsum_rows(hist.reshape(n_km + 1, ncol)[:-1], out=i0[:n_km])
    # the fixed level: interfaces below it everywhere, plus those that straddle it somewhere
    k_all = int(np.searchsorted(np.fmax.reduce(zt, axis=1), fixed_altitude, side="right"))
    k_any = max(int(np.searchsorted(z_low[:top], fixed_altitude, side="right")), k_all)
    i0[-2] = k_all
    if k_any > k_all:
        i0[-2] += np.add.reduce(zt[k_all:k_any] <= fixed_altitude, axis=0, dtype=np.intp)
    # the LRT: above the interface below its WMO level j, below the second one above
    i0[-1] = j_tp
    f = j_tp * ncol + col
    for _ in range(3):
        inside = f < top * ncol
        np.minimum(f, (top - 1) * ncol + col, out=f)
        with np.errstate(invalid="ignore"):
            inside &= np.take(zt, f) <= z_tp
        i0[-1] += inside
        f += ncol
    i0 -= 1
    np.clip(i0, 0, top - 2, out=i0)
    # pressure and column at each target, in the layer above interface i0
    f = i0 * ncol
    f += col
    dux = np.multiply(x[:top - 1], DU_PER_VMR_PA, dtype=float)  # DU per Pa of each layer
    cum = np.empty(dux.shape)  # the column below each layer
    cum[0] = 0.0
    for k in range(1, top - 1):
        np.multiply(dux[k - 1], ph[k - 1] - ph[k], out=cum[k])
        cum[k] += cum[k - 1]
    with np.errstate(invalid="ignore"):
        d = target - np.take(zh, f)
        d /= np.take(scale, f)
        p_t = np.take(lnp, f)
        p_t -= d
        np.exp(p_t, out=p_t)
        c_t = np.take(ph, f)
        c_t -= p_t
        c_t *= np.take(dux, f)
        c_t += np.take(cum, f)
    no_tp = np.isnan(z_tp)
    tp_bad = no_tp | bad
    c_t[-1, tp_bad] = np.nan
    # sub-columns between the edges: surface (column 0), the whole km below the LRT, the LRT
    edges_c = np.full((n_sub + 1, ncol), np.nan)
    edges_c[0] = 0.0
    np.copyto(edges_c[1:n_km + 1], c_t[:n_km], where=np.arange(n_km)[:, None] < count)
    edges_c.ravel()[(count + 1) * ncol + col] = c_t[-1]
    edges_c[:, bad] = np.nan
    np.subtract(edges_c[1:], edges_c[:-1], out=out["o3_subcolumns"].T)
    high = zs >= fixed_altitude
    fx_bad = high | bad
    p_t[-2, fx_bad] = c_t[-2, fx_bad] = p_t[-1, tp_bad] = np.nan
    out["tropopause_pressure"][...] = p_t[-1]
    out["fixed_tropopause_pressure"][...] = p_t[-2]
    out["o3_column_fixed"][...] = c_t[-2]
    out["o3_column_lrt"][...] = c_t[-1]
    out["tropopause_flag"][...] = no_tp * 1 + merged * 2 + high * 4
