"""The product store: CF-compliant Zarr v3 data and Parquet tables with a STAC catalog, on a
directory, S3 or memory.

This is the only module that touches storage. Layout under the store's root::

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
"""

from __future__ import annotations

import errno
import json
import logging
import os
import posixpath
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import fsspec
import numpy as np
import pandas as pd
import pystac
import xarray as xr

from hubkit import __version__, catalog, schemas, store_checks
from hubkit.errors import DamagedItemError, HubkitError, SchemaError, StoreError
from hubkit.store_fsck import TMP_PREFIX, FsckMixin, FsckReport, data_token
from hubkit.store_integrity import (
    INTEGRITY_KEY,
    DigestingStore,
    completeness_problems,
    content_problems,
    digest,
    table_record,
    zarr_record,
)
from hubkit.store_s3 import GuardedFileSystem, S3Limits, s3_options_from_env, translate_error

__all__ = ["FsckReport", "S3Limits", "Store", "default_store_url", "open_store",
           "s3_options_from_env", "scratch_store_url"]

log = logging.getLogger(__name__)

_CHUNK_BYTES = 16 * 2**20  # target size of one Zarr chunk (uncompressed)
_TMP_PREFIX = TMP_PREFIX
_MEMORY_LOCK = threading.Lock()
#: How long a writer that lost the race for an Item waits for the winner's to be readable, and
#: how often a conditional PUT refused with 409 (another write of the key in flight) is retried.
_RACE_WAIT = 30.0  # [s]
_CONFLICT_RETRIES = 8


class _NotJSON(StoreError):
    """An object of the store whose bytes are not JSON."""
_BATCH_WRITE_BYTES = 2 * 2**30  # products up to this size go to object stores in one batch


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


class Store(FsckMixin):
    """A product store opened from a URL. See the module docstring for its layout.

    Parameters
    ----------
    url : str
        A local directory, ``file:///path``, ``s3://bucket/prefix`` (endpoint and keys from
        ``FSSPEC_S3_ENDPOINT_URL``/``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``,
        ``AWS_SECRET_ACCESS_KEY`` unless given here) or ``memory://name``. Malformed URLs
        (``s3:/bucket``) and unknown schemes are refused (:mod:`hubkit.store_checks`).
    create : bool
        Create the store when it does not exist (a directory is made; on S3 the bucket must
        exist); with False that is a :class:`MissingStoreError` and nothing is created.
    s3_limits : S3Limits, optional
        Timeouts [s] and attempts for an S3 endpoint (default: ``HUBKIT_S3_*`` or 5 s to
        connect, 10 s to answer, 3 attempts; see :mod:`hubkit.store_s3`).
    **storage_options
        Passed to the fsspec filesystem.
    """

    def __init__(self, url: str, *, create: bool = True, s3_limits: S3Limits | None = None,
                 **storage_options):
        url = str(url)
        store_checks.check_url(url)
        protocol, _, rest = url.partition("://")
        if not _:
            protocol, rest = "file", url
        protocol = protocol.lower()
        if protocol == "file":
            root = os.path.abspath(os.path.expanduser(rest))
            if not create and not os.path.isdir(root):
                raise store_checks.missing_store_error(root, store_checks.local_siblings(root))
            try:
                os.makedirs(root, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the store directory {root}: {exc}") from exc
            self.fs = fsspec.filesystem("file")
            self.root = root
            self.url = root
        elif protocol == "s3":
            options = {**s3_options_from_env(s3_limits), **storage_options}
            self.root = rest.strip("/")
            if not self.root:
                raise StoreError(f"store URL {url!r}: expected s3://bucket[/prefix]")
            self.url = f"s3://{self.root}"
            self.fs = GuardedFileSystem(fsspec.filesystem("s3", **options), self.url)
            self._check_s3(options, create)
        elif protocol == "memory":
            self.fs = fsspec.filesystem("memory", **storage_options)
            self.root = "/" + rest.strip("/")
            self.url = f"memory://{rest.strip('/')}"
        self.protocol = protocol
        self._index_lock = threading.Lock()
        self._index_cache: tuple[object, pd.DataFrame] | None = None

    def _check_s3(self, options: dict, create: bool) -> None:
        """The bucket exists and answers with these credentials; without ``create``, the
        store's prefix holds something."""
        bucket = self.root.split("/")[0]
        endpoint = options.get("endpoint_url") or "the AWS default endpoint"
        try:
            self.fs.ls(bucket)
            if not create and self.root != bucket and not self.fs.exists(self.root):
                parent = posixpath.dirname(self.root)
                siblings = [posixpath.basename(p.rstrip("/"))
                            for p in self.fs.ls(parent, detail=False)]
                raise store_checks.missing_store_error(self.url, siblings)
        except FileNotFoundError:
            raise StoreError(
                f"store {self.url}: bucket {bucket!r} does not exist (endpoint {endpoint}); "
                "create it first"
            ) from None
        except StoreError:
            raise
        except Exception as exc:
            if type(exc).__name__ == "NoCredentialsError" or isinstance(exc, PermissionError):
                raise store_checks.s3_credentials_error(self.url, endpoint, exc) from exc
            raise StoreError(
                f"store {self.url}: cannot reach bucket {bucket!r} at {endpoint}: {exc}"
            ) from exc

    def __repr__(self) -> str:
        return f"<hubkit.Store {self.url}>"

    # -- paths ------------------------------------------------------------------------------
    def _path(self, *parts: str) -> str:
        return posixpath.join(self.root, *parts)

    def _item_path(self, item_id: str) -> str:
        collection = catalog.collection_of(item_id)
        return self._path("catalog", collection, "items", f"{item_id}.json")

    def _zarr_url(self, path: str) -> str:
        """What xarray/zarr are given for a data path (a plain path, or a URL with protocol)."""
        if self.protocol == "file":
            return path
        return f"{self.protocol}://{path.lstrip('/') if self.protocol == 's3' else path}"

    @property
    def storage_options(self) -> dict:
        """fsspec options that reopen this store's filesystem (e.g. on a Dask worker)."""
        return dict(self.fs.storage_options) if self.protocol == "s3" else {}

    # -- low-level writes --------------------------------------------------------------------
    def _write_bytes(self, path: str, data: bytes, *, exclusive: bool = False) -> bool:
        """Write ``data`` at ``path`` atomically; with ``exclusive``, never replace an object.

        Returns False when ``exclusive`` and the object already exists (another writer won).
        On a directory the bytes go to a temporary file first and are linked or renamed into
        place, so a reader sees the whole object or nothing. On S3 one PUT is atomic, and an
        exclusive one is a conditional PUT.
        """
        if self.protocol == "file":
            directory = os.path.dirname(path)
            os.makedirs(directory, exist_ok=True)
            tmp = os.path.join(directory, f"{_TMP_PREFIX}{uuid.uuid4().hex}")
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            try:
                if exclusive:
                    try:
                        os.link(tmp, path)
                    except FileExistsError:
                        return False
                else:
                    os.replace(tmp, path)
                    tmp = None
            finally:
                if tmp is not None:
                    os.unlink(tmp)
            return True
        if not exclusive:
            self.fs.pipe_file(path, data)
        elif self.protocol == "s3":
            # a conditional PUT (If-None-Match: *): S3 refuses to replace an object (412), and
            # answers 409 ConditionalRequestConflict, to be retried, while another conditional
            # write of the key is in flight (s3fs: OSError EBUSY)
            for attempt in range(_CONFLICT_RETRIES + 1):
                try:
                    self.fs.pipe_file(path, data, mode="create")
                    break
                except FileExistsError:
                    return False
                except OSError as exc:
                    if exc.errno != errno.EBUSY or attempt == _CONFLICT_RETRIES:
                        raise
                    time.sleep(min(2.0, 0.05 * 2**attempt))
        else:
            with _MEMORY_LOCK:  # memory stores live in one process: a lock makes this exclusive
                if self.fs.exists(path):
                    return False
                self.fs.pipe_file(path, data)
        return True

    def _read_json(self, path: str) -> dict:
        """The JSON at ``path``: FileNotFoundError when there is none, :class:`_NotJSON` when
        its bytes are not JSON; a failure to reach the store stays its own StoreError (an
        object that cannot be read now is not a damaged one)."""
        data = self.fs.cat_file(path)
        try:
            return json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise _NotJSON(f"{self.url}: {path} is not valid JSON: {exc}") from exc

    def _ensure_collection(self, collection: str) -> None:
        path = self._path("catalog", collection, "collection.json")
        if self.fs.exists(path):
            return
        try:
            schema = schemas.get_schema(collection)
            title, description = schema.title, schema.description
        except SchemaError:
            title, description = collection, f"hubkit products of type {collection!r}"
        coll = catalog.make_collection(collection, title, description)
        coll_dict = coll.to_dict(include_self_link=False, transform_hrefs=False)
        coll_dict["links"] = [
            {"rel": "root", "href": "../catalog.json", "type": "application/json"},
            {"rel": "parent", "href": "../catalog.json", "type": "application/json"},
        ]
        self._write_bytes(path, json.dumps(coll_dict, indent=1).encode(), exclusive=True)
        root = self._path("catalog", "catalog.json")
        if not self.fs.exists(root):
            cat = pystac.Catalog(id="hubkit", description="hubkit product store")
            d = cat.to_dict(include_self_link=False, transform_hrefs=False)
            d["links"] = [{"rel": "root", "href": "./catalog.json", "type": "application/json"}]
            self._write_bytes(root, json.dumps(d, indent=1).encode(), exclusive=True)

    # -- writing products --------------------------------------------------------------------
    def upload(self, path, format: str | None = None) -> pystac.Item:
        """Read, validate and store one source file; return its STAC Item.

        The product id derives from the file's bytes, its format and the reader version: an
        upload of a file already in the store writes nothing and returns the existing Item.

        Raises
        ------
        IngestError, SchemaError
            The file cannot be read or does not match its product type; nothing is written.
        """
        from hubkit import io as hio  # the readers load only when files are uploaded

        path = Path(path)
        ds = hio.read(path, format)
        fmt = ds.attrs["hubkit_format"]
        reader_version = ds.attrs["hubkit_reader_version"]
        digest = hio.checksum(path)
        product_type = schemas.product_type_of(ds)
        item_id = catalog.product_id(product_type, digest, fmt, reader_version)
        existing = self._get_item_or_none(item_id)
        if existing is not None:
            log.info("%s is already stored as %s", path, item_id)
            return existing
        provenance = {
            "inputs": [{"file": ds.attrs["source"], "sha256": digest, "format": fmt}],
            "step": "upload",
            "step_version": str(reader_version),
            "parameters": {"format": fmt},
        }
        return self._commit(ds, item_id, product_type, provenance)

    def upload_many(self, paths, format: str | None = None, *, progress: bool = True,
                    max_workers: int = 4, on_error: str = "raise"):
        """Upload several files in parallel threads, with a progress bar.

        Parameters
        ----------
        on_error : {"raise", "collect"}
            ``"raise"`` re-raises the first failure after the other files finished;
            ``"collect"`` returns ``(items, errors)`` with ``errors`` a list of
            ``(path, HubkitError)``.
        """
        from hubkit.progress import progress_bar

        if on_error not in ("raise", "collect"):
            raise ValueError(f"on_error={on_error!r}: expected 'raise' or 'collect'")
        _import_before_threads()
        paths = [Path(p) for p in paths]
        items, errors = [], []
        with ThreadPoolExecutor(max_workers=max_workers) as pool, progress_bar(
            total=len(paths), desc="upload", unit="file", disable=not progress
        ) as bar:
            futures = {pool.submit(self.upload, p, format): p for p in paths}
            for fut in futures:
                try:
                    items.append(fut.result())
                except HubkitError as exc:
                    errors.append((futures[fut], exc))
                bar.update(1)
        if on_error == "collect":
            return items, errors
        if errors:
            raise errors[0][1]
        return items

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
        item_id, provenance = _computed_identity(product_type, inputs, step, step_version,
                                                 parameters)
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
        item_id, provenance = _computed_identity(product_type, inputs, step, step_version,
                                                 parameters)
        existing = self._get_item_or_none(item_id)
        if existing is not None:
            return existing
        table = df.copy(deep=False)
        table.attrs = table_attrs

        def build(href, provenance):
            return catalog.make_item(table, item_id=item_id, collection=product_type,
                                     asset_href=href, provenance=provenance)

        def write(data_path):
            data = _parquet_bytes(table, {**table_attrs, "hubkit_product_id": item_id})
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
            out = _for_zarr(ds)
            out.attrs["hubkit_product_id"] = item_id
            return zarr_record(self._write_zarr(out, data_path))

        return self._commit_product(item_id, collection, provenance, ".zarr", build, write)

    def _commit_product(self, item_id: str, collection: str, provenance: dict, suffix: str,
                        build, write) -> pystac.Item:
        """Write data under a fresh token, then the Item (the commit point).

        ``build(href, provenance)`` returns the Item whose data asset is at ``href`` (relative to
        the Item); ``write(data_path)`` writes the data at ``data_path``, a fresh private path
        ending in ``suffix``, and returns their integrity record (:mod:`hubkit.store_integrity`).
        Whatever the format, the protocol is the same: the Item is built before any byte is
        written, the data go first under a token that records when the write started
        (:func:`hubkit.store_fsck.data_token`), the Item last and exclusively; a writer that
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

    def _write_zarr(self, ds: xr.Dataset, data_path: str) -> dict[str, tuple[int, str]]:
        """Write ``ds`` as a Zarr v3 group at ``data_path`` (a fresh, private folder); return
        the size and SHA-256 of every object written, by key.

        On object stores a product of moderate size is encoded in memory first and its objects
        sent in one concurrent batch: Zarr's own writer makes a HEAD, LIST or PUT round trip at
        a time, which costs ~3x the transfer on S3 (``python -m benchmarks.store_upload``).
        Otherwise each object is hashed as Zarr writes it (:class:`DigestingStore`).

        The write runs in this process (Dask's threaded scheduler), even when a distributed
        client is the default: the target and its hashing are local objects, and a lazy
        dataset (an opened product, changed) computes its chunks here as it writes them.
        """
        import dask
        import zarr

        with dask.config.set(scheduler="threads"):
            return self._write_zarr_here(ds, data_path, zarr)

    def _write_zarr_here(self, ds: xr.Dataset, data_path: str, zarr) -> dict:
        if self.protocol == "s3" and ds.nbytes <= _BATCH_WRITE_BYTES:
            objects: dict = {}
            ds.to_zarr(zarr.storage.MemoryStore(store_dict=objects), mode="w-", zarr_format=3,
                       consolidated=False)
            payload = {key: buf.to_bytes() for key, buf in objects.items()}
            self.fs.pipe({posixpath.join(data_path, k): v for k, v in payload.items()})
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

    def _commit_item(self, item_path: str, item: pystac.Item) -> bool:
        d = item.to_dict(include_self_link=False, transform_hrefs=False)
        d["links"] = [
            {"rel": "collection", "href": "../collection.json", "type": "application/json"},
            {"rel": "parent", "href": "../collection.json", "type": "application/json"},
            {"rel": "root", "href": "../../catalog.json", "type": "application/json"},
        ]
        return self._write_bytes(item_path, json.dumps(d, indent=1).encode(), exclusive=True)

    def _remove_after_failure(self, path: str) -> str:
        """Remove a failed write's data; a failure to do so is logged, never raised (it would
        hide the error that matters). Returns a note for the error message ('' when removed)."""
        try:
            self._remove(path)
        except Exception as exc:
            log.warning("%s: could not remove the partial data %s: %s", self.url, path, exc)
            return (f". Its partial data at {path} could not be removed ({exc}); "
                    "`hubkit fsck --repair` removes them once older than --min-age")
        return ""

    def _remove(self, path: str) -> None:
        try:
            self.fs.rm(path, recursive=True)
        except FileNotFoundError:
            pass

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

    # -- reading -----------------------------------------------------------------------------
    def _item_dict(self, item_id: str, path: str) -> dict:
        """The checked JSON of Item ``item_id`` at ``path`` (see :func:`catalog.item_problem`).

        Raises FileNotFoundError when there is none, :class:`DamagedItemError` when it cannot be
        used.
        """
        try:
            d = self._read_json(path)
        except _NotJSON as exc:
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
            return _item_from_dict(d)
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

    _asset_path = data_path  # the name other modules used before

    def _check_complete(self, item: pystac.Item, path: str) -> None:
        """Raise :class:`DamagedItemError` when a Zarr product lacks objects its Item records
        (one listing, no reads); legacy Items (no record) pass."""
        record = item.properties.get(INTEGRITY_KEY)
        if record is None:
            return
        self._invalidate(path)
        keys = [posixpath.relpath(p, path) for p in self.fs.find(path)]
        if "zarr.json" not in keys:
            raise FileNotFoundError(path)
        problems = completeness_problems(record, keys)
        if problems:
            raise DamagedItemError(
                f"{self.url}: product {item.id} is incomplete at {path}: {'; '.join(problems)}"
                " (a missing chunk would read as fill values); run `hubkit fsck`",
                item.id, "; ".join(problems),
            )

    def open(self, item_or_id, *, chunks=None) -> xr.Dataset | pd.DataFrame:
        """Open a product: a dataset lazily as a Dask-backed :class:`xarray.Dataset`, a table
        (:meth:`put_table`) as a :class:`pandas.DataFrame` with its ``attrs``.

        ``chunks`` is passed to :func:`xarray.open_zarr`; by default the Dask chunks are the
        stored Zarr chunks (about 16 MB each). Tables are read whole.
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
            return _read_parquet_bytes(data)
        try:
            self._check_complete(item, path)
            return _object_text(xr.open_zarr(
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

    def collections(self) -> list[str]:
        """Product types that have a Collection in this store."""
        base = self._path("catalog")
        self._invalidate(base)
        try:
            entries = self.fs.ls(base, detail=False)
        except FileNotFoundError:
            return []
        return sorted(
            posixpath.basename(e.rstrip("/"))
            for e in entries
            if not e.endswith(".json") and self.fs.isdir(e)
        )

    def _invalidate(self, path: str) -> None:
        if self.protocol != "file":
            self.fs.invalidate_cache(path)

    def _list_item_paths(self, collection: str | None = None) -> dict[str, str]:
        """``{item id: path}`` of every committed Item (listing only, no reads)."""
        return self._scan_item_folders(collection)[0]

    def _scan_item_folders(self, collection: str | None = None):
        """``({item id: path}, [stray paths])``: files named ``<id>.json`` with an id of this
        collection are Items; any other file but a temporary one (``X (copy).json``) is stray."""
        names = [collection] if collection else self.collections()
        items, strays = {}, []
        for name in names:
            folder = self._path("catalog", name, "items")
            try:
                names = self._ls_names(folder)
            except FileNotFoundError:
                continue
            for base in names:
                if base.startswith(_TMP_PREFIX):
                    continue
                if base.endswith(".json") and _is_item_id(base[:-5], name):
                    items[base[:-5]] = posixpath.join(folder, base)
                else:
                    strays.append(posixpath.join(folder, base))
        return items, sorted(strays)

    def _ls_names(self, folder: str) -> list[str]:
        """Names in ``folder`` (``os.scandir`` on a directory: 4x faster than fsspec's ls)."""
        if self.protocol == "file":
            with os.scandir(folder) as entries:
                return [e.name for e in entries]
        self._invalidate(folder)
        return [posixpath.basename(p.rstrip("/")) for p in self.fs.ls(folder, detail=False)]

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

    # -- search ------------------------------------------------------------------------------
    @property
    def _index_path(self) -> str:
        return self._path("index", "items.parquet")

    def _load_index(self) -> pd.DataFrame:
        path = self._index_path
        try:
            info = self.fs.info(path)
        except FileNotFoundError:
            return catalog.index_rows([])
        stamp = _stamp(info)
        if self._index_cache is not None and self._index_cache[0] == stamp:
            return self._index_cache[1]
        try:
            df = pd.read_parquet(self._zarr_url(path) if self.protocol != "file" else path,
                                 storage_options=self.storage_options or None)
        except Exception as exc:  # a damaged index is only a cache: rebuild it
            log.warning("search index %s unreadable (%s); rebuilding", path, exc)
            return catalog.index_rows([])
        problem = catalog.index_problem(df)
        if problem:
            log.warning("search index %s: %s; rebuilding it from the items", path, problem)
            return catalog.index_rows([])
        self._index_cache = (stamp, df)
        return df

    def index(self) -> pd.DataFrame:
        """The search index, brought up to date with the committed Items.

        The Items are listed (a cheap listing, no reads); Items missing from the index are read
        and added, rows of deleted Items dropped, and the refreshed index is written back.
        """
        with self._index_lock:
            listing = self._list_item_paths()
            df = self._load_index()
            known = set(df["id"].astype(str))
            listed = set(listing)
            if known == listed:
                return df
            added = catalog.index_rows(self._read_items(sorted(listed - known), listing))
            kept = df[df["id"].isin(listed)]
            if not len(added) and len(kept) == len(df):
                return df  # only damaged Items are new: nothing to write back
            df = pd.concat([kept, added], ignore_index=True) if len(kept) else added
            df = df.sort_values("id", ignore_index=True)
            self._save_index(df)
            return df

    def _save_index(self, df: pd.DataFrame) -> None:
        data = df.to_parquet(index=False)
        try:
            self._write_bytes(self._index_path, data)
            info = self.fs.info(self._index_path)
        except OSError as exc:  # read-only store: searching still works, just slower
            log.warning("cannot write the search index %s: %s", self._index_path, exc)
            return
        self._index_cache = (_stamp(info), df)

    def rebuild_index(self) -> pd.DataFrame:
        """Rebuild the search index from the Items alone."""
        with self._index_lock:
            listing = self._list_item_paths()
            df = catalog.index_rows(self._read_items(sorted(listing), listing))
            self._save_index(df)
            return df

    def search(self, collection: str | None = None, *, bbox=None, datetime=None,
               species: str | None = None, instrument: str | None = None,
               limit: int | None = None, site: str | None = None, inlet=None,
               network: str | None = None, scale: str | None = None,
               platform: str | None = None) -> list[pystac.Item]:
        """Items matching every given filter, in id order.

        Parameters
        ----------
        collection : str, optional
            Product type, e.g. ``"oco2-soundings"``.
        bbox : (west, south, east, north), optional
            Items whose bounding box intersects this one. [°]
        datetime : str or (start, end), optional
            ``"2016-08/2016-09"``, ``"2016-08-31"``, ``"../2016-09"`` or a pair; Items whose time
            range overlaps it.
        species, instrument : str, optional
            Case-insensitive equality; a product of several species (``"co2,ch4,co"``) matches
            each of them.
        limit : int, optional
            At most this many Items.
        site, inlet, network, scale, platform : optional
            Station facets of in-situ products: ``site`` (code, e.g. ``"BAO"``), ``inlet``
            (intake height [m], ``100`` or ``"100m"``: products that have that inlet),
            ``network``, ``scale`` (calibration scale) and ``platform``; case-insensitive.
        """
        if collection is not None:
            catalog.check_name(collection, "collection")
        index = self.index()
        _check_search_terms(self, index, collection, species, instrument)
        hits = catalog.filter_index(
            index, collection=collection, bbox=bbox, datetime=datetime,
            species=species, instrument=instrument,
            site=site, inlet=inlet, network=network, scale=scale, platform=platform,
        )
        ids = list(hits["id"])[:limit]
        found = []
        for d in self._read_items(ids):
            try:
                found.append(_item_from_dict(d))
            except Exception as exc:  # what pystac refuses: leave it out, as a damaged Item
                log.warning("%s: item %s is not a valid STAC Item (%s); run `hubkit fsck`",
                            self.url, d.get("id"), exc)
        return found

    # -- records: small JSON documents beside the catalog (e.g. the chain's failure log) -----
    def _record_path(self, kind: str, name: str) -> str:
        return self._path("records", catalog.check_name(kind, "record kind"),
                          f"{catalog.check_name(name, 'record name')}.json")

    def put_record(self, kind: str, name: str, record: dict) -> None:
        """Write (or replace) the JSON record ``name`` of ``kind`` atomically."""
        self._write_bytes(self._record_path(kind, name), json.dumps(record, indent=1).encode())

    def get_record(self, kind: str, name: str) -> dict | None:
        """The record ``name`` of ``kind``, or None when there is none (or it is unreadable)."""
        path = self._record_path(kind, name)
        self._invalidate(posixpath.dirname(path))
        try:
            return self._read_json(path)
        except (FileNotFoundError, StoreError):
            return None

    def delete_record(self, kind: str, name: str) -> None:
        """Remove a record; a missing one is not an error."""
        self._remove(self._record_path(kind, name))


def _computed_identity(product_type, inputs, step, step_version, parameters):
    """Content-derived id and provenance of a computed product (see :meth:`Store.put`)."""
    parameters = dict(parameters or {})
    inputs = sorted(str(i) for i in inputs)
    item_id = catalog.product_id(product_type, inputs, step, str(step_version), parameters)
    provenance = {
        "inputs": inputs,
        "step": step,
        "step_version": str(step_version),
        "parameters": parameters,
    }
    return item_id, provenance


def _check_search_terms(store: Store, index: pd.DataFrame, collection, species,
                        instrument) -> None:
    """Refuse a product type, species or instrument that nothing can match (did you mean …)."""
    if collection is None and species is None and instrument is None:
        return
    known_species = {s.species for s in schemas.PRODUCT_TYPES.values()}
    for schema in schemas.PRODUCT_TYPES.values():
        known_species.update(name for name, _units in schema.species_units)
    store_checks.check_search_terms(
        collection=collection, species=species, instrument=instrument,
        collections=set(schemas.PRODUCT_TYPES) | set(index["collection"].dropna()),
        species_known={*known_species, *(name.strip() for names in index["species"].dropna()
                                          for name in str(names).split(","))} - {None},
        instruments=set(index["instrument"].dropna()), store_url=store.url)


def _import_before_threads() -> None:
    """Import what uploads import lazily, once, before upload threads start.

    xarray imports dask on first use and Zarr its codecs; two threads doing the first import
    at once see a partly initialised module ("cannot import name 'annotate' from partially
    initialized module 'dask.base'") and one upload fails.
    """
    import dask.array  # noqa: F401
    import dask.base  # noqa: F401
    import zarr.codecs  # noqa: F401

    from hubkit import io  # noqa: F401  (the readers)


def _is_item_id(name: str, collection: str) -> bool:
    try:
        return catalog.collection_of(name) == collection
    except StoreError:
        return False


def _stamp(info: dict) -> tuple:
    """What tells one version of an object from another: time, size, ETag."""
    return (info.get("mtime") or info.get("LastModified") or info.get("created"),
            info.get("size"), info.get("ETag"))


def _object_text(ds: xr.Dataset) -> xr.Dataset:
    """Text variables as Python ``str`` objects (lazily): Zarr v3 variable-length strings come
    back as NumPy's ``StringDType``, which ``ds.where(...)`` cannot promote (it fills with NaN),
    so a flag stored as text would be unusable in the commonest selection."""
    text = [name for name, var in ds.variables.items()
            if var.dtype.kind == "T" and name not in ds.indexes]
    if not text:
        return ds
    return ds.assign({name: ds[name].astype(object) for name in text if name in ds.data_vars}
                     ).assign_coords({name: ds[name].astype(object) for name in text
                                      if name in ds.coords})


def _item_from_dict(d: dict) -> pystac.Item:
    # Items here were written by this module with the current STAC version: skip pystac's
    # migration step (a deep copy, 6x the cost of the rest of from_dict).
    return pystac.Item.from_dict(d, preserve_dict=False, migrate=False)


def _compressors() -> tuple:
    """Blosc LZ4 with byte shuffle: the same ratio as Zarr's default zstd on gridded XCO2 (1.9x)
    at 2-2.5x its encoding speed (``python -m benchmarks.store_upload``)."""
    from zarr.codecs import BloscCodec

    return (BloscCodec(cname="lz4", clevel=5, shuffle="shuffle"),)


def _for_zarr(ds: xr.Dataset) -> xr.Dataset:
    """A copy of ``ds`` ready for Zarr v3: source encodings dropped, chunks of ~16 MB."""
    out = ds.copy(deep=False)
    for _name, var in out.variables.items():
        enc = {k: v for k, v in var.encoding.items() if k in ("units", "calendar", "dtype")}
        if var.dtype.kind == "M":
            # xarray chooses the time units that hold every value exactly as int64; a source's
            # own units (seconds since ... for millisecond times) would be stored as floats,
            # and lazy datetimes need units and dtype both or neither
            for key in ("dtype", "units", "calendar"):
                enc.pop(key, None)
        if var.ndim and var.dtype.kind not in "OUS":
            row_bytes = var.dtype.itemsize * int(np.prod(var.shape[1:], dtype=np.int64))
            rows = max(1, min(var.shape[0], _CHUNK_BYTES // max(row_bytes, 1)))
            enc["chunks"] = (rows, *var.shape[1:])
            enc["compressors"] = _compressors()
        var.encoding = enc
    return out


_TABLE_META_KEY = b"hubkit"


def _parquet_bytes(df: pd.DataFrame, attrs: dict) -> bytes:
    """``df`` as Parquet bytes (Zstandard), with ``attrs`` as JSON in the schema metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    plain = df.copy(deep=False)
    plain.attrs = {}  # kept once, under our own key
    table = pa.Table.from_pandas(plain)
    meta = dict(table.schema.metadata or {})
    meta[_TABLE_META_KEY] = json.dumps(attrs).encode()
    table = table.replace_schema_metadata(meta)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


def _read_parquet_bytes(data: bytes) -> pd.DataFrame:
    """The table :func:`_parquet_bytes` wrote, with its ``attrs`` restored."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(pa.BufferReader(data))
    attrs = json.loads((table.schema.metadata or {}).get(_TABLE_META_KEY, b"{}"))
    df = table.to_pandas()
    df.attrs = attrs
    return df
