"""Solar zenith angle, Earth-Sun distance and local solar noon, for whole fields at once.

Spencer's (1971) Fourier series [1]_ for the solar declination and the equation of time, with
the spherical-astronomy zenith angle
:math:`\\cos\\theta_z = \\sin\\varphi \\sin\\delta + \\cos\\varphi \\cos\\delta \\cos h`
(pvlib's vectorisable functions [2]_ :func:`pvlib.solarposition.declination_spencer71`,
:func:`~pvlib.solarposition.equation_of_time_spencer71` and
:func:`~pvlib.solarposition.solar_zenith_analytical`). The hour angle is computed here from
UTC ``datetime64`` values of any shape, so times broadcast against latitude/longitude grids
(pvlib's ``hour_angle`` needs a time-zone-aware ``DatetimeIndex``).

Accuracy: against the NREL SPA [3]_ (``pvlib.solarposition.get_solarposition(method=
'nrel_numpy')``, geometric zenith) the zenith angle differs by less than 0.25° over a year of
hours at latitudes from 80° S to 80° N (tested); the Earth-Sun distance comes from the SPA itself.
That is ample for a UV lookup whose SZA nodes are degrees apart; use the SPA when arc-second
positions matter.

References
----------
.. [1] J. W. Spencer, "Fourier series representation of the position of the Sun", Search 2 (5),
   172, 1971.
.. [2] W. F. Holmgren, C. W. Hansen, M. A. Mikofski, "pvlib python: a python package for
   modeling solar energy systems", J. Open Source Softw. 3, 884, 2018. doi:10.21105/joss.00884
.. [3] I. Reda and A. Andreas, "Solar position algorithm for solar radiation applications",
   Solar Energy 76, 577-589, 2004. doi:10.1016/j.solener.2003.12.003
.. [4] J. A. Duffie and W. A. Beckman, "Solar Engineering of Thermal Processes", 3rd ed., Wiley,
   2006, section 1.6 (hour angle, zenith angle).
"""

from __future__ import annotations

import numpy as np

from hubkit.errors import UVInputError

__all__ = ["earth_sun_distance", "local_solar_noon", "solar_zenith_angle"]

_NS_PER_DAY = 86_400 * 10**9


def _as_utc_datetime64(time) -> np.ndarray:
    """``datetime64[ns]`` (UTC, naive) from numpy/pandas/xarray/datetime times of any shape."""
    if hasattr(time, "tz") and getattr(time, "tz", None) is not None:  # pandas, tz-aware
        time = time.tz_convert("UTC").tz_localize(None)
    elif hasattr(time, "dt") and getattr(time.dt, "tz", None) is not None:  # pandas Series
        time = time.dt.tz_convert("UTC").dt.tz_localize(None)
    t = np.asarray(time)
    if t.dtype.kind == "O":
        try:
            import pandas as pd

            t = np.asarray(pd.to_datetime(t.ravel(), utc=True).tz_localize(None)).reshape(t.shape)
        except (TypeError, ValueError) as exc:
            raise UVInputError(f"time of dtype object cannot be read as UTC times ({exc}); "
                               "expected numpy datetime64, pandas or datetime values") from exc
    if t.dtype.kind != "M":
        raise UVInputError(f"time has dtype {t.dtype}; expected datetime64 (UTC) values")
    return t.astype("datetime64[ns]")


def _day_and_hours(t: np.ndarray):
    """Day of year (1 on 1 January) and UTC hours after midnight, as floats; NaN for NaT."""
    day = t.astype("datetime64[D]")
    year = t.astype("datetime64[Y]")
    doy = (day - year).astype(np.int64) + 1.0
    hours = (t - day).astype(np.int64) / 3.6e12
    nat = np.isnat(t)
    if nat.any():
        doy = np.where(nat, np.nan, doy)
        hours = np.where(nat, np.nan, hours)
    return doy, hours


def _spencer(time):
    """Declination [rad] and equation of time [min] at ``time`` (Spencer 1971, fractional day)."""
    from pvlib import solarposition as sp

    doy, hours = _day_and_hours(_as_utc_datetime64(time))
    frac = doy + hours / 24.0  # the series in the day angle 2π(d - 1)/365, d fractional
    return sp.declination_spencer71(frac), sp.equation_of_time_spencer71(frac), hours


def _xarray_apply(func, *args, dtype=np.float64):
    import xarray as xr

    return xr.apply_ufunc(func, *args, dask="parallelized", output_dtypes=[dtype])


def _is_xarray(*args) -> bool:
    return any(type(a).__name__ == "DataArray" for a in args)


def solar_zenith_angle(time, lat, lon):
    """Solar zenith angle from UTC time, latitude and longitude.

    .. math:: \\cos\\theta_z = \\sin\\varphi\\,\\sin\\delta
              + \\cos\\varphi\\,\\cos\\delta\\,\\cos h, \\qquad
              h = 15°\\,(t_{UTC} - 12\\,\\mathrm{h}) + \\lambda + E/4

    with the declination ``δ`` and equation of time ``E`` [min] from Spencer's series [1]_
    (evaluated at the fractional day of year) through pvlib [2]_, and the hour angle ``h``
    as in Duffie and Beckman [4]_ eq. 1.6.5 and 1.5.2. Geometric angle: no refraction.
    Within 0.25° of the NREL SPA [3]_ (see the module notes).

    Parameters
    ----------
    time : datetime64 array_like, pandas times or xarray.DataArray
        UTC times (time-zone-aware pandas times are converted to UTC). NumPy broadcasting
        against ``lat`` and ``lon`` (e.g. ``times[:, None, None]`` against a 2-D grid); by
        dimension name for DataArrays.
    lat : array_like or xarray.DataArray
        Geodetic latitude, in [-90, 90]. [degree north]
    lon : array_like or xarray.DataArray
        Longitude, east positive. [degree east]

    Returns
    -------
    ndarray or xarray.DataArray
        Solar zenith angle in [0, 180]. [degree] A DataArray named ``sza`` (units ``degree``,
        lazy on Dask input) when any input is a DataArray.

    Examples
    --------
    >>> noon = local_solar_noon(np.datetime64("2024-06-20"), 30.0)  # 10:01 UTC
    >>> round(float(solar_zenith_angle(noon, 60.0, 30.0)), 1)  # 60° - 23.44° = 36.56°
    36.5
    """
    if _is_xarray(time, lat, lon):
        out = _xarray_apply(_sza_numpy, time, lat, lon)
        out.name = "sza"
        out.attrs.update(units="degree", long_name="solar zenith angle",
                         standard_name="solar_zenith_angle")
        return out
    return _sza_numpy(time, lat, lon)


def _sza_numpy(time, lat, lon):
    from pvlib import solarposition as sp

    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        if np.any(np.abs(lat) > 90):
            raise UVInputError(f"lat has values from {np.nanmin(lat):g} to {np.nanmax(lat):g} "
                               "degree; expected latitudes in [-90, 90] degree north")
    decl, eot, hours = _spencer(time)
    hour_angle = 15.0 * (hours - 12.0) + lon + eot / 4.0  # [degree]
    zenith = sp.solar_zenith_analytical(np.deg2rad(lat), np.deg2rad(hour_angle), decl)
    return np.rad2deg(zenith)


def earth_sun_distance(time):
    """Earth-Sun distance by the NREL solar position algorithm.

    The heliocentric radius vector of the Earth from the VSOP87 periodic terms of the NREL SPA
    [3]_ (Reda and Andreas 2004, section 3.2.8, table A4.2), via
    :func:`pvlib.solarposition.nrel_earthsun_distance` [2]_, computed once per distinct time.
    (Spencer's series, Iqbal 1983 eq. 1.2.1 [5]_, is 20 times less accurate: up to 6e-4 AU
    off in the 2020s.) The irradiance at distance ``r`` scales as ``(1 AU / r)^2``.

    Parameters
    ----------
    time : datetime64 array_like, pandas times or xarray.DataArray
        UTC times, any shape.

    Returns
    -------
    ndarray or xarray.DataArray
        Earth-Sun distance, NaN for NaT. [AU]

    References
    ----------
    .. [5] M. Iqbal, "An Introduction to Solar Radiation", Academic Press, 1983, eq. 1.2.1.

    Examples
    --------
    >>> round(float(earth_sun_distance(np.datetime64("2024-01-03"))), 4)
    0.9833
    """
    if _is_xarray(time):
        out = _xarray_apply(_distance_numpy, time)
        out.name = "earth_sun_distance"
        out.attrs.update(units="au", long_name="Earth-Sun distance")
        return out
    return _distance_numpy(time)


def _distance_numpy(time):
    import pandas as pd
    from pvlib import solarposition as sp

    t = _as_utc_datetime64(time)
    unique, inverse = np.unique(t.reshape(-1), return_inverse=True)
    good = ~np.isnat(unique)
    r = np.full(unique.shape, np.nan)
    if good.any():
        index = pd.DatetimeIndex(unique[good]).tz_localize("UTC")
        r[good] = np.asarray(sp.nrel_earthsun_distance(index, how="numpy"), dtype=np.float64)
    return r[inverse].reshape(t.shape)


def local_solar_noon(date, lon):
    """UTC time of local solar noon (hour angle 0) on a date at a longitude.

    .. math:: t_{noon} = 12\\,\\mathrm{h} - \\frac{\\lambda}{15°\\,\\mathrm{h^{-1}}}
              - \\frac{E(t_{noon})}{60}\\,\\mathrm{h}

    solved by two fixed-point steps (the equation of time ``E`` [min], Spencer 1971 [1]_,
    changes by less than 30 s a day).

    Parameters
    ----------
    date : datetime64 array_like or pandas times
        UTC dates (the time of day is ignored); broadcast against ``lon``.
    lon : array_like
        Longitude, east positive. [degree east]

    Returns
    -------
    ndarray of datetime64[ns]
        UTC time of local solar noon (on the UTC day before or after ``date`` for longitudes
        far from Greenwich: noon at 180° E is near 00:00 UTC of the same date).

    Examples
    --------
    >>> str(local_solar_noon(np.datetime64("2024-03-20"), 0.0))[:16]
    '2024-03-20T12:07'
    """
    from pvlib import solarposition as sp

    day = _as_utc_datetime64(date).astype("datetime64[D]")
    lon = np.asarray(lon, dtype=np.float64)
    doy, _ = _day_and_hours(day.astype("datetime64[ns]"))
    hours = 12.0 - lon / 15.0
    for _ in range(2):
        hours = 12.0 - lon / 15.0 - sp.equation_of_time_spencer71(doy + hours / 24.0) / 60.0
    ns = np.round(hours * 3.6e12).astype(np.int64)
    return day.astype("datetime64[ns]") + ns.astype("timedelta64[ns]")
