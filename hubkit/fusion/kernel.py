"""The Complete Data Fusion kernel :func:`cdf` on stacked NumPy arrays, its options and result,
and the checks of its inputs (Ceccherini et al. 2015, 2018, 2019; see :mod:`hubkit.fusion`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from hubkit.errors import FusionInputError
from hubkit.fusion.linalg import (
    chol_inv,
    matvec,
    not_psd_distinct,
    pinv_factor,
    symmetrised,
    transposed,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CdfOptions:
    """How :func:`cdf` treats its inputs.

    Attributes
    ----------
    method : {"total", "pinv"}
        ``"total"`` (default) weights each retrieval by the inverse of its total covariance
        ``S_i = S_n,i + (I - A_i) S_a,i (I - A_i)ᵀ``, which is invertible even when ``S_n,i`` is
        singular, and needs ``apriori_covariance``. ``"pinv"`` uses the generalised inverse of
        ``S_n,i`` (eigenvalues below ``rcond`` times the largest are dropped).
    rcond : float
        Relative eigenvalue threshold of the generalised inverse and of the rank counted for the
        χ² degrees of freedom. [1]
    on_invalid : {"raise", "exclude"}
        A retrieval with NaN, a non-symmetric or a non-positive-semidefinite covariance raises
        :class:`FusionInputError` naming the cell and the retrieval, or, with ``"exclude"``, is
        left out of its cell and flagged in :attr:`CdfResult.used`.
    check : bool
        Check symmetry and positive semi-definiteness of the covariances (a Cholesky
        factorisation per distinct matrix of a block of cells). NaNs are always checked.
    symmetry_rtol : float
        Largest accepted ``max|S - Sᵀ| / max|S|`` of an input covariance. [1]
    diagnostics : bool
        Compute the minimum cost and its χ² degrees of freedom (an eigen-decomposition of every
        noise covariance, the most expensive step; with ``method="total"`` it can be switched off).
    engine : {"auto", "compiled", "numpy"}
        ``"auto"`` (default) uses the compiled per-cell kernel (:mod:`hubkit.fusion.compiled`,
        needs numba) where it applies — ``method="total"``, no grid operator, no extra
        covariance, no diagnostics, one fusion prior for all cells — and the NumPy path
        elsewhere; ``"numpy"`` always the NumPy path; ``"compiled"`` is ``"auto"`` that raises
        when numba is missing. Both give the same results (to rounding, ~1e-13).
    """

    method: str = "total"
    rcond: float = 1e-10
    on_invalid: str = "raise"
    check: bool = True
    symmetry_rtol: float = 1e-8
    diagnostics: bool = True
    engine: str = "auto"

    def __post_init__(self):
        if self.method not in ("total", "pinv"):
            raise FusionInputError(f"method={self.method!r}: expected 'total' or 'pinv'")
        if self.on_invalid not in ("raise", "exclude"):
            raise FusionInputError(
                f"on_invalid={self.on_invalid!r}: expected 'raise' or 'exclude'")
        if not 0.0 < self.rcond < 1.0:
            raise FusionInputError(f"rcond={self.rcond!r}: expected 0 < rcond < 1")
        if self.engine not in ("auto", "compiled", "numpy"):
            raise FusionInputError(
                f"engine={self.engine!r}: expected 'auto', 'compiled' or 'numpy'")


@dataclass
class CdfResult:
    """The fused profiles of a batch of cells (leading dims ``...``), fusion grid of ``n`` levels.

    Attributes
    ----------
    x : ndarray, (..., n)
        Fused profile ``x_f``. [units of the inputs]
    averaging_kernel : ndarray, (..., n, n)
        ``A_f = P⁻¹ Σ Φ_iᵀ F_i Φ_i``. [1]
    noise_covariance, smoothing_covariance, total_covariance : ndarray, (..., n, n)
        ``A_f P⁻¹``, ``(I - A_f) P⁻¹`` and ``P⁻¹``. [units²]
    dfs : ndarray, (...)
        Degrees of freedom of the fused profile, ``trace(A_f)``. [1]
    cost : ndarray, (...)
        Minimum of the CDF cost function (NaN without ``diagnostics``). [1]
    dof : ndarray of int, (...)
        χ² degrees of freedom of ``cost``: Σ rank(S_n,i) over the fused retrievals (-1 without
        ``diagnostics``). [1]
    used : ndarray of bool, (..., N)
        The retrievals that were fused (False: padding, or excluded by ``on_invalid``).
    """

    x: np.ndarray
    averaging_kernel: np.ndarray
    noise_covariance: np.ndarray
    smoothing_covariance: np.ndarray
    total_covariance: np.ndarray
    dfs: np.ndarray
    cost: np.ndarray
    dof: np.ndarray
    used: np.ndarray
    excluded: list = field(default_factory=list)

    @property
    def chi2(self) -> np.ndarray:
        """Reduced χ², ``cost / dof`` (expected 1 ± sqrt(2/dof) for consistent inputs). [1]"""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.dof > 0, self.cost / np.maximum(self.dof, 1), np.nan)



# -- checks ------------------------------------------------------------------------------------
def _where(idx) -> str:
    return f"cell {tuple(int(i) for i in idx[:-1])} retrieval {int(idx[-1])}"


def _check_shapes(x, A, Sn, xa_i, Sa_i, grid, extra, prior_mean, prior_cov, valid, opts):
    if x.ndim < 2:
        raise FusionInputError(
            f"x has shape {x.shape}; expected (..., N, m): cells, retrievals per cell, levels")
    batch, (N, m) = x.shape[:-2], x.shape[-2:]
    expect = {
        "averaging_kernel": (A, (*batch, N, m, m)),
        "noise_covariance": (Sn, (*batch, N, m, m)),
        "apriori": (xa_i, (*batch, N, m)),
        "apriori_covariance": (Sa_i, (*batch, N, m, m)),
        "extra_covariance": (extra, (*batch, N, m, m)),
    }
    for name, (arr, shape) in expect.items():
        if arr is not None and arr.shape != shape:
            raise FusionInputError(f"{name} has shape {arr.shape}; expected {shape} to match "
                                   f"x of shape {x.shape} (..., N, m)")
    n = m
    if grid is not None:
        if grid.shape[:-1] != (*batch, N, m):
            raise FusionInputError(f"grid has shape {grid.shape}; expected {(*batch, N, m)} + "
                                   "(n,): the operator from the n fusion levels to the m levels "
                                   "of each retrieval")
        n = grid.shape[-1]
    if prior_mean.shape[-1:] != (n,) or prior_cov.shape[-2:] != (n, n):
        raise FusionInputError(f"prior_mean has shape {prior_mean.shape} and prior_covariance "
                               f"{prior_cov.shape}; expected (..., {n}) and (..., {n}, {n}) on "
                               f"the fusion grid of {n} levels")
    try:
        np.broadcast_shapes(prior_mean.shape[:-1], prior_cov.shape[:-2], batch)
    except ValueError:
        raise FusionInputError(f"prior_mean {prior_mean.shape} and prior_covariance "
                               f"{prior_cov.shape} do not broadcast over the cells "
                               f"{batch}") from None
    if valid is not None and valid.shape != (*batch, N):
        raise FusionInputError(f"valid has shape {valid.shape}; expected {(*batch, N)}")
    # the fusion prior is checked as the retrievals' covariances are (_bad_retrievals)
    for name, arr in (("prior_mean", prior_mean), ("prior_covariance", prior_cov)):
        if not np.isfinite(arr).all():
            raise FusionInputError(f"{name} holds NaN or infinite values; expected finite "
                                   "numbers (the fusion a priori)")
    if opts.check:
        asym = np.max(np.abs(prior_cov - transposed(prior_cov)), axis=(-1, -2))
        scale = np.max(np.abs(prior_cov), axis=(-1, -2))
        nonsym = asym > opts.symmetry_rtol * scale
        if nonsym.any():
            idx = tuple(int(i) for i in np.argwhere(np.atleast_1d(nonsym))[0])
            where = f" of cell {idx}" if prior_cov.ndim > 2 else ""
            raise FusionInputError(
                f"prior_covariance{where} is not symmetric (max|S - Sᵀ| = "
                f"{np.atleast_1d(asym)[idx]:.3g} > {opts.symmetry_rtol:g} * max|S| = "
                f"{np.atleast_1d(scale)[idx]:.3g}); expected a symmetric covariance",
                cell=idx if prior_cov.ndim > 2 else None)
    return n


def _bad_retrievals(arrays: dict, used: np.ndarray, opts: CdfOptions) -> dict:
    """Find retrievals with NaN, non-symmetric or non-PSD noise covariance: ``{index: reason}``."""
    bad = {}
    batch_n = used.shape
    for name, arr in arrays.items():
        if arr is None:
            continue
        flat = arr.reshape(*batch_n, -1)
        nan = ~np.isfinite(flat).all(axis=-1) & used
        for idx in zip(*np.nonzero(nan), strict=True):
            bad.setdefault(idx, f"{name} holds NaN or infinite values; expected finite numbers")
    if not opts.check:
        return bad
    for name in ("noise_covariance", "apriori_covariance", "extra_covariance"):
        cov = arrays.get(name)
        if cov is None:
            continue
        ok = used & np.isfinite(cov).all(axis=(-1, -2))
        buf = np.abs(cov, out=np.empty(cov.shape))  # C-ordered scratch, reused below
        scale = np.max(buf, axis=(-1, -2))
        np.subtract(cov, transposed(cov), out=buf)
        asym = np.max(np.abs(buf, out=buf), axis=(-1, -2))
        nonsym = ok & (asym > opts.symmetry_rtol * scale)
        for idx in zip(*np.nonzero(nonsym), strict=True):
            bad.setdefault(idx, f"{name} is not symmetric (max|S - Sᵀ| = {asym[idx]:.3g} > "
                                f"{opts.symmetry_rtol:g} * max|S| = {scale[idx]:.3g}); expected "
                                "a symmetric covariance")
        # positive semi-definite: the factorisation of S + tiny * mean(diag) * I must exist
        ok &= ~nonsym
        m = cov.shape[-1]
        tr = np.trace(cov, axis1=-2, axis2=-1) / m
        tr = np.where(ok & (tr > 0), tr, 1.0)
        probe = buf
        probe[...] = cov if ok.all() else np.where(ok[..., None, None], cov, np.eye(m))
        probe.reshape(*probe.shape[:-2], m * m)[..., :: m + 1] += 1e-9 * tr[..., None]
        notpd = not_psd_distinct(probe.reshape(-1, m, m)).reshape(ok.shape)
        for idx in zip(*np.nonzero(notpd), strict=True):
            bad.setdefault(idx, f"{name} is not positive semi-definite (a negative "
                                    "eigenvalue); expected a covariance matrix")
        neg = ok & (np.trace(cov, axis1=-2, axis2=-1) < 0)
        for idx in zip(*np.nonzero(neg), strict=True):
            bad.setdefault(idx, f"{name} has a negative trace; expected a covariance matrix")
    return bad


# -- the kernel --------------------------------------------------------------------------------
def cdf(x, averaging_kernel, noise_covariance, apriori, prior_mean, prior_covariance, *,
        apriori_covariance=None, grid=None, extra_covariance=None, valid=None,
        options: CdfOptions | None = None) -> CdfResult:
    r"""Complete Data Fusion of ``N`` retrievals in each of a batch of fusion cells.

    With :math:`\alpha_i = \hat x_i - (I - A_i) x_{a,i}` (eq. 9 of [1]_) the fused profile
    minimises the cost (eq. 11 of [1]_)

    .. math::

        c(x) = \sum_i (\alpha_i - A_i \Phi_i x)^T S_{n,i}^{-1} (\alpha_i - A_i \Phi_i x)
               + (x - x_a)^T S_a^{-1} (x - x_a)

    so that (eqs. 12-15 of [1]_, with the grid operator :math:`\Phi_i` of [2]_)

    .. math::

        P = \sum_i \Phi_i^T F_i \Phi_i + S_a^{-1},\quad
        x_f = P^{-1}\Big(\sum_i \Phi_i^T b_i + S_a^{-1} x_a\Big),\quad
        A_f = P^{-1} \sum_i \Phi_i^T F_i \Phi_i,\quad
        S_{f} = P^{-1},\ S_{f,n} = A_f P^{-1},\ S_{f,s} = (I - A_f) P^{-1}

    with the measurement information :math:`F_i = A_i^T S_{n,i}^{+} A_i`,
    :math:`b_i = A_i^T S_{n,i}^{+} \alpha_i` (``method="pinv"``) or, equivalently for a
    retrieval made by optimal estimation, :math:`F_i = S_i^{-1} A_i`,
    :math:`b_i = S_i^{-1} \alpha_i` with the total covariance
    :math:`S_i = S_{n,i} + (I - A_i) S_{a,i} (I - A_i)^T` (``method="total"``, invertible even
    when :math:`S_{n,i}` is singular: :math:`S_i^{-1} A_i = K_i^T S_{y,i}^{-1} K_i`, [5]_). The
    asymmetric part of :math:`S_i^{-1} A_i`, zero for an optimal-estimation retrieval, is dropped.
    Interpolation and coincidence errors ([2]_) enter as ``extra_covariance``, added to
    :math:`S_{n,i}`. The minimum cost follows a χ² distribution with
    :math:`\sum_i \mathrm{rank}(S_{n,i})` degrees of freedom when the inputs are consistent
    ([3]_).

    Parameters
    ----------
    x : array_like, (..., N, m)
        Retrieved profiles ``x̂_i`` of the ``N`` retrievals of each cell. [vmr, e.g. mol mol-1]
    averaging_kernel : array_like, (..., N, m, m)
        ``A_i[l, k] = ∂x̂_i[l] / ∂x_true[k]``. [1]
    noise_covariance : array_like, (..., N, m, m)
        Retrieval noise covariance ``S_n,i``; may be singular. [vmr²]
    apriori : array_like, (..., N, m)
        A priori profile ``x_a,i`` each retrieval used. [vmr]
    prior_mean : array_like, (..., n)
        Fusion a priori ``x_a``, broadcast over the cells. [vmr]
    prior_covariance : array_like, (..., n, n)
        Fusion a priori covariance ``S_a`` (positive definite), broadcast over the cells. [vmr²]
    apriori_covariance : array_like, (..., N, m, m), optional
        A priori covariance ``S_a,i`` of each retrieval; needed by ``method="total"``. [vmr²]
    grid : array_like, (..., N, m, n), optional
        ``Φ_i``, the linear map from the fusion grid to each retrieval's grid (see
        :func:`grid_operator`); default the identity (``n = m``). [1]
    extra_covariance : array_like, (..., N, m, m), optional
        Interpolation and coincidence error covariance of each retrieval ([2]_). [vmr²]
    valid : array_like of bool, (..., N), optional
        False marks a padding slot: it carries zero information (default: all True).
    options : CdfOptions, optional
        Method, thresholds, what to do with bad retrievals.

    Returns
    -------
    CdfResult
        Fused profile, averaging kernel, covariances, DFS, cost and its χ² degrees of freedom.

    Raises
    ------
    FusionInputError
        Inconsistent shapes; or, with ``on_invalid="raise"``, a retrieval with NaN or a
        non-symmetric or non-PSD covariance (the message names its cell and retrieval); or a
        total covariance or fusion normal matrix that is not positive definite.

    References
    ----------
    .. [1] Ceccherini, Carli, Raspollini, Opt. Express 23, 8476, 2015. doi:10.1364/OE.23.008476
    .. [2] Ceccherini et al., Atmos. Meas. Tech. 11, 1009, 2018. doi:10.5194/amt-11-1009-2018
    .. [3] Ceccherini et al., Atmos. Meas. Tech. 12, 2967, 2019. doi:10.5194/amt-12-2967-2019
    .. [5] Rodgers, Inverse Methods for Atmospheric Sounding, 2000, eqs. 2.45 and 3.16.
       doi:10.1142/3171
    """
    opts = options or CdfOptions()
    f64 = _f64
    x, A, Sn, xa_i = f64(x), f64(averaging_kernel), f64(noise_covariance), f64(apriori)
    Sa_i, grid, extra = f64(apriori_covariance), f64(grid), f64(extra_covariance)
    prior_mean, prior_cov = f64(prior_mean), f64(prior_covariance)
    valid = None if valid is None else np.asarray(valid, dtype=bool)
    n = _check_shapes(x, A, Sn, xa_i, Sa_i, grid, extra, prior_mean, prior_cov, valid, opts)
    if opts.method == "total" and Sa_i is None:
        raise FusionInputError("method='total' needs apriori_covariance (S_a,i of every "
                               "retrieval); pass it, or use CdfOptions(method='pinv')")
    batch, (N, m) = x.shape[:-2], x.shape[-2:]
    used = np.ones((*batch, N), bool) if valid is None else np.asarray(valid, bool).copy()
    fast = _compiled(x, A, Sn, xa_i, Sa_i, grid, extra, prior_mean, prior_cov, used, opts)
    if fast is not None:
        return fast

    arrays = {"x": x, "averaging_kernel": A, "noise_covariance": Sn, "apriori": xa_i,
              "apriori_covariance": Sa_i, "grid": grid, "extra_covariance": extra}
    bad = _bad_retrievals(arrays, used, opts)
    if bad and opts.on_invalid == "raise":
        idx, reason = sorted(bad.items())[0]
        more = f" (and {len(bad) - 1} more bad retrieval(s))" if len(bad) > 1 else ""
        raise FusionInputError(f"{_where(idx)}: {reason}{more}", cell=tuple(map(int, idx[:-1])),
                               retrieval=int(idx[-1]))
    excluded = []
    for idx, reason in sorted(bad.items()):
        used[idx] = False
        excluded.append((tuple(int(i) for i in idx), reason))
        log.info("excluded %s: %s", _where(idx), reason)

    # Padding and excluded slots get harmless values and zero weight.
    eye_m = np.eye(m)
    if not used.all():
        keep = used[..., None]
        keep2 = used[..., None, None]
        x = np.where(keep, x, 0.0)
        xa_i = np.where(keep, xa_i, 0.0)
        A = np.where(keep2, A, 0.0)
        Sn = np.where(keep2, Sn, eye_m)
        if extra is not None:
            extra = np.where(keep2, extra, 0.0)
        if Sa_i is not None:
            Sa_i = np.where(keep2, Sa_i, eye_m)
        if grid is not None:
            grid = np.where(keep2, grid, 0.0)
    if extra is not None:
        Sn = Sn + extra

    prior_inv, prior_mean, prior_cov = prior_information(prior_mean, prior_cov)
    alpha = x - xa_i + matvec(A, xa_i)  # α_i = x̂_i - (I - A_i) x_a,i, eq. 9 of [1]

    rank = None
    if opts.method == "total":
        D = eye_m - A
        S_tot = Sn + (D @ Sa_i) @ np.ascontiguousarray(transposed(D))  # a transposed view is slow
        _, R, notpd = chol_inv(S_tot, factor=False)  # R = L⁻¹: S_i⁻¹ = Rᵀ R
        if notpd.any():
            idx = np.argwhere(notpd)[0]
            raise FusionInputError(
                f"{_where(idx)}: the total covariance S_n + (I - A) S_a (I - A)ᵀ is not positive "
                "definite; expected apriori_covariance positive definite and I - A invertible",
                cell=tuple(map(int, idx[:-1])), retrieval=int(idx[-1]))
        F = symmetrised(transposed(R) @ (R @ A))
        b = matvec(transposed(R), matvec(R, alpha))
        if opts.diagnostics:
            W, rank = pinv_factor(Sn, opts.rcond)
    else:
        W, rank = pinv_factor(Sn, opts.rcond)
        WA = transposed(W) @ A
        F = transposed(WA) @ WA
        b = matvec(transposed(WA), matvec(transposed(W), alpha))

    w = used.astype(np.float64)
    F = F * w[..., None, None]
    b = b * w[..., None]
    if grid is not None:
        F = transposed(grid) @ F @ grid
        b = matvec(transposed(grid), b)
    F_sum = F.sum(axis=-3)
    b_sum = b.sum(axis=-2) + matvec(prior_inv, prior_mean)
    P = F_sum + prior_inv
    _, Rp, notpd = chol_inv(np.broadcast_to(P, (*batch, n, n)), factor=False)
    if notpd.any():
        idx = np.argwhere(notpd)[0]
        raise FusionInputError(f"cell {tuple(int(i) for i in idx)}: the fusion normal matrix "
                               "P is not positive definite; expected a positive-definite "
                               "prior_covariance", cell=tuple(map(int, idx)))
    P_inv = transposed(Rp) @ Rp
    x_f = matvec(P_inv, b_sum)
    A_f = P_inv @ F_sum
    noise_raw = A_f @ P_inv
    noise = symmetrised(noise_raw)
    smoothing = symmetrised(P_inv - noise_raw)

    if rank is not None:
        residual = alpha - (matvec(A, matvec(grid, x_f[..., None, :])) if grid is not None
                            else matvec(A, np.broadcast_to(x_f[..., None, :], alpha.shape)))
        white = matvec(transposed(W), residual)
        cost = np.sum(np.sum(white**2, axis=-1) * w, axis=-1)
        dx = x_f - prior_mean
        cost = cost + np.sum(dx * matvec(prior_inv, dx), axis=-1)
        dof = np.sum(np.where(used, rank, 0), axis=-1)
    else:
        cost = np.full(batch, np.nan)
        dof = np.full(batch, -1, dtype=np.int64)
    return CdfResult(
        x=x_f, averaging_kernel=A_f, noise_covariance=noise, smoothing_covariance=smoothing,
        total_covariance=symmetrised(P_inv), dfs=np.trace(A_f, axis1=-2, axis2=-1), cost=cost,
        dof=dof, used=used, excluded=excluded,
    )


def _compiled(x, A, Sn, xa_i, Sa_i, grid, extra, prior_mean, prior_cov, used, opts):
    """The result of the compiled kernel, or None where it does not apply (then the NumPy path
    runs, and raises or excludes as it always did)."""
    if opts.engine == "numpy":
        return None
    if (opts.method != "total" or opts.diagnostics or grid is not None or extra is not None
            or Sa_i is None or prior_cov.ndim != 2 or x.shape[-2] == 0):
        return None
    from hubkit.fusion import compiled  # numba loads only where the kernel can serve

    if not compiled.AVAILABLE:
        if opts.engine == "compiled":
            raise ImportError("CdfOptions(engine='compiled') needs numba; install it "
                              "(pip install 'hubkit[fast]' or pip install numba) or use "
                              "engine='auto'")
        return None
    batch, (N, m) = x.shape[:-2], x.shape[-2:]
    prior_inv, _, _ = prior_information(prior_mean, prior_cov)
    out = compiled.cdf_total_cells(
        x.reshape(-1, N, m), A.reshape(-1, N, m, m), Sn.reshape(-1, N, m, m),
        xa_i.reshape(-1, N, m), Sa_i.reshape(-1, N, m, m), used.reshape(-1, N), prior_inv,
        np.broadcast_to(prior_mean, (*batch, m)).reshape(-1, m), check=opts.check,
        symmetry_rtol=opts.symmetry_rtol)
    if out is None:
        return None
    x_f, A_f, noise, smoothing, total, dfs = out
    return CdfResult(
        x=x_f.reshape(*batch, m), averaging_kernel=A_f.reshape(*batch, m, m),
        noise_covariance=noise.reshape(*batch, m, m),
        smoothing_covariance=smoothing.reshape(*batch, m, m),
        total_covariance=total.reshape(*batch, m, m), dfs=dfs.reshape(batch),
        cost=np.full(batch, np.nan), dof=np.full(batch, -1, dtype=np.int64), used=used,
        excluded=[])


def _f64(a):
    return None if a is None else np.asarray(a, dtype=np.float64)


_PRIOR_CACHE: dict = {}


def prior_information(mean: np.ndarray, cov: np.ndarray):
    """``S_a⁻¹`` from the Cholesky factor of ``S_a`` (computed once when shared by all cells,
    and remembered for the next calls with the same ``S_a``: the kernel is called chunk by
    chunk)."""
    key = cov.tobytes() if cov.ndim == 2 else None
    inv = _PRIOR_CACHE.get(key) if key is not None else None
    if inv is None:
        _, R, notpd = chol_inv(cov, factor=False)
        if notpd.any():
            raise FusionInputError("prior_covariance is not positive definite; expected a "
                                   "positive-definite fusion a priori covariance")
        inv = symmetrised(transposed(R) @ R)
        if key is not None:
            if len(_PRIOR_CACHE) >= 8:
                _PRIOR_CACHE.clear()
            inv.flags.writeable = False
            _PRIOR_CACHE[key] = inv
    return inv, mean, cov
