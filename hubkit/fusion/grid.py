"""The fusion grid and its a priori: the operator from the fusion grid to a retrieval's levels
and a profile covariance correlated in ln(pressure)."""

from __future__ import annotations

import numpy as np

from hubkit.errors import FusionInputError


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
        raise FusionInputError(f"fusion_pressure has shape {fp.shape}; expected (n,) with n >= 2")
    order = np.argsort(fp)
    fps = fp[order]
    if np.any(np.diff(fps) <= 0):
        raise FusionInputError("fusion_pressure has repeated levels; expected distinct pressures")
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
