"""Complete Data Fusion against the machine's limit: 3 retrievals x 40 levels per cell, 100,000
cells (``--quick``: 10,000).

Ours: :func:`hubkit.fusion.fuse_product` on simulated in-memory ``l2-ozone`` data (grouping into
1° x 1° x 1 h cells, the kernel run chunk by chunk by a pool of ``--workers`` threads), default
options except ``diagnostics=False`` (the χ² cost needs an eigen-decomposition per retrieval).
Input checks (NaN, symmetry, positive semi-definiteness) are on. The kernel is the compiled one
(:mod:`hubkit.fusion.compiled`, numba) when numba is installed; the NumPy path
(``CdfOptions(engine="numpy")``) is timed beside it.

Reference, measured in the same run: the roofline. Stacked 40 x 40 matrix products on one BLAS
thread give the best rate BLAS reaches at this size; the minimal flop count of a cell (the same
equations with symmetry and triangularity fully used and no checks, :func:`flops_per_cell`) at
that rate is the fastest any implementation could fuse a cell on one core. ``ratio`` = our cells
per CPU second / the roofline's cells per CPU second, i.e. the fraction of the roofline reached
per core (goal >= 0.5). Ours, the NumPy path and the GEMMs are timed interleaved round after
round until the medians are stable (``_common.compare``), all in CPU seconds (so ours on two
threads is compared per core). A straightforward per-cell NumPy loop of the same equations
checks the fused profiles (the largest relative difference is reported) and is timed once as a
third figure. The compiled kernel alone (one thread, checks on and off) is timed last, so that
what ``fuse_product`` spends around it shows (``kernel_alone_us_per_cell_cpu``).

Scale-out (``dask_scaling``): the same fusion (:func:`hubkit.fusion.fuse_product`, one thread per
task) run as Dask tasks on a real ``distributed.LocalCluster`` of 1 and of 2 single-threaded
worker processes, one task per part of ``--dask-part-cells`` cells. Each part is simulated on a
worker before the clock starts (the inputs are where a chain's worker would read them); the
timed rounds, 1 and 2 workers alternating, submit the fusion of every part and wait for all
(wall-clock cells/s; the results stay on the workers, as the chain writes them from there). The
speed-up is the median 2-worker rate over the median 1-worker rate; the issue's goal (>= 1.8x)
is for an idle machine, so the load average at start and end is printed beside it. On a loaded
2-core machine it measures the other processes as much as the code.

Memory: the cells are simulated and fused ``--batch`` cells at a time, so the peak RSS depends on
the batch, not on the number of cells.

Run: ``python -m benchmarks.fusion [--quick] [--cells N] [--batch N] [--levels N]
[--dask-parts N] [--dask-part-cells N]`` (``--dask-parts 0``: no scale-out figure)
"""

from __future__ import annotations

import os
import resource
import time

import dask
import numpy as np
import threadpoolctl

from benchmarks import _common
from hubkit import fusion, simulate
from hubkit.fusion import compiled

GOAL_RATIO = 0.5
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
    ours (the compiled kernel, checks on, diagnostics off): per retrieval 2 check
    factorisations (noise and a priori covariance, counted even when shared) 2n³/3,
    (I-A) S_a (I-A)ᵀ 4n³, S⁻¹ by dpotrf + dpotri n³, S⁻¹A 2n³; per cell P⁻¹ by dpotrf +
    dpotri n³, P⁻¹F and A_f P⁻¹ 4n³ (S_a⁻¹ once per run): (23k/3 + 5) n³.
    minimal: the same equations with symmetry and triangularity fully used and no checks: per
    retrieval (I-A)S_a 2n³, its symmetric product n³, Cholesky n³/3, two triangular solves 2n³;
    per cell Cholesky + inverse n³, P⁻¹F and A_f P⁻¹ 4n³: (16k/3 + 5) n³.
    """
    n3 = float(n) ** 3
    return {"reference": round((8 * k + 8) * n3), "ours": round((23 * k / 3 + 5) * n3),
            "minimal": round((16 * k / 3 + 5) * n3)}


def gemm_side(n: int, flops_per_cell: float, reps: int = 40) -> _common.Side:
    """Stacked n x n matrix products on one BLAS thread; ``units`` = the cells whose minimal
    flops they equal (the roofline in cells)."""
    a = np.random.default_rng(0).standard_normal((256, n, n))
    out = np.empty_like(a)

    def run():
        with threadpoolctl.threadpool_limits(1, user_api="blas"):
            for _ in range(reps):
                np.matmul(a, a, out=out)

    return _common.Side(run, units=2.0 * n**3 * 256 * reps / flops_per_cell)


def kernel_alone(l2, keys, inverse, prior_mean, prior_cov) -> dict:
    """CPU microseconds per cell of the compiled kernel alone (one thread, the retrievals read
    in place, :func:`hubkit.fusion.compiled.fuse_indexed`), with the input checks on and off
    (what ``fuse_product`` spends around it is the difference to ``us_per_cell_cpu.ours``),
    and stage by stage (:data:`hubkit.fusion.compiled.STAGES`)."""
    from hubkit.fusion.kernel import prior_information

    n_cells = keys.shape[0]
    order = np.argsort(inverse, kind="stable")
    counts = np.bincount(inverse, minlength=n_cells)
    if (counts != counts[0]).any():
        return {"note": "cells of unequal size: not measured"}
    index = order.reshape(n_cells, counts[0])
    names = ("o3_vmr", "averaging_kernel", "noise_covariance", "o3_vmr_apriori",
             "apriori_covariance")
    arrays = [np.ascontiguousarray(l2[v].values, dtype=np.float64) for v in names]
    m = arrays[0].shape[1]
    out = {"x": np.empty((n_cells, m)), "dfs": np.empty(n_cells),
           **{k: np.empty((n_cells, m, m)) for k in ("averaging_kernel", "noise_covariance",
                                                      "total_covariance")}}
    used = np.ones(index.shape, bool)
    prior_inv = prior_information(prior_mean, prior_cov)[0]
    figures = {}

    def timed(check, stages):
        def run():
            if not compiled.fuse_indexed(arrays, index, used, prior_inv, prior_mean,
                                         check=check, out=out, stages=stages):
                raise AssertionError("the compiled kernel refused a simulated cell")
        t = _common.measure(run, units=n_cells, min_rounds=3, max_rounds=5)
        return 1e6 / t["units_per_cpu_s"]

    for check in (True, False):
        figures["checks_on" if check else "checks_off"] = round(
            timed(check, compiled.ALL_STAGES), 1)
    # where the time goes: the first k stages timed, k = 1 ... all (each stage's cost is the
    # difference of two such runs: read it with the noise of a busy machine)
    cumulative = [timed(True, k) for k in range(1, compiled.ALL_STAGES + 1)]
    unchecked = timed(False, 1)
    stages = {name: round(cumulative[0] if k == 0 else cumulative[k] - cumulative[k - 1], 1)
              for k, name in enumerate(compiled.STAGES)}
    figures["stages_us_per_cell"] = {
        **stages, "of which the checks (symmetry, PSD factorisations)":
            round(cumulative[0] - unchecked, 1),
        "sum": round(cumulative[-1], 1)}
    return figures


def fuse_part(l2, prior_mean, prior_cov) -> tuple[int, float]:
    """One Dask task of the scale-out figure: fuse a part on this worker's one thread; the
    cell count and the DFS sum come back (the fused product stays on the worker)."""
    fused = fusion.fuse_product(l2, prior=(prior_mean, prior_cov),
                                options=fusion.CdfOptions(diagnostics=False), num_workers=1)
    return int(fused.sizes["cell"]), float(fused["dfs"].sum())


def dask_scaling(n_parts: int, part_cells: int, levels: int, prior_mean, prior_cov, *,
                 rounds: int) -> dict:
    """Wall-clock cells/s of the fusion as Dask tasks on ``distributed.LocalCluster`` s of 1 and
    2 single-threaded worker processes (rounds alternating), and the speed-up 1 -> 2."""
    import importlib

    from distributed import Client, LocalCluster, wait

    me = importlib.import_module("benchmarks.fusion")  # by name: workers import it, not __main__
    load_start = _common.load_average()
    clusters, parts, pids = {}, {}, {}
    try:
        for n in (1, 2):
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                   host="127.0.0.1", dashboard_address="127.0.0.1:0")
            client = Client(cluster)
            clusters[n] = (cluster, client)
            addrs = sorted(client.scheduler_info()["workers"])
            # the parts spread evenly over the workers (round robin), as a chain's inputs would
            parts[n] = [client.submit(me.simulate_batch, part_cells, levels, 1000 + k,
                                      workers=[addrs[k % n]], pure=False)
                        for k in range(n_parts)]
            wait(parts[n])
            # warm-up (imports, numba compilation on every worker), not timed
            client.run(me.warm_up, levels)
            pids[n] = list(client.run(os.getpid).values())
        walls = {1: [], 2: []}
        cpus = {1: [], 2: []}
        cells = {}
        for r in range(rounds):
            for n in ((1, 2) if r % 2 == 0 else (2, 1)):
                client = clusters[n][1]
                c0, t0 = worker_cpu(pids[n]), time.perf_counter()
                done = client.map(me.fuse_part, parts[n], prior_mean=prior_mean,
                                  prior_cov=prior_cov, pure=False)
                got = client.gather(done)
                walls[n].append(time.perf_counter() - t0)
                cpus[n].append(worker_cpu(pids[n]) - c0)
                cells[n] = sum(g[0] for g in got)
                del done
        per_worker = {}
        for n in (1, 2):
            holders = clusters[n][1].who_has(parts[n])
            count = {}
            for addrs in holders.values():
                for a in addrs:
                    count[a] = count.get(a, 0) + 1
            per_worker[n] = sorted(count.values())
    finally:
        for cluster, client in clusters.values():
            client.close()
            cluster.close()
    rate = {n: cells[n] / _common.median(walls[n]) for n in (1, 2)}
    return {
        "method": ("distributed.LocalCluster, worker processes with 1 thread each; one task per "
                   "part; wall clock from submit to the last result; median of the rounds"),
        "parts": n_parts, "cells_per_part": part_cells, "cells": cells[1], "rounds": rounds,
        "parts_held_per_worker": {f"{n}_workers": per_worker[n] for n in (1, 2)},
        "cells_per_s_wall": {f"{n}_workers": round(rate[n], 1) for n in (1, 2)},
        "wall_s": {f"{n}_workers": [round(t, 3) for t in walls[n]] for n in (1, 2)},
        "speedup_1_to_2_workers": round(rate[2] / rate[1], 3),
        # CPU seconds of the cluster's worker processes: what a cell costs there, whatever the
        # other processes on the machine do (equal figures: the scale-out adds no work)
        "cells_per_worker_cpu_s": {f"{n}_workers": round(cells[n] / _common.median(cpus[n]), 1)
                                   for n in (1, 2)},
        "goal": "speed-up >= 1.8 on an idle machine",
        "load_average": {"at_start": load_start, "at_end": _common.load_average()},
    }


def worker_cpu(pids) -> float:
    """CPU seconds (user + system) used so far by the processes ``pids``."""
    import psutil

    return sum(sum(psutil.Process(p).cpu_times()[:2]) for p in pids)


def warm_up(levels: int) -> None:
    """Compile the kernel on a worker (numba) before the clock starts."""
    l2 = simulate_batch(2, levels, seed=0)
    prior_mean = l2["o3_vmr_apriori"].values.mean(axis=0)
    fuse_part(l2, prior_mean, fusion.profile_covariance(prior_mean, l2["pressure"].values[0],
                                                        relative=1.0))


def simulate_batch(n_cells, levels, seed):
    return simulate.l2_ozone(instruments=INSTRUMENTS, layout="cells", n_cells=n_cells,
                             per_cell=len(INSTRUMENTS), n_levels=levels, grid="common",
                             bbox=(-10.0, 30.0, 30.0, 70.0), seed=seed)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def bench(n_cells, batch, levels, dask_chunk, n_ref, workers) -> dict:
    opts = fusion.CdfOptions(diagnostics=False)
    numpy_opts = fusion.CdfOptions(diagnostics=False, engine="numpy")
    flops = flops_per_cell(levels, len(INSTRUMENTS))
    l2 = simulate_batch(batch, levels, seed=0)
    prior_mean = l2["o3_vmr_apriori"].values.mean(axis=0)
    prior_cov = fusion.profile_covariance(prior_mean, l2["pressure"].values[0], relative=1.0)
    n_batch = int(np.unique(fusion.group_cells(l2), axis=0).shape[0])
    got = {}

    def fuse(options, key):
        def run():
            got[key] = fusion.fuse_product(l2, prior=(prior_mean, prior_cov), options=options,
                                           chunk_cells=dask_chunk, num_workers=workers
                                           ).compute(scheduler="threads", num_workers=workers)
        return _common.Side(run, units=n_batch)

    compiled_on = compiled.AVAILABLE
    timing = _common.compare({"ours": fuse(opts, "ours"),
                              "roofline": gemm_side(levels, flops["minimal"]),
                              "numpy_path": fuse(numpy_opts, "numpy")},
                             min_rounds=3, max_rounds=9, label="fusion", budget_s=400)
    fused = got["ours"]
    diff_paths = float(np.max(np.abs(fused["o3_vmr"].values - got["numpy"]["o3_vmr"].values))
                       / np.max(np.abs(got["numpy"]["o3_vmr"].values)))

    # throughput and memory over all the cells, batch by batch (CPU and wall)
    cpu = wall = 0.0
    done, k = 0, 0
    while done < n_cells:
        size = min(batch, n_cells - done)
        part = l2 if k == 0 and size == batch else simulate_batch(size, levels, seed=k)
        c0, t0 = _common.cpu_seconds(), time.perf_counter()
        fusion.fuse_product(part, prior=(prior_mean, prior_cov), options=opts,
                            chunk_cells=dask_chunk, num_workers=workers
                            ).compute(scheduler="threads", num_workers=workers)
        cpu += _common.cpu_seconds() - c0
        wall += time.perf_counter() - t0
        done += size
        k += 1
    _common.log(f"fusion: {n_cells} cells, {n_cells / wall:,.0f} cells/s wall, "
                f"{n_cells / cpu:,.0f} cells per CPU s, peak RSS {peak_rss_mb():,.0f} MB")

    # the per-cell NumPy loop of the same equations: a check of the results and a third figure
    box = fusion.group_cells(l2)
    keys, inverse = np.unique(box, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    arrays = {v: l2[v].values for v in ("o3_vmr", "averaging_kernel", "noise_covariance",
                                        "o3_vmr_apriori", "apriori_covariance")}
    members = [np.flatnonzero(inverse == c) for c in range(min(n_ref, keys.shape[0]))]

    def loop():
        got["ref"] = [reference_cell(*(arrays[v][idx] for v in arrays), prior_mean, prior_cov)
                      for idx in members]

    loop_t = _common.measure(loop, units=len(members), min_rounds=1, max_rounds=1,
                             warmup=False)
    ref = got["ref"]
    ref_x = np.array([r[0] for r in ref])
    ref_a = np.array([r[1] for r in ref])
    diff_x = float(np.max(np.abs(fused["o3_vmr"].values[: len(ref)] - ref_x) / np.abs(ref_x)))
    diff_a = float(np.max(np.abs(fused["averaging_kernel"].values[: len(ref)] - ref_a))
                   / np.max(np.abs(ref_a)))
    kernel = kernel_alone(l2, keys, inverse, prior_mean, prior_cov) if compiled_on else None
    ours_cpu = timing["ours"]["units_per_cpu_s"]
    roof_cpu = timing["roofline"]["units_per_cpu_s"]
    gemm_gflops = roof_cpu * flops["minimal"] / 1e9
    return {
        "ratio": round(timing["ratio"], 3),
        "stable": timing["stable"],
        "kernel": "compiled (numba)" if compiled_on else "NumPy path (numba not installed)",
        "cells_per_cpu_s": round(ours_cpu, 1),
        "roofline_cells_per_cpu_s": round(roof_cpu, 1),
        "numpy_path_cells_per_cpu_s": round(timing["numpy_path"]["units_per_cpu_s"], 1),
        "numpy_path_fraction_of_roofline": round(
            timing["numpy_path"]["units_per_cpu_s"] / roof_cpu, 3),
        "compiled_over_numpy_path": round(ours_cpu / timing["numpy_path"]["units_per_cpu_s"],
                                          2),
        "per_cell_loop_cells_per_cpu_s": round(loop_t["units_per_cpu_s"], 1),
        "ours_over_per_cell_loop": round(ours_cpu / loop_t["units_per_cpu_s"], 2),
        "us_per_cell_cpu": {"ours": round(1e6 / ours_cpu, 1), "roofline": round(1e6 / roof_cpu, 1),
                            "numpy_path": round(1e6 / timing["numpy_path"]["units_per_cpu_s"],
                                                1),
                            "per_cell_loop": round(1e6 / loop_t["units_per_cpu_s"], 1)},
        "kernel_alone_us_per_cell_cpu": kernel,
        "gemm_gflops_per_cpu_s": round(gemm_gflops, 1),
        "flops_per_cell": flops,
        "achieved_gflops_per_cpu_s": {
            "ours_counting_minimal_flops": round(ours_cpu * flops["minimal"] / 1e9, 2)},
        "max_rel_diff_compiled_vs_numpy_path": diff_paths,
        "max_rel_diff_fused_profile_vs_loop": diff_x,
        "max_rel_diff_averaging_kernel_vs_loop": diff_a,
        "timed_batch_cells": n_batch,
        "throughput_cells": n_cells,
        "throughput_cells_per_s_wall": round(n_cells / wall, 1),
        "throughput_cells_per_cpu_s": round(n_cells / cpu, 1),
        "timing": timing,
        "batch_cells": batch,
        "dask_chunk_cells": dask_chunk,
        "threads": workers,
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "memory_note": (f"simulated and fused {batch} cells at a time: the peak RSS is set by "
                        "the batch, not by the number of cells"),
    }


def main(argv=None) -> dict:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--cells", type=int, help="fusion cells (default 100000; quick 10000)")
    p.add_argument("--batch", type=int, help="cells simulated and fused at once, and timed "
                                             "against the roofline (default 10000; quick 2000)")
    p.add_argument("--levels", type=int, default=40, help="levels per profile (default 40)")
    p.add_argument("--dask-chunk", type=int, default=500,
                   help="cells per chunk of the thread pool (or per Dask chunk) (500)")
    p.add_argument("--reference-cells", type=int,
                   help="cells the reference loop is timed on (default 2000; quick 500)")
    p.add_argument("--workers", type=int, default=os.cpu_count(),
                   help="threads fusing the chunks (default: all CPUs)")
    p.add_argument("--dask-parts", type=int,
                   help="Dask tasks of the scale-out figure (default 16; quick 8; 0: none)")
    p.add_argument("--dask-part-cells", type=int, default=1000,
                   help="cells per Dask task of the scale-out figure (1000: ~0.15 s of work a "
                        "task; 250 made rounds of ~0.5 s, which the scheduler's and the "
                        "machine's noise dominated)")
    args = p.parse_args(argv)
    n_cells = args.cells or (10_000 if args.quick else 100_000)
    batch = args.batch or (2000 if args.quick else 10_000)
    n_ref = args.reference_cells or (500 if args.quick else 2000)
    load_at_start = _common.load_average()
    with dask.config.set({"array.slicing.split_large_chunks": False}):
        figures = bench(n_cells, batch, args.levels, args.dask_chunk, n_ref, args.workers)
    n_parts = args.dask_parts if args.dask_parts is not None else (8 if args.quick else 16)
    if n_parts > 0:
        l2 = simulate_batch(2, args.levels, seed=0)
        prior_mean = l2["o3_vmr_apriori"].values.mean(axis=0)
        prior_cov = fusion.profile_covariance(prior_mean, l2["pressure"].values[0],
                                              relative=1.0)
        figures["dask_scaling"] = dask_scaling(n_parts, args.dask_part_cells, args.levels,
                                               prior_mean, prior_cov,
                                               rounds=3 if args.quick else 5)
    return {
        "benchmark": "fusion",
        "reference": "the roofline: stacked 40x40 GEMM rate on one BLAS thread x the minimal "
                     "flops per cell, measured interleaved in the same run",
        "ratio": figures.pop("ratio"),
        "ratio_is": "our cells per CPU second / the roofline's cells per CPU second (the "
                    "fraction of the roofline reached per core)",
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
