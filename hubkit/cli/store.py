"""Commands on the store's products: upload, search, show, plot, export; fsck and reindex.

Each ``cmd_*`` takes the parsed arguments and returns the exit status; each ``add_*`` adds its
command to the ``hubkit`` parser.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

from hubkit.cli.common import printable, store_of
from hubkit.errors import HubkitWarning

__all__ = ["add_export", "add_fsck", "add_plot", "add_reindex", "add_search", "add_show",
           "add_upload", "cmd_export", "cmd_fsck", "cmd_plot", "cmd_reindex", "cmd_search",
           "cmd_show", "cmd_upload"]


def _bbox(text: str):
    """``--bbox`` as four floats west, south, east, north. [°]"""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 4:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected four numbers west,south,east,north in degrees "
            "(write --bbox=-100,30,-90,40 when the first is negative)"
        )
    return tuple(values)


def cmd_upload(args) -> int:
    """Store the given files (a directory: its files), print the ids; 1 if any was not stored."""
    from hubkit.io import source_files

    files, empty = [], []
    for given in args.files:  # a directory that is not a Zarr group: its files, recursively
        found = source_files([given])
        if Path(given).is_dir() and found != [Path(given)]:
            if not found:
                empty.append(given)
            elif not args.quiet:
                print(f"{printable(given)}: a directory; uploading the {len(found)} file(s) "
                      "in it and its subfolders (hidden names skipped)", file=sys.stderr)
        files.extend(found)
    for given in empty:
        print(f"error: {printable(given)}: is a directory holding no files (hidden names are "
              "skipped); expected files to upload or folders holding them", file=sys.stderr)
    if not files:
        return 1
    from hubkit import ingest

    store = store_of(args, create=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", HubkitWarning)
        items, errors = ingest.upload_many(
            store, files, args.format, progress=not args.quiet and len(files) > 1,
            max_workers=args.workers, on_error="collect",
        )
    for item in items:
        print(item.id)
    for warning in caught:
        if issubclass(warning.category, HubkitWarning):
            print(f"warning: {printable(warning.message)}", file=sys.stderr)
        else:
            warnings.showwarning(warning.message, warning.category, warning.filename,
                                 warning.lineno)
    for _path, exc in errors:
        print(f"error: {printable(exc)}", file=sys.stderr)
    if errors:
        print(f"{len(errors)} of {len(files)} files were not stored", file=sys.stderr)
    return 1 if errors or empty else 0


def _row(item) -> dict:
    """One line of ``hubkit search``: the item's id, collection, times, bbox, site, source."""
    p = item.properties
    return {
        "id": item.id,
        "collection": item.collection_id,
        "start": (p.get("start_datetime") or "")[:19],
        "end": (p.get("end_datetime") or "")[:19],
        "bbox": ",".join(f"{v:.2f}" for v in item.bbox) if item.bbox else "",
        "site": printable(p.get("hubkit:site") or ""),
        "inlet": " ".join(f"{h:g}" for h in p.get("hubkit:inlet_heights") or []),
        "source": printable(p.get("hubkit:source") or ""),
    }


def cmd_search(args) -> int:
    """The products matching the options, as a table (or STAC JSON)."""
    store = store_of(args)
    datetime = None
    if args.start or args.end:
        datetime = (args.start or None, args.end or None)
    items = store.search(
        args.collection, bbox=args.bbox, datetime=datetime, species=args.species,
        instrument=args.instrument, limit=args.limit, site=args.site, inlet=args.inlet,
        network=args.network, scale=args.scale, platform=args.platform,
    )
    if args.json:
        print(json.dumps([i.to_dict(include_self_link=False, transform_hrefs=False)
                          for i in items], indent=1))
        return 0
    rows = [_row(i) for i in items]
    cols = ["id", "collection", "start", "end", "bbox", "source"]
    if any(r["site"] for r in rows):  # in-situ products: say where and at which heights
        cols[4:4] = ["site", "inlet"]
    widths = {c: max([len(c)] + [len(r[c]) for r in rows]) for c in cols}
    print("  ".join(c.ljust(widths[c]) for c in cols))
    for r in rows:
        print("  ".join(r[c].ljust(widths[c]) for c in cols))
    print(f"{len(rows)} product(s)", file=sys.stderr)
    return 0


def cmd_show(args) -> int:
    """Metadata, provenance and variables of one product (a table's first rows too)."""
    store = store_of(args)
    item = store.get_item(args.id)
    if args.json:
        print(json.dumps(item.to_dict(include_self_link=False, transform_hrefs=False), indent=1))
        return 0
    p = item.properties
    print(f"id          {item.id}")
    print(f"collection  {item.collection_id}")
    print(f"source      {printable(p.get('hubkit:source'))}")
    print(f"species     {p.get('hubkit:species')}")
    _show_station(p)
    if p.get("start_datetime"):
        print(f"time        {p['start_datetime']} .. {p['end_datetime']}")
    if item.bbox:
        print("bbox        " + ", ".join(f"{v:.4f}" for v in item.bbox) + "  (W, S, E, N)")
    print("dims        " + ", ".join(f"{k}={v}" for k, v in p["hubkit:dims"].items()))
    print(f"data        {store.data_path(item)}")
    prov = p.get("hubkit:provenance", {})
    print("provenance")
    for key in ("step", "step_version", "parameters", "hubkit_version", "created"):
        print(f"  {key:<14}{prov.get(key)}")
    for inp in prov.get("inputs", []):
        print(f"  input         {printable(inp)}")
    print("variables")
    for name, v in p["hubkit:variables"].items():
        units = f"[{printable(v['units'])}]" if v.get("units") else ""
        print(f"  {printable(name):<26}{'(' + ', '.join(v['dims']) + ')':<32}{units}")
    table = _table_of(store, item)
    if table is not None:
        _show_flags(table.attrs.get("flags") or {})
        _show_rows(table, item.id, args.rows)
    return 0


#: Station properties ``hubkit show`` prints: (label, STAC property).
_STATION_LINES = (("site", "hubkit:site"), ("site name", "hubkit:site_name"),
                  ("inlets", "hubkit:inlet_heights"), ("network", "hubkit:network"),
                  ("scale", "hubkit:calibration_scale"), ("platform", "platform"),
                  ("owner", "hubkit:data_owner"), ("instrument", "instruments"),
                  ("measurement", "hubkit:measurement_type"))


def _show_station(p: dict) -> None:
    """The station lines of ``hubkit show`` (site, inlets, network ...), for in-situ products."""
    if not p.get("hubkit:site"):
        return
    for label, key in _STATION_LINES:
        value = p.get(key)
        if value is None:
            continue
        if key == "hubkit:inlet_heights":
            value = ", ".join(f"{h:g}" for h in value) + " m above ground"
        elif isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        print(f"{label:<12}{printable(value)}")
    n = len(p.get("hubkit:provider_attrs") or {})
    if n:
        print(f"{'provider':<12}{n} global attributes of the file (hubkit show --json: "
              "properties.hubkit:provider_attrs)")


def _table_of(store, item):
    """The rows of a table product (:func:`hubkit.export.as_table`), ``None`` for a dataset."""
    from hubkit import catalog
    from hubkit.export import TABLE_DIM, as_table

    is_table = item.assets["data"].media_type == catalog.PARQUET_MEDIA_TYPE
    if not is_table and TABLE_DIM not in item.properties.get("hubkit:dims", {}):
        return None
    return as_table(store.open(item), name=f"product {item.id}")


def _show_flags(flags: dict) -> None:
    """Each flag column's bits (or values), CF words and descriptions."""
    for column, f in flags.items():
        masks = f.get("flag_masks")
        codes = masks if masks is not None else f.get("flag_values") or []
        words = str(f.get("flag_meanings", "")).split()
        texts = f.get("flag_descriptions") or [""] * len(codes)
        kind = "bits, summed" if masks is not None else "values"
        print(f"{printable(column)} ({kind})")
        for code, word, text in zip(codes, words, texts, strict=False):
            print(f"  {code:<4}{printable(word):<28}{printable(text)}")


def _show_rows(table, item_id: str, n: int) -> None:
    """The first ``n`` rows (times in ISO 8601) and how many more there are."""
    import pandas as pd

    n = max(int(n), 0)
    head = table.head(n).copy()
    for column in head.columns:
        if pd.api.types.is_datetime64_any_dtype(head[column].dtype):
            head[column] = head[column].map(
                lambda t: "NaT" if pd.isna(t) else pd.Timestamp(t).isoformat())
    shown = min(n, len(table))
    print(f"rows (first {shown} of {len(table)})" if shown else f"rows ({len(table)})")
    if shown:
        text = head.to_string(index=False, line_width=110, max_colwidth=30,
                              float_format=lambda v: f"{v:.6g}")
        for line in text.splitlines():
            print(f"  {printable(line)}")
    rest = len(table) - shown
    if rest:
        print(f"  ... {rest} more row(s) of {len(table)} (hubkit show {item_id} --rows N; "
              f"all of them: hubkit export {item_id} --format csv)")
    left_out = table.attrs.get("hubkit_left_out")
    if left_out:
        print(f"  not in the rows (not on one dim per row): {', '.join(left_out)}")


def cmd_plot(args) -> int:
    """A quick look at one product (:func:`hubkit.plot.quick_look`), written as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hubkit.plot import quick_look

    store = store_of(args)
    item = store.get_item(args.id)
    title = item.id
    if item.properties.get("hubkit:simulated"):
        title = f"{item.id} (simulated)"
    fig, what = quick_look(store.open(item), name=f"product {item.id} ({item.collection_id})",
                           variable=args.variable, title=title)
    out = Path(args.out or f"{item.id}.png")
    try:
        fig.savefig(out, dpi=args.dpi, bbox_inches="tight")
    finally:
        plt.close(fig)
    print(f"wrote {out}: {what}", file=sys.stderr)
    return 0


def cmd_export(args) -> int:
    """A table product as CSV or GeoJSON, to ``--out`` or standard output."""
    from hubkit import export

    store = store_of(args)
    item = store.get_item(args.id)
    name = f"product {item.id} ({item.collection_id})"
    table = export.as_table(store.open(item), name=name)
    if args.format == "csv":
        text = export.to_csv(table, name=name)
        count = f"{len(table)} row(s)"
    else:
        doc = export.to_geojson(table, name=name)
        text = json.dumps(doc, indent=1, allow_nan=False) + "\n"
        count = f"{len(doc['features'])} feature(s)"
    if args.out:
        out = Path(args.out)
        out.write_text(text, encoding="utf-8")
        print(f"wrote {out}: {count}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def cmd_fsck(args) -> int:
    """Check (``--repair``: repair) the store; 1 if something was found and not repaired."""
    report = store_of(args).fsck(repair=args.repair, min_age=args.min_age, deep=args.deep)
    print(report)
    return 0 if report.clean or args.repair else 1


def cmd_reindex(args) -> int:
    """Rebuild the search index from the items."""
    df = store_of(args).rebuild_index()
    print(f"search index rebuilt: {len(df)} item(s)")
    return 0


def add_upload(sub, common) -> None:
    """The ``upload`` command."""
    p = sub.add_parser("upload", parents=[common], help="store source files")
    p.add_argument("files", nargs="+",
                   help="files to upload; a directory (not a Zarr group) stands for the files "
                        "in it and its subfolders, hidden names (.*) skipped")
    p.add_argument("--format", help="source format (detected when omitted): oco2-lite, "
                   "oco2peak-csv, obspack, obspack-text, icos-nc, icos-atc, agage, l2-ozone, cf")
    p.add_argument("--workers", type=int, default=4, help="parallel uploads (default 4)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_upload)


def add_search(sub, common) -> None:
    """The ``search`` command."""
    p = sub.add_parser("search", parents=[common], help="find products")
    p.add_argument("--collection", help="product type, e.g. oco2-soundings")
    p.add_argument("--bbox", type=_bbox, help="west,south,east,north [°]")
    p.add_argument("--start", help="from this date/time (ISO 8601, UTC)")
    p.add_argument("--end", help="up to the end of this date/time (ISO 8601, UTC)")
    p.add_argument("--species", help="e.g. co2, o3")
    p.add_argument("--instrument", help="e.g. OCO-2")
    p.add_argument("--site", help="station code, e.g. BAO (in-situ products)")
    p.add_argument("--inlet", help="intake height [m], e.g. 100 or 100m: products with that "
                   "inlet")
    p.add_argument("--network", help="e.g. NOAA, ICOS, AGAGE")
    p.add_argument("--scale", help="calibration scale, e.g. 'WMO CH4 X2004A'")
    p.add_argument("--platform", help="e.g. fixed, ship, OCO-2")
    p.add_argument("--limit", type=int)
    p.add_argument("--json", action="store_true", help="print the STAC items as JSON")
    p.set_defaults(func=cmd_search)


def add_show(sub, common) -> None:
    """The ``show`` command."""
    p = sub.add_parser("show", parents=[common], help="metadata of one product")
    p.add_argument("id")
    p.add_argument("--json", action="store_true", help="print the STAC item as JSON")
    p.add_argument("--rows", type=int, default=20, metavar="N",
                   help="table products: print the first N rows (default 20)")
    p.set_defaults(func=cmd_show)


def add_plot(sub, common) -> None:
    """The ``plot`` command."""
    p = sub.add_parser("plot", parents=[common], help="a quick look at one product (PNG)")
    p.add_argument("id")
    p.add_argument("--variable", help="what to draw (default: the product's main quantity)")
    p.add_argument("--out", metavar="FILE.png", help="default: ID.png in this directory")
    p.add_argument("--dpi", type=int, default=110)
    p.set_defaults(func=cmd_plot)


def add_export(sub, common) -> None:
    """The ``export`` command."""
    p = sub.add_parser("export", parents=[common],
                       help="a table product with positions as CSV or GeoJSON")
    p.add_argument("id")
    p.add_argument("--format", required=True, choices=("csv", "geojson"),
                   help="csv: one line per row; geojson: one Point feature per row")
    p.add_argument("--out", metavar="FILE", help="write to FILE (default: standard output)")
    p.set_defaults(func=cmd_export)


def add_fsck(sub, common) -> None:
    """The ``fsck`` command."""
    p = sub.add_parser("fsck", parents=[common],
                       help="check the store: orphans, damaged or incomplete products")
    p.add_argument("--repair", action="store_true",
                   help="remove orphans and temporary files, move damaged products to "
                        "quarantine/")
    p.add_argument("--min-age", type=float, default=3600.0,
                   help="only data whose write started longer ago count as orphans [s] "
                        "(default 3600)")
    p.add_argument("--deep", action="store_true",
                   help="also read every object and verify its SHA-256 (reads all data)")
    p.set_defaults(func=cmd_fsck)


def add_reindex(sub, common) -> None:
    """The ``reindex`` command."""
    p = sub.add_parser("reindex", parents=[common], help="rebuild the search index")
    p.set_defaults(func=cmd_reindex)
