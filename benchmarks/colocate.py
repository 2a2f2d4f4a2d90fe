"""Colocation of satellite soundings with ground stations: 10⁷ simulated soundings against 30
stations within 100 km (``--quick``: 10⁶).

Ours: :func:`hubkit.validate.spatial_pairs` — soundings bucketed in 1° cells by a radix sort of
16-bit keys, each station reading only the cells its search cap touches, the soundings taken in
chunks of 2·10⁶ so memory stays bounded.

Reference, in the same run and on the same chunks: the straightforward per-station NumPy loop —
for each station, the haversine distance to every sounding and ``flatnonzero`` of the ones within
reach. Both must give the same pairs (checked). The ratio is from process CPU time of both,
measured interleaved (ours, reference, ours, …); wall-clock figures and the load average are
reported beside it, and the peak resident memory of the process (``_common.compare``: rounds
repeat until both medians are stable).

Run: ``python -m benchmarks.colocate [--quick] [--soundings N] [--stations M] [--km D]``
"""

from __future__ import annotations

import resource

import numpy as np

from benchmarks import _common
from hubkit.co2.track import haversine
from hubkit.validate import spatial_pairs

GOAL_RATIO = 20.0
CHUNK = 2_000_000


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _soundings(n: int, seed: int = 0):
    """OCO-2-like tracks: 16 orbits a day of narrow swaths, latitudes −80…80°."""
    rng = np.random.default_rng(seed)
    orbit = rng.integers(0, 16, n)
    lat = rng.uniform(-80.0, 80.0, n)
    lon = ((orbit * 22.5 - 180.0) + 0.1 * lat + rng.normal(0.0, 0.05, n) + 180.0) % 360.0 - 180.0
    return lat, lon


def _stations(m: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    return rng.uniform(-60.0, 75.0, m), rng.uniform(-180.0, 180.0, m)


def ours(lat, lon, slat, slon, km):
    parts = [spatial_pairs(lat[a:a + CHUNK], lon[a:a + CHUNK], slat, slon, max_distance_km=km)
             for a in range(0, lat.size, CHUNK)]
    return [(i + a, j) for (i, j, _), a in zip(parts, range(0, lat.size, CHUNK), strict=True)]


def reference(lat, lon, slat, slon, km):
    out = []
    for a in range(0, lat.size, CHUNK):
        la, lo = lat[a:a + CHUNK], lon[a:a + CHUNK]
        ii, jj = [], []
        for j in range(slat.size):
            i = np.flatnonzero(haversine(la, lo, slat[j], slon[j]) <= km)
            ii.append(i)
            jj.append(np.full(i.size, j))
        out.append((np.concatenate(ii) + a, np.concatenate(jj)))
    return out


def _pairs(parts) -> set:
    return {(int(i), int(j)) for ii, jj in parts for i, j in zip(ii, jj, strict=True)}


def main(argv=None) -> None:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--soundings", type=int, default=None)
    p.add_argument("--stations", type=int, default=30)
    p.add_argument("--km", type=float, default=100.0)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    n = args.soundings or (1_000_000 if args.quick else 10_000_000)
    load_at_start = _common.load_average()
    lat, lon = _soundings(n)
    slat, slon = _stations(args.stations)
    _common.log(f"colocate: {n:,} soundings x {args.stations} stations within {args.km} km")

    results = {}

    def side(name, fn):
        def run():
            results[name] = fn(lat, lon, slat, slon, args.km)
        return _common.Side(run, units=n)

    timing = _common.compare({"ours": side("ours", ours), "reference": side("reference",
                                                                              reference)},
                             min_rounds=args.repeats, max_rounds=max(args.repeats, 7),
                             warmup=False, label="colocate")
    same = _pairs(results["ours"]) == _pairs(results["reference"])
    n_pairs = sum(len(i) for i, _ in results["ours"])
    if not same:
        raise SystemExit("colocate: ours and the reference found different pairs")
    ratio = timing["ratio"]
    c_ours = timing["ours"]["cpu_s"]["median_s"]
    result = {
        "benchmark": "colocate",
        "reference": "per-station NumPy loop (haversine to every sounding, flatnonzero)",
        "ratio": round(ratio, 1),
        "ratio_is": "reference CPU seconds / our CPU seconds (medians, interleaved runs)",
        "goal": f"ratio >= {GOAL_RATIO:g} with memory bounded (chunks of {CHUNK:,})",
        "goal_met": ratio >= GOAL_RATIO,
        "stable": timing["stable"],
        "soundings": n, "stations": args.stations, "max_distance_km": args.km,
        "pairs": n_pairs, "same_pairs": same,
        "ours_cpu_s": round(c_ours, 3),
        "reference_cpu_s": round(timing["reference"]["cpu_s"]["median_s"], 3),
        "ours_wall_s": round(timing["ours"]["wall_s"]["median_s"], 3),
        "reference_wall_s": round(timing["reference"]["wall_s"]["median_s"], 3),
        "ours_soundings_per_s_cpu": round(n / c_ours),
        "timing": timing,
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "load_average_at_start": load_at_start,
        "machine": _common.machine(),
    }
    _common.emit(result)


if __name__ == "__main__":
    main()
