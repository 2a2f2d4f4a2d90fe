"""Forecast models: Lorenz-96 and a mass-conserving flux-form tracer transport.

Lorenz-96 is the standard test bed of ensemble filters (Lorenz 1996; Lorenz & Emanuel 1998). The
transport model advects a tracer mixing ratio with given air-mass fluxes in flux form, one
direction at a time (dimensional splitting), on a doubly periodic grid or on a global
latitude-longitude grid (periodic in longitude, no flux through the poles). Air mass and tracer
mass are moved by the same fluxes, so that total tracer mass is conserved to rounding and a
uniform mixing ratio stays uniform whatever the winds (the consistency TM5 relies on; Russell &
Lerner 1981). Face values are upwind, optionally with minmod-limited slopes (second order,
monotone). Courant numbers above 1 (near the poles) are handled by equal sub-steps.

References
----------
.. [1] Lorenz, "Predictability: a problem partly solved", Proc. ECMWF Seminar on Predictability,
   1-18, 1996; reprinted in Palmer, Hagedorn (eds.), Predictability of Weather and Climate,
   Cambridge University Press, 40-58, 2006. doi:10.1017/CBO9780511617652.004
.. [2] Lorenz, Emanuel, "Optimal sites for supplementary weather observations", J. Atmos. Sci.
   55, 399-414, 1998. doi:10.1175/1520-0469(1998)055<0399:OSFSWO>2.0.CO;2
.. [3] Russell, Lerner, "A new finite-differencing scheme for the tracer transport equation",
   J. Appl. Meteorol. 20, 1483-1498, 1981. doi:10.1175/1520-0450(1981)020<1483:ANFDSF>2.0.CO;2
.. [4] van Leer, "Towards the ultimate conservative difference scheme. IV", J. Comput. Phys. 23,
   276-299, 1977. doi:10.1016/0021-9991(77)90095-X
.. [5] Eskes, van Velthoven, Valks, Kelder, "Assimilation of GOME total-ozone satellite
   observations in a three-dimensional tracer-transport model", Q. J. R. Meteorol. Soc. 129,
   1663-1681, 2003. doi:10.1256/qj.02.14
"""

from __future__ import annotations

import numpy as np

from hubkit.constants import EARTH_RADIUS
from hubkit.errors import AssimilationInputError

__all__ = [
    "cell_area_latlon",
    "lorenz96_integrate",
    "lorenz96_step",
    "lorenz96_tendency",
    "mass_fluxes_latlon",
    "relax_to_climatology",
    "transport_step",
]



# -- Lorenz-96 ----------------------------------------------------------------------------------
def lorenz96_tendency(x, forcing=8.0):
    """Lorenz-96 tendency ``dx_i/dt = (x_{i+1} − x_{i−2}) x_{i−1} − x_i + F`` (cyclic in i).

    Parameters
    ----------
    x : array_like, (..., n)
        State; the last axis is the cyclic variable index, leading axes (members) are batched.
        [1]
    forcing : float
        Forcing ``F``. [1]

    Returns
    -------
    dxdt : ndarray, (..., n)
        Tendency. [1 / model time unit]

    References
    ----------
    .. [1] Lorenz, Proc. ECMWF Seminar on Predictability, 1996 (reprinted 2006).
       doi:10.1017/CBO9780511617652.004
    """
    x = np.asarray(x, dtype=float)
    if x.ndim < 1 or x.shape[-1] < 4:
        raise AssimilationInputError(f"x has shape {x.shape}, expected (..., n) with n >= 4")
    return (np.roll(x, -1, -1) - np.roll(x, 2, -1)) * np.roll(x, 1, -1) - x + forcing


def lorenz96_step(x, dt=0.05, forcing=8.0):
    """One classical fourth-order Runge–Kutta step of Lorenz-96.

    Parameters
    ----------
    x : array_like, (..., n)
        State. [1]
    dt : float
        Time step (0.05 ≈ 6 h of atmospheric time, Lorenz 1996). [model time unit]
    forcing : float
        Forcing ``F``. [1]

    Returns
    -------
    x_next : ndarray, (..., n)
    """
    k1 = lorenz96_tendency(x, forcing)
    k2 = lorenz96_tendency(x + 0.5 * dt * k1, forcing)
    k3 = lorenz96_tendency(x + 0.5 * dt * k2, forcing)
    k4 = lorenz96_tendency(x + dt * k3, forcing)
    return np.asarray(x, dtype=float) + dt / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4)


def lorenz96_integrate(x, n_steps, dt=0.05, forcing=8.0):
    """Integrate Lorenz-96 for ``n_steps`` RK4 steps and return the final state.

    Parameters
    ----------
    x : array_like, (..., n)
        Initial state. [1]
    n_steps : int
        Number of steps.
    dt : float
        Time step. [model time unit]
    forcing : float
        Forcing ``F``. [1]

    Returns
    -------
    x_final : ndarray, (..., n)
    """
    if int(n_steps) < 0:
        raise AssimilationInputError(f"n_steps={n_steps!r}: expected an integer >= 0")
    x = np.asarray(x, dtype=float)
    for _ in range(int(n_steps)):
        x = lorenz96_step(x, dt, forcing)
    return x


# -- flux-form transport ------------------------------------------------------------------------
def cell_area_latlon(lat_edges, n_lon, radius=EARTH_RADIUS):
    """Areas of the cells of a regular-in-longitude latitude-longitude grid.

    Parameters
    ----------
    lat_edges : array_like, (n_lat + 1,)
        Latitude cell edges, increasing, from −90 to 90. [°]
    n_lon : int
        Number of longitude cells (equal widths ``360/n_lon``).
    radius : float
        Sphere radius. [m]

    Returns
    -------
    area : ndarray, (n_lat, n_lon)
        Cell areas; they sum to ``4πR²``. [m²]
    """
    e = np.radians(np.asarray(lat_edges, dtype=float))
    band = 2.0 * np.pi * radius**2 * np.diff(np.sin(e)) / int(n_lon)
    return np.repeat(band[:, None], int(n_lon), axis=1)


def mass_fluxes_latlon(u, v, air_mass, lat_edges, dt, radius=EARTH_RADIUS):
    """Air-mass fluxes through the cell faces of a latitude-longitude grid from winds.

    The flux through a face is the upwind cell's air mass per unit area times the wind, the face
    length and ``dt``; meridional fluxes through the poles are zero.

    Parameters
    ----------
    u : array_like, (n_lat, n_lon)
        Eastward wind on the west face of each cell. [m s⁻¹]
    v : array_like, (n_lat + 1, n_lon)
        Northward wind on the southern face of each cell (last row: northern edge). [m s⁻¹]
    air_mass : array_like, (n_lat, n_lon)
        Air mass of each cell (column mass, or any per-area density times area). [kg]
    lat_edges : array_like, (n_lat + 1,)
        Latitude edges, increasing from −90 to 90. [°]
    dt : float
        Time step. [s]
    radius : float
        Sphere radius. [m]

    Returns
    -------
    fx : ndarray, (n_lat, n_lon)
        Eastward air mass through the west face of each cell over ``dt``. [kg]
    fy : ndarray, (n_lat + 1, n_lon)
        Northward air mass through each latitude edge over ``dt`` (zero at the poles). [kg]
    """
    m = np.asarray(air_mass, dtype=float)
    n_lat, n_lon = m.shape
    e = np.asarray(lat_edges, dtype=float)
    area = cell_area_latlon(e, n_lon, radius)
    sigma = m / area  # [kg m-2]
    dy = radius * np.radians(np.diff(e))  # west-face length [m]
    dx_edge = radius * np.cos(np.radians(e)) * 2.0 * np.pi / n_lon  # south-face length [m]
    u = np.asarray(u, dtype=float)
    v = np.asarray(v, dtype=float)
    up_x = np.where(u >= 0, np.roll(sigma, 1, axis=1), sigma)
    fx = up_x * u * dy[:, None] * dt
    fy = np.zeros((n_lat + 1, n_lon))
    vi = v[1:-1]
    up_y = np.where(vi >= 0, sigma[:-1], sigma[1:])
    fy[1:-1] = up_y * vi * dx_edge[1:-1, None] * dt
    return fx, fy


def _minmod_slope(q: np.ndarray, axis: int, periodic: bool) -> np.ndarray:
    if periodic:
        dm = q - np.roll(q, 1, axis)
        dp = np.roll(q, -1, axis) - q
    else:
        pad = [(0, 0)] * q.ndim
        pad[axis] = (1, 1)
        qe = np.pad(q, pad, mode="edge")
        n = q.shape[axis]
        dm = q - np.take(qe, np.arange(0, n), axis=axis)
        dp = np.take(qe, np.arange(2, n + 2), axis=axis) - q
    return np.where(dm * dp > 0, np.sign(dm) * np.minimum(np.abs(dm), np.abs(dp)), 0.0)


def _advect_1d(m, tracer, flux, axis, periodic, slopes):
    """One flux-form update along ``axis``; ``flux`` is on the low face of each cell (and, if not
    periodic, one extra trailing face). Returns new air mass and tracer mass."""
    q = tracer / m
    n = m.shape[axis]
    if periodic:
        f_low = flux
        f_high = np.roll(flux, -1, axis)
        q_left = np.roll(q, 1, axis)  # cell upstream of the low face for positive flux
        m_left = np.roll(m, 1, axis)
    else:
        f_low = np.take(flux, np.arange(0, n), axis=axis)
        f_high = np.take(flux, np.arange(1, n + 1), axis=axis)
        q_left = np.concatenate([np.take(q, [0], axis=axis), np.take(q, np.arange(0, n - 1),
                                                                   axis=axis)], axis=axis)
        m_left = np.concatenate([np.take(m, [0], axis=axis), np.take(m, np.arange(0, n - 1),
                                                                   axis=axis)], axis=axis)
    if slopes:
        s = _minmod_slope(q, axis, periodic)
        if periodic:
            s_left = np.roll(s, 1, axis)
        else:
            s_left = np.concatenate([np.zeros_like(np.take(s, [0], axis=axis)),
                                     np.take(s, np.arange(0, n - 1), axis=axis)], axis=axis)
        c_pos = np.clip(f_low / m_left, 0.0, 1.0)
        c_neg = np.clip(-f_low / m, 0.0, 1.0)
        q_face = np.where(f_low >= 0, q_left + 0.5 * (1.0 - c_pos) * s_left,
                          q - 0.5 * (1.0 - c_neg) * s)
    else:
        q_face = np.where(f_low >= 0, q_left, q)
    tf_low = q_face * f_low  # tracer flux through the low face
    if periodic:
        tf_high = np.roll(tf_low, -1, axis)
    else:
        tf_last = np.zeros_like(np.take(tf_low, [0], axis=axis))  # closed boundary (poles)
        tf_high = np.concatenate([np.take(tf_low, np.arange(1, n), axis=axis), tf_last],
                                 axis=axis)
    return m + f_low - f_high, tracer + tf_low - tf_high


def transport_step(mixing_ratio, air_mass, flux_x, flux_y, *, periodic_y=True, slopes=True):
    """Advance a tracer one step by flux-form advection (x then y, dimensional splitting).

    Air mass ``m`` and tracer mass ``q·m`` are updated by the same face fluxes, and the new
    mixing ratio is their quotient: the sum of tracer mass is conserved to rounding and a uniform
    ``q`` stays uniform. A direction whose largest outflow Courant number ``|F|/m`` exceeds 0.9
    is split into equal sub-steps; in x (periodic) each row of cells gets its own number of
    sub-steps, so the polar rows of a latitude-longitude grid do not slow down the others.

    Parameters
    ----------
    mixing_ratio : array_like, (..., ny, nx)
        Tracer mixing ratio ``q``; leading axes (members, levels) are batched. [any, e.g. mol mol⁻¹]
    air_mass : array_like, (ny, nx) or (..., ny, nx)
        Air mass per cell. [kg]
    flux_x : array_like, (ny, nx)
        Air mass through the low-x (west) face of each cell over the step, positive eastward;
        x is periodic. [kg]
    flux_y : array_like, (ny, nx) if periodic_y else (ny + 1, nx)
        Air mass through the low-y (south) face, positive northward. Not periodic (a
        latitude-longitude grid): the extra last row is the top edge and the first and last rows
        must be zero (no flux through the poles). [kg]
    periodic_y : bool
        Doubly periodic domain (True) or closed in y (False, the global grid).
    slopes : bool
        Minmod-limited linear reconstruction (second order) instead of first-order upwind.

    Returns
    -------
    mixing_ratio : ndarray, (..., ny, nx)
        New mixing ratio. [same unit]
    air_mass : ndarray, (..., ny, nx)
        New air mass. [kg]

    References
    ----------
    .. [1] Russell, Lerner, J. Appl. Meteorol. 20, 1483-1498, 1981.
       doi:10.1175/1520-0450(1981)020<1483:ANFDSF>2.0.CO;2
    .. [2] van Leer, J. Comput. Phys. 23, 276-299, 1977. doi:10.1016/0021-9991(77)90095-X
    """
    q = np.asarray(mixing_ratio, dtype=float)
    m = np.broadcast_to(np.asarray(air_mass, dtype=float), q.shape).copy()
    fx = np.asarray(flux_x, dtype=float)
    fy = np.asarray(flux_y, dtype=float)
    ny, nx = q.shape[-2:]
    if np.any(m <= 0):
        raise AssimilationInputError("air_mass has values <= 0; expected positive cell masses [kg]")
    if fx.shape != (ny, nx):
        raise AssimilationInputError(f"flux_x has shape {fx.shape}, expected ({ny}, {nx})")
    want_y = (ny, nx) if periodic_y else (ny + 1, nx)
    if fy.shape != want_y:
        raise AssimilationInputError(f"flux_y has shape {fy.shape}, expected {want_y}")
    if not periodic_y and (np.any(fy[0] != 0) or np.any(fy[-1] != 0)):
        raise AssimilationInputError("flux_y must be zero on the first and last (polar) edges")
    t = q * m
    for flux, axis, periodic in ((fx, -1, True), (fy, -2, periodic_y)):
        if periodic:
            out_high = np.maximum(np.roll(flux, -1, axis), 0.0)
            out_low = np.maximum(-flux, 0.0)
        else:
            out_high = np.maximum(np.take(flux, np.arange(1, flux.shape[axis]), axis=axis), 0.0)
            out_low = np.maximum(-np.take(flux, np.arange(0, flux.shape[axis] - 1), axis=axis),
                                 0.0)
        ratio = (out_high + out_low) / m.reshape((-1, ny, nx)).min(axis=0)
        if axis == -1:  # rows are independent in x: sub-step each row by its own Courant number
            n_row = np.maximum(1, np.ceil(ratio.max(axis=-1) / 0.9)).astype(int)
        else:
            n_row = np.full(ny, max(1, int(np.ceil(float(ratio.max()) / 0.9))))
        counts = np.unique(n_row)
        for n_sub in counts:
            rows = slice(None) if counts.size == 1 else np.flatnonzero(n_row == n_sub)
            mr, tr, fr = m[..., rows, :], t[..., rows, :], flux[rows]
            for _ in range(int(n_sub)):
                mr, tr = _advect_1d(mr, tr, fr / n_sub, axis, periodic, slopes)
                if np.any(mr <= 0):
                    raise AssimilationInputError(
                        "transport_step: air mass became non-positive; the fluxes empty a cell "
                        "(reduce the time step or check flux_x/flux_y)")
            if counts.size == 1:
                m, t = mr, tr
            else:
                m[..., rows, :], t[..., rows, :] = mr, tr
    return t / m, m


# -- first-order chemistry ----------------------------------------------------------------------
def relax_to_climatology(mixing_ratio, climatology, tau, dt):
    """First-order chemistry: relaxation towards a climatology, integrated exactly over ``dt``.

    .. math::
        \\frac{dx}{dt} = -\\frac{x - x_c}{τ}
        \\quad\\Rightarrow\\quad x(t + Δt) = x_c + (x(t) - x_c)\\, e^{-Δt/τ}

    The linearised ozone chemistry of the TM5 assimilation is of this form (a production-loss
    term relaxing towards a climatology with a local time scale; Eskes et al. 2003, section 2).
    Applied after each transport step (operator splitting); being exact, it is stable for any
    ``dt/τ``. ``τ = inf`` leaves the field unchanged.

    Parameters
    ----------
    mixing_ratio : array_like, (..., ny, nx)
        Tracer mixing ratio ``x``. [any, e.g. mol mol⁻¹]
    climatology : array_like, broadcastable to ``mixing_ratio``
        Climatological mixing ratio ``x_c``. [same unit]
    tau : float or array_like, broadcastable
        Relaxation time scale ``τ`` (> 0; ``inf`` for none). [s]
    dt : float
        Time step ``Δt`` (≥ 0). [s]

    Returns
    -------
    mixing_ratio : ndarray
        ``x_c + (x − x_c) e^{−Δt/τ}``. [same unit]

    References
    ----------
    .. [1] Eskes et al., Q. J. R. Meteorol. Soc. 129, 1663-1681, 2003. doi:10.1256/qj.02.14
    """
    x = np.asarray(mixing_ratio, dtype=float)
    tau = np.asarray(tau, dtype=float)
    if np.any(~(tau > 0)):
        raise AssimilationInputError(f"tau={tau!r}: expected a time scale > 0 [s] (inf: none)")
    if not float(dt) >= 0:
        raise AssimilationInputError(f"dt={dt!r}: expected a time step >= 0 [s]")
    xc = np.asarray(climatology, dtype=float)
    return xc + (x - xc) * np.exp(-float(dt) / tau)
