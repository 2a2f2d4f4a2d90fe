"""Batched linear algebra of the Complete Data Fusion: Cholesky factors and triangular inverses
over stacks of small symmetric matrices (SciPy's LAPACK wrappers where present, NumPy otherwise),
and the checks that tell a covariance that is not positive definite."""

from __future__ import annotations

import numpy as np

try:
    from scipy.linalg import lapack as _lapack
except ImportError:  # pragma: no cover - SciPy comes with pvlib
    _lapack = None

#: Block size below which the triangular inverse is done row by row, vectorised over the batch.
_TRI_BLOCK = 10


def transposed(a: np.ndarray) -> np.ndarray:
    """Stacked matrices transposed (the last two axes swapped; a view)."""
    return np.swapaxes(a, -1, -2)


def symmetrised(a: np.ndarray) -> np.ndarray:
    """The symmetric part ``(A + Aᵀ) / 2`` of stacked matrices."""
    return 0.5 * (a + transposed(a))


def matvec(a: np.ndarray, v: np.ndarray) -> np.ndarray:
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


def chol_inv(a: np.ndarray, inverse: bool = True, factor: bool = True):
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


def not_psd_distinct(probe: np.ndarray) -> np.ndarray:
    """:func:`chol_inv`'s non-positive-definite mask of a stack ``(B, m, m)``, factorising each
    distinct matrix once: retrievals often share a covariance (an a priori covariance per
    instrument, a noise covariance per scene type). Matrices are grouped by a random projection
    and the grouping is verified element by element; a matrix that differs from its group's
    first is factorised on its own, so the result equals factorising every matrix."""
    B, m = probe.shape[0], probe.shape[-1]
    if B < 4:
        return chol_inv(probe, inverse=False, factor=False)[2]
    flat = probe.reshape(B, m * m)
    key = flat @ np.random.default_rng(12345).standard_normal(m * m)
    _, first, inv = np.unique(key, return_index=True, return_inverse=True)
    same = (flat == flat[first[inv]]).all(axis=1)
    todo = np.union1d(first, np.flatnonzero(~same))
    if todo.size > 0.8 * B:
        return chol_inv(probe, inverse=False, factor=False)[2]
    bad_todo = chol_inv(probe[todo], inverse=False, factor=False)[2]
    bad = np.zeros(B, bool)
    bad[todo] = bad_todo
    rep_bad = bad[first]  # of each group's first matrix
    return np.where(same, rep_bad[inv.ravel()], bad)


def pinv_factor(cov: np.ndarray, rcond: float) -> tuple[np.ndarray, np.ndarray]:
    """``W`` with ``W Wᵀ = S⁺`` (generalised inverse, relative threshold ``rcond``) and rank(S)."""
    evals, evecs = np.linalg.eigh(cov)
    top = np.max(np.abs(evals), axis=-1, keepdims=True)
    keep = evals > rcond * top
    scale = np.where(keep, 1.0 / np.sqrt(np.where(keep, evals, 1.0)), 0.0)
    return evecs * scale[..., None, :], keep.sum(axis=-1)
