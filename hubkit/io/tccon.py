"""TCCON GGG2020 public netCDF files: column-averaged mole fractions at one station.

One file holds the retrievals of one site on the dimension ``time`` (one row per spectrum
pair): the columns ``xco2, xch4, xco, xn2o, xhf, xh2o, xhdo`` with their one-sigma precisions
``x<gas>_error``, the column averaging kernels ``ak_x<gas>`` on the ``ak_altitude`` levels
(``ak_pressure`` their median pressure), the a priori profiles ``prior_<gas>`` (wet mole
fractions) on the ``prior_altitude`` levels and their column averages ``prior_x<gas>``, and
the station position ``lat``, ``long``, ``zobs`` per row [1]_, [2]_.

The reader renames through :data:`VARIABLE_MAP` (``lat`` -> ``latitude``, ``xco2_error`` ->
``xco2_uncertainty``, ``ak_xco2`` -> ``xco2_averaging_kernel``, ``prior_co2`` ->
``co2_apriori`` ...) and converts each gas to the unit its community reports in
(:data:`GAS_UNITS`: XCH4 from ppm to ppb, h2o priors from parts to ppm ...), pressures to Pa
and the station altitude to m; every conversion is recorded in the variable's
``units_converted_from`` attribute. Every other variable (``solzen``, ``pout``, the
``*_x2019`` and experimental columns, ``prior_temperature`` ...) is kept with its own name,
values and units. The provider's global attributes are kept (``source`` as
``provider_source``).

A file with a second time axis (a time-unit variable on another dimension) is refused: rows of
two axes cannot be told apart.

References
----------
.. [1] Laughner, J. L. et al., "The Total Carbon Column Observing Network's GGG2020 data
   version", Earth Syst. Sci. Data 16, 2197-2260, 2024. doi:10.5194/essd-16-2197-2024
.. [2] Wunch, D. et al., "The Total Carbon Column Observing Network", Phil. Trans. R. Soc. A
   369, 2087-2112, 2011. doi:10.1098/rsta.2010.0240
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
    variable_attrs,
)

__all__ = ["FORMAT", "GAS_UNITS", "PRODUCT_TYPE", "READER_VERSION", "VARIABLE_MAP", "read",
           "sniff"]

FORMAT = "tccon-ggg2020"
PRODUCT_TYPE = "tccon-columns"
READER_VERSION = "1"

#: Gas -> canonical unit of its column, precision, a priori profile and a priori column.
GAS_UNITS = {"co2": "ppm", "ch4": "ppb", "co": "ppb", "n2o": "ppb", "hf": "ppt", "h2o": "ppm",
             "hdo": "ppm"}


def _gas_map() -> dict[str, tuple[str, str | None]]:
    out = {}
    for gas, units in GAS_UNITS.items():
        out[f"x{gas}"] = (f"x{gas}", units)
        out[f"x{gas}_error"] = (f"x{gas}_uncertainty", units)
        out[f"ak_x{gas}"] = (f"x{gas}_averaging_kernel", "1")
        out[f"prior_{gas}"] = (f"{gas}_apriori", units)
        out[f"prior_x{gas}"] = (f"x{gas}_apriori", units)
    return out


#: File variable -> (canonical name, canonical units; ``None``: kept as the file has them).
VARIABLE_MAP: dict[str, tuple[str, str | None]] = {
    "time": ("time", None),
    "lat": ("latitude", "degrees_north"),
    "long": ("longitude", "degrees_east"),
    "zobs": ("altitude", "m"),
    "ak_pressure": ("ak_pressure", "Pa"),
    "prior_pressure": ("prior_pressure", "Pa"),
    **_gas_map(),
}

DIM = "time"
_COORDS = ("time", "latitude", "longitude", "prior_altitude", "ak_altitude")


def sniff(path, head: bytes) -> bool:
    """netCDF with the GGG2020 variables ``xco2``, ``ak_xco2`` and ``prior_co2``."""
    info = peek_netcdf(path, head)
    if info is None:
        return False
    names, _, _ = info
    return {"xco2", "ak_xco2", "prior_co2", "time"} <= names


def _check_time_axes(nc, path: Path) -> None:
    for name, units, dims in other_time_axes(nc, DIM):
        raise SchemaError(
            f"{path}: variable {name!r} is a second time axis (units {units!r}, dims "
            f"{dims}); expected one time dimension {DIM!r} that every row lives on (a TCCON "
            "GGG2020 file has one)"
        )
    if DIM not in nc.variables:
        raise SchemaError(f"{path}: required variable 'time' is missing; expected "
                          "time('time',) in seconds since 1970-01-01 (TCCON GGG2020)")


def read(path) -> xr.Dataset:
    """Read a TCCON GGG2020 public netCDF file into a canonical ``tccon-columns`` dataset."""
    path = Path(path)
    coords, data_vars, gases = {}, {}, []
    with open_netcdf(path) as nc:
        nc.set_auto_scale(True)
        _check_time_axes(nc, path)
        provider = {k: nc.getncattr(k) for k in nc.ncattrs()}
        for name, var in nc.variables.items():
            attrs = variable_attrs(var)
            if isinstance(attrs.get("ancillary_variables"), str):  # follow the renames
                attrs["ancillary_variables"] = " ".join(
                    VARIABLE_MAP.get(t, (t,))[0] for t in attrs["ancillary_variables"].split())
            new, units = VARIABLE_MAP.get(name, (name, None))
            values = netcdf_values(var, name, units, path=path, attrs=attrs,
                                   time=name in (DIM, "prior_time"))
            if name in (f"x{g}" for g in GAS_UNITS):
                gases.append(name[1:])
            target = coords if new in _COORDS else data_vars
            target[new] = xr.Variable(tuple(var.dimensions), values, attrs)
    if "xco2" not in data_vars:
        raise SchemaError(
            f"{path}: required variable 'xco2' is missing; expected xco2('time',) in ppm, as "
            "every TCCON GGG2020 public file holds it"
        )
    ds = xr.Dataset(data_vars, coords=coords)
    attrs = {k: v for k, v in provider.items() if k != "source"}
    if "source" in provider:
        attrs["provider_source"] = provider["source"]
    site = str(provider.get("long_name", "")).strip()
    attrs.update({
        "Conventions": CONVENTIONS,
        "title": str(provider.get("title", "TCCON GGG2020 column retrievals"))[:200],
        "hubkit_product_type": PRODUCT_TYPE,
        "hubkit_format": FORMAT,
        "hubkit_species": ",".join(g for g in GAS_UNITS if g in gases),
        "source": path.name,
        "network": "TCCON",
        "instrument": "TCCON",
        "platform": site or "TCCON station",
        "site_name": str(provider.get("short_location", site)),
        "references": "Laughner et al., ESSD 16, 2197, 2024, doi:10.5194/essd-16-2197-2024; "
                      + str(provider.get("data_reference", "")),
    })
    ds.attrs = attrs
    schemas.validate(ds, source=str(path), product_type=PRODUCT_TYPE)
    return ds
