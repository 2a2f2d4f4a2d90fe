"""Shared fixtures: the real sample data beside the repo, and a real S3 server on 127.0.0.1."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
IN_CI = os.environ.get("CI", "").lower() == "true"


def need(condition: bool, reason: str) -> None:
    """Skip when a system dependency is missing on a user's machine; in CI that is a failure."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI=true and {reason}")
    pytest.skip(reason)


def assert_colorbars_fit(fig):
    """Every colour bar, its arrows included, is as tall as the panels beside it (to about a
    pixel), read from where matplotlib drew them: the outline of the bar, and the boxes of the
    panels left of it that overlap it vertically."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    bars = [ax for ax in fig.axes if hasattr(ax, "_colorbar")]
    assert bars, "no colour bar"
    for cax in bars:
        box = cax._colorbar.outline.get_window_extent(renderer)
        panels = [ax.bbox for ax in fig.axes if not hasattr(ax, "_colorbar")
                  and ax.bbox.x1 <= box.x0 + 1 and min(ax.bbox.y1, box.y1) > max(ax.bbox.y0,
                                                                                 box.y0)]
        assert panels, f"colour bar {cax.get_ylabel()!r} has no panel beside it"
        low, high = min(p.y0 for p in panels), max(p.y1 for p in panels)
        assert abs(box.y0 - low) < 1.5 and abs(box.y1 - high) < 1.5, (
            f"colour bar {cax.get_ylabel()!r} spans {box.y0:.0f}-{box.y1:.0f} px, its panels "
            f"{low:.0f}-{high:.0f} px")
    return bars


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (real sample data made by others); skip where it is absent."""
    need(SHARED_DATA.is_dir(), f"the shared sample data are absent ({SHARED_DATA} not found)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def s3_server():
    """A real S3-protocol server (moto's server mode) on 127.0.0.1, with credentials in env."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:  # pragma: no cover - depends on the environment
        need(False, "moto[server] is not installed (pip install -e '.[test]')")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    saved = {k: os.environ.get(k) for k in
             ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "FSSPEC_S3_ENDPOINT_URL")}
    os.environ.update(
        AWS_ACCESS_KEY_ID="hubkit-test", AWS_SECRET_ACCESS_KEY="hubkit-test-secret",
        FSSPEC_S3_ENDPOINT_URL=endpoint,
    )
    yield endpoint
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    server.stop()


@pytest.fixture
def s3_bucket(s3_server):
    """A fresh, empty bucket on the test S3 server; its name."""
    import s3fs

    name = f"hubkit-{uuid.uuid4().hex[:12]}"
    fs = s3fs.S3FileSystem(endpoint_url=s3_server, key="hubkit-test",
                           secret="hubkit-test-secret")
    fs.mkdir(name)
    return name


@pytest.fixture
def store_env(tmp_path, monkeypatch):
    """``HUBKIT_STORE`` names a fresh store; no Dask settings from the environment."""
    url = str(tmp_path / "store")
    monkeypatch.setenv("HUBKIT_STORE", url)
    for var in ("HUBKIT_DASK", "DASK_SCHEDULER_ADDRESS", "DASK_GATEWAY__ADDRESS"):
        monkeypatch.delenv(var, raising=False)
    return url


def run_cli(capsys, *argv):
    """``hubkit ARGV...`` as a user types it: (exit code, stdout, stderr)."""
    from hubkit.cli import main

    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err
