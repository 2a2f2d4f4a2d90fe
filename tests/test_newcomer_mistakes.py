"""A newcomer's mistakes (issue 18), each as the exact command: caught with a message that says
what was found and what was expected, and nothing created on the way."""

from __future__ import annotations

import os

import pytest
from conftest import run_cli as run
from fixtures import write_lite_fixture

from hubkit.cli import main
from hubkit.errors import StoreError


@pytest.fixture
def store_env(tmp_path, monkeypatch):
    """``HUBKIT_STORE`` names a store that holds one Lite product (2016-08-31, ~10 UTC)."""
    url = tmp_path / "hubkit-demo" / "store"
    monkeypatch.setenv("HUBKIT_STORE", str(url))
    for var in ("HUBKIT_DASK", "DASK_SCHEDULER_ADDRESS", "DASK_GATEWAY__ADDRESS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    lite = write_lite_fixture(tmp_path / "oco2_LtCO2_160831_B9003r.nc4", n=40)
    assert main(["upload", str(lite), "-q"]) == 0
    return url


def tree(path):
    """Every path under ``path`` (to show that a refused command created nothing)."""
    return sorted(str(p) for p in path.rglob("*"))


# -- dates ------------------------------------------------------------------------------------


@pytest.mark.parametrize("option", ["--start", "--end"])
@pytest.mark.parametrize("text", ["01/09/2016", "31/08/2016", "2016/08/31", "20160831",
                                  "Aug 31 2016", "31.08.2016"])
def test_search_refuses_dates_that_are_not_iso_8601(store_env, capsys, option, text):
    code, out, err = run(capsys, "search", option, text)
    assert code == 2 and out == ""
    assert f"{text!r}" in err and "ISO 8601" in err and "2016-08-31" in err
    assert len(err.strip().splitlines()) == 1


def test_search_end_date_without_time_is_the_whole_day(store_env, capsys):
    """``--end 2016-08-31`` includes that day (the product's soundings are at ~10 UTC)."""
    code, out, err = run(capsys, "search", "--start", "2016-08-31", "--end", "2016-08-31")
    assert code == 0 and "1 product(s)" in err
    code, out, err = run(capsys, "search", "--end", "2016-08-31T09:00:00Z")
    assert code == 0 and "0 product(s)" in err
    code, out, err = run(capsys, "search", "--start", "2016-08-31T23:00:00+00:00")
    assert code == 0 and "0 product(s)" in err


def test_library_search_refuses_ambiguous_dates(store_env):
    import datetime as dt

    import hubkit

    store = hubkit.open_store()
    with pytest.raises(StoreError, match=r"'01/09/2016'.*ISO 8601.*2016-09-01"):
        store.search(datetime=("01/09/2016", None))
    with pytest.raises(StoreError, match="ISO 8601"):
        store.search(datetime="2016-08-01/31/08/2016")
    assert len(store.search(datetime=(dt.date(2016, 8, 31), dt.date(2016, 8, 31)))) == 1
    assert len(store.search(datetime=(dt.datetime(2016, 8, 31, tzinfo=dt.timezone.utc),
                                      None))) == 1


# -- did you mean -----------------------------------------------------------------------------


def test_unknown_collection_says_did_you_mean(store_env, capsys):
    code, out, err = run(capsys, "search", "--collection", "oco2-sounding")
    assert code == 2 and out == ""
    assert "'oco2-sounding'" in err and "did you mean 'oco2-soundings'" in err
    assert "0 product(s)" not in err
    code, out, err = run(capsys, "search", "--collection", "xyzzy")
    assert code == 2 and "'xyzzy'" in err and "oco2-soundings" in err  # the valid choices
    code, out, err = run(capsys, "search", "--collection", "das")  # known type, none stored
    assert code == 0 and "0 product(s)" in err


@pytest.mark.parametrize("option, typo, right", [("--species", "co", "co2"),
                                                 ("--species", "C02", "co2"),
                                                 ("--instrument", "OCO2", "OCO-2"),
                                                 ("--instrument", "oco-3", "OCO-2")])
def test_unknown_species_or_instrument_says_did_you_mean(store_env, capsys, option, typo,
                                                         right):
    code, out, err = run(capsys, "search", option, typo)
    if option == "--species" and typo == "co":  # CO is a species (ObsPack): none stored
        assert code == 0 and "0 product(s)" in err
        return
    assert code == 2 and out == ""
    assert f"{typo!r}" in err and f"did you mean '{right}'" in err
    code, out, err = run(capsys, "search", option, right.lower())  # case does not matter
    assert code == 0 and "1 product(s)" in err


# -- store URLs -------------------------------------------------------------------------------


def test_doctor_on_a_mistyped_store_creates_nothing(store_env, tmp_path, capsys):
    typo = store_env.parent / "stor"
    before = tree(tmp_path)
    code, out, err = run(capsys, "doctor", "--store", str(typo))
    assert code == 1
    assert f"{typo}" in out and "does not exist" in out and "reachable" not in out
    assert f"did you mean {str(store_env)!r}" in out and "--create" in out
    assert not typo.exists() and tree(tmp_path) == before


@pytest.mark.parametrize("argv", [["search"], ["show", "oco2-soundings-0123456789abcdef"],
                                  ["fsck"], ["reindex"], ["chain", "status"]])
def test_commands_that_read_refuse_a_missing_store(store_env, tmp_path, capsys, argv):
    missing = tmp_path / "elsewhere" / "store"
    before = tree(tmp_path)
    code, out, err = run(capsys, *argv, "--store", str(missing))
    assert code == 2 and f"store {missing}" in err and "does not exist" in err
    assert "hubkit upload" in err and "--create" in err
    assert tree(tmp_path) == before


def test_create_and_upload_make_a_new_store(store_env, tmp_path, capsys):
    new = tmp_path / "new-store"
    code, out, err = run(capsys, "search", "--store", str(new), "--create")
    assert code == 0 and "0 product(s)" in err and new.is_dir()
    other = tmp_path / "other-store"
    lite = write_lite_fixture(tmp_path / "oco2_LtCO2_160901_B9003r.nc4", n=16)
    code, out, err = run(capsys, "upload", "--store", str(other), str(lite), "-q")
    assert code == 0 and (other / "catalog").is_dir()


@pytest.mark.parametrize("url", ["s3:/mybucket/hub", "s3:mybucket", "memory:/x", "file:/tmp/x"])
def test_malformed_store_urls_are_refused(store_env, tmp_path, capsys, url):
    before = tree(tmp_path)
    code, out, err = run(capsys, "search", f"--store={url}", "--create")
    assert code == 2 and f"{url!r}" in err and "malformed" in err
    assert "s3://bucket/prefix" in err
    assert tree(tmp_path) == before


def test_unknown_scheme_is_refused(store_env, tmp_path, capsys):
    code, out, err = run(capsys, "upload", "--store=gs://mybucket/hub", str(tmp_path))
    assert code == 2 and "unknown scheme 'gs'" in err and "s3://bucket/prefix" in err


@pytest.mark.s3
def test_s3_without_credentials_names_the_variables(s3_server, s3_bucket, store_env, tmp_path,
                                                    capsys, monkeypatch):
    for var in list(os.environ):
        if var.startswith(("AWS_", "FSSPEC_S3_KEY", "FSSPEC_S3_SECRET")):
            monkeypatch.delenv(var)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance-metadata lookup
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    code, out, err = run(capsys, "search", f"--store=s3://{s3_bucket}/hub")
    assert code == 2 and "no credentials" in err
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "FSSPEC_S3_ENDPOINT_URL",
                "hubkit-storage-credentials"):
        assert var in err
    code, out, err = run(capsys, "doctor", f"--store=s3://{s3_bucket}/hub")
    assert code == 1 and "AWS_ACCESS_KEY_ID" in out


@pytest.mark.s3
def test_s3_store_that_does_not_exist(s3_server, s3_bucket, store_env, capsys):
    url = f"s3://{s3_bucket}/hub"
    code, out, err = run(capsys, "search", f"--store={url}")
    assert code == 2 and f"store {url}" in err and "does not exist" in err
    lite = write_lite_fixture(store_env.parent / "oco2_LtCO2_160901_B9003r.nc4", n=16)
    assert run(capsys, "upload", f"--store={url}", str(lite), "-q")[0] == 0
    code, out, err = run(capsys, "search", f"--store={url}")
    assert code == 0 and "1 product(s)" in err


# -- uploads ----------------------------------------------------------------------------------


def test_upload_of_an_empty_directory_says_so(store_env, tmp_path, capsys):
    empty = tmp_path / "orbits"
    empty.mkdir()
    (empty / ".hidden").write_text("not data")
    code, out, err = run(capsys, "upload", str(empty))
    assert code == 1 and out == ""
    assert f"{empty}" in err and "directory" in err and "no files" in err


@pytest.mark.parametrize("name", ["oco2_LtCO2_160831_B9003r.nc4", "orbit11522.nc4"])
def test_lite_file_without_xco2_is_refused(store_env, tmp_path, capsys, name):
    (tmp_path / "broken").mkdir()
    broken = write_lite_fixture(tmp_path / "broken" / name, n=40, omit=("xco2",))
    before = tree(store_env)
    code, out, err = run(capsys, "upload", str(broken), "-q")
    assert code == 1 and out == ""
    assert "'xco2'" in err and "OCO-2 Lite" in err and "cf-dataset" not in err
    assert "warning" not in err
    assert tree(store_env) == before


# -- simulated products and scratch stores ----------------------------------------------------


def test_products_made_from_simulated_ones_are_labelled(tmp_path):
    import hubkit
    from hubkit import simulate

    store = hubkit.open_store(str(tmp_path / "scratch"))
    das = simulate.das_field(nlon=8, nlat=4, ntime=1, n_levels=5, seed=1)
    item = store.put(das, product_type="das", inputs=["simulate.das_field"], step="test")
    assert item.properties["hubkit:simulated"] is True
    derived = das[["o3_vmr"]].mean("level")
    derived.attrs = {}  # a computation that dropped the attributes
    out = store.put(derived, product_type="o3-mean", inputs=[item.id], step="test.mean")
    assert out.properties["hubkit:simulated"] is True
    assert out.properties["hubkit:simulated_inputs"] == item.id


def test_scratch_store_is_never_the_shared_one(monkeypatch):
    import hubkit

    monkeypatch.delenv("HUBKIT_SCRATCH_STORE", raising=False)
    monkeypatch.setenv("HUBKIT_STORE", "s3://hub-bucket/store")
    monkeypatch.setenv("JUPYTERHUB_USER", "alice")
    assert hubkit.scratch_store_url("notebooks") == "s3://hub-bucket/scratch/alice/notebooks"
    monkeypatch.setenv("HUBKIT_STORE", "/data/shared-store")
    monkeypatch.setenv("XDG_DATA_HOME", "/home/alice/.local/share")
    assert hubkit.scratch_store_url("demo") == "/home/alice/.local/share/hubkit/scratch/demo"
    monkeypatch.setenv("HUBKIT_SCRATCH_STORE", "s3://elsewhere/tmp/")
    assert hubkit.scratch_store_url("demo") == "s3://elsewhere/tmp/demo"


def test_cli_demo_defaults_to_the_scratch_store():
    from hubkit.cli import build_parser

    args = build_parser().parse_args(["demo"])
    assert args.store is None  # run_demo then takes scratch_store_url("demo"), not HUBKIT_STORE
