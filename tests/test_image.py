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
import subprocess
import sys
import venv

import pytest
from conftest import REPO
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
    assert re.search(r"^ARG BASE_IMAGE=quay\.io/jupyter/|^ARG BASE_IMAGE=pangeo/", text, re.M)
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1] == "${NB_UID}"  # the base's uid 1000
    assert "--no-deps -r /opt/hubkit/requirements.lock" in text
    assert "smoke.py" in text.split("RUN")[-1] or "python /opt/hubkit/smoke.py" in text
    readme = (DOCKER / "README.md").read_text()
    assert "no Docker engine" in readme and "has not been built" in readme


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


@pytest.mark.slow
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
