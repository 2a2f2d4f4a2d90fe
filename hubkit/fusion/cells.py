"""The CDF kernel over many fusion cells: :func:`fuse_cells` (xarray, chunk-parallel with Dask
or threads) and :func:`group_cells` (which retrievals share a space-time cell)."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import xarray as xr

from hubkit.errors import FusionInputError
from hubkit.fusion.kernel import CdfOptions, cdf

_OUT = ("x", "averaging_kernel", "noise_covariance", "total_covariance", "dfs", "cost", "dof",
        "used")


#: Cells per call of :func:`cdf` inside a chunk: the working set of a few dozen cells stays in
#: the CPU caches (with hundreds of cells per call every step streams through memory).
_BLOCK_CELLS = 32


def _ufunc_kernel(x, A, Sn, xa_i, Sa_i, prior_mean, prior_cov, valid, grid=None, *, opts):
    """:func:`cdf` on one chunk (leading dim ``cell``), in blocks of :data:`_BLOCK_CELLS` cells."""
    n_cells = x.shape[0] if x.ndim == 3 else 0
    if n_cells <= 2 * _BLOCK_CELLS:
        res = cdf(x, A, Sn, xa_i, prior_mean, prior_cov, apriori_covariance=Sa_i, grid=grid,
                  valid=valid, options=opts)
        return tuple(getattr(res, name) for name in _OUT)
    pm = np.broadcast_to(prior_mean, (n_cells, prior_mean.shape[-1]))
    pc = prior_cov if prior_cov.ndim == 2 else np.broadcast_to(
        prior_cov, (n_cells, *prior_cov.shape[-2:]))
    outs = None
    try:
        for start in range(0, n_cells, _BLOCK_CELLS):
            sl = slice(start, start + _BLOCK_CELLS)
            res = cdf(x[sl], A[sl], Sn[sl], xa_i[sl], pm[sl], pc if pc.ndim == 2 else pc[sl],
                      apriori_covariance=None if Sa_i is None else Sa_i[sl],
                      grid=None if grid is None else grid[sl],
                      valid=None if valid is None else valid[sl], options=opts)
            if outs is None:
                outs = {name: np.empty((n_cells, *np.shape(getattr(res, name))[1:]),
                                       dtype=np.asarray(getattr(res, name)).dtype)
                        for name in _OUT}
            for name in _OUT:
                outs[name][sl] = getattr(res, name)
    except FusionInputError:  # again in one call, so that the error names the cell of the chunk
        res = cdf(x, A, Sn, xa_i, prior_mean, prior_cov, apriori_covariance=Sa_i, grid=grid,
                  valid=valid, options=opts)
        return tuple(getattr(res, name) for name in _OUT)
    return tuple(outs[name] for name in _OUT)


def _fuse_cells_threaded(cells, prior_mean, prior_covariance, opts, chunk_cells, num_workers):
    """:func:`fuse_cells` of an in-memory dataset (see :func:`fuse_arrays`)."""
    dims = {"o3_vmr": ("cell", "slot", "level"), "o3_vmr_apriori": ("cell", "slot", "level"),
            "grid": ("cell", "slot", "level", "fusion_level")}
    names = ["o3_vmr", "averaging_kernel", "noise_covariance", "o3_vmr_apriori",
             "apriori_covariance", *(["grid"] if "grid" in cells else [])]
    arrays = {v: np.asarray(cells[v].transpose(*dims.get(v, ("cell", "slot", "level",
                                                                  "level_in"))).values)
              for v in names}
    valid = np.asarray(cells["valid"].transpose("cell", "slot").values)
    return fuse_arrays(arrays, valid, None, prior_mean, prior_covariance, opts, chunk_cells,
                        num_workers)


def fuse_arrays(arrays, valid, index, prior_mean, prior_covariance, opts, chunk_cells,
                 num_workers) -> xr.Dataset:
    """Fuse in-memory cells: the kernel on chunks of ``chunk_cells`` cells run by a thread pool
    of ``num_workers`` threads (default: all CPUs; LAPACK and BLAS release the GIL), outputs
    written into preallocated arrays. ``arrays`` (``o3_vmr``, ``averaging_kernel``,
    ``noise_covariance``, ``o3_vmr_apriori``, ``apriori_covariance`` and optionally ``grid``)
    are ``(cell, slot, ...)``, or with ``index`` (cell, slot) ``(retrieval, ...)`` gathered a
    chunk at a time (no full copy of the input)."""
    pm = np.asarray(prior_mean, dtype=np.float64)
    pc = np.asarray(prior_covariance, dtype=np.float64)
    has_grid = "grid" in arrays
    n_cells, n_slot = valid.shape
    n = arrays["grid"].shape[-1] if has_grid else arrays["o3_vmr"].shape[-1]
    out = {"x": np.empty((n_cells, n)), "averaging_kernel": np.empty((n_cells, n, n)),
           "noise_covariance": np.empty((n_cells, n, n)),
           "total_covariance": np.empty((n_cells, n, n)), "dfs": np.empty(n_cells),
           "cost": np.empty(n_cells), "dof": np.empty(n_cells, np.int64),
           "used": np.empty((n_cells, n_slot), bool)}

    def run(start):
        sl = slice(start, start + chunk_cells)
        get = (lambda v: arrays[v][sl]) if index is None else (lambda v: arrays[v][index[sl]])
        res = _ufunc_kernel(get("o3_vmr"), get("averaging_kernel"), get("noise_covariance"),
                            get("o3_vmr_apriori"), get("apriori_covariance"),
                            pm[sl] if pm.ndim == 2 else pm, pc, valid[sl],
                            get("grid") if has_grid else None, opts=opts)
        for name, value in zip(_OUT, res, strict=True):
            out[name][sl] = value

    direct = _direct_kernel(arrays, valid, index, pm, pc, opts)
    if direct is not None:
        run = direct(out, numpy_run=run, chunk_cells=chunk_cells)

    workers = max(1, min(num_workers or os.cpu_count() or 1, -(-n_cells // chunk_cells)))
    with ThreadPoolExecutor(workers) as pool:
        for fut in [pool.submit(run, s) for s in range(0, n_cells, chunk_cells)]:
            fut.result()
    mat = ("level", "level_in")
    return xr.Dataset({
        "o3_vmr": (("cell", "level"), out["x"]),
        "averaging_kernel": (("cell", *mat), out["averaging_kernel"]),
        "noise_covariance": (("cell", *mat), out["noise_covariance"]),
        "total_covariance": (("cell", *mat), out["total_covariance"]),
        "dfs": (("cell",), out["dfs"]), "cost": (("cell",), out["cost"]),
        "cost_dof": (("cell",), out["dof"]), "used": (("cell", "slot"), out["used"]),
    })


def _direct_kernel(arrays, valid, index, pm, pc, opts):
    """The compiled kernel reading the retrievals where they are (no gathered copy of the
    cells) and writing into the outputs, where it applies; else None.

    It applies as in :func:`hubkit.fusion.kernel._compiled` (``method="total"``, no grid, no
    diagnostics, one prior covariance, numba installed) and when the inputs are C-contiguous
    float64 with consistent shapes. Returns ``make(out, numpy_run, chunk_cells)`` → a function
    of a chunk's start that runs the kernel on the chunk and, when a cell of it needs the NumPy
    path (a bad input: it raises or excludes with its messages), runs ``numpy_run`` instead."""
    if (opts.engine == "numpy" or opts.method != "total" or opts.diagnostics
            or "grid" in arrays or pc.ndim != 2):
        return None
    names = ("o3_vmr", "averaging_kernel", "noise_covariance", "o3_vmr_apriori",
             "apriori_covariance")
    src = [arrays[v] for v in names]
    if not all(a.dtype == np.float64 and a.flags.c_contiguous for a in src):
        return None
    lead = 1 if index is not None else 2  # (retrieval, ...) or (cell, slot, ...)
    m = src[0].shape[-1]
    rows = src[0].shape[0] if index is not None else valid.size
    shapes = [(m,), (m, m), (m, m), (m,), (m, m)]
    if (any(a.shape[lead:] != sh for a, sh in zip(src, shapes, strict=True))
            or any(int(np.prod(a.shape[:lead])) != rows for a in src)
            or pc.shape != (m, m) or pm.shape[-1] != m
            or (pm.ndim == 2 and pm.shape[0] != valid.shape[0]) or pm.ndim > 2):
        return None
    from hubkit.fusion import compiled  # numba loads only where the kernel can serve
    from hubkit.fusion.kernel import prior_information

    if not compiled.AVAILABLE:
        return None
    flat = [a.reshape(rows, *sh) for a, sh in zip(src, shapes, strict=True)]
    idx = (np.asarray(index, dtype=np.int64) if index is not None
           else np.arange(rows, dtype=np.int64).reshape(valid.shape))
    prior_inv = prior_information(pm, pc)[0]

    def make(out, numpy_run, chunk_cells):
        def run(start):
            sl = slice(start, start + chunk_cells)
            views = {k: out[k][sl] for k in ("x", "averaging_kernel", "noise_covariance",
                                             "total_covariance", "dfs")}
            if not compiled.fuse_indexed(flat, idx[sl], valid[sl], prior_inv,
                                         pm[sl] if pm.ndim == 2 else pm, check=opts.check,
                                         symmetry_rtol=opts.symmetry_rtol, out=views):
                numpy_run(start)  # raises or excludes as cdf always did
                return
            out["cost"][sl] = np.nan
            out["dof"][sl] = -1
            out["used"][sl] = valid[sl]
        return run
    return make


def fuse_cells(cells: xr.Dataset, prior_mean, prior_covariance, *,
               options: CdfOptions | None = None, chunk_cells: int = 500,
               num_workers: int | None = None) -> xr.Dataset:
    """Fuse a dataset of cells, chunk-parallel when its variables are Dask arrays.

    Parameters
    ----------
    cells : xarray.Dataset
        Dims ``cell``, ``slot`` (retrievals of the cell), ``level``, ``level_in`` and, with a grid
        operator, ``fusion_level``. Variables ``o3_vmr`` (cell, slot, level), ``o3_vmr_apriori``,
        ``averaging_kernel`` (cell, slot, level, level_in), ``noise_covariance``,
        ``apriori_covariance``, ``valid`` (cell, slot) and optionally ``grid`` (cell, slot, level,
        fusion_level), as :func:`group_cells` makes them. [mol mol-1, 1, mol2 mol-2]
    prior_mean : array_like, (n,) or (cell, n)
        Fusion a priori. [mol mol-1]
    prior_covariance : array_like, (n, n)
        Fusion a priori covariance, shared by all cells. [mol2 mol-2]
    options : CdfOptions, optional
        How the kernel treats its inputs (method, checks, invalid retrievals, engine);
        default :class:`CdfOptions` ().
    chunk_cells, num_workers : int, optional
        In-memory input only: cells per call of the kernel and threads running the calls
        (default: all CPUs). A Dask input is computed by the caller's scheduler instead.

    Returns
    -------
    xarray.Dataset
        ``o3_vmr`` (cell, level), ``averaging_kernel``, ``noise_covariance``,
        ``total_covariance`` (cell, level, level_in), ``dfs``, ``cost``, ``cost_dof`` (cell),
        ``used`` (cell, slot), lazy when the input is.
    """
    opts = options or CdfOptions()
    if not any(cells[v].chunks for v in cells.data_vars) and cells.sizes["cell"] > chunk_cells:
        try:  # in memory: chunks of cells on a thread pool (LAPACK/BLAS release the GIL)
            return _fuse_cells_threaded(cells, prior_mean, prior_covariance, opts, chunk_cells,
                                        num_workers)
        except FusionInputError:
            pass  # redone in one call below, so that the error names the cell of the batch
    has_grid = "grid" in cells
    lev_out = "fusion_level" if has_grid else "level"
    n = cells.sizes[lev_out]
    pm = xr.DataArray(np.asarray(prior_mean, dtype=np.float64),
                      dims=(("cell",) if np.ndim(prior_mean) == 2 else ()) + ("fl_a",))
    pc = xr.DataArray(np.asarray(prior_covariance, dtype=np.float64), dims=("fl_a", "fl_b"))
    args = [cells["o3_vmr"], cells["averaging_kernel"], cells["noise_covariance"],
            cells["o3_vmr_apriori"], cells["apriori_covariance"], pm, pc, cells["valid"]]
    core = [["slot", "level"], ["slot", "level", "level_in"], ["slot", "level", "level_in"],
            ["slot", "level"], ["slot", "level", "level_in"], ["fl_a"], ["fl_a", "fl_b"],
            ["slot"]]
    if has_grid:
        args.append(cells["grid"])
        core.append(["slot", "level", "fusion_level"])
    out_core = [["fl_a"], ["fl_a", "fl_b"], ["fl_a", "fl_b"], ["fl_a", "fl_b"], [], [], [],
                ["slot"]]
    outs = xr.apply_ufunc(
        _ufunc_kernel, *args, input_core_dims=core, output_core_dims=out_core,
        kwargs={"opts": opts}, dask="parallelized",
        output_dtypes=[float, float, float, float, float, float, np.int64, bool],
        dask_gufunc_kwargs={"output_sizes": {"fl_a": n, "fl_b": n}},
    )
    ren = {"fl_a": "level", "fl_b": "level_in"}
    names = ("o3_vmr", "averaging_kernel", "noise_covariance", "total_covariance", "dfs", "cost",
             "cost_dof", "used")
    return xr.Dataset({name: da.rename({k: v for k, v in ren.items() if k in da.dims})
                       for name, da in zip(names, outs, strict=True)})


def group_cells(l2: xr.Dataset, cell=(1.0, 1.0, 3600.0)) -> np.ndarray:
    """Space-time cell of each retrieval: ``(lat, lon, hour)`` boxes as in Zoppetti et al. 2021.

    Parameters
    ----------
    l2 : xarray.Dataset
        Has ``latitude``, ``longitude`` [°] and ``time`` (retrieval).
    cell : tuple of float
        Box size ``(Δlatitude [°], Δlongitude [°], Δtime [s])``.

    Returns
    -------
    ndarray of int64, (retrieval, 3)
        Integer box index (latitude, longitude, time) of each retrieval.
    """
    dlat, dlon, dt = (float(c) for c in cell)
    if min(dlat, dlon, dt) <= 0:
        raise FusionInputError(f"cell={cell!r}: expected positive (Δlat [°], Δlon [°], Δt [s])")
    lat = np.asarray(l2["latitude"].values, dtype=np.float64)
    lon = (np.asarray(l2["longitude"].values, dtype=np.float64) + 180.0) % 360.0 - 180.0
    t = np.asarray(l2["time"].values).astype("datetime64[ns]").astype(np.int64) / 1e9
    return np.stack([np.floor((lat + 90.0) / dlat), np.floor((lon + 180.0) / dlon),
                     np.floor(t / dt)], axis=-1).astype(np.int64)
