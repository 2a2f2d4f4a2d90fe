"""Readers of hubkit.io: canonical names, dims and units, converted values, detection, bad input.

Fixture files come from ``tests/fixtures.py`` (raw layouts written with netCDF4 directly); the
real oco2peak sample comes from ``../shared/data/oco2peak``. Float tolerances: values that pass
through float32 in the raw file are compared with rtol 1e-6; unit conversions of exactly
representable numbers (850 hPa) are compared exactly.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import xarray as xr
from fixtures import (
    LITE_START,
    write_cf_grid_fixture,
    write_l2_ozone_fixture,
    write_lite_fixture,
    write_obspack_fixture,
    write_oco2peak_segment_csv,
    write_oco2peak_semicolon_csv,
)

from hubkit import io as hio
from hubkit import schemas
from hubkit.errors import HubkitError, IngestError, SchemaError, UnitsError
from hubkit.io import (
    agage,
    cf,
    icos_atc,
    icos_nc,
    l2_ozone,
    obspack,
    obspack_text,
    oco2_lite,
    oco2peak_csv,
)
from hubkit.io._common import decode_sounding_id, encode_sounding_id
from hubkit.io.l2_ozone import write_l2_ozone
from hubkit.io.oco2_lite import write_oco2_lite

READERS = (oco2_lite, oco2peak_csv, obspack, obspack_text, icos_nc, icos_atc, agage, l2_ozone, cf)
SAMPLE = "oco2_orbit11522_20160831_segment_300-800km.csv"
START = np.datetime64(LITE_START.replace(tzinfo=None), "ns")


def _check_canonical(ds: xr.Dataset, product_type: str) -> None:
    """Every schema variable present has its canonical dims and units; attrs are set."""
    schema = schemas.get_schema(product_type)
    species = ds.attrs.get("hubkit_species")
    for var in schema.variables:
        if var.name not in ds.variables:
            assert not var.required, var.name
            continue
        assert ds[var.name].dims == var.dims, var.name
        units = schema.units_of(var, species)
        if units is not None:
            assert schemas.canonical_units(ds[var.name].attrs["units"]) == \
                schemas.canonical_units(units), var.name
        else:
            assert "units" not in ds[var.name].attrs, var.name
    assert ds.attrs["hubkit_product_type"] == product_type
    assert ds.attrs["Conventions"] == "CF-1.10"
    assert ds.attrs["source"]


# --- OCO-2 Lite ------------------------------------------------------------------------------


def test_lite_canonical_names_units_and_values(tmp_path):
    path = write_lite_fixture(tmp_path / "oco2_LtCO2_160831_B9003r_test.nc4", n=40)
    ds = hio.read(path)
    _check_canonical(ds, "oco2-soundings")
    assert dict(ds.sizes) == {"sounding": 40}
    assert ds.attrs["hubkit_format"] == "oco2-lite"
    assert ds.attrs["hubkit_species"] == "co2"
    assert ds.attrs["platform"] == "OCO-2"
    assert ds.attrs["source"] == path.name
    assert ds["time"].dtype == np.dtype("datetime64[ns]")
    assert ds["time"].values[0] == START  # 1472644520 s since 1970 = 2016-08-31T11:55:20
    # 1/3 s after it; float64 seconds since 1970 resolve about 0.2 us
    third = ds["time"].values[8] - (START + np.timedelta64(333_333_333, "ns"))
    assert abs(third) < np.timedelta64(1, "us")
    assert ds["surface_pressure"].values[0] == 85000.0  # 850 hPa, exactly
    assert ds["surface_pressure_apriori"].values[0] == 85100.0
    assert ds["surface_pressure"].attrs["standard_name"] == "surface_air_pressure"
    assert ds["sounding_id"].dtype == np.int64
    assert ds["sounding_id"].values[0] == 2016083111552001
    assert ds["footprint"].values[:8].tolist() == list(range(1, 9))
    assert 400 < float(ds["xco2"].mean()) < 407
    assert ds["xco2_quality_flag"].values[4] == 1
    assert set(ds.coords) == {"time", "latitude", "longitude"}


def test_lite_xco2_in_mol_per_mol_is_converted_to_ppm(tmp_path):
    ppm = hio.read(write_lite_fixture(tmp_path / "a.nc4"))
    mol = hio.read(write_lite_fixture(tmp_path / "b.nc4", xco2_units="mol mol-1"))
    assert mol["xco2"].attrs["units"] == "ppm"
    np.testing.assert_allclose(mol["xco2"].values, ppm["xco2"].values, rtol=1e-6)


def test_lite_without_optional_groups(tmp_path):
    path = write_lite_fixture(tmp_path / "lite.nc4", omit=("Retrieval/psurf", "Retrieval/tcwv",
                                                          "xco2_uncertainty"))
    ds = hio.read(path)
    assert "surface_pressure" not in ds and "tcwv" not in ds and "xco2_uncertainty" not in ds
    assert "surface_pressure_apriori" in ds


def test_lite_time_from_sounding_id_when_time_is_missing(tmp_path):
    ds = hio.read(write_lite_fixture(tmp_path / "lite.nc4", omit=("time",)))
    assert ds["time"].values[0] == START
    assert ds["time"].values[8] == START + np.timedelta64(300, "ms")  # tenths only
    assert "sounding_id" in ds.attrs["comment"]


@pytest.mark.parametrize("omit", ["xco2", "latitude", "longitude"])
def test_lite_missing_required_variable(tmp_path, omit):
    path = write_lite_fixture(tmp_path / "oco2_LtCO2_160831_B9003r.nc4", omit=(omit,))
    with pytest.raises(SchemaError, match=rf"oco2_LtCO2_160831_B9003r\.nc4.*'{omit}'"):
        hio.read(path)


def test_lite_xco2_in_kelvin_is_rejected(tmp_path):
    path = write_lite_fixture(tmp_path / "kelvin.nc4", xco2_units="K")
    with pytest.raises(SchemaError) as info:
        hio.read(path)
    message = str(info.value)
    assert "kelvin.nc4" in message and "'xco2'" in message and "'K'" in message
    assert "'ppm'" in message and "'mol mol-1'" in message


def test_lite_all_nan_xco2_is_rejected(tmp_path):
    path = write_lite_fixture(tmp_path / "nan.nc4", all_nan=True)
    with pytest.raises(SchemaError, match=r"nan\.nc4.*'xco2'.*no valid value"):
        hio.read(path)


def test_write_oco2_lite_round_trip(tmp_path):
    first = hio.read(write_lite_fixture(tmp_path / "in.nc4"))
    path = write_oco2_lite(first, tmp_path / "oco2_LtCO2_160831_copy.nc4")
    assert hio.detect_format(path) == "oco2-lite"
    back = hio.read(path)
    assert list(back.data_vars) == list(first.data_vars)
    for name in first.variables:
        if first[name].dtype.kind == "f":
            np.testing.assert_allclose(back[name].values, first[name].values, rtol=1e-6)
        elif first[name].dtype.kind == "M":
            assert np.abs(back[name].values - first[name].values).max() < np.timedelta64(1, "us")
        else:
            np.testing.assert_array_equal(back[name].values, first[name].values)


def test_write_oco2_lite_makes_missing_sounding_ids(tmp_path):
    ds = hio.read(write_oco2peak_segment_csv(tmp_path / "seg_20160831_.csv"))
    back = hio.read(write_oco2_lite(ds, tmp_path / "lite.nc4"))
    assert (back["sounding_id"].values > 0).all()
    time, footprint = decode_sounding_id(back["sounding_id"].values)
    assert np.abs(time - ds["time"].values).max() < np.timedelta64(100, "ms")
    assert ((footprint >= 1) & (footprint <= 8)).all()
    assert "distance" not in back  # no Lite counterpart


# --- sounding ids ----------------------------------------------------------------------------


def test_decode_sounding_id():
    time, footprint = decode_sounding_id(
        np.array([2016083111560007, 2016083111560373, 2016083111555436, 0, 2016133111560007]))
    expected = np.array(["2016-08-31T11:56:00", "2016-08-31T11:56:03.7",
                         "2016-08-31T11:55:54.3", "NaT", "NaT"], dtype="datetime64[ns]")
    np.testing.assert_array_equal(time, expected)
    assert footprint.tolist() == [7, 3, 6, 0, 0]
    assert encode_sounding_id(time[:3], footprint[:3]).tolist() == [
        2016083111560007, 2016083111560373, 2016083111555436]


# --- oco2peak CSV ----------------------------------------------------------------------------


def test_csv_semicolon_layout(tmp_path):
    path = write_oco2peak_semicolon_csv(tmp_path / "oco2_1608-sample.csv", n=24)
    assert hio.detect_format(path) == "oco2peak-csv"
    ds = hio.read(path)
    _check_canonical(ds, "oco2-soundings")
    assert ds.sizes["sounding"] == 24
    assert ds["surface_pressure"].values[0] == 85000.0
    assert ds["surface_pressure_apriori"].values[0] == 85100.0
    assert ds["xco2_uncertainty"].values[0] == 0.65
    assert ds["land_fraction"].attrs["units"] == "%"
    assert ds["land_water_indicator"].dtype.kind == "i"
    assert ds["time"].values[0] == START
    assert ds["time"].values[8] == START + np.timedelta64(300, "ms")  # id 2016083111552031
    assert not ds["time_is_estimated"].values.any()
    assert "distance" not in ds


def test_csv_times_are_interpolated_in_distance(tmp_path):
    ds = hio.read(write_oco2peak_segment_csv(tmp_path / "seg_20160831_x.csv", n=30, every=10))
    estimated = ds["time_is_estimated"].values
    assert estimated.sum() == 27 and not estimated[[5, 15, 25]].any()
    # rows 2 km and 0.3 s apart: interpolation and extrapolation recover every time (< 1 ms)
    expected = np.datetime64("2016-08-31T11:55:30", "ns") + np.arange(30) * np.timedelta64(
        300, "ms")
    assert np.abs(ds["time"].values - expected).max() < np.timedelta64(1, "ms")
    assert ds["distance"].attrs["units"] == "km"
    assert ds["aux_is_interpolated"].dtype == bool
    assert ds["aux_is_interpolated"].values.sum() == 27
    assert "distance" in ds.attrs["time_estimation"]


def test_csv_time_from_file_name_when_no_id(tmp_path):
    path = write_oco2peak_segment_csv(tmp_path / "oco2_orbit1_20160831_seg.csv", every=None)
    ds = hio.read(path)
    assert (ds["time"].values == np.datetime64("2016-08-31T00:00", "ns")).all()
    assert ds["time_is_estimated"].values.all()
    nameless = write_oco2peak_segment_csv(tmp_path / "segment.csv", every=None)
    with pytest.raises(SchemaError, match=r"segment\.csv.*'sounding_id'"):
        hio.read(nameless)


def test_csv_missing_xco2_column(tmp_path):
    path = tmp_path / "no_xco2.csv"
    path.write_text("sounding_id;latitude;longitude;orbit\n2016083111560007;-26.3;28.9;11522\n")
    with pytest.raises(SchemaError) as info:
        hio.read(path, format="oco2peak-csv")
    assert "no_xco2.csv" in str(info.value) and "'xco2'" in str(info.value)
    with pytest.raises(IngestError, match="no_xco2.csv.*not recognised"):
        hio.read(path)  # without xco2 in the header, detection does not take it for a CSV


def test_csv_xco2_in_mol_per_mol_is_rejected(tmp_path):
    # a date in the name gives the rows a time, so the file reaches the values' checks
    path = tmp_path / "molmol_20160831_.csv"
    path.write_text("latitude,longitude,xco2\n-26.3,28.9,0.000404\n")
    with pytest.raises(UnitsError, match=r"molmol_20160831_\.csv.*'xco2'.*ppm.*units error"):
        hio.read(path)


def test_csv_non_numeric_value(tmp_path):
    path = tmp_path / "text.csv"
    path.write_text("latitude,longitude,xco2\n-26.3,28.9,n/a?\n")
    with pytest.raises(SchemaError, match=r"text\.csv.*'xco2'.*'n/a\?'"):
        hio.read(path)


@pytest.fixture(scope="module")
def oco2peak_sample(shared_data):
    path = shared_data / "oco2peak" / SAMPLE
    if not path.is_file():
        reason = f"the oco2peak sample {path} is absent"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and {reason}")
        pytest.skip(reason)
    return hio.read(path)


def test_real_oco2peak_sample(oco2peak_sample):
    ds = oco2peak_sample
    _check_canonical(ds, "oco2-soundings")
    assert ds.attrs["hubkit_format"] == "oco2peak-csv"
    assert ds.sizes["sounding"] == 1598
    assert float(ds["latitude"].min()) == pytest.approx(-28.46, abs=0.005)
    assert float(ds["latitude"].max()) == pytest.approx(-24.07, abs=0.005)
    assert (ds["orbit"].values == 11522).all()
    assert int((ds["sounding_id"] > 0).sum()) == 8


def test_real_oco2peak_sample_demo_peak(oco2peak_sample):
    ds = oco2peak_sample
    peak = ds.isel(sounding=int(np.flatnonzero(ds["sounding_id"].values == 2016083111560007)[0]))
    assert float(peak["latitude"]) == pytest.approx(-26.2786, abs=1e-4)
    assert float(peak["longitude"]) == pytest.approx(28.9304, abs=1e-4)
    assert peak["time"].values == np.datetime64("2016-08-31T11:56:00", "ns")
    assert float(peak["xco2"]) == 408.74408
    assert int(peak["footprint"]) == 7
    assert not bool(peak["time_is_estimated"]) and not bool(peak["aux_is_interpolated"])
    assert float(peak["surface_pressure"]) == pytest.approx(84829.9805, abs=1e-3)


def test_real_oco2peak_sample_estimated_times(oco2peak_sample):
    ds = oco2peak_sample
    order = np.argsort(ds["distance"].values, kind="stable")
    assert (np.diff(ds["time"].values[order]) >= np.timedelta64(0, "ns")).all()
    estimated = ds["time"].values[ds["time_is_estimated"].values]
    assert estimated.size == 1590
    assert (estimated >= np.datetime64("2016-08-31T11:54:30")).all()
    assert (estimated <= np.datetime64("2016-08-31T11:57:30")).all()
    # the ground speed implied by the estimated times is OCO-2's, about 6.8 km/s
    seconds = (ds["time"].values[order][[0, -1]] - ds["time"].values[order][0]) / np.timedelta64(
        1, "s")
    speed = np.ptp(ds["distance"].values) / seconds[-1]
    assert 6.0 < speed < 7.5


# --- ObsPack ---------------------------------------------------------------------------------


def test_obspack_co2(tmp_path):
    path = write_obspack_fixture(tmp_path / "co2_mlo_surface-insitu_1_ccgg_HourlyData.nc")
    assert hio.detect_format(path) == "obspack"
    ds = hio.read(path)
    _check_canonical(ds, "surface-obs")
    assert ds.attrs["hubkit_species"] == "co2"
    assert ds.attrs["site_code"] == "MLO" and ds.attrs["site_name"] == "Mauna Loa, Hawaii"
    assert ds.attrs["instrument"] == "LGR-10"
    assert ds["value"].attrs["units"] == "ppm"
    assert ds["value"].attrs["standard_name"] == "mole_fraction_of_carbon_dioxide_in_air"
    assert ds["value"].values[0] == pytest.approx(404.0, rel=1e-6)
    assert np.isnan(ds["value_std_dev"].values[-1])  # fill value
    assert ds["value_std_dev"].values[0] == pytest.approx(0.202, rel=1e-6)
    assert ds["time"].values[0] == np.datetime64("2016-08-31T00:00:00", "ns")
    assert ds["time"].values[25] == np.datetime64("2016-09-01T01:00:00", "ns")
    assert ds["qc_flag"].values[:2].tolist() == ["..P", "..."]
    assert ds["obs_flag"].values[:2].tolist() == [0, 1]
    assert ds["altitude"].attrs["units"] == "m"


def test_obspack_ch4_is_in_ppb(tmp_path):
    ds = hio.read(write_obspack_fixture(tmp_path / "ch4_mlo.nc", species="ch4"))
    assert ds.attrs["hubkit_species"] == "ch4"
    assert ds["value"].attrs["units"] == "ppb"
    assert ds["value"].values[0] == pytest.approx(1850.0, rel=1e-6)
    # the schema takes the species' unit: the same values labelled ppm would be refused
    bad = ds.copy()
    bad["value"].attrs["units"] = "ppm"
    with pytest.raises(SchemaError, match="'value' has units 'ppm', expected 'ppb'"):
        schemas.validate(bad, source="ch4_mlo.nc")


def test_obspack_missing_value(tmp_path):
    path = write_obspack_fixture(tmp_path / "co2_brw.nc", omit=("value",))
    with pytest.raises(SchemaError, match=r"co2_brw\.nc.*'value'"):
        hio.read(path, format="obspack")


# --- L2 ozone --------------------------------------------------------------------------------


def test_l2_ozone_units_are_converted(tmp_path):
    path = write_l2_ozone_fixture(tmp_path / "o3_l2.nc", n=6, levels=12)
    assert hio.detect_format(path) == "l2-ozone"
    ds = hio.read(path)
    _check_canonical(ds, "l2-ozone")
    assert dict(ds.sizes) == {"retrieval": 6, "level": 12, "level_in": 12}
    assert ds.attrs["hubkit_species"] == "o3"
    with xr.open_dataset(path, engine="netcdf4") as raw:
        np.testing.assert_allclose(ds["o3_vmr"].values, raw["o3_vmr"].values * 1e-6, rtol=1e-15)
        np.testing.assert_allclose(ds["noise_covariance"].values,
                                   raw["noise_covariance"].values * 1e-12, rtol=1e-15)
        np.testing.assert_array_equal(ds["averaging_kernel"].values,
                                      raw["averaging_kernel"].values)
    assert ds["pressure"].values[0, 0] == 100000.0  # 1000 hPa
    assert ds["surface_pressure"].values[0] == 100000.0
    assert 5e-6 < ds["o3_vmr_apriori"].values.max() < 1e-5  # ~8 ppmv near 10 hPa
    assert ds["instrument"].values.tolist() == ["IASI-A", "GOME-2A", "MLS"] * 2
    assert ds.attrs["instrument"] == "GOME-2A, IASI-A, MLS"
    assert ds["time"].values[1] == np.datetime64("2016-08-31T00:10:00", "ns")


def test_l2_ozone_ppbv_and_pa_give_the_same_dataset(tmp_path):
    a = hio.read(write_l2_ozone_fixture(tmp_path / "a.nc"))
    b = hio.read(write_l2_ozone_fixture(tmp_path / "b.nc", vmr_units="ppbv",
                                        pressure_units="Pa"))
    for name in ("o3_vmr", "noise_covariance", "pressure"):
        np.testing.assert_allclose(b[name].values, a[name].values, rtol=1e-12)


def test_l2_ozone_non_square_kernel(tmp_path):
    path = write_l2_ozone_fixture(tmp_path / "skew.nc", levels=12, level_in=11)
    with pytest.raises(SchemaError, match=r"skew\.nc.*'averaging_kernel'.*square"):
        hio.read(path)


def test_l2_ozone_missing_variable_and_bad_units(tmp_path):
    path = write_l2_ozone_fixture(tmp_path / "no_vmr.nc", omit=("o3_vmr", "averaging_kernel"))
    with pytest.raises(SchemaError, match=r"no_vmr\.nc.*'o3_vmr'"):
        hio.read(path)
    path = write_l2_ozone_fixture(tmp_path / "kelvin.nc", vmr_units="ppmv")
    with xr.open_dataset(path) as raw:
        raw = raw.load()
    raw["o3_vmr"].attrs["units"] = "K"
    raw.to_netcdf(tmp_path / "kelvin2.nc")
    with pytest.raises(SchemaError, match=r"kelvin2\.nc.*'o3_vmr'.*'K'"):
        hio.read(tmp_path / "kelvin2.nc")


def test_l2_ozone_shared_pressure_grid_is_broadcast(tmp_path):
    path = write_l2_ozone_fixture(tmp_path / "grid.nc")
    with xr.open_dataset(path) as raw:
        raw = raw.load()
    raw["pressure"] = raw["pressure"].isel(retrieval=0, drop=True)
    raw.to_netcdf(tmp_path / "shared.nc")
    ds = hio.read(tmp_path / "shared.nc")
    assert ds["pressure"].dims == ("retrieval", "level")
    assert (ds["pressure"].values[:, 0] == 100000.0).all()


def test_write_l2_ozone_round_trip(tmp_path):
    first = hio.read(write_l2_ozone_fixture(tmp_path / "in.nc"))
    path = write_l2_ozone(first, tmp_path / "out.nc")
    assert hio.detect_format(path) == "l2-ozone"
    back = hio.read(path)
    xr.testing.assert_equal(back, first)
    assert back["instrument"].values.tolist() == first["instrument"].values.tolist()


# --- CF --------------------------------------------------------------------------------------


def test_cf_netcdf_is_loaded_and_closed(tmp_path):
    path = write_cf_grid_fixture(tmp_path / "grid.nc", species="CO2")
    assert hio.detect_format(path) == "cf"
    ds = hio.read(path)
    assert ds.attrs["hubkit_product_type"] == "cf-dataset"
    assert ds.attrs["hubkit_species"] == "co2"
    assert ds.attrs["source"] == "grid.nc"
    os.remove(path)  # loaded eagerly: the data outlive the file
    assert float(ds["co2"].mean()) == 404.0
    assert ds["time"].values[1] == np.datetime64("2016-08-31T06:00", "ns")


def test_cf_zarr_directory(tmp_path):
    ds = xr.Dataset({"t": (("x",), np.arange(3.0), {"units": "K"})}, attrs={"species": "o3"})
    ds.to_zarr(tmp_path / "field.zarr", consolidated=False)
    assert hio.detect_format(tmp_path / "field.zarr") == "cf"
    back = hio.read(tmp_path / "field.zarr")
    assert back["t"].values.tolist() == [0.0, 1.0, 2.0]
    assert back.attrs["hubkit_species"] == "o3"


def test_cf_ignores_product_attrs_of_the_file(tmp_path):
    path = write_l2_ozone_fixture(tmp_path / "l2.nc")
    ds = hio.read(path, format="cf")
    assert ds.attrs["hubkit_product_type"] == "cf-dataset"
    assert ds.attrs["hubkit_format"] == "cf"


# --- detection and bad input -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("writer", "name", "expected"),
    [
        (write_lite_fixture, "oco2_LtCO2_160831_B9003r.nc4", "oco2-lite"),
        (write_lite_fixture, "renamed.h5", "oco2-lite"),
        (write_oco2peak_semicolon_csv, "extract.csv", "oco2peak-csv"),
        (write_oco2peak_segment_csv, "segment_20160831_.csv", "oco2peak-csv"),
        (write_obspack_fixture, "co2_mlo.nc", "obspack"),
        (write_l2_ozone_fixture, "o3.nc", "l2-ozone"),
        (write_cf_grid_fixture, "grid.nc", "cf"),
    ],
)
def test_detect_format(tmp_path, writer, name, expected):
    path = writer(tmp_path / name)
    assert hio.detect_format(path) == expected
    assert hio.read(path).attrs["hubkit_format"] == expected


@pytest.fixture
def truncated(tmp_path):
    whole = write_lite_fixture(tmp_path / "whole.nc4").read_bytes()
    path = tmp_path / "truncated.nc4"
    path.write_bytes(whole[: len(whole) // 2])
    return path


def test_sniffers_never_raise_on_a_truncated_file(truncated):
    head = truncated.read_bytes()[:4096]
    for module in READERS:
        assert module.sniff(truncated, head) in (True, False)
    assert not oco2_lite.sniff(truncated, head)  # cannot be opened: not Lite by content


def test_truncated_netcdf(truncated):
    with pytest.raises(IngestError, match=r"truncated\.nc4"):
        hio.read(truncated)
    named = truncated.rename(truncated.with_name("oco2_LtCO2_160831_B9003r_cut.nc4"))
    assert hio.detect_format(named) == "oco2-lite"  # by name
    with pytest.raises(IngestError, match="oco2_LtCO2_160831_B9003r_cut.nc4"):
        hio.read(named)


@pytest.mark.parametrize("module", READERS, ids=lambda m: m.FORMAT)
def test_every_reader_turns_a_truncated_file_into_a_hubkit_error(truncated, module):
    with pytest.raises(HubkitError, match=r"truncated\.nc4"):
        hio.read(truncated, format=module.FORMAT)


def test_random_bytes_and_empty_file(tmp_path):
    noise = tmp_path / "noise.bin"
    noise.write_bytes(np.random.default_rng(0).bytes(3000))
    with pytest.raises(IngestError, match=r"noise\.bin.*not recognised"):
        hio.read(noise)
    fake = tmp_path / "fake.nc"
    fake.write_bytes(b"\x89HDF\r\n\x1a\n" + np.random.default_rng(1).bytes(3000))
    with pytest.raises(IngestError, match=r"fake\.nc"):
        hio.read(fake)
    empty = tmp_path / "empty.nc"
    empty.touch()
    with pytest.raises(IngestError, match=r"empty\.nc.*empty"):
        hio.read(empty)


def test_every_reader_declares_the_contract():
    for module in READERS:
        assert module.READER_VERSION.isdigit()  # bumped when a reader's output changes
        assert module.PRODUCT_TYPE in schemas.PRODUCT_TYPES
        assert isinstance(module.VARIABLE_MAP, dict)
        assert callable(module.sniff) and callable(module.read)


def test_to_str_of_character_arrays_is_chartostring_stripped():
    """to_str reads ASCII character arrays row by row without netCDF4.chartostring: the same
    strings (trailing NULs dropped, then whitespace stripped, inner NULs kept) and, for bytes
    that are not ASCII, the same error."""
    import netCDF4

    from hubkit.io._common import to_str

    def reference(chars):
        try:
            return [str(v).rstrip("\x00").strip()
                    for v in netCDF4.chartostring(chars).ravel().tolist()]
        except UnicodeDecodeError as exc:
            return str(exc)

    rng = np.random.default_rng(7)
    alphabet = np.frombuffer(b"\x00 \t\n\x0b\x0c\r\x1c\x1fab.\xc3\xa9", dtype="S1")
    for trial in range(500):
        shape = tuple(int(n) for n in rng.integers(1, 5, size=2 + trial % 2))
        chars = rng.choice(alphabet if trial % 2 else alphabet[:11], size=shape)
        try:
            got = to_str(chars)
        except UnicodeDecodeError as exc:
            assert str(exc) == reference(chars)
            continue
        assert got.dtype == object and got.shape == shape[:-1]
        assert [type(v) for v in got.ravel()] == [str] * got.size
        assert got.ravel().tolist() == reference(chars)


@pytest.mark.parametrize("name", ["ch4_bao_tower-insitu_1_ccgg_all.nc",
                                  "agage_thd_cfc-11_20240703-test.nc",
                                  "gosat-fts_gosat_20160101_ch4-column.nc"])
def test_read_opens_a_netcdf_file_once_and_closes_it(monkeypatch, shared_data, name):
    """io.read looks at a netCDF file's metadata (format, size) and a netCDF4 reader reads it
    through that same handle; every handle opened is closed when read returns."""
    import netCDF4

    path = shared_data / "real" / name
    opened = []
    real = netCDF4.Dataset

    def counting(*args, **kwargs):
        opened.append(real(*args, **kwargs))
        return opened[-1]

    monkeypatch.setattr(netCDF4, "Dataset", counting)
    hio.read(path)
    assert opened and not any(nc.isopen() for nc in opened)
    if name.startswith("ch4_bao"):
        assert len(opened) == 1
