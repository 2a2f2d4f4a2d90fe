"""The processing chain (hubkit.chain) on the directory and S3 stores with a real LocalCluster:
every expected product exactly once with its provenance, idempotence, recovery after a raising
step, a killed worker and a corrupt input, new uploads, dry runs, watch mode and the CLI."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

import cloudpickle
import numpy as np
import pandas as pd
import pytest

from hubkit import chain, compute, ingest, simulate
from hubkit.cli import main
from hubkit.errors import ChainError, ChainSpecError
from hubkit.io.l2_ozone import write_l2_ozone
from hubkit.io.oco2_lite import write_oco2_lite
from hubkit.store import Store

# the flaky step functions below are defined here: ship them to the workers by value
cloudpickle.register_pickle_by_value(sys.modules[__name__])

L2_HOURS = ("2024-07-01T09:00:00", "2024-07-01T10:00:00", "2024-07-01T11:00:00")
#: the steps that read uploads (fusion, peaks): the machinery tests below run these; the ozone
#: chain behind fusion (das, troc, surface-uv) has its own tests at the end, on a small grid
CORE = [s for s in chain.default_steps() if s.name in ("fusion.cdf", "co2.peaks")]


@pytest.fixture(scope="module")
def client():
    with compute.client(n_workers=2, threads_per_worker=1) as c:
        yield c


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Three hours of L2 ozone (one file each, two instruments) and two OCO-2 orbits with plumes,
    plus a fourth hour kept back for the "new upload" case."""
    folder = tmp_path_factory.mktemp("chain-inputs")
    l2 = []
    for k, start in enumerate((*L2_HOURS, "2024-07-01T12:00:00")):
        ds = simulate.l2_ozone(instruments=("S5-UV", "S4-VIS"), start=start, hours=1,
                               spacing=1.0, seed=k)
        l2.append(write_l2_ozone(ds, folder / f"l2_o3_{k}.nc"))
    oco2 = [write_oco2_lite(ds, folder / f"oco2_LtCO2_sim{k}.nc4") for k, ds in
            enumerate(simulate.oco2_tracks(2, seconds=600.0, seed=2, plumes=[
                {"orbit": k, "along_km": 2000.0, "downwind_km": 30.0, "emission": 3000.0}
                for k in (0, 1)]))]
    return {"l2": l2[:3], "l2_later": l2[3], "oco2": oco2}


@pytest.fixture(params=["directory", "s3"])
def store(request, tmp_path):
    if request.param == "directory":
        return Store(tmp_path / "store")
    bucket = request.getfixturevalue("s3_bucket")
    return Store(f"s3://{bucket}/chain")


def _upload(store, files):
    return {kind: [ingest.upload(store, p).id for p in files[kind]] for kind in ("l2", "oco2")}


def _ids(store, collection):
    return [i.id for i in store.search(collection)]


def test_end_to_end_idempotent_and_incremental(store, files, client):
    uploaded = _upload(store, files)
    dry = chain.reconcile(store, CORE, client=client, dry_run=True)
    rows = dry.table().set_index("step")
    assert rows.loc["fusion.cdf", "missing"] == 3 and rows.loc["co2.peaks", "missing"] == 2
    assert _ids(store, "fused-ozone") == [] and _ids(store, "oco2-peaks") == []  # wrote nothing

    report = chain.reconcile(store, CORE, client=client)
    assert report.failed == {}
    assert len(report.submitted) == 5
    fused, peaks = _ids(store, "fused-ozone"), _ids(store, "oco2-peaks")
    assert len(fused) == len(set(fused)) == 3 and len(peaks) == len(set(peaks)) == 2
    steps = {s.name: s for s in chain.default_steps()}
    # provenance names the inputs: one L2 product per hour, one soundings product per table
    assert sorted(tuple(store.get_item(i).properties["hubkit:provenance"]["inputs"])
                  for i in fused) == sorted((i,) for i in uploaded["l2"])
    for i in peaks:
        prov = store.get_item(i).properties["hubkit:provenance"]
        assert prov["step"] == "co2.peaks" and prov["step_version"] == "1"
        assert prov["inputs"][0] in uploaded["oco2"]
        assert i == steps["co2.peaks"].output_id(prov["inputs"])  # the planner's id
    assert store.open(fused[0])["o3_vmr"].notnull().any()
    assert all(len(store.open(i)) == 1 for i in peaks)  # the plume of each orbit

    again = chain.reconcile(store, CORE, client=client)
    assert again.submitted == [] and again.missing == []

    ingest.upload(store, files["l2_later"])
    later = chain.reconcile(store, CORE, client=client)
    assert len(later.submitted) == 1
    assert len(_ids(store, "fused-ozone")) == 4 and len(_ids(store, "oco2-peaks")) == 2


def _fails_at_ten(datasets, **parameters):
    """Fusion, except that the 10:00 hour raises (a bug in a step's code)."""
    times = datasets[0]["time"].values
    if str(times.min())[11:13] == "10":
        raise RuntimeError("simulated bug at 10:00")
    return chain.fuse_hour(datasets, **parameters)


def test_failures_are_recorded_and_the_next_run_completes(tmp_path, files, client):
    store = Store(tmp_path / "store")
    uploaded = _upload(store, files)
    # a corrupt upload: one soundings product's xco2 chunks are overwritten with garbage
    bad = uploaded["oco2"][0]
    data = Path(store.data_path(store.get_item(bad)))
    for chunk in (data / "xco2" / "c").rglob("*"):
        if chunk.is_file():
            chunk.write_bytes(b"not a blosc chunk")
    steps = list(CORE)
    steps[0] = dataclasses.replace(steps[0], function=_fails_at_ten, retries=0)

    report = chain.reconcile(store, steps, client=client)
    failed = report.failed
    assert len(failed) == 2
    assert any(bad in msg and "cannot be read" in msg for msg in failed.values())
    assert any("simulated bug at 10:00" in msg for msg in failed.values())
    assert len(_ids(store, "fused-ozone")) == 2 and len(_ids(store, "oco2-peaks")) == 1

    shown = chain.status(store, CORE)  # failures survive the process: the store records them
    assert shown.failed == failed
    by_day = chain.status_by_day(store, CORE).set_index(["day", "step"])
    assert by_day.loc[("2024-07-01", "fusion.cdf")].tolist() == [2, 0, 1]  # done/pending/failed
    assert by_day["failed"].sum() == 2 and by_day["done"].sum() == 3
    assert main(["chain", "status", "--by-day", "--store", str(store.url)]) == 1
    assert main(["chain", "status", "--store", str(store.url)]) == 1
    # the 12-h cycle of the failed hour waits: no DAS is made from an incomplete set
    assert chain.status(store).table().set_index("step").loc["assimilation.letkf",
                                                              "waiting"] == 2

    fixed = chain.reconcile(store, CORE, client=client)  # the fixed code (same step version)
    assert len(fixed.submitted) == 2  # the 10:00 hour and the corrupt input tried again
    assert len(_ids(store, "fused-ozone")) == 3
    assert list(fixed.failed) == [u.output_id for u in fixed.missing]
    assert bad in next(iter(fixed.failed.values()))  # the corrupt input still fails, named


def _dies_once(datasets, *, marker, **parameters):
    """Fusion whose worker process dies the first time it runs (a killed Dask worker)."""
    if not os.path.exists(marker):
        Path(marker).touch()
        os._exit(1)
    return chain.fuse_hour(datasets, **parameters)


def test_killed_worker_is_recovered_and_a_crashed_run_completes(tmp_path, files, client):
    store = Store(tmp_path / "store")
    ids = [ingest.upload(store, p).id for p in files["l2"]]
    marker = str(tmp_path / "died")
    step = chain.Step("fusion.cdf", "1", chain.Query("l2-ozone", "hour"), "fused-ozone",
                      _dies_once, parameters={"cell": [1.0, 1.0, 3600.0], "marker": marker},
                      retries=2)
    # a reconciler that died after its first unit: only the first hour was made
    first = chain.plan(store, [step]).missing[0]
    assert first.inputs == (ids[0],)  # the 09:00 hour
    chain.run_unit(store.url, {}, dataclasses.replace(step, function=_no_marker_fuse), first)
    assert len(_ids(store, "fused-ozone")) == 1

    report = chain.reconcile(store, [step], client=client)
    assert Path(marker).exists()  # a worker died on the way
    assert report.failed == {} and len(report.submitted) == 2
    fused = _ids(store, "fused-ozone")
    assert len(fused) == len(set(fused)) == 3


def _fails_once(datasets, *, marker, **options):
    """Peak detection that raises the first time (a transient error)."""
    if not os.path.exists(marker):
        Path(marker).touch()
        raise OSError("simulated transient error")
    return chain.detect_peaks(datasets, **options)


def test_a_transient_failure_is_retried_with_backoff(tmp_path, files, client):
    store = Store(tmp_path / "store")
    ingest.upload(store, files["oco2"][0])
    marker = tmp_path / "failed-once"
    step = chain.Step("co2.peaks", "1", chain.Query("oco2-soundings"), "oco2-peaks",
                      _fails_once, parameters={"marker": str(marker)}, retries=1, backoff=0.5)
    report = chain.reconcile(store, [step], client=client)
    assert marker.exists() and report.failed == {} and len(report.steps[0].done) == 1
    assert chain.status(store, [step]).failed == {}


def _no_marker_fuse(datasets, *, marker, **parameters):
    return chain.fuse_hour(datasets, **parameters)


def test_two_reconcilers_at_once_make_each_product_once(tmp_path, files, client):
    from concurrent.futures import ThreadPoolExecutor

    store = Store(tmp_path / "store")
    _upload(store, files)
    with ThreadPoolExecutor(2) as pool:
        reports = list(pool.map(lambda _: chain.reconcile(Store(store.url), CORE,
                                                          client=client),
                                range(2)))
    assert all(r.failed == {} and r.missing == [] for r in reports)
    fused, peaks = _ids(store, "fused-ozone"), _ids(store, "oco2-peaks")
    assert len(fused) == len(set(fused)) == 3 and len(peaks) == len(set(peaks)) == 2
    for i in fused + peaks:  # each opens whole: no corrupted product
        data = store.open(i)
        assert len(data) >= 1 if hasattr(data, "columns") else data["o3_vmr"].size
    assert store.fsck(min_age=0.0).orphans == []  # the losers removed their copies


def test_watch_picks_up_uploads_one_hour_at_a_time(tmp_path, files, client):
    store = Store(tmp_path / "store")
    hours = iter([*files["l2"], files["l2_later"]])
    ingest.upload(store, next(hours))
    seen = []

    def upload_next(_interval):  # between two rounds, the next hour arrives
        path = next(hours, None)
        if path is not None:
            ingest.upload(store, path)

    rounds = chain.watch(store, CORE, interval=0.0, client=client, max_rounds=5,
                         on_report=lambda r: seen.append(len(r.submitted)), sleep=upload_next)
    assert rounds == 5 and seen == [1, 1, 1, 1, 0]
    fused = _ids(store, "fused-ozone")
    assert len(fused) == len(set(fused)) == 4


def test_cli_dry_run_and_status(tmp_path, files, capsys):
    store = Store(tmp_path / "store")
    ingest.upload(store, files["oco2"][0])
    assert main(["chain", "run", "--dry-run", "--store", str(store.url)]) == 0
    out = capsys.readouterr().out
    assert "co2.peaks" in out and "missing co2.peaks" in out
    assert _ids(store, "oco2-peaks") == []
    assert main(["chain", "status", "--store", str(store.url)]) == 0
    capsys.readouterr()
    assert main(["chain", "run", "--workers", "1", "--store", str(store.url)]) == 0
    assert len(_ids(store, "oco2-peaks")) == 1
    err = capsys.readouterr().err  # a progress bar per step with work: units done / total
    assert "co2.peaks" in err and "1/1" in err and "fusion.cdf" not in err
    ingest.upload(store, files["oco2"][1])
    assert main(["chain", "run", "--quiet", "--workers", "1", "--store", str(store.url)]) == 0
    assert "1/1" not in capsys.readouterr().err and len(_ids(store, "oco2-peaks")) == 2
    assert main(["chain", "watch", "--interval", "0s", "--rounds", "1", "--workers", "1",
                 "--store", str(store.url)]) == 0
    assert "0 unit(s) run" in capsys.readouterr().out
    assert len(_ids(store, "oco2-peaks")) == 2


def test_steps_are_checked():
    with pytest.raises(ValueError, match="group_by"):
        chain.Query("l2-ozone", "fortnight")
    with pytest.raises(ValueError, match="JSON"):
        chain.Step("x", "1", chain.Query("l2-ozone"), "y", chain.fuse_hour,
                   parameters={"bad": object()})
    with pytest.raises(ChainSpecError, match="takes no parameter cel; it takes cell, levels"):
        chain.Step("x", "1", chain.Query("l2-ozone", "hour"), "y", chain.fuse_hour,
                   parameters={"cel": [1, 1, 3600]})
    fusion = {s.name: s for s in chain.default_steps()}["fusion.cdf"]
    with pytest.raises(ChainSpecError, match="lasts 7200 s but its units are hour windows"):
        dataclasses.replace(fusion, parameters={**fusion.parameters, "cell": [1, 1, 7200.0]})
    dataclasses.replace(fusion, parameters={**fusion.parameters, "cell": [1, 1, 1800.0]})
    steps = chain.default_steps()
    with pytest.raises(ChainError, match="unique"):
        chain.plan(Store(f"memory://chain-{os.getpid()}"), [steps[0], steps[0]])


# -- the ozone chain behind fusion: das per 12-h cycle, then troc and surface-uv ---------------


def _ozone_steps():
    """The default ozone steps, with the assimilation on a small grid (10° x 10°, 20 levels)."""
    steps = []
    for step in chain.default_steps():
        if step.name == "assimilation.letkf":
            step = dataclasses.replace(step, parameters={**step.parameters,
                                                         "grid": [36, 18, 20], "members": 8})
        if step.name != "co2.peaks":
            steps.append(step)
    return steps


def _provenance(store, item_id):
    return store.get_item(item_id).properties["hubkit:provenance"]


def test_twelve_hour_cycle_grouping():
    step = next(s for s in chain.default_steps() if s.name == "assimilation.letkf")
    assert step.input.group_by == "12h-cycle" and chain.GROUPINGS["12h-cycle"].total_seconds() \
        == 12 * 3600
    with pytest.raises(ValueError, match="expected"):
        chain.Query("fused-ozone", "12h-cycle", expected=0)


def test_ozone_chain_fused_das_troc_uv_each_once(tmp_path, files, client):
    store = Store(tmp_path / "store")
    # 09:00 and 10:00, in the 00-12 cycle
    l2 = [ingest.upload(store, p).id for p in files["l2"][:2]]
    steps = _ozone_steps()
    names = [s.name for s in steps]

    # at 12:30 the cycle (ends 12:00, settles one hour) is still open: reported, not run
    early = chain.reconcile(store, steps, client=client, now="2024-07-01T12:30:00Z")
    rows = early.table().set_index("step")
    assert rows.loc["fusion.cdf", "done"] == 2
    assert rows.loc["assimilation.letkf", "waiting"] == 2
    assert rows.loc["assimilation.letkf", "expected"] == 0 and _ids(store, "das") == []

    # the same cycle closes at once when all its expected inputs are there
    eager = [dataclasses.replace(s, input=dataclasses.replace(s.input, expected=2))
             if s.name == "assimilation.letkf" else s for s in steps]
    plan = chain.plan(store, eager, now="2024-07-01T12:30:00Z")
    assert len(plan.steps[names.index("assimilation.letkf")].missing) == 1

    # later (the real clock): one das, then troc and surface-uv on it, each exactly once
    report = chain.reconcile(store, steps, client=client)
    assert report.failed == {}, report.failed
    fused, das = _ids(store, "fused-ozone"), _ids(store, "das")
    assert len(fused) == 2 and len(das) == 1
    prov = _provenance(store, das[0])
    assert prov["step"] == "assimilation.letkf" and sorted(prov["inputs"]) == sorted(fused)
    assert prov["parameters"]["grid"] == [36, 18, 20]
    assert sorted(i for f in fused for i in _provenance(store, f)["inputs"]) == sorted(l2)
    product = store.open(das[0])
    assert str(product["time"].values[0])[:19] == "2024-07-01T12:00:00"
    assert int(product["n_obs"].sum()) > 0
    (troc,) = _ids(store, "troc")
    assert _provenance(store, troc)["inputs"] == das
    assert chain.reconcile(store, steps, client=client).submitted == []  # idempotent
    assert "uv.surface" in names
    (uv,) = _ids(store, "surface-uv")
    # provenance of the UV map back to its L2 inputs: surface-uv -> das -> fused -> l2
    assert _provenance(store, uv)["inputs"] == das
    assert store.open(uv)["uvi"].notnull().any()
    # made from simulated observations: every product says so, and can be scored on its truth
    for kind in ("fused-ozone", "das", "das-forecast", "troc", "surface-uv"):
        for item in store.items(kind):
            assert item.properties.get("hubkit:simulated") is True, (kind, item.id)
            assert "hubkit_nature_run" in store.open(item).attrs, (kind, item.id)
    assert store.get_item(das[0]).properties["hubkit:start"] == "cold"

    # a surface-albedo product arrives: the UV of that analysis is made again with it
    from hubkit.io import uv_inputs
    from hubkit.simulate import uv_inputs as simulate_uv_inputs

    albedo = simulate_uv_inputs.surface_albedo(36, 18, start="2024-07-01")
    albedo["surface_albedo"] = albedo["surface_albedo"].copy(
        data=np.full(albedo["surface_albedo"].shape, 0.6))
    path = uv_inputs.write(albedo, tmp_path / "albedo.nc")
    albedo_id = ingest.upload(store, path).id
    again = chain.reconcile(store, steps, client=client)
    assert again.failed == {}, again.failed
    uvs = {i: _provenance(store, i)["inputs"] for i in _ids(store, "surface-uv")}
    with_albedo = [i for i, inputs in uvs.items() if albedo_id in inputs]
    assert len(with_albedo) == 1 and uvs[with_albedo[0]] == das + [albedo_id]
    bright, dark = store.open(with_albedo[0]), store.open(uv)
    recorded = json.loads(bright.attrs["hubkit_uv_inputs"])["albedo"]
    assert albedo_id in recorded or "surface_albedo" in recorded, recorded
    # an albedo of 0.6 instead of the default 0.05 brightens the noon UV index (snow-like)
    lit = dark["uvi_noon"] > 1.0
    gain = float((bright["uvi_noon"].where(lit) / dark["uvi_noon"].where(lit)).load().median())
    assert 1.1 < gain < 1.6, gain

    # `hubkit chain report` shows the cycle's diagnostics, its errors against the nature run
    # the observations were simulated from, and which products are simulated
    from hubkit.chain.report import write_report

    written = write_report(store, tmp_path / "report")
    page = Path(written["html"]).read_text()
    assert Path(written["diagnostics_png"]).stat().st_size > 0
    assert "Assimilation diagnostics per cycle" in page and "Simulated inputs" in page
    assert "rmse_trop_analysis" in page and "chi2" in page


def test_flagged_rows_never_reach_the_science():
    """A row its reader flagged (an XCO2 of 5000 ppm, outside 100-1000: input_flag 4, kept in
    the store unchanged) is left out of the peak fit. Fitted with it, it made a spurious plume
    near sounding 2020; the table must equal the one of the same soundings without that row."""
    from hubkit.simulate import oco2_tracks

    (ds,) = oco2_tracks(1, seconds=600.0, plumes=2, seed=11)
    ds = ds.load()
    row = 2000
    xco2 = ds["xco2"].values.copy()
    xco2[row] = 5000.0
    flag = np.zeros(ds.sizes["sounding"], np.uint8)
    flag[row] = 4
    bad = ds.assign(xco2=ds["xco2"].copy(data=xco2), input_flag=("sounding", flag))
    without = ds.isel(sounding=np.flatnonzero(np.arange(ds.sizes["sounding"]) != row))
    expected = chain.detect_peaks([without])
    assert len(expected) == 1  # the one real plume the track crosses
    pd.testing.assert_frame_equal(chain.detect_peaks([bad]), expected)


def test_an_orbit_without_plumes_gives_a_peaks_item_that_says_where_and_when(tmp_path):
    """Issue 18: empty peak products showed a blank time, bbox and source in `hubkit search`.
    The step's table carries the searched orbit's extent (ACDD attributes), and the Item has
    the orbit's bounding box, time range and file name."""
    from hubkit.chain.steps import detect_peaks

    (track,) = simulate.oco2_tracks(1, seconds=60.0, seed=7, plumes=0)
    track.attrs["source"] = "oco2_LtCO2_160831_sim.nc4"
    table = detect_peaks([track])
    assert len(table) == 0
    store = Store(tmp_path / "store")
    item = store.put_table(table, product_type="oco2-peaks", inputs=["oco2-soundings-x"],
                           step="co2.peaks")
    lat, lon = track.latitude.values, track.longitude.values
    assert item.bbox == pytest.approx([lon.min(), lat.min(), lon.max(), lat.max()], abs=1e-9)
    times = pd.to_datetime(track.time.values).tz_localize("UTC").floor("us")  # STAC: µs
    assert pd.Timestamp(item.properties["start_datetime"]) == times.min()
    assert pd.Timestamp(item.properties["end_datetime"]) == times.max()
    assert item.properties["hubkit:source"] == "oco2_LtCO2_160831_sim.nc4"
    hits = store.search("oco2-peaks", bbox=(lon.min(), lat.min(), lon.max(), lat.max()),
                        datetime=str(times.min().date()))
    assert [h.id for h in hits] == [item.id]


def _hour_marked(datasets, *, slow_hour="", seconds=0.0):
    """A per-hour test step: the hour's first retrievals, with when it started and finished
    (epoch seconds on this machine); the unit of ``slow_hour`` lasts ``seconds`` longer."""
    import time

    started = time.time()
    ds = datasets[0]
    hour = pd.Timestamp(ds["time"].values.min()).floor("h")
    if slow_hour and hour == pd.Timestamp(slow_hour):
        time.sleep(seconds)
    out = ds[["o3_vmr"]].isel(retrieval=slice(0, 3))
    out.attrs = {"started": started, "finished": time.time()}
    return out


def _cycle_marked(datasets):
    """A per-cycle test step: how many hourly products it read and when it started."""
    import time

    out = datasets[0][["o3_vmr"]].isel(retrieval=slice(0, 1))
    out.attrs = {"started": time.time(), "hours_read": len(datasets)}
    return out


def test_a_cycle_starts_once_its_own_hours_are_done_not_every_hour(tmp_path, files, client):
    # The reconciler used to run in waves: every unit it could see, then wait for all of them
    # before planning again, so a cycle waited for the slowest hour of every other cycle (a
    # week's assimilation behind a week's fusion). Here hour 12 (the next cycle) lasts 8 s;
    # the 00-12 cycle must start while it runs, from all three of its own hours.
    store = Store(tmp_path / "store")
    for path in (*files["l2"], files["l2_later"]):
        ingest.upload(store, path)
    hourly = chain.Step("test.hourly", "1", chain.Query("l2-ozone", "hour"), "test-hourly",
                        _hour_marked, parameters={"slow_hour": "2024-07-01T12:00:00",
                                                  "seconds": 8.0})
    cycle = chain.Step("test.cycle", "1", chain.Query("test-hourly", "12h-cycle"),
                       "test-cycle", _cycle_marked)
    report = chain.reconcile(store, [hourly, cycle], client=client)
    assert report.failed == {} and report.missing == []
    hours = sorted((store.open(i) for i in _ids(store, "test-hourly")),
                   key=lambda d: d["time"].values.min())
    assert len(hours) == 4
    slow = hours[-1]  # hour 12
    cycles = sorted((store.open(i) for i in _ids(store, "test-cycle")),
                    key=lambda d: d["time"].values.min())  # 00-12, then 12-24
    assert [c.attrs["hours_read"] for c in cycles] == [3, 1]  # identical products: whole cycles
    assert cycles[0].attrs["started"] < slow.attrs["finished"] - 2.0, (
        "the 00-12 cycle waited for hour 12, which is not in it")


def _item_marked(datasets):
    """A per-item test step: its one input, unchanged but for the attributes."""
    out = datasets[0][["o3_vmr"]]
    out.attrs = {}
    return out


def test_a_window_waits_for_units_two_steps_up_still_running(tmp_path, files, client):
    # Planning while units run, a windowed step's window must not close over the products of
    # the hours done so far while an hour two steps up (here hour 11 of test.hourly, ahead of
    # test.item) still runs: the plan cannot see the test.item unit it will give rise to.
    store = Store(tmp_path / "store")
    for path in files["l2"]:
        ingest.upload(store, path)
    hourly = chain.Step("test.hourly", "1", chain.Query("l2-ozone", "hour"), "test-hourly",
                        _hour_marked, parameters={"slow_hour": "2024-07-01T11:00:00",
                                                  "seconds": 4.0})
    item = chain.Step("test.item", "1", chain.Query("test-hourly"), "test-item", _item_marked)
    cycle = chain.Step("test.cycle", "1", chain.Query("test-item", "12h-cycle"), "test-cycle",
                       _cycle_marked)
    report = chain.reconcile(store, [hourly, item, cycle], client=client)
    assert report.failed == {} and report.missing == []
    (made,) = _ids(store, "test-cycle")
    assert store.open(made).attrs["hours_read"] == 3  # once, from every hour of the cycle


def _cycled_marked(datasets, previous=None):
    """A cycled test step: cold or warm, and how many hourly products it read."""
    out = datasets[0][["o3_vmr"]].isel(retrieval=slice(0, 1))
    out.attrs = {"start": "cold" if previous is None else "warm", "hours_read": len(datasets)}
    return out


def test_a_cycle_is_not_cold_started_while_the_previous_one_waits(tmp_path, files, client):
    # Hour 12 (the 12-24 cycle) lasts 8 s; the next day's 00-12 cycle has its hour fused long
    # before. It must wait for the 12-24 cycle and start warm from it, not cold start as if
    # the 12-24 window were a gap (then be made again, warm: two products for one cycle).
    store = Store(tmp_path / "store")
    for path in (*files["l2"], files["l2_later"]):
        ingest.upload(store, path)
    ds = simulate.l2_ozone(instruments=("S5-UV",), start="2024-07-02T01:00:00", hours=1,
                           spacing=1.0, seed=7)
    ingest.upload(store, write_l2_ozone(ds, tmp_path / "l2_o3_next_day.nc"))
    hourly = chain.Step("test.hourly", "1", chain.Query("l2-ozone", "hour"), "test-hourly",
                        _hour_marked, parameters={"slow_hour": "2024-07-01T12:00:00",
                                                  "seconds": 8.0})
    cycled = chain.Step("test.cycled", "1",
                        chain.Query("test-hourly", "12h-cycle", previous=True),
                        "test-cycled", _cycled_marked)
    report = chain.reconcile(store, [hourly, cycled], client=client)
    assert report.failed == {} and report.missing == []
    cycles = sorted((store.open(i) for i in _ids(store, "test-cycled")),
                    key=lambda d: d["time"].values.min())
    assert [(c.attrs["start"], c.attrs["hours_read"]) for c in cycles] == [
        ("cold", 3), ("warm", 1), ("warm", 1)]
