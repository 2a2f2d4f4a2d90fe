"""hubkit: a cloud analysis hub for greenhouse-gas and atmospheric-composition satellite data.

The store (:func:`open_store`) keeps canonical CF/Zarr products with a STAC catalog; the readers
in :mod:`hubkit.io` turn source files into canonical datasets; :mod:`hubkit.compute` finds the
Dask cluster to run on.
"""

from hubkit.errors import (
    ChainError,
    ComputeError,
    FusionInputError,
    HubkitError,
    HubkitWarning,
    IngestError,
    SchemaError,
    StoreError,
)
from hubkit.version import __version__

__all__ = [
    "ChainError",
    "ComputeError",
    "FusionInputError",
    "HubkitError",
    "HubkitWarning",
    "IngestError",
    "SchemaError",
    "StoreError",
    "__version__",
    "get_obs",
    "open_store",
    "scratch_store_url",
]


def open_store(url=None, **storage_options):
    """Open the product store at ``url`` (see :func:`hubkit.store.open_store`)."""
    from hubkit.store import open_store as _open_store

    return _open_store(url, **storage_options)


def get_obs(store, **query):
    """Time series of one site, species and inlet (see :func:`hubkit.timeseries.get_obs`)."""
    from hubkit.timeseries import get_obs as _get_obs

    return _get_obs(store, **query)


def __getattr__(name):
    # Sub-modules that pull in heavy dependencies load on first use: ``hubkit.compute``.
    if name in {"compute", "io", "store", "schemas", "plot", "simulate", "fusion", "co2",
                "chain", "osse", "ozone", "uv", "assimilation", "demo", "timeseries", "ingest"}:
        import importlib

        return importlib.import_module(f"hubkit.{name}")
    raise AttributeError(f"module 'hubkit' has no attribute {name!r}")


def scratch_store_url(name="scratch"):
    """A store of one's own for notebooks and demos (see :func:`hubkit.store.scratch_store_url`)."""
    from hubkit.store import scratch_store_url as _scratch_store_url

    return _scratch_store_url(name)
