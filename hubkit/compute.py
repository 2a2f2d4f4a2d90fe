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
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import dask.config
import distributed
from dask.utils import parse_bytes

from hubkit.errors import ComputeError, ComputeSettingError

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

HUBKIT_DASK = "HUBKIT_DASK"
DASK_SCHEDULER_ADDRESS = "DASK_SCHEDULER_ADDRESS"
DASK_GATEWAY_ADDRESS = "DASK_GATEWAY__ADDRESS"

#: Bounds of adaptive scaling for a new gateway cluster when ``n_workers`` is not given. [workers]
#: One worker stays up so work starts at once; the maximum None leaves the ceiling to the
#: gateway's ``cluster_max_workers`` (the hub admin's policy; a number above that limit would
#: only be clamped by the gateway, with a warning on every call).
GATEWAY_ADAPT_MINIMUM = 1
GATEWAY_ADAPT_MAXIMUM: int | None = None

#: Time between two status requests while a new gateway cluster starts. [s]
GATEWAY_POLL_INTERVAL = 0.25

#: Host every LocalCluster process listens on: never all interfaces.
LOCAL_HOST = "127.0.0.1"

_CGROUP = Path("sys", "fs", "cgroup")
_CGROUP_V1_CPU_DIRS = ("cpu", "cpu,cpuacct", "cpuacct,cpu")

BackendKind = Literal["address", "scheduler-env", "gateway", "local"]


# --------------------------------------------------------------------------------------------
# Container limits
# --------------------------------------------------------------------------------------------


def _read(path: Path) -> str | None:
    """Stripped text of ``path``, or None when it cannot be read."""
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _own_cgroups(root: Path) -> dict[str, str]:
    """Map controller name to this process's cgroup path, from ``/proc/self/cgroup``.

    The cgroup v2 line (``0::/path``) is stored under the key ``""``.
    """
    text = _read(root / "proc" / "self" / "cgroup")
    groups: dict[str, str] = {}
    for line in (text or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        for name in controllers.split(",") if controllers else [""]:
            groups[name] = path
    return groups


def _levels(mount: Path, path: str | None) -> list[Path]:
    """Directories from the process's own cgroup up to the mount point, deepest first.

    The effective limit of a cgroup is the smallest limit on the way up. A path outside the
    mount's namespace (``/../..``) or no path at all leaves only the mount point itself.
    """
    parts = [p for p in (path or "").split("/") if p]
    if ".." in parts:
        parts = []
    return [mount.joinpath(*parts[:n]) for n in range(len(parts), -1, -1)]


def _parse_int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _cgroup_cpus(root: Path) -> tuple[float, str] | None:
    """Smallest CPU quota set by a cgroup on this process, with the file it came from. [CPU]"""
    groups = _own_cgroups(root)
    found: list[tuple[float, str]] = []
    for level in _levels(root / _CGROUP, groups.get("")):
        fields = (_read(level / "cpu.max") or "").split()
        if not fields or fields[0] == "max":  # absent, or "max 100000": no quota
            continue
        quota = _parse_int(fields[0])
        period = _parse_int(fields[1]) if len(fields) > 1 else 100_000
        if quota and period and quota > 0 and period > 0:
            found.append((quota / period, "cgroup cpu.max"))
    for name in _CGROUP_V1_CPU_DIRS:
        for level in _levels(root / _CGROUP / name, groups.get("cpu")):
            quota = _parse_int(_read(level / "cpu.cfs_quota_us"))
            period = _parse_int(_read(level / "cpu.cfs_period_us"))
            if quota and period and quota > 0 and period > 0:  # -1 means no quota
                found.append((quota / period, "cgroup cpu.cfs_quota_us"))
    return min(found) if found else None


def _cgroup_memory(root: Path) -> tuple[int, str] | None:
    """Smallest memory limit set by a cgroup on this process, with its file. [bytes]"""
    groups = _own_cgroups(root)
    found: list[tuple[int, str]] = []
    for level in _levels(root / _CGROUP, groups.get("")):
        limit = _parse_int(_read(level / "memory.max"))  # "max" parses to None: no limit
        if limit is not None and limit > 0:
            found.append((limit, "cgroup memory.max"))
    for level in _levels(root / _CGROUP / "memory", groups.get("memory")):
        # v1 reports "no limit" as a huge number (9223372036854771712); min() with RAM drops it
        limit = _parse_int(_read(level / "memory.limit_in_bytes"))
        if limit is not None and limit > 0:
            found.append((limit, "cgroup memory.limit_in_bytes"))
    return min(found) if found else None


def _host_cpus() -> tuple[int, str]:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)), "CPU affinity"
    return os.cpu_count() or 1, "os.cpu_count()"


def _host_memory() -> int:
    try:
        import psutil

        return int(psutil.virtual_memory().total)
    except ImportError:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _cpu_limit_and_source(root: str | os.PathLike) -> tuple[float, str]:
    cpus, source = _host_cpus()
    quota = _cgroup_cpus(Path(root))
    if quota is not None and quota[0] < cpus:
        return quota
    return float(cpus), source


def _memory_limit_and_source(root: str | os.PathLike) -> tuple[int, str]:
    total = _host_memory()
    limit = _cgroup_memory(Path(root))
    if limit is not None and limit[0] < total:
        return limit
    return total, "total RAM"


def cpu_limit(root: str | os.PathLike = "/") -> float:
    """Number of CPUs this process may use, honouring a container's CPU quota.

    The quota is read from cgroup v2 ``cpu.max`` or cgroup v1 ``cpu.cfs_quota_us`` /
    ``cpu.cfs_period_us``, in the process's own cgroup and every parent (the smallest wins).
    Without a quota (``max``, ``-1`` or no file) the CPUs in the process's affinity mask count
    (``os.cpu_count()`` where affinity is unknown); a quota above that count does not raise it.

    Parameters
    ----------
    root : path-like, optional
        Root of the file system holding ``sys/fs/cgroup`` and ``proc/self/cgroup``; tests point
        it at a directory of fake cgroup files. [path]

    Returns
    -------
    cpus : float
        Available CPUs, fractional for a fractional quota (``150000 100000`` gives 1.5). [CPU]
    """
    return _cpu_limit_and_source(root)[0]


def memory_limit(root: str | os.PathLike = "/") -> int:
    """Memory this process may use, honouring a container's memory limit.

    The limit is read from cgroup v2 ``memory.max`` or cgroup v1 ``memory.limit_in_bytes``, in
    the process's own cgroup and every parent (the smallest wins). Without a limit (``max``, the
    v1 "unlimited" value, or no file) the total RAM of the machine counts.

    Parameters
    ----------
    root : path-like, optional
        Root of the file system holding ``sys/fs/cgroup`` and ``proc/self/cgroup``. [path]

    Returns
    -------
    memory : int
        The smaller of the cgroup limit and the total RAM. [bytes]
    """
    return _memory_limit_and_source(root)[0]


# --------------------------------------------------------------------------------------------
# Sizing a LocalCluster
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalSizing:
    """How a LocalCluster is sized, and from what.

    Attributes
    ----------
    n_workers : int
        Worker processes. [workers]
    threads_per_worker : int
        Threads in each worker. [threads]
    memory_per_worker : int
        Memory limit of each worker. [bytes]
    cpus : float
        CPUs available to the container (see :func:`cpu_limit`). [CPU]
    memory : int
        Memory available to the container (see :func:`memory_limit`). [bytes]
    basis : str
        Where the numbers came from, for messages.
    """

    n_workers: int
    threads_per_worker: int
    memory_per_worker: int
    cpus: float
    memory: int
    basis: str


def _split_cores(cores: int) -> tuple[int, int]:
    """Workers and threads per worker for ``cores`` whole CPUs.

    Up to 4 cores: one single-threaded worker per core. Above: about sqrt(cores) workers (the
    smallest divisor of ``cores`` not below its square root), sharing the cores as threads, so a
    large machine does not split its memory into many small workers.
    """
    if cores <= 4:
        return cores, 1
    workers = next(
        d for d in range(math.isqrt(cores), cores + 1) if cores % d == 0 and d * d >= cores
    )
    return workers, cores // workers


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ComputeSettingError(f"{name} must be a positive integer, got {value!r}")
    return value


def _gib(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:.1f} GiB"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def local_sizing(
    n_workers: int | None = None,
    threads_per_worker: int | None = None,
    memory_limit: int | str | None = None,
    *,
    root: str | os.PathLike = "/",
) -> LocalSizing:
    """Size a LocalCluster to the container's CPU quota and memory limit.

    The available CPUs (:func:`cpu_limit`) are floored to whole cores, with a minimum of one: a
    quota of 1.5 CPUs gives 1 worker, so the workers never oversubscribe the quota. Up to 4
    cores get one single-threaded worker each; more cores get about sqrt(cores) workers with
    the cores shared out as threads. Given only one of ``n_workers`` and ``threads_per_worker``,
    the other is derived from the cores; the memory (:func:`memory_limit`) is split evenly
    between the workers unless ``memory_limit`` is given.

    Parameters
    ----------
    n_workers : int, optional
        Worker processes. [workers]
    threads_per_worker : int, optional
        Threads in each worker. [threads]
    memory_limit : int or str, optional
        Memory limit of each worker, in bytes or as a string such as ``"4 GiB"``. [bytes]
    root : path-like, optional
        File-system root holding the cgroup files (see :func:`cpu_limit`). [path]

    Returns
    -------
    sizing : LocalSizing

    Raises
    ------
    ValueError
        If a count is not a positive integer or the memory limit cannot be read as bytes.
    """
    cpus, cpu_source = _cpu_limit_and_source(root)
    memory, memory_source = _memory_limit_and_source(root)
    cores = max(1, math.floor(cpus))
    given_both = n_workers is not None and threads_per_worker is not None
    sizes = {
        "n_workers": n_workers,
        "threads_per_worker": threads_per_worker,
        "memory_limit": memory_limit,
    }
    if n_workers is None and threads_per_worker is None:
        n_workers, threads_per_worker = _split_cores(cores)
    elif n_workers is None:
        threads_per_worker = _positive_int("threads_per_worker", threads_per_worker)
        n_workers = max(1, cores // threads_per_worker)
    elif threads_per_worker is None:
        n_workers = _positive_int("n_workers", n_workers)
        threads_per_worker = max(1, cores // n_workers)
    n_workers = _positive_int("n_workers", n_workers)
    threads_per_worker = _positive_int("threads_per_worker", threads_per_worker)

    if memory_limit is None:
        per_worker = memory // n_workers
        memory_basis = f"{_gib(memory)} ({memory_source})"
    else:
        try:
            per_worker = (
                parse_bytes(memory_limit) if isinstance(memory_limit, str) else memory_limit
            )
        except ValueError as err:
            raise ComputeSettingError(
                f"memory_limit must be bytes per worker, an int or a string such as '4 GiB', "
                f"got {memory_limit!r}"
            ) from err
        per_worker = _positive_int("memory_limit", per_worker)
        memory_basis = None
    measured = [] if given_both else [f"{cpus:g} CPU{'' if cpus == 1 else 's'} ({cpu_source})"]
    measured += [memory_basis] if memory_basis else []
    given = [name for name, value in sizes.items() if value is not None]
    basis = "; ".join(
        ([f"sized from {' and '.join(measured)}"] if measured else [])
        + ([f"{', '.join(given)} given"] if given else [])
    )
    return LocalSizing(n_workers, threads_per_worker, per_worker, cpus, memory, basis)


# --------------------------------------------------------------------------------------------
# Choosing the backend
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Backend:
    """The Dask backend :func:`client` would use, and why.

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
                f"LocalCluster with {_plural(s.n_workers, 'worker')} x "
                f"{_plural(s.threads_per_worker, 'thread')}, {_gib(s.memory_per_worker)} each "
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
    """Decide which Dask backend :func:`client` would use, without starting or connecting.

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


# --------------------------------------------------------------------------------------------
# Making the client
# --------------------------------------------------------------------------------------------


class HubkitClient(distributed.Client):
    """A :class:`distributed.Client` that also closes the cluster :func:`client` started for it.

    Closing the client (``close()``, or leaving a ``with`` block) shuts down a LocalCluster or a
    gateway cluster created by :func:`client`; a scheduler found at an address is left running.
    ``hubkit_backend`` holds the :class:`Backend` the client was made for.
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


def _local_client(backend: Backend) -> HubkitClient:
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
    new._hubkit_shutdown = cluster.close
    return new


def _local_cluster(sizing) -> distributed.LocalCluster:
    return distributed.LocalCluster(
        n_workers=sizing.n_workers,
        threads_per_worker=sizing.threads_per_worker,
        memory_limit=sizing.memory_per_worker,
        processes=True,
        host=LOCAL_HOST,
        dashboard_address=f"{LOCAL_HOST}:0",
    )


def _address_client(backend: Backend) -> HubkitClient:
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


def _gateway_config(environ: Mapping[str, str]) -> dict[str, Any]:
    """The ``gateway.*`` Dask config from the current ``DASK_GATEWAY__*`` environment.

    Dask reads the environment once, at import; reading it again here makes a variable set
    later in the session (a notebook cell, a test) count, as it does for :func:`resolve_backend`.
    Returned as dotted keys so :func:`dask.config.set` overrides single values, not the subtree.
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


def _gateway_client(
    backend: Backend, n_workers: int | None, options: Mapping[str, Any] | None
) -> HubkitClient:
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
        n_workers = _positive_int("n_workers", n_workers)
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
    new._hubkit_shutdown = functools.partial(_shutdown_gateway, gateway, cluster)
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
            _forget_stopped_loop(cluster.gateway)
    finally:
        if gateway is not None:
            gateway.close()
            _forget_stopped_loop(gateway)


def _forget_stopped_loop(gateway: Any) -> None:
    runner = getattr(gateway, "_loop_runner", None)
    if runner is not None and not runner.is_started():
        del gateway._loop_runner


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
        gateway cluster adapts from ``GATEWAY_ADAPT_MINIMUM`` up to the gateway's limit).
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
        new = _local_client(backend)
    elif backend.kind == "gateway":
        new = _gateway_client(backend, n_workers, gateway_options)
    else:
        new = _address_client(backend)
    new.hubkit_backend = backend
    return new
