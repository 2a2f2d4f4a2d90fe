"""A compiled LETKF analysis (numba): every grid point's local analysis in one loop.

The batched NumPy path of :func:`hubkit.assimilation.filters.letkf_analysis` pads every point's
observations to the widest list of its chunk, gathers them into stacked arrays and goes through
a dozen stacked calls per chunk; here one compiled function walks the grid points and, per
point, keeps every matrix in small reused buffers: it gathers the observations of nonzero
weight, does the ensemble-space analysis and writes the analysis members. No allocation per
point except the eigen-decomposition's (``numpy.linalg.eigh`` inside numba calls LAPACK
``dsyevd``, as NumPy does).

Per point, with ``Z = R_loc^{-1/2} Y_b`` (``k`` local observations × ``N`` members),
``d̃ = R_loc^{-1/2} (y − ȳ_b)`` and ``α = (N − 1)/ρ``, the analysis of Hunt et al. (2007,
eqs. 21-24) is

    ``P̃_a = (α I + ZᵀZ)⁻¹``,  ``w̄_a = P̃_a Zᵀ d̃``,  ``W_a = √(N−1) P̃_a^{1/2}`` (symmetric root),

and member ``j`` of the analysis is ``x̄_b + X_b (w̄_a + W_a[:, j])``. Two ways to the same
matrices, chosen per point:

- ``k ≥ N``: the ``N × N`` matrix ``α I + ZᵀZ`` is decomposed, as in the paper.
- ``k < N`` (few observations, e.g. Lorenz-96): ``ZᵀZ`` has rank ``≤ k``; with the ``k × k``
  decomposition ``Z Zᵀ = U diag(t) Uᵀ`` and ``Q = Uᵀ Z`` (rows ``√t_m v_mᵀ``, ``v_m`` the right
  singular vectors of ``Z``), ``P̃_a^{1/2} = α^{-1/2} I + Qᵀ diag(φ(t)) Q`` with
  ``φ(t) = ((α + t)^{-1/2} − α^{-1/2}) / t = −1 / (√α √(α+t) (√α + √(α+t)))`` (no cancellation,
  finite at ``t = 0``), and ``w̄_a = Zᵀ (α I + Z Zᵀ)⁻¹ d̃ = Qᵀ diag(1/(α+t)) Uᵀ d̃`` (the
  push-through identity). The same matrices, from a ``k × k`` instead of an ``N × N``
  eigen-problem.

Without numba (:data:`AVAILABLE` False) the NumPy path is used; it makes the same choice per
chunk (:func:`hubkit.assimilation.filters._transform_obs_space`).

References
----------
.. [1] Hunt, Kostelich, Szunyogh, "Efficient data assimilation for spatiotemporal chaos: a local
   ensemble transform Kalman filter", Physica D 230, 112-126, 2007.
   doi:10.1016/j.physd.2006.11.008
.. [2] Golub, Van Loan, Matrix Computations, 4th ed., 2013, section 9.1 (functions of a
   symmetric matrix through its eigen-decomposition).
"""

from __future__ import annotations

import numpy as np

try:  # an optional dependency: the NumPy path does the same without it
    import numba
except ImportError:  # pragma: no cover - exercised where numba is absent
    numba = None

__all__ = ["AVAILABLE", "letkf_points"]

AVAILABLE = numba is not None

def _jit(f):
    """Compiled without the GIL, cached on disk where numba finds a writable directory
    (np.linalg inside numba binds LAPACK at load time, so the machine code can be reused);
    without one (a read-only image and home) it compiles in each process."""
    if not AVAILABLE:  # pragma: no cover
        return f
    try:
        return numba.njit(nogil=True, cache=True)(f)
    except RuntimeError:  # pragma: no cover - "cannot cache function ...: no locator available"
        return numba.njit(nogil=True)(f)


@_jit
def _points(X, Yp, d, rinv, index, weight, rho, out):
    N, G, V = X.shape
    K = index.shape[1]
    sq = np.sqrt(N - 1.0)
    Z = np.empty((K, N))  # R_loc^{-1/2} Y_b of the point's observations with weight > 0
    dt = np.empty(K)  # R_loc^{-1/2} (y - ȳ_b)
    xm = np.empty(V)
    Xp = np.empty((N, V))  # background perturbations of the point
    O = np.empty((N, V))  # noqa: E741 - its analysis members
    M = np.empty((K, K))
    P = np.empty((K, V))
    S = np.empty((K, V))
    R = np.empty((K, V))
    f = np.empty(K)
    e = np.empty(K)
    h = np.empty(K)
    A = np.empty((N, N))
    T = np.empty((N, N))
    c = np.empty(N)
    en = np.empty(N)
    for g in range(G):
        k = 0
        for j in range(K):
            w = weight[g, j]
            if w > 0.0:
                o = index[g, j]
                s = np.sqrt(w * rinv[o])
                for i in range(N):
                    Z[k, i] = Yp[o, i] * s
                dt[k] = d[o] * s
                k += 1
        for v in range(V):
            xm[v] = 0.0
        for i in range(N):
            for v in range(V):
                xm[v] += X[i, g, v]
        for v in range(V):
            xm[v] /= N
        for i in range(N):
            for v in range(V):
                Xp[i, v] = X[i, g, v] - xm[v]
        alpha = (N - 1.0) / rho[g]
        ra = np.sqrt(alpha)
        if k < N:
            # k x k problem: Z Zᵀ = U diag(t) Uᵀ
            for a in range(k):
                for b in range(a + 1):
                    acc = 0.0
                    for i in range(N):
                        acc += Z[a, i] * Z[b, i]
                    M[a, b] = acc
                    M[b, a] = acc
            if k > 0:
                t, U = np.linalg.eigh(M[:k, :k])
            else:
                t, U = np.empty(0), np.empty((0, 0))
            # P = Z Xp (k x V): the perturbations seen through the observations
            for a in range(k):
                for v in range(V):
                    P[a, v] = 0.0
                for i in range(N):
                    za = Z[a, i]
                    for v in range(V):
                        P[a, v] += za * Xp[i, v]
            for m in range(k):
                tm = max(t[m], 0.0)  # Z Zᵀ is PSD: a negative value is rounding
                rt = np.sqrt(alpha + tm)
                f[m] = -sq / (ra * rt * (ra + rt))  # √(N-1) φ(t)
                acc = 0.0
                for a in range(k):
                    acc += U[a, m] * dt[a]
                e[m] = acc / (alpha + tm)  # diag(1/(α+t)) Uᵀ d̃
            # S = diag(√(N-1) φ) Uᵀ P;  h = U e, so that w̄_a = Zᵀ h
            for m in range(k):
                for v in range(V):
                    S[m, v] = 0.0
                for a in range(k):
                    uam = U[a, m]
                    for v in range(V):
                        S[m, v] += uam * P[a, v]
                for v in range(V):
                    S[m, v] *= f[m]
            for a in range(k):
                acc = 0.0
                for m in range(k):
                    acc += U[a, m] * e[m]
                h[a] = acc
            # member j: x̄ + Xpᵀ (w̄_a + W_a[:, j])
            #   = x̄ + Pᵀ h + √((N-1)/α) Xp[j] + Σ_a R[a] Z[a, j]
            base = sq / ra
            for v in range(V):
                acc = xm[v]
                for a in range(k):
                    acc += P[a, v] * h[a]
                for j in range(N):
                    O[j, v] = acc + base * Xp[j, v]
            for a in range(k):
                for v in range(V):  # R = U S
                    R[a, v] = 0.0
                for m in range(k):
                    uam = U[a, m]
                    for v in range(V):
                        R[a, v] += uam * S[m, v]
                for j in range(N):
                    zaj = Z[a, j]
                    for v in range(V):
                        O[j, v] += zaj * R[a, v]
        else:
            # N x N problem: α I + ZᵀZ = E diag(λ) Eᵀ (ZᵀZ by BLAS: k is large here)
            Zk = Z[:k]
            np.dot(Zk.T, Zk, A)
            np.dot(dt[:k], Zk, c)  # Zᵀ d̃
            for i in range(N):
                A[i, i] += alpha
            lam, E = np.linalg.eigh(A)
            # T = √(N-1) E Λ^{-1/2} Eᵀ + (E Λ⁻¹ Eᵀ Zᵀ d̃) 1ᵀ
            np.dot(c, E, en)  # Eᵀ Zᵀ d̃
            for m in range(N):
                en[m] /= lam[m]
                s = sq / np.sqrt(lam[m])
                for i in range(N):
                    A[i, m] = E[i, m] * s  # reuse A for √(N-1) E Λ^{-1/2}
            np.dot(E, en, c)  # w̄_a
            np.dot(A, E.T, T)
            for i in range(N):
                for j in range(N):
                    T[i, j] += c[i]
            # member j: x̄ + Σ_i Xp[i] T[i, j]
            np.dot(T.T, Xp, O)
            for j in range(N):
                for v in range(V):
                    O[j, v] += xm[v]
        for j in range(N):
            for v in range(V):
                out[j, g, v] = O[j, v]


def letkf_points(X, Yp, d, rinv, index, weight, rho):
    """Every grid point's LETKF analysis with the compiled kernel.

    Parameters
    ----------
    X : ndarray, (N, G, V)
        Background ensemble, the variables of a grid point last. [state units]
    Yp : ndarray, (p, N)
        Observation perturbations ``H(x_i) − ȳ_b``. [observation units]
    d : ndarray, (p,)
        Innovations ``y − ȳ_b``. [observation units]
    rinv : ndarray, (p,)
        Inverse observation error variances. [observation units⁻²]
    index, weight : ndarray, (G, k)
        Local observations of each point and their localisation weights (0: not seen). [1]
    rho : ndarray, (G,)
        Multiplicative inflation per point. [1]

    Returns
    -------
    ndarray, (N, G, V)
        Analysis ensemble. [state units]
    """
    X = np.ascontiguousarray(X, dtype=np.float64)
    out = np.empty_like(X)
    _points(X, np.ascontiguousarray(Yp, dtype=np.float64),
            np.ascontiguousarray(d, dtype=np.float64),
            np.ascontiguousarray(rinv, dtype=np.float64),
            np.ascontiguousarray(index, dtype=np.intp),
            np.ascontiguousarray(weight, dtype=np.float64),
            np.ascontiguousarray(rho, dtype=np.float64), out)
    return out
