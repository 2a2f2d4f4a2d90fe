"""UV index and UV-A irradiance at the surface, interpolated in the lookup table.

:func:`uv_index` and :func:`uva` take the seven inputs of the table (total ozone column, surface
elevation, surface albedo, aerosol optical depth and single-scattering albedo, solar zenith angle,
cloud optical thickness) as NumPy arrays or scalars (broadcast together) or as xarray DataArrays
(aligned and broadcast by dimension name; units checked from ``attrs["units"]``; Dask-backed
fields stay lazy and run chunk-parallel). :func:`surface_uv_arrays` returns both and a flag.

The inputs are checked at this boundary: a value outside its physical range (negative ozone,
albedo outside [0, 1] ...) raises :class:`~hubkit.errors.UVInputError` naming the variable, the
range found and the range expected; a physically valid value outside the table's range gives NaN
and the flag ``outside_table``; the Sun below the horizon (SZA >= 90°) gives exactly 0.

References
----------
.. [1] Gai et al., Remote Sens. 13, 210, 2021, section 4.3.4. doi:10.3390/rs13020210
.. [2] Lipponen et al., Atmosphere 11, 324, 2020. doi:10.3390/atmos11040324
.. [3] WHO, WMO, UNEP, ICNIRP, "Global Solar UV Index: a practical guide", WHO, Geneva, 2002
   (one UV index unit is 25 mW m-2 of erythemally weighted irradiance).
"""

from __future__ import annotations

import math

import numpy as np

from hubkit.constants import AVOGADRO, DOBSON_UNIT
from hubkit.errors import UVInputError
from hubkit.units import factor_to
from hubkit.uv.interp import TableInterpolator

__all__ = ["FLAG_MEANINGS", "MOL_M2_PER_DU", "check_range", "surface_uv_arrays", "uv_index",
           "uva"]

#: 1 DU = 2.6868e20 molecules m-2 = 4.4616e-4 mol m-2.
MOL_M2_PER_DU = DOBSON_UNIT / AVOGADRO

#: Values of the flag returned by :func:`surface_uv_arrays` (CF ``flag_values``/``flag_meanings``).
FLAG_MEANINGS = {
    0: "interpolated",
    1: "sun_below_horizon",
    2: "outside_table",
    3: "missing_input",
}

#: Argument order of the public functions (the table's dims are in the :mod:`hubkit.uv` order).
INPUTS = ("ozone", "elevation", "albedo", "aod", "ssa", "sza", "cot")

#: Units of the table's axes that have units; the others are dimensionless.
_TABLE_UNITS = {"ozone": "DU", "elevation": "m", "sza": "degree"}

_LONG_NAMES = {
    "ozone": "total ozone column", "elevation": "surface elevation",
    "albedo": "surface albedo", "aod": "aerosol optical depth at 550 nm",
    "ssa": "aerosol single-scattering albedo", "sza": "solar zenith angle",
    "cot": "cloud optical thickness",
}

_OUTPUT_ATTRS = {
    "uvi": {"units": "1", "long_name": "UV index at the surface",
            "standard_name": "ultraviolet_index",
            "comment": "erythemally weighted (CIE 1998) global irradiance / 25 mW m-2"},
    "uva": {"units": "W m-2",
            "long_name": "UV-A (315-400 nm) global downward irradiance at the surface"},
    "uv_flag": {"long_name": "surface UV lookup flag",
                "flag_values": np.array(sorted(FLAG_MEANINGS), dtype=np.int8),
                "flag_meanings": " ".join(FLAG_MEANINGS[k] for k in sorted(FLAG_MEANINGS))},
}

#: Prepared interpolators of the tables seen last (the table object is kept to check identity).
_PREPARED: list[tuple[object, TableInterpolator]] = []
_PREPARED_MAX = 4


def _interpolator(table) -> TableInterpolator:
    """The interpolator of ``uvi`` and ``uva`` of ``table`` (default: the shipped table).

    Prepared interpolators (transformed copies of the table) are kept for the last few table
    objects, by identity: a table modified in place after a call is not seen again; pass a new
    Dataset instead.
    """
    if table is None:
        from hubkit.uv.table import default_table  # the table module is heavy; load on use

        table = default_table()
    for t, interp in _PREPARED:
        if t is table:
            return interp
    missing = [d for d in INPUTS if d not in table.dims]
    if missing:
        raise UVInputError(f"the lookup table lacks dims {missing}; expected dims "
                           f"{list(INPUTS)} (see hubkit.uv)")
    interp = TableInterpolator(table, ["uvi", "uva"])
    _PREPARED.insert(0, (table, interp))
    del _PREPARED[_PREPARED_MAX:]
    return interp


def check_range(name: str, x: np.ndarray, caller: str) -> None:
    """Raise UVInputError if ``x`` (NaN allowed: missing) leaves the physical range of ``name``
    (one of :data:`INPUTS`); the message starts with ``caller``."""
    if x.size == 0:
        return
    with np.errstate(invalid="ignore"):
        if name == "ozone":
            bad, expected = x < 0, "total ozone >= 0 DU"
        elif name in ("aod", "cot"):
            bad, expected = x < 0, f"{name} >= 0 (dimensionless)"
        elif name == "albedo":
            bad, expected = (x < 0) | (x > 1), "albedo in [0, 1]"
        elif name == "ssa":
            bad, expected = (x <= 0) | (x > 1), "ssa in (0, 1]"
        elif name == "sza":
            bad, expected = (x < 0) | (x > 180), "solar zenith angle in [0, 180] degree"
        else:
            return
    if np.any(bad):
        found = x[bad]
        unit = {"ozone": " DU", "sza": " degree", "elevation": " m"}.get(name, "")
        raise UVInputError(f"{caller}: {name} ({_LONG_NAMES[name]}) has {found.size} value(s) "
                           f"from {found.min():g} to {found.max():g}{unit}; expected {expected}")


def _kernel(ozone, elevation, albedo, aod, ssa, sza, cot, sza_max=None, *, interp, workers,
            caller):
    """UVI, UV-A and flag on NumPy inputs (broadcast); the one code path of every entry point."""
    values = dict(zip(INPUTS, (ozone, elevation, albedo, aod, ssa, sza, cot), strict=True))
    values = {k: np.asarray(v, dtype=np.float64) for k, v in values.items()}
    for name, x in values.items():
        check_range(name, x, caller)
    if sza_max is not None:
        _check_not_radians(float(np.asarray(sza_max)), caller)
    shape = np.broadcast_shapes(*(x.shape for x in values.values()))
    sza_b = np.broadcast_to(values["sza"], shape)
    night = sza_b >= 90.0
    missing = np.zeros(shape, dtype=bool)
    for x in values.values():
        missing |= np.isnan(x)
    day = ~(night | missing)
    flag = np.full(shape, 3, dtype=np.int8)  # missing input unless shown otherwise
    flag[night] = 1
    flag[day] = 0
    uvi = np.full(shape, np.nan)
    uva = np.full(shape, np.nan)
    uvi[night] = 0.0
    uva[night] = 0.0
    if day.all():
        (uvi_d, uva_d), outside = interp(workers=workers, **values)
        uvi, uva = uvi_d, uva_d
        flag[outside] = 2
    elif day.any():
        # only the daytime points are interpolated (about half of a global field)
        picked = {k: (x.reshape(()) if x.size == 1 else np.broadcast_to(x, shape)[day])
                  for k, x in values.items()}
        (uvi_d, uva_d), outside = interp(workers=workers, **picked)
        uvi[day] = uvi_d
        uva[day] = uva_d
        where = np.flatnonzero(day.reshape(-1))[np.broadcast_to(outside, uvi_d.shape)]
        flag.reshape(-1)[where] = 2
    return uvi, uva, flag


def _check_not_radians(sza_max: float, caller: str) -> None:
    if np.isfinite(sza_max) and sza_max <= math.pi:
        raise UVInputError(
            f"{caller}: sza (solar zenith angle) has units of degree but all its values are "
            f"<= pi (largest {sza_max:g}); it looks like radians. Convert with numpy.degrees, "
            "or set attrs['units'] = 'radian'")


def _units_factor(name: str, da, caller: str) -> float:
    """Factor from the DataArray's units to the table's (:func:`hubkit.units.factor_to`); the
    table's ozone, elevation and solar zenith angle need a ``units`` attribute, the
    dimensionless inputs may have none."""
    return factor_to(da.attrs.get("units"), _TABLE_UNITS.get(name, "1"), error=UVInputError,
                     missing=None if name in _TABLE_UNITS else "1",
                     what=f"{caller}: {name} ({_LONG_NAMES[name]})")


def _surface_uv_xarray(inputs: dict, interp: TableInterpolator, caller: str):
    import xarray as xr

    args, lazy = [], False
    sza_max = None
    for name in INPUTS:
        v = inputs[name]
        if isinstance(v, xr.DataArray):
            factor = _units_factor(name, v, caller)
            is_dask = v.chunks is not None
            lazy = lazy or is_dask
            converted = v if factor == 1.0 else v * factor
            if name == "sza" and factor == 1.0:
                # all finite values <= pi with a degree attribute: radians by mistake. On Dask
                # the largest value is a lazy 0-d array the kernel checks when it runs.
                top = v.where(np.isfinite(v)).max()
                if is_dask:
                    sza_max = top
                else:
                    _check_not_radians(float(top), caller)
            args.append(converted)
        elif np.ndim(v) == 0:
            args.append(float(np.asarray(v, dtype=np.float64)))
        else:
            raise UVInputError(
                f"{caller}: {name} is a {type(v).__name__} of shape {np.shape(v)} mixed with "
                "xarray DataArrays; expected a DataArray (with dims) or a scalar")
    if sza_max is None:
        sza_max = np.nan

    def kernel(*a):
        return _kernel(*a, interp=interp, workers=1 if lazy else None, caller=caller)

    uvi, uva, flag = xr.apply_ufunc(
        kernel, *args, sza_max,
        dask="parallelized",
        output_dtypes=[np.float64, np.float64, np.int8],
        output_core_dims=[[], [], []],
        keep_attrs=False,
    )
    out = xr.Dataset({"uvi": uvi, "uva": uva, "uv_flag": flag})
    for name, attrs in _OUTPUT_ATTRS.items():
        out[name].attrs.update(attrs)
    return out


def surface_uv_arrays(ozone, elevation, albedo, aod, ssa, sza, cot, *, table=None,
                      workers=None):
    """UV index, UV-A irradiance and a flag, interpolated in the lookup table.

    Multilinear interpolation in the table's transformed axes (e.g. ln ozone, cos SZA) and
    values (e.g. ln UVI), after Gai et al. (2021) [1]_ and Lipponen et al. (2020) [2]_; see
    :mod:`hubkit.uv.interp`.

    Parameters
    ----------
    ozone : array_like or xarray.DataArray
        Total ozone column, >= 0. [DU] (DataArray units ``DU``/``Dobson units`` or ``mol m-2``)
    elevation : array_like or xarray.DataArray
        Surface elevation above sea level. [m] (DataArray units ``m`` or ``km``)
    albedo : array_like or xarray.DataArray
        Surface albedo (Lambertian), in [0, 1]. [1]
    aod : array_like or xarray.DataArray
        Aerosol optical depth at 550 nm, >= 0. [1]
    ssa : array_like or xarray.DataArray
        Aerosol single-scattering albedo, in (0, 1]. [1]
    sza : array_like or xarray.DataArray
        Solar zenith angle, in [0, 180]. [degree] (DataArray units ``degree``/``degrees`` or
        ``radian``; values all <= π with degree units are rejected as radians by mistake)
    cot : array_like or xarray.DataArray
        Cloud optical thickness, >= 0. [1]
    table : xarray.Dataset, optional
        Lookup table in the :mod:`hubkit.uv` format; default
        :func:`hubkit.uv.table.default_table`.
    workers : int, optional
        Threads for NumPy-backed inputs (default: every CPU). Dask inputs use Dask's own.

    Returns
    -------
    uvi, uva, flag : ndarray, ndarray, ndarray of int8
        For NumPy or scalar inputs: UV index [1], UV-A irradiance [W m-2] and the flag
        (:data:`FLAG_MEANINGS`: 0 interpolated, 1 Sun below the horizon: values exactly 0,
        2 outside the table: NaN, 3 a NaN input: NaN), in the broadcast shape.
    xarray.Dataset
        When any input is a DataArray: variables ``uvi``, ``uva`` and ``uv_flag`` with CF
        attributes (the non-DataArray inputs must then be scalars); lazy when an input is
        Dask-backed (input range errors are then raised at compute time).

    Raises
    ------
    UVInputError
        An input outside its physical range, a DataArray with missing or wrong units (ozone,
        elevation, sza must carry units), an SZA in degrees that looks like radians.
    """
    caller = "surface_uv_arrays"
    inputs = dict(zip(INPUTS, (ozone, elevation, albedo, aod, ssa, sza, cot), strict=True))
    interp = _interpolator(table)
    if any(type(v).__name__ == "DataArray" for v in inputs.values()):
        return _surface_uv_xarray(inputs, interp, caller)
    uvi, uva, flag = _kernel(*inputs.values(), interp=interp, workers=workers, caller=caller)
    return uvi[()], uva[()], flag[()]


def _one(name: str, caller: str, inputs: tuple, table, workers):
    interp = _interpolator(table)
    values = dict(zip(INPUTS, inputs, strict=True))
    if any(type(v).__name__ == "DataArray" for v in values.values()):
        ds = _surface_uv_xarray(values, interp, caller)
        return ds[name]
    out = _kernel(*inputs, interp=interp, workers=workers, caller=caller)
    return out[0 if name == "uvi" else 1][()]


def uv_index(ozone, elevation, albedo, aod, ssa, sza, cot, *, table=None, workers=None):
    """UV index at the surface from the lookup table.

    .. math:: \\mathrm{UVI} = 40\\ \\mathrm{m^2\\,W^{-1}} \\int E(\\lambda)\\,
              s_{er}(\\lambda)\\, d\\lambda

    with ``E`` the global downward spectral irradiance and ``s_er`` the CIE (1998) erythemal
    action spectrum [3]_, tabulated by the radiative-transfer engine and interpolated here
    (:func:`surface_uv_arrays` for the parameters, the flag, and the references).

    Parameters
    ----------
    ozone, elevation, albedo, aod, ssa, sza, cot : array_like or xarray.DataArray
        Total ozone [DU], surface elevation [m], surface albedo [1], aerosol optical depth at
        550 nm [1], aerosol single-scattering albedo [1], solar zenith angle [degree], cloud
        optical thickness [1]; see :func:`surface_uv_arrays`.
    table : xarray.Dataset, optional
        Lookup table; default :func:`hubkit.uv.table.default_table`.
    workers : int, optional
        Threads for NumPy-backed inputs.

    Returns
    -------
    ndarray, float or xarray.DataArray
        UV index [1]: 0 where the Sun is below the horizon, NaN outside the table or for NaN
        input. A DataArray named ``uvi`` (lazy for Dask input) when any input is a DataArray.

    Examples
    --------
    >>> uv_index(300.0, 0.0, 0.05, 0.0, 0.9, 0.0, 0.0)  # doctest: +SKIP
    12.3...
    """
    return _one("uvi", "uv_index", (ozone, elevation, albedo, aod, ssa, sza, cot), table,
                workers)


def uva(ozone, elevation, albedo, aod, ssa, sza, cot, *, table=None, workers=None):
    """UV-A (315-400 nm) global downward irradiance at the surface from the lookup table.

    .. math:: E_{UVA} = \\int_{315\\,nm}^{400\\,nm} E(\\lambda)\\, d\\lambda

    Parameters
    ----------
    ozone, elevation, albedo, aod, ssa, sza, cot : array_like or xarray.DataArray
        As for :func:`uv_index` (see :func:`surface_uv_arrays`).
    table : xarray.Dataset, optional
        Lookup table; default :func:`hubkit.uv.table.default_table`.
    workers : int, optional
        Threads for NumPy-backed inputs.

    Returns
    -------
    ndarray, float or xarray.DataArray
        UV-A irradiance [W m-2]: 0 where the Sun is below the horizon, NaN outside the table or
        for NaN input. A DataArray named ``uva`` when any input is a DataArray.
    """
    return _one("uva", "uva", (ozone, elevation, albedo, aod, ssa, sza, cot), table, workers)
