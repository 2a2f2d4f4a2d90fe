"""Clients this process makes without a gateway: a LocalCluster's, or a scheduler's at an address.

:class:`HubkitClient` is the client every backend returns: closing it also shuts down the cluster
that was started for it. A LocalCluster's workers start with SIGINT ignored, so Ctrl-C in a
terminal leaves their shutdown to the client.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import distributed

from hubkit.compute.backend import DASK_SCHEDULER_ADDRESS, HUBKIT_DASK, Backend
from hubkit.compute.resources import LocalSizing
from hubkit.errors import ComputeError

__all__ = ["LOCAL_HOST", "HubkitClient", "address_client", "local_client"]

#: Host every LocalCluster process listens on: never all interfaces.
LOCAL_HOST = "127.0.0.1"


class HubkitClient(distributed.Client):
    """A :class:`distributed.Client` that also closes the cluster started for it.

    Closing the client (``close()``, or leaving a ``with`` block) shuts down a LocalCluster or a
    gateway cluster created by :func:`hubkit.compute.client`; a scheduler found at an address is
    left running. ``hubkit_backend`` holds the :class:`Backend` the client was made for.
    """

    hubkit_backend: Backend | None = None
    _hubkit_shutdown: Callable[[], None] | None = None

    def close(self, *args: Any, **kwargs: Any) -> Any:
        """Close the client, then shut down the cluster that was started for it (if any)."""
        try:
            return super().close(*args, **kwargs)
        finally:
            shutdown, self._hubkit_shutdown = self._hubkit_shutdown, None
            if shutdown is not None:
                shutdown()

    def shut_down_on_close(self, shutdown: Callable[[], None]) -> None:
        """Call ``shutdown`` (once) when this client is closed: the cluster started for it."""
        self._hubkit_shutdown = shutdown


@contextlib.contextmanager
def _children_ignore_sigint():
    """Processes started inside ignore SIGINT (Ctrl-C); this one keeps its handler.

    A terminal sends Ctrl-C to the whole process group: each Dask worker process would die of
    it mid-task with a traceback (about 70 lines for two workers) while the client shuts the
    cluster down anyway. An ignored signal stays ignored across ``exec``, so the spawned workers
    inherit it and leave their shutdown to the client. Ctrl-C during the cluster's start (a
    second or two) is ignored by this process too. Only the main thread can set handlers:
    elsewhere (a notebook's worker thread) nothing changes.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def local_client(backend: Backend) -> HubkitClient:
    """A client of a new LocalCluster sized by ``backend.sizing``, closed with the client."""
    sizing = backend.sizing
    assert sizing is not None
    try:
        with _children_ignore_sigint():
            cluster = _local_cluster(sizing)
    except (OSError, TimeoutError) as err:
        raise ComputeError(f"could not start a {backend.describe()}: {err}") from err
    try:
        new = HubkitClient(cluster)
    except BaseException:
        cluster.close()
        raise
    new.shut_down_on_close(cluster.close)
    return new


def _local_cluster(sizing: LocalSizing) -> distributed.LocalCluster:
    return distributed.LocalCluster(
        n_workers=sizing.n_workers,
        threads_per_worker=sizing.threads_per_worker,
        memory_limit=sizing.memory_per_worker,
        processes=True,
        host=LOCAL_HOST,
        dashboard_address=f"{LOCAL_HOST}:0",
    )


def address_client(backend: Backend) -> HubkitClient:
    """A client of the running scheduler at ``backend.target``; the error says how to fix it."""
    if backend.kind == "scheduler-env":
        fix = f"fix or unset {DASK_SCHEDULER_ADDRESS}"
    elif backend.reason.startswith(HUBKIT_DASK):
        fix = f"fix or unset {HUBKIT_DASK}"
    else:
        fix = "fix the address argument, or leave it out"
    try:
        return HubkitClient(backend.target)
    except (OSError, TimeoutError, ValueError) as err:
        raise ComputeError(
            f"cannot connect to the Dask scheduler at {backend.target!r} ({backend.reason}): "
            f"{err}. Expected a running scheduler there, e.g. 'tcp://10.0.0.5:8786'; {fix} to "
            f"let hubkit choose another backend"
        ) from err
