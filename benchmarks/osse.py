"""Observing-system simulation experiment (OSSE) of the ozone chain at demo size.

A nature run (:class:`hubkit.simulate.NatureRun`) is observed hour by hour by the four
simulated instruments over Europe (geostationary every hour, low-orbit at 12 UTC); each hour is
fused on the chain's one fusion grid and each 12-h cycle assimilated by the cycled LETKF on the
DAS grid of the chain (:func:`hubkit.osse.run_osse`, the science functions the chain runs). Every
analysis is scored against the truth over the observed cells: total and 0-6 km column RMSE of
the analysis, of its 12-h first guess, of a free run and of the climatology; TROC bias;
local-noon UV index error; observation-space χ²/dof, O−B, O−A and spread.

Reference: the climatology (the DAS background without observations). The ratio is the
climatology's 0-6 km column RMSE over the analysis's, averaged over the cycles after the first
(higher is better; the goal is 2, an analysis error under half the climatology's). CPU and
wall time of the whole experiment (``_common.measure``), the load average and the BLAS kernel are
reported beside it; being a ratio of errors, it needs no interleaved timing.

Run: ``python -m benchmarks.osse [--quick] [--hours H] [--grid NLON NLAT NLEV]``
(full: 72 h, 5° × 5° × 30 levels, 1° pixels; ``--quick``: 72 h, 10° × 10° × 20 levels,
2° pixels).
"""

from __future__ import annotations

import numpy as np

from benchmarks import _common
from hubkit.osse import OsseConfig, run_osse

GOAL_RATIO = 2.0


def main() -> None:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--hours", type=int, default=None, help="hours observed (>= 36)")
    p.add_argument("--grid", type=int, nargs=3, default=None, metavar=("NLON", "NLAT", "NLEV"))
    args = p.parse_args()
    if args.quick:
        cfg = dict(grid=(36, 18, 20), hours=72, spacing=2.0, fusion_cell=(2.0, 2.0, 3600.0),
                   fusion_levels=20)
    else:
        cfg = dict(grid=(72, 36, 30), hours=72, spacing=1.0)
    if args.hours:
        cfg["hours"] = args.hours
    if args.grid:
        cfg["grid"] = tuple(args.grid)
    config = OsseConfig(**cfg)
    _common.log(f"OSSE: {config.hours} h, grid {config.grid}, bbox {config.bbox}")
    got = {}

    def run():
        got["result"] = run_osse(config, progress=_common.log)

    # one run: the experiment takes minutes, and its ratio is of errors, not of times
    timing = _common.measure(run, min_rounds=1, max_rounds=1, warmup=False, label="osse")
    result = got["result"]
    cpu, wall = timing["cpu_s"]["median_s"], timing["wall_s"]["median_s"]
    table = result.table
    _common.log(table.round(3).T.to_string())
    after = table.iloc[1:] if len(table) > 1 else table

    def mean(name):
        return round(float(np.nanmean(after[name])), 3)

    ratio = mean("rmse_trop_climatology") / mean("rmse_trop_analysis")
    per_cycle = (after["rmse_trop_climatology"] / after["rmse_trop_analysis"]).round(2)
    _common.emit({
        "benchmark": "osse",
        "reference": "climatology (no observations): 0-6 km column RMSE against the truth",
        "ratio": round(ratio, 3),
        "ratio_is": "climatology 0-6 km column RMSE / analysis RMSE (an accuracy ratio: CPU "
                    "and wall time of the experiment are reported, there is no timed reference)",
        "goal": GOAL_RATIO,
        "goal_met": bool(ratio >= GOAL_RATIO),
        "cycles": int(len(table)),
        "ratio_per_cycle": per_cycle.tolist(),
        "rmse_trop_du": {k: mean(f"rmse_trop_{k}") for k in
                         ("analysis", "forecast", "free", "climatology")},
        "rmse_total_du": {k: mean(f"rmse_total_{k}") for k in
                          ("analysis", "forecast", "free", "climatology")},
        "troc_bias_percent": mean("troc_bias"),
        "uvi_error_median_percent": mean("uvi_error_median"),
        "chi2_per_dof": [round(float(x), 2) for x in table["chi2"]],
        "omb_rms": mean("omb_rms"),
        "oma_rms": mean("oma_rms"),
        "spread_obs": mean("spread_obs"),
        "layer_recovered": [None if np.isnan(x) else round(float(x), 2)
                            for x in table["layer_recovered"]],
        "negative_values": int(table["negative"].sum()),
        "cpu_s": round(cpu, 1),
        "wall_s": round(wall, 1),
        "timing": timing,
        "config": {"grid": list(config.grid), "hours": config.hours,
                   "spacing": config.spacing, "bbox": list(config.bbox)},
        "machine": _common.machine(),
    })


if __name__ == "__main__":
    main()
