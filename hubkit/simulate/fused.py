"""Fused ozone profiles of a known field: the observations of a twin experiment.

The profiles are what :func:`hubkit.fusion.fuse_product` would give of the truth, with averaging
kernels and noise that the assimilation expects (Rodgers 2000): a test of
:func:`hubkit.assimilation.assimilate` with a known answer.

References
----------
.. [1] Rodgers, "Inverse Methods for Atmospheric Sounding", World Scientific, 2000.
   doi:10.1142/3171
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from hubkit.assimilation.background import level_dim
from hubkit.assimilation.das import das_like, field_at
from hubkit.assimilation.operators import layer_mapping
from hubkit.assimilation.profiles import fusion_edges
from hubkit.assimilation.transport import check_grid

__all__ = ["fused_observations"]


def fused_observations(truth, times, pressure, *, cells_per_time=50, relative_error=0.05,
                       prior_error=0.5, seed=0):
    """Simulated fused-ozone profiles of a known field (for twin experiments).

    At each time, ``cells_per_time`` grid columns are drawn at random; the true column is mapped
    to layers around the fusion levels (mass-conserving ``Φ``) and observed by an optimal-
    estimation retrieval with a direct measurement of every level: ``A = S_a(S_a + S_ε)⁻¹``,
    ``x̂ = x_a + A(Φx + ε − x_a)``, noise covariance ``A S_ε Aᵀ`` (Rodgers 2000, eqs. 2.45,
    3.10, 3.16), so that the averaging kernels and the noise are those the assimilation expects.

    Parameters
    ----------
    truth : xarray.Dataset
        DAS-like true field with a time dim (e.g. from
        :func:`hubkit.assimilation.forecast.free_run`). [mol mol⁻¹]
    times : array_like of datetime64
        Observation times (each must be in ``truth``).
    pressure : array_like, (m,)
        Fusion levels. [Pa]
    cells_per_time : int
        Profiles per time.
    relative_error : float
        Measurement noise standard deviation relative to the prior profile. [1]
    prior_error : float
        Prior standard deviation relative to the prior profile (correlation length 0.8 in
        ln p). [1]
    seed : int
        Random seed.

    Returns
    -------
    xarray.Dataset
        ``fused-ozone`` layout: ``o3_vmr``, ``averaging_kernel``, ``noise_covariance``,
        ``total_covariance``, ``o3_vmr_apriori``, ``pressure``, ``latitude``, ``longitude``,
        ``time``, plus ``o3_vmr_true`` (``Φx``). [mol mol⁻¹, 1, mol² mol⁻²]
    """
    tr = das_like(truth, "truth")
    lat, lon, _ = check_grid(tr, "truth")
    lev = level_dim(tr["o3_vmr"])
    p = np.sort(np.asarray(pressure, dtype=float))[::-1]
    m = p.size
    a = np.asarray(tr["hybrid_a"].values, dtype=float)
    b = np.asarray(tr["hybrid_b"].values, dtype=float)
    rng = np.random.default_rng(seed)
    G = lat.size * lon.size
    xs, cells, tt = [], [], []
    for tk in np.asarray(times, dtype="datetime64[ns]"):
        x = np.asarray(tr["o3_vmr"].sel(time=tk).transpose(lev, "latitude", "longitude").values,
                       dtype=float).reshape(-1, G)
        ps = np.asarray(field_at(tr, "surface_pressure", tk).transpose("latitude", "longitude")
                        .values, dtype=float).ravel()
        c = rng.choice(G, size=min(int(cells_per_time), G), replace=False)
        ph = a[None, :] + b[None, :] * ps[c, None]
        top_first = ph[0, 0] < ph[0, -1]
        col = x[:, c].T
        if top_first:
            ph, col = ph[:, ::-1], col[:, ::-1]
        phi = layer_mapping(ph, fusion_edges(p, ps[c]))
        xs.append(np.einsum("pml,pl->pm", phi, col))
        cells.append(c)
        tt.append(np.full(c.size, tk))
    xtrue = np.concatenate(xs)
    cell = np.concatenate(cells)
    P = xtrue.shape[0]
    xa = xtrue.mean(axis=0)
    lnp = np.log(p)
    Sa = (prior_error * xa)[:, None] * (prior_error * xa)[None] \
        * np.exp(-np.abs(lnp[:, None] - lnp[None]) / 0.8)
    se = (relative_error * xa) ** 2
    A = Sa @ np.linalg.inv(Sa + np.diag(se))
    Sn = A @ np.diag(se) @ A.T
    Ss = (A - np.eye(m)) @ Sa @ (A - np.eye(m)).T
    eps = rng.normal(size=(P, m)) * np.sqrt(se)
    y = xa + (xtrue + eps - xa) @ A.T
    CL, CLL = ("cell", "level"), ("cell", "level", "level_in")
    rep = (P, m, m)
    iy, ix = np.divmod(cell, lon.size)
    return xr.Dataset(
        {"o3_vmr": (CL, y, {"units": "mol mol-1"}),
         "o3_vmr_true": (CL, xtrue, {"units": "mol mol-1"}),
         "averaging_kernel": (CLL, np.broadcast_to(A, rep).copy(), {"units": "1"}),
         "noise_covariance": (CLL, np.broadcast_to(Sn, rep).copy(), {"units": "mol2 mol-2"}),
         "total_covariance": (CLL, np.broadcast_to(Sn + Ss, rep).copy(),
                              {"units": "mol2 mol-2"}),
         "o3_vmr_apriori": ("level", xa, {"units": "mol mol-1"}),
         "pressure": ("level", p, {"units": "Pa"}),
         "latitude": ("cell", lat[iy], {"units": "degrees_north"}),
         "longitude": ("cell", lon[ix], {"units": "degrees_east"}),
         "time": ("cell", np.concatenate(tt))},
        attrs={"hubkit_product_type": "fused-ozone", "hubkit_species": "o3",
               "source": "hubkit.simulate.fused_observations (simulated)",
               "hubkit_simulated": "true"})
