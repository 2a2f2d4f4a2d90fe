"""A product's Zarr v3 objects, already in memory, decoded to a NumPy-backed dataset directly.

A station product read whole (:meth:`hubkit.store.Store.open` with ``load``) is a few dozen
small objects. Decoding them with ``xarray.open_zarr(MemoryStore(...)).load()`` costs ~20 ms of
CPU per product, almost all of it Zarr's asynchronous machinery (one event-loop round trip per
array and per chunk), not decompression: ~2x the whole read of OpenGHG's retrieval of the same
series (``python -m benchmarks.openghg``). Here the same objects are decoded synchronously: the
JSON metadata parsed, each chunk decompressed with the numcodecs codec Zarr itself uses, and the
variables CF-decoded by xarray's own :func:`xarray.conventions.decode_cf_variables`, as
``open_zarr`` would.

Only the layout hubkit writes is handled (one flat group; regular chunk grids; the ``bytes`` or
``vlen-utf8`` serialiser with Blosc, Zstd or gzip compression; numeric, boolean and string data);
for anything else :func:`decode_group` returns None and the caller opens the objects with Zarr.
``tests/test_store_zarr_decode.py`` pins the result to ``open_zarr``'s on every real station file
and on every layout the store writes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from itertools import product

import numpy as np
import xarray as xr

__all__ = ["decode_group"]

#: Zarr v3 data types decoded here, by their names in ``zarr.json``.
_NUMERIC = {name: np.dtype(name) for name in (
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64", "complex64", "complex128")}
_SPECIAL_FLOATS = {"NaN": np.nan, "Infinity": np.inf, "-Infinity": -np.inf}


class _Unsupported(Exception):
    """A layout this decoder does not handle: the caller falls back to Zarr."""


def decode_group(objects: Mapping[str, bytes]) -> xr.Dataset | None:
    """Decode a flat Zarr v3 group held in memory as ``{key: bytes}`` (keys relative to the
    group, ``"zarr.json"``, ``"value/zarr.json"``, ``"value/c/0"`` ...).

    Parameters
    ----------
    objects : mapping of str to bytes
        Every object of the group (a chunk that is absent reads as the array's fill value, as
        in Zarr).

    Returns
    -------
    xarray.Dataset or None
        What ``xarray.open_zarr(store, zarr_format=3, consolidated=False, chunks=None).load()``
        gives (CF-decoded: times, masks, coordinates), NumPy-backed, text as ``str`` objects
        (:func:`hubkit.store.encoding.object_text`), without the Zarr-specific ``encoding``
        entries (chunks, codecs); None when the group holds something this decoder does not
        handle.
    """
    try:
        group = json.loads(objects["zarr.json"])
        if group.get("zarr_format") != 3 or group.get("node_type") != "group":
            return None
        arrays = {}
        for key, data in objects.items():
            parts = key.split("/")
            if parts[-1] != "zarr.json" or len(parts) == 1:
                continue
            if len(parts) != 2:  # a nested group or array
                return None
            meta = json.loads(data)
            if meta.get("node_type") != "array":
                return None
            arrays[parts[0]] = meta
        variables = {name: _variable(name, meta, objects) for name, meta in sorted(arrays.items())}
    except (_Unsupported, KeyError, TypeError, ValueError):
        return None
    attrs = {k: v for k, v in group.get("attributes", {}).items()
             if not k.lower().startswith("_nc")}
    variables, attrs, coord_names = xr.conventions.decode_cf_variables(variables, attrs)
    data_vars, coords = {}, {}
    for name, var in variables.items():
        if var.dtype == object and var.dims == (name,):  # a text index: Zarr's text type
            text = np.dtypes.StringDType()
            var = xr.Variable(var.dims, var.values.astype(text), var.attrs,
                              {**var.encoding, "dtype": text})
        elif var.dtype == object:  # text: str objects without encoding (as object_text)
            var.encoding = {}
        (coords if name in coord_names or var.dims == (name,) else data_vars)[name] = var
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


def _variable(name: str, meta: dict, objects: Mapping[str, bytes]) -> xr.Variable:
    """One array as an :class:`xarray.Variable` (dimension names and attributes, not decoded)."""
    from xarray.backends.zarr import FillValueCoder

    if meta.get("zarr_format") != 3 or meta.get("storage_transformers"):
        raise _Unsupported(name)
    dims = meta.get("dimension_names") or ()  # (a scalar has none)
    shape = tuple(meta["shape"])
    if len(dims) != len(shape) or any(d is None for d in dims):
        raise _Unsupported(name)
    data = _array(name, meta, objects)
    attrs = dict(meta.get("attributes", {}))
    if "_FillValue" in attrs:  # xarray's zarr backend stores it encoded (base64 for floats)
        kind = "string" if data.dtype == object else data.dtype
        attrs["_FillValue"] = FillValueCoder.decode(attrs["_FillValue"], kind)
    return xr.Variable(tuple(dims), data, attrs)


def _array(name: str, meta: dict, objects: Mapping[str, bytes]) -> np.ndarray:
    """The array's values, chunk by chunk, with the codecs its metadata name."""
    shape = tuple(meta["shape"])
    grid = meta["chunk_grid"]
    if grid.get("name") != "regular":
        raise _Unsupported(name)
    chunk_shape = tuple(grid["configuration"]["chunk_shape"])
    if len(chunk_shape) != len(shape) or any(c <= 0 for c in chunk_shape):
        raise _Unsupported(name)
    text = meta["data_type"] == "string"
    dtype = np.dtype(object) if text else _NUMERIC.get(meta["data_type"])
    if dtype is None:
        raise _Unsupported(name)
    serialiser, *compressors = meta["codecs"]
    decode = _decoder(serialiser, compressors, dtype, text, name)
    out = np.empty(shape, dtype=dtype)
    fill = _fill_value(meta["fill_value"], dtype, text)
    key = _chunk_key(meta["chunk_key_encoding"], name)
    grid_counts = [math.ceil(s / c) for s, c in zip(shape, chunk_shape, strict=True)]
    for index in product(*(range(n) for n in grid_counts)):
        region = tuple(slice(i * c, min((i + 1) * c, s))
                       for i, c, s in zip(index, chunk_shape, shape, strict=True))
        data = objects.get(f"{name}/{key(index)}")
        if data is None:
            out[region] = fill
            continue
        chunk = decode(data).reshape(chunk_shape)
        out[region] = chunk[tuple(slice(0, r.stop - r.start) for r in region)]
    return out


def _decoder(serialiser: dict, compressors: list[dict], dtype: np.dtype, text: bool, name: str):
    """A function from one chunk's bytes to its flat values."""
    import numcodecs

    steps = []
    for codec in compressors:
        kind = codec.get("name")
        if kind == "blosc":
            steps.append(numcodecs.Blosc().decode)
        elif kind == "zstd":
            steps.append(numcodecs.Zstd().decode)
        elif kind == "gzip":
            steps.append(numcodecs.GZip().decode)
        else:
            raise _Unsupported(name)
    steps.reverse()  # bytes-to-bytes codecs are undone last first
    if text:
        if serialiser.get("name") != "vlen-utf8":
            raise _Unsupported(name)
        last = numcodecs.VLenUTF8().decode
    else:
        if serialiser.get("name") != "bytes":
            raise _Unsupported(name)
        endian = (serialiser.get("configuration") or {}).get("endian", "little")
        stored = dtype.newbyteorder("<" if endian == "little" else ">")

        def last(buf):
            return np.frombuffer(buf, dtype=stored).astype(dtype, copy=False)

    def decode(data: bytes) -> np.ndarray:
        for step in steps:
            data = step(data)
        return np.asarray(last(data))

    return decode


def _fill_value(value, dtype: np.dtype, text: bool):
    """The metadata's ``fill_value`` as a value of ``dtype``."""
    if text:
        return str(value)
    if isinstance(value, str):
        if value not in _SPECIAL_FLOATS:  # hex-encoded bit patterns: not written here
            raise _Unsupported(value)
        value = _SPECIAL_FLOATS[value]
    if dtype.kind == "c":
        real, imag = (_SPECIAL_FLOATS.get(v, v) for v in value)
        value = complex(real, imag)
    return np.asarray(value).astype(dtype)


def _chunk_key(encoding: dict, name: str):
    """The function from a chunk's grid index to its key."""
    kind = encoding.get("name")
    separator = (encoding.get("configuration") or {}).get("separator")
    if kind == "default":
        separator = separator or "/"
        return lambda index: "c" + "".join(f"{separator}{i}" for i in index)
    if kind == "v2":
        separator = separator or "."
        return lambda index: separator.join(str(i) for i in index) or "0"
    raise _Unsupported(name)
