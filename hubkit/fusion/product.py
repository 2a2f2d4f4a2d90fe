"""Fused products: an ``l2-ozone`` dataset fused cell by cell into a ``fused-ozone`` dataset
(:func:`fuse_product`), fused products moved to one a priori (:func:`adjust_prior`) and joined
(:func:`concat_fused`)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from hubkit.errors import FusionInputError
from hubkit.fusion.cells import fuse_arrays, fuse_cells, group_cells
from hubkit.fusion.grid import grid_operator, profile_covariance
from hubkit.fusion.kernel import CdfOptions
from hubkit.fusion.linalg import matvec


def unique_rows(box: np.ndarray):
    """``np.unique(box, axis=0, return_inverse=True, return_counts=True)`` of integer rows, with
    the inverse flattened: the rows encoded as one integer in the same (lexicographic) order,
    ~8x faster than unique over rows; over rows when that integer would not fit in int64."""
    if box.shape[0]:
        lo = box.min(axis=0)
        dims = tuple(int(d) for d in box.max(axis=0) - lo + 1)
        try:
            key = np.ravel_multi_index(tuple((box - lo).T), dims)
        except ValueError:  # the box indices span more than int64 can number
            pass
        else:
            u, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
            return np.stack(np.unravel_index(u, dims), axis=-1) + lo, inverse.ravel(), counts
    keys, inverse, counts = np.unique(box, axis=0, return_inverse=True, return_counts=True)
    return keys, inverse.ravel(), counts


def fuse_product(l2: xr.Dataset, cell=(1.0, 1.0, 3600.0), *, pressure=None, prior=None,
                 options: CdfOptions | None = None, chunk_cells: int = 2000,
                 num_workers: int | None = None) -> xr.Dataset:
    """Group an ``l2-ozone`` dataset into space-time cells and fuse each cell (CDF, [1]_).

    Parameters
    ----------
    l2 : xarray.Dataset
        A canonical ``l2-ozone`` dataset (``store.open(item)`` gives a lazy one; only latitude,
        longitude, time and pressure are read to group the retrievals, the rest stays lazy).
    cell : tuple of float
        Box size ``(Δlatitude [°], Δlongitude [°], Δtime [s])``; default 1° × 1° × 1 h.
    pressure : array_like, (n,), optional
        Fusion grid. [Pa] Default: the grid of the retrievals when they all share one (no
        interpolation), else the grid of the first retrieval.
    prior : tuple (mean (n,), covariance (n, n)), optional
        Fusion a priori. [mol mol-1, mol2 mol-2] Default: the mean of the retrievals' a priori
        profiles on the fusion grid, with :func:`profile_covariance` of 100 % (a weak
        constraint).
    options : CdfOptions, optional
        How the kernel treats its inputs (method, checks, invalid retrievals, engine);
        default :class:`CdfOptions` ().
    chunk_cells : int
        Cells per Dask chunk, or per kernel call of the thread pool when ``l2`` is in memory. [1]
    num_workers : int, optional
        Threads fusing an in-memory ``l2`` (default: all CPUs); a lazy ``l2`` is computed by
        the caller's Dask scheduler.

    Returns
    -------
    xarray.Dataset
        A ``fused-ozone`` dataset (see :data:`hubkit.schemas.FUSED_OZONE`), lazy when ``l2`` is;
        ``n_retrievals`` counts the retrievals fused in each cell.

    References
    ----------
    .. [1] Ceccherini, Carli, Raspollini, Opt. Express 23, 8476, 2015. doi:10.1364/OE.23.008476
    .. [2] Zoppetti et al., Atmos. Meas. Tech. 14, 2041, 2021. doi:10.5194/amt-14-2041-2021
    """
    opts = options or CdfOptions()
    for name in ("o3_vmr", "o3_vmr_apriori", "averaging_kernel", "noise_covariance", "pressure"):
        if name not in l2.variables:
            raise FusionInputError(f"l2 dataset lacks {name!r}; expected an l2-ozone dataset")
    if opts.method == "total" and "apriori_covariance" not in l2.variables:
        raise FusionInputError("l2 dataset lacks 'apriori_covariance', which method='total' "
                               "needs; use CdfOptions(method='pinv')")
    box = group_cells(l2, cell)
    keys, inverse, counts = unique_rows(box)
    n_cells, n_slot = keys.shape[0], int(counts.max())
    order = np.argsort(inverse, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    slot = np.arange(order.size) - starts[inverse[order]]
    index = np.full((n_cells, n_slot), order[0] if order.size else 0, dtype=np.int64)
    index[inverse[order], slot] = order
    valid = np.zeros((n_cells, n_slot), bool)
    valid[inverse[order], slot] = True

    p_ret = np.asarray(l2["pressure"].values, dtype=np.float64)
    same_grid = bool(np.allclose(p_ret, p_ret[:1], rtol=1e-9, equal_nan=True))
    if pressure is None:
        pressure = p_ret[0]
    pressure = np.asarray(pressure, dtype=np.float64)
    use_grid = not (same_grid and pressure.shape == p_ret[0].shape
                    and np.allclose(pressure, p_ret[0], rtol=1e-9))

    names = ["o3_vmr", "o3_vmr_apriori", "averaging_kernel", "noise_covariance",
             *(["apriori_covariance"] if "apriori_covariance" in l2 else [])]
    take = l2[names].drop_vars(list(l2[names].coords))
    lazy = any(take[v].chunks for v in names)
    phi = grid_operator(pressure, p_ret) if use_grid else None  # (retrieval, m, n)

    def gathered():
        if lazy:  # lazy (from the store): Dask gathers the cells
            cells = take.isel(retrieval=xr.DataArray(index, dims=("cell", "slot")))
        else:  # in memory: one NumPy gather per variable
            cells = xr.Dataset({v: (("cell", "slot", *take[v].dims[1:]), take[v].values[index],
                                    take[v].attrs) for v in names})
        cells = cells.assign(valid=(("cell", "slot"), valid))
        if "apriori_covariance" not in cells:
            m = l2.sizes["level"]
            cells["apriori_covariance"] = (("cell", "slot", "level", "level_in"),
                                           np.broadcast_to(np.eye(m), (n_cells, n_slot, m, m)))
        if use_grid:
            cells["grid"] = (("cell", "slot", "level", "fusion_level"), phi[index])
        if lazy:
            cells = cells.chunk({"cell": chunk_cells, "slot": -1, "level": -1, "level_in": -1})
        return cells

    if prior is None:
        xa = np.asarray(l2["o3_vmr_apriori"].values, dtype=np.float64)
        if use_grid:
            xa = np.nanmean(matvec(grid_operator(p_ret[0], pressure[None, :])[0], xa), axis=0)
        else:
            xa = np.nanmean(xa, axis=0)
        prior = (xa, profile_covariance(xa, pressure, relative=1.0))
    prior_mean, prior_cov = (np.asarray(a, dtype=np.float64) for a in prior)

    fused = None
    if not lazy:  # in memory: each thread gathers and fuses its chunk of cells
        src = {v: np.asarray(take[v].transpose("retrieval", *take[v].dims[1:]).values)
               for v in names}
        if "apriori_covariance" not in src:
            m = l2.sizes["level"]
            src["apriori_covariance"] = np.broadcast_to(np.eye(m), (p_ret.shape[0], m, m))
        if use_grid:
            src["grid"] = phi
        try:
            fused = fuse_arrays(src, valid, index, prior_mean, prior_cov, opts, chunk_cells,
                                 num_workers)
        except FusionInputError:
            fused = None  # redone below in one call, so that the error names the right cell
    if fused is None:
        fused = fuse_cells(gathered(), prior_mean, prior_cov, options=opts,
                           chunk_cells=chunk_cells, num_workers=num_workers)
    lat = (keys[:, 0] + 0.5) * cell[0] - 90.0
    lon = (keys[:, 1] + 0.5) * cell[1] - 180.0
    t = ((keys[:, 2] + 0.5) * cell[2] * 1e9).astype("int64").astype("datetime64[ns]")
    out = xr.Dataset(
        {
            "o3_vmr": fused["o3_vmr"].assign_attrs(
                units="mol mol-1", long_name="fused ozone volume mixing ratio"),
            "o3_vmr_apriori": (("level",), prior_mean,
                               {"units": "mol mol-1", "long_name": "fusion a priori"}),
            "apriori_covariance": (("level", "level_in"), prior_cov,
                                   {"units": "mol2 mol-2",
                                    "long_name": "fusion a priori covariance"}),
            "averaging_kernel": fused["averaging_kernel"].assign_attrs(
                units="1", long_name="fused averaging kernel"),
            "noise_covariance": fused["noise_covariance"].assign_attrs(
                units="mol2 mol-2", long_name="fused noise error covariance"),
            "total_covariance": fused["total_covariance"].assign_attrs(
                units="mol2 mol-2", long_name="fused total (noise + smoothing) covariance"),
            "dfs": fused["dfs"].assign_attrs(units="1", long_name="degrees of freedom"),
            "cost": fused["cost"].assign_attrs(units="1", long_name="minimum CDF cost"),
            "cost_dof": fused["cost_dof"].assign_attrs(
                long_name="chi-square degrees of freedom of cost"),
            "n_retrievals": (("cell",), counts.astype(np.int32),
                             {"long_name": "retrievals in the cell"}),
            "n_fused": fused["used"].sum("slot").astype(np.int32).assign_attrs(
                long_name="retrievals fused in the cell"),
            "pressure": (("level",), pressure, {"units": "Pa", "standard_name": "air_pressure"}),
            "latitude": (("cell",), lat, {"units": "degrees_north"}),
            "longitude": (("cell",), lon, {"units": "degrees_east"}),
            "time": (("cell",), t),
        },
        attrs={
            "hubkit_product_type": "fused-ozone",
            "hubkit_species": "o3",
            "title": "Complete Data Fusion of L2 ozone profiles",
            "source": "hubkit.fusion.fuse_product",
            "fusion_cell": f"{cell[0]} deg x {cell[1]} deg x {cell[2]} s",
            "fusion_method": opts.method,
            "references": "Ceccherini et al. 2015 doi:10.1364/OE.23.008476",
        },
    )
    if "instrument" in l2.attrs:
        out.attrs["instrument"] = l2.attrs["instrument"]
    return out.set_coords(["latitude", "longitude", "time", "pressure"])


def adjust_prior(fused: xr.Dataset, prior) -> xr.Dataset:
    """Move a fused (or any linear optimal-estimation) product to another a priori profile.

    For a linear retrieval ``x̂ = x_a + A(x − x_a) + ε``, the same measurement with the prior
    ``x_a'`` would have given (Rodgers & Connor 2003, eq. 10)

    .. math:: x̂' = x̂ + (I − A)(x_a' − x_a)

    with the same averaging kernel ``A`` and noise covariance; both products then compare
    with a model profile through their own prior. Products with different priors become
    comparable, and can be assimilated together with one prior.

    Parameters
    ----------
    fused : xarray.Dataset
        ``fused-ozone`` dataset: ``o3_vmr`` (cell, level), ``averaging_kernel`` (cell, level,
        level_in), ``o3_vmr_apriori`` (level) [mol mol⁻¹, 1].
    prior : array_like, (level,)
        The new prior ``x_a'`` on the same grid. [mol mol⁻¹]

    Returns
    -------
    xarray.Dataset
        ``fused`` with ``o3_vmr`` and ``o3_vmr_apriori`` replaced; the prior covariance is
        dropped (it belonged to the old prior).

    References
    ----------
    .. [1] Rodgers, Connor, "Intercomparison of remote sounding instruments", J. Geophys. Res.
       108, 4116, 2003. doi:10.1029/2002JD002299
    """
    new = np.asarray(prior, dtype=float)
    old = np.asarray(fused["o3_vmr_apriori"].values, dtype=float)
    if new.shape != old.shape:
        raise FusionInputError(f"prior has shape {new.shape}; expected {old.shape}, the "
                               "fused product's level count")
    shift = new - old
    kernel = np.asarray(fused["averaging_kernel"].values, dtype=float)
    x = np.asarray(fused["o3_vmr"].values, dtype=float)
    moved = x + shift - np.einsum("cij,j->ci", kernel, shift)
    out = fused.drop_vars("apriori_covariance", errors="ignore")
    return out.assign(o3_vmr=fused["o3_vmr"].copy(data=moved),
                      o3_vmr_apriori=fused["o3_vmr_apriori"].copy(data=new))


def concat_fused(datasets, prior=None) -> xr.Dataset:
    """Fused products of one fusion grid on one prior, concatenated along ``cell``.

    Each product is moved to ``prior`` (default: the first product's) by
    :func:`adjust_prior`.

    Parameters
    ----------
    datasets : sequence of xarray.Dataset
        ``fused-ozone`` products, all on the same ``pressure`` grid.
    prior : array_like, (level,), optional
        Common prior. [mol mol⁻¹]

    Raises
    ------
    FusionInputError
        When the products are on different fusion grids (name them: configure one fusion
        grid per chain, e.g. the ``pressure`` parameter of the fusion step).
    """
    datasets = list(datasets)
    if not datasets:
        raise FusionInputError("concat_fused: no fused product given")
    grid = np.asarray(datasets[0]["pressure"].values, dtype=float)
    for k, ds in enumerate(datasets[1:], start=1):
        p = np.asarray(ds["pressure"].values, dtype=float)
        if p.shape != grid.shape or not np.allclose(p, grid, rtol=1e-9):
            raise FusionInputError(
                f"fused product {k} ({ds.attrs.get('hubkit_id', 'unnamed')}) is on a fusion grid "
                f"of {p.size} levels {p.max():g}-{p.min():g} Pa, product 0 on {grid.size} levels "
                f"{grid.max():g}-{grid.min():g} Pa; expected one fusion grid (set the fusion "
                "step's 'pressure')")
    prior = datasets[0]["o3_vmr_apriori"].values if prior is None else prior
    moved = [adjust_prior(ds, prior) for ds in datasets]
    if len(moved) == 1:
        return moved[0]
    return xr.concat(moved, dim="cell", data_vars="minimal", coords="minimal",
                     compat="override", join="outer", combine_attrs="drop_conflicts")
