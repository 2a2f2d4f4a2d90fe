"""Sparse neighbour search on a periodic line equals the dense distance-matrix lists."""

from __future__ import annotations

import numpy as np
import pytest

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
