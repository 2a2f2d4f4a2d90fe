"""Cycling across products: cold and warm starts of an assimilation window, and forecasts.

An operational chain assimilates one window at a time (AURORA: 12-h cycles, Gai et al. 2021).
Each window starts from the previous window's analysis advanced by the model (a *warm start*,
:func:`warm_start`); the first window, or one after a gap, starts from the climatology (a *cold
start*, :func:`cold_start`). :func:`forecast` runs an analysis ahead (+12 h, +24 h …), the
forecasts AURORA issues with its analyses; :func:`free_run` transports ozone without
assimilation (the forecasts' model, and the truth of a twin experiment). All functions are pure:
datasets in, datasets out.

References
----------
.. [1] Gai et al., Remote Sens. 13, 210, 2021. doi:10.3390/rs13020210
.. [2] Eskes et al., Q. J. R. Meteorol. Soc. 129, 1663-1681, 2003. doi:10.1256/qj.02.14
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from hubkit.assimilation.background import climatology_state, level_dim
from hubkit.assimilation.das import das_dataset, das_like, initial_field
from hubkit.assimilation.transport import check_grid, make_model
from hubkit.errors import AssimilationInputError

__all__ = ["cold_start", "forecast", "free_run", "warm_start"]

#: Variables of a previous analysis that a warm start carries on.
CARRIED = ("o3_vmr", "o3_vmr_spread", "o3_vmr_free")


def _window(met: xr.Dataset, start, end) -> xr.Dataset:
    times = np.array([np.datetime64(pd.Timestamp(t).tz_localize(None)
                                    if pd.Timestamp(t).tz else pd.Timestamp(t), "ns")
                      for t in (start, end)])
    return met.sel(time=times, method="nearest").assign_coords(time=times)


def cold_start(met: xr.Dataset, start, end) -> xr.Dataset:
    """The background of a window ``[start, end]`` without a previous analysis: the
    climatology (:func:`.background.climatology_state`) on ``met``'s grid at both times."""
    return climatology_state(met, _window(met, start, end)["time"].values)


def warm_start(previous: xr.Dataset, met: xr.Dataset, end) -> xr.Dataset:
    """The background of the window that starts at ``previous``'s last time and ends at
    ``end``: ``met`` at both times, with the previous analysis, its spread and its free run
    as the initial state (:data:`CARRIED`).

    Raises
    ------
    AssimilationInputError
        ``previous`` is not on ``met``'s grid or lacks the analysis.
    """
    for name in ("o3_vmr",):
        if name not in previous:
            raise AssimilationInputError(f"previous analysis lacks {name!r}; expected a das "
                                         "product")
    last = previous.isel(time=[-1])
    for dim in ("latitude", "longitude"):
        if last.sizes[dim] != met.sizes[dim] or not np.allclose(last[dim], met[dim]):
            raise AssimilationInputError(
                f"previous analysis is on another {dim} grid ({last.sizes[dim]} cells) than the "
                f"meteorology ({met.sizes[dim]}); a warm start needs the same grid")
    start = pd.Timestamp(last["time"].values[0])
    out = _window(met, start, end)
    lev = level_dim(met["o3_vmr"]) if "o3_vmr" in met else "level"
    for name in CARRIED:
        if name not in last:
            continue
        da = last[name].transpose("time", ..., "latitude", "longitude")
        arr = np.asarray(da.values, dtype=float)
        arr = np.concatenate([arr, arr], axis=0)  # the state at the window start (and a copy)
        out[name] = (("time", lev, "latitude", "longitude"), arr, last[name].attrs)
    return out


def free_run(background, winds, times, *, dt=3600.0, relaxation_time=0.0, climatology=None):
    """Transport ``background`` ozone, without assimilation, to each of ``times``.

    Parameters
    ----------
    background : xarray.Dataset
        DAS-like dataset (``hubkit.simulate.das_field`` layout); ozone at its first time is the
        initial state. [mol mol⁻¹]
    winds : xarray.Dataset
        ``eastward_wind``, ``northward_wind`` on the cell centres (optionally per level, and
        with a ``time`` dim: interpolated linearly in time to the middle of each step).
        [m s⁻¹]
    times : array_like of datetime64
        Output times, increasing, not before the initial time.
    dt : float
        Time step. [s]
    relaxation_time : float
        First-order chemistry time scale towards ``climatology`` (as
        ``CycleOptions.relaxation_time``); 0 for none. [s]
    climatology : xarray.Dataset, optional
        DAS-like ``o3_vmr`` relaxed to (its first time); default the initial ozone.

    Returns
    -------
    xarray.Dataset
        DAS-like dataset on ``times``: transported ``o3_vmr``, the rest from ``background``
        (nearest time).
    """
    bg = das_like(background, "background")
    lat, lon, edges = check_grid(bg, "background")
    o3 = bg["o3_vmr"].isel(time=0) if "time" in bg["o3_vmr"].dims else bg["o3_vmr"]
    lev = level_dim(o3)
    o3 = o3.transpose(lev, "latitude", "longitude")
    t0 = np.datetime64(pd.Timestamp(bg["time"].values.ravel()[0]), "ns")
    times = np.asarray(times, dtype="datetime64[ns]")
    if times.size == 0 or np.any(np.diff(times) < np.timedelta64(0)) or times[0] < t0:
        raise AssimilationInputError("times must be increasing and not before the background")
    q = np.asarray(o3.values, dtype=float)
    clim = q if climatology is None else initial_field(climatology, "o3_vmr", lev)
    model = make_model(winds, lat, lon, edges, o3.shape[0], dt, True, t_ref=t0,
                        relaxation_time=relaxation_time, climatology=clim)
    m = model.air_mass()
    out, t = [], t0
    for tk in times:
        q, m = model.run(q, m, (tk - t) / np.timedelta64(1, "s"),
                         start=(t - t0) / np.timedelta64(1, "s"))
        t = tk
        out.append(q)
    return das_dataset(bg, lev, times, {"o3_vmr": np.stack(out)}, lat, lon)


def forecast(analysis: xr.Dataset, met: xr.Dataset, winds: xr.Dataset, leads=("12h", "24h"),
             *, dt=3600.0, relaxation_time=0.0, climatology=None) -> xr.Dataset:
    """Forecasts of an analysis: its last-time ozone transported ``leads`` ahead.

    Parameters
    ----------
    analysis : xarray.Dataset
        A ``das`` product; its last time is the forecast's reference time.
    met : xarray.Dataset
        DAS-like meteorology covering the forecast times (temperature, surface pressure).
    winds : xarray.Dataset
        Winds of the transport (:func:`.transport.solid_body_winds` layout).
    leads : sequence of str
        Forecast periods, increasing. [pandas durations]
    dt : float
        Model time step. [s]
    relaxation_time : float
        First-order chemistry time scale towards ``climatology`` (0: none). [s]
    climatology : xarray.Dataset, optional
        Relaxation target (default the climatology on ``met``'s grid at the reference time).

    Returns
    -------
    xarray.Dataset
        ``das``-layout dataset (``o3_vmr`` and the meteorology) at the forecast times, with a
        ``forecast_period`` coordinate [h] and the attribute ``forecast_reference_time``.
    """
    periods = [pd.Timedelta(lead) for lead in leads]
    if not periods or any(p <= pd.Timedelta(0) for p in periods) \
            or any(b <= a for a, b in zip(periods, periods[1:], strict=False)):
        raise AssimilationInputError(f"leads={list(leads)!r}: expected increasing positive "
                                     "durations, e.g. ('12h', '24h')")
    t0 = pd.Timestamp(analysis["time"].values[-1])
    times = np.array([np.datetime64(t0 + p, "ns") for p in periods])
    every = np.concatenate([[np.datetime64(t0, "ns")], times])
    background = met.sel(time=every, method="nearest").assign_coords(time=every)
    lev = level_dim(analysis["o3_vmr"])
    initial = analysis["o3_vmr"].isel(time=-1).transpose(lev, "latitude", "longitude")
    for dim in ("latitude", "longitude"):
        if initial.sizes[dim] != background.sizes[dim]:
            raise AssimilationInputError(f"analysis and meteorology differ in {dim} "
                                         f"({initial.sizes[dim]} vs {background.sizes[dim]})")
    o3 = np.broadcast_to(np.asarray(initial.values, float), (every.size,) + initial.shape)
    background["o3_vmr"] = (("time", lev, "latitude", "longitude"), o3.copy(),
                            analysis["o3_vmr"].attrs)
    if relaxation_time and climatology is None:
        climatology = climatology_state(met, [np.datetime64(t0, "ns")])
    run = free_run(background, winds, times, dt=dt, relaxation_time=relaxation_time,
                   climatology=climatology)
    hours = np.array([p / pd.Timedelta(hours=1) for p in periods])
    run = run.assign_coords(forecast_period=("time", hours, {"units": "h"}))
    run["o3_vmr"].attrs["long_name"] = "ozone forecast"
    run.attrs.update({"hubkit_product_type": "das-forecast",
                      "forecast_reference_time": t0.isoformat(),
                      "title": "ozone forecasts on hybrid levels"})
    return run
