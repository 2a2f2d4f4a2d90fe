"""Parameterised-covariance Kalman filter, first-order chemistry and time-varying winds.

- PKF analysis (hubkit.assimilation.pkf, Eskes et al. 2003 doi:10.1256/qj.02.14; Segers et al.
  2005 doi:10.1256/qj.04.92): one observation gives the textbook OI increment
  ``σ_g σ_o ρ d / (σ_o² + r)`` and variance ``σ²(1 − σ_o² ρ² / (σ_o² + r))`` (1e-10); many
  observations give the Kalman analysis with the explicit matrix ``P = D (C_v ⊗ C_h) D``
  (1e-10). The forecast advects the variance exactly like the tracer and adds the stated
  model-error variance; a twin experiment beats the free run.
- Chemistry ``dx/dt = −(x − x_c)/τ``: an anomaly decays as ``e^{−t/τ}`` (1e-12) whatever the
  step, its mass too under winds, a uniform climatology stays uniform.
- Time-varying winds: a zonal wave under solid-body rotation with a time-dependent speed moves by
  the time integral of the angular velocity.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from hubkit.assimilation import cycling as C
from hubkit.assimilation import filters as F
from hubkit.assimilation import models as M
from hubkit.assimilation import pkf as PK
from hubkit.assimilation import transport as T
from hubkit.errors import AssimilationInputError

R_E = PK.EARTH_RADIUS


def grid(nx=24, ny=12):
    lat = -90 + 180 / ny * (np.arange(ny) + 0.5)
    lon = 360 / nx * np.arange(nx)
    glat, glon = (a.ravel() for a in np.meshgrid(lat, lon, indexing="ij"))
    return lat, lon, glat, glon


def vertical(n, scale=2.0):
    i = np.arange(n)
    return np.exp(-np.abs(i[:, None] - i[None]) / scale)  # AR(1): positive definite


# -- correlation model --------------------------------------------------------------------------
def test_correlation_functions_and_chordal_distance():
    L = 1000e3
    assert PK.correlation_function(0.0, L) == 1.0
    assert abs(PK.correlation_function(L, L) - np.exp(-0.5)) < 1e-15
    assert abs(PK.correlation_function(L, L, "soar") - 2 / np.e) < 1e-15
    assert abs(PK.chordal_distance(0, 0, 0, 180) - 2 * R_E) < 1e-6
    assert abs(PK.chordal_distance(0, 0, 90, 0) - np.sqrt(2) * R_E) < 1e-6
    # a 3-D positive-definite function of the chord is positive definite on the sphere
    _, _, glat, glon = grid(24, 12)
    d = PK.chordal_distance(glat[:, None], glon[:, None], glat[None], glon[None])
    for kind in ("gaussian", "soar"):
        assert np.linalg.eigvalsh(PK.correlation_function(d, 2000e3, kind)).min() > -1e-10
    with pytest.raises(AssimilationInputError, match="kind"):
        PK.correlation_function(d, L, "exponential")


# -- analysis -----------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["gaussian", "soar"])
def test_pkf_single_observation_is_the_analytic_oi_formula(kind):
    rng = np.random.default_rng(0)
    lat, lon, glat, glon = grid()
    n_lev, G = 4, glat.size
    x = 1.0 + rng.random((n_lev, G))
    var = 0.1 + 0.2 * rng.random((n_lev, G))
    Cv = vertical(n_lev)
    l0, c0, r, y, L = 2, 100, 0.05, 2.3, 1500e3
    K = np.zeros((1, 1, n_lev))
    K[0, 0, l0] = 1.0
    res = PK.pkf_analysis(x, var, [[y]], r, [c0], K, glat, glon, L, Cv, kind=kind)
    rho = Cv[:, l0][:, None] * PK.correlation_function(
        PK.chordal_distance(glat, glon, glat[c0], glon[c0]), L, kind)[None]
    s0 = var[l0, c0]
    d = y - x[l0, c0]
    want_x = x + np.sqrt(var) * np.sqrt(s0) * rho * d / (s0 + r)
    want_v = var - var * s0 * rho**2 / (s0 + r)
    np.testing.assert_allclose(res.mean, want_x, rtol=1e-10, atol=0)
    np.testing.assert_allclose(res.variance, want_v, rtol=1e-10, atol=0)
    # at the observed point: σ²(1 − σ²/(σ² + r)) = σ² r / (σ² + r)
    assert abs(res.variance[l0, c0] - s0 * r / (s0 + r)) <= 1e-10 * s0
    assert abs(res.omf_chi2 - d**2 / (s0 + r)) <= 1e-10 * d**2 / (s0 + r)
    # equal variances everywhere: σ²(1 − σ²ρ²/(σ² + r)) (the formula of issue 6)
    res = PK.pkf_analysis(x, np.full_like(var, 0.3), [[y]], r, [c0], K, glat, glon, L, Cv,
                          kind=kind)
    np.testing.assert_allclose(res.variance, 0.3 * (1 - 0.3 * rho**2 / (0.3 + r)), rtol=1e-10)


def test_pkf_many_observations_equal_the_kalman_filter_with_the_explicit_matrix():
    rng = np.random.default_rng(1)
    lat, lon, glat, glon = grid(12, 6)
    n_lev, G, P, m = 3, glat.size, 7, 2
    x = rng.normal(size=(n_lev, G))
    var = 0.5 + rng.random((n_lev, G))
    Cv = vertical(n_lev, 1.5)
    cell = rng.choice(G, size=P)  # some cells twice, that is allowed
    cell[1] = cell[0]
    K = rng.normal(size=(P, m, n_lev))
    off = rng.normal(size=(P, m))
    r = 0.2 + rng.random((P, m))
    y = rng.normal(size=(P, m))
    L = 2500e3
    res = PK.pkf_analysis(x, var, y, r, cell, K, glat, glon, L, Cv, obs_offset=off, chunk=17)
    # the same problem with the covariance written out, state ordered (level, column)
    Ch = PK.correlation_function(PK.chordal_distance(glat[:, None], glon[:, None], glat[None],
                                                     glon[None]), L)
    s = np.sqrt(var).ravel()
    Pb = np.kron(Cv, Ch) * s[:, None] * s[None]
    H = np.zeros((P, m, n_lev, G))
    H[np.arange(P), :, :, cell] = K
    H = H.reshape(P * m, n_lev * G)
    xa, Pa = F.kalman_analysis(x.ravel(), Pb, (y - off).ravel(), H, r.ravel())
    np.testing.assert_allclose(res.mean.ravel(), xa, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(res.variance.ravel(), np.diag(Pa), rtol=1e-10, atol=1e-12)
    d = (y - off).ravel() - H @ x.ravel()
    chi2 = d @ np.linalg.solve(H @ Pb @ H.T + np.diag(r.ravel()), d) / d.size
    assert abs(res.omf_chi2 - chi2) <= 1e-10 * chi2


def test_pkf_analysis_rejects_bad_input():
    _, _, glat, glon = grid(12, 6)
    x = np.ones((2, glat.size))
    K = np.ones((1, 1, 2))
    with pytest.raises(AssimilationInputError, match="obs_cell"):
        PK.pkf_analysis(x, x, [[1.0]], 1.0, [glat.size], K, glat, glon, 1e6)
    with pytest.raises(AssimilationInputError, match="obs_operator"):
        PK.pkf_analysis(x, x, [[1.0]], 1.0, [0], np.ones((1, 1, 3)), glat, glon, 1e6)
    with pytest.raises(AssimilationInputError, match="variance"):
        PK.pkf_analysis(x, -x, [[1.0]], 1.0, [0], K, glat, glon, 1e6)


# -- forecast: transport, model error, chemistry ------------------------------------------------
def das_grid(nx=36, ny=18, n_levels=2):
    lat = -90 + 180 / ny * (np.arange(ny) + 0.5)
    lon = 360 / nx * np.arange(nx)
    return lat, lon, np.linspace(-90, 90, ny + 1)


def test_pkf_forecast_advects_variance_like_the_tracer_and_adds_model_error():
    lat, lon, edges = das_grid()
    winds = C.solid_body_winds(lat, lon, speed=30.0, tilt=0.3)
    model = T.make_model(winds, lat, lon, edges, 2, 1800.0, True)
    rng = np.random.default_rng(2)
    x = 1.0 + 0.1 * rng.random((2, lat.size, lon.size))
    blob = np.exp(-((lat[:, None] - 20) ** 2 + (lon[None] - 90) ** 2) / 200.0)
    var = np.stack([blob, 2 * blob]) + 1e-3
    m0 = model.air_mass()
    secs = 12 * 3600.0
    q = np.array([3e-4, 1e-3])[:, None, None]  # model-error variance per second, per level
    mean_f, var_f = PK.pkf_forecast(model, x, var, m0, secs, 0.0, q)
    tracer, m1 = model.run(var, m0, secs)
    np.testing.assert_array_equal(mean_f, model.run(x, m0, secs)[0])
    np.testing.assert_allclose(var_f - q * secs, tracer, rtol=0, atol=1e-12)
    # the variance "mass" Σσ²m is conserved by the advection, the blob moved
    np.testing.assert_allclose((tracer * m1).sum(axis=(1, 2)), (var * m0).sum(axis=(1, 2)),
                               rtol=1e-12)
    assert np.argmax(tracer[0]) != np.argmax(var[0])
    # zero winds: exactly the stated growth
    still = T.make_model(C.solid_body_winds(lat, lon, speed=0.0), lat, lon, edges, 2, 1800.0,
                          True)
    _, v = PK.pkf_forecast(still, x, var, still.air_mass(), secs, 0.0, q)
    np.testing.assert_allclose(v, var + q * secs, rtol=1e-13)


@pytest.mark.parametrize("dt", [900.0, 3600.0, 5 * 3600.0])
def test_relaxation_decays_an_anomaly_exactly(dt):
    lat, lon, edges = das_grid(12, 6, 3)
    rng = np.random.default_rng(3)
    clim = 1.0 + rng.random((3, 6, 12))
    x0 = clim + rng.normal(size=clim.shape)
    tau, t = 2 * 86400.0, 86400.0 * 3
    still = T.make_model(C.solid_body_winds(lat, lon, speed=0.0), lat, lon, edges, 3, dt,
                          True, relaxation_time=tau, climatology=clim)
    x, _ = still.run(x0, still.air_mass(), t)
    np.testing.assert_allclose(x - clim, (x0 - clim) * np.exp(-t / tau), rtol=1e-12,
                               atol=1e-14)
    np.testing.assert_allclose(M.relax_to_climatology(x0, clim, tau, t) - clim,
                               (x0 - clim) * np.exp(-t / tau), rtol=1e-12, atol=1e-14)
    # a variance (of the anomaly) decays twice as fast; a covariance column like the anomaly
    v, _ = still.run(np.ones_like(x0), still.air_mass(), t, mode="variance")
    np.testing.assert_allclose(v, np.exp(-2 * t / tau), rtol=1e-12)


def test_relaxation_with_winds_decays_anomaly_mass_and_keeps_uniform_uniform():
    lat, lon, edges = das_grid()
    winds = C.solid_body_winds(lat, lon, speed=40.0, tilt=0.5)
    tau, t, c = 86400.0, 2 * 86400.0, 2.0
    model = T.make_model(winds, lat, lon, edges, 1, 1800.0, True, relaxation_time=tau,
                          climatology=c)
    rng = np.random.default_rng(4)
    x0 = c + rng.normal(size=(1, 18, 36))
    m0 = model.air_mass()
    x, m = model.run(np.stack([x0, np.full_like(x0, c)]), m0, t)
    anomaly_mass = ((x[0] - c) * m).sum()
    want = ((x0 - c) * m0).sum() * np.exp(-t / tau)
    assert abs(anomaly_mass - want) <= 1e-10 * np.abs((x0 - c) * m0).sum()
    np.testing.assert_allclose(x[1], c, rtol=1e-12)
    # free_run with fast chemistry stays near its initial field (the climatology): the
    # advective departure is bounded by about τ × the advection tendency
    bg = _das(lat, lon)
    x0 = bg.o3_vmr.isel(time=0).values
    end = [np.datetime64("2024-01-03T00")]
    fast = C.free_run(bg, winds, end, relaxation_time=3600.0).o3_vmr.values[0]
    none = C.free_run(bg, winds, end).o3_vmr.values[0]
    assert np.sqrt(np.mean((fast - x0) ** 2)) < 0.2 * np.sqrt(np.mean((none - x0) ** 2))


def _das(lat, lon, n_levels=2):
    from hubkit import simulate

    return simulate.das_field(nlon=lon.size, nlat=lat.size, ntime=1, n_levels=n_levels,
                              dtype=np.float64, start="2024-01-01T00", seed=0)


# -- time-varying winds -------------------------------------------------------------------------
def _phase(q):
    """Longitude [rad] of the crest of the first zonal harmonic of each row."""
    return -np.angle(np.fft.rfft(q, axis=-1)[..., 1]) + np.pi / 2


def test_time_varying_winds_move_a_wave_by_the_integrated_displacement():
    """Solid-body rotation about the polar axis with speed u₀(t) piecewise linear in time moves
    a zonal wave rigidly by ∫u₀ dt / R (Williamson et al. 1992, test 1 with α = 0)."""
    nx, ny = 144, 72
    lat, lon, edges = das_grid(nx, ny)
    t0 = np.datetime64("2024-01-01T00", "ns")
    speeds = [0.0, 40.0, 10.0]  # at 0, 12, 24 h [m s-1]
    frames = [C.solid_body_winds(lat, lon, speed=s, tilt=0.0) for s in speeds]
    winds = xr.concat(frames, dim="time").assign_coords(
        time=t0 + np.array([0, 12, 24]) * np.timedelta64(1, "h"))
    model = T.make_model(winds, lat, lon, edges, 1, 1800.0, True, t_ref=t0)
    q0 = 2.0 + np.sin(np.radians(lon))[None, None, :] * np.ones((1, ny, 1))
    q, _ = model.run(q0, model.air_mass(), 24 * 3600.0)
    shift = np.degrees(_phase(q[0]) - _phase(q0[0]))
    want = np.degrees(12 * 3600.0 * (0.5 * (0 + 40) + 0.5 * (40 + 10)) / R_E)  # 17.5°
    rows = np.abs(lat) < 80
    np.testing.assert_allclose(shift[rows], want, atol=0.05)
    # steady winds from the first time only would not have moved it
    assert abs(want) > 15
    # the second half alone, started at 12 h: (40 + 10)/2 m/s for 12 h
    q2, _ = model.run(q0, model.air_mass(), 12 * 3600.0, start=12 * 3600.0)
    shift2 = np.degrees(_phase(q2[0]) - _phase(q0[0]))
    np.testing.assert_allclose(shift2[rows], np.degrees(12 * 3600.0 * 25.0 / R_E), atol=0.05)


def test_free_run_with_constant_winds_over_time_equals_steady_winds():
    lat, lon, _ = das_grid()
    bg = _das(lat, lon)
    steady = C.solid_body_winds(lat, lon, speed=30.0)
    times = pd.to_datetime(["2024-01-01T00", "2024-01-03T00"]).values
    timed = xr.concat([steady, steady], dim="time").assign_coords(time=times)
    out = [np.datetime64("2024-01-01T12"), np.datetime64("2024-01-02T12")]
    a = C.free_run(bg, steady, out).o3_vmr.values
    b = C.free_run(bg, timed, out).o3_vmr.values
    np.testing.assert_allclose(b, a, rtol=1e-12)
    with pytest.raises(AssimilationInputError, match="increasing"):
        C.free_run(bg, timed.isel(time=[1, 0]), out)


# -- cycling with the PKF -----------------------------------------------------------------------
def test_pkf_twin_experiment_beats_the_free_run():
    from test_assimilation_cycling import _check_skill, _twin

    bg, winds, truth, fused, obs_err = _twin(36, 18, 8, 4, 60)
    das = C.assimilate(fused, background=bg, winds=winds, truth=truth,
                       options=C.CycleOptions(filter="pkf"))
    _check_skill(das, obs_err)
    late = das.isel(time=slice(4, None))
    assert 0.5 < float(late.omf_chi2.mean()) < 2.0
    assert float(late.rmse_analysis.mean()) < float(late.rmse_forecast.mean())
    # the filter's error estimate shrinks from its initial 20 % as profiles come in
    assert float(das.o3_vmr_spread.isel(time=-1).mean()) < 0.5 * float(
        das.o3_vmr_spread.isel(time=0).mean())
    assert das.attrs["hubkit_filter"] == "pkf"
    with pytest.raises(AssimilationInputError, match="correlation_model"):
        C.assimilate(fused, background=bg, winds=winds,
                     options=C.CycleOptions(filter="pkf", correlation_model="cubic"))


@pytest.mark.parametrize("filt", ["kf", "letkf", "pkf"])
def test_every_filter_cycles_with_chemistry_and_time_varying_winds(filt):
    from test_assimilation_cycling import _twin

    bg, winds, truth, fused, obs_err = _twin(12, 6, 4, 2, 30, seed=2)
    times = pd.to_datetime(["2024-01-15T00", "2024-01-17T00"]).values
    timed = xr.concat([winds, 0.5 * winds], dim="time").assign_coords(time=times)
    das = C.assimilate(fused, background=bg, winds=timed, truth=truth,
                       options=C.CycleOptions(filter=filt, relaxation_time=10 * 86400.0))
    assert np.all(np.isfinite(das.o3_vmr.values))
    assert float(das.rmse_analysis[-1]) < float(das.rmse_free[-1])
    if filt == "kf":  # the KF's model is first-order upwind (linear); free_run has slopes
        return
    # the free run is the model's: transport with the interpolated winds and the chemistry
    free = C.free_run(bg, timed, das.time.values, relaxation_time=10 * 86400.0)
    np.testing.assert_allclose(das.o3_vmr_free.values, free.o3_vmr.values, rtol=1e-12)
