"""The product store: CF-compliant Zarr v3 data and Parquet tables with a STAC catalog, on a
directory, S3 or memory.

The store package is the only part of hubkit that touches storage. Layout under the store's root::

    catalog/catalog.json                          root STAC Catalog
    catalog/<product-type>/collection.json        one STAC Collection per product type
    catalog/<product-type>/items/<id>.json        one STAC Item per product (the commit point)
    data/<product-type>/<id>/<token>.zarr         the product's data (Zarr v3 group)
    data/<product-type>/<id>/<token>.parquet      ... or a table product's (Parquet file)
    index/items.parquet                           search index, rebuilt from the Items at will
    records/<kind>/<name>.json                    small JSON records (the chain's failure log)

Writing the Item is the commit point: the data go first, under a fresh token, and the Item last,
so a reader never sees half a product and a writer that dies leaves only unreferenced data (a
folder or a file), which :meth:`Store.fsck` finds and removes. Product ids are derived from
content, so uploading the same file again returns the existing Item and writes nothing.

The package's rooms: :mod:`~hubkit.store.base` (URL, file system, atomic writes, listings,
records), :mod:`~hubkit.store.items` (reading Items and data), :mod:`~hubkit.store.index`
(search), :mod:`~hubkit.store.encoding` (Zarr and Parquet), :mod:`~hubkit.store.zarr_encode`
and :mod:`~hubkit.store.zarr_decode` (Zarr objects in memory, directly),
:mod:`~hubkit.store.integrity` (chunk records and hashes), :mod:`~hubkit.store.fsck`,
:mod:`~hubkit.store.s3` (timeouts and errors) and :mod:`~hubkit.store.checks` (what users
type); this module holds the facade, :class:`Store`, and its writers. Files come in through
:mod:`hubkit.ingest`.
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
import time
from datetime import datetime, timezone

import pandas as pd
import pystac
import xarray as xr

from hubkit import catalog, schemas
from hubkit.errors import HubkitError, SchemaError, StoreError
from hubkit.store import encoding
from hubkit.store.base import StoreBase
from hubkit.store.fsck import FsckMixin, data_token
from hubkit.store.index import SearchMixin
from hubkit.store.integrity import INTEGRITY_KEY, DigestingStore, digest, table_record, zarr_record
from hubkit.store.items import ReadMixin
from hubkit.store.s3 import S3Limits
from hubkit.store.zarr_encode import zarr_objects
from hubkit.version import __version__

__all__ = ["Store", "default_store_url", "open_store", "scratch_store_url"]

log = logging.getLogger(__name__)

#: How long a writer that lost the race for an Item waits for the winner's to be readable.
_RACE_WAIT = 30.0  # [s]


def default_store_url() -> str:
    """``HUBKIT_STORE`` if set, else ``$XDG_DATA_HOME/hubkit/store`` (``~/.local/share/…``)."""
    url = os.environ.get("HUBKIT_STORE")
    if url:
        return url
    data_home = os.environ.get("XDG_DATA_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "share"
    )
    return os.path.join(data_home, "hubkit", "store")


def scratch_store_url(name: str = "scratch") -> str:
    """A store of one's own for examples, notebooks and demos, never the ``HUBKIT_STORE`` that
    researchers share: simulated products stay out of the real catalog.

    ``HUBKIT_SCRATCH_STORE`` + ``/name`` if set; else, when ``HUBKIT_STORE`` is on S3 (the hub),
    ``s3://<its bucket>/scratch/<user>/<name>`` (``JUPYTERHUB_USER``, else the login name), which
    Dask workers reach with the same credentials; else ``$XDG_DATA_HOME/hubkit/scratch/<name>``
    (``~/.local/share/…``).
    """
    catalog.check_name(name, "scratch store name")
    base = os.environ.get("HUBKIT_SCRATCH_STORE")
    if base:
        return f"{base.rstrip('/')}/{name}"
    shared = os.environ.get("HUBKIT_STORE", "")
    if shared.startswith("s3://") and shared[5:].strip("/"):
        import getpass

        bucket = shared[5:].strip("/").split("/")[0]
        user = os.environ.get("JUPYTERHUB_USER") or getpass.getuser()
        return f"s3://{bucket}/scratch/{catalog.check_name(user, 'user name')}/{name}"
    data_home = os.environ.get("XDG_DATA_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "share"
    )
    return os.path.join(data_home, "hubkit", "scratch", name)


def open_store(url: str | None = None, *, create: bool = True, s3_limits: S3Limits | None = None,
               **storage_options) -> Store:
    """Open the store at ``url``: a directory path, ``s3://bucket/prefix`` or ``memory://name``.

    Without ``url``, ``HUBKIT_STORE`` or the local default (:func:`default_store_url`) is used.
    With ``create=False`` a store that does not exist yet is a :class:`MissingStoreError`
    (nothing is created). ``storage_options`` go to the fsspec filesystem (for S3 they override
    the environment); ``s3_limits`` bound the waits for an S3 endpoint (default:
    :meth:`S3Limits.from_env`).
    """
    return Store(url or default_store_url(), create=create, s3_limits=s3_limits,
                 **storage_options)





class Store(ReadMixin, SearchMixin, FsckMixin, StoreBase):
    """A product store opened from a URL. See the module docstring for its layout.

    Parameters
    ----------
    url : str
        A local directory, ``file:///path``, ``s3://bucket/prefix`` (endpoint and keys from
        ``FSSPEC_S3_ENDPOINT_URL``/``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``,
        ``AWS_SECRET_ACCESS_KEY`` unless given here) or ``memory://name``. Malformed URLs
        (``s3:/bucket``) and unknown schemes are refused (:mod:`hubkit.store.checks`).
    create : bool
        Create the store when it does not exist (a directory is made; on S3 the bucket must
        exist); with False that is a :class:`MissingStoreError` and nothing is created.
    s3_limits : S3Limits, optional
        Timeouts [s] and attempts for an S3 endpoint (default: ``HUBKIT_S3_*`` or 5 s to
        connect, 10 s to answer, 3 attempts; see :mod:`hubkit.store.s3`).
    **storage_options
        Passed to the fsspec filesystem.
    """


    # -- writing products --------------------------------------------------------------------
    def put_source(self, ds: xr.Dataset, *, item_id: str, provenance: dict) -> pystac.Item:
        """Store a dataset read from a source file under the id its reader derived
        (:func:`hubkit.ingest.upload`); the Item already stored under ``item_id`` when there is
        one (nothing is written).

        ``ds`` has been validated against its product type by its reader; ``provenance`` names
        the file, its SHA-256 and format, and the reader's version.
        """
        existing = self._get_item_or_none(item_id)
        if existing is not None:
            log.info("%s is already stored as %s", ds.attrs.get("source", "the file"), item_id)
            return existing
        return self._commit(ds, item_id, schemas.product_type_of(ds), provenance)

    def put(self, ds: xr.Dataset, *, product_type: str | None = None, inputs=(),
            step: str = "put", step_version: str = "1", parameters=None) -> pystac.Item:
        """Store a dataset computed in Python as a product (the processing chain's writer).

        The id derives from ``inputs`` (product ids or file checksums), ``step``,
        ``step_version`` and ``parameters``, so the same computation stored twice is one product.
        """
        product_type = product_type or schemas.product_type_of(ds)
        catalog.check_name(product_type, "product type")
        if product_type in schemas.PRODUCT_TYPES:
            schemas.validate(ds, source=f"{step} output", product_type=product_type)
        elif not ds.data_vars:
            raise SchemaError(f"{step} output: dataset has no data variables")
        item_id, provenance = catalog.computed_identity(product_type, inputs, step,
                                                        step_version, parameters)
        existing = self._get_item_or_none(item_id)
        if existing is not None:
            return existing
        ds = ds.copy()
        ds.attrs["hubkit_product_type"] = product_type
        if str(ds.attrs.get("hubkit_simulated", "")).lower() != "true":
            simulated = self._simulated_among(inputs)
            if simulated:  # made from simulated products: labelled too
                ds.attrs["hubkit_simulated"] = "true"
                ds.attrs.setdefault("hubkit_simulated_inputs", ", ".join(simulated))
        return self._commit(ds, item_id, product_type, provenance)

    def _simulated_among(self, inputs) -> list[str]:
        """The inputs that are products of this store labelled ``hubkit:simulated``."""
        found = []
        for name in inputs:
            try:
                item = self._get_item_or_none(str(name))
            except HubkitError:  # not a product id (a file checksum, a function's name)
                continue
            if item is not None and item.properties.get(f"{catalog.STAC_PREFIX}simulated"):
                found.append(item.id)
        return found

    def put_table(self, df: pd.DataFrame, *, product_type: str, inputs=(), step: str = "put",
                  step_version: str = "1", parameters=None, attrs=None) -> pystac.Item:
        """Store a table (one row per record, e.g. detected peaks) as a Parquet product.

        The id derives from ``inputs``, ``step``, ``step_version`` and ``parameters`` as in
        :meth:`put`, and the commit protocol is the same: the Parquet file goes first under a
        fresh token, the Item last. The Item's extent comes from the ``latitude``/``longitude``
        and ``time`` columns. :meth:`open` returns the table as a :class:`pandas.DataFrame`.

        Parameters
        ----------
        df : pandas.DataFrame
            The table; its index is kept (a default RangeIndex costs nothing).
        product_type : str
            Its collection, e.g. ``"oco2-peaks"``; a type with a schema is validated against it.
        inputs : sequence of str
            Product ids (or file checksums) it was made from.
        step, step_version : str
            The step that made it and its version.
        parameters : dict, optional
            The step's parameters (JSON-serialisable).
        attrs : dict, optional
            Table attributes, JSON-serialisable, merged over ``df.attrs``: ``title``,
            ``hubkit_species``, ``instrument``, ``platform`` become searchable as for datasets,
            and ``units`` (``{column: units}``) documents the columns. They come back as the
            opened table's ``attrs``.
        """
        catalog.check_name(product_type, "product type")
        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"put_table: expected a pandas.DataFrame, got {type(df).__name__}")
        table_attrs = {**df.attrs, **(attrs or {})}
        table_attrs["hubkit_product_type"] = product_type
        try:
            json.dumps(table_attrs)
        except TypeError as exc:
            raise SchemaError(f"{step} output: table attrs are not JSON-serialisable: {exc}") \
                from None
        if product_type in schemas.PRODUCT_TYPES:
            schemas.validate_table(df, table_attrs.get("units") or {},
                                   source=f"{step} output", product_type=product_type)
        elif not len(df.columns):
            raise SchemaError(f"{step} output: table has no columns")
        item_id, provenance = catalog.computed_identity(product_type, inputs, step,
                                                        step_version, parameters)
        existing = self._get_item_or_none(item_id)
        if existing is not None:
            return existing
        table = df.copy(deep=False)
        table.attrs = table_attrs

        def build(href, provenance):
            return catalog.make_item(table, item_id=item_id, collection=product_type,
                                     asset_href=href, provenance=provenance)

        def write(data_path):
            data = encoding.parquet_bytes(table, {**table_attrs, "hubkit_product_id": item_id})
            self._write_bytes(data_path, data, exclusive=True)
            return table_record(data)

        return self._commit_product(item_id, product_type, provenance, ".parquet", build, write)

    def _commit(self, ds: xr.Dataset, item_id: str, collection: str,
                provenance: dict) -> pystac.Item:
        """Commit a dataset as a Zarr v3 group (see :meth:`_commit_product`)."""

        def build(href, provenance):
            return catalog.make_item(ds, item_id=item_id, collection=collection,
                                     asset_href=href, provenance=provenance)

        def write(data_path):
            out = encoding.for_zarr(ds)
            out.attrs["hubkit_product_id"] = item_id
            return zarr_record(self._write_zarr(out, data_path))

        return self._commit_product(item_id, collection, provenance, ".zarr", build, write)

    def _commit_product(self, item_id: str, collection: str, provenance: dict, suffix: str,
                        build, write) -> pystac.Item:
        """Write data under a fresh token, then the Item (the commit point).

        ``build(href, provenance)`` returns the Item whose data asset is at ``href`` (relative to
        the Item); ``write(data_path)`` writes the data at ``data_path``, a fresh private path
        ending in ``suffix``, and returns their integrity record (:mod:`hubkit.store.integrity`).
        Whatever the format, the protocol is the same: the Item is built before any byte is
        written, the data go first under a token that records when the write started
        (:func:`hubkit.store.fsck.data_token`), the Item last and exclusively; a writer that
        loses the race removes its copy.
        """
        self._ensure_collection(collection)
        data_path = self._path("data", collection, item_id, data_token(suffix))
        provenance = {
            **provenance,
            "hubkit_version": __version__,
            "created": datetime.now(timezone.utc).isoformat(),
        }
        item_path = self._item_path(item_id)
        href = posixpath.relpath(data_path, posixpath.dirname(item_path))
        # the Item is built before any byte is written: data it cannot describe fail here
        item = build(href, provenance)
        try:
            item.properties[INTEGRITY_KEY] = write(data_path)
        except BaseException as exc:
            left = self._remove_after_failure(data_path)
            if not isinstance(exc, Exception):
                raise
            raise StoreError(f"{self.url}: writing the data of {item_id} failed: {exc}{left}") \
                from exc
        if not self._commit_item(item_path, item):
            # Another writer stored the same product first: keep theirs, drop our copy.
            self._remove(data_path)
            return self._winners_item(item_id)
        stored = self.get_item(item_id)
        if stored.assets["data"].href != href:  # a server that ignored the conditional PUT
            self._remove(data_path)
        return stored

    def _winners_item(self, item_id: str) -> pystac.Item:
        """The Item of the writer that won the race for ``item_id``. A server may refuse our
        conditional write before the winner's is readable (moto checks, then writes): wait
        for it up to :data:`_RACE_WAIT` seconds."""
        deadline = time.monotonic() + _RACE_WAIT
        pause = 0.02
        while True:
            self._invalidate(posixpath.dirname(self._item_path(item_id)))
            item = self._get_item_or_none(item_id)
            if item is not None:
                return item
            if time.monotonic() > deadline:
                raise StoreError(
                    f"{self.url}: the Item of {item_id} was being written by another writer "
                    f"(ours was refused) but did not appear within {_RACE_WAIT:.0f} s; upload "
                    "again (a repeat is a no-op once it is there)"
                )
            time.sleep(pause)
            pause = min(0.5, pause * 2)

    def delete(self, item_or_id) -> None:
        """Remove a product: its Item first (so it disappears at once), then its data folder.

        Only the product's own folder ``data/<type>/<id>/`` is removed, whatever its Item says;
        a damaged Item can be deleted too.
        """
        item_id = item_or_id.id if isinstance(item_or_id, pystac.Item) else item_or_id
        item_path = self._item_path(item_id)
        self._invalidate(posixpath.dirname(item_path))
        try:
            self.fs.rm(item_path)
        except FileNotFoundError:
            raise StoreError(f"{self.url}: no product with id {item_id!r}") from None
        self._remove(self._path(catalog.data_prefix(item_id)))


    def _write_zarr(self, ds: xr.Dataset, data_path: str) -> dict[str, tuple[int, str]]:
        """Write ``ds`` as a Zarr v3 group at ``data_path`` (a fresh, private folder); return
        the size and SHA-256 of every object written, by key.

        A product of moderate size is encoded in memory first and its objects written in one
        go: on object stores in one concurrent batch (Zarr's own writer makes a HEAD, LIST or
        PUT round trip at a time, ~3x the transfer on S3: ``python -m
        benchmarks.store_upload``), on a directory file by file (Zarr's writer costs ~2x the
        CPU of encoding on small products: ``python -m benchmarks.openghg``). In-memory data
        are encoded by :func:`~hubkit.store.zarr_encode.zarr_objects` (Zarr's objects without
        its asynchronous writer), the rest by ``to_zarr`` into a memory store. The objects, and
        so the record, are the same bytes either way. Larger products, and other stores, are
        written by Zarr chunk by chunk, each object hashed as it is written
        (:class:`DigestingStore`).

        The write runs in this process (Dask's threaded scheduler), even when a distributed
        client is the default: the target and its hashing are local objects, and a lazy
        dataset (an opened product, changed) computes its chunks here as it writes them.
        """
        import dask
        import zarr

        with dask.config.set(scheduler="threads"):
            return self._write_zarr_here(ds, data_path, zarr)

    def _write_zarr_here(self, ds: xr.Dataset, data_path: str, zarr) -> dict:
        batch = {"s3": encoding.BATCH_WRITE_BYTES, "file": encoding.SMALL_WRITE_BYTES}
        if ds.nbytes <= batch.get(self.protocol, -1):
            payload = zarr_objects(ds)  # Zarr's objects without its async writer, or None
            if payload is None:
                objects: dict = {}
                ds.to_zarr(zarr.storage.MemoryStore(store_dict=objects), mode="w-",
                           zarr_format=3, consolidated=False)
                payload = {key: buf.to_bytes() for key, buf in objects.items()}
            self._put_objects(data_path, payload)
            return {key: digest(data) for key, data in payload.items()}
        if self.protocol == "file":
            target = zarr.storage.LocalStore(data_path)
        else:
            target = zarr.storage.FsspecStore.from_url(
                self._zarr_url(data_path), storage_options=self.storage_options or None)
        store = DigestingStore(target)
        ds.to_zarr(store, mode="w-", zarr_format=3, consolidated=False)
        digests = dict(store.digests)
        for key in digests:  # metadata may be rewritten concurrently: hash what was kept
            if posixpath.basename(key) == "zarr.json":
                digests[key] = digest(self.fs.cat_file(posixpath.join(data_path, key)))
        return digests

    def _put_objects(self, data_path: str, payload: dict[str, bytes]) -> None:
        """Write Zarr objects ``{key: bytes}`` under ``data_path``, a fresh private folder (as
        Zarr's own writers do: no temporary files, the Item written later is the commit)."""
        if self.protocol != "file":
            self.fs.pipe({posixpath.join(data_path, k): v for k, v in payload.items()})
            return
        made = set()
        for key, data in payload.items():
            path = os.path.join(data_path, *key.split("/"))
            folder = os.path.dirname(path)
            if folder not in made:
                os.makedirs(folder, exist_ok=True)
                made.add(folder)
            with open(path, "xb") as f:  # a fresh folder: an existing object is an error
                f.write(data)
