"""One Unix account per hub user (``hubkit hub --system-users``, as root): made when missing,
never taken over when hubkit did not make it, and checked to reach hubkit's Python."""

from __future__ import annotations

import grp
import os
import pwd
import stat
import subprocess
from pathlib import Path

from hubkit.errors import HubError

SHARED_GROUP = "hubkit"

#: The comment (GECOS field) of every Unix account the local hub made; others are never adopted.
ACCOUNT_MARK = "hubkit hub user"


def is_root() -> bool:
    """Whether this process runs as root (it can then make accounts and spawn as them)."""
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _run_admin(cmd: list[str]) -> None:
    """Run an account-management command (``useradd`` …); its error becomes a HubError."""
    try:
        subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=60)
    except FileNotFoundError as err:
        raise HubError(f"{cmd[0]} is not installed (Debian: apt-get install passwd); it is "
                       "needed to create one Unix account per hub user") from err
    except subprocess.CalledProcessError as err:
        raise HubError(f"{' '.join(cmd)} failed with code {err.returncode}: "
                       f"{(err.stderr or err.stdout).strip()}") from err


def unreachable_folder(path: str | os.PathLike, account: pwd.struct_passwd) -> Path | None:
    """The first folder above ``path`` that ``account`` may not pass through (no ``x`` bit for
    it as owner, group member or other), or None when it can reach ``path``."""
    gids = set(os.getgrouplist(account.pw_name, account.pw_gid))
    for folder in reversed(Path(path).absolute().parents):
        st = os.stat(folder)
        if st.st_uid == account.pw_uid:
            ok = st.st_mode & stat.S_IXUSR
        elif st.st_gid in gids:
            ok = st.st_mode & stat.S_IXGRP
        else:
            ok = st.st_mode & stat.S_IXOTH
        if not ok:
            return folder
    return None


def ensure_account(name: str, home: Path, group: str = SHARED_GROUP) -> pwd.struct_passwd:
    """The Unix account ``name`` for a hub user, created when missing, with ``home`` private.

    The account has no password and no login shell, belongs to ``group`` (the shared store's
    group) and has the comment :data:`ACCOUNT_MARK`. An account of that name that hubkit did not
    make (another comment) is refused, never taken over: the hub's shared password would open
    a real person's files. Needs root.

    Raises
    ------
    HubError
        The name belongs to an account hubkit did not make, or ``useradd`` failed.
    """
    try:
        grp.getgrnam(group)
    except KeyError:
        _run_admin(["groupadd", "--system", group])
    try:
        account = pwd.getpwnam(name)
    except KeyError:
        account = None
    if account is not None and account.pw_gecos.split(",")[0] != ACCOUNT_MARK:
        raise HubError(
            f"the Unix account {name!r} exists and was not made by the local hub (its comment "
            f"is {account.pw_gecos!r}, not {ACCOUNT_MARK!r}): the hub's shared password would "
            f"give its files to anyone; choose another hub user name"
        )
    if account is None:
        _run_admin(["useradd", "--no-create-home", "--home-dir", str(home),
                    "--shell", "/usr/sbin/nologin", "--comment", ACCOUNT_MARK,
                    "--groups", group, "--no-user-group", "--gid", group, name])
    elif account.pw_dir != str(home):
        _run_admin(["usermod", "--home", str(home), "--append", "--groups", group, name])
    account = pwd.getpwnam(name)
    home.mkdir(parents=True, exist_ok=True)
    os.chown(home, account.pw_uid, account.pw_gid)
    os.chmod(home, 0o700)
    return account
