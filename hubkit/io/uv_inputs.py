"""Inputs of the surface UV besides ozone: surface albedo, aerosol and cloud maps (CF netCDF/Zarr).

Three product types, one reader each, all reading CF netCDF files or Zarr directories that carry
the quantities under their CF standard names or hubkit's canonical names:

* ``surface-albedo``: ``surface_albedo`` [1] (standard name ``surface_albedo``);
* ``aerosol``: ``aod`` [1] at 550 nm (``atmosphere_optical_thickness_due_to_ambient_aerosol_
  particles``) and, optionally, ``ssa`` [1] (``single_scattering_albedo_in_air_due_to_ambient_
  aerosol_particles``);
* ``cloud``: ``cloud_optical_thickness`` [1] (``atmosphere_optical_thickness_due_to_cloud``).

Dims: ``latitude``, ``longitude`` (also spelt ``lat``/``lon`` or marked by their standard names)
and optionally ``time``. Values are checked: albedos in [0, 1], optical depths >= 0 (NaN means
missing); dimensionless units (``1``, none) or ``%`` (divided by 100) are accepted.

Detection: a file holding the variables of exactly one of the three types is detected as that
type. A file holding several (e.g. aerosol and cloud together) is not guessed: it is detected as
a generic ``cf`` dataset (all variables kept), and ``--format aerosol`` / ``--format cloud`` make
one product of each type from it (the variables of the other types are named in the attribute
``hubkit_ignored_variables``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from hubkit import schemas
from hubkit.errors import IngestError, SchemaError
from hubkit.io import cf
from hubkit.io._common import CONVENTIONS, is_netcdf_head, open_netcdf, xarray_netcdf

__all__ = ["AEROSOL", "CLOUD", "READERS", "SURFACE_ALBEDO", "STANDARD_NAMES", "UVInputReader"]

#: Canonical name -> CF standard name.
STANDARD_NAMES = {
    "surface_albedo": "surface_albedo",
    "aod": "atmosphere_optical_thickness_due_to_ambient_aerosol_particles",
    "ssa": "single_scattering_albedo_in_air_due_to_ambient_aerosol_particles",
    "cloud_optical_thickness": "atmosphere_optical_thickness_due_to_cloud",
}

#: Physical range of each canonical variable: (low, high, low inclusive, text for messages).
RANGES = {
    "surface_albedo": (0.0, 1.0, True, "in [0, 1]"),
    "aod": (0.0, np.inf, True, ">= 0"),
    "ssa": (0.0, 1.0, False, "in (0, 1]"),
    "cloud_optical_thickness": (0.0, np.inf, True, ">= 0"),
}

_LONG_NAMES = {
    "surface_albedo": "surface albedo (Lambertian, UV)",
    "aod": "aerosol optical depth at 550 nm",
    "ssa": "aerosol single-scattering albedo",
    "cloud_optical_thickness": "cloud optical thickness",
}
_DIMENSIONLESS = {"1", "", "-", "dimensionless", "none", "unitless", "fraction", "0-1"}
_COORD_NAMES = {
    "latitude": ("latitude", "lat", "nav_lat"),
    "longitude": ("longitude", "lon", "nav_lon"),
    "time": ("time",),
}


def _names_in(variables: dict[str, str | None], wanted: tuple[str, ...]) -> dict[str, str]:
    """``{canonical: name in the file}`` for the wanted canonical names found by name or by
    standard name (a standard name wins over a name)."""
    found = {}
    for canonical in wanted:
        by_standard = [n for n, std in variables.items() if std == STANDARD_NAMES[canonical]]
        if by_standard:
            found[canonical] = by_standard[0]
        elif canonical in variables:
            found[canonical] = canonical
    return found


def _peek(path: Path, head: bytes) -> dict[str, str | None] | None:
    """``{variable name: standard_name}`` of a netCDF file or Zarr group, or None."""
    if not cf.sniff(path, head):
        return None
    if is_netcdf_head(head):
        with open_netcdf(path) as nc:
            return {n: getattr(v, "standard_name", None) for n, v in nc.variables.items()}
    with xr.open_dataset(path, engine="zarr", chunks=None, decode_cf=False,
                         consolidated=False) as src:
        return {n: v.attrs.get("standard_name") for n, v in src.variables.items()}


@dataclass(frozen=True)
class UVInputReader:
    """The reader of one UV-input product type (the interface of a :mod:`hubkit.io` reader)."""

    FORMAT: str
    PRODUCT_TYPE: str
    #: Canonical variables of the type: the first required, the others optional.
    VARIABLES: tuple[str, ...]
    READER_VERSION: str = "1"

    def _types_in(self, variables: dict[str, str | None]) -> list[str]:
        return [r.PRODUCT_TYPE for r in READERS if _names_in(variables, r.VARIABLES[:1])]

    def sniff(self, path, head: bytes) -> bool:
        """netCDF or Zarr holding this type's main variable and no other UV-input type's."""
        variables = _peek(Path(path), head)
        return variables is not None and self._types_in(variables) == [self.PRODUCT_TYPE]

    def read(self, path) -> xr.Dataset:
        """Read this type's variables into a canonical dataset (names, units, dims checked)."""
        path = Path(path)
        src = cf.read(path)
        variables = {n: v.attrs.get("standard_name") for n, v in src.variables.items()}
        names = _names_in(variables, self.VARIABLES)
        main = self.VARIABLES[0]
        if main not in names:
            raise SchemaError(
                f"{path}: no variable {main!r} (or with standard_name "
                f"{STANDARD_NAMES[main]!r}); expected it for product type {self.PRODUCT_TYPE!r}")
        others = sorted(n for r in READERS if r is not self
                        for n in _names_in(variables, r.VARIABLES).values())
        ds = _canonical_grid(src[[names[c] for c in names]], path)
        ds = ds.rename({names[c]: c for c in names if names[c] != c})
        for name in names:
            ds[name] = _checked(ds[name], name, path)
        ds.attrs = {
            "Conventions": CONVENTIONS,
            "title": schemas.get_schema(self.PRODUCT_TYPE).title,
            "hubkit_product_type": self.PRODUCT_TYPE,
            "hubkit_format": self.FORMAT,
            "source": path.name,
        }
        for key in ("title", "institution", "references", "history", "comment"):
            if key in src.attrs:
                ds.attrs[f"source_{key}"] = str(src.attrs[key])
        if "hubkit_simulated" in src.attrs:  # simulated inputs stay labelled as such
            ds.attrs["hubkit_simulated"] = str(src.attrs["hubkit_simulated"])
        if others:
            ds.attrs["hubkit_ignored_variables"] = ", ".join(others)
        schemas.validate(ds, source=str(path), product_type=self.PRODUCT_TYPE)
        return ds


def _canonical_grid(ds: xr.Dataset, path: Path) -> xr.Dataset:
    """Rename the latitude/longitude/time dims to the canonical names and order them."""
    rename = {}
    for canonical, spellings in _COORD_NAMES.items():
        hits = [d for d in ds.dims if d.lower() in spellings
                or ds[d].attrs.get("standard_name") == canonical]
        if hits and hits[0] != canonical:
            rename[hits[0]] = canonical
    ds = ds.rename(rename)
    for name, da in ds.data_vars.items():
        extra = [d for d in da.dims if d not in ("time", "latitude", "longitude")]
        if extra or not {"latitude", "longitude"} <= set(da.dims):
            raise SchemaError(
                f"{path}: variable {name!r} has dims {tuple(da.dims)}; expected (latitude, "
                "longitude) or (time, latitude, longitude) on a regular grid with 1-D "
                "coordinates")
    order = [d for d in ("time", "latitude", "longitude") if d in ds.dims]
    ds = ds.transpose(*order)
    for dim, units in (("latitude", "degrees_north"), ("longitude", "degrees_east")):
        values = np.asarray(ds[dim].values, dtype=np.float64)
        if not np.all(np.isfinite(values)):
            raise SchemaError(f"{path}: coordinate {dim!r} has non-finite values; expected "
                              "finite cell centres")
        ds = ds.assign_coords({dim: (dim, values, {"units": units, "standard_name": dim})})
    if "time" in ds.dims and ds["time"].dtype.kind != "M":
        raise SchemaError(f"{path}: coordinate 'time' is {ds['time'].dtype}, expected CF "
                          "times ('<unit> since <date>') that decode to datetime64")
    return ds


def _checked(da: xr.DataArray, name: str, path: Path) -> xr.DataArray:
    """Dimensionless float64 values in the physical range of ``name``, with CF attributes."""
    units = da.attrs.get("units")
    values = np.asarray(da.values, dtype=np.float64)
    key = "" if units is None else str(units).strip().lower()
    if key in ("%", "percent"):
        values = values / 100.0
    elif key not in _DIMENSIONLESS:
        raise SchemaError(f"{path}: variable {name!r} has units {units!r}, expected a "
                          "dimensionless quantity ('1' or none; '%' is divided by 100)")
    low, high, low_inclusive, text = RANGES[name]
    with np.errstate(invalid="ignore"):
        bad = (values > high) | ((values < low) if low_inclusive else (values <= low))
        bad |= np.isinf(values)
    if bad.any():
        found = values[bad]
        raise SchemaError(
            f"{path}: variable {name!r} ({_LONG_NAMES[name]}) has {found.size} value(s) from "
            f"{found.min():g} to {found.max():g}; expected {text} (NaN for missing)")
    attrs = {"units": "1", "long_name": _LONG_NAMES[name],
             "standard_name": STANDARD_NAMES[name]}
    if name == "aod":
        attrs["wavelength"] = "550 nm"
    return xr.DataArray(values, dims=da.dims, coords=da.coords, attrs=attrs, name=name)


SURFACE_ALBEDO = UVInputReader("surface-albedo", "surface-albedo", ("surface_albedo",))
AEROSOL = UVInputReader("aerosol", "aerosol", ("aod", "ssa"))
CLOUD = UVInputReader("cloud", "cloud", ("cloud_optical_thickness",))
#: The three readers, in the order :func:`hubkit.io.detect_format` tries them.
READERS = (SURFACE_ALBEDO, AEROSOL, CLOUD)


def write(ds: xr.Dataset, path) -> Path:
    """Write a canonical UV-input dataset as CF netCDF-4 (for tests, demos and exchange).

    Raises
    ------
    IngestError
        ``ds`` is not of a UV-input product type.
    """
    kind = ds.attrs.get("hubkit_product_type")
    if kind not in {r.PRODUCT_TYPE for r in READERS}:
        raise IngestError(f"{path}: dataset of product type {kind!r}; expected one of "
                          f"{[r.PRODUCT_TYPE for r in READERS]}")
    path = Path(path)
    with xarray_netcdf():
        ds.to_netcdf(path, engine="netcdf4")
    return path
