"""The assimilation's background: an ozone climatology, and background errors that can
represent what the climatology misses.

- :func:`total_column_climatology` and :func:`ozone_climatology` — a zonal-mean, seasonal ozone
  climatology (total column read off the zonal means of Fioletov et al. 2002; profile shape of
  a tropospheric mixing ratio below a latitude-dependent tropopause and a stratospheric layer
  whose amplitude is set so the column matches). It is the first guess of a cold start and the
  relaxation target of the forecast model's chemistry.
- :func:`vertical_correlation` — full-rank vertical correlations in ln p (Gaussian or SOAR,
  Daley 1991), used by the ensemble and by the KF/PKF.
- :func:`correlated_perturbations` — random fields with a Gaussian horizontal correlation on the
  sphere and a given vertical correlation, for the initial and regenerated ensembles;
  :func:`initial_ensemble` — the positive initial ensemble of the cycles built from them.

All functions are pure; none opens a file.

References
----------
.. [1] Fioletov, Bodeker, Miller, McPeters, Stolarski, "Global and zonal total ozone variations
   estimated from ground-based and satellite measurements: 1964-2000", J. Geophys. Res. 107,
   4647, 2002. doi:10.1029/2001JD001350
.. [2] Daley, "Atmospheric Data Analysis", Cambridge University Press, 1991 (section 4.3).
.. [3] Rahimi, Recht, "Random features for large-scale kernel machines", NIPS 20, 2007.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from hubkit.constants import DU_PER_PA, EARTH_RADIUS, STANDARD_PRESSURE
from hubkit.errors import AssimilationInputError
from hubkit.geodesy import grid_unit_vectors

__all__ = ["climatology_state", "correlated_perturbations", "initial_ensemble", "level_dim",
           "level_log_pressure", "ozone_climatology", "relative_spread",
           "total_column_climatology", "vertical_correlation"]

#: Zonal-mean total ozone: latitude [°], annual mean [DU], half the seasonal range [DU] and
#: the day of year of the maximum (local spring), read off the 1964-1980 zonal means of
#: Fioletov et al. (2002). The Antarctic ozone hole is not represented.
_TC_TABLE = np.array([
    # lat,  mean, amplitude, day of maximum
    [-90.0, 290.0, 30.0, 300.0],
    [-70.0, 310.0, 35.0, 290.0],
    [-50.0, 330.0, 25.0, 270.0],
    [-30.0, 290.0, 12.0, 265.0],
    [-10.0, 262.0, 6.0, 260.0],
    [10.0, 258.0, 8.0, 120.0],
    [30.0, 292.0, 18.0, 95.0],
    [50.0, 340.0, 38.0, 85.0],
    [70.0, 365.0, 55.0, 85.0],
    [90.0, 375.0, 65.0, 85.0],
])

#: Pressure altitude scale height of the profile shape. [m]
_SCALE_HEIGHT = 7000.0


def _day_of_year(time) -> np.ndarray:
    t = np.asarray(time, dtype="datetime64[ns]")
    year = t.astype("datetime64[Y]")
    return (t - year) / np.timedelta64(1, "D")


def total_column_climatology(latitude, time):
    """Zonal-mean total ozone column by latitude and season (Fioletov et al. 2002).

    .. math:: Ω(φ, d) = \\bar Ω(φ) + a(φ) \\cos(2π (d - d_{max}(φ)) / 365.25)

    with the annual mean, half-range and day of maximum interpolated linearly in latitude
    from :data:`_TC_TABLE`.

    Parameters
    ----------
    latitude : array_like
        Latitude. [°]
    time : array_like of datetime64
        Time, broadcast against ``latitude``.

    Returns
    -------
    ndarray
        Total column. [DU]

    References
    ----------
    .. [1] Fioletov et al., J. Geophys. Res. 107, 4647, 2002. doi:10.1029/2001JD001350
    """
    lat = np.asarray(latitude, dtype=float)
    if np.any(np.abs(lat[np.isfinite(lat)]) > 90.0):
        raise AssimilationInputError("latitude outside [-90, 90] degrees")
    doy = _day_of_year(time)
    mean, amp, peak = (np.interp(lat, _TC_TABLE[:, 0], _TC_TABLE[:, k]) for k in (1, 2, 3))
    return mean + amp * np.cos(2.0 * np.pi * (doy - peak) / 365.25)


def _shape(lat, doy, z):
    """Tropospheric part ``x_t`` and stratospheric shape ``g`` (peak 1) of the profile at
    pressure altitude ``z`` [m], and the transition weight ``r`` (0 below, 1 above the
    tropopause). ``lat``, ``doy`` (..., 1); ``z`` (..., m)."""
    s = np.sin(np.deg2rad(lat))
    north = np.clip(s, 0.0, None)
    summer = np.cos(2.0 * np.pi * (doy - 180.0) / 365.25) * np.sign(s)  # +1 local summer
    surface = (25.0 + 22.0 * north + 6.0 * np.abs(s) * summer) * 1e-9  # [mol mol-1]
    x_t = surface * (1.0 + z / 15000.0)
    z_tp = 9000.0 + 7500.0 * np.cos(np.deg2rad(lat)) ** 4
    r = 0.5 * (1.0 + np.tanh((z - z_tp - 1500.0) / 1500.0))
    z_max = 31000.0 - 8000.0 * s**2
    g = np.exp(-(((z - z_max) / np.where(z < z_max, 8000.0, 14000.0)) ** 2))
    return x_t, g, r


def ozone_climatology(latitude, time, pressure):
    """Zonal-mean ozone mixing ratio profiles of the climatology.

    Below the tropopause (9 km at the poles to 16.5 km in the tropics, in pressure altitude
    ``z = H ln(p0 / p)``, ``H`` = 7 km) a tropospheric mixing ratio of 25 ppbv (tropics and
    south) to 47 ppbv (north), ±6 ppbv with the season, growing with height; above it a
    stratospheric layer peaking at 31 km (tropics) to 23 km (poles), a Gaussian in ``z`` of
    8 km half-width below the peak and 14 km above (about 2 ppmv at 1 hPa), whose amplitude
    makes the column from 101325 Pa up equal
    :func:`total_column_climatology` (which gives peak mixing ratios of 6-11 ppmv).

    Parameters
    ----------
    latitude : array_like, (...)
        Latitude. [°]
    time : array_like of datetime64, (...)
        Time (broadcast against latitude).
    pressure : array_like, (..., m) or (m,)
        Pressure of the levels wanted. [Pa]

    Returns
    -------
    ndarray, (..., m)
        Ozone mole fraction. [mol mol⁻¹]

    References
    ----------
    .. [1] Fioletov et al., J. Geophys. Res. 107, 4647, 2002. doi:10.1029/2001JD001350
    """
    lat = np.asarray(latitude, dtype=float)
    doy = _day_of_year(time)
    lat, doy = np.broadcast_arrays(lat, doy)
    p = np.asarray(pressure, dtype=float)
    if np.any(~(p > 0)):
        raise AssimilationInputError("pressure must be > 0 [Pa]")
    target = total_column_climatology(lat, np.asarray(time, dtype="datetime64[ns]"))
    # the column integrals on a fine grid from the standard surface pressure up
    fine = np.geomspace(STANDARD_PRESSURE, 0.5, 400)
    edges = np.concatenate([[STANDARD_PRESSURE], np.sqrt(fine[1:] * fine[:-1]), [0.0]])
    dp = -np.diff(edges)
    zf = _SCALE_HEIGHT * np.log(STANDARD_PRESSURE / fine)
    xt, g, r = _shape(lat[..., None], doy[..., None], zf)
    trop = DU_PER_PA * np.sum(xt * (1.0 - r) * dp, axis=-1)
    strat = DU_PER_PA * np.sum(g * r * dp, axis=-1)
    amplitude = np.clip(target - trop, 10.0, None) / strat  # [mol mol-1]
    z = _SCALE_HEIGHT * np.log(STANDARD_PRESSURE / p)
    xt, g, r = _shape(lat[..., None], doy[..., None], z)
    return xt * (1.0 - r) + amplitude[..., None] * g * r


def level_dim(da: xr.DataArray) -> str:
    """The model-level dim of a DAS-layout variable (the one that is not time, latitude or
    longitude)."""
    lev = [d for d in da.dims if d not in ("time", "latitude", "longitude")]
    if len(lev) != 1:
        raise AssimilationInputError(f"{da.name!r} has dims {da.dims}; expected (time,) level, "
                                     "latitude, longitude")
    return lev[0]


def level_log_pressure(hybrid_a, hybrid_b, surface_pressure=STANDARD_PRESSURE):
    """``ln p`` of the layer midpoints of a hybrid grid at a reference surface pressure.

    Parameters
    ----------
    hybrid_a, hybrid_b : array_like, (L + 1,)
        Interface coefficients (either order). [Pa, 1]
    surface_pressure : float
        Reference surface pressure. [Pa]

    Returns
    -------
    ndarray, (L,)
        ``ln(p_mid / 1 Pa)`` in the order of the layers. [1]
    """
    ph = np.asarray(hybrid_a, dtype=float) + np.asarray(hybrid_b, dtype=float) * surface_pressure
    mid = 0.5 * (ph[1:] + ph[:-1])
    return np.log(np.maximum(mid, 1e-3))


def relative_spread(log_pressure, troposphere, stratosphere=None):
    """Relative background error by ``ln p``: ``troposphere`` below ~250 hPa blending (tanh in
    ln p, 0.3 wide) to ``stratosphere`` above; ``troposphere`` everywhere when
    ``stratosphere`` is None. Climatologies miss 20-30 % of tropospheric and ~10 % of
    stratospheric ozone. [1]"""
    lnp = np.asarray(log_pressure, dtype=float)
    if stratosphere is None:
        return np.full(lnp.shape, float(troposphere))
    w = 0.5 * (1.0 + np.tanh((lnp - np.log(25000.0)) / 0.3))
    return stratosphere + (troposphere - stratosphere) * w


def vertical_correlation(log_pressure, length, kind="gaussian"):
    """Vertical correlation matrix in ln p, full rank.

    ``gaussian``: ``exp(−Δ²/(2L²))``; ``soar`` (second-order auto-regressive, Daley 1991,
    eq. 4.3.18): ``(1 + |Δ|/L) exp(−|Δ|/L)``, with ``Δ`` the difference in ``ln p``. Both are
    positive definite functions on the line, so the matrix is of full rank for distinct levels.

    Parameters
    ----------
    log_pressure : array_like, (L,)
        ``ln p`` of the levels. [1]
    length : float
        Correlation length in ``ln p`` (0.5 ≈ 3.5 km). [1]
    kind : {"gaussian", "soar"}
        Correlation function, as above.

    Returns
    -------
    ndarray, (L, L)

    References
    ----------
    .. [1] Daley, "Atmospheric Data Analysis", Cambridge University Press, 1991.
    """
    s = np.asarray(log_pressure, dtype=float)
    if not float(length) > 0:
        raise AssimilationInputError(f"vertical length={length!r}: expected > 0 (in ln p)")
    d = np.abs(s[:, None] - s[None, :]) / float(length)
    if kind == "gaussian":
        return np.exp(-0.5 * d**2)
    if kind == "soar":
        return (1.0 + d) * np.exp(-d)
    raise AssimilationInputError(f"kind={kind!r}: expected 'gaussian' or 'soar'")


#: Bytes of the (fields, waves, points) block :func:`correlated_perturbations` sums at a time.
PERTURBATION_BLOCK_BYTES = 8 * 2**20


def correlated_perturbations(rng, n, latitude, longitude, correlation, horizontal_length, *,
                             waves=48):
    """Random fields of unit variance, correlated horizontally and vertically.

    Each field is ``L_v f`` with ``L_v`` the Cholesky factor of the vertical ``correlation``
    and ``f`` independent horizontal fields per level, each a sum of ``waves`` random plane
    waves in 3-D restricted to the sphere (random Fourier features, Rahimi & Recht 2007), whose
    covariance is ``exp(−d²/(2ℓ²))`` in chordal distance ``d``.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of the random wave vectors and phases.
    n : int
        Number of fields.
    latitude, longitude : array_like, (ny,), (nx,)
        Grid cell centres. [°]
    correlation : array_like, (L, L)
        Vertical correlation matrix (:func:`vertical_correlation`). [1]
    horizontal_length : float
        Horizontal correlation length ``ℓ``. [m]
    waves : int
        Plane waves per field.

    Returns
    -------
    ndarray, (n, L, ny · nx)
        Fields, grid points flattened latitude-major. [1]

    References
    ----------
    .. [1] Rahimi, Recht, NIPS 20, 2007.
    """
    C = np.asarray(correlation, dtype=float)
    L = C.shape[0]
    chol = np.linalg.cholesky(C + 1e-10 * np.eye(L))
    xyz = EARTH_RADIUS * grid_unit_vectors(latitude, longitude)
    k = rng.normal(size=(n * L, waves, 3)) / float(horizontal_length)
    phase = rng.uniform(0.0, 2.0 * np.pi, size=(n * L, waves, 1))
    # the waves at every point of a block of grid points at a time: every wave at every point
    # at once is n·L·waves·G values (17 GB at 1°, 34 levels, 20 members)
    f = np.empty((n * L, xyz.shape[0]))
    block = max(1, PERTURBATION_BLOCK_BYTES // (8 * n * L * waves))
    for start in range(0, xyz.shape[0], block):
        part = slice(start, start + block)
        f[:, part] = np.cos(np.einsum("nkc,gc->nkg", k, xyz[part]) + phase).sum(axis=1)
    f *= np.sqrt(2.0 / waves)
    return np.einsum("lk,nkg->nlg", chol, f.reshape(n, L, -1))


def initial_ensemble(rng, x, sd, correlation, latitude, longitude, members, horizontal_length):
    """An initial ensemble around ``x`` whose errors have the standard deviation ``sd``.

    Members ``x · exp(r p − r²/2)``, recentred on ``x``: ``p`` unit-variance perturbations with
    the vertical ``correlation`` and a Gaussian horizontal correlation of length
    ``horizontal_length`` (:func:`correlated_perturbations`), normalised to unit sample variance
    per point, ``r = sd / x`` the relative standard deviation. Positive by construction.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of the perturbations.
    x, sd : ndarray, (L, G)
        State and its error standard deviation, grid points flattened latitude-major.
        [mol mol⁻¹]
    correlation : array_like, (L, L)
        Vertical correlation matrix. [1]
    latitude, longitude : array_like, (ny,), (nx,)
        Grid cell centres. [°]
    members : int
        Ensemble size N.
    horizontal_length : float
        Horizontal correlation length. [m]

    Returns
    -------
    ndarray, (N, L, G)
        Members, whose mean is ``x``. [mol mol⁻¹]
    """
    p = correlated_perturbations(rng, members, latitude, longitude, correlation,
                                 horizontal_length)
    p = p - p.mean(axis=0)
    p = p / np.maximum(p.std(axis=0, ddof=1), 1e-12)
    r = sd / x
    ens = x[None] * np.exp(r[None] * p - 0.5 * r[None] ** 2)
    return ens * (x / ens.mean(axis=0))[None]


def climatology_state(met: xr.Dataset, times=None) -> xr.Dataset:
    """The climatology on a DAS grid: ``met`` with ``o3_vmr`` replaced by
    :func:`ozone_climatology` at each layer's mid pressure and each of ``times``.

    Parameters
    ----------
    met : xarray.Dataset
        DAS-like meteorology (``surface_pressure``, ``hybrid_a``, ``hybrid_b``, ``temperature``,
        ``surface_altitude``, on latitude × longitude, with or without time).
    times : array_like of datetime64, optional
        Default: ``met``'s times.

    Returns
    -------
    xarray.Dataset
        ``met`` at ``times`` (nearest) with the climatological ``o3_vmr`` [mol mol⁻¹].
    """
    times = np.asarray(met["time"].values if times is None else np.atleast_1d(times),
                       dtype="datetime64[ns]")
    out = met.sel(time=times, method="nearest").assign_coords(time=times)
    lev = level_dim(met["o3_vmr"]) if "o3_vmr" in met else "level"
    a = np.asarray(met["hybrid_a"].values, dtype=float)
    b = np.asarray(met["hybrid_b"].values, dtype=float)
    ps = out["surface_pressure"].transpose("time", "latitude", "longitude").values
    ph = a + b * ps[..., None]  # (t, y, x, L + 1)
    mid = 0.5 * (ph[..., 1:] + ph[..., :-1])
    lat = np.asarray(met["latitude"].values, dtype=float)[None, :, None]
    tt = times[:, None, None]
    o3 = ozone_climatology(np.broadcast_to(lat, ps.shape), np.broadcast_to(tt, ps.shape),
                           np.maximum(mid, 1e-2))
    o3 = np.moveaxis(o3, -1, 1)  # (t, L, y, x)
    attrs = {"units": "mol mol-1", "standard_name": "mole_fraction_of_ozone_in_air",
             "long_name": "ozone climatology (Fioletov et al. 2002 columns)"}
    return out.assign(o3_vmr=(("time", lev, "latitude", "longitude"), o3, attrs))

