"""The tropospheric ozone (TROC) product: everything per column, the whole globe at once.

:func:`tropospheric_ozone_arrays` is the NumPy kernel (level axis last, any leading dims);
:func:`tropospheric_ozone` checks a dataset at the boundary and maps the kernel over its fields
as they are stored (:func:`dask.array.blockwise`: chunk-parallel on Dask, eager otherwise), so a
(time, level, lat, lon) chunk reaches the level-major kernel (:mod:`._kernel`) without a copy.
"""

from __future__ import annotations

import operator

import dask.array
import dask.base
import numpy as np
import xarray as xr

from hubkit import schemas
from hubkit.ozone._kernel import troc_levels
from hubkit.ozone.atmosphere import OzoneInputError
from hubkit.ozone.columns import N_SUBCOLUMNS
from hubkit.ozone.vertical import check_coefficients, level_order
from hubkit.units import factor_to

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


_ALIASES = {
    "o3_vmr": ("o3_vmr", "o3", "go3"),
    "temperature": ("temperature", "t", "ta"),
    "surface_pressure": ("surface_pressure", "ps", "sp"),
    "surface_altitude": ("surface_altitude", "orography", "zs"),
    "hybrid_a": ("hybrid_a", "ap", "a", "hyai"),
    "hybrid_b": ("hybrid_b", "b", "hybi"),
}


def tropospheric_ozone_arrays(o3_vmr, temperature, surface_pressure, surface_altitude, a, b, *,
                              fixed_altitude=6000.0, top_first=None, check=True, block=2048):
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
        check_coefficients(a, b, ps)
    if top_first is None:
        top_first = level_order(np.ravel(a[(0,) * (a.ndim - 1)]),
                                np.ravel(b[(0,) * (b.ndim - 1)])) == "top-first"
    batch = np.broadcast_shapes(x.shape[:-1], t.shape[:-1], ps.shape, zs.shape, a.shape[:-1],
                                b.shape[:-1])
    n = x.shape[-1]
    size = int(np.prod(batch))
    # (level, column) views: a field stored level before the horizontal dims needs no copy
    x, t = (np.moveaxis(np.broadcast_to(v, batch + (n,)), -1, 0).reshape(n, size) for v in (x, t))
    ps, zs = (np.broadcast_to(v, batch).reshape(size) for v in (ps, zs))
    a, b = (np.moveaxis(np.broadcast_to(v, batch + (n + 1,)), -1, 0).reshape(n + 1, size)
            if v.ndim > 1 else v[:, None] for v in (a, b))  # per-column or shared coefficients
    out = _troc_columns(x, t, ps, zs, a, b, top_first, float(fixed_altitude), block)
    return {name: v.reshape(batch + v.shape[1:]) for name, v in out.items()}


def _troc_columns(x, t, ps, zs, a, b, top_first, fixed_altitude, block=2048):
    """The kernel on (level, column) arrays, block by block; outputs (column[, subcolumn])."""
    if top_first:  # surface first from here on
        x, t, a, b = (v[::-1] for v in (x, t, a, b))
    size = ps.shape[0]
    out = {name: np.empty((size, N_SUBCOLUMNS) if name == "o3_subcolumns" else size,
                          dtype=np.int8 if name == "tropopause_flag" else float)
           for name in OUTPUTS}
    for s in range(0, size, block):
        part = slice(s, min(s + block, size))
        ab = [v[:, part] if v.shape[1] > 1 else v for v in (a, b)]
        troc_levels(x[:, part], t[:, part], ps[part], zs[part], *ab, fixed_altitude,
                    {name: v[part] for name, v in out.items()})
    return out


def _native_block(x, t, ps, zs, *, level_axis, ps_axes, zs_axes, a, b, top_first,
                  fixed_altitude, vmr_scale):
    """The kernel on one block as stored (the level at ``level_axis``, the other dims in the
    output's order; ``ps_axes``/``zs_axes``: the output axes of the surface fields' dims).
    Returns the outputs in the order of :data:`OUTPUTS`."""
    if isinstance(x, list):  # dask.array.blockwise hands over the single level chunk in a list
        x, t = x[0], t[0]
    if vmr_scale != 1.0:
        x = x * vmr_scale
    n = x.shape[level_axis]
    batch = x.shape[:level_axis] + x.shape[level_axis + 1:]
    size = int(np.prod(batch))

    def flat(v, axes):  # a surface field broadcast over the output dims, flattened
        shape = [1] * len(batch)
        for axis, length in zip(axes, v.shape, strict=True):
            shape[axis] = length
        return np.broadcast_to(np.asarray(v, dtype=float).reshape(shape), batch).reshape(size)

    out = _troc_columns(np.moveaxis(x, level_axis, 0).reshape(n, size),
                        np.moveaxis(t, level_axis, 0).reshape(n, size),
                        flat(ps, ps_axes), flat(zs, zs_axes), a[:, None], b[:, None],
                        top_first, fixed_altitude)
    return tuple(out[name].reshape(batch + out[name].shape[1:]) for name in OUTPUTS)


def _map_blocks(o3, t, ps, zs, level, **kwargs):
    """:func:`_native_block` over the fields as stored, eagerly or chunk by chunk with Dask
    (no transposed copy of the 4-D fields: each chunk reaches the kernel as it is stored).
    Returns the output arrays and their dims."""
    dims = tuple(d for d in o3.dims if d != level)
    t = t.transpose(*o3.dims)
    ps = ps.transpose(*[d for d in dims if d in ps.dims])
    zs = zs.transpose(*[d for d in dims if d in zs.dims])
    kwargs.update(level_axis=o3.dims.index(level), ps_axes=[dims.index(d) for d in ps.dims],
                  zs_axes=[dims.index(d) for d in zs.dims])
    out_dims = [dims + ("subcolumn",) if name == "o3_subcolumns" else dims for name in OUTPUTS]
    if not any(isinstance(v.data, dask.array.Array) for v in (o3, t, ps, zs)):
        return _native_block(o3.values, t.values, ps.values, zs.values, **kwargs), out_dims
    packed = dask.array.blockwise(
        _native_block, dims, o3.data, o3.dims, t.data, o3.dims, ps.data, ps.dims, zs.data,
        zs.dims, concatenate=False, meta=np.empty((0,) * len(dims)), name="troc-" + dask.base
        .tokenize(o3.data, t.data, ps.data, zs.data, kwargs), **kwargs)
    arrays = []
    for i, name in enumerate(OUTPUTS):
        sub = name == "o3_subcolumns"
        arrays.append(packed.map_blocks(
            operator.getitem, i, dtype=np.int8 if name == "tropopause_flag" else float,
            meta=np.empty((0,) * (len(dims) + sub)), new_axis=[len(dims)] if sub else None,
            chunks=packed.chunks + ((N_SUBCOLUMNS,),) if sub else packed.chunks,
            name=f"{name}-{packed.name}"))
    return arrays, out_dims


def _find(ds: xr.Dataset, key: str, source: str) -> xr.DataArray:
    for name in _ALIASES[key]:
        if name in ds.variables:
            return ds[name]
    raise OzoneInputError(f"{source}: variable {key!r} is missing (looked for "
                          f"{list(_ALIASES[key])}); expected it for the tropospheric ozone")


def _in_units(da: xr.DataArray, name: str, expected: str, source: str) -> xr.DataArray:
    """``da`` in ``expected`` units (any unit of the same quantity converts; none: assumed)."""
    factor = factor_to(da.attrs.get("units"), expected, missing=expected, error=OzoneInputError,
                       what=f"{source}: variable {name!r} ({da.name})")
    return da if factor == 1.0 else da * factor


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
    vmr_scale = factor_to(o3.attrs.get("units"), "mol mol-1", missing="mol mol-1",
                          error=OzoneInputError, what=f"{source}: variable 'o3_vmr' ({o3.name})")
    t = _in_units(t, "temperature", "K", source)
    ps = _in_units(ps, "surface_pressure", "Pa", source)
    zs = _in_units(zs, "surface_altitude", "m", source)
    a = _in_units(a, "hybrid_a", "Pa", source)
    b = _in_units(b, "hybrid_b", "1", source)
    level = [d for d in o3.dims if d not in ps.dims]
    if len(level) != 1:
        raise OzoneInputError(f"{source}: o3_vmr has dims {o3.dims} and surface_pressure "
                              f"{ps.dims}; expected o3_vmr to have exactly one more (the level)")
    level = level[0]
    if set(t.dims) != set(o3.dims):
        raise OzoneInputError(f"{source}: temperature has dims {t.dims}, expected those of "
                              f"o3_vmr {o3.dims}")
    if not set(zs.dims) <= set(ps.dims):
        raise OzoneInputError(f"{source}: surface_altitude has dims {zs.dims}, expected some of "
                              f"those of surface_pressure {ps.dims}")
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
    check_coefficients(a_np, b_np, ps_range)
    top_first = level_order(a_np, b_np) == "top-first"
    arrays, out_dims = _map_blocks(
        o3, t, ps, zs, level, a=a_np, b=b_np, top_first=top_first,
        fixed_altitude=float(fixed_altitude), vmr_scale=vmr_scale)
    coords = {k: v for src in (o3, t, ps, zs) for k, v in src.coords.items()
              if level not in v.dims}
    outs = [xr.DataArray(v, dims=d, coords={k: c for k, c in coords.items()
                                            if set(c.dims) <= set(d)})
            for v, d in zip(arrays, out_dims, strict=True)]
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
        "hubkit_product_type": schemas.TROC.product_type,
        "hubkit_species": "o3",
        "Conventions": "CF-1.10",
        "title": "tropospheric ozone: lapse-rate tropopause, sub-columns and columns",
        "source": "hubkit.ozone.tropospheric_ozone",
        "references": "Gai et al. 2021, doi:10.3390/rs13020210; Reichler et al. 2003, "
                      "doi:10.1029/2003GL018240; Keppens et al. 2019, doi:10.5194/amt-12-4379-2019",
    })
    return out
