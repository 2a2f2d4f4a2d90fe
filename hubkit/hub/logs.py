"""Why a user server or the hub failed, read from their logs: the messages ``hubkit hub``
prints and the browser shows after **Spawn failed:**."""

from __future__ import annotations

import re
from pathlib import Path

_FAILURE = re.compile(
    r"Unhandled error starting|never showed up at|Previous spawn for \S+ failed|"
    r"Failed to start|stopped before it was ready|Error in preexec"
)
#: Lines of a user server's log that say why it stopped, and what they mean.
_REASONS = [
    (
        re.compile(r"Running as root is not recommended\. Use --allow-root"),
        "jupyterhub-singleuser refuses to run as root without --allow-root",
    ),
    (re.compile(r"\b(ModuleNotFoundError|ImportError): .*"), "a module is missing"),
    (re.compile(r"Address already in use"), "its port was already in use"),
    (re.compile(r"No such file or directory"), "a file or command was not found"),
    (re.compile(r"^\[C .*"), "it logged a critical error"),
]



def explain_exit(log_text: str) -> str:
    """Why a user server stopped, from its log: the known reasons found, with the line that
    shows each, else the last lines of the log."""
    lines = [line.strip() for line in log_text.splitlines() if line.strip()]
    found, used = [], set()
    for pattern, meaning in _REASONS:
        for line in lines:
            if line not in used and pattern.search(line):
                found.append(f"{meaning} ({line})")
                used.add(line)
                break
    if found:
        return "; ".join(found[:2])
    return "its log ends with: " + " | ".join(lines[-3:]) if lines else "its log is empty"


def explain_spawn_failure(log_text: str, first: int = 0) -> list[str]:
    """One message per failed start of a user server found in the hub's log text.

    JupyterHub answers a failed spawn in the browser with a bare error page; the reason is in
    its log. Each message is the hub's line saying so (with the user's name and, for servers
    started by :class:`hubkit.hub.spawner.HubkitSpawner`, the reason read from the server's own
    log), followed by the reason found in the lines before it when the line gives none. Only
    lines from index ``first`` on are looked at as failures; earlier ones are context.
    """
    lines = log_text.splitlines()
    messages = []
    for i, line in enumerate(lines):
        if i < first or not _FAILURE.search(line):
            continue
        text = re.sub(r"^\[[\w \d:.,-]+\]\s*", "", line.strip())
        if "before it answered:" not in text:
            reason = explain_exit("\n".join(lines[max(0, i - 60) : i]))
            if not reason.startswith("its log"):
                text += f" -- probable cause: {reason}"
        messages.append(text)
    return list(dict.fromkeys(messages))



def tail(path: Path, n: int = 30) -> str:
    """The last ``n`` lines of a log file ('(no log)' when it cannot be read)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"
