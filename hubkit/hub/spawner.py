"""The spawner of the local hub (imported by JupyterHub from the config ``hubkit hub`` writes).

:class:`HubkitSpawner` is JupyterHub's ``SimpleLocalProcessSpawner`` (user servers run as the
hub's Unix user, with a home under the hub's state directory) plus three things:

* the example notebooks are copied into the home before the server starts;
* each server writes its output to its own log, ``<log_dir>/<user>.log``;
* a server that exits before it answers fails the spawn at once, with the reason read from that
  log (under root without ``--allow-root``, ``jupyterhub-singleuser`` exits at once; JupyterHub
  alone would wait for ``http_timeout`` and then answer with a bare error page).

:class:`HubkitSystemSpawner` (``hubkit hub --system-users``, as root) is the same but starts each
server as the Unix account of its user, like JupyterHub's ``LocalProcessSpawner``: the files put
into the home are given to that account and the server's umask keeps what it writes to the shared
store readable and writable by the store's group, and by no one else.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import socket
import subprocess
from pathlib import Path

from jupyterhub.spawner import LocalProcessSpawner, SimpleLocalProcessSpawner
from traitlets import Unicode

from hubkit.hub.local import copy_notebooks
from hubkit.hub.logs import explain_exit

__all__ = ["HubkitSpawner", "HubkitSystemSpawner"]

#: JupyterLab user settings written into a new home: no news feed, no update check, no prompt
#: asking for them (the hub may be offline, and nothing should call home unasked).
_LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
        '{"fetchNews": "false", "checkForUpdates": false}\n',
}


def _quiet_jupyterlab(home: Path) -> None:
    base = home / ".jupyter" / "lab" / "user-settings"
    for name, text in _LAB_SETTINGS.items():
        path = base / name
        if not path.exists():  # the user's own choice stays
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)


class HubkitSpawner(SimpleLocalProcessSpawner):
    """``SimpleLocalProcessSpawner`` with notebooks copied in, a log per user and fast failure."""

    notebooks_dir = Unicode(
        "", config=True, help="Folder whose *.ipynb are copied into each new home ('' for none)."
    )
    log_dir = Unicode("", config=True, help="Folder of the user servers' logs ('' to inherit).")

    @property
    def log_file(self) -> Path | None:
        """The server's log, ``<log_dir>/<user>.log``; None without ``log_dir`` (the server's
        output then goes where the hub's does)."""
        return Path(self.log_dir) / f"{self.user.name}.log" if self.log_dir else None

    def _prepare_home(self, home: Path) -> list[Path]:
        """Copy the notebooks and the JupyterLab settings into ``home``; the files copied."""
        copied = copy_notebooks(Path(self.notebooks_dir) if self.notebooks_dir else None, home)
        _quiet_jupyterlab(home)
        return copied

    async def start(self):
        """Copy the notebooks into the home, start the server writing to its own log, and
        return its ``(ip, port)`` once it accepts connections (raise as soon as it exits)."""
        home = Path(self.home_dir)
        copied = self._prepare_home(home)
        if copied:
            self.log.info("hubkit: copied %d example notebook(s) into %s", len(copied), home)
        log = self.log_file
        out = None
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
            out = open(log, "ab")  # noqa: SIM115 - the child keeps its own copy
            self.popen_kwargs = {"stdout": out, "stderr": subprocess.STDOUT}
        try:
            ip, port = await super().start()
        finally:
            if out is not None:
                out.close()
        await self._wait_listening(ip, port)
        return ip, port

    async def _wait_listening(self, ip: str, port: int) -> None:
        """Return once the server accepts connections; raise as soon as its process exits."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.start_timeout
        while loop.time() < deadline:
            code = self.proc.poll() if self.proc is not None else None
            if code is not None:
                text = ""
                if self.log_file is not None:
                    text = self.log_file.read_text(errors="replace")
                raise RuntimeError(
                    f"the server of {self.user.name!r} exited with code {code} before it "
                    f"answered: {explain_exit(text)} (log: {self.log_file or 'the hub log'})"
                )
            with socket.socket() as s:
                s.settimeout(0.5)
                if s.connect_ex((ip or "127.0.0.1", port)) == 0:
                    return
            await asyncio.sleep(0.3)
        # leave the rest to JupyterHub's own timeout handling


class HubkitSystemSpawner(HubkitSpawner):
    """:class:`HubkitSpawner` whose servers run as their users' own Unix accounts.

    The accounts are made by :func:`hubkit.hub.accounts.ensure_account` before the hub starts;
    the home is the account's (``home_dir_template``, private). Needs root.
    """

    #: umask of the user servers: nothing for others; the group shares the store's products
    umask = 0o007

    def _prepare_home(self, home: Path) -> list[Path]:
        copied = super()._prepare_home(home)
        account = pwd.getpwnam(self.user.name)
        # what the hub (root) put there becomes the user's; the user's own folders are not
        # walked (a big home would slow every start)
        for folder, dirs, files in os.walk(home):
            for n in files:
                path = os.path.join(folder, n)
                if os.lstat(path).st_uid == 0:
                    os.lchown(path, account.pw_uid, account.pw_gid)
            dirs[:] = [n for n in dirs if os.lstat(os.path.join(folder, n)).st_uid == 0]
            for n in dirs:
                os.lchown(os.path.join(folder, n), account.pw_uid, account.pw_gid)
        return copied

    def make_preexec_fn(self, name):
        """What the child runs before the server: set :attr:`umask`, then become the Unix
        account ``name`` (``LocalProcessSpawner``'s setgid, setgroups, setuid)."""
        become = LocalProcessSpawner.make_preexec_fn(self, name)  # setgid, setgroups, setuid
        umask = self.umask

        def preexec():
            os.umask(umask)
            become()

        return preexec

    def user_env(self, env):
        """``env`` with the account's ``USER``, ``SHELL`` and ``HOME``, the last set to
        :attr:`home_dir`."""
        env = LocalProcessSpawner.user_env(self, env)
        env["HOME"] = self.home_dir
        return env
