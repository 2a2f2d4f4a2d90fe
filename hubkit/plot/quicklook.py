"""A first figure of any product (``hubkit plot ID``)."""

from __future__ import annotations

import numpy as np

from hubkit.errors import PlotInputError
from hubkit.plot.maps import field_map, peaks_map, soundings_map
from hubkit.plot.products import time_series
from hubkit.plot.scales import flag_summary

__all__ = ["quick_look"]

#: Variables a soundings quick look prefers, first found.
_SOUNDING_VARIABLES = ("xco2", "xch4", "xco", "total_ozone", "o3_column", "value")
#: Positions, times and identifiers: never the variable a quick look colours by.
_NOT_DRAWN = ("latitude", "longitude", "time", "sounding_id", "orbit", "footprint", "peak")


def _numeric(data, names) -> list[str]:
    """The names among ``names`` worth colouring by: numeric (not bool), not a flag, position,
    time or identifier. Only dtypes are looked at (nothing lazy is computed)."""
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    return [str(n) for n in names if str(n) not in _NOT_DRAWN and "flag" not in str(n)
            and is_numeric_dtype(data[n].dtype) and not is_bool_dtype(data[n].dtype)]


def _pick(requested, candidates: list[str], name: str, what: str) -> str:
    if requested is not None:
        if requested not in candidates:
            raise PlotInputError(f"{name} has no {what} {requested!r} to draw; expected one of "
                                 f"{', '.join(candidates) or 'none'}")
        return requested
    if not candidates:
        raise PlotInputError(f"{name} has no numeric {what} to draw")
    return next((v for v in _SOUNDING_VARIABLES if v in candidates), candidates[0])


def quick_look(data, *, name: str = "product", variable: str | None = None,
               title: str | None = None):
    """A first figure of any product, drawn by the function that suits its shape.

    - a table (:func:`hubkit.export.as_table`: Parquet tables, datasets on ``peak``) with
      ``latitude``/``longitude``: :func:`peaks_map` when it has the peak height ``delta``, else
      its points coloured by ``variable`` (:func:`soundings_map`);
    - a dataset on ``latitude`` × ``longitude``: :func:`field_map` of ``variable`` (default the
      first such), other dims at their first index (named in the title), cells without a value
      hatched and explained by the product's CF flags on the same grid;
    - a dataset with ``value`` on ``time`` (station data): :func:`time_series`;
    - soundings (``latitude``, ``longitude`` and ``variable`` on one dim): :func:`soundings_map`
      (default ``xco2``, ``xch4`` ..., else the first numeric variable).

    Returns ``(figure, what)``, ``what`` saying which figure was drawn. Other products raise
    :class:`PlotInputError` (a :class:`~hubkit.errors.ProductKindError` for a table without
    positions) naming ``name`` and what was expected.
    """
    import pandas as pd
    import xarray as xr

    from hubkit.export import TABLE_DIM, as_table, to_geojson

    label = title or name
    if isinstance(data, pd.DataFrame) or (isinstance(data, xr.Dataset)
                                         and TABLE_DIM in data.dims):
        table = as_table(data, name=name)
        to_geojson(table.head(0), name=name)  # the same refusal as export: positions needed
        if "delta" in table.columns and variable in (None, "delta"):
            return peaks_map(table, title=f"{label}: {len(table)} detection(s)"), "peaks map"
        chosen = _pick(variable, _numeric(table, table.columns), name, "column")
        ds = xr.Dataset({c: ("row", table[c].to_numpy()) for c in
                         ("latitude", "longitude", chosen)})
        ds[chosen].attrs["units"] = (table.attrs.get("units") or {}).get(chosen, "")
        fig = soundings_map(ds, variable=chosen, title=f"{label}: {chosen}, {len(table)} rows")
        return fig, f"map of {chosen}"
    if not isinstance(data, xr.Dataset):
        raise PlotInputError(f"{name}: cannot draw a {type(data).__name__}; expected a product "
                             "opened from the store (a dataset or a table)")
    if {"latitude", "longitude"} <= set(data.dims):
        gridded = [str(k) for k, v in data.data_vars.items()
                   if {"latitude", "longitude"} <= set(v.dims)
                   and np.issubdtype(v.dtype, np.number)]
        chosen = _pick(variable, gridded, name, "gridded variable")
        da = data[chosen]
        at = {d: 0 for d in da.dims if d not in ("latitude", "longitude")}
        da = da.isel(at)
        where = ", ".join(f"{d}={_label_of(da[d].values) if d in da.coords else 0}"
                          for d in at)
        what = f"map of {chosen}" + (f" at {where}" if where else "")
        fig = field_map(da, title=f"{label}: {chosen}" + (f" ({where})" if where else ""),
                        gaps=_gap_reasons(data, da, at))
        return fig, what
    if "value" in data.data_vars and data["value"].dims == ("time",) and variable in (
            None, "value"):
        return time_series(data, title=f"{label}: value"), "time series of value"
    if "latitude" in data.variables and "longitude" in data.variables:
        dims = data["latitude"].dims
        if len(dims) == 1 and data["longitude"].dims == dims:
            candidates = _numeric(data, [k for k, v in data.data_vars.items() if v.dims == dims])
            chosen = _pick(variable, candidates, name, "variable")
            fig = soundings_map(data, variable=chosen,
                                title=f"{label}: {chosen}, {data.sizes[dims[0]]:,} soundings")
            return fig, f"soundings map of {chosen}"
    dims = ", ".join(f"{k}={v}" for k, v in data.sizes.items()) or "none"
    raise PlotInputError(
        f"{name} has dims {dims}; a quick look needs a latitude × longitude grid, soundings "
        "with latitude/longitude along one dim, station values on time, or a table with "
        "latitude/longitude")


def _gap_reasons(data, da, at) -> str | None:
    """What the product's CF flag variables (``flag_meanings``) on the same grid say about the
    cells of ``da`` without a value (:func:`~hubkit.plot.scales.flag_summary`), or None."""
    missing = np.asarray(da.isnull().values)
    if not missing.any():
        return None
    reasons = []
    for key, flags in data.data_vars.items():
        if (key == da.name or "flag_meanings" not in flags.attrs
                or not {"latitude", "longitude"} <= set(flags.dims)
                or not set(flags.dims) <= set(da.dims) | set(at)):
            continue
        flags = flags.isel({d: i for d, i in at.items() if d in flags.dims})
        text = flag_summary(flags.transpose(*da.dims), where=missing)
        if text:
            reasons.append(text)
    return "; ".join(reasons) or None


def _label_of(value) -> str:
    """A coordinate value for a title: times in ISO 8601, numbers short."""
    value = np.asarray(value)
    if np.issubdtype(value.dtype, np.datetime64):
        return str(np.datetime_as_string(value, unit="s"))
    if np.issubdtype(value.dtype, np.number):
        return f"{value.item():g}"
    return str(value.item())
