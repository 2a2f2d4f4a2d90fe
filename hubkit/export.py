"""Table products as plain files a user takes away: CSV and GeoJSON (``hubkit export``).

A table product is one :meth:`hubkit.store.Store.put_table` stored (Parquet: ``oco2-peaks``,
``validation-pairs`` ...) or a dataset on the single dim ``peak`` (``oco2peak-peaks``); its
variables on other dims are left out and named in ``attrs["hubkit_left_out"]``. Times are written
in ISO 8601, UTC, with a ``Z``; missing values are empty CSV cells and JSON ``null``. GeoJSON
follows RFC 7946: one Point feature per row at ``[longitude, latitude]``, every other column a
property, the column units in the collection's ``properties.units``.
"""

from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
import pandas as pd
import xarray as xr

from hubkit.errors import ProductKindError

__all__ = ["FORMATS", "TABLE_DIM", "as_table", "to_csv", "to_geojson"]

#: The formats of :func:`hubkit.export` (``hubkit export --format``).
FORMATS = ("csv", "geojson")
#: A dataset on this one dim is a table (the rows are its points).
TABLE_DIM = "peak"


def as_table(data, *, name: str = "product") -> pd.DataFrame:
    """The rows of a table product (``data`` as :meth:`Store.open` returns it).

    A :class:`pandas.DataFrame` is returned as it is (a non-default index becomes columns); a
    dataset with the dim ``peak`` becomes one row per peak with its variables on ``peak`` alone
    as columns, their units in ``attrs["units"]`` and flag attributes in ``attrs["flags"]``.
    Anything else raises :class:`ProductKindError` naming ``name``.
    """
    if isinstance(data, pd.DataFrame):
        if isinstance(data.index, pd.RangeIndex) and data.index.name is None:
            return data
        out = data.reset_index()
        out.attrs = dict(data.attrs)
        return out
    if isinstance(data, xr.Dataset) and TABLE_DIM in data.dims:
        ds = data.reset_coords()
        keep = [k for k, v in ds.data_vars.items() if v.dims == (TABLE_DIM,)]
        left_out = sorted(str(k) for k in ds.data_vars if k not in keep)
        df = ds[keep].to_dataframe().reset_index(drop=True)
        df.attrs = {str(k): v for k, v in ds.attrs.items()}
        df.attrs["units"] = {str(k): ds[k].attrs["units"] for k in keep
                             if "units" in ds[k].attrs}
        flags = {str(k): {a: _plain(ds[k].attrs[a]) for a in _FLAG_ATTRS if a in ds[k].attrs}
                 for k in keep if "flag_masks" in ds[k].attrs or "flag_values" in ds[k].attrs}
        if flags:
            df.attrs["flags"] = flags
        if left_out:
            df.attrs["hubkit_left_out"] = left_out
        return df
    if isinstance(data, xr.Dataset):
        dims = ", ".join(f"{k}={v}" for k, v in data.sizes.items()) or "none"
        found = f"a dataset with dims {dims}"
    else:
        found = f"a {type(data).__name__}"
    raise ProductKindError(
        f"{name} is not a table: it is {found}; expected a table product (Parquet, such as "
        f"oco2-peaks or validation-pairs) or a dataset on the single dim {TABLE_DIM!r}")


_FLAG_ATTRS = ("flag_masks", "flag_values", "flag_meanings", "flag_descriptions")


def _plain(value):
    """A JSON-ready value: NumPy scalars and arrays to Python, NaN to ``None``."""
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _position_columns(df: pd.DataFrame, name: str) -> tuple[str, str]:
    if "latitude" in df.columns and "longitude" in df.columns:
        return "latitude", "longitude"
    found = ", ".join(map(str, df.columns)) or "no columns"
    raise ProductKindError(
        f"{name} has no latitude/longitude columns (found: {found}); expected a table with "
        "'latitude' [degrees_north] and 'longitude' [degrees_east]")


def _iso(ts) -> str | None:
    """ISO 8601 in UTC with a ``Z`` (naive times are UTC, as everywhere in hubkit)."""
    if ts is None or pd.isna(ts):
        return None
    ts = pd.Timestamp(ts)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.isoformat() + "Z"


def _column_values(series: pd.Series) -> list:
    """The values of one column as JSON-ready Python objects (``None`` where missing)."""
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        return [_iso(v) for v in series]
    if pd.api.types.is_timedelta64_dtype(series.dtype):
        return [None if pd.isna(v) else pd.Timedelta(v).isoformat() for v in series]
    values = []
    for v in series.tolist():
        if isinstance(v, bytes):
            v = v.decode("utf-8", "replace")
        elif isinstance(v, (np.generic, np.ndarray)):
            v = _plain(v)
        elif isinstance(v, pd.Timestamp):
            v = _iso(v)
        elif v is not None and not isinstance(v, (str, bool, int, float, list, dict)):
            v = None if pd.isna(v) else str(v)
        if isinstance(v, float) and not math.isfinite(v):
            v = None
        values.append(v)
    return values


def to_csv(data, *, name: str = "product") -> str:
    """The table as CSV text: a header of column names, one line per row (``,``-separated,
    quoted where needed), times in ISO 8601 UTC, missing values empty. Needs positions like
    :func:`to_geojson`, so both formats refuse the same products."""
    df = as_table(data, name=name)
    _position_columns(df, name)
    columns = {str(c): _column_values(df[c]) for c in df.columns}
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in zip(*columns.values(), strict=True):
        writer.writerow(_csv_cell(v) for v in row)
    return buffer.getvalue()


def _csv_cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)  # floats: Python's shortest round-trip form


def to_geojson(data, *, name: str = "product") -> dict:
    """The table as a GeoJSON FeatureCollection (a dict, ready for :func:`json.dumps`).

    One Point feature per row at ``[longitude, latitude]`` (``null`` geometry where either is
    missing), every other column a property (times ISO 8601 UTC, missing values ``null``). The
    collection's ``properties`` hold the product's ``units`` and id, type and title where known.
    """
    df = as_table(data, name=name)
    lat, lon = _position_columns(df, name)
    columns = {str(c): _column_values(df[c]) for c in df.columns if c not in (lat, lon)}
    lats, lons = _column_values(df[lat]), _column_values(df[lon])
    features = []
    for k, (y, x) in enumerate(zip(lats, lons, strict=True)):
        geometry = None if x is None or y is None else {"type": "Point",
                                                         "coordinates": [x, y]}
        features.append({"type": "Feature", "geometry": geometry,
                         "properties": {c: v[k] for c, v in columns.items()}})
    about = {k: df.attrs[k] for k in ("hubkit_product_id", "hubkit_product_type", "title",
                                      "units", "flags") if k in df.attrs}
    return {"type": "FeatureCollection", "properties": json.loads(json.dumps(about, default=str)),
            "features": features}
