"""AGAGE station files (netCDF, as published by the AGAGE archive code).

Layout (AGAGE data archive, https://agage.mit.edu/data and its processing code
https://github.com/mrghg/agage-archive; Prinn et al. 2000 doi:10.1029/1999JD901183 and 2018
doi:10.5194/essd-10-985-2018): one species at one station on dimension ``time`` (CF time, the
start of the sampling period): ``mf`` (mole fraction, units a scale factor such as ``1e-12``,
its ``calibration_scale``), ``mf_repeatability``, ``inlet_height`` (m above
``inlet_base_elevation_masl``) and ``sampling_period`` [s] per sample. The station is in the
global attributes: ``site_code``, ``station_long_name``, ``inlet_latitude`` /
``inlet_longitude`` (text), ``species`` (``cfc-11``), ``network``, ``instrument``,
``calibration_scale``, ``data_owner``, ``doi``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from hubkit.errors import SchemaError
from hubkit.io import station
from hubkit.io._common import decode_time, open_netcdf, peek_netcdf, to_float

__all__ = ["FORMAT", "PRODUCT_TYPE", "READER_VERSION", "VARIABLE_MAP", "read", "sniff"]

FORMAT = "agage"
PRODUCT_TYPE = station.PRODUCT_TYPE
READER_VERSION = "1"
REQUIRED = ("time", "mf")
#: Raw AGAGE variable -> canonical name (other per-sample variables keep their names).
VARIABLE_MAP = {"time": "time", "mf": "value", "mf_repeatability": "value_repeatability",
                "inlet_height": "inlet_height", "sampling_period": "sampling_period"}


def sniff(path, head: bytes) -> bool:
    """netCDF with ``time`` and global ``species``, ``site_code`` and network AGAGE (or the
    AGAGE archive code)."""
    info = peek_netcdf(path, head)
    if info is None:
        return False
    names, attrs, _ = info
    agage = str(attrs.get("network", "")).lower() == "agage" or \
        "agage" in str(attrs.get("processing_code_url", "")).lower()
    return agage and "time" in names and "species" in attrs and "site_code" in attrs


def read(path) -> xr.Dataset:
    """Read an AGAGE netCDF file into a canonical ``surface-obs`` dataset."""
    path = Path(path)
    with open_netcdf(path) as nc:
        attrs = {k: nc.getncattr(k) for k in nc.ncattrs()}
        for name in REQUIRED:
            if name not in nc.variables:
                raise SchemaError(f"{path}: required variable {name!r} is missing; expected "
                                  f"{list(REQUIRED)} on dimension 'time'")
        raw = {}
        for name, var in nc.variables.items():
            if var.dimensions != ("time",):
                raise SchemaError(f"{path}: variable {name!r} has dims {var.dimensions}, "
                                  "expected ('time',) (one time axis)")
            raw[name] = (var[:], {k: var.getncattr(k) for k in var.ncattrs()
                                  if k != "_FillValue"})
    t_values, t_attrs = raw.pop("time")
    time = decode_time(to_float(t_values), t_attrs.get("units"), path=path, name="time",
                       calendar=t_attrs.get("calendar"))
    species = str(attrs.get("species", "")).strip().lower()
    mf, mf_attrs = raw.pop("mf")
    if "units" not in mf_attrs:
        raise SchemaError(f"{path}: variable 'mf' has no units; expected a mole-fraction unit "
                          "(e.g. '1e-12' or 'ppt')")
    n = len(time)
    lat = station.number_attr(path, attrs, "inlet_latitude")
    lon = station.number_attr(path, attrs, "inlet_longitude")
    base = station.number_attr(path, attrs, "inlet_base_elevation_masl", required=False)
    per_row = {
        "latitude": (np.full(n, lat), "degrees_north", {"comment": "attribute inlet_latitude"}),
        "longitude": (np.full(n, lon), "degrees_east",
                      {"comment": "attribute inlet_longitude"}),
    }
    for name, (values, var_attrs) in raw.items():
        units = var_attrs.get("units")
        keep = {k: v for k, v in var_attrs.items() if k not in ("units",)}
        if name == "mf_repeatability":
            per_row["value_repeatability"] = (to_float(values), units, {
                **keep, "long_name": "repeatability of value", "_source": name})
        elif name == "inlet_height":
            heights = to_float(values)
            per_row["inlet_height"] = (heights, units or "m", {**keep, "_source": name})
            if base is not None:
                per_row["altitude"] = (base + heights, "m", {
                    "long_name": "inlet altitude above sea level (base elevation + height)"})
        else:
            per_row[name] = (to_float(values), units, {**keep, "_source": name})
    scale = mf_attrs.get("calibration_scale") or attrs.get("calibration_scale")
    ds = station.build(
        path, fmt=FORMAT, species=species, time=time, value=to_float(mf),
        value_units=str(mf_attrs["units"]), per_row={"_value_source": "mf", **per_row},
        station={
            "site_code": str(attrs.get("site_code", "")).upper() or None,
            "site_name": attrs.get("station_long_name"),
            "network": str(attrs.get("network", "AGAGE")).upper(),
            "calibration_scale": scale,
            "platform": "fixed",
            "data_owner": attrs.get("data_owner"),
            "instrument": attrs.get("instrument"),
            "measurement_type": "insitu",
            "site_latitude": lat,
            "site_longitude": lon,
            "site_elevation": base,
        },
        provider_attrs=attrs,
        title=f"AGAGE {species.upper()} at {attrs.get('site_code', '?')}",
        references="AGAGE data archive, https://agage.mit.edu/data; Prinn et al. 2018, "
                   f"doi:10.5194/essd-10-985-2018; data doi:{attrs.get('doi', '?')}",
    )
    ds["value"].attrs["calibration_scale"] = str(scale)
    return ds
