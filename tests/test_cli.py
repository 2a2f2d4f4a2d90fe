"""The ``hubkit`` command as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_cli as run
from fixtures import write_lite_fixture, write_obspack_fixture

from hubkit.cli import main


def test_upload_search_show(store_env, tmp_path, capsys):
    lite = write_lite_fixture(tmp_path / "oco2_LtCO2_160831_B9003r.nc4", n=40)
    obs = write_obspack_fixture(tmp_path / "co2_mlo_surface-insitu.nc")
    code, out, _ = run(capsys, "upload", str(lite), str(obs), "-q")
    assert code == 0
    ids = out.split()
    assert len(ids) == 2 and ids[0].startswith("oco2-soundings-")
    assert ids[1].startswith("surface-obs-")

    code, out, _ = run(capsys, "upload", str(lite))
    assert code == 0 and out.split() == ids[:1]  # same content, same id, nothing new

    code, out, err = run(capsys, "search", "--collection", "oco2-soundings",
                         "--bbox", "28,-29,30,-24", "--start", "2016-08-01", "--end", "2016-09-01")
    assert code == 0 and ids[0] in out and ids[1] not in out and "1 product(s)" in err
    code, out, err = run(capsys, "search", "--bbox=-160,10,-150,30")
    assert code == 0 and ids[1] in out and ids[0] not in out
    code, out, err = run(capsys, "search", "--start", "2017-01-01")
    assert code == 0 and "0 product(s)" in err
    code, out, _ = run(capsys, "search", "--species", "co2", "--json")
    assert sorted(d["id"] for d in json.loads(out)) == sorted(ids)

    code, out, _ = run(capsys, "show", ids[0])
    assert code == 0
    assert "provenance" in out and lite.name in out and "sha256" in out
    assert "xco2" in out and "[ppm]" in out and "sounding=40" in out


def test_errors_are_one_clear_line(store_env, tmp_path, capsys):
    bad = tmp_path / "broken.nc4"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    good = write_lite_fixture(tmp_path / "good.nc4")
    code, out, err = run(capsys, "upload", str(bad), str(good), "-q")
    assert code == 1
    assert len(out.split()) == 1  # the good file was stored
    assert "broken.nc4" in err and "1 of 2 files were not stored" in err
    code, _, err = run(capsys, "show", "../../etc/passwd")
    assert code == 2 and err.startswith("error: invalid product id")
    with pytest.raises(SystemExit):
        main(["search", "--bbox", "1,2,3"])
    assert "four numbers" in capsys.readouterr().err


def test_doctor_and_fsck(store_env, capsys):
    code, out, _ = run(capsys, "doctor")  # HUBKIT_STORE names a store not made yet
    assert code == 1 and "does not exist" in out and not Path(store_env).exists()
    code, out, _ = run(capsys, "doctor", "--create")
    assert code == 0
    assert store_env in out and "reachable" in out
    assert "dask        local" in out and "versions" in out
    code, out, _ = run(capsys, "fsck")
    assert code == 0 and "clean" in out
    code, out, _ = run(capsys, "reindex")
    assert code == 0 and "0 item(s)" in out


def test_console_script_is_installed():
    exe = Path(sys.executable).with_name("hubkit")
    proc = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("hubkit ")


def test_hostile_names_are_escaped_on_the_terminal(store_env, tmp_path, capsys):
    """ANSI escapes and newlines in a file name never reach the terminal as such."""
    evil = "evil\x1b[2J\x1b]0;owned\x07\nerror: forged line.nc4"
    good = write_lite_fixture(tmp_path / evil, n=24)
    broken = tmp_path / f"broken{evil}"
    broken.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    code, out, err = run(capsys, "upload", str(good), str(broken), "-q")
    assert code == 1
    for text in (out, err):
        assert "\x1b" not in text and "\x07" not in text
    assert "\\x1b[2J" in err and "\\nerror: forged line" in err
    assert len([line for line in err.splitlines() if line.startswith("error:")]) == 1
    code, out, _ = run(capsys, "show", out.split()[0])
    assert code == 0 and "\x1b" not in out and "\\x1b[2J" in out
    code, out, _ = run(capsys, "search")
    assert code == 0 and "\x1b" not in out and "forged" in out


def test_directory_upload_takes_its_files(store_env, tmp_path, capsys):
    folder = tmp_path / "orbits"
    (folder / "sub").mkdir(parents=True)
    write_lite_fixture(folder / "a.nc4", n=16)
    write_lite_fixture(folder / "sub" / "b.nc4", n=24)
    (folder / ".hidden").write_text("not data")
    code, out, err = run(capsys, "upload", str(folder), "-q")
    assert code == 0, err
    assert len(out.split()) == 2 and all(i.startswith("oco2-soundings-") for i in out.split())


def test_flagged_rows_are_reported_as_warnings(store_env, tmp_path, capsys):
    import netCDF4
    import numpy as np

    path = write_lite_fixture(tmp_path / "oco2_LtCO2_160831_B9003r.nc4", n=40)
    with netCDF4.Dataset(path, "r+") as nc:
        nc["latitude"][3] = np.nan
    code, out, err = run(capsys, "upload", str(path), "-q")
    assert code == 0 and out.split()[0].startswith("oco2-soundings-")
    assert "warning:" in err and "1 of 40 rows flagged" in err and "input_flag" in err
