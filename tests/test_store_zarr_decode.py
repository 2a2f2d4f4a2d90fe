"""hubkit.store.zarr_decode gives what xarray's Zarr reader gives, on every real file the store
takes and every layout it writes, and declines what it does not handle."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from hubkit.store.encoding import for_zarr, object_text
from hubkit.store.zarr_decode import decode_group

#: Every provider file of ../shared/data the store takes (tests/test_real_station_data.py and
#: tests/test_hostile_inputs.py check what they hold; here only how their products decode).
REAL = ["real/ch4_bao_tower-insitu_1_ccgg_all.nc", "real/ch4_esp_surface-flask_2_representative.nc",
        "real/co_pocn25_surface-flask_1_ccgg_event.txt", "real/agage_thd_cfc-11_20240703-test.nc",
        "real/gosat-fts_gosat_20160101_ch4-column.nc", "real/hw20230402_20230402.public.qc.nc",
        "real/test_toh_co2_147m.nc", "real/ICOS_ATC_L2_L2-2024.1_RGL_90.0_CTS.CH4",
        "oco2peak/oco2_orbit11522_20160831_segment_300-800km.csv",
        "oco2peak/oco2peak_reference_peaks_orbit11522.csv", "oco2peak/peaks_out_1808.csv",
        "oco2peak/xco2_monthly_mean.csv", "oco2peak/CO2_emissions_inventory_merged_2018.csv"]


def _objects(ds: xr.Dataset, **to_zarr) -> dict[str, bytes]:
    """The objects xarray's Zarr writer makes of ``ds`` (as the store writes a product)."""
    import zarr

    kept: dict = {}
    ds.to_zarr(zarr.storage.MemoryStore(store_dict=kept), mode="w-", zarr_format=3,
               consolidated=False, **to_zarr)
    return {key: buf.to_bytes() for key, buf in kept.items()}


def _zarr_read(objects: dict[str, bytes]) -> xr.Dataset:
    """The reference: xarray's own reader on the same objects (text as str, as the store)."""
    import zarr
    from zarr.core.buffer import default_buffer_prototype

    buffer = default_buffer_prototype().buffer
    store = zarr.storage.MemoryStore({k: buffer.from_bytes(v) for k, v in objects.items()},
                                     read_only=True)
    return object_text(xr.open_zarr(store, consolidated=False, zarr_format=3,
                                    chunks=None).load())


def _assert_same(got: xr.Dataset | None, want: xr.Dataset) -> None:
    assert got is not None, "decode_group declined a layout the store writes"
    xr.testing.assert_identical(got, want)
    assert {n: v.dtype for n, v in got.variables.items()} == {
        n: v.dtype for n, v in want.variables.items()}
    for name, var in got.variables.items():
        assert isinstance(var.data, np.ndarray) or name in got.xindexes, name  # in memory
        for key in ("units", "calendar", "_FillValue", "coordinates", "dtype"):
            if key in want[name].encoding or key in var.encoding:
                np.testing.assert_equal(var.encoding.get(key), want[name].encoding.get(key))


@pytest.mark.parametrize("name", REAL)
def test_real_products_decode_as_zarr_reads_them(shared_data, name):
    from hubkit import io as hio
    from hubkit.errors import FlaggedRowsWarning

    with warnings.catch_warnings():  # (the inventory has a row without a position, flagged)
        warnings.simplefilter("ignore", FlaggedRowsWarning)
        ds = hio.read(shared_data / name)
    assert isinstance(ds, xr.Dataset), f"{name}: a table, not a Zarr product"
    objects = _objects(for_zarr(ds))
    _assert_same(decode_group(objects), _zarr_read(objects))


def _every_layout() -> xr.Dataset:
    rng = np.random.default_rng(7)
    n = 50
    time = pd.date_range("2024-01-01", periods=n, freq="37min")
    value = rng.normal(400, 2, n)
    value[:20] = np.nan  # with chunks of 8 rows, two whole chunks of fill: not written
    ds = xr.Dataset(
        {"value": ("time", value, {"units": "ppm", "long_name": "CO2"}),
         "profile": (("time", "level"), rng.normal(size=(n, 3)).astype("float32")),
         "flag": ("time", rng.integers(-5, 5, n).astype("int8"), {"flag_values": [0, 1]}),
         "count": ("time", rng.integers(0, 60000, n).astype("uint16")),
         "ok": ("time", rng.random(n) > 0.5),
         "qc": ("time", np.array([f"q{i % 3}" for i in range(n)], dtype=object)),
         "scalar": ((), 3.5, {"units": "m"}),
         "lag": ("time", pd.to_timedelta(rng.integers(0, 100, n), unit="s")),
         "masked": ("time", np.where(np.arange(n) % 4, 1.0, -999.0),
                    {"_FillValue": -999.0})},
        coords={"time": time, "level": ("level", np.array(["low", "mid", "top"], dtype=object)),
                "latitude": ("time", np.linspace(-10, 10, n), {"standard_name": "latitude"})},
        attrs={"site_code": "XYZ", "heights": [10.0, 40.0], "nested": {"a": 1}})
    return ds


@pytest.mark.parametrize("codec", ["blosc", "zstd", "gzip", "none"])
@pytest.mark.parametrize("chunk_rows", [8, 50])
def test_every_layout_the_store_writes_decodes_as_zarr_reads_it(codec, chunk_rows):
    from zarr.codecs import GzipCodec, ZstdCodec

    from hubkit.store.encoding import compressors

    compressor = {"blosc": compressors(), "zstd": (ZstdCodec(),), "gzip": (GzipCodec(),),
                  "none": ()}[codec]
    ds = _every_layout()
    encoding = {name: {"chunks": (chunk_rows, *ds[name].shape[1:]), "compressors": compressor}
                for name in ("value", "profile", "flag", "count", "ok", "masked")}
    objects = _objects(ds, encoding=encoding)
    if chunk_rows == 8:
        assert "value/c/0" not in objects and "value/c/1" not in objects  # fill: not written
    want = _zarr_read(objects)
    _assert_same(decode_group(objects), want)
    np.testing.assert_array_equal(want["masked"].isnull(), np.arange(50) % 4 == 0)


def test_a_big_endian_array_decodes(tmp_path):
    from zarr.codecs import BytesCodec

    ds = xr.Dataset({"v": ("x", np.arange(10.0))})
    objects = _objects(ds, encoding={"v": {"serializer": BytesCodec(endian="big")}})
    assert b'"big"' in objects["v/zarr.json"]
    _assert_same(decode_group(objects), _zarr_read(objects))


def test_what_it_does_not_handle_is_declined_not_guessed():
    import zarr

    ds = xr.Dataset({"v": ("x", np.arange(64.0))})
    sharded = _objects(ds, encoding={"v": {"chunks": (8,), "shards": (32,)}})
    assert decode_group(sharded) is None
    nested = {**_objects(ds), "sub/zarr.json": b'{"zarr_format": 3, "node_type": "group"}'}
    assert decode_group(nested) is None
    v2: dict = {}
    ds.to_zarr(zarr.storage.MemoryStore(store_dict=v2), zarr_format=2, consolidated=False)
    assert decode_group({k: b.to_bytes() for k, b in v2.items()}) is None
    assert decode_group({}) is None
