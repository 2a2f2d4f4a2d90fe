"""The tropospheric ozone (TROC) product: everything per column, the whole globe at once.

:func:`tropospheric_ozone_arrays` is the NumPy kernel (level axis last, any leading dims);
:func:`tropospheric_ozone` checks a dataset at the boundary and maps the kernel over it with
:func:`xarray.apply_ufunc` (``dask="parallelized"``: chunk-parallel on Dask, eager otherwise).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from hubkit.ozone.atmosphere import DU_PER_VMR_PA, OzoneInputError
from hubkit.ozone.columns import N_SUBCOLUMNS, _locate_rows, subcolumn_edges
from hubkit.ozone.tropopause import _lrt_up
from hubkit.ozone.vertical import (
    _check_coefficients,
    _hydrostatic_up,
    hybrid_pressure,
    level_order,
)

__all__ = ["FLAG_MEANINGS", "OUTPUTS", "tropospheric_ozone", "tropospheric_ozone_arrays"]

#: Bits of ``tropopause_flag`` (CF flag_masks) and what they mean.
FLAG_MEANINGS = {
    1: "no_lapse_rate_tropopause",
    2: "subcolumns_merged_at_top",
    4: "surface_above_fixed_tropopause",
}

#: Output variables of the kernel, in order: name -> (units, long name, CF standard name).
OUTPUTS = {
    "surface_o3_vmr": ("mol mol-1", "ozone volume mixing ratio at the lowest model level",
                       "mole_fraction_of_ozone_in_air"),
    "tropopause_altitude": ("m", "WMO lapse-rate tropopause geopotential height",
                            "tropopause_altitude"),
    "tropopause_pressure": ("Pa", "WMO lapse-rate tropopause pressure", "tropopause_air_pressure"),
    "fixed_tropopause_pressure": ("Pa", "pressure at the fixed-level tropopause", None),
    "o3_subcolumns": ("DU", "tropospheric ozone sub-columns from the surface to the LRT", None),
    "o3_column_fixed": ("DU", "ozone column from the surface to the fixed-level tropopause", None),
    "o3_column_lrt": ("DU", "ozone column from the surface to the lapse-rate tropopause", None),
    "tropopause_flag": (None, "tropopause and sub-column quality flag", None),
}

#: Pressure window of the LRT search (Reichler et al. 2003) and the level cut above it. [Pa]
_P_MIN, _P_MAX, _P_CUT = 7500.0, 55000.0, 3750.0

_VMR_SCALE = {"mol mol-1": 1.0, "mol/mol": 1.0, "1": 1.0, "ppmv": 1e-6, "ppm": 1e-6,
              "ppbv": 1e-9, "ppb": 1e-9}

_ALIASES = {
    "o3_vmr": ("o3_vmr", "o3", "go3"),
    "temperature": ("temperature", "t", "ta"),
    "surface_pressure": ("surface_pressure", "ps", "sp"),
    "surface_altitude": ("surface_altitude", "orography", "zs"),
    "hybrid_a": ("hybrid_a", "ap", "a", "hyai"),
    "hybrid_b": ("hybrid_b", "b", "hybi"),
}


def tropospheric_ozone_arrays(o3_vmr, temperature, surface_pressure, surface_altitude, a, b, *,
                              fixed_altitude=6000.0, top_first=None, check=True, block=1024):
    """Tropospheric ozone of every column: LRT, sub-columns and columns (NumPy kernel).

    Per column: interface and full-level pressures (:func:`hybrid_pressure`), dry hydrostatic
    geopotential heights (:func:`hydrostatic_altitude`), the WMO lapse-rate tropopause
    (:func:`lapse_rate_tropopause`, searched between 550 and 75 hPa), layer partial columns
    (:func:`partial_columns`) and their mass-conserving regridding to the sub-column grid
    ``[z_s, next km, …, last km, z_LRT]`` (:func:`subcolumn_edges`), done in pressure, where the
    column of a layer of constant mixing ratio is exactly linear; the pressure of a target
    altitude is interpolated in ``ln p`` (exact for the isothermal layers of the hydrostatic
    integration). Gai et al. (2021), section 4.3.3, doi:10.3390/rs13020210.

    Parameters
    ----------
    o3_vmr : array_like, (..., level)
        Ozone volume mixing ratio. [mol mol-1]
    temperature : array_like, (..., level)
        Air temperature. [K]
    surface_pressure : array_like, (...)
        [Pa]
    surface_altitude : array_like, (...)
        Geopotential height of the surface (orography). [m]
    a, b : array_like, (..., level + 1)
        Hybrid coefficients of the interfaces (broadcast against the leading dims). [Pa], [1]
    fixed_altitude : float
        Altitude of the fixed-level tropopause. [m]
    top_first : bool, optional
        Level order of all level arrays; read from ``a``/``b`` (:func:`level_order`) if None.
    check : bool
        Check the coefficients and the surface-pressure range.
    block : int
        Columns computed at once (small enough for the arrays to stay in the CPU cache).

    Returns
    -------
    dict of ndarray
        The variables of :data:`OUTPUTS`, each (...) except ``o3_subcolumns`` (..., 20).
        Columns without a tropopause hold NaN and flag bit 1; never an exception.
    """
    x = np.asarray(o3_vmr)  # converted to float64 block by block
    t = np.asarray(temperature)
    ps = np.asarray(surface_pressure, dtype=float)
    zs = np.asarray(surface_altitude, dtype=float)
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if x.shape[-1:] != t.shape[-1:] or a.shape[-1] != x.shape[-1] + 1:
        raise OzoneInputError(f"o3_vmr has {x.shape[-1]} levels, temperature {t.shape[-1]} and "
                              f"the hybrid coefficients {a.shape[-1]} interfaces; expected "
                              "interfaces = levels + 1 for both fields")
    if check:
        _check_coefficients(a, b, ps)
    if top_first is None:
        top_first = level_order(np.ravel(a[(0,) * (a.ndim - 1)]),
                                np.ravel(b[(0,) * (b.ndim - 1)])) == "top-first"
    batch = np.broadcast_shapes(x.shape[:-1], t.shape[:-1], ps.shape, zs.shape, a.shape[:-1],
                                b.shape[:-1])
    n = x.shape[-1]
    size = int(np.prod(batch))
    x, t = (np.broadcast_to(v, batch + (n,)).reshape(size, n) for v in (x, t))
    ps, zs = (np.broadcast_to(v, batch).reshape(size) for v in (ps, zs))
    if a.ndim > 1 or b.ndim > 1:  # per-column coefficients
        a, b = (np.broadcast_to(v, batch + (n + 1,)).reshape(size, n + 1) for v in (a, b))
    if top_first:
        x, t, a, b = (v[..., ::-1] for v in (x, t, a, b))
    if a.ndim == 1 and b.ndim == 1 and size:  # levels above the cut are never looked at
        ps_max = np.fmax.reduce(ps)
        pf_max = 0.5 * (a[1:] + a[:-1]) + 0.5 * (b[1:] + b[:-1]) * (ps_max if ps_max > 0 else 0)
        n_keep = max(int(np.count_nonzero(pf_max >= _P_CUT)), 3)
        x, t, a, b = x[:, :n_keep], t[:, :n_keep], a[:n_keep + 1], b[:n_keep + 1]
    out = {name: np.empty((size, N_SUBCOLUMNS) if name == "o3_subcolumns" else size,
                          dtype=np.int8 if name == "tropopause_flag" else float)
           for name in OUTPUTS}
    for s in range(0, size, block):  # blocks that stay in the CPU cache
        part = slice(s, min(s + block, size))
        ab = [v[part] if v.ndim > 1 else v for v in (a, b)]
        res = _troc_block(x[part].astype(float), t[part].astype(float), ps[part], zs[part], *ab,
                          float(fixed_altitude))
        for name, values in res.items():
            out[name][part] = values
    return {name: v.reshape(batch + v.shape[1:]) for name, v in out.items()}


def _troc_block(x, t, ps, zs, a, b, fixed_altitude):
    """Kernel of :func:`tropospheric_ozone_arrays` on (column, level) arrays, surface first."""
    ph, pf = hybrid_pressure(a, b, ps, check=False)
    # nothing above 37.5 hPa matters: the LRT is searched below 75 hPa, and 2 km above it the
    # pressure is still > 47 hPa for any scale height > 4.4 km (T > 150 K)
    n_keep = max(int(np.count_nonzero(np.fmax.reduce(pf, axis=0) >= _P_CUT)) if pf.ndim > 1
                 else int(np.count_nonzero(pf >= _P_CUT)), 3)
    x, t, pf, ph = x[:, :n_keep], t[:, :n_keep], pf[..., :n_keep], ph[..., :n_keep + 1]
    with np.errstate(divide="ignore"):
        lnp_all = np.log(ph)
    zh, zf = _hydrostatic_up(ph, t, zs, lnp_all)
    z_tp, _ = _lrt_up(t, zf, pf, 2e-3, 2000.0, (_P_MIN, _P_MAX))
    edges, merged = subcolumn_edges(zs, z_tp)
    targets = np.concatenate([edges, np.full(zs.shape + (1,), fixed_altitude), z_tp[:, None]],
                             axis=-1)
    # only the interfaces up to the first one above every target take part
    z_low = np.fmin.reduce(zh[:, :-1], axis=0)  # NaN columns ignored (they give NaN)
    top = int(np.searchsorted(z_low, np.fmax.reduce(targets, axis=None), side="left")) + 1
    top = min(max(top, 2), zh.shape[-1] - 1)
    # one search gives the layer of each target: ln p is linear in z within it (isothermal
    # layer), and the column linear in p (constant mixing ratio)
    i0, w, bad = _locate_rows(targets, np.ascontiguousarray(zh[:, :top]))
    missing = np.isnan(targets) | bad[:, None]
    lnp = lnp_all[:, :top].ravel()
    p_t = np.exp(lnp[i0] * (1.0 - w) + lnp[i0 + 1] * w)
    layer = DU_PER_VMR_PA * x[:, :top] * (ph[:, :top] - ph[:, 1:top + 1])
    cum = np.cumsum(layer, axis=-1) - layer  # the column below each layer
    ph_lo, ph_hi = ph[:, :top].ravel()[i0], ph[:, 1:top + 1].ravel()[i0]
    frac = np.clip((ph_lo - p_t) / (ph_lo - ph_hi), 0.0, 1.0)
    c_t = np.where(missing, np.nan, cum.ravel()[i0] + frac * layer.ravel()[i0])[:, :-1]
    p_t = np.where(missing, np.nan, p_t)
    sub = np.diff(c_t[:, :-1], axis=-1)
    no_tp = np.isnan(z_tp)
    high = zs >= fixed_altitude
    with np.errstate(invalid="ignore"):
        col_lrt = np.where(no_tp, np.nan, np.nansum(sub, axis=-1))
    return {
        "surface_o3_vmr": x[:, 0],
        "tropopause_altitude": z_tp,
        "tropopause_pressure": p_t[:, -1],
        "fixed_tropopause_pressure": np.where(high, np.nan, p_t[:, -2]),
        "o3_subcolumns": sub,
        "o3_column_fixed": np.where(high, np.nan, c_t[:, -1]),
        "o3_column_lrt": col_lrt,
        "tropopause_flag": (no_tp * 1 + merged * 2 + high * 4).astype(np.int8),
    }


def _ufunc_kernel(x, t, ps, zs, a, b, *, fixed_altitude, top_first, vmr_scale):
    if vmr_scale != 1.0:
        x = x * vmr_scale
    out = tropospheric_ozone_arrays(x, t, ps, zs, a, b, fixed_altitude=fixed_altitude,
                                    top_first=top_first, check=False)
    return tuple(out[name] for name in OUTPUTS)


def _find(ds: xr.Dataset, key: str, source: str) -> xr.DataArray:
    for name in _ALIASES[key]:
        if name in ds.variables:
            return ds[name]
    raise OzoneInputError(f"{source}: variable {key!r} is missing (looked for "
                          f"{list(_ALIASES[key])}); expected it for the tropospheric ozone")


def _check_units(da: xr.DataArray, name: str, allowed, source: str) -> None:
    units = da.attrs.get("units")
    if units is not None and str(units).strip() not in allowed:
        raise OzoneInputError(f"{source}: variable {name!r} ({da.name}) has units {units!r}, "
                              f"expected one of {sorted(allowed)}")


def tropospheric_ozone(ds: xr.Dataset, *, fixed_altitude: float = 6000.0,
                       source: str = "<dataset>") -> xr.Dataset:
    """The TROC product of a DAS-like ozone and temperature field on hybrid levels.

    Parameters
    ----------
    ds : xarray.Dataset
        ``o3_vmr`` [mol mol-1, ppmv or ppbv] and ``temperature`` [K] with a level dim and any
        others (time, lat, lon, in any order); ``surface_pressure`` [Pa] and
        ``surface_altitude`` [m] without the level dim; ``hybrid_a`` [Pa] and ``hybrid_b`` [1]
        on an interface dim of ``levels + 1`` (CF ``atmosphere_hybrid_sigma_pressure_coordinate``
        ``ap``/``b`` and ECMWF/TM5 ``hyai``/``hybi`` are accepted too). Either level order;
        Dask-backed variables are computed chunk by chunk (no chunking along the level dim).
    fixed_altitude : float
        Altitude of the fixed-level tropopause. [m]
    source : str
        Named in error messages (a file or product id).

    Returns
    -------
    xarray.Dataset
        Product type ``troc``: the variables of :data:`OUTPUTS` (``o3_subcolumns`` on a
        ``subcolumn`` dim of 20, the grid rebuilt by :func:`subcolumn_edges` from the stored
        ``surface_altitude`` and ``tropopause_altitude``), plus ``surface_altitude`` and
        ``surface_pressure``; lazy when the inputs are.

    References
    ----------
    .. [1] Gai, M. et al., AURORA, Remote Sens. 13, 210, 2021, section 4.3.3.
       doi:10.3390/rs13020210
    """
    o3 = _find(ds, "o3_vmr", source)
    t = _find(ds, "temperature", source)
    ps = _find(ds, "surface_pressure", source)
    zs = _find(ds, "surface_altitude", source)
    a = _find(ds, "hybrid_a", source)
    b = _find(ds, "hybrid_b", source)
    units = str(o3.attrs.get("units", "mol mol-1")).strip()
    if units not in _VMR_SCALE:
        raise OzoneInputError(f"{source}: variable 'o3_vmr' has units {units!r}, expected one "
                              f"of {sorted(_VMR_SCALE)}")
    _check_units(t, "temperature", {"K"}, source)
    _check_units(ps, "surface_pressure", {"Pa"}, source)
    _check_units(zs, "surface_altitude", {"m"}, source)
    _check_units(a, "hybrid_a", {"Pa"}, source)
    _check_units(b, "hybrid_b", {"1", ""}, source)
    level = [d for d in o3.dims if d not in ps.dims]
    if len(level) != 1:
        raise OzoneInputError(f"{source}: o3_vmr has dims {o3.dims} and surface_pressure "
                              f"{ps.dims}; expected o3_vmr to have exactly one more (the level)")
    level = level[0]
    if set(t.dims) != set(o3.dims):
        raise OzoneInputError(f"{source}: temperature has dims {t.dims}, expected those of "
                              f"o3_vmr {o3.dims}")
    if a.ndim != 1 or b.dims != a.dims:
        raise OzoneInputError(f"{source}: hybrid_a has dims {a.dims} and hybrid_b {b.dims}; "
                              "expected both on one interface dim")
    nlev = o3.sizes[level]
    if a.size != nlev + 1:
        raise OzoneInputError(f"{source}: hybrid_a and hybrid_b have {a.size} interfaces and "
                              f"o3_vmr {nlev} levels along {level!r}; expected {nlev + 1} "
                              "interfaces (levels + 1)")
    if o3.chunks is not None and len(o3.chunksizes[level]) > 1:
        o3 = o3.chunk({level: -1})
    if t.chunks is not None and len(t.chunksizes[level]) > 1:
        t = t.chunk({level: -1})
    a_np, b_np = np.asarray(a.values, dtype=float), np.asarray(b.values, dtype=float)
    ps_range = xr.concat([ps.min(), ps.max()], dim="minmax").values
    _check_coefficients(a_np, b_np, ps_range)
    top_first = level_order(a_np, b_np) == "top-first"
    iface = a.dims[0]
    a_da = xr.DataArray(a_np, dims=(iface,))
    b_da = xr.DataArray(b_np, dims=(iface,))
    n_out = len(OUTPUTS)
    outs = xr.apply_ufunc(
        _ufunc_kernel, o3, t, ps, zs, a_da, b_da,
        input_core_dims=[[level], [level], [], [], [iface], [iface]],
        output_core_dims=[[] if name != "o3_subcolumns" else ["subcolumn"] for name in OUTPUTS],
        kwargs={"fixed_altitude": float(fixed_altitude), "top_first": top_first,
                "vmr_scale": _VMR_SCALE[units]},
        dask="parallelized",
        output_dtypes=[float] * (n_out - 1) + [np.int8],
        dask_gufunc_kwargs={"output_sizes": {"subcolumn": N_SUBCOLUMNS}},
    )
    data = {}
    for (name, (unit, long_name, std)), da in zip(OUTPUTS.items(), outs, strict=True):
        attrs = {"long_name": long_name}
        if unit is not None:
            attrs["units"] = unit
        if std is not None:
            attrs["standard_name"] = std
        data[name] = da.assign_attrs(attrs)
    data["tropopause_flag"].attrs.update(
        flag_masks=np.array(list(FLAG_MEANINGS), dtype=np.int8),
        flag_meanings=" ".join(FLAG_MEANINGS.values()))
    data["fixed_tropopause_pressure"].attrs["fixed_altitude_m"] = float(fixed_altitude)
    data["o3_column_fixed"].attrs["fixed_altitude_m"] = float(fixed_altitude)
    data["o3_subcolumns"].attrs["comment"] = (
        "layers [z_s, next whole km, ..., last whole km, z_LRT]; rebuild the edges with "
        "hubkit.ozone.subcolumn_edges(surface_altitude, tropopause_altitude)")
    data["surface_altitude"] = zs.assign_attrs(units="m", standard_name="surface_altitude")
    data["surface_pressure"] = ps.assign_attrs(units="Pa", standard_name="surface_air_pressure")
    out = xr.Dataset(data)
    out.attrs.update({
        "hubkit_product_type": "troc",
        "hubkit_species": "o3",
        "Conventions": "CF-1.10",
        "title": "tropospheric ozone: lapse-rate tropopause, sub-columns and columns",
        "source": "hubkit.ozone.tropospheric_ozone",
        "references": "Gai et al. 2021, doi:10.3390/rs13020210; Reichler et al. 2003, "
                      "doi:10.1029/2003GL018240; Keppens et al. 2019, doi:10.5194/amt-12-4379-2019",
    })
    return out
