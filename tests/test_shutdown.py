"""``hubkit chain watch`` stopped as an operator stops it: Ctrl-C in a terminal (SIGINT to the
whole process group, Dask workers included) or SIGTERM (``kill``, Kubernetes, systemd). One line,
no tracebacks from the worker processes, no leaked semaphores, exit 130 / 143; progress bars
that are plain lines when the output is a log file, not a terminal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO
from fixtures import write_lite_fixture

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def store_with_work(tmp_path_factory):
    """A store holding one Lite product: the peaks step has one unit to run."""
    from hubkit import ingest
    from hubkit.store import open_store

    folder = tmp_path_factory.mktemp("watch")
    lite = write_lite_fixture(folder / "oco2_LtCO2_160831_B9003r.nc4", n=40)
    store = open_store(str(folder / "store"))
    ingest.upload(store, lite)
    return folder / "store"


def _watch(store, tmp_path):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HUBKIT_", "DASK_"))}
    env.update(PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1", COLUMNS="100")
    log = open(tmp_path / "watch.log", "w+")  # a log file, not a terminal
    proc = subprocess.Popen(
        [sys.executable, "-m", "hubkit.cli", "chain", "watch", "--store", str(store),
         "--interval", "0.5", "--workers", "2"],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path, start_new_session=True)
    deadline = time.monotonic() + 120
    while "unit(s) run" not in (tmp_path / "watch.log").read_text():
        assert proc.poll() is None, (tmp_path / "watch.log").read_text()
        assert time.monotonic() < deadline, "no round finished in 120 s"
        time.sleep(0.2)
    time.sleep(1.0)  # the next round (nothing to do) and its pause
    return proc, log


@pytest.mark.parametrize("how, code", [("SIGINT to the group", 130),
                                       ("SIGTERM to the process", 143),
                                       ("SIGTERM to the group", 143)])
def test_watch_stops_cleanly(store_with_work, tmp_path, how, code):
    proc, log = _watch(store_with_work, tmp_path)
    before = (tmp_path / "watch.log").read_text()
    sig = signal.SIGINT if "SIGINT" in how else signal.SIGTERM
    if "group" in how:
        os.killpg(proc.pid, sig)  # what a terminal does on Ctrl-C
    else:
        proc.send_signal(sig)
    assert proc.wait(timeout=60) == code
    log.close()
    text = (tmp_path / "watch.log").read_text()
    after = text[len(before):].strip().splitlines()
    assert len(after) == 1, text
    assert after[0].startswith(("interrupted", "terminated")) and "hubkit chain" in after[0]
    assert "Traceback" not in text and "leaked" not in text and "KeyboardInterrupt" not in text
    assert "\r" not in text and "\x1b" not in text


def test_progress_is_plain_lines_in_a_log(tmp_path, monkeypatch, capsys):
    """Not on a terminal (here: captured), uploads and chain steps report plain lines."""
    from hubkit.cli import main

    for var in ("HUBKIT_DASK", "DASK_SCHEDULER_ADDRESS", "DASK_GATEWAY__ADDRESS"):
        monkeypatch.delenv(var, raising=False)
    store = str(tmp_path / "store")
    files = [str(write_lite_fixture(tmp_path / f"oco2_LtCO2_16083{i}_B9003r.nc4", n=24 + i))
             for i in range(2)]
    assert main(["upload", "--store", store, *files]) == 0
    assert main(["chain", "run", "--store", store, "--workers", "1"]) == 0
    err = capsys.readouterr().err
    assert "upload: 2/2 file(s)" in err and "co2.peaks: 2/2 unit(s)" in err
    assert "\r" not in err and "\x1b" not in err
