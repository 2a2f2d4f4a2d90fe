"""The ``hubkit`` command: a thin shell over the library.

::

    hubkit upload FILE|DIR... [--format F]   store files (a directory: its files), print ids
    hubkit search [--collection C] [--bbox=W,S,E,N] [--start T] [--end T] [--species S]
                  [--site CODE] [--inlet M] [--network N] [--scale S] [--platform P]
    hubkit show ID [--rows N]                 metadata, provenance, variables (tables: rows)
    hubkit plot ID [--variable V] [--out FILE.png]
                                              a quick look: map, field, time series or peaks
    hubkit export ID --format csv|geojson [--out FILE]
                                              a table with positions as CSV or GeoJSON
    hubkit fsck [--repair] [--deep]           orphans, damaged products (--repair: quarantine)
    hubkit reindex                            rebuild the search index from the items
    hubkit doctor                             store, Dask backend, versions
    hubkit demo                               the main job, in a scratch store (not HUBKIT_STORE)
    hubkit hub [--port P] [--users a,b]       JupyterHub + Dask Gateway on 127.0.0.1
    hubkit chain run [--dry-run]              make what the processing chain is missing
    hubkit chain status [--by-day]            per step (and day): expected, present, missing, failed
    hubkit chain watch [--interval S] [--heartbeat F]  reconcile every S seconds (operational)
    hubkit chain report [--out DIR]           products and MB per day and step (PNG + HTML)
    hubkit uv build-table [--quick] [--out F | --ship | --to-store]
                                              compute a surface-UV lookup table with TUV-x
    hubkit uv info                            nodes and provenance of the shipped UV table
    hubkit validate SAT_ID STATION_ID --km D  satellite against a station (TCCON): pairs,
                                              statistics, figure (smoothing-corrected)

Every command takes ``--store URL`` (default: ``HUBKIT_STORE`` or the local store). A store that
does not exist is an error, except for ``upload``, ``demo`` and ``uv build-table --to-store``,
which create it, and for any command given ``--create``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import warnings
from pathlib import Path

from hubkit.errors import HubkitError, HubkitWarning
from hubkit.version import __version__

__all__ = ["main"]


def _s3_limits(args):
    """Timeouts and attempts for S3 stores: ``HUBKIT_S3_*``, overridden by the options."""
    from hubkit.store import S3Limits

    return S3Limits.from_env(connect_timeout=args.s3_connect_timeout,
                             read_timeout=args.s3_read_timeout, attempts=args.s3_attempts)


def _store(args, *, create: bool = False):
    """The store of ``--store`` (or ``HUBKIT_STORE``); one that does not exist is an error
    unless the command creates stores (``create``) or ``--create`` was given."""
    from hubkit.store import open_store

    return open_store(args.store, create=create or getattr(args, "create", False),
                      s3_limits=_s3_limits(args))


def _bbox(text: str):
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


def _printable(text) -> str:
    """Text from files (names, attributes, messages quoting them) with control characters
    escaped: an ANSI sequence or a newline in a file name cannot act on the terminal."""
    from hubkit.io.sanitise import printable

    return printable(text)


def cmd_upload(args) -> int:
    from hubkit.io import source_files

    files, empty = [], []
    for given in args.files:  # a directory that is not a Zarr group: its files, recursively
        found = source_files([given])
        if Path(given).is_dir() and found != [Path(given)]:
            if not found:
                empty.append(given)
            elif not args.quiet:
                print(f"{_printable(given)}: a directory; uploading the {len(found)} file(s) "
                      "in it and its subfolders (hidden names skipped)", file=sys.stderr)
        files.extend(found)
    for given in empty:
        print(f"error: {_printable(given)}: is a directory holding no files (hidden names are "
              "skipped); expected files to upload or folders holding them", file=sys.stderr)
    if not files:
        return 1
    from hubkit import ingest

    store = _store(args, create=True)
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
            print(f"warning: {_printable(warning.message)}", file=sys.stderr)
        else:
            warnings.showwarning(warning.message, warning.category, warning.filename,
                                 warning.lineno)
    for _path, exc in errors:
        print(f"error: {_printable(exc)}", file=sys.stderr)
    if errors:
        print(f"{len(errors)} of {len(files)} files were not stored", file=sys.stderr)
    return 1 if errors or empty else 0


def _row(item) -> dict:
    p = item.properties
    return {
        "id": item.id,
        "collection": item.collection_id,
        "start": (p.get("start_datetime") or "")[:19],
        "end": (p.get("end_datetime") or "")[:19],
        "bbox": ",".join(f"{v:.2f}" for v in item.bbox) if item.bbox else "",
        "site": _printable(p.get("hubkit:site") or ""),
        "inlet": " ".join(f"{h:g}" for h in p.get("hubkit:inlet_heights") or []),
        "source": _printable(p.get("hubkit:source") or ""),
    }


def cmd_search(args) -> int:
    store = _store(args)
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
    store = _store(args)
    item = store.get_item(args.id)
    if args.json:
        print(json.dumps(item.to_dict(include_self_link=False, transform_hrefs=False), indent=1))
        return 0
    p = item.properties
    print(f"id          {item.id}")
    print(f"collection  {item.collection_id}")
    print(f"source      {_printable(p.get('hubkit:source'))}")
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
        print(f"  input         {_printable(inp)}")
    print("variables")
    for name, v in p["hubkit:variables"].items():
        units = f"[{_printable(v['units'])}]" if v.get("units") else ""
        print(f"  {_printable(name):<26}{'(' + ', '.join(v['dims']) + ')':<32}{units}")
    table = _table_of(store, item)
    if table is not None:
        _show_flags(table.attrs.get("flags") or {})
        _show_rows(table, item.id, args.rows)
    return 0


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
        print(f"{_printable(column)} ({kind})")
        for code, word, text in zip(codes, words, texts, strict=False):
            print(f"  {code:<4}{_printable(word):<28}{_printable(text)}")


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
            print(f"  {_printable(line)}")
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

    store = _store(args)
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

    store = _store(args)
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


def cmd_validate(args) -> int:
    """Colocate a satellite product with a station product, compare, write table and figure."""
    import numpy as np

    from hubkit import validate
    from hubkit.plot import validation_figure

    store = _store(args)
    if (args.km is None) == (args.box is None):
        raise HubkitError("give the colocation either as --km DISTANCE or as --box DLAT DLON")
    criteria = validate.Criteria(
        max_distance_km=args.km, max_dlat=args.box[0] if args.box else None,
        max_dlon=args.box[1] if args.box else None,
        max_dt=np.timedelta64(int(round(args.hours * 3600)), "s"))
    soundings = store.open(store.get_item(args.satellite))
    station = store.open(store.get_item(args.station))
    smoothing = not args.no_smoothing and f"x{args.species}_averaging_kernel" in soundings
    try:
        pairs = validate.compare_with_tccon(soundings, station, args.species, criteria,
                                            smoothing=smoothing)
    except HubkitError as exc:
        raise HubkitError(f"cannot compare {args.satellite} with {args.station}: {exc}") \
            from exc
    column = "ground_smoothed" if smoothing else "ground"
    stats = validate.difference_statistics(
        pairs.assign(ground=pairs[column]) if not pairs.empty else pairs)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pairs.to_csv(out / "pairs.csv", index=False)
    stats.to_csv(out / "statistics.csv")
    units = soundings[f"x{args.species}"].attrs.get("units", "")
    fig = validation_figure(pairs, stats, quantity=f"X{args.species.upper()}", units=units,
                            stations=validate.station_series(station, args.species)["stations"],
                            title=f"{args.satellite} against {args.station}")
    fig.savefig(out / "validation.png", dpi=110)
    print(f"{len(pairs)} colocated pair(s); "
          f"{'smoothing-corrected' if smoothing else 'plain (no averaging kernels)'} "
          f"differences [{units}]")
    print(stats.round(3).to_string())
    print(f"wrote {out / 'pairs.csv'}, {out / 'statistics.csv'}, {out / 'validation.png'}")
    return 0


#: Station properties ``hubkit show`` prints: (label, STAC property).
_STATION_LINES = (("site", "hubkit:site"), ("site name", "hubkit:site_name"),
                  ("inlets", "hubkit:inlet_heights"), ("network", "hubkit:network"),
                  ("scale", "hubkit:calibration_scale"), ("platform", "platform"),
                  ("owner", "hubkit:data_owner"), ("instrument", "instruments"),
                  ("measurement", "hubkit:measurement_type"))


def _show_station(p: dict) -> None:
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
        print(f"{label:<12}{_printable(value)}")
    n = len(p.get("hubkit:provider_attrs") or {})
    if n:
        print(f"{'provider':<12}{n} global attributes of the file (hubkit show --json: "
              "properties.hubkit:provider_attrs)")


def cmd_fsck(args) -> int:
    report = _store(args).fsck(repair=args.repair, min_age=args.min_age, deep=args.deep)
    print(report)
    return 0 if report.clean or args.repair else 1


def cmd_reindex(args) -> int:
    df = _store(args).rebuild_index()
    print(f"search index rebuilt: {len(df)} item(s)")
    return 0


def cmd_doctor(args) -> int:
    import importlib.metadata as md

    from hubkit import compute, plot
    from hubkit.errors import MissingStoreError
    from hubkit.store import default_store_url, open_store

    url = args.store or default_store_url()
    print(f"hubkit {__version__}")
    print(f"store       {_printable(url)}")
    usable = True
    try:
        store = open_store(url, create=args.create, s3_limits=_s3_limits(args))
        n = len(store.index())
        print(f"            reachable; {n} product(s) in {len(store.collections())} collection(s)")
    except MissingStoreError as exc:
        usable = False
        print(f"            not there: {_printable(exc)}")
    except HubkitError as exc:
        usable = False
        print(f"            NOT usable: {_printable(exc)}")
    backend = compute.resolve_backend()
    print(f"dask        {backend.kind}: {backend.target or ''} ({backend.reason})")
    print(f"coastlines  {plot.coastline_summary()}")
    print("versions    " + ", ".join(
        f"{p} {md.version(p)}" for p in
        ("numpy", "xarray", "zarr", "dask", "distributed", "pystac", "s3fs", "cartopy")
        if _installed(p)
    ))
    return 0 if usable else 1


def _installed(package: str) -> bool:
    import importlib.metadata as md

    try:
        md.version(package)
    except md.PackageNotFoundError:
        return False
    return True


def _quiet_dask(args) -> None:
    """distributed sets its loggers to INFO when imported: keep the terminal readable."""
    import distributed  # noqa: F401  (import first, so its logging set-up is done)

    if not args.verbose:
        logging.getLogger("distributed").setLevel(logging.WARNING)


def cmd_demo(args) -> int:
    import matplotlib

    matplotlib.use("Agg")  # figures go to files; no window
    from hubkit.demo import run_demo

    _quiet_dask(args)
    run_demo(store_url=args.store, out_dir=args.out, inputs=args.input, orbits=args.orbits,
             echo=print)
    return 0


def cmd_hub(args) -> int:
    from hubkit.hub import run_local_hub

    users = [u for u in args.users.split(",") if u.strip()]
    return run_local_hub(state_dir=args.state_dir, users=users, port=args.port,
                         store=args.store, notebooks=args.notebooks,
                         unsafe_root=args.unsafe_root, system_users=args.system_users)


def _heartbeat(path: str | None):
    """A function that touches ``path`` (creating its folder), or does nothing without one."""
    if not path:
        return lambda: None
    target = Path(path)

    def beat():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.touch()

    return beat


def _seconds(text: str) -> float:
    """``"30"``, ``"30s"``, ``"5m"`` or ``"1h"`` as seconds."""
    scale = {"s": 1.0, "m": 60.0, "h": 3600.0}
    number, unit = (text[:-1], text[-1]) if text and text[-1] in scale else (text, "s")
    try:
        value = float(number) * scale[unit]
    except ValueError:
        value = -1.0
    if value < 0:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected a pause such as 30, 30s, 5m or 1h (not negative)"
        )
    return value


def cmd_chain(args) -> int:
    from hubkit import chain

    store = _store(args)
    if args.chain_command == "report":
        import matplotlib

        matplotlib.use("Agg")  # figures go to files; no window
        from hubkit.chain.report import write_report

        written = write_report(store, args.out)
        print(written["table"].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        print(f"report: {written['html']}\nfigure: {written['png']}")
        return 0
    if args.chain_command == "status" and args.by_day:
        table = chain.status_by_day(store)
        print(table.to_string(index=False) if len(table) else "nothing expected yet")
        return 1 if len(table) and table["failed"].sum() else 0
    if args.chain_command == "status" or (args.chain_command == "run" and args.dry_run):
        report = chain.status(store)
        print(report)
        for unit in report.missing:
            print(f"missing {unit.step} {unit.group} -> {unit.output_id}")
        return 1 if report.failed else 0
    _quiet_dask(args)
    from hubkit import compute

    with compute.client(args.scheduler, n_workers=args.workers) as client:
        if args.chain_command == "run":
            report = chain.reconcile(store, client=client, progress=not args.quiet)
            print(report)
            print(f"{len(report.submitted)} unit(s) run in {report.seconds:.1f} s",
                  file=sys.stderr)
            return 1 if report.failed else 0
        print(f"watching {store.url} every {args.interval:g} s (Ctrl-C stops)", file=sys.stderr)
        beat = _heartbeat(args.heartbeat)
        beat()

        def pause(seconds):  # after every round, whether it succeeded or failed
            beat()
            time.sleep(seconds)

        chain.watch(store, interval=args.interval, client=client, max_rounds=args.rounds,
                    on_report=lambda r: print(f"{len(r.submitted)} unit(s) run\n{r}",
                                              flush=True), sleep=pause)
        beat()
    return 0


def cmd_uv(args) -> int:
    from hubkit.uv import table as uv_table

    if args.uv_command == "info":
        path = uv_table.shipped_table_path()
        ds = uv_table.default_table()
        print(f"{path}\n  {ds.attrs.get('source')}; built {ds.attrs.get('created')} in "
              f"{ds.attrs.get('build_seconds')} s ({ds.attrs.get('engine_runs')} engine runs)")
        for axis in uv_table.AXES:
            values = ", ".join(f"{v:g}" for v in ds[axis].values)
            print(f"  {axis:9s} [{ds[axis].attrs['units']}] {values}")
        return 0
    if not (args.out or args.ship or args.to_store):
        print("hubkit uv build-table: say where the table goes: --out FILE, --ship or "
              "--to-store", file=sys.stderr)
        return 2
    nodes = uv_table.QUICK_NODES if args.quick else uv_table.Nodes()
    if args.scheduler:
        from hubkit import compute

        _quiet_dask(args)
        with compute.client(args.scheduler) as client:
            ds = uv_table.build_table(nodes, client=client)
    else:
        ds = uv_table.build_table(nodes, workers=args.workers)
    print(f"{ds.attrs['engine_runs']} engine runs in {ds.attrs['build_seconds']} s",
          file=sys.stderr)
    if args.ship:
        path = uv_table.shipped_table_path()
        uv_table.write_table(ds, path)
        print(path)
    if args.out:
        uv_table.write_table(ds, args.out)
        print(args.out)
    if args.to_store:
        item = _store(args, create=True).put(ds, product_type="uv-table", step="uv.build_table",
                                step_version=uv_table.TABLE_VERSION,
                                parameters={"nodes": repr(nodes), "created": ds.attrs["created"]})
        print(item.id)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hubkit", description="hubkit: store, search and process atmospheric satellite data"
    )
    parser.add_argument("--version", action="version", version=f"hubkit {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--store", help="store URL (default: $HUBKIT_STORE or the local store)")
    common.add_argument("--create", action="store_true",
                        help="create the store if it does not exist (upload and demo always do; "
                             "other commands refuse a store that is not there)")
    common.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    common.add_argument("--s3-connect-timeout", type=float, metavar="S",
                        help="S3 stores: seconds to open a connection (default: "
                             "$HUBKIT_S3_CONNECT_TIMEOUT or 5)")
    common.add_argument("--s3-read-timeout", type=float, metavar="S",
                        help="S3 stores: seconds to wait for an answer (default: "
                             "$HUBKIT_S3_READ_TIMEOUT or 10)")
    common.add_argument("--s3-attempts", type=int, metavar="N",
                        help="S3 stores: tries per request (default: $HUBKIT_S3_ATTEMPTS or 3)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("upload", parents=[common], help="store source files")
    p.add_argument("files", nargs="+",
                   help="files to upload; a directory (not a Zarr group) stands for the files "
                        "in it and its subfolders, hidden names (.*) skipped")
    p.add_argument("--format", help="source format (detected when omitted): oco2-lite, "
                   "oco2peak-csv, obspack, obspack-text, icos-nc, icos-atc, agage, l2-ozone, cf")
    p.add_argument("--workers", type=int, default=4, help="parallel uploads (default 4)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_upload)

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

    p = sub.add_parser("show", parents=[common], help="metadata of one product")
    p.add_argument("id")
    p.add_argument("--json", action="store_true", help="print the STAC item as JSON")
    p.add_argument("--rows", type=int, default=20, metavar="N",
                   help="table products: print the first N rows (default 20)")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("plot", parents=[common], help="a quick look at one product (PNG)")
    p.add_argument("id")
    p.add_argument("--variable", help="what to draw (default: the product's main quantity)")
    p.add_argument("--out", metavar="FILE.png", help="default: ID.png in this directory")
    p.add_argument("--dpi", type=int, default=110)
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser("export", parents=[common],
                       help="a table product with positions as CSV or GeoJSON")
    p.add_argument("id")
    p.add_argument("--format", required=True, choices=("csv", "geojson"),
                   help="csv: one line per row; geojson: one Point feature per row")
    p.add_argument("--out", metavar="FILE", help="write to FILE (default: standard output)")
    p.set_defaults(func=cmd_export)

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

    p = sub.add_parser("reindex", parents=[common], help="rebuild the search index")
    p.set_defaults(func=cmd_reindex)

    p = sub.add_parser("doctor", parents=[common], help="what hubkit would use here")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("demo", parents=[common],
                       help="run the demo job (in a scratch store unless --store is given)")
    p.add_argument("--out", default="hubkit-demo",
                   help="folder for inputs and figures (default ./hubkit-demo)")
    p.add_argument("--input", action="append", default=[],
                   help="also upload this file (repeatable), e.g. a real OCO-2 Lite file")
    p.add_argument("--orbits", type=int, default=4, help="simulated orbits (default 4)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("hub", parents=[common],
                       help="run JupyterHub + Dask Gateway locally (127.0.0.1)")
    p.add_argument("--port", type=int, default=8000,
                   help="port of the hub on 127.0.0.1 (default 8000; 0 picks a free one)")
    p.add_argument("--users", default="researcher",
                   help="comma-separated user names allowed to log in (default: researcher)")
    p.add_argument("--state-dir", help="configs, logs, homes and the default store "
                   "(default: ~/.local/share/hubkit/hub)")
    p.add_argument("--notebooks", help="folder of notebooks copied into each new home "
                   "(default: the repository's notebooks/)")
    isolation = p.add_mutually_exclusive_group()
    isolation.add_argument("--system-users", action="store_true",
                           help="as root: one Unix account per hub user (created when missing), "
                                "each server and Dask cluster runs as its user, homes private")
    isolation.add_argument("--unsafe-root", action="store_true",
                           help="start even as root: every user server then runs as root and can "
                                "read the hub's secrets and the other users' files (one trusted "
                                "person only)")
    p.set_defaults(func=cmd_hub)

    p = sub.add_parser("validate", parents=[common],
                       help="compare satellite soundings with a station (e.g. TCCON)")
    p.add_argument("satellite", help="id of the satellite product (soundings)")
    p.add_argument("station", help="id of the station product (e.g. tccon-columns)")
    p.add_argument("--species", default="co2", help="co2, ch4, co, n2o ... (default co2)")
    p.add_argument("--km", type=float, help="colocation radius around the station [km]")
    p.add_argument("--box", type=float, nargs=2, metavar=("DLAT", "DLON"),
                   help="colocation box instead of a radius [degrees]")
    p.add_argument("--hours", type=float, default=1.0,
                   help="station measurements within +- this many hours are averaged (default 1)")
    p.add_argument("--no-smoothing", action="store_true",
                   help="plain differences, without the satellite's averaging kernel")
    p.add_argument("--out", default="validation", help="folder for pairs.csv, statistics.csv "
                   "and validation.png (default ./validation)")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("chain", help="the processing chain: run, status, watch, report")
    chain_sub = p.add_subparsers(dest="chain_command", required=True, metavar="ACTION")
    dask_opts = argparse.ArgumentParser(add_help=False)
    dask_opts.add_argument("--scheduler", help="Dask scheduler address (default: see "
                           "`hubkit doctor`)")
    dask_opts.add_argument("--workers", type=int, help="LocalCluster workers (default: sized "
                           "to the container)")
    q = chain_sub.add_parser("run", parents=[common, dask_opts],
                             help="make what is missing, once")
    q.add_argument("--dry-run", action="store_true", help="list what is missing, run nothing")
    q.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    q = chain_sub.add_parser("status", parents=[common],
                             help="per step: expected, present, missing, failed")
    q.add_argument("--by-day", action="store_true",
                   help="per day of the data and step: done, pending, failed")
    q = chain_sub.add_parser("watch", parents=[common, dask_opts],
                             help="reconcile every --interval seconds until interrupted")
    q.add_argument("--interval", type=_seconds, default=30.0,
                   help="pause between rounds: 30, 30s, 5m, 1h (default 30 s)")
    q.add_argument("--rounds", type=int, help="stop after this many rounds (default: never)")
    q.add_argument("--heartbeat", metavar="FILE",
                   help="touch FILE at the start and after every round (a liveness probe "
                        "checks its age)")
    q = chain_sub.add_parser("report", parents=[common],
                             help="products made and MB processed per day and step")
    q.add_argument("--out", default="hubkit-chain-report",
                   help="folder for chain_report.png and .html (default ./hubkit-chain-report)")
    p.set_defaults(func=cmd_chain)

    p = sub.add_parser("uv", help="the surface-UV lookup table")
    uv_sub = p.add_subparsers(dest="uv_command", required=True, metavar="ACTION")
    q = uv_sub.add_parser("build-table", parents=[common],
                          help="compute a lookup table with TUV-x (pip install 'hubkit[uv]')")
    q.add_argument("--quick", action="store_true", help="a small table (minutes), to try it")
    q.add_argument("--out", help="write the table to this netCDF file")
    q.add_argument("--ship", action="store_true",
                   help="replace the table shipped in the package (maintainers)")
    q.add_argument("--to-store", action="store_true", help="store it as a uv-table product")
    q.add_argument("--workers", type=int, help="engine processes (default: every CPU)")
    q.add_argument("--scheduler", help="run the engine on this Dask scheduler instead")
    uv_sub.add_parser("info", parents=[common], help="nodes and provenance of the shipped table")
    p.set_defaults(func=cmd_uv)
    return parser


class _Terminated(BaseException):
    """SIGTERM (``kill``, Kubernetes, systemd), raised where the main thread is, so that the
    command unwinds as on Ctrl-C: Dask clusters close, their processes and semaphores go."""


def _stop_on_signals():
    """SIGTERM raises :class:`_Terminated`; after a first SIGINT or SIGTERM both are caught
    and dropped, so the shutdown it started is not broken off half-way (a handler, not
    ``SIG_IGN``: a Dask worker restarted meanwhile must not inherit an ignored SIGTERM), and
    Dask's warnings about the workers it stops are not shown (``-v`` shows them). Returns a
    function restoring the handlers (``main`` is also called in-process by the tests). Main
    thread only."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def drop(_signum, _frame):
        pass

    def stop(signum, _frame):
        for s in previous:
            signal.signal(s, drop)
        if not logging.getLogger().isEnabledFor(logging.INFO):  # not -v
            logging.getLogger("distributed").setLevel(logging.CRITICAL)
        raise KeyboardInterrupt if signum == signal.SIGINT else _Terminated

    for s in previous:
        if previous[s] is not signal.SIG_IGN:  # nohup: an ignored signal stays ignored
            signal.signal(s, stop)

    def restore():
        for s, handler in previous.items():
            signal.signal(s, handler)

    return restore


def _stopped(args) -> str:
    """What an interrupted command leaves, and how to carry on."""
    again = "`hubkit chain run` or `hubkit chain watch`" if args.command == "chain" else \
        f"`hubkit {args.command}`"
    return f"stopped; nothing half-written is visible in the store, and {again} carries on"


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(name)s: %(message)s",
    )
    restore = _stop_on_signals()
    try:
        return args.func(args)
    except HubkitError as exc:
        print(f"error: {_printable(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ninterrupted (Ctrl-C): {_stopped(args)}", file=sys.stderr)
        return 130
    except _Terminated:
        print(f"\nterminated (SIGTERM): {_stopped(args)}", file=sys.stderr)
        return 143
    finally:
        restore()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
