"""Partial columns in Dobson units and their mass-conserving regridding.

References
----------
.. [1] Keppens et al., "Harmonisation and comparison of vertically resolved atmospheric state
   observations: methods, effects, and uncertainty budget", Atmos. Meas. Tech. 12, 4379-4391,
   2019. doi:10.5194/amt-12-4379-2019
"""

from __future__ import annotations

import numpy as np

from hubkit.ozone.atmosphere import DU_PER_VMR_PA, OzoneInputError

__all__ = ["partial_columns", "regrid_mass_conserving", "subcolumn_edges"]

#: Sub-columns of the tropospheric ozone profile (Gai et al. 2021): surface, integer km, LRT.
N_SUBCOLUMNS = 20


def partial_columns(vmr, p_interface):
    """Ozone partial columns of model layers in Dobson units.

    .. math:: c_k = \\frac{N_A}{M_{air}\\, g_0\\, \\mathrm{DU}}\\; x_k\\, |p_{k+1/2} - p_{k-1/2}|
              \\approx 7891.0\\ \\mathrm{DU\\,Pa^{-1}}\\; x_k\\, |\\Delta p_k|

    (1 ppmv over 1 hPa is 0.7891 DU), with ``M_air = 28.9644 g/mol`` and ``g0 = 9.80665 m s-2``
    (US Standard Atmosphere 1976) and ``1 DU = 2.6867811e20 molecules m-2``.

    Parameters
    ----------
    vmr : array_like, (..., n)
        Ozone volume mixing ratio of each layer (dry air). [mol mol-1]
    p_interface : array_like, (..., n + 1)
        Pressure of the layer interfaces, either order. [Pa]

    Returns
    -------
    ndarray, (..., n)
        Partial column of each layer. [DU]
    """
    x = np.asarray(vmr, dtype=float)
    ph = np.asarray(p_interface, dtype=float)
    if ph.shape[-1] != x.shape[-1] + 1:
        raise OzoneInputError(f"p_interface has {ph.shape[-1]} interfaces and vmr "
                              f"{x.shape[-1]} layers; expected interfaces = layers + 1")
    return DU_PER_VMR_PA * x * np.abs(np.diff(ph, axis=-1))


def _interp_sorted(x, xp, fp):
    """Linear interpolation of ``fp(xp)`` at ``x``, batched over the leading dims.

    ``xp`` increases along the last axis; values outside ``[xp[0], xp[-1]]`` are clamped to
    ``fp[0]``/``fp[-1]``; NaN in ``x`` gives NaN. An ``x`` equal to a node returns that node's
    ``fp`` exactly. All rows are searched in one :func:`numpy.searchsorted` call: each row is
    shifted by its own offset so that the rows, laid end to end, stay sorted.
    """
    batch = np.broadcast_shapes(x.shape[:-1], xp.shape[:-1], fp.shape[:-1])
    n, m = xp.shape[-1], x.shape[-1]
    xp = np.broadcast_to(xp, batch + (n,)).reshape(-1, n)
    fp = np.broadcast_to(fp, batch + (n,)).reshape(-1, n)
    x = np.broadcast_to(x, batch + (m,)).reshape(-1, m)
    out = np.empty(x.shape)
    for s in range(0, xp.shape[0], _ROWS):  # bounded offsets keep the shifted rows exact enough
        part = slice(s, s + _ROWS)
        out[part] = _interp_rows(x[part], xp[part], fp[part])
    return out.reshape(batch + (m,))


#: Rows searched at once by :func:`_interp_sorted`.
_ROWS = 4096


def _locate_rows(x, xp):
    """Where ``x`` (rows, m) falls among the increasing nodes ``xp`` (rows, n).

    Returns the flat index ``i0`` into ``xp.ravel()`` of the node below (clamped to the first
    and last interval), the weight ``w`` in [0, 1] of the node above, and the rows whose nodes
    are not all finite. All rows are searched in one :func:`numpy.searchsorted` call, each
    shifted by its own offset so that the rows laid end to end stay sorted.
    """
    rows, n = xp.shape
    m = x.shape[-1]
    bad = ~np.isfinite(xp).all(axis=-1)  # a NaN row must not break the sorted order
    if bad.any():
        xp = np.where(bad[:, None], np.arange(n, dtype=float), xp)
    lo, hi = xp[:, :1], xp[:, -1:]
    xc = np.clip(x, lo, hi)  # clamped: the result is the same and rows cannot overlap
    width = float(np.max(hi - lo)) if rows else 0.0
    offset = (np.arange(rows, dtype=float) * (2.0 * width + 1.0))[:, None]
    pos = np.searchsorted((xp - lo + offset).ravel(), (xc - lo + offset).ravel(),
                          side="right").reshape(rows, m)
    base = (np.arange(rows) * n)[:, None]
    i0 = np.clip(pos - base - 1, 0, n - 2) + base
    xpf = xp.ravel()
    x0, x1 = xpf[i0], xpf[i0 + 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.clip(np.where(x1 > x0, (xc - x0) / (x1 - x0), 0.0), 0.0, 1.0)
    return i0, w, bad


def _interp_rows(x, xp, fp):
    i0, w, bad = _locate_rows(x, xp)
    fpf = fp.ravel()
    out = fpf[i0] * (1.0 - w) + fpf[i0 + 1] * w
    return np.where(np.isnan(x) | bad[:, None], np.nan, out)


def regrid_mass_conserving(columns, src_edges, dst_edges):
    """Regrid partial columns to other layers, conserving the column (overlap weights).

    Each source layer's column is spread uniformly over its extent in the edge coordinate and
    each target layer receives the overlapping fractions (the partial-column regridding of
    Keppens et al. 2019 [1]_):

    .. math:: c'_j = \\sum_i c_i \\frac{|[e_i, e_{i+1}] \\cap [e'_j, e'_{j+1}]|}{|e_{i+1} - e_i|}

    evaluated as the difference of the cumulative column interpolated linearly at the target
    edges, so the cost is that of one interpolation. The column between the outer target edges
    is conserved exactly when they cover the source layers; a target layer outside the source
    range receives zero; non-negative inputs give non-negative outputs. Use pressure as the
    coordinate when the profile is a mixing ratio that is constant within each source layer:
    the column is then exactly linear in pressure within a layer.

    Parameters
    ----------
    columns : array_like, (..., n)
        Partial columns of the source layers. [any column unit, e.g. DU]
    src_edges : array_like, (..., n + 1)
        Source layer edges, monotonic (either direction). [coordinate, e.g. Pa or m]
    dst_edges : array_like, (..., m + 1)
        Target layer edges, monotonic in the same direction; NaN edges give NaN layers (for
        ragged grids padded to a common size). [same as ``src_edges``]

    Returns
    -------
    ndarray, (..., m)
        Partial columns of the target layers. [unit of ``columns``]

    References
    ----------
    .. [1] Keppens et al., Atmos. Meas. Tech. 12, 4379-4391, 2019.
       doi:10.5194/amt-12-4379-2019
    """
    c = np.asarray(columns, dtype=float)
    src = np.asarray(src_edges, dtype=float)
    dst = np.asarray(dst_edges, dtype=float)
    if src.shape[-1] != c.shape[-1] + 1:
        raise OzoneInputError(f"src_edges has {src.shape[-1]} edges and columns "
                              f"{c.shape[-1]} layers; expected edges = layers + 1")
    if dst.ndim < 1 or dst.shape[-1] < 2:
        raise OzoneInputError(f"dst_edges has shape {dst.shape}; expected (..., m + 1), m >= 1")
    sign = np.where(src[..., -1:] < src[..., :1], -1.0, 1.0)
    cum = np.concatenate([np.zeros(c.shape[:-1] + (1,)), np.cumsum(c, axis=-1)], axis=-1)
    at = _interp_sorted(sign * dst, sign * src, cum)
    return np.diff(at, axis=-1)


def subcolumn_edges(surface_altitude, tropopause_altitude, *, n=N_SUBCOLUMNS, step=1000.0):
    """Edges of the tropospheric sub-column grid ``[z_s, next integer km, …, last km, z_LRT]``.

    The grid of Gai et al. (2021): from the surface to the first whole kilometre above it, one
    layer per kilometre, and from the last whole kilometre below the tropopause to the
    tropopause. Grids with fewer than ``n`` layers are padded with NaN edges; a grid that would
    need more merges its top layers into the last one (from the ``n - 1``-th kilometre level up
    to the tropopause).

    Parameters
    ----------
    surface_altitude : array_like, (...)
        ``z_s``. [m]
    tropopause_altitude : array_like, (...)
        ``z_LRT``; NaN gives an all-NaN grid. [m]
    n : int
        Number of sub-columns (layers) of the output grid. [1]
    step : float
        Spacing of the inner edges. [m]

    Returns
    -------
    edges : ndarray, (..., n + 1)
        Layer edges, increasing; NaN after the tropopause. [m]
    merged : ndarray of bool, (...)
        True where the grid needed more than ``n`` layers and its top layers were merged.

    References
    ----------
    .. [1] Gai et al., Remote Sens. 13, 210, 2021, section 4.3.3. doi:10.3390/rs13020210
    """
    zs = np.asarray(surface_altitude, dtype=float)[..., None]
    ztp = np.asarray(tropopause_altitude, dtype=float)[..., None]
    first = (np.floor(zs / step) + 1.0) * step
    inner = first + step * np.arange(n - 1)  # (..., n - 1) candidate inner edges
    below = inner < ztp
    count = below.sum(axis=-1, keepdims=True)
    merged = (first + step * (n - 1) < ztp)[..., 0]
    pos = np.arange(n + 1)
    inner_pad = np.concatenate([inner, np.full(inner.shape[:-1] + (2,), np.nan)], axis=-1)
    edges = np.where(pos == 0, zs,
                     np.where(pos - 1 < count, np.roll(inner_pad, 1, axis=-1),
                              np.where(pos - 1 == count, ztp, np.nan)))
    return edges, merged
