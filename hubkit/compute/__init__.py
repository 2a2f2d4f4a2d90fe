"""Find the Dask cluster to run on, and return a client for it.

:func:`client` looks, in this order, for

1. an explicit ``address`` argument,
2. the ``HUBKIT_DASK`` environment variable (a scheduler address),
3. ``DASK_SCHEDULER_ADDRESS`` (the variable Dask itself reads),
4. ``DASK_GATEWAY__ADDRESS``: a new cluster from the Dask Gateway the hub runs,
5. otherwise a :class:`distributed.LocalCluster` sized to the container (cgroup CPU quota and
   memory limit), listening on 127.0.0.1 only.

:func:`resolve_backend` makes the same decision without connecting to or starting anything, so
``hubkit doctor`` can say which backend a notebook would get, and why. An empty variable counts
as unset. :func:`cpu_limit` and :func:`memory_limit` read the container's limits.

The rooms: :mod:`~hubkit.compute.resources` (container limits, LocalCluster sizing),
:mod:`~hubkit.compute.backend` (the choice), :mod:`~hubkit.compute.local` (the client type, a
LocalCluster, a scheduler at an address), :mod:`~hubkit.compute.gateway` (a Dask Gateway cluster).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from hubkit.compute.backend import Backend, resolve_backend
from hubkit.compute.gateway import gateway_client
from hubkit.compute.local import HubkitClient, address_client, local_client
from hubkit.compute.resources import LocalSizing, cpu_limit, local_sizing, memory_limit

__all__ = [
    "Backend",
    "HubkitClient",
    "LocalSizing",
    "client",
    "cpu_limit",
    "local_sizing",
    "memory_limit",
    "resolve_backend",
]

logger = logging.getLogger(__name__)


def _ignored(backend: Backend, **given: Any) -> None:
    """Log the options that the chosen backend cannot use."""
    unused = {
        "address": ("n_workers", "threads_per_worker", "memory_limit", "gateway_options"),
        "scheduler-env": ("n_workers", "threads_per_worker", "memory_limit", "gateway_options"),
        "gateway": ("threads_per_worker", "memory_limit"),
        "local": ("gateway_options",),
    }[backend.kind]
    names = [name for name in unused if given.get(name) is not None]
    if names:
        hint = (
            " (pass worker_cores/worker_memory in gateway_options instead)"
            if backend.kind == "gateway"
            else ""
        )
        logger.warning(
            "ignoring %s: not used by the %r backend%s", ", ".join(names), backend.kind, hint
        )


def client(
    address: str | None = None,
    *,
    n_workers: int | None = None,
    threads_per_worker: int | None = None,
    memory_limit: int | str | None = None,
    gateway_options: Mapping[str, Any] | None = None,
) -> HubkitClient:
    """Return a Dask client for the backend :func:`resolve_backend` chooses.

    Logs one INFO line on the ``hubkit.compute`` logger saying which backend and why. A cluster
    this function starts (a LocalCluster, or a new gateway cluster) is shut down when the client
    is closed, so ``with hubkit.compute.client() as c:`` cleans up after itself. Options the
    chosen backend cannot use are logged as a warning and ignored, so a notebook written for a
    laptop still runs on the hub.

    Parameters
    ----------
    address : str, optional
        Scheduler address such as ``"tcp://10.0.0.5:8786"``; overrides the environment.
    n_workers : int, optional
        LocalCluster worker processes, or the fixed size of a new gateway cluster (without it a
        gateway cluster adapts from ``gateway.GATEWAY_ADAPT_MINIMUM`` up to the gateway's limit).
        [workers]
    threads_per_worker : int, optional
        LocalCluster threads in each worker. [threads]
    memory_limit : int or str, optional
        LocalCluster memory limit of each worker, e.g. ``"4 GiB"``. [bytes]
    gateway_options : mapping, optional
        Cluster options for a new gateway cluster, as the gateway defines them (for instance
        ``{"worker_cores": 2, "worker_memory": 4}``).

    Returns
    -------
    client : HubkitClient
        A :class:`distributed.Client`; ``client.hubkit_backend`` is the :class:`Backend` used.

    Raises
    ------
    ComputeError
        If the scheduler or gateway cannot be reached, the gateway refuses the cluster, or
        ``dask_gateway`` is needed but not installed.
    ValueError
        If a sizing option is not a positive number.

    Notes
    -----
    LocalCluster workers are separate processes started with ``spawn``: a script that calls
    this function at import level needs an ``if __name__ == "__main__":`` guard.
    """
    backend = resolve_backend(
        address,
        n_workers=n_workers,
        threads_per_worker=threads_per_worker,
        memory_limit=memory_limit,
    )
    logger.info("%s", backend.describe())
    _ignored(
        backend,
        n_workers=n_workers,
        threads_per_worker=threads_per_worker,
        memory_limit=memory_limit,
        gateway_options=gateway_options,
    )
    if backend.kind == "local":
        new = local_client(backend)
    elif backend.kind == "gateway":
        new = gateway_client(backend, n_workers, gateway_options)
    else:
        new = address_client(backend)
    new.hubkit_backend = backend
    return new
