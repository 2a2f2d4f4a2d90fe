"""The container's CPU and memory limits, and the size of a LocalCluster that fits them.

:func:`cpu_limit` and :func:`memory_limit` read the cgroup (v1 or v2) limits of this process and
its parents; :func:`local_sizing` turns them into workers, threads and memory per worker.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dask.utils import parse_bytes

from hubkit.errors import ComputeSettingError

__all__ = [
    "LocalSizing",
    "cpu_limit",
    "gib",
    "local_sizing",
    "memory_limit",
    "plural",
    "positive_int",
    "split_cores",
]

_CGROUP = Path("sys", "fs", "cgroup")
_CGROUP_V1_CPU_DIRS = ("cpu", "cpu,cpuacct", "cpuacct,cpu")


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


def split_cores(cores: int) -> tuple[int, int]:
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


def positive_int(name: str, value: Any) -> int:
    """``value`` if it is a positive integer (not a bool); else a ComputeSettingError naming it."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ComputeSettingError(f"{name} must be a positive integer, got {value!r}")
    return value


def gib(n_bytes: float) -> str:
    """``n_bytes`` as GiB with one decimal, for messages (``"4.0 GiB"``)."""
    return f"{n_bytes / 2**30:.1f} GiB"


def plural(n: int, word: str) -> str:
    """``"1 worker"``, ``"2 workers"``: a count and its noun, for messages."""
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
        n_workers, threads_per_worker = split_cores(cores)
    elif n_workers is None:
        threads_per_worker = positive_int("threads_per_worker", threads_per_worker)
        n_workers = max(1, cores // threads_per_worker)
    elif threads_per_worker is None:
        n_workers = positive_int("n_workers", n_workers)
        threads_per_worker = max(1, cores // n_workers)
    n_workers = positive_int("n_workers", n_workers)
    threads_per_worker = positive_int("threads_per_worker", threads_per_worker)

    if memory_limit is None:
        per_worker = memory // n_workers
        memory_basis = f"{gib(memory)} ({memory_source})"
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
        per_worker = positive_int("memory_limit", per_worker)
        memory_basis = None
    measured = [] if given_both else [f"{cpus:g} CPU{'' if cpus == 1 else 's'} ({cpu_source})"]
    measured += [memory_basis] if memory_basis else []
    given = [name for name, value in sizes.items() if value is not None]
    basis = "; ".join(
        ([f"sized from {' and '.join(measured)}"] if measured else [])
        + ([f"{', '.join(given)} given"] if given else [])
    )
    return LocalSizing(n_workers, threads_per_worker, per_worker, cpus, memory, basis)
