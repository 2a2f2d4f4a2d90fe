"""Checks made before a reader opens a file: what kind of file it is, and how much it declares.

A FIFO blocks whoever opens it until a writer comes, a device never ends, and an 8 KB netCDF file
can declare a 40000 x 40000 variable that a reader would load whole (6.4 GB). So the path is
examined with ``stat`` (following symbolic links) before it is opened, and the sizes the file
declares are read from its metadata before any data is loaded.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np

from hubkit.errors import IngestError, InputTooLargeError, NotRegularFileError
from hubkit.io import cf
from hubkit.io._common import is_netcdf_head, netcdf_sizes
from hubkit.io.sanitise import printable

__all__ = ["MAX_INPUT_BYTES", "check_path", "check_size", "source_files"]

#: Most data a file may declare (all its variables, as loaded into memory) [bytes]; checked from
#: the file's metadata before anything is loaded (an 8 KB netCDF file can declare 6 GB).
#: ``hubkit.io.read(path, max_bytes=...)`` takes more.
MAX_INPUT_BYTES = 2 * 1024**3

_KINDS = ((stat.S_ISFIFO, "named pipe (FIFO)"), (stat.S_ISCHR, "character device"),
          (stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket"))


def _kind(mode: int) -> str | None:
    """What a non-regular, non-directory file is (``None`` for regular files and directories)."""
    for test, name in _KINDS:
        if test(mode):
            return name
    return None if stat.S_ISREG(mode) or stat.S_ISDIR(mode) else "special file"


def _refuse_kind(path: Path, kind: str, inside: Path | None = None) -> None:
    where = f" inside the Zarr group {printable(inside)}" if inside else ""
    raise NotRegularFileError(
        f"{printable(path)}: is a {kind}{where}, not a regular file; expected a regular "
        "file (reading it could block forever or never end); nothing was opened")


def check_path(path, formats) -> Path:
    """Refuse what no reader may open: missing, empty, FIFO/device/socket, a plain directory.

    ``formats`` are named in the message about an empty file.
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode  # follows symbolic links: a link to a FIFO is a FIFO
    except FileNotFoundError:
        raise IngestError(f"{printable(path)}: no such file") from None
    except OSError as exc:
        raise IngestError(f"{printable(path)}: cannot be examined ({exc.strerror})") \
            from None
    kind = _kind(mode)
    if kind is not None:
        _refuse_kind(path, kind)
    if stat.S_ISDIR(mode):
        if not cf.is_zarr(path):
            raise NotRegularFileError(
                f"{printable(path)}: is a directory, not a Zarr group; expected a file "
                "or a Zarr group (to store the files a directory holds, upload its files: "
                "`hubkit upload DIR` takes them, or pass hubkit.io.source_files([DIR]))")
        for root, _dirs, files in os.walk(path):
            for name in files:
                entry = Path(root) / name
                try:
                    kind = _kind(entry.stat().st_mode)
                except OSError as exc:  # a dangling link
                    raise IngestError(f"{printable(entry)} inside the Zarr group "
                                      f"{printable(path)}: cannot be examined ({exc.strerror})") \
                        from None
                if kind is not None:
                    _refuse_kind(entry, kind, inside=path)
    elif path.stat().st_size == 0:
        raise IngestError(f"{printable(path)}: file is empty; expected one of the "
                          f"formats {sorted(formats)}")
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


def check_size(path: Path, head: bytes, max_bytes: float) -> None:
    """Refuse a file whose variables declare more than ``max_bytes`` (before loading any)."""
    if path.is_dir():
        sizes = _zarr_sizes(path)
    elif is_netcdf_head(head):
        sizes = netcdf_sizes(path)
    else:  # text: what is loaded grows with the file
        sizes = []
    on_disk = _disk_size(path)
    total = sum(s[3] for s in sizes) if sizes else on_disk
    if total <= max_bytes:
        return
    limit = (f"expected at most {_readable(max_bytes)}, the limit of hubkit.io.MAX_INPUT_BYTES "
             "(read(..., max_bytes=...) takes more); nothing was loaded")
    if not sizes:
        raise InputTooLargeError(f"{printable(path)}: the file holds {_readable(on_disk)}; "
                                 f"{limit}")
    name, shape, dtype, nbytes = max(sizes, key=lambda s: s[3])
    raise InputTooLargeError(
        f"{printable(path)}: variable {printable(name)!r} declares "
        f"{' x '.join(str(n) for n in shape)} {dtype} = {_readable(nbytes)} "
        f"({_readable(total)} in all; the file holds {_readable(on_disk)}); {limit}")


def _disk_size(path: Path) -> int:
    """Bytes a file (or a directory's files) take on disk."""
    if not path.is_dir():
        return path.stat().st_size
    return sum((Path(r) / f).stat().st_size for r, _, files in os.walk(path) for f in files)
