"""ESA GHG-CCI style level-2 column files: XCH4 / XCO2 soundings with averaging kernels.

One file holds satellite soundings (GOSAT TANSO-FTS here; the GHG-CCI products of other sensors
share the layout) on one sounding dimension: ``time``, ``lat``/``latitude``,
``lon``/``longitude``, ``xch4`` and/or ``xco2`` with ``x<gas>_uncertainty`` (1 sigma) and
``x<gas>_quality_flag``, the column averaging kernel ``x<gas>_averaging_kernel``, the a priori
profile ``<gas>_profile_apriori``, the ``pressure_levels`` of the kernel and the
``pressure_weight`` (or ``pressure_weights``) of each level, as in the GHG-CCI Product User
Guide [1]_ and the University of Leicester GOSAT proxy product [2]_. The file as re-gridded by
OpenGHG names the sounding dimension ``time`` and the level dimension ``lev``; the reader
names them ``sounding`` and ``level`` whatever they were.

Units are taken from the file's ``units`` attributes (``1e-9`` is ppb): XCH4 and its prior in
ppb, XCO2 and its prior in ppm, pressures in Pa. The a priori's ``short_description`` of the
Leicester file says "ppm" while its ``units`` say ``1e-9`` and its values are ~1800: the units
attribute is what is used. Other variables are kept with their own names and units.

References
----------
.. [1] Buchwitz, M. et al., "Product User Guide (PUG) for the GHG-CCI+ XCH4 and XCO2 level 2
   products", ESA Climate Change Initiative, GHG-CCI+ (versions 2019-2023).
.. [2] Parker, R. J. et al., "A decade of GOSAT Proxy satellite CH4 observations", Earth Syst.
   Sci. Data 12, 3383-3412, 2020. doi:10.5194/essd-12-3383-2020
"""

from __future__ import annotations

from pathlib import Path

import xarray as xr

from hubkit import schemas
from hubkit.errors import SchemaError
from hubkit.io._common import (
    CONVENTIONS,
    netcdf_values,
    open_netcdf,
    other_time_axes,
    peek_netcdf,
    to_str,
    variable_attrs,
)

__all__ = ["FORMAT", "PRODUCT_TYPE", "READER_VERSION", "VARIABLE_MAP", "read", "sniff"]

FORMAT = "ghg-cci-l2"
PRODUCT_TYPE = "xgas-soundings"
READER_VERSION = "1"

#: Gas -> canonical unit of its column, uncertainty and a priori profile.
GAS_UNITS = {"ch4": "ppb", "co2": "ppm"}

#: File variable -> (canonical name, canonical units; ``None``: no units or kept as given).
VARIABLE_MAP: dict[str, tuple[str, str | None]] = {
    "time": ("time", None),
    "lat": ("latitude", "degrees_north"),
    "latitude": ("latitude", "degrees_north"),
    "lon": ("longitude", "degrees_east"),
    "longitude": ("longitude", "degrees_east"),
    "pressure_levels": ("pressure", "Pa"),
    "pressure_weight": ("pressure_weight", "1"),
    "pressure_weights": ("pressure_weight", "1"),
    "exposure_id": ("exposure_id", None),
    **{k: v for gas, units in GAS_UNITS.items() for k, v in {
        f"x{gas}": (f"x{gas}", units),
        f"x{gas}_uncertainty": (f"x{gas}_uncertainty", units),
        f"x{gas}_averaging_kernel": (f"x{gas}_averaging_kernel", "1"),
        f"{gas}_profile_apriori": (f"{gas}_apriori", units),
    }.items()},
}

_COORDS = ("time", "latitude", "longitude")


def sniff(path, head: bytes) -> bool:
    """netCDF with ``xch4`` or ``xco2``, its column averaging kernel and pressure weights."""
    info = peek_netcdf(path, head)
    if info is None:
        return False
    names, _, _ = info
    return any({f"x{g}", f"x{g}_averaging_kernel"} <= names for g in GAS_UNITS) and bool(
        {"pressure_weight", "pressure_weights"} & names)


def _dims(nc, path: Path) -> tuple[str, str]:
    """The file's sounding and level dimensions (from the first gas's averaging kernel)."""
    for gas in GAS_UNITS:
        if f"x{gas}" in nc.variables and f"x{gas}_averaging_kernel" in nc.variables:
            column = nc[f"x{gas}"].dimensions
            kernel = nc[f"x{gas}_averaging_kernel"].dimensions
            if len(column) != 1 or len(kernel) != 2 or kernel[0] != column[0]:
                raise SchemaError(
                    f"{path}: variable 'x{gas}_averaging_kernel' has dims {kernel} and "
                    f"'x{gas}' {column}; expected (sounding, level) and (sounding,)")
            return column[0], kernel[1]
    raise SchemaError(f"{path}: no variable 'xch4' or 'xco2' with its averaging kernel; "
                      "expected a GHG-CCI level-2 column file")


def _check_time_axes(nc, sounding: str, path: Path) -> None:
    for name, units, dims in other_time_axes(nc, sounding):
        raise SchemaError(
            f"{path}: variable {name!r} is a second time axis (units {units!r}, dims "
            f"{dims}); expected one time per sounding on {sounding!r}")
    if "time" not in nc.variables:
        raise SchemaError(f"{path}: required variable 'time' is missing; expected the time of "
                          f"each sounding on {sounding!r}")


def read(path) -> xr.Dataset:
    """Read a GHG-CCI style level-2 column file into a canonical ``xgas-soundings`` dataset."""
    path = Path(path)
    coords, data_vars, gases = {}, {}, []
    with open_netcdf(path) as nc:
        sounding, level = _dims(nc, path)
        _check_time_axes(nc, sounding, path)
        rename = {sounding: "sounding", level: "level", "id": "exposure"}
        provider = {k: nc.getncattr(k) for k in nc.ncattrs()}
        for name, var in nc.variables.items():
            attrs = variable_attrs(var)
            dims = var.dimensions
            if name in (level, "id") and dims == (name,):  # index coordinates
                new, units = rename[name], None
            else:
                new, units = VARIABLE_MAP.get(name, (name, None))
            if name == "exposure_id" and len(dims) == 3:  # (sounding, id, chars)
                values, dims = to_str(var[:]), dims[:2]
            else:
                values = netcdf_values(var, name, units, path=path, attrs=attrs,
                                       time=name == "time")
            if new in (f"x{g}" for g in GAS_UNITS):
                gases.append(new[1:])
            dims = tuple(rename.get(d, d) for d in dims)
            (coords if new in _COORDS else data_vars)[new] = xr.Variable(dims, values, attrs)
    for name in ("latitude", "longitude"):
        if name not in coords:
            raise SchemaError(f"{path}: required variable {name!r} is missing (also looked for "
                              f"{name[:3]!r}); expected one value per sounding")
    ds = xr.Dataset(data_vars, coords=coords)
    attrs = {k: v for k, v in provider.items() if k != "source"}
    if "source" in provider:
        attrs["provider_source"] = provider["source"]
    attrs.update({
        "Conventions": CONVENTIONS,
        "hubkit_product_type": PRODUCT_TYPE,
        "hubkit_format": FORMAT,
        "hubkit_species": ",".join(g for g in GAS_UNITS if g in gases),
        "source": path.name,
        "instrument": str(provider.get("sensor", provider.get("instrument", ""))) or "unknown",
        "platform": str(provider.get("platform", "")) or "unknown",
        "references": "ESA GHG-CCI+ Product User Guide; " + str(provider.get("references", "")),
    })
    ds.attrs = attrs
    schemas.validate(ds, source=str(path), product_type=PRODUCT_TYPE)
    return ds
