"""Surface-UV table interpolation: 10 million points on the full 7-D lookup table
(``--quick``: 1 million), hubkit's multilinear interpolator against SciPy's.

Ours: :class:`hubkit.uv.interp.Multilinear` (cache-sized chunks, one axis collapsed at a time,
cell corners of the three fastest axes side by side, a thread per CPU) on the table's ``uvi``
in its transformed axes and values (ln ozone, cos SZA, ln UVI ...).

Reference, in the same run, on the same transformed table and the same points:
``scipy.interpolate.RegularGridInterpolator(method="linear", bounds_error=False,
fill_value=nan)`` (its N-D linear path forms all 2^7 corner products on full-size arrays).
Both results are compared point by point (largest relative difference reported; goal 1e-12).
The ratio is from CPU time, both timed interleaved until the medians settle
(``_common.compare``); wall-clock rates are reported beside it.

The table is the one shipped with hubkit (:func:`hubkit.uv.table.default_table`); the JSON
also gives the time it took to build (TUV-x runs on this machine, recorded in the table).
Also reported: our single-thread rate, and the end-to-end rate of
:func:`hubkit.uv.index.surface_uv_arrays` (input checks, transforms, UVI and UV-A together).

Run: ``python -m benchmarks.uv_interp [--quick] [--points N] [--repeats N]``
"""

from __future__ import annotations

import os

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
    xi = np.stack(points, axis=-1)  # SciPy's input layout, built outside the timing
    rgi = RegularGridInterpolator(axes, values, method="linear", bounds_error=False,
                                  fill_value=np.nan)
    got = {}

    def ours():
        (got["result"],), got["outside"] = grid(points, workers=workers)

    def reference():
        got["ref"] = rgi(xi)

    timing = _common.compare({"ours": _common.Side(ours, units=n_points),
                              "reference": _common.Side(reference, units=n_points)},
                             min_rounds=repeats, max_rounds=max(repeats, 6), warmup=False,
                             label="uv_interp", budget_s=300)
    single = _common.measure(lambda: grid(points, workers=1), units=n_points, min_rounds=1,
                             max_rounds=1, warmup=False)
    result, outside, ref = got["result"], got["outside"], got["ref"]
    t_ours = timing["ours"]["wall_s"]["median_s"]
    t_ref = timing["reference"]["wall_s"]["median_s"]
    _common.log(f"uv_interp: ours {t_ours:.2f} s, scipy {t_ref:.2f} s (wall medians)")
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
    e2e = _common.measure(lambda: index.surface_uv_arrays(*(raw[k] for k in index.INPUTS),
                                                         table=table, workers=workers),
                          units=n_points, min_rounds=1, max_rounds=1, warmup=False)

    return {
        "ratio": round(timing["ratio"], 2),
        "stable": timing["stable"],
        "points_per_s": round(n_points / t_ours, 0),
        "points_per_cpu_s": round(timing["ours"]["units_per_cpu_s"], 0),
        "reference_points_per_s": round(n_points / t_ref, 0),
        "reference_points_per_cpu_s": round(timing["reference"]["units_per_cpu_s"], 0),
        "wall_ratio": round(timing["wall_ratio"], 2),
        "single_thread_points_per_cpu_s": round(single["units_per_cpu_s"], 0),
        "single_thread_points_per_s": round(single["units_per_wall_s"], 0),
        "timing": timing,
        "end_to_end_points_per_s": round(e2e["units_per_wall_s"], 0),
        "end_to_end_points_per_cpu_s": round(e2e["units_per_cpu_s"], 0),
        "end_to_end_is": "surface_uv_arrays on untransformed inputs: range checks, axis and "
                         "value transforms, UVI and UV-A together",
        "max_rel_diff": max_rel,
        "max_rel_diff_is": f"max |ours - scipy| / |scipy| on {prepared.names[0]} (after the "
                           "inverse value transform)",
        "max_abs_diff_transformed": max_abs_transformed,
        "same_nan_as_reference": same_nan,
        "points_outside": int(outside.sum()),
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
    load_at_start = _common.load_average()
    figures = bench(n_points, args.repeats, args.workers)
    return {
        "benchmark": "uv_interp",
        "reference": "scipy.interpolate.RegularGridInterpolator(method='linear') on the same "
                     "transformed table and points",
        "ratio": figures.pop("ratio"),
        "ratio_is": "our points per CPU second (all threads) / SciPy's (one thread), medians "
                    "of interleaved rounds",
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
