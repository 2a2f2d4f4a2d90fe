"""Commands that run science over the store: the chain, the UV table, validation, the demo.

Each ``cmd_*`` takes the parsed arguments and returns the exit status; each ``add_*`` adds its
command to the ``hubkit`` parser.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from hubkit.cli.common import quiet_dask, store_of
from hubkit.errors import HubkitError

__all__ = ["add_chain", "add_demo", "add_uv", "add_validate", "cmd_chain", "cmd_demo",
           "cmd_uv", "cmd_validate"]


def cmd_validate(args) -> int:
    """Colocate a satellite product with a station product, compare, write table and figure."""
    import numpy as np

    from hubkit import validate
    from hubkit.plot import validation_figure

    store = store_of(args)
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


def cmd_demo(args) -> int:
    """The main job (:func:`hubkit.demo.run_demo`), in a scratch store unless ``--store``."""
    import matplotlib

    matplotlib.use("Agg")  # figures go to files; no window
    from hubkit.demo import run_demo

    quiet_dask(args)
    run_demo(store_url=args.store, out_dir=args.out, inputs=args.input, orbits=args.orbits,
             echo=print)
    return 0


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
    """``chain run``, ``status``, ``watch`` or ``report``; 1 when a unit failed."""
    from hubkit import chain

    store = store_of(args)
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
    quiet_dask(args)
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
    """``uv info`` (the shipped table) or ``uv build-table`` (to a file, the package or store)."""
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

        quiet_dask(args)
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
        item = store_of(args, create=True).put(ds, product_type="uv-table", step="uv.build_table",
                                step_version=uv_table.TABLE_VERSION,
                                parameters={"nodes": repr(nodes), "created": ds.attrs["created"]})
        print(item.id)
    return 0


def add_demo(sub, common) -> None:
    """The ``demo`` command."""
    p = sub.add_parser("demo", parents=[common],
                       help="run the demo job (in a scratch store unless --store is given)")
    p.add_argument("--out", default="hubkit-demo",
                   help="folder for inputs and figures (default ./hubkit-demo)")
    p.add_argument("--input", action="append", default=[],
                   help="also upload this file (repeatable), e.g. a real OCO-2 Lite file")
    p.add_argument("--orbits", type=int, default=4, help="simulated orbits (default 4)")
    p.set_defaults(func=cmd_demo)


def add_validate(sub, common) -> None:
    """The ``validate`` command."""
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


def add_chain(sub, common) -> None:
    """The ``chain`` command and its actions run, status, watch, report."""
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


def add_uv(sub, common) -> None:
    """The ``uv`` command and its actions build-table, info."""
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
