"""Table products as a user takes them away: ``hubkit show`` prints their rows, ``emission_flag``
is explained in the product, ``hubkit export`` writes CSV and GeoJSON (issue 18)."""

from __future__ import annotations

import csv
import io
import json
import re

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from conftest import run_cli as run
from fixtures import write_lite_fixture

from hubkit.cli import main
from hubkit.co2 import EMISSION_FLAGS, find_peaks, peaks_table
from hubkit.simulate import oco2_tracks
from hubkit.store import open_store

UNITS = {"latitude": "degrees_north", "longitude": "degrees_east", "emission": "kg s-1"}


def peaks_by_hand(n: int = 30) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    df = pd.DataFrame({
        "latitude": np.linspace(-30.0, 30.0, n),
        "longitude": np.linspace(100.0, 130.0, n),
        "time": pd.date_range("2016-08-31T10:00:00", periods=n, freq="37s"),
        "emission": rng.uniform(10.0, 900.0, n),
        "emission_flag": np.where(np.arange(n) % 3 == 0, 5, 0).astype(np.int8),
        "source": [f"plant-{k}" for k in range(n)],
    })
    df.loc[1, "emission"] = np.nan  # a missing value: empty in CSV, null in GeoJSON
    return df


@pytest.fixture
def table_id(store_env):
    store = open_store(store_env, create=True)
    item = store.put_table(peaks_by_hand(), product_type="test-peaks", inputs=["by-hand"],
                           step="test", attrs={"units": UNITS})
    return item.id


@pytest.fixture(scope="module")
def detected():
    """A peaks table as hubkit's detection makes it (two simulated orbits with plumes)."""
    tracks = oco2_tracks(2, seconds=900.0, plumes=4, seed=11)
    return peaks_table(find_peaks(xr.concat(tracks, "sounding", combine_attrs="drop_conflicts")))


# -- 1. show prints rows ------------------------------------------------------------------------
def test_show_prints_the_first_rows_of_a_table_and_counts_the_rest(table_id, capsys):
    code, out, _ = run(capsys, "show", table_id)
    assert code == 0
    rows = out[out.index("rows"):]
    assert "plant-0" in rows and "plant-19" in rows and "plant-20" not in rows
    assert "... 10 more row(s) of 30" in rows and "hubkit export" in rows
    assert "2016-08-31T10:00:00" in rows
    # the columns with their units are still listed
    assert re.search(r"emission\s.*\[kg s-1\]", out)

    code, out, _ = run(capsys, "show", table_id, "--rows", "3")
    assert code == 0 and "plant-2" in out and "plant-3" not in out
    assert "... 27 more row(s) of 30" in out
    code, out, _ = run(capsys, "show", table_id, "--rows", "0")
    assert code == 0 and "plant-0" not in out and "... 30 more row(s) of 30" in out


def test_show_of_a_dataset_prints_no_rows(store_env, tmp_path, capsys):
    lite = write_lite_fixture(tmp_path / "oco2_LtCO2_160831_B9003r.nc4", n=40)
    code, out, _ = run(capsys, "upload", str(lite), "-q")
    code, out, _ = run(capsys, "show", out.split()[0])
    assert code == 0 and "xco2" in out and "more row(s)" not in out


# -- 2. emission_flag explained -----------------------------------------------------------------
def test_peaks_product_documents_emission_flag_cf_style(detected, store_env, capsys):
    flags = detected.attrs["flags"]["emission_flag"]
    assert flags["flag_masks"] == sorted(EMISSION_FLAGS)
    words = flags["flag_meanings"].split()
    assert len(words) == len(EMISSION_FLAGS)
    assert all(re.fullmatch(r"[A-Za-z0-9_]+", w) for w in words)  # CF: one word per meaning
    assert flags["flag_descriptions"] == [EMISSION_FLAGS[k] for k in sorted(EMISSION_FLAGS)]

    store = open_store(store_env, create=True)
    item = store.put_table(detected, product_type="oco2-peaks", inputs=["simulated"],
                           step="co2.find_peaks")
    assert store.open(item).attrs["flags"] == detected.attrs["flags"]
    code, out, _ = run(capsys, "show", item.id)
    assert code == 0
    assert "emission_flag (bits, summed)" in out
    for bit, text in EMISSION_FLAGS.items():
        assert re.search(rf"\b{bit}\s+\w+\s+{re.escape(text)}", out), (bit, out)


# -- 3. export ----------------------------------------------------------------------------------
def test_export_geojson_parses_back_with_positions_and_properties(table_id, tmp_path, capsys):
    out_file = tmp_path / "peaks.geojson"
    code, out, err = run(capsys, "export", table_id, "--format", "geojson", "--out",
                         str(out_file))
    assert code == 0 and "30 feature(s)" in err and str(out_file) in err
    doc = json.loads(out_file.read_text())
    assert doc["type"] == "FeatureCollection" and len(doc["features"]) == 30
    df = peaks_by_hand()
    for f, (_, row) in zip(doc["features"], df.iterrows(), strict=True):
        assert f["type"] == "Feature" and f["geometry"]["type"] == "Point"
        assert f["geometry"]["coordinates"] == pytest.approx([row.longitude, row.latitude])
        assert set(f["properties"]) == {"time", "emission", "emission_flag", "source"}
        assert f["properties"]["time"] == row.time.isoformat() + "Z"
        assert f["properties"]["source"] == row.source
    assert doc["features"][1]["properties"]["emission"] is None
    assert doc["features"][0]["properties"]["emission_flag"] == 5
    assert doc["properties"]["units"]["emission"] == "kg s-1"
    assert doc["properties"]["hubkit_product_id"] == table_id

    # to standard output without --out
    code, out, _ = run(capsys, "export", table_id, "--format", "geojson")
    assert code == 0 and len(json.loads(out)["features"]) == 30


def test_export_csv_has_a_header_every_row_and_iso_times(table_id, tmp_path, capsys):
    code, out, _ = run(capsys, "export", table_id, "--format", "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 30
    assert list(rows[0]) == ["latitude", "longitude", "time", "emission", "emission_flag",
                             "source"]
    assert rows[0]["time"] == "2016-08-31T10:00:00Z" and rows[1]["emission"] == ""
    assert float(rows[29]["longitude"]) == pytest.approx(130.0)
    out_file = tmp_path / "peaks.csv"
    code, _, err = run(capsys, "export", table_id, "--format", "csv", "--out", str(out_file))
    assert code == 0 and "30 row(s)" in err
    assert out_file.read_text() == out


def test_export_of_detected_peaks(detected, store_env, tmp_path, capsys):
    store = open_store(store_env, create=True)
    item = store.put_table(detected, product_type="oco2-peaks", inputs=["simulated"],
                           step="co2.find_peaks")
    code, out, _ = run(capsys, "export", item.id, "--format", "geojson")
    assert code == 0
    features = json.loads(out)["features"]
    assert len(features) == len(detected) > 0
    np.testing.assert_allclose([f["geometry"]["coordinates"] for f in features],
                               detected[["longitude", "latitude"]].to_numpy())


def test_export_refuses_what_is_not_a_table_with_positions(store_env, tmp_path, capsys):
    lite = write_lite_fixture(tmp_path / "oco2_LtCO2_160831_B9003r.nc4", n=40)
    code, out, _ = run(capsys, "upload", str(lite), "-q")
    code, _, err = run(capsys, "export", out.split()[0], "--format", "csv")
    assert code == 2 and "not a table" in err and "oco2-soundings" in err

    store = open_store(store_env)
    item = store.put_table(pd.DataFrame({"a": [1, 2], "b": [3.0, 4.0]}),
                           product_type="test-stats", inputs=["x"], step="test")
    code, _, err = run(capsys, "export", item.id, "--format", "geojson")
    assert code == 2 and "no latitude/longitude" in err and "a, b" in err
    out_file = tmp_path / "nothing.csv"
    code, _, err = run(capsys, "export", item.id, "--format", "csv", "--out", str(out_file))
    assert code == 2 and not out_file.exists()
    with pytest.raises(SystemExit):
        main(["export", item.id, "--format", "kml"])


# -- 4. plot: a quick look at any product -------------------------------------------------------
def _drawn(png) -> bool:
    """A PNG with something on it: not one flat colour."""
    import matplotlib.image

    image = matplotlib.image.imread(png)
    return image.shape[0] > 200 and image[..., :3].std() > 0.05


def gridded_field() -> xr.Dataset:
    lat = np.arange(-89.0, 90.0, 2.0)
    lon = np.arange(-179.0, 180.0, 2.0)
    ozone = 300.0 + 60.0 * np.cos(np.deg2rad(lat))[:, None] * np.sin(np.deg2rad(lon))[None, :]
    times = pd.date_range("2016-08-31", periods=2, freq="6h")
    return xr.Dataset(
        {"total_ozone": (("time", "latitude", "longitude"), np.stack([ozone, ozone + 5.0]),
                         {"units": "DU", "long_name": "total ozone column"})},
        coords={"time": times, "latitude": ("latitude", lat, {"units": "degrees_north"}),
                "longitude": ("longitude", lon, {"units": "degrees_east"})},
        attrs={"title": "a test field"})


def test_plot_draws_a_quick_look_of_each_kind_of_product(store_env, table_id, detected,
                                                          tmp_path, capsys, monkeypatch):
    from fixtures import write_obspack_fixture

    lite = write_lite_fixture(tmp_path / "oco2_LtCO2_160831_B9003r.nc4", n=40)
    obs = write_obspack_fixture(tmp_path / "co2_mlo_surface-insitu.nc")
    code, out, _ = run(capsys, "upload", str(lite), str(obs), "-q")
    soundings, station = out.split()
    store = open_store(store_env)
    field = store.put(gridded_field(), product_type="test-field", inputs=["by-hand"],
                      step="test").id
    peaks = store.put_table(detected, product_type="oco2-peaks", inputs=["simulated"],
                            step="co2.find_peaks").id
    for product, said in ((soundings, "soundings map of xco2"),
                          (station, "time series of value"),
                          (field, "map of total_ozone at time=2016-08-31T00:00:00"),
                          (peaks, "peaks map"),
                          (table_id, "map of emission")):
        png = tmp_path / f"{product}.png"
        code, out, err = run(capsys, "plot", product, "--out", str(png))
        assert code == 0, err
        assert said in err and str(png) in err, err
        assert _drawn(png), product
    # the default file name is the product id, in the current directory
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "plot", field, "--variable", "total_ozone")
    assert code == 0 and (tmp_path / f"{field}.png").is_file()


def test_plot_refuses_what_it_cannot_draw(store_env, tmp_path, capsys):
    store = open_store(store_env, create=True)
    stats = store.put_table(pd.DataFrame({"a": [1, 2], "b": [3.0, 4.0]}),
                            product_type="test-stats", inputs=["x"], step="test").id
    png = tmp_path / "stats.png"
    code, _, err = run(capsys, "plot", stats, "--out", str(png))
    assert code == 2 and "no latitude/longitude" in err and not png.exists()
    field = store.put(gridded_field(), product_type="test-field", inputs=["f"], step="t").id
    code, _, err = run(capsys, "plot", field, "--variable", "no_such", "--out", str(png))
    assert code == 2 and "no_such" in err and "total_ozone" in err and not png.exists()
