"""What a complete product holds, recorded when it is written and checked when it is read.

Every product written by :mod:`hubkit.store` carries an integrity record in its Item, under the
``hubkit:integrity`` property: for a Zarr product the number of chunk objects, their bytes and a
SHA-256 content hash per array, and the same for the group's metadata (``zarr.json``) objects;
for a table, the size and SHA-256 of its Parquet file. For example::

    "hubkit:integrity": {
      "version": 1, "algorithm": "sha256", "objects": 13, "bytes": 48213,
      "arrays": {"xco2": {"chunks": 5, "bytes": 3911, "sha256": "9f2c…"}, …},
      "metadata": {"objects": 6, "bytes": 4310, "sha256": "41ab…"}
    }

Zarr v3 leaves out chunks that hold only the fill value, so a chunk that is absent from storage
reads as fill values (NaN) without any error: only a record of what was written tells a missing
chunk from an empty one. Two checks use the record:

- :func:`completeness_problems` compares a listing of the product's objects with the counts
  (one listing, no reads; :meth:`Store.open` runs it on every open);
- :func:`content_problems` compares digests of every object read back with the hashes
  (``hubkit fsck --deep``).

An Item without the record was written before it existed: it is *legacy*, opened unchecked.
The hash of a group of objects is the SHA-256 of the lines ``"<key> <bytes> <sha256>\\n"``
over its objects in key order, so it covers their names and sizes as well as their bytes.
"""

from __future__ import annotations

import hashlib
import threading

from zarr.storage import WrapperStore

__all__ = [
    "INTEGRITY_KEY",
    "DigestingStore",
    "completeness_problems",
    "content_problems",
    "digest",
    "table_record",
    "zarr_record",
]

#: The Item property that holds the integrity record.
INTEGRITY_KEY = "hubkit:integrity"
_VERSION = 1
_METADATA = "zarr.json"


def digest(data) -> tuple[int, str]:
    """``(size in bytes, SHA-256 hex digest)`` of a bytes-like object."""
    view = memoryview(data).cast("B")
    return view.nbytes, hashlib.sha256(view).hexdigest()


class DigestingStore(WrapperStore):
    """A Zarr store that records the size and SHA-256 of every object written through it.

    Wrapping the store xarray writes to hashes each object once, in memory, as it is written:
    no second read of the data. ``digests`` maps the object keys to ``(bytes, sha256)``. Zarr
    may write a metadata object (``zarr.json``) twice at once, so its entry can be the one that
    lost on disk: hash metadata again from storage once the write is done.
    """

    def __init__(self, store, digests: dict | None = None) -> None:
        super().__init__(store)
        self.digests = {} if digests is None else digests
        self._lock = threading.Lock()

    def _with_store(self, store):
        return type(self)(store, self.digests)  # views of the store share one record

    def _record(self, key: str, value) -> None:
        entry = digest(value.as_numpy_array())
        with self._lock:
            self.digests[key] = entry

    async def set(self, key, value) -> None:
        """Write ``value`` at ``key`` and record its size and SHA-256."""
        await self._store.set(key, value)
        self._record(key, value)

    async def set_if_not_exists(self, key, value) -> None:
        """Write ``value`` at ``key`` unless it exists, and record its size and SHA-256."""
        await self._store.set_if_not_exists(key, value)
        self._record(key, value)

    async def _set_many(self, values) -> None:
        values = list(values)
        await self._store._set_many(values)
        for key, value in values:
            self._record(key, value)

    async def delete(self, key) -> None:
        """Delete ``key`` and forget its record."""
        await self._store.delete(key)
        with self._lock:
            self.digests.pop(key, None)


def _group_of(key: str) -> str | None:
    """The array a Zarr object key belongs to, or None for a metadata object."""
    if key == _METADATA or key.endswith("/" + _METADATA):
        return None
    return key.split("/", 1)[0]


def _summary(entries: dict[str, tuple[int, str]]) -> dict:
    lines = "".join(f"{k} {n} {h}\n" for k, (n, h) in sorted(entries.items()))
    return {"bytes": sum(n for n, _ in entries.values()),
            "sha256": hashlib.sha256(lines.encode()).hexdigest()}


def zarr_record(digests: dict[str, tuple[int, str]]) -> dict:
    """The integrity record of a Zarr group from ``{object key: (bytes, sha256)}``."""
    arrays: dict[str, dict] = {}
    metadata = {}
    for key, entry in digests.items():
        group = _group_of(key)
        if group is None:
            metadata[key] = entry
        else:
            arrays.setdefault(group, {})[key] = entry
    return {
        "version": _VERSION,
        "algorithm": "sha256",
        "objects": len(digests),
        "bytes": sum(n for n, _ in digests.values()),
        "arrays": {name: {"chunks": len(entries), **_summary(entries)}
                   for name, entries in sorted(arrays.items())},
        "metadata": {"objects": len(metadata), **_summary(metadata)},
    }


def table_record(data: bytes) -> dict:
    """The integrity record of a table product's Parquet bytes."""
    size, sha = digest(data)
    return {"version": _VERSION, "algorithm": "sha256", "objects": 1, "bytes": size,
            "sha256": sha}


def _check_record(record) -> str | None:
    if not isinstance(record, dict) or record.get("algorithm") != "sha256":
        return f"its {INTEGRITY_KEY} record is not understood: {str(record)[:120]!r}"
    return None


def completeness_problems(record: dict, keys) -> list[str]:
    """What a listing of a Zarr product's object ``keys`` lacks against its ``record``.

    Counts objects per array (and metadata objects) and compares them with the record: no
    object is read. An empty list means the product is complete.
    """
    bad = _check_record(record)
    if bad or not isinstance(record.get("arrays"), dict):
        return [bad or f"its {INTEGRITY_KEY} record has no 'arrays'"]
    found: dict[str | None, int] = {}
    for key in keys:
        group = _group_of(key)
        found[group] = found.get(group, 0) + 1
    problems = []
    for name, expected in sorted(record["arrays"].items()):
        want = int(expected.get("chunks", 0))
        have = found.get(name, 0)
        if have < want:
            problems.append(f"variable {name!r}: {want - have} chunk(s) missing "
                            f"({have} of {want} chunks present)")
        elif have > want:
            problems.append(f"variable {name!r}: {have} chunk objects, expected {want}")
    extra = sorted(k for k in found if k is not None and k not in record["arrays"])
    if extra:
        problems.append(f"objects of arrays the record does not list: {extra}")
    want = int(record.get("metadata", {}).get("objects", 0))
    if found.get(None, 0) != want:
        problems.append(f"metadata: {found.get(None, 0)} zarr.json objects, expected {want}")
    return problems


def content_problems(record: dict, digests: dict[str, tuple[int, str]]) -> list[str]:
    """Differences between a product's ``record`` and the digests of its objects read back.

    ``digests`` maps object keys to ``(bytes, sha256)``; for a table use the key ``""``.
    """
    bad = _check_record(record)
    if bad:
        return [bad]
    if "arrays" not in record:  # a table: one object
        ((size, sha),) = digests.values() if len(digests) == 1 else ((None, None),)
        if (size, sha) != (record.get("bytes"), record.get("sha256")):
            return [f"table content differs from its recorded sha256 ({size} bytes read, "
                    f"{record.get('bytes')} recorded)"]
        return []
    problems = completeness_problems(record, digests)
    if problems:
        return problems
    now = zarr_record(digests)
    for name, expected in sorted(record["arrays"].items()):
        if now["arrays"].get(name, {}).get("sha256") != expected.get("sha256"):
            problems.append(f"variable {name!r}: content differs from its recorded sha256")
    if now["metadata"]["sha256"] != record.get("metadata", {}).get("sha256"):
        problems.append("metadata (zarr.json): content differs from its recorded sha256")
    return problems
