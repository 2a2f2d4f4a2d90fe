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
data than :data:`MAX_INPUT_BYTES` before anything is opened or loaded
(:mod:`hubkit.io.preflight`), picks the reader, wraps
every failure in :class:`~hubkit.errors.IngestError` naming the file, validates the result
against :mod:`hubkit.schemas` and checks its values with :mod:`hubkit.io.validation`;
attributes are made safe for terminals and the catalog by :mod:`hubkit.io.sanitise`. Readers
never write anything.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import xarray as xr

from hubkit import schemas
from hubkit.errors import HubkitError, IngestError
from hubkit.io import (
    agage,
    cf,
    ghg_cci,
    icos_atc,
    icos_nc,
    l2_ozone,
    obspack,
    obspack_text,
    oco2_lite,
    oco2peak_csv,
    oco2peak_inventory,
    oco2peak_monthly,
    oco2peak_peaks,
    s5p_o3_pr,
    sanitise,
    tccon,
    uv_inputs,
    validation,
)
from hubkit.io._common import one_look
from hubkit.io.preflight import MAX_INPUT_BYTES, check_path, check_size, source_files

__all__ = ["FORMATS", "MAX_INPUT_BYTES", "checksum", "detect_format", "read", "source_files"]

#: Readers in the order :func:`detect_format` tries them (the generic CF reader last). The
#: UV-input readers (surface albedo, aerosol, cloud) are objects with a module's interface.
_READERS = (oco2_lite, oco2peak_peaks, oco2peak_inventory, oco2peak_monthly, oco2peak_csv,
            obspack, obspack_text, icos_nc, icos_atc, agage, l2_ozone, tccon, ghg_cci, s5p_o3_pr,
            *uv_inputs.READERS, cf)
FORMATS = {m.FORMAT: m for m in _READERS}

_HEAD_BYTES = 4096


def _head(path: Path) -> bytes:
    if path.is_dir():
        return b""
    with open(path, "rb") as f:
        return f.read(_HEAD_BYTES)


def detect_format(path) -> str:
    """Return the name of the format ``path`` is in, or raise :class:`IngestError`."""
    path = check_path(path, FORMATS)
    head = _head(path)
    with one_look():  # the sniffers that peek into a netCDF file share one open
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
    path = check_path(path, FORMATS)
    # detection and the size check read the file's metadata once, and a netCDF reader reads
    # the file through the handle they opened (_common.one_look)
    with one_look():
        if format is None:
            format = detect_format(path)
        try:
            module = FORMATS[format]
        except KeyError:
            raise IngestError(
                f"{path}: unknown format {format!r}; expected one of {sorted(FORMATS)}"
            ) from None
        check_size(path, _head(path), max_bytes)
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
