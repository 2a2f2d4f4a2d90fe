"""Kalman assimilation against independent truth.

- Linear-Gaussian analyses are checked against the Bayesian posterior computed here in
  information form with ``numpy.linalg.inv`` (1e-12 relative), and sequential filtering with
  identity dynamics against the batch optimal-estimation solution of all observations at once
  (1e-10; Rodgers 2000, doi:10.1142/3171).
- ETKF/LETKF: with an ensemble built to have exactly the KF mean and covariance, the ensemble
  analysis mean and covariance equal the KF ones (Hunt et al. 2007, doi:10.1016/j.physd.2006.11.008,
  section 2); each LETKF local analysis equals the KF analysis with the ensemble covariance and
  the observation errors divided by their localisation weights (1e-10). Vertical localisation:
  a huge vertical scale gives the column analysis (1e-10); a tiny one gives each level the
  analysis of its own observations and leaves unobserved levels unchanged.
- Lorenz-96 (40 variables, F = 8, all observed every 0.05 with unit error variance, 1000 cycles
  after 200 of burn-in): time-mean analysis RMSE in the published ranges (EnKF with 24-40
  members 0.15-0.25, LETKF with 7-10 members ≤ 0.28; e.g. Hunt et al. 2007, Whitaker & Hamill
  2002, doi:10.1175/1520-0493(2002)130<1913:EDAWPO>2.0.CO;2), for several seeds; the
  climatological spread is ~3.6 (Lorenz & Emanuel 1998,
  doi:10.1175/1520-0469(1998)055<0399:OSFSWO>2.0.CO;2).
- Transport: total tracer mass conserved to 1e-12 relative over 100 steps, a uniform mixing
  ratio stays uniform (1e-12), on a doubly periodic and a global latitude-longitude grid; in a
  2-D twin experiment the LETKF analysis RMSE is < 0.5 x the free run's and <= 1.5 x the
  observation error.
"""

from __future__ import annotations

import numpy as np
import pytest

from hubkit.assimilation import AssimilationInputError
from hubkit.assimilation import filters as F
from hubkit.assimilation import models as M
from hubkit.assimilation import operators as O


def rel(a, b) -> float:
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(b))


def spd(n, rng, scale=1.0):
    """A well-conditioned symmetric positive-definite matrix."""
    a = rng.normal(size=(n, n))
    return scale * (a @ a.T / n + 0.5 * np.eye(n))


def posterior(xb, B, y, H, R):
    """Bayesian posterior of a linear-Gaussian problem in information form (the truth)."""
    Ri = np.linalg.inv(R)
    Pa = np.linalg.inv(np.linalg.inv(B) + H.T @ Ri @ H)
    return Pa @ (np.linalg.solve(B, xb) + H.T @ Ri @ y), Pa


def exact_ensemble(xb, B, rng):
    """N = n + 1 members whose sample mean is xb and sample covariance is exactly B."""
    n = xb.size
    N = n + 1
    # orthonormal columns orthogonal to the ones vector: QR of [1, random]
    q, _ = np.linalg.qr(np.column_stack([np.ones(N), rng.normal(size=(N, n))]))
    U = q[:, 1:]  # (N, n), Uᵀ1 = 0, UᵀU = I
    L = np.linalg.cholesky(B)
    return xb + np.sqrt(N - 1) * U @ L.T  # (N, n)


def ens_cov(E):
    d = E - E.mean(axis=0)
    return d.T @ d / (E.shape[0] - 1)


# -- linear-Gaussian analyses ---------------------------------------------------------------------
def test_scalar_analysis_is_analytic_posterior():
    xb, vb, y, vo = 1.3, 0.7, 2.1, 0.4
    xa, Pa = F.kalman_analysis([xb], [[vb]], [y], [[1.0]], [vo])
    want_var = 1.0 / (1.0 / vb + 1.0 / vo)
    want_x = want_var * (xb / vb + y / vo)
    assert abs(xa[0] - want_x) <= 1e-12 * abs(want_x)
    assert abs(Pa[0, 0] - want_var) <= 1e-12 * want_var


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_small_linear_gaussian_analysis_is_posterior(seed):
    rng = np.random.default_rng(seed)
    n, p = 6, 4
    xb, B = rng.normal(size=n), spd(n, rng)
    H, R = rng.normal(size=(p, n)), spd(p, rng, 0.3)
    y = rng.normal(size=p)
    xa, Pa = F.kalman_analysis(xb, B, y, H, R)
    want_x, want_P = posterior(xb, B, y, H, R)
    assert rel(xa, want_x) < 1e-12
    assert rel(Pa, want_P) < 1e-12


def test_sequential_kf_equals_batch_optimal_estimation():
    """Identity dynamics, no model error: T sequential analyses = one analysis of all data."""
    rng = np.random.default_rng(7)
    n, T = 5, 8
    x, P = rng.normal(size=n), spd(n, rng)
    Hs, Rs, ys = [], [], []
    xs, Ps = x, P
    for t in range(T):
        p = 1 + t % 3
        H, R, y = rng.normal(size=(p, n)), spd(p, rng, 0.2), rng.normal(size=p)
        Hs.append(H), Rs.append(R), ys.append(y)
        xs, Ps = F.kalman_forecast(xs, Ps, np.eye(n))
        xs, Ps = F.kalman_analysis(xs, Ps, y, H, R)
    Hb = np.vstack(Hs)
    Rb = np.zeros((Hb.shape[0],) * 2)
    i = 0
    for R in Rs:
        Rb[i:i + R.shape[0], i:i + R.shape[0]] = R
        i += R.shape[0]
    want_x, want_P = posterior(x, P, np.concatenate(ys), Hb, Rb)
    assert rel(xs, want_x) < 1e-10
    assert rel(Ps, want_P) < 1e-10


def test_kalman_forecast_adds_model_error():
    rng = np.random.default_rng(3)
    M_, P, Q = rng.normal(size=(3, 3)), spd(3, rng), spd(3, rng, 0.1)
    xf, Pf = F.kalman_forecast(np.ones(3), P, M_, Q)
    assert rel(xf, M_ @ np.ones(3)) < 1e-14
    assert rel(Pf, M_ @ P @ M_.T + Q) < 1e-12


@pytest.mark.parametrize("correlated", [False, True])
def test_etkf_with_exact_ensemble_reproduces_kf(correlated):
    rng = np.random.default_rng(11)
    n, p = 6, 4
    xb, B = rng.normal(size=n), spd(n, rng)
    H = rng.normal(size=(p, n))
    R = spd(p, rng, 0.3) if correlated else np.diag(rng.uniform(0.1, 0.5, p))
    y = rng.normal(size=p)
    E = exact_ensemble(xb, B, rng)
    assert rel(E.mean(axis=0), xb) < 1e-13 and rel(ens_cov(E), B) < 1e-13
    Ea = F.etkf_analysis(E, y, E @ H.T, R)
    want_x, want_P = posterior(xb, B, y, H, R)
    assert rel(Ea.mean(axis=0), want_x) < 1e-10
    assert rel(ens_cov(Ea), want_P) < 1e-10


def test_letkf_without_localisation_reproduces_kf():
    """All weights one: every grid point's local analysis is the global one."""
    rng = np.random.default_rng(12)
    n, p = 6, 5
    xb, B = rng.normal(size=n), spd(n, rng)
    H, r = rng.normal(size=(p, n)), rng.uniform(0.1, 0.5, p)
    y = rng.normal(size=p)
    E = exact_ensemble(xb, B, rng)
    Ea = F.letkf_analysis(E, y, E @ H.T, r, np.ones((n, p)), chunk=4)
    want_x, want_P = posterior(xb, B, y, H, np.diag(r))
    assert rel(Ea.mean(axis=0), want_x) < 1e-10
    assert rel(ens_cov(Ea), want_P) < 1e-10


@pytest.mark.parametrize("inflation", [1.0, 1.3])
def test_letkf_local_analysis_is_kf_with_tapered_errors(inflation):
    """Each local LETKF mean and variance = KF with the (inflated) ensemble covariance and
    observation error variances r/w of the observations with weight w > 0 (Hunt et al. 2007,
    section 2.3 and eq. 37)."""
    rng = np.random.default_rng(5)
    n, N = 30, 8
    grid = np.arange(n, dtype=float)
    obs_x = rng.uniform(0, n, 25)
    H = np.zeros((obs_x.size, n))
    H[np.arange(obs_x.size), np.floor(obs_x).astype(int)] = 1.0
    r = rng.uniform(0.2, 1.0, obs_x.size)
    E = rng.normal(size=(N, n)).cumsum(axis=1) * 0.3
    y = E.mean(axis=0) @ H.T + rng.normal(size=obs_x.size)
    local = F.local_observations(F.periodic_distance(grid[:, None], obs_x[None, :], n), 3.0)
    Ea = F.letkf_analysis(E, y, E @ H.T, r, local, inflation=inflation, chunk=7)
    Pb = inflation * ens_cov(E)
    w = F.gaspari_cohn(F.periodic_distance(grid[:, None], obs_x[None, :], n), 3.0)
    for g in range(n):
        k = w[g] > 0
        xa, Pa = posterior_rank_deficient(E.mean(axis=0), Pb, y[k], H[k], r[k] / w[g, k])
        assert abs(Ea[:, g].mean() - xa[g]) < 1e-10 * (1 + abs(xa[g]))
        assert abs(Ea[:, g].var(ddof=1) - Pa[g, g]) < 1e-10 * (1 + Pa[g, g])


def posterior_rank_deficient(xb, B, y, H, r):
    """KF posterior in gain form with explicit inverse (B may be singular)."""
    K = B @ H.T @ np.linalg.inv(H @ B @ H.T + np.diag(r))
    return xb + K @ (y - H @ xb), B - K @ H @ B


def test_gaspari_cohn_published_values():
    c = 2.5
    r = np.array([0.0, c, 2 * c, 3 * c])
    g = F.gaspari_cohn(r, c)
    assert g[0] == 1.0 and g[2] == 0.0 and g[3] == 0.0
    assert abs(g[1] - 5.0 / 24.0) < 1e-14  # -1/4 + 1/2 + 5/8 - 5/3 + 1 at z = 1
    # continuous at z = 1 and z = 2, monotone decreasing
    z = np.linspace(0, 2.2, 2001) * c
    gz = F.gaspari_cohn(z, c)
    assert np.all(np.diff(gz) <= 1e-15)
    assert abs(F.gaspari_cohn(c * (1 - 1e-9), c) - F.gaspari_cohn(c * (1 + 1e-9), c)) < 1e-8


def test_local_observations_sphere_matches_dense_search():
    rng = np.random.default_rng(2)
    glat, glon = rng.uniform(-90, 90, 300), rng.uniform(-180, 180, 300)
    olat = np.degrees(np.arcsin(rng.uniform(-1, 1, 2000)))
    olon = rng.uniform(-180, 180, 2000)
    hw = 500e3
    loc = F.local_observations_sphere(glat, glon, olat, olon, hw)
    dense = F.gaspari_cohn(F.great_circle_distance(glat[:, None], glon[:, None], olat, olon), hw)
    got = np.zeros_like(dense)
    np.add.at(got, (np.arange(300)[:, None], loc.index), loc.weight)
    assert np.max(np.abs(got - dense)) < 1e-9


def test_letkf_sphere_equals_letkf_with_dense_weights():
    rng = np.random.default_rng(4)
    lat, lon = np.meshgrid(np.arange(-87.5, 90, 5.0), np.arange(-177.5, 180, 5.0), indexing="ij")
    glat, glon = lat.ravel(), lon.ravel()
    G, N, p = glat.size, 6, 400
    E = rng.normal(size=(N, G, 3))
    pick = rng.integers(0, G, p)
    hx = E[:, pick, 0] + 0.01 * rng.normal(size=(N, p))
    y = rng.normal(size=p)
    hw = 800e3
    got = F.letkf_sphere(E, y, hx, 0.5, glat, glon, glat[pick], glon[pick], hw, chunk=97)
    w = F.gaspari_cohn(F.great_circle_distance(glat[:, None], glon[:, None], glat[pick],
                                               glon[pick]), hw)
    want = F.letkf_analysis(E, y, hx, 0.5, w)
    assert rel(got, want) < 1e-10
    threaded = F.letkf_sphere(E, y, hx, 0.5, glat, glon, glat[pick], glon[pick], hw, chunk=97,
                              workers=2)
    assert rel(threaded, want) < 1e-10


def test_letkf_vertical_localisation_limits():
    """Huge vertical scale: the (column, level) analyses equal the column analysis (1e-10).
    Tiny scale: a level sees only its own observations (= the analysis of that level alone
    with them) and levels without observations are unchanged (no inflation)."""
    rng = np.random.default_rng(5)
    N, G, V, p = 8, 30, 5, 24
    E = 1.0 + rng.normal(size=(N, G, V))
    col, lev = rng.integers(0, G, p), rng.integers(0, 2, p)  # observations on levels 0 and 1
    hx = E[:, col, lev]
    y = hx.mean(axis=0) + 0.5 * rng.normal(size=p)
    dist = F.periodic_distance(np.arange(G)[:, None], col[None], G)
    local = F.local_observations(dist, 4.0)
    column = F.letkf_analysis(E, y, hx, 0.3, local)
    wide = F.vertical_localisation(local, np.arange(V), lev, 1e6)
    got = F.letkf_analysis(E.reshape(N, G * V), y, hx, 0.3, wide).reshape(N, G, V)
    assert rel(got, column) < 1e-10
    narrow = F.vertical_localisation(local, np.arange(V), lev, 0.2)
    got = F.letkf_analysis(E.reshape(N, G * V), y, hx, 0.3, narrow).reshape(N, G, V)
    np.testing.assert_allclose(got[:, :, 2:], E[:, :, 2:], rtol=1e-13, atol=1e-14)
    for level in (0, 1):
        own = lev == level
        alone = F.letkf_analysis(E[:, :, level], y[own], hx[:, own], 0.3,
                                 F.local_observations(dist[:, own], 4.0))
        assert rel(got[:, :, level], alone) < 1e-10
    with pytest.raises(AssimilationInputError, match="level_coord"):
        F.vertical_localisation(local, np.zeros((3, V)), lev, 1.0)


# -- observation operators ------------------------------------------------------------------------
def test_retrieval_operator_identity_kernel_returns_phi_x():
    rng = np.random.default_rng(1)
    src = np.linspace(1000e2, 10e2, 31)
    dst = np.linspace(1000e2, 10e2, 11)
    phi = O.layer_mapping(src, dst)
    x = rng.uniform(1, 2, size=(4, 30))  # 4 members
    hx = O.retrieval_operator(x, np.eye(10), rng.normal(size=10), phi)
    assert rel(hx, x @ phi.T) < 1e-14


def test_retrieval_operator_matches_formula():
    rng = np.random.default_rng(8)
    A, xa, x = rng.normal(size=(5, 5)), rng.normal(size=5), rng.normal(size=5)
    assert rel(O.retrieval_operator(x, A, xa), xa + A @ (x - xa)) < 1e-14


def test_column_kernel_of_ones_is_total_column():
    rng = np.random.default_rng(9)
    x = rng.uniform(0, 30, size=(3, 40))  # layer amounts [DU]
    assert rel(O.column_operator(x, np.ones(40)), x.sum(axis=1)) < 1e-14
    xa = rng.uniform(0, 30, 40)
    assert rel(O.column_operator(x, np.ones(40), xa), x.sum(axis=1)) < 1e-13


def test_layer_mapping_conserves_column():
    src = np.array([0.0, 1.0, 2.5, 4.0, 7.0, 10.0])
    dst = np.array([0.0, 2.0, 5.0, 10.0])
    phi = O.layer_mapping(src, dst)
    x = np.array([1.0, 3.0, 2.0, 5.0, 4.0])
    assert np.allclose(phi.sum(axis=1), 1.0, atol=1e-15)
    assert abs(np.diff(dst) @ (phi @ x) - np.diff(src) @ x) < 1e-12


def test_superob_is_inverse_variance_mean():
    v = np.array([1.0, 3.0, 10.0, 4.0])
    cell = np.array([2, 2, 0, 2])
    var = np.array([1.0, 0.5, 2.0, 0.25])
    mean, ev, count = O.superob(v, cell, var, 4)
    w = 1 / var[[0, 1, 3]]
    assert abs(mean[2] - (w @ v[[0, 1, 3]]) / w.sum()) < 1e-14
    assert abs(ev[2] - 1 / w.sum()) < 1e-14
    assert mean[0] == 10.0 and ev[0] == 2.0
    assert np.isnan(mean[1]) and np.isnan(mean[3])
    assert count.tolist() == [1, 0, 3, 0]


# -- Lorenz-96 skill ------------------------------------------------------------------------------
N_VAR, BURN, CYCLES = 40, 200, 1000


def l96_experiment(method, members, seed, inflation, half_width):
    """Twin experiment: truth + observations of all 40 variables every 0.05, unit variance."""
    rng = np.random.default_rng(seed)
    truth = M.lorenz96_integrate(8.0 + rng.normal(size=N_VAR), 1000)
    ens = truth + rng.normal(size=(members, N_VAR))
    grid = np.arange(N_VAR)
    dist = F.periodic_distance(grid[:, None], grid[None, :], N_VAR)
    taper = F.gaspari_cohn(dist, half_width)
    local = F.local_observations(dist, half_width)
    r = np.ones(N_VAR)
    err = []
    for k in range(BURN + CYCLES):
        truth = M.lorenz96_step(truth)
        ens = M.lorenz96_step(ens)
        y = truth + rng.normal(size=N_VAR)
        if method == "enkf":
            ens = F.enkf_analysis(ens, y, ens, r, rng, inflation=inflation,
                                  localisation=(taper, taper))
        else:
            ens = F.letkf_analysis(ens, y, ens, r, local, inflation=inflation)
        if k >= BURN:
            err.append(np.sqrt(np.mean((ens.mean(axis=0) - truth) ** 2)))
    return float(np.mean(err))


@pytest.mark.parametrize("members", [24, 40])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lorenz96_enkf_skill(members, seed):
    rmse = l96_experiment("enkf", members, seed, inflation=1.02 if members == 40 else 1.04,
                          half_width=8.0 if members == 40 else 6.0)
    assert 0.15 <= rmse <= 0.25, rmse


@pytest.mark.parametrize("members", [7, 10])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lorenz96_letkf_skill(members, seed):
    rmse = l96_experiment("letkf", members, seed, inflation=1.05, half_width=4.0)
    assert rmse <= 0.28, rmse


def test_lorenz96_climatological_spread():
    rng = np.random.default_rng(0)
    x = M.lorenz96_integrate(8.0 + rng.normal(size=N_VAR), 500)
    traj = []
    for _ in range(4000):
        x = M.lorenz96_step(x)
        traj.append(x)
    traj = np.array(traj)
    rmse_clim = np.sqrt(np.mean((traj - traj.mean()) ** 2))
    assert 3.3 <= rmse_clim <= 3.9, rmse_clim


# -- transport ------------------------------------------------------------------------------------
def periodic_case(rng):
    """Air mass and divergent Courant-number fields on a doubly periodic 24 x 36 grid."""
    ny, nx = 24, 36
    yy, xx = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    m = 1.0 + 0.3 * rng.random((ny, nx))
    cx = 0.35 * np.sin(2 * np.pi * yy / ny) + 0.1 * np.cos(2 * np.pi * xx / nx)
    cy = 0.3 * np.cos(2 * np.pi * xx / nx) + 0.05 * np.sin(2 * np.pi * yy / ny)
    return m, cx, cy


def periodic_fluxes(m, cx, cy):
    """Face mass fluxes = Courant number x upwind air mass (winds fixed, air mass evolving)."""
    fx = np.where(cx >= 0, np.roll(m, 1, axis=1), m) * cx
    fy = np.where(cy >= 0, np.roll(m, 1, axis=0), m) * cy
    return fx, fy


@pytest.mark.parametrize("slopes", [False, True])
def test_transport_periodic_conserves_mass_and_uniformity(slopes):
    rng = np.random.default_rng(0)
    m, cx, cy = periodic_case(rng)
    q0 = rng.random(m.shape)
    q, mm = q0, m
    u = np.full(m.shape, 0.7)
    for _ in range(100):
        fx, fy = periodic_fluxes(mm, cx, cy)
        u, _ = M.transport_step(u, mm, fx, fy, periodic_y=True, slopes=slopes)
        q, mm = M.transport_step(q, mm, fx, fy, periodic_y=True, slopes=slopes)
    assert abs((q * mm).sum() - (q0 * m).sum()) <= 1e-12 * (q0 * m).sum()
    assert abs(mm.sum() - m.sum()) <= 1e-12 * m.sum()
    assert np.max(np.abs(u - 0.7)) <= 1e-12 * 0.7
    assert q.min() >= q0.min() - 1e-12 and q.max() <= q0.max() + 1e-12  # monotone
    assert np.std(q) < np.std(q0)  # it did move things


def test_transport_latlon_conserves_mass_across_the_pole():
    rng = np.random.default_rng(1)
    lat_edges = np.linspace(-90, 90, 37)
    n_lon = 72
    lat_c = 0.5 * (lat_edges[1:] + lat_edges[:-1])
    lon = np.arange(n_lon) * 5.0
    area = M.cell_area_latlon(lat_edges, n_lon)
    assert abs(area.sum() - 4 * np.pi * M.EARTH_RADIUS**2) < 1e-9 * area.sum()
    m = 1e4 * area * (1 + 0.1 * rng.random(area.shape))  # ~1e4 kg m-2 column mass
    u = 40.0 * np.cos(np.radians(lat_c))[:, None] + 5.0 * np.sin(np.radians(lon))[None, :]
    v = 10.0 * np.cos(np.radians(lat_edges))[:, None] * np.cos(np.radians(2 * lon))[None, :]
    q0 = 1.0 + rng.random(area.shape)
    q, mm = q0, m
    uni = np.full(m.shape, 3.0)
    for _ in range(100):
        fx, fy = M.mass_fluxes_latlon(u, v, mm, lat_edges, dt=1800.0)
        uni, _ = M.transport_step(uni, mm, fx, fy, periodic_y=False)
        q, mm = M.transport_step(q, mm, fx, fy, periodic_y=False)
    assert abs((q * mm).sum() - (q0 * m).sum()) <= 1e-12 * (q0 * m).sum()
    assert np.max(np.abs(uni - 3.0)) <= 1e-12 * 3.0
    assert np.all(np.isfinite(q)) and q.min() >= q0.min() - 1e-12


def smooth_fields(rng, n, ny, nx, kmax=3):
    """n random smooth periodic fields: Fourier modes |k| <= kmax with amplitudes 1/(1+|k|²)."""
    yy, xx = np.meshgrid(np.arange(ny) / ny, np.arange(nx) / nx, indexing="ij")
    out = np.zeros((n, ny, nx))
    for kx in range(-kmax, kmax + 1):
        for ky in range(0, kmax + 1):
            if kx == 0 and ky == 0:
                continue
            a = rng.normal(size=(n, 1, 1)) / (1.0 + kx * kx + ky * ky)
            ph = rng.uniform(0, 2 * np.pi, size=(n, 1, 1))
            out += a * np.cos(2 * np.pi * (kx * xx + ky * yy) + ph)
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_transport_twin_experiment_letkf(seed):
    """2-D twin: truth, free run and a 16-member LETKF advected by a non-divergent vortex on a
    32 x 32 periodic grid; 64 cells observed every step with error 0.1. Over the second half of
    40 cycles the analysis RMSE is < 0.5 x the free run's and <= 1.5 x the observation error."""
    rng = np.random.default_rng(seed)
    ny = nx = 32
    N, sig, cycles = 16, 0.1, 40
    m = np.ones((ny, nx))
    yc, xc = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    # stream function on the south-west corner of each cell: discretely non-divergent fluxes
    psi = 0.4 * ny / (2 * np.pi) * np.sin(2 * np.pi * xc / nx) * np.sin(2 * np.pi * yc / ny)
    fx = np.roll(psi, -1, axis=0) - psi
    fy = psi - np.roll(psi, -1, axis=1)
    fields = smooth_fields(rng, N + 1, ny, nx)
    prior = 1.0 + smooth_fields(rng, 1, ny, nx)[0]
    truth, free, ens = prior + fields[0], prior.copy(), prior + fields[1:]
    oy, ox = (a[::4, ::4].ravel() for a in (yc, xc))
    dist = np.hypot(F.periodic_distance(yc.ravel()[:, None], oy, ny),
                    F.periodic_distance(xc.ravel()[:, None], ox, nx))
    local = F.local_observations(dist, 4.0)
    err_a, err_f = [], []
    for _ in range(cycles):
        truth = M.transport_step(truth, m, fx, fy)[0]
        free = M.transport_step(free, m, fx, fy)[0]
        ens = M.transport_step(ens, m, fx, fy)[0]
        y = truth[oy, ox] + sig * rng.normal(size=oy.size)
        ens = F.letkf_analysis(ens.reshape(N, -1), y, ens[:, oy, ox], sig**2, local,
                               inflation=1.05).reshape(N, ny, nx)
        err_a.append(np.sqrt(np.mean((ens.mean(axis=0) - truth) ** 2)))
        err_f.append(np.sqrt(np.mean((free - truth) ** 2)))
    rmse_a, rmse_f = np.mean(err_a[cycles // 2:]), np.mean(err_f[cycles // 2:])
    assert rmse_a < 0.5 * rmse_f, (rmse_a, rmse_f)
    assert rmse_a <= 1.5 * sig, rmse_a


# -- errors ---------------------------------------------------------------------------------------
def test_errors_name_the_argument():
    with pytest.raises(AssimilationInputError, match="H has shape"):
        F.kalman_analysis(np.zeros(3), np.eye(3), np.zeros(2), np.zeros((3, 3)), np.ones(2))
    with pytest.raises(AssimilationInputError, match="obs_ensemble"):
        F.etkf_analysis(np.zeros((4, 3)), np.zeros(2), np.zeros((4, 3)), np.ones(2))
    with pytest.raises(AssimilationInputError, match="inflation"):
        F.etkf_analysis(np.zeros((4, 3)), np.zeros(2), np.zeros((4, 2)), np.ones(2),
                        inflation=0.0)
    with pytest.raises(ValueError, match="contains NaN"):
        F.kalman_analysis(np.array([np.nan]), [[1.0]], [0.0], [[1.0]], [1.0])
    with pytest.raises(AssimilationInputError, match="flux_y"):
        M.transport_step(np.ones((4, 4)), np.ones((4, 4)), np.zeros((4, 4)), np.zeros((4, 4)),
                         periodic_y=False)
