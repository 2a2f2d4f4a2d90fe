"""NOAA GML ObsPack site files (netCDF): surface in-situ and flask mole fractions.

One file holds one species at one site on the dimension ``obs``: ``time`` (seconds since
1970-01-01), ``value`` and ``value_std_dev`` (mol mol-1), ``latitude``, ``longitude``,
``altitude`` (m above sea level, intake included), the three-character ``qcflag`` and
``obs_flag`` (1: representative). The species is the global attribute ``dataset_parameter``.
Mole fractions are converted to the unit of the species in
:data:`hubkit.schemas.OBSPACK_SURFACE` (``species_units``): ppm for CO2, ppb for CH4, N2O, CO
and H2, ppt for SF6.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from hubkit import schemas
from hubkit.errors import SchemaError
from hubkit.io._common import (
    CONVENTIONS,
    cf_attrs,
    convert_units,
    decode_time,
    open_netcdf,
    peek_netcdf,
    to_float,
    to_int_or_float,
    to_str,
)

__all__ = ["FORMAT", "PRODUCT_TYPE", "READER_VERSION", "VARIABLE_MAP", "read", "sniff"]

FORMAT = "obspack"
PRODUCT_TYPE = "obspack-surface"
READER_VERSION = "1"

#: Raw ObsPack variable -> canonical name.
VARIABLE_MAP = {
    "time": "time",
    "value": "value",
    "value_std_dev": "value_std_dev",
    "latitude": "latitude",
    "longitude": "longitude",
    "altitude": "altitude",
    "intake_height": "intake_height",
    "nvalue": "nvalue",
    "qcflag": "qc_flag",
    "obs_flag": "obs_flag",
}

#: Units assumed where a file gives none (ObsPack's own). ``None``: flags, counts, text.
SOURCE_UNITS = {
    "time": "seconds since 1970-01-01T00:00:00Z",
    "value": "mol mol-1",
    "value_std_dev": "mol mol-1",
    "latitude": "degrees_north",
    "longitude": "degrees_east",
    "altitude": "m",
    "intake_height": "m",
    "nvalue": None,
    "qcflag": None,
    "obs_flag": None,
}

#: Canonical units of the non-species variables.
_UNITS = {"latitude": "degrees_north", "longitude": "degrees_east", "altitude": "m",
          "intake_height": "m"}
#: CF standard names of the mole fractions.
STANDARD_NAMES = {
    "co2": "mole_fraction_of_carbon_dioxide_in_air",
    "ch4": "mole_fraction_of_methane_in_air",
    "n2o": "mole_fraction_of_nitrous_oxide_in_air",
    "co": "mole_fraction_of_carbon_monoxide_in_air",
    "h2": "mole_fraction_of_molecular_hydrogen_in_air",
    "sf6": "mole_fraction_of_sulfur_hexafluoride_in_air",
}
REQUIRED = ("time", "value", "latitude", "longitude")
DIM = "obs"
_COORDS = ("time", "latitude", "longitude")
#: Global attributes copied to the dataset (ObsPack name -> hubkit name).
_SITE_ATTRS = {
    "site_code": "site_code", "site_name": "site_name", "site_country": "site_country",
    "site_latitude": "site_latitude", "site_longitude": "site_longitude",
    "site_elevation": "site_elevation", "dataset_project": "dataset_project",
    "dataset_platform": "dataset_platform", "dataset_name": "obspack_dataset_name",
    "obspack_name": "obspack_name", "lab_1_abbr": "lab", "dataset_intake_ht": "intake_height",
}


def sniff(path, head: bytes) -> bool:
    """netCDF with dimension ``obs``, variable ``value`` and attribute ``dataset_parameter``."""
    info = peek_netcdf(path, head)
    if info is None:
        return False
    names, attrs, dims = info
    return "obs" in dims and "value" in names and "dataset_parameter" in attrs


def read(path) -> xr.Dataset:
    """Read an ObsPack site file into a canonical ``obspack-surface`` dataset (dim ``obs``)."""
    path = Path(path)
    raw, units = {}, {}
    with open_netcdf(path) as nc:
        attrs = {k: nc.getncattr(k) for k in nc.ncattrs()}
        for name in REQUIRED:
            if name not in nc.variables:
                raise SchemaError(
                    f"{path}: required variable {name!r} is missing; expected the ObsPack "
                    f"variables {list(REQUIRED)} on dimension 'obs'"
                )
        for src in VARIABLE_MAP:
            if src not in nc.variables:
                continue
            var = nc.variables[src]
            if var.dimensions[:1] != (DIM,) or (var.ndim > 1 and src != "qcflag"):
                raise SchemaError(
                    f"{path}: variable {src!r} has dims {var.dimensions}, expected ('{DIM}',)"
                )
            raw[src] = var[:]
            units[src] = (getattr(var, "units", None), getattr(var, "calendar", None))
        instruments = to_str(nc.variables["instrument"][:]) if "instrument" in nc.variables \
            else None

    species = str(attrs.get("dataset_parameter", "")).strip().lower()
    if not species:
        raise SchemaError(
            f"{path}: global attribute 'dataset_parameter' is missing; expected the species "
            f"(one of {sorted(STANDARD_NAMES)})"
        )
    species_units = dict(schemas.OBSPACK_SURFACE.species_units)
    if species not in species_units:
        raise SchemaError(
            f"{path}: attribute 'dataset_parameter' is {species!r}, expected a mole-fraction "
            f"species among {sorted(species_units)} (read other files with format 'cf')"
        )

    coords, data_vars = {}, {}
    for src, values in raw.items():
        name = VARIABLE_MAP[src]
        found, calendar = units[src]
        if name == "time":
            arr, out_units = decode_time(to_float(values), found or SOURCE_UNITS[src], path=path,
                                         name=src, calendar=calendar), None
        elif name == "qc_flag":
            arr, out_units = to_str(values), None
        elif SOURCE_UNITS[src] is None:
            arr, out_units = to_int_or_float(values), None
        else:
            out_units = species_units[species] if name.startswith("value") else _UNITS[name]
            arr = convert_units(to_float(values), found or SOURCE_UNITS[src], out_units,
                                path=path, name=src)
        attrs_out = cf_attrs(name, out_units)
        if name == "value":
            attrs_out = {"long_name": f"{species.upper()} dry-air mole fraction",
                         "standard_name": STANDARD_NAMES[species], "units": out_units}
        elif name == "value_std_dev":
            attrs_out["long_name"] = "standard deviation of the values averaged into value"
        elif name == "altitude":
            attrs_out = {"long_name": "sample altitude above sea level (intake included)",
                         "standard_name": "altitude", "units": out_units, "positive": "up"}
        (coords if name in _COORDS else data_vars)[name] = xr.Variable((DIM,), arr, attrs_out)

    ds = xr.Dataset(data_vars, coords={k: coords[k] for k in _COORDS})
    ds.attrs.update(
        Conventions=CONVENTIONS,
        title=f"ObsPack {species.upper()} at {attrs.get('site_code', '?')}",
        hubkit_product_type=PRODUCT_TYPE,
        hubkit_format=FORMAT,
        hubkit_species=species,
        source=path.name,
    )
    for key, new in _SITE_ATTRS.items():
        if key in attrs:
            value = attrs[key]
            ds.attrs[new] = value.item() if isinstance(value, np.generic) else value
    if instruments is not None:
        ds.attrs["instrument"] = ", ".join(sorted({i for i in instruments.ravel() if i}))
    elif "dataset_instrument" in attrs:
        ds.attrs["instrument"] = str(attrs["dataset_instrument"])
    schemas.validate(ds, source=str(path), product_type=PRODUCT_TYPE)
    return ds
