"""Complete Data Fusion against independent truth: the joint optimal-estimation retrieval.

The reference solutions are computed here with plain ``numpy.linalg.solve``/``inv`` from the
forward models, not from the fusion code. Tolerances: 1e-10 relative (Frobenius norm of the
difference over that of the reference) for the linear-case equivalence, which holds exactly in
theory (Ceccherini et al. 2015, doi:10.1364/OE.23.008476); the Monte Carlo χ² mean within 3
standard errors of Σ rank(S_n,i) (Ceccherini et al. 2019, doi:10.5194/amt-12-2967-2019).
"""

from __future__ import annotations

import dask.array
import numpy as np
import pytest
import xarray as xr

from hubkit import fusion, schemas, simulate
from hubkit.fusion import CdfOptions, FusionInputError, cdf

N_FUSE = 10  # fusion grid levels in the linear tests
RTOL = 1e-10


def rel(a, b) -> float:
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(b))


def smooth_cov(n, sd, length, rng):
    """A positive-definite covariance with exponential correlation and random-ish scales."""
    z = np.arange(n)
    s = sd * (1.0 + 0.3 * rng.random(n))
    return s[:, None] * np.exp(-np.abs(z[:, None] - z[None, :]) / length) * s[None, :]


def interp_operator(n_from, n_to):
    """Linear interpolation from a grid of ``n_from`` points on [0, 1] to ``n_to`` points."""
    src, dst = np.linspace(0, 1, n_from), np.linspace(0, 1, n_to)
    return np.array([np.interp(dst, src, e) for e in np.eye(n_from)]).T


def linear_case(rng, scale=1.0):
    """Four instruments seeing one true state on the fusion grid: forward models K_i, noise
    S_y,i, own priors; the last one on a coarser grid of 7 levels (reached through Φ).

    Two instruments have fewer channels than levels: their retrieval noise covariance
    S_n = G S_y Gᵀ is singular."""
    x_true = scale * (1.0 + 0.5 * np.sin(np.linspace(0, 3, N_FUSE)))
    insts = []
    for p, m in ((4, N_FUSE), (15, N_FUSE), (6, N_FUSE), (5, 7)):
        phi = np.eye(N_FUSE) if m == N_FUSE else interp_operator(N_FUSE, m)
        K = rng.normal(size=(p, m)) * np.exp(-np.linspace(0, 2, m))[None, :]
        Sy = np.diag(rng.uniform(0.02, 0.1, p)) * scale**0
        xa = phi @ x_true * (1.0 + 0.2 * rng.normal(size=m)) + 0.0
        Sa = smooth_cov(m, 0.4 * scale, 2.5, rng)
        y = K @ (phi @ x_true) + rng.multivariate_normal(np.zeros(p), Sy)
        Syi = np.linalg.inv(Sy)
        M = K.T @ Syi @ K + np.linalg.inv(Sa)
        G = np.linalg.solve(M, K.T @ Syi)
        xhat = xa + G @ (y - K @ xa)
        insts.append(dict(K=K, Sy=Sy, y=y, phi=phi, xa=xa, Sa=Sa, xhat=xhat, A=G @ K,
                          Sn=G @ Sy @ G.T, m=m, p=p))
    xa_f = x_true * 0.9
    Sa_f = smooth_cov(N_FUSE, 0.5 * scale, 3.0, rng)
    return insts, xa_f, Sa_f


def joint_retrieval(insts, xa_f, Sa_f):
    """Optimal estimation with all measurements stacked (Rodgers 2000, eq. 4.5 ff.)."""
    H = np.vstack([i["K"] @ i["phi"] for i in insts])
    Sy = np.zeros((H.shape[0], H.shape[0]))
    o = 0
    for i in insts:
        Sy[o:o + i["p"], o:o + i["p"]] = i["Sy"]
        o += i["p"]
    y = np.concatenate([i["y"] for i in insts])
    Syi = np.linalg.inv(Sy)
    S = np.linalg.inv(H.T @ Syi @ H + np.linalg.inv(Sa_f))
    G = S @ H.T @ Syi
    x = xa_f + G @ (y - H @ xa_f)
    return x, G @ H, S, G @ Sy @ G.T


def pad(insts, m_max):
    """Stack the retrievals as one cell, every retrieval padded to ``m_max`` levels."""
    def grow_v(v):
        return np.pad(v, (0, m_max - v.size))

    def grow_m(a, fill):
        out = np.pad(a, ((0, m_max - a.shape[0]), (0, m_max - a.shape[1])))
        for k in range(a.shape[0], m_max):
            out[k, k] = fill
        return out

    return dict(
        x=np.array([grow_v(i["xhat"]) for i in insts]),
        averaging_kernel=np.array([grow_m(i["A"], 0.0) for i in insts]),
        noise_covariance=np.array([grow_m(i["Sn"], 0.0) for i in insts]),
        apriori=np.array([grow_v(i["xa"]) for i in insts]),
        apriori_covariance=np.array([grow_m(i["Sa"], 1.0) for i in insts]),
        grid=np.array([np.pad(i["phi"], ((0, m_max - i["m"]), (0, 0))) for i in insts]),
    )


@pytest.mark.parametrize("method", ["total", "pinv"])
@pytest.mark.parametrize("scale", [1.0, 1e-6])
def test_cdf_equals_joint_retrieval(method, scale):
    rng = np.random.default_rng(3)
    insts, xa_f, Sa_f = linear_case(rng, scale)
    assert np.linalg.matrix_rank(insts[0]["Sn"]) == 4 < N_FUSE  # singular noise covariances
    x_j, A_j, S_j, Sn_j = joint_retrieval(insts, xa_f, Sa_f)
    args = pad(insts, N_FUSE)
    grid = args.pop("grid")
    res = cdf(**{k: v for k, v in args.items() if k != "apriori_covariance"},
              prior_mean=xa_f, prior_covariance=Sa_f, grid=grid,
              apriori_covariance=args["apriori_covariance"],
              options=CdfOptions(method=method))
    assert rel(res.x, x_j) < RTOL
    assert rel(res.averaging_kernel, A_j) < RTOL
    assert rel(res.total_covariance, S_j) < RTOL
    assert rel(res.noise_covariance, Sn_j) < RTOL
    assert rel(res.smoothing_covariance, S_j - Sn_j) < 1e-9
    assert res.dfs == pytest.approx(np.trace(A_j), rel=RTOL)
    assert res.dof == 4 + 10 + 6 + 5


def test_padding_a_cell_adds_no_information():
    rng = np.random.default_rng(4)
    insts, xa_f, Sa_f = linear_case(rng)
    args = pad(insts, N_FUSE)
    full = cdf(**args, prior_mean=xa_f, prior_covariance=Sa_f)
    garbage = {k: np.concatenate([v, rng.normal(size=(2, *v.shape[1:]))]) for k, v in
               args.items()}
    padded = cdf(**garbage, prior_mean=xa_f, prior_covariance=Sa_f,
                 valid=[True] * 4 + [False] * 2)
    assert rel(padded.x, full.x) < 1e-13
    assert rel(padded.total_covariance, full.total_covariance) < 1e-13
    assert padded.dof == full.dof and padded.used.tolist() == [True] * 4 + [False] * 2


@pytest.mark.parametrize("method", ["total", "pinv"])
def test_one_retrieval_with_its_own_prior_is_returned_unchanged(method):
    rng = np.random.default_rng(5)
    inst = linear_case(rng)[0][1]
    res = cdf(inst["xhat"][None], inst["A"][None], inst["Sn"][None], inst["xa"][None],
              inst["xa"], inst["Sa"], apriori_covariance=inst["Sa"][None],
              options=CdfOptions(method=method))
    S_total = inst["Sn"] + (np.eye(N_FUSE) - inst["A"]) @ inst["Sa"] @ (np.eye(N_FUSE)
                                                                       - inst["A"]).T
    assert rel(res.x, inst["xhat"]) < 1e-12
    assert rel(res.averaging_kernel, inst["A"]) < 1e-12
    assert rel(res.noise_covariance, inst["Sn"]) < 1e-12
    assert rel(res.total_covariance, S_total) < 1e-12


def test_cost_follows_chi2_monte_carlo():
    """x_true drawn from the fusion prior, noise from S_n,i: the minimum cost is χ² with
    Σ rank(S_n,i) degrees of freedom. 4000 realisations, one per cell, in one batched call."""
    rng = np.random.default_rng(6)
    insts, xa_f, Sa_f = linear_case(rng)
    args = pad(insts, N_FUSE)
    n_mc = 4000
    x_true = rng.multivariate_normal(xa_f, Sa_f, size=n_mc)  # (mc, n)
    alpha_free = np.einsum("imn,ink,ck->cim", args["averaging_kernel"], args["grid"], x_true)
    noise = np.stack([rng.multivariate_normal(np.zeros(N_FUSE), s, size=n_mc,
                                              method="eigh")
                      for s in args["noise_covariance"]], axis=1)  # (mc, N, m)
    A, xa_i = args["averaging_kernel"], args["apriori"]
    xhat = alpha_free + noise + xa_i - np.einsum("imk,ik->im", A, xa_i)  # x̂ = α + (I - A) x_a
    b = lambda a: np.broadcast_to(a, (n_mc, *a.shape))  # noqa: E731
    for method in ("total", "pinv"):
        res = cdf(xhat, b(A), b(args["noise_covariance"]), b(xa_i), xa_f, Sa_f,
                  apriori_covariance=b(args["apriori_covariance"]), grid=b(args["grid"]),
                  options=CdfOptions(method=method))
        dof = 4 + 10 + 6 + 5
        assert (res.dof == dof).all()
        mean, se = res.cost.mean(), res.cost.std(ddof=1) / np.sqrt(n_mc)
        assert abs(mean - dof) < 3 * se, (method, mean, se)
        assert res.cost.var(ddof=1) == pytest.approx(2 * dof, rel=0.15)


def test_rescaling_the_state_is_equivariant():
    rng = np.random.default_rng(7)
    insts, xa_f, Sa_f = linear_case(rng)
    args = pad(insts, N_FUSE)
    base = cdf(**args, prior_mean=xa_f, prior_covariance=Sa_f)
    d = 1e6 * np.exp(rng.normal(size=N_FUSE))  # e.g. mol mol-1 -> ppm, level by level
    D, Di = np.diag(d), np.diag(1 / d)
    # retrieval grids: insts 0-2 on the fusion grid; the 4th is rescaled on its own 7 levels
    dm = np.array([d if i["m"] == N_FUSE else np.pad(np.linspace(d[0], d[-1], 7), (0, 3),
                                                     constant_values=1.0) for i in insts])
    sc = {
        "x": args["x"] * dm, "apriori": args["apriori"] * dm,
        "averaging_kernel": args["averaging_kernel"] * dm[:, :, None] / dm[:, None, :],
        "noise_covariance": args["noise_covariance"] * dm[:, :, None] * dm[:, None, :],
        "apriori_covariance": args["apriori_covariance"] * dm[:, :, None] * dm[:, None, :],
        "grid": args["grid"] * dm[:, :, None] / d[None, None, :],
    }
    res = cdf(**sc, prior_mean=d * xa_f, prior_covariance=D @ Sa_f @ D)
    assert rel(res.x, d * base.x) < 1e-12
    assert rel(res.averaging_kernel, D @ base.averaging_kernel @ Di) < 1e-12
    assert rel(res.total_covariance, D @ base.total_covariance @ D) < 1e-12
    assert rel(res.noise_covariance, D @ base.noise_covariance @ D) < 1e-12
    assert res.cost == pytest.approx(base.cost, rel=1e-9)
    assert res.dfs == pytest.approx(base.dfs, rel=1e-12)


def batch_of_cells(n_cells=12, seed=8):
    """Cells with 1-4 retrievals each (padded to 4 slots), each cell its own linear case."""
    rng = np.random.default_rng(seed)
    cells, priors, counts = [], [], []
    for _ in range(n_cells):
        insts, xa_f, Sa_f = linear_case(rng)
        k = int(rng.integers(1, 5))
        args = pad(insts[:k] + insts[:1] * (4 - k), N_FUSE)
        cells.append(args)
        priors.append((xa_f, Sa_f))
        counts.append(k)
    stacked = {k: np.stack([c[k] for c in cells]) for k in cells[0]}
    valid = np.arange(4)[None, :] < np.array(counts)[:, None]
    return stacked, priors, valid


def test_batched_equals_cell_by_cell():
    stacked, priors, valid = batch_of_cells()
    xa = np.stack([p[0] for p in priors])
    Sa = np.stack([p[1] for p in priors])
    res = cdf(**stacked, prior_mean=xa, prior_covariance=Sa, valid=valid)
    for c in range(valid.shape[0]):
        k = int(valid[c].sum())
        one = cdf(**{n: v[c, :k] for n, v in stacked.items()}, prior_mean=xa[c],
                  prior_covariance=Sa[c])
        assert rel(res.x[c], one.x) < 1e-13
        assert rel(res.averaging_kernel[c], one.averaging_kernel) < 1e-13
        assert rel(res.total_covariance[c], one.total_covariance) < 1e-13
        assert res.cost[c] == pytest.approx(one.cost, rel=1e-10)


def test_dask_parallel_wrapper_equals_numpy():
    stacked, priors, valid = batch_of_cells(n_cells=10)
    xa, Sa = priors[0]
    res = cdf(**stacked, prior_mean=xa, prior_covariance=Sa, valid=valid)
    dims = {"x": ("cell", "slot", "level"), "apriori": ("cell", "slot", "level")}
    names = {"x": "o3_vmr", "apriori": "o3_vmr_apriori"}
    ds = xr.Dataset({names.get(k, k): (dims.get(k, ("cell", "slot", "level", "level_in")), v)
                     for k, v in stacked.items() if k != "grid"})
    ds["grid"] = (("cell", "slot", "level", "fusion_level"), stacked["grid"])
    ds["valid"] = (("cell", "slot"), valid)
    lazy = fusion.fuse_cells(ds.chunk({"cell": 3}), xa, Sa)
    assert isinstance(lazy["o3_vmr"].data, dask.array.Array)
    out = lazy.compute()
    assert rel(out["o3_vmr"].values, res.x) < 1e-13
    assert rel(out["total_covariance"].values, res.total_covariance) < 1e-13
    np.testing.assert_array_equal(out["cost_dof"].values, res.dof)


# -- bad input ---------------------------------------------------------------------------------
@pytest.fixture
def cell2():
    """Two cells of the linear case, 4 retrievals each (valid inputs)."""
    rng = np.random.default_rng(9)
    insts, xa_f, Sa_f = linear_case(rng)
    args = {k: np.stack([v, v]) for k, v in pad(insts, N_FUSE).items()}
    return args, xa_f, Sa_f


def test_mismatched_shapes_are_named(cell2):
    args, xa_f, Sa_f = cell2
    args["averaging_kernel"] = args["averaging_kernel"][..., :-1]
    with pytest.raises(FusionInputError, match=r"averaging_kernel has shape .* expected"):
        cdf(**args, prior_mean=xa_f, prior_covariance=Sa_f)
    args["averaging_kernel"] = np.stack([np.eye(N_FUSE)] * 4 * 2).reshape(2, 4, N_FUSE, N_FUSE)
    with pytest.raises(ValueError, match="prior_mean"):
        cdf(**args, prior_mean=xa_f[:-1], prior_covariance=Sa_f)


@pytest.mark.parametrize("problem", ["nan", "asymmetric", "not_psd"])
def test_bad_retrieval_is_named_or_excluded(cell2, problem):
    args, xa_f, Sa_f = cell2
    bad = {k: v.copy() for k, v in args.items()}
    if problem == "nan":
        bad["x"][1, 2, 3] = np.nan
        match = r"cell \(1,\) retrieval 2: x holds NaN"
    elif problem == "asymmetric":
        bad["noise_covariance"][1, 2, 0, 1] += 1e-3
        match = r"cell \(1,\) retrieval 2: noise_covariance is not symmetric"
    else:
        bad["noise_covariance"][1, 2] -= 0.5 * np.eye(N_FUSE)
        match = r"cell \(1,\) retrieval 2: noise_covariance is not positive semi-definite"
    with pytest.raises(FusionInputError, match=match) as info:
        cdf(**bad, prior_mean=xa_f, prior_covariance=Sa_f)
    assert info.value.cell == (1,) and info.value.retrieval == 2
    res = cdf(**bad, prior_mean=xa_f, prior_covariance=Sa_f,
              options=CdfOptions(on_invalid="exclude"))
    assert res.used.tolist() == [[True] * 4, [True, True, False, True]]
    assert res.excluded[0][0] == (1, 2)
    keep = [0, 1, 3]
    ref = cdf(**{k: v[1, keep] for k, v in args.items()}, prior_mean=xa_f,
              prior_covariance=Sa_f)
    assert rel(res.x[1], ref.x) < 1e-12
    assert np.isfinite(res.x).all()


def test_total_method_needs_apriori_covariance(cell2):
    args, xa_f, Sa_f = cell2
    args.pop("apriori_covariance")
    with pytest.raises(FusionInputError, match="apriori_covariance"):
        cdf(**args, prior_mean=xa_f, prior_covariance=Sa_f)
    res = cdf(**args, prior_mean=xa_f, prior_covariance=Sa_f,
              options=CdfOptions(method="pinv"))
    assert np.isfinite(res.x).all()


def test_grid_operator_interpolates_in_log_pressure():
    fp = np.array([100000.0, 10000.0, 1000.0])
    phi = fusion.grid_operator(fp, np.array([[100000.0, np.sqrt(1e9), 500.0, np.nan]]))
    np.testing.assert_allclose(phi[0], [[1, 0, 0], [0.5, 0.5, 0], [0, 0, 1], [0, 0, 0]],
                               atol=1e-12)


# -- the simulator and the product ----------------------------------------------------------
@pytest.fixture(scope="module")
def l2():
    return simulate.l2_ozone(n_levels=16, hours=2, bbox=(4.0, 44.0, 8.0, 48.0), seed=2)


def test_simulated_retrievals_are_plausible(l2):
    schemas.validate(l2, product_type="l2-ozone")
    dfs = np.trace(l2["averaging_kernel"].values, axis1=1, axis2=2)
    inst = l2["instrument"].values
    for name, (lo, hi) in {"S5-TIR": (1.8, 3.2), "S5-UV": (4.0, 6.5), "S4-UV": (3.5, 6.0),
                           "S4-VIS": (0.7, 1.3)}.items():
        assert lo < np.median(dfs[inst == name]) < hi, name
    ranks = np.linalg.matrix_rank(l2["noise_covariance"].values[:20], rtol=1e-10)
    assert (ranks < l2.sizes["level"]).all()  # singular noise covariances, as in real products


def test_fuse_product_is_valid_and_consistent(l2):
    fused = fusion.fuse_product(l2, pressure=np.geomspace(101325.0, 100.0, 16))
    fused = fused.compute()
    schemas.validate(fused, product_type="fused-ozone")
    assert fused.sizes["cell"] < l2.sizes["retrieval"]
    assert int(fused["n_retrievals"].sum()) == l2.sizes["retrieval"]
    assert (fused["n_fused"] == fused["n_retrievals"]).all()
    # fusion adds information: the fused DFS exceeds the typical single retrieval's
    single = np.trace(l2["averaging_kernel"].values, axis1=1, axis2=2)
    assert float(fused["dfs"].median()) > np.median(single) + 2.0
    # simulated inputs are consistent (interpolation and coincidence errors are small): the
    # reduced chi-square of the cells is of order one
    chi2 = (fused["cost"] / fused["cost_dof"]).values
    assert 0.2 < np.median(chi2) < 2.0


# -- the fast paths: threads over chunks, blocks of cells, LAPACK loops, shared covariances ----
def cells_dataset(stacked, valid):
    dims = {"x": ("cell", "slot", "level"), "apriori": ("cell", "slot", "level"),
            "grid": ("cell", "slot", "level", "fusion_level")}
    names = {"x": "o3_vmr", "apriori": "o3_vmr_apriori"}
    ds = xr.Dataset({names.get(k, k): (dims.get(k, ("cell", "slot", "level", "level_in")), v)
                     for k, v in stacked.items()})
    ds["valid"] = (("cell", "slot"), valid)
    return ds


def test_threaded_blocked_fusion_equals_one_call():
    """In-memory cells are fused by threads, chunk by chunk, each chunk in blocks of cells: the
    same numbers as one call of the kernel (many cells share their prior here)."""
    stacked, priors, valid = batch_of_cells(n_cells=12)
    reps = 15  # 180 cells: chunks of 100 cells, blocks of fusion.cells._BLOCK_CELLS
    stacked = {k: np.concatenate([v] * reps) for k, v in stacked.items()}
    valid = np.concatenate([valid] * reps)
    xa, Sa = priors[0]
    res = cdf(**stacked, prior_mean=xa, prior_covariance=Sa, valid=valid)
    out = fusion.fuse_cells(cells_dataset(stacked, valid), xa, Sa, chunk_cells=100,
                            num_workers=2)
    assert isinstance(out["o3_vmr"].data, np.ndarray)
    assert rel(out["o3_vmr"].values, res.x) < 1e-13
    assert rel(out["averaging_kernel"].values, res.averaging_kernel) < 1e-13
    assert rel(out["total_covariance"].values, res.total_covariance) < 1e-13
    assert rel(out["noise_covariance"].values, res.noise_covariance) < 1e-13
    np.testing.assert_array_equal(out["cost_dof"].values, res.dof)
    np.testing.assert_array_equal(out["used"].values, res.used)


def test_threaded_fusion_names_the_cell_of_the_whole_batch():
    stacked, priors, valid = batch_of_cells(n_cells=12)
    stacked = {k: np.concatenate([v] * 15) for k, v in stacked.items()}
    valid = np.concatenate([valid] * 15)
    stacked["noise_covariance"][150, 0] -= 0.5 * np.eye(N_FUSE)
    xa, Sa = priors[0]
    with pytest.raises(FusionInputError, match=r"cell \(150,\) retrieval 0") as info:
        fusion.fuse_cells(cells_dataset(stacked, valid), xa, Sa, chunk_cells=100)
    assert info.value.cell == (150,)


def test_lapack_factorisation_and_distinct_check_match_numpy(monkeypatch):
    rng = np.random.default_rng(3)
    g = rng.standard_normal((6, 12, 12))
    S = g @ np.swapaxes(g, -1, -2) + 0.1 * np.eye(12)
    S[4] -= 50.0 * np.eye(12)  # not positive definite
    L, R, bad = fusion.linalg.chol_inv(S)
    assert bad.tolist() == [False] * 4 + [True, False]
    ok = ~bad
    np.testing.assert_allclose((L @ np.swapaxes(L, -1, -2))[ok], S[ok], rtol=0, atol=1e-12)
    np.testing.assert_allclose((R @ L)[ok], np.broadcast_to(np.eye(12), (5, 12, 12)),
                               atol=1e-12)
    assert not np.triu(R, 1).any() and not np.triu(L, 1).any()
    monkeypatch.setattr(fusion.linalg, "_lapack", None)  # the NumPy fallback gives the same
    L2, R2, bad2 = fusion.linalg.chol_inv(S)
    assert bad2.tolist() == bad.tolist()
    assert rel(L2[ok], L[ok]) < 1e-13 and rel(R2[ok], R[ok]) < 1e-13
    assert not R2[bad].any()
    monkeypatch.undo()
    # repeated matrices are factorised once, and the answer is the same as for all of them
    stack = S[rng.integers(0, 6, size=40)]
    stack[7] = S[4] + 1e-3  # unlike any other, not positive definite
    expect = fusion.linalg.chol_inv(stack, inverse=False)[2]
    np.testing.assert_array_equal(fusion.linalg.not_psd_distinct(stack), expect)


def test_fuse_product_in_memory_equals_lazy(l2):
    p = np.geomspace(101325.0, 100.0, 16)
    eager = fusion.fuse_product(l2, pressure=p, chunk_cells=7)
    assert isinstance(eager["o3_vmr"].data, np.ndarray)
    lazy = fusion.fuse_product(l2.chunk({"retrieval": 50}), pressure=p, chunk_cells=7)
    assert isinstance(lazy["o3_vmr"].data, dask.array.Array)
    lazy = lazy.compute()
    for name in ("o3_vmr", "averaging_kernel", "total_covariance", "cost"):
        assert rel(eager[name].values, lazy[name].values) < 1e-13, name
    np.testing.assert_array_equal(eager["n_fused"].values, lazy["n_fused"].values)


@pytest.mark.parametrize("problem", ["asymmetric", "asymmetric_one_cell", "nan", "nan_mean"])
def test_fusion_prior_is_checked_like_the_other_covariances(cell2, problem):
    """A non-symmetric fusion prior covariance was accepted silently (issue 23)."""
    args, xa_f, Sa_f = cell2
    Sa_f, xa_f = Sa_f.copy(), xa_f.copy()
    if problem == "asymmetric":
        Sa_f[0, 1] += 1e-3 * np.abs(Sa_f).max()
        match = r"prior_covariance is not symmetric \(max\|S - Sᵀ\| = .*expected a symmetric"
    elif problem == "asymmetric_one_cell":
        Sa_f = np.stack([Sa_f, Sa_f])
        Sa_f[1, 2, 0] += 1e-3 * np.abs(Sa_f).max()
        match = r"prior_covariance of cell \(1,\) is not symmetric"
    elif problem == "nan":
        Sa_f[3, 3] = np.nan
        match = r"prior_covariance holds NaN or infinite values; expected finite"
    else:
        xa_f[2] = np.inf
        match = r"prior_mean holds NaN or infinite values; expected finite"
    with pytest.raises(FusionInputError, match=match):
        cdf(**args, prior_mean=xa_f, prior_covariance=Sa_f)
    if problem.startswith("asymmetric"):  # the check follows CdfOptions like the others
        res = cdf(**args, prior_mean=xa_f, prior_covariance=Sa_f,
                  options=CdfOptions(check=False))
        assert np.isfinite(res.x).all()


@pytest.mark.parametrize("options, match", [
    ({"method": "gain"}, "method='gain': expected 'total' or 'pinv'"),
    ({"on_invalid": "skip"}, "on_invalid='skip'"),
    ({"rcond": 1.5}, "expected 0 < rcond < 1"),
    ({"engine": "gpu"}, "engine='gpu'"),
])
def test_bad_options_are_a_fusion_input_error(options, match):
    """Options are checked when made, with an error of hubkit's tree (and a ValueError)."""
    from hubkit.errors import FusionInputError

    with pytest.raises(FusionInputError, match=match):
        CdfOptions(**options)
