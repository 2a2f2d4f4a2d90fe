"""A compiled per-cell Complete Data Fusion kernel (numba, LAPACK/BLAS from SciPy).

:func:`cdf` with ``method="total"``, no grid operator, no extra covariance and no χ² diagnostics
is, per cell, a handful of 40 × 40 factorisations and products. Done as stacked NumPy calls, each
factorisation is a Python-level loop over the matrices and every intermediate makes a round trip
through memory; here one compiled function walks the cells and, per cell, keeps every matrix in
cache and calls LAPACK/BLAS (SciPy's ``cython_lapack``/``cython_blas``, the same library NumPy
uses) on it directly. Per retrieval: ``S_i = S_n,i + (I - A_i) S_a,i (I - A_i)ᵀ`` (two GEMMs),
its inverse from its Cholesky factor (``dpotf2`` + ``dpotri``), ``S_i⁻¹ A_i`` by one GEMM and
``S_i⁻¹ α_i`` (a Cholesky solve with the 41 right-hand sides ``[A_i, α_i]``, ``dpotrs``, took
1.7× as long on 40 levels: OpenBLAS's small triangular solves are slow); the Cholesky
factorisations by the unblocked ``dpotf2`` (3.4 µs at 40 × 40 against 5.8 µs for the blocked
``dpotrf``, whose driver costs more than the arithmetic at this size); per cell:
``P = Σ F_i + S_a⁻¹``, its inverse (``dpotf2`` + ``dpotri``) and the products ``P⁻¹ F`` and
``A_f P⁻¹``: the equations of Ceccherini et al. (2015, eqs. 9-15) in the total-covariance form of
Rodgers (2000, eqs. 2.45 and 3.16), as :func:`hubkit.fusion.cdf` writes them.

The input checks are the kernel's too (NaN, symmetry, positive semi-definiteness of every
covariance by a Cholesky factorisation of ``S + 10⁻⁹ tr(S)/m I``, each distinct matrix once): a
cell that fails any of them is reported, and :func:`hubkit.fusion.cdf` then runs its NumPy path
on the batch, which raises or excludes with the messages it always gave. Without numba
(:data:`AVAILABLE` False) the NumPy path is used throughout.

References
----------
.. [1] Ceccherini, Carli, Raspollini, Opt. Express 23, 8476, 2015. doi:10.1364/OE.23.008476
.. [2] Rodgers, Inverse Methods for Atmospheric Sounding, 2000. doi:10.1142/3171
.. [3] Anderson et al., LAPACK Users' Guide, 3rd ed., SIAM, 1999 (xPOTF2, xPOTRI).
"""

from __future__ import annotations

import contextlib
import ctypes

import numpy as np

try:  # an optional dependency: the NumPy path does the same without it
    import numba
    from numba.extending import get_cython_function_address
except ImportError:  # pragma: no cover - exercised where numba is absent
    numba = None

__all__ = ["AVAILABLE", "cdf_total_cells", "fuse_indexed"]

AVAILABLE = numba is not None

#: the kernel's stages, in order: :func:`fuse_indexed` ``stages=k`` runs the first k of them
#: for each cell (the benchmark's breakdown of where the time goes; the outputs are then
#: incomplete)
STAGES = ("read, finite, D = I - A, checks", "S = S_n + D S_a Dᵀ (2 GEMM)",
          "Cholesky of S (dpotf2)", "S⁻¹ (dpotri), S⁻¹A (GEMM), α, b, F",
          "P = F + S_a⁻¹, its inverse (dpotf2, dpotri)", "A_f, noise (2 GEMM), x_f, DFS, outputs")
ALL_STAGES = len(STAGES)

#: status of a cell: fused, a bad input (NaN, asymmetric, not PSD), a total covariance or a
#: normal matrix that is not positive definite (the last three go to the NumPy path)
OK, BAD_INPUT, TOTAL_NOT_PD, NORMAL_NOT_PD = 0, 1, 2, 3


def _bind(module: str, name: str, nargs: int):
    p = ctypes.c_void_p
    return ctypes.CFUNCTYPE(None, *([p] * nargs))(get_cython_function_address(module, name))


if AVAILABLE:
    # the unblocked Cholesky: at 40 x 40 OpenBLAS's blocked dpotrf takes 5.8 us, dpotf2 3.4
    _dpotf2 = _bind("scipy.linalg.cython_lapack", "dpotf2", 5)
    _dpotri = _bind("scipy.linalg.cython_lapack", "dpotri", 5)
    _dgemm = _bind("scipy.linalg.cython_blas", "dgemm", 13)
    _jit = numba.njit(nogil=True, cache=False)  # ctypes pointers cannot be cached to disk
else:  # pragma: no cover
    def _jit(f):
        return f


@_jit
def _gemm(ta, tb, a, b, c, alpha, beta, n, scal):
    """``c = alpha op(a) op(b) + beta c`` on C-ordered n × n matrices (op: 'N' or 'T').

    Fortran sees a C-ordered matrix transposed, so ``cᵀ = op(b)ᵀ op(a)ᵀ`` is asked for."""
    scal[0] = alpha
    scal[1] = beta
    _dgemm(tb.ctypes, ta.ctypes, n.ctypes, n.ctypes, n.ctypes, scal[0:1].ctypes, b.ctypes,
           n.ctypes, a.ctypes, n.ctypes, scal[1:2].ctypes, c.ctypes, n.ctypes)


@_jit
def _checked(covs, r, m, rtol, check, known, n_known, probe, upper, n, info):
    """True when ``covs[r]`` passes the checks of :func:`hubkit.fusion.kernel._bad_retrievals`
    (symmetric to ``rtol``, positive semi-definite, trace >= 0); ``covs[known[:n_known[0]]]``
    are matrices already found good (a shared covariance is factorised once)."""
    cov = covs[r]
    if not check:
        for j in range(m):
            for k in range(m):
                if not np.isfinite(cov[j, k]):
                    return False
        return True
    for q in range(n_known[0]):
        other = covs[known[q]]
        same = True
        for j in range(m):
            for k in range(m):
                if other[j, k] != cov[j, k]:
                    same = False
                    break
            if not same:
                break
        if same:
            return True
    # one pass over the upper triangle: finiteness (a NaN fails every comparison below, so a
    # matrix equal to a known one is finite), the largest |value| and asymmetry, the trace;
    # the lower triangle (the one LAPACK reads) copied to the probe on the way
    scale = 0.0
    asym = 0.0
    tr = 0.0
    finite = True
    for j in range(m):
        cjj = cov[j, j]
        tr += cjj
        finite &= np.isfinite(cjj)
        scale = max(scale, abs(cjj))
        probe[j, j] = cjj
        for k in range(j + 1, m):
            a = cov[j, k]
            b = cov[k, j]
            probe[k, j] = b
            finite &= np.isfinite(a) & np.isfinite(b)
            scale = max(scale, max(abs(a), abs(b)))
            asym = max(asym, abs(a - b))
    if not finite or asym > rtol * scale:
        return False
    mean = tr / m
    if not mean > 0:
        mean = 1.0
    for j in range(m):
        probe[j, j] += 1e-9 * mean
    _dpotf2(upper.ctypes, n.ctypes, probe.ctypes, n.ctypes, info.ctypes)
    if info[0] != 0 or tr < 0:
        return False
    known[n_known[1] % known.shape[0]] = r  # remembered by its row: no copy
    n_known[1] += 1
    n_known[0] = min(n_known[1], known.shape[0])
    return True


@_jit
def _cells(x, A, Sn, xa, Sa, index, used, prior_inv, prior_b, rtol, check,
           x_f, A_f, noise, smoothing, total, dfs, status, stages):
    """Fuse cell ``c`` from the retrievals ``index[c, i]`` of ``x``, ``A``, ``Sn``, ``xa``,
    ``Sa`` (retrieval-first arrays) where ``used[c, i]``; outputs are cell-first (``smoothing``
    may have no rows: not computed)."""
    C, N = index.shape
    m = x.shape[1]
    with_smoothing = smoothing.shape[0] > 0
    n = np.array([m], np.int32)
    info = np.zeros(1, np.int32)
    upper = np.array([ord("U")], np.uint8)
    op_n = np.array([ord("N")], np.uint8)
    op_t = np.array([ord("T")], np.uint8)
    scal = np.zeros(2)
    D = np.empty((m, m))
    T = np.empty((m, m))
    S = np.empty((m, m))
    G = np.empty((m, m))
    F = np.empty((m, m))
    P = np.empty((m, m))
    Af = np.empty((m, m))
    Nr = np.empty((m, m))
    probe = np.empty((m, m))
    alpha = np.empty(m)
    b = np.empty(m)
    known_n = np.empty(8, np.int64)  # rows of S_n, S_a found good (the last 8)
    known_a = np.empty(8, np.int64)
    nk_n = np.zeros(2, np.int64)  # how many known, how many found in all
    nk_a = np.zeros(2, np.int64)
    for c in range(C):
        status[c] = OK
        F[:, :] = 0.0
        b[:] = prior_b[c]
        for i in range(N):
            if not used[c, i]:
                continue
            r = index[c, i]
            # D = I - A, and in the same pass the finiteness of x̂, x_a and A
            ok = True
            for j in range(m):
                ok &= np.isfinite(x[r, j]) & np.isfinite(xa[r, j])
                for k in range(m):
                    a = A[r, j, k]
                    ok &= np.isfinite(a)
                    D[j, k] = -a
                D[j, j] += 1.0
            if not ok or not _checked(Sn, r, m, rtol, check, known_n, nk_n, probe, upper,
                                      n, info) \
                    or not _checked(Sa, r, m, rtol, check, known_a, nk_a, probe, upper, n,
                                    info):
                status[c] = BAD_INPUT
                break
            if stages < 2:
                continue
            # S = S_n + (I - A) S_a (I - A)ᵀ, the total covariance
            _gemm(op_n, op_n, D, Sa[r], T, 1.0, 0.0, n, scal)
            S[:, :] = Sn[r]
            _gemm(op_n, op_t, T, D, S, 1.0, 1.0, n, scal)
            if stages < 3:
                continue
            _dpotf2(upper.ctypes, n.ctypes, S.ctypes, n.ctypes, info.ctypes)
            if info[0] != 0:
                status[c] = TOTAL_NOT_PD
                break
            if stages < 4:
                continue
            # S⁻¹ from its Cholesky factor (LAPACK fills one triangle: mirror it), then S⁻¹ A
            # by one GEMM and S⁻¹ α with α = x̂ - (I - A) x_a (eq. 9 of [1])
            _dpotri(upper.ctypes, n.ctypes, S.ctypes, n.ctypes, info.ctypes)
            for j in range(m):
                for k in range(j + 1, m):
                    S[j, k] = S[k, j]
            _gemm(op_n, op_n, S, A[r], G, 1.0, 0.0, n, scal)
            for j in range(m):
                ax = 0.0
                for k in range(m):
                    ax += A[r, j, k] * xa[r, k]
                alpha[j] = x[r, j] - xa[r, j] + ax
            for k in range(m):  # b += S⁻¹ α by rows of the symmetric S⁻¹ (a vector loop)
                ak = alpha[k]
                for j in range(m):
                    b[j] += S[k, j] * ak
            # F += S⁻¹ A; its symmetric part is taken once per cell (the asymmetric part,
            # zero for an optimal-estimation retrieval, is dropped)
            for j in range(m):
                for k in range(m):
                    F[j, k] += G[j, k]
        if status[c] != OK or stages < 5:
            continue
        for j in range(m):
            for k in range(j, m):
                f = 0.5 * (F[j, k] + F[k, j])
                F[j, k] = f
                F[k, j] = f
        for j in range(m):
            for k in range(m):
                P[j, k] = F[j, k] + prior_inv[j, k]
        _dpotf2(upper.ctypes, n.ctypes, P.ctypes, n.ctypes, info.ctypes)
        if info[0] != 0:
            status[c] = NORMAL_NOT_PD
            continue
        _dpotri(upper.ctypes, n.ctypes, P.ctypes, n.ctypes, info.ctypes)
        for j in range(m):  # LAPACK filled the lower triangle (C order): mirror it
            for k in range(j + 1, m):
                P[j, k] = P[k, j]
        if stages < 6:
            continue
        _gemm(op_n, op_n, P, F, Af, 1.0, 0.0, n, scal)
        _gemm(op_n, op_n, Af, P, Nr, 1.0, 0.0, n, scal)
        alpha[:] = 0.0
        for k in range(m):  # x_f = P⁻¹ b by rows of the symmetric P⁻¹ (a vector loop)
            bk = b[k]
            for j in range(m):
                alpha[j] += P[k, j] * bk
        tr = 0.0
        for j in range(m):
            x_f[c, j] = alpha[j]
            tr += Af[j, j]
        dfs[c] = tr
        for j in range(m):
            for k in range(m):
                A_f[c, j, k] = Af[j, k]
                noise[c, j, k] = 0.5 * (Nr[j, k] + Nr[k, j])
                total[c, j, k] = P[j, k]
        if with_smoothing:
            for j in range(m):
                for k in range(m):
                    smoothing[c, j, k] = 0.5 * ((P[j, k] - Nr[j, k]) + (P[k, j] - Nr[k, j]))


_CONTROLLER = []


def _one_blas_thread():
    """BLAS on one thread while the kernel runs: its matrices are 40 × 40, and OpenBLAS's own
    threads, woken for every call, cost more than the call (6-30× slower on a busy machine).
    The parallelism is over cells (threads or Dask workers), not inside a 40 × 40 product."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - threadpoolctl comes with the compiled engine
        return contextlib.nullcontext()
    if not _CONTROLLER:
        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0].limit(limits=1, user_api="blas")


def cdf_total_cells(x, A, Sn, xa, Sa, used, prior_inv, prior_mean, *, check=True,
                    symmetry_rtol=1e-8):
    """Fuse a batch of cells with the compiled kernel, or return None when a cell needs the NumPy
    path (a bad input, a matrix that is not positive definite: its errors name the cell).

    Parameters are those of :func:`hubkit.fusion.cdf` (``method="total"``, no grid, no extra
    covariance), float64, the cells flattened to one leading axis: ``x`` (C, N, m), ``A``,
    ``Sn``, ``Sa`` (C, N, m, m), ``xa`` (C, N, m), ``used`` (C, N); ``prior_inv`` (m, m) is
    ``S_a⁻¹`` of the fusion prior, ``prior_mean`` (m,) or (C, m).

    Returns
    -------
    tuple of ndarray or None
        ``x_f`` (C, m), ``A_f``, noise, smoothing and total covariance (C, m, m), DFS (C,).
    """
    if not AVAILABLE:
        return None
    C, N, m = x.shape
    flat = [np.ascontiguousarray(a, dtype=np.float64).reshape(C * N, *a.shape[2:])
            for a in (x, A, Sn, xa, Sa)]
    x_f = np.empty((C, m))
    mats = [np.empty((C, m, m)) for _ in range(4)]
    dfs = np.empty(C)
    ok = _run(flat, np.arange(C * N).reshape(C, N), used, prior_inv, prior_mean, check,
              symmetry_rtol, x_f, *mats, dfs)
    return (x_f, *mats, dfs) if ok else None


def _run(arrays, index, used, prior_inv, prior_mean, check, symmetry_rtol, x_f, A_f, noise,
         smoothing, total, dfs, stages=ALL_STAGES) -> bool:
    """The kernel on cells ``index`` (C, N) of retrieval-first ``arrays`` (x, A, S_n, x_a,
    S_a), writing into the given outputs; False when a cell needs the NumPy path."""
    C, m = index.shape[0], arrays[0].shape[1]
    prior_inv = np.ascontiguousarray(prior_inv, dtype=np.float64)
    prior_b = np.ascontiguousarray(np.broadcast_to(
        np.asarray(prior_mean, dtype=np.float64) @ prior_inv, (C, m)))  # S_a⁻¹ x_a (symmetric)
    status = np.empty(C, np.int8)
    with _one_blas_thread():
        _cells(*arrays, np.ascontiguousarray(index, dtype=np.int64),
               np.ascontiguousarray(used, dtype=np.bool_), prior_inv, prior_b,
               float(symmetry_rtol), bool(check), x_f, A_f, noise, smoothing, total, dfs,
               status, int(stages))
    return bool((status == OK).all())


def fuse_indexed(arrays, index, used, prior_inv, prior_mean, *, check=True,
                 symmetry_rtol=1e-8, out, stages=ALL_STAGES):
    """Fuse cells straight from retrieval arrays into preallocated outputs (no gathered copy).

    Parameters
    ----------
    arrays : sequence of ndarray
        ``x`` (R, m), ``A``, ``S_n`` (R, m, m), ``x_a`` (R, m), ``S_a`` (R, m, m), float64,
        C-contiguous, one row per retrieval.
    index : ndarray of int, (C, N)
        Retrievals of each cell.
    used : ndarray of bool, (C, N)
        The real retrievals of ``index`` (False: padding).
    prior_inv, prior_mean
        As in :func:`cdf_total_cells`.
    check : bool
        Check the covariances (finite, symmetric within ``symmetry_rtol``, positive definite).
    symmetry_rtol : float
        Largest accepted ``max|S - Sᵀ| / max|S|`` of an input covariance. [1]
    out : dict of ndarray
        ``x`` (C, m), ``averaging_kernel``, ``noise_covariance``, ``total_covariance``
        (C, m, m), ``dfs`` (C,), C-contiguous (views of larger arrays are fine), written in
        place (the smoothing covariance is not computed).
    stages : int
        Run only the first ``stages`` of :data:`STAGES` for each cell (to time them; the
        outputs are then incomplete). Default: all.

    Returns
    -------
    bool
        False when a cell needs the NumPy path (a bad input, a matrix that is not positive
        definite); the outputs are then partly written and must be redone.
    """
    m = arrays[0].shape[1]
    return _run(arrays, index, used, prior_inv, prior_mean, check, symmetry_rtol, out["x"],
                out["averaging_kernel"], out["noise_covariance"], np.empty((0, m, m)),
                out["total_covariance"], out["dfs"], stages)
