"""Surface-UV lookup: multilinear interpolation in transformed axes, the uv_index/uva boundary,
solar geometry. Synthetic tables with known answers; the shipped table is tested elsewhere."""

from __future__ import annotations

import itertools

import dask
import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy.interpolate import RegularGridInterpolator

from hubkit.errors import UVInputError
from hubkit.uv import index, interp, solar

RNG_SEED = 20240620

# -- synthetic tables --------------------------------------------------------------------------
NODES = {  # the hubkit.uv dims, in order, with their axis transforms
    "ozone": ([100.0, 200.0, 300.0, 400.0, 600.0], "log", "DU"),
    "elevation": ([0.0, 1000.0, 3000.0, 6000.0], "linear", "m"),
    "albedo": ([0.0, 0.1, 0.5, 1.0], "linear", "1"),
    "aod": ([0.0, 0.2, 1.0, 3.0], "log1p", "1"),
    "ssa": ([0.7, 0.9, 1.0], "linear", "1"),
    "cot": ([0.0, 2.0, 10.0, 50.0], "log1p", "1"),
    "sza": ([0.0, 20.0, 40.0, 60.0, 75.0, 85.0, 89.0], "cos", "degree"),
}
DIMS = tuple(NODES)


def transformed(dim, x):
    return interp.AXIS_TRANSFORMS[NODES[dim][1]](np.asarray(x, dtype=float))


def multilinear_truth(coeffs, ts):
    """sum_c C_c prod_d t_d^c_d, a function linear in each t_d (broadcast over the t's)."""
    ts = [np.asarray(t, dtype=float) for t in ts]
    out = 0.0
    for corner in itertools.product((0, 1), repeat=len(ts)):
        term = coeffs[corner]
        for c, t in zip(corner, ts, strict=True):
            if c:
                term = term * t
        out = out + term
    return out


def synthetic_table(seed=RNG_SEED):
    """A table whose ln(uvi) and uva are multilinear in the transformed axes (known exactly
    anywhere), uvi decreasing with ozone along the table (as in nature)."""
    rng = np.random.default_rng(seed)
    c_uvi = rng.uniform(-0.3, 0.3, (2,) * 7)
    c_uvi[(0,) * 7] = 9.0
    c_uva = rng.uniform(1.0, 5.0, (2,) * 7)
    # scale each term by the axes' spans so that every term is of order one on the table
    spans = [np.abs(transformed(d, NODES[d][0])).max() for d in DIMS]
    for corner in itertools.product((0, 1), repeat=7):
        scale = np.prod([s for c, s in zip(corner, spans, strict=True) if c])
        c_uvi[corner] /= scale
        c_uva[corner] /= scale
    c_uvi[(1, 0, 0, 0, 0, 0, 0)] = -1.2  # ln UVI ~ -1.2 ln(ozone), whatever the spans
    grids = np.meshgrid(*(transformed(d, NODES[d][0]) for d in DIMS), indexing="ij")
    uvi = np.exp(multilinear_truth(c_uvi, grids))
    uva = multilinear_truth(c_uva, grids)
    coords = {d: (d, np.asarray(NODES[d][0]), {"units": NODES[d][2],
                                               "interpolation_axis": NODES[d][1]})
              for d in DIMS}
    table = xr.Dataset(
        {"uvi": (DIMS, uvi, {"units": "1", "interpolation_value": "log"}),
         "uva": (DIMS, uva, {"units": "W m-2", "interpolation_value": "linear"})},
        coords=coords,
    )
    return table, c_uvi, c_uva


@pytest.fixture(scope="module")
def table():
    return synthetic_table()


def random_inside(rng, n):
    """Untransformed coordinates uniformly inside the synthetic table (sza below 89)."""
    return {d: rng.uniform(min(NODES[d][0]), max(NODES[d][0]), n) for d in DIMS}


# -- multilinear -------------------------------------------------------------------------------
def random_grid(rng, shape, descending=()):
    axes = []
    for d, n in enumerate(shape):
        a = np.cumsum(rng.uniform(0.1, 1.0, n)) - 2.0
        axes.append(a[::-1].copy() if d in descending else a)
    return axes, rng.normal(size=shape)


@pytest.mark.parametrize("n", [500, 70_000])  # below and above the side-by-side-corner path
def test_exact_at_nodes(n):
    rng = np.random.default_rng(1)
    axes, values = random_grid(rng, (4, 3, 5, 2, 3, 4, 6), descending=(1, 6))
    idx = [rng.integers(0, a.size, n) for a in axes]
    pts = [a[i] for a, i in zip(axes, idx, strict=True)]
    got, outside = interp.multilinear(axes, values, pts)
    np.testing.assert_allclose(got, values[tuple(idx)], rtol=1e-12, atol=0)
    assert not outside.any()


@pytest.mark.parametrize("n", [1000, 80_000])
def test_table_reproduces_a_multilinear_function_in_transformed_axes(table, n):
    tab, c_uvi, c_uva = table
    pts = random_inside(np.random.default_rng(2), n)
    (uvi, uva), outside = interp.TableInterpolator(tab, ["uvi", "uva"])(**pts)
    ts = [transformed(d, pts[d]) for d in DIMS]
    np.testing.assert_allclose(uvi, np.exp(multilinear_truth(c_uvi, ts)), rtol=1e-10)
    np.testing.assert_allclose(uva, multilinear_truth(c_uva, ts), rtol=1e-10)
    assert not outside.any()
    single, _ = interp.table_interpolate(tab, "uvi", **{d: p[:50] for d, p in pts.items()})
    np.testing.assert_allclose(single, uvi[:50], rtol=1e-14)


@pytest.mark.parametrize("n, workers", [(3000, 1), (100_000, 2)])
def test_agrees_with_scipy_regular_grid_interpolator(n, workers):
    rng = np.random.default_rng(3)
    axes, values = random_grid(rng, (5, 3, 4, 3, 2, 4, 7), descending=(0, 6))
    values = np.exp(values)  # positive, for a relative tolerance
    pts = [rng.uniform(a.min(), a.max(), n) for a in axes]
    ref = RegularGridInterpolator(axes, values, method="linear")(np.stack(pts, axis=-1))
    got, _ = interp.multilinear(axes, values, pts, workers=workers)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=0)


def test_scalar_coordinates_and_broadcasting_match_the_full_arrays():
    rng = np.random.default_rng(4)
    axes, values = random_grid(rng, (4, 5, 3), descending=(2,))
    x = rng.uniform(axes[0].min(), axes[0].max(), (6, 1))
    y = rng.uniform(axes[1].min(), axes[1].max(), (1, 7))
    z = 0.5 * (axes[2][0] + axes[2][1])
    got, outside = interp.multilinear(axes, values, [x, y, z])
    full = [np.broadcast_to(v, (6, 7)).ravel() for v in (x, y, np.full((6, 7), z))]
    ref = RegularGridInterpolator(axes, values)(np.stack(full, axis=-1)).reshape(6, 7)
    assert got.shape == outside.shape == (6, 7)
    np.testing.assert_allclose(got, ref, rtol=1e-12)
    one, _ = interp.multilinear(axes, values, [x[0, 0], y[0, 0], z])
    assert one.shape == () and one == pytest.approx(ref[0, 0], rel=1e-12)


def test_nan_and_flag_outside_each_axis():
    rng = np.random.default_rng(5)
    axes, values = random_grid(rng, (3, 4, 5), descending=(1,))
    mid = [np.full(8, 0.5 * (a[0] + a[1])) for a in axes]
    for d, a in enumerate(axes):
        mid[d][2 * d] = a.min() - 1e-9
        mid[d][2 * d + 1] = a.max() + 1e-9
    mid[0][7] = np.nan
    got, outside = interp.multilinear(axes, values, mid)
    assert outside.tolist() == [True] * 6 + [False, False]
    assert np.isnan(got[:6]).all() and np.isfinite(got[6]) and np.isnan(got[7])
    # the range ends themselves are inside
    ends = [np.array([a.min(), a.max()]) for a in axes]
    got, outside = interp.multilinear(axes, values, ends)
    assert not outside.any() and np.isfinite(got).all()
    # one scalar coordinate outside: everything NaN and flagged
    got, outside = interp.multilinear(axes, values, [mid[0][6], mid[1], axes[2].max() + 1])
    assert outside.all() and np.isnan(got).all()


def test_monotone_table_gives_monotone_interpolation():
    rng = np.random.default_rng(6)
    axes, _ = random_grid(rng, (6, 3, 4), descending=(0,))
    # values increasing along axis 0's coordinate (axis 0 is stored descending)
    values = np.cumsum(rng.uniform(0.0, 1.0, (6, 3, 4))[::-1], axis=0)[::-1]
    line = np.linspace(axes[0].min(), axes[0].max(), 2001)
    for y, z in rng.uniform([axes[1][0], axes[2][0]], [axes[1][-1], axes[2][-1]], (5, 2)):
        got, _ = interp.multilinear(axes, values, [line, y, z])
        assert np.all(np.diff(got) >= 0.0) and got[-1] > got[0]


def test_bad_axes_are_rejected():
    with pytest.raises(UVInputError, match="strictly monotonic"):
        interp.multilinear([[0.0, 1.0, 1.0]], [1.0, 2.0, 3.0], [np.array([0.5])])
    with pytest.raises(UVInputError, match="shape"):
        interp.multilinear([[0.0, 1.0]], [1.0, 2.0, 3.0], [np.array([0.5])])
    tab, _, _ = synthetic_table()
    with pytest.raises(UVInputError, match="missing"):
        interp.table_interpolate(tab, "uvi", ozone=300.0)


# -- uv_index / uva ----------------------------------------------------------------------------
def args_from(pts):
    return tuple(pts[k] for k in index.INPUTS)


def test_uv_index_and_uva_equal_the_table_interpolation(table):
    tab, c_uvi, c_uva = table
    pts = random_inside(np.random.default_rng(7), 2000)
    uvi = index.uv_index(*args_from(pts), table=tab)
    uva = index.uva(*args_from(pts), table=tab)
    ts = [transformed(d, pts[d]) for d in DIMS]
    np.testing.assert_allclose(uvi, np.exp(multilinear_truth(c_uvi, ts)), rtol=1e-10)
    np.testing.assert_allclose(uva, multilinear_truth(c_uva, ts), rtol=1e-10)
    # physics of the synthetic table: UVI falls with ozone
    o3 = np.linspace(100, 600, 101)
    line = index.uv_index(o3, 500.0, 0.05, 0.1, 0.9, 30.0, 0.0, table=tab)
    assert np.all(np.diff(line) < 0)
    assert isinstance(index.uv_index(300.0, 0.0, 0.05, 0.0, 0.9, 0.0, 0.0, table=tab), float)


def test_flags_night_outside_missing(table):
    tab, _, _ = table
    sza = np.array([10.0, 90.0, 120.0, 180.0, 89.5, 10.0, 10.0, np.nan, 95.0])
    ozone = np.array([300.0, 300.0, 300.0, 300.0, 300.0, 50.0, np.nan, 300.0, np.nan])
    uvi, uva, flag = index.surface_uv_arrays(ozone, 0.0, 0.05, 0.1, 0.9, sza, 0.0, table=tab)
    assert flag.tolist() == [0, 1, 1, 1, 2, 2, 3, 3, 1]
    assert np.isfinite(uvi[0]) and uvi[0] > 0 and np.isfinite(uva[0])
    # the Sun below the horizon is exactly 0, not NaN, even with missing inputs
    assert (uvi[[1, 2, 3, 8]] == 0.0).all() and (uva[[1, 2, 3, 8]] == 0.0).all()
    assert np.isnan(uvi[[4, 5, 6, 7]]).all() and np.isnan(uva[[4, 5, 6, 7]]).all()


BAD = [
    ("ozone", -5.0, "ozone"),
    ("albedo", 1.2, "albedo"),
    ("albedo", -0.1, "albedo"),
    ("ssa", 0.0, "ssa"),
    ("ssa", 1.1, "ssa"),
    ("aod", -0.5, "aod"),
    ("cot", -1.0, "cot"),
    ("sza", -3.0, "sza"),
    ("sza", 181.0, "sza"),
]
GOOD = {"ozone": 300.0, "elevation": 0.0, "albedo": 0.05, "aod": 0.1, "ssa": 0.9,
        "sza": 30.0, "cot": 0.0}


@pytest.mark.parametrize("name, value, word", BAD)
def test_bad_input_raises_with_the_variable_name(table, name, value, word):
    tab, _, _ = table
    pts = {k: np.full(3, v) for k, v in GOOD.items()}
    pts[name][1] = value
    for fn in (index.uv_index, index.uva, index.surface_uv_arrays):
        with pytest.raises(UVInputError, match=word) as err:
            fn(*args_from(pts), table=tab)
        assert f"{value:g}" in str(err.value) and "expected" in str(err.value)


def field(value, units, dims=("y", "x"), shape=(4, 5), chunks=None, seed=8, spread=0.0):
    rng = np.random.default_rng(seed)
    data = value + spread * rng.uniform(-1, 1, shape)
    arr = xr.DataArray(data, dims=dims, attrs={} if units is None else {"units": units})
    return arr.chunk(chunks) if chunks else arr


def xr_inputs(chunks=None):
    return {
        "ozone": field(320.0, "DU", chunks=chunks, spread=150.0),
        "elevation": field(1500.0, "m", chunks=chunks, spread=1400.0, seed=9),
        "albedo": 0.1,
        "aod": field(0.5, "1", chunks=chunks, spread=0.4, seed=10),
        "ssa": 0.9,
        "sza": field(60.0, "degree", dims=("t", "y", "x"), shape=(3, 4, 5), chunks=chunks,
                     spread=35.0, seed=11),
        "cot": field(5.0, None, chunks=chunks, spread=4.0, seed=12),
    }


def numpy_of(inputs):
    return tuple(np.asarray(v.broadcast_like(inputs["sza"]).transpose("t", "y", "x"))
                 if isinstance(v, xr.DataArray) else v for v in args_from(inputs))


def _no_compute(dsk, keys, **kwargs):
    raise AssertionError("dask computed before .compute()")


def test_xarray_and_dask_paths_equal_numpy_and_stay_lazy(table):
    tab, _, _ = table
    ref_uvi, ref_uva, ref_flag = index.surface_uv_arrays(*numpy_of(xr_inputs()), table=tab)
    assert (ref_flag == 0).any() and (ref_flag == 1).any()
    ds = index.surface_uv_arrays(*args_from(xr_inputs()), table=tab)
    assert set(ds.data_vars) == {"uvi", "uva", "uv_flag"}
    assert ds.uvi.attrs["units"] == "1" and ds.uva.attrs["units"] == "W m-2"
    assert "long_name" in ds.uvi.attrs and "flag_meanings" in ds.uv_flag.attrs
    np.testing.assert_array_equal(ds.uvi.transpose("t", "y", "x").values, ref_uvi)
    inputs = xr_inputs(chunks={"y": 2})
    with dask.config.set(scheduler=_no_compute):
        lazy = index.surface_uv_arrays(*args_from(inputs), table=tab)
        uvi = index.uv_index(*args_from(inputs), table=tab)
        uva = index.uva(*args_from(inputs), table=tab)
    assert isinstance(lazy.uvi.data, da.Array) and isinstance(uvi.data, da.Array)
    assert uvi.name == "uvi" and uva.name == "uva" and uva.attrs["units"] == "W m-2"
    got = lazy.compute(scheduler="threads").transpose("t", "y", "x")
    np.testing.assert_array_equal(got.uvi.values, ref_uvi)
    np.testing.assert_array_equal(got.uva.values, ref_uva)
    np.testing.assert_array_equal(got.uv_flag.values, ref_flag)
    np.testing.assert_array_equal(uva.compute().transpose("t", "y", "x").values, ref_uva)


def test_units_are_converted(table):
    tab, _, _ = table
    base = xr_inputs()
    ref = index.uv_index(*args_from(base), table=tab)
    other = dict(base)
    other["ozone"] = base["ozone"] * index.MOL_M2_PER_DU
    other["ozone"].attrs["units"] = "mol m-2"
    other["elevation"] = base["elevation"] / 1000.0
    other["elevation"].attrs["units"] = "km"
    other["sza"] = np.deg2rad(base["sza"])
    other["sza"].attrs["units"] = "radian"
    other["albedo"] = xr.DataArray(100.0 * base["albedo"], attrs={"units": "%"})
    np.testing.assert_allclose(index.uv_index(*args_from(other), table=tab), ref, rtol=1e-12)


@pytest.mark.parametrize("name", ["ozone", "elevation", "sza"])
def test_dataarray_without_units_is_rejected(table, name):
    tab, _, _ = table
    inputs = xr_inputs()
    inputs[name].attrs.pop("units")
    with pytest.raises(UVInputError, match=f"{name}.*no 'units'"):
        index.uv_index(*args_from(inputs), table=tab)


def test_wrong_units_are_rejected(table):
    tab, _, _ = table
    inputs = xr_inputs()
    inputs["aod"].attrs["units"] = "m"
    with pytest.raises(UVInputError, match="aod.*has units 'm'; expected '1'"):
        index.uv_index(*args_from(inputs), table=tab)
    inputs = xr_inputs()
    inputs["elevation"].attrs["units"] = "hPa"
    with pytest.raises(UVInputError, match="elevation.*different quantities"):
        index.uv_index(*args_from(inputs), table=tab)
    inputs = xr_inputs()
    inputs["ozone"].attrs["units"] = "ppmv"
    with pytest.raises(UVInputError, match="ozone.*DU"):
        index.uv_index(*args_from(inputs), table=tab)


@pytest.mark.parametrize("chunks", [None, {"y": 2}])
def test_sza_in_radians_with_a_degree_attribute_is_rejected(table, chunks):
    tab, _, _ = table
    inputs = xr_inputs(chunks=chunks)
    inputs["sza"] = np.deg2rad(inputs["sza"])
    inputs["sza"].attrs["units"] = "degrees"
    with pytest.raises(UVInputError, match="sza.*radians"):
        out = index.uv_index(*args_from(inputs), table=tab)
        out.compute()


def test_dask_chunk_with_bad_values_raises_at_compute(table):
    tab, _, _ = table
    inputs = xr_inputs(chunks={"y": 2})
    inputs["ozone"] = inputs["ozone"] - 1000.0
    inputs["ozone"].attrs["units"] = "DU"
    lazy = index.uv_index(*args_from(inputs), table=tab)
    with pytest.raises(UVInputError, match="ozone"):
        lazy.compute()


# -- solar geometry ----------------------------------------------------------------------------
def test_earth_sun_distance_at_perihelion_and_aphelion():
    # perihelion 2024-01-03 00:39 UTC at 0.983307 AU; aphelion 2024-07-05 05:06 UTC at
    # 1.016726 AU (US Naval Observatory, Earth's seasons and apsides)
    assert solar.earth_sun_distance(np.datetime64("2024-01-03T00:39")) == pytest.approx(
        0.983307, abs=2e-5)
    assert solar.earth_sun_distance(np.datetime64("2024-07-05T05:06")) == pytest.approx(
        1.016726, abs=2e-5)
    days = np.arange("2024-01-01", "2025-01-01", dtype="datetime64[D]")
    r = solar.earth_sun_distance(days)
    assert str(days[np.argmin(r)]) == "2024-01-03" and str(days[np.argmax(r)]) == "2024-07-05"


def test_zenith_angle_at_solar_noon_published_cases():
    # equinox 2024-03-20 03:06 UTC: at noon on the equator the Sun is overhead to |δ| < 0.1°
    for lon in (-120.0, 0.0, 100.0):
        noon = solar.local_solar_noon(np.datetime64("2024-03-20"), lon)
        assert solar.solar_zenith_angle(noon, 0.0, lon) == pytest.approx(0.0, abs=0.5)
    # June solstice 2024-06-20 20:51 UTC: noon at 60° N, SZA = 60 - 23.44 = 36.56°
    noon = solar.local_solar_noon(np.datetime64("2024-06-20"), -100.0)
    assert solar.solar_zenith_angle(noon, 60.0, -100.0) == pytest.approx(36.56, abs=0.05)
    # local solar noon at Greenwich on 20 March 2024: 12:07:36 UTC (equation of time -7.6 min)
    t = solar.local_solar_noon(np.datetime64("2024-03-20"), 0.0)
    assert abs((t - np.datetime64("2024-03-20T12:07:36")) / np.timedelta64(1, "s")) < 30


def test_zenith_angle_agrees_with_nrel_spa():
    import pvlib

    times = pd.date_range("2023-01-01", "2023-12-31 23:00", freq="13h", tz="UTC")
    lats, lons = np.array([-75.0, -33.0, 0.0, 45.0, 80.0]), np.array([-150.0, 10.0, 170.0])
    utc = times.tz_convert(None).to_numpy()
    grid = solar.solar_zenith_angle(utc[:, None, None], lats[:, None], lons)
    assert grid.shape == (times.size, 5, 3)
    worst = 0.0
    for i, lat in enumerate(lats):
        for j, lon in enumerate(lons):
            ref = pvlib.solarposition.get_solarposition(times, lat, lon, method="nrel_numpy")
            worst = max(worst, np.max(np.abs(grid[:, i, j] - ref["zenith"].to_numpy())))
    assert worst < 0.25  # Spencer (1971) declination and equation of time vs SPA


def test_solar_functions_on_xarray_and_dask():
    time = xr.DataArray(pd.date_range("2024-06-01", periods=4, freq="6h").values, dims="time")
    lat = xr.DataArray(np.linspace(-60, 60, 5), dims="lat").chunk({"lat": 2})
    lon = xr.DataArray(np.linspace(-180, 150, 12), dims="lon")
    with dask.config.set(scheduler=_no_compute):
        sza = solar.solar_zenith_angle(time, lat, lon)
    assert sza.attrs["units"] == "degree" and sza.dims == ("time", "lat", "lon")
    ref = solar.solar_zenith_angle(time.values[:, None, None], lat.values[:, None], lon.values)
    np.testing.assert_allclose(sza.values, ref, rtol=1e-14)
    r = solar.earth_sun_distance(time)
    np.testing.assert_allclose(r.values, solar.earth_sun_distance(time.values))
