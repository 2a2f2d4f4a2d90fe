"""Readers: one module per source format, each turning a file into a canonical Dataset.

Every reader module defines

- ``FORMAT``: the format name users pass as ``--format`` (``"oco2-lite"`` …),
- ``PRODUCT_TYPE``: the product type (= STAC collection) its datasets belong to,
- ``READER_VERSION``: bumped when the reader's output changes (it enters the product id),
- ``sniff(path, head) -> bool``: whether the file looks like this format (``head`` is the first
  bytes of the file, or ``b""`` for a directory),
- ``read(path) -> xarray.Dataset``: the canonical dataset (names and units of
  ``docs/nomenclature.md``), with ``attrs`` ``hubkit_product_type``, ``hubkit_format``,
  ``hubkit_species`` (where known) and ``source`` (the file name).

:func:`read` refuses what is not a regular file (a FIFO would block it) and files declaring more
data than :data:`MAX_INPUT_BYTES` before anything is opened or loaded, picks the reader, wraps
every failure in :class:`~hubkit.errors.IngestError` naming the file, validates the result
against :mod:`hubkit.schemas` and checks its values with :mod:`hubkit.io.validation`;
attributes are made safe for terminals and the catalog by :mod:`hubkit.io.sanitise`. Readers
never write anything.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import numpy as np
import xarray as xr

from hubkit import schemas
from hubkit.errors import HubkitError, IngestError, InputTooLargeError, NotRegularFileError
from hubkit.io import (
    cf,
    l2_ozone,
    obspack,
    oco2_lite,
    oco2peak_csv,
    sanitise,
    uv_inputs,
    validation,
)
from hubkit.io._common import is_netcdf_head, open_netcdf

__all__ = ["FORMATS", "MAX_INPUT_BYTES", "checksum", "detect_format", "read", "source_files"]

#: Readers in the order :func:`detect_format` tries them (the generic CF reader last). The
#: UV-input readers (surface albedo, aerosol, cloud) are objects with a module's interface.
_READERS = (oco2_lite, oco2peak_csv, obspack, l2_ozone, *uv_inputs.READERS, cf)
FORMATS = {m.FORMAT: m for m in _READERS}

#: Most data a file may declare (all its variables, as loaded into memory) [bytes]; checked from
#: the file's metadata before anything is loaded (an 8 KB netCDF file can declare 6 GB).
#: ``read(path, max_bytes=...)`` takes more.
MAX_INPUT_BYTES = 2 * 1024**3

_HEAD_BYTES = 4096
_KINDS = ((stat.S_ISFIFO, "named pipe (FIFO)"), (stat.S_ISCHR, "character device"),
          (stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket"))


def _head(path: Path) -> bytes:
    if path.is_dir():
        return b""
    with open(path, "rb") as f:
        return f.read(_HEAD_BYTES)


def _kind(mode: int) -> str | None:
    """What a non-regular, non-directory file is (``None`` for regular files and directories)."""
    for test, name in _KINDS:
        if test(mode):
            return name
    return None if stat.S_ISREG(mode) or stat.S_ISDIR(mode) else "special file"


def _refuse_kind(path: Path, kind: str, inside: Path | None = None) -> None:
    where = f" inside the Zarr group {sanitise.printable(inside)}" if inside else ""
    raise NotRegularFileError(
        f"{sanitise.printable(path)}: is a {kind}{where}, not a regular file; expected a regular "
        "file (reading it could block forever or never end); nothing was opened")


def _check_path(path) -> Path:
    """Refuse what no reader may open: missing, empty, FIFO/device/socket, a plain directory."""
    path = Path(path)
    try:
        mode = path.stat().st_mode  # follows symbolic links: a link to a FIFO is a FIFO
    except FileNotFoundError:
        raise IngestError(f"{sanitise.printable(path)}: no such file") from None
    except OSError as exc:
        raise IngestError(f"{sanitise.printable(path)}: cannot be examined ({exc.strerror})") \
            from None
    kind = _kind(mode)
    if kind is not None:
        _refuse_kind(path, kind)
    if stat.S_ISDIR(mode):
        if not cf.is_zarr(path):
            raise NotRegularFileError(
                f"{sanitise.printable(path)}: is a directory, not a Zarr group; expected a file "
                "or a Zarr group (to store the files a directory holds, upload its files: "
                "`hubkit upload DIR` takes them, or pass hubkit.io.source_files([DIR]))")
        for root, _dirs, files in os.walk(path):
            for name in files:
                kind = _kind((Path(root) / name).stat().st_mode)
                if kind is not None:
                    _refuse_kind(Path(root) / name, kind, inside=path)
    elif path.stat().st_size == 0:
        raise IngestError(f"{sanitise.printable(path)}: file is empty; expected one of the "
                          f"formats {sorted(FORMATS)}")
    return path


def source_files(paths) -> list[Path]:
    """``paths`` with every directory that is not a Zarr group replaced by the files it holds.

    Files are listed recursively in name order; hidden names (``.*``) are skipped. What is not a
    regular file stays in the list, so that :func:`read` refuses it with its reason.
    """
    out = []
    for path in map(Path, paths):
        if not path.is_dir() or cf.is_zarr(path):
            out.append(path)
            continue
        for root, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            out.extend(Path(root) / f for f in sorted(files) if not f.startswith("."))
    return out


# --- declared sizes --------------------------------------------------------------------------


def _netcdf_sizes(path: Path):
    """``(name, shape, dtype, bytes)`` of every variable of a netCDF file, from its metadata."""
    sizes = []
    with open_netcdf(path) as nc:
        groups = [nc]
        while groups:
            group = groups.pop()
            groups.extend(group.groups.values())
            for var in group.variables.values():
                itemsize = 8 if var.dtype is str else np.dtype(var.dtype).itemsize
                sizes.append((var.name, var.shape, str(var.dtype),
                              itemsize * int(np.prod(var.shape, dtype=np.float64))))
    return sizes


def _zarr_sizes(path: Path):
    import zarr

    sizes, groups = [], [zarr.open_group(str(path), mode="r")]
    while groups:
        group = groups.pop()
        for name, member in group.members():
            if isinstance(member, zarr.Group):
                groups.append(member)
            else:
                sizes.append((name, member.shape, str(member.dtype),
                              member.dtype.itemsize * int(np.prod(member.shape,
                                                                   dtype=np.float64))))
    return sizes


def _readable(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.3g} {unit}"
        n /= 1000


def _check_size(path: Path, head: bytes, max_bytes: float) -> None:
    """Refuse a file whose variables declare more than ``max_bytes`` (before loading any)."""
    if path.is_dir():
        sizes = _zarr_sizes(path)
    elif is_netcdf_head(head):
        sizes = _netcdf_sizes(path)
    else:
        sizes = [("(file)", (path.stat().st_size,), "bytes", path.stat().st_size)]
    total = sum(s[3] for s in sizes)
    if total <= max_bytes:
        return
    name, shape, dtype, nbytes = max(sizes, key=lambda s: s[3])
    on_disk = _disk_size(path)
    raise InputTooLargeError(
        f"{sanitise.printable(path)}: variable {sanitise.printable(name)!r} declares "
        f"{' x '.join(str(n) for n in shape)} {dtype} = {_readable(nbytes)} "
        f"({_readable(total)} in all; the file holds {_readable(on_disk)}); expected at most "
        f"{_readable(max_bytes)}, the limit of hubkit.io.MAX_INPUT_BYTES (read(..., "
        "max_bytes=...) takes more); nothing was loaded")


def _disk_size(path: Path) -> int:
    """Bytes a file (or a directory's files) take on disk."""
    if not path.is_dir():
        return path.stat().st_size
    return sum((Path(r) / f).stat().st_size for r, _, files in os.walk(path) for f in files)


def detect_format(path) -> str:
    """Return the name of the format ``path`` is in, or raise :class:`IngestError`."""
    path = _check_path(path)
    head = _head(path)
    for module in _READERS:
        try:
            if module.sniff(path, head):
                return module.FORMAT
        except Exception:  # a sniffer that chokes on a foreign file just says no
            continue
    raise IngestError(
        f"{path}: format not recognised; expected one of {sorted(FORMATS)} "
        "(pass --format to say which)"
    )


def read(path, format: str | None = None, *, max_bytes: float = MAX_INPUT_BYTES) -> xr.Dataset:
    """Read ``path`` into a canonical, validated :class:`xarray.Dataset`.

    Parameters
    ----------
    path : str or os.PathLike
        A source file (or a Zarr directory for the ``cf`` format).
    format : str, optional
        One of :data:`FORMATS`; detected from the content when omitted.
    max_bytes : float, optional
        Most data the file may declare [bytes] (:data:`MAX_INPUT_BYTES`).

    Raises
    ------
    IngestError
        The file is missing, empty, corrupt or in no known format; :class:`NotRegularFileError`
        for a FIFO, device, socket or plain directory; :class:`InputTooLargeError` beyond
        ``max_bytes``.
    SchemaError
        The file was read but lacks a required variable, has wrong units or holds no valid data;
        the :class:`~hubkit.errors.ValidationError` subclasses for values that break the rules
        of the product type (:mod:`hubkit.io.validation`).

    Warns
    -----
    FlaggedRowsWarning
        Rows the product type's schema flags instead of refusing (see ``input_flag``).
    """
    path = _check_path(path)
    if format is None:
        format = detect_format(path)
    try:
        module = FORMATS[format]
    except KeyError:
        raise IngestError(
            f"{path}: unknown format {format!r}; expected one of {sorted(FORMATS)}"
        ) from None
    _check_size(path, _head(path), max_bytes)
    try:
        ds = module.read(path)
    except HubkitError:
        raise
    except Exception as exc:
        raise IngestError(f"{path}: cannot be read as {format!r}: {exc}") from exc
    ds.attrs.setdefault("hubkit_product_type", module.PRODUCT_TYPE)
    ds.attrs["hubkit_format"] = format
    ds.attrs["hubkit_reader_version"] = module.READER_VERSION
    ds.attrs.setdefault("source", path.name)
    schemas.validate(ds, source=str(path))
    ds = sanitise.clean_attrs(ds)
    return validation.check(ds, source=str(path))


def checksum(path) -> str:
    """SHA-256 of a file's bytes, or of a directory's relative file names and bytes (hex)."""
    path = Path(path)
    h = hashlib.sha256()
    if path.is_dir():
        for root, dirs, files in os.walk(path):
            dirs.sort()
            for name in sorted(files):
                full = Path(root) / name
                h.update(str(full.relative_to(path)).encode())
                h.update(b"\0")
                _update_from_file(h, full)
    else:
        _update_from_file(h, path)
    return h.hexdigest()


def _update_from_file(h, path: Path) -> None:
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
