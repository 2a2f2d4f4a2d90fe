"""Surface-UV lookup table against its engine: interpolation error and speed at random points.

Ours: the shipped table (:func:`hubkit.uv.table.default_table`) interpolated with
:func:`hubkit.uv.index.surface_uv_arrays` at ``--points`` random points inside the table (uniform
in each axis; SZA up to 80°).

Reference, in the same run, at the same points: direct TUV-x runs
(:func:`hubkit.uv.engine.surface_uv`, the engine that made the table; each point is a new
atmosphere, two solver runs). The JSON gives the error of the table against the engine (median,
95th percentile and largest relative difference of the UV index and UV-A), the speed ratio
table / engine, and the build time of the shipped table recorded in it, with the engine's rate
measured now. The speed ratio is from CPU time, table and engine timed interleaved
(``_common.compare``).

"Typical" points (cloud optical thickness <= 10, AOD <= 0.5, albedo <= 0.5) are also reported
apart: uniform sampling of the whole table puts most points under thick cloud and heavy aerosol
over bright ground, where the table's nodes are sparsest.

Run: ``python -m benchmarks.uv_table [--quick] [--points N]``
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks import _common

GOAL_RATIO = 1.0e4
GOAL_P95_ERROR = 0.02
TYPICAL = {"cot": 10.0, "aod": 0.5, "albedo": 0.5}


def random_points(table, n: int, seed: int = 0, upper: dict | None = None) -> dict:
    """``n`` points uniform in each axis of the table (SZA up to 80°, ``upper`` caps others)."""
    rng = np.random.default_rng(seed)
    caps = {"sza": 80.0, **(upper or {})}
    points = {}
    for axis in table["uvi"].dims:
        lo, hi = float(table[axis].min()), float(table[axis].max())
        points[axis] = rng.uniform(lo, min(hi, caps.get(axis, hi)), n)
    return points


def engine_values(pts: dict, label: str) -> tuple[np.ndarray, np.ndarray, float]:
    """UVI and UV-A of direct engine runs at ``pts``, and the seconds they took."""
    from hubkit.uv import engine

    n = pts["sza"].size
    uvi, uva = np.empty(n), np.empty(n)
    t0 = time.perf_counter()
    for i in range(n):
        atm = engine.Atmosphere(ozone=pts["ozone"][i], elevation=pts["elevation"][i],
                                aod=pts["aod"][i], ssa=pts["ssa"][i], cot=pts["cot"][i])
        r = engine.surface_uv(atm, pts["sza"][i], pts["albedo"][i])
        uvi[i], uva[i] = r["uvi"][0, 0], r["uva"][0, 0]
        if (i + 1) % 50 == 0:
            _common.log(f"uv_table: {i + 1}/{n} engine points ({label})")
    return uvi, uva, time.perf_counter() - t0


def errors(ours, reference) -> dict:
    err = np.abs(ours / reference - 1.0)
    return {"median": float(np.median(err)), "p95": float(np.percentile(err, 95)),
            "max": float(err.max())}


def bench(n_points: int) -> dict:
    from hubkit.uv import index
    from hubkit.uv.table import default_table

    table = default_table()
    pts = random_points(table, n_points)
    args = [pts[a] for a in index.INPUTS]

    uvi, uva, flag = index.surface_uv_arrays(*args, table=table, workers=1)
    big = {k: np.resize(v, 1_000_000) for k, v in pts.items()}
    got = {}

    def table_side():
        index.surface_uv_arrays(*[big[a] for a in index.INPUTS], table=table, workers=1)

    def engine_side():
        got["uvi"], got["uva"], _ = engine_values(pts, "whole table")

    # the engine runs are the slow side (seconds per point): two rounds at least, three at most
    timing = _common.compare({"table": _common.Side(table_side, units=1_000_000),
                              "engine": _common.Side(engine_side, units=n_points)},
                             min_rounds=2, max_rounds=3, warmup=False, label="uv_table")
    ref_uvi, ref_uva = got["uvi"], got["uva"]
    table_rate = timing["table"]["units_per_cpu_s"]
    engine_rate = timing["engine"]["units_per_cpu_s"]
    typ = random_points(table, max(n_points // 2, 10), seed=1, upper=TYPICAL)
    typ_uvi, _, _ = index.surface_uv_arrays(*[typ[a] for a in index.INPUTS], table=table)
    typ_ref, _, _ = engine_values(typ, "typical")

    err_uvi = np.abs(uvi / ref_uvi - 1.0)
    worst = int(np.argmax(err_uvi))
    typical_uvi = errors(typ_uvi, typ_ref)
    _common.log(f"uv_table: table {table_rate:,.0f} points/s, engine {engine_rate:.2f} points/s; "
                f"UVI error median {np.median(err_uvi):.2%}, p95 {np.percentile(err_uvi, 95):.2%}, "
                f"max {err_uvi.max():.2%}; typical p95 {typical_uvi['p95']:.2%}")
    full_runs = int(table.attrs.get("engine_runs", 0))
    return {
        "ratio": timing["ratio"],
        "stable": timing["stable"],
        "table_points_per_cpu_s": table_rate,
        "engine_points_per_cpu_s": engine_rate,
        "table_points_per_s": timing["table"]["units_per_wall_s"],
        "engine_points_per_s": timing["engine"]["units_per_wall_s"],
        "wall_ratio": timing["wall_ratio"],
        "timing": timing,
        "points": n_points,
        "flags": dict(zip(*(v.tolist() for v in np.unique(flag, return_counts=True)),
                          strict=True)),
        "uvi_rel_error": errors(uvi, ref_uvi),
        "uva_rel_error": errors(uva, ref_uva),
        "typical_points": int(typ["sza"].size),
        "typical_are": f"uniform with cot <= {TYPICAL['cot']:g}, aod <= {TYPICAL['aod']:g}, "
                       f"albedo <= {TYPICAL['albedo']:g}, SZA <= 80",
        "typical_uvi_rel_error": typical_uvi,
        "worst_uvi_point": {a: round(float(pts[a][worst]), 3) for a in pts},
        "table_shape": list(table["uvi"].shape),
        "table_build_seconds_recorded": table.attrs.get("build_seconds"),
        "table_engine_runs": full_runs,
        "engine_seconds_per_point_now": 1.0 / engine_rate,
    }


def main(argv=None) -> dict:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--points", type=int, help="random points (default 300; quick 60)")
    args = p.parse_args(argv)
    n = args.points or (60 if args.quick else 300)
    load_at_start = _common.load_average()
    figures = bench(n)
    return {
        "benchmark": "uv_table",
        "reference": "direct TUV-x runs (hubkit.uv.engine.surface_uv) at the same random points",
        "ratio": figures.pop("ratio"),
        "ratio_is": "table points per CPU second (one thread, with input checks) / engine "
                    "points per CPU second, interleaved rounds",
        "goal": GOAL_RATIO,
        "goal_is": f"ratio >= {GOAL_RATIO:g} with the 95th-percentile UVI error <= "
                   f"{GOAL_P95_ERROR:.0%} at typical points (SZA <= 80°)",
        "goal_met": None,
        "quick": bool(args.quick),
        **figures,
        "machine": {**_common.machine(), "load_average_at_start": load_at_start},
    }


if __name__ == "__main__":
    result = main()
    result["goal_met"] = bool(result["ratio"] >= GOAL_RATIO
                              and result["typical_uvi_rel_error"]["p95"] <= GOAL_P95_ERROR)
    _common.emit(result)
