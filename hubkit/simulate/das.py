"""DAS-like ozone and temperature fields on hybrid levels, with orography (the meteorology of
the assimilation and the input of the tropospheric-ozone and UV steps)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from hubkit.errors import SimulationInputError

__all__ = ["das_field", "das_hybrid_coefficients"]

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
    seed : int
        Of the random phases of the travelling waves: the same seed gives the same field.

    Returns
    -------
    xarray.Dataset
        ``o3_vmr`` [mol mol-1] and ``temperature`` [K] (time, level, latitude, longitude),
        ``surface_pressure`` [Pa] (time, latitude, longitude), ``surface_altitude`` [m]
        (latitude, longitude), ``hybrid_a`` [Pa] and ``hybrid_b`` [1] (interface).
    """
    from hubkit.ozone import hybrid_pressure, hydrostatic_altitude

    if level_order not in ("top-first", "bottom-first"):
        raise SimulationInputError(
            f"level_order={level_order!r}: expected 'top-first' or 'bottom-first'")
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
               "source": "hubkit.simulate.das_field", "hubkit_species": "o3",
               "hubkit_simulated": "true"},
    )
