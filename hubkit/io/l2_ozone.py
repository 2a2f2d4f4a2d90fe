"""hubkit's L2 ozone profile format: the canonical layout of ``l2-ozone`` stored as netCDF.

A file holds retrievals from one or more instruments on the dimensions ``retrieval``, ``level``
(the retrieval grid) and ``level_in`` (the same grid, the second index of the square matrices),
with the global attribute ``hubkit_format = "l2-ozone"``; see :data:`hubkit.schemas.L2_OZONE`.
The reader checks the layout and brings units to canonical ones: volume mixing ratios in ppmv or
ppbv to mol mol-1, covariances in ppmv2 or ppbv2 to mol2 mol-2, pressures in hPa to Pa. A pressure
grid shared by all retrievals (dims ``(level,)``) is broadcast to ``(retrieval, level)``. Extra
variables are kept as they are. :func:`write_l2_ozone` writes the format.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from hubkit import schemas
from hubkit.errors import IngestError, SchemaError
from hubkit.io._common import CONVENTIONS, cf_attrs, decode_time, peek_netcdf, to_str, xarray_netcdf
from hubkit.io.sanitise import zarr_safe_names
from hubkit.units import convert_units

__all__ = ["FORMAT", "PRODUCT_TYPE", "READER_VERSION", "VARIABLE_MAP", "read", "sniff",
           "write_l2_ozone"]

FORMAT = "l2-ozone"
PRODUCT_TYPE = "l2-ozone"
READER_VERSION = "1"

#: The format already uses the canonical names; listed here so every reader has its map.
VARIABLE_MAP = {v.name: v.name for v in schemas.L2_OZONE.variables}

#: Covariance units (spaces, ``^`` and parentheses removed) -> factor to mol2 mol-2.
COVARIANCE_UNITS = {
    "mol2mol-2": 1.0, "molmol-12": 1.0, "1": 1.0,
    "ppmv2": 1e-12, "ppm2": 1e-12, "umol2mol-2": 1e-12,
    "ppbv2": 1e-18, "ppb2": 1e-18, "nmol2mol-2": 1e-18,
}
#: Spellings of a dimensionless averaging kernel (vmr per vmr).
KERNEL_UNITS = ("1", "", "dimensionless", "mol mol-1", "mol mol-1 (mol mol-1)-1")

DIMS = ("retrieval", "level", "level_in")
_COORDS = ("time", "latitude", "longitude")
_ATTRS = {
    "o3_vmr": {"long_name": "retrieved ozone volume mixing ratio",
               "standard_name": "mole_fraction_of_ozone_in_air"},
    "o3_vmr_apriori": {"long_name": "a priori ozone volume mixing ratio"},
    "averaging_kernel": {"long_name": "averaging kernel d(retrieved[level])/d(true[level_in])"},
    "noise_covariance": {"long_name": "retrieval noise error covariance"},
    "apriori_covariance": {"long_name": "a priori covariance"},
    "pressure": {"long_name": "pressure of the retrieval levels", "standard_name": "air_pressure"},
}


def sniff(path, head: bytes) -> bool:
    """netCDF with ``hubkit_format = "l2-ozone"``, or variables o3_vmr and averaging_kernel."""
    info = peek_netcdf(path, head)
    if info is None:
        return False
    names, attrs, _ = info
    return attrs.get("hubkit_format") == FORMAT or {"o3_vmr", "averaging_kernel"} <= names


def _covariance(da: xr.DataArray, vmr_units: str | None, path: Path, name: str) -> np.ndarray:
    found = da.attrs.get("units")
    if found is None and vmr_units is not None:
        found = f"{vmr_units}2"  # no units: the square of the mixing ratio's
    key = "".join(ch for ch in str(found) if ch not in " ^()*")
    if key not in COVARIANCE_UNITS:
        raise SchemaError(
            f"{path}: variable {name!r} has units {found!r}, expected 'mol2 mol-2', 'ppmv2' or "
            "'ppbv2'"
        )
    return np.asarray(da.values, dtype=np.float64) * COVARIANCE_UNITS[key]


def _open(path: Path) -> xr.Dataset:
    try:
        with xarray_netcdf(), xr.open_dataset(path, engine="netcdf4", decode_times=False,
                                              decode_timedelta=False) as src:
            return src.load()
    except (OSError, RuntimeError, ValueError) as exc:
        raise IngestError(f"{path}: cannot be opened as netCDF ({exc}); expected an l2-ozone "
                          "netCDF file") from exc


def _check_dims(raw: xr.Dataset, name: str, dims: tuple[str, ...], path: Path) -> None:
    if tuple(raw[name].dims) != dims:
        raise SchemaError(f"{path}: variable {name!r} has dims {tuple(raw[name].dims)}, "
                          f"expected {dims}")


def read(path) -> xr.Dataset:
    """Read an L2 ozone file into a canonical, validated ``l2-ozone`` dataset."""
    path = Path(path)
    raw = _open(path)
    for var in schemas.L2_OZONE.variables:
        if var.required and var.name not in raw.variables:
            raise SchemaError(
                f"{path}: required variable {var.name!r} is missing; expected "
                f"{var.name}{var.dims} [{var.units or 'no units'}] in the l2-ozone format"
            )
    for dim in DIMS:
        if dim not in raw.sizes:
            raise SchemaError(f"{path}: dimension {dim!r} is missing; expected dims {DIMS}")
    if raw.sizes["level_in"] != raw.sizes["level"]:
        raise SchemaError(
            f"{path}: variable 'averaging_kernel' is not square: level_in has "
            f"{raw.sizes['level_in']} elements, expected level_in == level == {raw.sizes['level']}"
        )

    out = raw.copy()
    vmr_units = {}
    for name in ("o3_vmr", "o3_vmr_apriori"):
        _check_dims(raw, name, DIMS[:2], path)
        vmr_units[name] = raw[name].attrs.get("units", "mol mol-1")
        values = convert_units(raw[name].values, vmr_units[name], "mol mol-1", path=path,
                               name=name)
        out[name] = xr.Variable(DIMS[:2], values, {**_ATTRS[name], "units": "mol mol-1"})
    _check_dims(raw, "averaging_kernel", DIMS, path)
    kernel_units = raw["averaging_kernel"].attrs.get("units", "1")
    if str(kernel_units).strip() not in KERNEL_UNITS:
        raise SchemaError(f"{path}: variable 'averaging_kernel' has units {kernel_units!r}, "
                          f"expected one of {list(KERNEL_UNITS)} (vmr per vmr)")
    out["averaging_kernel"] = xr.Variable(DIMS, raw["averaging_kernel"].values.astype(float),
                                          {**_ATTRS["averaging_kernel"], "units": "1"})
    for name in ("noise_covariance", "apriori_covariance"):
        if name in raw.variables:
            _check_dims(raw, name, DIMS, path)
            values = _covariance(raw[name], vmr_units["o3_vmr"], path, name)
            out[name] = xr.Variable(DIMS, values, {**_ATTRS[name], "units": "mol2 mol-2"})

    pressure = raw["pressure"]
    if pressure.dims == ("level",):
        pressure = pressure.expand_dims(retrieval=raw.sizes["retrieval"]).copy()
    if pressure.dims != DIMS[:2]:
        raise SchemaError(f"{path}: variable 'pressure' has dims {pressure.dims}, expected "
                          f"{DIMS[:2]} or ('level',)")
    values = convert_units(pressure.values, pressure.attrs.get("units", "Pa"), "Pa", path=path,
                           name="pressure")
    out["pressure"] = xr.Variable(DIMS[:2], values, {**_ATTRS["pressure"], "units": "Pa"})
    if "surface_pressure" in raw.variables:
        values = convert_units(raw["surface_pressure"].values,
                               raw["surface_pressure"].attrs.get("units", "Pa"), "Pa",
                               path=path, name="surface_pressure")
        out["surface_pressure"] = xr.Variable(("retrieval",), values,
                                              cf_attrs("surface_pressure", "Pa"))

    for name in ("latitude", "longitude"):
        units = schemas.L2_OZONE.var(name).units
        values = convert_units(raw[name].values, raw[name].attrs.get("units", units), units,
                               path=path, name=name)
        out[name] = xr.Variable(("retrieval",), values, cf_attrs(name, units))
    time = raw["time"]
    out["time"] = xr.Variable(("retrieval",), decode_time(
        time.values, time.attrs.get("units"), path=path, name="time",
        calendar=time.attrs.get("calendar")), cf_attrs("time"))

    if "instrument" in raw.variables:
        out["instrument"] = xr.Variable(raw["instrument"].dims, to_str(raw["instrument"].values),
                                        {"long_name": "instrument of the retrieval"})
    elif "instrument" in raw.attrs:
        names = np.array([str(raw.attrs["instrument"])] * raw.sizes["retrieval"], dtype=object)
        out["instrument"] = xr.Variable(("retrieval",), names,
                                        {"long_name": "instrument of the retrieval"})
    out = out.set_coords([c for c in _COORDS if c in out.variables])
    for name in out.variables:
        out[name].encoding = {}
    out.attrs.update(
        Conventions=CONVENTIONS,
        hubkit_product_type=PRODUCT_TYPE,
        hubkit_format=FORMAT,
        hubkit_species="o3",
        source=path.name,
    )
    out.attrs.setdefault("title", "L2 ozone profile retrievals")
    for name in ("hubkit_simulated", "hubkit_nature_run"):  # simulated input stays labelled
        if name in raw.attrs:
            out.attrs[name] = str(raw.attrs[name])
    if "instrument" in out.variables:
        out.attrs["instrument"] = ", ".join(sorted(set(out["instrument"].values.tolist())))
    out = zarr_safe_names(out, path)  # extra variables are kept as the file names them
    schemas.validate(out, source=str(path), product_type=PRODUCT_TYPE)
    return out


def write_l2_ozone(ds: xr.Dataset, path) -> Path:
    """Write a canonical ``l2-ozone`` dataset as an L2 ozone netCDF file (what :func:`read` reads).

    The file is the canonical layout with ``hubkit_format = "l2-ozone"``; times are stored as
    seconds since 1970-01-01, instruments as variable-length strings. Returns ``path``.
    """
    path = Path(path)
    schemas.validate(ds, source=str(path), product_type=PRODUCT_TYPE)
    out = ds.copy()
    out.attrs.update(hubkit_format=FORMAT, hubkit_product_type=PRODUCT_TYPE,
                     Conventions=ds.attrs.get("Conventions", CONVENTIONS))
    for name in out.variables:
        out[name].encoding = {}
    if "instrument" in out.variables:
        out["instrument"] = out["instrument"].copy(data=to_str(out["instrument"].values))
    out["time"].encoding = {"units": "seconds since 1970-01-01 00:00:00", "dtype": "float64",
                            "calendar": "standard"}
    with xarray_netcdf():
        out.to_netcdf(path, engine="netcdf4", format="NETCDF4")
    return path
