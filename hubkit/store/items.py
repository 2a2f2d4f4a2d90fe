"""Reading the store: Items (checked, a damaged one named as such), product data, listings."""

from __future__ import annotations

import copy
import hashlib
import logging
import posixpath
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pystac
import xarray as xr

from hubkit import catalog
from hubkit.errors import DamagedItemError, StoreError
from hubkit.store.base import NotJSON
from hubkit.store.encoding import object_text, read_parquet_bytes
from hubkit.store.integrity import (
    INTEGRITY_KEY,
    completeness_problems,
    content_problems,
    digest,
)
from hubkit.store.s3 import translate_error
from hubkit.store.zarr_decode import decode_group

__all__ = ["ReadMixin", "item_from_dict"]

log = logging.getLogger(__name__)

#: At most this many bytes of products read whole are kept decoded per store (``_decoded``).
WHOLE_CACHE_BYTES = 64 * 2**20


class ReadMixin:
    """Items, data and listings, mixed into :class:`hubkit.store.Store`."""

    # -- reading -----------------------------------------------------------------------------
    def _item_dict(self, item_id: str, path: str) -> dict:
        """The checked JSON of Item ``item_id`` at ``path`` (see :func:`catalog.item_problem`).

        Raises FileNotFoundError when there is none, :class:`DamagedItemError` when it cannot be
        used.
        """
        try:
            d = self._read_json(path)
        except NotJSON as exc:
            reason = f"not valid JSON ({exc.__cause__})"
        else:
            reason = catalog.item_problem(d, item_id)
            if reason is None:
                return d
        raise self._damaged(item_id, path, reason)

    def _damaged(self, item_id: str, path: str, reason: str) -> DamagedItemError:
        return DamagedItemError(
            f"{self.url}: the item of {item_id} is damaged: {reason} ({path}); "
            "`hubkit fsck --repair` moves it and its data to the store's quarantine/",
            item_id, reason,
        )

    def _load_item(self, item_id: str, path: str) -> pystac.Item:
        """Item ``item_id`` read from ``path``, checked (FileNotFoundError, DamagedItemError)."""
        d = self._item_dict(item_id, path)
        try:
            return item_from_dict(d)
        except Exception as exc:  # whatever pystac refuses makes the Item unusable
            raise self._damaged(item_id, path, f"not a valid STAC Item: {exc}") from exc

    def _get_item_or_none(self, item_id: str) -> pystac.Item | None:
        try:
            return self._load_item(item_id, self._item_path(item_id))
        except FileNotFoundError:
            return None

    def get_item(self, item_or_id) -> pystac.Item:
        """The STAC Item of a product (given its id or an Item).

        Raises
        ------
        StoreError
            There is no such product; :class:`DamagedItemError` when its Item cannot be used.
        """
        item_id = item_or_id.id if isinstance(item_or_id, pystac.Item) else item_or_id
        self._invalidate(posixpath.dirname(self._item_path(item_id)))
        item = self._get_item_or_none(item_id)
        if item is None:
            raise StoreError(f"{self.url}: no product with id {item_id!r}")
        return item

    def data_path(self, item: pystac.Item) -> str:
        """Where a product's data are: always inside its own ``data/<type>/<id>/`` folder.

        Raises
        ------
        StoreError
            The Item's href points anywhere else (see :func:`catalog.asset_key`).
        """
        try:
            return self._path(catalog.asset_key(item.id, item.assets["data"].href))
        except (StoreError, KeyError) as exc:
            reason = str(exc) if isinstance(exc, StoreError) else "it has no 'data' asset"
            raise self._damaged(item.id, self._item_path(item.id), reason) from None


    def _check_complete(self, item: pystac.Item, path: str) -> list[str]:
        """Raise :class:`DamagedItemError` when a Zarr product lacks objects its Item records
        (one listing, no reads); legacy Items (no record) pass. Returns the objects' keys
        (relative to ``path``; empty for a legacy Item, which is not listed)."""
        record = item.properties.get(INTEGRITY_KEY)
        if record is None:
            return []
        keys = self._find_keys(path)
        if "zarr.json" not in keys:
            raise FileNotFoundError(path)
        problems = completeness_problems(record, keys)
        if problems:
            raise DamagedItemError(
                f"{self.url}: product {item.id} is incomplete at {path}: {'; '.join(problems)}"
                " (a missing chunk would read as fill values); run `hubkit fsck`",
                item.id, "; ".join(problems),
            )
        return keys

    def _read_whole(self, item: pystac.Item, path: str, keys: list[str]) -> xr.Dataset:
        """A complete Zarr product read at once (every object in one batch), its bytes checked
        against the Item's hashes as ``hubkit fsck --deep`` does, decoded in memory.

        Every open reads and checks the bytes; the decoding is kept for the next open
        (:meth:`_decoded`), so a tower's inlets, retrieved one by one, are decoded once.
        """
        paths = [posixpath.join(path, k) for k in keys]
        data = self.fs.cat(paths) if len(paths) > 1 else {paths[0]: self.fs.cat_file(paths[0])}
        payload = {k: data[p] for k, p in zip(keys, paths, strict=True)}
        digests = {k: digest(v) for k, v in payload.items()}
        problems = content_problems(item.properties[INTEGRITY_KEY], digests)
        if problems:
            raise DamagedItemError(
                f"{self.url}: product {item.id} is damaged at {path}: {'; '.join(problems)}; "
                "run `hubkit fsck`", item.id, "; ".join(problems))
        content = hashlib.sha256("".join(f"{k} {n} {h}\n" for k, (n, h) in
                                         sorted(digests.items())).encode()).hexdigest()
        return _own_copy(self._decoded((item.id, path, content), payload))

    def _decoded(self, key: tuple[str, str, str], payload: dict[str, bytes]) -> xr.Dataset:
        """The dataset Zarr objects ``payload`` hold, decoded (NumPy, text as ``str`` objects:
        :func:`~hubkit.store.encoding.object_text`), kept by ``key`` (id, data
        path, SHA-256 of the objects' digests) for the next read of the same bytes: what was
        decoded from the same bytes still holds. At most :data:`WHOLE_CACHE_BYTES` are kept
        per store, the least recently used dropped first. Callers get the kept object: copy
        it.
        """
        import zarr
        from zarr.core.buffer import default_buffer_prototype

        with self._whole_lock:
            ds = self._whole_cache.pop(key, None)
            if ds is not None:
                self._whole_cache[key] = ds  # the most recently used last
                return ds
        ds = decode_group(payload)  # synchronous, ~5x less CPU than Zarr's reader
        if ds is None:  # a layout it does not handle: Zarr's own
            buffer = default_buffer_prototype().buffer
            objects = {k: buffer.from_bytes(v) for k, v in payload.items()}
            ds = object_text(xr.open_zarr(zarr.storage.MemoryStore(objects, read_only=True),
                                          consolidated=False, zarr_format=3, chunks=None).load())
        with self._whole_lock:
            self._whole_cache[key] = ds
            kept = sum(d.nbytes for d in self._whole_cache.values())
            while kept > WHOLE_CACHE_BYTES and len(self._whole_cache) > 1:
                kept -= self._whole_cache.pop(next(iter(self._whole_cache))).nbytes
        return ds

    def open(self, item_or_id, *, chunks=None, load: bool | int = False
             ) -> xr.Dataset | pd.DataFrame:
        """Open a product: a dataset lazily as a Dask-backed :class:`xarray.Dataset`, a table
        (:meth:`put_table`) as a :class:`pandas.DataFrame` with its ``attrs``.

        ``chunks`` is passed to :func:`xarray.open_zarr`; by default the Dask chunks are the
        stored Zarr chunks (about 16 MB each). Tables are read whole.

        ``load=True`` reads a dataset whole instead, at once (its objects in one batch), into
        memory (NumPy arrays, no Dask), and checks its bytes against the hashes its Item
        records (as ``hubkit fsck --deep``): for small products the cheapest way to take a
        selection. ``load=n`` (bytes) does so only for a product of at most ``n`` bytes
        stored, by its Item's integrity record, and opens others lazily. A product written
        before integrity records is always opened lazily. The bytes are read and checked at
        every open; their decoding is kept for the next (up to :data:`WHOLE_CACHE_BYTES` per
        store), and each open returns a copy of its own.
        """
        item = self.get_item(item_or_id)
        path = self.data_path(item)
        if item.assets["data"].media_type == catalog.PARQUET_MEDIA_TYPE:
            try:
                data = self.fs.cat_file(path)
            except FileNotFoundError as exc:
                raise StoreError(
                    f"{self.url}: the data of {item.id} are missing at {path} (run `hubkit fsck`)"
                ) from exc
            record = item.properties.get(INTEGRITY_KEY)
            problems = content_problems(record, {"": digest(data)}) if record else []
            if problems:
                raise DamagedItemError(
                    f"{self.url}: product {item.id} is damaged at {path}: {problems[0]}; "
                    "run `hubkit fsck`", item.id, problems[0])
            return read_parquet_bytes(data)
        record = item.properties.get(INTEGRITY_KEY)
        whole = isinstance(record, dict) and (load is True or (
            load is not False and isinstance(record.get("bytes"), int)
            and record["bytes"] <= load))
        try:
            keys = self._check_complete(item, path)
            if whole:
                return object_text(self._read_whole(item, path, keys))
            return object_text(xr.open_zarr(
                self._zarr_url(path),
                consolidated=False,
                zarr_format=3,
                chunks={} if chunks is None else chunks,
                storage_options=self.storage_options or None,
            ))
        except (FileNotFoundError, KeyError) as exc:
            raise StoreError(
                f"{self.url}: the data of {item.id} are missing at {path} (run `hubkit fsck`)"
            ) from exc
        except Exception as exc:  # zarr's own S3 reads: the same clear error as the store's
            err = translate_error(exc, self.url, self.storage_options) \
                if self.protocol == "s3" else None
            if err is None:
                raise
            raise err from exc

    def _read_items(self, ids: list[str], listing: dict[str, str] | None = None) -> list[dict]:
        """The checked dicts of Items ``ids`` (in parallel on object stores). Deleted Items are
        skipped; so are damaged ones, with a warning (``hubkit fsck`` reports them)."""

        def read(item_id):
            path = listing[item_id] if listing else self._item_path(item_id)
            try:
                return self._item_dict(item_id, path)
            except FileNotFoundError:  # deleted since it was listed
                return None
            except DamagedItemError as exc:
                log.warning("%s", exc)
                return None

        if self.protocol == "file":
            found = [read(i) for i in ids]
        else:
            with ThreadPoolExecutor(max_workers=16) as pool:
                found = list(pool.map(read, ids))
        return [d for d in found if d is not None]

    def items(self, collection: str | None = None):
        """Iterate over every usable Item in the store (or in one collection), in id order.

        Damaged Items are left out with a warning (``hubkit fsck`` reports them).
        """
        listing = self._list_item_paths(collection)
        for item_id in sorted(listing):
            try:
                yield self._load_item(item_id, listing[item_id])
            except FileNotFoundError:  # deleted while we iterate
                continue
            except DamagedItemError as exc:
                log.warning("%s", exc)



#: Item fields ``pystac.Item.from_dict`` passes to the constructor, parses or drops; the
#: rest become ``extra_fields``.
_ITEM_FIELDS = frozenset({"id", "geometry", "bbox", "stac_extensions", "collection", "links",
                          "assets", "properties", "type", "stac_version"})


def item_from_dict(d: dict) -> pystac.Item:
    """A STAC Item from its dict, as this store wrote it.

    Items here were written by this module with the current STAC version: pystac's migration
    step (a deep copy, 6x the cost of the rest of ``from_dict``) is skipped. An Item that
    declares no extension is built as ``pystac.Item.from_dict`` builds it, without asking the
    extension hooks whether it is deprecated: only an extension the Item declares can say so
    (pystac's version extension), and asking loads all 21 of pystac's extension modules
    (~60 ms of CPU, once per process). Any other Item goes through ``from_dict`` itself.
    """
    if d.get("stac_extensions") or not pystac.Item.matches_object_type(d):
        return pystac.Item.from_dict(d, preserve_dict=False, migrate=False)
    properties = d.get("properties", {})
    when = properties.get("datetime")
    item = pystac.Item(
        id=d.get("id"), geometry=d.get("geometry"), bbox=d.get("bbox"),
        datetime=None if when is None else pystac.utils.str_to_datetime(when),
        properties=properties, stac_extensions=d.get("stac_extensions"),
        collection=d.get("collection"),
        extra_fields={k: v for k, v in d.items() if k not in _ITEM_FIELDS},
        assets={k: pystac.Asset.from_dict(v) for k, v in d.get("assets", {}).items()},
    )
    for link in d.get("links", []):
        item.add_link(pystac.Link.from_dict(link))
    return item


def _own_copy(ds: xr.Dataset) -> xr.Dataset:
    """A copy of ``ds`` (NumPy-backed) whose arrays, attributes and encodings are its own.

    As ``ds.copy(deep=True)``, but text arrays are copied as arrays of the same ``str``
    objects (immutable) instead of element by element (``copy.deepcopy`` of a station file's
    text columns was ~2/3 of the CPU of the copy), and the copies are put in variables
    directly: they are the NumPy arrays :meth:`ReadMixin._decoded` made, so xarray's
    inspection of object arrays (a pandas round trip, ~0.5 ms a text column) has nothing to
    find (BAO tower product: 2.2 -> 0.75 ms). Indexes are shared (pandas indexes are
    immutable).
    """
    def own(var: xr.Variable) -> xr.Variable:
        if isinstance(var, xr.IndexVariable):
            out = var.copy(deep=False)
            out.attrs, out.encoding = _own_attrs(var.attrs), _own_attrs(var.encoding)
            return out
        return xr.Variable(var.dims, var.values.copy(), _own_attrs(var.attrs),
                           _own_attrs(var.encoding), fastpath=True)

    return xr.Dataset({name: own(ds.variables[name]) for name in ds.data_vars},
                      coords={name: own(ds.variables[name]) for name in ds.coords},
                      attrs=_own_attrs(ds.attrs))


_IMMUTABLE = (str, bytes, int, float, complex, bool, type(None), np.generic)


def _own_attrs(attrs: dict) -> dict:
    """``copy.deepcopy(attrs)``, without the call per immutable value (a provider's file has
    dozens of text attributes: most of the CPU of a deep copy)."""
    return {k: v if isinstance(v, _IMMUTABLE) else v.copy() if isinstance(v, np.ndarray)
            else copy.deepcopy(v) for k, v in attrs.items()}
