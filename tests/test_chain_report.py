"""``hubkit chain report``: products and MB processed per day and step (AURORA's Figure 13),
checked against the store's own files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hubkit import chain, ingest, simulate
from hubkit.chain.report import processing_table, write_report
from hubkit.cli import main
from hubkit.io.oco2_lite import write_oco2_lite
from hubkit.store import Store


def _bytes_on_disk(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(os.path.getsize(os.path.join(root, f)) for root, _, names in os.walk(path)
               for f in names)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Two simulated OCO-2 orbits on two days, uploaded, and their peaks made (no cluster:
    the units are run in this process, as a Dask worker would)."""
    folder = tmp_path_factory.mktemp("report")
    store = Store(folder / "store")
    for k, ds in enumerate(simulate.oco2_tracks(2, seconds=300.0, seed=5)):
        ingest.upload(store, write_oco2_lite(ds, folder / f"oco2_LtCO2_sim{k}.nc4"))
    steps = [s for s in chain.default_steps() if s.name == "co2.peaks"]
    for unit in chain.plan(store, steps).missing:
        chain.run_unit(store.url, {}, steps[0], unit)
    return store


def test_table_matches_the_store_content(store):
    table = processing_table(store)
    soundings = {i.id: i for i in store.items("oco2-soundings")}
    peaks = list(store.items("oco2-peaks"))
    assert len(soundings) == 2 and len(peaks) == 2
    size = {i: _bytes_on_disk(Path(store.data_path(item))) for i, item in soundings.items()}
    by_step = table.groupby("step")[["products", "inputs", "mb_processed"]].sum()
    assert by_step.loc["upload", "products"] == 2
    assert by_step.loc["upload", "mb_processed"] == pytest.approx(sum(size.values()) / 1e6)
    assert by_step.loc["co2.peaks", "products"] == 2 and by_step.loc["co2.peaks", "inputs"] == 2
    # the peaks step read each soundings product once: the MB it processed are theirs
    assert by_step.loc["co2.peaks", "mb_processed"] == pytest.approx(sum(size.values()) / 1e6)
    # per day: a peaks table counts on the UTC day of its soundings (an empty table has no
    # time range of its own), never on the day it was made
    expected = {}
    for item in peaks:
        (source,) = item.properties["hubkit:provenance"]["inputs"]
        day = str(soundings[source].common_metadata.start_datetime)[:10]
        expected[day] = expected.get(day, 0) + 1
    rows = table[table["step"] == "co2.peaks"]
    assert dict(zip(rows["day"].astype(str), rows["products"], strict=True)) == expected


def test_report_writes_png_and_html(store, tmp_path, capsys):
    written = write_report(store, tmp_path / "r")
    png, page = Path(written["png"]), Path(written["html"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = page.read_text()
    assert "data:image/png;base64," in text and "co2.peaks" in text and "upload" in text
    assert main(["chain", "report", "--store", str(store.url), "--out", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    assert "co2.peaks" in out and "chain_report.html" in out
    assert (tmp_path / "c" / "chain_report.png").is_file()


def test_empty_store_gives_an_empty_report(tmp_path):
    written = write_report(Store(tmp_path / "empty"), tmp_path / "r")
    assert written["table"].empty and Path(written["html"]).is_file()


def test_report_shows_the_per_cycle_diagnostics(tmp_path):
    import pandas as pd

    table = pd.DataFrame({"time": pd.date_range("2024-06-21", periods=3, freq="12h"),
                          "chi2": [1.8, 1.2, 0.97], "n_obs": [120, 130, 125],
                          "start": ["cold", "warm", "warm"]})
    written = write_report(Store(tmp_path / "empty"), tmp_path / "r", diagnostics=table)
    assert Path(written["diagnostics_png"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = Path(written["html"]).read_text()
    assert "Assimilation diagnostics per cycle" in page and page.count("data:image/png") == 2
    assert "0.97" in page and "cold" in page  # the table itself is on the page


def test_the_processing_chart_draws_periods_apart():
    """A 2016 replay and a 2024 simulation are two periods, not one axis of mixed days; each
    period has every calendar day and its own scale; the title names no local path."""
    import datetime as dt

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from hubkit.chain.report import periods, report_figure

    day = dt.date.fromisoformat
    table = pd.DataFrame({
        "day": [day("2016-08-31"), day("2016-08-31"), day("2024-07-01"), day("2024-07-03")],
        "step": ["upload", "co2.peaks", "upload", "fusion.cdf"],
        "output": ["oco2-soundings", "oco2-peaks", "l2-ozone", "fused-ozone"],
        "products": [5, 5, 24, 12], "inputs": [5, 5, 24, 12],
        "mb_processed": [0.9, 0.9, 260.0, 125.0]})
    assert periods(table["day"]) == [[day("2016-08-31")] * 2, [day("2024-07-01"),
                                                               day("2024-07-03")]]
    fig = report_figure(table)
    try:
        fig.canvas.draw()
        bottom = [ax for ax in fig.axes if ax.get_subplotspec().rowspan.start == 1]
        ticks = [[t.get_text() for t in ax.get_xticklabels()] for ax in bottom]
        assert ticks == [["2016-08-31"], ["2024-07-01", "2024-07-02", "2024-07-03"]]
        assert bottom[0].get_ylim()[1] < 5 < bottom[1].get_ylim()[1]  # own scales
        heights = [p.get_height() for p in bottom[1].patches if p.get_height() > 0]
        assert sorted(heights) == [125.0, 260.0]
        title = fig._suptitle.get_text()
        assert "2 periods" in title and "/" not in title
    finally:
        plt.close(fig)
