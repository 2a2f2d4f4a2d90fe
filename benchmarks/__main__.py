"""Run every benchmark in turn: ``python -m benchmarks [--quick] [topic ...]``.

Each ``benchmarks/<topic>.py`` (not ``_``-prefixed) runs as its own subprocess,
``python -m benchmarks.<topic> [--quick]``, with its progress passed through. At the end the last
line of each (its JSON object) is printed, one per line, in the order they ran. The exit status
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
    for line in lines:
        print(line, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
