"""Uploads end to end: formats, bad input that must leave the store unchanged, crashes, races."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from fixtures import (
    write_cf_grid_fixture,
    write_l2_ozone_fixture,
    write_lite_fixture,
    write_obspack_fixture,
    write_oco2peak_semicolon_csv,
)
from test_store import listing_checksum

from hubkit import ingest
from hubkit import io as hio
from hubkit.errors import HubkitError, IngestError, SchemaError, StoreError
from hubkit.store import Store


@pytest.fixture(params=["dir", "memory", pytest.param("s3", marks=pytest.mark.s3)])
def store(request, tmp_path):
    if request.param == "dir":
        return Store(str(tmp_path / "store"))
    if request.param == "memory":
        return Store(f"memory://upload-{tmp_path.name}")
    bucket = request.getfixturevalue("s3_bucket")
    return Store(f"s3://{bucket}/hub")


@pytest.mark.parametrize(
    "writer, name, collection",
    [
        (write_lite_fixture, "oco2_LtCO2_160831_B9003r.nc4", "oco2-soundings"),
        (write_oco2peak_semicolon_csv, "oco2_1608-sample.csv", "oco2-soundings"),
        (write_obspack_fixture, "co2_mlo_surface-insitu_1_allvalid.nc", "surface-obs"),
        (write_l2_ozone_fixture, "l2_o3_profiles.nc", "l2-ozone"),
        (write_cf_grid_fixture, "xco2_grid.nc", "cf-dataset"),
    ],
)
def test_every_format_uploads_and_round_trips(store, tmp_path, writer, name, collection):
    path = writer(tmp_path / name)
    expected = hio.read(path)
    item = ingest.upload(store, path)
    assert item.collection_id == collection
    assert item.properties["hubkit:provenance"]["inputs"][0]["sha256"] == hio.checksum(path)
    back = store.open(item).load()
    for var in expected.data_vars:
        np.testing.assert_array_equal(back[var].values, expected[var].values, err_msg=var)
        assert back[var].attrs.get("units") == expected[var].attrs.get("units")
    assert [h.id for h in store.search(collection)] == [item.id]
    assert ingest.upload(store, path).id == item.id  # content-derived id: a repeat is a no-op


def _bad_inputs(tmp_path):
    """(path, format, error class, words the message must contain) for each kind of bad input."""
    good = write_lite_fixture(tmp_path / "good.nc4")
    truncated = tmp_path / "truncated.nc4"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    empty = tmp_path / "empty.nc4"
    empty.write_bytes(b"")
    garbage = tmp_path / "garbage.nc4"
    garbage.write_bytes(np.random.default_rng(0).bytes(5000))
    png = tmp_path / "picture.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
    return [
        (truncated, None, IngestError, ["truncated.nc4"]),
        (truncated, "oco2-lite", IngestError, ["truncated.nc4"]),
        (empty, None, IngestError, ["empty.nc4", "empty"]),
        (garbage, None, IngestError, ["garbage.nc4", "not recognised"]),
        (png, "oco2-lite", HubkitError, ["picture.png"]),
        (good, "no-such-format", IngestError, ["good.nc4", "unknown format"]),
        (write_lite_fixture(tmp_path / "kelvin.nc4", xco2_units="K"), None, SchemaError,
         ["kelvin.nc4", "xco2", "'K'", "ppm"]),
        (write_lite_fixture(tmp_path / "nan.nc4", all_nan=True), None, SchemaError,
         ["nan.nc4", "xco2", "no valid value"]),
        (write_lite_fixture(tmp_path / "nolat.nc4", omit=("latitude",)), "oco2-lite",
         SchemaError, ["nolat.nc4", "latitude"]),
        (tmp_path / "missing.nc4", None, IngestError, ["missing.nc4", "no such file"]),
    ]


def test_bad_input_names_file_and_variable_and_changes_nothing(store, tmp_path):
    ingest.upload(store, write_lite_fixture(tmp_path / "kept.nc4", n=16))
    before = listing_checksum(store)
    for path, fmt, error, words in _bad_inputs(tmp_path):
        with pytest.raises(error) as info:
            ingest.upload(store, path, fmt)
        message = str(info.value)
        for word in words:
            assert word in message, f"{path.name}: {word!r} not in {message!r}"
        assert listing_checksum(store) == before, f"{path.name} changed the store"
    assert len(store.search()) == 1


def test_path_traversal_names_stay_inside_the_store(store, tmp_path):
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    sneaky = write_lite_fixture(nested / "..%2F..%2Fevil.nc4")
    item = ingest.upload(store, tmp_path / "a" / "b" / ".." / "b" / sneaky.name)
    assert store.data_path(item).startswith(store._path("data") + "/")
    for bad in ["../../etc/passwd", "oco2-soundings-../../x", "/etc/passwd"]:
        with pytest.raises(StoreError, match="invalid"):
            store.get_item(bad)


def _upload_in_process(url: str, path: str) -> str:
    os.environ.pop("HUBKIT_STORE", None)
    return ingest.upload(Store(url), path).id


def test_sixteen_concurrent_uploads_threads_and_processes(store, tmp_path):
    files = [write_lite_fixture(tmp_path / f"f{i:02d}.nc4", n=24 + i) for i in range(16)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        thread_ids = list(pool.map(lambda p: ingest.upload(store, p).id, files[:8]))
    if store.protocol == "memory":  # memory stores are per process: threads only
        process_ids = [ingest.upload(store, p).id for p in files[8:]]
    else:
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(4) as pool:
            process_ids = pool.starmap(_upload_in_process,
                                       [(store.url, str(p)) for p in files[8:]])
    ids = thread_ids + process_ids
    assert len(set(ids)) == 16
    assert sorted(h.id for h in store.search("oco2-soundings")) == sorted(ids)
    for path, item_id in zip(files, ids, strict=True):
        expected = hio.read(path)
        back = store.open(item_id)
        np.testing.assert_array_equal(back["xco2"].values, expected["xco2"].values)
    assert store.fsck(min_age=0).clean


def test_same_file_uploaded_concurrently_is_one_product(store, tmp_path):
    path = write_lite_fixture(tmp_path / "same.nc4", n=64)
    with ThreadPoolExecutor(max_workers=4) as pool:
        ids = set(pool.map(lambda _: ingest.upload(store, path).id, range(4)))
    if store.protocol != "memory":
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(2) as pool:
            ids |= set(pool.starmap(_upload_in_process, [(store.url, str(path))] * 2))
    assert len(ids) == 1
    assert [h.id for h in store.search()] == list(ids)
    report = store.fsck(min_age=0)
    assert report.clean, str(report)  # losers removed their own data copies
    np.testing.assert_array_equal(store.open(ids.pop())["xco2"].values,
                                  hio.read(path)["xco2"].values)


def test_writer_killed_between_data_and_item_leaves_nothing_visible(tmp_path):
    """A real process dies (os._exit) after writing the data and before the item."""
    root = tmp_path / "store"
    store = Store(str(root))
    kept = ingest.upload(store, write_lite_fixture(tmp_path / "kept.nc4", n=16))
    before = listing_checksum(store)
    victim = write_lite_fixture(tmp_path / "victim.nc4", n=48)
    script = textwrap.dedent(f"""
        import os
        from hubkit.ingest import upload
        from hubkit.store import Store
        Store._commit_item = lambda *a, **k: os._exit(9)
        upload(Store({str(root)!r}), {str(victim)!r})
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert proc.returncode == 9, proc.stderr.decode()
    assert [h.id for h in store.search()] == [kept.id]
    assert listing_checksum(store) != before
    report = store.fsck(repair=True, min_age=0)
    assert len(report.orphans) == 1
    assert listing_checksum(store) == before
    # the same file uploads cleanly afterwards
    assert ingest.upload(store, victim).id != kept.id
    assert len(store.search()) == 2


@pytest.mark.s3
@pytest.mark.slow
def test_dask_workers_read_the_s3_store(s3_bucket, tmp_path, monkeypatch):
    """Lazy products opened from S3 compute on worker processes (which see only the graph)."""
    from hubkit import compute

    for var in ("HUBKIT_DASK", "DASK_SCHEDULER_ADDRESS", "DASK_GATEWAY__ADDRESS"):
        monkeypatch.delenv(var, raising=False)
    store = Store(f"s3://{s3_bucket}/hub")
    paths = [write_lite_fixture(tmp_path / f"w{i}.nc4", n=200 + 8 * i) for i in range(3)]
    items = ingest.upload_many(store, paths, progress=False)
    expected = [float(np.nansum(hio.read(p)["xco2"].values)) for p in paths]
    with compute.client(n_workers=2, threads_per_worker=1) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        futures = [client.compute(store.open(item)["xco2"].sum()) for item in items]
        sums = [float(f.result()) for f in futures]
        worker_pids = set(client.run(os.getpid).values())
    assert len(worker_pids) == 2 and os.getpid() not in worker_pids
    np.testing.assert_allclose(sums, expected, rtol=1e-12)


def test_regular_grid_gets_its_bounding_box(store, tmp_path):
    """1-D lat/lon axes of different lengths, found by their CF units (named lat/lon)."""
    path = write_cf_grid_fixture(tmp_path / "grid.nc")
    item = ingest.upload(store, path)
    assert item.bbox == [25.0, -30.0, 32.5, -20.0]
    assert item.properties["start_datetime"].startswith("2016-08-31T00:00:00")
    assert item.properties["end_datetime"].startswith("2016-08-31T06:00:00")
    assert [h.id for h in store.search(bbox=(31, -21, 40, -10))] == [item.id]


def test_parallel_uploads_of_netcdf4_files_read_through_xarray(tmp_path):
    """Four threads uploading L2 ozone (netCDF-4, read with xarray's netCDF4 backend) at once.

    Without hubkit.io._common.xarray_netcdf this crashed the process with a segmentation fault
    (HDF5 is not thread-safe and xarray locks single calls, not whole reads); it runs in a child
    process so a crash fails this test instead of killing the run. With the pre-open checks of
    every upload (netCDF4 opened directly, only under xarray's per-call lock) it crashed again,
    or failed with "NetCDF: Can't open HDF5 attribute" (`make demo`, 36 files: 1 run in 3).
    """
    script = textwrap.dedent(f"""
        from pathlib import Path
        from hubkit import ingest, simulate
        from hubkit.io.l2_ozone import write_l2_ozone
        from hubkit.store import open_store
        files = []
        for h in range(24):
            ds = simulate.l2_ozone(start=f"2024-07-01T{{h:02d}}:00:00", hours=1, seed=h,
                                   spacing=2.0, bbox=(-15.0, 35.0, 35.0, 60.0))
            path = Path({str(tmp_path)!r}) / f"l2_{{h}}.nc"
            write_l2_ozone(ds, path)
            files.append(path)
        for attempt in range(4):
            store = open_store({str(tmp_path)!r} + f"/store{{attempt}}")
            items = ingest.upload_many(store, files, progress=False, max_workers=4)
            assert len({{i.id for i in items}}) == 24
            assert len(store.search("l2-ozone")) == 24
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=280)
    assert done.returncode == 0, f"child exited {done.returncode}:\n{done.stderr[-2000:]}"
    assert done.stdout.strip().endswith("ok")


def test_upload_many_refuses_an_unknown_on_error(tmp_path):
    from hubkit.errors import IngestError

    with pytest.raises(IngestError, match="on_error='ignore'; expected 'raise' or 'collect'"):
        ingest.upload_many(Store(str(tmp_path / "store")), [], on_error="ignore")
    assert not (tmp_path / "store" / "catalog").exists()
