"""Which Dask backend :func:`hubkit.compute.client` would use, and why.

:func:`resolve_backend` decides without connecting to or starting anything, so ``hubkit doctor``
can say it too. The order: an explicit address, ``HUBKIT_DASK``, ``DASK_SCHEDULER_ADDRESS``,
``DASK_GATEWAY__ADDRESS``, else a LocalCluster sized to the container. An empty variable counts
as unset.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

from hubkit.compute.resources import LocalSizing, gib, local_sizing, plural
from hubkit.errors import ComputeSettingError

__all__ = [
    "DASK_GATEWAY_ADDRESS",
    "DASK_SCHEDULER_ADDRESS",
    "HUBKIT_DASK",
    "Backend",
    "BackendKind",
    "resolve_backend",
]

HUBKIT_DASK = "HUBKIT_DASK"
DASK_SCHEDULER_ADDRESS = "DASK_SCHEDULER_ADDRESS"
DASK_GATEWAY_ADDRESS = "DASK_GATEWAY__ADDRESS"

BackendKind = Literal["address", "scheduler-env", "gateway", "local"]


@dataclass(frozen=True)
class Backend:
    """The Dask backend :func:`hubkit.compute.client` would use, and why.

    Attributes
    ----------
    kind : {"address", "scheduler-env", "gateway", "local"}
        ``"address"``: a scheduler from the ``address`` argument or ``HUBKIT_DASK``;
        ``"scheduler-env"``: a scheduler from ``DASK_SCHEDULER_ADDRESS``; ``"gateway"``: a new
        cluster from the Dask Gateway at ``DASK_GATEWAY__ADDRESS``; ``"local"``: a LocalCluster.
    target : str or None
        The scheduler address or gateway URL; None for a LocalCluster.
    reason : str
        Why this backend was chosen (which setting was found, which were not).
    sizing : LocalSizing or None
        The LocalCluster's size; None for the other kinds.
    """

    kind: BackendKind
    target: str | None
    reason: str
    sizing: LocalSizing | None = None

    def describe(self) -> str:
        """One line saying what the backend is and why it was chosen."""
        if self.kind == "local" and self.sizing is not None:
            s = self.sizing
            return (
                f"LocalCluster with {plural(s.n_workers, 'worker')} x "
                f"{plural(s.threads_per_worker, 'thread')}, {gib(s.memory_per_worker)} each "
                f"({self.reason})"
            )
        if self.kind == "gateway":
            return f"new Dask Gateway cluster at {self.target} ({self.reason})"
        return f"Dask scheduler at {self.target} ({self.reason})"

    def __str__(self) -> str:
        return self.describe()


def _env(name: str) -> str | None:
    return os.environ.get(name, "").strip() or None


def resolve_backend(
    address: str | None = None,
    *,
    n_workers: int | None = None,
    threads_per_worker: int | None = None,
    memory_limit: int | str | None = None,
    root: str | os.PathLike = "/",
) -> Backend:
    """Decide the Dask backend :func:`hubkit.compute.client` would use; nothing is started.

    Order: ``address``, ``HUBKIT_DASK``, ``DASK_SCHEDULER_ADDRESS``, ``DASK_GATEWAY__ADDRESS``,
    else a LocalCluster sized by :func:`local_sizing`. Only the environment and the cgroup files
    are read.

    Parameters
    ----------
    address : str, optional
        Scheduler address such as ``"tcp://10.0.0.5:8786"``; overrides the environment.
    n_workers, threads_per_worker, memory_limit : optional
        LocalCluster sizing, see :func:`local_sizing`; unused by the other backends.
    root : path-like, optional
        File-system root holding the cgroup files. [path]

    Returns
    -------
    backend : Backend
    """
    if address is not None:
        if not isinstance(address, str) or not address.strip():
            raise ComputeSettingError(
                f"address must be a scheduler address such as 'tcp://10.0.0.5:8786', "
                f"got {address!r}"
            )
        return Backend("address", address.strip(), "explicit address argument")
    if target := _env(HUBKIT_DASK):
        return Backend("address", target, f"{HUBKIT_DASK} is set")
    if target := _env(DASK_SCHEDULER_ADDRESS):
        return Backend(
            "scheduler-env", target, f"{DASK_SCHEDULER_ADDRESS} is set, {HUBKIT_DASK} is not"
        )
    if target := _env(DASK_GATEWAY_ADDRESS):
        return Backend(
            "gateway",
            target,
            f"{DASK_GATEWAY_ADDRESS} is set, {HUBKIT_DASK} and {DASK_SCHEDULER_ADDRESS} are not",
        )
    sizing = local_sizing(n_workers, threads_per_worker, memory_limit, root=root)
    reason = (
        f"no {HUBKIT_DASK}, {DASK_SCHEDULER_ADDRESS} or {DASK_GATEWAY_ADDRESS} set; {sizing.basis}"
    )
    return Backend("local", None, reason, sizing)
