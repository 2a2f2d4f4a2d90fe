"""A new cluster from the Dask Gateway the hub runs, and its clean shutdown.

The gateway's settings come from the ``DASK_GATEWAY__*`` environment as it is when the client is
made; the cluster is submitted, waited for until it runs, and only then connected to, so a refused
request or a failed start leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
from collections.abc import Mapping
from typing import Any

import dask.config

from hubkit.compute.backend import DASK_GATEWAY_ADDRESS, Backend
from hubkit.compute.local import HubkitClient
from hubkit.compute.resources import positive_int
from hubkit.errors import ComputeError

__all__ = [
    "GATEWAY_ADAPT_MAXIMUM",
    "GATEWAY_ADAPT_MINIMUM",
    "GATEWAY_POLL_INTERVAL",
    "forget_stopped_loop",
    "gateway_client",
]

#: Bounds of adaptive scaling for a new gateway cluster when ``n_workers`` is not given. [workers]
#: One worker stays up so work starts at once; the maximum None leaves the ceiling to the
#: gateway's ``cluster_max_workers`` (the hub admin's policy; a number above that limit would
#: only be clamped by the gateway, with a warning on every call).
GATEWAY_ADAPT_MINIMUM = 1
GATEWAY_ADAPT_MAXIMUM: int | None = None

#: Time between two status requests while a new gateway cluster starts. [s]
GATEWAY_POLL_INTERVAL = 0.25


def _gateway_config(environ: Mapping[str, str]) -> dict[str, Any]:
    """The ``gateway.*`` Dask config from the current ``DASK_GATEWAY__*`` environment.

    Dask reads the environment once, at import; reading it again here makes a variable set
    later in the session (a notebook cell, a test) count, as it does for
    :func:`~hubkit.compute.backend.resolve_backend`. Returned as dotted keys so
    :func:`dask.config.set` overrides single values, not the subtree.
    """
    nested = dask.config.collect_env(
        {k: v for k, v in environ.items() if k.startswith("DASK_GATEWAY__")}
    )
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict) and value:
            for key, item in value.items():
                walk(f"{prefix}.{key}" if prefix else key, item)
        else:
            flat[prefix] = value

    walk("", nested)
    return flat


def gateway_client(
    backend: Backend, n_workers: int | None, options: Mapping[str, Any] | None
) -> HubkitClient:
    """A client of a new cluster on the gateway at ``backend.target``, shut down with the client.

    ``n_workers`` fixes the cluster's size; without it the cluster adapts between
    ``GATEWAY_ADAPT_MINIMUM`` and ``GATEWAY_ADAPT_MAXIMUM``. ``options`` are the gateway's own
    cluster options. Every failure of the gateway is a ComputeError that names the address.
    """
    try:
        import dask_gateway
    except ImportError as err:
        raise ComputeError(
            f"{DASK_GATEWAY_ADDRESS} is set to {backend.target!r} but the package dask_gateway "
            f"is not installed; expected it in a hub image (pip install 'hubkit[hub]'), or "
            f"unset {DASK_GATEWAY_ADDRESS} to use a LocalCluster"
        ) from err
    import aiohttp

    if n_workers is not None:
        n_workers = positive_int("n_workers", n_workers)
    errors = (
        OSError,
        TimeoutError,
        ValueError,
        TypeError,  # an unknown DASK_GATEWAY__AUTH__TYPE
        ImportError,  # an auth type whose package is missing (kerberos)
        aiohttp.ClientError,
        dask_gateway.GatewayClusterError,
        dask_gateway.GatewayServerError,
    )
    # Submit, wait until running, and only then connect: a request the gateway refuses (auth,
    # options) or a cluster that fails to start then leaves no half-made GatewayCluster behind,
    # whose event-loop thread would run on until garbage collection. This Gateway owns the event
    # loop that the cluster and the client share.
    gateway = cluster = None
    try:
        with dask.config.set(_gateway_config(os.environ)):
            gateway = dask_gateway.Gateway(address=backend.target)
            name = gateway.submit(**dict(options or {}))
        try:
            _wait_until_running(gateway, name, dask_gateway.GatewayClusterError)
            cluster = gateway.connect(name, shutdown_on_close=True)
        except BaseException:
            with contextlib.suppress(*errors):
                gateway.stop_cluster(name)
            raise
        if n_workers is not None:
            cluster.scale(n_workers)
        else:
            cluster.adapt(minimum=GATEWAY_ADAPT_MINIMUM, maximum=GATEWAY_ADAPT_MAXIMUM)
        new = HubkitClient(cluster)
    except BaseException as err:
        _shutdown_gateway(gateway, cluster)
        if isinstance(err, errors):
            raise ComputeError(
                f"could not create a cluster on the Dask Gateway at {backend.target!r} "
                f"({backend.reason}): {type(err).__name__}: {err}. Check the address, the "
                f"DASK_GATEWAY__AUTH__* settings and the gateway_options"
            ) from err
        raise
    new.shut_down_on_close(functools.partial(_shutdown_gateway, gateway, cluster))
    return new


def _wait_until_running(gateway: Any, name: str, error: type[Exception]) -> None:
    """Poll the gateway until cluster ``name`` runs; raise ``error`` if it failed or stopped.

    The gateway itself fails a cluster that does not start within its ``cluster_start_timeout``.
    """
    while True:
        status = gateway.get_cluster(name).status.name
        if status == "RUNNING":
            return
        if status in {"FAILED", "STOPPED", "STOPPING"}:
            raise error(f"Cluster {name!r} failed to start ({status}); see the gateway's logs")
        time.sleep(GATEWAY_POLL_INTERVAL)


def _shutdown_gateway(gateway: Any, cluster: Any) -> None:
    """Shut the gateway cluster down (if any), then close the gateway connection, each once.

    ``Gateway.close()`` of dask_gateway 2026.3 is not idempotent: its ``__del__`` closes again,
    and with distributed 2026.7 reading the stopped loop raises, printed as "Exception ignored in
    Gateway.__del__ ... Accessing the loop property while the loop is not running". That
    ``__del__`` skips objects without ``_loop_runner``, so once a runner is stopped, drop it.
    """
    try:
        if cluster is not None:
            cluster.close()
            forget_stopped_loop(cluster.gateway)
    finally:
        if gateway is not None:
            gateway.close()
            forget_stopped_loop(gateway)


def forget_stopped_loop(gateway: Any) -> None:
    """Drop a closed Gateway's stopped loop runner, so its ``__del__`` does not close it again."""
    runner = getattr(gateway, "_loop_runner", None)
    if runner is not None and not runner.is_started():
        del gateway._loop_runner
