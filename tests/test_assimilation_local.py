"""Sparse neighbour search on a periodic line equals the dense distance-matrix lists; the LETKF's
three ways to the same analysis (the compiled kernel, the NumPy path with a k x k or an N x N
eigen-problem) agree with each other and with DAPPER's LETKF."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import need

from hubkit.assimilation import AssimilationInputError, compiled
from hubkit.assimilation import filters as F


@pytest.mark.parametrize("G, p, c", [(40, 20, 2.0), (100, 37, 7.3), (10, 8, 4.0), (30, 30, 0.4),
                                     (12, 50, 9.0)])
def test_periodic_search_equals_dense_lists(G, p, c):
    rng = np.random.default_rng(G + p)
    grid, obs = np.arange(G, dtype=float), rng.uniform(0, G, p)
    sparse = F.local_observations_periodic(grid, obs, G, c)
    dense = F.local_observations(F.periodic_distance(grid[:, None], obs[None, :], G), c)
    for r in range(G):
        got = {int(k): w for k, w in zip(sparse.index[r], sparse.weight[r], strict=True) if w > 0}
        want = {int(k): w for k, w in zip(dense.index[r], dense.weight[r], strict=True) if w > 0}
        assert got.keys() == want.keys()
        assert all(abs(got[k] - want[k]) <= 1e-15 for k in got)


def test_periodic_search_analysis_equals_dense():
    rng = np.random.default_rng(1)
    G, N = 60, 10
    X = rng.normal(size=(N, G))
    obs = np.arange(0, G, 3)
    y = rng.normal(size=obs.size)
    dense = F.local_observations(F.periodic_distance(np.arange(G)[:, None], obs[None, :], G), 4.0)
    sparse = F.local_observations_periodic(np.arange(G), obs, G, 4.0)
    a = F.letkf_analysis(X, y, X[:, obs], 0.5, dense, inflation=1.02)
    b = F.letkf_analysis(X, y, X[:, obs], 0.5, sparse, inflation=1.02)
    assert np.max(np.abs(a - b)) < 1e-12


def _rel(a, b) -> float:
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def _case(rng, G, V, N, p, c):
    """An ensemble on a periodic line of G points (V values each), p observations of value 0
    at random positions, local lists of half-width c, a per-point inflation."""
    X = 3.0 + rng.normal(size=(N, G, V)).cumsum(axis=1) * 0.3
    pos = rng.uniform(0, G, p)
    hx = X[:, np.floor(pos).astype(int), 0] + 0.1 * rng.normal(size=(N, p))
    y = hx.mean(axis=0) + rng.normal(size=p)
    local = F.local_observations_periodic(np.arange(G), pos, G, c)
    return X, y, hx, rng.uniform(0.2, 1.0, p), local, rng.uniform(1.0, 1.3, G)


def _n_space(X, y, hx, r, local, rho):
    """The analysis with the N x N problem at every point (Hunt et al. 2007, eqs. 21-24)."""
    Yp, d, rinv = F._obs_space(y, hx, r)
    T = F._transform(Yp[local.index], d[local.index], local.weight * rinv[local.index], rho)
    xm = X.mean(axis=0)
    return xm + np.matmul((X - xm).transpose(1, 2, 0), T).transpose(2, 0, 1)


@pytest.mark.parametrize("G, V, N, p, c", [
    (50, 3, 10, 30, 2.0),  # points with fewer and with more observations than members
    (50, 1, 8, 100, 9.0),  # k >= N everywhere
    (40, 2, 12, 40, 3.0),  # k < N everywhere
    (30, 1, 5, 3, 1.0),  # many points see no observation (their members stay as they were)
])
@pytest.mark.parametrize("seed", range(3))
def test_letkf_engines_and_eigenproblems_give_the_same_analysis(G, V, N, p, c, seed):
    rng = np.random.default_rng(100 * seed + G + p)
    X, y, hx, r, local, rho = _case(rng, G, V, N, p, c)
    want = _n_space(X, y, hx, r, local, rho)
    got = F.letkf_analysis(X, y, hx, r, local, inflation=rho, engine="numpy", chunk=7)
    assert _rel(got, want) < 1e-12
    seen = (local.weight > 0).sum(axis=1)
    if p == 3:  # a point without observations keeps its members, up to the inflation
        alone = seen == 0
        assert alone.any()
        xm = X.mean(axis=0)
        np.testing.assert_allclose(want[:, alone], (xm + np.sqrt(rho)[:, None] * (X - xm))[
            :, alone], rtol=1e-12)
    need(compiled.AVAILABLE, "numba is not installed (pip install numba, or hubkit[fast])")
    got = F.letkf_analysis(X, y, hx, r, local, inflation=rho, engine="compiled")
    assert _rel(got, want) < 1e-12
    dense = np.zeros((G, p))
    np.add.at(dense, (np.arange(G)[:, None], local.index), local.weight)
    got = F.letkf_analysis(X, y, hx, r, dense, inflation=rho, engine="compiled")
    assert _rel(got, want) < 1e-12


def test_obs_space_transform_equals_ensemble_space_transform():
    """The k x k route (k < N) to the weights equals eqs. 21-24 of Hunt et al. (2007)."""
    rng = np.random.default_rng(7)
    for B, k, N in [(200, 8, 20), (50, 1, 4), (50, 19, 20)]:
        Yp = rng.normal(size=(B, k, N))
        Yp -= Yp.mean(axis=2, keepdims=True)
        rinv = rng.uniform(0.0, 2.0, (B, k))
        rinv[:, -1] = 0.0  # a padding slot
        d, rho = rng.normal(size=(B, k)), rng.uniform(1.0, 1.2, B)
        want = F._transform(Yp, d, rinv, rho)
        assert _rel(F._transform_obs_space(Yp, d, rinv, rho), want) < 1e-12


def test_letkf_rejects_negative_weights_and_unknown_engine():
    rng = np.random.default_rng(3)
    X, y, hx, r, local, _ = _case(rng, 20, 1, 6, 10, 2.0)
    bad = F.LocalObservations(local.index, -local.weight)
    with pytest.raises(AssimilationInputError, match="negative weights"):
        F.letkf_analysis(X, y, hx, r, bad)
    with pytest.raises(AssimilationInputError, match="engine"):
        F.letkf_analysis(X, y, hx, r, local, engine="fortran")

