"""Complete Data Fusion throughput: 100,000 cells x 3 retrievals x 40 levels (``--quick``: 10,000).

Ours: :func:`hubkit.fusion.fuse_product` on simulated in-memory ``l2-ozone`` data (grouping into
1° x 1° x 1 h cells, the batched kernel run chunk by chunk by a pool of ``--workers`` threads,
each chunk gathered by its thread and fused in cache-sized blocks of cells), default options
except ``diagnostics=False`` (the χ² cost needs an eigen-decomposition per retrieval, which
costs more than the fusion itself; it is timed separately). Input checks
(NaN, symmetry, positive semi-definiteness) are on. Reference, in the same run: a straightforward
per-cell NumPy loop implementing the same equations (total-covariance form, explicit
``numpy.linalg.inv``), timed on the first ``--reference-cells`` cells and extrapolated to cells/s;
both give the same fused profiles (checked, the largest relative difference is reported).

Arithmetic: ``flops_per_cell`` (reference, ours, minimal; see :func:`flops_per_cell`) times
cells/s gives the rate each achieves (``achieved_gflops``); with the measured rate of 40 x 40
matrix products on one thread, ``bound_ratio`` is the largest ratio any implementation of these
equations could reach on this machine.

Memory: the cells are simulated and fused ``--batch`` cells at a time, so the peak RSS depends on
the batch, not on the number of cells (a 1,000,000-cell run needs the same RAM); the input size
of an unchunked run is reported beside it. Also reported: the input/output size reduction
(all ``l2-ozone`` variables in, the ``fused-ozone`` product out).

Run: ``python -m benchmarks.fusion [--quick] [--cells N] [--batch N] [--levels N]``
"""

from __future__ import annotations

import os
import resource
import time

import dask
import numpy as np

from benchmarks import _common
from hubkit import fusion, simulate

GOAL_RATIO = 30.0
INSTRUMENTS = ("S5-UV", "S5-TIR", "S4-UV")
L2_VARS = ("o3_vmr", "o3_vmr_apriori", "averaging_kernel", "noise_covariance",
           "apriori_covariance", "pressure", "latitude", "longitude", "time", "instrument",
           "surface_pressure")


def reference_cell(x, A, Sn, xa_i, Sa_i, xa, Sa):
    """One cell, the textbook way: the same equations as hubkit.fusion.cdf (method='total')."""
    n = xa.size
    eye = np.eye(n)
    Sa_inv = np.linalg.inv(Sa)
    F = np.zeros((n, n))
    rhs = Sa_inv @ xa
    for i in range(x.shape[0]):
        D = eye - A[i]
        alpha = x[i] - D @ xa_i[i]
        S_inv = np.linalg.inv(Sn[i] + D @ Sa_i[i] @ D.T)
        Fi = S_inv @ A[i]
        F += 0.5 * (Fi + Fi.T)
        rhs += S_inv @ alpha
    P_inv = np.linalg.inv(F + Sa_inv)
    x_f = P_inv @ rhs
    A_f = P_inv @ F
    noise = A_f @ P_inv
    return x_f, A_f, noise, P_inv - noise, P_inv, np.trace(A_f)


def flops_per_cell(n: int, k: int) -> dict:
    """Floating-point operations per cell of ``k`` retrievals on ``n`` levels (leading terms in
    n³; a general n × n product is 2n³, a symmetric one n³, Cholesky n³/3, a triangular
    inverse n³/3, an LU inverse 2n³).

    reference: per retrieval (I-A) S_a (I-A)ᵀ 4n³, inv 2n³, S⁻¹A 2n³; per cell inv(S_a),
    inv(P), P⁻¹F, A_f P⁻¹ 2n³ each: (8k + 8) n³.
    ours (checks on, diagnostics off): per retrieval 2 check factorisations (noise and a priori
    covariance, counted even when shared) 2n³/3, (I-A) S_a (I-A)ᵀ 4n³, Cholesky and
    triangular inverse 2n³/3, R A and Rᵀ(R A) 4n³; per cell P: Cholesky + triangular inverse
    2n³/3, P⁻¹ = RᵀR n³, P⁻¹F and A_f P⁻¹ 4n³ (S_a⁻¹ once per run): (28k/3 + 17/3) n³.
    minimal: the same equations with symmetry and triangularity fully used and no checks: per
    retrieval (I-A)S_a 2n³, its symmetric product n³, Cholesky n³/3, two triangular solves 2n³;
    per cell Cholesky + inverse n³, P⁻¹F and A_f P⁻¹ 4n³: (16k/3 + 5) n³.
    """
    n3 = float(n) ** 3
    return {"reference": round((8 * k + 8) * n3), "ours": round((28 * k / 3 + 17 / 3) * n3),
            "minimal": round((16 * k / 3 + 5) * n3)}


def gemm_gflops(n: int, seconds: float = 0.3) -> float:
    """Measured rate of stacked n × n matrix products on one thread (the best case of BLAS at
    this size: no factorisation reaches it). [GFLOP/s]"""
    a = np.random.default_rng(0).standard_normal((256, n, n))
    a @ a
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ a
        reps += 1
    return 2.0 * n**3 * 256 * reps / (time.perf_counter() - t0) / 1e9


def simulate_batch(n_cells, levels, seed):
    return simulate.l2_ozone(instruments=INSTRUMENTS, layout="cells", n_cells=n_cells,
                             per_cell=len(INSTRUMENTS), n_levels=levels, grid="common",
                             bbox=(-10.0, 30.0, 30.0, 70.0), seed=seed)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def bench(n_cells, batch, levels, dask_chunk, n_ref, workers) -> dict:
    opts = fusion.CdfOptions(diagnostics=False)
    t_ours = t_sim = 0.0
    in_bytes = out_bytes = 0
    done = 0
    k = 0
    first = None
    while done < n_cells:
        size = min(batch, n_cells - done)
        t0 = time.perf_counter()
        l2 = simulate_batch(size, levels, seed=k)
        t_sim += time.perf_counter() - t0
        prior_mean = l2["o3_vmr_apriori"].values.mean(axis=0)
        prior_cov = fusion.profile_covariance(prior_mean, l2["pressure"].values[0], relative=1.0)
        t0 = time.perf_counter()
        fused = fusion.fuse_product(l2, prior=(prior_mean, prior_cov), options=opts,
                                    chunk_cells=dask_chunk, num_workers=workers)
        fused = fused.compute(scheduler="threads", num_workers=workers)
        t_ours += time.perf_counter() - t0
        assert fused.sizes["cell"] == size, (fused.sizes, size)
        in_bytes += sum(l2[v].nbytes for v in L2_VARS)
        out_bytes += fused.nbytes
        if first is None:
            first = (l2, fused, prior_mean, prior_cov)
        done += size
        k += 1
        _common.log(f"fusion: {done}/{n_cells} cells, ours {done / t_ours:,.0f} cells/s, "
                    f"peak RSS {peak_rss_mb():,.0f} MB")
    rss_after_ours = peak_rss_mb()

    # the reference loop on the first n_ref cells of the first batch, same cells and priors
    l2, fused, prior_mean, prior_cov = first
    box = fusion.group_cells(l2)
    keys, inverse = np.unique(box, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    arrays = {v: l2[v].values for v in ("o3_vmr", "averaging_kernel", "noise_covariance",
                                        "o3_vmr_apriori", "apriori_covariance")}
    members = [np.flatnonzero(inverse == c) for c in range(min(n_ref, keys.shape[0]))]
    t0 = time.perf_counter()
    ref = [reference_cell(*(arrays[v][idx] for v in arrays), prior_mean, prior_cov)
           for idx in members]
    t_ref = time.perf_counter() - t0
    ours_x = fused["o3_vmr"].values[: len(ref)]
    ref_x = np.array([r[0] for r in ref])
    ref_a = np.array([r[1] for r in ref])
    diff_x = float(np.max(np.abs(ours_x - ref_x) / np.abs(ref_x)))
    diff_a = float(np.max(np.abs(fused["averaging_kernel"].values[: len(ref)] - ref_a))
                   / np.max(np.abs(ref_a)))

    # the chi-square diagnostics (one eigen-decomposition per retrieval), on one batch
    sub = l2.isel(retrieval=slice(0, min(l2.sizes["retrieval"], 3 * 2000)))
    t0 = time.perf_counter()
    fusion.fuse_product(sub, prior=(prior_mean, prior_cov), chunk_cells=dask_chunk,
                        num_workers=workers).compute(scheduler="threads", num_workers=workers)
    t_diag = time.perf_counter() - t0
    n_diag = int(np.unique(fusion.group_cells(sub), axis=0).shape[0])

    ours_rate = n_cells / t_ours
    ref_rate = len(ref) / t_ref
    per_cell_in = in_bytes / n_cells
    flops = flops_per_cell(levels, len(INSTRUMENTS))
    gemm = gemm_gflops(levels)
    bound = workers * gemm * 1e9 / flops["minimal"]
    return {
        "ratio": round(ours_rate / ref_rate, 2),
        "cells_per_s": round(ours_rate, 1),
        "reference_cells_per_s": round(ref_rate, 1),
        "reference_timed_on_cells": len(ref),
        "reference_is_extrapolated": True,
        "ours_seconds": round(t_ours, 3),
        "simulation_seconds_untimed": round(t_sim, 3),
        "max_rel_diff_fused_profile_vs_reference": diff_x,
        "max_rel_diff_averaging_kernel_vs_reference": diff_a,
        "with_chi2_diagnostics_cells_per_s": round(n_diag / t_diag, 1),
        "flops_per_cell": flops,
        "achieved_gflops": {"ours": round(ours_rate * flops["ours"] / 1e9, 2),
                            "reference": round(ref_rate * flops["reference"] / 1e9, 2)},
        "gemm_gflops_one_thread": round(gemm, 1),
        "bound_cells_per_s": round(bound),
        "bound_ratio": round(bound / ref_rate, 1),
        "bound_note": (f"the minimal flops per cell, every one at the measured {levels}x{levels} "
                       f"matrix-product rate on all {workers} threads: an upper bound of any "
                       "implementation of these equations on this machine"),
        "input_bytes": int(in_bytes),
        "output_bytes": int(out_bytes),
        "size_reduction": round(in_bytes / out_bytes, 2),
        "batch_cells": batch,
        "dask_chunk_cells": dask_chunk,
        "threads": workers,
        "peak_rss_mb": round(rss_after_ours, 1),
        "unchunked_input_mb": round(in_bytes / 1e6, 1),
        "input_mb_for_1e6_cells_unchunked": round(per_cell_in * 1e6 / 1e6, 1),
        "memory_note": (f"simulated and fused {batch} cells at a time: the peak RSS is set by "
                        "the batch, so 1,000,000 cells need the same RAM as this run"),
    }


def main(argv=None) -> dict:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--cells", type=int, help="fusion cells (default 100000; quick 10000)")
    p.add_argument("--batch", type=int, help="cells simulated and fused at once "
                                             "(default 10000; quick 5000)")
    p.add_argument("--levels", type=int, default=40, help="levels per profile (default 40)")
    p.add_argument("--dask-chunk", type=int, default=500,
                   help="cells per chunk of the thread pool (or per Dask chunk) (500)")
    p.add_argument("--reference-cells", type=int,
                   help="cells the reference loop is timed on (default 2000; quick 500)")
    p.add_argument("--workers", type=int, default=os.cpu_count(),
                   help="threads fusing the chunks (default: all CPUs)")
    args = p.parse_args(argv)
    n_cells = args.cells or (10_000 if args.quick else 100_000)
    batch = args.batch or (5000 if args.quick else 10_000)
    n_ref = args.reference_cells or (500 if args.quick else 2000)
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    with dask.config.set({"array.slicing.split_large_chunks": False}):
        figures = bench(n_cells, batch, args.levels, args.dask_chunk, n_ref, args.workers)
    return {
        "benchmark": "fusion",
        "reference": "per-cell NumPy loop of the same CDF equations (numpy.linalg.inv), "
                     f"timed on {figures['reference_timed_on_cells']} cells, extrapolated",
        "ratio": figures.pop("ratio"),
        "ratio_is": "our cells/s / reference cells/s",
        "goal": f"ratio >= {GOAL_RATIO:g}",
        "goal_met": None,
        "quick": bool(args.quick),
        "cells": n_cells,
        "retrievals_per_cell": len(INSTRUMENTS),
        "levels": args.levels,
        **figures,
        "machine": {**_common.machine(), "load_average_at_start": load_at_start},
    }


if __name__ == "__main__":
    result = main()
    result["goal_met"] = result["ratio"] >= GOAL_RATIO
    _common.emit(result)
