"""Plume detection along OCO-2 orbits: clean and order the soundings, fit every candidate
window, test the Gaussian against the line, keep one detection per plume, estimate emissions."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, fields, replace

import numpy as np
import pandas as pd
import xarray as xr

from hubkit.co2 import emission as em
from hubkit.co2.fit import SQRT_2PI, fit_windows, gaussian_line
from hubkit.co2.track import OCO2PEAK_EARTH_RADIUS, along_track, haversine, normal_wind

__all__ = ["EMISSION_FLAGS", "PeakOptions", "find_peaks", "prepare_soundings", "window_data"]

log = logging.getLogger(__name__)

#: Bits of ``emission_flag``.
EMISSION_FLAGS = {
    1: "no wind: emission not estimated",
    2: "surface pressure missing: 101325 Pa assumed",
    4: "tcwv missing: 25 kg m-2 assumed (as oco2peak)",
    8: "wind nearly parallel to the track (normal component < 0.5 m s-1)",
}
DEFAULT_TCWV = 25.0  # [kg m-2], oco2peak's constant
DEFAULT_PRESSURE = 101325.0  # [Pa]


@dataclass(frozen=True)
class PeakOptions:
    """Settings of :func:`find_peaks` (defaults: hubkit's detection; see :meth:`oco2peak`).

    Attributes
    ----------
    half_width : float
        Half the fit window. [km]
    step, offset : int
        Every ``step``-th sounding of an orbit (from ``offset``) is a candidate centre.
    min_soundings : int
        Fewest soundings in a window for it to be fitted (oco2peak: 400).
    min_orbit_soundings : int
        Orbits with fewer soundings are skipped (oco2peak: 500).
    sigma_range : (float, float)
        Widths the fit searches. [km]
    n_sigma : int
        Grid widths before refinement.
    min_sigma, max_sigma : float
        Width rule for a detection. [km]
    threshold : float
        Least ``Δχ²/s²`` (Gaussian+line against line, ``s²`` the noise scale) of a detection.
    prescreen : float
        Windows whose grid ``Δχ²/s²`` reaches ``prescreen × threshold`` are iterated to the
        exact optimum (a grid step of ×1.47 in σ loses < 4 % of ``Δχ²``, so nothing above the
        threshold is missed); 0 iterates every window.
    density_rule : bool
        oco2peak's rule: at least ``⌊σ⌋`` soundings in each of ``[-σ,0], [0,σ], [-3σ,-2σ],
        [2σ,3σ]``.
    min_r : float or None
        Least Pearson correlation of model and data within ``±4σ`` (oco2peak: 0.5).
    nms_sigmas : float
        Detections closer than ``nms_sigmas × max(σ)`` to a stronger one are suppressed.
    quality_flag : int or None
        Keep soundings with this ``xco2_quality_flag`` (None: keep all).
    coordinate : str
        ``"track"`` (true along-track distance), ``"distance"`` (the dataset's ``distance``) or
        ``"haversine"`` (from the orbit's first sounding, R = 6367 km, as oco2peak).
    noise_scale : float or None
        ``s``: factor on the sounding uncertainties; None estimates it per orbit as the root of
        the median reduced χ² of the line fits of its windows (background windows dominate).
    wind : (str, str)
        Names of the wind variables (e.g. a boundary-layer wind when the dataset has one).
    wind_uncertainty : float
        Error of the normal wind component. [m s-1]
    background_uncertainty : float
        Error of the local background under the plume. [ppm]
    """

    half_width: float = 100.0
    step: int = 15
    offset: int = 0
    min_soundings: int = 100
    min_orbit_soundings: int = 200
    sigma_range: tuple[float, float] = (1.5, 50.0)
    n_sigma: int = 10
    min_sigma: float = 2.0
    max_sigma: float = 100.0 / 3.0
    threshold: float = 25.0
    prescreen: float = 0.5
    density_rule: bool = False
    min_r: float | None = None
    nms_sigmas: float = 3.0
    quality_flag: int | None = 0
    coordinate: str = "track"
    noise_scale: float | None = None
    wind: tuple[str, str] = ("windspeed_u", "windspeed_v")
    wind_uncertainty: float = 1.0
    background_uncertainty: float = 0.1

    @classmethod
    def oco2peak(cls, **changes) -> PeakOptions:
        """oco2peak's windows and rules (400/500 soundings, haversine distance, density and
        R ≥ 0.5 rules, no significance test, no suppression) on converged fits."""
        base = cls(min_soundings=400, min_orbit_soundings=500, density_rule=True, min_r=0.5,
                   threshold=0.0, nms_sigmas=0.0, coordinate="haversine", prescreen=0.0)
        return replace(base, **changes)

    def to_json(self) -> str:
        """The options as JSON (stored with the peaks; :meth:`from_json` reads it back)."""
        return json.dumps({k: (list(v) if isinstance(v, tuple) else v)
                           for k, v in asdict(self).items()})

    @classmethod
    def from_json(cls, text: str) -> PeakOptions:
        """Options from :meth:`to_json` (e.g. ``peaks.attrs["options"]``)."""
        d = json.loads(text)
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise ValueError(f"PeakOptions.from_json: unknown options {unknown}; expected some "
                             f"of {sorted(known)}")
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()})


_OPTIONAL = ("xco2_uncertainty", "surface_pressure", "tcwv", "land_water_indicator",
             "footprint", "sounding_id", "time")


def prepare_soundings(ds: xr.Dataset, options: PeakOptions | None = None) -> pd.DataFrame:
    """The soundings to fit: quality-filtered, finite, de-duplicated, ordered along track.

    Parameters
    ----------
    ds : xarray.Dataset
        Canonical ``oco2-soundings`` (dim ``sounding``; ``xco2`` [ppm], ``latitude``,
        ``longitude`` [°], ``time``; optional ``orbit``, ``xco2_uncertainty``, wind, ...).
    options : PeakOptions, optional

    Returns
    -------
    pandas.DataFrame
        One row per kept sounding, sorted by ``orbit`` then ``along`` [km], with ``index`` the
        sounding's position in ``ds`` and the unit track direction ``track_east, track_north``.
    """
    o = options or PeakOptions()
    for name in ("xco2", "latitude", "longitude"):
        if name not in ds.variables:
            raise ValueError(f"find_peaks: variable {name!r} is missing; expected canonical "
                             "oco2-soundings (xco2 [ppm], latitude, longitude, time)")
    if "sounding" not in ds.dims:
        raise ValueError(f"find_peaks: dataset has dims {tuple(ds.dims)}, expected 'sounding'")
    cols = {"index": np.arange(ds.sizes["sounding"])}
    names = ["xco2", "latitude", "longitude", *o.wind, *_OPTIONAL, "orbit", "distance",
             "xco2_quality_flag"]
    for name in names:
        if name in ds.variables:
            cols[name] = np.asarray(ds[name].values)
    df = pd.DataFrame(cols)
    if o.coordinate == "track" and "time" not in df:
        raise ValueError("find_peaks: coordinate='track' needs the variable 'time' (the order "
                         "along track); pass coordinate='haversine' for data without time")
    if o.coordinate == "distance" and "distance" not in df:
        raise ValueError("find_peaks: coordinate='distance' needs the variable 'distance' [km]")
    if o.quality_flag is not None and "xco2_quality_flag" in df:
        df = df[df["xco2_quality_flag"] == o.quality_flag]
    finite = np.isfinite(df["xco2"]) & np.isfinite(df["latitude"]) & np.isfinite(df["longitude"])
    df = df[finite.to_numpy()]
    if "sounding_id" in df and (df["sounding_id"] > 0).all():
        df = df.drop_duplicates("sounding_id")
    else:
        key = [c for c in ("time", "latitude", "longitude") if c in df]
        df = df.drop_duplicates(key)
    if "orbit" not in df:
        df["orbit"] = 0
    if "xco2_uncertainty" in df:
        u = df["xco2_uncertainty"].to_numpy(dtype=float)
        if not (np.isfinite(u) & (u > 0)).all():
            log.info("xco2_uncertainty not positive everywhere: uniform weights used")
            df = df.drop(columns="xco2_uncertainty")
    if not len(df):
        return df.assign(along=[], track_east=[], track_north=[])
    # one sort by orbit then time, each orbit's coordinate on NumPy slices, one reordering by
    # along-track position at the end (per-orbit DataFrame copies cost more than the geometry)
    df = df.sort_values(["orbit", "time" if "time" in df else "index"], kind="stable")
    orbit = df["orbit"].to_numpy()
    cuts = np.concatenate([[0], np.flatnonzero(orbit[1:] != orbit[:-1]) + 1, [orbit.size]])
    lat_all, lon_all = df["latitude"].to_numpy(), df["longitude"].to_numpy()
    time_all = df["time"].to_numpy() if "time" in df else None
    along = np.empty(orbit.size)
    east, north = np.empty(orbit.size), np.empty(orbit.size)
    order = np.empty(orbit.size, dtype=np.intp)
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        lat, lon = lat_all[a:b], lon_all[a:b]
        t = time_all[a:b] if time_all is not None else None
        if o.coordinate == "track":
            s, te, tn = along_track(lat, lon, t)
        else:
            if o.coordinate == "distance":
                s = df["distance"].to_numpy(dtype=float)[a:b]
            elif o.coordinate == "haversine":
                s = haversine(lat[0], lon[0], lat, lon, OCO2PEAK_EARTH_RADIUS)
            else:
                raise ValueError(f"coordinate={o.coordinate!r}; expected 'track', 'distance' "
                                 "or 'haversine'")
            _, te, tn = along_track(lat, lon, t) if t is not None else (None, *_chord(lat, lon))
        along[a:b], east[a:b], north[a:b] = s, te, tn
        order[a:b] = a + np.argsort(s, kind="stable")
    df = df.assign(along=along, track_east=east, track_north=north)
    return df.iloc[order].reset_index(drop=True)


def _chord(lat, lon):
    from hubkit.co2.track import local_offsets

    e, n = local_offsets(lat[0], lon[0], lat[-1:], lon[-1:])
    norm = float(np.hypot(e[0], n[0])) or 1.0
    return np.full(lat.size, e[0] / norm), np.full(lat.size, n[0] / norm)


def _fit_orbit(s, y, unc, o: PeakOptions):
    """Fit the candidate windows of one orbit; the noise scale comes from its line fits."""
    centres = np.arange(o.offset, s.size, o.step)
    lo = np.searchsorted(s, s[centres] - o.half_width, "left")
    hi = np.searchsorted(s, s[centres] + o.half_width, "right")
    centres = centres[(hi - lo) >= o.min_soundings]
    noise = {}

    def refine(line):
        if o.noise_scale is not None:
            noise["s"] = float(o.noise_scale)
        else:  # root of the median reduced chi2 of the line fits (background dominates)
            red = line["chi2_line"] / np.maximum(line["n"] - 2, 1)
            noise["s"] = float(np.sqrt(np.median(red))) if red.size else 1.0
        if o.prescreen > 0 and o.threshold > 0:
            return o.prescreen * o.threshold * noise["s"] ** 2
        return "all"

    f = fit_windows(s, y, unc, centres, half_width=o.half_width, sigma_range=o.sigma_range,
                    n_sigma=o.n_sigma, refine=refine)
    f["noise_scale"] = noise.get("s", np.nan)
    return f


def _fit_orbit_task(task, options):
    return _fit_orbit(*task, options)


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
        Dask scheduler for the per-orbit fits (``"threads"`` by default when there are several
        orbits, ``"sync"`` for none).
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
    table = prepare_soundings(ds, o)
    orbits = [g for _, g in table.groupby("orbit", sort=True)]
    short = [int(g["orbit"].iloc[0]) for g in orbits if len(g) < o.min_orbit_soundings]
    orbits = [g for g in orbits if len(g) >= o.min_orbit_soundings]
    has_unc = "xco2_uncertainty" in table
    tasks = [(g["along"].to_numpy(), g["xco2"].to_numpy(dtype=float),
              g["xco2_uncertainty"].to_numpy(dtype=float) if has_unc else None) for g in orbits]
    if client is not None and tasks:
        data = client.scatter(tasks)  # one future per orbit: the arrays travel once
        fits = client.gather(client.map(_fit_orbit_task, data, options=o, pure=False))
    elif len(tasks) > 1 and scheduler != "sync":
        import dask

        fits = list(dask.compute(*[dask.delayed(_fit_orbit)(*t, o) for t in tasks],
                                 scheduler=scheduler or "threads"))
    else:
        fits = [_fit_orbit(*t, o) for t in tasks]
    rows = []
    for g, f in zip(orbits, fits, strict=True):
        if f["centre"].size:
            rows.append(_select(g, f, o, f["noise_scale"] ** 2))
    # one DataFrame from the columns of every orbit (a DataFrame per orbit costs ~1 ms each)
    peaks = (pd.DataFrame({k: np.concatenate([r[k] for r in rows]) for k in rows[0]})
             if rows else pd.DataFrame())
    n_windows = int(sum(f["centre"].size for f in fits))
    if len(peaks):
        peaks = _suppress(peaks, o)
        if not keep_suppressed:
            peaks = peaks[~peaks["suppressed"]].reset_index(drop=True)
    noise = [f["noise_scale"] for f in fits if f["centre"].size]
    return _as_dataset(peaks, o, float(np.median(noise)) if noise else np.nan, n_windows,
                       short, table)


def _select(g: pd.DataFrame, f: dict, o: PeakOptions, s2: float) -> dict:
    """The windows of one orbit that pass the tests, with their fit, wind and emission
    (a column name → array dict)."""
    s = g["along"].to_numpy()
    sig = f["delta_chi2"] / s2
    ok = (f["converged"] & (f["delta"] > 0) & (f["sigma"] >= o.min_sigma)
          & (f["sigma"] <= o.max_sigma) & (sig >= o.threshold))
    c = f["centre"]
    if o.density_rule:
        sc, sg = s[c], f["sigma"]
        need = np.floor(np.nan_to_num(sg))

        def count(a, b):
            return np.searchsorted(s, sc + b * sg, "right") - np.searchsorted(s, sc + a * sg,
                                                                             "left")

        ok &= ((count(-1, 0) >= need) & (count(0, 1) >= need) & (count(-3, -2) >= need)
               & (count(2, 3) >= need))
    idx = np.flatnonzero(ok)
    y = g["xco2"].to_numpy(dtype=float)
    r = np.full(idx.size, np.nan)
    for j, k in enumerate(idx):  # Pearson R of model and data within ±4σ (few windows)
        a = np.searchsorted(s, s[c[k]] - 4 * f["sigma"][k], "left")
        b = np.searchsorted(s, s[c[k]] + 4 * f["sigma"][k], "right")
        if b - a > 2:
            model = gaussian_line(s[a:b] - s[c[k]], f["slope"][k], f["intercept"][k],
                                  f["delta"][k], f["sigma"][k])
            r[j] = np.corrcoef(model, y[a:b])[0, 1]
    if o.min_r is not None:
        keep = r >= o.min_r
        idx, r = idx[keep], r[keep]
    err = np.sqrt(s2)
    rows = c[idx]

    def at_centres(name):
        return g[name].to_numpy()[rows]

    # columns gathered as arrays, one DataFrame at the end: inserting them one by one into a
    # DataFrame cost more than the fits on short orbits
    out = {
        "orbit": at_centres("orbit"),
        "sounding_index": at_centres("index"),
        "latitude": at_centres("latitude"),
        "longitude": at_centres("longitude"),
        "along": s[c[idx]],
        "window_start": s[c[idx]] - o.half_width,
        "window_end": s[c[idx]] + o.half_width,
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
        if name in g:
            out[name] = at_centres(name)
    _emission(out, g, s, rows, o)
    return out


def _window_mean(values, s, centre_s, sigma):
    a = np.searchsorted(s, centre_s - sigma, "left")
    b = np.searchsorted(s, centre_s + sigma, "right")
    csum = np.concatenate([[0.0], np.cumsum(np.nan_to_num(values))])
    cnt = np.concatenate([[0], np.cumsum(np.isfinite(values))])
    n = cnt[b] - cnt[a]
    return np.where(n > 0, (csum[b] - csum[a]) / np.maximum(n, 1), np.nan)


def _emission(out, g, s, centres, o):
    """Cross-sectional flux of each detection with its uncertainty and flags (columns added
    to the dict ``out``)."""
    sc, sg = s[centres], np.asarray(out["sigma"])
    flag = np.zeros(sc.size, dtype=np.int8)

    def mean_of(name):
        if name not in g:
            return np.full(sc.size, np.nan)
        return _window_mean(g[name].to_numpy(dtype=float), s, sc, sg)

    u, v = mean_of(o.wind[0]), mean_of(o.wind[1])
    te, tn = g["track_east"].to_numpy()[centres], g["track_north"].to_numpy()[centres]
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


def _suppress(peaks: pd.DataFrame, o: PeakOptions) -> pd.DataFrame:
    """Non-maximum suppression per orbit: one detection per plume (the most significant)."""
    peaks = peaks.sort_values(["orbit", "significance"], ascending=[True, False],
                              kind="stable").reset_index(drop=True)
    suppressed = np.zeros(len(peaks), dtype=bool)
    group = np.arange(len(peaks))
    if o.nms_sigmas > 0:
        for _, rows in peaks.groupby("orbit", sort=False).indices.items():
            a = peaks["along"].to_numpy()[rows]
            sg = peaks["sigma"].to_numpy()[rows]
            kept: list[int] = []
            for j in range(rows.size):
                for k in kept:
                    if abs(a[j] - a[k]) < o.nms_sigmas * max(sg[j], sg[k]):
                        suppressed[rows[j]] = True
                        group[rows[j]] = rows[k]
                        break
                else:
                    kept.append(j)
    peaks["suppressed"] = suppressed
    peaks["group"] = group
    return peaks.sort_values(["orbit", "along"], kind="stable").reset_index(drop=True)


_UNITS = {
    "latitude": "degrees_north", "longitude": "degrees_east", "along": "km",
    "window_start": "km", "window_end": "km", "slope": "ppm km-1", "slope_err": "ppm km-1",
    "intercept": "ppm", "intercept_err": "ppm", "delta": "ppm", "delta_err": "ppm",
    "sigma": "km", "sigma_err": "km", "amplitude": "ppm km", "amplitude_err": "ppm km",
    "windspeed_u": "m s-1", "windspeed_v": "m s-1", "wind_normal": "m s-1",
    "surface_pressure": "Pa", "tcwv": "kg m-2", "emission": "kg s-1", "emission_err": "kg s-1",
    "delta_chi2": "1", "significance": "1", "R": "1",
}


def _as_dataset(peaks, o, noise, n_windows, short, table) -> xr.Dataset:
    if not len(peaks):  # no detection: the same columns, empty
        ints = {"orbit": np.int32, "sounding_index": np.int64, "n_window": np.int64,
                "iterations": np.int16, "emission_flag": np.int8}
        names = ["orbit", "sounding_index", "latitude", "longitude", "along", "window_start",
                 "window_end", "n_window", "R", "delta_chi2", "significance", "iterations",
                 *(f"{n}{e}" for n in ("slope", "intercept", "delta", "sigma", "amplitude")
                   for e in ("", "_err")),
                 "windspeed_u", "windspeed_v", "track_east", "track_north", "wind_normal",
                 "surface_pressure", "tcwv", "emission", "emission_err", "emission_flag"]
        peaks = pd.DataFrame({k: np.zeros(0, dtype=ints.get(k, float)) for k in names})
    ds = xr.Dataset.from_dataframe(peaks.rename_axis("peak"))
    ds = ds.drop_vars("peak")
    for name, units in _UNITS.items():
        if name in ds:
            ds[name].attrs["units"] = units
    if "emission_flag" in ds:
        ds["emission_flag"].attrs.update(
            flag_masks=list(EMISSION_FLAGS), flag_meanings=" ".join(
                v.split(":")[0].replace(" ", "_") for v in EMISSION_FLAGS.values()))
    ds.attrs.update(
        title="OCO-2 XCO2 plume detections",
        hubkit_species="co2", platform="OCO-2", instrument="OCO-2",
        noise_scale=noise, windows_fitted=n_windows, soundings_used=int(len(table)),
        orbits_skipped_too_short=",".join(map(str, short)),
        options=o.to_json(),
        method="converged Gaussian+line least squares (variable projection) in sliding "
               "windows; Δχ² test; non-maximum suppression; cross-sectional flux emission",
    )
    return ds


def window_data(ds: xr.Dataset, peaks: xr.Dataset, i: int,
                options: PeakOptions | None = None) -> pd.DataFrame:
    """The soundings of detection ``i`` of ``peaks`` with the fitted model (on demand).

    See :func:`peak_window`; ``options`` default to those stored in ``peaks.attrs``.
    """
    return peak_window(ds, peaks.isel(peak=i), options or _stored_options(peaks.attrs))


def _stored_options(attrs) -> PeakOptions:
    text = attrs.get("options")
    if isinstance(text, str) and text.startswith("{"):
        try:
            return PeakOptions.from_json(text)
        except (ValueError, TypeError):
            log.info("peaks carry options hubkit cannot read (%.60s…): defaults used", text)
    return PeakOptions()


def peak_window(soundings: xr.Dataset, peak, options: PeakOptions | None = None
                ) -> pd.DataFrame:
    """The soundings one detection was fitted on, recomputed from the soundings product.

    Peaks tables keep the fit, not the window's soundings: this selects the detection's orbit in
    ``soundings``, prepares it as :func:`find_peaks` did (same options, so the same along-track
    coordinate) and returns the soundings within ``±half_width`` of the centre with the fitted
    model evaluated on them.

    Parameters
    ----------
    soundings : xarray.Dataset
        The ``oco2-soundings`` the detection was found in (all of its orbit).
    peak : pandas.Series, mapping or xarray.Dataset
        One detection: a row of :func:`hubkit.co2.peaks_table` (or of a stored ``oco2-peaks``
        table), or one element of :func:`find_peaks`. Needs ``orbit, along, slope, intercept,
        delta, sigma``.
    options : PeakOptions, optional
        The options of the detection run (``PeakOptions.from_json(table.attrs["options"])``);
        defaults to ``PeakOptions()``.

    Returns
    -------
    pandas.DataFrame
        One row per sounding, in along-track order: ``x`` (along track from the centre [km]),
        ``xco2``, ``model``, ``background`` [ppm], ``latitude``, ``longitude`` [°],
        ``sounding_index`` (position in ``soundings``), and ``xco2_uncertainty`` [ppm] and
        ``time`` when the soundings have them.
    """
    o = options or PeakOptions()
    for name in ("along", "slope", "intercept", "delta", "sigma"):
        if name not in peak:
            raise ValueError(f"peak_window: the peak lacks {name!r}; expected a row of "
                             "peaks_table() or find_peaks() output")
    orbit = np.asarray(peak["orbit"]).item() if "orbit" in peak else 0
    sub = soundings
    if "orbit" in soundings.variables:
        sub = soundings.isel(sounding=np.flatnonzero(soundings["orbit"].values == orbit))
    t = prepare_soundings(sub, o)
    s = t["along"].to_numpy()
    centre = float(np.asarray(peak["along"]))
    a = np.searchsorted(s, centre - o.half_width, "left")  # as fit_windows' window_bounds
    b = np.searchsorted(s, centre + o.half_width, "right")
    t = t.iloc[a:b]
    x = s[a:b] - centre
    m, c, d, w = (float(np.asarray(peak[k])) for k in ("slope", "intercept", "delta", "sigma"))
    out = pd.DataFrame({
        "x": x, "xco2": t["xco2"].to_numpy(),
        "model": gaussian_line(x, m, c, d, w),
        "background": m * x + c,
        "latitude": t["latitude"].to_numpy(), "longitude": t["longitude"].to_numpy(),
        "sounding_index": t["index"].to_numpy(),
    })
    if "orbit" in soundings.variables:  # positions in the whole dataset, not the orbit
        out["sounding_index"] = np.flatnonzero(soundings["orbit"].values == orbit)[
            out["sounding_index"].to_numpy()]
    for name in ("xco2_uncertainty", "time"):
        if name in t:
            out[name] = t[name].to_numpy()
    return out
