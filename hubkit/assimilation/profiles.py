"""Fused ozone profiles as observations of the DAS model: the layer map between a column's
hybrid layers and the fusion levels, superobservations per model column, whitening and the
truncation to informative components.

A fused profile ``x̂`` with averaging kernel ``A``, prior ``x_a`` and error covariance ``R`` is
simulated from the model column ``x`` by ``H(x) = x_a + A(Φx − x_a)`` (Rodgers 2000, eq. 3.10),
``Φ`` the mass-conserving layer map (:func:`hubkit.assimilation.operators.layer_mapping`).

References
----------
.. [1] Rodgers, "Inverse Methods for Atmospheric Sounding", World Scientific, 2000.
   doi:10.1142/3171
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hubkit.assimilation.background import relative_spread
from hubkit.assimilation.operators import layer_mapping, retrieval_operator
from hubkit.errors import AssimilationInputError

__all__ = ["ProfileObservations", "fusion_edges", "informative_rows", "profile_observations",
           "superob_profiles"]


def fusion_edges(pressure: np.ndarray, ps: np.ndarray) -> np.ndarray:
    """Layer edges (P, m + 1) around the fusion levels: log-midpoints, at the bottom the
    column's surface pressure or the lowest fusion level, whichever is larger, and the top
    level's half-layer above it."""
    p = np.sort(pressure)[::-1]
    mid = np.sqrt(p[1:] * p[:-1])
    top = p[-1] ** 2 / mid[-1] if p.size > 1 else 0.5 * p[-1]
    e = np.broadcast_to(np.concatenate([[p[0]], mid, [top]]), (ps.size, p.size + 1)).copy()
    e[:, 0] = np.maximum(np.maximum(ps, p[0]), mid[0] * 1.0001 if p.size > 1 else p[0])
    return e


@dataclass
class ProfileObservations:
    """Profiles of one analysis time as independent unit-variance observations.

    ``linv`` holds, per profile, the rows ``T`` that whiten its error and keep its informative
    components (:func:`informative_rows`), zero-padded to ``k`` rows; ``valid`` marks the
    rows kept."""

    y: np.ndarray  # transformed observations T x̂ (P, k), 0 where not valid
    linv: np.ndarray  # T (P, k, m)
    valid: np.ndarray  # (P, k)
    A: np.ndarray  # (P, m, m)
    xa: np.ndarray  # (m,)
    phi: np.ndarray  # (P, m, L) in the model's level order
    cell: np.ndarray  # flat grid index (P,)
    lat: np.ndarray
    lon: np.ndarray

    @property
    def owner(self) -> np.ndarray:
        """Profile of each kept value (n,)."""
        P, k = self.valid.shape
        return np.repeat(np.arange(P), k)[self.valid.ravel()]

    @property
    def values(self) -> np.ndarray:
        """The kept observed values (n,)."""
        return self.y.ravel()[self.valid.ravel()]

    def h_full(self, x: np.ndarray) -> np.ndarray:
        """``T H(x)`` of states ``x`` (..., L, G) → (..., P, k), 0 in the padding."""
        col = np.moveaxis(x[..., :, self.cell], -1, -2)  # (..., P, L)
        hx = retrieval_operator(col, self.A, self.xa, self.phi)
        return np.einsum("pkm,...pm->...pk", self.linv, hx)

    def h(self, x: np.ndarray) -> np.ndarray:
        """``T H(x)`` of states ``x`` (..., L, G) at the kept values → (..., n)."""
        full = self.h_full(x)
        return full.reshape(full.shape[:-2] + (-1,))[..., self.valid.ravel()]

    def column_operators(self) -> np.ndarray:
        """``T A Φ`` of each profile (P, k, L): the linear part of :meth:`h_full` on its
        column."""
        return np.einsum("pkm,pmj,pjl->pkl", self.linv, self.A, self.phi)

    def matrix(self, n_levels: int, n_cells: int) -> np.ndarray:
        """The linear operator of :meth:`h` without its offset, (n, L·G)."""
        P, k, _ = self.linv.shape
        K = self.column_operators()  # (P, k, L)
        H = np.zeros((P, k, n_levels, n_cells))
        H[np.arange(P), :, :, self.cell] = K
        return H.reshape(P * k, n_levels * n_cells)[self.valid.ravel()]


def informative_rows(linv, A, scale, threshold):
    """Rows that whiten a profile's error and keep its informative components.

    With ``L⁻¹`` the whitening of the error covariance and ``S = diag(scale)`` the expected
    size of the state's departures on the profile's levels, the singular vectors ``U`` of
    ``L⁻¹ A S`` order the whitened components by signal-to-noise ``s``; the components with
    ``s > threshold`` carry the information (their degrees of freedom ``s²/(1+s²)``), the
    others only noise (or none: the null space of a retrieval, where a fused covariance can
    still report variance). ``T = U_kᵀ L⁻¹`` keeps the first ones, with unit, uncorrelated
    errors (Joiner & da Silva 1998; Migliorini 2012). (P, m, m) inputs → rows (P, k, m) and
    the kept mask (P, k).

    References
    ----------
    .. [1] Joiner, da Silva, Q. J. R. Meteorol. Soc. 124, 1669-1694, 1998.
       doi:10.1002/qj.49712454915
    .. [2] Migliorini, Mon. Weather Rev. 140, 258-265, 2012. doi:10.1175/MWR-D-10-05047.1
    """
    U, sv, _ = np.linalg.svd(linv @ A * scale[..., None, :])
    keep = sv > threshold  # singular values descend: a prefix
    k = max(int(keep.sum(axis=1).max()), 1)
    rows = np.einsum("pmk,pmj->pkj", U[:, :, :k], linv)
    keep = keep[:, :k]
    return rows * keep[..., None], keep


def superob_profiles(y, averaging_kernel, covariance, cell):
    """Superobservations of retrieved profiles that share one prior and one model column.

    Profiles ``x̂_i = x_a + A_i(Φx − x_a) + ε_i`` of the same model column (the same ``Φx``)
    and the same prior average exactly to ``x̄ = x_a + Ā(Φx − x_a) + ε̄`` with
    ``Ā = mean(A_i)`` and ``cov(ε̄) = Σ R_i / n²`` for independent errors — one profile per
    model column instead of n, with the same information about that column (the practice of
    retrieval assimilation in TM5, e.g. Boersma et al. 2016).

    Parameters
    ----------
    y : ndarray, (P, m)
        Profiles. [mol mol⁻¹]
    averaging_kernel, covariance : ndarray, (P, m, m)
        Kernels [1] and error covariances [mol² mol⁻²].
    cell : ndarray of int, (P,)
        Model column of each profile.

    Returns
    -------
    y, averaging_kernel, covariance, cell, count, index
        Per model column: the means, the covariance of the mean, the column, the number of
        profiles averaged (n), and for each input profile the index of its superob.

    References
    ----------
    .. [1] Boersma et al., Geosci. Model Dev. 9, 875-898, 2016. doi:10.5194/gmd-9-875-2016
    """
    groups, index = np.unique(np.asarray(cell), return_inverse=True)
    index = index.ravel()
    n = np.bincount(index, minlength=groups.size).astype(float)

    def total(a):
        out = np.zeros((groups.size,) + a.shape[1:])
        np.add.at(out, index, a)
        return out

    return (total(y) / n[:, None], total(averaging_kernel) / n[:, None, None],
            total(covariance) / (n**2)[:, None, None], groups, n.astype(int), index)


def profile_observations(fused, sel, ps_flat, a, b, lat, lon, opts) -> ProfileObservations:
    """The fused profiles ``sel`` of ``fused`` as :class:`ProfileObservations` of the model
    columns they fall in (superobbed with ``opts.superob``), with ``opts`` a
    :class:`hubkit.assimilation.CycleOptions`."""
    f = fused.isel(cell=sel)
    p = np.asarray(fused["pressure"].values, dtype=float)
    order = np.argsort(p)[::-1]  # bottom first
    y = np.asarray(f["o3_vmr"].values, dtype=float)[:, order]
    A = np.asarray(f["averaging_kernel"].values, dtype=float)[:, order][:, :, order]
    R = np.asarray(f[f"{opts.covariance}_covariance"].values, dtype=float)[:, order][:, :, order]
    xa = np.asarray(fused["o3_vmr_apriori"].values, dtype=float)[order]
    olat = np.asarray(f["latitude"].values, dtype=float)
    olon = np.asarray(f["longitude"].values, dtype=float)
    iy = np.clip(np.searchsorted(np.linspace(-90, 90, lat.size + 1), olat) - 1, 0, lat.size - 1)
    ix = np.floor(((olon - (lon[0] - 180.0 / lon.size)) % 360.0) / (360.0 / lon.size))
    cell = iy * lon.size + np.minimum(ix.astype(int), lon.size - 1)
    if opts.superob:
        y, A, R, cell, _, _ = superob_profiles(y, A, R, cell)
        iy, ix = np.divmod(cell, lon.size)
        olat, olon = lat[iy], lon[ix]
    R = 0.5 * (R + np.swapaxes(R, -1, -2))
    R = R + 1e-9 * np.trace(R, axis1=-2, axis2=-1)[:, None, None] * np.eye(p.size)
    try:
        L = np.linalg.cholesky(R)
    except np.linalg.LinAlgError:
        raise AssimilationInputError(f"fused {opts.covariance}_covariance is not positive "
                                     "definite in some cells") from None
    linv = np.linalg.inv(L)
    scale = relative_spread(np.log(p[order]), opts.spread, opts.spread_stratosphere) \
        * np.abs(xa)
    rows, keep = informative_rows(linv, A, np.broadcast_to(scale, (A.shape[0], p.size)),
                                   opts.signal_threshold)
    ps = ps_flat[cell]
    ph = a[None, :] + b[None, :] * ps[:, None]  # interfaces, model order
    bottom_first = ph[0, 0] > ph[0, -1]
    src = ph if bottom_first else ph[:, ::-1]
    tgt = fusion_edges(p, ps)
    # fusion layers below the model's surface (a mountain column) see its lowest layer
    src = src.copy()
    src[:, 0] = np.maximum(src[:, 0], tgt[:, 0])
    phi = layer_mapping(src, tgt)  # (P, m, L) bottom first
    if not bottom_first:
        phi = phi[:, :, ::-1]
    yw = np.einsum("pkm,pm->pk", rows, y)
    return ProfileObservations(yw, rows, keep, A, xa, phi, cell, olat, olon)
