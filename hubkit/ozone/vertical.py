"""Vertical coordinates: hybrid sigma-pressure levels and hydrostatic altitudes.

References
----------
.. [1] Simmons, Burridge, "An energy and angular-momentum conserving vertical finite-difference
   scheme and hybrid vertical coordinates", Mon. Wea. Rev. 109, 758-766, 1981.
   doi:10.1175/1520-0493(1981)109<0758:AEAAMC>2.0.CO;2
.. [2] ECMWF, "L137 model level definitions" (the a/b coefficients in :mod:`._l137`).
   https://confluence.ecmwf.int/display/UDOC/L137+model+level+definitions
"""

from __future__ import annotations

import numpy as np

from hubkit.ozone._l137 import L137_A, L137_B
from hubkit.ozone.atmosphere import GRAVITY, R_DRY, OzoneInputError

__all__ = ["check_coefficients", "hybrid_pressure", "hydrostatic_altitude", "l137_coefficients",
           "level_order"]

#: Surface pressures outside this range are taken for a unit error (hPa given for Pa). [Pa]
SURFACE_PRESSURE_RANGE = (3.0e4, 1.2e5)


def l137_coefficients() -> tuple[np.ndarray, np.ndarray]:
    """The ECMWF L137 interface coefficients ``(a [Pa], b [1])``, 138 values each, top first.

    Published by ECMWF (reference [2] of this module) with six decimals.
    """
    return np.array(L137_A), np.array(L137_B)


def level_order(a, b) -> str:
    """Whether hybrid coefficients run from the model top down or from the surface up.

    Parameters
    ----------
    a : array_like, (interface,)
        Pressure coefficient of the interfaces. [Pa]
    b : array_like, (interface,)
        Sigma coefficient of the interfaces. [1]

    Returns
    -------
    {"top-first", "bottom-first"}
        ``"top-first"`` (ECMWF, TM5) when ``b`` grows along the array (``b = 0`` at the top,
        ``1`` at the surface); for pure pressure levels (``b`` constant) ``a`` decides.
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if b[-1] != b[0]:
        return "top-first" if b[-1] > b[0] else "bottom-first"
    if a[-1] != a[0]:
        return "top-first" if a[-1] > a[0] else "bottom-first"
    raise OzoneInputError("hybrid coefficients a and b are constant along the interfaces; "
                          "expected pressures that change from the surface to the model top")


def check_coefficients(a, b, ps):
    """The hybrid coefficients ``a`` [Pa], ``b`` [1] and surface pressure ``ps`` [Pa] as float
    arrays, checked: at least 2 interfaces, one count for both, ``a >= 0``, ``b`` within [0, 1],
    surface pressures within :data:`SURFACE_PRESSURE_RANGE` (else :class:`OzoneInputError`
    naming what was found)."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.ndim < 1 or a.shape[-1] < 2:
        raise OzoneInputError(f"a has shape {a.shape}; expected (..., interface) with at least "
                              "2 interfaces [Pa]")
    if b.shape[-1:] != a.shape[-1:]:
        raise OzoneInputError(f"a has {a.shape[-1]} interfaces and b {b.shape[-1]}; expected the "
                              "same number (levels + 1) for both")
    if np.any(a < 0) or np.any((b < 0) | (b > 1)):
        raise OzoneInputError("a must be >= 0 [Pa] and b within [0, 1]; found a in "
                              f"[{a.min()}, {a.max()}], b in [{b.min()}, {b.max()}]")
    ps = np.asarray(ps, dtype=float)
    lo, hi = SURFACE_PRESSURE_RANGE
    finite = ps[np.isfinite(ps)]
    if finite.size and (finite.min() < lo or finite.max() > hi):
        hint = " (hPa given instead of Pa?)" if finite.max() < 2000 else ""
        raise OzoneInputError(f"surface_pressure spans [{finite.min():g}, {finite.max():g}]; "
                              f"expected Pa within [{lo:g}, {hi:g}]{hint}")
    return a, b, ps


def hybrid_pressure(a, b, surface_pressure, *, check: bool = True):
    """Interface and full-level pressures of hybrid sigma-pressure levels.

    .. math:: p_{k+1/2} = a_{k+1/2} + b_{k+1/2}\\, p_s, \\qquad
              p_k = \\tfrac{1}{2}\\,(p_{k-1/2} + p_{k+1/2})

    (CF ``atmosphere_hybrid_sigma_pressure_coordinate``; the full level is the ECMWF
    arithmetic mean of its interfaces [2]_.) The level order of the output is that of ``a``.

    Parameters
    ----------
    a : array_like, (..., interface)
        Pressure coefficient of the ``n + 1`` interfaces. [Pa]
    b : array_like, (..., interface)
        Sigma coefficient of the interfaces. [1]
    surface_pressure : array_like, (...)
        Surface pressure, broadcast against the leading dims of ``a``. [Pa]
    check : bool
        Check the coefficients and that ``surface_pressure`` is in Pa (30 to 120 kPa).

    Returns
    -------
    p_interface : ndarray, (..., n + 1)
        Interface (half-level) pressure. [Pa]
    p_full : ndarray, (..., n)
        Full-level pressure. [Pa]

    References
    ----------
    .. [1] Simmons, Burridge, Mon. Wea. Rev. 109, 758-766, 1981, eq. (3.17).
       doi:10.1175/1520-0493(1981)109<0758:AEAAMC>2.0.CO;2
    .. [2] ECMWF, L137 model level definitions.
       https://confluence.ecmwf.int/display/UDOC/L137+model+level+definitions

    Examples
    --------
    >>> a, b = l137_coefficients()
    >>> ph, pf = hybrid_pressure(a, b, 101325.0)
    >>> round(float(ph[-2]) / 100, 2), round(float(pf[0]) / 100, 4)
    (1010.85, 0.01)
    """
    if check:
        a, b, ps = check_coefficients(a, b, surface_pressure)
    else:
        a, b, ps = (np.asarray(x) for x in (a, b, surface_pressure))
    ph = a + b * ps[..., None]
    return ph, 0.5 * (ph[..., 1:] + ph[..., :-1])


def hydrostatic_altitude(p_interface, temperature, surface_altitude):
    """Geopotential heights of interfaces and full levels by hydrostatic integration (dry air).

    Integrates the hypsometric equation upwards from the surface layer by layer with the
    full-level temperature, humidity set to zero as in Gai et al. (2021); full levels are placed
    as in the ECMWF IFS (Simmons & Burridge 1981 [1]_):

    .. math:: H_{k-1/2} = H_{k+1/2} + \\frac{R_d T_k}{g_0}\\,\\ln\\frac{p_{k+1/2}}{p_{k-1/2}},
              \\qquad H_k = H_{k+1/2} + \\alpha_k \\frac{R_d T_k}{g_0},
    .. math:: \\alpha_k = 1 - \\frac{p_{k-1/2}}{p_{k+1/2} - p_{k-1/2}}
              \\ln\\frac{p_{k+1/2}}{p_{k-1/2}} \\quad (\\alpha = \\ln 2 \\text{ for a layer whose
              top is } p = 0)

    where ``k + 1/2`` is the lower interface of layer ``k``, ``R_d = R*/M_0`` and
    ``g_0 = 9.80665 m s-2`` (US Standard Atmosphere 1976). Either level order is accepted (it is
    read from the pressures) and kept in the output.

    Parameters
    ----------
    p_interface : array_like, (..., n + 1)
        Interface pressure, monotonic along the last axis. [Pa]
    temperature : array_like, (..., n)
        Full-level (layer) temperature. [K]
    surface_altitude : array_like, (...)
        Geopotential height of the surface (orography). [m]

    Returns
    -------
    z_interface : ndarray, (..., n + 1)
        Geopotential height of the interfaces; ``inf`` at an interface of zero pressure. [m]
    z_full : ndarray, (..., n)
        Geopotential height of the full levels. [m]

    References
    ----------
    .. [1] Simmons, Burridge, Mon. Wea. Rev. 109, 758-766, 1981 (the finite-difference form
       the ECMWF IFS uses). doi:10.1175/1520-0493(1981)109<0758:AEAAMC>2.0.CO;2
    .. [2] Gai et al., Remote Sens. 13, 210, 2021, section 4.3.3. doi:10.3390/rs13020210
    """
    ph = np.asarray(p_interface, dtype=float)
    t = np.asarray(temperature, dtype=float)
    zs = np.asarray(surface_altitude, dtype=float)
    if ph.shape[-1] != t.shape[-1] + 1:
        raise OzoneInputError(f"p_interface has {ph.shape[-1]} interfaces and temperature "
                              f"{t.shape[-1]} levels; expected interfaces = levels + 1")
    flip = bool(np.ravel(ph[..., 0])[0] < np.ravel(ph[..., -1])[0])  # top first
    if flip:
        ph, t = ph[..., ::-1], t[..., ::-1]
    zh, zf = _hydrostatic_up(ph, t, zs)
    if flip:
        return zh[..., ::-1], zf[..., ::-1]
    return zh, zf


def _hydrostatic_up(ph, t, zs, lnp=None):
    """The kernel of :func:`hydrostatic_altitude`, surface first (``ph[..., 0]`` = p_s);
    ``lnp`` is ``log(ph)`` when the caller has it."""
    lower, upper = ph[..., :-1], ph[..., 1:]
    scale = (R_DRY / GRAVITY) * t
    with np.errstate(divide="ignore", invalid="ignore"):
        if lnp is None:
            lnp = np.log(ph)
        log_ratio = lnp[..., :-1] - lnp[..., 1:]  # inf for a top at p = 0
        alpha = 1.0 - upper / (lower - upper) * log_ratio
        if not np.all(upper[..., -1] > 0):
            alpha = np.where(upper > 0, alpha, np.log(2.0))
    dz = scale * log_ratio
    zh = np.empty(ph.shape, dtype=float)
    zh[..., 0] = zs
    np.cumsum(dz, axis=-1, out=zh[..., 1:])
    zh[..., 1:] += zs[..., None]
    return zh, zh[..., :-1] + alpha * scale
