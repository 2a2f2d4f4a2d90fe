"""A gridded field sampled at stations: the model or analysis value where and when the station
measured, to compare a gridded product with in-situ series.

Linear in time, bilinear in latitude and longitude (periodic across the date line on a global
grid), then linear in height between the field's levels at that place and time, for the
station's sampling altitude (ground altitude + inlet height). Points outside the grid's time or
latitude range, or above/below its levels, are NaN, never extrapolated.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from hubkit.errors import ComparisonInputError

__all__ = ["compare_field_with_series", "sample_at_points"]


def _bracket(axis: np.ndarray, x: np.ndarray):
    """Lower index and weight of ``x`` on an increasing ``axis``; NaN weight outside it."""
    k = np.clip(np.searchsorted(axis, x, side="right") - 1, 0, axis.size - 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        w = (x - axis[k]) / (axis[k + 1] - axis[k])
    inside = (x >= axis[0]) & (x <= axis[-1])
    return k, np.where(inside, w, np.nan)


def sample_at_points(field: xr.DataArray, latitude, longitude, time, *, altitude=None,
                     height: xr.DataArray | None = None) -> np.ndarray:
    """Values of a gridded field at points in space and time.

    Parameters
    ----------
    field : xarray.DataArray
        Dims ``time``, ``latitude``, ``longitude`` and optionally one vertical dim (any name,
        e.g. ``level``), in any order; coordinates increasing or decreasing.
    latitude, longitude : array_like, (n,)
        Points. [°] Longitudes in any convention.
    time : array_like of datetime64, (n,)
        Times of the points; the field is interpolated linearly in time.
    altitude : array_like, (n,), optional
        Sampling altitude above sea level (station altitude + inlet height) [m]; needed when the
        field has a vertical dim.
    height : xarray.DataArray, optional
        Altitude above sea level of the field's levels, with the field's dims (or broadcastable
        to them). [m]

    Returns
    -------
    ndarray, (n,)
        The field at the points (NaN outside the grid).
    """
    lat_name, lon_name = "latitude", "longitude"
    vertical = [d for d in field.dims if d not in ("time", lat_name, lon_name)]
    if len(vertical) > 1:
        raise ComparisonInputError(
            f"field has several non-horizontal dims {vertical}; expected one")
    fields = [field]
    if vertical:
        if altitude is None or height is None:
            raise ComparisonInputError(f"field has the vertical dim {vertical[0]!r}: give the "
                                       "points' altitude [m] and the levels' height [m]")
        fields.append(height.broadcast_like(field))
    for name in ("time", lat_name, lon_name):
        if field.sizes.get(name, 0) < 2:
            raise ComparisonInputError(f"field needs at least 2 points along {name!r} to "
                                       f"interpolate; it has dims {dict(field.sizes)}")
    order = ["time", lat_name, lon_name, *vertical]
    lat_axis = field[lat_name].values.astype(float)
    lon_axis = field[lon_name].values.astype(float)
    t_axis = field["time"].values.astype("datetime64[ns]").astype(np.int64).astype(float)
    flips = {}
    for name, axis in (("time", t_axis), (lat_name, lat_axis), (lon_name, lon_axis)):
        flips[name] = axis.size > 1 and axis[1] < axis[0]
    arrays = []
    for f in fields:
        f = f.transpose(*order)
        a = np.asarray(f.values, dtype=float)
        for ax, name in enumerate(("time", lat_name, lon_name)):
            if flips[name]:
                a = np.flip(a, axis=ax)
        arrays.append(a)
    if flips["time"]:
        t_axis = t_axis[::-1]
    if flips[lat_name]:
        lat_axis = lat_axis[::-1]
    if flips[lon_name]:
        lon_axis = lon_axis[::-1]
    # a global grid is periodic in longitude: append the first column 360° further
    step = np.diff(lon_axis).mean() if lon_axis.size > 1 else 360.0
    if lon_axis.size > 1 and abs(lon_axis[-1] - lon_axis[0] + step - 360.0) < 1e-6 * 360:
        lon_axis = np.append(lon_axis, lon_axis[0] + 360.0)
        arrays = [np.concatenate([a, a[:, :, :1]], axis=2) for a in arrays]
    lat = np.asarray(latitude, dtype=float)
    lon = np.asarray(longitude, dtype=float)
    lon = lon_axis[0] + (lon - lon_axis[0]) % 360.0  # into the grid's convention
    t = np.asarray(time).astype("datetime64[ns]").astype(np.int64).astype(float)

    it, wt = _bracket(t_axis, t)
    iy, wy = _bracket(lat_axis, lat)
    ix, wx = _bracket(lon_axis, lon)
    corners = [(dt_, ft, dy, fy, dx, fx) for dt_, ft in ((0, 1 - wt), (1, wt))
               for dy, fy in ((0, 1 - wy), (1, wy)) for dx, fx in ((0, 1 - wx), (1, wx))]
    rows = []
    for a in arrays:
        v = 0.0
        for dt_, ft, dy, fy, dx, fx in corners:  # the 8 corners of the time-lat-lon cell
            w = ft * fy * fx
            v = v + (w[:, None] if a.ndim == 4 else w) * a[it + dt_, iy + dy, ix + dx]
        rows.append(v)
    if not vertical:
        return np.asarray(rows[0], dtype=float)
    values, heights = rows  # (n, levels) each, at the points
    z = np.asarray(altitude, dtype=float)
    order = np.argsort(heights, axis=1)
    h = np.take_along_axis(heights, order, axis=1)
    v = np.take_along_axis(values, order, axis=1)
    rows_ok = np.isfinite(h).all(axis=1) & np.isfinite(v).all(axis=1) & np.isfinite(z)
    inside = rows_ok & (z >= h[:, 0]) & (z <= h[:, -1])
    k = np.clip((h <= z[:, None]).sum(axis=1), 1, h.shape[1] - 1)
    r = np.arange(z.size)
    h0, h1, v0, v1 = h[r, k - 1], h[r, k], v[r, k - 1], v[r, k]
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.where(h1 > h0, (z - h0) / (h1 - h0), 0.0)
    return np.where(inside, v0 + w * (v1 - v0), np.nan)

def compare_field_with_series(field: xr.DataArray, series: xr.Dataset, *,
                              height: xr.DataArray | None = None):
    """A gridded field against a station's measurements, row by row.

    Parameters
    ----------
    field : xarray.DataArray
        As for :func:`sample_at_points`, in the unit of the station's ``value``.
    series : xarray.Dataset
        A ``surface-obs`` product (or :func:`hubkit.get_obs` output): ``value`` on ``time`` with
        ``latitude``, ``longitude`` and, for a field with levels, the sampling ``altitude``
        (station elevation + inlet height) [m] per row.
    height : xarray.DataArray, optional
        Altitude of the field's levels [m] (a field with a vertical dim needs it).

    Returns
    -------
    pandas.DataFrame
        ``time``, ``latitude``, ``longitude``, ``altitude`` (when used), ``inlet_height`` (when
        the series has it), ``observed``, ``model`` and ``difference`` (model − observed); rows
        outside the field's range have NaN ``model``.
    """
    import pandas as pd

    units_field, units_obs = field.attrs.get("units"), series["value"].attrs.get("units")
    if units_field and units_obs and units_field != units_obs:
        raise ComparisonInputError(f"the field is in {units_field!r} and the station's value in "
                                   f"{units_obs!r}; convert one first (get_obs(units=...))")
    vertical = [d for d in field.dims if d not in ("time", "latitude", "longitude")]
    altitude = None
    if vertical:
        if "altitude" not in series.variables:
            raise ComparisonInputError("the field has levels: the station series needs its "
                                       "sampling 'altitude' [m] per row")
        altitude = np.asarray(series["altitude"].values, dtype=float)
    lat = np.broadcast_to(np.asarray(series["latitude"].values, float), series["time"].shape)
    lon = np.broadcast_to(np.asarray(series["longitude"].values, float), series["time"].shape)
    model = sample_at_points(field, lat, lon, series["time"].values, altitude=altitude,
                             height=height)
    observed = np.asarray(series["value"].values, dtype=float)
    table = {"time": series["time"].values, "latitude": lat, "longitude": lon}
    if altitude is not None:
        table["altitude"] = altitude
    if "inlet_height" in series.variables:
        table["inlet_height"] = np.broadcast_to(
            np.asarray(series["inlet_height"].values, float), series["time"].shape)
    table.update(observed=observed, model=model, difference=model - observed)
    return pd.DataFrame(table)
