"""The spawner of the local hub (imported by JupyterHub from the config ``hubkit hub`` writes).

:class:`HubkitSpawner` is JupyterHub's ``SimpleLocalProcessSpawner`` (user servers run as the
hub's Unix user, with a home under the hub's state directory) plus three things:

* the example notebooks are copied into the home before the server starts;
* each server writes its output to its own log, ``<log_dir>/<user>.log``;
* a server that exits before it answers fails the spawn at once, with the reason read from that
  log (under root without ``--allow-root``, ``jupyterhub-singleuser`` exits at once; JupyterHub
  alone would wait for ``http_timeout`` and then answer with a bare error page).
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
from pathlib import Path

from jupyterhub.spawner import SimpleLocalProcessSpawner
from traitlets import Unicode

from hubkit.hub import copy_notebooks, explain_exit

__all__ = ["HubkitSpawner"]

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
        return Path(self.log_dir) / f"{self.user.name}.log" if self.log_dir else None

    async def start(self):
        home = Path(self.home_dir)
        copied = copy_notebooks(Path(self.notebooks_dir) if self.notebooks_dir else None, home)
        _quiet_jupyterlab(home)
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
