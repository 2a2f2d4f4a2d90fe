"""Any CF-convention dataset: a netCDF-3/4 file or a Zarr (v2 or v3) directory, stored as it is.

The dataset is opened with xarray (CF decoding on), loaded into memory and closed. Names and units
are not changed; ``attrs['hubkit_species']`` is set from a global attribute ``species`` when the
file has one. Detection is the last resort of :func:`hubkit.io.detect_format`: any netCDF/HDF5
file, or a directory holding ``zarr.json`` or ``.zgroup``.
"""

from __future__ import annotations

import json
from pathlib import Path

import xarray as xr

from hubkit import schemas
from hubkit.errors import IngestError, TimeRangeError
from hubkit.io._common import is_netcdf_head, xarray_netcdf
from hubkit.io.sanitise import zarr_safe_names

__all__ = ["FORMAT", "PRODUCT_TYPE", "READER_VERSION", "VARIABLE_MAP", "is_zarr", "read",
           "sniff"]

FORMAT = "cf"
PRODUCT_TYPE = "cf-dataset"
READER_VERSION = "1"

#: Names are kept as they are.
VARIABLE_MAP: dict[str, str] = {}

ZARR_MARKERS = ("zarr.json", ".zgroup")
#: Encoding keys worth keeping for a later write (time units); the rest is netCDF-specific.
_KEEP_ENCODING = ("units", "calendar")


def is_zarr(path: Path) -> bool:
    """Whether ``path`` is a directory holding a Zarr group (v2 or v3)."""
    return path.is_dir() and any((path / marker).is_file() for marker in ZARR_MARKERS)


def _consolidated(path: Path) -> bool:
    """Whether a Zarr group has consolidated metadata (saves xarray's fallback warning)."""
    if (path / ".zmetadata").is_file():
        return True
    try:
        return bool(json.loads((path / "zarr.json").read_text()).get("consolidated_metadata"))
    except (OSError, ValueError, AttributeError):
        return False


def sniff(path, head: bytes) -> bool:
    """netCDF-3 (``CDF\\x01``/``\\x02``/``\\x05``) or HDF5 magic, or a Zarr group directory."""
    return is_zarr(Path(path)) or is_netcdf_head(head)


def read(path) -> xr.Dataset:
    """Open a CF netCDF file or Zarr directory, load it and close it."""
    path = Path(path)
    engine = "zarr" if is_zarr(path) else "netcdf4"
    options = {"consolidated": _consolidated(path)} if engine == "zarr" else {}
    try:
        with xarray_netcdf(), xr.open_dataset(path, engine=engine, chunks=None, **options) as src:
            ds = src.load()
    except (OSError, RuntimeError, ValueError, KeyError, OverflowError) as exc:
        times = _undecodable_times(path, engine, options) \
            if isinstance(exc, (ValueError, OverflowError)) else []
        if times:
            raise TimeRangeError(
                f"{path}: variable(s) {times} hold times that cannot be decoded ({exc}); "
                "expected CF times from 1677-09-21 to 2262-04-11 (or in a cftime calendar)",
                source=str(path), variable=times[0]) from exc
        kind = "a Zarr group" if engine == "zarr" else "netCDF"
        raise IngestError(f"{path}: cannot be opened as {kind} ({exc}); the file is corrupt, "
                          "truncated or in another format") from exc
    for var in ds.variables.values():
        var.encoding = {k: v for k, v in var.encoding.items() if k in _KEEP_ENCODING}
    ds.attrs["hubkit_product_type"] = PRODUCT_TYPE
    ds.attrs["hubkit_format"] = FORMAT
    if "source" in ds.attrs and ds.attrs["source"] != path.name:
        ds.attrs["cf_source"] = ds.attrs["source"]  # CF's "method of production"
    ds.attrs["source"] = path.name
    if "species" in ds.attrs:
        ds.attrs["hubkit_species"] = str(ds.attrs["species"]).strip().lower()
    ds = zarr_safe_names(ds, path)
    schemas.validate(ds, source=str(path), product_type=PRODUCT_TYPE)
    return ds


def _undecodable_times(path: Path, engine: str, options: dict) -> list[str]:
    """The CF time variables (units '<unit> since <date>') when the file opens without decoding
    times, i.e. when the time decoding was what failed (xarray says Overflow or ValueError)."""
    try:
        with xarray_netcdf(), xr.open_dataset(path, engine=engine, decode_times=False,
                                              decode_timedelta=False, **options) as raw:
            return [str(n) for n, v in raw.variables.items()
                    if " since " in str(v.attrs.get("units"))]
    except Exception:  # the file itself is broken: the caller's error says so
        return []
