"""A dataset's Zarr v3 objects, encoded in one synchronous pass.

:func:`zarr_objects` returns the objects ``ds.to_zarr(MemoryStore(), mode="w-", zarr_format=3,
consolidated=False)`` writes, key for key and byte for byte, without Zarr's store machinery.
It exists for speed: on the three station products of ``python -m benchmarks.openghg`` (up to
4,190 rows, 13-16 variables) ``to_zarr`` costs ~31 ms of CPU a product, most of it Zarr's
asynchronous round trips (an event-loop hop, a lock and a metadata write per array, a chunk
read-merge-write per chunk), not encoding; this path costs ~9 ms (see :func:`zarr_objects`).

Nothing here re-implements a format. The work is done by the libraries' own pieces, called in
the order their writers call them: xarray's CF encoding of variables and attributes
(``encode_dataset_coordinates``, ``encode_zarr_variable``, ``extract_zarr_variable_encoding``,
its fill-value coder), Zarr's data-type parser, chunk-shape guesser, codec defaults, metadata
classes (which serialise themselves) and each codec's synchronous encoder. What is left out is
the store: no event loop, no per-array round trip. Anything this module does not reproduce
exactly (Dask-backed data, sharding, a codec without a synchronous encoder, a non-default Zarr
configuration, ...) returns ``None`` and the caller writes with ``to_zarr``.
``tests/test_store_zarr_encode.py`` pins the result to Zarr's writer, object for object.
"""

from __future__ import annotations

import itertools
import logging

import numpy as np
import xarray as xr

__all__ = ["zarr_objects"]

log = logging.getLogger(__name__)

#: Encoding keys a variable may carry into Zarr that this module reproduces (the rest of
#: xarray's valid Zarr encodings, shards, chunk_key_encoding, write_empty_chunks, ..., fall back)
_HANDLED_ENCODING = frozenset({"chunks", "compressors", "filters", "serializer"})

#: Zarr configuration this module assumes (its defaults); another value falls back
_ZARR_DEFAULTS = {
    "array.order": "C",
    "array.write_empty_chunks": False,
    "codec_pipeline.path": "zarr.core.codec_pipeline.BatchedCodecPipeline",
}


def zarr_objects(ds: xr.Dataset) -> dict[str, bytes] | None:
    """The Zarr v3 objects of ``ds``, as ``to_zarr`` writes them to a memory store.

    Parameters
    ----------
    ds : xarray.Dataset
        The dataset, with its encodings (chunks and compressors as
        :func:`hubkit.store.encoding.for_zarr` sets them, time units, ...).

    Returns
    -------
    dict of str to bytes or None
        ``{key: bytes}`` equal to the objects of ``ds.to_zarr(zarr.storage.MemoryStore(),
        mode="w-", zarr_format=3, consolidated=False)`` (the group's ``zarr.json``, each
        array's ``<name>/zarr.json`` and chunks ``<name>/c/<i>/...``; chunks equal to the fill
        value everywhere are not written, as Zarr's default). ``None`` when ``ds`` holds
        anything this function does not reproduce: Dask-backed (or other chunked) data,
        variable names that are not plain strings, encodings beyond chunks, compressors,
        filters and serializer, codecs without a synchronous encoder, a Zarr configuration
        other than the defaults; or any error on the way (invalid data, or helpers changed in
        a newer Zarr or xarray: ``to_zarr`` then raises or writes).

    Notes
    -----
    Why it exists: ``Store._write_zarr_here`` of the three station products of ``python -m
    benchmarks.openghg`` (up to 4,190 rows, 13-16 variables) took 94-109 ms of CPU with
    ``to_zarr`` into a memory store, mostly Zarr's asynchronous machinery, and takes 38-39 ms
    with this function (medians of 10 in two runs, ``time.process_time``, the two ways
    alternating in one process). It is pinned to
    Zarr's writer by the byte-identity tests of
    ``tests/test_store_zarr_encode.py`` (real files and the store tests' datasets), which fail
    if a new xarray or Zarr writes anything differently.
    """
    import zarr

    if any(zarr.config.get(key) != value for key, value in _ZARR_DEFAULTS.items()):
        return None
    if any(not isinstance(name, str) or not name or "/" in name or name.startswith("__")
           for name in ds.variables):
        return None
    if any(var.chunks is not None or var.size == 0 for var in ds.variables.values()):
        return None  # Dask (or another chunk manager) writes its own chunks; empty: nothing
    try:
        return _encoded(ds)
    except Exception as e:  # a data error, or helpers of a newer Zarr or xarray: to_zarr says
        log.debug("zarr_objects: %s: %s; left to to_zarr", type(e).__name__, e)
        return None


def _encoded(ds: xr.Dataset) -> dict[str, bytes] | None:
    """:func:`zarr_objects` once the dataset passed its checks."""
    from xarray import conventions
    from xarray.backends.zarr import encode_zarr_attr_value
    from zarr.core.array_spec import ArrayConfig

    variables, attributes = conventions.encode_dataset_coordinates(ds)
    prototype = _prototype()
    objects = {"zarr.json": _group_json({k: encode_zarr_attr_value(v)
                                         for k, v in attributes.items()}, prototype)}
    config = ArrayConfig.from_dict({})  # the runtime configuration Zarr gives a new array
    dtypes: dict = {}  # Zarr's data type of each NumPy one (its parser tries every type known)
    for name, var in variables.items():
        array = _array_objects(name, var, prototype, config, dtypes)
        if array is None:
            return None
        objects.update(array)
    return objects


def _prototype():
    """Zarr's default buffer prototype (NumPy buffers)."""
    from zarr.core.buffer import default_buffer_prototype

    return default_buffer_prototype()


def _group_json(attributes: dict, prototype) -> bytes:
    """The root group's ``zarr.json`` with ``attributes``, serialised by Zarr."""
    from zarr.core.group import GroupMetadata

    meta = GroupMetadata(attributes=attributes, zarr_format=3)
    return meta.to_buffer_dict(prototype)["zarr.json"].to_bytes()


def _array_objects(name: str, var: xr.Variable, prototype, config,
                   dtypes: dict) -> dict[str, bytes] | None:
    """The ``zarr.json`` and chunks of one variable (``None`` if not reproduced), made the
    way xarray's Zarr store creates an array and Zarr writes a whole NumPy array into it;
    ``dtypes`` caches Zarr's data types by NumPy's."""
    from xarray.backends.zarr import (
        FillValueCoder,
        encode_zarr_attr_value,
        encode_zarr_variable,
        extract_zarr_variable_encoding,
    )
    from xarray.coding.strings import check_vlen_dtype
    from zarr.core.array import (
        AsyncArray,
        _parse_chunk_encoding_v3,
        _parse_chunk_key_encoding,
    )
    from zarr.core.chunk_grids import _auto_partition
    from zarr.core.dtype import parse_dtype
    from zarr.core.dtype.common import HasItemSize

    encoded = encode_zarr_variable(var, zarr_format=3)
    attrs = dict(encoded.attrs)
    encoding = dict(encoded.encoding)
    fill_value = encoding.pop("fill_value", None)
    if fill_value is None and encoded.dtype.kind == "f":
        fill_value = np.nan  # xarray's default for floats (Zarr's would be 0)
    if "_FillValue" in attrs:
        fv = attrs.pop("_FillValue")
        if fv is not None:
            attrs["_FillValue"] = FillValueCoder.encode(fv, encoded.dtype)
    if encoding.pop("_FillValue", None) is not None:
        return None  # xarray refuses it: let it say so
    shallow = encoded.copy(deep=False)
    shallow.encoding = encoding
    zenc = extract_zarr_variable_encoding(shallow, raise_on_invalid=False, name=name,
                                          zarr_format=3)
    if set(zenc) - _HANDLED_ENCODING:
        return None
    dtype = str if check_vlen_dtype(encoded.dtype) is str else encoded.dtype
    if dtype not in dtypes:
        dtypes[dtype] = parse_dtype(dtype, zarr_format=3)
    zdtype = dtypes[dtype]
    item_size = zdtype.item_size if isinstance(zdtype, HasItemSize) else 1
    _, chunk_shape = _auto_partition(array_shape=encoded.shape, chunk_shape=zenc["chunks"],
                                     shard_shape=None, item_size=item_size)
    filters, serializer, compressors = _parse_chunk_encoding_v3(
        compressors=zenc.get("compressors", "auto"), filters=zenc.get("filters", "auto"),
        serializer=zenc.get("serializer", "auto"), dtype=zdtype)
    meta = AsyncArray._create_metadata_v3(
        shape=encoded.shape, dtype=zdtype, chunk_shape=tuple(chunk_shape),
        fill_value=fill_value, chunk_key_encoding=_parse_chunk_key_encoding(None, zarr_format=3),
        codecs=(*filters, serializer, *compressors), dimension_names=encoded.dims,
        attributes={k: encode_zarr_attr_value(v) for k, v in attrs.items()})
    codecs = list(meta.codecs)
    if not all(hasattr(codec, "_encode_sync") for codec in codecs):
        return None
    out = {f"{name}/zarr.json": meta.to_buffer_dict(prototype)["zarr.json"].to_bytes()}
    values = np.asarray(encoded.values)
    native = zdtype.to_native_dtype()
    if values.dtype.name != native.name:
        values = values.astype(native, order="A")  # as Zarr casts what it is given
    for coords in itertools.product(*(range(-(-n // c)) for n, c in
                                      zip(meta.shape, meta.chunks, strict=True))):
        data = _chunk_bytes(meta, codecs, values, coords, prototype, config)
        if data is not None:
            out[f"{name}/{meta.encode_chunk_key(coords)}"] = data
    return out


def _chunk_bytes(meta, codecs, values: np.ndarray, coords: tuple, prototype,
                 config) -> bytes | None:
    """One chunk encoded by the array's codecs, ``None`` where it holds only the fill value
    (Zarr's default ``write_empty_chunks=False``: such a chunk is not written)."""
    spec = meta.get_chunk_spec(coords, config, prototype)
    block = values[tuple(slice(i * c, (i + 1) * c) for i, c in
                         zip(coords, meta.chunks, strict=True))]
    if block.shape != spec.shape:  # an edge chunk: the rest is the fill value
        full = np.full(spec.shape, spec.fill_value, dtype=block.dtype)
        full[tuple(slice(0, n) for n in block.shape)] = block
        block = full
    chunk = prototype.nd_buffer.from_ndarray_like(block)
    if chunk.all_equal(spec.fill_value):
        return None
    for codec in codecs:
        chunk = codec._encode_sync(chunk, spec)
        if chunk is None:
            return None
        spec = codec.resolve_metadata(spec)
    return chunk.to_bytes()
