"""The report's figures: small multiples of fused ozone and of the analyses, along-track XCO2,
values read back from the drawn artists; and the demo's HTML report in headless Chromium
(every figure present, loaded, not blank; colour bars as tall as their maps)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import io  # noqa: E402
import os  # noqa: E402
from pathlib import Path  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402
from conftest import REPO, SHARED_DATA, assert_colorbars_fit, need  # noqa: E402

from hubkit.errors import PlotInputError  # noqa: E402
from hubkit.plot import report as figures  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _fused(hour: int, cells, seed: int = 0):
    """A fused-ozone product of one hour: ``cells`` (lat, lon) centres of 1° cells, o3_vmr on
    three levels = 1e-9 * (level index * 100 + cell number + hour / 100)."""
    lat, lon = np.array(cells, dtype=float).T
    n = lat.size
    vmr = (np.arange(3)[None, :] * 100 + np.arange(n)[:, None] + hour / 100) * 1e-9
    time = np.full(n, np.datetime64("2024-07-01T00:30") + np.timedelta64(hour, "h"))
    return xr.Dataset(
        {"o3_vmr": (("cell", "level"), vmr, {"units": "mol mol-1",
                                               "long_name": "fused ozone volume mixing ratio"})},
        coords={"pressure": ("level", [80000.0, 50000.0, 30000.0]),
                "latitude": ("cell", lat), "longitude": ("cell", lon), "time": ("cell", time)},
        attrs={"fusion_cell": "1.0 deg x 1.0 deg x 3600.0 s"})


def _meshes(fig):
    return [c for ax in fig.axes if not hasattr(ax, "_colorbar") for c in ax.collections
            if hasattr(c, "get_clim") and c.get_array() is not None and c.get_gid() is None]


def test_fused_ozone_is_gridded_per_level_and_hour():
    cells = [(45.5, 10.5), (46.5, 12.5), (40.5, 0.5)]
    products = [_fused(h, cells if h % 2 == 0 else cells[:2]) for h in range(4)]
    fig = figures.fused_ozone_panels(products[::-1], pressures=(80000.0, 30000.0))
    maps = [ax for ax in fig.axes if not hasattr(ax, "_colorbar")]
    assert len(maps) == 2 * 4  # two levels (rows) by four hours (columns), sorted by time
    assert [ax.get_title() for ax in maps[:4]] == [
        f"2024-07-01 0{h}:30 UTC" for h in range(4)]
    (bar,) = assert_colorbars_fit(fig)  # one colour bar, as tall as both rows
    assert bar._colorbar.mappable.get_clim() == (0.0, 120.0)  # the fixed o3_ppbv range
    meshes = _meshes(fig)
    assert len(meshes) == 8
    # a regular 1° grid from 40-47°N, 0-13°E; each cell's value where its centre is
    grid = meshes[4].get_array().reshape(7, 13)  # row 2 (300 hPa), hour 0
    assert grid[45 - 40, 10] == pytest.approx(200.0)  # level 2 x 100 + cell 0, in ppbv
    assert grid[46 - 40, 12] == pytest.approx(201.0)
    assert grid[40 - 40, 0] == pytest.approx(202.0)
    assert grid.count() == 3  # all other cells have no value
    # the cells without a fused retrieval are grey and said so once for the figure
    gaps = [c for ax in maps for c in ax.collections if c.get_gid() == "no_data"]
    assert len(gaps) == 8 and len(gaps[1].get_paths()) == 7 * 13 - 2
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == [
        "grey: no value (no fused retrieval in the cell)"]


def test_fused_ozone_shows_at_most_max_hours_evenly():
    products = [_fused(h, [(45.5, 10.5)]) for h in range(12)]
    fig = figures.fused_ozone_panels(products, pressures=(50000.0,), max_hours=6)
    titles = [ax.get_title() for ax in fig.axes if not hasattr(ax, "_colorbar")]
    assert titles == [f"2024-07-01 {h:02d}:30 UTC" for h in range(0, 12, 2)]
    with pytest.raises(PlotInputError, match="no fused-ozone product"):
        figures.fused_ozone_panels([])


def _global(value, name="o3_column_lrt", units="DU", nan_cells=()):
    lat, lon = np.arange(-87.5, 90, 5.0), np.arange(-177.5, 180, 5.0)
    data = np.full((lat.size, lon.size), float(value))
    for i, j in nan_cells:
        data[i, j] = np.nan
    return xr.DataArray(data, dims=("latitude", "longitude"), name=name,
                        coords={"latitude": lat, "longitude": lon}, attrs={"units": units})


def test_field_panels_one_colour_bar_per_row_and_gaps_explained():
    rows = [[_global(25.0, nan_cells=[(18, 3)]), _global(30.0), None],
            [_global(300.0, "total_ozone"), _global(320.0, "total_ozone"),
             _global(340.0, "total_ozone")]]
    fig = figures.field_panels(
        rows, column_titles=["a", "b", "c"], row_labels=["tropospheric", "total"],
        quantities=["tropospheric_column", "total_ozone"],
        labels=["tropospheric ozone column [DU]", "total ozone column [DU]"],
        gaps=[["no lapse rate tropopause", None, None], [None] * 3])
    bars = assert_colorbars_fit(fig)
    assert [b._colorbar.mappable.get_clim() for b in bars] == [(10.0, 60.0), (200.0, 500.0)]
    assert [b.get_ylabel().replace("\n", " ") for b in bars] == [
        "tropospheric ozone column [DU]", "total ozone column [DU]"]
    maps = [ax for ax in fig.axes if not hasattr(ax, "_colorbar")]
    assert [t.get_text() for t in maps[2].texts] == ["no product"]
    (cells,) = [c for c in maps[0].collections if c.get_gid() == "no_data"]
    assert len(cells.get_paths()) == 1 and cells.get_hatch() == "////"
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == [
        "hatched: no value (no lapse rate tropopause)"]


def test_along_track_panels_draw_the_fit_of_each_detection():
    x = np.linspace(-100, 100, 201)
    background = 403.0 - 0.01 * x
    model = background + 3.0 * np.exp(-0.5 * (x / 20.0) ** 2)
    window = pd.DataFrame({"x": x, "xco2": model + 0.1, "model": model,
                           "background": background})
    peak = pd.Series({"orbit": 11522, "latitude": -26.27, "longitude": 29.01, "delta": 3.0,
                      "sigma": 20.0, "emission": 7000.0})
    fig = figures.along_track_panels([window, window], [peak, peak])
    assert len(fig.axes) == 2
    for ax in fig.axes:
        assert ax.get_title() == "orbit 11522, 26.3°S 29.0°E"
        fitted = [line for line in ax.lines if line.get_label().startswith("Gaussian")]
        (line,) = fitted
        np.testing.assert_allclose(line.get_ydata(), model)
        assert "δ = 3.00 ppm" in line.get_label() and "Q = 7000 kg/s" in line.get_label()


# -- the demo's report in a browser -------------------------------------------------------------
CHROMIUM = Path("/usr/bin/chromium")
#: Where the full-page screenshot of the report is kept for people to look at (as test_hub).
ARTIFACTS = Path(os.environ.get("HUBKIT_TEST_ARTIFACTS", REPO / "test-artifacts"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory):
    """A small demo (one simulated orbit and the real segment, two hours of ozone: one
    assimilation cycle), every figure checked at the matplotlib level as it is saved."""
    import hubkit.demo as demo

    out = tmp_path_factory.mktemp("demo")
    checked: dict[str, int] = {}
    save = demo._save

    def checking_save(fig, path):
        if any(hasattr(ax, "_colorbar") for ax in fig.axes):
            checked[Path(path).name] = len(assert_colorbars_fit(fig))
        return save(fig, path)

    inputs = [p for p in [SHARED_DATA / "oco2peak" /
                          "oco2_orbit11522_20160831_segment_300-800km.csv"] if p.exists()]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MPLBACKEND", "Agg")
        for var in ("HUBKIT_DASK", "DASK_SCHEDULER_ADDRESS", "DASK_GATEWAY__ADDRESS"):
            mp.delenv(var, raising=False)
        mp.setattr(demo, "_save", checking_save)
        summary = demo.run_demo(str(out / "store"), out, inputs=inputs, orbits=1,
                                ozone_hours=2, progress=False)
    return summary, checked


@pytest.mark.slow
def test_every_report_map_has_colour_bars_as_tall_as_its_maps(demo_report):
    summary, checked = demo_report
    assert summary["failed"] == {}
    # every map with a colour scale was checked as it was saved (assert_colorbars_fit)
    assert {"soundings_map.png", "map_fused_ozone.png", "map_analyses.png",
            "map_plumes.png"} <= set(checked)
    assert checked["map_analyses.png"] == 2  # tropospheric and total column, one bar each


@pytest.mark.slow
def test_the_report_in_chromium_shows_every_figure(demo_report, tmp_path):
    """Every figure of the page is there, loaded (naturalWidth > 0) and not blank (pixel
    variance of what the browser drew), and the captions explain the gaps. The whole page is
    kept as ``test-artifacts/demo-report.png``."""
    need(CHROMIUM.exists(), f"{CHROMIUM} is missing (apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        need(False, "playwright is not importable (pip install playwright)")
    summary, _ = demo_report
    page_path = Path(summary["report"])
    expected = {Path(p).name for p in summary["maps"].values()} | {
        "chain_report.png", "cycle_diagnostics.png", "soundings_map.png",
        "along_track_xco2.png"}
    if not any(row["done"] for row in summary["chain"] if row["step"] == "co2.peaks") or \
            "along-track XCO2" not in summary["maps"]:
        expected.discard("along_track_xco2.png")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                     headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(page_path.resolve().as_uri(), wait_until="load")
            images = page.eval_on_selector_all("img", """imgs => imgs.map(i => ({
                src: i.getAttribute('src'), alt: i.alt, complete: i.complete,
                width: i.naturalWidth, height: i.naturalHeight}))""")
            names = {Path(i["src"]).name for i in images}
            assert expected <= names, f"missing from the page: {sorted(expected - names)}"
            for image in images:
                assert image["complete"] and image["width"] > 0, f"not loaded: {image}"
                assert image["alt"], f"no alt text: {image['src']}"
            for k, element in enumerate(page.query_selector_all("img")):
                element.scroll_into_view_if_needed()
                shot = element.screenshot()
                (tmp_path / f"img{k}.png").write_bytes(shot)
                pixels = plt.imread(io.BytesIO(shot))[..., :3]
                ink = np.mean(pixels.min(axis=-1) < 0.9)  # share of non-white pixels
                assert pixels.std() > 0.05 and ink > 0.02, (
                    f"{images[k]['src']} looks blank: std {pixels.std():.3f}, ink {ink:.3f}")
            text = page.inner_text("body")
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "demo-report.png"), full_page=True)
        finally:
            browser.close()
    for name, caption in summary["captions"].items():
        assert caption in text, f"the caption of {name} is not on the page"
    assert "grey cells had no retrieval that hour" in summary["captions"]["fused ozone"]
