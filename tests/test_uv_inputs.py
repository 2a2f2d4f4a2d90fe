"""Surface UV from real inputs: the surface-albedo, aerosol and cloud product types (reader,
schema, upload), their regridding onto the DAS grid, and the UV index with them and at local
solar noon, against published numbers.

Reference values:
- WHO et al. (2002), "Global Solar UV Index: a practical guide": clear-sky midsummer noon UV
  index at northern mid-latitudes (~50°N) 7-9 (central Europe's summer maxima are 7-8).
- McKenzie, Bjorn, Bodeker et al. (2003, Photochem. Photobiol. Sci. 2, 5-15) and McKenzie,
  Matthews & Johnston (1991, GRL 18, 2269): radiation amplification factor of the erythemal
  UV for ozone, RAF = -d ln UVI / d ln O3 = 1.1-1.3 at small solar zenith angles.
- Fresh snow (UV albedo ~0.8 against 0.05) raises the erythemal irradiance by 30-60 % for
  extensive cover (Blumthaler & Ambach 1988; Chadyšienė & Girgždys 2008; the issue's range).
- A cloud of optical thickness 10 transmits 40-75 % of the clear-sky erythemal irradiance
  (Calbó, Pagès & González 2005, Rev. Geophys. 43, RG2002; two-stream
  1/(1 + 0.75 (1 - g) τ) = 0.47 for g = 0.85 before multiple surface-cloud reflections).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from hubkit import ingest, schemas
from hubkit import io as hio
from hubkit.errors import IngestError, SchemaError, UVInputError
from hubkit.io import uv_inputs
from hubkit.ozone import DU_PER_VMR_PA
from hubkit.simulate import uv_inputs as simulate_uv_inputs
from hubkit.uv.inputs import GriddedInput, grid_input, regrid
from hubkit.uv.surface import surface_uv_from_inputs


def column_das(ozone_du, lat, lon, times, altitude=0.0) -> xr.Dataset:
    """A minimal DAS product whose total ozone column is ``ozone_du`` (time, lat, lon) [DU]:
    two layers between 0, ps/2 and ps, uniform mixing ratio."""
    times = np.asarray(times, dtype="datetime64[ns]")
    lat, lon = np.asarray(lat, float), np.asarray(lon, float)
    shape = (times.size, lat.size, lon.size)
    ozone = np.broadcast_to(np.asarray(ozone_du, float), shape)
    ps = np.full(shape, 101325.0)
    vmr = ozone / (DU_PER_VMR_PA * ps)
    dims = ("time", "level", "latitude", "longitude")
    return xr.Dataset(
        {"o3_vmr": (dims, np.stack([vmr, vmr], axis=1), {"units": "mol mol-1"}),
         "temperature": (dims, np.full((times.size, 2, lat.size, lon.size), 250.0),
                         {"units": "K"}),
         "surface_pressure": (("time", "latitude", "longitude"), ps, {"units": "Pa"}),
         "surface_altitude": (("latitude", "longitude"), np.full(shape[1:], altitude),
                              {"units": "m"}),
         "hybrid_a": ("interface", np.zeros(3), {"units": "Pa"}),
         "hybrid_b": ("interface", np.array([0.0, 0.5, 1.0]), {"units": "1"})},
        coords={"time": times, "latitude": ("latitude", lat, {"units": "degrees_north"}),
                "longitude": ("longitude", lon, {"units": "degrees_east"})},
        attrs={"hubkit_product_type": "das"})


def constant_product(kind: str, value: float, lat=None, lon=None, **extra) -> xr.Dataset:
    """A global static product of one constant value, on a 10° grid (another grid than the
    DAS's)."""
    lat = np.arange(-85.0, 90.0, 10.0) if lat is None else np.asarray(lat, float)
    lon = np.arange(0.0, 360.0, 10.0) if lon is None else np.asarray(lon, float)
    variable = {"surface-albedo": "surface_albedo", "aerosol": "aod",
                "cloud": "cloud_optical_thickness"}[kind]
    data = {variable: (("latitude", "longitude"), np.full((lat.size, lon.size), value),
                       {"units": "1"})}
    for name, v in extra.items():
        data[name] = (("latitude", "longitude"), np.full((lat.size, lon.size), v),
                      {"units": "1"})
    return xr.Dataset(data, coords={"latitude": lat, "longitude": lon},
                      attrs={"hubkit_product_type": kind, "source": f"{kind}.nc",
                             "hubkit_product_id": f"{kind}-test-id"})


SOLSTICE = np.array(["2024-06-21T00", "2024-06-21T12"], dtype="datetime64[ns]")


def noon_uvi(das, **inputs) -> xr.DataArray:
    return surface_uv_from_inputs(das, **inputs)["uvi_noon"].isel(day=0)


# -- physics against published numbers ----------------------------------------------------------

def test_midsummer_noon_uvi_at_50n_matches_who_clear_sky_range():
    """WHO (2002): clear-sky midsummer noon UV index at ~50°N, ~330 DU: 7-9 (sea level,
    UV albedo 0.05, AOD 0.1)."""
    das = column_das(330.0, [50.0], [0.0, 10.0], SOLSTICE)
    uvi = noon_uvi(das)
    assert np.all((uvi > 7.0) & (uvi < 9.0)), uvi.values
    sza = surface_uv_from_inputs(das)["sza_noon"]
    np.testing.assert_allclose(sza, 50.0 - 23.44, atol=0.1)  # the noon SZA of the solstice


def test_radiation_amplification_factor_for_ozone():
    """RAF = ln(UVI(300) / UVI(350)) / ln(350 / 300) within McKenzie et al.'s 1.1-1.3."""
    low = noon_uvi(column_das(300.0, [30.0, 50.0], [0.0], SOLSTICE))
    high = noon_uvi(column_das(350.0, [30.0, 50.0], [0.0], SOLSTICE))
    raf = np.log(low / high) / np.log(350.0 / 300.0)
    assert np.all((raf > 1.1) & (raf < 1.3)), raf.values


def test_fresh_snow_raises_the_uv_index_by_30_to_60_percent():
    das = column_das(330.0, [47.5], [10.0], SOLSTICE)
    bare = noon_uvi(das)
    snow = noon_uvi(das, albedo=constant_product("surface-albedo", 0.8))
    ratio = (snow / bare).item()
    assert 1.3 < ratio < 1.6, ratio


def test_cloud_of_optical_thickness_10_cuts_the_uv_index_strongly():
    das = column_das(330.0, [47.5], [10.0], SOLSTICE)
    clear = noon_uvi(das).item()
    by_cot = {cot: noon_uvi(das, cloud=constant_product("cloud", cot)).item()
              for cot in (3.0, 10.0, 30.0)}
    assert 0.4 < by_cot[10.0] / clear < 0.75, by_cot[10.0] / clear
    assert clear > by_cot[3.0] > by_cot[10.0] > by_cot[30.0]


def test_aerosol_lowers_the_uv_index_and_absorbing_aerosol_more():
    das = column_das(330.0, [47.5], [10.0], SOLSTICE)
    clean = noon_uvi(das, aerosol=constant_product("aerosol", 0.05, ssa=0.95)).item()
    hazy = noon_uvi(das, aerosol=constant_product("aerosol", 0.5, ssa=0.95)).item()
    sooty = noon_uvi(das, aerosol=constant_product("aerosol", 0.5, ssa=0.8)).item()
    assert clean > hazy > sooty
    assert 0.05 < 1 - hazy / clean < 0.3  # AOD 0.5 of scattering aerosol: -5 to -30 %


# -- local solar noon ------------------------------------------------------------------------------

def test_noon_ozone_is_interpolated_in_time_to_each_longitudes_noon():
    """00 UTC: 300 DU, 12 UTC: 360 DU. Local noon at 0°E is ~12:02 UTC (360 DU, the last time),
    at 90°E ~06:02 (330 DU, halfway), at 180°E ~00:02 (300 DU); at -90°E ~18:02, after the last
    time: the last one's 360 DU, 6 h away."""
    ozone = np.array([300.0, 360.0])[:, None, None]
    das = column_das(ozone, [20.0], [-90.0, 0.0, 90.0, 179.0], SOLSTICE)
    out = surface_uv_from_inputs(das)
    got = out["total_ozone_noon"].isel(day=0, latitude=0).values
    minutes = (out["noon_time"].isel(day=0).values - SOLSTICE[0]) / np.timedelta64(1, "m")
    expected = np.interp(minutes, [0.0, 720.0], [300.0, 360.0])
    np.testing.assert_allclose(got, expected, rtol=1e-9)
    np.testing.assert_allclose(got, [360.0, 360.0, 330.0, 300.0], atol=1.0)
    np.testing.assert_allclose(out["noon_das_offset"].isel(day=0), [6.0, 0.0, 6.0, 0.0],
                               atol=0.1)
    # with constant ozone the noon is the day's UV maximum: hourly product times never beat it
    hourly = np.arange(24).astype("timedelta64[h]") + np.datetime64("2024-06-21T00", "ns")
    out = surface_uv_from_inputs(column_das(300.0, [-30.0, 20.0, 60.0], [-90.0, 0.0, 90.0],
                                            hourly))
    assert (out["uvi"].max("time") <= out["uvi_noon"].isel(day=0) * 1.0001).all()
    assert (out["uvi"].max("time") >= out["uvi_noon"].isel(day=0) * 0.99).all()


def test_noon_takes_the_input_time_nearest_to_each_longitudes_noon():
    """A cloud product that is clear at 00, 06 and 18 UTC and overcast (COT 20) at 12 UTC
    clouds the noon at 0°E only."""
    times = np.array(["2024-06-21T00", "2024-06-21T06", "2024-06-21T12", "2024-06-21T18"],
                     dtype="datetime64[ns]")
    lat, lon = np.arange(-85.0, 90.0, 10.0), np.arange(-180.0, 180.0, 10.0)
    cot = np.zeros((4, lat.size, lon.size))
    cot[2] = 20.0
    cloud = xr.Dataset({"cloud_optical_thickness": (("time", "latitude", "longitude"), cot)},
                       coords={"time": times, "latitude": lat, "longitude": lon},
                       attrs={"hubkit_product_type": "cloud"})
    das = column_das(300.0, [40.0], [0.0, 90.0, 45.0], SOLSTICE)
    clouded = noon_uvi(das, cloud=cloud).isel(latitude=0)
    clear = noon_uvi(das).isel(latitude=0)
    assert float(clouded[0] / clear[0]) < 0.6  # 0°E: noon 12 UTC, overcast
    assert float(clouded[1] / clear[1]) == pytest.approx(1.0, abs=1e-9)  # 90°E: 06 UTC, clear
    # at 45°E the noon (~09:02 UTC) is 3 h from the nearest input time: that is recorded
    record = json.loads(surface_uv_from_inputs(das, cloud=cloud).attrs["hubkit_uv_inputs"])
    assert record["cot"].endswith("nearest time (up to 3.0 h from the local noons)")


# -- regridding and records ------------------------------------------------------------------------

def test_regrid_is_exact_for_fields_linear_in_latitude_and_longitude():
    lat, lon = np.arange(-60.0, 61.0, 10.0), np.arange(-40.0, 41.0, 10.0)
    field = xr.DataArray(0.3 + 0.002 * lat[:, None] + 0.001 * lon[None, :],
                         dims=("latitude", "longitude"), coords={"latitude": lat,
                                                                 "longitude": lon})
    tlat, tlon = np.arange(-57.5, 58.0, 2.5), np.arange(-37.5, 38.0, 2.5)
    out = regrid(field, tlat, tlon)
    np.testing.assert_allclose(out, 0.3 + 0.002 * tlat[:, None] + 0.001 * tlon[None, :],
                               rtol=1e-12)


def test_regrid_wraps_longitude_across_the_dateline_and_conventions():
    """A global input on 0-360° E, a target on -180..180: cos(lon) at 10° spacing is
    reproduced within the bilinear error h²/8 max|f''| = 0.0038 everywhere, also between the
    last and the first input column (355°E = -5°E, between 350 and 0)."""
    lon = np.arange(0.0, 360.0, 10.0)
    lat = np.array([-10.0, 10.0])
    field = xr.DataArray(np.cos(np.radians(lon))[None, :].repeat(2, 0),
                         dims=("latitude", "longitude"), coords={"latitude": lat,
                                                                 "longitude": lon})
    tlon = np.arange(-179.0, 180.0, 2.0)
    out = regrid(field, [0.0], tlon)
    err = (np.radians(10.0) ** 2) / 8
    np.testing.assert_allclose(out.isel(latitude=0), np.cos(np.radians(tlon)), atol=err)
    assert np.all(np.isfinite(out))


def test_partial_cover_gets_the_default_elsewhere_and_says_so():
    """A European albedo map: cells outside (beyond one input cell) take the default."""
    lat, lon = np.arange(35.0, 71.0, 1.0), np.arange(-10.0, 31.0, 1.0)
    europe = constant_product("surface-albedo", 0.3, lat=lat, lon=lon)
    das_lat, das_lon = np.arange(-85.0, 90.0, 10.0), np.arange(-175.0, 180.0, 10.0)
    g = grid_input("albedo", europe, das_lat, das_lon, default=0.05)
    values, offset = g.at(SOLSTICE)
    assert offset == 0.0
    inside = (das_lat[:, None] >= 35) & (das_lat[:, None] <= 70) & \
        (das_lon[None, :] >= -10) & (das_lon[None, :] <= 30)
    np.testing.assert_allclose(values[0][inside], 0.3)
    np.testing.assert_allclose(values[0][~inside], 0.05)
    assert f"default 0.05 in {(~inside).sum()} of {inside.size} cells" in g.record


def test_inputs_and_defaults_are_recorded_with_product_ids():
    das = column_das(330.0, [47.5], [10.0], SOLSTICE)
    out = surface_uv_from_inputs(das, aerosol=constant_product("aerosol", 0.2),
                                 cloud=constant_product("cloud", 5.0))
    recorded = json.loads(out.attrs["hubkit_uv_inputs"])
    assert recorded["albedo"].startswith("default 0.05 (no surface-albedo product)")
    assert "aerosol-test-id" in recorded["aod"] and "'aod'" in recorded["aod"]
    assert recorded["ssa"].startswith("default 0.9 (the aerosol product has no 'ssa')")
    assert "cloud-test-id" in recorded["cot"]
    assert json.loads(out.attrs["hubkit_uv_input_products"]) == ["aerosol-test-id",
                                                                  "cloud-test-id"]
    schemas.validate(out, source="surface_uv_from_inputs", product_type="surface-uv")


def test_wrong_inputs_are_refused_with_their_names():
    das = column_das(330.0, [47.5], [10.0], SOLSTICE)
    with pytest.raises(UVInputError, match="albedo is a 'cloud' product"):
        surface_uv_from_inputs(das, albedo=constant_product("cloud", 5.0))
    with pytest.raises(UVInputError, match="cloud must be an xarray.Dataset"):
        surface_uv_from_inputs(das, cloud=5.0)
    bad = constant_product("cloud", 5.0)
    bad["cloud_optical_thickness"][0, 0] = -1.0  # far from the DAS cell, checked all the same
    with pytest.raises(UVInputError, match=r"cloud \(cloud.nc\) variable "
                                           r"'cloud_optical_thickness'.*-1.*>= 0"):
        surface_uv_from_inputs(das, cloud=bad)


def test_gridded_input_at_static_and_constant():
    g = GriddedInput("cot", 0.0, 0.0, "default")
    assert g.at(SOLSTICE) == (0.0, 0.0)


# -- the product types: reader, schema, upload -----------------------------------------------------

def _write_cf(path, variables: dict, *, names=("lat", "lon"), times=None):
    """A CF netCDF file with variables under non-canonical names, marked by standard names."""
    lat, lon = np.arange(-80.0, 81.0, 20.0), np.arange(0.0, 360.0, 30.0)
    dims = names if times is None else ("time", *names)
    shape = (lat.size, lon.size) if times is None else (len(times), lat.size, lon.size)
    coords = {names[0]: (names[0], lat, {"units": "degrees_north", "standard_name": "latitude"}),
              names[1]: (names[1], lon, {"units": "degrees_east", "standard_name": "longitude"})}
    if times is not None:
        coords["time"] = np.asarray(times, dtype="datetime64[ns]")
    data = {}
    for name, (standard_name, value, units) in variables.items():
        attrs = {"units": units} if units is not None else {}
        if standard_name:
            attrs["standard_name"] = standard_name
        data[name] = (dims, np.full(shape, value), attrs)
    xr.Dataset(data, coords=coords).to_netcdf(path, engine="netcdf4")
    return path


AOD_STD = uv_inputs.STANDARD_NAMES["aod"]
SSA_STD = uv_inputs.STANDARD_NAMES["ssa"]
COT_STD = uv_inputs.STANDARD_NAMES["cloud_optical_thickness"]


@pytest.mark.parametrize("variables, kind, canonical", [
    ({"alb_uv": ("surface_albedo", 0.06, "1")}, "surface-albedo", {"surface_albedo": 0.06}),
    ({"od550aer": (AOD_STD, 0.2, "1"), "w0": (SSA_STD, 92.0, "%")}, "aerosol",
     {"aod": 0.2, "ssa": 0.92}),
    ({"cod": (COT_STD, 12.0, None)}, "cloud", {"cloud_optical_thickness": 12.0}),
    ({"cloud_optical_thickness": (None, 7.0, "1")}, "cloud", {"cloud_optical_thickness": 7.0}),
], ids=["albedo", "aerosol-percent-ssa", "cloud-no-units", "cloud-canonical-name"])
def test_cf_files_are_recognised_by_standard_or_canonical_names(tmp_path, variables, kind,
                                                                canonical):
    path = _write_cf(tmp_path / "in.nc", variables,
                     times=["2024-06-21T00", "2024-06-21T06"])
    assert hio.detect_format(path) == kind
    ds = hio.read(path)
    assert ds.attrs["hubkit_product_type"] == kind
    assert set(ds.data_vars) == set(canonical)
    for name, value in canonical.items():
        assert ds[name].dims == ("time", "latitude", "longitude")
        np.testing.assert_allclose(ds[name], value)
        assert ds[name].attrs["standard_name"] == uv_inputs.STANDARD_NAMES[name]


def test_static_zarr_map_is_read(tmp_path):
    ds = simulate_uv_inputs.surface_albedo(36, 18)
    ds.to_zarr(tmp_path / "albedo.zarr", consolidated=False)
    assert hio.detect_format(tmp_path / "albedo.zarr") == "surface-albedo"
    read = hio.read(tmp_path / "albedo.zarr")
    assert read["surface_albedo"].dims == ("latitude", "longitude")
    np.testing.assert_array_equal(read["surface_albedo"], ds["surface_albedo"])


@pytest.mark.parametrize("variables, match", [
    ({"alb": ("surface_albedo", 1.2, "1")}, r"bad.nc: variable 'surface_albedo'.*1 value|"
                                            r"bad.nc: variable 'surface_albedo'.*in \[0, 1\]"),
    ({"tau": (AOD_STD, -0.1, "1")}, r"bad.nc: variable 'aod'.*>= 0"),
    ({"cod": (COT_STD, 3.0, "m")}, r"bad.nc: variable 'cloud_optical_thickness' has units 'm'"),
    ({"aod": (None, 0.2, "1"), "ssa": (None, 0.0, "1")}, r"bad.nc: variable 'ssa'.*\(0, 1\]"),
])
def test_out_of_range_values_are_refused_naming_file_and_variable(tmp_path, variables, match):
    path = _write_cf(tmp_path / "bad.nc", variables)
    with pytest.raises(SchemaError, match=match):
        hio.read(path)


def test_a_file_of_several_types_is_not_guessed_but_split_by_format(tmp_path):
    path = _write_cf(tmp_path / "aux.nc", {"aod": (AOD_STD, 0.2, "1"),
                                           "cod": (COT_STD, 4.0, "1")})
    assert hio.detect_format(path) == "cf"  # stored as it is, nothing dropped
    aerosol = hio.read(path, format="aerosol")
    cloud = hio.read(path, format="cloud")
    assert set(aerosol.data_vars) == {"aod"} and set(cloud.data_vars) == {
        "cloud_optical_thickness"}
    assert aerosol.attrs["hubkit_ignored_variables"] == "cod"
    with pytest.raises(SchemaError, match="aux.nc: no variable 'surface_albedo'"):
        hio.read(path, format="surface-albedo")


def test_upload_stores_each_type_in_its_collection_and_feeds_the_uv(tmp_path):
    from hubkit.store import open_store

    store = open_store(str(tmp_path / "store"))
    paths = [uv_inputs.write(simulate_uv_inputs.surface_albedo(36, 18), tmp_path / "a.nc"),
             uv_inputs.write(simulate_uv_inputs.aerosol(24, 12, start="2024-06-21"),
                             tmp_path / "b.nc"),
             uv_inputs.write(simulate_uv_inputs.cloud(48, 24, start="2024-06-21"),
                             tmp_path / "c.nc")]
    items = [ingest.upload(store, p) for p in paths]
    assert [i.collection_id for i in items] == ["surface-albedo", "aerosol", "cloud"]
    albedo, aerosol, cloud = (store.open(i) for i in items)
    das = column_das(330.0, [47.5, 67.5], [10.0, 25.0], SOLSTICE)
    out = surface_uv_from_inputs(das, albedo=albedo, aerosol=aerosol, cloud=cloud)
    assert json.loads(out.attrs["hubkit_uv_input_products"]) == sorted(i.id for i in items)
    assert aerosol.attrs["hubkit_simulated"] == "true"
    # the product with its noon maps is stored and read back as it was
    item = store.put(out, product_type="surface-uv", inputs=[i.id for i in items],
                     step="uv.surface")
    back = store.open(item).load()
    xr.testing.assert_identical(back["uvi_noon"], out["uvi_noon"])
    np.testing.assert_array_equal(back["noon_time"], out["noon_time"])


def test_uv_input_writer_refuses_other_products(tmp_path):
    with pytest.raises(IngestError, match="product type 'das'"):
        uv_inputs.write(column_das(300.0, [0.0], [0.0], SOLSTICE), tmp_path / "x.nc")


# -- the simulators -----------------------------------------------------------------------------

def test_simulated_inputs_are_physically_sensible():
    january = simulate_uv_inputs.surface_albedo(72, 36, start="2024-01-15")
    july = simulate_uv_inputs.surface_albedo(72, 36, start="2024-07-15")
    for ds in (january, july):
        schemas.validate(ds, product_type="surface-albedo")
    alb_j, alb_7 = january["surface_albedo"].isel(time=0), july["surface_albedo"].isel(time=0)
    snow_free = alb_7.sel(latitude=slice(-40, 40))
    assert float(snow_free.min()) >= 0.03 and float(snow_free.max()) <= 0.08
    assert float(alb_j.sel(latitude=-87.5).min()) > 0.8  # Antarctica, all year
    assert float(alb_7.sel(latitude=-87.5).min()) > 0.8
    alps = dict(latitude=47.5, longitude=7.5)
    assert float(alb_j.sel(**alps)) > 0.6 > float(alb_7.sel(**alps))  # Alpine winter snow
    assert float(alb_j.sel(latitude=62.5).mean()) > 0.6 > float(alb_7.sel(latitude=62.5).mean())
    aer = simulate_uv_inputs.aerosol(72, 36, start="2024-06-21")
    schemas.validate(aer, product_type="aerosol")
    assert float(aer["aod"].min()) >= 0.05 and float(aer["aod"].max()) <= 0.5
    assert float(aer["aod"].sel(latitude=22.5, longitude=2.5).min()) > 0.3  # Saharan dust
    assert 0.88 <= float(aer["ssa"].min()) and float(aer["ssa"].max()) <= 0.97
    cld = simulate_uv_inputs.cloud(72, 36, start="2024-06-21", clear_fraction=0.5)
    schemas.validate(cld, product_type="cloud")
    cot = cld["cloud_optical_thickness"]
    assert float((cot == 0).mean()) == pytest.approx(0.5, abs=0.02)  # patchy
    assert float(cot.where(cot > 0).median()) == pytest.approx(8.0, rel=0.3)
    assert float((cot.isel(time=0) != cot.isel(time=-1)).mean()) > 0.2  # it moves
