"""What the processing chain did, per day and per step: AURORA's Figure 13 for hubkit.

Gai et al. (2021, section 5, Figure 13) show the files and megabytes the Data Processing
Chain handled per day. :func:`processing_table` builds the same numbers from the store alone:
every product's STAC Item names the step that made it and its inputs (the provenance), and
the store listing gives the bytes each product occupies. A step *processed* the stored bytes
of the inputs of every product it made; an upload processed its own stored bytes (the files
as stored, after parsing, not as they came). Days are UTC days of the product's data (the
start of its time range; the creation time for products without one), so a replay of
archived data is counted on the days it covers. A product without a time range of its own (an
empty peaks table) counts on the day of its earliest input.

References
----------
.. [1] Gai et al., Remote Sens. 13, 210, 2021. doi:10.3390/rs13020210
"""

from __future__ import annotations

import base64
import html
import logging
from pathlib import Path

import pandas as pd

__all__ = ["PERIOD_GAP_DAYS", "cycle_table", "periods", "processing_table", "report_figure",
           "simulated_inputs", "write_report"]

log = logging.getLogger(__name__)

_COLUMNS = ["day", "step", "output", "products", "inputs", "mb_processed"]


def _product_bytes(store, item) -> int:
    """Bytes the product's data occupy in the store (a Zarr folder or a Parquet object)."""
    path = store.data_path(item)
    try:
        return int(store.fs.du(path, total=True))
    except FileNotFoundError:
        return 0


def _utc_day(when) -> pd.Timestamp:
    day = pd.Timestamp(when)
    day = day.tz_convert("UTC") if day.tz is not None else day.tz_localize("UTC")
    return day.floor("D")


def _days(items) -> dict:
    """UTC day of each product's data: its start time; else the earliest day of its inputs
    (a product without a time range, e.g. an empty table); else its item datetime."""
    by_id = {item.id: item for item in items}
    days: dict[str, pd.Timestamp] = {}

    def day(item_id, seen=()):
        if item_id in days:
            return days[item_id]
        item = by_id[item_id]
        if item.common_metadata.start_datetime is not None:
            days[item_id] = _utc_day(item.common_metadata.start_datetime)
            return days[item_id]
        prov = item.properties.get("hubkit:provenance") or {}
        found = [day(i, (*seen, item_id)) for i in prov.get("inputs", [])
                 if isinstance(i, str) and i in by_id and i not in seen]
        days[item_id] = min(found) if found else _utc_day(
            item.datetime or item.common_metadata.created)
        return days[item_id]

    for item_id in by_id:
        day(item_id)
    return days


def processing_table(store) -> pd.DataFrame:
    """Products made and megabytes processed per UTC day and step, from the store alone.

    Parameters
    ----------
    store : hubkit.store.Store
        Whose products and their provenance are counted.

    Returns
    -------
    pandas.DataFrame
        One row per (day, step): ``day`` (UTC date), ``step`` (``"upload"`` for uploads),
        ``output`` (product type written), ``products`` [1], ``inputs`` (input products read,
        counted once per product made) [1] and ``mb_processed`` (stored size of those inputs;
        of the product itself for an upload) [MB, 10⁶ bytes]; sorted by day and step.
    """
    items = list(store.items())
    sizes = {item.id: _product_bytes(store, item) for item in items}
    days = _days(items)
    rows = []
    for item in items:
        prov = item.properties.get("hubkit:provenance") or {}
        step = prov.get("step", "unknown")
        inputs = [i for i in prov.get("inputs", []) if isinstance(i, str)]
        if step == "upload":
            n_in, size = 1, sizes[item.id]
        else:
            missing = [i for i in inputs if i not in sizes]
            if missing:
                log.info("%s: inputs %s are no longer in the store", item.id, missing)
            n_in, size = len(inputs), sum(sizes.get(i, 0) for i in inputs)
        rows.append({"day": days[item.id].date(), "step": step, "output": item.collection_id,
                     "products": 1, "inputs": n_in, "bytes": size})
    if not rows:
        return pd.DataFrame(columns=_COLUMNS)
    table = (pd.DataFrame(rows).groupby(["day", "step", "output"], as_index=False)
             .sum(numeric_only=True))
    table["mb_processed"] = table.pop("bytes") / 1e6
    return table.sort_values(["day", "step"], ignore_index=True)[_COLUMNS]


#: Days of data further apart than this [days] are drawn in separate panels (periods).
PERIOD_GAP_DAYS = 7


def periods(days, gap_days: int = PERIOD_GAP_DAYS) -> list[list]:
    """The sorted ``days`` (dates) split where they are more than ``gap_days`` apart: a
    replay of 2016 and a simulation of 2024 are two periods, not one axis."""
    days = sorted(days)
    groups: list[list] = []
    for day in days:
        if groups and (pd.Timestamp(day) - pd.Timestamp(groups[-1][-1])).days <= gap_days:
            groups[-1].append(day)
        else:
            groups.append([day])
    return groups


def report_figure(table: pd.DataFrame, *, title: str = "hubkit processing chain"):
    """Bar charts of products made and MB processed per day, one bar per step (cf. Gai et
    al. 2021, Figure 13), one column of panels per period of the data (:func:`periods`).

    Parameters
    ----------
    table : pandas.DataFrame
        :func:`processing_table`.
    title : str
        The figure's title (say what the store holds; a local path means nothing to a reader).

    Returns
    -------
    matplotlib.figure.Figure
        Within a period every calendar day has its place (days without products stay empty);
        steps keep one colour across periods; each period has its own vertical scale (a
        replay of a few soundings beside weeks of ozone would otherwise be invisible).
    """
    import matplotlib.pyplot as plt
    import numpy as np

    days = sorted(table["day"].unique()) if len(table) else []
    groups = periods(days) or [[]]
    spans = [pd.date_range(g[0], g[-1], freq="D").date if g else [] for g in groups]
    steps = sorted(table["step"].unique()) if len(table) else []
    colours = {step: f"C{k % 10}" for k, step in enumerate(steps)}
    fig, axes = plt.subplots(2, len(groups), figsize=(3.0 + 1.6 * sum(len(d) for d in spans)
                                                      + 0.8 * len(groups), 6.0),
                             sharex="col", squeeze=False, constrained_layout=True,
                             gridspec_kw={"width_ratios": [max(len(d), 1) for d in spans]})
    width = 0.8 / max(len(steps), 1)
    for col, span in enumerate(spans):
        x = np.arange(len(span))
        part = table[table["day"].isin(list(span))]
        for k, step in enumerate(steps):
            rows = (part[part["step"] == step].groupby("day")[["products", "mb_processed"]]
                    .sum().reindex(list(span), fill_value=0))
            offset = (k - (len(steps) - 1) / 2) * width
            for row, column in ((0, "products"), (1, "mb_processed")):
                axes[row, col].bar(x + offset, rows[column], width, color=colours[step],
                                   label=step if col == 0 else None)
        axes[1, col].set_xticks(x, [str(d) for d in span],
                                rotation=30 if len(span) > 4 else 0)
        first, last = (span[0], span[-1]) if len(span) else ("", "")
        axes[0, col].set_title(str(first) if first == last else f"{first} to {last}",
                               fontsize=9)
    axes[0, 0].set_ylabel("products made per day")
    axes[1, 0].set_ylabel("MB processed per day")
    fig.supxlabel("day of the data (UTC)", fontsize=10)
    if steps:
        fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside right upper",
                   fontsize="small")
    else:
        axes[0, 0].text(0.5, 0.5, "no products in the store", ha="center",
                        transform=axes[0, 0].transAxes)
    fig.suptitle(title + (f": {len(groups)} periods of data, drawn apart" if len(groups) > 1
                          else ""), fontsize=11)
    return fig


_DIAG = ("n_obs", "n_values", "omb_mean", "omb_rms", "oma_mean", "oma_rms", "spread_obs")


def cycle_table(store) -> pd.DataFrame:
    """The assimilation's per-cycle diagnostics from the ``das`` products of the store.

    One row per ``das`` product, in time order: ``time``, ``start`` (cold/warm), ``n_obs``,
    ``n_values``, ``omb_mean``, ``omb_rms``, ``oma_mean``, ``oma_rms``, ``chi2``,
    ``spread_obs`` (stored by the assimilation step); and when the product was made from
    simulated observations of a recorded nature run (``hubkit_nature_run``), the errors
    against that truth over the cells whose centres lie in the fused products' bounding box
    (:func:`hubkit.osse.score_analysis`: ``rmse_{total,trop}_{analysis,free,climatology,
    forecast}`` [DU], ``troc_bias`` and ``uvi_error_median`` [%], …), the forecast being the
    stored +12 h ``das-forecast`` of the previous cycle.
    """
    import json

    import numpy as np

    rows, natures = [], {}
    items = sorted(store.items("das"), key=lambda i: str(i.datetime))
    if not items:
        return pd.DataFrame(columns=["time", "start", *_DIAG, "chi2"])
    forecasts = {}
    for item in store.items("das-forecast"):
        ds = store.open(item)
        for t, lead in zip(ds["time"].values, ds["forecast_period"].values, strict=True):
            if float(lead) == 12.0:
                forecasts[np.datetime64(t, "ns")] = (item, ds)
    bbox = _observed_bbox(store)
    for item in items:
        das = store.open(item).load()
        t = np.datetime64(das["time"].values[0], "ns")
        row = {"time": pd.Timestamp(t), "start": das.attrs.get("hubkit_start", "?")}
        for name in _DIAG:
            row[name] = float(das[name].values[0]) if name in das else np.nan
        row["chi2"] = float(das["omf_chi2"].values[0]) if "omf_chi2" in das else np.nan
        nature_text = das.attrs.get("hubkit_nature_run")
        if nature_text and bbox is not None:
            from hubkit.osse import region_mask, score_analysis
            from hubkit.simulate import NatureRun

            nature = natures.setdefault(nature_text, NatureRun.from_description(
                json.loads(nature_text)))
            mask = region_mask(das["latitude"].values, das["longitude"].values, bbox,
                               whole=False)
            if mask.any():
                first_guess = forecasts.get(t)
                row.update(score_analysis(
                    das, nature, mask,
                    first_guess=first_guess[1].load() if first_guess else None))
        rows.append(row)
    return pd.DataFrame(rows)


def _observed_bbox(store):
    """The bounding box (west, south, east, north) of the stored fused-ozone products."""
    import numpy as np

    boxes = [i.bbox for i in store.items("fused-ozone") if i.bbox]
    if not boxes:
        return None
    b = np.asarray(boxes, dtype=float)
    return (float(b[:, 0].min()), float(b[:, 1].min()), float(b[:, 2].max()),
            float(b[:, 3].max()))


def simulated_inputs(store) -> pd.DataFrame:
    """Per product type, how many products are labelled simulated (``hubkit:simulated``)
    and what was simulated."""
    rows = []
    for collection in sorted(store.collections()):
        items = list(store.items(collection))
        sim = [i for i in items if i.properties.get("hubkit:simulated")]
        what = sorted({str(i.properties.get("hubkit:simulated_inputs")
                           or i.properties.get("hubkit:source") or "") for i in sim})
        rows.append({"product type": collection, "products": len(items),
                     "simulated": len(sim), "what": "; ".join(w for w in what if w)[:300]})
    return pd.DataFrame(rows, columns=["product type", "products", "simulated", "what"])


def write_report(store, out_dir="hubkit-chain-report", *, diagnostics=None) -> dict:
    """Write ``chain_report.png`` and ``chain_report.html`` (the figure and the table).

    Parameters
    ----------
    store : hubkit.store.Store
        Whose products are reported on.
    out_dir : path
        Folder to write to (made if missing).
    diagnostics : pandas.DataFrame, optional
        Per-cycle assimilation diagnostics, one row per cycle (the columns of
        :func:`hubkit.plot.cycle_diagnostics`): drawn to ``cycle_diagnostics.png`` and shown
        on the page with the table. Default: :func:`cycle_table` of the store's ``das``
        products (none when it has none). The page also lists, per product type, the
        products made from simulated input (:func:`simulated_inputs`).

    Returns
    -------
    dict
        ``png`` and ``html`` paths and the ``table`` (:func:`processing_table`); with
        ``diagnostics`` also ``diagnostics_png``.
    """
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = processing_table(store)
    fig = report_figure(table)
    png = out / "chain_report.png"
    fig.savefig(png, dpi=110)
    plt.close(fig)
    image = base64.b64encode(png.read_bytes()).decode()
    written = {"png": str(png), "table": table}
    section = ""
    if diagnostics is None and "das" in store.collections():
        diagnostics = cycle_table(store)
    if diagnostics is not None and not len(diagnostics):
        diagnostics = None
    simulated = simulated_inputs(store)
    simulated = simulated[simulated["simulated"] > 0]
    if len(simulated):
        section += ("<h2>Simulated inputs</h2><p>Products labelled <code>hubkit:simulated"
                    "</code>: made from simulated observations or meteorology, not from real "
                    "data.</p>" + simulated.to_html(index=False))
    if diagnostics is not None:
        from hubkit.plot import cycle_diagnostics

        fig = cycle_diagnostics(diagnostics)
        diag_png = out / "cycle_diagnostics.png"
        fig.savefig(diag_png, dpi=100)
        plt.close(fig)
        written["diagnostics_png"] = str(diag_png)
        section += (
            "<h2>Assimilation diagnostics per cycle</h2><p>O−B and O−A whitened by the "
            "observation error, innovation χ²/dof (Desroziers et al. 2005; band 0.5–2), "
            "ensemble spread against RMS O−B, and errors against the truth where one is "
            "known.</p><img alt='per-cycle assimilation diagnostics' src='data:image/png;"
            f"base64,{base64.b64encode(diag_png.read_bytes()).decode()}'>"
            + diagnostics.to_html(index=False, float_format=lambda v: f"{v:.3g}"))
    totals = table.groupby("step")[["products", "mb_processed"]].sum() if len(table) else None
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>hubkit chain report</title>"
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .6em;"
        "text-align:right}</style></head><body>"
        f"<h1>Processing chain report</h1><p>Store: <code>{html.escape(str(store.url))}"
        "</code>. Products made and megabytes of input processed per UTC day of the data and "
        "per step (after Gai et al. 2021, Figure 13).</p>"
        f"<img alt='products and MB per day and step' src='data:image/png;base64,{image}'>"
        "<h2>Per day and step</h2>"
        + table.to_html(index=False, float_format=lambda v: f"{v:.3f}")
        + ("<h2>Totals per step</h2>" + totals.to_html(float_format=lambda v: f"{v:.3f}")
           if totals is not None else "")
        + section
        + "</body></html>"
    )
    page_path = out / "chain_report.html"
    page_path.write_text(page, encoding="utf-8")
    return {**written, "html": str(page_path)}
