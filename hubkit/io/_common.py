"""Helpers the readers share: magic bytes, unit conversion, time decoding, CF attributes.

Nothing here is a reader; :mod:`hubkit.io` never lists this module in its registry.
"""

from __future__ import annotations

import contextvars
import logging
import re
import threading
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from hubkit.errors import IngestError, SchemaError, TimeRangeError
from hubkit.schemas import OCO2_SOUNDINGS
from hubkit.units import conversion_attrs, convert_units

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
NETCDF3_MAGICS = (b"CDF\x01", b"CDF\x02", b"CDF\x05")
CONVENTIONS = "CF-1.10"

log = logging.getLogger(__name__)

#: OCO-2 ground-track speed (705 km orbit, 7.5 km/s orbital speed scaled to the surface). [km s-1]
OCO2_GROUND_SPEED = 6.76


def is_netcdf_head(head: bytes) -> bool:
    """Whether ``head`` starts like a netCDF-3 or an HDF5 (netCDF-4) file."""
    return head.startswith(HDF5_MAGIC) or head.startswith(NETCDF3_MAGICS)


@contextmanager
def hdf5_lock():
    """Hold the process-wide HDF5 lock: the netCDF-C/HDF5 libraries are not thread-safe.

    It is the lock xarray's own netCDF4 backend takes, so direct netCDF4 calls here and
    ``xr.open_dataset`` in other threads (parallel uploads) never run at once. Not re-entrant:
    never call xarray's netCDF functions while holding it.
    """
    from xarray.backends.locks import HDF5_LOCK

    with HDF5_LOCK:
        yield


_XARRAY_NETCDF = threading.RLock()


@contextmanager
def xarray_netcdf():
    """Serialise whole ``xr.open_dataset(..., engine="netcdf4")`` + load (or ``to_netcdf``) calls.

    xarray takes :func:`hdf5_lock` around each library call, but not around opening, loading and
    closing a file as a whole; three parallel uploads of netCDF-4 files read that way crashed
    the process (segmentation fault in the netCDF4 backend). Readers that go through xarray hold
    this lock for the whole read; it is a different lock from xarray's, so xarray can still take
    its own inside. :func:`open_netcdf` holds it too (it is re-entrant): a direct netCDF4 open
    in one thread while another is inside an xarray read failed the same way ("NetCDF: Can't
    open HDF5 attribute", or a segmentation fault) once every upload checked its file first.
    """
    with _XARRAY_NETCDF:
        yield


@contextmanager
def open_netcdf(path, mode: str = "r"):
    """Open ``path`` with netCDF4 under :func:`hdf5_lock`, held until the file is closed.

    In read mode a corrupt or foreign file raises IngestError.

    Inside :func:`one_look`, the first read-mode open of a file whose metadata were looked at
    is given the handle that look opened (only metadata read; it is closed here as usual).
    """
    with _XARRAY_NETCDF, hdf5_lock():
        kept = _KEPT.get()
        nc = kept.pop(str(path), None) if kept is not None and mode == "r" else None
        if nc is None:
            nc = _open(path, mode)
        try:
            yield nc
        finally:
            nc.close()


def _open(path, mode: str):
    """``netCDF4.Dataset(path, mode)``; IngestError when it cannot be opened. Call under the
    locks of :func:`open_netcdf`."""
    import netCDF4

    try:
        return netCDF4.Dataset(str(path), mode, **({"format": "NETCDF4"} if mode == "w" else {}))
    except (OSError, RuntimeError, ValueError) as exc:
        raise IngestError(
            f"{path}: cannot be opened as netCDF/HDF5 ({exc}); the file is corrupt, "
            "truncated or not netCDF"
        ) from exc


#: The metadata :func:`one_look` keeps while it is active (per thread and task): ``{path:
#: (peek or exception, sizes or exception)}``.
_LOOKS: contextvars.ContextVar[dict | None] = contextvars.ContextVar("hubkit_netcdf_looks",
                                                                    default=None)
#: The files :func:`_look` opened inside :func:`one_look` and left open for the reader's
#: :func:`open_netcdf`: ``{path: netCDF4.Dataset}``.
_KEPT: contextvars.ContextVar[dict | None] = contextvars.ContextVar("hubkit_netcdf_kept",
                                                                   default=None)


@contextmanager
def one_look():
    """Within this block, each netCDF file's metadata are read in one open.

    Format detection asks several sniffers (:func:`peek_netcdf`) and the size check
    (:func:`netcdf_sizes`) about the same file; each used to open it (an open of the BAO
    tower file costs ~10 ms of CPU). Inside the block the first question opens the file once,
    reads what all of them need and keeps it until the block ends; outside, every call opens
    the file. Nested blocks share the outer one's. Answers, and errors, are those a fresh
    open gives.

    The file that look opened stays open (no lock held while it is idle) for the first
    :func:`open_netcdf` of it in the block, the reader's, which would open it again: reading
    the three benchmark files in a fresh process 81.7 -> 73.7 ms of CPU, a second read of the
    BAO tower file 19.6 -> 16.2 ms (medians of 10 interleaved runs). One left unclaimed is
    closed when the block ends.
    """
    if _LOOKS.get() is not None:
        yield
        return
    token, kept = _LOOKS.set({}), {}
    kept_token = _KEPT.set(kept)
    try:
        yield
    finally:
        _KEPT.reset(kept_token)
        _LOOKS.reset(token)
        if kept:
            with _XARRAY_NETCDF, hdf5_lock():
                for nc in kept.values():
                    try:
                        nc.close()
                    except Exception as exc:  # only metadata were read: nothing to lose
                        log.debug("closing %s: %s", nc.filepath(), exc)


def _look(path):
    """``(peek, sizes)`` of a netCDF file, each the value or the exception it raised."""
    cache = _LOOKS.get()
    key = str(path)
    if cache is not None and key in cache:
        return cache[key]
    kept = _KEPT.get()
    try:
        with _XARRAY_NETCDF, hdf5_lock():
            nc = _open(path, "r")
            try:
                try:
                    peek = (set(nc.variables), {k: nc.getncattr(k) for k in nc.ncattrs()},
                            set(nc.dimensions))
                except Exception as exc:
                    peek = exc
                try:
                    sizes = _sizes(nc)
                except Exception as exc:
                    sizes = exc
            finally:
                if kept is not None and key not in kept:
                    kept[key] = nc
                else:
                    nc.close()
    except Exception as exc:
        peek = sizes = exc
    if cache is not None:
        cache[key] = (peek, sizes)
    return peek, sizes


def _sizes(nc):
    sizes = []
    groups = [nc]
    while groups:
        group = groups.pop()
        groups.extend(group.groups.values())
        for var in group.variables.values():
            itemsize = 8 if var.dtype is str else np.dtype(var.dtype).itemsize
            sizes.append((var.name, var.shape, str(var.dtype),
                          itemsize * int(np.prod(var.shape, dtype=np.float64))))
    return sizes


def peek_netcdf(path, head: bytes):
    """``(variable names, global attrs, dim names)`` of a netCDF file's root group, or ``None``.

    For sniffers: never raises, whatever the file holds. Read once per file inside
    :func:`one_look`.
    """
    if not is_netcdf_head(head):
        return None
    peek, _ = _look(path)
    return None if isinstance(peek, Exception) else peek


def netcdf_sizes(path) -> list[tuple]:
    """``(name, shape, dtype, bytes)`` of every variable of a netCDF file (all groups), from
    its metadata; read once per file inside :func:`one_look`.

    Raises
    ------
    IngestError
        The file cannot be opened as netCDF.
    """
    _, sizes = _look(path)
    if isinstance(sizes, Exception):
        raise sizes
    return sizes


# --- time ------------------------------------------------------------------------------------

_TIME_UNITS_NS = {
    "nanoseconds": 1, "microseconds": 1_000, "milliseconds": 1_000_000,
    "seconds": 10**9, "second": 10**9, "secs": 10**9, "sec": 10**9, "s": 10**9,
    "minutes": 60 * 10**9, "minute": 60 * 10**9, "min": 60 * 10**9,
    "hours": 3600 * 10**9, "hour": 3600 * 10**9, "hr": 3600 * 10**9, "h": 3600 * 10**9,
    "days": 86400 * 10**9, "day": 86400 * 10**9, "d": 86400 * 10**9,
}
_GREGORIAN = {None, "standard", "gregorian", "proleptic_gregorian"}


def is_time_units(units) -> bool:
    """Whether ``units`` are CF time units (``<unit> since <epoch>``)."""
    return isinstance(units, str) and re.match(r"^\s*\w+\s+since\s+", units, re.I) is not None


def other_time_axes(nc, dim: str) -> list[tuple[str, str, tuple]]:
    """``(name, units, dims)`` of the netCDF variables with time units that do not lie on
    ``(dim,)`` alone: a second time axis a reader with one time per row cannot keep."""
    found = []
    for name, var in nc.variables.items():
        units = getattr(var, "units", None)
        if is_time_units(units) and tuple(var.dimensions) != (dim,):
            found.append((name, units, tuple(var.dimensions)))
    return found


#: netCDF attributes a reader does not copy: the decoding ones, applied on reading.
DECODING_ATTRS = ("_FillValue", "units", "missing_value")


def variable_attrs(var) -> dict:
    """A netCDF variable's attributes but :data:`DECODING_ATTRS`."""
    return {k: var.getncattr(k) for k in var.ncattrs() if k not in DECODING_ATTRS}


def decode_time(values, units, *, path, name: str = "time", calendar=None) -> np.ndarray:
    """CF ``<unit> since <epoch>`` numbers -> ``datetime64[ns]`` (UTC; missing -> NaT).

    Whole and fractional parts are converted separately, so integral seconds stay exact.
    """
    match = re.fullmatch(r"\s*(\w+)\s+since\s+(.+?)\s*", str(units or ""))
    if match is None or match.group(1).lower() not in _TIME_UNITS_NS:
        raise SchemaError(
            f"{path}: variable {name!r} has units {units!r}, expected '<seconds|minutes|hours|"
            "days> since <date>' (e.g. 'seconds since 1970-01-01 00:00:00')"
        )
    if calendar is not None and str(calendar).lower() not in _GREGORIAN:
        raise SchemaError(
            f"{path}: variable {name!r} has calendar {calendar!r}, expected 'standard' "
            "(gregorian); other calendars are read by the 'cf' format"
        )
    try:
        epoch = pd.Timestamp(match.group(2).replace("UTC", "").strip())
    except (ValueError, TypeError) as exc:
        raise SchemaError(
            f"{path}: variable {name!r} has an unreadable epoch in {units!r}"
        ) from exc
    if epoch.tzinfo is not None:
        epoch = epoch.tz_convert("UTC").tz_localize(None)
    step = _TIME_UNITS_NS[match.group(1).lower()]
    values = np.asarray(values, dtype=np.float64)
    bad = ~np.isfinite(values)
    filled = np.where(bad, 0.0, values)
    epoch_us = int(np.datetime64(epoch.to_datetime64(), "us").astype(np.int64))
    _check_time_overflow(filled, step, epoch_us, path=path, name=name, units=units)
    if abs(epoch_us * 1000) < _NS_LIMIT:
        whole = np.floor(filled)
        ns = whole.astype(np.int64) * step + np.round((filled - whole) * step).astype(np.int64)
        out = np.datetime64(epoch_us * 1000, "ns") + ns.astype("timedelta64[ns]")
    else:  # an epoch before 1677 (days since 0001-01-01): whole microseconds
        us = np.round(filled * (step / 1000)).astype(np.int64) + epoch_us
        out = us.astype("datetime64[us]").astype("datetime64[ns]")
    out[bad] = np.datetime64("NaT")
    return out


#: ``datetime64[ns]`` holds 1677-09-21 to 2262-04-11; checked with a margin of 10 days, since
#: the bound is tested in float64 (exact to 1 us near it) before the integer arithmetic.
_NS_LIMIT = float(np.iinfo(np.int64).max) - 10 * 86400e9


def _check_time_overflow(values, step: int, epoch_us: int, *, path, name, units) -> None:
    """Refuse times whose conversion to ``datetime64[ns]`` would overflow int64 (and wrap)."""
    since = values * float(step)
    total = since + epoch_us * 1e3
    over = ~(np.abs(total) < _NS_LIMIT)
    if abs(epoch_us * 1000) < _NS_LIMIT:  # the integer path also holds `since` in int64
        over |= ~(np.abs(since) < _NS_LIMIT)
    if over.any():
        rows = np.flatnonzero(over)
        shown = ", ".join(str(r) for r in rows[:10]) + (", ..." if rows.size > 10 else "")
        raise TimeRangeError(
            f"{path}: variable {name!r} has {rows.size} of {over.size} rows beyond what "
            f"datetime64[ns] holds (row{'s' if rows.size > 1 else ''} {shown}: "
            f"{values[rows[0]]:g} {units}); expected times from 1677-09-21 to 2262-04-11 "
            "(converting these would overflow and wrap to a wrong date)",
            source=str(path), variable=name, count=int(rows.size), total=int(over.size),
            rows=rows[:10],
        )


def encode_time(times) -> np.ndarray:
    """``datetime64`` -> seconds since 1970-01-01 00:00:00 (float64, NaT -> NaN)."""
    times = np.asarray(times, dtype="datetime64[ns]")
    ns = times.astype(np.int64).astype(np.float64)
    return np.where(np.isnat(times), np.nan, ns / 1e9)


def decode_sounding_id(ids) -> tuple[np.ndarray, np.ndarray]:
    """Decode OCO-2 sounding ids ``YYYYMMDDhhmmssmf`` into ``(time, footprint)``.

    The 16 digits are the UTC date and time to the second, then ``m`` the tenths of a second
    (OCO-2 frames come every 0.333 s, so ``m`` is 0, 3 or 7) and ``f`` the footprint number 1-8
    across the slit. Ids that are 0, missing or not a valid date give ``NaT`` and footprint 0.
    """
    ids = np.asarray(ids)
    ok = np.isfinite(ids) if ids.dtype.kind == "f" else np.ones(ids.shape, dtype=bool)
    ids = np.where(ok, ids, 0).astype(np.int64)
    ok &= (ids >= 10**15) & (ids < 10**16)
    stamp = pd.to_datetime(
        pd.Series((ids // 100).astype(str)), format="%Y%m%d%H%M%S", errors="coerce"
    ).to_numpy(dtype="datetime64[ns]")
    tenths = ((ids // 10) % 10).astype("timedelta64[ns]") * 100_000_000
    time = np.where(ok, stamp + tenths, np.datetime64("NaT", "ns"))
    footprint = np.where(ok & ~np.isnat(time), ids % 10, 0).astype(np.int8)
    return time.astype("datetime64[ns]"), footprint


# --- arrays and attributes -------------------------------------------------------------------


def to_float(arr) -> np.ndarray:
    """A (masked) array as float64 with NaN where masked."""
    return np.ma.filled(np.ma.asarray(arr).astype(np.float64), np.nan)


def to_int_or_float(arr) -> np.ndarray:
    """Integers stay integers unless some are masked; then float64 with NaN."""
    arr = np.ma.asarray(arr)
    if np.ma.is_masked(arr) or arr.dtype.kind == "f":
        return to_float(arr)
    return np.asarray(np.ma.getdata(arr))


def to_str(arr) -> np.ndarray:
    """Character arrays (``S1`` with a trailing string dim), bytes or objects -> ``str`` objects.

    Object dtype, not fixed-width ``<U``: Zarr v3 stores it as variable-length UTF-8, which has
    a specification (fixed-width unicode has none yet).
    """
    import netCDF4

    arr = np.ma.getdata(np.ma.asarray(arr)) if np.ma.isMaskedArray(arr) else np.asarray(arr)
    if arr.dtype.kind == "S" and arr.dtype.itemsize == 1 and arr.ndim >= 2:
        text = _ascii_rows(arr)
        if text is not None:
            return text
        arr = netCDF4.chartostring(arr)
    # text as Python str, bytes or the objects themselves (tolist: one fast pass); numbers as
    # NumPy scalars, whose str is their shortest repr in their own precision
    values = arr.ravel().tolist() if arr.dtype.kind in "USO" else arr.ravel()
    out = np.empty(arr.size, dtype=object)
    out[:] = [(v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v))
              .rstrip("\x00").strip() for v in values]
    return out.reshape(arr.shape)


def _ascii_rows(chars: np.ndarray) -> np.ndarray | None:
    """:func:`to_str` of an ASCII character array, or None when a byte is not ASCII.

    Each row read as one fixed-width bytes value (which drops its trailing NULs, as
    ``chartostring``'s fixed-width ``str`` does) and decoded once: the same strings as
    ``chartostring`` then stripping, without building the ``<U`` array and a second list. The
    three text variables of the BAO tower file 4.8 -> 1.6 ms of CPU (first calls in a process
    8.6 -> 2.6 ms). Non-ASCII text is left to ``chartostring`` (its error is the one raised).
    """
    if chars.size == 0:
        return None
    rows = np.ascontiguousarray(chars).view(f"S{chars.shape[-1]}")
    try:
        values = [row.decode("ascii").strip() for row in rows.ravel().tolist()]
    except UnicodeDecodeError:
        return None
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out.reshape(chars.shape[:-1])


#: CF attributes of the canonical variables (``units`` are set by the readers).
CF_ATTRS = {
    "xco2": {"long_name": "column-averaged dry-air mole fraction of CO2 (bias-corrected)"},
    "xco2_uncertainty": {"long_name": "uncertainty of xco2 (1 sigma)"},
    "xco2_quality_flag": {"long_name": "xco2 quality flag", "flag_values": np.array([0, 1], "i1"),
                          "flag_meanings": "good bad"},
    "latitude": {"long_name": "latitude", "standard_name": "latitude"},
    "longitude": {"long_name": "longitude", "standard_name": "longitude"},
    "time": {"long_name": "time (UTC)", "standard_name": "time"},
    "sounding_id": {"long_name": "OCO-2 sounding id YYYYMMDDhhmmssmf (0: unknown)"},
    "orbit": {"long_name": "orbit number"},
    "footprint": {"long_name": "footprint number across the slit, 1-8 (0: unknown)"},
    "altitude": {"long_name": "surface altitude of the footprint", "standard_name":
                 "surface_altitude"},
    "land_water_indicator": {
        "long_name": "surface type", "flag_values": np.array([0, 1, 2, 3], "i1"),
        "flag_meanings": "land water inland_water mixed_land_water"},
    "land_fraction": {"long_name": "land fraction of the footprint",
                      "standard_name": "land_area_fraction"},
    "windspeed_u": {"long_name": "eastward wind at 10 m (meteorology)",
                    "standard_name": "eastward_wind"},
    "windspeed_v": {"long_name": "northward wind at 10 m (meteorology)",
                    "standard_name": "northward_wind"},
    "surface_pressure": {"long_name": "surface pressure", "standard_name": "surface_air_pressure"},
    "surface_pressure_apriori": {"long_name": "a priori surface pressure (meteorology)",
                                 "standard_name": "surface_air_pressure"},
    "tcwv": {"long_name": "total column water vapour",
             "standard_name": "atmosphere_mass_content_of_water_vapor"},
    "distance": {"long_name": "along-track distance from the orbit's first sounding"},
    "time_is_estimated": {"long_name": "time interpolated along track, not given by the source"},
    "aux_is_interpolated": {"long_name": "wind and pressure interpolated between soundings by "
                                         "the source"},
}


def oco2_soundings_attrs(path, *, title: str, fmt: str, references: str, **extra) -> dict:
    """Dataset attributes every OCO-2 soundings reader sets (product type, species, platform)."""
    return {
        "Conventions": CONVENTIONS,
        "title": title,
        "hubkit_product_type": OCO2_SOUNDINGS.product_type,
        "hubkit_format": fmt,
        "hubkit_species": "co2",
        "source": Path(path).name,
        "platform": "OCO-2",
        "instrument": "OCO-2",
        **extra,
        "references": references,
    }


def column_numbers(df: pd.DataFrame, column: str, path, *,
                   missing: tuple[str, ...] = ("",)) -> np.ndarray:
    """A text table's column as float64: a cell that is empty (or one of the ``missing``
    words, case-insensitive) is NaN; any other cell that is not a number is refused
    (:class:`SchemaError` naming the file, column, value and data row)."""
    text = df[column]
    values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64)
    words = text.astype(str).str.strip().str.lower()
    given = text.notna().to_numpy() & ~words.isin([m.lower() for m in missing]).to_numpy()
    bad = np.isnan(values) & given
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise SchemaError(f"{path}: column {column!r} holds a non-numeric value "
                          f"{text.iloc[row]!r} in data row {row + 1}; expected numbers")
    return values


def plain_values(raw) -> np.ndarray:
    """Values of a variable as stored: text as ``str`` objects, integers kept as integers (or
    floats with NaN where masked), the rest as float64."""
    kind = np.asarray(raw).dtype.kind
    if kind in "SUO":
        return to_str(raw)
    return to_int_or_float(raw) if kind in "iu" else to_float(raw)


def netcdf_values(var, name: str, units: str | None = None, *, path, attrs: dict,
                  time: bool = False) -> np.ndarray:
    """A netCDF variable's values, with ``attrs`` (its attributes being built) updated to match.

    ``time``: decoded to datetime64 (:func:`decode_time`), ``calendar`` dropped from ``attrs``.
    ``units``: converted exactly from the file's own units (:func:`convert_units`), the
    conversion recorded (:func:`conversion_attrs`). Otherwise as stored (:func:`plain_values`)
    with the file's units.
    """
    found = getattr(var, "units", None)
    if time:
        attrs.pop("calendar", None)
        return decode_time(to_float(var[:]), found, path=path, name=name,
                           calendar=getattr(var, "calendar", None))
    if units is not None:
        values = convert_units(to_float(var[:]), found, units, path=path, name=name)
        attrs.update(conversion_attrs(found, units), units=units)
        return values
    if found is not None:
        attrs["units"] = found
    return plain_values(var[:])


def cf_attrs(name: str, units: str | None = None) -> dict:
    """Attributes for canonical variable ``name`` with ``units`` (none for times and flags)."""
    attrs = dict(CF_ATTRS.get(name, {"long_name": name.replace("_", " ")}))
    if units is not None:
        attrs["units"] = units
    return attrs


def source_name(path) -> str:
    """The file (or directory) name recorded in ``attrs['source']``."""
    return Path(path).name


def encode_sounding_id(times, footprint) -> np.ndarray:
    """Inverse of :func:`decode_sounding_id`: ``YYYYMMDDhhmmssmf`` from times and footprints."""
    times = np.asarray(times, dtype="datetime64[ns]")
    missing = np.isnat(times)
    times = np.where(missing, np.datetime64("1970-01-01", "ns"), times)
    seconds = times.astype("datetime64[s]")
    tenths = (times - seconds).astype(np.int64) // 100_000_000
    stamp = pd.DatetimeIndex(seconds).strftime("%Y%m%d%H%M%S").to_numpy().astype(np.int64)
    ids = stamp * 100 + tenths * 10 + np.asarray(footprint, dtype=np.int64)
    return np.where(missing, 0, ids)
