"""Synthetic surface-albedo, aerosol and cloud maps: the inputs of the surface UV besides ozone.

Physically sensible, not realistic: magnitudes and patterns as in the climatologies, not the
weather of a day.

* Surface albedo in the UV: 0.03-0.08 for snow-free land and sea (Feister & Grewe 1995 [1]_);
  fresh snow 0.8-0.9 (Blumthaler & Ambach 1988 [2]_). Snow covers the Antarctic and Greenland
  all year, the northern high latitudes in their winter (poleward of 55°N in January, of 72°N
  in July) and the Alps (45.5-48°N, 5.5-14°E) in winter.
* Aerosol optical depth at 550 nm: 0.05 over the oceans to 0.2 over the mid-latitude
  continents and up to 0.5 in the Saharan dust belt (Kinne et al. 2013 [3]_); single-scattering
  albedo 0.97 (marine) to 0.88 (dust and polluted continental) in the UV.
* Cloud optical thickness: patchy, about half the cells clear; in cloudy cells a log-normal
  thickness of median 8 (2-60), moving with the hours.

References
----------
.. [1] Feister & Grewe, Photochem. Photobiol. 62, 736-744, 1995.
   doi:10.1111/j.1751-1097.1995.tb08723.x
.. [2] Blumthaler & Ambach, Photochem. Photobiol. 48, 85-88, 1988.
   doi:10.1111/j.1751-1097.1988.tb02790.x
.. [3] Kinne et al., J. Adv. Model. Earth Syst. 5, 704-740, 2013. doi:10.1002/jame.20035
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

__all__ = ["aerosol", "cloud", "surface_albedo"]

#: Snow-covered boxes besides the latitude rules: (lat min, lat max, lon min, lon max) [°].
_ALPS = (45.5, 48.0, 5.5, 14.0)
_GREENLAND = (60.0, 83.0, -55.0, -20.0)
#: The Saharan dust belt: (lat min, lat max, lon min, lon max) [°].
_SAHARA = (12.0, 32.0, -18.0, 35.0)


def _grid(nlon: int, nlat: int):
    lat = -90.0 + (np.arange(nlat) + 0.5) * 180.0 / nlat
    lon = -180.0 + (np.arange(nlon) + 0.5) * 360.0 / nlon
    return lat, lon


def _times(start, hours, step_hours):
    if start is None:
        return None
    n = max(1, int(round(hours / step_hours)))
    return pd.date_range(pd.Timestamp(start), periods=n,
                         freq=pd.Timedelta(hours=step_hours)).to_numpy("datetime64[ns]")


def _setup(nlon, nlat, start, hours, step_hours, seed):
    """Random generator, grid, times (or None) and hours since the first time."""
    times = _times(start, hours, step_hours)
    h = (times - times[0]) / np.timedelta64(1, "h") if times is not None else np.zeros(1)
    return np.random.default_rng(seed), *_grid(nlon, nlat), times, h


def _in_box(lat2, lon2, box):
    return (lat2 >= box[0]) & (lat2 <= box[1]) & (lon2 >= box[2]) & (lon2 <= box[3])


def _smooth(rng, lat, lon, hours, waves: int = 12, drift: float = 10.0):
    """Smooth random field of about unit variance, (time, lat, lon), drifting east with time
    at ``drift`` degrees of longitude per day."""
    la, lo = np.meshgrid(np.radians(lat), np.radians(lon), indexing="ij")
    out = np.zeros((len(hours), lat.size, lon.size))
    for _ in range(waves):
        k = rng.integers(1, 9)
        m = rng.uniform(1.0, 6.0)
        phase = rng.uniform(0, 2 * np.pi)
        shift = np.radians(drift) * np.asarray(hours)[:, None, None] / 24.0
        out += np.cos(k * (lo[None] - shift) + m * la[None] + phase)
    return out * np.sqrt(2.0 / waves)


def _dataset(product_type, variables, lat, lon, times, title):
    coords = {"latitude": ("latitude", lat, {"units": "degrees_north",
                                             "standard_name": "latitude"}),
              "longitude": ("longitude", lon, {"units": "degrees_east",
                                               "standard_name": "longitude"})}
    dims = ("latitude", "longitude")
    if times is not None:
        coords["time"] = ("time", times, {"standard_name": "time"})
        dims = ("time",) + dims
    data = {name: (dims, values if times is not None else values[0], attrs)
            for name, (values, attrs) in variables.items()}
    return xr.Dataset(data, coords=coords, attrs={
        "title": title, "Conventions": "CF-1.10", "hubkit_product_type": product_type,
        "source": "hubkit.simulate.uv_inputs", "hubkit_simulated": "true"})


def surface_albedo(nlon: int = 72, nlat: int = 36, *, start: str | None = None,
                   hours: float = 24.0, step_hours: float = 24.0, seed: int = 0) -> xr.Dataset:
    """A UV surface-albedo map (``surface-albedo`` product), static or per time.

    Parameters
    ----------
    nlon, nlat : int
        Regular global grid of cell centres.
    start : str, optional
        First time (UTC); None for a static map without a time dim (the season is then
        January's).
    hours, step_hours : float
        Span and step of the times. [h]
    seed : int
        Random seed (the snow-free albedo varies by ±0.015).

    Returns
    -------
    xarray.Dataset
        ``surface_albedo`` [1] on ([time,] latitude, longitude), with the CF standard name.
    """
    rng = np.random.default_rng(seed)
    lat, lon = _grid(nlon, nlat)
    times = _times(start, hours, step_hours)
    months = (pd.DatetimeIndex(times).month.to_numpy() if times is not None
              else np.array([1]))
    lat2, lon2 = np.meshgrid(lat, lon, indexing="ij")
    base = 0.05 + 0.015 * np.tanh(_smooth(rng, lat, lon, [0.0])[0])
    out = []
    for month in months:
        # northern snow line: 55°N in January, 72°N in July (a cosine over the year)
        snow_line = 63.5 - 8.5 * np.cos(2 * np.pi * (month - 1) / 12.0)
        snow = np.clip((lat2 - snow_line) / 5.0, 0.0, 1.0)
        snow = np.maximum(snow, np.clip((-lat2 - 62.0) / 3.0, 0.0, 1.0))  # Antarctica
        snow = np.maximum(snow, 1.0 * _in_box(lat2, lon2, _GREENLAND))
        winter = month in (11, 12, 1, 2, 3, 4)
        snow = np.maximum(snow, (0.9 if winter else 0.2) * _in_box(lat2, lon2, _ALPS))
        out.append(base + snow * (0.85 - base))
    attrs = {"units": "1", "long_name": "surface albedo (Lambertian, UV)",
             "standard_name": "surface_albedo"}
    return _dataset("surface-albedo", {"surface_albedo": (np.stack(out), attrs)}, lat, lon,
                    times, "Simulated UV surface albedo")


def aerosol(nlon: int = 72, nlat: int = 36, *, start: str | None = None, hours: float = 24.0,
            step_hours: float = 6.0, seed: int = 0) -> xr.Dataset:
    """Aerosol optical depth at 550 nm and single-scattering albedo (``aerosol`` product).

    Parameters
    ----------
    nlon, nlat : int
        Regular global grid of cell centres.
    start : str, optional
        First time (UTC); None for a static map.
    hours, step_hours : float
        Span and step of the times. [h]
    seed : int
        Random seed.

    Returns
    -------
    xarray.Dataset
        ``aod`` [1] in [0.05, 0.5] and ``ssa`` [1] in [0.88, 0.97] on ([time,] latitude,
        longitude), with their CF standard names.
    """
    rng, lat, lon, times, h = _setup(nlon, nlat, start, hours, step_hours, seed)
    lat2, lon2 = np.meshgrid(lat, lon, indexing="ij")
    # more aerosol in the northern mid-latitudes and the tropics, little at the poles
    zonal = 0.05 + 0.12 * np.exp(-((lat2 - 30.0) / 25.0) ** 2)
    dust = np.exp(-((lat2 - 22.0) / 7.0) ** 2) * _in_box(lat2, lon2, (-90, 90, -25, 45))
    weather = 1.0 + 0.4 * np.tanh(_smooth(rng, lat, lon, h, drift=8.0))
    aod = np.clip(zonal[None] * weather + 0.3 * dust[None], 0.05, 0.5)
    dusty = np.clip(0.3 * dust[None] / aod, 0.0, 1.0)
    ssa = np.clip(0.97 - 0.05 * np.exp(-((lat2 - 40.0) / 20.0) ** 2)[None] - 0.04 * dusty,
                  0.88, 0.97)
    variables = {
        "aod": (aod, {"units": "1", "long_name": "aerosol optical depth at 550 nm",
                      "standard_name": "atmosphere_optical_thickness_due_to_ambient_aerosol_"
                                       "particles", "wavelength": "550 nm"}),
        "ssa": (ssa, {"units": "1", "long_name": "aerosol single-scattering albedo",
                      "standard_name": "single_scattering_albedo_in_air_due_to_ambient_"
                                       "aerosol_particles"}),
    }
    return _dataset("aerosol", variables, lat, lon, times, "Simulated aerosol")


def cloud(nlon: int = 72, nlat: int = 36, *, start: str | None = None, hours: float = 24.0,
          step_hours: float = 3.0, clear_fraction: float = 0.5, seed: int = 0) -> xr.Dataset:
    """Patchy cloud optical thickness (``cloud`` product).

    Parameters
    ----------
    nlon, nlat : int
        Regular global grid of cell centres.
    start : str, optional
        First time (UTC); None for a static map.
    hours, step_hours : float
        Span and step of the times. [h]
    clear_fraction : float
        Fraction of clear cells (optical thickness 0). [1]
    seed : int
        Random seed.

    Returns
    -------
    xarray.Dataset
        ``cloud_optical_thickness`` [1] on ([time,] latitude, longitude): 0 in clear cells,
        2-60 (log-normal, median 8) in cloudy ones, with its CF standard name.
    """
    rng, lat, lon, times, h = _setup(nlon, nlat, start, hours, step_hours, seed)
    cover = _smooth(rng, lat, lon, h, waves=24, drift=15.0)
    thick = _smooth(rng, lat, lon, h, waves=24, drift=15.0)
    threshold = np.quantile(cover, clear_fraction)
    cot = np.where(cover > threshold, np.clip(8.0 * np.exp(0.8 * thick), 2.0, 60.0), 0.0)
    attrs = {"units": "1", "long_name": "cloud optical thickness",
             "standard_name": "atmosphere_optical_thickness_due_to_cloud"}
    return _dataset("cloud", {"cloud_optical_thickness": (cot, attrs)}, lat, lon, times,
                    "Simulated cloud optical thickness")
