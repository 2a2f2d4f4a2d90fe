"""OCO-2 Lite files (``oco2_LtCO2_YYMMDD_B*.nc4``): bias-corrected XCO2 soundings.

The Lite files from GES DISC are netCDF-4: the main variables sit in the root group on the
dimension ``sounding_id``, the ancillary ones in the groups ``Sounding/``, ``Meteorology/`` and
``Retrieval/``. :data:`VARIABLE_MAP` lists every raw variable the reader takes (group paths) and
its canonical name; the output has the dimension ``sounding`` and the units of
:data:`hubkit.schemas.OCO2_SOUNDINGS` (XCO2 in ppm, pressures in Pa). All soundings are kept,
whatever their ``xco2_quality_flag``: filtering is a science decision, not a reading one.
"""

from __future__ import annotations

from fnmatch import fnmatch
from pathlib import Path

import numpy as np
import xarray as xr

from hubkit import schemas
from hubkit.errors import SchemaError
from hubkit.io._common import (
    HDF5_MAGIC,
    cf_attrs,
    decode_sounding_id,
    decode_time,
    encode_sounding_id,
    encode_time,
    oco2_soundings_attrs,
    open_netcdf,
    peek_netcdf,
    to_float,
    to_int_or_float,
)
from hubkit.units import convert_units

__all__ = ["FORMAT", "PRODUCT_TYPE", "READER_VERSION", "VARIABLE_MAP", "read", "sniff",
           "write_oco2_lite"]

FORMAT = "oco2-lite"
PRODUCT_TYPE = "oco2-soundings"
READER_VERSION = "1"

#: Raw Lite variable (path from the root group) -> canonical name.
VARIABLE_MAP = {
    "sounding_id": "sounding_id",
    "time": "time",
    "latitude": "latitude",
    "longitude": "longitude",
    "xco2": "xco2",
    "xco2_uncertainty": "xco2_uncertainty",
    "xco2_quality_flag": "xco2_quality_flag",
    "Sounding/orbit": "orbit",
    "Sounding/footprint": "footprint",
    "Sounding/altitude": "altitude",
    "Sounding/land_water_indicator": "land_water_indicator",
    "Sounding/land_fraction": "land_fraction",
    "Meteorology/windspeed_u_met": "windspeed_u",
    "Meteorology/windspeed_v_met": "windspeed_v",
    "Meteorology/psurf_apriori_o2a": "surface_pressure_apriori",
    "Retrieval/psurf": "surface_pressure",
    "Retrieval/tcwv": "tcwv",
}

#: Units (and netCDF types) of the Lite variables: assumed where a file gives no ``units``, and
#: written by :func:`write_oco2_lite`. ``None``: ids, flags and counts without units.
SOURCE_UNITS = {
    "sounding_id": (None, "i8"),
    "time": ("seconds since 1970-01-01 00:00:00", "f8"),
    "latitude": ("degrees_north", "f4"),
    "longitude": ("degrees_east", "f4"),
    "xco2": ("ppm", "f4"),
    "xco2_uncertainty": ("ppm", "f4"),
    "xco2_quality_flag": (None, "i1"),
    "Sounding/orbit": (None, "i4"),
    "Sounding/footprint": (None, "i1"),
    "Sounding/altitude": ("m", "f4"),
    "Sounding/land_water_indicator": (None, "i1"),
    "Sounding/land_fraction": ("%", "f4"),
    "Meteorology/windspeed_u_met": ("m s-1", "f4"),
    "Meteorology/windspeed_v_met": ("m s-1", "f4"),
    "Meteorology/psurf_apriori_o2a": ("hPa", "f4"),
    "Retrieval/psurf": ("hPa", "f4"),
    "Retrieval/tcwv": ("kg m-2", "f4"),
}

REQUIRED = ("xco2", "latitude", "longitude")
RAW_DIM = "sounding_id"
DIM = "sounding"
NAME_PATTERN = "oco2_LtCO2_*.nc4"
_COORDS = ("time", "latitude", "longitude")
_FILL = {"f4": -999999.0, "f8": -999999.0, "i1": -99, "i4": -999999, "i8": 0}


#: Root variables of a Lite file that no other format has: with ``sounding_id`` they make a file
#: a Lite file even when ``xco2`` is missing, so that it is refused naming ``xco2`` instead of
#: being stored as a generic ``cf-dataset``.
_LITE_MARKERS = frozenset({"xco2", "xco2_quality_flag", "xco2_uncertainty"})


def sniff(path, head: bytes) -> bool:
    """A Lite file: named ``oco2_LtCO2_*.nc4``, or HDF5 with the root variable sounding_id and
    one of xco2, xco2_quality_flag, xco2_uncertainty."""
    path = Path(path)
    if path.is_file() and fnmatch(path.name, NAME_PATTERN):
        return True
    if not head.startswith(HDF5_MAGIC):
        return False
    info = peek_netcdf(path, head)
    return info is not None and "sounding_id" in info[0] and bool(_LITE_MARKERS & info[0])


def _variable(nc, raw: str):
    group = nc
    *groups, name = raw.split("/")
    for g in groups:
        group = group.groups.get(g)
        if group is None:
            return None
    return group.variables.get(name)


def read(path) -> xr.Dataset:
    """Read an OCO-2 Lite file into a canonical ``oco2-soundings`` dataset (dim ``sounding``)."""
    path = Path(path)
    raw, units = {}, {}
    with open_netcdf(path) as nc:
        simulated = str(getattr(nc, "hubkit_simulated", "")).lower() == "true"
        for name in REQUIRED:
            if _variable(nc, name) is None:
                raise SchemaError(
                    f"{path}: required variable {name!r} is missing; expected the OCO-2 Lite "
                    f"root variables {list(REQUIRED)} and 'time' or 'sounding_id'"
                )
        for src in VARIABLE_MAP:
            var = _variable(nc, src)
            if var is None:
                continue
            if var.dimensions != (RAW_DIM,):
                raise SchemaError(
                    f"{path}: variable {src!r} has dims {var.dimensions}, expected ('{RAW_DIM}',)"
                )
            raw[src] = var[:]
            units[src] = (getattr(var, "units", None), getattr(var, "calendar", None))
    if "time" not in raw and "sounding_id" not in raw:
        raise SchemaError(
            f"{path}: required variable 'time' is missing and there is no 'sounding_id' to take "
            "the time from; expected 'time' in seconds since 1970-01-01"
        )

    coords, data_vars, notes = {}, {}, []
    for src, values in raw.items():
        name = VARIABLE_MAP[src]
        default_units = SOURCE_UNITS[src][0]
        found_units, calendar = units[src]
        if name == "time":
            arr = decode_time(to_float(values), found_units or default_units, path=path,
                              name=src, calendar=calendar)
            out_units = None
        elif default_units is None:
            arr = to_int_or_float(values)
            if name == "sounding_id":
                arr = np.where(np.isfinite(arr), arr, 0).astype(np.int64)
            out_units = None
        else:
            out_units = schemas.OCO2_SOUNDINGS.var(name).units
            arr = convert_units(to_float(values), found_units or default_units, out_units,
                                path=path, name=src)
        target = coords if name in _COORDS else data_vars
        target[name] = xr.Variable((DIM,), arr, cf_attrs(name, out_units))
    if "time" not in coords:
        time, _ = decode_sounding_id(data_vars["sounding_id"].values)
        coords["time"] = xr.Variable((DIM,), time, cf_attrs("time"))
        notes.append("time decoded from sounding_id (the file has no 'time' variable)")
    if "footprint" not in data_vars and "sounding_id" in data_vars:
        _, footprint = decode_sounding_id(data_vars["sounding_id"].values)
        data_vars["footprint"] = xr.Variable((DIM,), footprint, cf_attrs("footprint"))

    ds = xr.Dataset(data_vars, coords={k: coords[k] for k in _COORDS})
    ds.attrs.update(oco2_soundings_attrs(
        path, title="OCO-2 XCO2 soundings (Lite file)", fmt=FORMAT,
        references="OCO-2 Science Team, OCO-2 Level 2 bias-corrected XCO2 (Lite), GES DISC",
    ))
    if notes:
        ds.attrs["comment"] = "; ".join(notes)
    if simulated:  # written by hubkit.simulate: stays labelled as such in the catalog
        ds.attrs["hubkit_simulated"] = "true"
        ds.attrs["title"] = "simulated OCO-2 XCO2 soundings (Lite layout)"
    schemas.validate(ds, source=str(path), product_type=PRODUCT_TYPE)
    return ds


def write_oco2_lite(ds: xr.Dataset, path) -> Path:
    """Write a canonical ``oco2-soundings`` dataset in the OCO-2 Lite layout (netCDF-4).

    Variables go back to their Lite groups, names and units (pressures in hPa); canonical
    variables without a Lite counterpart (``distance`` …) are left out. Missing sounding ids
    are made from the time and the footprint (cycling 1-8 where unknown), as
    ``YYYYMMDDhhmmssmf``. Used by the demo to write simulated files.
    """

    path = Path(path)
    schemas.validate(ds, source=str(path), product_type=PRODUCT_TYPE)
    n = ds.sizes[DIM]
    values = {name: np.asarray(ds[name].values) for name in ds.variables if name in
              VARIABLE_MAP.values()}
    footprint = values.get("footprint", np.zeros(n, dtype=np.int64))
    footprint = np.where(np.isfinite(footprint) & (footprint > 0), footprint,
                         np.arange(n) % 8 + 1).astype(np.int64)
    made = encode_sounding_id(values["time"], footprint)
    ids = values.get("sounding_id", made)
    values["sounding_id"] = np.where(np.isfinite(ids) & (ids > 0), ids, made).astype(np.int64)
    values["footprint"] = footprint

    with open_netcdf(path, "w") as nc:
        nc.createDimension(RAW_DIM, n)
        nc.setncatts({"Conventions": "CF-1.6", "title": "OCO-2 Lite (written by hubkit)",
                      "source": str(ds.attrs.get("source", "hubkit"))})
        if str(ds.attrs.get("hubkit_simulated", "")).lower() == "true":
            nc.setncattr("hubkit_simulated", "true")
        for src, name in VARIABLE_MAP.items():
            if name not in values:
                continue
            native_units, dtype = SOURCE_UNITS[src]
            arr = values[name]
            if name == "time":
                arr = encode_time(arr)
            elif native_units is not None:
                arr = convert_units(arr, ds[name].attrs.get("units"), native_units, path=path,
                                    name=name)
            group_name, _, var_name = src.rpartition("/")
            group = nc
            if group_name:
                group = nc.groups.get(group_name) or nc.createGroup(group_name)
            var = group.createVariable(var_name, dtype, (RAW_DIM,), fill_value=_FILL[dtype])
            if native_units is not None:
                var.units = native_units
            long_name = cf_attrs(name).get("long_name")
            if long_name:
                var.long_name = long_name
            if dtype.startswith("i"):
                arr = np.where(np.isfinite(arr), arr, _FILL[dtype]).astype(dtype)
            var[:] = arr
    return path
