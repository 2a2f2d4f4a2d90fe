"""Which fitted windows are detections: the Δχ² test, oco2peak's rules (R within 4σ, the
window means), one detection per plume, and the emission of each."""

from __future__ import annotations

import logging

import numpy as np

from hubkit.co2 import emission as em
from hubkit.co2.fit import SQRT_2PI, gaussian_line
from hubkit.co2.options import DEFAULT_PRESSURE, DEFAULT_TCWV, PeakOptions
from hubkit.co2.track import normal_wind

log = logging.getLogger(__name__)

def orbit_noise(f):
    """The noise scale of each orbit that has fitted windows."""
    seg = f["segment"]
    if not seg.size:
        return np.zeros(0)
    first = np.flatnonzero(np.r_[True, seg[1:] != seg[:-1]])
    return np.asarray(f["noise_scale"])[first]


def _search(s, a, b, values, side):
    """``searchsorted`` of ``values[i]`` within its own orbit ``s[a[i]:b[i]]`` (positions into
    ``s``); ``a``, ``b`` grouped (all windows of an orbit together)."""
    out = np.empty(values.size, dtype=np.intp)
    if not values.size:
        return out
    edge = np.flatnonzero(np.r_[True, (a[1:] != a[:-1]) | (b[1:] != b[:-1]), True])
    for i, j in zip(edge[:-1], edge[1:], strict=True):
        lo, hi = a[i], b[i]
        out[i:j] = lo + np.searchsorted(s[lo:hi], values[i:j], side)
    return out


def _ragged_sums(lo, hi):
    """Positions ``[lo[i], hi[i])`` of every detection laid end to end, starts and lengths."""
    n = hi - lo
    starts = np.zeros(n.size, dtype=np.intp)
    np.cumsum(n[:-1], out=starts[1:])
    idx = np.arange(int(n.sum()), dtype=np.intp) - np.repeat(starts - lo, n)
    return idx, starts, n


def select_windows(cols: dict, cuts, f: dict, o: PeakOptions) -> dict:
    """The windows of all orbits that pass the tests, with their fit, wind and emission
    (a column name → array dict)."""
    s = cols["along"]
    s2 = f["noise2"]
    sig = f["delta_chi2"] / s2
    ok = (f["converged"] & (f["delta"] > 0) & (f["sigma"] >= o.min_sigma)
          & (f["sigma"] <= o.max_sigma) & (sig >= o.threshold))
    idx = np.flatnonzero(ok)
    c = f["centre"][idx]
    orbit_of = np.searchsorted(cuts, c, side="right") - 1
    a, b = cuts[orbit_of], cuts[orbit_of + 1]
    sc, sg = s[c], f["sigma"][idx]
    if o.density_rule:
        need = np.floor(np.nan_to_num(sg))

        def count(lo_, hi_):
            return (_search(s, a, b, sc + hi_ * sg, "right")
                    - _search(s, a, b, sc + lo_ * sg, "left"))

        keep = ((count(-1, 0) >= need) & (count(0, 1) >= need) & (count(-3, -2) >= need)
                & (count(2, 3) >= need))
        idx, c, a, b, sc, sg = idx[keep], c[keep], a[keep], b[keep], sc[keep], sg[keep]
    r = np.full(idx.size, np.nan)  # Pearson R: here when it selects, else once suppressed
    if o.min_r is not None:
        r = r_within_4_sigma(cols, a, b, sc, *(f[k][idx] for k in ("slope", "intercept",
                                                                     "delta", "sigma")))
        keep = r >= o.min_r
        idx, c, a, b, sc, sg, r = (v[keep] for v in (idx, c, a, b, sc, sg, r))
    err = np.sqrt(s2[idx])
    # columns gathered as arrays, one table at the end
    out = {
        "orbit": cols["orbit"][c],
        "sounding_index": cols["index"][c],
        "latitude": cols["latitude"][c],
        "longitude": cols["longitude"][c],
        "along": sc,
        "window_start": sc - o.half_width,
        "window_end": sc + o.half_width,
        "n_window": f["n"][idx],
        "R": r,
        "delta_chi2": f["delta_chi2"][idx],
        "significance": sig[idx],
        "iterations": f["iterations"][idx],
    }
    for name in ("slope", "intercept", "delta", "sigma", "amplitude"):
        out[name] = f[name][idx]
        out[f"{name}_err"] = f[f"{name}_err"][idx] * err
    for name in ("time", "sounding_id", "land_water_indicator", "footprint"):
        if name in cols:
            out[name] = cols[name][c]
    _emission(out, cols, s, c, a, b, o)
    out["_row"], out["_a"], out["_b"] = c, a, b  # table positions (dropped before the output)
    return out


def r_within_4_sigma(cols, a, b, sc, slope, intercept, delta, sigma):
    """Pearson R of model and data within ±4σ of each centre, every detection at once."""
    s = cols["along"]
    r_lo = _search(s, a, b, sc - 4 * sigma, "left")
    r_hi = _search(s, a, b, sc + 4 * sigma, "right")
    return _pearson(s, cols["xco2"].astype(np.float64), r_lo, r_hi, sc, slope, intercept,
                    delta, sigma)


def _pearson(s, y, lo, hi, sc, slope, intercept, delta, sigma):
    """Pearson correlation of the model and the data over ``[lo, hi)`` of each detection
    (NaN with fewer than three soundings)."""
    r = np.full(sc.size, np.nan)
    if not sc.size:
        return r
    idx, starts, n = _ragged_sums(lo, hi)
    rep = np.repeat(np.arange(sc.size), n)
    model = gaussian_line(s[idx] - sc[rep], slope[rep], intercept[rep], delta[rep],
                          sigma[rep])
    yy = y[idx]
    red = np.add.reduceat
    dm = model - (red(model, starts) / n)[rep]
    dy = yy - (red(yy, starts) / n)[rep]
    with np.errstate(invalid="ignore", divide="ignore"):
        rr = red(dm * dy, starts) / np.sqrt(red(dm * dm, starts) * red(dy * dy, starts))
    ok = n > 2
    r[ok] = np.clip(rr[ok], -1.0, 1.0)
    return r


def _window_mean(values, lo, hi):
    """Mean of the finite ``values`` over ``[lo[i], hi[i])`` (NaN where there are none)."""
    out = np.full(lo.size, np.nan)
    has = hi > lo
    if not has.any():
        return out
    idx, starts, n = _ragged_sums(lo[has], hi[has])
    v = values[idx]
    fin = np.isfinite(v)
    total = np.add.reduceat(np.where(fin, v, 0.0), starts)
    count = np.add.reduceat(fin.astype(np.int64), starts)
    out[has] = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return out


def _emission(out, cols, s, centres, a, b, o):
    """Cross-sectional flux of each detection with its uncertainty and flags (columns added
    to the dict ``out``)."""
    sc, sg = s[centres], np.asarray(out["sigma"])
    flag = np.zeros(sc.size, dtype=np.int8)
    lo = _search(s, a, b, sc - sg, "left")
    hi = _search(s, a, b, sc + sg, "right")

    def mean_of(name):
        if name not in cols:
            return np.full(sc.size, np.nan)
        return _window_mean(cols[name].astype(np.float64), lo, hi)

    u, v = mean_of(o.wind[0]), mean_of(o.wind[1])
    te, tn = cols["track_east"][centres], cols["track_north"][centres]
    un = normal_wind(u, v, te, tn)
    flag |= np.where(np.isfinite(un), 0, 1).astype(np.int8)
    flag |= np.where(np.isfinite(un) & (un < 0.5), 8, 0).astype(np.int8)
    ps = mean_of("surface_pressure")
    flag |= np.where(np.isfinite(ps), 0, 2).astype(np.int8)
    ps = np.where(np.isfinite(ps), ps, DEFAULT_PRESSURE)
    tcwv = mean_of("tcwv")
    flag |= np.where(np.isfinite(tcwv), 0, 4).astype(np.int8)
    tcwv = np.where(np.isfinite(tcwv), tcwv, DEFAULT_TCWV)
    amp, amp_err = np.asarray(out["amplitude"]), np.asarray(out["amplitude_err"])
    q = em.cross_sectional_flux(amp, un, ps, tcwv)
    bg_err = o.background_uncertainty * SQRT_2PI * sg
    rel2 = ((amp_err**2 + bg_err**2) / amp**2 + (o.wind_uncertainty / np.maximum(un, 1e-3)) ** 2)
    out["windspeed_u"], out["windspeed_v"] = u, v
    out["track_east"], out["track_north"] = te, tn
    out["wind_normal"] = un
    out["surface_pressure"], out["tcwv"] = ps, tcwv
    out["emission"] = q
    out["emission_err"] = np.abs(q) * np.sqrt(rel2)
    out["emission_flag"] = flag


def suppress_duplicates(peaks: dict, o: PeakOptions) -> dict:
    """Non-maximum suppression per orbit: one detection per plume (the most significant).
    ``group`` is the rank of the detection that suppressed it in the (orbit, significance)
    order, its own rank for a kept one."""
    order = np.lexsort((-peaks["significance"], peaks["orbit"]))  # stable
    peaks = {k: v[order] for k, v in peaks.items()}
    n = order.size
    suppressed = np.zeros(n, dtype=bool)
    group = np.arange(n)
    if o.nms_sigmas > 0:
        orbit = peaks["orbit"]
        edge = np.flatnonzero(np.r_[True, orbit[1:] != orbit[:-1], True])
        along, sigma = peaks["along"].tolist(), peaks["sigma"].tolist()
        for i0, i1 in zip(edge[:-1], edge[1:], strict=True):
            kept: list[int] = []
            for j in range(i0, i1):
                for k in kept:
                    if abs(along[j] - along[k]) < o.nms_sigmas * max(sigma[j], sigma[k]):
                        suppressed[j] = True
                        group[j] = k
                        break
                else:
                    kept.append(j)
    peaks["suppressed"] = suppressed
    peaks["group"] = group
    back = np.lexsort((peaks["along"], peaks["orbit"]))
    return {k: v[back] for k, v in peaks.items()}
