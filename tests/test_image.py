"""The single-user image's environment: its lock file, its Dockerfile, and a real job in it.

The image itself cannot be built here (no Docker engine). The slow test does what the image
build does, on this machine: a fresh virtual environment gets exactly ``docker/requirements.lock``
(``--no-deps``: no resolver, the same pins), ``pip check`` proves the pinned set is complete and
consistent, hubkit is installed beside it, and ``docker/smoke.py`` runs a small real job.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import venv

import pytest
import yaml
from conftest import REPO, need
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

DOCKER = REPO / "docker"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)$")


def _lock() -> dict[str, str]:
    pins = {}
    for line in (DOCKER / "requirements.lock").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = PIN.match(line)
        assert match, f"requirements.lock: not a name==version pin: {line!r}"
        pins[canonicalize_name(match[1])] = match[2]
    return pins


def _spec() -> list[Requirement]:
    lines = (ln.split("#", 1)[0].strip()
             for ln in (DOCKER / "requirements.in").read_text().splitlines())
    return [Requirement(ln) for ln in lines if ln]


def test_lock_pins_every_requirement():
    pins = _lock()
    assert len(pins) > 50
    assert "hubkit" not in pins  # installed from the source tree
    for req in _spec():
        name = canonicalize_name(req.name)
        if name != "hubkit":
            assert name in pins, f"{req} from requirements.in is not pinned"
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    runtime = project["dependencies"] + project["optional-dependencies"]["hub"]
    for text in runtime:
        req = Requirement(text)
        name = canonicalize_name(req.name)
        assert name in pins, f"hubkit needs {req}, requirements.lock does not pin it"
        assert req.specifier.contains(pins[name], prereleases=True), (req, pins[name])
    for name in ("jupyterhub", "jupyterlab", "dask-gateway", "distributed", "dask"):
        assert name in pins
    assert "pytest" not in pins and "moto" not in pins  # test tools stay out of the image


def test_package_list_matches_the_lock():
    table = {}
    for line in (DOCKER / "packages.txt").read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        assert line == line.rstrip(), f"trailing blanks in packages.txt: {line!r}"
        name, version, *mark = line.split()
        table[name] = version
    assert table == _lock()


def test_dockerfile_is_commented_non_root_and_runs_the_smoke_test():
    lines = (DOCKER / "Dockerfile").read_text().splitlines()
    instructions = [i for i, ln in enumerate(lines) if ln and not ln.startswith("#")]
    for i in instructions:
        assert i > 0 and lines[i - 1].startswith("#"), f"Dockerfile line {i + 1} has no comment"
    text = "\n".join(lines)
    assert re.search(r"^ARG BASE=quay\.io/jupyter/base-notebook:python-3\.11$", text, re.M)
    assert re.search(r"^FROM \$\{BASE\}$", text, re.M)
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1] == "${NB_UID}"  # the base's uid 1000
    assert "--no-deps -r /opt/hubkit/requirements.lock" in text
    assert "smoke.py" in text.split("RUN")[-1] or "python /opt/hubkit/smoke.py" in text
    readme = (DOCKER / "README.md").read_text()
    assert "no Docker engine" in readme and "real base has not been built here" in readme
    assert "marker `image`" in readme


FLOOR_OF_ENV = """
from importlib import metadata
from packaging.specifiers import SpecifierSet
from packaging.version import Version
best = (Version("0"), "")
for dist in metadata.distributions():
    for spec in SpecifierSet(dist.metadata.get("Requires-Python") or ""):
        if spec.operator in (">=", ">") and Version(spec.version) > best[0]:
            best = (Version(spec.version), dist.metadata["Name"])
print(best[0], best[1])
"""


def _dockerfile_floor() -> str:
    return re.search(r"^ARG PYTHON_FLOOR=(\S+)$", (DOCKER / "Dockerfile").read_text(), re.M)[1]


def _python_check() -> str:
    """The Dockerfile's Python check, as its shell would run it (build arguments expanded)."""
    text = (DOCKER / "Dockerfile").read_text()
    code = re.search(r'^RUN python -c "(.*)"$', text, re.M)[1]
    base = re.search(r"^ARG BASE=(\S+)$", text, re.M)[1]
    return code.replace("${PYTHON_FLOOR}", _dockerfile_floor()).replace("${BASE}", base)


@pytest.mark.parametrize("version, ok", [
    ((3, 11, 7), True), ((3, 11, 5), True), ((3, 11, 2), False), ((3, 12, 1), False),
    ((3, 10, 14), False)])
def test_dockerfile_checks_the_python_floor_the_lock_needs(version, ok):
    assert _dockerfile_floor() == "3.11.5"  # soupsieve 4.1 needs >=3.11.5
    # never below what the locked packages installed here declare (the slow test checks the
    # floor equals the highest Requires-Python of the whole lock, in a fresh environment)
    from importlib import metadata

    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    for name, pinned in _lock().items():
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        if dist.version == pinned:
            for spec in SpecifierSet(dist.metadata.get("Requires-Python") or ""):
                if spec.operator == ">=":
                    assert Version(spec.version) <= Version(_dockerfile_floor()), (name, spec)
    lines = (DOCKER / "Dockerfile").read_text().splitlines()
    first_run = next(ln for ln in lines if ln.startswith("RUN "))
    assert first_run.startswith('RUN python -c "import sys; floor')  # before anything else
    fake = f"import sys; sys.version_info = {version + ('final', 0)!r}\n"
    done = subprocess.run([sys.executable, "-c", fake + _python_check()],
                          capture_output=True, text=True)
    assert (done.returncode == 0) == ok, done.stderr
    if not ok:
        found = ".".join(map(str, version))
        assert (f"needs CPython 3.11.x, at least 3.11.5; the base "
                f"quay.io/jupyter/base-notebook:python-3.11 has Python {found}") in done.stderr


def _workflow() -> dict:
    return yaml.safe_load((REPO / ".github" / "workflows" / "image.yml").read_text())


def _version_step(workflow: dict) -> str:
    (step,) = [s for s in workflow["jobs"]["image"]["steps"]
               if s.get("name") == "Version from the chart"]
    return step["run"]


def test_workflow_builds_smoke_tests_and_publishes_the_chart_app_version(tmp_path):
    workflow = _workflow()
    triggers = workflow[True] if True in workflow else workflow["on"]  # YAML 1.1 reads on: as True
    assert set(triggers) == {"pull_request", "push", "workflow_dispatch"}
    values = yaml.safe_load((REPO / "helm" / "hubkit" / "values.yaml").read_text())
    assert workflow["env"]["IMAGE"] == values["image"]["name"]
    steps = workflow["jobs"]["image"]["steps"]
    build = next(s for s in steps if s.get("name") == "Build")
    assert build["with"]["file"] == "docker/Dockerfile" and build["with"]["context"] == "."
    assert build["with"]["push"] is False
    smoke = next(s for s in steps if s.get("name") == "Smoke test")["run"]
    assert "python /opt/hubkit/smoke.py" in smoke and "id -u" in smoke
    publish = next(s for s in steps if s.get("name") == "Publish")
    assert publish["if"] == "github.event_name != 'pull_request'"
    assert "docker push" in publish["run"]
    # the version step, run for real: the tag is the chart's appVersion ...
    chart = yaml.safe_load((REPO / "helm" / "hubkit" / "Chart.yaml").read_text())
    (tmp_path / "helm" / "hubkit").mkdir(parents=True)
    for name in ("Chart.yaml", "values.yaml"):
        shutil.copy(REPO / "helm" / "hubkit" / name, tmp_path / "helm" / "hubkit" / name)
    out = tmp_path / "out"

    def run_step(**env):
        return subprocess.run(["bash", "-e", "-c", _version_step(workflow)], cwd=tmp_path,
                              capture_output=True, text=True,
                              env={"PATH": os.environ["PATH"], "GITHUB_OUTPUT": str(out),
                                   "GITHUB_REF_TYPE": "branch", "GITHUB_REF_NAME": "main",
                                   **env})

    done = run_step()
    assert done.returncode == 0, done.stdout + done.stderr
    assert out.read_text() == f"version={chart['appVersion']}\n"
    assert values["image"]["tag"] == chart["appVersion"]
    # ... a release tag must match it ...
    assert run_step(GITHUB_REF_TYPE="tag", GITHUB_REF_NAME="v9.9.9").returncode == 1
    assert run_step(GITHUB_REF_TYPE="tag",
                    GITHUB_REF_NAME=f"v{chart['appVersion']}").returncode == 0
    # ... and so must the chart's image tags
    path = tmp_path / "helm" / "hubkit" / "values.yaml"
    path.write_text(path.read_text().replace('tag: "0.1.0"', 'tag: "0.0.9"', 1))
    done = run_step()
    assert done.returncode == 1 and "image tag 0.0.9" in done.stdout


def _fresh_env(path):
    venv.EnvBuilder(with_pip=True, clear=True).create(path)
    return path / "bin" / "python"


def _run(cmd, **kw):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DASK_", "HUBKIT_", "PYTHON", "VIRTUAL_ENV"))}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, **kw)
    assert done.returncode == 0, (
        f"{' '.join(map(str, cmd))} failed ({done.returncode}):\n"
        f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    return done.stdout


@pytest.mark.image  # with the image build, after `make test` (.ci/run): 75 s of pip installs
@pytest.mark.timeout(420)
def test_locked_environment_runs_the_smoke_job(tmp_path):
    python = _fresh_env(tmp_path / "venv")
    pip = [str(python), "-m", "pip", "--disable-pip-version-check"]
    # --no-compile: bytecode is written lazily for what the job imports (the image compiles all)
    _run(pip + ["install", "--quiet", "--no-compile", "--no-deps", "-r",
                str(DOCKER / "requirements.lock")])
    _run(pip + ["install", "--quiet", "--no-deps", "-e", str(REPO)])
    _run(pip + ["check"])
    frozen = {canonicalize_name(ln.split("==")[0]): ln.split("==")[1]
              for ln in _run(pip + ["freeze", "--exclude-editable"]).splitlines() if "==" in ln}
    assert frozen == _lock()  # exactly the lock, nothing more, nothing less
    # the Dockerfile's Python floor is the highest Requires-Python of the locked packages
    floor = _run([str(python), "-c", FLOOR_OF_ENV]).split()
    assert floor[0] == _dockerfile_floor(), floor
    out = _run([str(python), str(DOCKER / "smoke.py")], cwd=tmp_path, timeout=300)
    last = out.strip().splitlines()[-1]
    assert last.startswith("SMOKE OK "), out
    result = json.loads(last.removeprefix("SMOKE OK "))
    assert result["dask_backend"] == "local"
    assert result["n"] == result["expected_n"] > 0
    assert result["xco2_mean"] == pytest.approx(result["expected_xco2_mean"], abs=1e-3)
    assert 395 < result["xco2_mean"] < 410  # the simulated background is about 402 ppm
    assert result["repeat_is_noop"] is True
    assert sys.prefix not in result["store"]


def _lock_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("hubkit_docker_lock", DOCKER / "lock.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_lock_script_walks_installed_requirements():
    from importlib import metadata

    lock = _lock_module()
    versions, via = lock.closure([Requirement("dask-gateway")])
    assert versions["dask-gateway"] == metadata.version("dask-gateway")
    for req in metadata.requires("dask-gateway"):
        req = Requirement(req)
        if req.marker is None:  # unconditional requirements are always in the closure
            assert canonicalize_name(req.name) in versions
            assert "dask-gateway" in via[canonicalize_name(req.name)]
    assert "pytest" not in versions and "pip" not in versions
    text, table = lock.render(versions, via)
    assert f"dask-gateway=={versions['dask-gateway']}" in text
    assert table.count("\n") == len(versions) + 2
    # hubkit's own requirements come from pyproject.toml, with the extras it is asked for
    own, _ = lock.closure([Requirement("hubkit[hub]")])
    assert "cartopy" in own and "dask-gateway" in own and "hubkit" not in own


# --- The real Dockerfile, built ------------------------------------------------------------------
# The real base (quay.io) cannot be pulled here, and there is no Docker engine. buildah (a Debian
# package) builds the Dockerfile without a daemon, on a stand-in base made with debootstrap:
# Debian bookworm + this machine's CPython (3.11, at least the Dockerfile's floor) + the
# Jupyter Docker Stacks user jovyan (uid 1000, gid 100, NB_* variables) + this machine's CA
# bundle for pip. Every step of the Dockerfile runs as written, the smoke job included.

def _cmd(cmd, timeout=1800, **kw):
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True,
                          timeout=timeout, **kw)
    assert done.returncode == 0, (
        f"{' '.join(map(str, cmd))} failed ({done.returncode}):\n"
        f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return done.stdout


def _python_runtime_packages(prefix) -> set[str]:
    """The Debian packages of the shared libraries this CPython's extension modules load
    (libsqlite3-0, libssl3, libffi8, ...; a real base image has its own); Tk left out."""
    libs = set()
    for module in (prefix / "lib" / "python3.11" / "lib-dynload").glob("*.so"):
        if module.name.startswith("_tkinter"):
            continue
        for line in _cmd(["ldd", module]).splitlines():
            match = re.search(r"=> (/\S+) \(", line)
            if match and not match[1].startswith(str(prefix)):
                libs.add(match[1])
    packages = set()
    for lib in sorted(libs):
        for path in (lib, os.path.realpath(lib)):
            done = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True)
            if done.returncode == 0:
                packages.add(done.stdout.split(":")[0])
                break
        else:
            raise AssertionError(f"{lib}: no Debian package owns it")
    return packages


def _standin_rootfs(rootfs):
    """Debian bookworm with this machine's CPython at its own path, the libraries its modules
    load, jovyan and the CA bundle."""
    from pathlib import Path

    prefix = Path(sys.base_prefix).resolve()
    include = ",".join(sorted({"ca-certificates"} | _python_runtime_packages(prefix)))
    _cmd(["debootstrap", "--variant=minbase", f"--include={include}", "bookworm", rootfs,
          "http://deb.debian.org/debian"])
    skip = shutil.ignore_patterns("site-packages", "__pycache__", "test", "tests", "idlelib",
                                  "tkinter", "turtledemo")
    shutil.copytree(prefix, rootfs / prefix.relative_to("/"), symlinks=True, ignore=skip)
    (rootfs / prefix.relative_to("/") / "lib" / "python3.11" / "site-packages").mkdir()
    for parent in (rootfs / prefix.relative_to("/")).parents:  # /root is 0700 in Debian
        if parent == rootfs:
            break
        parent.chmod(parent.stat().st_mode | 0o005)
    for name in ("python", "python3"):
        (rootfs / "usr" / "local" / "bin" / name).symlink_to(prefix / "bin" / "python3")
    shutil.copy("/etc/ssl/certs/ca-certificates.crt", rootfs / "etc/ssl/certs/ca-certificates.crt")
    _cmd(["chroot", rootfs, "useradd", "--create-home", "--uid", "1000", "--gid", "100",
          "--shell", "/bin/bash", "jovyan"])


@pytest.mark.image
@pytest.mark.timeout(3600)
def test_dockerfile_builds_and_runs_the_smoke_job(tmp_path):
    import time

    need(os.geteuid() == 0 and shutil.which("buildah") and shutil.which("debootstrap")
         and shutil.which("chroot"),
         "building the image needs root, buildah and debootstrap (apt-get install buildah "
         "debootstrap)")
    need(sys.version_info[:3] >= tuple(map(int, _dockerfile_floor().split(".")))
         and sys.version_info[:2] == (3, 11),
         f"the stand-in base copies this CPython, {sys.version.split()[0]}: not the lock's")
    started = time.monotonic()
    store = ["--storage-driver", "vfs", "--root", tmp_path / "storage",
             "--runroot", tmp_path / "run"]
    buildah = ["buildah", *store]
    try:
        rootfs = tmp_path / "rootfs"
        _standin_rootfs(rootfs)
        base = _cmd([*buildah, "from", "scratch"]).strip()
        _cmd([*buildah, "copy", base, f"{rootfs}/", "/"])
        cert = "/etc/ssl/certs/ca-certificates.crt"
        _cmd([*buildah, "config", "--env", "NB_USER=jovyan", "--env", "NB_UID=1000",
              "--env", "NB_GID=100", "--env", f"PIP_CERT={cert}", "--env",
              f"SSL_CERT_FILE={cert}", "--env", "PATH=/usr/local/bin:/usr/bin:/bin",
              "--user", "1000", "--workingdir", "/home/jovyan", base])
        _cmd([*buildah, "commit", base, "localhost/hubkit-standin-base:bookworm"])
        base_seconds = time.monotonic() - started

        build = _cmd([*buildah, "bud", "--isolation", "chroot", "--layers=false",
                      "--build-arg", "BASE=localhost/hubkit-standin-base:bookworm",
                      "-f", DOCKER / "Dockerfile", "-t", "localhost/hubkit-notebook:test", REPO],
                     timeout=3000)
        assert "SMOKE OK " in build  # the Dockerfile's own last check ran
        ctr = _cmd([*buildah, "from", "localhost/hubkit-notebook:test"]).strip()
        run = [*buildah, "run", "--isolation", "chroot", ctr, "--"]
        assert _cmd([*run, "id", "-u"]).strip() == "1000"
        assert _cmd([*run, "id", "-g"]).strip() == "100"
        out = _cmd([*run, "sh", "-c", "cd /tmp && python /opt/hubkit/smoke.py"], timeout=600)
        result = json.loads(out.strip().splitlines()[-1].removeprefix("SMOKE OK "))
        assert result["n"] == result["expected_n"] > 0 and result["repeat_is_noop"] is True
        found = _cmd([*run, "sh", "-c",
                      "for p in hubkit dask jupyterhub-singleuser; do command -v $p; done"])
        assert found.split() == [f"/opt/hubkit/venv/bin/{p}"
                                 for p in ("hubkit", "dask", "jupyterhub-singleuser")], found
        assert "--heartbeat" in _cmd([*run, "hubkit", "chain", "watch", "--help"])
        print(f"stand-in base {base_seconds:.0f} s, whole test "
              f"{time.monotonic() - started:.0f} s")
    finally:
        subprocess.run([*map(str, buildah), "rm", "--all"], capture_output=True)
        subprocess.run([*map(str, buildah), "rmi", "--all", "--force"], capture_output=True)
        shutil.rmtree(tmp_path / "storage", ignore_errors=True)
        shutil.rmtree(tmp_path / "rootfs", ignore_errors=True)
