"""Real station files in their providers' formats (``../shared/data/real``), as a user uploads them.

Every check compares with the file read independently here (netCDF4 or plain text parsing):
the observation count, the values after unit conversion (rtol 1e-12), the station metadata as
search facets and in ``hubkit show``, the bounding box. Broken variants are made from the real
files in ``tmp_path``; the real files are never copied into the repository.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import netCDF4
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from conftest import run_cli as run

BAO = "ch4_bao_tower-insitu_1_ccgg_all.nc"
ESP = "ch4_esp_surface-flask_2_representative.nc"
POC = "co_pocn25_surface-flask_1_ccgg_event.txt"
TOH = "test_toh_co2_147m.nc"
RGL = "ICOS_ATC_L2_L2-2024.1_RGL_90.0_CTS.CH4"
THD = "agage_thd_cfc-11_20240703-test.nc"


@pytest.fixture
def real(shared_data) -> Path:
    return shared_data / "real"


# --- the files read independently ------------------------------------------------------------


def _nc(path, name):
    with netCDF4.Dataset(path) as nc:
        var = nc.variables[name]
        var.set_auto_mask(True)
        return np.ma.filled(np.ma.asarray(var[:]).astype(np.float64), np.nan)


def _obspack_nc(path, factor):
    return {"time": pd.to_datetime(_nc(path, "time"), unit="s").to_numpy(),
            "value": _nc(path, "value") * factor, "inlet": _nc(path, "intake_height"),
            "lat": _nc(path, "latitude"), "lon": _nc(path, "longitude")}


def _event(path, factor):
    lines = [ln.split() for ln in Path(path).read_text().splitlines() if not ln.startswith("#")]
    raw = np.array([float(ln[11]) for ln in lines])
    time = pd.to_datetime([f"{ln[1]}-{ln[2]}-{ln[3]}T{ln[4]}:{ln[5]}:{ln[6]}" for ln in lines])
    return {"time": time.to_numpy(), "value": np.where(raw == -999.99, np.nan, raw) * factor,
            "inlet": np.array([float(ln[25]) for ln in lines]),
            "lat": np.array([float(ln[21]) for ln in lines]),
            "lon": np.array([float(ln[22]) for ln in lines])}


def _icos_nc(path, factor):
    with netCDF4.Dataset(path) as nc:
        lat, lon = float(nc.station_latitude), float(nc.station_longitude)
        inlet = float(nc.inlet)
    t = pd.Timestamp("2017-01-01") + pd.to_timedelta(_nc(path, "time"), unit="s")
    v = _nc(path, "co2")
    return {"time": t.to_numpy(), "value": v * factor, "inlet": np.full(v.size, inlet),
            "lat": np.full(v.size, lat), "lon": np.full(v.size, lon)}


def _icos_text(path, factor):
    text = Path(path).read_text().splitlines()
    n = int(next(ln for ln in text if ln.startswith("# HEADER LINES:")).split(":")[1])
    rows = [ln.split(";") for ln in text[n:]]
    raw = np.array([float(r[8]) for r in rows])
    time = pd.to_datetime([f"{r[2]}-{r[3]}-{r[4]}T{r[5]}:{r[6]}" for r in rows])
    return {"time": time.to_numpy(), "value": np.where(raw == -999.99, np.nan, raw) * factor,
            "inlet": np.array([float(r[1]) for r in rows]),
            "lat": np.full(len(rows), 51.9975), "lon": np.full(len(rows), -2.5399)}


def _agage(path, factor):
    with netCDF4.Dataset(path) as nc:
        lat, lon = float(nc.inlet_latitude), float(nc.inlet_longitude)
    v = _nc(path, "mf")
    return {"time": pd.to_datetime(_nc(path, "time"), unit="s").to_numpy(),
            "value": v * factor, "inlet": _nc(path, "inlet_height"),
            "lat": np.full(v.size, lat), "lon": np.full(v.size, lon)}


#: file -> (format, raw reader, factor to the stored unit, stored unit, species, facets)
FILES = {
    BAO: ("obspack", _obspack_nc, 1.0, "ppb", "ch4",  # nanomol mol-1
          dict(site="BAO", inlets=(22.0, 100.0, 300.0), network="NOAA",
               scale="NOAA 2004A CH4", platform="fixed", n=4190)),
    ESP: ("obspack", _obspack_nc, 1e9, "ppb", "ch4",  # mol mol-1
          dict(site="ESP", inlets=(40.0,), network="NOAA", scale="WMO CH4 X2004A",
               platform="fixed", n=109)),
    POC: ("obspack-text", _event, 1.0, "ppb", "co",  # the CCGG README's nmol mol-1
          dict(site="POCN25", inlets=(20.0,), network="NOAA", scale=None, platform="ship",
               n=67)),
    TOH: ("icos-nc", _icos_nc, 1.0, "ppm", "co2",  # µmol mol-1
          dict(site="TOH", inlets=(147.0,), network="ICOS", scale=None, platform="fixed",
               n=30)),
    RGL: ("icos-atc", _icos_text, 1.0, "ppb", "ch4",  # nmol.mol-¹
          dict(site="RGL", inlets=(90.0,), network="ICOS", scale="530: Unknown; 115: WMO X2004A",
               platform="fixed", n=49)),
    THD: ("agage", _agage, 1.0, "ppt", "cfc-11",  # 1e-12
          dict(site="THD", inlets=(15.0,), network="AGAGE", scale="SIO-05", platform="fixed",
               n=1500)),
}


@pytest.mark.parametrize("name", list(FILES))
def test_upload_keeps_every_observation_and_the_station(real, store_env, capsys, name):
    from hubkit.store import open_store

    fmt, raw_of, factor, units, species, facets = FILES[name]
    code, out, err = run(capsys, "upload", str(real / name), "-q")
    assert code == 0, err
    (item_id,) = out.split()
    assert item_id.startswith("surface-obs-")
    store = open_store(store_env)
    item = store.get_item(item_id)
    assert item.properties["hubkit:provenance"]["parameters"]["format"] == fmt  # detected

    raw = raw_of(real / name, factor)
    ds = store.open(item_id).load()
    assert ds.sizes["time"] == facets["n"] == raw["value"].size  # observations in = stored
    order = np.argsort(raw["time"], kind="stable")  # rows are kept in time order
    np.testing.assert_array_equal(ds["time"].values, raw["time"][order])
    np.testing.assert_allclose(ds["value"].values, raw["value"][order], rtol=1e-12)
    assert np.array_equal(np.isnan(ds["value"].values), np.isnan(raw["value"][order]))
    np.testing.assert_array_equal(ds["inlet_height"].values, raw["inlet"][order])
    assert ds["inlet_height"].dtype == np.float64 and ds["inlet_height"].attrs["units"] == "m"
    assert ds["value"].attrs["units"] == units
    assert ds.attrs["hubkit_species"] == species
    assert ds.indexes["time"].is_monotonic_increasing

    # bbox: the station, or the ship's track (positions as the file gives them)
    lat, lon = raw["lat"], raw["lon"]
    np.testing.assert_allclose(item.bbox, [np.nanmin(lon), np.nanmin(lat), np.nanmax(lon),
                                           np.nanmax(lat)], rtol=0, atol=1e-9)
    if facets["platform"] == "fixed":
        assert item.bbox[0] == item.bbox[2] and item.bbox[1] == item.bbox[3]

    # the facets find it, each alone and all together; a wrong value finds nothing
    p = item.properties
    assert p["hubkit:site"] == facets["site"]
    assert p["hubkit:inlet_heights"] == list(facets["inlets"])
    assert p["hubkit:network"] == facets["network"]
    assert p.get("hubkit:calibration_scale") == facets["scale"]
    assert p["platform"] == facets["platform"]
    assert p["hubkit:provider_attrs"]  # the provider's global attributes are kept
    query = ["--species", species.upper(), "--site", facets["site"].lower(),
             "--inlet", f"{facets['inlets'][-1]:g}m", "--network", facets["network"].lower(),
             "--platform", facets["platform"]]
    if facets["scale"]:
        query += ["--scale", facets["scale"]]
    code, out, err = run(capsys, "search", *query)
    assert code == 0 and item_id in out and "1 product(s)" in err
    for wrong in (["--site", "XYZ"], ["--inlet", "7"], ["--network", "other"],
                  ["--scale", "none"], ["--platform", "aircraft"]):
        code, out, err = run(capsys, "search", *wrong)
        assert code == 0 and item_id not in out and "0 product(s)" in err, wrong

    code, out, _ = run(capsys, "show", item_id)
    assert code == 0
    assert f"site        {facets['site']}" in out
    assert "inlets      " + ", ".join(f"{h:g}" for h in facets["inlets"]) in out
    assert f"network     {facets['network']}" in out
    assert f"platform    {facets['platform']}" in out
    if facets["scale"]:
        assert f"scale       {facets['scale']}" in out
    assert f"[{units}]" in out


def test_station_metadata_and_flags_are_usable(real, tmp_path):
    """Uncertainties kept, flags plain text usable in where, numeric inlet, provider attrs."""
    from hubkit import ingest
    from hubkit.store import open_store

    store = open_store(str(tmp_path / "store"))
    bao = store.open(ingest.upload(store, real / BAO))
    assert bao["qc_flag"].dtype == object and bao["qc_flag"].values[0] == "..P"
    assert int(bao.where(bao["qc_flag"] == "..P")["value"].count()) == 4190
    np.testing.assert_allclose(bao["value_unc"].values, _nc(real / BAO, "value_unc"),
                               rtol=1e-12)
    assert bao.attrs["calibration_scale"] == "NOAA 2004A CH4"
    assert bao.attrs["data_owner"].startswith("Arlyn Andrews")
    assert bao.attrs["dataset_selection_tag"] == "all"  # a provider attribute, unchanged
    assert bao["value"].attrs["units_converted_from"] == "nanomol mol-1"
    esp = store.open(ingest.upload(store, real / ESP))
    assert esp["value"].attrs["units_conversion_factor"] == 1e9
    np.testing.assert_allclose(esp["value_std_dev"].values,
                               _nc(real / ESP, "value_std_dev") * 1e9, rtol=1e-12)
    assert esp.attrs["inlet_heights"] == [40.0] and esp.attrs["dataset_intake_ht"] == "40.0"
    assert esp["assimilation_concerns"].dims == ("time", "concern")
    thd = store.open(ingest.upload(store, real / THD))
    np.testing.assert_allclose(thd["value_repeatability"].values,
                               _nc(real / THD, "mf_repeatability"), rtol=1e-12)


# --- retrieval ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def towers(shared_data, tmp_path_factory):
    from hubkit import ingest
    from hubkit.store import open_store

    store = open_store(str(tmp_path_factory.mktemp("towers") / "store"))
    for name in (BAO, ESP, POC):
        ingest.upload(store, shared_data / "real" / name)
    return store


def test_get_obs_one_inlet_on_a_time_index_lazily(towers, shared_data):
    import dask.array

    import hubkit
    from hubkit.errors import StoreError

    raw = _obspack_nc(shared_data / "real" / BAO, 1.0)
    counts = {}
    for height in (22, 100, 300):
        ds = hubkit.get_obs(towers, site="bao", species="ch4", inlet=f"{height}m")
        assert isinstance(ds["value"].data, dask.array.Array)  # lazy
        assert ds.indexes["time"].is_unique and ds.indexes["time"].is_monotonic_increasing
        mine = raw["inlet"] == height
        np.testing.assert_array_equal(ds["time"].values, raw["time"][mine])
        np.testing.assert_allclose(ds["value"].values, raw["value"][mine], rtol=1e-12)
        counts[height] = ds.sizes["time"]
    assert counts == {22: 1392, 100: 1398, 300: 1400}  # OpenGHG 0.19 keeps 1392 / 6 / 2
    with pytest.raises(StoreError, match=r"3 inlets \(22, 100, 300 m\); pass inlet="):
        hubkit.get_obs(towers, site="BAO", species="ch4")
    with pytest.raises(StoreError, match="sites with 'ch4'"):
        hubkit.get_obs(towers, site="MLO", species="ch4")


@pytest.mark.parametrize("query", [
    {"site": "BAO", "species": "ch4", "inlet": 22},
    {"site": "BAO", "species": "ch4", "inlet": 100},
    {"site": "BAO", "species": "ch4", "inlet": 300, "start": "2012-06-03", "end": "2012-06-20"},
    {"site": "ESP", "species": "ch4"},
    {"site": "POCN25", "species": "co"},
    {"site": "BAO", "species": "ch4", "inlet": 100, "average": "1D", "units": "ppm"},
    {"site": "ESP", "species": "ch4", "average": "MS", "units": "ppm"},
])
def test_get_obs_of_small_products_read_whole_equals_the_lazy_read(towers, monkeypatch, query):
    """Station files are read whole and cut in memory; the series is the one a lazy open of
    the product gives (values, times, text, attributes), and Dask-backed all the same."""
    import dask.array

    import hubkit
    from hubkit import timeseries

    calls, limit = [], timeseries.WHOLE_READ_BYTES
    assert limit > 100_000  # a station file is read whole
    real_open = type(towers).open
    monkeypatch.setattr(type(towers), "open",
                        lambda self, item, **kw: calls.append(kw.get("load")) or
                        real_open(self, item, **kw))
    whole = hubkit.get_obs(towers, **query)
    monkeypatch.setattr(timeseries, "WHOLE_READ_BYTES", 0)  # every product opened lazily
    lazy = hubkit.get_obs(towers, **query)
    assert calls == [limit, 0]
    for ds in (whole, lazy):
        assert all(isinstance(v.data, dask.array.Array) for v in ds.data_vars.values())
    whole, lazy = whole.load(), lazy.load()
    assert whole.sizes["time"] > 0
    xr.testing.assert_identical(whole, lazy)
    # (the order of variables is Zarr's listing order, in either way arbitrary)
    assert {n: v.dtype for n, v in whole.variables.items()} == \
        {n: v.dtype for n, v in lazy.variables.items()}


def test_get_obs_sorts_a_product_stored_out_of_time_order(tmp_path, shared_data):
    import hubkit
    from hubkit import io
    from hubkit.store import Store

    ds = io.read(shared_data / "real" / ESP)
    backwards = ds.isel(time=np.arange(ds.sizes["time"])[::-1])
    store = Store(str(tmp_path / "store"))
    store.put(backwards, inputs=["esp-backwards"], step="t")
    assert not store.open(store.search()[0]).indexes["time"].is_monotonic_increasing
    got = hubkit.get_obs(store, site="ESP", species="ch4").load()
    assert got.indexes["time"].is_monotonic_increasing
    want = ds.sortby("time")
    np.testing.assert_array_equal(got["time"].values, want["time"].values)
    np.testing.assert_array_equal(got["value"].values, want["value"].values)


def test_get_obs_daily_means_in_other_units(towers, shared_data):
    import dask.array

    import hubkit

    raw = _obspack_nc(shared_data / "real" / BAO, 1.0)
    ds = hubkit.get_obs(towers, site="BAO", species="ch4", inlet=100, start="2012-06-01",
                        end="2012-06", average="1D", units="ppm")
    assert isinstance(ds["value"].data, dask.array.Array)
    assert ds["value"].attrs["units"] == "ppm" and ds["value"].attrs[
        "units_conversion_factor"] == 1e-3
    mine = pd.Series(raw["value"][raw["inlet"] == 100], index=raw["time"][raw["inlet"] == 100])
    june = mine["2012-06-01":"2012-06-30"]
    daily = june.resample("1D").mean()
    assert ds.sizes["time"] == 30
    np.testing.assert_allclose(ds["value"].values, daily.to_numpy() * 1e-3, rtol=1e-12)
    np.testing.assert_array_equal(ds["n_obs"].values, june.resample("1D").count().to_numpy())
    np.testing.assert_allclose(ds["value_variability"].values,
                               june.resample("1D").std(ddof=1).to_numpy() * 1e-3, rtol=1e-9)


def test_get_obs_of_a_ship_and_a_plot(towers):
    import matplotlib

    matplotlib.use("Agg")
    import hubkit
    from hubkit import plot

    ship = hubkit.get_obs(towers, site="POCN25", species="co")
    assert ship.sizes["time"] == 67 and ship.attrs["platform"] == "ship"
    assert float(np.ptp(ship["longitude"].values)) > 30  # a track, not a site
    fig = plot.time_series([hubkit.get_obs(towers, site="BAO", species="ch4", inlet=h,
                                           average="1D") for h in (22, 300)])
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["BAO 22 m", "BAO 300 m"]
    assert ax.get_ylabel() == "CH4 [ppb]"


# --- units -----------------------------------------------------------------------------------


@pytest.mark.parametrize("found, expected, factor", [
    ("nanomol mol-1", "ppb", 1.0), ("mol mol-1", "ppb", 1e9), ("µmol mol-1", "ppm", 1.0),
    ("μmol mol-1", "ppb", 1e3), ("nmol.mol-¹", "ppb", 1.0), ("1e-12", "ppt", 1.0),
    ("1e-9", "mol mol-1", 1e-9), ("ppt", "ppb", 1e-3), ("ppm", "ppt", 1e6),
    ("kg m-2", "kg/m2", 1.0), ("m s^-1", "m s-1", 1.0), ("hPa", "Pa", 100.0),
])
def test_units_convert_exactly_in_the_cf_grammar(found, expected, factor):
    from hubkit.units import convert_units

    values = np.array([1.0, 1803.25, np.nan])
    out = convert_units(values, found, expected, path="f.nc", name="value")
    np.testing.assert_array_equal(out, values * factor)  # the factor is exactly the power of 10


def test_units_that_are_not_units_are_refused_by_name():
    from hubkit.errors import SchemaError
    from hubkit.units import convert_units, normalise_units

    assert normalise_units("nanomol mol-1") == "ppb" and normalise_units("1e-12") == "ppt"
    with pytest.raises(SchemaError, match=r"f\.nc: variable 'value' has units 'bananas' "
                                          r"\(not a unit .*\), expected 'ppb'"):
        convert_units([1.0], "bananas", "ppb", path="f.nc", name="value")
    for other in ("kg m-2", "furlongs"):  # units, but not of a mole fraction
        with pytest.raises(SchemaError, match=f"has units '{other}', expected 'ppb'"):
            convert_units([1.0], other, "ppb", path="f.nc", name="value")


# --- broken variants of the real files ---------------------------------------------------------


def _copy_nc(src, dst, *, drop=(), var_attrs=None, global_attrs=None, extra=None):
    """Copy a netCDF file variable by variable, changing what is asked."""
    with netCDF4.Dataset(src) as a, netCDF4.Dataset(dst, "w", format="NETCDF4") as b:
        for name, dim in a.dimensions.items():
            b.createDimension(name, None if dim.isunlimited() else len(dim))
        attrs = {k: a.getncattr(k) for k in a.ncattrs()}
        attrs.update(global_attrs or {})
        b.setncatts({k: v for k, v in attrs.items() if v is not None})
        for name, var in a.variables.items():
            if name in drop:
                continue
            var.set_auto_maskandscale(False)
            fill = var.getncattr("_FillValue") if "_FillValue" in var.ncattrs() else None
            new = b.createVariable(name, var.datatype, var.dimensions, fill_value=fill)
            new.set_auto_maskandscale(False)
            new.setncatts({k: var.getncattr(k) for k in var.ncattrs() if k != "_FillValue"})
            new.setncatts((var_attrs or {}).get(name, {}))
            new[:] = var[:]
        if extra:
            extra(b)
    return dst


def _second_time_axis(nc):
    nc.createDimension("time_2", 5)
    var = nc.createVariable("time_2", "f8", ("time_2",))
    var.units = "seconds since 1970-01-01"
    var[:] = np.arange(5.0)
    more = nc.createVariable("co2_hourly", "f8", ("time_2",))
    more[:] = np.arange(5.0)


def _truncate(src, dst, fraction=0.5):
    data = Path(src).read_bytes()
    Path(dst).write_bytes(data[: int(len(data) * fraction)])
    return dst


def _cut_text(src, dst):
    text = Path(src).read_text()
    Path(dst).write_text(text[: len(text) - 40])  # the last line loses its last fields
    return dst


BROKEN = {
    "missing-value": (BAO, lambda s, d: _copy_nc(s, d, drop=("value",)),
                      r"required variable 'value' is missing; expected the ObsPack"),
    "unknown-unit": (BAO, lambda s, d: _copy_nc(s, d, var_attrs={"value": {
        "units": "furlongs per fortnight"}}),
        r"variable 'value' has units 'furlongs per fortnight' \(not a unit in the CF/UDUNITS "
        r"grammar\), expected 'ppb'"),
    "firn-air": (BAO, lambda s, d: _copy_nc(s, d, global_attrs={"dataset_project": "firn-air"}),
                 r"'firn' samples, not atmospheric air"),
    "truncated-netcdf": (ESP, _truncate, r"cannot be opened as netCDF/HDF5 .*truncated"),
    "truncated-event": (POC, _cut_text, r"line 128 has \d+ fields, expected 27"),
    "truncated-icos-text": (RGL, _cut_text, r"line 94 has \d+ fields, expected 22"),
    "second-time-axis-icos": (TOH, lambda s, d: _copy_nc(s, d, extra=_second_time_axis),
                              r"variable 'time_2' has dims \('time_2',\), expected \('time',\) "
                              r"\(one time axis\)"),
    "icos-unit-unknown": (TOH, lambda s, d: _copy_nc(s, d, global_attrs={"units": "unknown"}),
                          r"variable 'co2' has units 'unknown' and the file has no global "
                          r"attribute 'units'"),
    "agage-no-position": (THD, lambda s, d: _copy_nc(s, d, global_attrs={
        "inlet_latitude": "north-ish"}), r"global attribute 'inlet_latitude' is 'north-ish', "
                                         r"expected a number"),
    "agage-missing-mf": (THD, lambda s, d: _copy_nc(s, d, drop=("mf",)),
                         r"required variable 'mf' is missing"),
}


def _listing(root) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in Path(root).rglob("*"))


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_variants_are_refused_and_leave_the_store_unchanged(real, tmp_path, store_env,
                                                                  capsys, case):
    name, make, message = BROKEN[case]
    src = tmp_path / "in" / name
    src.parent.mkdir()
    shutil.copy(real / name, src)
    os.chmod(src, 0o644)
    bad = make(src, tmp_path / f"broken_{name}")
    code, out, _ = run(capsys, "upload", str(real / ESP), "-q")  # something already stored
    assert code == 0
    before = _listing(store_env)
    code, out, err = run(capsys, "upload", str(bad), "-q")
    assert code == 1 and out == ""
    assert f"broken_{name}" in err, err
    assert pytest.importorskip("re").search(message, err), err
    assert _listing(store_env) == before


# --- each file opened as few times as its reading needs -------------------------------------


@pytest.mark.parametrize("name", [BAO, ESP, TOH, THD])
def test_a_netcdf_file_is_opened_once_to_detect_and_check_and_once_to_read(real, name,
                                                                           monkeypatch):
    """Format detection (every sniffer that peeks), the size check and the reader used to open
    an ObsPack file five times (~30 ms each on the BAO tower file): the metadata are now read
    in one open shared by detection and the size check, the data in one more."""
    from hubkit import io

    opened = []
    real_dataset = netCDF4.Dataset

    def counting(path, *args, **kwargs):
        opened.append(str(path))
        return real_dataset(path, *args, **kwargs)

    monkeypatch.setattr(netCDF4, "Dataset", counting)
    ds = io.read(real / name)
    assert ds.sizes["time"] > 0
    assert opened.count(str(real / name)) <= 2, opened
