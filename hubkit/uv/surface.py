"""The surface-UV step of the chain: UV index and UV-A maps from a DAS ozone product.

Gai et al. (2021, section 4.3.4) compute the surface UV of every analysis and forecast from the
assimilated total ozone column, with surface elevation, albedo, aerosol and cloud from other
sources, through a lookup table (Lipponen et al. 2020). Here the total column comes from the
DAS ozone on hybrid levels, the elevation from the DAS orography, and the other inputs from
datasets the user passes, or documented defaults that are recorded in the product.

:func:`surface_uv` takes numbers or fields already on the DAS grid; :func:`surface_uv_from_inputs`
takes ``surface-albedo``, ``aerosol`` and ``cloud`` products on any grid
(:mod:`hubkit.uv.inputs`) and adds the local-solar-noon maps of :func:`noon_uv`.
"""

from __future__ import annotations

import json

import numpy as np
import xarray as xr

from hubkit import schemas
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
    variable : str
        The ozone volume mixing ratio to integrate (e.g. ``o3_vmr_forecast``). [mol mol-1]
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
        "hubkit_product_type": schemas.SURFACE_UV.product_type,
        "hubkit_uv_inputs": json.dumps(recorded),
        "hubkit_uv_time": "local solar noon" if local_noon else "product times",
        "hubkit_uv_table": f"{table.attrs.get('source', '?')}; created "
                           f"{table.attrs.get('created', '?')}; version "
                           f"{table.attrs.get('hubkit_table_version', '?')}",
        "references": "Gai et al. 2021 Remote Sens. 13 210; Lipponen et al. 2020 Atmosphere 11 324",
    })
    return out


def _interpolate_in_time(column: np.ndarray, times: np.ndarray, wanted: np.ndarray):
    """Fields (time, latitude, longitude) linearly interpolated in time to ``wanted`` (n,
    longitude) times, held constant beyond the first and last times; also the distance from
    each wanted time to the nearest time [h], (n, longitude)."""
    order = np.argsort(times)
    column, times = column[order], np.asarray(times, dtype="datetime64[ns]")[order]
    hours = (times - times[0]) / np.timedelta64(1, "h")
    target = (np.asarray(wanted, dtype="datetime64[ns]") - times[0]) / np.timedelta64(1, "h")
    lon = np.arange(column.shape[-1])[None, :]
    if hours.size == 1:
        out = column[np.zeros(target.shape, dtype=int), :, lon]
    else:
        i = np.clip(np.searchsorted(hours, target, side="right") - 1, 0, hours.size - 2)
        w = np.clip((target - hours[i]) / (hours[i + 1] - hours[i]), 0.0, 1.0)[..., None]
        out = (1.0 - w) * column[i, :, lon] + w * column[i + 1, :, lon]  # (n, lon, lat)
    offset = np.abs(target[..., None] - hours).min(axis=-1)
    return np.transpose(out, (0, 2, 1)), offset


def noon_uv(das: xr.Dataset, gridded: dict, *, variable: str = "o3_vmr",
            table=None) -> xr.Dataset:
    """UV index and UV-A at each longitude's local solar noon of each day of a DAS product.

    For each UTC date ``d`` of the product's times and each longitude ``λ``, the time of local
    solar noon ``t_noon(d, λ)`` (hour angle 0, :func:`hubkit.uv.solar.local_solar_noon`), the
    total ozone column interpolated linearly in time between the product's times to
    ``t_noon`` (the nearest one outside their span), the albedo, aerosol and cloud of the input
    time nearest to ``t_noon``, and the solar zenith angle then (the day's smallest):

    .. math:: \\mathrm{UVI}_{noon}(d, \\phi, \\lambda) = \\mathrm{UVI}\\left(\\Omega(t_{noon}),
              z_s, A, \\tau_a, \\omega_a, \\theta(t_{noon}), \\tau_c\\right)
              \\left(\\frac{1\\,\\mathrm{AU}}{r(d)}\\right)^2

    With clear sky (``cot`` = 0) it is the day's maximum UV index, the number UV index forecasts
    publish (WHO 2002 [3]_) and AURORA's daily UV maps show (Gai et al. 2021 [1]_).

    Parameters
    ----------
    das : xarray.Dataset
        A ``das`` product (see :func:`surface_uv`).
    gridded : dict of {str: GriddedInput}
        ``albedo``, ``aod``, ``ssa`` and ``cot`` on the DAS grid
        (:func:`hubkit.uv.inputs.grid_input`).
    variable : str
        The ozone variable (``o3_vmr``: the analysis).
    table : xarray.Dataset, optional
        Lookup table (default: the shipped one).

    Returns
    -------
    xarray.Dataset
        On (day, latitude, longitude): ``uvi_noon`` [1], ``uva_noon`` [W m-2],
        ``total_ozone_noon`` [DU], ``sza_noon`` [degree], ``uv_flag_noon``; on (day,
        longitude): ``noon_time`` (UTC) and ``noon_das_offset`` [h], the distance from the
        local noon to the nearest time of the DAS product (how far the ozone was carried).
        Attribute ``hubkit_noon_input_offsets``: per input, the largest distance from a local
        noon to the input time used [h] (JSON).

    References
    ----------
    .. [1] Gai et al., Remote Sens. 13, 210, 2021, section 4.3.4. doi:10.3390/rs13020210
    .. [2] Lipponen et al., Atmosphere 11, 324, 2020. doi:10.3390/atmos11040324
    .. [3] WHO, WMO, UNEP, ICNIRP, "Global Solar UV Index: a practical guide", WHO, 2002.
    """
    from hubkit.uv import index, solar

    times = np.asarray(das["time"].values, dtype="datetime64[ns]")
    days = np.unique(times.astype("datetime64[D]"))
    lon = das["longitude"].values
    noon = np.stack([solar.local_solar_noon(d, lon) for d in days]).astype("datetime64[ns]")
    column = total_ozone_column(das, variable).transpose("time", "latitude", "longitude")
    ozone, offset = _interpolate_in_time(np.asarray(column.values, dtype=np.float64), times,
                                         noon)
    coords = {"day": ("day", days.astype("datetime64[ns]"),
                      {"long_name": "UTC date of the local solar noon"}),
              "latitude": das["latitude"], "longitude": das["longitude"]}
    dims = ("day", "latitude", "longitude")
    when = xr.DataArray(noon, dims=("day", "longitude"),
                        coords={"day": coords["day"], "longitude": das["longitude"]})
    sza = solar.solar_zenith_angle(when, das["latitude"], das["longitude"]).transpose(*dims)
    ozone_da = xr.DataArray(ozone, dims=dims, coords=coords, attrs={"units": "DU"})
    extra, offsets = {}, {}
    for name in ("albedo", "aod", "ssa", "cot"):
        values, offsets[name] = gridded[name].at(noon)
        extra[name] = (values if np.ndim(values) == 0
                       else xr.DataArray(values, dims=dims, coords=coords, attrs={"units": "1"}))
    elevation = das["surface_altitude"].astype(np.float64).clip(min=0.0).assign_attrs(units="m")
    result = index.surface_uv_arrays(ozone_da, elevation, extra["albedo"], extra["aod"],
                                     extra["ssa"], sza.assign_attrs(units="degree"),
                                     extra["cot"], table=table)
    midday = days.astype("datetime64[ns]") + np.timedelta64(12, "h")
    scale = xr.DataArray(solar.earth_sun_distance(midday) ** -2.0, dims="day",
                         coords={"day": coords["day"]})
    out = xr.Dataset(coords=coords)
    out["uvi_noon"] = (result["uvi"] * scale).transpose(*dims).assign_attrs(
        result["uvi"].attrs, long_name="UV index at local solar noon (the clear-sky daily "
                                       "maximum when cot = 0)")
    out["uva_noon"] = (result["uva"] * scale).transpose(*dims).assign_attrs(
        result["uva"].attrs, long_name="UV-A (315-400 nm) irradiance at local solar noon")
    out["uv_flag_noon"] = result["uv_flag"].transpose(*dims)
    out["total_ozone_noon"] = ozone_da.assign_attrs(
        long_name=f"total ozone column of {variable} interpolated in time to local solar noon")
    out["sza_noon"] = sza.assign_attrs(units="degree", long_name="solar zenith angle at local "
                                                                 "solar noon")
    out["noon_time"] = when.assign_attrs(long_name="UTC time of local solar noon")
    out["noon_das_offset"] = xr.DataArray(
        offset, dims=("day", "longitude"), coords=when.coords,
        attrs={"units": "h", "long_name": "distance from local solar noon to the nearest time "
                                          "of the DAS product"})
    out.attrs["hubkit_noon_input_offsets"] = json.dumps(offsets)
    return out


def surface_uv_from_inputs(das: xr.Dataset, *, albedo: xr.Dataset | None = None,
                           aerosol: xr.Dataset | None = None, cloud: xr.Dataset | None = None,
                           noon: bool = True, table=None) -> xr.Dataset:
    """Surface UV of a DAS product with surface albedo, aerosol and cloud from other products.

    The UV step of AURORA (Gai et al. 2021, section 4.3.4 [1]_; lookup table after Lipponen
    et al. 2020 [2]_): ozone from the assimilation, the other inputs from their own products.
    Each product given is interpolated bilinearly onto the DAS grid
    (:func:`hubkit.uv.inputs.regrid`, whatever its grid) and taken at its time nearest to each
    time evaluated; absent products, cells a product does not cover and an aerosol product
    without ``ssa`` take :data:`DEFAULTS` (clear sky, albedo 0.05, AOD 0.1, SSA 0.9). What was
    used is recorded, per input, in the attribute ``hubkit_uv_inputs`` (JSON) and the product
    ids in ``hubkit_uv_input_products`` (JSON list).

    Parameters
    ----------
    das : xarray.Dataset
        A ``das`` product (see :func:`surface_uv`).
    albedo : xarray.Dataset, optional
        A ``surface-albedo`` product: ``surface_albedo`` [1] on ([time,] latitude, longitude).
    aerosol : xarray.Dataset, optional
        An ``aerosol`` product: ``aod`` at 550 nm [1] and optionally ``ssa`` [1].
    cloud : xarray.Dataset, optional
        A ``cloud`` product: ``cloud_optical_thickness`` [1].
    noon : bool
        Add the local-solar-noon maps of each day (:func:`noon_uv`: ``uvi_noon`` ...).
    table : xarray.Dataset, optional
        Lookup table (default: the shipped one).

    Returns
    -------
    xarray.Dataset
        A ``surface-uv`` product: :func:`surface_uv`'s variables at the product's times, and
        with ``noon`` those of :func:`noon_uv` on (day, latitude, longitude).

    Raises
    ------
    UVInputError
        An input that is not a Dataset of its product type, lacks its variable or holds values
        out of their physical range (albedo and SSA in [0, 1], optical depths >= 0).

    References
    ----------
    .. [1] Gai et al., Remote Sens. 13, 210, 2021. doi:10.3390/rs13020210
    .. [2] Lipponen et al., Atmosphere 11, 324, 2020. doi:10.3390/atmos11040324
    """
    from hubkit.uv.inputs import TABLE_INPUTS, grid_input

    given = {"albedo": albedo, "aerosol": aerosol, "cloud": cloud}
    lat, lon = das["latitude"].values, das["longitude"].values
    gridded = {name: grid_input(name, given[TABLE_INPUTS[name][0]], lat, lon, DEFAULTS[name])
               for name in ("albedo", "aod", "ssa", "cot")}
    times = np.asarray(das["time"].values, dtype="datetime64[ns]")
    fields, record = {}, {}
    for name, g in gridded.items():
        values, offset = g.at(times)
        record[name] = g.record + (f" (up to {offset:.1f} h from the DAS times)"
                                   if offset >= 0.05 else "")
        fields[name] = values if np.ndim(values) == 0 else xr.DataArray(
            values, dims=("time", "latitude", "longitude"),
            coords={"time": das["time"], "latitude": das["latitude"],
                    "longitude": das["longitude"]}, attrs={"units": "1"}, name=name)
    out = surface_uv(das, albedo=fields["albedo"], aod=fields["aod"], ssa=fields["ssa"],
                     cot=fields["cot"], table=table)
    if noon:
        noon_maps = noon_uv(das, gridded, table=table)
        for name, hours in json.loads(noon_maps.attrs.pop("hubkit_noon_input_offsets")).items():
            if hours >= 0.05:
                record[name] += f" (up to {hours:.1f} h from the local noons)"
        out = out.merge(noon_maps)
    recorded = json.loads(out.attrs["hubkit_uv_inputs"])
    recorded.update(record)
    out.attrs["hubkit_uv_inputs"] = json.dumps(recorded)
    out.attrs["hubkit_uv_input_products"] = json.dumps(
        sorted({g.product for g in gridded.values() if g.product}))
    if noon:
        out.attrs["hubkit_uv_noon"] = ("uvi_noon etc.: at each longitude's local solar noon of "
                                       "each UTC date of the product; ozone interpolated in "
                                       "time to it, other inputs at their nearest time")
    return out
