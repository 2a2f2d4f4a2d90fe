"""The surface-UV step of the chain: UV index and UV-A maps from a DAS ozone product.

Gai et al. (2021, section 4.3.4) compute the surface UV of every analysis and forecast from the
assimilated total ozone column, with surface elevation, albedo, aerosol and cloud from other
sources, through a lookup table (Lipponen et al. 2020). Here the total column comes from the
DAS ozone on hybrid levels, the elevation from the DAS orography, and the other inputs from
datasets the user passes, or documented defaults that are recorded in the product.
"""

from __future__ import annotations

import json

import numpy as np
import xarray as xr

from hubkit.errors import UVInputError
from hubkit.ozone import partial_columns

DEFAULTS = {
    "albedo": 0.05,  # snow-free land and ocean in the UV: 0.02-0.08 (Feister & Grewe 1995)
    "aod": 0.1,  # global mean aerosol optical depth at 550 nm (Kinne et al. 2013): ~0.12
    "ssa": 0.9,  # a moderately absorbing continental aerosol in the UV
    "cot": 0.0,  # clear sky: the UV index forecasts of the WHO are clear-sky maxima
}
"""Inputs used when the caller gives none, recorded in the product's ``hubkit_uv_inputs``."""


def total_ozone_column(das: xr.Dataset, variable: str = "o3_vmr") -> xr.DataArray:
    """Total ozone column [DU] of a DAS product: the sum of the layer partial columns
    7891 DU/Pa × VMR × |Δp| over the hybrid layers (either level order).

    Parameters
    ----------
    das : xarray.Dataset
        With ``variable`` (time, level, latitude, longitude) [mol mol-1], ``surface_pressure``
        [Pa], ``hybrid_a`` [Pa] and ``hybrid_b`` [1] on ``interface``.
    """
    for name in (variable, "surface_pressure", "hybrid_a", "hybrid_b"):
        if name not in das:
            raise UVInputError(f"DAS product: variable {name!r} missing; the total ozone column "
                               "needs ozone, surface pressure and the hybrid coefficients")
    ph = das["hybrid_a"] + das["hybrid_b"] * das["surface_pressure"]
    column = xr.apply_ufunc(
        lambda x, p: partial_columns(x, p).sum(axis=-1), das[variable], ph,
        input_core_dims=[["level"], ["interface"]], dask="parallelized",
        output_dtypes=[np.float64])
    return column.assign_attrs(units="DU", long_name=f"total ozone column of {variable}")


def _input_field(name: str, value, das: xr.Dataset, recorded: dict) -> xr.DataArray | float:
    """One optional input: a number, or a DataArray on the DAS grid (checked), or the default."""
    if value is None:
        recorded[name] = f"default {DEFAULTS[name]}"
        return DEFAULTS[name]
    if isinstance(value, int | float | np.floating | np.integer):
        recorded[name] = f"constant {float(value)}"
        return float(value)
    if not isinstance(value, xr.DataArray):
        raise UVInputError(f"surface_uv: {name} must be a number or an xarray.DataArray on the "
                           f"DAS grid; got {type(value).__name__}")
    for dim in ("latitude", "longitude"):
        if dim not in value.dims:
            raise UVInputError(f"surface_uv: {name} ({value.name}) has dims {value.dims}; "
                               f"expected latitude and longitude (and optionally time)")
        if value.sizes[dim] != das.sizes[dim] or not np.allclose(value[dim], das[dim]):
            raise UVInputError(f"surface_uv: {name} ({value.name}) is on another {dim} grid than "
                               f"the DAS product; regrid it first (e.g. DataArray.interp_like)")
    recorded[name] = f"field {value.name or name!r} ({value.attrs.get('source', 'user')})"
    return value.drop_vars([c for c in value.coords if c not in value.dims])


def surface_uv(das: xr.Dataset, *, albedo=None, aod=None, ssa=None, cot=None,
               local_noon: bool = False, table=None) -> xr.Dataset:
    """UV index and UV-A irradiance maps of a DAS product's analysis (and forecast) times.

    Parameters
    ----------
    das : xarray.Dataset
        A ``das`` product (:func:`hubkit.assimilation.assimilate` or
        :func:`hubkit.simulate.das_field`): ozone on hybrid levels, surface pressure, hybrid
        coefficients, ``surface_altitude`` [m]; ``o3_vmr_forecast`` is used when present.
    albedo, aod, ssa, cot : float or xarray.DataArray, optional
        Surface albedo, aerosol optical depth at 550 nm, aerosol single-scattering albedo,
        cloud optical thickness: numbers or fields on the DAS grid (latitude, longitude and
        optionally time). When absent, :data:`DEFAULTS` (clear sky); what was used is recorded
        in the attribute ``hubkit_uv_inputs``.
    local_noon : bool
        Evaluate at each longitude's local solar noon of each time's date (the daily maximum
        people are warned of) instead of at the product's times.
    table : xarray.Dataset, optional
        Lookup table (default: the shipped one, :func:`hubkit.uv.table.default_table`).

    Returns
    -------
    xarray.Dataset
        ``uvi`` [1], ``uva`` [W m-2], ``uv_flag`` and, with a forecast in the input,
        ``uvi_forecast`` and ``uva_forecast``; ``total_ozone`` [DU], ``sza`` [degree] and
        ``earth_sun_distance`` [AU] per time. Values are scaled by (1 AU / r)^2.
    """
    from hubkit.uv import index, solar
    from hubkit.uv.table import default_table

    table = default_table() if table is None else table
    if "surface_altitude" not in das:
        raise UVInputError("DAS product: variable 'surface_altitude' [m] missing (the surface "
                           "elevation of the UV lookup)")
    recorded: dict[str, str] = {}
    extra = {name: _input_field(name, value, das, recorded)
             for name, value in (("albedo", albedo), ("aod", aod), ("ssa", ssa), ("cot", cot))}
    elevation = das["surface_altitude"].astype(np.float64)
    below = int((elevation < 0).sum())
    elevation = elevation.clip(min=0.0).assign_attrs(units="m")
    recorded["elevation"] = "DAS surface_altitude" + (
        f" ({below} cells below sea level set to 0 m)" if below else "")

    times = das["time"]
    if local_noon:
        days = times.values.astype("datetime64[D]")
        when = xr.DataArray(
            np.stack([solar.local_solar_noon(d, das["longitude"].values) for d in days]),
            dims=("time", "longitude"), coords={"time": times, "longitude": das["longitude"]})
    else:
        when = times
    sza = solar.solar_zenith_angle(when, das["latitude"], das["longitude"])
    sza = sza.transpose("time", "latitude", "longitude").assign_attrs(units="degree")
    distance = xr.DataArray(solar.earth_sun_distance(times.values), dims="time",
                            coords={"time": times}, attrs={"units": "AU"})

    out = xr.Dataset(coords={c: das[c] for c in ("time", "latitude", "longitude")})
    kinds = [("", "o3_vmr")] + ([("_forecast", "o3_vmr_forecast")]
                                 if "o3_vmr_forecast" in das else [])
    for suffix, variable in kinds:
        column = total_ozone_column(das, variable)
        result = index.surface_uv_arrays(column, elevation, extra["albedo"], extra["aod"],
                                         extra["ssa"], sza, extra["cot"], table=table)
        scale = distance**-2
        out[f"total_ozone{suffix}"] = column.transpose("time", "latitude", "longitude")
        out[f"uvi{suffix}"] = (result["uvi"] * scale).assign_attrs(result["uvi"].attrs)
        out[f"uva{suffix}"] = (result["uva"] * scale).assign_attrs(result["uva"].attrs)
        if not suffix:
            out["uv_flag"] = result["uv_flag"]
    out["sza"] = sza
    out["earth_sun_distance"] = distance
    for name in [v for v in out.data_vars if v.startswith(("uvi", "uva", "total_ozone"))]:
        out[name] = out[name].transpose("time", "latitude", "longitude")
    out.attrs.update({
        "title": "Surface UV index and UV-A irradiance",
        "Conventions": "CF-1.10",
        "hubkit_product_type": "surface-uv",
        "hubkit_uv_inputs": json.dumps(recorded),
        "hubkit_uv_time": "local solar noon" if local_noon else "product times",
        "hubkit_uv_table": f"{table.attrs.get('source', '?')}; created "
                           f"{table.attrs.get('created', '?')}; version "
                           f"{table.attrs.get('hubkit_table_version', '?')}",
        "references": "Gai et al. 2021 Remote Sens. 13 210; Lipponen et al. 2020 Atmosphere 11 324",
    })
    return out
