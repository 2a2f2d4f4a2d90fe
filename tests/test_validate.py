"""Comparison with ground truth (hubkit.validate) against physics and independent references.

- Smoothing: satellite retrievals are made here by explicit linear optimal estimation
  (x̂ = xa + G (K x − K xa), G = Sa Kᵀ (K Sa Kᵀ + Se)⁻¹), not by the formulas under test; the
  smoothing-corrected difference with the true profile is 0 to 1e-10, the uncorrected one is the
  analytic smoothing error hᵀ(A − I)(x − xa), and a prior exchange equals a retrieval redone with
  the other prior.
- Colocation: exactly the pairs a brute-force distance matrix finds, on 10⁶ soundings × 30
  stations, across the date line and near the poles; the real TCCON GGG2020 file of Harwell
  (read here with netCDF4, independently of hubkit's readers) with soundings placed around it.
- Statistics: against NumPy and SciPy (``pearsonr`` and its Fisher interval).
- Sampling a gridded field: against SciPy's ``RegularGridInterpolator`` to 1e-12.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hubkit import ingest, validate
from hubkit.co2.track import haversine
from hubkit.errors import ComparisonInputError
from hubkit.validate import Criteria

# -- smoothing --------------------------------------------------------------------------------

N_LEVELS = 20


def _atmosphere(rng):
    """Pressure edges (surface first) [Pa], weights, a true CO2 profile [ppm] with a boundary-
    layer enhancement and a stratospheric decline."""
    edges = np.linspace(101325.0, 0.0, N_LEVELS + 1)
    mid = 0.5 * (edges[:-1] + edges[1:])
    truth = 410.0 + 8.0 * np.exp(-(101325.0 - mid) / 8000.0) - 6.0 * (mid < 20000.0)
    truth = truth + rng.normal(0.0, 0.5, N_LEVELS)
    return edges, mid, truth


def _oe_retrieval(rng, prior, truth, n_channels=12):
    """A noise-free linear optimal-estimation retrieval of ``truth``: gain and averaging kernel
    from an explicit Jacobian and covariances. Returns (x̂, A, gain, jacobian, sa, se)."""
    z = np.linspace(0.0, 1.0, N_LEVELS)
    centres = rng.uniform(0.0, 1.0, n_channels)
    jacobian = np.exp(-((z[None, :] - centres[:, None]) / 0.25) ** 2) * rng.uniform(
        0.5, 1.5, (n_channels, 1))
    corr = np.exp(-np.abs(z[:, None] - z[None, :]) / 0.3)
    sa = (0.02 * prior[:, None]) * corr * (0.02 * prior[None, :])
    se = np.diag(rng.uniform(2.0, 8.0, n_channels) ** 2)  # noisy: the kernel is well below 1
    gain = sa @ jacobian.T @ np.linalg.inv(jacobian @ sa @ jacobian.T + se)
    A = gain @ jacobian
    return prior + gain @ (jacobian @ truth - jacobian @ prior), A, gain, jacobian, sa, se


def test_pressure_weights_and_columns_are_consistent():
    edges = np.array([100000.0, 80000.0, 50000.0, 0.0])
    h = validate.pressure_weights(edges)
    np.testing.assert_allclose(h, [0.2, 0.3, 0.5], rtol=0, atol=1e-15)
    np.testing.assert_allclose(validate.pressure_weights(edges[::-1]), h[::-1], atol=1e-15)
    assert validate.column(np.full(3, 412.5), h) == pytest.approx(412.5, abs=1e-12)


def test_smoothing_corrected_difference_is_zero_and_the_plain_one_is_the_smoothing_error():
    rng = np.random.default_rng(7)
    edges, _, truth = _atmosphere(rng)
    h = validate.pressure_weights(edges)
    for trial in range(5):
        prior = truth + rng.normal(0.0, 3.0, N_LEVELS) + 2.0 * trial
        x_hat, A, *_ = _oe_retrieval(rng, prior, truth)
        reported = h @ x_hat  # the satellite's column
        kernel = (h @ A) / h  # its column averaging kernel, normalised as products give it
        # the truth as the satellite sees it: the difference vanishes
        seen = validate.smooth_column(truth, prior, kernel, h)
        assert abs(reported - seen) < 1e-10
        # the plain difference is the smoothing error, computed from A itself
        analytic = h @ (A - np.eye(N_LEVELS)) @ (truth - prior)
        assert abs(reported - h @ truth - analytic) < 1e-10
        assert abs(validate.smoothing_error(truth, prior, kernel, h) - analytic) < 1e-10
        assert abs(analytic) > 1e-3  # the test means something: smoothing is not negligible


def test_two_instruments_with_different_priors_and_kernels_agree_after_correction():
    """Rodgers & Connor (2003): move instrument 2 to instrument 1's prior; the adjusted column
    equals instrument 2's retrieval redone with that prior, and both instruments then agree
    with the truth seen through their own kernels."""
    rng = np.random.default_rng(11)
    edges, _, truth = _atmosphere(rng)
    h = validate.pressure_weights(edges)
    prior1 = truth + rng.normal(0.0, 4.0, N_LEVELS)
    prior2 = np.full(N_LEVELS, 405.0)
    x1, A1, *_ = _oe_retrieval(rng, prior1, truth, n_channels=8)
    x2, A2, gain2, jac2, *_ = _oe_retrieval(rng, prior2, truth, n_channels=15)
    a2 = (h @ A2) / h
    adjusted = validate.adjust_column_prior(h @ x2, prior2, prior1, a2, h)
    redone = h @ (prior1 + gain2 @ (jac2 @ truth - jac2 @ prior1))
    assert abs(adjusted - redone) < 1e-10
    # profiles: the same with the matrix kernel
    profile = validate.adjust_profile_prior(x2, prior2, prior1, A2)
    np.testing.assert_allclose(profile, prior1 + gain2 @ (jac2 @ truth - jac2 @ prior1),
                               rtol=0, atol=1e-10)
    np.testing.assert_allclose(validate.smooth_profile(truth, prior1, A1), x1, rtol=0,
                               atol=1e-10)
    # and batched: leading dims broadcast
    batch = validate.smooth_column(np.stack([truth] * 3), prior1, (h @ A1) / h, h)
    np.testing.assert_allclose(batch, h @ x1, rtol=0, atol=1e-10)


def test_interp_profile_matches_numpy_per_row():
    rng = np.random.default_rng(3)
    p_src = np.sort(rng.uniform(1000.0, 101000.0, (50, 51)), axis=1)[:, ::-1]  # surface first
    values = rng.normal(400.0, 5.0, (50, 51))
    p_dst = np.sort(rng.uniform(500.0, 102000.0, (50, 20)), axis=1)
    got = validate.interp_profile(values, p_src, p_dst)
    for r in range(50):
        lp = np.log(p_src[r][::-1])
        want = np.interp(np.log(p_dst[r]), lp, values[r][::-1])
        np.testing.assert_allclose(got[r], want, rtol=0, atol=1e-12)
    with pytest.raises(ComparisonInputError, match="positive"):
        validate.interp_profile(values[0], -p_src[0], p_dst[0])


# -- colocation -------------------------------------------------------------------------------


def _stations(rng, m=30):
    lat = np.concatenate([[89.5, -89.2, 0.0, 51.57], rng.uniform(-80, 80, m - 4)])
    lon = np.concatenate([[10.0, -170.0, 179.8, -1.32], rng.uniform(-180, 180, m - 4)])
    return lat, lon


def _brute_force(lat, lon, slat, slon, *, km=None, box=None):
    pairs = set()
    for j in range(slat.size):
        if km is not None:
            ok = haversine(lat, lon, slat[j], slon[j]) <= km
        else:
            dlon = (lon - slon[j] + 180.0) % 360.0 - 180.0
            ok = (np.abs(lat - slat[j]) <= box[0]) & (np.abs(dlon) <= box[1])
        pairs.update((int(i), j) for i in np.flatnonzero(ok))
    return pairs


@pytest.mark.parametrize("km", [50.0, 300.0, 2500.0])
def test_spatial_pairs_are_exactly_the_brute_force_ones(km):
    rng = np.random.default_rng(int(km))
    n = 1_000_000
    lat = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))  # uniform on the sphere
    lon = rng.uniform(-180.0, 180.0, n)
    slat, slon = _stations(rng)
    i, j, d = validate.spatial_pairs(lat, lon, slat, slon, max_distance_km=km)
    got = set(zip(i.tolist(), j.tolist(), strict=True))
    want = _brute_force(lat, lon, slat, slon, km=km)
    assert got == want and len(want) > 100
    np.testing.assert_allclose(d, haversine(lat[i], lon[i], slat[j], slon[j]), rtol=1e-12)


def test_box_pairs_cross_the_date_line_and_skip_missing_positions():
    rng = np.random.default_rng(5)
    lat = rng.uniform(-90, 90, 200_000)
    lon = rng.uniform(-180, 180, 200_000)
    lat[:10] = np.nan
    slat, slon = _stations(rng)
    i, j, _ = validate.spatial_pairs(lat, lon, slat, slon, max_dlat=10.0, max_dlon=30.0)
    got = set(zip(i.tolist(), j.tolist(), strict=True))
    assert got == _brute_force(lat, lon, slat, slon, box=(10.0, 30.0))
    assert not (set(range(10)) & set(i.tolist()))
    near_dateline = {int(k) for k, s in got if s == 2}
    assert any(lon[k] < -150 for k in near_dateline) and any(lon[k] > 150 for k in near_dateline)


def test_colocate_averages_the_station_measurements_in_the_window():
    t0 = np.datetime64("2023-04-02T12:00")
    soundings = {
        "latitude": np.array([51.6, 51.5, 40.0, 51.57]),
        "longitude": np.array([-1.3, -1.4, -1.3, -1.32]),
        "time": t0 + np.array([0, 30, 0, 600], "timedelta64[m]"),
        "value": np.array([420.0, 421.0, 419.0, 418.0]),
        "uncertainty": np.array([0.6, 0.6, 0.6, 0.6]),
    }
    stations = {"station": ["hw"], "latitude": [51.57], "longitude": [-1.32]}
    obs_t = t0 + np.array([-90, -50, -10, 20, 55, 500], "timedelta64[m]")
    observations = {"station": ["hw"] * 6, "time": obs_t,
                    "value": np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]) + 417.0,
                    "uncertainty": np.array([0.3, 0.4, 0.3, 0.4, 0.3, 0.4])}
    pairs = validate.colocate(soundings, stations, observations,
                              Criteria(max_distance_km=100.0, max_dt=np.timedelta64(60, "m")))
    # sounding 2 is 1,300 km away; sounding 3 has no measurement within 60 min
    assert pairs["sounding"].tolist() == [0, 1]
    # sounding 0 (12:00): measurements at -50, -10, +20, +55 min; sounding 1 (12:30): -10..+55
    np.testing.assert_allclose(pairs["ground"], [417 + 3.5, 417 + 4.0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(pairs["n_station"], [4, 3])
    np.testing.assert_allclose(
        pairs["ground_uncertainty"],
        [np.sqrt(0.4**2 + 0.3**2 + 0.4**2 + 0.3**2) / 4, np.sqrt(0.3**2 + 0.4**2 + 0.3**2) / 3])
    assert pairs["dt_nearest"].tolist() == [pd.Timedelta(minutes=10), pd.Timedelta(minutes=10)]
    np.testing.assert_allclose(pairs["difference"], pairs["satellite"] - pairs["ground"])


def test_dynamic_criterion_keeps_only_matching_air_masses():
    t0 = np.datetime64("2016-01-01T00:00")
    soundings = {"latitude": np.array([5.0, 5.0]), "longitude": np.array([20.0, 20.0]),
                 "time": np.array([t0, t0]), "value": np.array([1.80, 1.81]),
                 "uncertainty": np.array([0.01, 0.01]), "dynamic": np.array([301.0, 306.0])}
    stations = {"station": ["s"], "latitude": [0.0], "longitude": [0.0]}
    observations = {"station": ["s", "s"], "time": np.array([t0, t0 + np.timedelta64(1, "D")]),
                    "value": np.array([1.79, 1.80]), "uncertainty": np.array([0.005, 0.005]),
                    "dynamic": np.array([300.0, 302.0])}
    pairs = validate.colocate(soundings, stations, observations, Criteria.wunch2011())
    assert pairs["sounding"].tolist() == [0]
    assert pairs["dynamic_difference"].tolist() == pytest.approx([0.0])
    with pytest.raises(ComparisonInputError, match="dynamic"):
        validate.colocate({k: v for k, v in soundings.items() if k != "dynamic"}, stations,
                          observations, Criteria.wunch2011())
    with pytest.raises(ComparisonInputError, match="either max_distance_km or the box"):
        Criteria(max_distance_km=100.0, max_dlat=1.0, max_dlon=1.0)


def test_real_tccon_file_colocates_with_soundings_around_harwell(shared_data):
    """The Harwell TCCON GGG2020 file (64 retrievals on 2023-04-02), read with netCDF4 here;
    simulated soundings around the site on its date and elsewhere."""
    import netCDF4

    path = shared_data / "real" / "hw20230402_20230402.public.qc.nc"
    with netCDF4.Dataset(path) as nc:
        t = netCDF4.num2date(nc["time"][:], nc["time"].units,
                             only_use_cftime_datetimes=False).astype("datetime64[ns]")
        xco2 = np.asarray(nc["xco2"][:], float)
        err = np.asarray(nc["xco2_error"][:], float)
        site_lat, site_lon = float(nc["lat"][0]), float(nc["long"][0])
    assert (site_lat, site_lon) == pytest.approx((51.57, -1.32), abs=1e-5)  # float32
    rng = np.random.default_rng(2023)
    n = 5_000
    sounding_time = t.min() + (rng.uniform(-0.5, 1.5, n) * (t.max() - t.min())).astype(
        "timedelta64[ns]")
    soundings = {"latitude": site_lat + rng.uniform(-3, 3, n),
                 "longitude": site_lon + rng.uniform(-5, 5, n),
                 "time": sounding_time, "value": rng.normal(420.0, 1.0, n),
                 "uncertainty": np.full(n, 0.6)}
    stations = {"station": ["hw"], "latitude": [site_lat], "longitude": [site_lon]}
    observations = {"station": ["hw"] * t.size, "time": t, "value": xco2, "uncertainty": err}
    criteria = Criteria(max_distance_km=100.0, max_dt=np.timedelta64(30, "m"))
    pairs = validate.colocate(soundings, stations, observations, criteria)
    # brute force: distance, then a loop over soundings for the window
    near = np.flatnonzero(haversine(soundings["latitude"], soundings["longitude"], site_lat,
                                    site_lon) <= 100.0)
    want = {}
    for k in near:
        inside = np.abs(t - sounding_time[k]) <= np.timedelta64(30, "m")
        if inside.any():
            want[int(k)] = xco2[inside].mean()
    assert len(want) > 20
    assert pairs["sounding"].tolist() == sorted(want)
    np.testing.assert_allclose(pairs["ground"], [want[k] for k in sorted(want)], rtol=1e-12)
    stats = validate.difference_statistics(pairs)
    assert stats.loc["hw", "n"] == len(want) == stats.loc["all", "n"]


# -- statistics -------------------------------------------------------------------------------


def test_difference_statistics_match_numpy_and_scipy():
    from scipy import stats as sps

    rng = np.random.default_rng(0)
    ground = rng.normal(410.0, 3.0, 300)
    satellite = ground + 0.7 + rng.normal(0.0, 1.2, 300)
    station = np.where(np.arange(300) < 120, "a", "b")
    pairs = pd.DataFrame({"station": station, "satellite": satellite, "ground": ground})
    table = validate.difference_statistics(pairs)
    assert list(table.index) == ["a", "b", "all"]
    for name, sel in (("a", station == "a"), ("b", station == "b"), ("all", slice(None))):
        d = satellite[sel] - ground[sel]
        row = table.loc[name]
        assert row["n"] == d.size
        assert row["bias"] == pytest.approx(d.mean(), abs=1e-12)
        assert row["scatter"] == pytest.approx(d.std(ddof=1), abs=1e-12)
        assert row["bias_se"] == pytest.approx(d.std(ddof=1) / np.sqrt(d.size), abs=1e-12)
        assert row["rms"] == pytest.approx(np.sqrt(np.mean(d**2)), abs=1e-12)
        res = sps.pearsonr(satellite[sel], ground[sel])
        ci = res.confidence_interval(0.95)
        assert row["r"] == pytest.approx(res.statistic, abs=1e-12)
        assert (row["r_low"], row["r_high"]) == pytest.approx((ci.low, ci.high), abs=1e-9)
    biases = [table.loc["a", "bias"], table.loc["b", "bias"]]
    assert table.loc["all", "station_to_station"] == pytest.approx(np.std(biases, ddof=1))


# -- a gridded field at stations --------------------------------------------------------------


def test_sampling_a_gridded_field_matches_scipy_to_1e_12():
    import xarray as xr
    from scipy.interpolate import RegularGridInterpolator

    rng = np.random.default_rng(1)
    times = np.datetime64("2016-08-31T00:00") + np.arange(5) * np.timedelta64(6, "h")
    lat = np.linspace(88.5, -88.5, 60)  # decreasing, as many products store it
    lon = np.arange(-180.0, 180.0, 3.0)  # global: periodic
    nz = 7
    values = rng.normal(410.0, 4.0, (5, 60, 120, nz))
    base = rng.uniform(0.0, 1500.0, (5, 60, 120, 1))
    heights = base + np.cumsum(rng.uniform(300.0, 900.0, (5, 60, 120, nz)), axis=-1)
    coords = {"time": times, "latitude": lat, "longitude": lon}
    field = xr.DataArray(values, dims=("time", "latitude", "longitude", "level"), coords=coords)
    height = xr.DataArray(heights, dims=field.dims, coords=coords)
    n = 400
    plat = rng.uniform(-85, 85, n)
    plon = rng.uniform(-180, 180, n)
    plon[:5] = [179.0, -179.5, 178.9, 180.0, -180.0]  # across the date line
    ptime = times[0] + (rng.uniform(0, 1, n) * (times[-1] - times[0])).astype("timedelta64[ns]")

    # the reference: SciPy on a grid extended by one column for periodicity
    lon_ext = np.append(lon, 180.0)

    def reference(cube):
        cube = np.concatenate([cube, cube[:, :, :1]], axis=2)[:, ::-1]  # lat increasing
        rgi = RegularGridInterpolator((times.astype("datetime64[ns]").astype(float),
                                       lat[::-1], lon_ext), cube)
        lon_q = (plon + 180.0) % 360.0 - 180.0
        return rgi(np.stack([ptime.astype("datetime64[ns]").astype(float), plat, lon_q], -1))

    # without a vertical dim
    got = validate.sample_at_points(field.isel(level=0), plat, plon, ptime)
    np.testing.assert_allclose(got, reference(values[..., 0]), rtol=0, atol=1e-12 * 410)
    # with levels: horizontal-time interpolation per level, then linear in height
    at_points = reference(values)
    h_points = reference(heights)
    altitude = rng.uniform(h_points[:, 0], h_points[:, -1])
    want = np.array([np.interp(altitude[k], h_points[k], at_points[k]) for k in range(n)])
    got = validate.sample_at_points(field, plat, plon, ptime, altitude=altitude, height=height)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12 * 410)
    # outside the time range or below the lowest level: NaN, not extrapolated
    out = validate.sample_at_points(field, plat[:2], plon[:2], ptime[:2] + np.timedelta64(2, "D"),
                                    altitude=altitude[:2], height=height)
    assert np.isnan(out).all()
    below = validate.sample_at_points(field, plat[:2], plon[:2], ptime[:2],
                                      altitude=h_points[:2, 0] - 10.0, height=height)
    assert np.isnan(below).all()


# -- satellite columns against the real TCCON file ---------------------------------------------


def _gosat_like_around_harwell(station, seed=4):
    """XCH4 soundings around Harwell on the TCCON file's day, each retrieved by explicit optimal
    estimation from the station's best profile (its prior scaled by its retrieval) at the
    nearest record, interpolated with NumPy in ln p."""
    import xarray as xr

    rng = np.random.default_rng(seed)
    n, nl = 60, N_LEVELS
    t = station["time"].values
    times = t[rng.integers(0, t.size, n)] + rng.integers(-600, 600, n).astype("timedelta64[s]")
    p_sat = np.linspace(98000.0, 500.0, nl)[None, :] * rng.uniform(0.98, 1.02, (n, 1))
    h = np.diff(np.concatenate([p_sat[:, :1] * 1.01, 0.5 * (p_sat[:, 1:] + p_sat[:, :-1]),
                                np.zeros((n, 1))], axis=1), axis=1)
    h = h / h.sum(axis=1, keepdims=True)
    prior = np.full((n, nl), 1850.0) - np.linspace(0, 200, nl)
    xch4, kernel = np.empty(n), np.empty((n, nl))
    for k in range(n):  # the "truth" each sounding sees: TCCON's nearest record, scaled prior
        r = int(np.abs(t - times[k]).argmin())
        xa_t = station["ch4_apriori"].values[r]
        gamma = station["xch4"].values[r] / np.sum(station["integration_operator"].values[r] * xa_t)
        lp = np.log(station["prior_pressure"].values[r][::-1])
        truth = np.interp(np.log(p_sat[k]), lp, (gamma * xa_t)[::-1])
        x_hat, A, *_ = _oe_retrieval(rng, prior[k], truth)
        xch4[k], kernel[k] = h[k] @ x_hat, (h[k] @ A) / h[k]
    lat = 51.57 + rng.uniform(-1, 1, n)
    lon = -1.32 + rng.uniform(-1.5, 1.5, n)
    dims = ("sounding", "level")
    soundings = xr.Dataset({
        "xch4": ("sounding", xch4, {"units": "ppb"}),
        "xch4_uncertainty": ("sounding", np.full(n, 8.0), {"units": "ppb"}),
        "xch4_averaging_kernel": (dims, kernel, {"units": "1"}),
        "ch4_apriori": (dims, prior, {"units": "ppb"}),
        "pressure": (dims, p_sat, {"units": "Pa"}),
        "pressure_weight": (dims, h, {"units": "1"}),
    }, coords={"time": ("sounding", times),
               "latitude": ("sounding", lat, {"units": "degrees_north"}),
               "longitude": ("sounding", lon, {"units": "degrees_east"})},
        attrs={"hubkit_species": "ch4"})
    return soundings


def test_tccon_comparison_removes_the_satellites_smoothing(shared_data):
    """GOSAT-like XCH4 soundings around Harwell, retrieved here by explicit optimal estimation
    from the TCCON file's own best profile (its a priori scaled by its retrieval, interpolated
    with NumPy): the smoothing-corrected difference is 0, the plain one is not."""
    from hubkit import io as hio

    station = hio.read(shared_data / "real" / "hw20230402_20230402.public.qc.nc")
    soundings = _gosat_like_around_harwell(station)
    criteria = Criteria(max_distance_km=150.0, max_dt=np.timedelta64(15, "m"))
    pairs = validate.compare_with_tccon(soundings, station, "ch4", criteria)
    assert len(pairs) >= 40
    np.testing.assert_allclose(pairs["difference_smoothed"], 0.0, atol=1e-9)
    assert np.abs(pairs["satellite"] - pairs["ground"]).max() > 1.0  # smoothing mattered
    with pytest.raises(ComparisonInputError, match="xch4_averaging_kernel"):
        validate.compare_with_tccon(soundings.drop_vars("xch4_averaging_kernel"), station,
                                    "ch4", criteria)
    raw = validate.compare_with_tccon(soundings, station, "ch4", criteria, smoothing=False)
    assert "ground_smoothed" not in raw and len(raw) == len(pairs)


def test_validate_command_writes_pairs_statistics_and_a_figure(shared_data, tmp_path, capsys):
    """`hubkit validate` as a user runs it, on a store holding the real TCCON file (uploaded)
    and GOSAT-like soundings around it."""
    import matplotlib.image as mpimg

    from hubkit import io as hio
    from hubkit.cli import main
    from hubkit.store import Store

    path = shared_data / "real" / "hw20230402_20230402.public.qc.nc"
    store = Store(str(tmp_path / "store"))
    station_id = ingest.upload(store, path).id
    soundings = _gosat_like_around_harwell(hio.read(path))
    soundings.attrs.update(title="GOSAT-like XCH4 around Harwell (simulated)",
                           source="test_validate")
    sat_id = store.put(soundings, product_type="xgas-soundings", step="test",
                       step_version="1").id
    out = tmp_path / "v"
    args = ["validate", sat_id, station_id, "--species", "ch4", "--km", "150", "--hours",
            "0.25", "--out", str(out), "--store", str(tmp_path / "store")]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "smoothing-corrected differences [ppb]" in printed
    pairs = pd.read_csv(out / "pairs.csv")
    stats = pd.read_csv(out / "statistics.csv", index_col=0)
    assert len(pairs) >= 40 and stats.loc["all", "n"] == len(pairs)
    assert abs(stats.loc["all", "bias"]) < 1e-9 and stats.loc["all", "scatter"] < 1e-9
    image = mpimg.imread(out / "validation.png")
    assert image.shape[0] > 300 and image[..., :3].std() > 0.05  # drawn, not blank
    assert main(args + ["--no-smoothing"]) == 0
    assert "plain (no averaging kernels)" in capsys.readouterr().out
    plain = pd.read_csv(out / "statistics.csv", index_col=0)
    assert abs(plain.loc["all", "bias"]) > 0.5  # what the smoothing correction removed
    assert main(args[:5] + ["--store", str(tmp_path / "store")]) == 2
    assert "--km DISTANCE or as --box" in capsys.readouterr().err


def test_chain_step_refreshes_the_validation_when_a_station_product_arrives(shared_data,
                                                                              tmp_path):
    """The default chain's ``validate.tccon`` step on a real LocalCluster: one validation table
    per satellite product, equal to the library's comparison; a second overlapping station
    product makes a new table holding both; soundings no station overlaps make none."""
    from hubkit import chain, compute
    from hubkit import io as hio
    from hubkit.store import Store

    path = shared_data / "real" / "hw20230402_20230402.public.qc.nc"
    store = Store(str(tmp_path / "store"))
    station_item = ingest.upload(store, path)
    station = store.open(station_item)
    soundings = _gosat_like_around_harwell(hio.read(path))
    sat = store.put(soundings, product_type="xgas-soundings", step="test", step_version="1")
    lonely = soundings.assign_coords(time=soundings["time"] + np.timedelta64(30, "D"))
    store.put(lonely, product_type="xgas-soundings", step="test-lonely", step_version="1")
    [step] = [s for s in chain.default_steps() if s.name == "validate.tccon"]

    with compute.client(n_workers=1, threads_per_worker=1) as client:
        report = chain.reconcile(store, [step], client=client)
        assert not report.failed, report
        [first] = store.search("validation-pairs")
        table = store.open(first)
        criteria = Criteria(max_distance_km=500.0, max_dt=np.timedelta64(3600, "s"))
        want = validate.compare_with_tccon(store.open(sat), station, "ch4", criteria)
        assert len(table) == len(want) >= 40
        np.testing.assert_allclose(table["ground_smoothed"], want["ground_smoothed"],
                                   rtol=1e-12)
        np.testing.assert_allclose(table["difference_smoothed"], 0.0, atol=1e-9)
        assert set(table["species"]) == {"ch4"}
        assert set(table["station_product"]) == {station_item.id}

        # a second station product overlapping the soundings (the same record, moved 0.5° N)
        other = station.assign_coords(latitude=station["latitude"] + 0.5)
        other.attrs.update(site_code="hx", short_location="Harwell+0.5N")
        other_item = store.put(other, product_type="tccon-columns", step="test-station",
                               step_version="1")
        again = chain.reconcile(store, [step], client=client)
        assert not again.failed, again
    tables = store.search("validation-pairs")
    assert len(tables) == 2
    newest = store.open([t for t in tables if t.id != first.id][0])
    assert set(newest["station_product"]) == {station_item.id, other_item.id}
    assert len(newest) > len(table)


def test_a_field_against_the_real_bao_tower_per_inlet(shared_data):
    """A CH4 field on levels of known height, sampled at every row of the real BAO tower file
    (three intake heights at the same time stamps): the model value at each row equals the
    field's own formula at that row's position, time and sampling altitude (the field is
    linear in time, latitude, longitude and height, so interpolation is exact)."""
    import xarray as xr

    from hubkit import io as hio

    obs = hio.read(shared_data / "real" / "ch4_bao_tower-insitu_1_ccgg_all.nc")
    t = obs["time"].values
    times = np.arange(t.min() - np.timedelta64(1, "D"), t.max() + np.timedelta64(2, "D"),
                      np.timedelta64(6, "h")).astype("datetime64[ns]")
    lat = np.arange(35.0, 46.0, 1.0)
    lon = np.arange(-110.0, -99.0, 1.0)
    z = np.array([1000.0, 1500.0, 2000.0, 3000.0])

    def formula(tt, la, lo, zz):
        days = (tt - times[0]) / np.timedelta64(1, "D")
        return 1900.0 + 0.5 * days + 2.0 * (la - 40.0) - 1.0 * (lo + 105.0) - 0.01 * (zz - 1500.0)

    T, LA, LO, Z = np.meshgrid(times, lat, lon, z, indexing="ij")
    field = xr.DataArray(formula(T, LA, LO, Z), dims=("time", "latitude", "longitude", "level"),
                         coords={"time": times, "latitude": lat, "longitude": lon},
                         attrs={"units": "ppb"})
    height = xr.DataArray(np.broadcast_to(z, field.shape), dims=field.dims, coords=field.coords)
    table = validate.compare_field_with_series(field, obs, height=height)
    assert len(table) == obs.sizes["time"] == 4190
    want = formula(t, obs["latitude"].values, obs["longitude"].values, obs["altitude"].values)
    np.testing.assert_allclose(table["model"], want, rtol=1e-12)
    np.testing.assert_allclose(table["observed"], obs["value"].values)
    assert sorted(np.unique(table["inlet_height"])) == [22.0, 100.0, 300.0]
    with pytest.raises(ComparisonInputError, match="convert one first"):
        validate.compare_field_with_series(field.assign_attrs(units="ppm"), obs, height=height)
