"""Simulated OCO-2-like soundings along tracks, with CO2 plumes of known emission."""

from __future__ import annotations

import json

import numpy as np
import xarray as xr

from hubkit import schemas
from hubkit.constants import EARTH_RADIUS
from hubkit.errors import SimulationInputError

__all__ = ["oco2_tracks"]

#: OCO-2 takes 3 frames a second of 8 cross-track footprints (Crisp et al. 2017, AMT 10, 59).
FOOTPRINTS = 8
FRAMES_PER_SECOND = 3.0
#: Ground speed of the sub-satellite point of a 705 km sun-synchronous orbit. [m s-1]
GROUND_SPEED = 6.75e3
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
                "hubkit_product_type": schemas.OCO2_SOUNDINGS.product_type,
                "hubkit_species": "co2",
                "instrument": "OCO-2",
                "platform": "OCO-2",
                "title": f"simulated OCO-2 orbit {11522 + k}",
                "source": "hubkit.simulate.oco2_tracks",
                "hubkit_simulated": "true",
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
            raise SimulationInputError(f"plume {p!r} lacks {sorted(missing)}; expected orbit, "
                                       "along_km, downwind_km and emission [kg s-1]")
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
        raise SimulationInputError(f"wind={wind!r}: plumes need a wind speed > 0 [m s-1]")
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


