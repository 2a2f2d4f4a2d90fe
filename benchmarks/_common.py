"""Helpers shared by the benchmarks: argument parsing, timing, a moto S3 server, the JSON line."""

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


def mb_per_s(nbytes: int, seconds: float) -> float:
    """Throughput in MB/s (10**6 bytes per second)."""
    return nbytes / 1e6 / seconds if seconds > 0 else math.inf


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
        "load_average_1_5_15min": [round(x, 2) for x in os.getloadavg()],
    }


def emit(result: dict) -> None:
    """Print ``result`` as the last line of stdout: one JSON object on one line."""
    for key in ("benchmark", "reference", "ratio", "goal"):
        if key not in result:
            raise KeyError(f"benchmark result lacks {key!r}")
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
