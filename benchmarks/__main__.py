"""Run every benchmark in turn: ``python -m benchmarks [--quick] [topic ...]``.

Each ``benchmarks/<topic>.py`` (not ``_``-prefixed) runs as its own subprocess,
``python -m benchmarks.<topic> [--quick]``, with its progress passed through. At the end one table
of every benchmark (ratio, goal, met or not, whether its timing settled, the load average) goes
to stderr, and the last line of each (its JSON object) to stdout, one per line, in the order they
ran. The exit status
is 1 when a benchmark failed (crashed, or printed no JSON), whatever the goals say.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def topics() -> list[str]:
    """Benchmark modules in this folder, alphabetical."""
    return sorted(p.stem for p in HERE.glob("*.py")
                  if not p.stem.startswith("_") and p.stem != "run_all")


def run(topic: str, quick: bool) -> tuple[int, str | None, float]:
    """Run one benchmark; return (exit status, its last stdout line, seconds)."""
    cmd = [sys.executable, "-m", f"benchmarks.{topic}"] + (["--quick"] if quick else [])
    print(f"== {' '.join(['python'] + cmd[1:])}", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=HERE.parent, stdout=subprocess.PIPE, text=True)
    last = None
    for line in proc.stdout:  # pass the benchmark's own output through as it comes
        sys.stderr.write(line)
        if line.strip():
            last = line.rstrip("\n")
    status = proc.wait()
    return status, last, time.perf_counter() - t0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="pass --quick to every benchmark")
    p.add_argument("only", nargs="*", help="topics to run (default: all)")
    args = p.parse_args(argv)
    available = topics()
    unknown = [t for t in args.only if t not in available]
    if unknown:
        p.error(f"unknown benchmark(s) {unknown}; available: {available}")
    failed = False
    lines = []
    for topic in args.only or available:
        status, last, seconds = run(topic, args.quick)
        ok = status == 0 and last is not None
        if ok:
            try:
                json.loads(last)
            except ValueError:
                ok = False
        if not ok:
            failed = True
            last = json.dumps({"benchmark": topic, "error": f"exit status {status}",
                               "last_line": last})
        print(f"== {topic}: {seconds:.0f} s", file=sys.stderr, flush=True)
        lines.append(last)
    for line in table(lines):
        print(line, file=sys.stderr, flush=True)
    for line in lines:
        print(line, flush=True)
    return 1 if failed else 0


def table(lines: list[str]) -> list[str]:
    """One row per benchmark: ratio, goal, met or not, whether the timing settled, the load."""
    rows = [("benchmark", "ratio", "goal", "met", "stable", "load 1-min start/end")]
    for line in lines:
        r = json.loads(line)
        if "error" in r:
            rows.append((r["benchmark"], "-", "-", "FAILED", "-", "-"))
            continue
        met = r.get("goal_met")
        load = r.get("load_average", {})
        rows.append((
            r["benchmark"], f"{r['ratio']:.3g}", str(r.get("goal_is") or r["goal"])[:60],
            {True: "yes", False: "no", None: "?"}.get(met, str(met)),
            {True: "yes", False: "NO", None: "-"}.get(r.get("stable")),
            "/".join(str(v[0]) for v in (load.get("at_start"), load.get("at_end")) if v)))
    widths = [max(len(row[k]) for row in rows) for k in range(len(rows[0]))]
    out = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return [out[0], "-" * len(out[0]), *out[1:]]


if __name__ == "__main__":
    sys.exit(main())
