"""The store's direct Zarr encoder (:mod:`hubkit.store.zarr_encode`) writes Zarr's own objects.

``zarr_objects(ds)`` must equal, key for key and byte for byte, what ``ds.to_zarr`` writes into
a memory store (or be ``None``, and the store then writes with ``to_zarr``): on every real file
``hubkit.io.read`` reads in ``../shared/data``, on the datasets the store tests write, and on
one made to hold every kind of variable and attribute the CF encoding treats differently.
"""

from __future__ import annotations

import warnings

import dask.array
import numpy as np
import pandas as pd
import pytest
import xarray as xr
import zarr
from conftest import SHARED_DATA
from test_store import soundings

import hubkit.store.core
import hubkit.store.zarr_encode
from hubkit import ingest, io
from hubkit.errors import HubkitError, HubkitWarning
from hubkit.store import Store, encoding
from hubkit.store.zarr_encode import zarr_objects

pytestmark = pytest.mark.filterwarnings(  # fixed-width text: Zarr says its format may change
    "ignore::zarr.errors.UnstableSpecificationWarning")

OBSPACK = ("real/ch4_bao_tower-insitu_1_ccgg_all.nc",
           "real/ch4_esp_surface-flask_2_representative.nc",
           "real/co_pocn25_surface-flask_1_ccgg_event.txt")


def _shared_files() -> list[str]:
    """Every file of ``real/`` and ``oco2peak/`` (a placeholder where the data are absent: the
    ``shared_data`` fixture then skips)."""
    if not SHARED_DATA.is_dir():
        return list(OBSPACK)
    return sorted(str(p.relative_to(SHARED_DATA)) for folder in ("real", "oco2peak")
                  for p in (SHARED_DATA / folder).iterdir()
                  if p.is_file() and p.suffix != ".md" and not p.name.startswith("LICENSE"))


#: The one data file of ``../shared/data`` the readers refuse, on purpose: distances along the
#: track without positions (tests/test_real_column_data.py says why).
REFUSED = {"oco2peak/oco2_orbit11522_20160831_dist_xco2_5700-6700km.csv"}


def zarrs_own(ds: xr.Dataset) -> dict[str, bytes]:
    """The objects Zarr's writer makes of ``ds``, as the store wrote them before."""
    objects: dict = {}
    ds.to_zarr(zarr.storage.MemoryStore(store_dict=objects), mode="w-", zarr_format=3,
               consolidated=False)
    return {key: buf.to_bytes() for key, buf in objects.items()}


def assert_zarrs_objects(ds: xr.Dataset) -> dict[str, bytes] | None:
    """``zarr_objects(ds)`` is ``None`` or Zarr's objects exactly (same keys, same bytes)."""
    ours = zarr_objects(ds)
    if ours is None:
        return None
    theirs = zarrs_own(ds)
    assert sorted(ours) == sorted(theirs)
    differ = [key for key in theirs if ours[key] != theirs[key]]
    assert not differ, {key: (ours[key][:300], theirs[key][:300]) for key in differ[:3]}
    return ours


def as_stored(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` as the store hands it to the writer (:func:`encoding.for_zarr`, the id)."""
    out = encoding.for_zarr(ds)
    out.attrs["hubkit_product_id"] = "test-0123456789abcdef"
    return out


def every_kind(n: int = 50) -> xr.Dataset:
    """A dataset with every kind of variable and attribute the CF and Zarr encodings treat
    differently: times (with NaT) as a coordinate, NaN, all-NaN and all-zero variables (chunks
    not written), text as objects, fixed unicode and bytes, int flags, bools, a 2-D and a 0-D
    variable, durations, and attributes holding lists, NumPy arrays and scalars."""
    rng = np.random.default_rng(3)
    time = np.datetime64("2020-01-01T00:00", "ns") + np.arange(n) * np.timedelta64(90, "s")
    time[7] = np.datetime64("NaT")
    value = rng.normal(1900.0, 5.0, n)
    value[::9] = np.nan
    return xr.Dataset(
        {
            "value": ("time", value, {"units": "nmol mol-1", "valid_range": [0.0, 1e4]}),
            "gone": ("time", np.full(n, np.nan), {"note": "all missing"}),
            "zeros": ("time", np.zeros(n, dtype=np.int64)),
            "flag": ("time", rng.integers(0, 4, n).astype(np.int8),
                     {"flag_values": np.array([0, 1, 2, 3], dtype=np.int8),
                      "flag_meanings": "good suspect bad missing"}),
            "ok": ("time", rng.random(n) < 0.7),
            "qc": ("time", np.array([f"..{k % 3}" for k in range(n)], dtype=object)),
            "code": ("time", np.array([f"C{k % 7}" for k in range(n)], dtype="U3")),
            "raw": ("time", np.array([b"ab", b"c"] * (n // 2), dtype="S2")),
            "profile": (("time", "level"), rng.random((n, 4)).astype(np.float32),
                        {"units": "1", "scale": np.float32(2.5)}),
            "lag": ("time", np.arange(n) * np.timedelta64(1, "s")),
            "total": ((), np.float64(12.5), {"count": np.int64(3)}),
        },
        coords={"time": ("time", time, {"standard_name": "time"}),
                "level": ("level", np.array([10.0, 50.0, 100.0, 300.0]), {"units": "m"}),
                "site": ((), "BAO")},
        attrs={"hubkit_product_type": "test-every-kind", "title": "every kind",
               "heights": [22, 100, 300], "weights": np.array([0.5, 0.25]),
               "version": np.int32(2), "scale": np.float64(1.5), "ok": True,
               "nested": {"a": [1, 2], "b": "x"}},
    )


# --- byte identity ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", _shared_files())
def test_real_files_encode_to_zarrs_own_objects(shared_data, name):
    """Every real file the readers take, as the store writes it: Zarr's objects exactly; the
    ObsPack files of ``python -m benchmarks.openghg`` are never left to ``to_zarr``."""
    path = shared_data / name
    if name in REFUSED:
        with pytest.raises(HubkitError):
            io.read(path)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", HubkitWarning)
        ds = io.read(path)
    ours = assert_zarrs_objects(as_stored(ds))
    if name in OBSPACK:
        assert ours is not None, f"{name} fell back to to_zarr"
        assert {"zarr.json", "time/zarr.json", "time/c/0"} <= set(ours)


@pytest.mark.parametrize("chunk_bytes", [None, 64])
def test_the_store_tests_datasets_encode_to_zarrs_own_objects(monkeypatch, chunk_bytes):
    """The store tests' soundings and the every-kind dataset, as the store writes them (one
    chunk a variable, and with 64-byte chunks: many, the last one partial)."""
    if chunk_bytes:
        monkeypatch.setattr(encoding, "CHUNK_BYTES", chunk_bytes)
    for ds in (soundings(), soundings(n=3, seed=4), every_kind()):
        ours = assert_zarrs_objects(as_stored(ds))
        assert ours is not None
        if chunk_bytes and "value" in ds:  # 50 rows: 8 a chunk (4 for profile)
            assert {"value/c/6", "time/c/6", "profile/c/12/0"} <= set(ours)
    ours = assert_zarrs_objects(as_stored(every_kind()))
    assert not any(key.startswith(("gone/c", "zeros/c")) for key in ours), \
        "chunks holding only the fill value are not written"


def test_datasets_with_their_own_encodings_encode_to_zarrs_own_objects():
    """Without the store's preparation: Zarr's default chunks and compressor, CF packing
    (scale factor, integer dtype, ``_FillValue``), a source's time units, chunks larger than
    the array."""
    ds = every_kind(n=40)
    assert assert_zarrs_objects(ds) is not None
    ds["value"].encoding = {"dtype": "int16", "scale_factor": 0.1, "add_offset": 1900.0,
                            "_FillValue": -32768}
    ds["profile"].encoding = {"_FillValue": -999.0, "chunks": (16, 3)}
    ds["time"].encoding = {"units": "seconds since 2019-12-31", "dtype": "int64"}
    ds["flag"].encoding = {"chunks": (100,), "compressors": None}
    ds["ok"].encoding = {"source": "file.nc", "original_shape": (40,)}
    assert assert_zarrs_objects(ds) is not None
    ds["transposed"] = (("level", "time"), np.asfortranarray(ds["profile"].values.T))
    ds["big_endian"] = ("time", ds["value"].values.astype(">f8"))
    ds["missing_text"] = ("time", np.array(["a", None] * 20, dtype=object))
    ds["transposed"].encoding = {"chunks": (3, 16)}
    assert assert_zarrs_objects(ds) is not None


# --- what is not reproduced: None, and the store writes with Zarr ---------------------------


def test_unsupported_datasets_give_none():
    ds = as_stored(soundings())
    assert zarr_objects(ds.chunk({"sounding": 100})) is None  # Dask: Dask writes its chunks
    sharded = ds.copy()
    sharded["xco2"].encoding["shards"] = (500,)
    assert zarr_objects(sharded) is None
    with zarr.config.set({"array.write_empty_chunks": True}):
        assert zarr_objects(ds) is None
    assert zarr_objects(ds.isel(sounding=slice(0, 0))) is None  # nothing to write
    assert zarr_objects(ds) is not None


def test_an_error_in_the_encoder_leaves_the_write_to_zarr(tmp_path, monkeypatch):
    """A helper of Zarr or xarray that changed (here: one that raises) costs speed, not the
    product: ``None``, and the store writes with ``to_zarr``."""

    def changed(*args, **kwargs):
        raise TypeError("an unexpected keyword argument")

    monkeypatch.setattr(hubkit.store.zarr_encode, "_array_objects", changed)
    assert zarr_objects(as_stored(soundings())) is None
    store = Store(str(tmp_path / "s"))
    item = store.put(soundings(), inputs=["a"], step="t")
    back = store.open(item).load()
    xr.testing.assert_identical(back, soundings().assign_attrs(hubkit_product_id=item.id))


def test_the_store_falls_back_to_zarrs_writer_for_a_lazy_product(tmp_path, monkeypatch):
    """A Dask-backed product (an opened product, changed) is written by ``to_zarr`` and comes
    back equal; an in-memory one never reaches ``to_zarr``."""
    calls = []
    real = hubkit.store.core.zarr_objects
    monkeypatch.setattr(hubkit.store.core, "zarr_objects",
                        lambda ds: calls.append(real(ds)) or calls[-1])
    zarr_writes = []
    to_zarr = xr.Dataset.to_zarr
    monkeypatch.setattr(xr.Dataset, "to_zarr",
                        lambda self, *a, **k: zarr_writes.append(1) or to_zarr(self, *a, **k))
    store = Store(str(tmp_path / "s"))
    first = store.put(soundings(), inputs=["a"], step="t")
    assert calls[-1] is not None and zarr_writes == []
    changed = store.open(first).assign(xco2=lambda d: d["xco2"] + 1.0)
    assert isinstance(changed["xco2"].data, dask.array.Array)
    again = store.put(changed, inputs=[first.id], step="plus-one")
    assert calls[-1] is None and zarr_writes == [1]
    back = store.open(again).load()
    np.testing.assert_array_equal(back["xco2"].values, soundings()["xco2"].values + 1.0)
    np.testing.assert_array_equal(back["time"].values, soundings()["time"].values)
    assert store.fsck(deep=True, min_age=0).clean


# --- round trips through the new path ----------------------------------------------------------


def test_products_written_directly_open_equal_to_their_source(tmp_path, monkeypatch,
                                                              shared_data):
    """Written through :func:`zarr_objects` (``to_zarr`` made to fail), a product opens equal
    to what was put: the soundings, the every-kind dataset and an uploaded ObsPack file."""

    def no_zarr_writer(self, *args, **kwargs):
        raise AssertionError("to_zarr called")

    monkeypatch.setattr(xr.Dataset, "to_zarr", no_zarr_writer)
    store = Store(str(tmp_path / "s"))
    for ds in (soundings(), every_kind()):
        item = store.put(ds, inputs=[ds.attrs["hubkit_product_type"]], step="t")
        expected = _as_read_back(ds.assign_attrs(hubkit_product_id=item.id))
        xr.testing.assert_identical(store.open(item).load(), expected)
        xr.testing.assert_identical(store.open(item, load=True), expected)  # read whole
    path = shared_data / OBSPACK[0]
    item = ingest.upload(store, path)
    source = io.read(path).assign_attrs(hubkit_product_id=item.id)
    xr.testing.assert_identical(store.open(item).load(), source)
    xr.testing.assert_identical(store.open(item, load=True), source)
    assert store.fsck(deep=True, min_age=0).clean


def _as_read_back(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` as a Zarr v3 store gives it back: attribute arrays and NumPy scalars as JSON
    lists and numbers, fixed-width text as objects where Zarr keeps no width."""
    out = ds.copy()

    def plain(attrs):
        return {k: (v.tolist() if isinstance(v, np.ndarray | np.generic) else v)
                for k, v in attrs.items()}

    out.attrs = plain(out.attrs)
    for var in out.variables.values():
        var.attrs = plain(var.attrs)
    return out


def test_the_integrity_record_is_that_of_zarrs_objects(tmp_path, monkeypatch):
    """The store's record (sizes and hashes by key) of a product written directly is the one
    of the objects Zarr's writer makes."""
    from hubkit.store.integrity import digest, zarr_record

    store = Store(str(tmp_path / "s"))
    item = store.put(every_kind(), inputs=["x"], step="t")
    ds = encoding.for_zarr(every_kind().assign_attrs(hubkit_product_type="test-every-kind"))
    ds.attrs["hubkit_product_id"] = item.id
    expected = zarr_record({key: digest(data) for key, data in zarrs_own(ds).items()})
    assert item.properties["hubkit:integrity"] == expected
    assert pd.Timestamp(item.properties["start_datetime"]) == pd.Timestamp("2020-01-01", tz="UTC")
