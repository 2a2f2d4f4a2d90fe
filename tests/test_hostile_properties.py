"""Property-based: Lite, ObsPack and CF files with random defects of the classes of issue 23.

For every generated file, ``hubkit.io.read`` either raises a :class:`HubkitError` (any other
exception fails the test), or returns a dataset whose values equal the file's bit for bit (after
the documented conversions only: the reader's unit conversion, longitudes in [180, 360] shifted
by -360, ObsPack rows sorted by time with ``source_row``) and whose ``input_flag`` marks exactly
the rows the schema documents as flagged, with a :class:`FlaggedRowsWarning`. Each example has a
deadline; the whole test has the suite's timeout.
"""

from __future__ import annotations

import tempfile
import warnings
from datetime import timedelta
from pathlib import Path

import netCDF4
import numpy as np
import pytest
from fixtures import write_cf_grid_fixture, write_lite_fixture, write_obspack_fixture

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from hubkit import io as hio  # noqa: E402
from hubkit.errors import FlaggedRowsWarning, HubkitError  # noqa: E402
from hubkit.io.validation import FLAGS  # noqa: E402

SETTINGS = settings(max_examples=60, deadline=timedelta(seconds=20), derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])
#: Values a defect writes into chosen rows: missing, infinite, out of range, overflowing.
BAD_VALUES = [np.nan, np.inf, -np.inf, 200.0, 720.0, -400.0, 1e19, -3.1e10, 0.0]
SCALES = [1e-6, 1e6, 1e-9, -1.0]


@st.composite
def defects(draw, variables, n):
    """A list of ``(variable, kind, argument)``: rows set to a value, a whole-variable scale, a
    reversal of the row order, or a row copied onto another."""
    out = []
    for _ in range(draw(st.integers(1, 3))):
        name = draw(st.sampled_from(variables))
        kind = draw(st.sampled_from(["rows", "rows", "scale", "reverse", "copy"]))
        if kind == "rows":
            rows = draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=n, unique=True))
            out.append((name, kind, (rows, draw(st.sampled_from(BAD_VALUES)))))
        elif kind == "scale":
            out.append((name, kind, draw(st.sampled_from(SCALES))))
        elif kind == "reverse":
            out.append((name, kind, None))
        else:
            out.append((name, kind, (draw(st.integers(0, n - 1)), draw(st.integers(0, n - 1)))))
    return out


def _apply(path: Path, damage) -> None:
    with netCDF4.Dataset(path, "r+") as nc:
        for name, kind, arg in damage:
            var = nc[name]
            var.set_auto_mask(False)
            values = np.array(var[:], dtype=np.float64)
            if kind == "rows":
                values[arg[0]] = arg[1]
            elif kind == "scale":
                values = values * arg
            elif kind == "reverse":
                values = values[::-1].copy()
            else:
                values[arg[1]] = values[arg[0]]
            if var.dtype.kind in "iu":  # integers hold no NaN, inf or 1e19: clip to the type
                top = min(float(np.iinfo(var.dtype).max), 1e18)  # exactly representable
                values = np.clip(np.nan_to_num(values, posinf=top, neginf=-top), -top, top)
            var[:] = values.astype(var.dtype)


def _raw(path: Path, name: str) -> np.ndarray:
    """The file's values as float64, NaN where netCDF says missing (fill or missing_value)."""
    with netCDF4.Dataset(path) as nc:
        return np.ma.filled(np.ma.asarray(nc[name][:]).astype(np.float64), np.nan)


def _read(path: Path):
    """``(dataset or None, warnings)``: a HubkitError is an accepted outcome, nothing else is."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ds = hio.read(path)
        except HubkitError as exc:
            assert path.name in str(exc), exc  # the message names the file
            event(f"refused: {type(exc).__name__}")
            return None, caught
    flagged = [w for w in caught if issubclass(w.category, FlaggedRowsWarning)]
    event("accepted, rows flagged" if flagged else "accepted")
    return ds, flagged


def _damaged(writer, name: str, damage, variables):
    """Write a fixture, damage it, read it: ``(dataset or None, flag warnings, raw values)``."""
    with tempfile.TemporaryDirectory() as folder:
        path = writer(Path(folder) / name, n=24)
        _apply(path, damage)
        ds, flagged = _read(path)
        raw = {v: _raw(path, v) for v in variables} if ds is not None else {}
    return ds, flagged, raw


def _expected_flags(n, bits) -> np.ndarray:
    flags = np.zeros(n, dtype=np.uint8)
    for bit, mask in bits:
        flags[mask] |= FLAGS[bit]
    return flags


def _check_flags(ds, flagged, expected: np.ndarray, dim: str, order=None) -> None:
    if order is not None:
        expected = expected[order]
    if expected.any():
        assert flagged, "rows flagged without a FlaggedRowsWarning"
        assert ds["input_flag"].dims == (dim,)
        np.testing.assert_array_equal(ds["input_flag"].values, expected)
        assert ds["input_flag"].attrs["flag_meanings"] == " ".join(FLAGS)
    else:
        assert "input_flag" not in ds.variables and not flagged


@SETTINGS
@given(damage=defects(["time", "latitude", "longitude", "xco2", "sounding_id"], 24))
def test_lite_files_with_random_defects(damage):
    names = ("latitude", "longitude", "xco2", "time", "sounding_id")
    ds, flagged, raw = _damaged(write_lite_fixture, "oco2_LtCO2_160831_B9003r_prop.nc4", damage,
                                names)
    if ds is None:
        return
    lat, lon, xco2, seconds, ids = (raw[v] for v in names)
    np.testing.assert_array_equal(ds["xco2"].values, xco2)  # ppm in the file: as it is
    np.testing.assert_array_equal(ds["latitude"].values, lat)
    np.testing.assert_array_equal(ds["longitude"].values, np.where(lon >= 180, lon - 360, lon))
    np.testing.assert_array_equal(ds["sounding_id"].values, ids)
    expected = np.datetime64("1970-01-01", "ns") + np.round(
        np.nan_to_num(seconds) * 1e9).astype("timedelta64[ns]")
    error = np.abs((ds["time"].values - expected).astype(np.int64))
    assert (np.isnat(ds["time"].values) == np.isnan(seconds)).all()
    assert (error[~np.isnan(seconds)] < 1000).all()  # float64 seconds: within 1 us
    bad_xco2 = ~np.isnan(xco2) & ~((xco2 >= 100) & (xco2 <= 1000))
    _check_flags(ds, flagged, _expected_flags(24, [
        ("position_missing", np.isnan(lat) | np.isnan(lon)),
        ("time_missing", np.isnan(seconds)), ("value_invalid", bad_xco2)]), "sounding")


@SETTINGS
@given(damage=defects(["time", "latitude", "longitude", "value"], 24))
def test_obspack_files_with_random_defects(damage):
    names = ("latitude", "longitude", "value", "time")
    ds, flagged, raw = _damaged(write_obspack_fixture, "co2_mlo_surface-insitu_prop.nc", damage,
                                names)
    if ds is None:
        return
    lat, lon, value, seconds = (raw[v] for v in names)
    order = ds["source_row"].values if "source_row" in ds.variables else np.arange(24)
    assert sorted(order) == list(range(24))  # sorted, never dropped
    np.testing.assert_array_equal(ds["value"].values, (value * 1e6)[order])  # mol mol-1 -> ppm
    np.testing.assert_array_equal(ds["latitude"].values, lat[order])
    np.testing.assert_array_equal(ds["longitude"].values,
                                  np.where(lon >= 180, lon - 360, lon)[order])
    stamps = np.datetime64("1970-01-01", "ns") + (np.nan_to_num(seconds) * 1e9).astype(
        "timedelta64[ns]")
    stamps[np.isnan(seconds)] = np.datetime64("NaT")
    np.testing.assert_array_equal(ds["time"].values, stamps[order])
    ppm = value * 1e6
    _check_flags(ds, flagged, _expected_flags(24, [
        ("position_missing", np.isnan(lat) | np.isnan(lon)), ("time_missing", np.isnan(seconds)),
        ("value_invalid", ~np.isnan(ppm) & ~((ppm >= 100) & (ppm <= 2000)))]), "time", order)


@SETTINGS
@given(damage=defects(["time", "lat", "lon", "co2"], 2), backslash=st.booleans())
def test_cf_files_with_random_defects(damage, backslash):
    damage = [(n, k, a) for n, k, a in damage if n != "co2" or k != "copy"]
    with tempfile.TemporaryDirectory() as folder:
        path = write_cf_grid_fixture(Path(folder) / "grid_prop.nc")
        with netCDF4.Dataset(path, "r+") as nc:
            if backslash:
                nc.renameVariable("co2", "dir\\co2")
        _apply(path, [(("dir\\co2" if backslash and n == "co2" else n), k, a)
                      for n, k, a in damage])
        ds, flagged = _read(path)
        if ds is None:
            return
        co2 = _raw(path, "dir\\co2" if backslash else "co2")
        lat, lon = _raw(path, "lat"), _raw(path, "lon")
    name = "dir%5Cco2" if backslash else "co2"
    np.testing.assert_array_equal(ds[name].values, co2)  # generic CF: stored as it is
    np.testing.assert_array_equal(ds["lat"].values, lat)
    np.testing.assert_array_equal(ds["lon"].values, lon)  # grids are not shifted
    assert not flagged and "input_flag" not in ds.variables
    assert (np.isnan(lat) | (np.abs(lat) <= 90)).all()
    assert (np.isnan(lon) | ((lon >= -180) & (lon <= 360))).all()
