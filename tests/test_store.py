"""Round trips through the store, the same assertions on the directory, memory and S3 stores."""

from __future__ import annotations

import json

import dask.array
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from hubkit import catalog
from hubkit.errors import SchemaError, StoreError
from hubkit.store import Store


def soundings(n=500, lat0=-28.0, lon0=29.0, start="2016-08-31T11:55:00", seed=0):
    """A canonical OCO-2-like soundings dataset along a north-bound track."""
    rng = np.random.default_rng(seed)
    t = np.datetime64(start, "ns") + np.arange(n) * np.timedelta64(333, "ms")
    lat = lat0 + np.arange(n) * 0.0025
    lon = lon0 + np.arange(n) * 0.0005
    return xr.Dataset(
        {
            "xco2": ("sounding", 402.0 + rng.normal(0, 0.7, n), {"units": "ppm"}),
            "latitude": ("sounding", lat, {"units": "degrees_north"}),
            "longitude": ("sounding", lon, {"units": "degrees_east"}),
            "time": ("sounding", t),
            "surface_pressure": ("sounding", np.full(n, 85000.0), {"units": "Pa"}),
        },
        attrs={"hubkit_product_type": "oco2-soundings", "hubkit_species": "co2",
               "source": f"synthetic-{seed}"},
    )


def table(n=40, lat0=-26.0, lon0=28.0, start="2016-08-31T11:56:00", seed=0):
    """A table product: one row per detection, with every column kind a table may hold."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "latitude": lat0 + rng.uniform(0, 2, n),
        "longitude": lon0 + rng.uniform(0, 3, n),
        "time": pd.Timestamp(start) + pd.to_timedelta(rng.integers(0, 3600, n), "s"),
        "orbit": rng.integers(11500, 11600, n),
        "delta": rng.gamma(2.0, 1.0, n),
        "emission": np.where(rng.random(n) < 0.2, np.nan, rng.uniform(100, 5000, n)),
        "source": [f"plant-{k}" for k in rng.integers(0, 9, n)],
        "suppressed": rng.random(n) < 0.3,
    })


TABLE_ATTRS = {"title": "test detections", "hubkit_species": "co2",
               "units": {"delta": "ppm", "emission": "kg s-1"}}


def listing_checksum(store: Store) -> list[tuple[str, int]]:
    """Every object under the store root with its size: changes when anything is written."""
    store._invalidate(store.root)
    return sorted(
        (path, info.get("size", 0))
        for path, info in store.fs.find(store.root, detail=True).items()
        if "/index/" not in path
    )


class StoreRoundTrip:
    """Assertions every store backend must pass; subclasses provide the ``store`` fixture."""

    def test_put_open_round_trip_is_exact(self, store):
        ds = soundings()
        item = store.put(ds, inputs=["a"], step="test")
        back = store.open(item)
        assert isinstance(back["xco2"].data, dask.array.Array), "open() must be lazy"
        xr.testing.assert_identical(back["xco2"].compute(), ds["xco2"])
        np.testing.assert_array_equal(back["time"].values, ds["time"].values)
        assert back["xco2"].attrs["units"] == "ppm"
        assert back.attrs["hubkit_product_id"] == item.id

    def test_an_opened_product_changed_and_put_back(self, store):
        """open() → change → put(): the opened dataset's time encoding (units from the Zarr,
        on a lazy array) made the write fail ('both the units and dtype must be prescribed')."""
        first = store.put(soundings(), inputs=["a"], step="test")
        changed = store.open(first).assign(xco2=lambda d: d["xco2"] + 1.0)
        again = store.put(changed, inputs=[first.id], step="plus-one")
        back = store.open(again)
        np.testing.assert_array_equal(back["time"].values, soundings()["time"].values)
        np.testing.assert_allclose(back["xco2"].values, soundings()["xco2"].values + 1.0)

    def test_item_records_extent_and_provenance(self, store):
        ds = soundings()
        item = store.put(ds, inputs=["x", "y"], step="test", step_version="3",
                         parameters={"k": 1})
        assert item.collection_id == "oco2-soundings"
        assert item.bbox == pytest.approx([29.0, -28.0, 29.0 + 499 * 0.0005, -28.0 + 499 * 0.0025])
        assert item.properties["start_datetime"].startswith("2016-08-31T11:55:00")
        prov = item.properties["hubkit:provenance"]
        assert prov["inputs"] == ["x", "y"] and prov["step"] == "test"
        assert prov["step_version"] == "3" and prov["parameters"] == {"k": 1}
        assert item.properties["hubkit:variables"]["xco2"]["units"] == "ppm"

    def test_same_content_is_one_product(self, store):
        ds = soundings()
        a = store.put(ds, inputs=["same"], step="test")
        before = listing_checksum(store)
        b = store.put(ds, inputs=["same"], step="test")
        assert a.id == b.id
        assert listing_checksum(store) == before
        assert [i.id for i in store.items()] == [a.id]

    def test_search_filters(self, store):
        south = store.put(soundings(lat0=-28.0, lon0=29.0), inputs=["s"], step="t")
        north = store.put(soundings(lat0=40.0, lon0=-100.0, start="2017-01-05T10:00:00"),
                          inputs=["n"], step="t")
        ids = lambda hits: sorted(h.id for h in hits)  # noqa: E731
        assert ids(store.search("oco2-soundings")) == sorted([south.id, north.id])
        assert ids(store.search(bbox=(28, -29, 30, -24))) == [south.id]
        assert ids(store.search(bbox=(-101, 39, -99, 42))) == [north.id]
        assert ids(store.search(datetime="2016-08/2016-09")) == [south.id]
        assert ids(store.search(datetime="2017-01-05")) == [north.id]
        assert ids(store.search(datetime="../2016-08-30")) == []
        assert ids(store.search(species="CO2")) == sorted([south.id, north.id])
        assert store.search(species="o3") == []
        assert store.search("l2-ozone") == []
        assert len(store.search(limit=1)) == 1

    def test_index_follows_deletes_and_rebuilds(self, store):
        a = store.put(soundings(seed=1), inputs=["1"], step="t")
        b = store.put(soundings(seed=2), inputs=["2"], step="t")
        assert len(store.search()) == 2
        store.delete(a)
        assert [h.id for h in store.search()] == [b.id]
        with pytest.raises(StoreError, match="no product"):
            store.open(a.id)
        rebuilt = store.rebuild_index()
        assert list(rebuilt["id"]) == [b.id]

    @pytest.mark.parametrize("bad", ["../../etc/passwd", "oco2-soundings/../../x", ".hidden",
                                     "UPPER-0123456789abcdef", ""])
    def test_path_traversal_ids_are_refused(self, store, bad):
        before = listing_checksum(store)
        with pytest.raises(StoreError, match="invalid"):
            store.open(bad)
        with pytest.raises(StoreError, match="invalid"):
            store.delete(bad)
        assert listing_checksum(store) == before

    def test_invalid_output_is_refused_and_nothing_written(self, store):
        store.put(soundings(), inputs=["ok"], step="t")
        before = listing_checksum(store)
        bad = soundings()
        bad["xco2"] = bad["xco2"] * np.nan
        with pytest.raises(SchemaError, match="xco2"):
            store.put(bad, inputs=["nan"], step="t")
        bad = soundings()
        bad["xco2"].attrs["units"] = "K"
        with pytest.raises(SchemaError, match="units 'K'"):
            store.put(bad, inputs=["k"], step="t")
        assert listing_checksum(store) == before

    def test_crash_before_commit_leaves_no_product_and_fsck_cleans(self, store, monkeypatch):
        kept = store.put(soundings(seed=5), inputs=["kept"], step="t")
        before = listing_checksum(store)

        def die(*args, **kwargs):
            raise KeyboardInterrupt("killed between data and item")

        monkeypatch.setattr(Store, "_commit_item", die)
        with pytest.raises(KeyboardInterrupt):
            store.put(soundings(seed=6), inputs=["lost"], step="t")
        monkeypatch.undo()
        assert [h.id for h in store.search()] == [kept.id]
        assert listing_checksum(store) != before  # the orphaned data are there ...
        assert store.fsck(min_age=3600).clean  # ... but too young to be called orphans
        report = store.fsck(min_age=0)
        assert len(report.orphans) == 1 and not report.repaired
        report = store.fsck(repair=True, min_age=0)
        assert len(report.orphans) == 1 and report.repaired
        assert listing_checksum(store) == before
        assert store.fsck(min_age=0).clean

    def test_table_round_trip_is_exact(self, store):
        df = table()
        item = store.put_table(df, product_type="test-peaks", inputs=["a"], step="detect",
                               step_version="2", parameters={"threshold": 25.0},
                               attrs=TABLE_ATTRS)
        assert item.assets["data"].media_type == catalog.PARQUET_MEDIA_TYPE
        assert item.assets["data"].href.endswith(".parquet")
        back = store.open(item)
        assert isinstance(back, pd.DataFrame)
        pd.testing.assert_frame_equal(back, df, check_exact=True)
        assert back.attrs["units"] == TABLE_ATTRS["units"]
        assert back.attrs["hubkit_product_id"] == item.id
        assert back.attrs["hubkit_product_type"] == "test-peaks"
        prov = item.properties["hubkit:provenance"]
        assert prov["step"] == "detect" and prov["parameters"] == {"threshold": 25.0}
        assert item.properties["hubkit:variables"]["emission"]["units"] == "kg s-1"
        assert item.properties["hubkit:species"] == "co2"
        assert item.bbox == pytest.approx([df["longitude"].min(), df["latitude"].min(),
                                           df["longitude"].max(), df["latitude"].max()])
        assert pd.Timestamp(item.properties["start_datetime"]) == \
            df["time"].min().tz_localize("UTC")
        assert pd.Timestamp(item.properties["end_datetime"]) == \
            df["time"].max().tz_localize("UTC")

    def test_table_repeat_is_a_no_op_and_search_finds_it(self, store):
        a = store.put_table(table(), product_type="test-peaks", inputs=["s"], step="t",
                            attrs=TABLE_ATTRS)
        before = listing_checksum(store)
        again = store.put_table(table(), product_type="test-peaks", inputs=["s"], step="t",
                                attrs=TABLE_ATTRS)
        assert again.id == a.id and listing_checksum(store) == before
        north = store.put_table(table(lat0=40.0, lon0=-100.0, start="2017-01-05T10:00:00"),
                                product_type="test-peaks", inputs=["n"], step="t")
        grid = store.put(soundings(), inputs=["g"], step="t")
        ids = lambda hits: sorted(h.id for h in hits)  # noqa: E731
        assert ids(store.search("test-peaks")) == sorted([a.id, north.id])
        assert ids(store.search(bbox=(28.9, -27.0, 29.5, -25.5))) == sorted([a.id, grid.id])
        assert ids(store.search(bbox=(27.0, -28.5, 28.5, -27.5))) == []
        assert ids(store.search("test-peaks", bbox=(-101, 39, -99, 42))) == [north.id]
        assert ids(store.search("test-peaks", datetime="2016-08-31")) == [a.id]
        assert ids(store.search(datetime="2017-01")) == [north.id]
        assert ids(store.search(species="co2", collection="test-peaks")) == [a.id]
        store.delete(north)
        with pytest.raises(StoreError, match="no product"):
            store.open(north.id)
        assert ids(store.search("test-peaks")) == [a.id]
        assert store.fsck(min_age=0).clean

    def test_table_crash_before_commit_leaves_an_orphan_fsck_removes(self, store, monkeypatch):
        kept = store.put_table(table(seed=1), product_type="test-peaks", inputs=["kept"],
                               step="t")
        before = listing_checksum(store)

        def die(*args, **kwargs):
            raise KeyboardInterrupt("killed between data and item")

        monkeypatch.setattr(Store, "_commit_item", die)
        with pytest.raises(KeyboardInterrupt):
            store.put_table(table(seed=2), product_type="test-peaks", inputs=["lost"], step="t")
        monkeypatch.undo()
        assert [h.id for h in store.search()] == [kept.id]
        assert listing_checksum(store) != before
        assert store.fsck(min_age=3600).clean
        report = store.fsck(repair=True, min_age=0)
        assert len(report.orphans) == 1 and report.orphans[0].endswith(".parquet")
        assert listing_checksum(store) == before
        assert store.fsck(min_age=0).clean
        pd.testing.assert_frame_equal(store.open(kept), table(seed=1))
        store._remove(store.data_path(kept))  # now lose the data of a committed table
        with pytest.raises(StoreError, match="missing"):
            store.open(kept)
        assert store.fsck(repair=True, min_age=0).broken_items == [kept.id]

    def test_table_of_a_known_type_is_validated(self, store):
        before = listing_checksum(store)
        with pytest.raises(SchemaError, match="'latitude' has units None"):
            store.put_table(table(), product_type="oco2-peaks", inputs=["x"], step="t")
        units = {"latitude": "degrees_north", "longitude": "degrees_east"}
        with pytest.raises(SchemaError, match="required variable 'along'"):
            store.put_table(table(), product_type="oco2-peaks", inputs=["x"], step="t",
                            attrs={"units": units})
        with pytest.raises(SchemaError, match="JSON"):
            store.put_table(table(), product_type="test-peaks", inputs=["x"], step="t",
                            attrs={"when": pd.Timestamp("2016")})
        assert listing_checksum(store) == before

    def test_missing_data_is_reported(self, store):
        item = store.put(soundings(seed=7), inputs=["7"], step="t")
        store._remove(store.data_path(item))
        with pytest.raises(StoreError, match="missing"):
            store.open(item).load()
        report = store.fsck(repair=True, min_age=0)
        assert report.broken_items == [item.id]
        assert store.search() == []

    def test_stac_records_are_valid_json_with_links(self, store):
        item = store.put(soundings(), inputs=["x"], step="t")
        d = json.loads(store.fs.cat_file(store._item_path(item.id)))
        assert d["type"] == "Feature" and d["collection"] == "oco2-soundings"
        assert {link["rel"] for link in d["links"]} >= {"collection", "root", "parent"}
        coll = json.loads(store.fs.cat_file(store._path("catalog", "oco2-soundings",
                                                        "collection.json")))
        assert coll["type"] == "Collection" and coll["id"] == "oco2-soundings"
        assert store.collections() == ["oco2-soundings"]


class TestDirectoryStore(StoreRoundTrip):
    @pytest.fixture
    def store(self, tmp_path):
        return Store(str(tmp_path / "store"))


class TestMemoryStore(StoreRoundTrip):
    @pytest.fixture
    def store(self, request):
        import fsspec

        name = f"hubkit-test-{abs(hash(request.node.nodeid))}"
        fsspec.filesystem("memory").rm(f"/{name}", recursive=True) if fsspec.filesystem(
            "memory").exists(f"/{name}") else None
        return Store(f"memory://{name}")


@pytest.mark.s3
class TestS3Store(StoreRoundTrip):
    @pytest.fixture
    def store(self, s3_bucket):
        return Store(f"s3://{s3_bucket}/hub")


def test_datetime_ranges_are_inclusive_periods():
    start, end = catalog.parse_datetime_range("2016-08/2016-09")
    assert start == pd.Timestamp("2016-08-01", tz="UTC")
    assert end == pd.Timestamp("2016-10-01", tz="UTC") - pd.Timedelta(1, "ns")
    start, end = catalog.parse_datetime_range("2016-08-31")
    assert end - start == pd.Timedelta(1, "D") - pd.Timedelta(1, "ns")
    assert catalog.parse_datetime_range("../2016") == (
        None, pd.Timestamp("2017-01-01", tz="UTC") - pd.Timedelta(1, "ns"))
    with pytest.raises(StoreError, match="end is before"):
        catalog.parse_datetime_range("2017/2016")
    with pytest.raises(StoreError, match="ISO 8601"):
        catalog.parse_datetime_range("yesterday")


def test_bad_bbox_is_explained(tmp_path):
    store = Store(str(tmp_path))
    with pytest.raises(StoreError, match="west <= east"):
        store.search(bbox=(30, -29, 28, -24))


def test_unknown_scheme_and_missing_bucket(s3_server):
    with pytest.raises(StoreError, match="unknown scheme"):
        Store("ftp://example/x")
    with pytest.raises(StoreError, match="does not exist"):
        Store("s3://no-such-bucket-here/x")


def test_table_longitudes_beyond_180_give_a_valid_bbox(tmp_path):
    store = Store(str(tmp_path))
    df = table(lon0=-200.0)  # longitudes -200 ... -197, i.e. 160 ... 163 east
    item = store.put_table(df, product_type="test-peaks", inputs=["w"], step="t")
    assert item.bbox[0] == pytest.approx(df["longitude"].min() + 360)
    assert item.bbox[2] == pytest.approx(df["longitude"].max() + 360)
    assert [h.id for h in store.search(bbox=(159, -27, 165, -23))] == [item.id]
    pd.testing.assert_frame_equal(store.open(item), df)  # the data are stored as given


@pytest.mark.parametrize("bad", ["../x", "UP", ""])
def test_records_round_trip_and_refuse_bad_names(tmp_path, bad):
    store = Store(str(tmp_path / "store"))
    assert store.get_record("chain-failures", "abc") is None
    store.put_record("chain-failures", "abc", {"error": "boom", "n": 1})
    assert store.get_record("chain-failures", "abc") == {"error": "boom", "n": 1}
    store.delete_record("chain-failures", "abc")
    store.delete_record("chain-failures", "abc")  # missing is fine
    assert store.get_record("chain-failures", "abc") is None
    with pytest.raises(StoreError, match="invalid record name"):
        store.put_record("chain-failures", bad, {})


def test_a_lazy_product_is_put_back_while_a_dask_client_is_active(tmp_path):
    """In a notebook with a Dask client: open() → change → put() sent the write, with the
    store's hashing lock, to the cluster ('cannot pickle _thread.lock'). The write runs here."""
    from hubkit import compute

    store = Store(str(tmp_path / "store"))
    first = store.put(soundings(), inputs=["a"], step="test")
    with compute.client(n_workers=1, threads_per_worker=1):
        changed = store.open(first).assign(xco2=lambda d: d["xco2"] * 2.0)
        again = store.put(changed, inputs=[first.id], step="times-two")
    np.testing.assert_allclose(store.open(again)["xco2"].values, soundings()["xco2"].values * 2)
    assert store.fsck(deep=True, min_age=0).clean
