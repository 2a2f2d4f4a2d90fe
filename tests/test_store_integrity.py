"""The store defends its own integrity (issue 24), on the directory and S3 (moto) stores.

Each test first reproduces one finding of a hostile-user session against the real store: fsck
deleting uploads in progress or the data of an unreadable item, a tampered href reaching another
product, a missing chunk read as NaN, a stray copy of an item multiplying search hits, a wrongly
typed index, and the first import of dask racing in upload threads.
"""

from __future__ import annotations

import json
import os
import posixpath
import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from test_store import listing_checksum, soundings, table

import hubkit.store
from hubkit import catalog, ingest
from hubkit.cli import main
from hubkit.errors import ChainError, StoreError
from hubkit.store import Store
from hubkit.store.fsck import data_token


@pytest.fixture(params=["dir", pytest.param("s3", marks=pytest.mark.s3)])
def store(request, tmp_path):
    if request.param == "dir":
        return Store(str(tmp_path / "store"))
    bucket = request.getfixturevalue("s3_bucket")
    return Store(f"s3://{bucket}/hub")


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of 100 float64 values, so a 500-sounding product has five per variable."""
    monkeypatch.setattr(hubkit.store.encoding, "CHUNK_BYTES", 800)


def data_objects(store, item) -> dict[str, bytes]:
    """Every object of a product's data, by key relative to its data folder."""
    root = store.data_path(item)
    store._invalidate(root)
    return {posixpath.relpath(p, root): store.fs.cat_file(p)
            for p in store.fs.find(root)}


def put_object(store, path, data: bytes) -> None:
    """Write one object as a foreign hand would (folders made on a directory store)."""
    if store.protocol == "file":
        os.makedirs(os.path.dirname(path), exist_ok=True)
    store.fs.pipe_file(path, data)


def item_ids(hits) -> list[str]:
    return sorted(h.id for h in hits)


# -- finding 1: fsck judges age from the product's own write record ---------------------------
def test_fsck_spares_data_folders_zarr_created_before_any_file(store):
    """Zarr makes a product's folders before it writes a file: fsck must not call them old."""
    kept = store.put(soundings(seed=1), inputs=["kept"], step="t")
    item_id = catalog.product_id("oco2-soundings", "in-progress")
    token = data_token(".zarr")
    writing = store._path("data", "oco2-soundings", item_id, token)
    if store.protocol == "file":  # empty folders exist only on a directory store
        os.makedirs(os.path.join(writing, "xco2", "c"))
    else:  # on S3: the first object of a write that started a moment ago
        store.fs.pipe_file(posixpath.join(writing, "zarr.json"), b"{}")
    report = store.fsck(repair=True)  # the default min-age (one hour)
    assert report.orphans == [], str(report)
    if store.protocol == "file":
        assert os.path.isdir(os.path.join(writing, "xco2", "c"))
    else:
        assert store.fs.exists(posixpath.join(writing, "zarr.json"))
    assert item_ids(store.search()) == [kept.id]


def test_fsck_age_of_a_legacy_empty_folder_is_its_own_not_infinite(tmp_path):
    """Data folders from before write-time tokens: an empty one is as old as the folder."""
    store = Store(str(tmp_path / "store"))
    item_id = catalog.product_id("oco2-soundings", "legacy")
    legacy = store._path("data", "oco2-soundings", item_id, "0123456789ab.zarr")
    os.makedirs(os.path.join(legacy, "xco2", "c"))
    assert store.fsck(repair=True).orphans == []
    assert os.path.isdir(legacy)
    old = time.time() - 7200
    for folder in (legacy, os.path.join(legacy, "xco2"), os.path.join(legacy, "xco2", "c")):
        os.utime(folder, (old, old))
    report = store.fsck(repair=True)
    assert report.orphans == [legacy] and not os.path.exists(legacy)


def test_fsck_takes_the_youngest_evidence_of_a_write(store, monkeypatch):
    """The write record makes an orphan old by its own clock, not by the files' times."""
    kept = store.put(soundings(seed=1), inputs=["kept"], step="t")
    before = listing_checksum(store)
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() - 7200)  # a writer two hours ago
    token = data_token(".zarr")
    monkeypatch.undo()
    orphan = store._path("data", "oco2-soundings",
                         catalog.product_id("oco2-soundings", "died"), token)
    put_object(store, posixpath.join(orphan, "zarr.json"), b"{}")
    # the object itself is fresh (on S3 its time is the server's): the youngest evidence wins
    assert store.fsck(repair=True).orphans == []
    report = store.fsck(repair=True, min_age=60)
    assert report.orphans == []  # written a moment ago: still young
    assert store.fsck(repair=True, min_age=0).orphans == [orphan]
    assert listing_checksum(store) == before
    assert item_ids(store.search()) == [kept.id]


# -- finding 2: items are parsed defensively; an unreadable item never costs its data ---------
DAMAGE = {
    "truncated": lambda raw, d: raw[: len(raw) // 2],
    "not-json": lambda raw, d: b"\x00\xff garbage",
    "a-list": lambda raw, d: json.dumps([d]).encode(),
    "no-assets": lambda raw, d: json.dumps({k: v for k, v in d.items()
                                            if k != "assets"}).encode(),
    "no-data-asset": lambda raw, d: json.dumps({**d, "assets": {}}).encode(),
    "href-not-a-string": lambda raw, d: json.dumps(
        {**d, "assets": {"data": {**d["assets"]["data"], "href": 7}}}).encode(),
    "other-id": lambda raw, d: json.dumps({**d, "id": "oco2-soundings-0000000000000000"}
                                          ).encode(),
    "bad-bbox": lambda raw, d: json.dumps({**d, "bbox": "everywhere"}).encode(),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_item_is_reported_and_quarantined_never_deleted(store, damage):
    good = store.put(soundings(seed=1), inputs=["good"], step="t")
    bad = store.put(soundings(seed=2), inputs=["bad"], step="t")
    assert item_ids(store.search()) == sorted([good.id, bad.id])  # both indexed
    bad_data = data_objects(store, bad)
    path = store._item_path(bad.id)
    raw = store.fs.cat_file(path)
    store.fs.pipe_file(path, DAMAGE[damage](raw, json.loads(raw)))
    store._invalidate(posixpath.dirname(path))

    # readers: a clear StoreError naming the item, no AttributeError/KeyError traceback
    for call in (store.get_item, store.open):
        with pytest.raises(StoreError, match=f"{bad.id}.*damaged"):
            call(bad.id)
    # search keeps working and leaves the damaged item out (a fresh index too)
    assert item_ids(store.search()) == [good.id]
    assert list(store.rebuild_index()["id"]) == [good.id]
    assert [i.id for i in store.items()] == [good.id]

    report = store.fsck(min_age=0)
    assert report.orphans == [], "the data of a damaged item are not orphans"
    assert list(report.damaged_items) == [bad.id] and not report.clean
    assert bad.id in str(report)

    report = store.fsck(repair=True, min_age=0)
    assert list(report.damaged_items) == [bad.id] and len(report.quarantined) == 1
    moved = report.quarantined[0]
    assert store.fs.cat_file(posixpath.join(moved, posixpath.relpath(path, store.root))) == \
        DAMAGE[damage](raw, json.loads(raw))
    q_data = posixpath.join(moved, posixpath.relpath(store.data_path(bad), store.root))
    assert {posixpath.relpath(p, q_data): store.fs.cat_file(p)
            for p in store.fs.find(q_data)} == bad_data
    assert store.fsck(min_age=0).clean
    assert item_ids(store.search()) == [good.id]
    xr.testing.assert_identical(store.open(good)["xco2"].compute(),
                                soundings(seed=1)["xco2"])
    # the product can be made again: its id is free
    assert store.put(soundings(seed=2), inputs=["bad"], step="t").id == bad.id


def test_cli_show_and_search_explain_a_damaged_item(store, capsys):
    good = store.put(soundings(seed=1), inputs=["good"], step="t")
    bad = store.put(soundings(seed=2), inputs=["bad"], step="t")
    store.fs.pipe_file(store._item_path(bad.id), b"[]")
    assert main(["show", bad.id, "--store", store.url]) == 2
    err = capsys.readouterr().err
    assert bad.id in err and "damaged" in err and "Traceback" not in err
    assert main(["search", "--store", store.url]) == 0
    out = capsys.readouterr().out
    assert good.id in out and bad.id not in out
    assert main(["fsck", "--store", store.url, "--min-age", "0"]) == 1
    assert bad.id in capsys.readouterr().out


# -- finding 3: an asset href is confined to its own product's data prefix --------------------
def test_a_tampered_href_cannot_reach_another_product(store):
    a = store.put(soundings(seed=1), inputs=["a"], step="t")
    b = store.put(soundings(seed=2), inputs=["b"], step="t")
    b_before = data_objects(store, b)
    path = store._item_path(a.id)
    d = json.loads(store.fs.cat_file(path))
    a_href = d["assets"]["data"]["href"]
    b_token = posixpath.basename(store.data_path(b))
    d["assets"]["data"]["href"] = f"../../../data/oco2-soundings/{b.id}/{b_token}"
    store.fs.pipe_file(path, json.dumps(d).encode())
    store._invalidate(posixpath.dirname(path))

    with pytest.raises(StoreError, match=f"{a.id}.*outside"):
        store.open(a.id)
    assert list(store.fsck(min_age=0).damaged_items) == [a.id]
    store.delete(a.id)  # removes a's item and a's own data prefix, nothing else
    assert data_objects(store, b) == b_before
    xr.testing.assert_identical(store.open(b)["xco2"].compute(), soundings(seed=2)["xco2"])
    assert item_ids(store.search()) == [b.id]
    assert not store.fs.exists(store._path("data", "oco2-soundings", a.id))
    assert a_href.startswith(f"../../../data/oco2-soundings/{a.id}/")
    assert store.fsck(min_age=0).clean


@pytest.mark.parametrize("href", ["/etc/passwd", "file:///etc/passwd", "s3://other/x.zarr",
                                  "../../../data/oco2-soundings/{id}/../{id}/x.zarr",
                                  "../../../data/oco2-soundings/{id}/.hidden.zarr",
                                  "../../../data/oco2-soundings/{id}/sub/x.zarr",
                                  "../../../data/oco2-soundings/{id}"])
def test_hrefs_outside_the_products_own_data_folder_are_refused(href):
    item_id = catalog.product_id("oco2-soundings", "x")
    with pytest.raises(StoreError, match="outside"):
        catalog.asset_key(item_id, href.format(id=item_id))
    good = f"../../../data/oco2-soundings/{item_id}/20261207T101010Z-0a1b2c3d.zarr"
    assert catalog.asset_key(item_id, good) == good[len("../../../"):]


# -- finding 4: a missing chunk is an error naming the product and variable, not NaN ----------
def test_a_missing_chunk_is_detected_at_open_and_by_fsck(store, small_chunks):
    item = store.put(soundings(seed=3), inputs=["c"], step="t")
    chunks = sorted(k for k in data_objects(store, item) if k.startswith("xco2/c/"))
    assert len(chunks) == 5
    store.fs.rm(posixpath.join(store.data_path(item), chunks[2]))
    with pytest.raises(StoreError, match=f"{item.id}.*'xco2'.*4 of 5 chunks"):
        store.open(item)
    report = store.fsck(min_age=0)
    assert list(report.damaged_items) == [item.id]
    assert "xco2" in report.damaged_items[item.id]
    report = store.fsck(repair=True, min_age=0)
    assert len(report.quarantined) == 1 and store.search() == []


def test_fsck_deep_verifies_content_hashes(store, small_chunks):
    item = store.put(soundings(seed=4), inputs=["h"], step="t")
    other = store.put_table(table(), product_type="test-peaks", inputs=["t"], step="t")
    assert store.fsck(deep=True, min_age=0).clean
    key = posixpath.join(store.data_path(item), "latitude", "c", "1")
    raw = bytearray(store.fs.cat_file(key))
    raw[-1] ^= 0xFF  # same size, other bytes: only a hash tells
    store.fs.pipe_file(key, bytes(raw))
    assert store.fsck(min_age=0).clean  # the cheap check counts objects only
    report = store.fsck(deep=True, min_age=0)
    assert list(report.damaged_items) == [item.id]
    assert "latitude" in report.damaged_items[item.id]
    assert "content" in report.damaged_items[item.id]
    assert main(["fsck", "--deep", "--min-age", "0", "--store", store.url]) == 1
    # a table's bytes are verified whenever it is read
    tkey = store.data_path(other)
    raw = bytearray(store.fs.cat_file(tkey))
    raw[len(raw) // 2] ^= 0xFF
    store.fs.pipe_file(tkey, bytes(raw))
    with pytest.raises(StoreError, match=f"{other.id}.*content"):
        store.open(other)


def test_items_written_before_integrity_records_still_open(store):
    """Backward compatibility: an item without ``hubkit:integrity`` is legacy, not damaged."""
    item = store.put(soundings(seed=5), inputs=["old"], step="t")
    path = store._item_path(item.id)
    d = json.loads(store.fs.cat_file(path))
    del d["properties"]["hubkit:integrity"]
    store.fs.pipe_file(path, json.dumps(d).encode())
    store._invalidate(posixpath.dirname(path))
    xr.testing.assert_identical(store.open(item.id)["xco2"].compute(),
                                soundings(seed=5)["xco2"])
    report = store.fsck(deep=True, min_age=0)
    assert report.clean and report.legacy_items == [item.id]


def test_the_chain_refuses_an_input_with_a_missing_chunk(tmp_path, small_chunks):
    from hubkit import chain, simulate
    from hubkit.io.oco2_lite import write_oco2_lite

    store = Store(str(tmp_path / "store"))
    track = simulate.oco2_tracks(1, seconds=120.0, seed=2)[0]
    item = ingest.upload(store, write_oco2_lite(track, tmp_path / "oco2_LtCO2_sim0.nc4"))
    data = store.data_path(item)
    chunk = sorted(k for k in data_objects(store, item) if k.startswith("xco2/c/"))[0]
    store.fs.rm(posixpath.join(data, chunk))
    step = next(s for s in chain.default_steps() if s.name == "co2.peaks")
    unit = chain.plan(store, [step]).missing[0]
    with pytest.raises(ChainError, match=f"{item.id}.*'xco2'.*missing"):
        chain.run_unit(store.url, {}, step, unit)
    assert store.search("oco2-peaks") == []


# -- finding 5: the index is rebuilt, not trusted ---------------------------------------------
def test_a_stray_copy_of_an_item_is_reported_not_multiplied(store):
    a = store.put(soundings(seed=1), inputs=["a"], step="t")
    path = store._item_path(a.id)
    stray = path[:-5] + " (copy).json"
    store.fs.pipe_file(stray, store.fs.cat_file(path))
    for _ in range(4):
        assert [h.id for h in store.search()] == [a.id]
    assert list(store.index()["id"]) == [a.id]
    report = store.fsck(min_age=0)
    assert report.stray_files == [stray] and not report.clean
    report = store.fsck(repair=True, min_age=0)
    assert report.stray_files == [stray] and len(report.quarantined) == 1
    assert not store.fs.exists(stray) and store.fsck(min_age=0).clean
    assert [h.id for h in store.search()] == [a.id]


def test_an_index_with_wrong_column_types_is_rebuilt(store):
    a = store.put(soundings(seed=1), inputs=["a"], step="t")
    b = store.put(soundings(lat0=40.0, lon0=-100.0, seed=2), inputs=["b"], step="t")
    assert len(store.search()) == 2
    wrong = pd.DataFrame({c: ["x", "y"] for c in catalog.INDEX_COLUMNS})
    wrong["id"] = [a.id, b.id]
    store.fs.pipe_file(store._index_path, wrong.to_parquet(index=False))
    fresh = Store(store.url)
    assert item_ids(fresh.search(bbox=(28, -29, 30, -24))) == [a.id]
    assert item_ids(fresh.search(datetime="2016-08-31")) == sorted([a.id, b.id])


def test_an_index_with_duplicate_rows_is_rebuilt(store):
    a = store.put(soundings(seed=1), inputs=["a"], step="t")
    df = store.index()
    store.fs.pipe_file(store._index_path, pd.concat([df, df]).to_parquet(index=False))
    assert [h.id for h in Store(store.url).search()] == [a.id]


# -- finding 6: imports that matter to threads happen before the threads start ----------------
def test_upload_threads_start_after_dask_and_zarr_codecs_are_imported(tmp_path):
    """In a fresh process, the first upload thread must find dask and zarr's codecs imported:
    xarray imports dask lazily, and two threads importing it at once failed one upload in
    eight of ten runs ("cannot import name 'annotate' from partially initialized module")."""
    from fixtures import write_lite_fixture

    files = [write_lite_fixture(tmp_path / f"f{i}.nc4", n=20 + i) for i in range(2)]
    script = textwrap.dedent(f"""
        import sys, threading
        seen = []
        start = threading.Thread.start
        def spy(self, *a, **k):
            seen.append([m in sys.modules for m in ("dask.base", "dask.array",
                                                    "zarr.codecs")])
            return start(self, *a, **k)
        threading.Thread.start = spy
        from hubkit.ingest import upload_many
        from hubkit.store import open_store
        items = upload_many(open_store({str(tmp_path / "store")!r}),
            {[str(f) for f in files]!r}, progress=False)
        assert len(items) == 2
        print(seen[0] if seen else "no threads")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=240, env={**os.environ, "PYTHONPATH": os.pathsep.join(
                              p for p in sys.path if p)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[True, True, True]"


def test_tables_still_open_whole_and_exact(store):
    df = table()
    item = store.put_table(df, product_type="test-peaks", inputs=["x"], step="t")
    integrity = item.properties["hubkit:integrity"]
    assert integrity["objects"] == 1
    pd.testing.assert_frame_equal(store.open(item), df)
    assert np.isfinite(store.open(item)["delta"]).all()


def test_fsck_leaves_a_product_folder_a_writer_has_just_made(tmp_path):
    """The soak's failure in CI: a writer makes ``data/<type>/<id>/`` and then its token inside;
    an fsck --repair in between removed the (still empty) folder, and the writer's mkdir of the
    token failed ('No such file or directory'). A young empty folder stays; an old one goes."""
    store = Store(str(tmp_path / "store"))
    store.put(soundings(), inputs=["a"], step="test")  # a store with a collection
    young = tmp_path / "store" / "data" / "oco2-soundings" / "oco2-soundings-0123456789abcdef"
    young.mkdir()
    store.fsck(repair=True, min_age=60.0)
    assert young.is_dir()
    old = young.parent / "oco2-soundings-fedcba9876543210"
    old.mkdir()
    os.utime(old, (time.time() - 120, time.time() - 120))
    store.fsck(repair=True, min_age=60.0)
    assert not old.exists() and young.is_dir()


# -- two writers of the same product ----------------------------------------------------------
def test_the_writer_that_loses_waits_for_the_winners_item(store, tmp_path, monkeypatch):
    """The flake of the soak on moto: the conditional PUT of the loser was refused while the
    winner's Item was not readable yet, and the loser's upload failed with 'no product with id'.
    Here the loser is refused before the winner (another Store on the same URL) commits."""
    import threading

    from fixtures import write_lite_fixture

    path = write_lite_fixture(tmp_path / "race.nc4", n=40)
    winner = Store(store.url)
    done = threading.Event()
    real_commit = Store._commit_item

    def refused_while_the_winner_is_still_writing(self, item_path, item):
        def win():
            time.sleep(0.5)
            ingest.upload(winner, path)
            done.set()

        threading.Thread(target=win, daemon=True).start()
        return False

    monkeypatch.setattr(store, "_commit_item",
                        refused_while_the_winner_is_still_writing.__get__(store))
    item = ingest.upload(store, path)
    assert done.is_set()
    monkeypatch.setattr(store, "_commit_item", real_commit.__get__(store))
    assert item.id == winner.get_item(item.id).id
    assert item.assets["data"].href == winner.get_item(item.id).assets["data"].href
    assert store.open(item)["xco2"].size == 40
    report = store.fsck(deep=True, min_age=0)  # the loser removed its own copy
    assert report.clean, str(report)


@pytest.mark.s3
def test_an_item_that_cannot_be_reached_is_not_damaged(s3_bucket, tmp_path, monkeypatch):
    """A read of an Item that fails because the endpoint is sick is a StoreError of its own:
    it used to be reported as 'not valid JSON', a damaged Item, which fsck --repair would
    have moved to the quarantine with its data."""
    from fixtures import write_lite_fixture

    from hubkit.errors import DamagedItemError

    store = Store(f"s3://{s3_bucket}/hub")
    item = ingest.upload(store, write_lite_fixture(tmp_path / "sick.nc4", n=20))
    real_cat = store.fs.cat_file

    def cat_file(path, *args, **kwargs):
        if path.endswith(f"{item.id}.json"):
            raise StoreError(f"{store.url}: the S3 endpoint did not answer within 5 s")
        return real_cat(path, *args, **kwargs)

    monkeypatch.setattr(store.fs, "cat_file", cat_file)
    with pytest.raises(StoreError, match="did not answer") as err:
        store.get_item(item.id)
    assert not isinstance(err.value, DamagedItemError)
    with pytest.raises(StoreError, match="did not answer"):
        store.fsck(repair=True, min_age=0)
    monkeypatch.setattr(store.fs, "cat_file", real_cat)
    assert store.fsck(deep=True, min_age=0).clean
    assert store.open(store.get_item(item.id))["xco2"].size == 20


@pytest.mark.s3
def test_a_conflicting_conditional_put_is_retried(s3_bucket, tmp_path, monkeypatch):
    """S3 answers 409 ConditionalRequestConflict to a conditional PUT while another write of
    the same key is in flight, and asks for a retry; s3fs turns it into OSError(EBUSY)."""
    import errno

    from fixtures import write_lite_fixture

    store = Store(f"s3://{s3_bucket}/hub")
    real_pipe = store.fs.pipe_file
    conflicts = []

    def pipe_file(path, data, **kwargs):
        if kwargs.get("mode") == "create" and "/items/" in path and len(conflicts) < 2:
            conflicts.append(path)
            raise OSError(errno.EBUSY, "ConditionalRequestConflict")
        return real_pipe(path, data, **kwargs)

    monkeypatch.setattr(store.fs, "pipe_file", pipe_file)
    item = ingest.upload(store, write_lite_fixture(tmp_path / "conflict.nc4", n=20))
    assert len(conflicts) == 2 and conflicts[0].endswith(f"{item.id}.json")
    assert store.open(item)["xco2"].size == 20


# -- the soak: everything at once, then a deep check ------------------------------------------
@pytest.mark.slow
def test_soak_uploads_searches_opens_and_fsck_repair_loops(store, tmp_path):
    """Two uploaders (racing on the same files), a reader and an ``fsck --repair`` loop run
    together for a bounded time; then every upload is committed and intact, or failed cleanly,
    and a deep fsck finds nothing half-deleted."""
    import random
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from fixtures import write_lite_fixture

    from hubkit import io as hio
    from hubkit.errors import HubkitError

    files = [write_lite_fixture(tmp_path / f"soak{i}.nc4", n=30 + 7 * i) for i in range(16)]
    stop = threading.Event()
    seconds = 12.0 if store.protocol == "file" else 8.0
    results, errors, fsck_runs, opened = {}, [], [], []

    def uploader(order):
        for path in order:
            if stop.is_set():
                return
            try:
                results.setdefault(path, set()).add(ingest.upload(store, path).id)
            except HubkitError as exc:
                errors.append((path, exc))

    def reader():
        rng = random.Random(1)
        while not stop.is_set():
            hits = store.search("oco2-soundings")
            if hits:
                ds = store.open(rng.choice(hits))
                assert np.isfinite(ds["xco2"].values).any()
                opened.append(1)

    def fsck_loop():
        while not stop.is_set():
            # a write takes < 1 s here, but tens of seconds on a loaded 2-core machine: the
            # min-age must exceed the slowest write, or fsck rightly takes it for abandoned.
            # (The bug this guards against counted a new, still empty folder as infinitely old.)
            report = store.fsck(repair=True, min_age=60.0)
            fsck_runs.append(report)

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(uploader, files), pool.submit(uploader, files[::-1]),
                   pool.submit(reader), pool.submit(fsck_loop)]
        time.sleep(seconds)
        stop.set()
        for f in futures:
            f.result()  # an assertion or unexpected exception in a thread fails here
    assert errors == []
    assert len(fsck_runs) >= 2 and opened
    print(f"soak {store.protocol}: {len(results)} files, {len(fsck_runs)} fsck --repair runs, "
          f"{len(opened)} opens in {seconds} s")
    for report in fsck_runs:  # nothing a live upload or a committed product owns was touched
        assert not (report.orphans or report.broken_items or report.damaged_items
                    or report.quarantined), str(report)
    for path, ids in results.items():
        assert len(ids) == 1, ids  # one product per file, whoever won the race
        back = store.open(ids.pop()).load()
        np.testing.assert_array_equal(back["xco2"].values, hio.read(path)["xco2"].values)
    assert len(store.search()) == len(results) >= 4
    final = store.fsck(deep=True, min_age=0)
    assert final.clean and final.legacy_items == [], str(final)


@pytest.mark.parametrize("chunk_bytes", [None, 800])
def test_small_products_encoded_in_memory_are_the_objects_zarr_writes(tmp_path, monkeypatch,
                                                                         shared_data, chunk_bytes):
    """A directory store writes a small product encoded in memory, file by file; the objects
    and the integrity record are those of Zarr's own chunk-by-chunk writer (real tower file:
    text, times, attributes; and five chunks per variable)."""
    from hubkit import io

    if chunk_bytes:
        monkeypatch.setattr(hubkit.store.encoding, "CHUNK_BYTES", chunk_bytes)
    ds = io.read(shared_data / "real" / "ch4_bao_tower-insitu_1_ccgg_all.nc")
    written = {}
    for way, limit in (("memory", hubkit.store.encoding.SMALL_WRITE_BYTES), ("zarr", -1)):
        monkeypatch.setattr(hubkit.store.encoding, "SMALL_WRITE_BYTES", limit)
        store = Store(str(tmp_path / way))
        calls = []
        real = store._put_objects
        monkeypatch.setattr(store, "_put_objects",
                            lambda *a, calls=calls, real=real: calls.append(a) or real(*a))
        item = store.put(ds, inputs=["bao"], step="t")
        assert len(calls) == (1 if way == "memory" else 0)
        assert store.fsck(deep=True, min_age=0).clean
        written[way] = (item.id, item.properties["hubkit:integrity"],
                        data_objects(store, item), store.open(item).load())
    (mid, mrec, mobj, mds), (zid, zrec, zobj, zds) = written["memory"], written["zarr"]
    assert mid == zid and mrec == zrec
    assert mobj == zobj and len(mobj) == mrec["objects"]
    if chunk_bytes:
        assert mrec["arrays"]["value"]["chunks"] > 1
    xr.testing.assert_identical(mds, zds)


def test_a_product_read_whole_is_checked_against_its_hashes(store, small_chunks):
    """``open(load=...)`` reads every object: their bytes are verified as ``fsck --deep`` does,
    a missing chunk is refused as on a lazy open, and what it gives is the lazy open's data."""
    item = store.put(soundings(seed=6), inputs=["w"], step="t")
    size = item.properties["hubkit:integrity"]["bytes"]
    whole = store.open(item, load=size)
    assert not whole.chunks  # in memory
    xr.testing.assert_identical(whole, store.open(item).load())
    assert store.open(item, load=size - 1).chunks  # larger than asked: lazy
    key = posixpath.join(store.data_path(item), "latitude", "c", "1")
    raw = bytearray(store.fs.cat_file(key))
    raw[-1] ^= 0xFF
    store.fs.pipe_file(key, bytes(raw))
    store.open(item).load()  # a lazy open counts objects only
    with pytest.raises(StoreError, match=f"{item.id} is damaged.*'latitude'.*content"):
        store.open(item, load=True)
    store.fs.rm(key)
    with pytest.raises(StoreError, match=f"{item.id}.*'latitude'.*4 of 5 chunks"):
        store.open(item, load=True)


def test_products_read_whole_are_checked_each_time_decoded_once_each_open_its_own_copy(tmp_path,
                                                                             monkeypatch):
    from hubkit.store import items

    store = Store(str(tmp_path / "store"))
    item = store.put(soundings(seed=7), inputs=["k"], step="t")
    reads = []
    real = type(store)._decoded
    monkeypatch.setattr(type(store), "_decoded",
                        lambda self, key, payload: reads.append(key[0]) or real(self, key, payload))
    first = store.open(item, load=True)
    first["xco2"].values[:] = -1.0  # a user's in-place change stays in the user's copy
    first.attrs["title"] = "changed"
    second = store.open(item, load=True)
    assert reads == [item.id, item.id]  # read twice, decoded once
    assert [k[:2] for k in store._whole_cache] == [(item.id, store.data_path(item))]
    xr.testing.assert_identical(second, store.open(item).load())
    assert (second["xco2"].values > 0).all()
    # a deleted product is not served from memory; stored again, it is read again
    store.delete(item)
    with pytest.raises(StoreError, match="no product"):
        store.open(item.id, load=True)
    again = store.put(soundings(seed=7), inputs=["k"], step="t")
    assert again.id == item.id and store.data_path(again) != store.data_path(item)
    xr.testing.assert_identical(store.open(again, load=True), second)
    assert (item.id, store.data_path(again)) in [k[:2] for k in store._whole_cache]
    # at most WHOLE_CACHE_BYTES are kept: the least recently used goes first
    monkeypatch.setattr(items, "WHOLE_CACHE_BYTES", 1)
    other = store.put(soundings(seed=8), inputs=["o"], step="t")
    store.open(other, load=True)
    assert [k[:2] for k in store._whole_cache] == [(other.id, store.data_path(other))]
