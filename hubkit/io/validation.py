"""Semantic validation: what the values of a product must mean, checked after every reader.

:func:`hubkit.io.read` passes each reader's dataset through :func:`check`, driven by the rules of
its product type in :mod:`hubkit.schemas` (``Var.valid_range``, ``plausible``, ``invalid``,
``missing``, ``wrap_at``; ``Schema.time_window``, ``time_order``, ``unique``, ``cf_axes``):

- coordinates finite and in range (latitude [-90, 90], longitude [-180, 360]; longitudes at or
  above ``wrap_at`` are shifted by -360, and the dataset says so);
- times present and within the platform's plausible window;
- rows in time order (refused, or sorted with the file's row numbers kept in ``source_row``);
- identifiers unique;
- measurements within their physical range, and a units plausibility check: a file whose median
  is off by a power of ten is a units error, named as such.

Each violation raises a :class:`~hubkit.errors.ValidationError` subclass naming the file, the
variable, how many rows of how many, which rows and what was expected. Where the schema says
``"flag"``, the rows are kept unchanged and marked in ``input_flag`` (bits in :data:`FLAGS`),
and a :class:`~hubkit.errors.FlaggedRowsWarning` says how many. Nothing is dropped; no value is
changed except the recorded longitude shift.
"""

from __future__ import annotations

import warnings
from datetime import datetime, timedelta, timezone

import numpy as np
import xarray as xr

from hubkit import schemas
from hubkit.errors import (
    CoordinateError,
    DuplicateIdError,
    FlaggedRowsWarning,
    TimeOrderError,
    TimeRangeError,
    UnitsError,
    ValueRangeError,
)
from hubkit.units import mislabelled_units

__all__ = ["FLAGS", "INPUT_FLAG", "check", "describe_rows"]

INPUT_FLAG = "input_flag"
#: Bits of ``input_flag``: why a row was flagged (0: valid).
FLAGS = {"position_missing": 1, "time_missing": 2, "value_invalid": 4}
_SHOWN_ROWS = 10
_COORDINATE_UNITS = ("degrees_north", "degrees_east")
_CF_AXES = {"latitude": ("lat", "latitude", schemas.LATITUDE_RANGE),
            "longitude": ("lon", "longitude", schemas.LONGITUDE_RANGE)}


def describe_rows(rows) -> str:
    """``"row 7"``, ``"rows 2, 9"``, ``"rows 0, 1, ... (30 more)"``: the first offending rows."""
    rows = [int(r) for r in rows]
    shown = ", ".join(str(r) for r in rows[:_SHOWN_ROWS])
    more = f", ... ({len(rows) - _SHOWN_ROWS} more)" if len(rows) > _SHOWN_ROWS else ""
    return f"row{'s' if len(rows) > 1 else ''} {shown}{more}"


def _raise(error, source, name, mask, found, expected):
    rows = np.flatnonzero(mask)
    raise error(
        f"{source}: variable {name!r} has {rows.size} of {mask.size} rows {found} "
        f"({describe_rows(rows)}); expected {expected}",
        source=source, variable=name, count=int(rows.size), total=int(mask.size),
        rows=rows[:_SHOWN_ROWS],
    )


def _by_row(da: xr.DataArray) -> np.ndarray:
    """Values as float64, one row per element of the first dimension."""
    values = np.asarray(da.values, dtype=np.float64)
    return values.reshape(values.shape[0], -1) if values.ndim else values.reshape(1, 1)


class _Result:
    """What :func:`check` gathers: flags per row dimension, new variables, notes."""

    def __init__(self, ds: xr.Dataset):
        self.ds = ds
        self.flags: dict[str, np.ndarray] = {}
        self.reasons: list[str] = []
        self.replaced: dict[str, xr.Variable] = {}
        self.notes: dict[str, str] = {}
        self.sort_dim: str | None = None

    def flag(self, dim: str, mask: np.ndarray, bit: str, reason: str) -> None:
        flags = self.flags.setdefault(dim, np.zeros(self.ds.sizes[dim], dtype=np.uint8))
        flags[mask] |= FLAGS[bit]
        rows = np.flatnonzero(mask)
        self.reasons.append(f"{reason} in {rows.size} ({describe_rows(rows)})")


def check(ds: xr.Dataset, source: str, product_type: str | None = None) -> xr.Dataset:
    """Check the values of a reader's dataset against the rules of its product type.

    Parameters
    ----------
    ds : xarray.Dataset
        A canonical dataset that passed :func:`hubkit.schemas.validate`.
    source : str
        The file it came from, named in every message.
    product_type : str, optional
        Defaults to ``ds.attrs['hubkit_product_type']``.

    Returns
    -------
    xarray.Dataset
        ``ds`` itself when every row is valid; else a copy with ``input_flag`` (flagged rows),
        shifted longitudes or rows sorted by time, each recorded in the attributes.

    Raises
    ------
    ValidationError
        The subclass says which rule: :class:`CoordinateError`, :class:`TimeRangeError`,
        :class:`TimeOrderError`, :class:`UnitsError`, :class:`ValueRangeError`,
        :class:`DuplicateIdError`.
    """
    schema = schemas.get_schema(product_type or schemas.product_type_of(ds))
    species = ds.attrs.get("hubkit_species")
    result = _Result(ds)
    if schema.cf_axes:
        _check_cf_axes(ds, source)
    for var in schema.variables:
        if var.name not in ds.variables:
            continue
        if var.kinds == "M":
            _check_time(ds[var.name], var, schema, source, result)
        elif var.valid_range is not None or var.missing != "allow":
            _check_values(ds[var.name], var, schema, species, source, result)
    for name in schema.unique:
        if name in ds.variables:
            _check_unique(ds[name], source)
    return _apply(result, schema, source)


# --- values ----------------------------------------------------------------------------------


def _check_values(da, var, schema, species, source, result) -> None:
    name, dim = var.name, da.dims[0]
    units = da.attrs.get("units")
    values = _by_row(da)
    nan = np.isnan(values)
    missing = nan.all(axis=1)
    is_coordinate = schemas.canonical_units(units) in _COORDINATE_UNITS
    error = CoordinateError if is_coordinate else ValueRangeError
    if missing.all() and var.missing != "allow":
        _raise(error, source, name, missing, "missing (NaN)",
               "a value in at least one row (a position for every observation)")
    valid_range = schema.range_of(var, species)
    plausible = valid_range if var.per_species else var.plausible
    if plausible is not None:
        _check_units(values[~nan], name, units, plausible, source)
    if valid_range is not None:
        low, high = valid_range
        bad = (~nan & ~((values >= low) & (values <= high))).any(axis=1)
        if bad.any():
            found = values[~nan & ~((values >= low) & (values <= high))]
            what = (f"outside [{low:g}, {high:g}] {units} or infinite (values from "
                    f"{found.min():g} to {found.max():g})")
            expected = f"values in [{low:g}, {high:g}] {units}"
            if var.invalid == "raise" or (bad | missing).all():
                _raise(error, source, name, bad, what, expected)
            result.flag(dim, bad, "value_invalid", f"{name} outside [{low:g}, {high:g}] {units} "
                                                   "or infinite")
        if var.wrap_at is not None:
            _wrap(da, var, values, result)
    if var.missing == "flag" and missing.any():
        bit = "position_missing" if is_coordinate else "value_invalid"
        result.flag(dim, missing, bit, f"{name} missing (NaN)")


def _check_units(finite: np.ndarray, name, units, plausible, source) -> None:
    """A median off by a power of ten that another unit explains is a units error."""
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return
    low, high = plausible
    median = float(np.median(finite))
    if low <= median <= high or median <= 0:
        return
    centre = np.sqrt(abs(low * high))
    fits = [e for e in range(-12, 13) if e and low <= median * 10.0**e <= high]
    if not fits:
        return
    # a power of ten that a pair of known units explains first, then the one nearest the centre
    exponent = min(fits, key=lambda e: (not mislabelled_units(units, 10.0**e),
                                        abs(np.log10(median * 10.0**e / centre))))
    scaled = median * 10.0**exponent
    pairs = mislabelled_units(units, 10.0**exponent)
    examples = " or ".join(f"numbers in {a!r} labelled {b!r}" for a, b in pairs)
    raise UnitsError(
        f"{source}: variable {name!r} has values (median {median:.4g}, from {finite.min():.4g} "
        f"to {finite.max():.4g} {units}) that are not plausible in {units!r}: expected a "
        f"median in [{low:g}, {high:g}] {units}. Multiplied by 1e{exponent:+d} they would be "
        f"(median {scaled:.4g}): a units error{f' ({examples})' if examples else ''}; give the "
        "variable the units its numbers are in",
        source=source, variable=name, count=int(finite.size), total=int(finite.size),
    )


def _wrap(da, var, values, result) -> None:
    shift = values >= var.wrap_at
    if not shift.any():
        return
    count = int(shift.sum())
    new = np.where(shift, values - 360.0, values).reshape(da.shape)  # exact for [180, 360]
    note = (f"{count} of {shift.size} values in [{var.wrap_at:g}, 360] shifted by -360 to "
            f"[-180, 180) on reading")
    attrs = dict(da.attrs)
    attrs["comment"] = "; ".join(filter(None, [attrs.get("comment"), note]))
    result.replaced[var.name] = xr.Variable(da.dims, new, attrs, da.encoding)
    previous = result.notes.get("hubkit_normalised")
    result.notes["hubkit_normalised"] = "; ".join(filter(None, [previous, f"{var.name}: {note}"]))


def _check_cf_axes(ds: xr.Dataset, source) -> None:
    """Variables CF marks as latitude or longitude (name or standard_name): finite, in range."""
    for name, da in ds.variables.items():
        for axis, (short, long_, (low, high)) in _CF_AXES.items():
            if (da.attrs.get("standard_name") == axis or str(name).lower() in (short, long_)) \
                    and da.dtype.kind in "fiu" and da.ndim:
                values = _by_row(da)
                bad = (~np.isnan(values) & ~((values >= low) & (values <= high))).any(axis=1)
                if bad.any():
                    _raise(CoordinateError, source, str(name), bad,
                           f"outside [{low:g}, {high:g}] or infinite",
                           f"{axis}s in [{low:g}, {high:g}] degrees")


# --- time, order, identifiers ----------------------------------------------------------------


def _window(schema) -> tuple[np.datetime64, np.datetime64, str]:
    start, end, why = schema.time_window
    if end is None:
        end = (datetime.now(timezone.utc) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%S")
    return np.datetime64(start, "ns"), np.datetime64(end, "ns"), why


def _check_time(da, var, schema, source, result) -> None:
    name, dim = var.name, da.dims[0]
    times = np.asarray(da.values, dtype="datetime64[ns]")
    nat = np.isnat(times)
    if nat.all():
        _raise(TimeRangeError, source, name, nat, "missing (NaT)",
               "a time in at least one row")
    if schema.time_window is not None:
        start, end, why = _window(schema)
        outside = ~nat & ((times < start) | (times > end))
        if outside.any():
            found = times[outside]
            _raise(TimeRangeError, source, name, outside,
                   f"outside the plausible window (from {found.min()} to {found.max()})",
                   f"times from {str(start)[:10]} to {str(end)[:10]} ({why}, and nothing after "
                   "the day after tomorrow)")
    if var.missing == "flag" and nat.any():
        result.flag(dim, nat, "time_missing", f"{name} missing (NaT)")
    if schema.time_order is not None:
        _check_order(times, nat, name, dim, schema, source, result)


def _check_order(times, nat, name, dim, schema, source, result) -> None:
    known = np.flatnonzero(~nat)
    stamps = times[known].astype(np.int64)
    before = np.maximum.accumulate(stamps)
    back = np.zeros(times.shape, dtype=bool)
    back[known[1:]] = stamps[1:] < before[:-1]
    if not back.any():
        return
    if schema.time_order == "refuse":
        first = int(np.flatnonzero(back)[0])
        _raise(TimeOrderError, source, name, back,
               f"earlier than a row before them, the first at {times[first]}",
               "non-decreasing times (rows in the order they were measured)")
    result.notes["hubkit_sorted"] = (
        f"rows sorted by time on reading ({int(back.sum())} of {back.size} rows were earlier than "
        "a row before them); source_row holds each row's position in the file")
    result.sort_dim = dim


def _check_unique(da: xr.DataArray, source) -> None:
    values = np.asarray(da.values)
    known = values != 0
    if values.dtype.kind == "f":
        known &= np.isfinite(values)
    _, inverse, counts = np.unique(values[known], return_inverse=True, return_counts=True)
    repeated = np.zeros(values.shape, dtype=bool)
    repeated[np.flatnonzero(known)] = counts[inverse.ravel()] > 1
    if repeated.any():
        example = values[repeated][0]
        _raise(DuplicateIdError, source, str(da.name), repeated,
               f"holding an id another row holds too (e.g. {example} in "
               f"{int((values == example).sum())} rows)",
               "unique ids (0 means unknown and may repeat)")


# --- the result ------------------------------------------------------------------------------


def _apply(result: _Result, schema, source) -> xr.Dataset:
    if not (result.flags or result.replaced or result.notes):
        return result.ds
    ds = result.ds.copy()
    for name, variable in result.replaced.items():
        ds[name] = variable
    for dim, flags in result.flags.items():
        ds[INPUT_FLAG] = xr.Variable((dim,), flags, {
            "long_name": "rows the input validation found invalid, kept unchanged (0: valid)",
            "flag_masks": np.array(list(FLAGS.values()), dtype=np.uint8),
            "flag_meanings": " ".join(FLAGS),
        })
        summary = (f"{int((flags != 0).sum())} of {flags.size} rows flagged in {INPUT_FLAG!r} "
                   f"and kept unchanged: {'; '.join(result.reasons)}")
        ds.attrs["hubkit_input_flag"] = summary
        warnings.warn(FlaggedRowsWarning(f"{source}: {summary}"), stacklevel=3)
    ds.attrs.update(result.notes)
    dim = result.sort_dim
    if dim is not None:
        order = np.argsort(np.asarray(ds["time"].values), kind="stable")
        ds = ds.isel({dim: order})
        ds["source_row"] = xr.Variable((dim,), order.astype(np.int64), {
            "long_name": "row of the file the observation was read from"})
    return ds
