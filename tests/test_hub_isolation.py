"""The local hub as root with one Unix account per user (``hubkit hub --system-users``).

What a hub user must not be able to do from her own notebook, tried from a kernel on alice's
server: read bob's files, read the environment of the hub, the gateway or bob's server (where
the shared password and the gateway's token would be), read the hub's database, cookie secret
or logs. What she must still be able to do: share products with bob through the store, and get
a Dask Gateway cluster that runs as herself, not as root.

Needs root (only root can create the accounts and start servers as them) and the hub's
packages; elsewhere it is skipped, and under ``CI=true`` (where the tests run as root) it fails.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import REPO, need
from hubtools import Kernel, http

from hubkit.hub import ACCOUNT_MARK, HubError, LocalHub, ensure_account

pytestmark = [pytest.mark.slow, pytest.mark.hub]

#: hub user names, which are also the names of their Unix accounts
USERS = ("hk-alice", "hk-bob")
NOTEBOOK = "01_store_and_search.ipynb"


def _root_and_tools() -> None:
    need(hasattr(os, "geteuid") and os.geteuid() == 0,
         "one Unix account per hub user is made and shown as root only")
    need(shutil.which("useradd") is not None, "useradd is missing (apt-get install passwd)")
    # the accounts run this clone's Python: every folder above it must let them pass (.ci/run
    # sees to it on the CI machine, whose Python may live under /root)
    for path in (REPO, Path(os.path.realpath(sys.executable))):
        closed = [str(f) for f in path.parents if not os.stat(f).st_mode & stat.S_IXOTH]
        need(not closed, f"other Unix accounts cannot reach {path} ({', '.join(closed)} "
                         "closed to them; chmod o+x, as .ci/run does)")
    for module in ("jupyterhub", "jupyterlab", "dask_gateway", "dask_gateway_server",
                   "websocket", "requests"):
        try:
            __import__(module)
        except ImportError:
            need(False, f"{module} is not importable")


def _remove_account(name: str) -> None:
    try:
        account = pwd.getpwnam(name)
    except KeyError:
        return
    if account.pw_gecos.split(",")[0] == ACCOUNT_MARK:
        subprocess.run(["userdel", name], check=False, capture_output=True)


@pytest.fixture(scope="module")
def isolated():
    """A hub with system users hk-alice and hk-bob, in a folder other accounts can traverse
    (pytest's own temporary folders are root's only)."""
    _root_and_tools()
    top = Path(tempfile.mkdtemp(prefix="hubkit-isolation-", dir="/tmp"))
    os.chmod(top, 0o711)
    hub = LocalHub(state_dir=top / "hub", users=USERS, port=0, system_users=True)
    try:
        with hub:
            yield hub
    finally:
        for name in USERS:
            _remove_account(name)
        shutil.rmtree(top, ignore_errors=True)


def _token(hub: LocalHub, name: str) -> str:
    """Log in with the shared password (the login form) and ask the REST API for a token."""
    import requests

    s = requests.Session()
    s.get(f"{hub.url}hub/login", timeout=30)
    xsrf = s.cookies.get("_xsrf", path="/hub/")
    r = s.post(f"{hub.url}hub/login", timeout=60, allow_redirects=False,
               data={"username": name, "password": hub.password, "_xsrf": xsrf})
    assert r.status_code == 302, f"login of {name}: {r.status_code} {r.text[:300]}"
    xsrf = s.cookies.get("_xsrf", path="/hub/")  # a new one for the logged-in session
    r = s.post(f"{hub.url}hub/api/users/{name}/tokens", timeout=30,
               headers={"X-XSRFToken": xsrf}, json={"note": "isolation test"})
    assert r.status_code == 201, f"{r.status_code} {r.text[:300]}"
    return r.json()["token"]


def _start_server(hub: LocalHub, name: str, token: str) -> None:
    status, body, _ = http("POST", f"{hub.url}hub/api/users/{name}/server", token)
    assert status in (201, 202), f"{name}'s server: {status} {body[:300]}"
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline:
        status, body, _ = http("GET", f"{hub.url}hub/api/users/{name}", token)
        server = json.loads(body).get("servers", {}).get("", {}) if status == 200 else {}
        if server.get("ready"):
            return
        problems = hub.check()
        assert not problems, problems
        time.sleep(0.5)
    pytest.fail(f"{name}'s server not ready after 150 s:\n{hub.hub_log.read_text()[-3000:]}")


#: What alice's kernel tries; prints one JSON object.
PROBE = r"""
import json, os, pathlib
state = pathlib.Path({state!r})
result = {{"uid": os.getuid(), "euid": os.geteuid(), "denied": {{}}, "readable_environs": {{}},
          "readable_files": []}}
def attempt(label, action):
    try:
        action()
        result["denied"][label] = False
    except PermissionError:
        result["denied"][label] = True
attempt("list bob's home", lambda: os.listdir({bob_home!r}))
attempt("read bob's notebook", lambda: open({bob_notebook!r}, "rb").read())
attempt("read bob's secret", lambda: open({bob_secret!r}, "rb").read())
for label, pid in {pids!r}.items():
    attempt("environ of " + label, lambda: open(f"/proc/{{pid}}/environ", "rb").read())
for entry in pathlib.Path("/proc").iterdir():
    if entry.name.isdigit():
        try:
            result["readable_environs"][entry.name] = (entry / "environ").read_bytes().decode(
                errors="replace")
        except OSError:
            pass
for path in {state_files!r}:
    try:
        with open(path, "rb") as f:
            f.read(1)
        result["readable_files"].append(path)
    except OSError:
        pass
result["bob's product"] = open({shared!r}).read()
with open({mine!r}, "w") as f:
    f.write("made by alice")
print(json.dumps(result))
"""

#: A cluster of alice's from the gateway: who its scheduler and worker run as.
CLUSTER = r"""
import json, os
from dask_gateway import Gateway
gateway = Gateway()
cluster = gateway.new_cluster()
try:
    cluster.scale(1)
    client = cluster.get_client()
    client.wait_for_workers(1, timeout=120)
    print(json.dumps({"scheduler": client.run_on_scheduler(os.getuid),
                      "workers": sorted(client.run(os.getuid).values())}))
    client.close()
finally:
    cluster.shutdown()
"""


@pytest.mark.timeout(600)
def test_alice_cannot_read_bobs_files_or_the_hubs_secrets(isolated):
    import psutil

    hub = isolated
    alice, bob = USERS
    tokens = {name: _token(hub, name) for name in USERS}
    for name in USERS:
        _start_server(hub, name, tokens[name])
    accounts = {name: pwd.getpwnam(name) for name in USERS}

    # every user server runs as its own account, none as root
    servers = {}
    for p in psutil.Process(hub.pids()["jupyterhub"]).children(recursive=True):
        cmd = " ".join(p.cmdline())
        for name in USERS:
            if "jupyterhub-singleuser" in cmd and p.environ().get("JUPYTERHUB_USER") == name:
                servers[name] = p
    assert set(servers) == set(USERS), servers
    for name, p in servers.items():
        assert p.uids().real == accounts[name].pw_uid != 0, (name, p.uids())

    # bob keeps a private note in his home and shares a product through the store
    bob_home = hub.home(bob)
    store = Path(hub.store)
    kernel = Kernel(hub.url, bob, tokens[bob], NOTEBOOK)
    try:
        kernel.run(f"open({str(bob_home / 'secret.txt')!r}, 'w').write('bob only')\n"
                   f"open({str(store / 'shared-by-bob.txt')!r}, 'w').write('for everyone')")
    finally:
        kernel.close()
    assert (bob_home / "secret.txt").stat().st_uid == accounts[bob].pw_uid
    assert (bob_home / NOTEBOOK).stat().st_uid == accounts[bob].pw_uid  # copied in, then given

    state_files = sorted(str(p) for p in hub.state_dir.rglob("*")
                         if p.is_file() and hub.home(alice) not in p.parents
                         and store not in p.parents)
    assert any(p.endswith("jupyterhub.sqlite") for p in state_files), state_files
    pids = {"the hub": hub.pids()["jupyterhub"],
            "the gateway": hub.pids()["dask-gateway-server"],
            "bob's server": servers[bob].pid}
    code = PROBE.format(
        state=str(hub.state_dir), bob_home=str(bob_home),
        bob_notebook=str(bob_home / NOTEBOOK), bob_secret=str(bob_home / "secret.txt"),
        pids=pids, state_files=state_files, shared=str(store / "shared-by-bob.txt"),
        mine=str(store / "made-by-alice.txt"),
    )
    kernel = Kernel(hub.url, alice, tokens[alice], NOTEBOOK)
    try:
        _, out = kernel.run(code)
        try:
            _, cluster = kernel.run(CLUSTER, timeout=300)
        except BaseException:
            logs = [hub.gateway_log, *sorted((hub.state_dir / "clusters").rglob("*.log"))]
            print("\n".join(f"== {p}\n{p.read_text(errors='replace')[-3000:]}" for p in logs))
            raise
    finally:
        kernel.close()
    seen = json.loads(out.strip().splitlines()[-1])

    assert seen["uid"] == seen["euid"] == accounts[alice].pw_uid != 0
    assert seen["denied"] == {label: True for label in seen["denied"]}, seen["denied"]
    assert len(seen["denied"]) == 3 + len(pids)
    secrets = {"the shared password": hub.password, "the gateway token": hub._token,
               "the cookie secret": (hub.state_dir / "jupyterhub_cookie_secret").read_text()
               .strip()}
    for what, secret in secrets.items():
        assert len(secret) >= 8
        for pid, environ in seen["readable_environs"].items():
            assert secret not in environ, f"{what} is readable by alice in /proc/{pid}/environ"
        for path in seen["readable_files"]:
            assert secret not in Path(path).read_text(errors="replace"), \
                f"{what} is readable by alice in {path}"
    readable = {Path(p).name for p in seen["readable_files"]}
    assert not readable & {"jupyterhub.sqlite", "jupyterhub_cookie_secret", "hub.json",
                           "jupyterhub.log", "dask-gateway.log", f"{bob}.log"}, readable
    # ... and yet the store is shared: bob's product read, alice's readable by bob's group
    assert seen["bob's product"] == "for everyone"
    made = store / "made-by-alice.txt"
    assert made.stat().st_uid == accounts[alice].pw_uid
    assert made.stat().st_gid == store.stat().st_gid and made.stat().st_mode & 0o060 == 0o060
    assert made.stat().st_mode & 0o007 == 0

    # alice's Dask cluster runs as alice, not as the gateway's root
    uids = json.loads(cluster.strip().splitlines()[-1])
    assert uids == {"scheduler": accounts[alice].pw_uid, "workers": [accounts[alice].pw_uid]}


def test_an_account_not_made_by_the_hub_is_never_taken_over(tmp_path):
    """A hub user named like an existing Unix account (``nobody``): the shared
    password would open that account's files, so the hub refuses before starting anything."""
    _root_and_tools()
    with pytest.raises(HubError, match=r"'nobody' exists and was not made by the local hub"):
        ensure_account("nobody", tmp_path / "nobody")
    local = LocalHub(state_dir=tmp_path / "hub", users=["nobody"], port=0, system_users=True)
    with pytest.raises(HubError, match="not made by the local hub"):
        local.start()
    assert local.pids() == {}
    with pytest.raises(HubError, match="exclude each other"):
        LocalHub(state_dir=tmp_path / "x", users=["a"], system_users=True, unsafe_root=True)
