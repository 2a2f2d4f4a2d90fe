"""Smoke test of the hubkit image's environment: a small real job, not only imports.

Simulates one OCO-2-like orbit, writes it as a Lite file, uploads it into a fresh store in a
temporary directory, opens it lazily and computes XCO2 statistics on a Dask LocalCluster, then
checks that the programs the hub starts (``jupyterhub-singleuser``, ``dask``) are installed.
The image runs it at build time; ``tests/test_image.py`` runs it in a fresh venv made from
``requirements.lock``. The last line printed is ``SMOKE OK `` followed by a JSON summary.

Usage: python smoke.py [--store URL]   (default: a new temporary directory)
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

#: Modules the hub and the workers import besides hubkit.
MODULES = ("jupyterhub", "jupyterlab", "ipykernel", "ipywidgets", "dask_gateway",
           "jupyter_server_proxy", "distributed", "s3fs", "zarr", "cartopy", "netCDF4")
#: Programs the hub and Dask Gateway start in the image.
PROGRAMS = ("jupyterhub-singleuser", "dask", "hubkit")


def run(store_url: str | None, work: Path) -> dict:
    import dask

    from hubkit import compute, ingest, simulate
    from hubkit.io.oco2_lite import write_oco2_lite
    from hubkit.store import open_store

    t0 = time.perf_counter()
    (truth,) = simulate.oco2_tracks(1, seconds=60.0, seed=7)
    path = write_oco2_lite(truth, work / "oco2_LtCO2_160831_smoke.nc4")
    store = open_store(store_url or str(work / "store"))
    item = ingest.upload(store, path)
    again = ingest.upload(store, path)  # content-derived id: a repeat is a no-op
    hits = store.search("oco2-soundings")
    ds = store.open(item)
    with compute.client(n_workers=1, threads_per_worker=1) as client:
        backend = client.hubkit_backend.kind
        n, mean = dask.compute(ds["xco2"].count(), ds["xco2"].mean())
    expected_n = int(truth["xco2"].count())
    expected_mean = float(truth["xco2"].mean())
    return {
        "store": store.url,
        "product": item.id,
        "repeat_is_noop": again.id == item.id and len(hits) == 1,
        "dask_backend": backend,
        "n": int(n),
        "expected_n": expected_n,
        "xco2_mean": round(float(mean), 4),
        "expected_xco2_mean": round(expected_mean, 4),
        "seconds": round(time.perf_counter() - t0, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", help="store URL (default: a new temporary directory)")
    args = parser.parse_args(argv)
    for var in ("HUBKIT_DASK", "DASK_SCHEDULER_ADDRESS", "DASK_GATEWAY__ADDRESS"):
        os.environ.pop(var, None)  # the smoke job always runs on a LocalCluster
    os.environ.setdefault("MPLBACKEND", "Agg")

    for name in MODULES:
        importlib.import_module(name)
    bindir = Path(sys.executable).parent
    missing = [p for p in PROGRAMS if not (bindir / p).exists() and not shutil.which(p)]
    if missing:
        print(f"SMOKE FAILED: programs not installed: {', '.join(missing)}")
        return 1

    with tempfile.TemporaryDirectory(prefix="hubkit-smoke-") as tmp:
        result = run(args.store, Path(tmp))
    problems = []
    if result["n"] != result["expected_n"] or result["n"] == 0:
        problems.append(f"read back {result['n']} soundings, wrote {result['expected_n']}")
    if abs(result["xco2_mean"] - result["expected_xco2_mean"]) > 1e-3:
        problems.append(f"mean XCO2 {result['xco2_mean']} != {result['expected_xco2_mean']}")
    if not 380.0 < result["xco2_mean"] < 420.0:
        problems.append(f"mean XCO2 {result['xco2_mean']} ppm is not plausible")
    if not result["repeat_is_noop"]:
        problems.append("uploading the same file twice made a second product")
    if problems:
        print("SMOKE FAILED: " + "; ".join(problems))
        return 1
    print("SMOKE OK " + json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
