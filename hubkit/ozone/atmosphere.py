"""Physical constants, the US Standard Atmosphere 1976 and the input error of :mod:`hubkit.ozone`.

References
----------
.. [1] NOAA, NASA, USAF, "U.S. Standard Atmosphere, 1976", NOAA-S/T 76-1562, U.S. Government
   Printing Office, Washington D.C., 1976. https://ntrs.nasa.gov/citations/19770009539
"""

from __future__ import annotations

import numpy as np

from hubkit.constants import AVOGADRO, DOBSON_UNIT, DU_PER_PA, GRAVITY, MOLAR_MASS_AIR
from hubkit.errors import OzoneInputError

__all__ = [
    "AVOGADRO",
    "DOBSON_UNIT",
    "DU_PER_VMR_PA",
    "EARTH_RADIUS_STD",
    "GRAVITY",
    "MOLAR_MASS_AIR",
    "OzoneInputError",
    "R_DRY",
    "geometric_altitude",
    "standard_atmosphere",
    "standard_atmosphere_height",
]


#: Universal gas constant as defined by the US Standard Atmosphere 1976. [J mol-1 K-1]
R_UNIVERSAL_1976 = 8.31432
#: Specific gas constant of dry air, R*/M0. [J kg-1 K-1]
R_DRY = R_UNIVERSAL_1976 / MOLAR_MASS_AIR
#: Column of a layer per unit VMR and unit pressure thickness, N_A / (M_air g DU). [DU Pa-1]
DU_PER_VMR_PA = DU_PER_PA
#: Effective Earth radius of the geopotential-height conversion (US Std. Atm. 1976). [m]
EARTH_RADIUS_STD = 6356766.0

# US Standard Atmosphere 1976, layers 0-7: base geopotential height [m], lapse rate dT/dH [K m-1]
_H_BASE = np.array([0.0, 11000.0, 20000.0, 32000.0, 47000.0, 51000.0, 71000.0, 84852.0])
_LAPSE = np.array([-6.5e-3, 0.0, 1.0e-3, 2.8e-3, 0.0, -2.8e-3, -2.0e-3, 0.0])
_T0, _P0 = 288.15, 101325.0


def _base_values():
    t = np.empty(_H_BASE.size)
    p = np.empty(_H_BASE.size)
    t[0], p[0] = _T0, _P0
    for i in range(1, _H_BASE.size):
        t[i], p[i] = _layer(_H_BASE[i] - _H_BASE[i - 1], t[i - 1], p[i - 1], _LAPSE[i - 1])
    return t, p


def _layer(dh, tb, pb, lapse):
    """Temperature and pressure ``dh`` above a layer base (US Std. Atm. 1976, eqs. 33a/33b)."""
    gmr = GRAVITY / R_DRY
    t = tb + lapse * dh
    with np.errstate(divide="ignore", invalid="ignore"):
        p_grad = pb * (tb / np.where(lapse != 0, t, tb)) ** (gmr / np.where(lapse != 0, lapse, 1))
    p_iso = pb * np.exp(-gmr * dh / tb)
    return t, np.where(lapse != 0, p_grad, p_iso)


_T_BASE, _P_BASE = _base_values()


def standard_atmosphere(height):
    """Temperature and pressure of the US Standard Atmosphere 1976 below 84.852 km.

    .. math:: T = T_b + L_b (H - H_b), \\quad
              p = p_b \\left(\\frac{T_b}{T}\\right)^{g_0 M_0 / (R^* L_b)} \\; (L_b \\ne 0), \\quad
              p = p_b \\exp\\left(-\\frac{g_0 M_0 (H - H_b)}{R^* T_b}\\right) \\; (L_b = 0)

    Parameters
    ----------
    height : array_like
        Geopotential height, -5 km to 84.852 km. [m]

    Returns
    -------
    temperature : ndarray
        Kinetic (= molecular-scale) temperature. [K]
    pressure : ndarray
        Pressure. [Pa]

    References
    ----------
    .. [1] U.S. Standard Atmosphere, 1976, NOAA-S/T 76-1562, eqs. (33a), (33b), Table 4.
       https://ntrs.nasa.gov/citations/19770009539

    Examples
    --------
    >>> t, p = standard_atmosphere(11000.0)
    >>> round(float(t), 2), round(float(p), 2)
    (216.65, 22632.06)
    """
    h = np.asarray(height, dtype=float)
    if np.any((h < -5000.0) | (h > _H_BASE[-1])):
        raise OzoneInputError(f"height spans [{np.nanmin(h)}, {np.nanmax(h)}] m; expected "
                              "geopotential heights within [-5000, 84852] m")
    i = np.clip(np.searchsorted(_H_BASE, h, side="right") - 1, 0, _H_BASE.size - 2)
    return _layer(h - _H_BASE[i], _T_BASE[i], _P_BASE[i], _LAPSE[i])


def standard_atmosphere_height(pressure):
    """Geopotential height of a pressure in the US Standard Atmosphere 1976 (inverse of
    :func:`standard_atmosphere`).

    Parameters
    ----------
    pressure : array_like
        Pressure, 0.3734 Pa to 177.7 kPa. [Pa]

    Returns
    -------
    height : ndarray
        Geopotential height. [m]
    """
    p = np.asarray(pressure, dtype=float)
    if np.any((p < _P_BASE[-1]) | (p > 177_700.0)):
        raise OzoneInputError(f"pressure spans [{np.nanmin(p)}, {np.nanmax(p)}] Pa; expected "
                              f"pressures within [{_P_BASE[-1]:.4f}, 177700] Pa")
    i = np.clip(np.searchsorted(-_P_BASE, -p, side="right") - 1, 0, _H_BASE.size - 2)
    tb, pb, lapse = _T_BASE[i], _P_BASE[i], _LAPSE[i]
    gmr = GRAVITY / R_DRY
    with np.errstate(divide="ignore", invalid="ignore"):
        dh_grad = tb / np.where(lapse != 0, lapse, 1) * ((p / pb) ** (-np.where(
            lapse != 0, lapse, 1) / gmr) - 1.0)
    dh_iso = -tb / gmr * np.log(p / pb)
    return _H_BASE[i] + np.where(lapse != 0, dh_grad, dh_iso)


def geometric_altitude(geopotential_height):
    """Geometric altitude of a geopotential height, ``Z = r0 H / (r0 - H)`` (US Std. Atm. 1976,
    r0 = 6,356,766 m).

    Parameters
    ----------
    geopotential_height : array_like
        Geopotential height ``H``. [m]

    Returns
    -------
    ndarray
        Geometric altitude ``Z``. [m]
    """
    h = np.asarray(geopotential_height, dtype=float)
    return EARTH_RADIUS_STD * h / (EARTH_RADIUS_STD - h)
