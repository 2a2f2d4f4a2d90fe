"""Helpers shared by the benchmarks: argument parsing, timing, a moto S3 server, the JSON line.

The one timing helper is :func:`compare` (and :func:`measure` for one side alone): both sides run
interleaved in the same process, each call timed in CPU seconds (this process and its child
processes: Dask workers, a moto server) and wall seconds, rounds repeated until the medians are
stable, and ``ratio`` taken from CPU time. On a shared machine (2 cores, load average often
above 6) wall-clock ratios measure the other processes as much as the code; the CPU time a piece
of work costs does not depend on how many other processes wait for the cores. What it does not
show, the wall-clock figures, the load average and the BLAS kernel are reported beside it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

#: Credentials the benchmark S3 server accepts (moto accepts any; these only need to be set).
S3_KEY = "hubkit-bench"
S3_SECRET = "hubkit-bench-secret"
_S3_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "FSSPEC_S3_ENDPOINT_URL")


def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with ``--quick`` (a size that runs in about a minute)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true",
                   help="a smaller size that runs in about a minute")
    return p


def log(*args) -> None:
    """Progress message on stderr (stdout's last line is kept for the JSON object)."""
    print(*args, file=sys.stderr, flush=True)


def median(values) -> float:
    return float(statistics.median(values))


def time_once(fn: Callable[[], object]) -> float:
    """Wall-clock seconds of one call of ``fn``."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def time_median(fn: Callable[[], object], repeats: int, *,
                setup: Callable[[], object] | None = None) -> dict:
    """Run ``setup`` (untimed) then ``fn`` (timed) ``repeats`` times.

    Returns ``{"median_s": …, "min_s": …, "times_s": [...]}``.
    """
    times = []
    for _ in range(repeats):
        if setup is not None:
            setup()
        times.append(time_once(fn))
    return summary(times)


def summary(times) -> dict:
    """Median, minimum and all of a list of durations in seconds."""
    return {
        "median_s": round(median(times), 6),
        "min_s": round(min(times), 6),
        "times_s": [round(t, 6) for t in times],
    }


# -- CPU-time comparison, interleaved ------------------------------------------------------------
def cpu_seconds() -> float:
    """CPU seconds (user + system, all threads) of this process and of its child processes,
    living (psutil, recursively: Dask workers, a moto server) and exited (``os.times``)."""
    t = os.times()  # clock-tick resolution: only for the exited children
    total = time.process_time() + t.children_user + t.children_system
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil comes with distributed
        return total
    with contextlib.suppress(psutil.Error):
        for child in psutil.Process().children(recursive=True):
            with contextlib.suppress(psutil.Error):
                c = child.cpu_times()
                total += c.user + c.system
    return total


@dataclass
class Side:
    """One side of a comparison: ``fn`` does ``units`` of work (cells, points, bytes …) per call;
    ``setup`` (untimed) runs before each call, ``check`` (untimed) receives its return value."""

    fn: Callable[[], object]
    units: float = 1.0
    setup: Callable[[], object] | None = None
    check: Callable[[object], object] | None = None


def _timed(side: Side) -> tuple[float, float]:
    if side.setup is not None:
        side.setup()
    c0, t0 = cpu_seconds(), time.perf_counter()
    out = side.fn()
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    if side.check is not None:
        side.check(out)
    return cpu, wall


def settled(values: list[float], rtol: float) -> bool:
    """The median moved by less than ``rtol`` (relative) when the last value was added."""
    if len(values) < 2:
        return False
    now, before = statistics.median(values), statistics.median(values[:-1])
    return abs(now - before) <= rtol * max(abs(now), 1e-12)


def compare(sides: dict[str, Side], *, min_rounds: int = 3, max_rounds: int = 9,
            rtol: float = 0.05, budget_s: float | None = None, warmup: bool = True,
            label: str = "") -> dict:
    """Time every side of ``sides`` interleaved, round after round, until their medians are stable.

    Each round runs every side once, in an order that alternates from round to round (so a
    drift of the machine's load hits both alike). After ``min_rounds`` rounds, stop when the
    median CPU time per call of every side moved by less than ``rtol`` with the last round, or
    after ``max_rounds``, or when ``budget_s`` wall seconds have passed; ``stable`` says which.

    The first side is ours, the second the reference (if any). ``ratio`` is the reference's
    median CPU seconds per unit of work over ours (higher is better); ``wall_ratio`` the same
    from wall-clock medians, for comparison only.
    """
    names = list(sides)
    if warmup:
        for name in names:
            _timed(sides[name])
    cpu = {n: [] for n in names}
    wall = {n: [] for n in names}
    t_start = time.perf_counter()
    stable = False
    rounds = 0
    while rounds < max_rounds:
        order = names if rounds % 2 == 0 else names[::-1]
        for name in order:
            c, w = _timed(sides[name])
            cpu[name].append(c)
            wall[name].append(w)
        rounds += 1
        log(f"  {label + ': ' if label else ''}round {rounds}: " + ", ".join(
            f"{n} {cpu[n][-1]:.3g} s CPU / {wall[n][-1]:.3g} s wall" for n in names))
        if rounds >= min_rounds:
            stable = all(settled(cpu[n], rtol) for n in names)
            if stable:
                break
        if budget_s is not None and time.perf_counter() - t_start > budget_s:
            break
    out: dict = {
        "method": ("CPU seconds (this process + child processes, all threads) of each side, "
                   "medians of interleaved rounds (order alternating)"),
        "rounds": rounds,
        "stable": stable,
        "stable_is": (f"every side's median CPU time moved by <= {rtol:.0%} with the last "
                      f"round (min {min_rounds}, max {max_rounds} rounds"
                      + (f", budget {budget_s:g} s" if budget_s else "") + ")"),
        "load_average": load_average(),
    }
    for name in names:
        c, w, units = median(cpu[name]), median(wall[name]), sides[name].units
        out[name] = {
            "units_per_call": units,
            "cpu_s": summary(cpu[name]),
            "wall_s": summary(wall[name]),
            "units_per_cpu_s": units / c if c > 0 else math.inf,
            "units_per_wall_s": units / w if w > 0 else math.inf,
            "cpu_over_wall": round(c / w, 3) if w > 0 else None,
        }
    if len(names) >= 2:
        ours, ref = out[names[0]], out[names[1]]
        out["ratio"] = ours["units_per_cpu_s"] / ref["units_per_cpu_s"]
        out["wall_ratio"] = ours["units_per_wall_s"] / ref["units_per_wall_s"]
    return out


def measure(fn: Callable[[], object], *, units: float = 1.0, **kw) -> dict:
    """CPU and wall figures of one piece of work alone (:func:`compare` with one side)."""
    return compare({"ours": Side(fn, units)}, **kw)["ours"]


def stable_note(timing: dict) -> str:
    """What a reader should make of a ratio whose medians did or did not settle."""
    if timing["stable"]:
        return f"stable after {timing['rounds']} rounds"
    return (f"NOT stable after {timing['rounds']} rounds (load average "
            f"{timing['load_average'][0]}): read the ratio with its spread")


def mb_per_s(nbytes: int, seconds: float) -> float:
    """Throughput in MB/s (10**6 bytes per second)."""
    return nbytes / 1e6 / seconds if seconds > 0 else math.inf


def blas() -> list[dict]:
    """The BLAS/OpenMP libraries loaded in this process (threadpoolctl): kernel, version,
    threads. Empty when threadpoolctl is absent (it is in the ``bench`` extra)."""
    try:
        import threadpoolctl
    except ImportError:
        return []
    keys = ("internal_api", "version", "architecture", "num_threads", "threading_layer")
    return [{k: lib.get(k) for k in keys if lib.get(k) is not None}
            for lib in threadpoolctl.threadpool_info()]


def load_average() -> list[float]:
    """1, 5 and 15-minute load average of the machine."""
    return [round(x, 2) for x in os.getloadavg()]


#: load average when this module was first imported: the start of a benchmark
LOAD_AT_START = load_average()


def machine() -> dict:
    """What the figures were measured on."""
    import numpy
    import xarray
    import zarr

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "numpy": numpy.__version__,
        "xarray": xarray.__version__,
        "zarr": zarr.__version__,
        # other processes on the machine make timings noisy: say how busy it was
        "load_average_1_5_15min": load_average(),
        "load_average_at_start": LOAD_AT_START,
        "blas": blas(),
    }


def emit(result: dict) -> None:
    """Print ``result`` as the last line of stdout: one JSON object on one line."""
    for key in ("benchmark", "reference", "ratio", "goal"):
        if key not in result:
            raise KeyError(f"benchmark result lacks {key!r}")
    # every result says how busy the machine was and which BLAS kernel ran
    result.setdefault("machine", machine())
    result["machine"].setdefault("blas", blas())
    result["load_average"] = {"at_start": LOAD_AT_START, "at_end": load_average()}
    sys.stdout.flush()
    sys.stderr.flush()
    print(json.dumps(result, separators=(",", ":"), default=_json_default), flush=True)


def _json_default(obj):
    if hasattr(obj, "item"):  # NumPy scalars
        return obj.item()
    return str(obj)


# -- S3 (moto) ---------------------------------------------------------------------------------
@dataclass
class S3Server:
    """A running moto S3 server: its endpoint, a fresh bucket and an s3fs filesystem on it."""

    endpoint: str
    bucket: str
    fs: object
    mode: str


_MOTO_CHILD = (
    "import logging, sys\n"
    "logging.getLogger('werkzeug').setLevel(logging.ERROR)\n"  # no line per request
    "from moto.server import ThreadedMotoServer\n"
    "s = ThreadedMotoServer(ip_address='127.0.0.1', port=0, verbose=False)\n"
    "s.start()\n"
    "print(s.get_host_and_port()[1], flush=True)\n"
    "sys.stdin.read()\n"  # runs until the parent closes our stdin (or dies)
    "s.stop()\n"
)


@contextlib.contextmanager
def moto_s3(mode: str = "process") -> Iterator[S3Server]:
    """A moto S3 server on 127.0.0.1 (a free port), credentials in env, and a fresh bucket.

    ``mode="thread"`` runs moto in a thread of this process (as the tests do): it then competes
    with the code under test for the GIL. ``mode="process"`` runs it in a child process, closer to
    a real object store, which never shares our interpreter. The environment variables
    ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY`` and ``FSSPEC_S3_ENDPOINT_URL`` are set while
    the context is open and restored afterwards.
    """
    import s3fs

    saved = {k: os.environ.get(k) for k in _S3_ENV}
    server = child = None
    try:
        if mode == "thread":
            from moto.server import ThreadedMotoServer

            server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            server.start()
            host, port = server.get_host_and_port()
        elif mode == "process":
            child = subprocess.Popen(
                [sys.executable, "-c", _MOTO_CHILD],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            )
            line = child.stdout.readline().strip()
            if not line.isdigit():
                raise RuntimeError(f"the moto server process did not start (said {line!r})")
            host, port = "127.0.0.1", int(line)
        else:
            raise ValueError(f"mode={mode!r}: expected 'thread' or 'process'")
        endpoint = f"http://{host}:{port}"
        os.environ.update(AWS_ACCESS_KEY_ID=S3_KEY, AWS_SECRET_ACCESS_KEY=S3_SECRET,
                          FSSPEC_S3_ENDPOINT_URL=endpoint)
        fs = s3fs.S3FileSystem(endpoint_url=endpoint, key=S3_KEY, secret=S3_SECRET,
                               skip_instance_cache=True)
        bucket = f"hubkit-bench-{uuid.uuid4().hex[:10]}"
        fs.mkdir(bucket)
        yield S3Server(endpoint=endpoint, bucket=bucket, fs=fs, mode=mode)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if server is not None:
            server.stop()
        if child is not None:
            with contextlib.suppress(Exception):
                child.stdin.close()
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
