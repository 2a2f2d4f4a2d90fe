"""Averaging-kernel-correct comparison of column and profile retrievals with a reference.

A retrieval sees the true state ``x`` through its averaging kernel and a priori: for a column
with pressure weights ``h`` and column averaging kernel ``a`` (the OCO-2, GOSAT and TCCON product
conventions; Connor et al. 2008, JGR 113, D05305),

    ĉ = h·xa + Σ_j h_j a_j (x_j − xa_j),

and for a profile with averaging-kernel matrix ``A`` (Rodgers 2000),

    x̂ = xa + A (x − xa).

Comparing ĉ with a reference profile's plain column ``h·x_ref`` leaves the *smoothing error*
``Σ h_j (a_j − 1)(x_j − xa_j)`` in the difference. Rodgers & Connor (2003) remove it by comparing
with the reference *as the retrieval would see it* (:func:`smooth_column`,
:func:`smooth_profile`) and, for two retrievals with different priors, by first moving one to
the other's prior (:func:`adjust_column_prior`, :func:`adjust_profile_prior`).

All functions broadcast over leading dimensions; the level dimension is the last one.

References
----------
Rodgers, C. D., and Connor, B. J. (2003): Intercomparison of remote sounding instruments,
J. Geophys. Res., 108(D3), 4116, doi:10.1029/2002JD002299.
Connor, B. J., Boesch, H., Toon, G., Sen, B., Miller, C., and Crisp, D. (2008): Orbiting Carbon
Observatory: Inverse method and prospective error analysis, J. Geophys. Res., 113, D05305.
Wunch, D., et al. (2011): The Total Carbon Column Observing Network, Phil. Trans. R. Soc. A,
369, 2087–2112.
"""

from __future__ import annotations

import numpy as np

from hubkit.errors import ComparisonInputError

__all__ = ["adjust_column_prior", "adjust_profile_prior", "column", "interp_profile",
           "pressure_weights", "smooth_column", "smooth_profile", "smoothing_error"]


def _arrays(*xs):
    return [np.asarray(x, dtype=float) for x in xs]


def pressure_weights(pressure_edges) -> np.ndarray:
    """Pressure weights of layers between pressure edges, for a dry-air column average: each
    layer's share of the column's pressure thickness (Connor et al. 2008, neglecting the
    water-vapour term).

    Parameters
    ----------
    pressure_edges : array_like, (..., n + 1)
        Layer edges, either order. [Pa]

    Returns
    -------
    ndarray, (..., n)
        Weights summing to 1 along the last axis. [1]
    """
    (pe,) = _arrays(pressure_edges)
    dp = np.abs(np.diff(pe, axis=-1))
    return dp / dp.sum(axis=-1, keepdims=True)


def column(profile, weights) -> np.ndarray:
    """The column average ``h·x`` of a profile (mole fractions in, the same unit out)."""
    x, h = _arrays(profile, weights)
    return np.sum(h * x, axis=-1)


def smooth_column(reference, prior, averaging_kernel, weights) -> np.ndarray:
    """The column a retrieval with column averaging kernel ``a``, a priori ``xa`` and pressure
    weights ``h`` would report for the reference profile (Rodgers & Connor 2003):
    ``h·xa + Σ h_j a_j (x_ref,j − xa_j)``.

    Parameters
    ----------
    reference, prior : array_like, (..., n)
        Profiles on the retrieval's levels. [mole fraction, any one unit]
    averaging_kernel : array_like, (..., n)
        Column averaging kernel, normalised (1 = fully sensitive). [1]
    weights : array_like, (..., n)
        Pressure weights, summing to 1. [1]
    """
    x, xa, a, h = _arrays(reference, prior, averaging_kernel, weights)
    return np.sum(h * xa, axis=-1) + np.sum(h * a * (x - xa), axis=-1)


def smoothing_error(truth, prior, averaging_kernel, weights) -> np.ndarray:
    """What smoothing adds to a column retrieval: ``ĉ − h·x = Σ h_j (a_j − 1)(x_j − xa_j)``
    (Rodgers & Connor 2003). Zero where the kernel is 1 or the prior is the truth."""
    x, xa, a, h = _arrays(truth, prior, averaging_kernel, weights)
    return np.sum(h * (a - 1.0) * (x - xa), axis=-1)


def adjust_column_prior(retrieved, prior, new_prior, averaging_kernel, weights) -> np.ndarray:
    """A column retrieval moved to another a priori profile (Rodgers & Connor 2003, for a
    column): ``ĉ' = ĉ + Σ h_j (1 − a_j)(xa'_j − xa_j)``, what the retrieval would have reported
    with ``new_prior`` (exact for a linear retrieval)."""
    c, xa, xb, a, h = _arrays(retrieved, prior, new_prior, averaging_kernel, weights)
    return c + np.sum(h * (1.0 - a) * (xb - xa), axis=-1)


def smooth_profile(reference, prior, averaging_kernel) -> np.ndarray:
    """The profile a retrieval with averaging-kernel matrix ``A`` and a priori ``xa`` would
    report for the reference: ``xa + A (x_ref − xa)`` (Rodgers & Connor 2003).

    Parameters
    ----------
    reference, prior : array_like, (..., n)
        The reference profile ``x_ref`` (on the retrieval's levels, e.g. by
        :func:`interp_profile`) and the retrieval's a priori ``xa``. [one unit, any]
    averaging_kernel : array_like, (..., n, n)
        ``A[i, j] = ∂x̂_i / ∂x_j``. [1]
    """
    x, xa, A = _arrays(reference, prior, averaging_kernel)
    return xa + np.einsum("...ij,...j->...i", A, x - xa)


def adjust_profile_prior(retrieved, prior, new_prior, averaging_kernel) -> np.ndarray:
    """A profile retrieval moved to another a priori (Rodgers & Connor 2003):
    ``x̂' = x̂ + (I − A)(xa' − xa)``."""
    xh, xa, xb, A = _arrays(retrieved, prior, new_prior, averaging_kernel)
    d = xb - xa
    return xh + d - np.einsum("...ij,...j->...i", A, d)


def interp_profile(values, pressure, new_pressure) -> np.ndarray:
    """Profiles interpolated linearly in ln(pressure) to other pressures, row by row, held
    constant beyond their ends (a reference profile onto a retrieval's levels).

    Parameters
    ----------
    values, pressure : array_like, (..., n)
        The profiles and their pressures, in either order along the last axis. [Pa]
    new_pressure : array_like, (..., k)
        Target pressures. [Pa]
    """
    v, p, q = _arrays(values, pressure, new_pressure)
    shape = np.broadcast_shapes(v.shape[:-1], p.shape[:-1], q.shape[:-1])
    v = np.broadcast_to(v, shape + v.shape[-1:]).reshape(-1, v.shape[-1])
    p = np.broadcast_to(p, shape + p.shape[-1:]).reshape(-1, p.shape[-1])
    q = np.broadcast_to(q, shape + q.shape[-1:]).reshape(-1, q.shape[-1])
    if p.shape[-1] != v.shape[-1]:
        raise ComparisonInputError(f"values have {v.shape[-1]} levels, pressure {p.shape[-1]}")
    if np.any(p <= 0) or np.any(q <= 0):
        raise ComparisonInputError("pressures must be positive [Pa]")
    order = np.argsort(p, axis=-1)  # increasing pressure
    lp = np.log(np.take_along_axis(p, order, -1))
    vs = np.take_along_axis(v, order, -1)
    lq = np.log(q)
    n = lp.shape[-1]
    # index of the upper bracketing level: how many source levels lie below each target
    k = np.clip((lp[:, None, :] <= lq[:, :, None]).sum(-1), 1, n - 1)
    rows = np.arange(lp.shape[0])[:, None]
    x0, x1 = lp[rows, k - 1], lp[rows, k]
    y0, y1 = vs[rows, k - 1], vs[rows, k]
    w = np.clip((lq - x0) / (x1 - x0), 0.0, 1.0)
    return (y0 + w * (y1 - y0)).reshape(shape + (q.shape[-1],))
