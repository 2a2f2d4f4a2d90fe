"""Sentinel-5P TROPOMI L2__O3__PR files (made here in the published layout by
hubkit.simulate.write_s5p_o3_pr): detected, read back into l2-ozone, picked up by the chain's
fusion step beside another instrument's L2 file, and fused closer to the truth than the prior.

Tolerances: values go through float32 in the product, so the read-back retrievals equal the
written ones to 1e-6 of each variable's largest value; the chain's fused profiles equal an
in-memory fusion of the same files to 1e-8 of the profile.
"""

from __future__ import annotations

import netCDF4
import numpy as np
import pytest
import xarray as xr

from hubkit import chain, ingest, simulate
from hubkit import io as hio
from hubkit.chain.run import run_unit
from hubkit.chain.steps import fuse_hour
from hubkit.cli import main
from hubkit.errors import SchemaError
from hubkit.io.l2_ozone import write_l2_ozone
from hubkit.simulate import NatureRun
from hubkit.store import Store

NAME = "S5P_OFFL_L2__O3__PR_20240701T085000_20240701T103000_34567_03_020400_20240703T000000.nc"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """One hour of two instruments seeing one truth: S5-UV written as a TROPOMI file, S4-UV as
    hubkit's L2 format."""
    folder = tmp_path_factory.mktemp("s5p")
    l2 = simulate.l2_ozone(instruments=("S5-UV", "S4-UV"), hours=1, spacing=1.0, n_levels=33,
                           bbox=(2.0, 42.0, 8.0, 48.0), seed=5)
    inst = l2["instrument"].values
    s5 = l2.isel(retrieval=np.flatnonzero(inst == "S5-UV"))
    s4 = l2.isel(retrieval=np.flatnonzero(inst == "S4-UV"))
    expected = simulate.write_s5p_o3_pr(s5.drop_vars("o3_vmr_true"), folder / NAME)
    return {"s5p": folder / NAME, "s5p_expected": expected,
            "s4": write_l2_ozone(s4, folder / "l2_o3_s4.nc"), "s4_data": s4}


def test_the_file_has_the_published_layout(inputs):
    with netCDF4.Dataset(inputs["s5p"]) as nc:
        prod = nc["PRODUCT"]
        assert prod["ozone_profile"].dimensions == ("time", "scanline", "ground_pixel", "level")
        assert prod["ozone_profile"].units == "mol m-3"
        assert nc["PRODUCT/SUPPORT_DATA/DETAILED_RESULTS/averaging_kernel"].dimensions == (
            "time", "scanline", "ground_pixel", "level", "level")
        assert "ozone_profile_error_covariance_matrix" in \
            nc["PRODUCT/SUPPORT_DATA/DETAILED_RESULTS"].variables
        apriori = nc["PRODUCT/SUPPORT_DATA/INPUT_DATA/ozone_profile_apriori_precision"]
        assert apriori.correlation_length > 0
        assert prod["qa_value"].dtype == np.uint8 and prod["qa_value"].scale_factor == \
            pytest.approx(0.01)
        assert prod["time"].units.startswith("seconds since 2010-01-01")


def test_tropomi_file_uploads_as_l2_ozone_with_the_written_values(inputs, tmp_path, capsys,
                                                                  monkeypatch):
    monkeypatch.setenv("HUBKIT_STORE", str(tmp_path / "store"))
    assert hio.detect_format(inputs["s5p"]) == "s5p-o3-pr"
    assert main(["upload", str(inputs["s5p"]), "-q"]) == 0
    pid = capsys.readouterr().out.split()[0]
    assert pid.startswith("l2-ozone-")
    store = Store(str(tmp_path / "store"))
    got, want = store.open(pid).load(), inputs["s5p_expected"]
    assert got.sizes["retrieval"] == want.sizes["retrieval"]
    for name in ("o3_vmr", "o3_vmr_apriori", "averaging_kernel", "noise_covariance",
                 "pressure", "latitude", "longitude"):
        scale = np.abs(want[name].values).max()
        np.testing.assert_allclose(got[name].values, want[name].values, rtol=0,
                                   atol=1e-6 * scale, err_msg=name)
    assert (got["time"].values == want["time"].values).all()
    assert set(got["instrument"].values) == {"TROPOMI"} and (got["qa_value"] == 1.0).all()
    assert got.attrs["hubkit_empty_pixels"] >= 0
    assert main(["search", "--instrument", "TROPOMI", "--species", "o3"]) == 0
    assert pid in capsys.readouterr().out


def test_the_fusion_step_fuses_tropomi_with_another_instrument_against_truth(inputs, tmp_path):
    store = Store(str(tmp_path / "store"))
    files = {ingest.upload(store, inputs[k]).id: inputs[k] for k in ("s5p", "s4")}
    ids = set(files)
    step = next(s for s in chain.default_steps() if s.name == "fusion.cdf")
    report = chain.plan(store, [step])
    units = report.missing
    assert len(units) == 1 and set(units[0].inputs) == ids  # one hour: both files, one unit
    assert run_unit(store.url, {}, step, units[0])["status"] == "done"
    fused = store.open(units[0].output_id).load()
    n_in = inputs["s5p_expected"].sizes["retrieval"] + inputs["s4_data"].sizes["retrieval"]
    assert int(fused["n_retrievals"].sum()) == n_in

    # the same files read and fused in memory (in the unit's order: the fusion prior, the mean
    # of the retrievals' priors, depends on it), without the store and the chain: the same
    direct = fuse_hour([hio.read(files[i]) for i in units[0].inputs]).compute()
    assert np.array_equal(direct["latitude"].values, fused["latitude"].values)
    scale = np.abs(direct["o3_vmr"].values).max(axis=1, keepdims=True)
    assert np.nanmax(np.abs(fused["o3_vmr"].values - direct["o3_vmr"].values) / scale) < 1e-8

    # against the truth the retrievals sampled: closer than the fusion prior, and consistent
    # with the fused kernel and noise (x_f = x_a + A (x_t - x_a) + noise)
    p = fused["pressure"].values
    truth = NatureRun().ozone(fused["latitude"].values, fused["longitude"].values,
                              fused["time"].values, p)
    xa, A = fused["o3_vmr_apriori"].values, fused["averaging_kernel"].values
    x = fused["o3_vmr"].values
    smoothed = xa + np.einsum("clk,ck->cl", A, truth - xa)
    sigma = np.sqrt(np.diagonal(fused["total_covariance"].values, axis1=1, axis2=2))
    assert np.median(np.abs(x - truth) / sigma) < 2.0
    rel = lambda a: float(np.sqrt(np.mean(((a - truth) / truth) ** 2)))  # noqa: E731
    assert rel(x) < 0.7 * rel(np.broadcast_to(xa, x.shape))
    assert rel(smoothed) < rel(np.broadcast_to(xa, x.shape))
    both = fused["n_retrievals"].values >= 2
    assert both.any() and float(fused["dfs"].values[both].mean()) > \
        float(np.trace(inputs["s5p_expected"]["averaging_kernel"].values, axis1=1,
                       axis2=2).mean())


def test_broken_tropomi_files_are_named(inputs, tmp_path):
    import shutil

    store = Store(str(tmp_path / "store"))
    cases = []
    for name, change, words in (
            ("no_temperature.nc", lambda nc: nc["PRODUCT/SUPPORT_DATA/INPUT_DATA"].renameVariable(
                "temperature", "t_renamed"), ["INPUT_DATA/temperature", "missing", "expected"]),
            ("vmr_units.nc", lambda nc: setattr(nc["PRODUCT/ozone_profile"], "units", "ppmv"),
             ["ozone_profile", "'ppmv'", "expected 'mol m-3'"]),
            ("no_corr.nc", lambda nc: nc[
                "PRODUCT/SUPPORT_DATA/INPUT_DATA/ozone_profile_apriori_precision"].delncattr(
                "correlation_length"), ["correlation_length", "expected"])):
        path = tmp_path / name
        shutil.copyfile(inputs["s5p"], path)
        with netCDF4.Dataset(path, "a") as nc:
            change(nc)
        cases.append((path, words))
    for path, words in cases:
        with pytest.raises(SchemaError) as info:
            ingest.upload(store, path, "s5p-o3-pr")
        for word in [path.name, *words]:
            assert word in str(info.value), (word, str(info.value))
    assert store.search() == []


def test_reader_result_is_an_xarray_dataset_of_the_schema(inputs):
    ds = hio.read(inputs["s5p"])
    assert isinstance(ds, xr.Dataset) and ds.attrs["hubkit_format"] == "s5p-o3-pr"
    assert ds["averaging_kernel"].dims == ("retrieval", "level", "level_in")
