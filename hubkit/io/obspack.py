"""NOAA GML ObsPack site files (netCDF): tower and surface in-situ, flask and aircraft samples.

Layout (ObsPack user guide, "ObsPack data products: variables and attributes",
https://gml.noaa.gov/ccgg/obspack/documentation.html, and Masarie et al. 2014,
doi:10.5194/essd-6-375-2014): one species at one site in one file, every variable on the
unlimited dimension ``obs``: ``time`` (seconds since 1970-01-01, the start of an averaging
period), ``value`` with ``value_std_dev`` (variability of an average) or ``value_unc``
(estimated uncertainty; towers have only this one), ``nvalue``, ``latitude``, ``longitude``,
``altitude`` (m above sea level, intake included), ``elevation``, ``intake_height`` (m above
ground), the 3-character ``qcflag``, ``obs_flag`` (1: large-scale representative),
``assimilation_concerns`` on ``dim_concerns`` (GLOBALVIEWplus), ``instrument`` and the
observation ids ``obs_num``/``obspack_id``. The species is the global attribute
``dataset_parameter``, the unit each variable's ``units`` (``mol mol-1``, or ``nanomol mol-1``
in tower products), the calibration scale ``dataset_calibration_scale``.

Every row is kept (:mod:`hubkit.io.station`): the intake heights of a tower share time stamps
(BAO: 22, 100 and 300 m, 4,190 rows at 1,400 times). Derived time columns (``time_decimal``,
``time_components``, ``solartime_components``) are not copied: ``time`` holds them exactly.
A file whose project or selection says its samples are not ambient air (firn air, ice cores)
is refused.
"""

from __future__ import annotations

from pathlib import Path

import xarray as xr

from hubkit.errors import SchemaError
from hubkit.io import station
from hubkit.io._common import (
    decode_time,
    open_netcdf,
    peek_netcdf,
    to_float,
    to_int_or_float,
    to_str,
)

__all__ = ["FORMAT", "PRODUCT_TYPE", "READER_VERSION", "VARIABLE_MAP", "read", "sniff"]

FORMAT = "obspack"
PRODUCT_TYPE = station.PRODUCT_TYPE
READER_VERSION = "2"

#: Raw ObsPack variable -> (canonical name, units assumed where the file gives none; None for
#: flags, counts and text).
VARIABLE_MAP = {
    "value": ("value", "mol mol-1"),
    "value_std_dev": ("value_std_dev", "mol mol-1"),
    "value_unc": ("value_unc", "mol mol-1"),
    "nvalue": ("nvalue", None),
    "latitude": ("latitude", "degrees_north"),
    "longitude": ("longitude", "degrees_east"),
    "altitude": ("altitude", "m"),
    "elevation": ("elevation", "m"),
    "intake_height": ("inlet_height", "m"),
    "qcflag": ("qc_flag", None),
    "obs_flag": ("obs_flag", None),
    "assimilation_concerns": ("assimilation_concerns", None),
    "instrument": ("instrument", None),
    "obs_num": ("obs_num", None),
    "obspack_id": ("obspack_id", None),
}
REQUIRED = ("time", "value", "latitude", "longitude")
DIM = "obs"
_TEXT = ("qcflag", "instrument", "obspack_id")
_LONG_NAMES = {
    "value_std_dev": "standard deviation of the values averaged into value",
    "value_unc": "estimated uncertainty of value (the provider's)",
    "nvalue": "number of measurements averaged into value",
    "altitude": "sample altitude above sea level (intake included)",
    "elevation": "surface elevation above sea level",
    "inlet_height": "sample intake height above ground",
    "qc_flag": "NOAA 3-character quality-control flag ('.' in column 1: not rejected)",
    "obs_flag": "1: large spatial scale representative, 0: local/regional influence",
    "assimilation_concerns": "assimilation concerns (time window, representivity, variability)",
    "instrument": "instrument id",
    "obs_num": "observation number in the data set",
    "obspack_id": "ObsPack observation id (unique across ObsPack products)",
}


def sniff(path, head: bytes) -> bool:
    """netCDF with dimension ``obs``, variable ``time`` and attribute ``dataset_parameter`` (a
    file lacking ``value`` is then refused by name, not read as a generic CF file)."""
    info = peek_netcdf(path, head)
    if info is None:
        return False
    names, attrs, dims = info
    return "obs" in dims and "dataset_parameter" in attrs and "time" in names


def _load(path):
    """Global attributes and ``{name: (values, units, calendar, dims)}`` of the variables read."""
    raw = {}
    with open_netcdf(path) as nc:
        attrs = {k: nc.getncattr(k) for k in nc.ncattrs()}
        for name in REQUIRED:
            if name not in nc.variables:
                raise SchemaError(
                    f"{path}: required variable {name!r} is missing; expected the ObsPack "
                    f"variables {list(REQUIRED)} on dimension 'obs'")
        for src in ("time", *VARIABLE_MAP):
            if src not in nc.variables:
                continue
            var = nc.variables[src]
            wide = src in _TEXT or src == "assimilation_concerns"
            if var.dimensions[:1] != (DIM,) or (var.ndim > 1 and not wide) or var.ndim > 2:
                raise SchemaError(
                    f"{path}: variable {src!r} has dims {var.dimensions}, expected ('{DIM}',)"
                    + (f" or ('{DIM}', <string length>)" if wide else ""))
            if src in _TEXT:
                var.set_auto_mask(False)  # its fill 'NA' does not fit one character
            raw[src] = (var[:], getattr(var, "units", None), getattr(var, "calendar", None),
                        var.dimensions, {k: var.getncattr(k) for k in ("order",)
                                         if k in var.ncattrs()})
    return attrs, raw


def read(path) -> xr.Dataset:
    """Read an ObsPack site file into a canonical ``surface-obs`` dataset (dim ``time``)."""
    path = Path(path)
    attrs, raw = _load(path)
    species = str(attrs.get("dataset_parameter", "")).strip().lower()
    if not species:
        raise SchemaError(
            f"{path}: global attribute 'dataset_parameter' is missing; expected the species "
            f"(one of {sorted(station.STANDARD_NAMES)})")
    station.refuse_non_air(path, attrs.get("dataset_project"), attrs.get("dataset_name"),
                           attrs.get("dataset_selection_tag"), attrs.get("dataset_platform"))
    t_values, t_units, calendar, _, _ = raw.pop("time")
    time = decode_time(to_float(t_values), t_units or "seconds since 1970-01-01T00:00:00Z",
                       path=path, name="time", calendar=calendar)
    value, value_units = raw["value"][0], raw["value"][1] or VARIABLE_MAP["value"][1]
    per_row = {}
    for src, (values, units, _, _dims, extra) in raw.items():
        if src == "value":
            continue
        name, default_units = VARIABLE_MAP[src]
        attrs_out = {"long_name": _LONG_NAMES.get(name, name), "_source": src}
        if src in _TEXT:
            arr, units = to_str(values), None
        elif default_units is None:
            arr, units = to_int_or_float(values), None
        else:
            arr, units = to_float(values), units or default_units
        if src == "assimilation_concerns":
            attrs_out.update(extra, _dims=("concern",))
        if name == "altitude":
            attrs_out.update(standard_name="altitude", positive="up")
        per_row[name] = (arr, units, attrs_out)
    project = str(attrs.get("dataset_project", ""))
    providers = [str(attrs[k]) for k in sorted(attrs) if k.startswith("provider_")
                 and k.endswith("_name")]
    lab = attrs.get("lab_1_abbr")
    instruments = sorted({i for i in per_row.get("instrument", ([],))[0] if i})
    ds = station.build(
        path, fmt=FORMAT, species=species, time=time, value=to_float(value),
        value_units=value_units, per_row=per_row,
        station={
            "site_code": str(attrs.get("site_code", "")).upper() or None,
            "site_name": attrs.get("site_name"),
            "network": "NOAA",  # the ObsPack distributor; the measuring lab is in 'lab'
            "calibration_scale": attrs.get("dataset_calibration_scale"),
            "platform": attrs.get("dataset_platform"),
            "data_owner": ", ".join(providers) + (f" ({lab})" if lab else "") if providers
            else lab,
            "instrument": ", ".join(instruments) or attrs.get("dataset_instrument"),
            "measurement_type": "insitu" if "insitu" in project else
            "flask" if "flask" in project else project or None,
            "site_latitude": attrs.get("site_latitude"),
            "site_longitude": attrs.get("site_longitude"),
            "site_elevation": attrs.get("site_elevation"),
        },
        provider_attrs=attrs,
        title=f"ObsPack {species.upper()} at {attrs.get('site_code', '?')} ({project})",
        references="ObsPack user guide, https://gml.noaa.gov/ccgg/obspack/documentation.html; "
                   "Masarie et al. 2014, doi:10.5194/essd-6-375-2014",
    )
    if lab is not None:
        ds.attrs["lab"] = str(lab)
    return ds
