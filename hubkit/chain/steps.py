"""The step functions of the default chain, thin over the science modules, and
:func:`default_steps` (the only module of the chain that imports science).

Each function takes the unit's opened input products (and, for a cycled step, ``previous=``)
and returns the output; it does no I/O.

References
----------
.. [1] Gai et al., Remote Sens. 13, 210, 2021. doi:10.3390/rs13020210
"""

from __future__ import annotations

import pandas as pd

from hubkit import catalog, schemas
from hubkit.chain.spec import GROUPINGS, Query, Step
from hubkit.errors import AssimilationInputError, ChainSpecError, ComparisonInputError

__all__ = ["assimilate_window", "cell_fits_window", "default_steps", "detect_peaks",
           "forecast_das", "fuse_hour", "surface_uv", "troc", "validate_columns"]


def _concat(datasets, dim: str):
    import xarray as xr

    if len(datasets) == 1:
        return datasets[0]
    return xr.concat(datasets, dim=dim, data_vars="all", coords="different", compat="equals",
                     join="outer", combine_attrs="drop_conflicts")


def _valid_rows(ds, dim: str):
    """``ds`` without the rows its reader flagged in ``input_flag`` (position or time missing,
    value invalid: :mod:`hubkit.io.validation`), so no science step computes with them. The
    rows left out are counted in the attribute ``hubkit_flagged_rows_skipped``."""
    import numpy as np

    if "input_flag" not in ds or dim not in ds["input_flag"].dims:
        return ds
    flagged = np.asarray(ds["input_flag"].values) != 0
    if not flagged.any():
        return ds
    out = ds.isel({dim: np.flatnonzero(~flagged)})
    out.attrs["hubkit_flagged_rows_skipped"] = int(flagged.sum())
    return out


def fuse_hour(datasets, *, cell=(1.0, 1.0, 3600.0), levels=30, top=100.0):
    """Step function: fuse the ``l2-ozone`` products of one hour (:func:`fusion.fuse_product`)
    on the chain's one fusion grid, so that fused products of different hours compare.

    Parameters
    ----------
    datasets : list of xarray.Dataset
        ``l2-ozone`` products, concatenated along ``retrieval``.
    cell : sequence of float
        Box size ``(Δlatitude [°], Δlongitude [°], Δtime [s])``.
    levels, top : int, float
        The fusion grid: ``levels`` pressures spaced evenly in ln p from 101325 Pa up to
        ``top``. [1, Pa]
    """
    import numpy as np

    from hubkit import fusion

    pressure = np.geomspace(101325.0, float(top), int(levels))
    l2 = _valid_rows(_concat(datasets, "retrieval"), "retrieval")
    return fusion.fuse_product(l2, cell=tuple(cell), pressure=pressure)


def _meteorology(grid, seed, start, end):
    """The meteorology driving the DAS: :func:`hubkit.simulate.das_field` (simulated; the
    chain has no analysed meteorology yet) every 12 h over ``[start, end]``."""
    import numpy as np

    from hubkit import simulate

    nlon, nlat, n_levels = (int(n) for n in grid)
    steps = int((end - start) / pd.Timedelta(hours=12)) + 1
    return simulate.das_field(nlon=nlon, nlat=nlat, ntime=max(steps, 2), n_levels=n_levels,
                              start=start.tz_localize(None).isoformat()
                              if start.tz else start.isoformat(),
                              step_hours=12.0, dtype=np.float64, seed=int(seed))


def assimilate_window(datasets, previous=None, *, window="12h", interval="1h",
                      grid=(72, 36, 30), members=32, seed=0, wind_speed=20.0, spread=0.3,
                      spread_stratosphere=0.1, model_error=0.1, vertical_length=0.5,
                      vertical_model="soar"):
    """Step function: the ``das`` product of one assimilation cycle, cycled.

    The ``fused-ozone`` products of the window ``[E - window, E)`` (E at 00 or 12 UTC), on
    one fusion grid and moved to one prior (:func:`hubkit.fusion.concat_fused`), are
    assimilated by the LETKF (:func:`hubkit.assimilation.assimilate`) with an analysis every
    ``interval`` (each hour of fused products), starting at ``E - window`` from ``previous``
    — the previous cycle's ``das`` product (a warm start: its analysis, spread and free run,
    :func:`hubkit.assimilation.forecast.warm_start`) — or, for the first cycle or after a gap,
    from the climatology (a cold start, :func:`hubkit.assimilation.forecast.cold_start`). The
    product holds the analysis at ``E`` and the window's observation-space diagnostics
    (:func:`hubkit.assimilation.cycling.window_diagnostics`); ``hubkit_start`` says cold or
    warm. The meteorology and winds are simulated (:func:`_meteorology`, solid-body winds),
    and the product says so.

    Parameters
    ----------
    datasets : list of xarray.Dataset
        ``fused-ozone`` products of one window.
    previous : xarray.Dataset, optional
        The previous cycle's ``das`` product.
    window, interval : str
        Cycle length (the step's grouping) and analysis interval.
    grid : sequence of int
        DAS grid ``(n_longitude, n_latitude, n_levels)`` (regular, global).
    members, seed : int
        LETKF ensemble size and seed.
    wind_speed : float
        Equatorial speed of the solid-body winds. [m s⁻¹]
    spread, spread_stratosphere, model_error, vertical_length : float
        Background errors (:class:`hubkit.assimilation.CycleOptions`). [1]
    vertical_model : str
        Vertical correlation model of the background errors.

    References
    ----------
    .. [1] Gai et al., Remote Sens. 13, 210, 2021. doi:10.3390/rs13020210
    .. [2] Hunt, Kostelich, Szunyogh, Physica D 230, 112-126, 2007.
       doi:10.1016/j.physd.2006.11.008
    """
    import numpy as np

    from hubkit import fusion
    from hubkit.assimilation import CycleOptions, assimilate
    from hubkit.assimilation import forecast as FC
    from hubkit.assimilation.cycling import solid_body_winds, window_diagnostics

    fused = fusion.concat_fused(datasets)
    finite = np.ones(fused.sizes["cell"], bool)
    for name in ("o3_vmr", "averaging_kernel", "noise_covariance"):
        values = np.asarray(fused[name].values, dtype=float)
        finite &= np.isfinite(values.reshape(values.shape[0], -1)).all(axis=1)
    fused = fused.isel(cell=np.flatnonzero(finite))
    if fused.sizes["cell"] == 0:
        raise AssimilationInputError("no fused profile with finite values in this window")
    width = pd.Timedelta(window)
    end = pd.Timestamp(np.asarray(fused["time"].values).min()).floor(width) + width
    begin = end - width
    met = _meteorology(grid, seed, begin, end)
    winds = solid_body_winds(met.latitude, met.longitude, speed=float(wind_speed))
    if previous is None:
        background = FC.cold_start(met, begin, end)
    else:
        background = FC.warm_start(previous, met, end)
    options = CycleOptions(members=int(members), seed=int(seed), spread=float(spread),
                           spread_stratosphere=float(spread_stratosphere),
                           model_error=float(model_error),
                           vertical_length=float(vertical_length),
                           vertical_model=str(vertical_model))
    das = assimilate(fused, background=background, winds=winds, window=interval,
                     options=options, until=end)
    out = das.sel(time=[np.datetime64(end.tz_localize(None) if end.tz else end, "ns")])
    diag = window_diagnostics(das)
    for name in ("n_obs", "n_values", "omb_mean", "omb_rms", "oma_mean", "oma_rms",
                 "spread_obs"):
        out[name] = ("time", np.array([diag[name]]), das[name].attrs)
    out["omf_chi2"] = ("time", np.array([diag["chi2"]]), das["omf_chi2"].attrs)
    out = out.drop_vars([v for v in ("rmse_forecast", "rmse_analysis", "rmse_free")
                         if v in out])
    out.attrs.update(das.attrs)
    out.attrs.update({
        "hubkit_window_start": begin.isoformat(),
        "hubkit_window_end": end.isoformat(),
        "hubkit_profiles_in_window": int(fused.sizes["cell"]),
        "hubkit_start": "warm" if previous is not None else "cold",
        "hubkit_background": ("previous cycle's analysis" if previous is not None else
                              "climatology (hubkit.assimilation.background, Fioletov et al. "
                              "2002 columns)"),
        "hubkit_simulated": "true",
        "hubkit_simulated_inputs": f"meteorology hubkit.simulate.das_field (seed {int(seed)}), "
                                   f"solid-body winds {float(wind_speed):g} m/s",
    })
    return out


def forecast_das(datasets, *, leads=("12h", "24h"), seed=0, wind_speed=20.0):
    """Step function: forecasts (``das-forecast``) of one ``das`` analysis, ``leads`` ahead
    (:func:`hubkit.assimilation.forecast.forecast`), with the meteorology and winds of the
    assimilation step (its grid, and the same ``seed`` and ``wind_speed``)."""
    from hubkit.assimilation import forecast as FC
    from hubkit.assimilation.cycling import solid_body_winds

    (das,) = datasets
    t0 = pd.Timestamp(das["time"].values[-1])
    last = max(pd.Timedelta(lead) for lead in leads)
    grid = (das.sizes["longitude"], das.sizes["latitude"], das.sizes["interface"] - 1)
    met = _meteorology(grid, seed, t0, t0 + last)
    winds = solid_body_winds(met.latitude, met.longitude, speed=float(wind_speed))
    out = FC.forecast(das, met, winds, leads=tuple(leads))
    out.attrs["hubkit_simulated"] = "true"
    out.attrs["hubkit_simulated_inputs"] = f"meteorology hubkit.simulate.das_field (seed {seed})"
    return out


def detect_peaks(datasets, **options):
    """Step function: the ``oco2-peaks`` table of one ``oco2-soundings`` product.

    ``options`` are :class:`hubkit.co2.PeakOptions` fields (defaults when empty).
    """
    from hubkit import co2

    ds = _valid_rows(_concat(datasets, "sounding"), "sounding")
    peaks = co2.find_peaks(ds, co2.PeakOptions(**options), scheduler="sync")
    table = co2.peaks_table(peaks)
    # where and when was searched, for the Item of a table without detections
    table.attrs.update(catalog.extent_attrs(ds))
    table.attrs.setdefault("source", ds.attrs.get("source", ""))
    return table


def troc(datasets, *, fixed_altitude=6000.0):
    """Step function: the tropospheric ozone (``troc``) of one ``das`` product.

    Parameters
    ----------
    datasets : list of xarray.Dataset
        The one ``das`` product.
    fixed_altitude : float
        Altitude of the fixed-level tropopause. [m]
    """
    from hubkit import ozone

    (ds,) = datasets
    return ozone.tropospheric_ozone(ds, fixed_altitude=float(fixed_altitude))


def surface_uv(datasets, *, noon=True):
    """Step function: the UV index and UV-A maps (``surface-uv``) of one ``das`` product.

    The first dataset is the ``das`` product; the others are the optional ``surface-albedo``,
    ``aerosol`` and ``cloud`` products the step found (:attr:`Query.auxiliary`), regridded
    and used by :func:`hubkit.uv.surface.surface_uv_from_inputs`; absent ones take its
    documented defaults (clear sky), and the product records which were used. With ``noon``
    it adds the UV index at each longitude's local solar noon of the day, the daily maximum
    people are warned of (AURORA, Gai et al. 2021).
    """
    from hubkit.uv.inputs import AEROSOL_PRODUCT, ALBEDO_PRODUCT, CLOUD_PRODUCT
    from hubkit.uv.surface import surface_uv_from_inputs

    das, *aux = datasets
    by_type = {ds.attrs.get("hubkit_product_type"): ds for ds in aux}
    return surface_uv_from_inputs(das, albedo=by_type.get(ALBEDO_PRODUCT),
                                  aerosol=by_type.get(AEROSOL_PRODUCT),
                                  cloud=by_type.get(CLOUD_PRODUCT), noon=bool(noon))


def validate_columns(datasets, *, max_distance_km=500.0, max_hours=1.0):
    """Step function: the ``validation-pairs`` table of one satellite soundings product against
    every station product overlapping it (:attr:`Query.companions`), for every species both
    have (:func:`hubkit.validate.compare_with_tccon`; the station's profile seen through the
    satellite's kernel where the soundings carry one).

    Parameters
    ----------
    datasets : list of xarray.Dataset
        The soundings product (rows flagged in ``input_flag`` left out), then the station
        products.
    max_distance_km : float
        Colocation radius around each station. [km]
    max_hours : float
        Station measurements within ± this of a sounding are averaged. [h]
    """
    import numpy as np

    from hubkit import validate

    soundings, *stations = datasets
    soundings = _valid_rows(soundings, "sounding")
    criteria = validate.Criteria(max_distance_km=float(max_distance_km),
                                 max_dt=np.timedelta64(int(round(float(max_hours) * 3600)), "s"))
    parts, units = [], {}
    for station in stations:
        for species in ("co2", "ch4", "co", "n2o"):
            name = f"x{species}"
            if name not in soundings or name not in station:
                continue
            smoothing = f"{name}_averaging_kernel" in soundings
            pairs = validate.compare_with_tccon(soundings, station, species, criteria,
                                                smoothing=smoothing)
            pairs.insert(2, "species", species)
            pairs["station_product"] = station.attrs.get("hubkit_product_id", "")
            units[species] = soundings[name].attrs.get("units", "")
            parts.append(pairs)
    if not parts:
        raise ComparisonInputError("the soundings and the station products have no column "
                                   "species in common (xco2, xch4, xco, xn2o)")
    table = pd.concat(parts, ignore_index=True)
    table.index.name = "pair"
    table.attrs = {"title": "satellite soundings colocated with ground stations",
                   "species_units": units,
                   "units": {"latitude": "degrees_north", "longitude": "degrees_east",
                             "distance_km": "km"}}
    return table


def cell_fits_window(step: Step) -> None:
    """Check of :func:`fuse_hour` steps: the fusion cell's Δt [s] must divide the grouping's
    window (a 2-h cell in hourly units would fuse half-cells and call them whole)."""
    width = GROUPINGS[step.input.group_by]
    dt = float(step.parameters.get("cell", (1.0, 1.0, 3600.0))[2])
    if width is None:
        return
    seconds = width.total_seconds()
    if dt <= 0 or dt > seconds or seconds % dt:
        raise ChainSpecError(
            f"Step {step.name!r}: its fusion cell lasts {dt:g} s but its units are "
            f"{step.input.group_by} windows of {seconds:g} s; expected a cell duration that "
            "divides the window (e.g. 3600 s for 'hour')")


def default_steps() -> list[Step]:
    """The chain of AURORA's Data Processing Chain (Gai et al. 2021, sections 4-5).

    The assimilation cycle closes one hour after its end (late hours of fused ozone still come
    in), or at once when all 12 hourly ``fused-ozone`` products of the cycle are there.
    """
    das = {"window": "12h", "interval": "1h", "grid": [72, 36, 30], "members": 32, "seed": 0,
           "wind_speed": 20.0, "spread": 0.3, "spread_stratosphere": 0.1, "model_error": 0.1,
           "vertical_length": 0.5, "vertical_model": "soar"}
    S = schemas
    return [
        Step("fusion.cdf", "2", Query(S.L2_OZONE.product_type, "hour"),
             S.FUSED_OZONE.product_type, fuse_hour,
             parameters={"cell": [1.0, 1.0, 3600.0], "levels": 30, "top": 100.0},
             check=cell_fits_window),
        Step("assimilation.letkf", "2",
             Query(S.FUSED_OZONE.product_type, "12h-cycle", settle=3600.0, expected=12,
                   previous=True),
             S.DAS.product_type, assimilate_window, parameters=das),
        Step("assimilation.forecast", "1", Query(S.DAS.product_type, "item"),
             S.DAS_FORECAST.product_type, forecast_das,
             parameters={"leads": ["12h", "24h"], "seed": das["seed"],
                         "wind_speed": das["wind_speed"]}),
        Step("co2.peaks", "1", Query(S.OCO2_SOUNDINGS.product_type, "item"),
             S.OCO2_PEAKS.product_type, detect_peaks),
        Step("ozone.troc", "1", Query(S.DAS.product_type, "item"), S.TROC.product_type, troc,
             parameters={"fixed_altitude": 6000.0}),
        Step("uv.surface", "2",
             Query(S.DAS.product_type, "item",
                   auxiliary=(S.SURFACE_ALBEDO.product_type, S.AEROSOL.product_type,
                              S.CLOUD.product_type)),
             S.SURFACE_UV.product_type, surface_uv, parameters={"noon": True}),
        Step("validate.tccon", "1",
             Query(S.XGAS_SOUNDINGS.product_type, "item",
                   companions=(S.TCCON_COLUMNS.product_type,), companion_slack=3600.0),
             S.VALIDATION_PAIRS.product_type, validate_columns,
             parameters={"max_distance_km": 500.0, "max_hours": 1.0}),
    ]
