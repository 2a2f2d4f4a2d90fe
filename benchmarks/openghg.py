"""hubkit against OpenGHG 0.19 on the same real NOAA ObsPack files: ingest, search, retrieval.

The workflow, the same for both, each in a fresh store of its own and a fresh process (imports
not timed): store the three ObsPack files of ``../shared/data/real`` (the BAO tall tower with
three intake heights, the ESP flasks, the POCN25 ship flasks), search each site, then retrieve
every (site, inlet) series and load it. OpenGHG: ``standardise_surface(source_format="NOAA")``,
``search_surface``, ``get_obs_surface(...).data.load()``; hubkit: ``hubkit.ingest.upload``,
``Store.search(site=...)``, ``hubkit.get_obs(...).load()``. The two alternate round by round
(interleaved), so a busy machine slows both alike, after an untimed round each: a virtual
environment installed without bytecode (uv's default), run with ``PYTHONDONTWRITEBYTECODE``, made
OpenGHG compile what it imports lazily inside its timed phases at every round (~10 % of its CPU;
until 2026-12-07 that counted against it).

Reported: CPU seconds of each phase (``time.process_time`` of the child: every thread), the
median over the rounds; ``ratio`` = hubkit speed / OpenGHG speed over the whole workflow =
OpenGHG CPU s / hubkit CPU s (goal >= 5); and the observations each kept per file and inlet
against the file's own count. hubkit's child reads its units registry from hubkit's cache of
pint's parsed definitions (``$XDG_CACHE_HOME/hubkit``), which the first run on a machine builds
(about 0.2 s of CPU more, once).

OpenGHG cannot share hubkit's environment: openghg 0.19.0 requires zarr < 3 (2.18.3), and hubkit
stores Zarr v3 (``zarr>=3.0.3``); pip would also move pandas 3.1 -> 2.2.3, xarray 2026.9 ->
2025.9.1, numpy 2.4 -> 2.3.3, dask to < 2026.4, netCDF4, matplotlib, pint. It runs from its own
virtual environment::

    python -m venv /tmp/openghg-venv && /tmp/openghg-venv/bin/pip install "openghg==0.19.*"
    python -m benchmarks.openghg --openghg-python /tmp/openghg-venv/bin/python [--quick]

(``HUBKIT_OPENGHG_PYTHON`` may name it instead). OpenGHG keeps its configuration in
``$HOME/.openghg``: its child runs with ``HOME`` set to a temporary folder, so the user's own
OpenGHG set-up is never read or changed.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks import _common

GOAL = 5.0
REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
#: (file, site, species, OpenGHG options, the file's observations per inlet [m])
FILES = (
    ("ch4_bao_tower-insitu_1_ccgg_all.nc", "BAO", "ch4",
     {"measurement_type": "insitu"}, {22: 1392, 100: 1398, 300: 1400}),
    ("ch4_esp_surface-flask_2_representative.nc", "ESP", "ch4",
     {"measurement_type": "flask"}, {40: 109}),
    ("co_pocn25_surface-flask_1_ccgg_event.txt", "POCN25", "co",
     {"measurement_type": "flask", "inlet": "20m", "site": "POC"}, {20: 67}),
)

_OPENGHG = r"""
import json, sys, time
spec = json.loads(sys.argv[1])
import openghg
from openghg.util import create_config
create_config(silent=True)
from openghg.standardise import standardise_surface
from openghg.retrieve import search_surface, get_obs_surface
cpu, wall, kept = {}, {}, {}
t, w = time.process_time(), time.perf_counter()
for name, site, species, options, inlets in spec["files"]:
    opts = dict(options)
    site = opts.pop("site", site)
    standardise_surface(filepath=spec["folder"] + "/" + name, source_format="NOAA",
                        network="NOAA", site=site, **opts)
cpu["ingest"], wall["ingest"] = time.process_time() - t, time.perf_counter() - w
t, w = time.process_time(), time.perf_counter()
for name, site, species, options, inlets in spec["files"]:
    search_surface(site=options.get("site", site).lower(), species=species)
cpu["search"], wall["search"] = time.process_time() - t, time.perf_counter() - w
t, w = time.process_time(), time.perf_counter()
for name, site, species, options, inlets in spec["files"]:
    for inlet in inlets:
        obs = get_obs_surface(site=options.get("site", site).lower(), species=species,
                              inlet=f"{inlet}m")
        kept[f"{name}@{inlet}"] = 0 if obs is None else int(obs.data.load().sizes["time"])
cpu["retrieve"], wall["retrieve"] = time.process_time() - t, time.perf_counter() - w
print(json.dumps({"cpu": cpu, "wall": wall, "kept": kept, "version": openghg.__version__}))
"""

_HUBKIT = r"""
import json, sys, time
spec = json.loads(sys.argv[1])
from hubkit import ingest
import hubkit
from hubkit.store import Store
import dask.array, distributed, pint, zarr.codecs, hubkit.io, hubkit.timeseries  # imports
# are not timed (as OpenGHG's are not); the pint registry hubkit.units builds on first use
# is: ~0.02 s of CPU from hubkit's cache of pint's parsed definitions (~/.cache/hubkit), ~0.2 s
# once per machine and pint version while that cache is built
store = Store(spec["store"])
cpu, wall, kept = {}, {}, {}
t, w = time.process_time(), time.perf_counter()
for name, site, species, options, inlets in spec["files"]:
    ingest.upload(store, spec["folder"] + "/" + name)
cpu["ingest"], wall["ingest"] = time.process_time() - t, time.perf_counter() - w
t, w = time.process_time(), time.perf_counter()
for name, site, species, options, inlets in spec["files"]:
    store.search("surface-obs", site=site, species=species)
cpu["search"], wall["search"] = time.process_time() - t, time.perf_counter() - w
t, w = time.process_time(), time.perf_counter()
for name, site, species, options, inlets in spec["files"]:
    for inlet in inlets:
        ds = hubkit.get_obs(store, site=site, species=species, inlet=inlet).load()
        kept[f"{name}@{inlet}"] = int(ds.sizes["time"])
cpu["retrieve"], wall["retrieve"] = time.process_time() - t, time.perf_counter() - w
print(json.dumps({"cpu": cpu, "wall": wall, "kept": kept, "version": hubkit.__version__}))
"""


def _run(python: str, code: str, spec: dict, env: dict) -> dict:
    done = subprocess.run([python, "-c", code, json.dumps(spec)], capture_output=True,
                          text=True, env=env, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"{python} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _openghg_python(given: str | None) -> str:
    python = given or os.environ.get("HUBKIT_OPENGHG_PYTHON") or sys.executable
    probe = subprocess.run([python, "-c", "import openghg; print(openghg.__version__)"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        sys.exit(f"openghg is not importable by {python}; see this module's docstring "
                 "(python -m venv /tmp/openghg-venv && /tmp/openghg-venv/bin/pip install "
                 "'openghg==0.19.*', then --openghg-python /tmp/openghg-venv/bin/python)")
    return python


def main() -> None:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, help="rounds of both (default 3, --quick 1)")
    p.add_argument("--openghg-python", help="a Python with openghg 0.19 installed")
    args = p.parse_args()
    repeats = args.repeats or (1 if args.quick else 3)
    python = _openghg_python(args.openghg_python)
    load_at_start = _common.load_average()
    files = [[name, site, species, opts, list(inlets)] for name, site, species, opts, inlets
             in FILES]
    rounds = {"openghg": [], "hubkit": []}

    def run(tool: str) -> dict:
        with tempfile.TemporaryDirectory(prefix=f"bench-{tool}-") as tmp:
            spec = {"folder": str(REAL), "files": files, "store": f"{tmp}/store"}
            # both may write bytecode: a venv installed without it (uv's default) would
            # otherwise compile what a tool imports lazily inside its timed phases, every round
            env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
            if tool == "openghg":
                env["HOME"] = tmp  # its config and object store: here, not in ~
                return _run(python, _OPENGHG, spec, env)
            return _run(sys.executable, _HUBKIT, spec, env)

    for tool in ("openghg", "hubkit"):  # an untimed round each: bytecode written, caches warm
        run(tool)
    for r in range(repeats):
        for tool in ("openghg", "hubkit"):
            out = run(tool)
            out["total"] = sum(out["cpu"].values())
            out["wall_total"] = sum(out["wall"].values())
            rounds[tool].append(out)
            _common.log(f"round {r + 1}/{repeats} {tool}: " + ", ".join(
                f"{k} {v:.3f} s" for k, v in out["cpu"].items()) + f"; total {out['total']:.3f} "
                "CPU s")
    med = {tool: {phase: round(statistics.median(o["cpu"][phase] for o in outs), 4)
                  for phase in ("ingest", "search", "retrieve")}
           | {"total": round(statistics.median(o["total"] for o in outs), 4)}
           for tool, outs in rounds.items()}
    expected = {f"{name}@{inlet}": n for name, _, _, _, inlets in FILES
                for inlet, n in inlets.items()}
    wall = {tool: round(statistics.median(o["wall_total"] for o in outs), 4)
            for tool, outs in rounds.items()}
    kept = {tool: outs[-1]["kept"] for tool, outs in rounds.items()}
    ratio = med["openghg"]["total"] / med["hubkit"]["total"]
    all_kept = kept["hubkit"] == expected
    _common.emit({
        "benchmark": "openghg",
        "reference": f"OpenGHG {rounds['openghg'][-1]['version']} (standardise_surface, "
                     "search_surface, get_obs_surface) on the same ObsPack files",
        "ratio": round(ratio, 2),
        "ratio_is": "OpenGHG CPU seconds / hubkit's over the whole workflow (medians of the "
                    "rounds, each a fresh process per tool, tools alternating)",
        "goal": GOAL,
        "goal_is": f"ratio >= {GOAL:g} with every observation of the files kept by hubkit",
        "goal_met": bool(ratio >= GOAL and all_kept),
        "stable": _settled([o["total"] for o in rounds["hubkit"]])
        and _settled([o["total"] for o in rounds["openghg"]]),
        "cpu_s": med,
        "wall_s": wall,
        "wall_ratio": round(wall["openghg"] / wall["hubkit"], 2),
        "observations_in_files": sum(expected.values()),
        "observations_kept": {tool: sum(k.values()) for tool, k in kept.items()},
        "kept_per_file_inlet": {"file": expected, **kept},
        "repeats": repeats,
        "machine": _common.machine(),
        "load_average": {"at_start": load_at_start,
                         "at_end": _common.load_average()},
    })


def _settled(totals: list[float]) -> bool | None:
    """Whether the median moved by <= 5 % with the last round (None below 3 rounds)."""
    return _common.settled(totals, 0.05) if len(totals) >= 3 else None


if __name__ == "__main__":
    main()
