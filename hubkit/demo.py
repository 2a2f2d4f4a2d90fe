"""The demo job: the main job of hubkit, after AURORA's Data Processing Chain (Gai et al. 2021).

It simulates a few hours of L2 ozone retrievals of several instruments and a few OCO-2 orbits,
uploads them (and any real files), searches and computes XCO2 statistics on Dask, runs the
processing chain (fusion per hour → assimilation per 12-h cycle → tropospheric ozone and surface
UV per DAS product; OCO-2 peaks beside it) and writes ``report.html`` with maps of fused ozone,
the tropospheric column, the UV index and the detected plumes, the step timings and the
chain's per-day processing report. It runs on the embedded defaults (the local store, a
LocalCluster) or on whatever store and Dask backend the environment names, exactly as a user's
notebook would.

References
----------
.. [1] Gai et al., Remote Sens. 13, 210, 2021. doi:10.3390/rs13020210
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

__all__ = ["run_demo"]

log = logging.getLogger(__name__)

#: The region and day the demo searches: the South African Highveld, 2016-08-31 (the real
#: oco2peak segment of orbit 11522 lies here, and so does the first simulated orbit).
DEMO_BBOX = (28.0, -29.0, 30.0, -24.0)
DEMO_DAY = "2016-08-31"
#: The simulated L2 ozone: hours from 00 UTC of this day over Europe, observing the nature run
#: :data:`NATURE` (geostationary instruments every hour, low-orbit ones at 12 UTC); each 12-h
#: assimilation cycle starts from the previous one's analysis, so the report can show the
#: cycling against the truth.
OZONE_DAY = "2024-07-01"
#: The span searched for the chain's ozone products (the demo's hours and their forecasts).
OZONE_PERIOD = f"{OZONE_DAY}/2024-07-04"
OZONE_BBOX = (-15.0, 35.0, 35.0, 60.0)
OZONE_SPACING = 2.0  # ground-pixel spacing of the simulated retrievals [°]
OZONE_INSTRUMENTS = ("S4-UV", "S5-UV", "S5-TIR", "S4-VIS")
LEO_HOUR = 12


def _nature():
    from hubkit.simulate import NatureRun

    return NatureRun(start=f"{OZONE_DAY}T00:00")


def run_demo(store_url: str | None = None, out_dir="hubkit-demo", inputs=(), orbits: int = 4,
             echo=None, *, ozone_hours: int = 36, progress: bool = True) -> dict:
    """Run the demo; return a summary (product ids, statistics, figures, chain, report path).

    Parameters
    ----------
    store_url : str, optional
        Store to use (default: the scratch store :func:`hubkit.store.scratch_store_url`
        ``("demo")``, never ``HUBKIT_STORE``: the demo's products are simulated).
    out_dir : path
        Where simulated input files and figures are written.
    inputs : list of paths
        Extra files to upload (any supported format), e.g. a real OCO-2 Lite file.
    orbits : int
        Number of simulated orbits.
    echo : callable, optional
        Called with each progress message (the CLI passes ``print``); logged otherwise.
    ozone_hours : int
        Hours of simulated L2 ozone of the nature run (one file per hour), from 00 UTC of
        :data:`OZONE_DAY` over :data:`OZONE_BBOX`; 36 h make three 12-h assimilation cycles;
        0 skips the ozone chain. [h]
    progress : bool
        Progress bars (tqdm, on stderr) for the uploads and the chain's steps.

    Returns
    -------
    dict
        ``store``; ``products`` (per soundings product: id, n, mean, std of XCO2), ``hits``,
        ``figure`` (the soundings map); ``chain`` (the chain's table, one row per step),
        ``maps`` (name → PNG path), ``captions`` (name → the figure's caption on the page)
        and ``report`` (the HTML page).
    """
    import dask

    from hubkit import chain, compute, ingest, plot, simulate
    from hubkit.chain.report import cycle_table, simulated_inputs, write_report
    from hubkit.io.oco2_lite import write_oco2_lite
    from hubkit.store import open_store, scratch_store_url

    say = echo or log.info
    t0 = time.perf_counter()
    out = Path(out_dir)
    (out / "inputs").mkdir(parents=True, exist_ok=True)
    store = open_store(store_url or scratch_store_url("demo"))
    say(f"store: {store.url}")

    files = []
    for ds in simulate.oco2_tracks(orbits, seed=2016):
        orbit = int(ds["orbit"].values[0])
        day = str(ds["time"].values[0])[:10].replace("-", "")[2:]
        path = out / "inputs" / f"simulated_oco2_{day}_orbit{orbit}.nc4"  # no real-looking name
        if not path.exists():
            write_oco2_lite(ds, path)
        files.append(path)
    files.extend(Path(p) for p in inputs)
    say(f"uploading {len(files)} file(s) ({orbits} simulated orbits, {len(inputs)} given)")
    items = ingest.upload_many(store, files, progress=progress)
    for path, item in zip(files, items, strict=True):
        say(f"  {path.name:<58} -> {item.id}")
    l2_files = _simulate_l2_ozone(out / "inputs", ozone_hours)
    if l2_files:
        say(f"uploading {len(l2_files)} hour(s) of simulated L2 ozone "
            f"({', '.join(OZONE_INSTRUMENTS)})")
        l2_items = ingest.upload_many(store, l2_files, progress=progress)
        say(f"  {len(l2_items)} l2-ozone product(s): {', '.join(i.id for i in l2_items)}")

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
        good = [ds.compute() for ds in good]
        fig = plot.soundings_map(
            good, title=f"XCO2{_simulated(items)} of {sum(r['n'] for r in summary_rows):,} "
                        "good soundings",
        )
        figure = _save(fig, out / "soundings_map.png")
        say(f"map: {figure}")

        steps = _demo_steps()
        say(f"processing chain: {', '.join(s.name for s in steps)}")
        report = chain.reconcile(store, steps, client=client, progress=progress)
    say(str(report))
    chain_maps, captions = _chain_maps(store, out, good, items)
    maps = {"soundings": figure, **chain_maps}
    captions["soundings"] = (
        f"XCO2 of the good soundings (quality flag 0) of the {len(items)} OCO-2 product(s) "
        f"uploaded: {orbits} simulated orbit(s)"
        + (f" and {len(inputs)} given file(s)" if inputs else "") + ".")
    for name, path in maps.items():
        say(f"map ({name}): {path}")
    cycles = cycle_table(store)
    for row in cycles.to_dict("records"):
        truth = (f"; against the truth: 0-6 km column RMSE {row['rmse_trop_analysis']:.2f} DU "
                 f"(climatology {row['rmse_trop_climatology']:.2f}), total column "
                 f"{row['rmse_total_analysis']:.1f} DU (climatology "
                 f"{row['rmse_total_climatology']:.1f})" if "rmse_trop_analysis" in row
                 and np.isfinite(row["rmse_trop_analysis"]) else "")
        say(f"cycle {row['time']:%Y-%m-%d %H} UTC ({row['start']} start): {row['n_obs']:.0f} "
            f"profiles, O-B {row['omb_rms']:.2f}, O-A {row['oma_rms']:.2f}, chi2/dof "
            f"{row['chi2']:.2f}{truth}")
    processing = write_report(store, out, diagnostics=cycles if len(cycles) else None)
    timings = step_timings(store, report)
    page = _write_page(out, store, report, maps, processing, summary_rows,
                       time.perf_counter() - t0, simulated_inputs(store), timings,
                       captions=captions)
    say(f"done in {time.perf_counter() - t0:.1f} s")
    say(f"report: {page.resolve()}")
    return {"store": store.url, "products": summary_rows, "hits": [h.id for h in hits],
            "figure": str(figure), "chain": report.table().to_dict("records"),
            "failed": report.failed, "maps": {k: str(v) for k, v in maps.items()},
            "captions": captions,
            "timings": timings.to_dict("records"), "report": str(page)}


#: The store record (kind, name) of the step timings of the runs that made the products.
TIMINGS_RECORD = ("demo", "step-timings")
_TIMING_COLUMNS = ["step", "output", "expected", "present", "done", "failed", "waiting",
                   "seconds"]


def step_timings(store, report):
    """Per step, the timings of the run that made its products, not of a run that made nothing.

    A step whose units were done in this run takes this run's row (and the row is recorded in
    the store, :data:`TIMINGS_RECORD`); a step with nothing done now keeps the row recorded by
    the last run that did some (its ``expected``/``present`` brought up to date). The column
    ``timed`` says which run each row is from (UTC), ``"this run"`` for this one.

    Returns
    -------
    pandas.DataFrame
        One row per step: the columns of :meth:`Report.table` shown in the report, ``seconds``
        (worker time of the units done in the timed run) [s] and ``timed``.
    """
    from datetime import datetime, timezone

    import pandas as pd

    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    table = report.table()[_TIMING_COLUMNS]
    record = store.get_record(*TIMINGS_RECORD) or {}
    kept = {row["step"]: row for row in record.get("rows", []) if isinstance(row, dict)}
    rows, changed = [], False
    for row in table.to_dict("records"):
        previous = kept.get(row["step"])
        if row["done"] > 0 or previous is None:
            changed |= row["done"] > 0
            row["timed"] = now
            kept[row["step"]] = dict(row)
            row["timed"] = "this run" if row["done"] > 0 else "-"
        else:
            row = {**row, "done": previous.get("done", 0), "failed": previous.get("failed", 0),
                   "seconds": float(previous.get("seconds", 0.0)),
                   "timed": previous.get("timed", "")}
        rows.append(row)
    if changed:
        try:
            store.put_record(*TIMINGS_RECORD, {"rows": list(kept.values())})
        except OSError as exc:  # a read-only store: the page still shows this run's timings
            log.warning("cannot record the step timings in %s: %s", store.url, exc)
    return pd.DataFrame(rows, columns=[*_TIMING_COLUMNS, "timed"])


def _good_soundings(ds):
    """Soundings with ``xco2_quality_flag == 0`` where the flag exists (all others kept)."""
    if "xco2_quality_flag" in ds:
        return ds.where(ds["xco2_quality_flag"] == 0)
    return ds


def _simulate_l2_ozone(folder: Path, hours: int) -> list[Path]:
    """One L2 ozone file per hour from 00 UTC of :data:`OZONE_DAY`, observing the nature run
    (kept if already there)."""
    from hubkit import simulate
    from hubkit.io.l2_ozone import write_l2_ozone

    nature = _nature()
    t0 = np.datetime64(f"{OZONE_DAY}T00:00", "h")
    paths = []
    for k in range(int(hours)):
        hour = t0 + np.timedelta64(k, "h")
        stamp = str(hour).replace("-", "").replace("T", "")[:10]
        path = folder / f"l2_o3_sim_{stamp}.nc"
        if not path.exists():
            names = tuple(n for n in OZONE_INSTRUMENTS
                          if simulate.O3_INSTRUMENTS[n]["platform"] == "GEO"
                          or k % 24 == LEO_HOUR)
            ds = simulate.l2_ozone(instruments=names, bbox=OZONE_BBOX, start=str(hour),
                                   hours=1, spacing=OZONE_SPACING, seed=k, truth=nature)
            write_l2_ozone(ds, path)
        paths.append(path)
    return paths


def _demo_steps():
    """The default chain (fusion, assimilation, TROC, surface UV, CO2 peaks)."""
    from hubkit import chain

    return chain.default_steps()


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _latest(store, collection: str):
    """The product of ``collection`` in :data:`OZONE_PERIOD` with the latest data, or None."""
    hits = store.search(collection, datetime=OZONE_PERIOD)
    if not hits:
        return None
    return max(hits, key=lambda i: (str(i.common_metadata.end_datetime or i.datetime), i.id))


def _first_time(da):
    return da.isel(time=0) if "time" in da.dims else da


def _simulated(items) -> str:
    """For a title: ``" (simulated)"`` when every product is labelled ``hubkit:simulated``,
    ``" (3 of 4 products simulated)"`` when some are, else nothing."""
    items = list(items)
    n = sum(bool(i.properties.get("hubkit:simulated")) for i in items)
    if not n:
        return ""
    return " (simulated)" if n == len(items) else f" ({n} of {len(items)} products simulated)"


def _by_time(items):
    return sorted(items, key=lambda i: (str(i.common_metadata.start_datetime or i.datetime),
                                        i.id))


def _chain_maps(store, out: Path, soundings, sounding_items):
    """The chain's figures and their captions: fused ozone per level and hour of the latest
    assimilation cycle, the analyses at every analysis time (tropospheric and total column),
    the UV index of the latest, the OCO-2 plumes detected and their along-track XCO2.

    Returns ``(maps, captions)``: name -> PNG path, name -> caption (plain text).
    """
    import json

    import numpy as np
    import pandas as pd

    from hubkit import chain, co2, plot
    from hubkit.plot import report as figures
    from hubkit.plot.scales import flag_summary, lat_lon_label

    maps: dict[str, Path] = {}
    captions: dict[str, str] = {}
    latest = _latest(store, "das")
    cycle_end = str(latest.datetime)[:19] if latest is not None else None
    fused_items = store.search("fused-ozone", datetime=OZONE_PERIOD)
    if cycle_end:  # the hours of the latest assimilation cycle
        end = np.datetime64(cycle_end)
        fused_items = [i for i in fused_items if end - np.timedelta64(12, "h")
                       <= np.datetime64(str(i.common_metadata.start_datetime or i.datetime)[:19])
                       < end]
    if fused_items:
        fused = [store.open(i).load() for i in _by_time(fused_items)]
        shown = min(len(fused), 6)
        fig = figures.fused_ozone_panels(
            fused, max_hours=6,
            title=f"Fused ozone{_simulated(fused_items)}: {shown} of the {len(fused)} hour(s) "
                  f"of the cycle ending {str(cycle_end)[:13].replace('T', ' ')} UTC")
        maps["fused ozone"] = _save(fig, out / "map_fused_ozone.png")
        instruments = sorted({n.strip() for ds in fused
                              for n in str(ds.attrs.get("instrument", "")).split(",") if n})
        captions["fused ozone"] = (
            "Complete Data Fusion of the L2 ozone profiles of each hour ("
            + ", ".join(instruments) + ") on the fusion cells ("
            + str(fused[0].attrs.get("fusion_cell", "1° x 1° x 1 h")).replace(" deg", "°")
            + "), at three pressure levels (rows) and hours of the cycle (columns); grey "
            "cells had no retrieval that hour. Fixed scale "
            "0-120 ppbv, the arrow marks values beyond it.")
    trocs = _by_time(store.search("troc", datetime=OZONE_PERIOD))
    uvs = {str(i.common_metadata.start_datetime or i.datetime)[:19]: i
           for i in store.search("surface-uv", datetime=OZONE_PERIOD)}
    if trocs:
        columns, tropo, total, gaps = [], [], [], []
        for item in trocs:
            ds = _first_time(store.open(item)).load()
            when = str(item.common_metadata.start_datetime or item.datetime)[:19]
            columns.append(f"analysis {when[:13].replace('T', ' ')} UTC")
            tropo.append(ds["o3_column_lrt"])
            gaps.append(flag_summary(ds["tropopause_flag"], ds["o3_column_lrt"].isnull(),
                                     counts=False) if "tropopause_flag" in ds else None)
            uv = uvs.get(when)
            total.append(_first_time(store.open(uv)["total_ozone"]).load() if uv else None)
        rows, labels, quantities = [tropo], ["tropospheric ozone column [DU]"], \
            ["tropospheric_column"]
        row_labels = ["surface to tropopause"]
        if any(t is not None for t in total):
            rows.append(total)
            labels.append("total ozone column [DU]")
            quantities.append("total_ozone")
            row_labels.append("total column")
        fig = figures.field_panels(
            rows, column_titles=columns, row_labels=row_labels, quantities=quantities,
            labels=labels, gaps=[gaps] + [[None] * len(trocs)] * (len(rows) - 1),
            title=f"Ozone analyses{_simulated(trocs)} at each of the {len(trocs)} analysis "
                  "time(s)")
        maps["analyses"] = _save(fig, out / "map_analyses.png")
        reasons = sorted({g for g in gaps if g})
        captions["analyses"] = (
            "The LETKF analysis of every 12-h cycle: the ozone column from the surface to the "
            "WMO lapse-rate tropopause (top; fixed scale 10-60 DU) and the total column "
            "(bottom; 200-500 DU). "
            + ("Hatched cells have no tropospheric column: " + "; ".join(reasons)
               + " (the product's tropopause_flag), so the column to it is undefined."
               if reasons else "Every cell has a value."))
    uv = _latest(store, "surface-uv")
    if uv is not None:
        product = store.open(uv)
        noon = "uvi_noon" in product
        da = (product["uvi_noon"].isel(day=0) if noon else _first_time(product["uvi"])).load()
        when = (str(product["day"].values[0])[:10] + " at local solar noon" if noon
                else str(uv.common_metadata.start_datetime or uv.datetime)[:16] + " UTC")
        cot = json.loads(product.attrs.get("hubkit_uv_inputs", "{}")).get("cot", "")
        sky = (" (clear sky)" if cot.startswith("default") or cot == "constant 0.0"
               else " (with clouds)" if cot else "")
        fig = plot.field_map(da, title=f"UV index{sky}{_simulated([uv])}, {when}",
                             quantity="uvi", label="UV index")
        maps["UV index"] = _save(fig, out / "map_uv_index.png")
        captions["UV index"] = ("Surface UV index from the lookup table of TUV-x, with the "
                                "total ozone of the latest analysis; fixed scale 0-14.")
    peaks_step = next(s for s in chain.default_steps() if s.name == "co2.peaks")
    tables, windows, detections = [], [], []
    for item in sounding_items:
        try:
            table = store.open(peaks_step.output_id([item.id]))
        except Exception:  # no peaks product for it (failed or not run): nothing to draw
            continue
        tables.append(table)
        if len(table):
            raw = store.open(item).load()
            text = table.attrs.get("options")
            options = co2.PeakOptions.from_json(text) if text else co2.PeakOptions()
            for _, row in table.iterrows():
                windows.append(co2.peak_window(raw, row, options))
                detections.append((row, item))
    peaks = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    fig = plot.soundings_map(soundings, title=f"OCO-2 XCO2{_simulated(sounding_items)} and "
                             f"{len(peaks)} detected plume(s)")
    if len(peaks):
        ax = fig.axes[0]
        kw = {"transform": ax.projection} if hasattr(ax, "projection") else {}
        ax.scatter(peaks["longitude"], peaks["latitude"], s=90, facecolors="none",
                   edgecolors="red", linewidths=1.6, label="detected plume", **kw)
        ax.legend(loc="lower left", fontsize="small")
    maps["plumes"] = _save(fig, out / "map_plumes.png")
    captions["plumes"] = ("Good soundings (quality flag 0) of every OCO-2 product, and the "
                          "plumes the co2.peaks step detected (red circles).")
    if windows:
        titles = [f"orbit {int(row['orbit'])}{_simulated([item])}, "
                  f"{str(row['time'])[:16]} UTC, "
                  f"{lat_lon_label(row['latitude'], row['longitude'])}"
                  for row, item in detections]
        fig = figures.along_track_panels(windows, [row for row, _ in detections],
                                         titles=titles)
        maps["along-track XCO2"] = _save(fig, out / "along_track_xco2.png")
        captions["along-track XCO2"] = (
            "XCO2 along the track around each detection, with the fitted Gaussian on a linear "
            "background (δ: peak height, σ: width, Q: emission estimate).")
    return maps, captions


def _simulated_section(simulated) -> str:
    """Which products were made from simulated input (the ``hubkit:simulated`` label)."""
    if simulated is None or not len(simulated):
        return ""
    return ("<h2>Simulated inputs</h2><p>Products labelled <code>hubkit:simulated</code>: made "
            "from simulated observations or meteorology (the nature run of "
            "<code>hubkit.simulate.NatureRun</code>, <code>hubkit.simulate.das_field</code>), "
            "not from real data. Real files keep no such label.</p>"
            + simulated.to_html(index=False, escape=True))


def _cycles_section(processing: dict) -> str:
    """The per-cycle assimilation diagnostics figure and table (when there are cycles)."""
    import html

    png = processing.get("diagnostics_png")
    if not png:
        return ""
    return ("<h2>Assimilation, cycle by cycle</h2><p>O−B and O−A whitened by the observation "
            "error, the innovation χ²/dof (Desroziers et al. 2005; consistent in 0.5–2), the "
            "ensemble spread against RMS O−B, and — the inputs being simulated from a known "
            "nature run — the errors of the analysis, its 12-h first guess, a free run and the "
            "climatology against that truth over the observed cells.</p>"
            f"<img src='{html.escape(Path(png).name)}' alt='per-cycle diagnostics' "
            "style='max-width:100%'>")


def _write_page(out: Path, store, report, maps: dict, processing: dict, soundings: list,
                seconds: float, simulated=None, timing=None, *, captions=None) -> Path:
    """``report.html``: the step timings (:func:`step_timings`), the maps and the per-day
    processing report."""
    import html

    if timing is None:
        timing = report.table()[_TIMING_COLUMNS]
    failed = "".join(f"<li><code>{html.escape(k)}</code>: {html.escape(v.splitlines()[0])}"
                     "</li>" for k, v in report.failed.items())
    captions = captions or {}
    figures = "".join(
        f"<figure><img src='{path.name}' alt='{html.escape(name)}' style='max-width:100%'>"
        f"<figcaption><b>{html.escape(name)}</b>"
        + (f": {html.escape(captions[name])}" if captions.get(name) else "")
        + "</figcaption></figure>" for name, path in maps.items())
    rows = "".join(f"<tr><td><code>{r['id']}</code></td><td>{r['n']}</td>"
                   f"<td>{r['mean']:.2f}</td><td>{r['std']:.2f}</td></tr>" for r in soundings)
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>hubkit demo</title><style>"
        "body{font-family:sans-serif;max-width:64em;margin:2em auto}table{border-collapse:"
        "collapse}td,th{border:1px solid #ccc;padding:.2em .6em}figure{margin:1em 0}</style>"
        "</head><body><h1>hubkit demo: the processing chain</h1>"
        f"<p>Store <code>{html.escape(str(store.url))}</code>; the whole job took "
        f"{seconds:.1f} s. The chain (after AURORA's, Gai et al. 2021): L2 ozone → fused per "
        "hour → DAS per 12-h cycle → tropospheric ozone and surface UV per DAS; OCO-2 "
        "soundings → plumes.</p><h2>Steps</h2><p>Worker time [s] of the units done by the "
        "run that made each step's products (column <i>timed</i>); a product already in the "
        "store is not made again, so a run that makes nothing keeps the earlier timings.</p>"
        + timing.to_html(index=False, float_format=lambda v: f"{v:.1f}")
        + (f"<p>Failed:</p><ul>{failed}</ul>" if failed else "")
        + _simulated_section(simulated)
        + _cycles_section(processing)
        + "<h2>Maps</h2>" + figures
        + "<h2>XCO2 of the good soundings</h2><table><tr><th>product</th><th>n</th>"
          f"<th>mean [ppm]</th><th>std [ppm]</th></tr>{rows}</table>"
        + "<h2>Processing per day and step (cf. Gai et al. 2021, Figure 13)</h2>"
          f"<img src='{Path(processing['png']).name}' alt='products and MB per day and step' "
          "style='max-width:100%'>"
        + processing["table"].to_html(index=False, float_format=lambda v: f"{v:.3f}")
        + "</body></html>"
    )
    path = out / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
