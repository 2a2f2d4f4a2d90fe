"""Synthetic but physically sensible inputs for demos, tests and benchmarks, at any size.

Nothing here reads or writes files: the functions return canonical datasets, which
:mod:`hubkit.io` writers turn into files in the real source layouts.
"""

from __future__ import annotations

import json

import numpy as np
import xarray as xr

__all__ = ["das_field", "das_hybrid_coefficients", "l2_ozone", "oco2_tracks"]

#: OCO-2 takes 3 frames a second of 8 cross-track footprints (Crisp et al. 2017, AMT 10, 59).
FOOTPRINTS = 8
FRAMES_PER_SECOND = 3.0
#: Ground speed of the sub-satellite point of a 705 km sun-synchronous orbit. [m s-1]
GROUND_SPEED = 6.75e3
EARTH_RADIUS = 6.371e6  # [m]
INCLINATION = np.deg2rad(98.2)  # OCO-2 orbit inclination [rad]
PERIOD = 98.8 * 60.0  # OCO-2 orbital period [s]


def oco2_tracks(
    n_orbits: int = 3,
    *,
    seconds: float = 600.0,
    start: str = "2016-08-31T11:50:00",
    lon0: float = 29.0,
    lat0: float = -30.0,
    background: float = 402.0,
    noise: float = 0.7,
    seed: int = 0,
    plumes=None,
    wind: tuple[float, float] = (3.0, -2.0),
    wind_noise: float = 0.3,
    stability: str | float = "B",
) -> list[xr.Dataset]:
    """OCO-2-like daytime ascending tracks of XCO2 soundings, one dataset per orbit.

    Each orbit is a ground track heading north-north-west at the sub-satellite speed, with 8
    footprints across a ~10 km swath, 3 frames a second, cloud gaps (about a third of the
    soundings lost in patches), a regional background (a latitudinal gradient of
    -0.02 ppm per degree towards the north plus a smooth wave) and Gaussian noise. Successive
    orbits follow one orbital period (98.8 min) apart, 24.7° further west, as the Earth turns
    under the orbit.

    Parameters
    ----------
    n_orbits : int
        Number of orbits (datasets).
    seconds : float
        Length of each track. [s]
    start : str
        Time of the first sounding of the first orbit (ISO 8601, UTC).
    lon0, lat0 : float
        Where the first track starts. [°]
    background : float
        Background XCO2 at ``lat0``. [ppm]
    noise : float
        Standard deviation of the single-sounding noise, also written as
        ``xco2_uncertainty``. [ppm]
    seed : int
        Seed of the random generator: the same arguments give the same soundings.
    plumes : None, int or list of dict
        Point sources whose Gaussian plumes (Nassar et al. 2017) the tracks cross. An int
        places that many per orbit at random (evenly along track, 20-60 km downwind of the
        source, 200-3000 kg/s); dicts give ``orbit`` (index), ``along_km`` (where the plume axis
        crosses the track centre, from the track start), ``downwind_km`` (source to crossing)
        and ``emission`` [kg s-1]. The true enhancement of each sounding is in ``xco2_plume``
        [ppm] and the sources in ``attrs['plume_sources']`` (JSON).
    wind : (float, float)
        Eastward and northward wind carrying the plumes. [m s-1]
    wind_noise : float
        Standard deviation of the noise on the reported wind. [m s-1]
    stability : str or float
        Plume spread (:func:`hubkit.co2.emission.plume_sigma_y`).

    Returns
    -------
    list of xarray.Dataset
        Canonical ``oco2-soundings`` datasets (see ``docs/nomenclature.md``).
    """
    rng = np.random.default_rng(seed)
    specs = _plume_specs(plumes, n_orbits, seconds, seed)
    frames = int(seconds * FRAMES_PER_SECOND)
    out = []
    for k in range(n_orbits):
        t_frame = np.arange(frames) / FRAMES_PER_SECOND  # [s]
        along = GROUND_SPEED * t_frame  # [m]
        heading = INCLINATION  # ascending track direction, from east anticlockwise [rad]
        dlat = np.rad2deg(along * np.sin(heading) / EARTH_RADIUS)
        lat_c = lat0 + dlat
        dlon = np.rad2deg(along * np.cos(heading) / (EARTH_RADIUS * np.cos(np.deg2rad(lat_c))))
        lon_c = lon0 - 24.7 * k + dlon
        # footprints across track, ~1.3 km apart, perpendicular to the heading
        offsets = (np.arange(FOOTPRINTS) - (FOOTPRINTS - 1) / 2) * 1.3e3  # [m]
        lat = lat_c[:, None] + np.rad2deg(
            -offsets[None, :] * np.cos(heading) / EARTH_RADIUS
        )
        lon = lon_c[:, None] + np.rad2deg(
            offsets[None, :] * np.sin(heading) / (EARTH_RADIUS * np.cos(np.deg2rad(lat_c[:, None])))
        )
        lon = (lon + 180.0) % 360.0 - 180.0  # later orbits are further west: stay in [-180, 180)
        t0 = np.datetime64(start, "ns") + np.timedelta64(int(PERIOD * k * 1e9), "ns")
        time = t0 + (t_frame * 1e9).astype("timedelta64[ns]")
        time = np.repeat(time[:, None], FOOTPRINTS, axis=1)
        plume, sources = _plumes(k, [p for p in specs if p["orbit"] == k], lat, lon, lat_c,
                                 lon_c, along, wind, stability)
        xco2 = (
            background
            - 0.02 * (lat - lat0)
            + 0.3 * np.sin(np.deg2rad(lat) * 40.0)
            + rng.normal(0.0, noise, lat.shape)
            + plume
        )
        # clouds: a smooth random field thresholded, so gaps come in patches
        cloud = np.convolve(rng.normal(size=frames + 40), np.ones(40) / 40, mode="same")[:frames]
        clear = cloud[:, None] < np.quantile(cloud, 0.67)
        clear = np.broadcast_to(clear, lat.shape).ravel()
        sounding_id = _sounding_ids(time.ravel())
        n = int(clear.sum())
        ds = xr.Dataset(
            {
                "xco2": ("sounding", xco2.ravel()[clear], {"units": "ppm"}),
                "xco2_uncertainty": ("sounding", np.full(n, noise), {"units": "ppm"}),
                "xco2_quality_flag": ("sounding", (rng.random(n) < 0.1).astype(np.int8)),
                "latitude": ("sounding", lat.ravel()[clear], {"units": "degrees_north"}),
                "longitude": ("sounding", lon.ravel()[clear], {"units": "degrees_east"}),
                "time": ("sounding", time.ravel()[clear]),
                "sounding_id": ("sounding", sounding_id[clear]),
                "orbit": ("sounding", np.full(n, 11522 + k, dtype=np.int32)),
                "windspeed_u": ("sounding", np.full(n, wind[0]) + rng.normal(0, wind_noise, n),
                                {"units": "m s-1"}),
                "windspeed_v": ("sounding", np.full(n, wind[1]) + rng.normal(0, wind_noise, n),
                                {"units": "m s-1"}),
                "surface_pressure": ("sounding", 85000.0 + rng.normal(0, 300.0, n),
                                     {"units": "Pa"}),
                "tcwv": ("sounding", np.full(n, 25.0), {"units": "kg m-2"}),
                **({"xco2_plume": ("sounding", plume.ravel()[clear],
                                   {"units": "ppm", "long_name": "true plume enhancement"})}
                   if specs else {}),
            },
            attrs={
                "hubkit_product_type": "oco2-soundings",
                "hubkit_species": "co2",
                "instrument": "OCO-2",
                "platform": "OCO-2",
                "title": f"simulated OCO-2 orbit {11522 + k}",
                "source": "hubkit.simulate.oco2_tracks",
            },
        )
        if specs:
            ds.attrs["plume_sources"] = json.dumps(sources)
        out.append(ds)
    return out


#: Surface pressure and TCWV the simulated plumes are computed for. [Pa], [kg m-2]
PLUME_PRESSURE, PLUME_TCWV = 85000.0, 25.0


def _plume_specs(plumes, n_orbits: int, seconds: float, seed: int) -> list[dict]:
    """The plume crossings to simulate, as dicts (random ones from their own generator)."""
    if plumes is None or plumes == 0:
        return []
    if isinstance(plumes, (int, np.integer)):
        rng = np.random.default_rng([seed, 7])
        length = GROUND_SPEED * seconds / 1e3  # [km]
        out = []
        for k in range(n_orbits):
            at = np.linspace(150.0, length - 150.0, int(plumes))
            at = at + rng.uniform(-0.3, 0.3, at.size) * (at[1] - at[0] if at.size > 1 else 0)
            for a in at:
                out.append({"orbit": k, "along_km": float(a),
                            "downwind_km": float(rng.uniform(20, 60)),
                            "emission": float(rng.uniform(200, 3000))})
        return out
    out = []
    for p in plumes:
        missing = {"orbit", "along_km", "downwind_km", "emission"} - set(p)
        if missing:
            raise ValueError(f"plume {p!r} lacks {sorted(missing)}; expected orbit, along_km, "
                             "downwind_km and emission [kg s-1]")
        out.append(dict(p))
    return out


def _plumes(k, specs, lat, lon, lat_c, lon_c, along, wind, stability):
    """XCO2 enhancement [ppm] of the plumes of orbit ``k`` at every sounding, and the sources."""
    from hubkit.co2.emission import plume_xco2

    total = np.zeros(lat.shape)
    speed = float(np.hypot(*wind))
    sources = []
    if not specs:
        return total, sources
    if speed <= 0:
        raise ValueError(f"wind={wind!r}: plumes need a wind speed > 0 [m s-1]")
    we, wn = wind[0] / speed, wind[1] / speed
    for p in specs:
        lat_x = float(np.interp(p["along_km"] * 1e3, along, lat_c))
        lon_x = float(np.interp(p["along_km"] * 1e3, along, lon_c))
        d = p["downwind_km"] * 1e3
        coslat = np.cos(np.deg2rad(lat_x))
        lat_s = lat_x - np.rad2deg(d * wn / EARTH_RADIUS)
        lon_s = lon_x - np.rad2deg(d * we / (EARTH_RADIUS * coslat))
        east = np.deg2rad(lon - lon_s) * EARTH_RADIUS * np.cos(np.deg2rad(0.5 * (lat + lat_s)))
        north = np.deg2rad(lat - lat_s) * EARTH_RADIUS
        total += plume_xco2(east * we + north * wn, -east * wn + north * we, p["emission"], speed,
                            PLUME_PRESSURE, PLUME_TCWV, stability)
        sources.append({**p, "orbit_number": 11522 + k, "latitude": float(lat_s),
                        "longitude": float(lon_s), "crossing_latitude": lat_x,
                        "crossing_longitude": lon_x, "wind_speed": speed})
    return total, sources


def _sounding_ids(time: np.ndarray) -> np.ndarray:
    """OCO-2 sounding ids ``YYYYMMDDhhmmssTF``: the second, then the tenth of a second the frame
    starts in (0, 3 or 6) and the footprint (1-8), as in the Lite files."""
    seconds = time.astype("datetime64[s]")
    stamp = np.char.replace(
        np.char.replace(np.char.replace(np.datetime_as_string(seconds), "-", ""), "T", ""),
        ":",
        "",
    ).astype(np.int64)
    tenth = ((time - seconds).astype(np.int64) // 100_000_000).clip(0, 9)
    footprint = np.tile(np.arange(1, FOOTPRINTS + 1), time.size // FOOTPRINTS + 1)[: time.size]
    return stamp * 100 + tenth * 10 + footprint


# -- L2 ozone profile retrievals (hubkit.fusion's input) ------------------------------------
# Region owned by the fusion work (issue 3): l2_ozone and its helpers, prefixed _o3_.

#: Simulated instruments: platform, band, top of the retrieval grid [Pa], weighting-function
#: centres [Pa] and width in ln(pressure), target degrees of freedom, the a priori's bias
#: against the climatology, the relative a priori standard deviation.
O3_INSTRUMENTS = {
    "S4-UV": {"platform": "GEO", "band": "UV", "top": 100.0, "dfs": 4.5, "width": 0.55,
              "centres": np.geomspace(40000.0, 150.0, 10), "bias": 1.05, "sd": 0.3},
    "S5-UV": {"platform": "LEO", "band": "UV", "top": 50.0, "dfs": 5.5, "width": 0.5,
              "centres": np.geomspace(50000.0, 80.0, 12), "bias": 1.0, "sd": 0.3},
    "S5-TIR": {"platform": "LEO", "band": "TIR", "top": 500.0, "dfs": 2.5, "width": 0.9,
               "centres": np.geomspace(80000.0, 2000.0, 6), "bias": 0.95, "sd": 0.3},
    "S4-VIS": {"platform": "GEO", "band": "VIS", "top": 100.0, "dfs": 1.1, "width": 1.8,
               "centres": np.array([2500.0, 12000.0]), "bias": 1.0, "sd": 0.3},
}
#: Surface and top of the common retrieval grid. [Pa]
O3_SURFACE_PRESSURE = 101325.0
O3_TOP_PRESSURE = 50.0


def _o3_truth(lat, lon, hours, pressure):
    """The smooth 'true' ozone field: a stratospheric layer peaking near 10 hPa (~8 ppm) over a
    ~40 ppb troposphere, modulated by latitude, longitude and time. [mol mol-1]"""
    lnp = np.log(pressure)
    strat = 8.0e-6 * np.exp(-0.5 * ((lnp - np.log(1000.0)) / 0.95) ** 2)
    trop = 40e-9 * (1.0 + 0.5 * np.exp(-(((lnp - np.log(85000.0)) / 0.3) ** 2)))
    lat, lon, hours = (np.asarray(a, dtype=np.float64)[..., None] for a in (lat, lon, hours))
    wave = (0.15 * np.sin(np.deg2rad(3.0 * lat) + 0.3) * np.cos(np.deg2rad(2.0 * lon) - 0.05
                                                                  * hours)
            + 0.1 * np.cos(np.deg2rad(lat)))
    plume = 0.4 * np.exp(-(((lat - 45.0) / 4.0) ** 2 + ((lon - 10.0) / 6.0) ** 2)) * np.exp(
        -(((lnp - np.log(90000.0)) / 0.4) ** 2))
    return strat * (1.0 + wave) + trop * (1.0 + wave + plume)


def _o3_grid(name: str, n_levels: int, common: bool) -> np.ndarray:
    top = O3_TOP_PRESSURE if common else O3_INSTRUMENTS[name]["top"]
    return np.geomspace(O3_SURFACE_PRESSURE, top, n_levels)


def _o3_templates(name: str, pressure: np.ndarray, gains) -> dict:
    """Optimal-estimation retrieval matrices in relative units (state x / x_a) for a few signal
    levels: averaging kernel, noise covariance, a priori covariance and gain matrix."""
    from hubkit.fusion import profile_covariance  # the same a priori model the fusion uses

    spec = O3_INSTRUMENTS[name]
    lnp = np.log(pressure)
    dlnp = np.gradient(-lnp)
    wf = np.exp(-0.5 * ((lnp[None, :] - np.log(spec["centres"])[:, None]) / spec["width"]) ** 2)
    wf = wf * dlnp[None, :]
    sa = profile_covariance(np.ones_like(pressure), pressure, relative=spec["sd"])
    sa_inv = np.linalg.inv(sa)

    def retrieval(gain):
        k = gain * wf
        hess = k.T @ k + sa_inv
        g = np.linalg.solve(hess, k.T)  # (K^T K + S_a^-1)^-1 K^T, with S_y = I
        return g @ k, g

    def dfs(gain):
        return float(np.trace(retrieval(gain)[0]))

    lo, hi = 1e-3, 1e6  # gain giving the target degrees of freedom, by bisection in log
    for _ in range(80):
        mid = np.sqrt(lo * hi)
        lo, hi = (mid, hi) if dfs(mid) < spec["dfs"] else (lo, mid)
    out = {"A": [], "Sn": [], "G": []}
    for factor in gains:
        a, g = retrieval(np.sqrt(lo * hi) * factor)
        out["A"].append(a)
        out["G"].append(g)
        out["Sn"].append(g @ g.T)
    return {k: np.array(v) for k, v in out.items()} | {"Sa": sa}


def _o3_sampling(rng, layout, bbox, start, hours, spacing, clear_fraction, n_cells, per_cell,
                 names):
    """Where and when each instrument retrieves: (instrument index, lat, lon, time [h])."""
    west, south, east, north = bbox
    if layout == "cells":  # n_cells 1 deg x 1 deg x 1 h boxes, per_cell retrievals in each
        nlat, nlon = int(north - south), int(east - west)
        k = np.arange(n_cells)
        lat0 = south + (k % nlat)
        lon0 = west + (k // nlat) % nlon
        hour0 = k // (nlat * nlon)
        cols = [np.repeat(a, per_cell) for a in (lat0, lon0, hour0)]
        size = n_cells * per_cell
        inst = np.tile(np.arange(per_cell) % len(names), n_cells)
        return (inst, cols[0] + rng.uniform(0.05, 0.95, size),
                cols[1] + rng.uniform(0.05, 0.95, size), cols[2] + rng.uniform(0.05, 0.95, size))
    if layout != "swath":
        raise ValueError(f"layout={layout!r}: expected 'swath' or 'cells'")
    lat_c = np.arange(south + spacing / 2, north, spacing)
    lon_c = np.arange(west + spacing / 2, east, spacing)
    glat, glon = np.meshgrid(lat_c, lon_c, indexing="ij")
    rows = []
    for i, name in enumerate(names):
        geo = O3_INSTRUMENTS[name]["platform"] == "GEO"
        times = np.arange(hours) + 0.5 if geo else np.array([hours / 2.0])
        for t in times:
            # clear sky where a smooth random cloud field is low
            cloud = sum(np.cos(np.deg2rad(glat * rng.uniform(5, 30) + glon * rng.uniform(5, 30))
                               + rng.uniform(0, 2 * np.pi)) for _ in range(4))
            clear = cloud < np.quantile(cloud, clear_fraction)
            size = int(clear.sum())
            rows.append((np.full(size, i), glat[clear] + rng.uniform(-0.4, 0.4, size) * spacing,
                         glon[clear] + rng.uniform(-0.4, 0.4, size) * spacing,
                         np.full(size, t) + rng.uniform(-0.2, 0.2, size)))
    return tuple(np.concatenate(c) for c in zip(*rows, strict=True))


def l2_ozone(
    *,
    instruments=("S4-UV", "S5-UV", "S5-TIR", "S4-VIS"),
    bbox=(0.0, 40.0, 10.0, 50.0),
    start: str = "2024-07-01T09:00:00",
    hours: int = 3,
    spacing: float = 0.5,
    clear_fraction: float = 0.6,
    n_levels: int = 40,
    grid: str = "instrument",
    layout: str = "swath",
    n_cells: int = 100,
    per_cell: int = 3,
    seed: int = 0,
) -> xr.Dataset:
    """Synthetic L2 ozone profile retrievals of several instruments over one region.

    A smooth 3-D 'true' ozone field (a stratospheric layer peaking near 10 hPa, a tropospheric
    background with a boundary-layer plume, waves in latitude, longitude and time) is seen by
    Sentinel-4/5-like instruments: UV (GEO and LEO, 4.5-5.5 degrees of freedom), TIR (LEO, 2.5)
    and VIS (GEO, 1). Each retrieval is a linear optimal estimation (Rodgers 2000, eq. 2.45) with
    Gaussian weighting functions in ln(pressure), unit channel noise, its instrument's own a
    priori (the climatology times an instrument bias) and a priori covariance; the channel count
    is below the level count, so the noise covariances are singular, as in real products. The
    signal level (and so the averaging kernel) varies from retrieval to retrieval. GEO
    instruments retrieve every hour, LEO ones at one overpass, where a smooth cloud field is
    clear.

    Parameters
    ----------
    instruments : sequence of str
        Names from :data:`O3_INSTRUMENTS`.
    bbox : tuple of float
        Region ``(west, south, east, north)``. [°]
    start : str
        Start of the period (ISO 8601, UTC).
    hours : int
        Length of the period. [h]
    spacing : float
        Ground-pixel spacing of the sampling lattice. [°]
    clear_fraction : float
        Share of clear pixels. [1]
    n_levels : int
        Levels of every retrieval grid. [1]
    grid : {"instrument", "common"}
        Each instrument on its own pressure grid (its own top), or all on one grid.
    layout : {"swath", "cells"}
        ``"cells"`` (for benchmarks) puts exactly ``per_cell`` retrievals of successive
        instruments in each of ``n_cells`` 1° × 1° × 1 h boxes filling ``bbox`` hour by hour.
    n_cells, per_cell : int
        Used by ``layout="cells"``. [1]
    seed : int
        Seed of the random generator: the same arguments give the same retrievals.

    Returns
    -------
    xarray.Dataset
        A canonical ``l2-ozone`` dataset (see ``docs/nomenclature.md``); the true profile on each
        retrieval's grid is kept as ``o3_vmr_true`` for validation.
    """
    if grid not in ("instrument", "common"):
        raise ValueError(f"grid={grid!r}: expected 'instrument' or 'common'")
    names = list(instruments)
    unknown = [n for n in names if n not in O3_INSTRUMENTS]
    if unknown:
        raise ValueError(f"unknown instrument(s) {unknown}; expected some of "
                         f"{sorted(O3_INSTRUMENTS)}")
    rng = np.random.default_rng(seed)
    inst, lat, lon, hour = _o3_sampling(rng, layout, bbox, start, hours, spacing,
                                        clear_fraction, n_cells, per_cell, names)
    size, m = inst.size, n_levels
    gains = np.linspace(0.75, 1.25, 6)
    pressure = np.empty((size, m))
    A = np.empty((size, m, m))
    Sn = np.empty((size, m, m))
    Sa = np.empty((size, m, m))
    xa = np.empty((size, m))
    x = np.empty((size, m))
    truth = np.empty((size, m))
    for i, name in enumerate(names):
        sel = np.flatnonzero(inst == i)
        if sel.size == 0:
            continue
        p = _o3_grid(name, m, grid == "common")
        tpl = _o3_templates(name, p, gains)
        pick = rng.integers(0, gains.size, sel.size)
        true_i = _o3_truth(lat[sel], lon[sel], hour[sel], p)
        clim = _o3_truth(np.round(lat[sel] / 10.0) * 10.0, 0.0, 0.0, p)
        prior = clim * O3_INSTRUMENTS[name]["bias"]
        scale = prior[:, :, None] * prior[:, None, :]
        a_rel = tpl["A"][pick]
        g_rel = tpl["G"][pick]
        eps = rng.normal(size=(sel.size, g_rel.shape[-1]))
        rel = np.einsum("rkl,rl->rk", a_rel, true_i / prior - 1.0) + np.einsum(
            "rkc,rc->rk", g_rel, eps)
        pressure[sel] = p
        A[sel] = a_rel * (prior[:, :, None] / prior[:, None, :])
        Sn[sel] = tpl["Sn"][pick] * scale
        Sa[sel] = tpl["Sa"] * scale
        xa[sel] = prior
        x[sel] = prior * (1.0 + rel)
        truth[sel] = true_i
    t0 = np.datetime64(start, "ns")
    time = t0 + (hour * 3600e9).astype("timedelta64[ns]")
    order = np.lexsort((lon, lat, time))
    rl, rll = ("retrieval", "level"), ("retrieval", "level", "level_in")
    ds = xr.Dataset(
        {
            "o3_vmr": (rl, x[order], {"units": "mol mol-1"}),
            "o3_vmr_apriori": (rl, xa[order], {"units": "mol mol-1"}),
            "o3_vmr_true": (rl, truth[order], {"units": "mol mol-1",
                                              "long_name": "simulated true ozone"}),
            "averaging_kernel": (rll, A[order], {"units": "1"}),
            "noise_covariance": (rll, Sn[order], {"units": "mol2 mol-2"}),
            "apriori_covariance": (rll, Sa[order], {"units": "mol2 mol-2"}),
            "pressure": (rl, pressure[order], {"units": "Pa"}),
            "surface_pressure": ("retrieval", np.full(size, O3_SURFACE_PRESSURE),
                                 {"units": "Pa"}),
            "instrument": ("retrieval", np.array(names, dtype=object)[inst[order]]),
        },
        coords={
            "latitude": ("retrieval", lat[order], {"units": "degrees_north"}),
            "longitude": ("retrieval", lon[order], {"units": "degrees_east"}),
            "time": ("retrieval", time[order]),
        },
        attrs={
            "hubkit_product_type": "l2-ozone",
            "hubkit_species": "o3",
            "instrument": ", ".join(sorted(set(names))),
            "title": "simulated L2 ozone profile retrievals",
            "source": "hubkit.simulate.l2_ozone",
        },
    )
    return ds
# -- end of the L2 ozone region ---------------------------------------------------------------


# -- DAS-like ozone and temperature fields on hybrid levels (tropospheric ozone, issue 4) ------
#: Mountains of the simulated orography: (lat [°N], lon [°E], height [m], lat radius [°],
#: lon radius [°]) — Tibetan Plateau, Andes, Rockies, Greenland, East Antarctica, Alps.
_MOUNTAINS = ((32.0, 88.0, 5000.0, 6.0, 12.0), (-18.0, -68.0, 4000.0, 12.0, 3.0),
              (42.0, -110.0, 2200.0, 10.0, 8.0), (73.0, -40.0, 2500.0, 8.0, 12.0),
              (-80.0, 90.0, 3000.0, 8.0, 90.0), (46.5, 10.0, 1500.0, 2.0, 4.0))


def das_hybrid_coefficients(n_levels: int = 60, top: float = 64000.0):
    """Hybrid sigma-pressure interface coefficients ``(a [Pa], b [1])``, top first.

    Reference interface heights stretch from the surface (spacing ``~0.2 top / n``) to ``top``
    (geopotential, US Standard Atmosphere pressures); the top interface is at ``p = 0`` as in
    the ECMWF tables; ``b = ((σ - 0.2) / 0.8)^1.5`` above ``σ = p_ref / 101325 = 0.2`` (pure
    pressure levels above ~200 hPa).
    """
    from hubkit.ozone import standard_atmosphere

    x = np.linspace(0.0, 1.0, n_levels + 1)
    z = top * (0.2 * x + 0.3 * x**2 + 0.5 * x**3)
    _, p_ref = standard_atmosphere(z[:-1])
    sigma = np.append(p_ref / 101325.0, 0.0)
    b = np.clip((sigma - 0.2) / 0.8, 0.0, 1.0) ** 1.5
    a = np.maximum(101325.0 * (sigma - b), 0.0)
    a[-1] = b[-1] = 0.0
    return a[::-1].copy(), b[::-1].copy()


def das_field(nlon: int = 360, nlat: int = 180, ntime: int = 8, n_levels: int = 60, *,
              start: str = "2024-01-15T00", step_hours: float = 3.0,
              level_order: str = "top-first", dtype=np.float32, seed: int = 0) -> xr.Dataset:
    """A DAS-like ozone and temperature field on hybrid levels, with orography, any grid size.

    Temperature: a troposphere cooling at 6.5 K/km from a latitude-dependent surface value up to
    a tropopause at 16.5 km (tropics) to 8.5 km (poles), an isothermal 2-3 km above it and a
    stratosphere warming at 1.5 K/km, with travelling waves; north of 80°N (polar night) a
    profile cooling at 3 K/km to 25 km, which has no lapse-rate tropopause. Ozone: 25-60 ppbv in
    the troposphere (more over land in the north, a travelling plume), rising above the
    tropopause to a stratospheric maximum of 8 ppmv near 32 km. Surface pressure follows the
    orography with synoptic waves. Deterministic for a ``seed``.

    Parameters
    ----------
    nlon, nlat, ntime, n_levels : int
        Grid size: cell centres of a regular global grid (1° × 1° for 360 × 180).
    start : str
        First time (UTC).
    step_hours : float
        Time step. [h]
    level_order : {"top-first", "bottom-first"}
        Order of the level and interface dims (ECMWF and TM5 are top first).
    dtype : numpy dtype
        Of ``o3_vmr`` and ``temperature``.

    Returns
    -------
    xarray.Dataset
        ``o3_vmr`` [mol mol-1] and ``temperature`` [K] (time, level, latitude, longitude),
        ``surface_pressure`` [Pa] (time, latitude, longitude), ``surface_altitude`` [m]
        (latitude, longitude), ``hybrid_a`` [Pa] and ``hybrid_b`` [1] (interface).
    """
    from hubkit.ozone import hybrid_pressure, hydrostatic_altitude

    if level_order not in ("top-first", "bottom-first"):
        raise ValueError(f"level_order={level_order!r}: expected 'top-first' or 'bottom-first'")
    rng = np.random.default_rng(seed)
    lat = -90.0 + (np.arange(nlat) + 0.5) * 180.0 / nlat
    lon = -180.0 + (np.arange(nlon) + 0.5) * 360.0 / nlon
    hours = np.arange(ntime) * step_hours
    time = np.datetime64(start, "s") + (hours * 3600).astype("timedelta64[s]")
    la, lo = np.meshgrid(np.deg2rad(lat), np.deg2rad(lon), indexing="ij")
    zs = np.zeros((nlat, nlon))
    for mlat, mlon, h, rlat, rlon in _MOUNTAINS:
        dlon = (lon[None, :] - mlon + 180.0) % 360.0 - 180.0
        zs += h * np.exp(-((lat[:, None] - mlat) / rlat) ** 2 - (dlon / rlon) ** 2)
    phase = rng.uniform(0, 2 * np.pi, 3)
    th = 2 * np.pi * hours[:, None, None] / 24.0
    wave = (np.sin(3 * lo[None] - 0.3 * th + phase[0]) * np.cos(la[None]) ** 2
            + 0.5 * np.sin(5 * lo[None] + 2 * la[None] - 0.5 * th + phase[1]))  # (t, y, x)
    t0 = 300.0 - 45.0 * np.sin(la) ** 2 + 2.0 * wave  # sea-level temperature [K]
    z_tp = 8500.0 + 8000.0 * np.cos(la) ** 4 + 600.0 * wave  # tropopause [m]
    ps = 101325.0 * np.exp(-zs / 8000.0) * (1.0 + 0.012 * wave)
    a, b = das_hybrid_coefficients(n_levels)  # top first
    ph, pf = hybrid_pressure(a[::-1], b[::-1], ps)  # bottom first, (t, y, x, level)
    # temperature at a first guess of the heights, then again on the hydrostatic heights
    z = np.broadcast_to(zs[..., None], pf.shape) - 8000.0 * np.log(pf / ps[..., None])
    for _ in range(2):
        zz = z
        t_trop = t0[..., None] - 6.5e-3 * zz
        t_at_tp = t0[..., None] - 6.5e-3 * z_tp[..., None]
        above = zz - z_tp[..., None]
        t_strat = t_at_tp + np.where(above < 2500.0, 0.0, 1.5e-3 * (above - 2500.0))
        temp = np.where(above < 0, t_trop, t_strat)
        temp = np.where(zz > 48000.0, temp - 4.0e-3 * (zz - 48000.0), temp)  # mesosphere
        polar = 1.0 / (1.0 + np.exp(-(np.rad2deg(la)[None, ..., None] - 80.0) / 1.0))
        t_polar = 250.0 - 3.0e-3 * np.minimum(zz, 25000.0)
        temp = (1.0 - polar) * temp + polar * t_polar
        temp = np.maximum(temp, 160.0)
        _, z = hydrostatic_altitude(ph, temp, np.broadcast_to(zs, ps.shape))
    land = np.clip(zs / 1000.0, 0, 1) + 0.5 / (1.0 + np.exp(-(np.rad2deg(la) - 20.0) / 6.0))
    trop = 25e-9 + 15e-9 * land[None] + 10e-9 * (1 + wave)
    plume = 40e-9 * np.exp(-((lat[None, :, None] - 30.0) / 6.0) ** 2
                           - (((lon[None, None, :] - 110.0 - 2.0 * hours[:, None, None]
                                + 180.0) % 360.0 - 180.0) / 15.0) ** 2)
    surf = trop + plume
    zmax = 32000.0 - 6000.0 * np.sin(la) ** 2
    strat = 8e-6 * np.exp(-((z - zmax[None, ..., None]) / 9000.0) ** 2)
    ramp = 0.5 * (1.0 + np.tanh((z - z_tp[..., None] - 1000.0) / 1200.0))
    o3 = surf[..., None] * np.exp(-np.maximum(z - zs[..., None], 0) / 20000.0) * (1 - ramp) \
        + np.maximum(strat, 100e-9) * ramp
    dims = ("time", "level", "latitude", "longitude")
    flip = slice(None, None, -1) if level_order == "top-first" else slice(None)
    o3 = np.moveaxis(o3, -1, 1)[:, flip].astype(dtype)
    temp = np.moveaxis(temp, -1, 1)[:, flip].astype(dtype)
    if level_order == "bottom-first":
        a, b = a[::-1].copy(), b[::-1].copy()
    return xr.Dataset(
        {
            "o3_vmr": (dims, o3, {"units": "mol mol-1", "long_name": "ozone volume mixing ratio",
                                  "standard_name": "mole_fraction_of_ozone_in_air"}),
            "temperature": (dims, temp, {"units": "K", "standard_name": "air_temperature"}),
            "surface_pressure": (("time", "latitude", "longitude"), ps,
                                 {"units": "Pa", "standard_name": "surface_air_pressure"}),
            "surface_altitude": (("latitude", "longitude"), zs,
                                 {"units": "m", "standard_name": "surface_altitude"}),
            "hybrid_a": ("interface", a, {"units": "Pa", "long_name": "hybrid coefficient a "
                                          "(ap) of the level interfaces"}),
            "hybrid_b": ("interface", b, {"units": "1", "long_name": "hybrid coefficient b "
                                          "of the level interfaces"}),
        },
        coords={
            "time": ("time", time),
            "level": ("level", np.arange(1, n_levels + 1)[flip] if level_order == "top-first"
                      else np.arange(1, n_levels + 1)[::-1],
                      {"long_name": "model level number (1 = top)",
                       "standard_name": "atmosphere_hybrid_sigma_pressure_coordinate",
                       "formula_terms": "ap: hybrid_a b: hybrid_b ps: surface_pressure"}),
            "latitude": ("latitude", lat, {"units": "degrees_north"}),
            "longitude": ("longitude", lon, {"units": "degrees_east"}),
        },
        attrs={"title": "simulated DAS ozone and temperature on hybrid levels",
               "source": "hubkit.simulate.das_field", "hubkit_species": "o3"},
    )
# -- end of the DAS field region ---------------------------------------------------------------
