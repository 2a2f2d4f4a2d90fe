"""Commands about where hubkit runs: ``doctor`` and ``hub``.

``doctor`` says which store, Dask backend and versions a command would use here; ``hub`` runs
JupyterHub and Dask Gateway on 127.0.0.1. Each ``add_*`` adds its command to the parser.
"""

from __future__ import annotations

from hubkit.cli.common import printable, s3_limits
from hubkit.errors import HubkitError
from hubkit.version import __version__

__all__ = ["add_doctor", "add_hub", "cmd_doctor", "cmd_hub"]


def cmd_doctor(args) -> int:
    """Store, Dask backend, coastlines and versions; exit status 1 when the store is unusable."""
    import importlib.metadata as md

    from hubkit import compute, plot
    from hubkit.errors import MissingStoreError
    from hubkit.store import default_store_url, open_store

    url = args.store or default_store_url()
    print(f"hubkit {__version__}")
    print(f"store       {printable(url)}")
    usable = True
    try:
        store = open_store(url, create=args.create, s3_limits=s3_limits(args))
        n = len(store.index())
        print(f"            reachable; {n} product(s) in {len(store.collections())} collection(s)")
    except MissingStoreError as exc:
        usable = False
        print(f"            not there: {printable(exc)}")
    except HubkitError as exc:
        usable = False
        print(f"            NOT usable: {printable(exc)}")
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


def cmd_hub(args) -> int:
    """JupyterHub and Dask Gateway on 127.0.0.1 until stopped (:func:`hubkit.hub.run_local_hub`)."""
    from hubkit.hub import run_local_hub

    users = [u for u in args.users.split(",") if u.strip()]
    return run_local_hub(state_dir=args.state_dir, users=users, port=args.port,
                         store=args.store, notebooks=args.notebooks,
                         unsafe_root=args.unsafe_root, system_users=args.system_users)


def add_doctor(sub, common) -> None:
    """The ``doctor`` command."""
    p = sub.add_parser("doctor", parents=[common], help="what hubkit would use here")
    p.set_defaults(func=cmd_doctor)


def add_hub(sub, common) -> None:
    """The ``hub`` command."""
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
