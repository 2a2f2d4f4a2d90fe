"""The store's objects: its URL and file system, paths, atomic writes, JSON, listings, records.

:class:`StoreBase` is what every other part of :class:`hubkit.store.Store` builds on; it knows
nothing of products beyond where their Items and data live (see :mod:`hubkit.store` for the
layout).
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

import fsspec
import pandas as pd
import pystac

from hubkit import catalog, schemas
from hubkit.errors import SchemaError, StoreError
from hubkit.store import checks
from hubkit.store.fsck import TMP_PREFIX
from hubkit.store.s3 import GuardedFileSystem, S3Limits, s3_options_from_env

__all__ = ["NotJSON", "StoreBase"]

log = logging.getLogger(__name__)

_MEMORY_LOCK = threading.Lock()
#: How often a conditional PUT refused with 409 (another write of the key in flight) is retried.
_CONFLICT_RETRIES = 8


class NotJSON(StoreError):
    """An object of the store whose bytes are not JSON."""


class StoreBase:
    """A store's URL, file system and objects (the base of :class:`hubkit.store.Store`)."""

    def __init__(self, url: str, *, create: bool = True, s3_limits: S3Limits | None = None,
                 **storage_options):
        url = str(url)
        checks.check_url(url)
        protocol, _, rest = url.partition("://")
        if not _:
            protocol, rest = "file", url
        protocol = protocol.lower()
        if protocol == "file":
            root = os.path.abspath(os.path.expanduser(rest))
            if not create and not os.path.isdir(root):
                raise checks.missing_store_error(root, checks.local_siblings(root))
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
        # small products read whole, decoded: {(id, data path): Dataset} (see ReadMixin.open)
        self._whole_lock = threading.Lock()
        self._whole_cache: dict = {}

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
                raise checks.missing_store_error(self.url, siblings)
        except FileNotFoundError:
            raise StoreError(
                f"store {self.url}: bucket {bucket!r} does not exist (endpoint {endpoint}); "
                "create it first"
            ) from None
        except StoreError:
            raise
        except Exception as exc:
            if type(exc).__name__ == "NoCredentialsError" or isinstance(exc, PermissionError):
                raise checks.s3_credentials_error(self.url, endpoint, exc) from exc
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
            tmp = os.path.join(directory, f"{TMP_PREFIX}{uuid.uuid4().hex}")
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
        """The JSON at ``path``: FileNotFoundError when there is none, :class:`NotJSON` when
        its bytes are not JSON; a failure to reach the store stays its own StoreError (an
        object that cannot be read now is not a damaged one)."""
        data = self.fs.cat_file(path)
        try:
            return json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise NotJSON(f"{self.url}: {path} is not valid JSON: {exc}") from exc

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
                if base.startswith(TMP_PREFIX):
                    continue
                if base.endswith(".json") and is_item_id(base[:-5], name):
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

    def _find_keys(self, folder: str) -> list[str]:
        """Keys (paths relative to ``folder``, ``/``-separated, sorted) of every object under
        ``folder``; none when it is absent (``os.walk`` on a directory: ~10x less CPU than
        fsspec's ``find``, which a read of a whole product pays at every open)."""
        if self.protocol == "file":
            keys = []
            for here, _dirs, files in os.walk(folder):
                prefix = os.path.relpath(here, folder)
                prefix = "" if prefix == "." else prefix.replace(os.sep, "/") + "/"
                keys.extend(prefix + name for name in files)
            return sorted(keys)
        self._invalidate(folder)
        return sorted(posixpath.relpath(p, folder) for p in self.fs.find(folder))

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



def is_item_id(name: str, collection: str) -> bool:
    """Whether ``name`` is a product id of ``collection``."""
    try:
        return catalog.collection_of(name) == collection
    except StoreError:
        return False
