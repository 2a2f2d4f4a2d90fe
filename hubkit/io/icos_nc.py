"""ICOS Carbon Portal station time series in netCDF (as distributed to and by OpenGHG).

Layout (ICOS Carbon Portal data objects, https://www.icos-cp.eu/data-services/data-collection,
in the netCDF form OpenGHG's ICOS retrieval writes, openghg ``retrieve/icos``): one species at
one inlet on dimension ``time`` (CF time, the start of the averaging period), the mole fraction
``<species>``, ``<species>_variability`` (standard deviation of the hour),
``<species>_number_of_observations`` and ``flag`` (ICOS ATC flags: 'O' valid after manual
control, 'N' before, 'K' invalid). The station's position and inlet are global attributes
written as text (``station_latitude='51.8088'``, ``inlet='147.0'``), the unit of the mole
fraction the global attribute ``units`` (``µmol mol-1``) where the variables say ``unknown``;
the data object's PID is ``dobj_pid``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from hubkit.errors import SchemaError
from hubkit.io import station
from hubkit.io._common import decode_time, open_netcdf, peek_netcdf, to_float, to_str

__all__ = ["FORMAT", "PRODUCT_TYPE", "READER_VERSION", "VARIABLE_MAP", "read", "sniff"]

FORMAT = "icos-nc"
PRODUCT_TYPE = station.PRODUCT_TYPE
READER_VERSION = "1"
#: Raw ICOS variable (``<species>`` stands for the species) -> canonical name.
VARIABLE_MAP = {"time": "time", "<species>": "value", "<species>_variability": "value_std_dev",
                "<species>_number_of_observations": "nvalue", "flag": "qc_flag"}
_NO_UNITS = {None, "", "unknown", "na", "n/a", "none"}


def sniff(path, head: bytes) -> bool:
    """netCDF with ``time``, global attributes ``species`` and ``station_latitude``, and an ICOS
    data-object PID or ``network='ICOS'``."""
    info = peek_netcdf(path, head)
    if info is None:
        return False
    names, attrs, _ = info
    icos = "icos-cp" in str(attrs.get("dobj_pid", "")) or \
        str(attrs.get("network", "")).upper() == "ICOS"
    return icos and "station_latitude" in attrs and "species" in attrs and "time" in names


def _units(path, var, attrs, name):
    found = getattr(var, "units", None)
    if found is not None and str(found).strip().lower() not in _NO_UNITS:
        return str(found), None
    if str(attrs.get("units", "")).strip().lower() in _NO_UNITS:
        raise SchemaError(f"{path}: variable {name!r} has units {found!r} and the file has no "
                          "global attribute 'units'; expected a mole-fraction unit such as "
                          "'µmol mol-1'")
    return str(attrs["units"]), (f"the variable says {found!r}: the unit is the file's global "
                                 f"attribute 'units' ({attrs['units']!r})")


def read(path) -> xr.Dataset:
    """Read an ICOS Carbon Portal netCDF file into a canonical ``surface-obs`` dataset."""
    path = Path(path)
    with open_netcdf(path) as nc:
        attrs = {k: nc.getncattr(k) for k in nc.ncattrs()}
        species = str(attrs.get("species", "")).strip().lower()
        needed = ("time", species)
        for name in needed:
            if name not in nc.variables:
                raise SchemaError(f"{path}: required variable {name!r} is missing; expected "
                                  f"'time' and the species variable named by attribute "
                                  f"'species' ({species!r}) on dimension 'time'")
        raw = {}
        for name, var in nc.variables.items():
            if var.dimensions != ("time",):
                raise SchemaError(f"{path}: variable {name!r} has dims {var.dimensions}, "
                                  "expected ('time',) (one time axis)")
            raw[name] = (var[:], var)
        time_var = raw["time"][1]
        time = decode_time(to_float(raw["time"][0]), getattr(time_var, "units", None),
                           path=path, name="time", calendar=getattr(time_var, "calendar", None))
        value_units, note = _units(path, raw[species][1], attrs, species)
        per_row, notes = {}, {}
        for name, (values, var) in raw.items():
            if name in ("time", species):
                continue
            if name == f"{species}_variability":
                units, why = _units(path, var, attrs, name)
                per_row["value_std_dev"] = (to_float(values), units, {
                    "long_name": "standard deviation of the measurements of the hour",
                    "_source": name})
                if why:
                    notes["value_std_dev"] = why
            elif name == f"{species}_number_of_observations":
                per_row["nvalue"] = (np.asarray(values), None, {
                    "long_name": "number of measurements averaged into value", "_source": name})
            elif name == "flag":
                per_row["qc_flag"] = (to_str(values), None, {
                    "long_name": "ICOS ATC flag: O valid (manual control), N valid (before "
                                 "manual control), K invalid", "_source": name})
            elif np.asarray(values).dtype.kind in "OSU":
                per_row[name] = (to_str(values), None, {"_source": name})
            else:
                units = getattr(var, "units", None)
                per_row[name] = (to_float(values), None if units in _NO_UNITS else units,
                                 {"_source": name})
    lat = station.number_attr(path, attrs, "station_latitude")
    lon = station.number_attr(path, attrs, "station_longitude")
    inlet = station.number_attr(path, attrs, "inlet", required=False)
    if inlet is None:
        inlet = station.number_attr(path, attrs, "sampling_height", required=False)
    ground = station.number_attr(path, attrs, "station_height_masl", required=False)
    if ground is None:
        ground = station.number_attr(path, attrs, "elevation", required=False)
    n = len(time)
    per_row["latitude"] = (np.full(n, lat), "degrees_north",
                           {"comment": "the station's (global attribute station_latitude)"})
    per_row["longitude"] = (np.full(n, lon), "degrees_east",
                            {"comment": "the station's (global attribute station_longitude)"})
    if inlet is not None:
        per_row["inlet_height"] = (np.full(n, inlet), "m", {
            "long_name": "sample intake height above ground", "comment": "global attribute "
            "'inlet'"})
        if ground is not None:
            per_row["altitude"] = (np.full(n, ground + inlet), "m", {
                "long_name": "sample altitude above sea level (station height + inlet)"})
    scale = attrs.get("calibration_scale")
    ds = station.build(
        path, fmt=FORMAT, species=species, time=time, value=to_float(raw[species][0]),
        value_units=value_units, per_row={"_value_source": species, **per_row},
        station={
            "site_code": str(attrs.get("site", "")).upper() or None,
            "site_name": str(attrs.get("station_long_name", "")).title() or None,
            "network": str(attrs.get("network", "ICOS")),
            "calibration_scale": None if str(scale).lower() in _NO_UNITS else scale,
            "platform": "fixed",
            "data_owner": attrs.get("data_owner"),
            "instrument": None if str(attrs.get("instrument", "")).lower() in _NO_UNITS
            else attrs.get("instrument"),
            "measurement_type": "insitu",
            "site_latitude": lat,
            "site_longitude": lon,
            "site_elevation": ground,
        },
        provider_attrs=attrs,
        title=f"ICOS {species.upper()} at {str(attrs.get('site', '?')).upper()}, "
              f"{attrs.get('inlet', '?')} m",
        references="ICOS Carbon Portal, https://www.icos-cp.eu; data object "
                   f"{attrs.get('dobj_pid', '?')}",
    )
    if note:
        ds["value"].attrs["units_source"] = note
    for name, why in notes.items():
        ds[name].attrs["units_source"] = why
    return ds
