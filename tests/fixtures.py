"""Small source files in their real raw layouts, written with netCDF4 (or plain text) directly.

Independent of the readers (no VARIABLE_MAP is used here), so a reader bug cannot hide in a
fixture written by the same code. Each function takes a path, writes one file and returns the
path. Values are physically sensible: an OCO-2 track crossing the South African Highveld on
2016-08-31 near 11:55 UTC with XCO2 near 403 ppm and a small plume, Mauna Loa hourly CO2 or CH4,
ozone profiles from 1000 to 1 hPa.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import netCDF4
import numpy as np

__all__ = [
    "LITE_START",
    "write_cf_grid_fixture",
    "write_l2_ozone_fixture",
    "write_lite_fixture",
    "write_obspack_fixture",
    "write_oco2peak_segment_csv",
    "write_oco2peak_semicolon_csv",
]

#: First sounding of the Lite fixture (UTC); 1472644520 s after 1970-01-01.
LITE_START = datetime(2016, 8, 31, 11, 55, 20, tzinfo=timezone.utc)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_FRAME = 1.0 / 3.0  # OCO-2 frame period [s]; 8 footprints per frame


def _track(n: int, seed: int = 0):
    """Times, ids, footprints, latitudes, longitudes and XCO2 of ``n`` soundings along a track."""
    rng = np.random.default_rng(seed)
    frame = np.arange(n) // 8
    footprint = np.arange(n) % 8 + 1
    seconds = np.array([(LITE_START - _EPOCH).total_seconds() + f * _FRAME for f in frame])
    ids = []
    for s, fp in zip(seconds, footprint, strict=True):
        t = _EPOCH + timedelta(seconds=float(s))
        ids.append(int(t.strftime("%Y%m%d%H%M%S")) * 100 + (t.microsecond // 100_000) * 10
                   + int(fp))
    lat = -28.0 + 0.02 * frame + 0.001 * (footprint - 4.5)
    lon = 29.5 - 0.004 * frame + 0.012 * (footprint - 4.5)
    plume = 2.0 * np.exp(-0.5 * ((lat - lat.mean()) / 0.05) ** 2)
    xco2 = 403.0 + plume + rng.normal(0.0, 0.4, n)
    return seconds, np.array(ids, dtype=np.int64), footprint, lat, lon, xco2


def _var(group, name, dtype, values, units=None, dims=("sounding_id",), fill=None, **attrs):
    var = group.createVariable(name, dtype, dims, fill_value=fill)
    if units is not None:
        var.units = units
    for key, value in attrs.items():
        setattr(var, key, value)
    var[:] = values
    return var


def write_lite_fixture(path, n: int = 40, *, xco2_units: str = "ppm", all_nan: bool = False,
                       omit: tuple[str, ...] = ()) -> Path:
    """An OCO-2 Lite file (root + Sounding/Meteorology/Retrieval groups), ``n`` soundings.

    ``Retrieval/psurf`` of the first sounding is exactly 850 hPa; ``xco2_units`` sets the units
    attribute of ``xco2`` (values are scaled for 'mol mol-1', left alone otherwise); ``all_nan``
    fills ``xco2`` with fill values; ``omit`` lists raw variables (``"latitude"``,
    ``"Retrieval/psurf"`` …) to leave out.
    """
    path = Path(path)
    seconds, ids, footprint, lat, lon, xco2 = _track(n)
    if xco2_units == "mol mol-1":
        xco2 = xco2 * 1e-6
    if all_nan:
        xco2 = np.full(n, -999999.0)
    frame = np.arange(n) // 8
    missing = {"missing_value": np.float32(-999999.0)}  # as in the GES DISC Lite files
    root = {
        "sounding_id": ("i8", ids, None, {"long_name": "sounding id"}),
        "time": ("f8", seconds, "seconds since 1970-01-01 00:00:00", {"long_name": "time"}),
        "latitude": ("f4", lat, "degrees_north", {"long_name": "latitude"}),
        "longitude": ("f4", lon, "degrees_east", {"long_name": "longitude"}),
        "xco2": ("f4", xco2, xco2_units, {"long_name": "XCO2 (bias-corrected)"}),
        "xco2_uncertainty": ("f4", np.full(n, 0.65), "ppm", {}),
        "xco2_quality_flag": ("i1", (np.arange(n) % 5 == 4).astype("i1"), None, {}),
    }
    groups = {
        "Sounding": {
            "orbit": ("i4", np.full(n, 11522), None, {}),
            "footprint": ("i1", footprint, None, {}),
            "altitude": ("f4", 1500.0 + 10.0 * frame, "m", {}),
            "land_water_indicator": ("i1", np.zeros(n), None, {}),
            "land_fraction": ("f4", np.full(n, 100.0), "Percent", {}),
        },
        "Meteorology": {
            "windspeed_u_met": ("f4", np.full(n, -1.7), "m/s", {}),
            "windspeed_v_met": ("f4", np.full(n, -1.6), "m s-1", {}),
            "psurf_apriori_o2a": ("f4", 851.0 - 0.25 * frame, "hPa", {}),
        },
        "Retrieval": {
            "psurf": ("f4", 850.0 - 0.25 * frame, "hPa", {}),
            "tcwv": ("f4", np.full(n, 25.0), "kg m^-2", {}),
        },
    }
    with netCDF4.Dataset(path, "w", format="NETCDF4") as nc:
        nc.Conventions = "CF-1.6"
        nc.title = "OCO-2 Lite test fixture"
        nc.createDimension("sounding_id", n)
        for name, (dtype, values, units, attrs) in root.items():
            if name not in omit:
                _var(nc, name, dtype, values, units, **(missing if dtype[0] == "f" else {}),
                     **attrs)
        for group_name, variables in groups.items():
            group = nc.createGroup(group_name)
            for name, (dtype, values, units, attrs) in variables.items():
                if f"{group_name}/{name}" not in omit:
                    _var(group, name, dtype, values, units,
                         **(missing if dtype[0] == "f" else {}), **attrs)
    return path


def write_oco2peak_semicolon_csv(path, n: int = 24) -> Path:
    """The oco2peak extract: ``;``-separated, every row with a sounding id, pressures in hPa."""
    path = Path(path)
    _, ids, _, lat, lon, xco2 = _track(n, seed=1)
    lines = ["sounding_id;latitude;longitude;xco2;xco2_uncert;orbit;windspeed_u;windspeed_v;"
             "surface_pressure;surface_pressure_apriori;land_water_indicator;land_fraction"]
    for i in range(n):
        lines.append(
            f"{ids[i]};{lat[i]:.6f};{lon[i]:.6f};{xco2[i]:.6f};0.65;11522;-1.7;-1.6;"
            f"{850.0 - 0.25 * i};{851.0 - 0.25 * i};0;100.0"
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def write_oco2peak_segment_csv(path, n: int = 30, *, every: int | None = 10) -> Path:
    """The ``,``-separated segment layout with distance; only every ``every``-th row has an id
    (rows 5, 5 + every …; none when ``every`` is None).

    Rows are 2 km apart starting at 300 km, one sounding per 0.3 s (about 6.7 km/s).
    """
    path = Path(path)
    rng = np.random.default_rng(2)
    lines = ["orbit,sounding_id,distance_km,latitude,longitude,xco2,windspeed_u,windspeed_v,"
             "surface_pressure,aux_is_interpolated"]
    start = datetime(2016, 8, 31, 11, 55, 30)
    for i in range(n):
        t = start + timedelta(seconds=0.3 * i)
        sid = ""
        if every is not None and i % every == 5:
            sid = f"{t.strftime('%Y%m%d%H%M%S')}{t.microsecond // 100_000}{i % 8 + 1}"
        lines.append(
            f"11522,{sid},{300.0 + 2.0 * i:.3f},{-28.4 + 0.018 * i:.6f},{29.49 - 0.004 * i:.6f},"
            f"{403.0 + rng.normal(0, 0.4):.6f},-0.5,-0.7,846.9,{'False' if sid else 'True'}"
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def write_obspack_fixture(path, n: int = 48, *, species: str = "co2",
                          omit: tuple[str, ...] = ()) -> Path:
    """An ObsPack surface in-situ file: hourly ``species`` at Mauna Loa from 2016-08-31 00:00 UTC.

    ``value`` is in mol mol-1 (CO2 near 404 ppm, CH4 near 1850 ppb); the last value_std_dev is a
    fill value; ``qcflag`` is a (obs, 3) character array.
    """
    path = Path(path)
    hours = np.arange(n)
    seconds = 1472601600 + 3600 * hours  # 2016-08-31T00:00:00Z
    base = {"co2": 404.0e-6, "ch4": 1850.0e-9, "n2o": 329.0e-9, "co": 90.0e-9}[species]
    value = base * (1.0 + 0.002 * np.sin(2 * np.pi * hours / 24.0))
    std = np.full(n, base * 5e-4)
    std[-1] = -1e34
    qc = np.array([list("..." if h % 7 else "..P") for h in hours], dtype="S1")
    with netCDF4.Dataset(path, "w", format="NETCDF4") as nc:
        nc.createDimension("obs", None)
        nc.createDimension("calendar_components", 6)
        nc.createDimension("qc_len", 3)
        nc.createDimension("string_of_8chars", 8)
        nc.setncatts({
            "Conventions": "CF-1.5", "dataset_parameter": species, "site_code": "MLO",
            "site_name": "Mauna Loa, Hawaii", "site_country": "United States",
            "site_latitude": 19.536, "site_longitude": -155.576, "site_elevation": 3397.0,
            "dataset_project": "surface-insitu", "dataset_platform": "fixed",
            "dataset_intake_ht": 40.0, "lab_1_abbr": "NOAA",
        })
        variables = {
            "time": ("i4", seconds, "seconds since 1970-01-01T00:00:00Z", ("obs",)),
            "time_components": ("i4", np.array([[2016, 8, 31 + h // 24, h % 24, 0, 0]
                                                for h in hours]), None,
                                ("obs", "calendar_components")),
            "value": ("f4", value, "mol mol-1", ("obs",)),
            "value_std_dev": ("f4", std, "mol mol-1", ("obs",)),
            "nvalue": ("i4", np.full(n, 60), None, ("obs",)),
            "latitude": ("f4", np.full(n, 19.536), "degrees_north", ("obs",)),
            "longitude": ("f4", np.full(n, -155.576), "degrees_east", ("obs",)),
            "altitude": ("f4", np.full(n, 3437.0), "m", ("obs",)),
            "obs_flag": ("i4", (hours % 7 != 0).astype("i4"), None, ("obs",)),
        }
        for name, (dtype, values, units, dims) in variables.items():
            if name not in omit:
                _var(nc, name, dtype, values, units, dims=dims,
                     fill=-1e34 if dtype == "f4" else None)
        if "qcflag" not in omit:
            _var(nc, "qcflag", "S1", qc, None, dims=("obs", "qc_len"))
        instrument = np.array([list("LGR-10\0\0")] * n, dtype="S1")
        _var(nc, "instrument", "S1", instrument, None, dims=("obs", "string_of_8chars"))
    return path


def write_l2_ozone_fixture(path, n: int = 6, levels: int = 12, *, vmr_units: str = "ppmv",
                           pressure_units: str = "hPa", level_in: int | None = None,
                           omit: tuple[str, ...] = ()) -> Path:
    """An L2 ozone file in the hubkit layout: ``n`` retrievals on ``levels`` pressure levels.

    Pressure from 1000 to 1 hPa (log-spaced, in ``pressure_units``), ozone peaking near 10 hPa at
    about 8 ppmv (written in ``vmr_units``, covariances in its square), averaging kernels that
    smooth over about two levels. ``level_in`` other than ``levels`` makes the matrices
    non-square (a broken file).
    """
    path = Path(path)
    level_in = levels if level_in is None else level_in
    scale = {"ppmv": 1.0, "ppbv": 1e3, "mol mol-1": 1e-6}[vmr_units]
    p_hpa = np.logspace(3, 0, levels)
    z = -7.0 * np.log(p_hpa / 1000.0)  # approximate altitude [km]
    vmr_ppmv = 0.03 + 8.0 * np.exp(-0.5 * ((z - 32.0) / 7.0) ** 2)
    rng = np.random.default_rng(3)
    k_grid = np.arange(level_in)
    kernel = np.exp(-0.5 * ((np.arange(levels)[:, None] - k_grid[None, :]) / 1.0) ** 2)
    kernel *= 0.8 / kernel.sum(axis=1, keepdims=True)
    noise = np.diag((0.1 * vmr_ppmv) ** 2)[:, :level_in] if level_in == levels else \
        np.zeros((levels, level_in))
    apriori_cov = np.diag((0.3 * vmr_ppmv) ** 2)[:, :level_in] if level_in == levels else \
        np.zeros((levels, level_in))
    instruments = ["IASI-A", "GOME-2A", "MLS"]
    with netCDF4.Dataset(path, "w", format="NETCDF4") as nc:
        nc.hubkit_format = "l2-ozone"
        nc.Conventions = "CF-1.10"
        nc.title = "L2 ozone test fixture"
        nc.createDimension("retrieval", n)
        nc.createDimension("level", levels)
        nc.createDimension("level_in", level_in)
        rl, rll = ("retrieval", "level"), ("retrieval", "level", "level_in")
        cov = f"{vmr_units}2" if vmr_units != "mol mol-1" else "mol2 mol-2"
        p_factor = {"hPa": 1.0, "Pa": 100.0}[pressure_units]
        variables = {
            "o3_vmr": ("f8", (vmr_ppmv * (1 + 0.05 * rng.standard_normal((n, levels))))
                       * scale, vmr_units, rl),
            "o3_vmr_apriori": ("f8", np.tile(vmr_ppmv, (n, 1)) * scale, vmr_units, rl),
            "averaging_kernel": ("f8", np.tile(kernel, (n, 1, 1)), "1", rll),
            "noise_covariance": ("f8", np.tile(noise, (n, 1, 1)) * scale**2, cov, rll),
            "apriori_covariance": ("f8", np.tile(apriori_cov, (n, 1, 1)) * scale**2, cov, rll),
            "pressure": ("f8", np.tile(p_hpa, (n, 1)) * p_factor, pressure_units, rl),
            "surface_pressure": ("f8", np.full(n, 1000.0) * p_factor, pressure_units,
                                 ("retrieval",)),
            "latitude": ("f8", np.linspace(40.0, 45.0, n), "degrees_north", ("retrieval",)),
            "longitude": ("f8", np.linspace(5.0, 12.0, n), "degrees_east", ("retrieval",)),
            "time": ("f8", 1472601600.0 + 600.0 * np.arange(n),
                     "seconds since 1970-01-01 00:00:00", ("retrieval",)),
        }
        for name, (dtype, values, units, dims) in variables.items():
            if name not in omit:
                _var(nc, name, dtype, values, units, dims=dims)
        if "instrument" not in omit:
            var = nc.createVariable("instrument", str, ("retrieval",))
            for i in range(n):
                var[i] = instruments[i % len(instruments)]
    return path


def write_cf_grid_fixture(path, *, species: str | None = "co2") -> Path:
    """A small CF gridded field (time, lat, lon) of CO2 mole fraction in ppm."""
    path = Path(path)
    with netCDF4.Dataset(path, "w", format="NETCDF4") as nc:
        nc.Conventions = "CF-1.8"
        if species:
            nc.species = species
        for name, size in (("time", 2), ("lat", 3), ("lon", 4)):
            nc.createDimension(name, size)
        _var(nc, "time", "f8", [0.0, 6.0], "hours since 2016-08-31 00:00:00", dims=("time",))
        _var(nc, "lat", "f4", [-30.0, -25.0, -20.0], "degrees_north", dims=("lat",))
        _var(nc, "lon", "f4", [25.0, 27.5, 30.0, 32.5], "degrees_east", dims=("lon",))
        _var(nc, "co2", "f4", np.full((2, 3, 4), 404.0), "ppm", dims=("time", "lat", "lon"),
             standard_name="mole_fraction_of_carbon_dioxide_in_air")
    return path
