"""Cycling of fused ozone into DAS analyses (hubkit.assimilation.cycling).

Twin experiments on a coarse global grid: a truth run of the transport model from a perturbed
initial field, simulated fused profiles of it (averaging kernels, correlated noise), and
:func:`assimilate` started from the unperturbed field. After spin-up the analysis RMSE must be
< 0.5 x the free run's and <= 1.5 x the observation error (issue 6).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hubkit import simulate
from hubkit.assimilation import cycling as C
from hubkit.assimilation import transport as T
from hubkit.assimilation.background import correlated_perturbations
from hubkit.errors import AssimilationInputError
from hubkit.ozone import tropospheric_ozone
from hubkit.schemas import validate


def _twin(nlon, nlat, n_levels, days, cells_per_time, seed=0):
    bg = simulate.das_field(nlon=nlon, nlat=nlat, ntime=1, n_levels=n_levels,
                            dtype=np.float64, start="2024-01-15T00", seed=seed)
    winds = C.solid_body_winds(bg.latitude, bg.longitude, speed=30.0)
    rng = np.random.default_rng(100 + seed)
    f = correlated_perturbations(rng, 1, bg.latitude.values, bg.longitude.values,
                                 np.ones((1, 1)), 1500e3)
    init = bg.copy()
    init["o3_vmr"] = bg.o3_vmr * (1.0 + 0.3 * f.reshape(nlat, nlon))
    times = C.cycle_times("2024-01-15T00", pd.Timestamp("2024-01-15T00") + pd.Timedelta(days, "D"))
    truth = C.free_run(init, winds, times)
    fused = simulate.fused_observations(truth, times, np.geomspace(90000.0, 500.0, n_levels),
                                        cells_per_time=cells_per_time, seed=seed + 1)
    obs_err = float(np.sqrt(np.mean(np.diagonal(fused.noise_covariance.values, axis1=1,
                                                axis2=2))))
    return bg, winds, truth, fused, obs_err


@pytest.fixture(scope="module")
def twin():
    return _twin(36, 18, 8, 4, 60)


@pytest.fixture(scope="module")
def letkf_das(twin):
    bg, winds, truth, fused, _ = twin
    # the twin's truth departs from the background by one relative factor per column, the
    # same at every level: the filter is told so by a long vertical correlation
    return C.assimilate(fused, background=bg, winds=winds, truth=truth,
                        options=C.CycleOptions(vertical_length=5.0))


def _check_skill(das, obs_err):
    late = das.isel(time=slice(das.sizes["time"] // 2, None))
    rmse_a = float(late.rmse_analysis.mean())
    rmse_f = float(late.rmse_free.mean())
    assert rmse_a < 0.5 * rmse_f, (rmse_a, rmse_f)
    assert rmse_a <= 1.5 * obs_err, (rmse_a, obs_err)


def test_letkf_twin_beats_free_run_and_reaches_obs_error(twin, letkf_das):
    _check_skill(letkf_das, twin[4])
    # forecasts are worse than analyses, and the OmF chi-square settles near 1 (consistency)
    late = letkf_das.isel(time=slice(4, None))
    assert np.all(late.rmse_analysis <= late.rmse_forecast)
    assert 0.3 < float(late.omf_chi2.mean()) < 3.0


def test_kf_twin_on_a_tiny_grid():
    bg, winds, truth, fused, obs_err = _twin(12, 6, 4, 3, 30, seed=1)
    das = C.assimilate(fused, background=bg, winds=winds, truth=truth,
                       options=C.CycleOptions(filter="kf", vertical_length=5.0))
    _check_skill(das, obs_err)


def test_cycles_are_at_00_and_12_utc(letkf_das):
    hours = pd.DatetimeIndex(letkf_das.time.values).hour
    assert set(hours) == {0, 12}
    assert np.all(np.diff(letkf_das.time.values) == np.timedelta64(12, "h"))
    assert list(C.cycle_times("2024-01-01T05", "2024-01-02T13")) == list(
        pd.to_datetime(["2024-01-01T12", "2024-01-02T00", "2024-01-02T12"]).values)
    assert C.cycle_times("2024-01-01T01", "2024-01-01T07", "6h").size == 1


def test_output_is_a_das_product_tropospheric_ozone_reads(twin, letkf_das):
    for name in ("o3_vmr", "o3_vmr_forecast", "temperature", "surface_pressure",
                 "surface_altitude", "hybrid_a", "hybrid_b", "omf_chi2", "n_obs"):
        assert name in letkf_das
    assert letkf_das.attrs["hubkit_product_type"] == "das"
    validate(letkf_das, source="assimilate output")
    assert letkf_das.o3_vmr.dims == ("time", "level", "latitude", "longitude")
    troc = tropospheric_ozone(letkf_das.isel(time=[0, -1]))
    col = troc.o3_column_lrt.values
    assert np.all(np.isfinite(col[troc.tropopause_flag.values == 0]))
    assert 5.0 < float(np.nanmedian(col)) < 80.0  # tropospheric column [DU]


def test_transport_on_the_das_grid_conserves_tracer_mass(twin):
    """The cycling model carries the air mass with the tracer: Σ q·m is conserved to 1e-12
    over 100 steps, a uniform field stays uniform; the free run matches the model."""
    bg, winds, *_ = twin
    lat, lon, edges = T.check_grid(bg, "bg")
    model = T.make_model(winds, lat, lon, edges, 8, 1800.0, True)
    q0 = bg.o3_vmr.isel(time=0).values.astype(float)
    m0 = model.air_mass()
    q, m = model.run(np.stack([q0, np.ones_like(q0)]), m0, 100 * 1800.0)
    np.testing.assert_allclose((q[0] * m).sum(axis=(-1, -2)), (q0 * m0).sum(axis=(-1, -2)),
                               rtol=1e-12)
    np.testing.assert_allclose(q[1], 1.0, rtol=1e-12)
    run = C.free_run(bg, winds, [np.datetime64("2024-01-15T12")], dt=1800.0)
    q12, _ = model.run(q0, m0, 12 * 3600.0)
    np.testing.assert_allclose(run.o3_vmr.isel(time=0).values, q12, rtol=1e-12)


def test_bad_inputs_raise_assimilation_input_error(twin):
    bg, winds, truth, fused, _ = twin
    with pytest.raises(AssimilationInputError, match="window"):
        C.assimilate(fused, background=bg, winds=winds, window="7h")
    with pytest.raises(AssimilationInputError, match="averaging_kernel"):
        C.assimilate(fused.drop_vars("averaging_kernel"), background=bg, winds=winds)
    with pytest.raises(AssimilationInputError, match="temperature"):
        C.assimilate(fused, background=bg.drop_vars("temperature"), winds=winds)
    with pytest.raises(AssimilationInputError, match="eastward_wind"):
        C.assimilate(fused, background=bg, winds=winds.drop_vars("eastward_wind"))
    with pytest.raises(AssimilationInputError, match="filter"):
        C.assimilate(fused, background=bg, winds=winds, options=C.CycleOptions(filter="3dvar"))
    with pytest.raises(AssimilationInputError, match="kf"):
        C.assimilate(fused, background=bg, winds=winds, options=C.CycleOptions(filter="kf"))
    bad = fused.copy()
    bad["o3_vmr"] = bad.o3_vmr.where(bad.cell != 3)
    with pytest.raises(AssimilationInputError, match="NaN"):
        C.assimilate(bad, background=bg, winds=winds)
    with pytest.raises(AssimilationInputError, match="latitude"):
        C.assimilate(fused, background=bg.isel(latitude=slice(1, None)), winds=winds)


def test_initial_perturbations_in_bounded_memory():
    """The initial ensemble's random-wave fields are summed without an array of every wave at
    every grid point: at 1° x 34 levels x 20 members that array is 17 GB, and the benchmark's
    12-h cycle (``python -m benchmarks.letkf``) was killed by the kernel (22 GB resident). Here
    40 fields on a 4,050-point grid: the old intermediate alone is 62 MB, the result 1.3 MB;
    the values are those of the plain formula."""
    import tracemalloc

    lat, lon = np.linspace(-88.0, 88.0, 45), np.linspace(-178.0, 178.0, 90)
    corr = np.exp(-np.abs(np.subtract.outer(np.arange(10), np.arange(10))) / 3.0)
    tracemalloc.start()
    try:
        f = correlated_perturbations(np.random.default_rng(7), 4, lat, lon, corr, 1500e3)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert f.shape == (4, 10, 45 * 90)
    assert peak < 24e6, f"{peak / 1e6:.0f} MB traced at the peak"

    # the plain formula (Rahimi and Recht 2007), every wave at once
    rng = np.random.default_rng(7)
    from hubkit.constants import EARTH_RADIUS
    from hubkit.geodesy import grid_unit_vectors

    xyz = EARTH_RADIUS * grid_unit_vectors(lat, lon)
    k = rng.normal(size=(40, 48, 3)) / 1500e3
    phase = rng.uniform(0.0, 2.0 * np.pi, size=(40, 48, 1))
    plain = np.sqrt(2.0 / 48) * np.cos(np.einsum("nkc,gc->nkg", k, xyz) + phase).sum(axis=1)
    chol = np.linalg.cholesky(corr + 1e-10 * np.eye(10))
    np.testing.assert_allclose(f, np.einsum("lk,nkg->nlg", chol, plain.reshape(4, 10, -1)),
                               rtol=0, atol=1e-13)
