"""Kalman-filter analyses: exact KF, stochastic EnKF, ETKF and LETKF with localisation.

Conventions. An ensemble is an array with the **member first**: ``(N, n)`` for ``N`` members of
an ``n``-element state, or ``(N, G, ...)`` for the LETKF, where ``G`` is the number of grid points
(columns) that carry a location and ``...`` are the variables of one column (levels, species),
which share that column's localisation weights. The observation ensemble ``H(x_i)`` is given by
the caller, shape ``(N, p)``, so that any (nonlinear) operator of
:mod:`hubkit.assimilation.operators` can be used. Observation errors are uncorrelated for the
LETKF (a variance per observation); the exact KF, the EnKF and the ETKF also take a full
covariance matrix.

Multiplicative inflation ``ρ`` multiplies the background error covariance: the background
perturbations are scaled by ``√ρ`` (EnKF), or ``(N−1)I`` is divided by ``ρ`` in the ensemble-space
precision (ETKF/LETKF, Hunt et al. 2007, eq. 21), which is the same thing.

References
----------
.. [1] Kalman, "A new approach to linear filtering and prediction problems", J. Basic Eng. 82,
   35-45, 1960. doi:10.1115/1.3662552
.. [2] Evensen, "Sequential data assimilation with a nonlinear quasi-geostrophic model using
   Monte Carlo methods to forecast error statistics", J. Geophys. Res. 99, 10143-10162, 1994.
   doi:10.1029/94JC00572
.. [3] Burgers, van Leeuwen, Evensen, "Analysis scheme in the ensemble Kalman filter", Mon. Wea.
   Rev. 126, 1719-1724, 1998. doi:10.1175/1520-0493(1998)126<1719:ASITEK>2.0.CO;2
.. [4] Hunt, Kostelich, Szunyogh, "Efficient data assimilation for spatiotemporal chaos: a local
   ensemble transform Kalman filter", Physica D 230, 112-126, 2007.
   doi:10.1016/j.physd.2006.11.008
.. [5] Gaspari, Cohn, "Construction of correlation functions in two and three dimensions",
   Q. J. R. Meteorol. Soc. 125, 723-757, 1999. doi:10.1002/qj.49712555417
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from hubkit.assimilation.localisation import (
    LocalObservations,
    finite_array,
    gaspari_cohn,
    great_circle_distance,
    local_observations,
    local_observations_periodic,
    local_observations_sphere,
    periodic_distance,
    vertical_localisation,
)
from hubkit.constants import EARTH_RADIUS
from hubkit.errors import AssimilationInputError

# the localisation names stay importable from here (hubkit.assimilation.localisation has them)
__all__ = [
    "EARTH_RADIUS",
    "LocalObservations",
    "enkf_analysis",
    "etkf_analysis",
    "gaspari_cohn",
    "great_circle_distance",
    "kalman_analysis",
    "kalman_forecast",
    "letkf_analysis",
    "letkf_sphere",
    "local_observations",
    "local_observations_periodic",
    "local_observations_sphere",
    "periodic_distance",
    "vertical_localisation",
]


# -- checks -------------------------------------------------------------------------------------
def _obs_covariance(name: str, R, p: int) -> np.ndarray:
    """``R`` as a ``(p, p)`` matrix (a ``(p,)`` vector or a scalar is a diagonal)."""
    R = finite_array(name, R, (0, 1, 2))
    if R.ndim < 2:
        R = np.diag(np.broadcast_to(R, (p,)).copy())
    if R.shape != (p, p):
        raise AssimilationInputError(f"{name} has shape {R.shape}, expected ({p}, {p}) or ({p},)")
    if np.any(np.diag(R) <= 0):
        raise AssimilationInputError(f"{name} has non-positive variances; expected > 0")
    return R


def _inflation(value) -> float:
    rho = float(value)
    if not np.isfinite(rho) or rho <= 0:
        raise AssimilationInputError(
            f"inflation={value!r}: expected a finite factor > 0 (1 = none)")
    return rho


def _ensemble_obs(ensemble: np.ndarray, y: np.ndarray, obs_ensemble) -> np.ndarray:
    hx = finite_array("obs_ensemble", obs_ensemble, 2)
    if hx.shape != (ensemble.shape[0], y.size):
        raise AssimilationInputError(
            f"obs_ensemble has shape {hx.shape}, expected (members, observations) = "
            f"({ensemble.shape[0]}, {y.size})")
    if ensemble.shape[0] < 2:
        raise AssimilationInputError(f"ensemble has {ensemble.shape[0]} member(s), expected >= 2")
    return hx



# -- exact Kalman filter ------------------------------------------------------------------------
def kalman_analysis(xb, Pb, y, H, R):
    """Kalman-filter analysis of a linear(ised) observation: the Gaussian posterior.

    .. math::
        K = P_b H^T (H P_b H^T + R)^{-1},\\quad x_a = x_b + K (y - H x_b),\\quad
        P_a = (I - K H) P_b

    ``P_a`` is returned symmetrised. The gain is computed by a linear solve, not an inverse.

    Parameters
    ----------
    xb : array_like, (n,)
        Background (forecast) state. [state units]
    Pb : array_like, (n, n)
        Background error covariance. [state units²]
    y : array_like, (p,)
        Observations. [observation units]
    H : array_like, (p, n)
        Linear observation operator. [observation units / state units]
    R : array_like, (p, p) or (p,)
        Observation error covariance (a vector is its diagonal). [observation units²]

    Returns
    -------
    xa : ndarray, (n,)
        Analysis state. [state units]
    Pa : ndarray, (n, n)
        Analysis error covariance. [state units²]

    References
    ----------
    .. [1] Kalman, J. Basic Eng. 82, 35-45, 1960. doi:10.1115/1.3662552
    """
    xb = finite_array("xb", xb, 1)
    y = finite_array("y", y, (0, 1)).reshape(-1)
    n, p = xb.size, y.size
    Pb = finite_array("Pb", Pb, 2)
    H = finite_array("H", H, 2)
    if Pb.shape != (n, n):
        raise AssimilationInputError(f"Pb has shape {Pb.shape}, expected ({n}, {n})")
    if H.shape != (p, n):
        raise AssimilationInputError(
            f"H has shape {H.shape}, expected (observations, state) = ({p}, {n})")
    R = _obs_covariance("R", R, p)
    PHt = Pb @ H.T
    S = H @ PHt + R
    K = np.linalg.solve(S, PHt.T).T
    xa = xb + K @ (y - H @ xb)
    Pa = Pb - K @ PHt.T
    return xa, 0.5 * (Pa + Pa.T)


def kalman_forecast(xa, Pa, M, Q=None):
    """Kalman-filter forecast with linear dynamics: ``x_f = M x_a``, ``P_f = M P_a Mᵀ + Q``.

    Parameters
    ----------
    xa : array_like, (n,)
        Analysis state. [state units]
    Pa : array_like, (n, n)
        Analysis error covariance. [state units²]
    M : array_like, (n, n)
        Linear model (propagator) over the forecast step. [1]
    Q : array_like, (n, n), optional
        Model error covariance added over the step (default none). [state units²]

    Returns
    -------
    xf : ndarray, (n,)
    Pf : ndarray, (n, n)
    """
    xa = finite_array("xa", xa, 1)
    Pa = finite_array("Pa", Pa, 2)
    M = finite_array("M", M, 2)
    n = xa.size
    if Pa.shape != (n, n) or M.shape != (n, n):
        raise AssimilationInputError(f"Pa {Pa.shape} and M {M.shape} must both be ({n}, {n})")
    Pf = M @ Pa @ M.T
    if Q is not None:
        Q = finite_array("Q", Q, 2)
        if Q.shape != (n, n):
            raise AssimilationInputError(f"Q has shape {Q.shape}, expected ({n}, {n})")
        Pf = Pf + Q
    return M @ xa, 0.5 * (Pf + Pf.T)


# -- stochastic EnKF ----------------------------------------------------------------------------
def enkf_analysis(ensemble, y, obs_ensemble, R, rng, *, inflation=1.0, localisation=None,
                  centre_perturbations=True):
    """Stochastic (perturbed-observation) ensemble Kalman filter analysis.

    Each member is updated with its own perturbed observation ``y + ε_i``, ``ε_i ~ N(0, R)``,
    with the gain built from the ensemble covariances:

    .. math::
        K = P_{xy} (P_{yy} + R)^{-1},\\quad P_{xy} = \\frac{X'^T Y'}{N-1},\\quad
        P_{yy} = \\frac{Y'^T Y'}{N-1}

    Parameters
    ----------
    ensemble : array_like, (N, n)
        Background ensemble. [state units]
    y : array_like, (p,)
        Observations. [observation units]
    obs_ensemble : array_like, (N, p)
        ``H(x_i)`` of each background member. [observation units]
    R : array_like, (p, p) or (p,)
        Observation error covariance (a vector is its diagonal). [observation units²]
    rng : numpy.random.Generator
        Source of the observation perturbations.
    inflation : float
        Multiplicative covariance inflation ``ρ``; perturbations are scaled by ``√ρ``. [1]
    localisation : tuple of array_like, optional
        ``(rho_xy, rho_yy)`` Schur-product tapers of shapes ``(n, p)`` and ``(p, p)`` applied to
        ``P_xy`` and ``P_yy`` (Houtekamer & Mitchell 2001), e.g. :func:`gaspari_cohn` of the
        distances. [1]
    centre_perturbations : bool
        Remove the ensemble mean of the observation perturbations (reduces sampling noise).

    Returns
    -------
    analysis : ndarray, (N, n)
        Analysis ensemble. [state units]

    References
    ----------
    .. [1] Evensen, J. Geophys. Res. 99, 10143-10162, 1994. doi:10.1029/94JC00572
    .. [2] Burgers, van Leeuwen, Evensen, Mon. Wea. Rev. 126, 1719-1724, 1998.
       doi:10.1175/1520-0493(1998)126<1719:ASITEK>2.0.CO;2
    .. [3] Houtekamer, Mitchell, "A sequential ensemble Kalman filter for atmospheric data
       assimilation", Mon. Wea. Rev. 129, 123-137, 2001.
       doi:10.1175/1520-0493(2001)129<0123:ASEKFF>2.0.CO;2
    """
    X = finite_array("ensemble", ensemble, 2)
    y = finite_array("y", y, (0, 1)).reshape(-1)
    hx = _ensemble_obs(X, y, obs_ensemble)
    N, p = hx.shape
    R = _obs_covariance("R", R, p)
    s = np.sqrt(_inflation(inflation))
    xm, ym = X.mean(axis=0), hx.mean(axis=0)
    Xp, Yp = s * (X - xm), s * (hx - ym)
    Xb = xm + Xp
    hxb = ym + Yp
    Pxy = Xp.T @ Yp / (N - 1)
    Pyy = Yp.T @ Yp / (N - 1)
    if localisation is not None:
        rho_xy, rho_yy = (np.asarray(t, dtype=float) for t in localisation)
        if rho_xy.shape != Pxy.shape or rho_yy.shape != Pyy.shape:
            raise AssimilationInputError(
                f"localisation tapers have shapes {rho_xy.shape}, {rho_yy.shape}; expected "
                f"{Pxy.shape} (state × obs) and {Pyy.shape} (obs × obs)")
        Pxy, Pyy = Pxy * rho_xy, Pyy * rho_yy
    eps = rng.multivariate_normal(np.zeros(p), R, size=N) if p else np.zeros((N, 0))
    if centre_perturbations:
        eps = eps - eps.mean(axis=0)
    innov = (y + eps) - hxb  # (N, p)
    gain_t = np.linalg.solve(Pyy + R, Pxy.T)  # K^T, (p, n)
    return Xb + innov @ gain_t


# -- ensemble transform (ETKF / LETKF) ----------------------------------------------------------
def _transform(Yp: np.ndarray, d: np.ndarray, rinv: np.ndarray, rho) -> np.ndarray:
    """Batched ensemble-space analysis of Hunt et al. (2007), eqs. (21)-(24).

    ``Yp`` (B, k, N) observation perturbations, ``d`` (B, k) innovations ``y − ȳ_b``, ``rinv``
    (B, k) localised inverse error variances, ``rho`` scalar or (B,) inflation. Returns the total
    weights ``w̄_a + W_a``, (B, N, N): column ``j`` builds member ``j``.
    """
    B, _, N = Yp.shape
    CT = (Yp * rinv[:, :, None]).transpose(0, 2, 1)  # C = Y_bᵀ R⁻¹, (B, N, k)
    A = np.matmul(CT, Yp)  # C Y_b, (B, N, N)
    diag = (N - 1) / np.broadcast_to(np.asarray(rho, dtype=float), (B,))
    A[:, np.arange(N), np.arange(N)] += diag[:, None]
    lam, V = np.linalg.eigh(A)  # P̃_a = V Λ⁻¹ Vᵀ
    c = np.matmul(CT, d[:, :, None])  # (B, N, 1)
    VT = V.transpose(0, 2, 1)
    wmean = np.matmul(V, np.matmul(VT, c) / lam[:, :, None])  # (B, N, 1)
    W = np.matmul(V * np.sqrt((N - 1) / lam)[:, None, :], VT)
    return W + wmean


def _transform_obs_space(Yp: np.ndarray, d: np.ndarray, rinv: np.ndarray, rho) -> np.ndarray:
    """:func:`_transform` from ``k × k`` instead of ``N × N`` eigen-problems, for ``k < N``.

    With ``Z = R⁻¹ᐟ² Y_b`` (k, N), ``d̃ = R⁻¹ᐟ² d``, ``α = (N−1)/ρ`` and ``Z Zᵀ = U diag(t) Uᵀ``,
    ``Q = Uᵀ Z``: ``P̃_a^{1/2} = α^{-1/2} I + Qᵀ diag(φ(t)) Q`` with ``φ(t) = −1 / (√α √(α+t)
    (√α + √(α+t)))`` and ``w̄_a = Qᵀ diag(1/(α+t)) Uᵀ d̃``: the matrices of Hunt et al. (2007,
    eqs. 22-24), derived in :mod:`hubkit.assimilation.compiled`. Same arguments and result.
    """
    B, _, N = Yp.shape
    alpha = (N - 1) / np.broadcast_to(np.asarray(rho, dtype=float), (B,))
    s = np.sqrt(rinv)
    Z = Yp * s[:, :, None]  # (B, k, N)
    t, U = np.linalg.eigh(np.matmul(Z, Z.transpose(0, 2, 1)))  # (B, k), (B, k, k)
    t = np.maximum(t, 0.0)  # Z Zᵀ is PSD: a negative eigenvalue is rounding
    UT = U.transpose(0, 2, 1)
    Q = np.matmul(UT, Z)  # (B, k, N)
    QT = Q.transpose(0, 2, 1)
    ra = np.sqrt(alpha)[:, None]
    rt = np.sqrt(alpha[:, None] + t)
    phi = -np.sqrt(N - 1.0) / (ra * rt * (ra + rt))  # √(N-1) φ(t), (B, k)
    W = np.matmul(QT, Q * phi[:, :, None])
    W[:, np.arange(N), np.arange(N)] += np.sqrt(N - 1.0) / ra
    e = np.matmul(UT, (d * s)[:, :, None]) / (alpha[:, None] + t)[:, :, None]  # (B, k, 1)
    return W + np.matmul(QT, e)


def etkf_analysis(ensemble, y, obs_ensemble, R, *, inflation=1.0):
    """Ensemble transform Kalman filter analysis (global, no localisation), symmetric square root.

    The algorithm of Hunt et al. (2007, section 2.3, eqs. 20-24) on the whole state, with the
    observation errors whitened by the Cholesky factor of ``R`` so that correlated errors are
    allowed. For a linear ``H`` and an ensemble whose mean and covariance equal ``x_b`` and
    ``P_b`` (rank ``N − 1`` spanning ``P_b``), the analysis mean and covariance equal those of
    :func:`kalman_analysis`.

    Parameters
    ----------
    ensemble : array_like, (N, n)
        Background ensemble. [state units]
    y : array_like, (p,)
        Observations. [observation units]
    obs_ensemble : array_like, (N, p)
        ``H(x_i)`` of each background member. [observation units]
    R : array_like, (p, p) or (p,)
        Observation error covariance (a vector is its diagonal). [observation units²]
    inflation : float
        Multiplicative covariance inflation ``ρ`` (eq. 21: ``(N−1)I/ρ``). [1]

    Returns
    -------
    analysis : ndarray, (N, n)
        Analysis ensemble. [state units]

    References
    ----------
    .. [1] Hunt, Kostelich, Szunyogh, Physica D 230, 112-126, 2007.
       doi:10.1016/j.physd.2006.11.008
    """
    X = finite_array("ensemble", ensemble, 2)
    y = finite_array("y", y, (0, 1)).reshape(-1)
    hx = _ensemble_obs(X, y, obs_ensemble)
    R = _obs_covariance("R", R, y.size)
    L = np.linalg.cholesky(R)
    ym = hx.mean(axis=0)
    Yw = np.linalg.solve(L, (hx - ym).T)  # whitened (p, N)
    dw = np.linalg.solve(L, y - ym)
    W = _transform(Yw[None], dw[None], np.ones((1, y.size)), _inflation(inflation))[0]
    xm = X.mean(axis=0)
    return xm + W.T @ (X - xm)


def letkf_analysis(ensemble, y, obs_ensemble, obs_error_var, local, *, inflation=1.0,
                   chunk=4096, engine="auto"):
    """Local ensemble transform Kalman filter, batched over all grid points.

    Every grid point ``g`` gets its own ensemble-space analysis (Hunt et al. 2007, steps 4-8 of
    section 2.3) from the observations in ``local`` with R-localisation: the inverse error
    variance of observation ``k`` is multiplied by its weight ``w_gk`` (eq. 37, with a
    Gaspari–Cohn weight). With numba (``hubkit[fast]``) one compiled loop does every point's
    analysis (:mod:`hubkit.assimilation.compiled`); without it, the ``G`` small eigen-
    decompositions are done as one stacked :func:`numpy.linalg.eigh` call per chunk of
    ``chunk`` grid points. Either way, a point that sees fewer observations than members
    (``k < N``) is analysed through an equivalent ``k × k`` eigen-problem instead of the
    ``N × N`` one (the same matrices; see :mod:`hubkit.assimilation.compiled`).

    Parameters
    ----------
    ensemble : array_like, (N, G, ...)
        Background ensemble; trailing dimensions (levels …) share their column's weights.
        [state units]
    y : array_like, (p,)
        Observations. [observation units]
    obs_ensemble : array_like, (N, p)
        ``H(x_i)`` of each background member. [observation units]
    obs_error_var : array_like, (p,) or scalar
        Observation error variances (uncorrelated errors). [observation units²]
    local : LocalObservations or array_like (G, p)
        Local observations and weights per grid point (:func:`local_observations`,
        :func:`local_observations_sphere`), or a dense ``(G, p)`` weight matrix. [1]
    inflation : float or array_like (G,)
        Multiplicative covariance inflation ``ρ``, global or per grid point. [1]
    chunk : int
        Grid points per batched solve of the NumPy path (bounds memory to ``chunk × k × N``
        floats).
    engine : {"auto", "compiled", "numpy"}
        ``"auto"`` uses the compiled kernel when numba is installed, else NumPy; ``"numpy"``
        always the NumPy path; ``"compiled"`` raises ImportError without numba. Both give the
        same analysis (to rounding, ~1e-15 relative).

    Returns
    -------
    analysis : ndarray, (N, G, ...)
        Analysis ensemble. [state units]

    References
    ----------
    .. [1] Hunt, Kostelich, Szunyogh, Physica D 230, 112-126, 2007.
       doi:10.1016/j.physd.2006.11.008
    .. [2] Gaspari, Cohn, Q. J. R. Meteorol. Soc. 125, 723-757, 1999.
       doi:10.1002/qj.49712555417
    """
    compiled = _engine(engine)
    X = np.asarray(ensemble, dtype=float)
    if X.ndim < 2:
        raise AssimilationInputError(f"ensemble has shape {X.shape}, expected (members, grid, ...)")
    y = finite_array("y", y, (0, 1)).reshape(-1)
    hx = _ensemble_obs(X, y, obs_ensemble)
    N, G = X.shape[:2]
    r = finite_array("obs_error_var", obs_error_var, (0, 1))
    r = np.broadcast_to(r, y.shape)
    if np.any(r <= 0):
        raise AssimilationInputError("obs_error_var has values <= 0; expected variances > 0")
    if not isinstance(local, LocalObservations):
        w = finite_array("local", local, 2)
        if w.shape != (G, y.size):
            raise AssimilationInputError(
                f"local weights have shape {w.shape}, expected ({G}, {y.size})")
        local = LocalObservations(np.broadcast_to(np.arange(y.size), w.shape), w)
    if local.index.shape[0] != G:
        raise AssimilationInputError(
            f"local has {local.index.shape[0]} grid points, the ensemble has {G}")
    if np.any(local.weight < 0):
        raise AssimilationInputError("local has negative weights; expected weights >= 0")
    rho = np.broadcast_to(np.asarray(inflation, dtype=float), (G,))
    if np.any(~np.isfinite(rho) | (rho <= 0)):
        raise AssimilationInputError("inflation must be finite and > 0 (1 = none)")
    obs = _obs_space(y, hx, r)
    return _letkf_blocks(X.reshape(N, G, -1), obs, local, rho, int(chunk),
                         compiled).reshape(X.shape)


def _engine(engine):
    """The compiled LETKF module for ``engine``, or None for the NumPy path."""
    if engine not in ("auto", "compiled", "numpy"):
        raise AssimilationInputError(
            f"engine={engine!r}: expected 'auto', 'compiled' or 'numpy'")
    if engine == "numpy":
        return None
    from hubkit.assimilation import compiled  # numba loads only where the kernel serves

    if not compiled.AVAILABLE:
        if engine == "compiled":
            raise ImportError("engine='compiled' needs numba; install it (pip install numba, "
                              "or hubkit[fast]) or use engine='auto'")
        return None
    return compiled


def _obs_space(y, hx, r):
    """Observation perturbations ``(p, N)`` (C order), innovations and inverse variances,
    computed once."""
    ym = hx.mean(axis=0)
    return np.ascontiguousarray(hx.T - ym[:, None]), y - ym, 1.0 / r


def _letkf_blocks(Xf, obs, local, rho, chunk, compiled=None):
    """LETKF on ``Xf`` (N, G, V): the compiled kernel, or ``chunk`` grid points per stacked
    NumPy solve."""
    Yp, d, rinv = obs
    if compiled is not None:
        return compiled.letkf_points(Xf, Yp, d, rinv, local.index, local.weight, rho)
    G, N = Xf.shape[1], Xf.shape[0]
    xm = Xf.mean(axis=0)
    Xp = Xf - xm
    out = np.empty_like(Xf)
    for s in range(0, G, chunk):
        sl = slice(s, min(s + chunk, G))
        idx, wt = local.index[sl], local.weight[sl]
        # k < N observations: the equivalent k x k problem (cheaper than N x N)
        transform = _transform_obs_space if idx.shape[1] < N else _transform
        T = transform(Yp[idx], d[idx], wt * rinv[idx], rho[sl])  # (B, N, N)
        upd = np.matmul(Xp[:, sl].transpose(1, 2, 0), T)  # (B, V, N)
        out[:, sl] = xm[sl] + upd.transpose(2, 0, 1)
    return out


def letkf_sphere(ensemble, y, obs_ensemble, obs_error_var, grid_lat, grid_lon, obs_lat, obs_lon,
                 half_width, *, inflation=1.0, chunk=512, inner_chunk=64, workers=None,
                 engine="auto"):
    """LETKF on the sphere: local observations found and analysed chunk by chunk.

    Grid points are grouped into latitude-longitude blocks of about ``chunk`` points: for each
    :func:`local_observations_sphere` finds the observations within ``2c`` and
    :func:`letkf_analysis` does the batched local analyses, so memory stays bounded for a global
    grid with many observations.

    Parameters
    ----------
    ensemble : array_like, (N, G, ...)
        Background ensemble, grid points flattened in the second dimension. [state units]
    y, obs_ensemble, obs_error_var
        As in :func:`letkf_analysis`.
    grid_lat, grid_lon : array_like, (G,)
        Grid-point positions. [°]
    obs_lat, obs_lon : array_like, (p,)
        Observation positions. [°]
    half_width : float
        Gaspari–Cohn half-width ``c`` of the R-localisation (support ``2c``). [m]
    inflation : float or array_like (G,)
        Multiplicative covariance inflation. [1]
    chunk : int
        Grid points per search block, on average (for a regular grid).
    inner_chunk : int
        Grid points per stacked solve within a block (small keeps the work in cache).
    workers : int, optional
        Threads that analyse blocks concurrently (default: one, in this thread).
    engine : {"auto", "compiled", "numpy"}
        As in :func:`letkf_analysis`.

    Returns
    -------
    analysis : ndarray, (N, G, ...)
        Analysis ensemble. [state units]

    References
    ----------
    .. [1] Hunt, Kostelich, Szunyogh, Physica D 230, 112-126, 2007.
       doi:10.1016/j.physd.2006.11.008
    .. [2] Gaspari, Cohn, Q. J. R. Meteorol. Soc. 125, 723-757, 1999.
       doi:10.1002/qj.49712555417
    """
    compiled = _engine(engine)
    X = np.asarray(ensemble, dtype=float)
    glat = finite_array("grid_lat", grid_lat, 1)
    glon = finite_array("grid_lon", grid_lon, 1)
    if X.ndim < 2 or X.shape[1] != glat.size:
        raise AssimilationInputError(
            f"ensemble has shape {X.shape}, expected (members, {glat.size} grid points, ...)")
    G = glat.size
    rho = np.broadcast_to(np.asarray(inflation, dtype=float), (G,))
    # blocks of about `chunk` points, compact in latitude and longitude (narrow candidate lists)
    n_lat_blocks = max(1, int(round(np.sqrt(G / max(int(chunk), 1) / 2))))
    n_lon_blocks = 2 * n_lat_blocks  # square blocks in degrees for a regular grid
    bi = np.minimum(((glat + 90.0) / 180.0 * n_lat_blocks).astype(int), n_lat_blocks - 1)
    bj = np.minimum((((glon + 180.0) % 360.0) / 360.0 * n_lon_blocks).astype(int),
                    n_lon_blocks - 1)
    block = bi * n_lon_blocks + bj
    order = np.argsort(block, kind="stable")
    bounds = np.flatnonzero(np.diff(block[order])) + 1
    # observations sorted by latitude once (the search then finds bands by bisection)
    olat = finite_array("obs_lat", obs_lat, 1)
    perm = np.argsort(olat, kind="stable")
    olat, olon = olat[perm], finite_array("obs_lon", obs_lon, 1)[perm]
    y = finite_array("y", y, (0, 1)).reshape(-1)
    if y.size != perm.size:
        raise AssimilationInputError(f"y has {y.size} values, obs_lat {perm.size}")
    hx = _ensemble_obs(X, y, obs_ensemble)[:, perm]
    r = np.broadcast_to(finite_array("obs_error_var", obs_error_var, (0, 1)), y.shape)[perm]
    if np.any(r <= 0):
        raise AssimilationInputError("obs_error_var has values <= 0; expected variances > 0")
    if np.any(~np.isfinite(rho) | (rho <= 0)):
        raise AssimilationInputError("inflation must be finite and > 0 (1 = none)")
    obs = _obs_space(y[perm], hx, r)
    N = X.shape[0]
    out = np.empty_like(X)

    def one_block(g):
        local = local_observations_sphere(glat[g], glon[g], olat, olon, half_width)
        block = _letkf_blocks(X[:, g].reshape(N, g.size, -1), obs, local, rho[g],
                              int(inner_chunk), compiled)
        out[:, g] = block.reshape((N, g.size) + X.shape[2:])  # blocks are disjoint

    blocks = np.split(order, bounds)
    if workers is None or int(workers) <= 1:
        for g in blocks:
            one_block(g)
    else:  # NumPy's linear algebra releases the GIL: blocks run in parallel threads
        with ThreadPoolExecutor(int(workers)) as pool:
            list(pool.map(one_block, blocks))
    return out
