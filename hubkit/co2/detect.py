"""Plume detection along OCO-2 orbits: clean and order the soundings, fit every candidate
window, test the Gaussian against the line, keep one detection per plume, estimate emissions."""

from __future__ import annotations

import logging

import numpy as np
import xarray as xr

from hubkit.co2.fit import fit_segments
from hubkit.co2.options import EMISSION_FLAG_NAMES, EMISSION_FLAGS, PeakOptions
from hubkit.co2.prepare import prepare
from hubkit.co2.select import orbit_noise, r_within_4_sigma, select_windows, suppress_duplicates

log = logging.getLogger(__name__)

__all__ = ["find_peaks"]


def _fit_orbits(s, y, unc, cuts, o: PeakOptions, map_chunks=None, skip=None):
    """Fit the candidate windows of the orbits ``s[cuts[j]:cuts[j + 1]]`` (laid end to end;
    none in the orbits ``skip``), all orbits' windows batched; each orbit's noise scale comes
    from its own line fits.

    Returns the fits (:func:`hubkit.co2.fit.fit_segments`, positions into ``s``) with
    ``noise2`` (the squared noise scale of each window's orbit) and ``noise_scale`` (per orbit).
    """
    cuts = np.asarray(cuts, dtype=np.intp)
    centres = []
    for j, (a, b) in enumerate(zip(cuts[:-1], cuts[1:], strict=True)):
        if skip is not None and skip[j]:
            continue
        c = np.arange(o.offset, b - a, o.step)
        lo = np.searchsorted(s[a:b], s[a:b][c] - o.half_width, "left")
        hi = np.searchsorted(s[a:b], s[a:b][c] + o.half_width, "right")
        centres.append(a + c[(hi - lo) >= o.min_soundings])
    centres = np.concatenate(centres) if centres else np.zeros(0, dtype=np.intp)
    noise = np.ones(max(cuts.size - 1, 0))

    def refine(line):
        seg = line["segment"]
        if o.noise_scale is not None:
            noise[:] = float(o.noise_scale)
        else:  # root of the median reduced chi2 of the line fits (background dominates)
            red = line["chi2_line"] / np.maximum(line["n"] - 2, 1)
            first = np.searchsorted(seg, np.arange(noise.size + 1))
            for j in np.flatnonzero(np.diff(first)):
                noise[j] = float(np.sqrt(np.median(red[first[j]:first[j + 1]])))
        if o.prescreen > 0 and o.threshold > 0:
            return o.prescreen * o.threshold * noise[seg] ** 2
        return "all"

    f = fit_segments(s, y, unc, cuts, centres, half_width=o.half_width,
                     sigma_range=o.sigma_range, n_sigma=o.n_sigma, refine=refine,
                     peaks_only=True, screen=0.5, map_chunks=map_chunks)
    f["noise2"] = noise[f["segment"]] ** 2
    f["noise_scale"] = noise
    return f


def _fit_orbit_task(task, options):
    """One orbit on a Dask worker (``find_peaks(client=...)``)."""
    s, y, unc = task
    return _fit_orbits(s, y, unc, [0, s.size], options)


def _thread_map(scheduler):
    def run(function, tasks):
        import dask

        return list(dask.compute(*[dask.delayed(function, pure=False)(t) for t in tasks],
                                 scheduler=scheduler or "threads"))
    return run


def find_peaks(ds: xr.Dataset, options: PeakOptions | None = None, *,
               keep_suppressed: bool = False, scheduler: str | None = None,
               client=None) -> xr.Dataset:
    """Detect XCO2 plumes along OCO-2 orbits by converged Gaussian fits in sliding windows.

    Every ``step``-th sounding of an orbit is a candidate centre; the soundings within
    ``±half_width`` along track are fitted with a Gaussian on a line (:func:`fit_windows`,
    variable projection after Golub & Pereyra 1973). A candidate is a detection when the
    Gaussian improves the line fit by ``Δχ²/s² ≥ threshold`` (a one-parameter likelihood-ratio
    test: under Gaussian noise ``Δχ²/s²`` of a fixed-width template is χ²₁, so 25 means a
    per-template false-alarm probability of 5.7e-7), ``δ > 0``, ``min_sigma ≤ σ ≤ max_sigma``
    inside the searched widths, and the optional oco2peak rules hold. Overlapping detections
    are reduced to the strongest (non-maximum suppression). The emission of each detection is
    the cross-sectional flux of its area (Zheng et al. 2020).

    Parameters
    ----------
    ds : xarray.Dataset
        Canonical ``oco2-soundings``, one or many orbits.
    options : PeakOptions, optional
        Defaults to ``PeakOptions()``.
    keep_suppressed : bool
        Also return the detections suppressed by a stronger neighbour (``suppressed`` True).
    scheduler : str, optional
        Dask scheduler for the fits (``"threads"`` by default: the windows of all orbits are
        batched and cut into tasks of similar size, :func:`hubkit.co2.fit.fit_segments`;
        ``"sync"`` for none).
    client : distributed.Client, optional
        Run the per-orbit fits on this Dask cluster instead (:func:`hubkit.compute.client`):
        each orbit's soundings are scattered to the workers and fitted there, one task per
        orbit (all windows of an orbit batched in NumPy), and only the fits come back. The
        results are the same as in-process.

    Returns
    -------
    xarray.Dataset
        Dim ``peak``: position (``latitude, longitude, time, orbit, along`` [km],
        ``sounding_index`` into ``ds``), fit (``slope, intercept, delta, sigma, amplitude`` and
        their ``*_err``, ``delta_chi2, significance, R, n_window, window_start, window_end``),
        wind and emission (``wind_normal, emission, emission_err, emission_flag``),
        ``land_water_indicator``, ``footprint``. Attributes hold the options, the noise scale
        and counts.

    References
    ----------
    .. [1] Golub, G. H. and Pereyra, V., SIAM J. Numer. Anal. 10, 413-432, 1973.
       doi:10.1137/0710036
    .. [2] Zheng, B. et al., Atmos. Chem. Phys. 20, 8501-8510, 2020.
       doi:10.5194/acp-20-8501-2020
    """
    o = options or PeakOptions()
    cols = prepare(ds, o)  # plain arrays: pandas per orbit cost more than the fits
    orbit = cols["orbit"]
    cuts = np.concatenate([[0], np.flatnonzero(orbit[1:] != orbit[:-1]) + 1, [orbit.size]])
    cuts = cuts if orbit.size else np.zeros(1, dtype=np.intp)
    sizes = np.diff(cuts)
    short = [int(orbit[a]) for a, n in zip(cuts[:-1], sizes, strict=True)
             if n < o.min_orbit_soundings]
    s = cols["along"].astype(np.float64) if orbit.size else np.zeros(0)
    y = cols["xco2"].astype(np.float64) if orbit.size else np.zeros(0)
    unc = (cols["xco2_uncertainty"].astype(np.float64) if "xco2_uncertainty" in cols
           else None)
    long = np.flatnonzero(sizes >= o.min_orbit_soundings)
    if client is not None and long.size:
        parts = [(s[a:b], y[a:b], None if unc is None else unc[a:b])
                 for a, b in zip(cuts[long], cuts[long + 1], strict=True)]
        data = client.scatter(parts)  # one future per orbit: the arrays travel once
        fits = client.gather(client.map(_fit_orbit_task, data, options=o, pure=False))
        f = _merge_fits(fits, cuts[long], long)
    else:
        f = _fit_orbits(s, y, unc, cuts, o,
                        None if scheduler == "sync" else _thread_map(scheduler),
                        skip=sizes < o.min_orbit_soundings)
        f["noise_scale"] = f["noise_scale"][f["segment"]]
    peaks = select_windows(cols, cuts, f, o) if f["centre"].size else {}
    n_windows = int(f["centre"].size)
    if peaks and peaks["orbit"].size:
        peaks = suppress_duplicates(peaks, o)
        if not keep_suppressed:
            keep = ~peaks["suppressed"]
            peaks = {k: v[keep] for k, v in peaks.items()}
        if o.min_r is None:
            peaks["R"] = r_within_4_sigma(cols, peaks["_a"], peaks["_b"], peaks["along"],
                                           *(peaks[k] for k in ("slope", "intercept", "delta",
                                                                "sigma")))
    peaks = {k: v for k, v in peaks.items() if not k.startswith("_")}
    noise = orbit_noise(f)
    return _as_dataset(peaks, o, float(np.median(noise)) if noise.size else np.nan, n_windows,
                       short, orbit.size)


def _merge_fits(fits, starts, orbit_ids):
    """Per-orbit fits (positions within each orbit) as one fit over the table."""
    out = {}
    for name in fits[0]:
        if name == "noise_scale":
            continue
        vals = []
        for f, a in zip(fits, starts, strict=True):
            v = f[name]
            if name in ("centre", "lo", "hi"):
                v = v + a
            vals.append(v)
        out[name] = np.concatenate(vals)
    out["segment"] = np.concatenate([np.full(f["centre"].size, j)
                                     for f, j in zip(fits, orbit_ids, strict=True)])
    out["noise_scale"] = np.concatenate([f["noise_scale"][f["segment"]] for f in fits])
    return out



_UNITS = {
    "latitude": "degrees_north", "longitude": "degrees_east", "along": "km",
    "window_start": "km", "window_end": "km", "slope": "ppm km-1", "slope_err": "ppm km-1",
    "intercept": "ppm", "intercept_err": "ppm", "delta": "ppm", "delta_err": "ppm",
    "sigma": "km", "sigma_err": "km", "amplitude": "ppm km", "amplitude_err": "ppm km",
    "windspeed_u": "m s-1", "windspeed_v": "m s-1", "wind_normal": "m s-1",
    "surface_pressure": "Pa", "tcwv": "kg m-2", "emission": "kg s-1", "emission_err": "kg s-1",
    "delta_chi2": "1", "significance": "1", "R": "1",
}


def _as_dataset(peaks: dict, o, noise, n_windows, short, n_used) -> xr.Dataset:
    if not peaks or not peaks["orbit"].size:  # no detection: the same columns, empty
        ints = {"orbit": np.int32, "sounding_index": np.int64, "n_window": np.int64,
                "iterations": np.int16, "emission_flag": np.int8}
        names = ["orbit", "sounding_index", "latitude", "longitude", "along", "window_start",
                 "window_end", "n_window", "R", "delta_chi2", "significance", "iterations",
                 *(f"{n}{e}" for n in ("slope", "intercept", "delta", "sigma", "amplitude")
                   for e in ("", "_err")),
                 "windspeed_u", "windspeed_v", "track_east", "track_north", "wind_normal",
                 "surface_pressure", "tcwv", "emission", "emission_err", "emission_flag"]
        peaks = {k: np.zeros(0, dtype=ints.get(k, float)) for k in names}
    ds = xr.Dataset({k: ("peak", np.asarray(v)) for k, v in peaks.items()})
    for name, units in _UNITS.items():
        if name in ds:
            ds[name].attrs["units"] = units
    if "emission_flag" in ds:
        bits = sorted(EMISSION_FLAGS)
        ds["emission_flag"].attrs.update(
            flag_masks=bits, flag_meanings=" ".join(EMISSION_FLAG_NAMES[b] for b in bits),
            flag_descriptions=[EMISSION_FLAGS[b] for b in bits])
    ds.attrs.update(
        title="OCO-2 XCO2 plume detections",
        hubkit_species="co2", platform="OCO-2", instrument="OCO-2",
        noise_scale=noise, windows_fitted=n_windows, soundings_used=int(n_used),
        orbits_skipped_too_short=",".join(map(str, short)),
        options=o.to_json(),
        method="converged Gaussian+line least squares (variable projection) in sliding "
               "windows; Δχ² test; non-maximum suppression; cross-sectional flux emission",
    )
    return ds
