"""Surface-UV table interpolation: 10 million points on the full 7-D lookup table
(``--quick``: 1 million), hubkit's multilinear interpolator against SciPy's.

Ours: :class:`hubkit.uv.interp.Multilinear` (cache-sized chunks, one axis collapsed at a time,
cell corners of the three fastest axes side by side, a thread per CPU) on the table's ``uvi``
in its transformed axes and values (ln ozone, cos SZA, ln UVI ...).

Reference, in the same run, on the same transformed table and the same points:
``scipy.interpolate.RegularGridInterpolator(method="linear", bounds_error=False,
fill_value=nan)`` (its N-D linear path forms all 2^7 corner products on full-size arrays).
Both results are compared point by point (largest relative difference reported; goal 1e-12).

The table is the one shipped with hubkit (:func:`hubkit.uv.table.default_table`); the JSON
also gives the time it took to build (TUV-x runs on this machine, recorded in the table).
Also reported: our single-thread rate, and the end-to-end rate of
:func:`hubkit.uv.index.surface_uv_arrays` (input checks, transforms, UVI and UV-A together).

Run: ``python -m benchmarks.uv_interp [--quick] [--points N] [--repeats N]``
"""

from __future__ import annotations

import os
import time

import numpy as np

from benchmarks import _common

GOAL_RATIO = 3.0
GOAL_MAX_REL_DIFF = 1e-12


def load_table():
    """(table, which): the table shipped with hubkit."""
    from hubkit.uv.table import default_table

    return default_table(), "shipped (hubkit.uv.table.default_table)"


def bench(n_points: int, repeats: int, workers: int) -> dict:
    from scipy.interpolate import RegularGridInterpolator

    from hubkit.uv import index
    from hubkit.uv.interp import TableInterpolator

    table, which = load_table()
    prepared = TableInterpolator(table, "uvi")
    grid = prepared.grid
    axes, values = grid.axes, grid.tables[0]
    rng = np.random.default_rng(0)
    points = [rng.uniform(a[0], a[-1], n_points) for a in axes]
    _common.log(f"uv_interp: table {values.shape} ({which}), {n_points:,} points, "
                f"{workers} threads")

    grid([p[:100_000] for p in points], workers=1)  # warm-up: builds the corner copy once
    ours_times, single_times = [], []
    result = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        (result,), outside = grid(points, workers=workers)
        ours_times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    grid(points, workers=1)
    single_times.append(time.perf_counter() - t0)
    t_ours = _common.median(ours_times)
    _common.log(f"uv_interp: ours {t_ours:.2f} s (median) ({n_points / t_ours:,.0f} points/s)")

    xi = np.stack(points, axis=-1)  # SciPy's input layout, built outside the timing
    rgi = RegularGridInterpolator(axes, values, method="linear", bounds_error=False,
                                  fill_value=np.nan)
    t0 = time.perf_counter()
    ref = rgi(xi)
    t_ref = time.perf_counter() - t0
    del xi
    _common.log(f"uv_interp: scipy {t_ref:.2f} s ({n_points / t_ref:,.0f} points/s)")
    # relative difference of the values themselves (UVI, not ln UVI: ln UVI crosses 0)
    inverse = prepared.inverse[0]
    max_rel = float(np.nanmax(np.abs(inverse(result) - inverse(ref)) / np.abs(inverse(ref))))
    max_abs_transformed = float(np.nanmax(np.abs(result - ref)))
    same_nan = bool(np.array_equal(np.isnan(result), np.isnan(ref)))

    # end to end: untransformed inputs, checks, UVI and UV-A together
    raw = {}
    for dim in prepared.dims:
        nodes = np.asarray(table[dim].values, dtype=float)
        raw[dim] = rng.uniform(nodes.min(), nodes.max(), n_points)
    raw["sza"] = np.minimum(raw["sza"], 89.0)
    t0 = time.perf_counter()
    index.surface_uv_arrays(*(raw[k] for k in index.INPUTS), table=table, workers=workers)
    t_e2e = time.perf_counter() - t0

    ours = n_points / t_ours
    return {
        "ratio": round(ours / (n_points / t_ref), 2),
        "points_per_s": round(ours, 0),
        "reference_points_per_s": round(n_points / t_ref, 0),
        "single_thread_points_per_s": round(n_points / min(single_times), 0),
        "single_thread_ratio": round((n_points / min(single_times)) / (n_points / t_ref), 2),
        "end_to_end_points_per_s": round(n_points / t_e2e, 0),
        "end_to_end_is": "surface_uv_arrays on untransformed inputs: range checks, axis and "
                         "value transforms, UVI and UV-A together",
        "max_rel_diff": max_rel,
        "max_rel_diff_is": f"max |ours - scipy| / |scipy| on {prepared.names[0]} (after the "
                           "inverse value transform)",
        "max_abs_diff_transformed": max_abs_transformed,
        "same_nan_as_reference": same_nan,
        "points_outside": int(outside.sum()),
        "ours_seconds": [round(t, 3) for t in ours_times],
        "reference_seconds": round(t_ref, 3),
        "table": which,
        "table_shape": list(values.shape),
        "table_build_seconds": table.attrs.get("build_seconds"),
        "table_build_is": f"{table.attrs.get('engine_runs')} TUV-x runs on this machine's "
                          "2 cores (hubkit uv build-table), recorded in the table",
        "points": n_points,
        "threads": workers,
    }


def main(argv=None) -> dict:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--points", type=int, help="points (default 10,000,000; quick 1,000,000)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs of ours (default 3)")
    p.add_argument("--workers", type=int, default=os.cpu_count(),
                   help="threads of ours (default: all CPUs)")
    args = p.parse_args(argv)
    n_points = args.points or (1_000_000 if args.quick else 10_000_000)
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    figures = bench(n_points, args.repeats, args.workers)
    return {
        "benchmark": "uv_interp",
        "reference": "scipy.interpolate.RegularGridInterpolator(method='linear') on the same "
                     "transformed table and points",
        "ratio": figures.pop("ratio"),
        "ratio_is": "our points/s (median of the repeats, all threads) / SciPy's points/s "
                    "(one run: it takes about a minute)",
        "goal": GOAL_RATIO,
        "goal_is": f"ratio >= {GOAL_RATIO:g} with max relative difference <= "
                   f"{GOAL_MAX_REL_DIFF:g}",
        "goal_met": None,
        "quick": bool(args.quick),
        **figures,
        "machine": {**_common.machine(), "load_average_at_start": load_at_start},
    }


if __name__ == "__main__":
    result = main()
    result["goal_met"] = bool(result["ratio"] >= GOAL_RATIO
                              and result["max_rel_diff"] <= GOAL_MAX_REL_DIFF)
    _common.emit(result)
