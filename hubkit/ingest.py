"""Files in: read a source file with its reader, check it, and put it in the store.

``upload = read → validate → put``: :func:`hubkit.io.read` turns the file into a canonical,
validated dataset (or raises :class:`~hubkit.errors.IngestError` /
:class:`~hubkit.errors.SchemaError`), and :meth:`hubkit.store.Store.put_source` stores it under
an id derived from the file's bytes, its format and the reader's version, so uploading a file
already stored writes nothing. The store itself never imports the readers.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pystac

from hubkit import catalog, io, schemas
from hubkit.errors import HubkitError, IngestError

__all__ = ["upload", "upload_many"]


def upload(store, path, format: str | None = None) -> pystac.Item:
    """Read, validate and store one source file; return its STAC Item.

    Parameters
    ----------
    store : hubkit.store.Store
        Where the product goes.
    path : str or os.PathLike
        A source file (or a Zarr directory for the ``cf`` format).
    format : str, optional
        One of :data:`hubkit.io.FORMATS`; detected from the content when omitted.

    Raises
    ------
    IngestError, SchemaError
        The file cannot be read or does not match its product type; nothing is written.
    """
    path = Path(path)
    ds = io.read(path, format)
    fmt = ds.attrs["hubkit_format"]
    reader_version = ds.attrs["hubkit_reader_version"]
    sha256 = io.checksum(path)
    item_id = catalog.product_id(schemas.product_type_of(ds), sha256, fmt, reader_version)
    provenance = {
        "inputs": [{"file": ds.attrs["source"], "sha256": sha256, "format": fmt}],
        "step": "upload",
        "step_version": str(reader_version),
        "parameters": {"format": fmt},
    }
    return store.put_source(ds, item_id=item_id, provenance=provenance)


def upload_many(store, paths, format: str | None = None, *, progress: bool = True,
                max_workers: int = 4, on_error: str = "raise"):
    """Upload several files in parallel threads, with a progress bar.

    Parameters
    ----------
    store : hubkit.store.Store
        Where the products go.
    paths : iterable of str or os.PathLike
        Source files (or Zarr directories for the ``cf`` format), each uploaded as by
        :func:`upload`.
    format : str, optional
        One of :data:`hubkit.io.FORMATS` for all the files; detected per file when omitted.
    progress : bool
        Show a progress counter over the files on standard error
        (:func:`hubkit.progress.progress_bar`).
    max_workers : int
        Number of upload threads.
    on_error : {"raise", "collect"}
        ``"raise"`` re-raises the first failure after the other files finished;
        ``"collect"`` returns ``(items, errors)`` with ``errors`` a list of
        ``(path, HubkitError)``.
    """
    from hubkit.progress import progress_bar

    if on_error not in ("raise", "collect"):
        raise IngestError(f"upload_many: on_error={on_error!r}; expected 'raise' or 'collect'")
    _import_before_threads()
    paths = [Path(p) for p in paths]
    items, errors = [], []
    with ThreadPoolExecutor(max_workers=max_workers) as pool, progress_bar(
        total=len(paths), desc="upload", unit="file", disable=not progress
    ) as bar:
        futures = {pool.submit(upload, store, p, format): p for p in paths}
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


def _import_before_threads() -> None:
    """Import what uploads import lazily, once, before upload threads start.

    xarray imports dask on first use and Zarr its codecs; two threads doing the first import
    at once see a partly initialised module ("cannot import name 'annotate' from partially
    initialized module 'dask.base'") and one upload fails.
    """
    import dask.array  # noqa: F401
    import dask.base  # noqa: F401
    import zarr.codecs  # noqa: F401
