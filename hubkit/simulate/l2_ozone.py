"""Simulated level-2 ozone profile retrievals of several instruments (the fusion's input)."""

from __future__ import annotations

import json

import numpy as np
import xarray as xr

from hubkit import schemas
from hubkit.assimilation.background import ozone_climatology
from hubkit.errors import SimulationInputError
from hubkit.simulate.nature import NatureRun

__all__ = ["O3_INSTRUMENTS", "l2_ozone"]

#: Simulated instruments: platform, band, top of the retrieval grid [Pa], weighting-function
#: centres [Pa] and width in ln(pressure), target degrees of freedom, the a priori's bias
#: against the climatology, the relative a priori standard deviation.
O3_INSTRUMENTS = {
    "S4-UV": {"platform": "GEO", "band": "UV", "top": 100.0, "dfs": 4.5, "width": 0.55,
              "centres": np.geomspace(40000.0, 150.0, 10), "bias": 1.05, "sd": 0.3},
    "S5-UV": {"platform": "LEO", "band": "UV", "top": 50.0, "dfs": 5.5, "width": 0.5,
              "centres": np.geomspace(50000.0, 80.0, 12), "bias": 1.0, "sd": 0.3},
    "S5-TIR": {"platform": "LEO", "band": "TIR", "top": 500.0, "dfs": 2.5, "width": 0.9,
               "centres": np.geomspace(80000.0, 2000.0, 6), "bias": 0.95, "sd": 0.3},
    "S4-VIS": {"platform": "GEO", "band": "VIS", "top": 100.0, "dfs": 1.1, "width": 1.8,
               "centres": np.array([2500.0, 12000.0]), "bias": 1.0, "sd": 0.3},
}
#: Surface and top of the common retrieval grid. [Pa]
O3_SURFACE_PRESSURE = 101325.0
O3_TOP_PRESSURE = 50.0


def _o3_grid(name: str, n_levels: int, common: bool) -> np.ndarray:
    top = O3_TOP_PRESSURE if common else O3_INSTRUMENTS[name]["top"]
    return np.geomspace(O3_SURFACE_PRESSURE, top, n_levels)


def _o3_templates(name: str, pressure: np.ndarray, gains) -> dict:
    """Optimal-estimation retrieval matrices in relative units (state x / x_a) for a few signal
    levels: averaging kernel, noise covariance, a priori covariance and gain matrix."""
    from hubkit.fusion import profile_covariance  # the same a priori model the fusion uses

    spec = O3_INSTRUMENTS[name]
    lnp = np.log(pressure)
    dlnp = np.gradient(-lnp)
    wf = np.exp(-0.5 * ((lnp[None, :] - np.log(spec["centres"])[:, None]) / spec["width"]) ** 2)
    wf = wf * dlnp[None, :]
    sa = profile_covariance(np.ones_like(pressure), pressure, relative=spec["sd"])
    sa_inv = np.linalg.inv(sa)

    def retrieval(gain):
        k = gain * wf
        hess = k.T @ k + sa_inv
        g = np.linalg.solve(hess, k.T)  # (K^T K + S_a^-1)^-1 K^T, with S_y = I
        return g @ k, g

    def dfs(gain):
        return float(np.trace(retrieval(gain)[0]))

    lo, hi = 1e-3, 1e6  # gain giving the target degrees of freedom, by bisection in log
    for _ in range(80):
        mid = np.sqrt(lo * hi)
        lo, hi = (mid, hi) if dfs(mid) < spec["dfs"] else (lo, mid)
    out = {"A": [], "Sn": [], "G": []}
    for factor in gains:
        a, g = retrieval(np.sqrt(lo * hi) * factor)
        out["A"].append(a)
        out["G"].append(g)
        out["Sn"].append(g @ g.T)
    return {k: np.array(v) for k, v in out.items()} | {"Sa": sa}


def _o3_sampling(rng, layout, bbox, start, hours, spacing, clear_fraction, n_cells, per_cell,
                 names):
    """Where and when each instrument retrieves: (instrument index, lat, lon, time [h])."""
    west, south, east, north = bbox
    if layout == "cells":  # n_cells 1 deg x 1 deg x 1 h boxes, per_cell retrievals in each
        nlat, nlon = int(north - south), int(east - west)
        k = np.arange(n_cells)
        lat0 = south + (k % nlat)
        lon0 = west + (k // nlat) % nlon
        hour0 = k // (nlat * nlon)
        cols = [np.repeat(a, per_cell) for a in (lat0, lon0, hour0)]
        size = n_cells * per_cell
        inst = np.tile(np.arange(per_cell) % len(names), n_cells)
        return (inst, cols[0] + rng.uniform(0.05, 0.95, size),
                cols[1] + rng.uniform(0.05, 0.95, size), cols[2] + rng.uniform(0.05, 0.95, size))
    if layout != "swath":
        raise SimulationInputError(f"layout={layout!r}: expected 'swath' or 'cells'")
    lat_c = np.arange(south + spacing / 2, north, spacing)
    lon_c = np.arange(west + spacing / 2, east, spacing)
    glat, glon = np.meshgrid(lat_c, lon_c, indexing="ij")
    rows = []
    for i, name in enumerate(names):
        geo = O3_INSTRUMENTS[name]["platform"] == "GEO"
        times = np.arange(hours) + 0.5 if geo else np.array([hours / 2.0])
        for t in times:
            # clear sky where a smooth random cloud field is low
            cloud = sum(np.cos(np.deg2rad(glat * rng.uniform(5, 30) + glon * rng.uniform(5, 30))
                               + rng.uniform(0, 2 * np.pi)) for _ in range(4))
            clear = cloud < np.quantile(cloud, clear_fraction)
            size = int(clear.sum())
            rows.append((np.full(size, i), glat[clear] + rng.uniform(-0.4, 0.4, size) * spacing,
                         glon[clear] + rng.uniform(-0.4, 0.4, size) * spacing,
                         np.full(size, t) + rng.uniform(-0.2, 0.2, size)))
    return tuple(np.concatenate(c) for c in zip(*rows, strict=True))


def l2_ozone(
    *,
    instruments=("S4-UV", "S5-UV", "S5-TIR", "S4-VIS"),
    bbox=(0.0, 40.0, 10.0, 50.0),
    start: str = "2024-07-01T09:00:00",
    hours: int = 3,
    spacing: float = 0.5,
    clear_fraction: float = 0.6,
    n_levels: int = 40,
    grid: str = "instrument",
    layout: str = "swath",
    n_cells: int = 100,
    per_cell: int = 3,
    seed: int = 0,
    truth=None,
) -> xr.Dataset:
    """Synthetic L2 ozone profile retrievals of several instruments over one region.

    The true ozone of a nature run (:class:`hubkit.simulate.NatureRun`: a climatology with its
    own systematic error, random perturbations with full-rank vertical correlation, an
    elevated tropospheric layer, all moving with the flow) is seen by
    Sentinel-4/5-like instruments: UV (GEO and LEO, 4.5-5.5 degrees of freedom), TIR (LEO, 2.5)
    and VIS (GEO, 1). Each retrieval is a linear optimal estimation (Rodgers 2000, eq. 2.45) with
    Gaussian weighting functions in ln(pressure), unit channel noise, its instrument's own a
    priori (the climatology times an instrument bias) and a priori covariance; the channel count
    is below the level count, so the noise covariances are singular, as in real products. The
    signal level (and so the averaging kernel) varies from retrieval to retrieval. GEO
    instruments retrieve every hour, LEO ones at one overpass, where a smooth cloud field is
    clear.

    Parameters
    ----------
    instruments : sequence of str
        Names from :data:`O3_INSTRUMENTS`.
    bbox : tuple of float
        Region ``(west, south, east, north)``. [°]
    start : str
        Start of the period (ISO 8601, UTC).
    hours : int
        Length of the period. [h]
    spacing : float
        Ground-pixel spacing of the sampling lattice. [°]
    clear_fraction : float
        Share of clear pixels. [1]
    n_levels : int
        Levels of every retrieval grid. [1]
    grid : {"instrument", "common"}
        Each instrument on its own pressure grid (its own top), or all on one grid.
    layout : {"swath", "cells"}
        ``"cells"`` (for benchmarks) puts exactly ``per_cell`` retrievals of successive
        instruments in each of ``n_cells`` 1° × 1° × 1 h boxes filling ``bbox`` hour by hour.
    n_cells, per_cell : int
        Used by ``layout="cells"``. [1]
    seed : int
        Seed of the random generator: the same arguments give the same retrievals.
    truth : hubkit.simulate.NatureRun, optional
        The truth sampled (default: ``NatureRun()``); recorded in the attribute
        ``hubkit_nature_run`` (JSON), so that every product made from these retrievals can be
        compared with the truth it came from.

    Returns
    -------
    xarray.Dataset
        A canonical ``l2-ozone`` dataset (see ``docs/nomenclature.md``); the true profile on each
        retrieval's grid is kept as ``o3_vmr_true`` for validation.
    """
    if grid not in ("instrument", "common"):
        raise SimulationInputError(f"grid={grid!r}: expected 'instrument' or 'common'")
    names = list(instruments)
    unknown = [n for n in names if n not in O3_INSTRUMENTS]
    if unknown:
        raise SimulationInputError(f"unknown instrument(s) {unknown}; expected some of "
                                   f"{sorted(O3_INSTRUMENTS)}")
    truth = NatureRun() if truth is None else truth
    t0 = np.datetime64(start, "ns")
    rng = np.random.default_rng(seed)
    inst, lat, lon, hour = _o3_sampling(rng, layout, bbox, start, hours, spacing,
                                        clear_fraction, n_cells, per_cell, names)
    size, m = inst.size, n_levels
    gains = np.linspace(0.75, 1.25, 6)
    pressure = np.empty((size, m))
    A = np.empty((size, m, m))
    Sn = np.empty((size, m, m))
    Sa = np.empty((size, m, m))
    xa = np.empty((size, m))
    x = np.empty((size, m))
    x_true = np.empty((size, m))
    for i, name in enumerate(names):
        sel = np.flatnonzero(inst == i)
        if sel.size == 0:
            continue
        p = _o3_grid(name, m, grid == "common")
        tpl = _o3_templates(name, p, gains)
        pick = rng.integers(0, gains.size, sel.size)
        t_sel = t0 + (hour[sel] * 3600e9).astype("timedelta64[ns]")
        true_i = truth.ozone(lat[sel], lon[sel], t_sel, p)
        clim = ozone_climatology(np.round(lat[sel] / 10.0) * 10.0, t_sel, p)
        prior = clim * O3_INSTRUMENTS[name]["bias"]
        scale = prior[:, :, None] * prior[:, None, :]
        a_rel = tpl["A"][pick]
        g_rel = tpl["G"][pick]
        eps = rng.normal(size=(sel.size, g_rel.shape[-1]))
        rel = np.einsum("rkl,rl->rk", a_rel, true_i / prior - 1.0) + np.einsum(
            "rkc,rc->rk", g_rel, eps)
        pressure[sel] = p
        A[sel] = a_rel * (prior[:, :, None] / prior[:, None, :])
        Sn[sel] = tpl["Sn"][pick] * scale
        Sa[sel] = tpl["Sa"] * scale
        xa[sel] = prior
        x[sel] = prior * (1.0 + rel)
        x_true[sel] = true_i
    time = t0 + (hour * 3600e9).astype("timedelta64[ns]")
    order = np.lexsort((lon, lat, time))
    rl, rll = ("retrieval", "level"), ("retrieval", "level", "level_in")
    ds = xr.Dataset(
        {
            "o3_vmr": (rl, x[order], {"units": "mol mol-1"}),
            "o3_vmr_apriori": (rl, xa[order], {"units": "mol mol-1"}),
            "o3_vmr_true": (rl, x_true[order], {"units": "mol mol-1",
                                              "long_name": "simulated true ozone"}),
            "averaging_kernel": (rll, A[order], {"units": "1"}),
            "noise_covariance": (rll, Sn[order], {"units": "mol2 mol-2"}),
            "apriori_covariance": (rll, Sa[order], {"units": "mol2 mol-2"}),
            "pressure": (rl, pressure[order], {"units": "Pa"}),
            "surface_pressure": ("retrieval", np.full(size, O3_SURFACE_PRESSURE),
                                 {"units": "Pa"}),
            "instrument": ("retrieval", np.array(names, dtype=object)[inst[order]]),
        },
        coords={
            "latitude": ("retrieval", lat[order], {"units": "degrees_north"}),
            "longitude": ("retrieval", lon[order], {"units": "degrees_east"}),
            "time": ("retrieval", time[order]),
        },
        attrs={
            "hubkit_product_type": schemas.L2_OZONE.product_type,
            "hubkit_species": "o3",
            "instrument": ", ".join(sorted(set(names))),
            "title": "simulated L2 ozone profile retrievals",
            "source": "hubkit.simulate.l2_ozone",
            "hubkit_simulated": "true",
            "hubkit_nature_run": json.dumps(truth.describe()),
        },
    )
    return ds

