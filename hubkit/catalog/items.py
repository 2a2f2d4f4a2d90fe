"""STAC Items for products and Collections for product types, built from datasets and tables,
and the checks that make an Item usable (:func:`item_problem`)."""

from __future__ import annotations

import math
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pystac
import xarray as xr

from hubkit.catalog.ids import (
    PARQUET_MEDIA_TYPE,
    STAC_PREFIX,
    ZARR_MEDIA_TYPE,
    asset_key,
    collection_of,
)
from hubkit.errors import StoreError
from hubkit.version import __version__


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


#: ACDD 1.3 attributes of the extent a product covers
#: (https://wiki.esipfed.org/Attribute_Convention_for_Data_Discovery_1-3).
ACDD_EXTENT = ("geospatial_lon_min", "geospatial_lat_min", "geospatial_lon_max",
               "geospatial_lat_max", "time_coverage_start", "time_coverage_end")


def extent_attrs(ds) -> dict:
    """The ACDD attributes (:data:`ACDD_EXTENT`) of what a dataset or table covers: its bounding
    box [°] and time range (ISO 8601, UTC); empty where it has no coordinates or times.

    A product made from it with no rows of its own (an orbit searched for plumes, none found)
    carries them, so its Item says where and when was searched (:func:`item_extent`).
    """
    bbox, start, end = item_extent(ds)
    out = dict(zip(ACDD_EXTENT[:4], bbox, strict=True)) if bbox else {}
    if start is not None:
        out["time_coverage_start"] = start.isoformat().replace("+00:00", "Z")
        out["time_coverage_end"] = end.isoformat().replace("+00:00", "Z")
    return out


def _acdd_extent(attrs):
    """``(bbox, start, end)`` from ACDD attributes (None where absent or unreadable)."""
    bbox = start = end = None
    try:
        box = [float(attrs[k]) for k in ACDD_EXTENT[:4]]
        if all(math.isfinite(v) for v in box):
            bbox = box
    except (KeyError, TypeError, ValueError):
        pass
    try:
        start, end = (_utc(attrs[k]) for k in ACDD_EXTENT[4:])
    except (KeyError, TypeError, ValueError):
        start = end = None
    return bbox, start, end


def _utc(value) -> datetime:
    """An ISO 8601 time as a UTC datetime (a time without a zone is UTC)."""
    t = pd.Timestamp(value)
    return (t.tz_convert("UTC") if t.tzinfo else t.tz_localize("UTC")).to_pydatetime()


def _table_extent(df: pd.DataFrame):
    """Bounding box of the ``latitude``/``longitude`` columns, range of the ``time`` column; a
    table without them (or without rows) falls back on its ACDD attributes
    (:func:`extent_attrs`)."""
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
    if bbox is None or start is None:
        acdd = _acdd_extent(df.attrs)
        bbox = bbox if bbox is not None else acdd[0]
        start, end = (start, end) if start is not None else acdd[1:]
    return bbox, start, end


def item_extent(ds: xr.Dataset):
    """``(bbox, start, end)`` of a dataset or table: the bounding box [°] of its latitude and
    longitude (CF axes or the canonical names), its first and last time (None when absent)."""
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
    bbox, start, end = item_extent(ds)
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
