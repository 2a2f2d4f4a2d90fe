"""Observation operators: retrieved profiles with averaging kernels, columns, superobbing.

A retrieval ``x̂`` on its own grid of ``m`` levels, with averaging kernel ``A`` and prior
``x_a``, is simulated from a model state ``x`` (``n`` levels) by (Rodgers 2000, eq. 3.10;
Eskes & Boersma 2003)

.. math::
    H(x) = x_a + A (Φ x − x_a)

with ``Φ`` the ``m × n`` model-to-retrieval grid map (:func:`layer_mapping`). A total column is
``c = kᵀ x`` with a column kernel ``k`` (for a kernel of ones, the sum of the layer amounts).
All functions batch over leading dimensions (ensemble members, observations).

References
----------
.. [1] Rodgers, "Inverse Methods for Atmospheric Sounding", World Scientific, 2000.
   doi:10.1142/3171
.. [2] Eskes, Boersma, "Averaging kernels for DOAS total-column satellite retrievals", Atmos.
   Chem. Phys. 3, 1285-1291, 2003. doi:10.5194/acp-3-1285-2003
"""

from __future__ import annotations

import numpy as np

from hubkit.errors import AssimilationInputError

__all__ = ["column_operator", "layer_mapping", "retrieval_operator", "superob"]


def retrieval_operator(x, averaging_kernel, apriori, phi=None):
    """Simulated retrieval ``H(x) = x_a + A(Φx − x_a)``.

    Parameters
    ----------
    x : array_like, (..., n)
        Model profile(s) on the model grid; leading axes (members) are batched.
        [profile units]
    averaging_kernel : array_like, (..., m, m)
        Averaging kernel ``A`` of the retrieval, broadcast against ``x``'s leading axes. [1]
    apriori : array_like, (..., m)
        Retrieval prior ``x_a``. [profile units]
    phi : array_like, (..., m, n), optional
        Model-to-retrieval grid map ``Φ`` (default identity, ``m = n``). [1]

    Returns
    -------
    hx : ndarray, (..., m)
        Retrieval that the instrument would report for ``x``. [profile units]

    References
    ----------
    .. [1] Rodgers, 2000, eq. (3.10). doi:10.1142/3171
    """
    x = np.asarray(x, dtype=float)
    A = np.asarray(averaging_kernel, dtype=float)
    xa = np.asarray(apriori, dtype=float)
    if A.ndim < 2 or A.shape[-1] != A.shape[-2]:
        raise AssimilationInputError(f"averaging_kernel has shape {A.shape}, expected (..., m, m)")
    m = A.shape[-1]
    if xa.shape[-1:] != (m,):
        raise AssimilationInputError(f"apriori has shape {xa.shape}, expected (..., {m})")
    if phi is None:
        if x.shape[-1] != m:
            raise AssimilationInputError(
                f"x has {x.shape[-1]} levels, the averaging kernel {m}; pass phi to map them")
        px = x
    else:
        phi = np.asarray(phi, dtype=float)
        if phi.shape[-2:] != (m, x.shape[-1]):
            raise AssimilationInputError(
                f"phi has shape {phi.shape}, expected (..., {m}, {x.shape[-1]})")
        px = np.einsum("...ij,...j->...i", phi, x)
    return xa + np.einsum("...ij,...j->...i", A, px - xa)


def column_operator(x, kernel, apriori=None, apriori_column=None):
    """Column observation operator ``c = c_a + kᵀ(x − x_a)`` (or ``kᵀx`` without a prior).

    Parameters
    ----------
    x : array_like, (..., n)
        Layer amounts (partial columns) on the model grid. [e.g. DU or mol m⁻²]
    kernel : array_like, (..., n)
        Column averaging kernel ``k`` (ones: the total column). [1]
    apriori : array_like, (..., n), optional
        Prior layer amounts ``x_a``. [same unit as x]
    apriori_column : array_like, (...), optional
        Prior column ``c_a`` (default ``Σ x_a``). [same unit as x]

    Returns
    -------
    column : ndarray, (...)
        Simulated column. [same unit as x]

    References
    ----------
    .. [1] Eskes, Boersma, Atmos. Chem. Phys. 3, 1285-1291, 2003. doi:10.5194/acp-3-1285-2003
    """
    x = np.asarray(x, dtype=float)
    k = np.asarray(kernel, dtype=float)
    if k.shape[-1:] != x.shape[-1:]:
        raise AssimilationInputError(f"kernel has shape {k.shape}, expected (..., {x.shape[-1]})")
    if apriori is None:
        return np.sum(k * x, axis=-1)
    xa = np.asarray(apriori, dtype=float)
    ca = np.sum(xa, axis=-1) if apriori_column is None else np.asarray(apriori_column, float)
    return ca + np.sum(k * (x - xa), axis=-1)


def layer_mapping(source_edges, target_edges):
    """Mass-conserving map ``Φ`` between two layer grids by overlap fractions.

    ``Φ_ij`` is the fraction of target layer ``i`` covered by source layer ``j``, so a mixing
    ratio maps as the layer-thickness-weighted mean; with equal outer bounds the layer-amount
    weighted total (``Σ_i Δ_i (Φx)_i = Σ_j Δ_j x_j``) is conserved. Leading dimensions are
    batched (one map per profile).

    Parameters
    ----------
    source_edges : array_like, (..., n + 1)
        Source layer edges, monotonic (pressure or altitude). [Pa or m]
    target_edges : array_like, (..., m + 1)
        Target layer edges, same coordinate and direction. [Pa or m]

    Returns
    -------
    phi : ndarray, (..., m, n)
        Rows sum to 1 where the target layer lies within the source range. [1]
    """
    s = np.asarray(source_edges, dtype=float)
    t = np.asarray(target_edges, dtype=float)
    if s.ndim < 1 or t.ndim < 1 or s.shape[-1] < 2 or t.shape[-1] < 2:
        raise AssimilationInputError("source_edges and target_edges must have >= 2 edges")
    sign = np.where(s[..., -1:] > s[..., :1], 1.0, -1.0)
    s, t = sign * s, sign * t
    if np.any(np.diff(s, axis=-1) <= 0) or np.any(np.diff(t, axis=-1) <= 0):
        raise AssimilationInputError("source_edges and target_edges must be strictly monotonic, "
                                     "in the same direction")
    lo = np.maximum(t[..., :-1, None], s[..., None, :-1])
    hi = np.minimum(t[..., 1:, None], s[..., None, 1:])
    return np.clip(hi - lo, 0.0, None) / np.diff(t, axis=-1)[..., :, None]


def superob(values, cell, error_var, n_cells):
    """Superobservations: inverse-variance weighted mean of all observations in each cell.

    Parameters
    ----------
    values : array_like, (p,)
        Observed values. [observation units]
    cell : array_like of int, (p,)
        Grid-cell index of each observation, in ``[0, n_cells)``.
    error_var : array_like, (p,) or scalar
        Observation error variances (assumed uncorrelated). [observation units²]
    n_cells : int
        Number of grid cells.

    Returns
    -------
    mean : ndarray, (n_cells,)
        Weighted mean per cell, NaN where a cell has no observation. [observation units]
    variance : ndarray, (n_cells,)
        Error variance of the mean, ``1 / Σ 1/σ²``, NaN where empty. [observation units²]
    count : ndarray of int, (n_cells,)
        Number of observations per cell.
    """
    v = np.asarray(values, dtype=float).ravel()
    c = np.asarray(cell).ravel()
    r = np.broadcast_to(np.asarray(error_var, dtype=float), v.shape)
    if c.shape != v.shape or not np.issubdtype(c.dtype, np.integer):
        raise AssimilationInputError(
            f"cell must be integers of shape {v.shape}, got {c.dtype} {c.shape}")
    if c.size and (c.min() < 0 or c.max() >= n_cells):
        raise AssimilationInputError(f"cell indices must lie in [0, {n_cells}); got "
                                     f"[{c.min()}, {c.max()}]")
    if np.any(r <= 0) or not np.all(np.isfinite(v)):
        raise AssimilationInputError("error_var must be > 0 and values finite")
    w = 1.0 / r
    sw = np.bincount(c, weights=w, minlength=n_cells)
    swv = np.bincount(c, weights=w * v, minlength=n_cells)
    count = np.bincount(c, minlength=n_cells)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, swv / sw, np.nan)
        var = np.where(count > 0, 1.0 / sw, np.nan)
    return mean, var, count
