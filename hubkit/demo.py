"""The demo job: simulate OCO-2 orbits, upload them (and any real files), search, compute, map.

It runs on the embedded defaults (the local store, a LocalCluster) or on whatever store and Dask
backend the environment names, exactly as a user's notebook would.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

__all__ = ["run_demo"]

log = logging.getLogger(__name__)

#: The region and day the demo searches: the South African Highveld, 2016-08-31 (the real
#: oco2peak segment of orbit 11522 lies here, and so does the first simulated orbit).
DEMO_BBOX = (28.0, -29.0, 30.0, -24.0)
DEMO_DAY = "2016-08-31"


def run_demo(store_url: str | None = None, out_dir="hubkit-demo", inputs=(), orbits: int = 4,
             echo=None) -> dict:
    """Run the demo; return a summary (product ids, statistics, figure path).

    Parameters
    ----------
    store_url : str, optional
        Store to use (default: ``HUBKIT_STORE`` or the local store).
    out_dir : path
        Where simulated input files and figures are written.
    inputs : list of paths
        Extra files to upload (any supported format), e.g. a real OCO-2 Lite file.
    orbits : int
        Number of simulated orbits.
    echo : callable, optional
        Called with each progress message (the CLI passes ``print``); logged otherwise.
    """
    import dask

    from hubkit import compute, plot, simulate
    from hubkit.io.oco2_lite import write_oco2_lite
    from hubkit.store import open_store

    say = echo or log.info
    t0 = time.perf_counter()
    out = Path(out_dir)
    (out / "inputs").mkdir(parents=True, exist_ok=True)
    store = open_store(store_url)
    say(f"store: {store.url}")

    files = []
    for ds in simulate.oco2_tracks(orbits, seed=2016):
        orbit = int(ds["orbit"].values[0])
        day = str(ds["time"].values[0])[:10].replace("-", "")[2:]
        path = out / "inputs" / f"oco2_LtCO2_{day}_sim{orbit}.nc4"
        if not path.exists():
            write_oco2_lite(ds, path)
        files.append(path)
    files.extend(Path(p) for p in inputs)
    say(f"uploading {len(files)} file(s) ({orbits} simulated orbits, {len(inputs)} given)")
    items = store.upload_many(files, progress=True)
    for path, item in zip(files, items, strict=True):
        say(f"  {path.name:<58} -> {item.id}")

    hits = store.search("oco2-soundings", bbox=DEMO_BBOX, datetime=DEMO_DAY)
    say(f"search oco2-soundings in bbox {DEMO_BBOX} on {DEMO_DAY}: {len(hits)} product(s)")

    with compute.client() as client:
        backend = getattr(client, "hubkit_backend", None)
        say(f"dask: {backend.describe() if backend else client}")
        opened = [store.open(item) for item in items]
        good = [_good_soundings(ds) for ds in opened]
        stats = dask.compute(*[
            {"n": ds["xco2"].count(), "mean": ds["xco2"].mean(), "std": ds["xco2"].std()}
            for ds in good
        ])
        summary_rows = []
        for item, s in zip(items, stats, strict=True):
            row = {"id": item.id, "n": int(s["n"]), "mean": float(s["mean"]),
                   "std": float(s["std"])}
            summary_rows.append(row)
            say(f"  {item.id}: {row['n']:6d} good soundings, XCO2 {row['mean']:.2f} "
                f"± {row['std']:.2f} ppm")
        fig = plot.soundings_map(
            [ds.compute() for ds in good],
            title=f"XCO2 of {sum(r['n'] for r in summary_rows):,} good soundings",
        )
    figure = out / "soundings_map.png"
    fig.savefig(figure, dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    say(f"map: {figure}")
    say(f"done in {time.perf_counter() - t0:.1f} s")
    return {"store": store.url, "products": summary_rows, "hits": [h.id for h in hits],
            "figure": str(figure)}


def _good_soundings(ds):
    """Soundings with ``xco2_quality_flag == 0`` where the flag exists (all others kept)."""
    if "xco2_quality_flag" in ds:
        return ds.where(ds["xco2_quality_flag"] == 0)
    return ds
