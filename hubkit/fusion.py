"""Complete Data Fusion (CDF) of vertical profile retrievals, batched over fusion cells.

Many level-2 retrievals of the same profile (different instruments, platforms, bands) are fused
into one profile with its averaging kernel and covariances by the Complete Data Fusion of
Ceccherini et al. (2015). The kernel :func:`cdf` works on stacked NumPy arrays: any number of
fusion cells (leading dimensions) times ``N`` retrieval slots per cell; a cell with fewer
retrievals has its spare slots marked invalid and they carry zero information. The work is done
by batched Cholesky factorisations and matrix products; the only explicit inverses are the output
covariances. :func:`fuse_cells` wraps the kernel in :func:`xarray.apply_ufunc` with
``dask="parallelized"``; :func:`fuse_product` groups an ``l2-ozone`` dataset into space-time cells
(Zoppetti et al. 2021) and returns a ``fused-ozone`` dataset. Nothing here opens a file.

Symbols (docs/fusion.md): retrieval ``i`` on its own grid of ``m`` levels has profile
``x̂_i``, averaging kernel ``A_i``, noise covariance ``S_n,i``, a priori ``x_a,i`` (and
``S_a,i``), and the grid operator ``Φ_i`` (``m × n``) from the fusion grid (``n`` levels) to its
own. The fusion a priori is ``x_a, S_a``.

References
----------
.. [1] Ceccherini, Carli, Raspollini, "Equivalence of data fusion and simultaneous retrieval",
   Opt. Express 23, 8476-8488, 2015. doi:10.1364/OE.23.008476
.. [2] Ceccherini et al., "Interpolation and coincidence errors in the complete data fusion",
   Atmos. Meas. Tech. 11, 1009-1017, 2018. doi:10.5194/amt-11-1009-2018
.. [3] Ceccherini et al., "The cost function of the data fusion process and its application",
   Atmos. Meas. Tech. 12, 2967-2977, 2019. doi:10.5194/amt-12-2967-2019
.. [4] Zoppetti et al., "Application of the Complete Data Fusion algorithm to the ozone profiles
   measured by geostationary and low-Earth-orbit satellites", Atmos. Meas. Tech. 14, 2041-2053,
   2021. doi:10.5194/amt-14-2041-2021
.. [5] Rodgers, "Inverse Methods for Atmospheric Sounding", World Scientific, 2000.
   doi:10.1142/3171
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import xarray as xr

from hubkit.errors import FusionInputError

try:
    from scipy.linalg import lapack as _lapack
except ImportError:  # pragma: no cover - SciPy comes with pvlib
    _lapack = None



__all__ = [
    "CdfOptions",
    "CdfResult",
    "FusionInputError",
    "adjust_prior",
    "cdf",
    "concat_fused",
    "fuse_cells",
    "fuse_product",
    "grid_operator",
    "group_cells",
    "profile_covariance",
]

log = logging.getLogger(__name__)

#: Block size below which the triangular inverse is done row by row, vectorised over the batch.
_TRI_BLOCK = 10


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
    """

    method: str = "total"
    rcond: float = 1e-10
    on_invalid: str = "raise"
    check: bool = True
    symmetry_rtol: float = 1e-8
    diagnostics: bool = True

    def __post_init__(self):
        if self.method not in ("total", "pinv"):
            raise ValueError(f"method={self.method!r}: expected 'total' or 'pinv'")
        if self.on_invalid not in ("raise", "exclude"):
            raise ValueError(f"on_invalid={self.on_invalid!r}: expected 'raise' or 'exclude'")
        if not 0.0 < self.rcond < 1.0:
            raise ValueError(f"rcond={self.rcond!r}: expected 0 < rcond < 1")


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


# -- batched linear algebra ------------------------------------------------------------------
def _t(a: np.ndarray) -> np.ndarray:
    return np.swapaxes(a, -1, -2)


def _sym(a: np.ndarray) -> np.ndarray:
    return 0.5 * (a + _t(a))


def _mv(a: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Stacked matrix-vector product ``a @ v`` over the leading dims."""
    return (a @ v[..., None])[..., 0]


def _tri_inv_rows(lower: np.ndarray) -> np.ndarray:
    """Inverse of small lower-triangular matrices by forward substitution, row by row, each step
    vectorised over the whole batch (the batch is the last, contiguous axis)."""
    m = lower.shape[-1]
    lt = np.moveaxis(lower.reshape(-1, m, m), 0, -1)  # (m, m, B)
    inv = np.zeros_like(lt)
    diag = 1.0 / np.diagonal(lt, axis1=0, axis2=1).T  # (m, B)
    for i in range(m):
        if i:
            inv[i, :i] = -np.einsum("kb,kjb->jb", lt[i, :i], inv[:i, :i]) * diag[i]
        inv[i, i] = diag[i]
    return np.ascontiguousarray(np.moveaxis(inv, -1, 0)).reshape(lower.shape)


def _tri_inv(lower: np.ndarray) -> np.ndarray:
    """Inverse of stacked lower-triangular matrices (the triangular solve ``L X = I``), done by
    2 × 2 block recursion so that most of the work is matrix products."""
    m = lower.shape[-1]
    if m <= _TRI_BLOCK:
        return _tri_inv_rows(lower)
    k = m // 2
    r11 = _tri_inv(lower[..., :k, :k])
    r22 = _tri_inv(lower[..., k:, k:])
    out = np.zeros_like(lower)
    out[..., :k, :k] = r11
    out[..., k:, k:] = r22
    out[..., k:, :k] = -(r22 @ (lower[..., k:, :k] @ r11))
    return out


def _cholesky(a: np.ndarray) -> np.ndarray | None:
    """Batched Cholesky factor, or None when some matrix of the batch is not positive definite."""
    try:
        return np.linalg.cholesky(a)
    except np.linalg.LinAlgError:
        return None


def _not_pd(a: np.ndarray) -> np.ndarray:
    """Boolean mask over the batch of the matrices that are not positive definite (slow path)."""
    flat = a.reshape(-1, *a.shape[-2:])
    bad = np.zeros(flat.shape[0], dtype=bool)
    for k in range(flat.shape[0]):
        try:
            np.linalg.cholesky(flat[k])
        except np.linalg.LinAlgError:
            bad[k] = True
    return bad.reshape(a.shape[:-2])


def _chol_inv(a: np.ndarray, inverse: bool = True, factor: bool = True):
    """Cholesky factor ``L`` and, with ``inverse``, ``R = L⁻¹`` of stacked symmetric matrices,
    and the mask of the matrices that are not positive definite (their ``L``, ``R`` are zero).

    At the sizes of a profile (tens of levels) LAPACK's ``potrf``/``trtri`` called matrix by
    matrix are several times faster than ``numpy.linalg.cholesky`` plus a blockwise triangular
    inverse, the Python loop costs ~1 µs per matrix. Backends, first found: SciPy's LAPACK
    wrappers, NumPy."""
    m = a.shape[-1]
    flat = np.ascontiguousarray(a).reshape(-1, m, m)
    if _lapack is not None:  # SciPy's LAPACK wrappers (they hold the GIL)
        potrf, trtri = _lapack.dpotrf, _lapack.dtrtri
        L = np.zeros_like(flat) if factor else None
        R = np.zeros_like(flat) if inverse else None
        bad = np.zeros(flat.shape[0], bool)
        # a C-ordered symmetric matrix read as Fortran is itself; the Fortran factor, read back
        # in C order, is Lᵀ: ask for the upper factor U = Lᵀ of the transposed view
        for k in range(flat.shape[0]):
            u, info = potrf(flat[k].T, lower=0, clean=0)
            if info:
                bad[k] = True
                continue
            if factor:
                L[k] = u.T
            if inverse:
                R[k] = trtri(u, lower=0)[0].T
        lower = np.tri(m, dtype=bool)  # potrf/trtri leave the other triangle as it was
        if factor:
            L *= lower
        if inverse:
            R *= lower
    else:  # NumPy only
        bad = _not_pd(flat) if _cholesky(flat) is None else np.zeros(flat.shape[0], bool)
        safe = np.where(bad[:, None, None], np.eye(m), flat)
        L = np.linalg.cholesky(safe) * ~bad[:, None, None]
        R = _tri_inv(L + bad[:, None, None] * np.eye(m)) * ~bad[:, None, None] if inverse \
            else None
    shape = a.shape
    return (None if L is None else L.reshape(shape), None if R is None else R.reshape(shape),
            bad.reshape(shape[:-2]))


def _not_psd_distinct(probe: np.ndarray) -> np.ndarray:
    """:func:`_chol_inv`'s non-positive-definite mask of a stack ``(B, m, m)``, factorising each
    distinct matrix once: retrievals often share a covariance (an a priori covariance per
    instrument, a noise covariance per scene type). Matrices are grouped by a random projection
    and the grouping is verified element by element; a matrix that differs from its group's
    first is factorised on its own, so the result equals factorising every matrix."""
    B, m = probe.shape[0], probe.shape[-1]
    if B < 4:
        return _chol_inv(probe, inverse=False, factor=False)[2]
    flat = probe.reshape(B, m * m)
    key = flat @ np.random.default_rng(12345).standard_normal(m * m)
    _, first, inv = np.unique(key, return_index=True, return_inverse=True)
    same = (flat == flat[first[inv]]).all(axis=1)
    todo = np.union1d(first, np.flatnonzero(~same))
    if todo.size > 0.8 * B:
        return _chol_inv(probe, inverse=False, factor=False)[2]
    bad_todo = _chol_inv(probe[todo], inverse=False, factor=False)[2]
    bad = np.zeros(B, bool)
    bad[todo] = bad_todo
    rep_bad = bad[first]  # of each group's first matrix
    return np.where(same, rep_bad[inv.ravel()], bad)


def _pinv_factor(cov: np.ndarray, rcond: float) -> tuple[np.ndarray, np.ndarray]:
    """``W`` with ``W Wᵀ = S⁺`` (generalised inverse, relative threshold ``rcond``) and rank(S)."""
    evals, evecs = np.linalg.eigh(cov)
    top = np.max(np.abs(evals), axis=-1, keepdims=True)
    keep = evals > rcond * top
    scale = np.where(keep, 1.0 / np.sqrt(np.where(keep, evals, 1.0)), 0.0)
    return evecs * scale[..., None, :], keep.sum(axis=-1)


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
        asym = np.max(np.abs(prior_cov - _t(prior_cov)), axis=(-1, -2))
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
        np.subtract(cov, _t(cov), out=buf)
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
        notpd = _not_psd_distinct(probe.reshape(-1, m, m)).reshape(ok.shape)
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

    prior_inv, prior_mean, prior_cov = _prior_information(prior_mean, prior_cov)
    alpha = x - xa_i + _mv(A, xa_i)  # α_i = x̂_i - (I - A_i) x_a,i, eq. 9 of [1]

    rank = None
    if opts.method == "total":
        D = eye_m - A
        S_tot = Sn + (D @ Sa_i) @ np.ascontiguousarray(_t(D))  # a transposed view is slow
        _, R, notpd = _chol_inv(S_tot, factor=False)  # R = L⁻¹: S_i⁻¹ = Rᵀ R
        if notpd.any():
            idx = np.argwhere(notpd)[0]
            raise FusionInputError(
                f"{_where(idx)}: the total covariance S_n + (I - A) S_a (I - A)ᵀ is not positive "
                "definite; expected apriori_covariance positive definite and I - A invertible",
                cell=tuple(map(int, idx[:-1])), retrieval=int(idx[-1]))
        F = _sym(_t(R) @ (R @ A))
        b = _mv(_t(R), _mv(R, alpha))
        if opts.diagnostics:
            W, rank = _pinv_factor(Sn, opts.rcond)
    else:
        W, rank = _pinv_factor(Sn, opts.rcond)
        WA = _t(W) @ A
        F = _t(WA) @ WA
        b = _mv(_t(WA), _mv(_t(W), alpha))

    w = used.astype(np.float64)
    F = F * w[..., None, None]
    b = b * w[..., None]
    if grid is not None:
        F = _t(grid) @ F @ grid
        b = _mv(_t(grid), b)
    F_sum = F.sum(axis=-3)
    b_sum = b.sum(axis=-2) + _mv(prior_inv, prior_mean)
    P = F_sum + prior_inv
    _, Rp, notpd = _chol_inv(np.broadcast_to(P, (*batch, n, n)), factor=False)
    if notpd.any():
        idx = np.argwhere(notpd)[0]
        raise FusionInputError(f"cell {tuple(int(i) for i in idx)}: the fusion normal matrix "
                               "P is not positive definite; expected a positive-definite "
                               "prior_covariance", cell=tuple(map(int, idx)))
    P_inv = _t(Rp) @ Rp
    x_f = _mv(P_inv, b_sum)
    A_f = P_inv @ F_sum
    noise_raw = A_f @ P_inv
    noise = _sym(noise_raw)
    smoothing = _sym(P_inv - noise_raw)

    if rank is not None:
        residual = alpha - (_mv(A, _mv(grid, x_f[..., None, :])) if grid is not None
                            else _mv(A, np.broadcast_to(x_f[..., None, :], alpha.shape)))
        white = _mv(_t(W), residual)
        cost = np.sum(np.sum(white**2, axis=-1) * w, axis=-1)
        dx = x_f - prior_mean
        cost = cost + np.sum(dx * _mv(prior_inv, dx), axis=-1)
        dof = np.sum(np.where(used, rank, 0), axis=-1)
    else:
        cost = np.full(batch, np.nan)
        dof = np.full(batch, -1, dtype=np.int64)
    return CdfResult(
        x=x_f, averaging_kernel=A_f, noise_covariance=noise, smoothing_covariance=smoothing,
        total_covariance=_sym(P_inv), dfs=np.trace(A_f, axis1=-2, axis2=-1), cost=cost,
        dof=dof, used=used, excluded=excluded,
    )


def _f64(a):
    return None if a is None else np.asarray(a, dtype=np.float64)


_PRIOR_CACHE: dict = {}


def _prior_information(mean: np.ndarray, cov: np.ndarray):
    """``S_a⁻¹`` from the Cholesky factor of ``S_a`` (computed once when shared by all cells,
    and remembered for the next calls with the same ``S_a``: the kernel is called chunk by
    chunk)."""
    key = cov.tobytes() if cov.ndim == 2 else None
    inv = _PRIOR_CACHE.get(key) if key is not None else None
    if inv is None:
        _, R, notpd = _chol_inv(cov, factor=False)
        if notpd.any():
            raise FusionInputError("prior_covariance is not positive definite; expected a "
                                   "positive-definite fusion a priori covariance")
        inv = _sym(_t(R) @ R)
        if key is not None:
            if len(_PRIOR_CACHE) >= 8:
                _PRIOR_CACHE.clear()
            inv.flags.writeable = False
            _PRIOR_CACHE[key] = inv
    return inv, mean, cov


# -- grids and a priori ------------------------------------------------------------------------
def grid_operator(fusion_pressure, pressure) -> np.ndarray:
    """``Φ``: linear interpolation in ln(pressure) from the fusion grid to retrieval grids.

    Parameters
    ----------
    fusion_pressure : array_like, (n,)
        Pressure of the fusion levels, monotonic. [Pa]
    pressure : array_like, (..., m)
        Pressure of the retrieval levels; NaN marks an absent level (its row is zero). [Pa]

    Returns
    -------
    ndarray, (..., m, n)
        Interpolation weights; a level outside the fusion grid takes the nearest fusion level.
        [1]
    """
    fp = np.log(np.asarray(fusion_pressure, dtype=np.float64))
    if fp.ndim != 1 or fp.size < 2:
        raise ValueError(f"fusion_pressure has shape {fp.shape}; expected (n,) with n >= 2")
    order = np.argsort(fp)
    fps = fp[order]
    if np.any(np.diff(fps) <= 0):
        raise ValueError("fusion_pressure has repeated levels; expected distinct pressures")
    p = np.log(np.asarray(pressure, dtype=np.float64))
    ok = np.isfinite(p)
    q = np.clip(np.where(ok, p, fps[0]), fps[0], fps[-1])
    j = np.clip(np.searchsorted(fps, q, side="right") - 1, 0, fps.size - 2)
    t = (q - fps[j]) / (fps[j + 1] - fps[j])
    out = np.zeros((*p.shape, fp.size))
    np.put_along_axis(out, order[j][..., None], ((1.0 - t) * ok)[..., None], axis=-1)
    lo = np.take_along_axis(out, order[j + 1][..., None], axis=-1)
    np.put_along_axis(out, order[j + 1][..., None], lo + (t * ok)[..., None], axis=-1)
    return out


def profile_covariance(profile, pressure, *, relative: float = 0.5,
                       correlation_length: float = 0.8) -> np.ndarray:
    r"""A priori covariance of a profile: relative standard deviation, exponential correlation
    in ln(pressure), :math:`S[k, l] = (r x_k)(r x_l) \exp(-|\ln p_k - \ln p_l| / h)`.

    Parameters
    ----------
    profile : array_like, (..., n)
        A priori profile. [vmr]
    pressure : array_like, (..., n)
        Pressure of its levels. [Pa]
    relative : float
        Relative standard deviation ``r``. [1]
    correlation_length : float
        ``h`` in ln(pressure) (0.8 ≈ 5.6 km with a 7 km scale height). [1]

    Returns
    -------
    ndarray, (..., n, n)
        Positive-definite covariance. [vmr²]
    """
    sd = relative * np.asarray(profile, dtype=np.float64)
    lnp = np.log(np.asarray(pressure, dtype=np.float64))
    corr = np.exp(-np.abs(lnp[..., :, None] - lnp[..., None, :]) / correlation_length)
    return sd[..., :, None] * corr * sd[..., None, :]


# -- xarray / dask ----------------------------------------------------------------------------
_OUT = ("x", "averaging_kernel", "noise_covariance", "total_covariance", "dfs", "cost", "dof",
        "used")


#: Cells per call of :func:`cdf` inside a chunk: the working set of a few dozen cells stays in
#: the CPU caches (with hundreds of cells per call every step streams through memory).
_BLOCK_CELLS = 32


def _ufunc_kernel(x, A, Sn, xa_i, Sa_i, prior_mean, prior_cov, valid, grid=None, *, opts):
    """:func:`cdf` on one chunk (leading dim ``cell``), in blocks of :data:`_BLOCK_CELLS` cells."""
    n_cells = x.shape[0] if x.ndim == 3 else 0
    if n_cells <= 2 * _BLOCK_CELLS:
        res = cdf(x, A, Sn, xa_i, prior_mean, prior_cov, apriori_covariance=Sa_i, grid=grid,
                  valid=valid, options=opts)
        return tuple(getattr(res, name) for name in _OUT)
    pm = np.broadcast_to(prior_mean, (n_cells, prior_mean.shape[-1]))
    pc = prior_cov if prior_cov.ndim == 2 else np.broadcast_to(
        prior_cov, (n_cells, *prior_cov.shape[-2:]))
    outs = None
    try:
        for start in range(0, n_cells, _BLOCK_CELLS):
            sl = slice(start, start + _BLOCK_CELLS)
            res = cdf(x[sl], A[sl], Sn[sl], xa_i[sl], pm[sl], pc if pc.ndim == 2 else pc[sl],
                      apriori_covariance=None if Sa_i is None else Sa_i[sl],
                      grid=None if grid is None else grid[sl],
                      valid=None if valid is None else valid[sl], options=opts)
            if outs is None:
                outs = {name: np.empty((n_cells, *np.shape(getattr(res, name))[1:]),
                                       dtype=np.asarray(getattr(res, name)).dtype)
                        for name in _OUT}
            for name in _OUT:
                outs[name][sl] = getattr(res, name)
    except FusionInputError:  # again in one call, so that the error names the cell of the chunk
        res = cdf(x, A, Sn, xa_i, prior_mean, prior_cov, apriori_covariance=Sa_i, grid=grid,
                  valid=valid, options=opts)
        return tuple(getattr(res, name) for name in _OUT)
    return tuple(outs[name] for name in _OUT)


def _fuse_cells_threaded(cells, prior_mean, prior_covariance, opts, chunk_cells, num_workers):
    """:func:`fuse_cells` of an in-memory dataset (see :func:`_fuse_arrays`)."""
    dims = {"o3_vmr": ("cell", "slot", "level"), "o3_vmr_apriori": ("cell", "slot", "level"),
            "grid": ("cell", "slot", "level", "fusion_level")}
    names = ["o3_vmr", "averaging_kernel", "noise_covariance", "o3_vmr_apriori",
             "apriori_covariance", *(["grid"] if "grid" in cells else [])]
    arrays = {v: np.asarray(cells[v].transpose(*dims.get(v, ("cell", "slot", "level",
                                                                  "level_in"))).values)
              for v in names}
    valid = np.asarray(cells["valid"].transpose("cell", "slot").values)
    return _fuse_arrays(arrays, valid, None, prior_mean, prior_covariance, opts, chunk_cells,
                        num_workers)


def _fuse_arrays(arrays, valid, index, prior_mean, prior_covariance, opts, chunk_cells,
                 num_workers) -> xr.Dataset:
    """Fuse in-memory cells: the kernel on chunks of ``chunk_cells`` cells run by a thread pool
    of ``num_workers`` threads (default: all CPUs; LAPACK and BLAS release the GIL), outputs
    written into preallocated arrays. ``arrays`` (``o3_vmr``, ``averaging_kernel``,
    ``noise_covariance``, ``o3_vmr_apriori``, ``apriori_covariance`` and optionally ``grid``)
    are ``(cell, slot, ...)``, or with ``index`` (cell, slot) ``(retrieval, ...)`` gathered a
    chunk at a time (no full copy of the input)."""
    pm = np.asarray(prior_mean, dtype=np.float64)
    pc = np.asarray(prior_covariance, dtype=np.float64)
    has_grid = "grid" in arrays
    n_cells, n_slot = valid.shape
    n = arrays["grid"].shape[-1] if has_grid else arrays["o3_vmr"].shape[-1]
    out = {"x": np.empty((n_cells, n)), "averaging_kernel": np.empty((n_cells, n, n)),
           "noise_covariance": np.empty((n_cells, n, n)),
           "total_covariance": np.empty((n_cells, n, n)), "dfs": np.empty(n_cells),
           "cost": np.empty(n_cells), "dof": np.empty(n_cells, np.int64),
           "used": np.empty((n_cells, n_slot), bool)}

    def run(start):
        sl = slice(start, start + chunk_cells)
        get = (lambda v: arrays[v][sl]) if index is None else (lambda v: arrays[v][index[sl]])
        res = _ufunc_kernel(get("o3_vmr"), get("averaging_kernel"), get("noise_covariance"),
                            get("o3_vmr_apriori"), get("apriori_covariance"),
                            pm[sl] if pm.ndim == 2 else pm, pc, valid[sl],
                            get("grid") if has_grid else None, opts=opts)
        for name, value in zip(_OUT, res, strict=True):
            out[name][sl] = value

    workers = max(1, min(num_workers or os.cpu_count() or 1, -(-n_cells // chunk_cells)))
    with ThreadPoolExecutor(workers) as pool:
        for fut in [pool.submit(run, s) for s in range(0, n_cells, chunk_cells)]:
            fut.result()
    mat = ("level", "level_in")
    return xr.Dataset({
        "o3_vmr": (("cell", "level"), out["x"]),
        "averaging_kernel": (("cell", *mat), out["averaging_kernel"]),
        "noise_covariance": (("cell", *mat), out["noise_covariance"]),
        "total_covariance": (("cell", *mat), out["total_covariance"]),
        "dfs": (("cell",), out["dfs"]), "cost": (("cell",), out["cost"]),
        "cost_dof": (("cell",), out["dof"]), "used": (("cell", "slot"), out["used"]),
    })


def fuse_cells(cells: xr.Dataset, prior_mean, prior_covariance, *,
               options: CdfOptions | None = None, chunk_cells: int = 500,
               num_workers: int | None = None) -> xr.Dataset:
    """Fuse a dataset of cells, chunk-parallel when its variables are Dask arrays.

    Parameters
    ----------
    cells : xarray.Dataset
        Dims ``cell``, ``slot`` (retrievals of the cell), ``level``, ``level_in`` and, with a grid
        operator, ``fusion_level``. Variables ``o3_vmr`` (cell, slot, level), ``o3_vmr_apriori``,
        ``averaging_kernel`` (cell, slot, level, level_in), ``noise_covariance``,
        ``apriori_covariance``, ``valid`` (cell, slot) and optionally ``grid`` (cell, slot, level,
        fusion_level), as :func:`group_cells` makes them. [mol mol-1, 1, mol2 mol-2]
    prior_mean : array_like, (n,) or (cell, n)
        Fusion a priori. [mol mol-1]
    prior_covariance : array_like, (n, n)
        Fusion a priori covariance, shared by all cells. [mol2 mol-2]
    options : CdfOptions, optional
    chunk_cells, num_workers : int, optional
        In-memory input only: cells per call of the kernel and threads running the calls
        (default: all CPUs). A Dask input is computed by the caller's scheduler instead.

    Returns
    -------
    xarray.Dataset
        ``o3_vmr`` (cell, level), ``averaging_kernel``, ``noise_covariance``,
        ``total_covariance`` (cell, level, level_in), ``dfs``, ``cost``, ``cost_dof`` (cell),
        ``used`` (cell, slot), lazy when the input is.
    """
    opts = options or CdfOptions()
    if not any(cells[v].chunks for v in cells.data_vars) and cells.sizes["cell"] > chunk_cells:
        try:  # in memory: chunks of cells on a thread pool (LAPACK/BLAS release the GIL)
            return _fuse_cells_threaded(cells, prior_mean, prior_covariance, opts, chunk_cells,
                                        num_workers)
        except FusionInputError:
            pass  # redone in one call below, so that the error names the cell of the batch
    has_grid = "grid" in cells
    lev_out = "fusion_level" if has_grid else "level"
    n = cells.sizes[lev_out]
    pm = xr.DataArray(np.asarray(prior_mean, dtype=np.float64),
                      dims=(("cell",) if np.ndim(prior_mean) == 2 else ()) + ("fl_a",))
    pc = xr.DataArray(np.asarray(prior_covariance, dtype=np.float64), dims=("fl_a", "fl_b"))
    args = [cells["o3_vmr"], cells["averaging_kernel"], cells["noise_covariance"],
            cells["o3_vmr_apriori"], cells["apriori_covariance"], pm, pc, cells["valid"]]
    core = [["slot", "level"], ["slot", "level", "level_in"], ["slot", "level", "level_in"],
            ["slot", "level"], ["slot", "level", "level_in"], ["fl_a"], ["fl_a", "fl_b"],
            ["slot"]]
    if has_grid:
        args.append(cells["grid"])
        core.append(["slot", "level", "fusion_level"])
    out_core = [["fl_a"], ["fl_a", "fl_b"], ["fl_a", "fl_b"], ["fl_a", "fl_b"], [], [], [],
                ["slot"]]
    outs = xr.apply_ufunc(
        _ufunc_kernel, *args, input_core_dims=core, output_core_dims=out_core,
        kwargs={"opts": opts}, dask="parallelized",
        output_dtypes=[float, float, float, float, float, float, np.int64, bool],
        dask_gufunc_kwargs={"output_sizes": {"fl_a": n, "fl_b": n}},
    )
    ren = {"fl_a": "level", "fl_b": "level_in"}
    names = ("o3_vmr", "averaging_kernel", "noise_covariance", "total_covariance", "dfs", "cost",
             "cost_dof", "used")
    return xr.Dataset({name: da.rename({k: v for k, v in ren.items() if k in da.dims})
                       for name, da in zip(names, outs, strict=True)})


def group_cells(l2: xr.Dataset, cell=(1.0, 1.0, 3600.0)) -> np.ndarray:
    """Space-time cell of each retrieval: ``(lat, lon, hour)`` boxes as in Zoppetti et al. 2021.

    Parameters
    ----------
    l2 : xarray.Dataset
        Has ``latitude``, ``longitude`` [°] and ``time`` (retrieval).
    cell : tuple of float
        Box size ``(Δlatitude [°], Δlongitude [°], Δtime [s])``.

    Returns
    -------
    ndarray of int64, (retrieval, 3)
        Integer box index (latitude, longitude, time) of each retrieval.
    """
    dlat, dlon, dt = (float(c) for c in cell)
    if min(dlat, dlon, dt) <= 0:
        raise ValueError(f"cell={cell!r}: expected positive (Δlat [°], Δlon [°], Δt [s])")
    lat = np.asarray(l2["latitude"].values, dtype=np.float64)
    lon = (np.asarray(l2["longitude"].values, dtype=np.float64) + 180.0) % 360.0 - 180.0
    t = np.asarray(l2["time"].values).astype("datetime64[ns]").astype(np.int64) / 1e9
    return np.stack([np.floor((lat + 90.0) / dlat), np.floor((lon + 180.0) / dlon),
                     np.floor(t / dt)], axis=-1).astype(np.int64)


def fuse_product(l2: xr.Dataset, cell=(1.0, 1.0, 3600.0), *, pressure=None, prior=None,
                 options: CdfOptions | None = None, chunk_cells: int = 2000,
                 num_workers: int | None = None) -> xr.Dataset:
    """Group an ``l2-ozone`` dataset into space-time cells and fuse each cell (CDF, [1]_).

    Parameters
    ----------
    l2 : xarray.Dataset
        A canonical ``l2-ozone`` dataset (``store.open(item)`` gives a lazy one; only latitude,
        longitude, time and pressure are read to group the retrievals, the rest stays lazy).
    cell : tuple of float
        Box size ``(Δlatitude [°], Δlongitude [°], Δtime [s])``; default 1° × 1° × 1 h.
    pressure : array_like, (n,), optional
        Fusion grid. [Pa] Default: the grid of the retrievals when they all share one (no
        interpolation), else the grid of the first retrieval.
    prior : tuple (mean (n,), covariance (n, n)), optional
        Fusion a priori. [mol mol-1, mol2 mol-2] Default: the mean of the retrievals' a priori
        profiles on the fusion grid, with :func:`profile_covariance` of 100 % (a weak
        constraint).
    options : CdfOptions, optional
    chunk_cells : int
        Cells per Dask chunk, or per kernel call of the thread pool when ``l2`` is in memory. [1]
    num_workers : int, optional
        Threads fusing an in-memory ``l2`` (default: all CPUs); a lazy ``l2`` is computed by
        the caller's Dask scheduler.

    Returns
    -------
    xarray.Dataset
        A ``fused-ozone`` dataset (see :data:`hubkit.schemas.FUSED_OZONE`), lazy when ``l2`` is;
        ``n_retrievals`` counts the retrievals fused in each cell.

    References
    ----------
    .. [1] Ceccherini, Carli, Raspollini, Opt. Express 23, 8476, 2015. doi:10.1364/OE.23.008476
    .. [2] Zoppetti et al., Atmos. Meas. Tech. 14, 2041, 2021. doi:10.5194/amt-14-2041-2021
    """
    opts = options or CdfOptions()
    for name in ("o3_vmr", "o3_vmr_apriori", "averaging_kernel", "noise_covariance", "pressure"):
        if name not in l2.variables:
            raise FusionInputError(f"l2 dataset lacks {name!r}; expected an l2-ozone dataset")
    if opts.method == "total" and "apriori_covariance" not in l2.variables:
        raise FusionInputError("l2 dataset lacks 'apriori_covariance', which method='total' "
                               "needs; use CdfOptions(method='pinv')")
    box = group_cells(l2, cell)
    keys, inverse, counts = np.unique(box, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.ravel()
    n_cells, n_slot = keys.shape[0], int(counts.max())
    order = np.argsort(inverse, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    slot = np.arange(order.size) - starts[inverse[order]]
    index = np.full((n_cells, n_slot), order[0] if order.size else 0, dtype=np.int64)
    index[inverse[order], slot] = order
    valid = np.zeros((n_cells, n_slot), bool)
    valid[inverse[order], slot] = True

    p_ret = np.asarray(l2["pressure"].values, dtype=np.float64)
    same_grid = bool(np.allclose(p_ret, p_ret[:1], rtol=1e-9, equal_nan=True))
    if pressure is None:
        pressure = p_ret[0]
    pressure = np.asarray(pressure, dtype=np.float64)
    use_grid = not (same_grid and pressure.shape == p_ret[0].shape
                    and np.allclose(pressure, p_ret[0], rtol=1e-9))

    names = ["o3_vmr", "o3_vmr_apriori", "averaging_kernel", "noise_covariance",
             *(["apriori_covariance"] if "apriori_covariance" in l2 else [])]
    take = l2[names].drop_vars(list(l2[names].coords))
    lazy = any(take[v].chunks for v in names)
    phi = grid_operator(pressure, p_ret) if use_grid else None  # (retrieval, m, n)

    def gathered():
        if lazy:  # lazy (from the store): Dask gathers the cells
            cells = take.isel(retrieval=xr.DataArray(index, dims=("cell", "slot")))
        else:  # in memory: one NumPy gather per variable
            cells = xr.Dataset({v: (("cell", "slot", *take[v].dims[1:]), take[v].values[index],
                                    take[v].attrs) for v in names})
        cells = cells.assign(valid=(("cell", "slot"), valid))
        if "apriori_covariance" not in cells:
            m = l2.sizes["level"]
            cells["apriori_covariance"] = (("cell", "slot", "level", "level_in"),
                                           np.broadcast_to(np.eye(m), (n_cells, n_slot, m, m)))
        if use_grid:
            cells["grid"] = (("cell", "slot", "level", "fusion_level"), phi[index])
        if lazy:
            cells = cells.chunk({"cell": chunk_cells, "slot": -1, "level": -1, "level_in": -1})
        return cells

    if prior is None:
        xa = np.asarray(l2["o3_vmr_apriori"].values, dtype=np.float64)
        if use_grid:
            xa = np.nanmean(_mv(grid_operator(p_ret[0], pressure[None, :])[0], xa), axis=0)
        else:
            xa = np.nanmean(xa, axis=0)
        prior = (xa, profile_covariance(xa, pressure, relative=1.0))
    prior_mean, prior_cov = (np.asarray(a, dtype=np.float64) for a in prior)

    fused = None
    if not lazy:  # in memory: each thread gathers and fuses its chunk of cells
        src = {v: np.asarray(take[v].transpose("retrieval", *take[v].dims[1:]).values)
               for v in names}
        if "apriori_covariance" not in src:
            m = l2.sizes["level"]
            src["apriori_covariance"] = np.broadcast_to(np.eye(m), (p_ret.shape[0], m, m))
        if use_grid:
            src["grid"] = phi
        try:
            fused = _fuse_arrays(src, valid, index, prior_mean, prior_cov, opts, chunk_cells,
                                 num_workers)
        except FusionInputError:
            fused = None  # redone below in one call, so that the error names the right cell
    if fused is None:
        fused = fuse_cells(gathered(), prior_mean, prior_cov, options=opts,
                           chunk_cells=chunk_cells, num_workers=num_workers)
    lat = (keys[:, 0] + 0.5) * cell[0] - 90.0
    lon = (keys[:, 1] + 0.5) * cell[1] - 180.0
    t = ((keys[:, 2] + 0.5) * cell[2] * 1e9).astype("int64").astype("datetime64[ns]")
    out = xr.Dataset(
        {
            "o3_vmr": fused["o3_vmr"].assign_attrs(
                units="mol mol-1", long_name="fused ozone volume mixing ratio"),
            "o3_vmr_apriori": (("level",), prior_mean,
                               {"units": "mol mol-1", "long_name": "fusion a priori"}),
            "apriori_covariance": (("level", "level_in"), prior_cov,
                                   {"units": "mol2 mol-2",
                                    "long_name": "fusion a priori covariance"}),
            "averaging_kernel": fused["averaging_kernel"].assign_attrs(
                units="1", long_name="fused averaging kernel"),
            "noise_covariance": fused["noise_covariance"].assign_attrs(
                units="mol2 mol-2", long_name="fused noise error covariance"),
            "total_covariance": fused["total_covariance"].assign_attrs(
                units="mol2 mol-2", long_name="fused total (noise + smoothing) covariance"),
            "dfs": fused["dfs"].assign_attrs(units="1", long_name="degrees of freedom"),
            "cost": fused["cost"].assign_attrs(units="1", long_name="minimum CDF cost"),
            "cost_dof": fused["cost_dof"].assign_attrs(
                long_name="chi-square degrees of freedom of cost"),
            "n_retrievals": (("cell",), counts.astype(np.int32),
                             {"long_name": "retrievals in the cell"}),
            "n_fused": fused["used"].sum("slot").astype(np.int32).assign_attrs(
                long_name="retrievals fused in the cell"),
            "pressure": (("level",), pressure, {"units": "Pa", "standard_name": "air_pressure"}),
            "latitude": (("cell",), lat, {"units": "degrees_north"}),
            "longitude": (("cell",), lon, {"units": "degrees_east"}),
            "time": (("cell",), t),
        },
        attrs={
            "hubkit_product_type": "fused-ozone",
            "hubkit_species": "o3",
            "title": "Complete Data Fusion of L2 ozone profiles",
            "source": "hubkit.fusion.fuse_product",
            "fusion_cell": f"{cell[0]} deg x {cell[1]} deg x {cell[2]} s",
            "fusion_method": opts.method,
            "references": "Ceccherini et al. 2015 doi:10.1364/OE.23.008476",
        },
    )
    if "instrument" in l2.attrs:
        out.attrs["instrument"] = l2.attrs["instrument"]
    return out.set_coords(["latitude", "longitude", "time", "pressure"])


def adjust_prior(fused: xr.Dataset, prior) -> xr.Dataset:
    """Move a fused (or any linear optimal-estimation) product to another a priori profile.

    For a linear retrieval ``x̂ = x_a + A(x − x_a) + ε``, the same measurement with the prior
    ``x_a'`` would have given (Rodgers & Connor 2003, eq. 10)

    .. math:: x̂' = x̂ + (I − A)(x_a' − x_a)

    with the same averaging kernel ``A`` and noise covariance; both products then compare
    with a model profile through their own prior. Products with different priors become
    comparable, and can be assimilated together with one prior.

    Parameters
    ----------
    fused : xarray.Dataset
        ``fused-ozone`` dataset: ``o3_vmr`` (cell, level), ``averaging_kernel`` (cell, level,
        level_in), ``o3_vmr_apriori`` (level) [mol mol⁻¹, 1].
    prior : array_like, (level,)
        The new prior ``x_a'`` on the same grid. [mol mol⁻¹]

    Returns
    -------
    xarray.Dataset
        ``fused`` with ``o3_vmr`` and ``o3_vmr_apriori`` replaced; the prior covariance is
        dropped (it belonged to the old prior).

    References
    ----------
    .. [1] Rodgers, Connor, "Intercomparison of remote sounding instruments", J. Geophys. Res.
       108, 4116, 2003. doi:10.1029/2002JD002299
    """
    new = np.asarray(prior, dtype=float)
    old = np.asarray(fused["o3_vmr_apriori"].values, dtype=float)
    if new.shape != old.shape:
        raise FusionInputError(f"prior has shape {new.shape}; expected {old.shape}, the "
                               "fused product's level count")
    shift = new - old
    kernel = np.asarray(fused["averaging_kernel"].values, dtype=float)
    x = np.asarray(fused["o3_vmr"].values, dtype=float)
    moved = x + shift - np.einsum("cij,j->ci", kernel, shift)
    out = fused.drop_vars("apriori_covariance", errors="ignore")
    return out.assign(o3_vmr=fused["o3_vmr"].copy(data=moved),
                      o3_vmr_apriori=fused["o3_vmr_apriori"].copy(data=new))


def concat_fused(datasets, prior=None) -> xr.Dataset:
    """Fused products of one fusion grid on one prior, concatenated along ``cell``.

    Each product is moved to ``prior`` (default: the first product's) by
    :func:`adjust_prior`.

    Parameters
    ----------
    datasets : sequence of xarray.Dataset
        ``fused-ozone`` products, all on the same ``pressure`` grid.
    prior : array_like, (level,), optional
        Common prior. [mol mol⁻¹]

    Raises
    ------
    FusionInputError
        When the products are on different fusion grids (name them: configure one fusion
        grid per chain, e.g. the ``pressure`` parameter of the fusion step).
    """
    datasets = list(datasets)
    if not datasets:
        raise FusionInputError("concat_fused: no fused product given")
    grid = np.asarray(datasets[0]["pressure"].values, dtype=float)
    for k, ds in enumerate(datasets[1:], start=1):
        p = np.asarray(ds["pressure"].values, dtype=float)
        if p.shape != grid.shape or not np.allclose(p, grid, rtol=1e-9):
            raise FusionInputError(
                f"fused product {k} ({ds.attrs.get('hubkit_id', 'unnamed')}) is on a fusion grid "
                f"of {p.size} levels {p.max():g}-{p.min():g} Pa, product 0 on {grid.size} levels "
                f"{grid.max():g}-{grid.min():g} Pa; expected one fusion grid (set the fusion "
                "step's 'pressure')")
    prior = datasets[0]["o3_vmr_apriori"].values if prior is None else prior
    moved = [adjust_prior(ds, prior) for ds in datasets]
    if len(moved) == 1:
        return moved[0]
    return xr.concat(moved, dim="cell", data_vars="minimal", coords="minimal",
                     compat="override", join="outer", combine_attrs="drop_conflicts")
