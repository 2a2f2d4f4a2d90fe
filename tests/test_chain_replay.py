"""The whole ozone chain (fusion → DAS → TROC → surface UV) under the conditions of AURORA's replay
experiment (Gai et al. 2021, section 5), on a real 2-worker LocalCluster: L2 files arriving hour
by hour while ``chain.watch`` runs; the reconciler process killed with SIGKILL mid-run; and
upload → reconcile on an S3 server (moto). In each case every product that can exist exists
exactly once, with provenance pointing at its inputs, and nothing half-written is visible.

The assimilation runs on the small grid of ``test_chain._ozone_steps`` (10° × 10°, 20 levels).
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time

import pandas as pd
import pytest
import xarray as xr
from conftest import REPO
from test_chain import _ozone_steps

from hubkit import chain, compute, ingest, simulate
from hubkit.io.l2_ozone import write_l2_ozone
from hubkit.store import Store

#: Four simulated hours: 10 and 11 UTC fall in the 00-12 UTC assimilation cycle, 12 and 13 UTC
#: in the 12-24 UTC one.
HOURS = ("2024-07-01T10:00:00", "2024-07-01T11:00:00", "2024-07-01T12:00:00",
         "2024-07-01T13:00:00")
CYCLE = pd.Timedelta(hours=12)
#: A settling time no clock in this test reaches: the replay's cycles close only when their
#: expected hours are in, whatever today's date is. [s]
CENTURY = 100 * 365.25 * 86400.0
CHAIN_TYPES = ("fused-ozone", "das", "das-forecast", "troc", "surface-uv")

pytestmark = pytest.mark.slow  # a LocalCluster and the whole ozone chain in every test


@pytest.fixture(scope="module")
def client():
    with compute.client(n_workers=2, threads_per_worker=1) as c:
        yield c


@pytest.fixture(scope="module")
def l2_files(tmp_path_factory):
    """One L2 ozone file per hour of :data:`HOURS` (two instruments, 1° pixels: ~5 MB each)."""
    folder = tmp_path_factory.mktemp("replay-inputs")
    return [write_l2_ozone(simulate.l2_ozone(instruments=("S5-UV", "S4-VIS"), start=start,
                                             hours=1, spacing=1.0, seed=k),
                           folder / f"l2_o3_{start[:13].replace(':', '')}.nc")
            for k, start in enumerate(HOURS)]


def _replay_steps(expected: int = 2):
    """The small ozone chain whose 12-h cycles close once ``expected`` fused hours are in."""
    return [dataclasses.replace(s, input=dataclasses.replace(s.input, expected=expected,
                                                             settle=CENTURY))
            if s.name == "assimilation.letkf" else s for s in _ozone_steps()]


def _wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.1)


def _count(store, collection: str) -> int:
    return len(store.search(collection))


def _assert_chain_complete(store, l2_ids, steps) -> dict[str, list]:
    """Every product of the ozone chain exists exactly once, each pointing at its inputs:
    one fused product per L2 hour, one DAS per 12-h cycle made from all the cycle's fused
    hours, one TROC and one surface-UV product per DAS. Returns the items per product type."""
    items = {c: list(store.items(c)) for c in CHAIN_TYPES}

    def inputs(item):
        return tuple(sorted(item.properties["hubkit:provenance"]["inputs"]))

    fused = items["fused-ozone"]
    assert sorted(inputs(i) for i in fused) == sorted((i,) for i in l2_ids)
    cycles: dict[pd.Timestamp, list[str]] = {}
    for item in fused:
        start = pd.Timestamp(item.common_metadata.start_datetime or item.datetime)
        cycles.setdefault(start.tz_localize(None).floor(CYCLE), []).append(item.id)
    das = items["das"]
    by_end = {pd.Timestamp(i.datetime).tz_localize(None): i for i in das}
    assert sorted(tuple(x for x in inputs(i) if x.startswith("fused-ozone-")) for i in das) \
        == sorted(tuple(sorted(v)) for v in cycles.values())
    for end, item in by_end.items():  # the analysis is at the end of its cycle ...
        assert end - CYCLE in cycles, (item.id, end)
        # ... and starts from the previous cycle's analysis when there is one (cycling)
        previous = by_end.get(end - CYCLE)
        carried = [x for x in inputs(item) if x.startswith("das-")]
        assert carried == ([previous.id] if previous is not None else []), (item.id, carried)
        assert item.properties["hubkit:start"] == ("warm" if previous is not None else "cold")
    for kind in ("das-forecast", "troc", "surface-uv"):
        assert sorted(inputs(i) for i in items[kind]) == sorted((d.id,) for d in das), kind
    report = chain.status(store, steps)
    assert report.missing == [] and report.failed == {}
    assert report.table()["waiting"].sum() == 0
    return items


# -- a: replay, one hour at a time, while chain.watch runs ---------------------------------------


class _Stop(Exception):
    """Raised from the watcher's pause to end ``chain.watch`` (its Ctrl-C)."""


def test_replay_hour_by_hour_while_watch_runs(tmp_path, l2_files, client):
    store = Store(tmp_path / "store")
    steps = _replay_steps(expected=2)
    stop, rounds, errors = threading.Event(), [], []

    def pause(seconds):
        if stop.wait(seconds):
            raise _Stop

    def watcher():
        try:
            chain.watch(Store(store.url), steps, interval=0.2, client=client,
                        on_report=rounds.append, sleep=pause)
        except _Stop:
            pass
        except Exception as exc:  # shown by the main thread
            errors.append(exc)

    thread = threading.Thread(target=watcher, name="chain-watch", daemon=True)
    thread.start()
    t0 = time.perf_counter()
    uploader = Store(store.url)  # the instrument team, another client of the same store
    l2_ids = []
    try:
        for k, path in enumerate(l2_files):
            l2_ids.append(ingest.upload(uploader, path).id)
            _wait_for(lambda k=k: _count(store, "fused-ozone") == k + 1 or errors, 120,
                      f"hour {k + 1} to be fused")
            assert not errors, errors
            # a cycle closes when its second hour is fused: 00-12 after 11 UTC, 12-24 after 13
            _wait_for(lambda k=k: _count(store, "surface-uv") == (k + 1) // 2 or errors, 120,
                      f"{(k + 1) // 2} surface-uv product(s)")
            assert _count(store, "das") == (k + 1) // 2
        n_rounds = len(rounds)  # a round that started after the last product: quiet
        _wait_for(lambda: len(rounds) >= n_rounds + 2, 60, "one more round")
        assert rounds[-1].submitted == [] and rounds[-1].missing == []
    finally:
        stop.set()
        thread.join(60)
    assert not thread.is_alive() and not errors, errors
    seconds = time.perf_counter() - t0

    _assert_chain_complete(store, l2_ids, steps)
    # each unit was submitted once over all rounds: 4 hours, then 2 x (das, das-forecast,
    # troc, surface-uv)
    assert sum(len(r.submitted) for r in rounds) == 4 + 4 * 2
    assert all(r.failed == {} for r in rounds)
    print(f"replayed {len(HOURS)} h in {seconds:.1f} s ({len(HOURS) * 3600 / seconds:.0f}x "
          f"real time), {len(rounds)} watch rounds")


# -- b: the reconciler process killed mid-run ------------------------------------------------------

RECONCILER = """\
import sys

sys.path.insert(0, {tests!r})
from test_chain import _ozone_steps

from hubkit import chain, compute
from hubkit.store import Store

if __name__ == "__main__":
    with compute.client(n_workers=2, threads_per_worker=1) as client:
        chain.reconcile(Store({url!r}), _ozone_steps(), client=client)
"""


def test_reconciler_killed_mid_run_then_completed(tmp_path, l2_files, client):
    store = Store(tmp_path / "store")
    l2_ids = [ingest.upload(store, p).id for p in l2_files]
    script = tmp_path / "reconciler.py"
    script.write_text(RECONCILER.format(tests=str(REPO / "tests"), url=str(store.url)))
    env = {k: v for k, v in os.environ.items()
           if k not in ("HUBKIT_DASK", "DASK_SCHEDULER_ADDRESS", "DASK_GATEWAY__ADDRESS")}
    # its own process group: SIGKILL takes the reconciler and its LocalCluster down at once,
    # as a crashed machine or pod would
    log = tmp_path / "reconciler.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_for(lambda: any(_count(store, c) for c in CHAIN_TYPES) or proc.poll() is not None,
                  120, "the first product of the killed reconciler")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    # killed, not finished
    assert proc.returncode == -signal.SIGKILL, log.read_text(errors="replace")[-2000:]
    made = {c: _count(store, c) for c in CHAIN_TYPES}
    assert 1 <= sum(made.values()) < 4 + 2 * 4, made  # it died with work left

    # nothing visible is partial: no Item without its data, and every product opens whole
    found = store.fsck(min_age=0.0)
    assert found.broken_items == [], found
    for kind in CHAIN_TYPES:
        for item in store.items(kind):
            store.open(item).load()

    report = chain.reconcile(store, _ozone_steps(), client=client)
    assert report.failed == {}, report.failed
    items = _assert_chain_complete(store, l2_ids, _ozone_steps())
    assert {c: len(v) for c, v in items.items()} == {"fused-ozone": 4, "das": 2, "troc": 2,
                                                      "das-forecast": 2,
                                                      "surface-uv": 2}
    assert len(report.submitted) == 4 + 2 * 4 - sum(made.values())  # only what was missing

    # what the killed run left behind is invisible, and fsck clears it without touching products
    left = store.fsck(min_age=0.0)
    assert left.broken_items == []
    print(f"killed with {made} made; left behind: {len(left.orphans)} data folder(s), "
          f"{len(left.temp_files)} temporary file(s)")
    store.fsck(repair=True, min_age=0.0)
    assert store.fsck(min_age=0.0).clean
    for kind in CHAIN_TYPES:
        for item in store.items(kind):
            data = store.open(item)
            assert isinstance(data, xr.Dataset)
            data.load()


# -- c: upload → reconcile on S3 -----------------------------------------------------------------


@pytest.mark.s3
def test_ozone_chain_end_to_end_on_s3(s3_bucket, l2_files, client):
    store = Store(f"s3://{s3_bucket}/replay")
    l2_ids = [ingest.upload(store, p).id for p in l2_files[:2]]  # 10 and 11 UTC: one 12-h cycle
    report = chain.reconcile(store, _ozone_steps(), client=client)
    assert report.failed == {}, report.failed
    items = _assert_chain_complete(store, l2_ids, _ozone_steps())
    assert {c: len(v) for c, v in items.items()} == {"fused-ozone": 2, "das": 1, "troc": 1,
                                                      "das-forecast": 1, "surface-uv": 1}
    (das,) = items["das"]
    assert das.properties["hubkit:provenance"]["parameters"]["grid"] == [36, 18, 20]
    (uv,) = items["surface-uv"]
    assert bool(store.open(uv)["uvi"].notnull().any())
    assert int(store.open(das)["n_obs"].sum()) > 0
    assert chain.reconcile(store, _ozone_steps(), client=client).submitted == []
    assert store.fsck(min_age=0.0).clean
