"""The local hub: :class:`LocalHub` (JupyterHub and Dask Gateway as child processes on
127.0.0.1) and :func:`run_local_hub` (``hubkit hub``). See :mod:`hubkit.hub`."""

from __future__ import annotations

import contextlib
import grp
import json
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hubkit.errors import HubError
from hubkit.hub.accounts import SHARED_GROUP, ensure_account, is_root, unreachable_folder
from hubkit.hub.logs import explain_spawn_failure, tail

logger = logging.getLogger(__name__)

#: Name of the Dask Gateway as a JupyterHub service; its URL prefix is /services/<name>.
GATEWAY_SERVICE = "dask-gateway"

#: Host every process of the local hub listens on.
HOST = "127.0.0.1"

#: Time allowed for the gateway and the hub to answer after they were started. [s]
START_TIMEOUT = 90.0

#: Time allowed for the hub (which stops the user servers) and the gateway (which stops the
#: clusters) to exit after SIGTERM, before they are killed. [s]
STOP_TIMEOUT = 30.0


def default_state_dir() -> Path:
    """``$XDG_DATA_HOME/hubkit/hub`` (``~/.local/share/hubkit/hub``): configs, logs, homes."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "hubkit" / "hub"


def default_notebooks_dir() -> Path | None:
    """The repository's ``notebooks/`` folder beside the package, if there is one."""
    candidate = Path(__file__).resolve().parents[2] / "notebooks"
    return candidate if candidate.is_dir() else None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def copy_notebooks(source: Path | None, home: Path) -> list[Path]:
    """Copy the example notebooks (``*.ipynb``) of ``source`` into ``home``.

    A notebook already in ``home`` is left as it is (the user may have edited it). Returns the
    notebooks copied.
    """
    home.mkdir(parents=True, exist_ok=True)
    copied = []
    if source is None or not Path(source).is_dir():
        return copied
    for nb in sorted(Path(source).glob("*.ipynb")):
        target = home / nb.name
        if not target.exists():
            shutil.copy2(nb, target)
            copied.append(target)
    return copied


# --------------------------------------------------------------------------------------------
# Configuration files
# --------------------------------------------------------------------------------------------

#: The configuration files of the gateway and the hub (real Python, read by their ``-f``); their
#: settings are JSON files in the state directory, named by these environment variables.
CONFIG_DIR = Path(__file__).resolve().parent / "config"
_GATEWAY_SETTINGS = "HUBKIT_GATEWAY_SETTINGS"
_HUB_SETTINGS = "HUBKIT_HUB_SETTINGS"


def _write_settings(path: Path, settings: dict) -> Path:
    """``settings`` as JSON at ``path``, readable by this user only (ports, paths: no secret)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(settings, f, indent=1)
    return path


def _executable(name: str) -> str:
    """``name`` beside this Python (the virtual environment's bin/), else from PATH."""
    here = Path(sys.executable).with_name(name)
    if os.access(here, os.X_OK):
        return str(here)
    found = shutil.which(name)
    if found is None:
        raise HubError(
            f"{name} was not found beside {sys.executable} or on PATH; "
            "install the hub's packages: pip install jupyterhub jupyterlab "
            "configurable-http-proxy dask-gateway dask-gateway-server[local]"
        )
    return found


def _check_modules() -> None:
    missing = []
    for module in ("jupyterhub", "jupyterlab", "dask_gateway", "dask_gateway_server"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise HubError(
            f"the local hub needs {', '.join(missing)}; install with: pip install jupyterhub "
            "jupyterlab configurable-http-proxy dask-gateway 'dask-gateway-server[local]'"
        )


# --------------------------------------------------------------------------------------------
# The hub
# --------------------------------------------------------------------------------------------


@dataclass
class LocalHub:
    """JupyterHub and Dask Gateway on 127.0.0.1, as child processes of this one.

    Use as a context manager, or call :meth:`start` and :meth:`stop`. :func:`run_local_hub`
    runs one until Ctrl-C or SIGTERM.

    Parameters
    ----------
    state_dir : path
        Configuration, logs, the hub's database and cookie secret, the users' homes
        (``users/<name>``) and, unless ``store`` is given, the store (``store/``).
    users : sequence of str
        User names allowed to log in; all use the one generated ``password``.
    port : int
        Port of the hub's public URL on 127.0.0.1; 0 picks a free one.
    store : str, optional
        ``HUBKIT_STORE`` for the user servers (a directory; default ``<state_dir>/store``).
    notebooks : path, optional
        Folder whose ``*.ipynb`` are copied into each new home (default: the repository's
        ``notebooks/``).
    password : str, optional
        The shared password (at least 8 characters); generated when not given.
    unsafe_root : bool
        Start even when running as root, with every user server running as root too (they can
        read each other's files and the hub's secrets). Without it, :meth:`start` refuses.
    allow_root : bool, optional
        Pass ``--allow-root`` to the single-user servers; by default when running as root with
        ``unsafe_root``.
    system_users : bool
        Run each user server, and each of its Dask clusters, as a Unix account of its own
        (see :func:`ensure_account`; needs root). Homes are private; the store is shared
        through the group :data:`SHARED_GROUP`; the hub's state is root's only.
    """

    state_dir: Path
    users: Sequence[str] = ("researcher",)
    port: int = 8000
    store: str | None = None
    notebooks: Path | None = None
    password: str | None = None
    unsafe_root: bool = False
    allow_root: bool | None = None
    system_users: bool = False
    _procs: dict[str, subprocess.Popen] = field(default_factory=dict, repr=False)
    _reported: set[str] = field(default_factory=set, repr=False)

    def __post_init__(self) -> None:
        self.state_dir = Path(self.state_dir).resolve()
        self.users = [u.strip() for u in self.users if u.strip()]
        if not self.users:
            raise HubError("the local hub needs at least one user name")
        bad = [u for u in self.users if not re.fullmatch(r"[a-z0-9][a-z0-9._@+-]*", u)]
        if bad:
            raise HubError(
                f"user names must be lower case letters, digits and ._@+- : {', '.join(bad)}"
            )
        if self.password is None:
            self.password = secrets.token_urlsafe(12)
        if len(self.password) < 8:
            raise HubError("the shared password must have at least 8 characters")
        if self.notebooks is None:
            self.notebooks = default_notebooks_dir()
        if self.system_users and self.unsafe_root:
            raise HubError("system_users and unsafe_root exclude each other: with system "
                           "users no server runs as root")
        if self.allow_root is None:
            self.allow_root = is_root() and self.unsafe_root
        if not self.port:
            self.port = free_port()
        self.store = self.store or str(self.state_dir / "store")
        self.logs = self.state_dir / "logs"
        self.hub_log = self.logs / "jupyterhub.log"
        self.gateway_log = self.logs / "dask-gateway.log"
        self._token = secrets.token_hex(32)

    # -- addresses -----------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The hub's public URL (the login page is under ``hub/login``)."""
        return f"http://{HOST}:{self.port}/"

    @property
    def gateway_url(self) -> str:
        """The Dask Gateway API as users reach it: through the hub's proxy."""
        return f"http://{HOST}:{self.port}/services/{GATEWAY_SERVICE}"

    def home(self, user: str) -> Path:
        """The home directory of ``user``'s server."""
        return self.state_dir / "users" / user

    # -- life cycle ----------------------------------------------------------------------

    def start(self) -> LocalHub:
        """Write the configurations, start the gateway, then the hub; wait until both answer.

        Raises
        ------
        HubError
            Running as root without ``unsafe_root``; nothing is started.
        """
        if self.system_users and not is_root():
            raise HubError("one Unix account per hub user (--system-users) needs root: only "
                           "root can create the accounts and start servers as them")
        if is_root() and not self.system_users:
            if not self.unsafe_root:
                raise HubError(
                    "the local hub refuses to run as root: every user's server would run as "
                    "root and could read the other users' files and the hub's environment "
                    "(the shared password and the gateway token, in /proc/<pid>/environ). "
                    "Run it as an ordinary user; or pass --system-users "
                    "(LocalHub(system_users=True)) to run each user's server as a Unix account "
                    "of its own; or, for one trusted person only (e.g. in a throw-away "
                    "container), pass --unsafe-root (LocalHub(unsafe_root=True))"
                )
            logger.warning("running as root with unsafe_root: every user server runs as root "
                           "and can read the hub's secrets and every other user's files")
        _check_modules()
        for d in (self.state_dir, self.logs, self.state_dir / "users"):
            d.mkdir(parents=True, exist_ok=True)
        # the hub's own files are private; with system users the homes inside must be reachable
        os.chmod(self.state_dir, 0o711 if self.system_users else 0o700)
        os.chmod(self.logs, 0o700)
        if "://" not in self.store:
            Path(self.store).mkdir(parents=True, exist_ok=True)
        if self.system_users:
            self._make_accounts()
        try:
            self._start_gateway()
            self._start_hub()
        except BaseException:
            self.stop()
            raise
        return self

    def _make_accounts(self) -> None:
        """One Unix account per user, homes 0700, the store shared by :data:`SHARED_GROUP`,
        and a check that the accounts can run this Python's ``jupyterhub-singleuser``."""
        from jupyterhub.spawner import set_user_setuid

        os.chmod(self.state_dir / "users", 0o711)
        accounts = [ensure_account(u, self.home(u)) for u in self.users]
        if "://" not in self.store:
            gid = grp.getgrnam(SHARED_GROUP).gr_gid
            os.chown(self.store, 0, gid)
            os.chmod(self.store, 0o2770)  # setgid: products keep the group
        singleuser = _executable("jupyterhub-singleuser")
        name = accounts[0].pw_name
        for path in (singleuser, os.path.realpath(sys.executable)):
            blocked = unreachable_folder(path, accounts[0])
            if blocked is not None:
                raise HubError(
                    f"the user servers run as their own Unix accounts, and {name!r} cannot "
                    f"reach {path}: {blocked} is closed to other users (mode "
                    f"{stat.S_IMODE(os.stat(blocked).st_mode):04o}). Install hubkit and its "
                    f"Python where every account can read them (e.g. under /opt), or let "
                    f"others pass through that folder: chmod o+x {blocked}"
                )
        try:
            probe = subprocess.run(
                [singleuser, "--version"], capture_output=True, text=True, timeout=120,
                preexec_fn=set_user_setuid(name, chdir=False), cwd="/",
            )
            failed = probe.returncode != 0 and (probe.stderr.strip()[-300:] or probe.returncode)
        except OSError as err:
            failed = err
        if failed:
            raise HubError(f"the user servers run as their own Unix accounts, and {name!r} "
                           f"cannot run {singleuser}: {failed}")

    def __enter__(self) -> LocalHub:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("DASK_", "JUPYTERHUB_", "HUBKIT_", "JPY_"))}
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        return env

    def _spawn(self, name: str, cmd: list[str], env: dict[str, str], log: Path,
               umask: int | None = None):
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                cmd, cwd=self.state_dir, env=env, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
                preexec_fn=(lambda: os.umask(umask)) if umask is not None else None,
            )
        self._procs[name] = proc
        return proc

    def _wait_http(self, name: str, url: str, log: Path, ok: Iterable[int] = (200,)) -> None:
        proc = self._procs[name]
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                raise HubError(
                    f"{name} exited with code {proc.returncode} while starting; "
                    f"the end of its log ({log}):\n{tail(log)}"
                )
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status in ok:
                        return
            except urllib.error.HTTPError as err:
                if err.code in ok:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise HubError(
                    f"{name} did not answer at {url} within {START_TIMEOUT:.0f} s; "
                    f"the end of its log ({log}):\n{tail(log)}"
                )
            time.sleep(0.2)

    def _start_gateway(self) -> None:
        import dask_gateway_server  # noqa: F401  (checked by _check_modules)

        from hubkit.compute import local_sizing

        sizing = local_sizing(n_workers=max(1, int(os.cpu_count() or 1)), threads_per_worker=1)
        api = f"{HOST}:{free_port()}"
        self._gateway_proxy = f"{HOST}:{free_port()}"
        self._hub_api_port = free_port()
        clusters = self.state_dir / "clusters"
        clusters.mkdir(exist_ok=True)
        # each cluster's folder belongs to its user (LocalBackend); they must reach it
        os.chmod(clusters, 0o711 if self.system_users else 0o700)
        settings = _write_settings(self.state_dir / "dask_gateway_settings.json", {
            "backend": ("hubkit.hub.gateway.AccountBackend" if self.system_users
                        else "dask_gateway_server.backends.local.UnsafeLocalBackend"),
            "api": api,
            "proxy": self._gateway_proxy,
            "prefix": f"/services/{GATEWAY_SERVICE}",
            "service": GATEWAY_SERVICE,
            "dask": _executable("dask"),
            "worker_memory": f"{max(512, min(4096, sizing.memory_per_worker // 2**20))} M",
            "max_workers": sizing.n_workers,
            "idle_timeout": 1800.0,
            "clusters": str(clusters),
        })
        config = CONFIG_DIR / "dask_gateway_config.py"
        env = self._env()
        env.update(
            {_GATEWAY_SETTINGS: str(settings)},
            JUPYTERHUB_API_TOKEN=self._token,
            JUPYTERHUB_API_URL=f"http://{HOST}:{self._hub_api_port}/hub/api",
            JUPYTERHUB_SERVICE_NAME=GATEWAY_SERVICE,
        )
        # with system users, a cluster's processes (started as its user) write to the shared
        # store: they keep the group's read and write bits
        self._spawn("dask-gateway-server",
                    [sys.executable, "-m", "dask_gateway_server", "-f", str(config)],
                    env, self.gateway_log, umask=0o007 if self.system_users else None)
        health = f"http://{self._gateway_proxy}/services/{GATEWAY_SERVICE}/api/health"
        self._wait_http("dask-gateway-server", health, self.gateway_log)

    def _start_hub(self) -> None:
        singleuser = _executable("jupyterhub-singleuser")
        venv_bin = str(Path(sys.executable).parent)
        environment = {
            "HUBKIT_STORE": self.store,
            "DASK_GATEWAY__ADDRESS": self.gateway_url,
            "DASK_GATEWAY__PROXY_ADDRESS": f"gateway://{self._gateway_proxy}",
            "DASK_GATEWAY__PUBLIC_ADDRESS": f"/services/{GATEWAY_SERVICE}",
            "DASK_GATEWAY__AUTH__TYPE": "jupyterhub",
            "PATH": os.pathsep.join([venv_bin, os.environ.get("PATH", "/usr/bin:/bin")]),
        }
        settings = {
            "port": self.port,
            "hub_port": self._hub_api_port,
            "db": str(self.state_dir / "jupyterhub.sqlite"),
            "cookie_secret": str(self.state_dir / "jupyterhub_cookie_secret"),
            "proxy_cmd": _executable("configurable-http-proxy"),
            "proxy_api": f"http://{HOST}:{free_port()}",
            "proxy_pid": str(self.state_dir / "jupyterhub-proxy.pid"),
            "users": list(self.users),
            "home_template": str(self.state_dir / "users" / "{username}"),
            "singleuser_cmd": singleuser,
            "spawner": "hubkit.hub.spawner." + (
                "HubkitSystemSpawner" if self.system_users else "HubkitSpawner"),
            # no calls home from JupyterLab (news feed, update check): the hub may be offline
            "singleuser_args": (["--allow-root"] if self.allow_root else []) + [
                "--LabApp.news_url=None",
                "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            ],
            "environment": environment,
            "notebooks": str(self.notebooks) if self.notebooks else "",
            "user_logs": str(self.logs / "users"),
            "service": GATEWAY_SERVICE,
            "gateway_url": f"http://{self._gateway_proxy}",
        }
        path = _write_settings(self.state_dir / "jupyterhub_settings.json", settings)
        config = CONFIG_DIR / "jupyterhub_config.py"
        env = self._env()
        env.update({_HUB_SETTINGS: str(path)}, HUBKIT_HUB_PASSWORD=self.password,
                   HUBKIT_GATEWAY_TOKEN=self._token)
        self._hub_log_offset = self.hub_log.stat().st_size if self.hub_log.exists() else 0
        # the hub's database, cookie secret and proxy pid file: root's only, with system users
        self._spawn("jupyterhub", [sys.executable, "-m", "jupyterhub", "-f", str(config)],
                    env, self.hub_log, umask=0o077 if self.system_users else None)
        self._wait_http("jupyterhub", f"{self.url}hub/api/", self.hub_log)

    def check(self) -> list[str]:
        """New problems since the last call: a child that died, a user server that failed."""
        problems = []
        for name, proc in self._procs.items():
            if proc.poll() is not None and name not in self._reported:
                self._reported.add(name)
                log = self.hub_log if name == "jupyterhub" else self.gateway_log
                problems.append(f"{name} exited with code {proc.returncode}; see {log}")
        if self.hub_log.exists():
            # read what is new, with the lines before it as context for the reasons
            offset = getattr(self, "_hub_log_offset", 0)
            with open(self.hub_log, "rb") as f:
                f.seek(offset)
                new = f.read()
            new = new[: new.rfind(b"\n") + 1]  # whole lines only; the rest comes next time
            self._hub_log_offset = offset + len(new)
            context = getattr(self, "_hub_log_context", [])
            lines = context + new.decode(errors="replace").splitlines()
            self._hub_log_context = lines[-80:]
            for message in explain_spawn_failure("\n".join(lines), first=len(context)):
                if message not in self._reported:
                    self._reported.add(message)
                    problems.append(f"{message}\n    (full log: {self.hub_log})")
        return problems

    @property
    def alive(self) -> bool:
        """Whether the hub and the gateway were started and are all still running."""
        return bool(self._procs) and all(p.poll() is None for p in self._procs.values())

    def pids(self) -> dict[str, int]:
        """Process ids of the hub and the gateway."""
        return {name: p.pid for name, p in self._procs.items()}

    def stop(self) -> None:
        """Stop the hub (it stops the user servers and its proxy), then the gateway (it stops
        the clusters); kill whatever is left of either after :data:`STOP_TIMEOUT`."""
        import psutil

        family: list[psutil.Process] = []
        for proc in self._procs.values():
            with contextlib.suppress(psutil.Error):
                p = psutil.Process(proc.pid)
                family += [p, *p.children(recursive=True)]
        for name in ("jupyterhub", "dask-gateway-server"):  # the hub first: it uses the gateway
            proc = self._procs.get(name)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                logger.warning("%s did not stop within %.0f s: killing it", name, STOP_TIMEOUT)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        _, alive = psutil.wait_procs(family, timeout=10)
        for p in alive:
            logger.warning("killing left-over process %s %s", p.pid, _cmdline(p))
            with contextlib.suppress(psutil.Error):
                p.kill()
        psutil.wait_procs(alive, timeout=5)
        self._procs.clear()

    def write_info(self) -> Path:
        """Write ``hub.json`` (URL, users, password, logs) into the state dir, readable only by
        its owner."""
        info = self.state_dir / "hub.json"
        fd = os.open(info, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({
                "url": self.url, "users": list(self.users), "password": self.password,
                "store": self.store, "gateway": self.gateway_url,
                "gateway_internal": f"http://{self._gateway_proxy}/services/{GATEWAY_SERVICE}",
                "state_dir": str(self.state_dir),
                "hub_log": str(self.hub_log), "gateway_log": str(self.gateway_log),
                "pids": self.pids(),
            }, f, indent=1)
        return info

    def banner(self) -> str:
        """What to print once the hub runs: URL, users, password, store, gateway, homes, logs."""
        users = ", ".join(self.users)
        return "\n".join([
            f"hubkit hub is running at {self.url}",
            f"  log in as: {users}",
            f"  password:  {self.password}",
            f"  store:     {self.store}",
            f"  gateway:   {self.gateway_url}",
            f"  homes:     {self.state_dir / 'users'}",
            f"  logs:      {self.logs}",
            "Press Ctrl-C to stop.",
        ])



def _cmdline(p) -> str:
    try:
        return " ".join(p.cmdline())
    except Exception:  # noqa: BLE001 - only for a message
        return "?"


def run_local_hub(
    state_dir: str | os.PathLike | None = None,
    users: Sequence[str] = ("researcher",),
    port: int = 8000,
    store: str | None = None,
    notebooks: str | os.PathLike | None = None,
    password: str | None = None,
    echo: Callable[[str], None] = print,
    unsafe_root: bool = False,
    system_users: bool = False,
) -> int:
    """Run the local hub until Ctrl-C or SIGTERM; return an exit code.

    Starts the gateway and the hub (see :class:`LocalHub`), prints the URL and the generated
    password, reports every user server that fails to start (with the reason found in the hub's
    log), and on Ctrl-C or SIGTERM stops everything it started. Returns 0 after a requested
    stop, 1 when the hub or the gateway died by itself.
    """
    hub = LocalHub(
        state_dir=Path(state_dir) if state_dir else default_state_dir(),
        users=users, port=port, store=store,
        notebooks=Path(notebooks) if notebooks else None, password=password,
        unsafe_root=unsafe_root, system_users=system_users,
    )
    stop = threading.Event()
    started = threading.Event()

    def on_signal(signum, frame):
        stop.set()
        if not started.is_set():  # interrupt a start in progress; the finally clause cleans up
            raise KeyboardInterrupt

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, on_signal)
    code = 0
    try:
        echo(f"starting the local hub in {hub.state_dir} ...")
        hub.start()
        started.set()
        hub.write_info()
        echo(hub.banner())
        if hub.notebooks is None:
            echo("  (no notebooks/ folder found: homes start empty)")
        while not stop.wait(0.5):
            for problem in hub.check():
                echo(f"error: {problem}")
            if not hub.alive:
                echo("error: a process of the hub stopped; stopping the rest")
                code = 1
                break
        echo("stopping the local hub ...")
    finally:
        hub.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    echo("stopped")
    return code
