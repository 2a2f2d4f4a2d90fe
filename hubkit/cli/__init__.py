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
import logging
import sys

from hubkit.cli import environment, science, store
from hubkit.cli.common import printable
from hubkit.cli.signals import Terminated, stop_on_signals, stopped
from hubkit.errors import HubkitError
from hubkit.version import __version__

__all__ = ["build_parser", "main"]

#: The commands in the order ``hubkit --help`` lists them.
COMMANDS = (store.add_upload, store.add_search, store.add_show, store.add_plot,
            store.add_export, store.add_fsck, store.add_reindex, environment.add_doctor,
            science.add_demo, environment.add_hub, science.add_validate, science.add_chain,
            science.add_uv)


def build_parser() -> argparse.ArgumentParser:
    """The ``hubkit`` parser: the options every command takes, and the :data:`COMMANDS`."""
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
    for add in COMMANDS:
        add(sub, common)
    return parser


def main(argv=None) -> int:
    """Run one ``hubkit`` command; its exit status (2 for a HubkitError, 130 on Ctrl-C, 143 on
    SIGTERM)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(name)s: %(message)s",
    )
    restore = stop_on_signals()
    try:
        return args.func(args)
    except HubkitError as exc:
        print(f"error: {printable(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ninterrupted (Ctrl-C): {stopped(args)}", file=sys.stderr)
        return 130
    except Terminated:
        print(f"\nterminated (SIGTERM): {stopped(args)}", file=sys.stderr)
        return 143
    finally:
        restore()
