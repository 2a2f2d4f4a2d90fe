"""The example notebooks and the demo job, executed as a user would run them."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import REPO, SHARED_DATA, need

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


@pytest.fixture
def user_env(tmp_path, monkeypatch):
    """A fresh store, a scratch store beside it and no cluster settings, as on a new laptop."""
    monkeypatch.setenv("HUBKIT_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("HUBKIT_SCRATCH_STORE", str(tmp_path / "scratch"))
    for var in ("HUBKIT_DASK", "DASK_SCHEDULER_ADDRESS", "DASK_GATEWAY__ADDRESS"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path / "store"


def snapshot(folder: Path) -> dict:
    """Every file under ``folder`` with its size and modification time."""
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


@pytest.fixture
def users_store(user_env, tmp_path):
    """``HUBKIT_STORE`` holds the user's own real work: one product."""
    from fixtures import write_lite_fixture

    import hubkit

    lite = write_lite_fixture(tmp_path / "oco2_LtCO2_160831_B9003r.nc4", n=24)
    hubkit.ingest.upload(hubkit.open_store(), lite)
    return user_env


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs_clean(path, users_store, tmp_path):
    import nbformat
    from nbclient import NotebookClient

    if path.name.startswith("08_"):  # real provider files, beside the repository
        need((SHARED_DATA / "real").is_dir(), f"{SHARED_DATA / 'real'} is absent")
    before = snapshot(users_store)
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if "image/png" in o.get("data", {})]
    assert images, f"{path.name} drew no figure"
    scratch = tmp_path / "scratch" / "notebooks"
    assert (scratch / "catalog").is_dir(), f"{path.name} stored nothing in its scratch store"
    assert snapshot(users_store) == before, f"{path.name} changed the user's HUBKIT_STORE"


def test_notebook_01_finds_the_real_segment(user_env):
    """The store-and-search notebook's search, on the real sample when it is there."""
    import hubkit
    from hubkit.demo import DEMO_BBOX, DEMO_DAY

    csv = SHARED_DATA / "oco2peak" / "oco2_orbit11522_20160831_segment_300-800km.csv"
    if not csv.exists():
        pytest.skip(f"{csv} absent")
    store = hubkit.open_store()
    item = hubkit.ingest.upload(store, csv)
    hits = store.search("oco2-soundings", bbox=DEMO_BBOX, datetime=DEMO_DAY)
    assert [h.id for h in hits] == [item.id]
    assert item.bbox == pytest.approx([28.38, -28.46, 29.55, -24.07], abs=0.01)


@pytest.mark.slow
def test_demo_job_end_to_end(user_env, tmp_path, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    from hubkit.demo import run_demo

    inputs = []
    csv = SHARED_DATA / "oco2peak" / "oco2_orbit11522_20160831_segment_300-800km.csv"
    if csv.exists():
        inputs.append(csv)
    lines = []
    summary = run_demo(out_dir=tmp_path / "demo", inputs=inputs, orbits=2, echo=lines.append,
                       ozone_hours=2, progress=False)
    # simulated products go to the scratch store, never to the user's HUBKIT_STORE
    assert summary["store"] == str(tmp_path / "scratch" / "demo") and not user_env.exists()
    assert len(summary["products"]) == 2 + len(inputs)
    # simulated orbits: 8 footprints x 3 frames/s x 600 s, a third lost to clouds, 10 % flagged
    for row in summary["products"][:2]:
        assert 0.55 * 14400 < row["n"] < 0.67 * 14400
        assert 400.0 < row["mean"] < 404.0 and 0.6 < row["std"] < 0.9
    if inputs:  # the real segment: all 1,598 soundings are quality-flag 0 in the extract
        assert summary["products"][2]["n"] == 1598
        assert summary["products"][2]["id"] in summary["hits"]
    figure = Path(summary["figure"])
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert any("LocalCluster" in line for line in lines)
    # the chain: two hours fused, one 12-h cycle assimilated, its tropospheric ozone, plumes
    steps = {row["step"]: row for row in summary["chain"]}
    assert summary["failed"] == {}
    assert steps["fusion.cdf"]["done"] == 2 and steps["assimilation.letkf"]["done"] == 1
    assert steps["ozone.troc"]["done"] == 1 and steps["co2.peaks"]["done"] == 2 + len(inputs)
    assert {"soundings", "fused ozone", "analyses", "plumes"} <= set(summary["maps"])
    from hubkit.uv.table import shipped_table_path

    if shipped_table_path().is_file():  # the UV step runs once its lookup table is shipped
        assert steps["uv.surface"]["done"] == 1 and "UV index" in summary["maps"]
    page = Path(summary["report"]).read_text()
    assert all(Path(p).name in page for p in summary["maps"].values())
    assert "chain_report.png" in page and "assimilation.letkf" in page
    again = run_demo(out_dir=tmp_path / "demo", inputs=inputs, orbits=2, echo=lines.append,
                     ozone_hours=2, progress=False)
    assert [r["id"] for r in again["products"]] == [r["id"] for r in summary["products"]]
    assert all(row["done"] == 0 for row in again["chain"])  # nothing is made twice
    # the report keeps the timings of the run that made the products, not the no-op's 0.0 s
    first = {r["step"]: r for r in summary["timings"]}
    kept = {r["step"]: r for r in again["timings"]}
    for step, row in first.items():
        assert row["timed"] == "this run" if row["done"] else row["timed"] == "-"
        if row["done"]:
            assert row["seconds"] > 0 and kept[step]["seconds"] == pytest.approx(row["seconds"])
            assert kept[step]["done"] == row["done"] and kept[step]["timed"] != "this run"
    page = Path(again["report"]).read_text()
    assert "this run" not in page
    seconds = first["fusion.cdf"]["seconds"]
    assert f"<td>{seconds:.1f}</td>" in page
