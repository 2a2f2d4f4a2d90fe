"""Observing-system simulation experiments (OSSEs): the whole ozone chain against a known truth.

A nature run (:class:`hubkit.simulate.NatureRun`) is observed hour by hour by the L2 simulator
(:func:`hubkit.simulate.l2_ozone`), the retrievals of each hour are fused on one fusion grid
(:func:`hubkit.fusion.fuse_product`), the fused products of each 12-h cycle are assimilated
from the previous cycle's analysis (:func:`hubkit.assimilation.assimilate`, warm starts by
:func:`hubkit.assimilation.forecast.warm_start`), and each analysis is scored against the truth
on the DAS grid: total column and 0-6 km column RMSE of the analysis, of the 12-h forecast from
the previous analysis (the first guess), of a free model run from the first cold start and of
the climatology; the tropospheric column (TROC) bias; the local-noon UV index error; the
recovery of the nature run's tropospheric ozone layer. The chain's ``das`` products carry the
observation-space diagnostics (O−B, O−A, χ²/dof, spread) that need no truth.

This is the same sequence of science functions the processing chain (:mod:`hubkit.chain`)
runs per product; here it runs in memory, without a store, so that tests and
``python -m benchmarks.osse`` can score it. Nothing here opens a file.

References
----------
.. [1] Arnold, Dey, Bull. Am. Meteorol. Soc. 67, 687-695, 1986.
.. [2] Gai et al., Remote Sens. 13, 210, 2021. doi:10.3390/rs13020210
.. [3] Desroziers et al., Q. J. R. Meteorol. Soc. 131, 3385-3396, 2005. doi:10.1256/qj.05.108
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xarray as xr

__all__ = ["OsseConfig", "OsseResult", "column_scores", "region_mask", "run_osse",
           "score_analysis"]


@dataclass(frozen=True)
class OsseConfig:
    """An OSSE's set-up.

    Attributes
    ----------
    grid : tuple of int
        DAS grid ``(n_longitude, n_latitude, n_levels)`` (regular, global).
    bbox : tuple of float
        Observed region ``(west, south, east, north)``; scores are over the DAS cells that
        lie wholly in it (:func:`region_mask`). [°]
    start : str
        First hour observed (UTC; a 00 or 12 UTC cycle start).
    hours : int
        Hours observed. [h]
    instruments : tuple of str
        Geostationary instruments observe every hour, low-orbit ones at ``leo_hour`` UTC.
    leo_hour : int
        UTC hour of the low-orbit overpass. [h]
    spacing : float
        Ground-pixel spacing of the retrievals. [°]
    fusion_cell : tuple of float
        Fusion cell ``(Δlat [°], Δlon [°], Δt [s])``.
    fusion_levels, fusion_top : int, float
        The one fusion grid: levels from 101325 Pa up to ``fusion_top`` [Pa].
    cycle, interval : str
        Assimilation cycle (one product per cycle) and analysis interval within it.
    options : hubkit.assimilation.CycleOptions
    nature : hubkit.simulate.NatureRun
    met_seed : int
        Seed of the meteorology (:func:`hubkit.simulate.das_field`).
    """

    grid: tuple[int, int, int] = (72, 36, 30)
    bbox: tuple[float, float, float, float] = (-15.0, 35.0, 35.0, 60.0)
    start: str = "2024-07-01T00:00"
    hours: int = 72
    instruments: tuple[str, ...] = ("S4-UV", "S5-UV", "S5-TIR", "S4-VIS")
    leo_hour: int = 12
    spacing: float = 1.0
    fusion_cell: tuple[float, float, float] = (1.0, 1.0, 3600.0)
    fusion_levels: int = 30
    fusion_top: float = 100.0
    cycle: str = "12h"
    interval: str = "1h"
    options: object = None
    nature: object = None
    met_seed: int = 0
    wind_speed: float = 20.0

    def fusion_pressure(self) -> np.ndarray:
        """The fusion grid. [Pa]"""
        return np.geomspace(101325.0, float(self.fusion_top), int(self.fusion_levels))


@dataclass
class OsseResult:
    """What :func:`run_osse` made: per-cycle analyses, first guesses, truths and scores."""

    config: OsseConfig
    analyses: list[xr.Dataset] = field(default_factory=list)
    first_guesses: list[xr.Dataset | None] = field(default_factory=list)
    truths: list[xr.Dataset] = field(default_factory=list)
    climatologies: list[xr.Dataset] = field(default_factory=list)
    table: pd.DataFrame | None = None


def _meteorology(cfg: OsseConfig):
    from hubkit import simulate

    nlon, nlat, n_levels = (int(n) for n in cfg.grid)
    steps = int(np.ceil(cfg.hours / 12.0)) + 3
    return simulate.das_field(nlon=nlon, nlat=nlat, ntime=steps, n_levels=n_levels,
                              start=cfg.start, step_hours=12.0, dtype=np.float64,
                              seed=cfg.met_seed)


def region_mask(latitude, longitude, bbox, *, whole=True) -> np.ndarray:
    """Cells (latitude × longitude) of a regular global grid that lie wholly in ``bbox``
    (west, south, east, north) [°] (the cells observations cover), or with ``whole=False``
    whose centres lie in it."""
    west, south, east, north = bbox
    lat = np.asarray(latitude, dtype=float)[:, None]
    lon = np.asarray(longitude, dtype=float)[None, :]
    half_lat, half_lon = (90.0 / lat.size, 180.0 / lon.size) if whole else (0.0, 0.0)
    return (lat - half_lat >= south) & (lat + half_lat <= north) \
        & (lon - half_lon >= west) & (lon + half_lon <= east)


def column_scores(state: xr.Dataset, truth: xr.Dataset, mask, variable="o3_vmr") -> dict:
    """Total-column and 0-6 km column errors of ``state[variable]`` against ``truth`` over
    the cells of ``mask``: RMSE [DU] and mean bias [%] of each, at the first time."""
    from hubkit.ozone import tropospheric_ozone
    from hubkit.uv.surface import total_ozone_column

    out = {}
    pairs = {}
    for name, ds, var in (("x", state, variable), ("t", truth, "o3_vmr")):
        das = ds.isel(time=[0]).assign(o3_vmr=ds[var].isel(time=[0]))
        pairs[name] = {
            "total": np.asarray(total_ozone_column(das).isel(time=0).values, float)[mask],
            "trop": np.asarray(tropospheric_ozone(das, fixed_altitude=6000.0)
                               ["o3_column_fixed"].isel(time=0).values, float)[mask],
        }
    for col in ("total", "trop"):
        x, t = pairs["x"][col], pairs["t"][col]
        out[f"rmse_{col}"] = float(np.sqrt(np.mean((x - t) ** 2)))
        out[f"bias_{col}"] = float(100.0 * (x.mean() - t.mean()) / t.mean())
    return out


def _hourly_fused(cfg: OsseConfig, nature, hour: pd.Timestamp, k: int):
    from hubkit import fusion, simulate

    names = tuple(n for n in cfg.instruments
                  if simulate.O3_INSTRUMENTS[n]["platform"] == "GEO" or hour.hour == cfg.leo_hour)
    l2 = simulate.l2_ozone(instruments=names, bbox=cfg.bbox, start=hour.isoformat(), hours=1,
                           spacing=cfg.spacing, seed=1000 + k, truth=nature)
    fused = fusion.fuse_product(l2, cell=cfg.fusion_cell, pressure=cfg.fusion_pressure(),
                                num_workers=1)
    finite = np.isfinite(fused["o3_vmr"].values).all(axis=1)
    return fused.isel(cell=np.flatnonzero(finite))


def run_osse(config: OsseConfig | None = None, *,
             progress: Callable[[str], None] | None = None) -> OsseResult:
    """Run an OSSE (see the module docstring) and score every cycle.

    Returns
    -------
    OsseResult
        ``table`` has one row per cycle: ``time``, ``start`` (cold/warm), the observation-space
        diagnostics of :func:`hubkit.assimilation.cycling.window_diagnostics`, and against
        the truth over ``bbox``:
        ``rmse_{total,trop}_{analysis,forecast,free,climatology}`` [DU],
        ``bias_{total,trop}_{...}`` [%], ``troc_bias`` [%] (lapse-rate tropopause column),
        ``uvi_error_median`` [%] (local-noon UV index where the sun is up), ``layer_recovered``
        (analysis excess over the climatology at the layer's level, divided by the truth's,
        where the nature run's layer adds over 10 ppbv; NaN where none), ``negative`` (grid values
        < 0 in the analysis).
    """
    from hubkit.assimilation import CycleOptions, assimilate
    from hubkit.assimilation import forecast as FC
    from hubkit.assimilation.background import climatology_state
    from hubkit.assimilation.cycling import solid_body_winds, window_diagnostics
    from hubkit.fusion import concat_fused
    from hubkit.simulate import NatureRun

    cfg = config or OsseConfig()
    opts = cfg.options or CycleOptions(members=32, seed=1, spread=0.3, spread_stratosphere=0.1,
                                       model_error=0.1, vertical_length=0.5,
                                       vertical_model="soar")
    nature = cfg.nature or NatureRun(start=cfg.start)
    say = progress or (lambda _msg: None)
    met = _meteorology(cfg)
    winds = solid_body_winds(met.latitude, met.longitude, speed=cfg.wind_speed,
                             tilt=nature.tilt)
    mask = region_mask(met.latitude.values, met.longitude.values, cfg.bbox)
    width = pd.Timedelta(cfg.cycle)
    t0 = pd.Timestamp(cfg.start)
    hours = [t0 + pd.Timedelta(hours=k) for k in range(int(cfg.hours))]
    result = OsseResult(cfg)
    rows = []
    previous = None
    for c in range(int(np.ceil(cfg.hours / (width / pd.Timedelta(hours=1))))):
        begin, end = t0 + c * width, t0 + (c + 1) * width
        fused = [_hourly_fused(cfg, nature, h, k) for k, h in enumerate(hours)
                 if begin <= h < end]
        fused = [f for f in fused if f.sizes["cell"]]
        if not fused:
            previous = None
            continue
        window = concat_fused(fused)
        if previous is None:
            background = FC.cold_start(met, begin, end)
        else:
            background = FC.warm_start(previous, met, end)
        clim = climatology_state(met, [np.datetime64(end.tz_localize(None)
                                                     if end.tz else end, "ns")])
        das = assimilate(window, background=background, winds=winds, window=cfg.interval,
                         options=opts, climatology=clim if opts.relaxation_time else None,
                         until=end)
        at_end = das.sel(time=[np.datetime64(end, "ns")])
        first_guess = None
        if previous is not None:
            first_guess = FC.forecast(previous, met, winds, leads=[cfg.cycle], dt=opts.dt)
        row = {"time": end, "start": das.attrs["hubkit_start"], **window_diagnostics(das)}
        truth = nature.on_grid(met, at_end["time"].values)
        row.update(score_analysis(at_end, nature, mask, first_guess=first_guess,
                                  climatology=clim, truth=truth))
        row["negative"] = int((das["o3_vmr"] < 0).sum())
        rows.append(row)
        result.analyses.append(at_end)
        result.first_guesses.append(first_guess)
        result.truths.append(truth)
        result.climatologies.append(clim)
        say(f"cycle {end:%Y-%m-%d %H} UTC: {row['n_obs']} profiles, trop RMSE "
            f"{row['rmse_trop_analysis']:.2f} DU (climatology "
            f"{row['rmse_trop_climatology']:.2f}), chi2/dof {row['chi2']:.2f}")
        previous = at_end
    result.table = pd.DataFrame(rows)
    return result


def score_analysis(analysis: xr.Dataset, nature, mask, *, first_guess=None,
                   climatology=None, truth=None) -> dict:
    """Scores of one analysis (a ``das`` product's first time) against the nature run.

    Parameters
    ----------
    analysis : xarray.Dataset
        ``das`` product: ``o3_vmr`` (and ``o3_vmr_free`` when present) with its meteorology.
    nature : hubkit.simulate.NatureRun
        The truth the observations were simulated from.
    mask : ndarray of bool, (latitude, longitude)
        Cells scored (:func:`region_mask`).
    first_guess : xarray.Dataset, optional
        The 12-h forecast valid at the analysis time (``das-forecast`` layout).
    climatology : xarray.Dataset, optional
        Default: :func:`hubkit.assimilation.background.climatology_state` of ``analysis``.
    truth : xarray.Dataset, optional
        ``nature`` on the analysis grid and time, when the caller has it already.

    Returns
    -------
    dict
        ``rmse_{total,trop}_{analysis,free,climatology,forecast}`` [DU],
        ``bias_{total,trop}_{...}`` [%], ``troc_bias`` [%], ``uvi_error_median`` [%],
        ``layer_recovered`` [1] (see :func:`run_osse`).
    """
    from hubkit.assimilation.background import climatology_state

    times = analysis["time"].values[:1]
    truth = nature.on_grid(analysis, times) if truth is None else truth
    clim = climatology_state(analysis, times) if climatology is None else climatology
    states = {"analysis": (analysis, "o3_vmr"), "climatology": (clim, "o3_vmr")}
    if "o3_vmr_free" in analysis:
        states["free"] = (analysis, "o3_vmr_free")
    if first_guess is not None:
        lead = first_guess.sel(time=times)
        states["forecast"] = (lead, "o3_vmr")
    row = {}
    for kind, (ds, var) in states.items():
        for k, v in column_scores(ds, truth, mask, var).items():
            row[f"{k}_{kind}"] = v
    row.update(_product_scores(analysis, truth, clim, nature, mask))
    return row


def _product_scores(analysis, truth, clim, nature, mask) -> dict:
    """TROC bias, local-noon UV index error and layer recovery of one analysis."""
    from hubkit.assimilation.background import level_dim
    from hubkit.ozone import tropospheric_ozone
    from hubkit.uv.surface import surface_uv

    out = {}
    troc = {k: np.asarray(tropospheric_ozone(ds)["o3_column_lrt"].isel(time=0).values,
                          float)[mask] for k, ds in (("a", analysis), ("t", truth))}
    out["troc_bias"] = float(100.0 * (troc["a"].mean() - troc["t"].mean()) / troc["t"].mean())
    uv = {k: surface_uv(ds, local_noon=True) for k, ds in (("a", analysis), ("t", truth))}
    ua = np.asarray(uv["a"]["uvi"].isel(time=0).values, float)[mask]
    ut = np.asarray(uv["t"]["uvi"].isel(time=0).values, float)[mask]
    up = ut > 0.5
    out["uvi_error_median"] = float(np.median(np.abs(ua[up] - ut[up]) / ut[up]) * 100.0) \
        if up.any() else np.nan
    # the layer: excess over the climatology at the level nearest the layer's pressure
    p_layer = nature.layer[2]
    a = np.asarray(analysis["hybrid_a"].values, float)
    b = np.asarray(analysis["hybrid_b"].values, float)
    mid = 0.5 * ((a[1:] + a[:-1]) + (b[1:] + b[:-1]) * 101325.0)
    k = int(np.argmin(np.abs(np.log(mid / p_layer))))
    lev = level_dim(analysis["o3_vmr"])
    at = {n: np.asarray(ds["o3_vmr"].isel({"time": 0, lev: k}).values, float)[mask]
          for n, ds in (("a", analysis), ("t", truth), ("c", clim))}
    excess_t = at["t"] - at["c"]
    lat = np.asarray(analysis["latitude"].values, float)[:, None]
    lon = np.asarray(analysis["longitude"].values, float)[None, :]
    t = np.asarray(analysis["time"].values[:1], dtype="datetime64[ns]")
    shape = np.broadcast_shapes(lat.shape, lon.shape)
    layer = nature.layer_excess(np.broadcast_to(lat, shape), np.broadcast_to(lon, shape),
                                np.broadcast_to(t[0], shape), [p_layer])[..., 0][mask] > 10e-9
    out["layer_recovered"] = float(np.mean(at["a"][layer] - at["c"][layer])
                                   / np.mean(excess_t[layer])) if layer.any() else np.nan
    return out
