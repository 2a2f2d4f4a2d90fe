"""STAC records of the store: Items for products, Collections for product types, the search index.

Pure functions on datasets, dicts and data frames; the reading and writing of the records is done
by :mod:`hubkit.store`. One Item per product (its data asset is the product's Zarr group, its
``hubkit:provenance`` property says where it came from); one Collection per product type. The
Parquet index holds one row per Item with the fields search filters on; it is a cache, always
rebuildable from the Items.
"""

from __future__ import annotations

import hashlib
import json
import math
import posixpath
import re
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pystac
import xarray as xr

from hubkit.errors import SearchTermError, StoreError
from hubkit.version import __version__

__all__ = [
    "INDEX_COLUMNS",
    "asset_key",
    "filter_index",
    "index_problem",
    "index_rows",
    "item_problem",
    "make_collection",
    "make_item",
    "parse_datetime_range",
    "parse_inlet",
    "product_id",
]

STAC_PREFIX = "hubkit:"
#: Media type of the data asset of a Zarr product and of a table (Parquet) product.
ZARR_MEDIA_TYPE = "application/vnd+zarr"
PARQUET_MEDIA_TYPE = "application/vnd.apache.parquet"
_ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,199}$")

#: Columns of the search index, one row per Item.
INDEX_COLUMNS = {
    "id": "string",
    "collection": "string",
    "species": "string",
    "instrument": "string",
    "platform": "string",
    "site": "string",
    "inlets": "string",
    "network": "string",
    "scale": "string",
    "start": "datetime64[ns, UTC]",
    "end": "datetime64[ns, UTC]",
    "west": "float64",
    "south": "float64",
    "east": "float64",
    "north": "float64",
}


def check_name(name: str, what: str = "product id") -> str:
    """Return ``name`` if it is safe as a storage key component, else raise :class:`StoreError`.

    Names are lower-case ASCII letters, digits, ``.``, ``_`` and ``-``, not starting with a dot,
    so a name can never climb out of its folder (``../``) or hide as a dot-file.
    """
    if not isinstance(name, str) or not _ID_RE.match(name) or ".." in name:
        raise StoreError(
            f"invalid {what} {name!r}: expected lower-case letters, digits, '.', '_' or '-', "
            "starting with a letter or digit, no '..', at most 200 characters"
        )
    return name


def product_id(product_type: str, *parts: object) -> str:
    """Content-derived product id: ``<product_type>-<16 hex digits of SHA-256 over parts>``.

    The parts are what makes the product what it is (a source file's checksum and reader version,
    or a step's inputs, version and parameters), so producing it again gives the same id.
    """
    check_name(product_type, "product type")
    h = hashlib.sha256()
    for part in parts:
        h.update(json.dumps(part, sort_keys=True, default=str).encode())
        h.update(b"\0")
    return f"{product_type}-{h.hexdigest()[:16]}"


def collection_of(item_id: str) -> str:
    """The collection (product type) an id made by :func:`product_id` belongs to."""
    check_name(item_id)
    collection, sep, digest = item_id.rpartition("-")
    if not sep or not collection or not re.fullmatch(r"[0-9a-f]{16}", digest):
        raise StoreError(
            f"invalid product id {item_id!r}: expected '<product-type>-<16 hex digits>'"
        )
    return collection


#: Where an Item lies relative to the store root, and the way back up from its folder.
_ITEMS_FOLDER = "catalog/{collection}/items"
_TO_ROOT = "../../../"
_TOKEN_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}\.(zarr|parquet)$")


def data_prefix(item_id: str) -> str:
    """The product's own data folder, relative to the store root: ``data/<type>/<id>``."""
    return f"data/{collection_of(item_id)}/{item_id}"


def asset_key(item_id: str, href) -> str:
    """The data key (relative to the store root) an Item's data-asset ``href`` names.

    Only the form the store writes is accepted, ``../../../data/<type>/<id>/<token>.zarr`` (or
    ``.parquet``) with this Item's own type and id: an href can never reach another product's
    data, a path outside the store, another file system or a hidden or nested object.

    Raises
    ------
    StoreError
        The href is anything else.
    """
    prefix = data_prefix(item_id)
    if isinstance(href, str) and href.startswith(_TO_ROOT + prefix + "/"):
        token = href[len(_TO_ROOT + prefix + "/"):]
        if _TOKEN_RE.match(token):
            return f"{prefix}/{token}"
    raise StoreError(
        f"item {item_id}: its data href {href!r} points outside the product's own data folder; "
        f"expected {_TO_ROOT}{prefix}/<token>.zarr or .parquet"
    )


def href_of(data_key: str, item_id: str) -> str:
    """The href, relative to the Item, of the data at ``data_key`` (see :func:`asset_key`)."""
    folder = _ITEMS_FOLDER.format(collection=collection_of(item_id))
    return posixpath.relpath(data_key, folder)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _time_problem(value, name: str) -> str | None:
    if value is None:
        return None
    try:
        pd.Timestamp(value)
    except (TypeError, ValueError):
        return f"property {name!r} is {value!r}, expected an ISO 8601 date-time or null"
    return None


def item_problem(d, item_id: str) -> str | None:
    """Why the JSON value ``d`` read from the file of Item ``item_id`` is not a usable Item, or
    None when it is one.

    Checks what the store, the search index and :mod:`pystac` rely on: a GeoJSON Feature with
    this id and collection, a properties object whose searchable fields have the right types,
    a bounding box of four or six numbers, and a data asset whose href stays in the product's own
    data folder (:func:`asset_key`). What :mod:`pystac` itself refuses is left to the caller.
    """
    if not isinstance(d, dict):
        return f"expected a JSON object, found a JSON {type(d).__name__}"
    if d.get("type") != "Feature":
        return f"'type' is {d.get('type')!r}, expected 'Feature'"
    if d.get("id") != item_id:
        return f"its id is {d.get('id')!r}, expected {item_id!r} (its file name)"
    if d.get("collection") != collection_of(item_id):
        return f"its collection is {d.get('collection')!r}, expected {collection_of(item_id)!r}"
    p = d.get("properties")
    if not isinstance(p, dict):
        return f"'properties' is {type(p).__name__}, expected an object"
    bbox = d.get("bbox")
    if bbox is not None and not (isinstance(bbox, list) and len(bbox) in (4, 6)
                                 and all(_is_number(v) for v in bbox)):
        return f"'bbox' is {bbox!r}, expected four (or six) numbers or null"
    for name in ("datetime", "start_datetime", "end_datetime", "created"):
        problem = _time_problem(p.get(name), name)
        if problem:
            return problem
    for name in (f"{STAC_PREFIX}species", "platform"):
        if p.get(name) is not None and not isinstance(p[name], str):
            return f"property {name!r} is {p[name]!r}, expected a string or null"
    instruments = p.get("instruments")
    if instruments is not None and not (isinstance(instruments, list) and all(
            isinstance(v, str) for v in instruments)):
        return f"property 'instruments' is {instruments!r}, expected a list of strings"
    assets = d.get("assets")
    if not isinstance(assets, dict) or not isinstance(assets.get("data"), dict):
        return "it has no 'data' asset (expected assets.data with an href)"
    try:
        asset_key(item_id, assets["data"].get("href"))
    except StoreError as exc:
        return str(exc).split(": ", 1)[1]
    if assets["data"].get("type") not in (ZARR_MEDIA_TYPE, PARQUET_MEDIA_TYPE):
        return (f"its data asset has media type {assets['data'].get('type')!r}, expected "
                f"{ZARR_MEDIA_TYPE!r} or {PARQUET_MEDIA_TYPE!r}")
    return None


def index_problem(df: pd.DataFrame) -> str | None:
    """Why a search index read back from storage cannot be trusted, or None.

    Expects exactly :data:`INDEX_COLUMNS` with string, UTC date-time and float columns (any
    time resolution) and one row per id.
    """
    if list(df.columns) != list(INDEX_COLUMNS):
        return f"columns {list(df.columns)}, expected {list(INDEX_COLUMNS)}"
    for name, dtype in INDEX_COLUMNS.items():
        col = df[name].dtype
        if dtype.startswith("datetime"):
            ok = isinstance(col, pd.DatetimeTZDtype) and str(col.tz) == "UTC"
        elif dtype == "float64":
            ok = pd.api.types.is_float_dtype(col)
        else:
            ok = pd.api.types.is_string_dtype(col) and not pd.api.types.is_object_dtype(col)
        if not ok:
            return f"column {name!r} has type {col}, expected {dtype}"
    if df["id"].duplicated().any():
        return f"{int(df['id'].duplicated().sum())} duplicate id row(s)"
    return None


_AXIS_UNITS = {
    "latitude": {"degrees_north", "degree_north", "degrees_N", "degree_N"},
    "longitude": {"degrees_east", "degree_east", "degrees_E", "degree_E"},
}
#: CF ``axis`` attribute of each horizontal coordinate.
_CF_AXIS = {"latitude": "Y", "longitude": "X"}


def _find_axis(ds: xr.Dataset, axis: str):
    """The ``latitude``/``longitude`` variable: by canonical name, else by CF ``standard_name``,
    else by CF ``axis`` (``Y``/``X``), and only then by units (generic CF files name them
    ``lat``, ``nav_lat`` ...).

    Units alone do not make a coordinate: a TCCON file holds ``prior_equivalent_latitude`` in
    ``degrees_north`` before the station's ``lat``; the standard name tells them apart.
    """
    if axis in ds.variables:
        return ds[axis]
    tests = (
        lambda v: v.attrs.get("standard_name") == axis,
        lambda v: str(v.attrs.get("axis", "")).upper() == _CF_AXIS[axis],
        lambda v: v.attrs.get("units") in _AXIS_UNITS[axis]
        and not v.attrs.get("standard_name"),
        lambda v: v.attrs.get("units") in _AXIS_UNITS[axis],
    )
    for test in tests:
        for var in ds.variables.values():
            if test(var):
                return var
    return None


def _table_extent(df: pd.DataFrame):
    """Bounding box of the ``latitude``/``longitude`` columns, range of the ``time`` column."""
    bbox = None
    if "latitude" in df.columns and "longitude" in df.columns:
        lat = pd.to_numeric(df["latitude"], errors="coerce").to_numpy(dtype=float)
        lon = pd.to_numeric(df["longitude"], errors="coerce").to_numpy(dtype=float)
        ok = np.isfinite(lat) & np.isfinite(lon)
        lon = np.where(np.abs(lon) <= 180.0, lon, (lon + 180.0) % 360.0 - 180.0)  # STAC range
        if ok.any():
            bbox = [float(lon[ok].min()), float(lat[ok].min()), float(lon[ok].max()),
                    float(lat[ok].max())]
    start = end = None
    if "time" in df.columns and pd.api.types.is_datetime64_any_dtype(df["time"]):
        t = df["time"]
        t = t.dt.tz_convert("UTC") if t.dt.tz is not None else t.dt.tz_localize("UTC")
        t = t.dropna().dt.floor("us")  # STAC and Python keep microseconds
        if len(t):
            start, end = t.min().to_pydatetime(), t.max().to_pydatetime()
    return bbox, start, end


def _extent(ds: xr.Dataset):
    if isinstance(ds, pd.DataFrame):
        return _table_extent(ds)
    bbox = None
    lat, lon = _find_axis(ds, "latitude"), _find_axis(ds, "longitude")
    if lat is not None and lon is not None:
        if lat.dims == lon.dims:  # soundings, or 2-D curvilinear grids: pair them
            lat = np.asarray(lat.values, dtype=float)
            lon = np.asarray(lon.values, dtype=float)
            ok = np.isfinite(lat) & np.isfinite(lon)
            lat, lon = lat[ok], lon[ok]
        else:  # 1-D axes of a regular grid: every pair exists
            lat = np.asarray(lat.values, dtype=float).ravel()
            lon = np.asarray(lon.values, dtype=float).ravel()
            lat, lon = lat[np.isfinite(lat)], lon[np.isfinite(lon)]
        if lat.size and lon.size:
            bbox = [float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max())]
    start = end = None
    if "time" in ds.variables and ds["time"].dtype.kind == "M":
        t = np.asarray(ds["time"].values).ravel()
        t = t[~np.isnat(t)].astype("datetime64[us]")  # STAC and Python keep microseconds
        if t.size:
            start = pd.Timestamp(t.min()).tz_localize("UTC").to_pydatetime()
            end = pd.Timestamp(t.max()).tz_localize("UTC").to_pydatetime()
    return bbox, start, end


#: Global attributes that give a station's position when a product has no coordinates
#: (``(latitude, longitude)`` pairs, tried in order).
_POSITION_ATTRS = (("site_latitude", "site_longitude"), ("station_latitude", "station_longitude"),
                   ("inlet_latitude", "inlet_longitude"), ("latitude", "longitude"))


def _attr_position(attrs) -> list[float] | None:
    """A point bounding box from a station position in the global attributes (numbers or text,
    as ICOS and AGAGE write them), or None."""
    for lat_key, lon_key in _POSITION_ATTRS:
        try:
            lat, lon = float(attrs[lat_key]), float(attrs[lon_key])
        except (KeyError, TypeError, ValueError):
            continue
        if -90.0 <= lat <= 90.0 and -180.0 <= lon <= 360.0:
            lon = lon if lon <= 180.0 else lon - 360.0
            return [lon, lat, lon, lat]
    return None


#: Station metadata (dataset attribute -> STAC property): what ``hubkit search`` filters on
#: and ``hubkit show`` prints for in-situ products.
STATION_PROPERTIES = {
    "site_code": f"{STAC_PREFIX}site",
    "site_name": f"{STAC_PREFIX}site_name",
    "inlet_heights": f"{STAC_PREFIX}inlet_heights",
    "network": f"{STAC_PREFIX}network",
    "calibration_scale": f"{STAC_PREFIX}calibration_scale",
    "data_owner": f"{STAC_PREFIX}data_owner",
    "measurement_type": f"{STAC_PREFIX}measurement_type",
    "site_elevation": f"{STAC_PREFIX}site_elevation",
}
#: Dataset attributes that are hubkit's own, not the provider's (left out of
#: ``hubkit:provider_attrs``).
_OWN_ATTRS = {"Conventions", "title", "source", "references", "hubkit_product_id"}


def _station_properties(attrs) -> dict:
    """STAC properties of a station product: the facets, and the provider's attributes."""
    out = {}
    for key, prop in STATION_PROPERTIES.items():
        value = attrs.get(key)
        if value is None or value == "":
            continue
        if key == "inlet_heights":
            value = [float(v) for v in np.atleast_1d(value)]
        elif isinstance(value, (np.generic,)):
            value = value.item()
        out[prop] = value
    if out:
        out[f"{STAC_PREFIX}provider_attrs"] = {
            str(k): _json_value(v) for k, v in attrs.items()
            if k not in STATION_PROPERTIES and k not in _OWN_ATTRS
            and not str(k).startswith("hubkit_")}
    return out


def _json_value(value):
    if isinstance(value, np.ndarray):
        return [_json_value(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)


def _geometry(bbox):
    if bbox is None:
        return None
    w, s, e, n = bbox
    return {
        "type": "Polygon",
        "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]],
    }


def make_item(
    ds: xr.Dataset | pd.DataFrame,
    *,
    item_id: str,
    collection: str,
    asset_href: str,
    provenance: dict,
) -> pystac.Item:
    """Build the STAC Item of a product held in ``ds``.

    The spatial extent is the bounding box of ``latitude``/``longitude``, the temporal extent the
    range of ``time`` (both where present). Dataset attributes ``hubkit_species``, ``instrument``
    and ``platform`` become the searchable properties ``hubkit:species``, ``instruments`` and
    ``platform``.

    A :class:`pandas.DataFrame` (a table product) is described the same way from its columns
    and ``attrs`` (column units in ``attrs["units"]``); its data asset is Parquet.
    """
    bbox, start, end = _extent(ds)
    if bbox is None:
        bbox = _attr_position(ds.attrs)
    if isinstance(ds, pd.DataFrame):
        units = ds.attrs.get("units") or {}
        dims = {"row": len(ds)}
        variables = {
            str(name): {"dims": ["row"], "units": units.get(str(name)), "long_name": None,
                        "dtype": str(dtype)}
            for name, dtype in ds.dtypes.items()
        }
        media_type, asset_title = PARQUET_MEDIA_TYPE, "Parquet table"
    else:
        dims = {str(k): int(v) for k, v in ds.sizes.items()}
        variables = {
            str(name): {
                "dims": list(var.dims),
                "units": var.attrs.get("units"),
                "long_name": var.attrs.get("long_name"),
            }
            for name, var in ds.variables.items()
        }
        media_type, asset_title = ZARR_MEDIA_TYPE, "CF-compliant Zarr v3 group"
    created = provenance.get("created") or datetime.now(timezone.utc).isoformat()
    properties = {
        "title": ds.attrs.get("title") or ds.attrs.get("source") or item_id,
        f"{STAC_PREFIX}product_type": collection,
        f"{STAC_PREFIX}species": ds.attrs.get("hubkit_species"),
        f"{STAC_PREFIX}source": ds.attrs.get("source"),
        f"{STAC_PREFIX}dims": dims,
        f"{STAC_PREFIX}variables": variables,
        f"{STAC_PREFIX}provenance": provenance,
        "created": created,
    }
    if str(ds.attrs.get("hubkit_simulated", "")).lower() == "true":
        properties[f"{STAC_PREFIX}simulated"] = True  # made from simulated input, labelled
        if ds.attrs.get("hubkit_simulated_inputs"):
            properties[f"{STAC_PREFIX}simulated_inputs"] = str(
                ds.attrs["hubkit_simulated_inputs"])
    if ds.attrs.get("hubkit_start"):
        properties[f"{STAC_PREFIX}start"] = str(ds.attrs["hubkit_start"])  # cold/warm cycle
    if ds.attrs.get("instrument"):
        properties["instruments"] = [str(ds.attrs["instrument"])]
    if ds.attrs.get("platform"):
        properties["platform"] = str(ds.attrs["platform"])
    properties.update(_station_properties(ds.attrs))
    if start is not None:
        properties["start_datetime"] = start.isoformat()
        properties["end_datetime"] = end.isoformat()
    item = pystac.Item(
        id=item_id,
        geometry=_geometry(bbox),
        bbox=bbox,
        datetime=start if start is not None else datetime.fromisoformat(created),
        properties=properties,
        collection=collection,
    )
    item.add_asset(
        "data",
        pystac.Asset(
            href=asset_href,
            media_type=media_type,
            roles=["data"],
            title=asset_title,
        ),
    )
    return item


def make_collection(collection: str, title: str, description: str) -> pystac.Collection:
    """An open-extent STAC Collection for one product type (extents are kept per Item)."""
    extent = pystac.Extent(
        pystac.SpatialExtent([[-180.0, -90.0, 180.0, 90.0]]),
        pystac.TemporalExtent([[None, None]]),
    )
    return pystac.Collection(
        id=collection,
        title=title,
        description=description,
        extent=extent,
        license="other",
        extra_fields={f"{STAC_PREFIX}version": __version__},
    )


def index_rows(items: list[dict]) -> pd.DataFrame:
    """One search-index row per Item dict (as stored in the item's JSON)."""
    rows = []
    for d in items:
        p = d.get("properties", {})
        bbox = d.get("bbox") or [np.nan] * 4
        start = p.get("start_datetime") or p.get("datetime")
        end = p.get("end_datetime") or p.get("datetime")
        instruments = p.get("instruments") or [None]
        inlets = p.get(f"{STAC_PREFIX}inlet_heights")
        rows.append(
            {
                "id": d["id"],
                "collection": d.get("collection"),
                "species": p.get(f"{STAC_PREFIX}species"),
                "instrument": instruments[0],
                "platform": p.get("platform"),
                "site": p.get(f"{STAC_PREFIX}site"),
                "inlets": " ".join(f"{float(h):g}" for h in inlets) if inlets else None,
                "network": p.get(f"{STAC_PREFIX}network"),
                "scale": p.get(f"{STAC_PREFIX}calibration_scale"),
                "start": start,
                "end": end,
                "west": bbox[0],
                "south": bbox[1],
                "east": bbox[2],
                "north": bbox[3],
            }
        )
    df = pd.DataFrame(rows, columns=list(INDEX_COLUMNS))
    for name, dtype in INDEX_COLUMNS.items():
        if dtype.startswith("datetime"):
            df[name] = pd.to_datetime(df[name], utc=True, format="ISO8601")
        else:
            df[name] = df[name].astype(dtype)
    return df


def parse_inlet(value) -> float:
    """An intake height [m] from ``100``, ``100.0``, ``"100m"`` or ``"100 m"``."""
    text = str(value).strip().lower().removesuffix("magl").removesuffix("m").strip()
    try:
        height = float(text)
    except ValueError:
        raise StoreError(f"inlet {value!r}: expected an intake height in metres such as 100 or "
                         "'100m'") from None
    if not math.isfinite(height):
        raise StoreError(f"inlet {value!r}: expected a finite height in metres")
    return height


def _has_inlet(text, height: float) -> bool:
    if text is None or text is pd.NA or not isinstance(text, str):
        return False
    return any(abs(float(h) - height) <= 0.05 for h in text.split())


_PARTIAL = (
    (re.compile(r"^\d{4}$"), "%Y", "year"),
    (re.compile(r"^\d{4}-\d{2}$"), "%Y-%m", "month"),
    (re.compile(r"^\d{4}-\d{2}-\d{2}$"), "%Y-%m-%d", "day"),
)


#: ISO 8601 date and time, the forms accepted besides the partial dates of :data:`_PARTIAL`:
#: ``2016-08-31T11:55``, ``…:00``, ``…:00.5``, with ``Z`` or an offset (UTC when none).
_ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?"
                       r"(Z|[+-]\d{2}(:?\d{2})?)?$", re.IGNORECASE)
_ISO_EXAMPLES = "2016-08, 2016-08-31 or 2016-08-31T11:55:00Z"


def _not_iso(text: str) -> SearchTermError:
    """The error for a date that is not ISO 8601, with the right form of an ambiguous one."""
    hint = ""
    m = re.match(r"^(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})$", text)
    if m:
        a, b, year = int(m.group(1)), int(m.group(2)), m.group(3)
        forms = sorted({f"{year}-{mm:02d}-{dd:02d}" for dd, mm in ((a, b), (b, a))
                        if 1 <= mm <= 12 and 1 <= dd <= 31})
        if forms:
            hint = f" (write {' or '.join(forms)}: day and month cannot be told apart here)"
    return SearchTermError(
        f"cannot read {text!r} as a date or time; expected ISO 8601 (year-month-day, UTC "
        f"unless an offset is given) such as {_ISO_EXAMPLES}{hint}")


def _parse_instant(value, *, end: bool) -> pd.Timestamp | None:
    """A start or end of a time filter as a UTC timestamp. Strings must be ISO 8601; a date
    without a time (and a year or month) as an end means the end of that period, inclusive."""
    if isinstance(value, datetime):  # also pandas.Timestamp
        t = pd.Timestamp(value)
        return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
    if isinstance(value, np.datetime64):
        return pd.Timestamp(value).tz_localize("UTC")
    if hasattr(value, "isoformat") and not isinstance(value, str):  # datetime.date
        value = value.isoformat()
    text = str(value).strip()
    if text in ("", ".."):
        return None
    for pattern, fmt, period in _PARTIAL:
        if pattern.match(text):
            try:
                t = pd.Timestamp(datetime.strptime(text, fmt), tz="UTC")
            except ValueError:
                raise _not_iso(text) from None
            if not end:
                return t
            if period == "year":
                nxt = t + pd.DateOffset(years=1)
            elif period == "month":
                nxt = t + pd.DateOffset(months=1)
            else:
                nxt = t + timedelta(days=1)
            return nxt - pd.Timedelta(1, "ns")
    if not _ISO_TIME.match(text):
        raise _not_iso(text)
    try:
        t = pd.Timestamp(text)
    except ValueError:
        raise _not_iso(text) from None
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def parse_datetime_range(value) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    """Parse a STAC-style datetime filter into an inclusive UTC ``(start, end)``.

    Accepts ``"2016-08/2016-09"`` (a partial date on the right means the end of that period:
    here all of September), ``"2016-08-31"`` (that whole day), open ends ``"../2016-09"``, or a
    ``(start, end)`` pair of strings, dates, datetimes or ``None``. Strings are ISO 8601
    only: ``01/09/2016`` (9 January or 1 September?) is a :class:`SearchTermError` naming the
    two ISO forms it could mean.
    """
    if value is None:
        return None, None
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise StoreError(f"datetime range {value!r}: expected (start, end)")
        start, end = value
    elif isinstance(value, str) and "/" in value:
        start, end = value.split("/", 1)
    else:
        start = end = value
    start = _parse_instant(start, end=False) if start is not None else None
    end = _parse_instant(end, end=True) if end is not None else None
    if start is not None and end is not None and end < start:
        raise StoreError(f"datetime range {value!r}: the end is before the start")
    return start, end


def filter_index(
    df: pd.DataFrame,
    *,
    collection: str | None = None,
    bbox=None,
    datetime=None,
    species: str | None = None,
    instrument: str | None = None,
    site: str | None = None,
    inlet=None,
    network: str | None = None,
    scale: str | None = None,
    platform: str | None = None,
) -> pd.DataFrame:
    """Rows of the index whose Items match every given filter (``None`` = no filter).

    ``species``, ``instrument``, ``site``, ``network``, ``scale`` (calibration scale) and
    ``platform`` match case-insensitively and whole; ``inlet`` is an intake height [m] (a
    number, or text such as ``"100m"``) that one of the product's inlets must have (within
    0.05 m).

    ``bbox`` is ``(west, south, east, north)`` in degrees and matches Items whose bounding box
    intersects it; ``datetime`` (see :func:`parse_datetime_range`) matches Items whose time range
    overlaps it.
    """
    mask = np.ones(len(df), dtype=bool)
    if collection is not None:
        mask &= (df["collection"] == collection).to_numpy(dtype=bool, na_value=False)
    if species is not None:  # a product of several gases lists them: "co2,ch4,co"
        listed = df["species"].str.lower().str.split(",")
        wanted = species.strip().lower()
        mask &= np.array([isinstance(v, list) and wanted in (g.strip() for g in v)
                          for v in listed], dtype=bool)
    for column, wanted in (("instrument", instrument), ("site", site), ("network", network),
                           ("scale", scale), ("platform", platform)):
        if wanted is not None:
            mask &= (df[column].str.lower() == str(wanted).strip().lower()).to_numpy(
                bool, na_value=False)
    if inlet is not None:
        height = parse_inlet(inlet)
        mask &= np.array([_has_inlet(text, height) for text in df["inlets"]], dtype=bool)
    if bbox is not None:
        try:
            w, s, e, n = (float(v) for v in bbox)
        except (TypeError, ValueError):
            raise StoreError(
                f"bbox {bbox!r}: expected four numbers west,south,east,north"
            ) from None
        if not (-180 <= w <= e <= 180 and -90 <= s <= n <= 90):
            raise StoreError(
                f"bbox {bbox!r}: expected west <= east within [-180, 180] and south <= north "
                "within [-90, 90] (degrees)"
            )
        mask &= (
            (df["west"] <= e) & (df["east"] >= w) & (df["south"] <= n) & (df["north"] >= s)
        ).to_numpy(dtype=bool)
    start, end = parse_datetime_range(datetime)
    if start is not None:
        mask &= (df["end"] >= start).to_numpy(dtype=bool, na_value=False)
    if end is not None:
        mask &= (df["start"] <= end).to_numpy(dtype=bool, na_value=False)
    return df[mask]


def computed_identity(product_type: str, inputs, step: str, step_version, parameters) -> tuple:
    """``(item id, provenance)`` of a computed product: the id derives from the sorted
    ``inputs`` (product ids or file checksums), ``step``, ``step_version`` and ``parameters``,
    so the same computation stored twice is one product (:meth:`hubkit.store.Store.put`), and
    the chain knows a product's id before computing it."""
    parameters = dict(parameters or {})
    inputs = sorted(str(i) for i in inputs)
    item_id = product_id(product_type, inputs, step, str(step_version), parameters)
    provenance = {
        "inputs": inputs,
        "step": step,
        "step_version": str(step_version),
        "parameters": parameters,
    }
    return item_id, provenance
