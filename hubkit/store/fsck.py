"""Checking and repairing a store: orphans, damaged or incomplete products, stray files.

Part of :class:`hubkit.store.Store` (as a mixin: the store's own layout and primitives are
used). The rules that keep ``fsck --repair`` from ever costing a committed or in-progress
product:

- A data folder is an *orphan* only when no readable Item points to it and its write is older
  than ``min_age``. The age comes from the product's own write record: the data token
  (``<UTC time>-<random>.zarr``) is named when the write starts, before any byte is written,
  and the youngest evidence wins (the token's time, or any object or folder written since), so
  a folder Zarr has just made, still empty, is as young as its token. A folder of unknown age
  is young. Right before removing an orphan, its product's Item is looked up again.
- Anything else that is wrong is *moved* to ``quarantine/<time>-<name>/`` under the same
  relative paths, never deleted: an Item that cannot be read or used (with its product's data
  folder), an Item whose data are missing or incomplete (with what is left of them), a file in
  an items folder that is not an Item. ``reason.json`` beside them says why.
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd

from hubkit import catalog
from hubkit.errors import DamagedItemError, StoreError

__all__ = ["FsckReport", "data_token", "token_time"]

log = logging.getLogger(__name__)

TMP_PREFIX = ".tmp-"
_TOKEN_TIME = "%Y%m%dT%H%M%SZ"
_TOKEN_RE = re.compile(r"^(\d{8}T\d{6}Z)-[0-9a-f]{8,}")


def data_token(suffix: str) -> str:
    """A fresh name for a product's data: ``<UTC time>-<random>`` + ``suffix``.

    The time is the write record :meth:`Store.fsck` judges the write's age by.
    """
    stamp = time.strftime(_TOKEN_TIME, time.gmtime(time.time()))
    return f"{stamp}-{uuid.uuid4().hex[:8]}{suffix}"


def token_time(name: str) -> float | None:
    """The POSIX time a data token was made at, or None for a token without one (legacy)."""
    m = _TOKEN_RE.match(posixpath.basename(name.rstrip("/")))
    if not m:
        return None
    return datetime.strptime(m.group(1) + "+0000", _TOKEN_TIME + "%z").timestamp()


def _timestamp(info: dict) -> float | None:
    t = info.get("mtime") or info.get("LastModified") or info.get("created")
    if t is None:
        return None
    if isinstance(t, datetime):
        return t.timestamp()
    if isinstance(t, str):
        return pd.Timestamp(t).timestamp()
    return float(t)


@dataclass
class FsckReport:
    """What :meth:`Store.fsck` found, and with ``repaired`` removed (orphans, temporary files)
    or moved to quarantine (everything else)."""

    orphans: list[str] = field(default_factory=list)
    broken_items: list[str] = field(default_factory=list)
    damaged_items: dict[str, str] = field(default_factory=dict)
    stray_files: list[str] = field(default_factory=list)
    temp_files: list[str] = field(default_factory=list)
    quarantined: list[str] = field(default_factory=list)
    legacy_items: list[str] = field(default_factory=list)
    repaired: bool = False
    deep: bool = False

    @property
    def clean(self) -> bool:
        """Whether fsck found nothing to report (no orphan, damaged, broken, stray or
        temporary file)."""
        return not (self.orphans or self.broken_items or self.damaged_items
                    or self.stray_files or self.temp_files)

    def __str__(self) -> str:
        lines = []
        if self.clean:
            lines.append("store is clean" + (" (content hashes verified)" if self.deep else ""))
        removed = "removed" if self.repaired else "found"
        moved = "moved to quarantine" if self.repaired else "found"
        for verb, label, paths in (
            (removed, "orphaned data (no item, older than --min-age)", self.orphans),
            (moved, "items whose data are missing", self.broken_items),
            (moved, "damaged products", [f"{i}: {r}" for i, r in self.damaged_items.items()]),
            (moved, "stray files in item folders", self.stray_files),
            (removed, "left-over temporary files", self.temp_files),
            ("quarantine folders written:", "", self.quarantined),
        ):
            if paths:
                lines.append(f"{verb} {len(paths)} {label}:" if label else verb)
                lines.extend(f"  {p}" for p in paths)
        if self.legacy_items:
            lines.append(f"{len(self.legacy_items)} item(s) written before integrity records "
                         "(not verifiable, opened unchecked)")
        return "\n".join(lines)


class FsckMixin:
    """:meth:`fsck` and its helpers, mixed into :class:`hubkit.store.Store`."""

    def fsck(self, *, repair: bool = False, min_age: float = 3600.0,
             deep: bool = False) -> FsckReport:
        """Check the store; with ``repair``, remove orphans and quarantine what is damaged.

        Finds data that no Item points to (older than ``min_age`` seconds, by their write
        record), Items that cannot be read or used, Items whose data are missing or incomplete
        (a listing compared with the Item's integrity record), stray files among the Items, and
        left-over temporary files. With ``deep``, every object of every product is read and its
        SHA-256 compared with the record. Nothing but orphans and temporary files is deleted:
        see the module docstring of :mod:`hubkit.store.fsck`.
        """
        report = FsckReport(repaired=repair, deep=deep)
        # data first, then items: a product committed in between is then seen as committed
        tokens = {product_dir: self._ls_entries(product_dir)
                  for coll_dir in self._ls_dirs(self._path("data"))
                  for product_dir in self._ls_dirs(coll_dir)}
        referenced, claimed = set(), set()
        listing, strays = self._scan_item_folders()
        for item_id, path in sorted(listing.items()):
            product_dir = self._path(catalog.data_prefix(item_id))
            try:
                item = self._load_item(item_id, path)
            except FileNotFoundError:
                continue
            except DamagedItemError as exc:
                claimed.add(product_dir)
                self._report_damaged(report, item_id, exc.reason, [product_dir, path])
                continue
            data = self.data_path(item)
            referenced.add(data)
            problems, legacy = self._data_problems(item, data, deep=deep)
            if legacy:
                report.legacy_items.append(item_id)
            if problems is None:
                report.broken_items.append(item_id)
                if repair:
                    self._quarantine(item_id, "the item's data are missing", [data, path],
                                     report)
            elif problems:
                claimed.add(product_dir)
                self._report_damaged(report, item_id, "; ".join(problems), [product_dir, path])
        for path in strays:
            report.stray_files.append(path)
            if repair:
                self._quarantine(posixpath.basename(path), "not an item of this store",
                                 [path], report)
        for product_dir, entries in sorted(tokens.items()):
            if product_dir in claimed:
                continue
            for token in entries:
                if token in referenced or self._write_age(token) < min_age:
                    continue
                if not self._still_orphan(product_dir, token):
                    continue
                report.orphans.append(token)
                if repair:
                    self._remove(token)
            if repair and self.protocol == "file":
                # only an empty folder, and only an old one: a writer that has just made it
                # is about to make its token inside (removed in between, its mkdir fails)
                try:
                    if time.time() - os.stat(product_dir).st_mtime >= min_age:
                        os.rmdir(product_dir)
                except OSError:
                    pass
        self._find_temp_files(report, min_age)
        return report

    # -- what is wrong ------------------------------------------------------------------------
    def _report_damaged(self, report, item_id, reason, paths) -> None:
        report.damaged_items[item_id] = reason
        if report.repaired:
            self._quarantine(item_id, reason, paths, report)

    def _data_problems(self, item, data: str, *, deep: bool):
        """``(problems, legacy)``: None when the data are missing, else a list (empty: fine)."""
        from hubkit.store.integrity import INTEGRITY_KEY, completeness_problems, content_problems

        record = item.properties.get(INTEGRITY_KEY)
        is_table = item.assets["data"].media_type == catalog.PARQUET_MEDIA_TYPE
        keys = self._object_keys(data, is_table)
        if keys is None:
            return None, record is None
        if record is None:
            return [], True
        if deep:
            digests = self._object_digests(data, keys, is_table)
            return content_problems(record, digests), False
        if is_table:
            return [], False
        return completeness_problems(record, keys), False

    def _object_keys(self, data: str, is_table: bool) -> list[str] | None:
        """Keys of a product's data objects relative to ``data``; None when there are none
        (for a Zarr group: when its ``zarr.json`` is missing)."""
        self._invalidate(data)
        if is_table:
            return [""] if self.fs.exists(data) else None
        try:
            keys = self._find_keys(data)
        except FileNotFoundError:
            return None
        return keys if "zarr.json" in keys else None

    def _object_digests(self, data: str, keys: list[str], is_table: bool) -> dict:
        from hubkit.store.integrity import digest

        if is_table:
            return {"": digest(self.fs.cat_file(data))}
        digests = {}
        for start in range(0, len(keys), 16):  # 16 objects (~256 MB at most) read at once
            batch = {posixpath.join(data, k): k for k in keys[start:start + 16]}
            for path, raw in self.fs.cat(list(batch), on_error="raise").items():
                digests[batch[path]] = digest(raw)
        return digests

    def _still_orphan(self, product_dir: str, token: str) -> bool:
        """Whether ``token`` is still unreferenced now (its product may have been committed
        since the Items were read); a damaged Item keeps its data."""
        item_id = posixpath.basename(product_dir)
        try:
            catalog.collection_of(item_id)
        except StoreError:
            return True  # not a product folder this store makes
        self._invalidate(posixpath.dirname(self._item_path(item_id)))
        try:
            item = self._load_item(item_id, self._item_path(item_id))
        except FileNotFoundError:
            return True
        except DamagedItemError:
            return False
        return self.data_path(item) != token

    def _write_age(self, path: str) -> float:
        """Seconds since the write of ``path`` (a data token) last showed a sign of life.

        The youngest evidence counts: the time in the token's name, and the modification time
        of every object (and on a directory store every folder, the token's own included)
        under it. Without any evidence the write is taken as just started (age 0).
        """
        times = [token_time(path)]
        try:
            if self.protocol == "file":
                for folder, _dirs, files in os.walk(path):
                    times.append(os.stat(folder).st_mtime)
                    times.extend(os.stat(os.path.join(folder, f)).st_mtime for f in files)
                if os.path.isfile(path):
                    times.append(os.stat(path).st_mtime)
            elif self.fs.isdir(path):
                times.extend(_timestamp(i) for i in
                             self.fs.find(path, detail=True, withdirs=False).values())
            else:
                times.append(_timestamp(self.fs.info(path)))
        except FileNotFoundError:  # removed meanwhile: nothing to judge
            return 0.0
        times = [t for t in times if t is not None]
        return time.time() - max(times) if times else 0.0

    def _find_temp_files(self, report: FsckReport, min_age: float) -> None:
        collections = self.collections()
        folders = ([self._path("catalog"), self._path("index")]
                   + [self._path("catalog", c) for c in collections]
                   + [self._path("catalog", c, "items") for c in collections])
        for folder in folders:
            for entry in self._ls_entries(folder):
                if posixpath.basename(entry).startswith(TMP_PREFIX) and (
                        self._write_age(entry) >= min_age):
                    report.temp_files.append(entry)
                    if report.repaired:
                        self._remove(entry)

    # -- quarantine -----------------------------------------------------------------------------
    def _quarantine(self, name: str, reason: str, paths: list[str], report: FsckReport) -> str:
        """Move ``paths`` (data first, the Item last) under ``quarantine/<time>-<name>/``.

        The relative paths are kept, so moving them back restores the product. On object
        stores each object is copied before the originals are removed: an interrupted move
        leaves two copies, never none.
        """
        stamp = time.strftime(_TOKEN_TIME, time.gmtime())
        dest = self._path("quarantine", f"{stamp}-{uuid.uuid4().hex[:6]}-{name}")
        moved = [posixpath.relpath(p, self.root) for p in paths if self.fs.exists(p)]
        note = {"reason": reason, "moved": moved, "when": stamp,
                "restore": "move these paths back to the store root"}
        self._write_bytes(posixpath.join(dest, "reason.json"),
                          json.dumps(note, indent=1).encode())
        for rel in moved:
            self._move(self._path(rel), posixpath.join(dest, rel))
        log.warning("%s: moved %s to %s (%s)", self.url, moved, dest, reason)
        report.quarantined.append(dest)
        return dest

    def _move(self, src: str, dst: str) -> None:
        if self.protocol == "file":
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            os.rename(src, dst)
            return
        self._invalidate(src)
        if self.fs.isdir(src):
            pairs = [(p, dst + p[len(src):]) for p in self.fs.find(src)]
        else:
            pairs = [(src, dst)]
        for a, b in pairs:
            self.fs.copy(a, b)
        self._remove(src)

    # -- listings -------------------------------------------------------------------------------
    def _ls_entries(self, path: str) -> list[str]:
        """Paths of the folders and files directly in ``path``."""
        self._invalidate(path)
        try:
            entries = self.fs.ls(path, detail=False)
        except FileNotFoundError:
            return []
        return sorted(e.rstrip("/") for e in entries if e.rstrip("/") != path.rstrip("/"))

    def _ls_dirs(self, path: str) -> list[str]:
        self._invalidate(path)
        try:
            entries = self.fs.ls(path, detail=True)
        except FileNotFoundError:
            return []
        return sorted(e["name"].rstrip("/") for e in entries if e["type"] == "directory")
