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
    assert note == [f"data {values[0]:.4g} to {values[1]:.4g} {units}"]


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
