"""Emission estimates: cross-sectional flux of a fitted along-track Gaussian, and the Gaussian
plume model of a point source (forward model and emission fit)."""

from __future__ import annotations

import numpy as np

from hubkit.constants import GRAVITY

__all__ = ["GRAVITY", "M_AIR", "M_CO2", "STABILITY_A", "cross_sectional_flux",
           "dry_air_column", "fit_plume_emission", "plume_column", "plume_sigma_y",
           "plume_xco2"]

M_CO2 = 44.01e-3  # molar mass of CO2 [kg mol-1]
M_AIR = 28.96e-3  # molar mass of dry air [kg mol-1], as oco2peak and Nassar et al. 2017 round it
#: Coefficient ``a`` of the crosswind spread ``σ_y = a·x^0.894`` (x in km, σ_y in m) for the
#: Pasquill stability classes (Martin 1976, as used with OCO-2 by Nassar et al. 2017).
STABILITY_A = {"A": 213.0, "B": 156.0, "C": 104.0, "D": 68.0, "E": 50.5, "F": 34.0}


def dry_air_column(surface_pressure=101325.0, tcwv=0.0):
    """Mass of dry air above a unit area.

    .. math:: M_d = p_s / g - \\mathrm{TCWV}

    Parameters
    ----------
    surface_pressure : array_like
        Surface pressure. [Pa]
    tcwv : array_like
        Total column water vapour. [kg m-2]

    Returns
    -------
    ndarray
        Dry-air column mass. [kg m-2]
    """
    return np.asarray(surface_pressure, dtype=float) / GRAVITY - np.asarray(tcwv, dtype=float)


def cross_sectional_flux(amplitude, wind_normal, surface_pressure=101325.0, tcwv=0.0):
    """Point-source emission from the area of an along-track XCO2 enhancement.

    The enhancement's area ``A`` times the dry-air column gives the CO2 mass per metre of
    track; carried through the track by the wind normal to it, it is the source's flux
    (Zheng et al. 2020, eq. 2; the oco2peak estimator):

    .. math::

        Q = A \\cdot 10^{-3} \\cdot \\frac{M_{CO_2}}{M_{air}}
            \\left(\\frac{p_s}{g} - \\mathrm{TCWV}\\right) U_\\perp

    Parameters
    ----------
    amplitude : array_like
        Area of the enhancement along track, ``δ σ √(2π)``. [ppm km]
    wind_normal : array_like
        Wind component normal to the track. [m s-1]
    surface_pressure : array_like
        Surface pressure. [Pa]
    tcwv : array_like
        Total column water vapour. [kg m-2]

    Returns
    -------
    ndarray
        Emission. [kg s-1]

    References
    ----------
    .. [1] Zheng, B. et al., "Observing carbon dioxide emissions over China's cities and
       industrial areas with the Orbiting Carbon Observatory-2", Atmos. Chem. Phys. 20,
       8501-8510, 2020. doi:10.5194/acp-20-8501-2020
    """
    # ppm km -> (mol mol-1) m: 1e-6 * 1e3
    return (np.asarray(amplitude, dtype=float) * 1e-3 * (M_CO2 / M_AIR)
            * dry_air_column(surface_pressure, tcwv) * np.asarray(wind_normal, dtype=float))


def plume_sigma_y(downwind, stability="B"):
    """Crosswind standard deviation of a Gaussian plume, ``σ_y = a·(x / 1 km)^0.894``.

    Parameters
    ----------
    downwind : array_like
        Distance downwind of the source. [m]
    stability : str or float
        Pasquill class ``"A"``-``"F"`` (see :data:`STABILITY_A`) or the coefficient ``a``. [m]

    Returns
    -------
    ndarray
        ``σ_y``. [m]
    """
    a = STABILITY_A[stability.upper()] if isinstance(stability, str) else float(stability)
    x = np.maximum(np.asarray(downwind, dtype=float), 0.0)
    return a * (x / 1e3) ** 0.894


def plume_column(downwind, crosswind, emission, wind_speed, stability="B"):
    """Vertically integrated CO2 of a Gaussian plume from a point source.

    .. math::

        V(x, y) = \\frac{F}{\\sqrt{2\\pi}\\,\\sigma_y(x)\\,u}
                  \\exp\\left(-\\frac{y^2}{2\\sigma_y(x)^2}\\right),\\quad x > 0

    (Nassar et al. 2017, eq. 1); zero upwind of the source. Integrated across the wind it
    returns ``F/u`` at every downwind distance.

    Parameters
    ----------
    downwind, crosswind : array_like
        Position relative to the source, along and across the wind. [m]
    emission : array_like
        Source emission ``F``. [kg s-1]
    wind_speed : array_like
        Wind speed ``u`` carrying the plume. [m s-1]
    stability : str or float
        See :func:`plume_sigma_y`.

    Returns
    -------
    ndarray
        CO2 column enhancement. [kg m-2]

    References
    ----------
    .. [1] Nassar, R. et al., "Quantifying CO2 emissions from individual power plants from
       space", Geophys. Res. Lett. 44, 10045-10053, 2017. doi:10.1002/2017GL074702
    """
    x = np.asarray(downwind, dtype=float)
    sy = plume_sigma_y(x, stability)
    pos = x > 0
    sy = np.where(pos, sy, 1.0)
    v = (np.asarray(emission, dtype=float) / (np.sqrt(2 * np.pi) * sy * np.asarray(wind_speed))
         * np.exp(-0.5 * (np.asarray(crosswind, dtype=float) / sy) ** 2))
    return np.where(pos, v, 0.0)


def plume_xco2(downwind, crosswind, emission, wind_speed, surface_pressure=101325.0,
               tcwv=0.0, stability="B"):
    """XCO2 enhancement of a Gaussian plume (:func:`plume_column` over the dry-air column).

    Parameters
    ----------
    downwind, crosswind : array_like
        Position relative to the source, along and across the wind. [m]
    emission : array_like
        Source emission. [kg s-1]
    wind_speed : array_like
        Wind speed. [m s-1]
    surface_pressure : array_like
        Surface pressure. [Pa]
    tcwv : array_like
        Total column water vapour. [kg m-2]
    stability : str or float
        See :func:`plume_sigma_y`.

    Returns
    -------
    ndarray
        XCO2 enhancement. [ppm]

    References
    ----------
    .. [1] Nassar, R. et al., GRL 44, 10045-10053, 2017. doi:10.1002/2017GL074702
    """
    col = plume_column(downwind, crosswind, emission, wind_speed, stability)
    return col / dry_air_column(surface_pressure, tcwv) * (M_AIR / M_CO2) * 1e6


def fit_plume_emission(downwind, crosswind, xco2, wind_speed, uncertainty=None, *,
                       surface_pressure=101325.0, tcwv=0.0, along=None, stability="B"):
    """Emission of a known source from the soundings its plume crosses (second estimator).

    The Gaussian plume model is linear in the emission ``F``, so ``F`` and a linear background
    ``b0 + b1·along`` are the weighted least-squares solution of
    ``xco2 = b0 + b1·along + F·plume_xco2(F=1)``.

    Parameters
    ----------
    downwind, crosswind : array_like, (n,)
        Sounding positions relative to the source, along and across the wind. [m]
    xco2 : array_like, (n,)
        Observed XCO2. [ppm]
    wind_speed : float
        Wind speed. [m s-1]
    uncertainty : array_like, (n,), optional
        Sounding uncertainties (default 1). [ppm]
    surface_pressure, tcwv : array_like
        As in :func:`plume_xco2`. [Pa], [kg m-2]
    along : array_like, (n,), optional
        Along-track coordinate for the background slope (default: no slope). [km]
    stability : str or float
        See :func:`plume_sigma_y`.

    Returns
    -------
    emission, emission_err : float
        ``F`` and its standard error scaled by the reduced χ² of the fit. [kg s-1]

    References
    ----------
    .. [1] Nassar, R. et al., GRL 44, 10045-10053, 2017. doi:10.1002/2017GL074702
    """
    y = np.asarray(xco2, dtype=float)
    unit = plume_xco2(downwind, crosswind, 1.0, wind_speed, surface_pressure, tcwv, stability)
    cols = [np.ones_like(y), unit]
    if along is not None:
        cols.insert(1, np.asarray(along, dtype=float) - np.mean(along))
    X = np.stack(cols, 1)
    w = np.ones_like(y) if uncertainty is None else 1.0 / np.asarray(uncertainty, float) ** 2
    sw = np.sqrt(w)
    if not np.any(unit > 0):
        return np.nan, np.nan
    coef, *_ = np.linalg.lstsq(X * sw[:, None], y * sw, rcond=None)
    r = (y - X @ coef) * sw
    dof = max(y.size - X.shape[1], 1)
    cov = np.linalg.inv((X * w[:, None]).T @ X) * max(float(r @ r) / dof, 1.0)
    return float(coef[-1]), float(np.sqrt(cov[-1, -1]))
