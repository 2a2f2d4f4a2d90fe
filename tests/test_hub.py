"""The local hub end to end: ``hubkit hub`` in a subprocess, a real browser, a real notebook.

A researcher's path through the hub: log in through the login page with headless Chromium, see
JupyterLab with the example notebooks in the home, run the store-and-search notebook's cells in a
kernel on the user's own server (with the environment the hub gives it), and find the products in
the store and a Dask Gateway cluster created for that user, shut down afterwards. Around it:
requests without credentials are refused by the user server and the gateway, one user cannot
reach another's server, every process listens on 127.0.0.1 only, and SIGTERM stops them all.

Needs: Debian ``chromium`` (``/usr/bin/chromium``; no browser download), ``playwright``,
``jupyterhub``, ``jupyterlab``, ``configurable-http-proxy``, ``dask-gateway(-server)``. On a
user's machine the module is skipped without them; under ``CI=true`` it fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import REPO, need
from hubtools import Kernel
from hubtools import http as _http

from hubkit.hub import LocalHub, copy_notebooks, explain_exit, explain_spawn_failure, free_port

# The lead registers the marker "hub" in pyproject.toml; then add pytest.mark.hub here so the
# module can be deselected with -m "not hub". Until then "slow" (registered) marks it.
pytestmark = [pytest.mark.slow, pytest.mark.hub]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
NOTEBOOK = "01_store_and_search.ipynb"
ARTIFACTS = Path(os.environ.get("HUBKIT_TEST_ARTIFACTS", REPO / "test-artifacts"))
USERS = ("alice", "bob")


# --------------------------------------------------------------------------------------------
# Fast checks of the pieces (no hub needed)
# --------------------------------------------------------------------------------------------

# JupyterHub 6.1's log when SimpleLocalProcessSpawner starts jupyterhub-singleuser as root without
# --allow-root (the server's output goes to the hub log; the hub gives up after http_timeout)
PLAIN_SPAWNER_LOG = """\
[I 2026-11-23 14:30:59.014 JupyterHub spawner:2153] Spawning /venv/bin/jupyterhub-singleuser
[I 2026-11-23 14:31:02.010 ServerApp] jupyterlab | extension was successfully loaded.
[C 2026-11-23 14:31:02.014 ServerApp] Running as root is not recommended. Use --allow-root to bypass.
[W 2026-11-23 14:32:29.100 JupyterHub user:1117] alice's server never showed up at http://127.0.0.1:40611/user/alice/ after 90 seconds. Giving up.
"""  # noqa: E501
# the same with HubkitSpawner: the spawn fails at once, the reason read from the server's log
HUBKIT_SPAWNER_LOG = """\
[I 2026-11-23 14:32:52.481 JupyterHub hub_spawner:44] hubkit: copied 3 example notebook(s) into /s/users/alice
[E 2026-11-23 14:32:55.504 JupyterHub user:1072] Unhandled error starting alice's server: the server of 'alice' exited with code 1 before it answered: jupyterhub-singleuser refuses to run as root without --allow-root ([C 2026-11-23 14:32:54.815 ServerApp] Running as root is not recommended. Use --allow-root to bypass.) (log: /s/logs/users/alice.log)
"""  # noqa: E501


def test_spawn_failure_is_explained():
    [plain] = explain_spawn_failure(PLAIN_SPAWNER_LOG)
    assert plain.startswith("alice's server never showed up at")
    assert "probable cause: jupyterhub-singleuser refuses to run as root without --allow-root" \
        in plain
    [ours] = explain_spawn_failure(HUBKIT_SPAWNER_LOG)
    assert ours.startswith("Unhandled error starting alice's server: the server of 'alice' exited")
    assert ours.count("Running as root is not recommended") == 1
    assert explain_spawn_failure("[I 2026-11-23 14:27:32.283 JupyterHub] 200 GET /hub/api/\n") == []
    assert explain_exit("") == "its log is empty"
    assert explain_exit("a\nb\nc\nd\n") == "its log ends with: b | c | d"


def test_hub_reports_each_failed_spawn_once(tmp_path):
    """``hubkit hub`` follows the hub's log and prints each failure once, whole lines only."""
    local = LocalHub(state_dir=tmp_path, users=["alice"], port=8000)
    local.logs.mkdir(parents=True)
    head, tail = PLAIN_SPAWNER_LOG[:-40], PLAIN_SPAWNER_LOG[-40:]
    local.hub_log.write_text("[I 2026-11-23 14:30:58.000 JupyterHub app:1] starting\n" + head)
    assert local.check() == []  # the failure line is not complete yet
    with open(local.hub_log, "a") as f:
        f.write(tail)
    [problem] = local.check()
    assert "alice's server never showed up" in problem and "--allow-root" in problem
    assert str(local.hub_log) in problem
    with open(local.hub_log, "a") as f:
        f.write("[I 2026-11-23 14:33:00.000 JupyterHub log:192] 200 GET /hub/api/\n")
    assert local.check() == []


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="the refusal concerns root only")
def test_root_is_refused_unless_unsafe_root(tmp_path, capsys):
    """As root, every user's notebook would run as root and could read the hub's environment
    (shared password, gateway token) from /proc: the hub refuses, before starting anything."""
    from hubkit.cli import main
    from hubkit.hub import HubError

    local = LocalHub(state_dir=tmp_path / "hub", users=["alice"], port=0)
    with pytest.raises(HubError, match="refuses to run as root.*--unsafe-root"):
        local.start()
    assert local.pids() == {} and not (tmp_path / "hub").exists()
    assert main(["hub", "--port", "0", "--state-dir", str(tmp_path / "cli")]) == 2
    err = capsys.readouterr().err
    assert "refuses to run as root" in err and "/proc/<pid>/environ" in err
    assert not (tmp_path / "cli" / "jupyterhub_settings.json").exists()
    unsafe = LocalHub(state_dir=tmp_path / "hub", users=["alice"], port=0, unsafe_root=True)
    assert unsafe.allow_root is True and local.allow_root is False


def test_hub_command_line():
    from hubkit.cli import build_parser

    args = build_parser().parse_args(
        ["hub", "--port", "0", "--users", "alice,bob", "--state-dir", "s", "--store", "d"])
    assert (args.port, args.users, args.state_dir, args.store) == (0, "alice,bob", "s", "d")
    assert args.func.__name__ == "cmd_hub"


def test_copy_notebooks_keeps_the_users_edits(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.ipynb").write_text("{}")
    (src / "b.ipynb").write_text("{}")
    (src / "make_a.py").write_text("")
    home = tmp_path / "home" / "alice"
    assert [p.name for p in copy_notebooks(src, home)] == ["a.ipynb", "b.ipynb"]
    (home / "a.ipynb").write_text('{"edited": true}')
    assert copy_notebooks(src, home) == []
    assert (home / "a.ipynb").read_text() == '{"edited": true}'
    assert not (home / "make_a.py").exists()
    assert copy_notebooks(None, tmp_path / "empty") == []


# --------------------------------------------------------------------------------------------
# The hub in a subprocess
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hub:
    url: str
    port: int
    password: str
    state: Path
    output: Path
    pid: int

    @property
    def store(self) -> Path:
        return self.state / "store"

    def logs(self) -> str:
        parts = [f"== hubkit hub output\n{_read(self.output)}"]
        for log in sorted((self.state / "logs").glob("*.log")):
            parts.append(f"== {log.name} (end)\n" + "\n".join(_read(log).splitlines()[-60:]))
        return "\n".join(parts)


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _requirements() -> None:
    need(CHROMIUM.exists(), f"{CHROMIUM} is missing (apt-get install -y chromium)")
    for module, package in [
        ("playwright", "playwright"), ("jupyterhub", "jupyterhub"),
        ("jupyterlab", "jupyterlab"), ("dask_gateway", "dask-gateway"),
        ("dask_gateway_server", "dask-gateway-server[local]"),
        ("websocket", "websocket-client"),
    ]:
        try:
            __import__(module)
        except ImportError:
            need(False, f"{module} is not importable (pip install {package})")
    chp = Path(sys.executable).with_name("configurable-http-proxy")
    need(chp.exists() or shutil.which("configurable-http-proxy") is not None,
         "configurable-http-proxy is missing (pip install configurable-http-proxy)")


def _family(pid: int) -> list:
    import psutil

    try:
        p = psutil.Process(pid)
        return [p, *p.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """``hubkit hub`` on a free port, users alice and bob; stopped with SIGTERM afterwards."""
    import psutil

    _requirements()
    state = tmp_path_factory.mktemp("hub")
    output = state.parent / f"{state.name}-output.txt"
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DASK_", "HUBKIT_", "JUPYTERHUB_", "JPY_"))}
    with open(output, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hubkit.cli", "hub", "--port", str(port),
             "--state-dir", str(state), "--users", ",".join(USERS),
             *(["--unsafe-root"] if os.geteuid() == 0 else [])],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
    seen: dict[int, psutil.Process] = {}
    try:
        deadline = time.monotonic() + 120
        while "Press Ctrl-C to stop." not in _read(output):
            if proc.poll() is not None:
                pytest.fail(f"hubkit hub exited with {proc.returncode}:\n{_read(output)}")
            if time.monotonic() > deadline:
                pytest.fail(f"hubkit hub not ready after 120 s:\n{_read(output)}")
            time.sleep(0.2)
        text = _read(output)
        url = re.search(r"hubkit hub is running at (\S+)", text).group(1)
        password = re.search(r"password:\s+(\S+)", text).group(1)
        assert url == f"http://127.0.0.1:{port}/"
        info = Hub(url, port, password, state, output, proc.pid)
        yield info
    finally:
        # remember every descendant now: orphans would leave the tree once their parent exits
        for p in _family(proc.pid):
            seen[p.pid] = p
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            code = proc.wait(timeout=10)
        _, alive = psutil.wait_procs(list(seen.values()), timeout=20)
        for p in alive:
            p.kill()
        assert not alive, f"hubkit hub left processes behind: {alive}\n{_read(output)}"
        assert code == 0, f"hubkit hub exited with {code}:\n{_read(output)}"
        assert _read(output).rstrip().endswith("stopped")


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    _requirements()
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@dataclass
class User:
    name: str
    context: object
    page: object
    token: str
    screenshot: Path | None = None


def _login(browser, hub: Hub, name: str):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(120_000)
    page = context.new_page()
    page.goto(f"{hub.url}hub/login")
    page.fill("#username_input", name)
    page.fill("#password_input", hub.password)
    page.click("#login_submit")
    return context, page


def _api_token(context, hub: Hub, name: str) -> str:
    """A token for ``name``, requested from the hub's REST API with the browser's session."""
    xsrf = [c["value"] for c in context.cookies() if c["name"] == "_xsrf" and c["path"] == "/hub/"]
    assert xsrf, f"no _xsrf cookie of the hub: {context.cookies()}"
    r = context.request.post(
        f"{hub.url}hub/api/users/{name}/tokens",
        headers={"X-XSRFToken": xsrf[0], "Content-Type": "application/json"},
        data=json.dumps({"note": "hubkit test", "expires_in": 3600}),
    )
    assert r.status == 201, f"{r.status} {r.text()}"
    return r.json()["token"]


def _logged_in(browser, hub: Hub, name: str, screenshot: bool) -> User:
    context, page = _login(browser, hub, name)
    try:
        page.wait_for_selector(".jp-LauncherCard", timeout=120_000)
    except Exception as err:  # the hub's 500 page hides why: show its log
        pytest.fail(f"JupyterLab of {name} did not appear ({err}); page {page.url}\n{hub.logs()}")
    shot = None
    if screenshot:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / f"hub-jupyterlab-{name}.png"
        page.get_by_text(NOTEBOOK).first.wait_for()
        page.screenshot(path=str(shot))
    return User(name, context, page, _api_token(context, hub, name), shot)


@pytest.fixture(scope="module")
def alice(browser, hub):
    user = _logged_in(browser, hub, "alice", screenshot=True)
    yield user
    user.context.close()


@pytest.fixture(scope="module")
def bob(browser, hub):
    user = _logged_in(browser, hub, "bob", screenshot=False)
    yield user
    user.context.close()


def _clusters(hub: Hub, token: str) -> dict:
    status, text, _ = _http("GET", f"{hub.url}services/dask-gateway/api/v1/clusters/",
                            token, scheme="jupyterhub")
    assert status == 200, f"{status} {text}"
    return json.loads(text)


# --------------------------------------------------------------------------------------------
# End to end
# --------------------------------------------------------------------------------------------


def test_login_shows_jupyterlab_with_the_example_notebooks(hub, alice):
    assert alice.page.url.startswith(f"{hub.url}user/alice/lab")
    assert alice.screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    home = hub.state / "users" / "alice"
    assert sorted(p.name for p in home.glob("*.ipynb")) == sorted(
        p.name for p in (REPO / "notebooks").glob("*.ipynb"))


def test_every_process_listens_on_loopback_only(hub, alice):
    import psutil

    family = _family(hub.pid)
    names = {" ".join(p.cmdline()[:3]) for p in family}
    assert len(family) >= 5, names  # hubkit, gateway (+ its proxy), hub (+ CHP), alice's server
    for p in family:
        hosts = {c.laddr.ip for c in p.net_connections(kind="inet")
                 if c.status == psutil.CONN_LISTEN}
        assert hosts <= {"127.0.0.1"}, f"{p.cmdline()} listens on {hosts}"


@pytest.mark.timeout(300)
def test_example_notebook_runs_on_the_users_server(hub, alice, bob):
    import nbformat
    import psutil

    import hubkit

    nb = nbformat.read(hub.state / "users" / "alice" / NOTEBOOK, as_version=4)
    cells = [c.source for c in nb.cells if c.cell_type == "code"]
    assert any("hubkit.compute.client(" in c for c in cells)
    assert _clusters(hub, alice.token) == {}

    kernel = Kernel(hub.url, alice.name, alice.token, NOTEBOOK)
    try:
        _, env = kernel.run("import os, json; print(json.dumps({k: os.environ.get(k) for k in "
                            "['HUBKIT_STORE', 'DASK_GATEWAY__ADDRESS', 'HOME', 'USER']}))")
        env = json.loads(env)
        assert env == {
            "HUBKIT_STORE": str(hub.store),
            "DASK_GATEWAY__ADDRESS": f"{hub.url}services/dask-gateway",
            "HOME": str(hub.state / "users" / "alice"), "USER": "alice",
        }
        printed, images = [], 0
        for code in cells:
            outputs, text = kernel.run(code)
            printed.append(text)
            images += sum("image/png" in o["content"].get("data", {}) for o in outputs)
            if "hubkit.compute.client(" in code:
                assert "new Dask Gateway cluster at" in text, text
                clusters = _clusters(hub, alice.token)
                assert [c["status"] for c in clusters.values()] == ["RUNNING"], clusters
                assert _clusters(hub, bob.token) == {}  # bob sees none of them
                # the dashboard link goes through the hub's proxy
                _, link = kernel.run("print(client.dashboard_link)")
                assert link.strip().startswith("/services/dask-gateway/clusters/"), link
                status, page, _ = _http("GET", f"{hub.url.rstrip('/')}{link.strip()}")
                assert status == 200 and "Dask" in page, (status, page[:300])
                # the cluster's scheduler and workers run under the gateway, on 127.0.0.1
                dask_procs = [p for p in _family(hub.pid)
                              if any(a in ("scheduler", "worker") for a in p.cmdline()[1:3])]
                assert len(dask_procs) >= 2, [p.cmdline() for p in _family(hub.pid)]
                for p in dask_procs:
                    hosts = {c.laddr.ip for c in p.net_connections(kind="inet")
                             if c.status == psutil.CONN_LISTEN}
                    assert hosts <= {"127.0.0.1"}, f"{p.cmdline()} listens on {hosts}"
    finally:
        kernel.close()

    assert any("mean XCO2" in t for t in printed), printed
    assert images >= 1, "the notebook drew no figure"
    deadline = time.monotonic() + 60
    while (left := _clusters(hub, alice.token)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert left == {}, f"alice's gateway cluster still listed after client.close(): {left}"

    # the example's simulated products go to alice's own scratch store (issue 18), and the
    # store the hub's users share stays untouched
    scratch = hub.state / "users" / "alice" / ".local" / "share" / "hubkit" / "scratch"
    store = hubkit.open_store(str(scratch / "notebooks"), create=False)
    assert store.collections() == ["oco2-soundings"]
    assert len(store.index()) >= 3  # three simulated orbits (+ the real segment when present)
    assert not (hub.store / "catalog").exists()


def test_unauthenticated_requests_are_refused(hub, alice):
    import websocket

    user = f"{hub.url}user/alice"
    # the user's server: API, files and JupyterLab without credentials or with a made-up token
    # (API paths answer 403; pages redirect to the hub's login and OAuth, never serve content)
    for path in ("api/contents", f"api/contents/{NOTEBOOK}", "api/kernels", f"files/{NOTEBOOK}",
                 "lab"):
        for token in (None, "not-a-token"):
            status, body, headers = _http("GET", f"{user}/{path}", token)
            redirected = status == 302 and "/hub/" in headers.get("Location", "")
            assert status in (401, 403) or redirected, \
                f"{path} with token {token!r}: {status} {headers} {body[:200]}"
            assert "store_and_search" not in body
    status, _, _ = _http("POST", f"{user}/api/sessions", body={
        "path": NOTEBOOK, "type": "notebook", "kernel": {"name": "python3"}})
    assert status in (401, 403)
    with pytest.raises(websocket.WebSocketException):
        websocket.create_connection(
            f"{user}/api/kernels/{uuid.uuid4()}/channels".replace("http", "ws", 1), timeout=10)

    # the gateway, through the hub proxy and directly on its own port
    info = json.loads((hub.state / "hub.json").read_text())
    for base in (f"{hub.url}services/dask-gateway", info["gateway_internal"]):
        assert _http("GET", f"{base}/api/health")[0] == 200
        # no token: 401. A made-up token: the hub answers the gateway's token check with 403,
        # which dask-gateway-server 2026.3 reports as a 500 "Permission failure verifying
        # user's JupyterHub API token" -- a refusal all the same (no cluster is made)
        for token, refused in ((None, {401}), ("not-a-token", {401, 500})):
            status, body, _ = _http("GET", f"{base}/api/v1/clusters/", token, "jupyterhub")
            assert status in refused, f"{base} with {token!r}: {status} {body[:200]}"
            status, body, _ = _http("POST", f"{base}/api/v1/clusters/", token, "jupyterhub",
                                    body={"cluster_options": {}})
            assert status in refused, f"{base} with {token!r}: {status} {body[:200]}"
    # a real token of alice's without the scope access:services!service=dask-gateway
    xsrf = [c["value"] for c in alice.context.cookies()
            if c["name"] == "_xsrf" and c["path"] == "/hub/"]
    r = alice.context.request.post(
        f"{hub.url}hub/api/users/alice/tokens",
        headers={"X-XSRFToken": xsrf[0], "Content-Type": "application/json"},
        data=json.dumps({"note": "no gateway", "expires_in": 600,
                         "scopes": ["users:activity!user=alice"]}),
    )
    assert r.status == 201, r.text()
    narrow = r.json()["token"]
    status, body, _ = _http("GET", f"{hub.url}services/dask-gateway/api/v1/clusters/", narrow,
                            "jupyterhub")
    assert status == 401, f"{status} {body[:200]}"
    assert _clusters(hub, alice.token) == {}


def test_one_user_cannot_reach_another(hub, alice, bob):
    for me, other in ((alice, bob), (bob, alice)):
        base = f"{hub.url}user/{other.name}"
        for path in ("api/contents", f"api/contents/{NOTEBOOK}", "api/kernels"):
            status, body, _ = _http("GET", f"{base}/{path}", me.token)
            assert status in (403, 404), f"{me.name} -> {other.name}/{path}: {status} {body[:200]}"
        status, body, _ = _http("POST", f"{hub.url}hub/api/users/{other.name}/server", me.token)
        assert status in (403, 404), f"{me.name} starts {other.name}'s server: {status}"
        status, body, _ = _http("POST", f"{hub.url}hub/api/users/{other.name}/tokens", me.token,
                                body={"note": "steal"})
        assert status in (403, 404), f"{me.name} makes {other.name}'s token: {status}"
        # with the browser session: the hub refuses to hand out access to the other's server
        page = me.context.new_page()
        try:
            for path in ("api/contents", "lab", f"files/{NOTEBOOK}"):
                response = page.goto(f"{base}/{path}")
                assert response.status in (403, 404), (path, response.status, page.url)
                assert "store_and_search" not in page.content()
        finally:
            page.close()
        # the own server still answers the own token
        status, _, _ = _http("GET", f"{hub.url}user/{me.name}/api/contents", me.token)
        assert status == 200


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="only root needs --allow-root")
@pytest.mark.timeout(180)
def test_root_without_allow_root_fails_with_a_clear_error(tmp_path, browser):
    """The trap of the field notes: as root, jupyterhub-singleuser needs --allow-root, and
    JupyterHub alone hides the refusal behind an error page. The reason must show."""
    with LocalHub(state_dir=tmp_path / "hub", users=["carol"], port=0, unsafe_root=True,
                  allow_root=False) as local:
        context = browser.new_context()
        try:
            page = context.new_page()
            page.goto(f"{local.url}hub/login")
            page.fill("#username_input", "carol")
            page.fill("#password_input", local.password)
            page.click("#login_submit")
            page.get_by_text("Spawn failed:").first.wait_for(timeout=60_000)
            text = page.inner_text("body")
        finally:
            context.close()
        problems = local.check()
    assert "refuses to run as root without --allow-root" in text, text
    assert any("carol" in p and "--allow-root" in p for p in problems), problems
