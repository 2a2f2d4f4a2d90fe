"""Real column and peak data in their providers' formats, uploaded as a user does (`hubkit upload`).

TCCON GGG2020 public netCDF (Harwell), a GOSAT GHG-CCI-style XCH4 file and the oco2peak project's
tables (``../shared/data/real`` and ``../shared/data/oco2peak``, see their READMEs). Every file:
the format is detected, every row is stored, the stored values equal the raw values read here
independently (netCDF4 / pandas) after the unit conversion (rtol 1e-12), the species is
searchable, the bounding box is the station's or the soundings', and `hubkit show` prints it.
Broken copies of the real files (made in tmp_path, never in the repository) are refused with an
error that names the file, the variable and the expectation, and leave the store unchanged.
"""

from __future__ import annotations

import json
import shutil

import netCDF4
import numpy as np
import pandas as pd
import pytest
from conftest import run_cli as run
from test_store import listing_checksum

from hubkit import ingest
from hubkit import io as hio
from hubkit.errors import HubkitError, IngestError, SchemaError
from hubkit.store import Store

RTOL = 1e-12
TCCON = "real/hw20230402_20230402.public.qc.nc"
GOSAT = "real/gosat-fts_gosat_20160101_ch4-column.nc"


def upload_one(capsys, path):
    """`hubkit upload PATH -q` -> the product id (and the command must succeed)."""
    code, out, err = run(capsys, "upload", path, "-q")
    assert code == 0, err
    ids = out.split()
    assert len(ids) == 1, out
    return ids[0]


def search_ids(capsys, *argv):
    code, out, err = run(capsys, "search", "--json", *argv)
    assert code == 0, err
    return [d["id"] for d in json.loads(out)]


def raw(path, name):
    """A variable as the file holds it (fill values -> NaN), float64."""
    with netCDF4.Dataset(path) as nc:
        return np.ma.filled(np.ma.asarray(nc[name][:]).astype(np.float64), np.nan)


# -- the catalog: coordinates chosen by standard_name, not by the first degrees_north -------------
def test_generic_upload_of_tccon_file_is_catalogued_at_the_station(shared_data, tmp_path):
    """`--format cf` stores the file as it is; its bbox must be the station (lat, long), not
    the range of prior_equivalent_latitude (-36...75), the first degrees_north variable."""
    path = shared_data / TCCON
    lat, lon = raw(path, "lat"), raw(path, "long")
    item = ingest.upload(Store(str(tmp_path / "store")), path, "cf")
    w, s, e, n = item.bbox
    np.testing.assert_allclose([s, n], [lat.min(), lat.max()], rtol=1e-6)
    np.testing.assert_allclose([w, e], [lon.min(), lon.max()], rtol=1e-6)
    assert abs(s - 51.57) < 1e-4 and abs(w + 1.32) < 1e-4


# -- TCCON GGG2020 ------------------------------------------------------------------------------
def test_tccon_uploads_with_every_row_and_raw_values(shared_data, store_env, capsys):
    path = shared_data / TCCON
    assert hio.detect_format(path) == "tccon-ggg2020"
    pid = upload_one(capsys, path)
    assert pid.startswith("tccon-columns-")
    ds = Store(store_env).open(pid).load()
    n = raw(path, "time").size
    assert n == 64 and ds.sizes["time"] == n
    # gas columns in their community's unit: CO2 ppm (as the file), CH4 ppm -> ppb, N2O ppb
    for name, new, factor in (("xco2", "xco2", 1.0), ("xco2_error", "xco2_uncertainty", 1.0),
                              ("xch4", "xch4", 1e3), ("xch4_error", "xch4_uncertainty", 1e3),
                              ("xco", "xco", 1.0), ("xn2o", "xn2o", 1.0),
                              ("xhf", "xhf", 1.0), ("lat", "latitude", 1.0),
                              ("long", "longitude", 1.0), ("zobs", "altitude", 1e3),
                              ("ak_xco2", "xco2_averaging_kernel", 1.0),
                              ("ak_xch4", "xch4_averaging_kernel", 1.0),
                              ("prior_co2", "co2_apriori", 1.0), ("prior_ch4", "ch4_apriori", 1.0),
                              ("prior_h2o", "h2o_apriori", 1e6),
                              ("ak_pressure", "ak_pressure", 100.0),
                              ("prior_pressure", "prior_pressure", 101325.0),
                              ("solzen", "solzen", 1.0), ("xco2_x2019", "xco2_x2019", 1.0)):
        np.testing.assert_allclose(ds[new].values, raw(path, name) * factor, rtol=RTOL,
                                   equal_nan=True, err_msg=name)
    assert ds["xch4"].attrs["units"] == "ppb" and ds["xch4"].attrs["units_converted_from"] == "ppm"
    assert ds["xco2_averaging_kernel"].dims == ("time", "ak_altitude")
    assert ds["co2_apriori"].dims == ("time", "prior_altitude")
    with netCDF4.Dataset(path) as nc:
        seconds = nc["time"][:].astype(np.float64)
    t = (ds["time"].values - np.datetime64("1970-01-01", "ns")) / np.timedelta64(1, "s")
    np.testing.assert_allclose(t, seconds, rtol=RTOL)

    item = Store(store_env).get_item(pid)
    w, s, e, n_ = item.bbox
    assert (s, n_) == pytest.approx((51.57, 51.57), abs=1e-5)
    assert (w, e) == pytest.approx((-1.32, -1.32), abs=1e-5)
    for species in ("co2", "ch4", "co", "n2o"):
        assert search_ids(capsys, "--species", species) == [pid], species
    assert search_ids(capsys, "--instrument", "TCCON") == [pid]
    assert search_ids(capsys, "--bbox=-2,51,-1,52") == [pid]
    assert search_ids(capsys, "--bbox=-70,-40,-60,-30") == []
    code, out, _ = run(capsys, "show", pid)
    assert code == 0
    for text in ("tccon-columns", path.name, "co2,ch4,co,n2o", "time=64", "xch4", "[ppb]",
                 "xco2_averaging_kernel", "51.5700"):
        assert text in out, text


def _broken_tccon(src, tmp_path):
    """(file, error class, words the message must hold) for each broken copy of the real file."""
    def copy(name):
        dst = tmp_path / name
        shutil.copyfile(src, dst)
        dst.chmod(0o644)
        return dst

    missing = copy("hw_missing_xco2.nc")
    with netCDF4.Dataset(missing, "a") as nc:
        nc.renameVariable("xco2", "xco2_renamed")
    unit = copy("hw_unknown_unit.nc")
    with netCDF4.Dataset(unit, "a") as nc:
        nc["xch4"].units = "furlongs"
    second = copy("hw_second_time.nc")
    with netCDF4.Dataset(second, "a") as nc:
        nc.createDimension("time2", 3)
        v = nc.createVariable("time2", "f8", ("time2",))
        v.units = "seconds since 1970-01-01"
        v[:] = [0.0, 1.0, 2.0]
    truncated = tmp_path / "hw_truncated.nc"
    truncated.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    return [
        (missing, SchemaError, ["hw_missing_xco2.nc", "'xco2'", "missing", "expected"]),
        (unit, SchemaError, ["hw_unknown_unit.nc", "'xch4'", "furlongs", "expected", "ppb"]),
        (second, SchemaError, ["hw_second_time.nc", "'time2'", "second time axis", "expected"]),
        (truncated, IngestError, ["hw_truncated.nc", "truncated"]),
    ]


def test_broken_tccon_copies_are_refused_and_the_store_is_unchanged(shared_data, tmp_path):
    store = Store(str(tmp_path / "store"))
    ingest.upload(store, shared_data / GOSAT)  # something in it already
    before = listing_checksum(store)
    for path, error, words in _broken_tccon(shared_data / TCCON, tmp_path):
        fmt = "tccon-ggg2020" if error is not IngestError else None
        with pytest.raises(error) as info:
            ingest.upload(store, path, fmt)
        for word in words:
            assert word in str(info.value), (path.name, word, str(info.value))
        assert listing_checksum(store) == before, path.name


def test_broken_tccon_copy_is_one_clear_line_on_the_command_line(shared_data, tmp_path,
                                                                 store_env, capsys):
    path, _, words = _broken_tccon(shared_data / TCCON, tmp_path)[2]
    code, out, err = run(capsys, "upload", path, "-q")
    assert code == 1 and out == ""
    assert err.startswith("error: ") and all(w in err for w in words)


# -- GOSAT, GHG-CCI style ---------------------------------------------------------------------
def test_gosat_uploads_with_every_sounding_and_raw_values(shared_data, store_env, capsys):
    path = shared_data / GOSAT
    assert hio.detect_format(path) == "ghg-cci-l2"
    pid = upload_one(capsys, path)
    assert pid.startswith("xgas-soundings-")
    ds = Store(store_env).open(pid).load()
    assert ds.sizes["sounding"] == raw(path, "xch4").size == 49
    assert ds.sizes["level"] == 20
    for name, new, factor in (("xch4", "xch4", 1.0), ("xch4_uncertainty", "xch4_uncertainty", 1.0),
                              ("lat", "latitude", 1.0), ("lon", "longitude", 1.0),
                              ("xch4_averaging_kernel", "xch4_averaging_kernel", 1.0),
                              ("ch4_profile_apriori", "ch4_apriori", 1.0),
                              ("pressure_levels", "pressure", 100.0),
                              ("pressure_weights", "pressure_weight", 1.0)):
        np.testing.assert_allclose(ds[new].values, raw(path, name) * factor, rtol=RTOL,
                                   err_msg=name)
    assert ds["xch4"].attrs["units"] == "ppb" and ds["pressure"].attrs["units"] == "Pa"
    with netCDF4.Dataset(path) as nc:
        ids = netCDF4.chartostring(nc["exposure_id"][:])
        expected = netCDF4.num2date(nc["time"][:], nc["time"].units,
                                    only_use_cftime_datetimes=False)
    assert ds["exposure_id"].values.tolist() == [[str(v) for v in row] for row in ids]
    assert (ds["time"].values == np.array(expected, dtype="datetime64[ns]")).all()

    item = Store(store_env).get_item(pid)
    lat, lon = raw(path, "lat"), raw(path, "lon")
    assert item.bbox == pytest.approx([lon.min(), lat.min(), lon.max(), lat.max()], rel=1e-12)
    assert search_ids(capsys, "--species", "ch4") == [pid]
    assert search_ids(capsys, "--species", "co2") == []
    assert search_ids(capsys, "--instrument", "TANSO-FTS") == [pid]
    assert search_ids(capsys, "--bbox=-60,-20,-50,0") == [pid]
    code, out, _ = run(capsys, "show", pid)
    assert code == 0
    for text in ("xgas-soundings", path.name, "species     ch4", "sounding=49", "level=20",
                 "xch4_averaging_kernel", "[ppb]", "[Pa]"):
        assert text in out, text


def _broken_gosat(src, tmp_path):
    def copy(name):
        dst = tmp_path / name
        shutil.copyfile(src, dst)
        dst.chmod(0o644)
        return dst

    missing = copy("gosat_missing_lat.nc")
    with netCDF4.Dataset(missing, "a") as nc:
        nc.renameVariable("lat", "lat_renamed")
    unit = copy("gosat_unknown_unit.nc")
    with netCDF4.Dataset(unit, "a") as nc:
        nc["ch4_profile_apriori"].units = "bananas"
    second = copy("gosat_second_time.nc")
    with netCDF4.Dataset(second, "a") as nc:
        v = nc.createVariable("time_of_level", "f8", ("lev",))
        v.units = "hours since 2016-01-01"
        v[:] = np.arange(20.0)
    truncated = tmp_path / "gosat_truncated.nc"
    truncated.write_bytes(src.read_bytes()[: src.stat().st_size * 2 // 3])
    return [
        (missing, SchemaError, ["gosat_missing_lat.nc", "'latitude'", "'lat'", "expected"]),
        (unit, SchemaError, ["gosat_unknown_unit.nc", "'ch4_profile_apriori'", "bananas",
                             "expected", "ppb"]),
        (second, SchemaError, ["gosat_second_time.nc", "'time_of_level'", "second time axis",
                               "expected"]),
        (truncated, IngestError, ["gosat_truncated.nc", "truncated"]),
    ]


def test_broken_gosat_copies_are_refused_and_the_store_is_unchanged(shared_data, tmp_path):
    store = Store(str(tmp_path / "store"))
    ingest.upload(store, shared_data / TCCON)
    before = listing_checksum(store)
    for path, error, words in _broken_gosat(shared_data / GOSAT, tmp_path):
        fmt = "ghg-cci-l2" if error is not IngestError else None
        with pytest.raises(error) as info:
            ingest.upload(store, path, fmt)
        for word in words:
            assert word in str(info.value), (path.name, word, str(info.value))
        assert listing_checksum(store) == before, path.name


# -- oco2peak: peak tables, the inventory, monthly means, soundings -----------------------------
PEAK_COLUMNS = {  # CSV column -> (stored name, factor to the stored unit)
    "latitude": ("latitude", 1.0), "longitude": ("longitude", 1.0), "slope": ("slope", 1.0),
    "intercept": ("intercept", 1.0), "amplitude": ("amplitude", 1.0), "sigma": ("sigma", 1.0),
    "delta": ("delta", 1.0), "R": ("R", 1.0), "windspeed_u": ("windspeed_u", 1.0),
    "windspeed_v": ("windspeed_v", 1.0), "surface_pressure": ("surface_pressure", 100.0),
    "surface_pressure_apriori": ("surface_pressure_apriori", 100.0),
    "surf_pres": ("surface_pressure_anomaly", 100.0), "land_fraction": ("land_fraction", 1.0),
    "tcwv": ("tcwv", 1.0), "gCO2_per_s": ("emission", 1e-3),
    "ktCO2_per_h": ("emission_kt_per_hour", 1.0), "outlier_score_lof": ("outlier_score_lof", 1.0),
    "orbit": ("orbit", 1.0), "y_class_lof": ("y_class_lof", 1.0),
    "y_class_dbscan": ("y_class_dbscan", 1.0),
    "land_water_indicator": ("land_water_indicator", 1.0),
}


def check_peaks(ds, csv):
    """Every row and every column of the peak table ``csv``, as read by pandas, in ``ds``."""
    df = pd.read_csv(csv, dtype={"sounding_id": str})
    assert ds.sizes["peak"] == len(df)
    assert ds["sounding_id"].values.tolist() == [int(v) for v in df["sounding_id"]]
    seen = {"sounding_id"}
    for column, (name, factor) in PEAK_COLUMNS.items():
        if column in df:
            np.testing.assert_allclose(ds[name].values, df[column].to_numpy(float) * factor,
                                       rtol=RTOL, err_msg=f"{csv.name}: {column}")
            seen.add(column)
    types = [c[6:] for c in df.columns if c.startswith("index_")]
    if types:
        assert ds["source_type"].values.tolist() == types
        for k, t in enumerate(types):
            assert ds["n_sources"].values[:, k].tolist() == df[f"number_{t}"].tolist()
            assert ds["source_indices"].values[:, k].tolist() == df[f"index_{t}"].tolist()
        assert ds["capture_zone"].values.tolist() == df["geometry"].tolist()
        np.testing.assert_array_equal(ds["date"].values,
                                      pd.to_datetime(df["date"]).to_numpy("datetime64[ns]"))
        seen |= {"date", "geometry"} | {f"{p}_{t}" for t in types for p in ("index", "number")}
    extra = set(df.columns) - seen
    for column in extra:  # kept under their own names
        np.testing.assert_allclose(ds[column].values, df[column].to_numpy(float), rtol=RTOL)
    # the time is the sounding id's (YYYYMMDDhhmmss + tenths), in UTC
    stamp = pd.to_datetime(df["sounding_id"].str[:14], format="%Y%m%d%H%M%S")
    tenths = pd.to_timedelta(df["sounding_id"].str[14].astype(int) * 100, unit="ms")
    np.testing.assert_array_equal(ds["time"].values, (stamp + tenths).to_numpy("datetime64[ns]"))


def bbox_of(df):
    lat, lon = df["latitude"].to_numpy(float), df["longitude"].to_numpy(float)
    ok = np.isfinite(lat) & np.isfinite(lon)
    return [lon[ok].min(), lat[ok].min(), lon[ok].max(), lat[ok].max()]


@pytest.mark.parametrize("name", ["oco2peak_reference_peaks_orbit11522.csv",
                                  "peaks_out_1808.csv"])
def test_oco2peak_peak_tables_upload(shared_data, store_env, capsys, name):
    path = shared_data / "oco2peak" / name
    assert hio.detect_format(path) == "oco2peak-peaks"
    pid = upload_one(capsys, path)
    assert pid.startswith("oco2peak-peaks-")
    store = Store(store_env)
    check_peaks(store.open(pid).load(), path)
    df = pd.read_csv(path)
    assert store.get_item(pid).bbox == pytest.approx(bbox_of(df), rel=1e-12)
    assert search_ids(capsys, "--species", "co2") == [pid]
    assert search_ids(capsys, "--instrument", "OCO-2", "--collection", "oco2peak-peaks") == [pid]
    code, out, _ = run(capsys, "show", pid)
    assert code == 0 and f"peak={len(df)}" in out and "[ppm km]" in out and name in out


def test_oco2peak_peaks_and_invent_folder_uploads_every_file_and_row(shared_data, store_env,
                                                                      capsys):
    folder = shared_data / "oco2peak" / "peaks_and_invent"
    files = sorted(folder.glob("*.csv"))
    assert len(files) == 67
    code, out, err = run(capsys, "upload", folder, "-q")
    assert code == 0, err
    ids = out.split()
    assert len(ids) == 67 and all(i.startswith("oco2peak-peaks-") for i in ids)
    store = Store(store_env)
    by_source = {store.get_item(i).properties["hubkit:source"]: i for i in ids}
    total = 0
    for path in files[::11] + [folder / "peaks_and_invent_1808.csv"]:  # values: a sample
        check_peaks(store.open(by_source[path.name]).load(), path)
    for path in files:  # rows: every file
        n = store.get_item(by_source[path.name]).properties["hubkit:dims"]["peak"]
        assert n == len(pd.read_csv(path)), path.name
        total += n
    assert total == 7903
    assert len(search_ids(capsys, "--species", "co2", "--start", "2018-08-01",
                          "--end", "2018-08-31")) == 1
    code, out, _ = run(capsys, "show", by_source["peaks_and_invent_1808.csv"])
    assert code == 0 and "source_type=15" in out and "n_sources" in out


def test_oco2peak_inventory_is_a_sources_product_the_attribution_takes(shared_data, store_env,
                                                                        capsys):
    from hubkit import co2

    path = shared_data / "oco2peak" / "CO2_emissions_inventory_merged_2018.csv"
    assert hio.detect_format(path) == "oco2peak-inventory"
    code, out, err = run(capsys, "upload", path, "-q")
    assert code == 0 and "1 of 17591 rows flagged" in err  # one source has no position
    pid = out.split()[0]
    assert pid.startswith("sources-")
    store = Store(store_env)
    ds = store.open(pid).load()
    raw_inv = pd.read_csv(path, index_col=0)
    assert ds.sizes["source"] == len(raw_inv) == 17591
    emission = raw_inv["CO2/CO2e emissions (in tonnes per year)"].to_numpy(float)
    np.testing.assert_allclose(ds["emission"].values, emission * 1e3 / (365.25 * 86400.0),
                               rtol=RTOL, equal_nan=True)
    assert ds["source"].values.tolist() == raw_inv.index.tolist()
    for name in ("latitude", "longitude"):
        np.testing.assert_allclose(ds[name].values, raw_inv[name].to_numpy(float), rtol=RTOL,
                                   equal_nan=True)
    assert ds["source_type"].values.tolist() == raw_inv["CO2/CO2e emissions source"].tolist()
    assert store.get_item(pid).bbox == pytest.approx(bbox_of(raw_inv), rel=1e-12)
    assert search_ids(capsys, "--collection", "sources", "--species", "co2") == [pid]
    code, out, _ = run(capsys, "show", pid)
    assert code == 0 and "source=17591" in out and "[kg s-1]" in out

    # the attribution takes the stored products as it takes the raw tables
    peaks_csv = shared_data / "oco2peak" / "oco2peak_reference_peaks_orbit11522.csv"
    peaks_id = upload_one(capsys, peaks_csv)
    stored = co2.attribute_sources(store.open(peaks_id).load(),
                                   co2.sources_table(ds), max_hours=12.0)
    peaks = pd.read_csv(peaks_csv)
    peaks["surface_pressure"] *= 100.0  # hPa -> Pa, as attribute_sources expects
    expected = co2.attribute_sources(peaks, co2.inventory_table(
        raw_inv, emission="CO2/CO2e emissions (in tonnes per year)"), max_hours=12.0)
    assert len(expected) > 0
    pd.testing.assert_frame_equal(stored, expected, rtol=1e-12)


def test_oco2peak_monthly_means_upload(shared_data, store_env, capsys):
    path = shared_data / "oco2peak" / "xco2_monthly_mean.csv"
    assert hio.detect_format(path) == "oco2peak-monthly"
    pid = upload_one(capsys, path)
    assert pid.startswith("xco2-monthly-mean-")
    ds = Store(store_env).open(pid).load()
    df = pd.read_csv(path, sep=";", dtype={"yearmonth": str})
    assert ds.sizes["time"] == len(df) == 67
    np.testing.assert_allclose(ds["xco2"].values, df["xco2"].to_numpy(float), rtol=RTOL)
    expected = pd.to_datetime("20" + df["yearmonth"], format="%Y%m").to_numpy("datetime64[ns]")
    np.testing.assert_array_equal(ds["time"].values, expected)
    item = Store(store_env).get_item(pid)
    assert item.bbox is None  # a global mean: the file has no position
    assert item.properties["start_datetime"].startswith("2014-09-01")
    assert search_ids(capsys, "--species", "co2", "--start", "2020-04") == [pid]
    code, out, _ = run(capsys, "show", pid)
    assert code == 0 and "time=67" in out and "[ppm]" in out


def test_oco2peak_segment_soundings_upload(shared_data, store_env, capsys):
    path = shared_data / "oco2peak" / "oco2_orbit11522_20160831_segment_300-800km.csv"
    pid = upload_one(capsys, path)
    ds = Store(store_env).open(pid).load()
    df = pd.read_csv(path)
    assert ds.sizes["sounding"] == len(df) == 1598
    for column, name, factor in (("xco2", "xco2", 1.0), ("latitude", "latitude", 1.0),
                                 ("longitude", "longitude", 1.0),
                                 ("surface_pressure", "surface_pressure", 100.0),
                                 ("distance_km", "distance", 1.0)):
        np.testing.assert_allclose(ds[name].values, df[column].to_numpy(float) * factor,
                                   rtol=RTOL, err_msg=column)
    assert Store(store_env).get_item(pid).bbox == pytest.approx(bbox_of(df), rel=1e-12)
    assert search_ids(capsys, "--species", "co2", "--bbox", "28,-29,30,-24") == [pid]


def test_oco2peak_distance_only_file_is_refused_with_its_reason(shared_data, store_env, capsys):
    """The file has no latitude/longitude: hubkit cannot place, search, fit or attribute its
    soundings, so it says so (and what to do) instead of storing an unplaceable product."""
    path = shared_data / "oco2peak" / "oco2_orbit11522_20160831_dist_xco2_5700-6700km.csv"
    assert hio.detect_format(path) == "oco2peak-csv"
    code, out, err = run(capsys, "upload", path, "-q")
    assert code == 1 and out == ""
    for words in (path.name, "'latitude'", "'longitude'", "1677 soundings", "expected",
                  "OCO-2 Lite"):
        assert words in err, words
    assert search_ids(capsys) == []


def _broken_csv(shared_data, tmp_path):
    peaks = (shared_data / "oco2peak" / "peaks_out_1808.csv").read_text()
    inv = (shared_data / "oco2peak" / "CO2_emissions_inventory_merged_2018.csv").read_text()
    monthly = (shared_data / "oco2peak" / "xco2_monthly_mean.csv").read_text()
    cases = []

    def write(name, text, fmt, error, words):
        path = tmp_path / name
        path.write_text(text)
        cases.append((path, fmt, error, [name, *words]))

    lines = peaks.splitlines()
    header = lines[0].split(",")
    drop = header.index("sigma")
    write("peaks_missing_sigma.csv", "\n".join(
        ",".join(c for k, c in enumerate(line.split(",")) if k != drop) for line in lines),
        "oco2peak-peaks", SchemaError, ["'sigma'", "missing", "expected"])
    bad = lines[5].split(",")
    bad[header.index("delta")] = "1.2 ppm"
    write("peaks_unit_in_cell.csv", "\n".join(lines[:5] + [",".join(bad)] + lines[6:]),
          "oco2peak-peaks", SchemaError, ["'delta'", "'1.2 ppm'", "expected numbers"])
    write("peaks_truncated.csv", peaks[: len(peaks) // 2].rsplit(",", 3)[0] + '"[5394',
          "oco2peak-peaks", HubkitError, [])
    write("inventory_truncated.csv", inv[: len(inv) // 3].rsplit("\n", 1)[0] + "\n12,abc",
          "oco2peak-inventory", SchemaError, ["'latitude'", "'abc'", "expected numbers"])
    write("monthly_second_time.csv", monthly.replace("xco2;yearmonth", "xco2;yearmonth;date")
          .replace("\n", ";2016-01-01\n").replace("date;2016-01-01", "date"),
          "oco2peak-monthly", SchemaError, ["['date'] unexpected", "only time axis"])
    write("monthly_bad_month.csv", monthly.replace(";1601", ";2016-01"), "oco2peak-monthly",
          SchemaError, ["'yearmonth'", "'2016-01'", "expected YYMM"])
    return cases


def test_broken_oco2peak_copies_are_refused_and_the_store_is_unchanged(shared_data, tmp_path):
    store = Store(str(tmp_path / "store"))
    ingest.upload(store, shared_data / GOSAT)
    before = listing_checksum(store)
    for path, fmt, error, words in _broken_csv(shared_data, tmp_path):
        with pytest.raises(error) as info:
            ingest.upload(store, path, fmt)
        for word in words:
            assert word in str(info.value), (path.name, word, str(info.value))
        assert listing_checksum(store) == before, path.name
