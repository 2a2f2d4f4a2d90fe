"""The compiled CDF kernel (:mod:`hubkit.fusion.compiled`) against the NumPy path of ``cdf``.

Random cells of optimal-estimation retrievals (each ``x̂ = x_a + G (K x + ε - K x_a)``, so the
inputs are consistent covariances and averaging kernels), some covariances shared, some
retrievals padding: every output of ``CdfOptions(engine="compiled")`` must equal the NumPy
path's to 1e-12 relative (max abs difference over max abs value), and a bad input must give the
NumPy path's error, naming the same cell and retrieval.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import need

from hubkit.fusion import CdfOptions, FusionInputError, cdf, compiled


@pytest.fixture(autouse=True)
def _numba():
    """numba comes with the test extra: missing, the module skips (under CI=true it fails)."""
    need(compiled.AVAILABLE, "numba is not installed (pip install numba, or hubkit[fast])")

RTOL = 1e-12


def _cov(rng, m, sd, length):
    z = np.arange(m)
    s = sd * (1.0 + 0.3 * rng.random(m))
    return s[:, None] * np.exp(-np.abs(z[:, None] - z[None, :]) / length) * s[None, :]


def random_cells(rng, batch, n_ret, m, share=False):
    """OE retrievals of random truths: x, A, S_n, x_a, S_a of shape (*batch, n_ret, ...)."""
    cells = int(np.prod(batch))
    x = np.empty((cells, n_ret, m))
    A = np.empty((cells, n_ret, m, m))
    Sn = np.empty_like(A)
    Sa = np.empty_like(A)
    xa = np.empty_like(x)
    shared_sa = [_cov(rng, m, 0.5, 3.0) for _ in range(n_ret)]
    for c in range(cells):
        truth = 1.0 + 0.3 * np.sin(np.linspace(0, 3, m) + rng.random())
        for i in range(n_ret):
            p = int(rng.integers(m // 2, 2 * m))
            K = rng.normal(size=(p, m)) * np.exp(-np.linspace(0, 2, m))[None, :]
            Sy = np.diag(rng.uniform(0.01, 0.1, p))
            sa = shared_sa[i] if share else _cov(rng, m, rng.uniform(0.2, 0.8), 2.5)
            prior = truth * (1.0 + 0.1 * rng.normal(size=m))
            Syi = np.linalg.inv(Sy)
            G = np.linalg.solve(K.T @ Syi @ K + np.linalg.inv(sa), K.T @ Syi)
            y = K @ truth + rng.multivariate_normal(np.zeros(p), Sy)
            x[c, i] = prior + G @ (y - K @ prior)
            A[c, i] = G @ K
            sn = G @ Sy @ G.T
            Sn[c, i] = 0.5 * (sn + sn.T)
            Sa[c, i] = sa
            xa[c, i] = prior
    shape = tuple(batch) + (n_ret,)
    return (x.reshape(*shape, m), A.reshape(*shape, m, m), Sn.reshape(*shape, m, m),
            xa.reshape(*shape, m), Sa.reshape(*shape, m, m))


def _both(args, prior_mean, prior_cov, **kw):
    x, A, Sn, xa, Sa = args
    out = {}
    for engine in ("numpy", "compiled"):
        out[engine] = cdf(x, A, Sn, xa, prior_mean, prior_cov, apriori_covariance=Sa,
                          options=CdfOptions(diagnostics=False, engine=engine), **kw)
    return out["numpy"], out["compiled"]


def _rel(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(a)))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("share", [False, True])
def test_compiled_equals_numpy_on_random_cells(seed, share):
    rng = np.random.default_rng(seed)
    m = int(rng.integers(5, 41))
    batch = (int(rng.integers(1, 5)), int(rng.integers(1, 7)))
    args = random_cells(rng, batch, int(rng.integers(1, 5)), m, share=share)
    prior_mean = args[3].mean(axis=(0, 1, 2))
    prior_cov = _cov(rng, m, 1.0, 4.0)
    valid = rng.random(args[0].shape[:-1]) > 0.25
    valid[..., 0] = True
    ref, got = _both(args, prior_mean, prior_cov, valid=valid)
    for name in ("x", "averaging_kernel", "noise_covariance", "smoothing_covariance",
                 "total_covariance", "dfs"):
        assert _rel(getattr(ref, name), getattr(got, name)) < RTOL, name
    assert np.array_equal(ref.used, got.used)
    assert np.isnan(got.cost).all() and (got.dof == -1).all()


def test_compiled_per_cell_prior_mean():
    rng = np.random.default_rng(7)
    args = random_cells(rng, (9,), 3, 12)
    prior_mean = args[3].mean(axis=1)  # one a priori profile per cell
    ref, got = _both(args, prior_mean, _cov(rng, 12, 1.0, 4.0))
    assert _rel(ref.x, got.x) < RTOL


@pytest.mark.parametrize("bad", ["nan", "nan_covariance", "asymmetric", "not_psd"])
def test_bad_input_gives_the_numpy_paths_error(bad):
    rng = np.random.default_rng(3)
    x, A, Sn, xa, Sa = random_cells(rng, (4,), 3, 8)
    if bad == "nan":
        x[2, 1, 3] = np.nan
    elif bad == "nan_covariance":  # off the diagonal, in the lower triangle
        Sa[2, 1, 6, 2] = np.nan
    elif bad == "asymmetric":
        Sn[2, 1, 0, 5] += 1.0
    else:
        Sn[2, 1] = -Sn[2, 1]
    prior = (xa.mean(axis=(0, 1)), _cov(rng, 8, 1.0, 4.0))
    messages = []
    for engine in ("numpy", "compiled"):
        with pytest.raises(FusionInputError) as err:
            cdf(x, A, Sn, xa, *prior, apriori_covariance=Sa,
                options=CdfOptions(diagnostics=False, engine=engine))
        messages.append(str(err.value))
    assert messages[0] == messages[1]
    assert "cell (2,) retrieval 1" in messages[1]


def _l2(n_cells=40, levels=12, seed=0):
    from hubkit import simulate

    return simulate.l2_ozone(instruments=("S5-UV", "S5-TIR", "S4-UV"), layout="cells",
                             n_cells=n_cells, per_cell=3, n_levels=levels, grid="common",
                             bbox=(-10.0, 30.0, 30.0, 70.0), seed=seed)


def _fuse_both(l2, monkeypatch, **opts):
    """fuse_product with the NumPy path and with the compiled kernel, counting the chunks the
    kernel fused straight from the retrievals (fusion.cells._direct_kernel)."""
    from hubkit import fusion

    calls = []
    real = compiled.fuse_indexed
    monkeypatch.setattr(compiled, "fuse_indexed", lambda *a, **k: calls.append(1) or real(*a, **k))
    prior_mean = l2["o3_vmr_apriori"].values.mean(axis=0)
    prior = (prior_mean, fusion.profile_covariance(prior_mean, l2["pressure"].values[0],
                                                   relative=1.0))
    out = {}
    for engine in ("numpy", "compiled"):
        out[engine] = fusion.fuse_product(
            l2, prior=prior, options=CdfOptions(diagnostics=False, engine=engine, **opts),
            chunk_cells=16, num_workers=2)
    return out["numpy"], out["compiled"], len(calls)


def test_fuse_product_reads_retrievals_directly_with_the_same_result(monkeypatch):
    """In memory, the compiled kernel reads each cell's retrievals where they are and writes
    into the outputs (no gathered copy): the same product as the NumPy path, to 1e-12."""
    l2 = _l2()
    ref, got, calls = _fuse_both(l2, monkeypatch)
    assert calls == -(-got.sizes["cell"] // 16)  # every chunk went through the direct kernel
    for name in ("o3_vmr", "averaging_kernel", "noise_covariance", "total_covariance", "dfs"):
        assert _rel(ref[name].values, got[name].values) < RTOL, name
    for name in ("n_fused", "cost_dof"):
        if name in ref:
            np.testing.assert_array_equal(ref[name].values, got[name].values)
    assert np.isnan(got["cost"].values).all() and np.isnan(ref["cost"].values).all()


@pytest.mark.parametrize("on_invalid", ["raise", "exclude"])
def test_fuse_product_bad_retrieval_takes_the_numpy_path(monkeypatch, on_invalid):
    """A NaN in one retrieval: the direct kernel hands the chunk to the NumPy path, which
    raises naming the cell, or excludes the retrieval, exactly as with engine='numpy'."""
    l2 = _l2()
    l2["o3_vmr"].values[37, 4] = np.nan
    if on_invalid == "raise":
        messages = []
        for engine in ("numpy", "compiled"):
            with pytest.raises(FusionInputError) as err:
                _fuse_both_one(l2, engine)
            messages.append(str(err.value))
        assert messages[0] == messages[1] and "retrieval" in messages[0]
        return
    ref, got, calls = _fuse_both(l2, monkeypatch, on_invalid="exclude")
    assert calls > 0
    assert int(ref["n_fused"].sum()) == int(got["n_fused"].sum()) == l2.sizes["retrieval"] - 1
    for name in ("o3_vmr", "averaging_kernel", "total_covariance"):
        assert _rel(ref[name].values, got[name].values) < RTOL, name


def _fuse_both_one(l2, engine):
    from hubkit import fusion

    prior_mean = l2["o3_vmr_apriori"].values.mean(axis=0)
    prior = (prior_mean, fusion.profile_covariance(prior_mean, l2["pressure"].values[0],
                                                   relative=1.0))
    return fusion.fuse_product(l2, prior=prior, chunk_cells=16, num_workers=2,
                               options=CdfOptions(diagnostics=False, engine=engine))


@pytest.mark.parametrize("span", [10, 2**40])
def test_unique_rows_equals_numpy_unique_over_rows(span):
    """fuse_product's cell grouping: the same cells, order, inverse and counts as
    np.unique(axis=0), also where the encoded key would overflow int64 (the fallback)."""
    from hubkit.fusion.product import unique_rows

    rng = np.random.default_rng(span % 97)
    box = rng.integers(-span, span, size=(500, 3))
    box[100:200] = box[:100]  # repeated cells
    keys, inverse, counts = unique_rows(box)
    want = np.unique(box, axis=0, return_inverse=True, return_counts=True)
    np.testing.assert_array_equal(keys, want[0])
    np.testing.assert_array_equal(inverse, want[1].ravel())
    np.testing.assert_array_equal(counts, want[2])
    empty = unique_rows(np.zeros((0, 3), np.int64))
    assert empty[0].shape == (0, 3) and empty[1].size == 0


def test_stages_run_a_prefix_of_the_kernel():
    """fuse_indexed(stages=k) (the benchmark's breakdown) runs the first k stages and accepts
    every cell; all stages (the default) give the NumPy path's result."""
    from hubkit.fusion.kernel import prior_information

    rng = np.random.default_rng(11)
    x, A, Sn, xa, Sa = random_cells(rng, (5,), 3, 10)
    prior_mean, prior_cov = xa.mean(axis=(0, 1)), _cov(rng, 10, 1.0, 4.0)
    arrays = [np.ascontiguousarray(a.reshape(15, *a.shape[2:])) for a in (x, A, Sn, xa, Sa)]
    index = np.arange(15).reshape(5, 3)
    used = np.ones((5, 3), bool)
    prior_inv = prior_information(prior_mean, prior_cov)[0]
    for stages in range(1, compiled.ALL_STAGES + 1):
        out = {"x": np.zeros((5, 10)), "dfs": np.zeros(5),
               **{k: np.zeros((5, 10, 10)) for k in ("averaging_kernel", "noise_covariance",
                                                     "total_covariance")}}
        assert compiled.fuse_indexed(arrays, index, used, prior_inv, prior_mean, out=out,
                                     stages=stages)
        assert (out["dfs"] == 0).all() == (stages < compiled.ALL_STAGES)
    ref = cdf(x, A, Sn, xa, prior_mean, prior_cov, apriori_covariance=Sa,
              options=CdfOptions(diagnostics=False, engine="numpy"))
    assert _rel(ref.x, out["x"]) < RTOL
    assert _rel(ref.averaging_kernel, out["averaging_kernel"]) < RTOL
    assert len(compiled.STAGES) == compiled.ALL_STAGES
