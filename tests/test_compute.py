"""Tests of hubkit.compute: container limits, backend resolution, and real Dask clusters.

Nothing here mocks Dask: the LocalCluster tests start real worker processes, and the gateway
tests start a real dask-gateway-server (with its proxy) on 127.0.0.1 in a subprocess.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import dask
import dask.array as da
import distributed
import psutil
import pytest

from hubkit import compute
from hubkit.compute.gateway import forget_stopped_loop
from hubkit.compute.resources import split_cores
from hubkit.errors import ComputeError, HubkitError

GiB = 2**30
N = 1_000_000
SUM_ARANGE_N = N * (N - 1) // 2  # sum of 0 .. N-1, exact in int64
BACKEND_VARS = ("HUBKIT_DASK", "DASK_SCHEDULER_ADDRESS", "DASK_GATEWAY__ADDRESS")

# An exception in a __del__ (e.g. a client closed twice) is a bug here, not noise.
pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")


def host_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening_hosts(pid: int) -> set[str]:
    """IP addresses on which process ``pid`` has listening TCP sockets."""
    return {
        c.laddr.ip
        for c in psutil.Process(pid).net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN
    }


def io_loops() -> int:
    """Number of running Dask event-loop threads."""
    return sum(t.name == "IO loop" for t in threading.enumerate())


def wait_gone(pids, timeout: float) -> list[int]:
    """Wait until the processes ``pids`` have exited; return those still alive."""
    procs = []
    for pid in pids:
        try:
            procs.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    running = []
    for p in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            if p.status() != psutil.STATUS_ZOMBIE:
                running.append(p.pid)
    return running


@pytest.fixture
def clean_env(monkeypatch):
    """No backend variable, nor any gateway setting, from the machine running the tests."""
    for name in list(os.environ):
        if name in BACKEND_VARS or name.startswith("DASK_GATEWAY__"):
            monkeypatch.delenv(name)
    return monkeypatch


# --------------------------------------------------------------------------------------------
# Container limits from fake cgroup files
# --------------------------------------------------------------------------------------------


def test_cpu_v2_unlimited_falls_back_to_affinity(tmp_path):
    write(tmp_path, "sys/fs/cgroup/cpu.max", "max 100000\n")
    assert compute.cpu_limit(tmp_path) == host_cpus()


def test_cpu_no_cgroup_files_falls_back_to_affinity(tmp_path):
    assert compute.cpu_limit(tmp_path) == host_cpus()


@pytest.mark.parametrize(
    ("cpu_max", "cpus"),
    [("150000 100000", 1.5), ("50000 100000", 0.5), ("100000 100000", 1.0), ("100000", 1.0)],
)
def test_cpu_v2_quota(tmp_path, cpu_max, cpus):
    write(tmp_path, "sys/fs/cgroup/cpu.max", cpu_max)
    assert compute.cpu_limit(tmp_path) == min(cpus, host_cpus())


@pytest.mark.parametrize("cpu_max", ["150000 100000", "50000 100000"])
def test_fractional_quota_floors_to_one_worker(tmp_path, cpu_max):
    # Decision: floor the quota to whole cores, minimum 1 (1.5 CPUs -> 1 worker, 0.5 -> 1).
    write(tmp_path, "sys/fs/cgroup/cpu.max", cpu_max)
    sizing = compute.local_sizing(root=tmp_path)
    assert (sizing.n_workers, sizing.threads_per_worker) == (1, 1)
    assert "cgroup cpu.max" in sizing.basis


@pytest.mark.parametrize("directory", ["cpu", "cpu,cpuacct", "cpuacct,cpu"])
def test_cpu_v1_cfs_quota(tmp_path, directory):
    write(tmp_path, f"sys/fs/cgroup/{directory}/cpu.cfs_quota_us", "50000\n")
    write(tmp_path, f"sys/fs/cgroup/{directory}/cpu.cfs_period_us", "100000\n")
    assert compute.cpu_limit(tmp_path) == 0.5


def test_cpu_v1_no_quota(tmp_path):
    write(tmp_path, "sys/fs/cgroup/cpu/cpu.cfs_quota_us", "-1\n")
    write(tmp_path, "sys/fs/cgroup/cpu/cpu.cfs_period_us", "100000\n")
    assert compute.cpu_limit(tmp_path) == host_cpus()


def test_cpu_own_cgroup_and_parents_smallest_wins(tmp_path):
    # Without a cgroup namespace the limit sits in the process's own cgroup directory, and a
    # parent's limit applies to its children too.
    write(tmp_path, "proc/self/cgroup", "0::/kubepods/pod1\n")
    write(tmp_path, "sys/fs/cgroup/cpu.max", "max 100000\n")
    write(tmp_path, "sys/fs/cgroup/kubepods/cpu.max", "25000 100000\n")
    write(tmp_path, "sys/fs/cgroup/kubepods/pod1/cpu.max", "75000 100000\n")
    assert compute.cpu_limit(tmp_path) == 0.25


def test_cpu_v1_own_cgroup(tmp_path):
    write(tmp_path, "proc/self/cgroup", "4:memory:/\n3:cpu,cpuacct:/docker/abc\n0::/\n")
    write(tmp_path, "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "50000")
    write(tmp_path, "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000")
    assert compute.cpu_limit(tmp_path) == 0.5


def test_cpu_garbage_is_ignored(tmp_path):
    write(tmp_path, "sys/fs/cgroup/cpu.max", "lots of cpus\n")
    assert compute.cpu_limit(tmp_path) == host_cpus()


def test_memory_v2_max_is_total_ram(tmp_path):
    write(tmp_path, "sys/fs/cgroup/memory.max", "max\n")
    assert compute.memory_limit(tmp_path) == psutil.virtual_memory().total


def test_memory_v2_number(tmp_path):
    write(tmp_path, "sys/fs/cgroup/memory.max", f"{GiB}\n")
    assert compute.memory_limit(tmp_path) == min(GiB, psutil.virtual_memory().total)


def test_memory_v1_unlimited_and_limited(tmp_path):
    write(tmp_path, "sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n")
    assert compute.memory_limit(tmp_path) == psutil.virtual_memory().total
    write(tmp_path, "sys/fs/cgroup/memory/memory.limit_in_bytes", f"{GiB // 2}\n")
    assert compute.memory_limit(tmp_path) == GiB // 2


def test_memory_v1_own_cgroup(tmp_path):
    write(tmp_path, "proc/self/cgroup", "4:memory:/process_api/abc\n1:cpu:/\n0::/\n")
    write(tmp_path, "sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n")
    write(tmp_path, "sys/fs/cgroup/memory/process_api/abc/memory.limit_in_bytes", f"{GiB}\n")
    assert compute.memory_limit(tmp_path) == GiB


def test_memory_is_split_between_workers(tmp_path):
    write(tmp_path, "sys/fs/cgroup/cpu.max", "200000 100000")
    write(tmp_path, "sys/fs/cgroup/memory.max", str(4 * GiB))
    sizing = compute.local_sizing(root=tmp_path)
    workers = min(2, host_cpus())
    assert (sizing.n_workers, sizing.threads_per_worker) == (workers, 1)
    assert sizing.memory == 4 * GiB
    assert sizing.memory_per_worker == 4 * GiB // workers
    source = "cgroup cpu.max" if host_cpus() > 2 else "CPU affinity"  # a quota >= CPUs binds not
    assert sizing.basis == f"sized from {workers} CPUs ({source}) and 4.0 GiB (cgroup memory.max)"


@pytest.mark.parametrize(
    ("cores", "split"),
    [(1, (1, 1)), (2, (2, 1)), (4, (4, 1)), (6, (3, 2)), (7, (7, 1)), (8, (4, 2)), (16, (4, 4))],
)
def test_split_cores(cores, split):
    assert split_cores(cores) == split


def test_sizing_arguments(tmp_path):
    write(tmp_path, "sys/fs/cgroup/memory.max", str(4 * GiB))
    sizing = compute.local_sizing(n_workers=1, memory_limit="1 GiB", root=tmp_path)
    assert sizing.n_workers == 1
    assert sizing.threads_per_worker == host_cpus()
    assert sizing.memory_per_worker == GiB
    assert "n_workers, memory_limit given" in sizing.basis


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_workers": 0}, "n_workers must be a positive integer, got 0"),
        ({"threads_per_worker": 1.5}, "threads_per_worker must be a positive integer, got 1.5"),
        ({"memory_limit": "lots"}, "memory_limit must be bytes per worker"),
        ({"memory_limit": -5}, "memory_limit must be a positive integer, got -5"),
    ],
)
def test_sizing_arguments_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        compute.local_sizing(**kwargs)


# --------------------------------------------------------------------------------------------
# Resolution order (pure: no server is started or contacted)
# --------------------------------------------------------------------------------------------

ALL_SET = {
    "HUBKIT_DASK": "tcp://10.0.0.1:8786",
    "DASK_SCHEDULER_ADDRESS": "tcp://10.0.0.2:8786",
    "DASK_GATEWAY__ADDRESS": "http://10.0.0.3:8000",
}


@pytest.mark.parametrize(
    ("address", "env", "kind", "target", "reason"),
    [
        ("tcp://10.0.0.9:8786", ALL_SET, "address", "tcp://10.0.0.9:8786", "explicit address"),
        (None, ALL_SET, "address", "tcp://10.0.0.1:8786", "HUBKIT_DASK is set"),
        (
            None,
            {k: v for k, v in ALL_SET.items() if k != "HUBKIT_DASK"},
            "scheduler-env",
            "tcp://10.0.0.2:8786",
            "DASK_SCHEDULER_ADDRESS is set, HUBKIT_DASK is not",
        ),
        (
            None,
            {"DASK_GATEWAY__ADDRESS": "http://10.0.0.3:8000"},
            "gateway",
            "http://10.0.0.3:8000",
            "DASK_GATEWAY__ADDRESS is set, HUBKIT_DASK and DASK_SCHEDULER_ADDRESS are not",
        ),
        (
            None,
            {},
            "local",
            None,
            "no HUBKIT_DASK, DASK_SCHEDULER_ADDRESS or DASK_GATEWAY__ADDRESS set; sized from",
        ),
        (  # an empty variable counts as unset
            None,
            {"HUBKIT_DASK": "", "DASK_SCHEDULER_ADDRESS": "  "},
            "local",
            None,
            "no HUBKIT_DASK, DASK_SCHEDULER_ADDRESS or DASK_GATEWAY__ADDRESS set",
        ),
    ],
)
def test_resolution_order(clean_env, address, env, kind, target, reason):
    for name, value in env.items():
        clean_env.setenv(name, value)
    threads, children = threading.active_count(), psutil.Process().children()
    backend = compute.resolve_backend(address)
    assert (backend.kind, backend.target) == (kind, target)
    assert reason in backend.reason
    assert (backend.sizing is not None) == (kind == "local")
    assert reason in backend.describe()
    # pure: nothing started
    assert threading.active_count() == threads
    assert psutil.Process().children() == children


def test_describe_local(clean_env, tmp_path):
    write(tmp_path, "sys/fs/cgroup/cpu.max", "100000 100000")
    write(tmp_path, "sys/fs/cgroup/memory.max", str(3 * GiB))
    backend = compute.resolve_backend(root=tmp_path)
    assert backend.describe() == (
        "LocalCluster with 1 worker x 1 thread, 3.0 GiB each (no HUBKIT_DASK, "
        "DASK_SCHEDULER_ADDRESS or DASK_GATEWAY__ADDRESS set; sized from 1 CPU (cgroup "
        "cpu.max) and 3.0 GiB (cgroup memory.max))"
    )
    assert str(backend) == backend.describe()


def test_describe_others():
    assert compute.Backend("gateway", "http://gw:8000", "why").describe() == (
        "new Dask Gateway cluster at http://gw:8000 (why)"
    )
    assert compute.Backend("address", "tcp://s:8786", "why").describe() == (
        "Dask scheduler at tcp://s:8786 (why)"
    )


def test_explicit_address_must_be_text():
    with pytest.raises(ValueError, match="address must be a scheduler address"):
        compute.resolve_backend("  ")


def test_compute_error_is_a_hubkit_error():
    assert issubclass(ComputeError, HubkitError)


# --------------------------------------------------------------------------------------------
# Real LocalCluster, real scheduler address
# --------------------------------------------------------------------------------------------


def test_local_cluster(clean_env, caplog):
    loops_before = io_loops()
    with caplog.at_level(logging.INFO, logger="hubkit.compute"):
        client = compute.client(n_workers=2, threads_per_worker=1)
    with client:
        assert isinstance(client, distributed.Client)
        backend = client.hubkit_backend
        assert backend.kind == "local"
        assert (backend.sizing.n_workers, backend.sizing.threads_per_worker) == (2, 1)
        records = [r for r in caplog.records if r.name == "hubkit.compute"]
        assert [(r.levelno, r.getMessage()) for r in records] == [
            (logging.INFO, backend.describe())
        ]
        assert backend.describe().startswith("LocalCluster with 2 workers x 1 thread, ")

        client.wait_for_workers(2, timeout=60)
        total = da.arange(N, chunks=N // 10).sum().compute()
        assert int(total) == SUM_ARANGE_N

        worker_pids = client.run(os.getpid)
        assert len(worker_pids) == 2
        assert len(set(worker_pids.values())) == 2
        assert os.getpid() not in worker_pids.values()
        assert all(w.startswith("tcp://127.0.0.1:") for w in worker_pids)
        assert client.scheduler.address.startswith("tcp://127.0.0.1:")
        assert urlparse(client.dashboard_link).hostname == "127.0.0.1"
        for pid in [os.getpid(), *worker_pids.values()]:
            assert listening_hosts(pid) <= {"127.0.0.1"}, f"process {pid} listens beyond loopback"
        cluster = client.cluster

    assert client.status == "closed"
    assert cluster.status == distributed.core.Status.closed
    assert wait_gone(worker_pids.values(), timeout=30) == []
    assert io_loops() == loops_before


def test_hubkit_dask_points_at_a_running_scheduler(clean_env, caplog):
    with distributed.LocalCluster(
        n_workers=1,
        threads_per_worker=1,
        processes=False,  # in-process worker: quick; needs tcp, inproc:// cannot take a host
        protocol="tcp",
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
    ) as cluster:
        clean_env.setenv("HUBKIT_DASK", cluster.scheduler_address)
        with caplog.at_level(logging.INFO, logger="hubkit.compute"):
            client = compute.client(n_workers=3, threads_per_worker=1)
        records = [r for r in caplog.records if r.name == "hubkit.compute"]
        assert [(r.levelno, r.getMessage()) for r in records] == [
            (logging.INFO, f"Dask scheduler at {cluster.scheduler_address} (HUBKIT_DASK is set)"),
            (
                logging.WARNING,
                "ignoring n_workers, threads_per_worker: not used by the 'address' backend",
            ),
        ]
        with client:
            assert client.scheduler.address == cluster.scheduler_address
            assert client.hubkit_backend.kind == "address"
            assert client.hubkit_backend.reason == "HUBKIT_DASK is set"
            assert int(da.arange(N, chunks=N // 4).sum().compute()) == SUM_ARANGE_N
        # a scheduler hubkit did not start is left running
        assert cluster.status == distributed.core.Status.running
        with distributed.Client(cluster) as other:
            assert other.submit(sum, [1, 2]).result() == 3


def test_unreachable_scheduler_is_a_compute_error(clean_env):
    port = free_port()  # nothing listens there any more
    clean_env.setenv("HUBKIT_DASK", f"tcp://127.0.0.1:{port}")
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        with pytest.raises(ComputeError, match=r"HUBKIT_DASK is set\).*fix or unset HUBKIT_DASK"):
            compute.client()


def test_missing_dask_gateway_is_a_compute_error(clean_env):
    clean_env.setenv("DASK_GATEWAY__ADDRESS", "http://127.0.0.1:9")
    clean_env.setitem(sys.modules, "dask_gateway", None)  # import dask_gateway -> ImportError
    with pytest.raises(ComputeError, match=r"dask_gateway is not installed.*hubkit\[hub\]"):
        compute.client()


# --------------------------------------------------------------------------------------------
# A real dask-gateway-server on 127.0.0.1
# --------------------------------------------------------------------------------------------


def require(module: str) -> None:
    """Import ``module``, or skip the test without it; on CI (``CI=true``) fail instead."""
    try:
        importlib.import_module(module)
    except ImportError as err:
        message = f"{module} is not installed ({err}); install hubkit[test]"
        if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}:
            pytest.fail(f"{message}: on CI the gateway tests must run, not skip")
        pytest.skip(message)


def test_require_fails_on_ci_and_skips_elsewhere(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="on CI the gateway tests must run"):
        require("hubkit_no_such_module")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        require("hubkit_no_such_module")


@dataclass(frozen=True)
class GatewayServer:
    address: str
    pid: int
    username: str
    password: str
    log: Path


GATEWAY_CONFIG = """\
c.DaskGateway.address = {api!r}
c.DaskGateway.backend_class = "dask_gateway_server.backends.local.UnsafeLocalBackend"
c.DaskGateway.authenticator_class = "dask_gateway_server.auth.SimpleAuthenticator"
c.SimpleAuthenticator.password = {password!r}
c.Proxy.address = {proxy!r}
c.Proxy.tcp_address = {proxy!r}
c.ClusterConfig.scheduler_cmd = {scheduler_cmd!r}
c.ClusterConfig.worker_cmd = [{dask!r}, "worker", "--host", "127.0.0.1"]
c.ClusterConfig.worker_cores = 1
c.ClusterConfig.worker_memory = "1 G"
c.ClusterConfig.cluster_max_workers = 2
c.UnsafeLocalBackend.clusters_directory = {clusters!r}
c.UnsafeLocalBackend.cluster_status_period = 0.5
c.UnsafeLocalBackend.cluster_start_timeout = 30
"""


@contextlib.contextmanager
def run_gateway(workdir: Path, scheduler_cmd: list[str] | None = None):
    """Run a dask-gateway-server (API, proxy, local-process backend) on 127.0.0.1, basic auth."""
    require("dask_gateway_server")
    require("dask_gateway")
    import dask_gateway_server

    dask_exe = Path(sys.executable).with_name("dask")
    proxy_exe = Path(dask_gateway_server.__file__).parent / "proxy" / "dask-gateway-proxy"
    for exe in (dask_exe, proxy_exe):
        if not os.access(exe, os.X_OK):
            pytest.fail(f"{exe} is missing or not executable; reinstall dask / dask-gateway-server")

    # not numeric and no braces: Dask reads env values with literal_eval, and dask_gateway
    # formats auth kwargs with str.format
    password = f"pw-{secrets.token_hex(8)}"
    proxy = f"127.0.0.1:{free_port()}"
    config = workdir / "dask_gateway_config.py"
    config.write_text(
        GATEWAY_CONFIG.format(
            api=f"127.0.0.1:{free_port()}",
            proxy=proxy,
            password=password,
            scheduler_cmd=scheduler_cmd or [str(dask_exe), "scheduler"],
            dask=str(dask_exe),
            clusters=str(workdir / "clusters"),
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASK_")}
    env.pop("HUBKIT_DASK", None)
    log = workdir / "gateway.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dask_gateway_server", "-f", str(config)],
            cwd=workdir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"dask-gateway-server exited with {proc.returncode}:\n{log.read_text()}"
                )
            try:
                with urllib.request.urlopen(f"http://{proxy}/api/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"dask-gateway-server not healthy after 60 s:\n{log.read_text()}")
            time.sleep(0.2)
        yield GatewayServer(f"http://{proxy}", proc.pid, "alice", password, log)
    finally:
        try:
            server = psutil.Process(proc.pid)
            family = [server, *server.children(recursive=True)]
        except psutil.NoSuchProcess:  # it failed to start; children would have been orphaned
            family = []
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=45)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        _, alive = psutil.wait_procs(family, timeout=20)
        for p in alive:
            p.kill()
        assert not alive, f"gateway left processes behind: {alive}\n{log.read_text()}"


@pytest.fixture(scope="module")
def gateway_server(tmp_path_factory):
    with run_gateway(tmp_path_factory.mktemp("gateway")) as server:
        yield server


@pytest.fixture(scope="module")
def broken_gateway_server(tmp_path_factory):
    """A gateway whose schedulers exit at once: every cluster fails to start."""
    crash = [sys.executable, "-c", "raise SystemExit(3)"]
    with run_gateway(tmp_path_factory.mktemp("broken-gateway"), scheduler_cmd=crash) as server:
        yield server


def gateway_env(monkeypatch, server: GatewayServer, password: str | None = None) -> None:
    monkeypatch.setenv("DASK_GATEWAY__ADDRESS", server.address)
    monkeypatch.setenv("DASK_GATEWAY__AUTH__TYPE", "basic")
    monkeypatch.setenv("DASK_GATEWAY__AUTH__KWARGS__USERNAME", server.username)
    monkeypatch.setenv("DASK_GATEWAY__AUTH__KWARGS__PASSWORD", password or server.password)


def list_clusters(server: GatewayServer) -> list:
    from dask_gateway import BasicAuth, Gateway

    gateway = Gateway(server.address, auth=BasicAuth(server.username, server.password))
    try:
        return gateway.list_clusters()
    finally:
        gateway.close()
        forget_stopped_loop(gateway)  # dask_gateway 2026.3 closes again in __del__


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_gateway_cluster(gateway_server, clean_env):
    gateway_env(clean_env, gateway_server)
    assert compute.resolve_backend().kind == "gateway"
    assert list_clusters(gateway_server) == []
    loops_before = io_loops()

    with compute.client() as client:
        backend = client.hubkit_backend
        assert (backend.kind, backend.target) == ("gateway", gateway_server.address)
        assert client.scheduler.address.startswith("gateway://127.0.0.1:")
        name = client.cluster.name
        assert [c.name for c in list_clusters(gateway_server)] == [name]

        client.wait_for_workers(1, timeout=120)
        total = da.arange(N, chunks=N // 4).sum().compute()
        assert int(total) == SUM_ARANGE_N
        worker_pids = client.run(os.getpid)
        assert worker_pids and os.getpid() not in worker_pids.values()
        # the cluster's processes (scheduler, worker nanny, worker) belong to the gateway server
        cluster_procs = [
            p
            for p in psutil.Process(gateway_server.pid).children(recursive=True)
            if "dask-gateway-proxy" not in p.name()
        ]
        assert set(worker_pids.values()) <= {p.pid for p in cluster_procs}
        for p in cluster_procs:
            assert listening_hosts(p.pid) <= {"127.0.0.1"}, f"{p.cmdline()} listens beyond loopback"

    assert client.status == "closed"
    deadline = time.monotonic() + 60
    while (left := list_clusters(gateway_server)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert left == [], f"gateway cluster {name} still listed after close"
    assert wait_gone([p.pid for p in cluster_procs], timeout=60) == []
    assert io_loops() == loops_before, "the gateway client's event loop thread is still running"


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_gateway_fixed_size(gateway_server, clean_env, caplog):
    gateway_env(clean_env, gateway_server)
    with caplog.at_level(logging.INFO, logger="hubkit.compute"):
        client = compute.client(n_workers=1, memory_limit="1 GiB")
    with client:
        records = [r for r in caplog.records if r.name == "hubkit.compute"]
        assert [r.levelno for r in records] == [logging.INFO, logging.WARNING]
        assert records[1].getMessage() == (
            "ignoring memory_limit: not used by the 'gateway' backend (pass "
            "worker_cores/worker_memory in gateway_options instead)"
        )
        client.wait_for_workers(1, timeout=120)
        assert client.submit(sum, range(101)).result() == 5050
        assert len(client.scheduler_info()["workers"]) == 1
    deadline = time.monotonic() + 60
    while (left := list_clusters(gateway_server)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert left == []


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("password", "options", "error"),
    [("pw-wrong", None, "ClientResponseError: 401"), (None, {"colour": "red"}, "ValueError")],
)
def test_gateway_refusal_is_a_compute_error(gateway_server, clean_env, password, options, error):
    gateway_env(clean_env, gateway_server, password=password)
    loops_before = io_loops()
    with pytest.raises(
        ComputeError, match=f"could not create a cluster on the Dask Gateway.*{error}"
    ):
        compute.client(gateway_options=options)
    assert io_loops() == loops_before, "a refused request left an event loop running"
    assert list_clusters(gateway_server) == []


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_gateway_cluster_failing_to_start_is_a_compute_error(broken_gateway_server, clean_env):
    gateway_env(clean_env, broken_gateway_server)
    loops_before = io_loops()
    with pytest.raises(ComputeError, match="GatewayClusterError: Cluster .* failed to start"):
        compute.client()
    assert io_loops() == loops_before, "a failed cluster left an event loop running"
    assert list_clusters(broken_gateway_server) == []
