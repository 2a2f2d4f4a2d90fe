"""Honest figures: fixed physical colour ranges with arrows (no percentile clipping), and the
per-cycle assimilation diagnostics drawn from a table (values read back from the axes)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402
from conftest import assert_colorbars_fit  # noqa: E402

from hubkit import plot  # noqa: E402
from hubkit.errors import PlotInputError  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _field(name, values, units):
    lat, lon = np.linspace(-80, 80, 5), np.linspace(-160, 160, 9)
    data = np.linspace(*values, lat.size * lon.size).reshape(lat.size, lon.size)
    return xr.DataArray(data, dims=("latitude", "longitude"), name=name,
                        coords={"latitude": lat, "longitude": lon}, attrs={"units": units})


def _mesh_and_colorbar(fig):
    ax = fig.axes[0]
    mesh = next(c for c in ax.collections if hasattr(c, "get_clim") and c.get_array() is not None)
    return mesh, mesh.colorbar


@pytest.mark.parametrize("name, values, units, clim, extend", [
    # the clear-sky UV index of 19-26 must show beyond the 0-14 scale, not fill it
    ("uvi", (0.0, 26.0), "1", (0.0, 14.0), "max"),
    ("uvi_noon", (2.0, 9.0), "1", (0.0, 14.0), "max"),
    # 141-168 DU over Europe must show below the 200-500 DU scale
    ("total_ozone", (141.0, 168.0), "DU", (200.0, 500.0), "both"),
    ("o3_column_lrt", (20.0, 45.0), "DU", (10.0, 60.0), "both"),
])
def test_field_map_uses_the_fixed_physical_range(name, values, units, clim, extend):
    fig = plot.field_map(_field(name, values, units))
    mesh, colorbar = _mesh_and_colorbar(fig)
    assert mesh.get_clim() == clim
    assert colorbar.extend == extend
    note = [t.get_text() for t in fig.axes[0].texts if t.get_text().startswith("data ")]
    unit = "" if units == "1" else f" {units}"  # a UV index has no unit to write
    assert note == [f"data {values[0]:.4g} to {values[1]:.4g}{unit}"]


def test_field_map_of_another_quantity_spans_all_its_data():
    """No percentile clipping: a field with one outlier is drawn from its min to its max."""
    da = _field("something_else", (0.0, 1.0), "K")
    da[0, 0] = 50.0
    mesh, colorbar = _mesh_and_colorbar(plot.field_map(da))
    assert mesh.get_clim() == (float(da.min()), 50.0)
    assert colorbar.extend == "neither"
    # explicit limits: the arrows follow the data beyond them
    _, colorbar = _mesh_and_colorbar(plot.field_map(da, vmin=0.2, vmax=10.0))
    assert colorbar.extend == "both"


def test_soundings_map_uses_the_fixed_range_of_its_variable():
    ds = xr.Dataset({"o3_500hpa": ("cell", np.array([20.0, 60.0, 150.0]), {"units": "ppbv"}),
                     "latitude": ("cell", [40.0, 45.0, 50.0]),
                     "longitude": ("cell", [0.0, 5.0, 10.0])})
    fig = plot.soundings_map(ds, variable="o3_500hpa")
    sc = fig.axes[0].collections[-1]
    assert sc.get_clim() == (0.0, 120.0) and sc.colorbar.extend == "max"


def test_every_colour_range_is_documented_and_sane():
    for key, r in plot.COLOUR_RANGES.items():
        assert r.vmin < r.vmax and r.extend in ("min", "max", "both") and len(r.why) > 20, key
    assert plot.colour_range("uvi_forecast") is plot.COLOUR_RANGES["uvi"]
    assert plot.colour_range("xco2") is None
    with pytest.raises(KeyError, match="expected one of"):
        plot.colour_range(None, "ozone")


# -- per-cycle diagnostics ----------------------------------------------------------------------

def _table(n=6, truth=True):
    time = pd.date_range("2024-06-21T00", periods=n, freq="12h")
    k = np.arange(n, dtype=float)
    table = pd.DataFrame({
        "time": time, "n_obs": 100 + 10 * k,
        "omb_mean": 0.3 / (1 + k), "omb_rms": 1.6 - 0.05 * k,
        "oma_mean": 0.1 / (1 + k), "oma_rms": 0.8 + 0.01 * k,
        "chi2": np.linspace(2.4, 1.1, n), "spread_obs": 1.2 - 0.05 * k,
        "start": ["cold"] + ["warm"] * (n - 1),
    })
    if truth:
        for j, kind in enumerate(("analysis", "forecast", "free", "climatology")):
            table[f"rmse_total_{kind}"] = 5.0 + 3.0 * j + 0.1 * k
            table[f"rmse_trop_{kind}"] = 1.0 + 0.8 * j + 0.05 * k
        table["bias_trop_analysis"] = -5.0 + k
    return table


def _lines(fig, gid):
    return [line for ax in fig.axes for line in ax.lines if line.get_gid() == gid]


def test_cycle_diagnostics_draws_every_column_at_its_time():
    table = _table()
    fig = plot.cycle_diagnostics(table)
    assert len(fig.axes) == 4 + 2 + 1  # fit, chi2, spread, obs; RMSE total, trop; bias
    when = mdates.date2num(table["time"].to_numpy())
    for column in ("omb_rms", "oma_rms", "omb_mean", "oma_mean", "chi2", "spread_obs",
                   "rmse_total_analysis", "rmse_trop_climatology", "bias_trop_analysis"):
        (line, *more) = _lines(fig, column)
        np.testing.assert_allclose(mdates.date2num(line.get_xdata()), when)
        np.testing.assert_allclose(line.get_ydata(), table[column])
    # consistency of the spread: the RMS O-B the spread predicts, sqrt(spread^2 + R), R = 1
    (expected,) = _lines(fig, "spread_obs_expected_omb_rms")
    np.testing.assert_allclose(expected.get_ydata(), np.hypot(table["spread_obs"], 1.0))
    # the chi-square band is 0.5-2 (Desroziers et al. 2005), on the chi-square panel
    chi2_ax = _lines(fig, "chi2")[0].axes
    (band,) = [p for p in chi2_ax.patches if p.get_gid() == "chi2_band"]
    assert (band.get_y(), band.get_y() + band.get_height()) == pytest.approx((0.5, 2.0))
    # observations per cycle as bars, and the one cold start marked in every panel
    heights = [p.get_height() for ax in fig.axes for p in ax.patches if p.get_gid() == "n_obs"]
    np.testing.assert_allclose(heights, table["n_obs"])
    cold = _lines(fig, "cold_start")
    assert len(cold) == len(fig.axes)
    assert {mdates.date2num(line.get_xdata()[0]) for line in cold} == {when[0]}


def test_cycle_diagnostics_with_one_row_and_no_optional_columns():
    table = pd.DataFrame({"time": [np.datetime64("2024-06-21T12")], "chi2": [0.9]})
    fig = plot.cycle_diagnostics(table)
    assert len(fig.axes) == 4  # no truth panels
    (line,) = _lines(fig, "chi2")
    np.testing.assert_allclose(line.get_ydata(), [0.9])
    missing = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert "no O−B / O−A in the table" in missing and "no n_obs in the table" in missing
    assert not _lines(fig, "cold_start")
    lo, hi = fig.axes[-1].get_xlim()
    assert lo < mdates.date2num(table["time"][0]) < hi  # the single point is inside the frame


def test_cycle_diagnostics_truth_panels_only_for_the_columns_given():
    table = _table(3, truth=False)
    table["rmse_trop_analysis"] = [3.0, 2.0, 1.5]
    table["rmse_trop_free"] = [3.0, 3.1, 3.2]
    fig = plot.cycle_diagnostics(table.sample(frac=1.0, random_state=0))  # any row order
    assert len(fig.axes) == 5
    (analysis,) = _lines(fig, "rmse_trop_analysis")
    np.testing.assert_allclose(analysis.get_ydata(), [3.0, 2.0, 1.5])  # sorted by time
    assert not _lines(fig, "rmse_total_analysis")


@pytest.mark.parametrize("table, match", [
    (pd.DataFrame({"chi2": [1.0]}), "no column 'time'"),
    (pd.DataFrame({"time": pd.to_datetime([])}), "no rows"),
    (pd.DataFrame({"time": ["not a time"]}), "column 'time' is not datetime-like"),
    ({"time": [1]}, "expected a pandas.DataFrame"),
])
def test_cycle_diagnostics_refuses_tables_it_cannot_draw(table, match):
    with pytest.raises(PlotInputError, match=match):
        plot.cycle_diagnostics(table)


# -- colour bars, labels, extents, gaps ---------------------------------------------------------

def test_colour_bars_are_as_tall_as_their_maps():
    track = xr.Dataset({"xco2": ("s", np.linspace(400, 410, 50),
                                 {"units": "ppm", "long_name": "XCO2 (bias-corrected)"}),
                        "latitude": ("s", np.linspace(-30, 5, 50)),
                        "longitude": ("s", np.linspace(25, 29, 50))})
    for fig in (plot.field_map(_field("uvi", (0.0, 12.0), "1")),
                plot.soundings_map(track),
                plot.peaks_map(xr.Dataset({"delta": ("peak", [1.0, 3.0]),
                                           "latitude": ("peak", [-26.0, -10.0]),
                                           "longitude": ("peak", [28.0, 27.0])}))):
        assert_colorbars_fit(fig)


def test_the_colour_bar_check_sees_a_short_bar():
    """The check is not blind: matplotlib's own shrunk colour bar beside a map fails it."""
    fig, ax = plt.subplots()
    fig.colorbar(ax.pcolormesh(np.eye(3)), ax=ax, shrink=0.8)
    with pytest.raises(AssertionError, match="spans"):
        assert_colorbars_fit(fig)


def test_labels_come_from_cf_attributes():
    from hubkit.plot.scales import cf_label

    da = _field("o3_column_lrt", (20.0, 40.0), "DU")
    da.attrs["long_name"] = "ozone column to the tropopause"
    assert cf_label(da) == "ozone column to the tropopause [DU]"
    assert cf_label(xr.DataArray([1.0], name="uvi", attrs={"units": "1"})) == "uvi"
    assert cf_label(xr.DataArray([1.0], name="x", attrs={
        "standard_name": "ultraviolet_index", "units": "1"})) == "ultraviolet index"
    long = cf_label(xr.DataArray([1.0], attrs={
        "long_name": "column-averaged dry-air mole fraction of CO2 (bias-corrected)",
        "units": "ppm"}))
    assert long.replace("\n", " ").endswith("(bias-corrected) [ppm]") and "\n" in long
    fig = plot.field_map(da)
    _, colorbar = _mesh_and_colorbar(fig)
    assert colorbar.ax.get_ylabel() == "ozone column to the tropopause [DU]"


@pytest.mark.parametrize("lat, lon, text", [
    (-33.94, -148.8, "33.9°S 148.8°W"), (52.1, 211.2, "52.1°N 148.8°W"),
    (0.0, 12.04, "0.0° 12.0°E"), (10.0, 180.0, "10.0°N 180.0°"), (-0.01, -0.04, "0.0° 0.0°"),
])
def test_positions_read_as_geographers_write_them(lat, lon, text):
    from hubkit.plot.scales import lat_lon_label

    assert lat_lon_label(lat, lon) == text


def test_a_north_south_track_is_not_drawn_as_a_sliver():
    """One orbit spans 35° of latitude and 4° of longitude: the map is widened around it."""
    track = xr.Dataset({"xco2": ("s", np.full(50, 400.0), {"units": "ppm"}),
                        "latitude": ("s", np.linspace(-30, 5, 50)),
                        "longitude": ("s", np.linspace(25, 29, 50))})
    ax = plot.soundings_map(track).axes[0]
    west, east, south, north = ax.get_extent()
    assert (east - west) / (north - south) >= 0.6 - 1e-6
    assert west < 25 and east > 29 and south <= -30 and north >= 5


def test_cells_without_a_value_are_hatched_and_explained():
    from hubkit.plot.scales import flag_summary

    da = _field("o3_column_lrt", (20.0, 40.0), "DU")
    da[2, 3:6] = np.nan
    flags = xr.zeros_like(da, dtype=np.int8).assign_attrs(
        flag_masks=[1, 2], flag_meanings="no_lapse_rate_tropopause merged")
    flags[2, 3:6] = 1
    flags[0, 0] = 2
    why = flag_summary(flags, where=da.isnull())
    assert why == "no lapse rate tropopause (3 cells)"
    ax = plot.field_map(da, gaps=why).axes[0]
    (cells,) = [c for c in ax.collections if c.get_gid() == "no_data"]
    assert len(cells.get_paths()) == 3 and cells.get_hatch() == "////"
    (text,) = [t.get_text() for t in ax.get_legend().get_texts()]
    assert text == "hatched: no value (no lapse rate tropopause (3 cells))"
    full = plot.field_map(_field("o3_column_lrt", (20.0, 40.0), "DU")).axes[0]
    assert not [c for c in full.collections if c.get_gid() == "no_data"]


# -- coastlines without a network ---------------------------------------------------------------

@pytest.fixture
def no_coastline_files(monkeypatch, tmp_path):
    """A machine with neither HUBKIT_COASTLINES nor python-cartopy-data (a plain pip install)."""
    import cartopy

    from hubkit.plot import coast

    monkeypatch.delenv("HUBKIT_COASTLINES", raising=False)
    monkeypatch.setattr(coast, "COASTLINE_CANDIDATES", ())
    monkeypatch.setitem(cartopy.config, "data_dir", str(tmp_path / "cartopy"))
    return coast


def _coastline_features(ax):
    from cartopy.mpl.feature_artist import FeatureArtist

    return [a for a in ax.artists + ax.collections if isinstance(a, FeatureArtist)]


def test_a_plain_install_draws_the_shipped_coastline(no_coastline_files, capsys, tmp_path):
    coast = no_coastline_files
    source = coast.coastline_source()
    assert source.kind == "shipped" and source.path == coast.SHIPPED_COASTLINE
    lines = coast.shipped_coastline()
    assert len(lines) == 134 and sum(len(line) for line in lines) == 5128
    points = np.concatenate(lines)
    assert np.all(np.abs(points[:, 0]) <= 180) and np.all(np.abs(points[:, 1]) <= 90)
    # Ireland's outline is there (a vertex of Natural Earth's 110m line, to float32 precision)
    assert np.min(np.hypot(points[:, 0] + 6.197885, points[:, 1] - 53.867565)) < 1e-4
    ax = plot.field_map(_field("uvi", (0.0, 12.0), "1")).axes[0]
    (feature,) = _coastline_features(ax)
    assert len(list(feature._feature.geometries())) == 134
    assert not [t for t in ax.texts if "coastlines omitted" in t.get_text()]
    from hubkit.cli import main

    main(["doctor", "--store", str(tmp_path / "nowhere")])
    (line,) = [x for x in capsys.readouterr().out.splitlines() if x.startswith("coastlines")]
    assert "Natural Earth 1:110m shipped with hubkit" in line
    assert "apt-get install python-cartopy-data" in line and "HUBKIT_COASTLINES" in line


def test_a_coastline_file_on_disk_comes_first(no_coastline_files, monkeypatch, tmp_path):
    coast = no_coastline_files
    shp = tmp_path / "coast.shp"
    shp.write_bytes(b"")
    monkeypatch.setenv("HUBKIT_COASTLINES", str(shp))
    assert coast.coastline_source().kind == "shapefile" and coast.coastline_file() == shp
    assert coast.coastline_summary() == f"shapefile {shp}"


def test_without_any_coastline_the_map_says_so(no_coastline_files, monkeypatch, tmp_path):
    coast = no_coastline_files
    monkeypatch.setattr(coast, "SHIPPED_COASTLINE", tmp_path / "absent.npz")
    assert coast.coastline_source().kind == "none"
    assert coast.coastline_summary().startswith("none found (maps are drawn without coastlines)")
    ax = plot.field_map(_field("uvi", (0.0, 12.0), "1")).axes[0]
    assert not _coastline_features(ax)
    assert [t for t in ax.texts if "coastlines omitted" in t.get_text()]


def test_the_shipped_coastline_round_trips_from_geojson(tmp_path):
    import json

    from hubkit.plot.coast import shipped_coastline, write_shipped_coastline

    src = tmp_path / "c.geojson"
    src.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "LineString",
                                         "coordinates": [[0, 0], [1, 1], [2, 0]]}},
        {"type": "Feature", "geometry": {"type": "MultiLineString",
                                         "coordinates": [[[5, 5], [6, 6]], [[-7, 1], [-8, 2]]]}},
    ]}))
    lines = shipped_coastline(write_shipped_coastline(src, tmp_path / "c.npz"))
    assert [line.tolist() for line in lines] == [
        [[0, 0], [1, 1], [2, 0]], [[5, 5], [6, 6]], [[-7, 1], [-8, 2]]]


def test_a_quick_look_explains_gaps_from_the_products_flags():
    lat, lon = np.arange(-60.0, 61.0, 30.0), np.arange(-120.0, 121.0, 60.0)
    column = np.full((1, lat.size, lon.size), 30.0)
    column[0, 2, 1:3] = np.nan
    flags = np.zeros(column.shape, np.int8)
    flags[0, 2, 1:3] = 1
    product = xr.Dataset(
        {"o3_column_lrt": (("time", "latitude", "longitude"), column, {"units": "DU"}),
         "tropopause_flag": (("time", "latitude", "longitude"), flags,
                             {"flag_masks": [1, 2],
                              "flag_meanings": "no_lapse_rate_tropopause merged"})},
        coords={"time": [np.datetime64("2024-07-01T12")], "latitude": lat, "longitude": lon})
    fig, what = plot.quick_look(product, name="troc-1", variable="o3_column_lrt")
    assert what == "map of o3_column_lrt at time=2024-07-01T12:00:00"
    (text,) = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert text == "hatched: no value (no lapse rate tropopause (2 cells))"
