"""The DAS layout the cycles read and write: ozone and meteorology on hybrid levels.

Ozone, temperature and surface pressure on the hybrid levels of a regular latitude-longitude
grid: the ``das`` product (:func:`hubkit.simulate.das_field` makes a synthetic one).

:func:`das_like` checks an input, :func:`initial_field` and :func:`field_at` read it,
:func:`das_dataset` writes the product.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from hubkit.assimilation.background import level_dim
from hubkit.errors import AssimilationInputError

__all__ = ["DAS_VARS", "das_dataset", "das_like", "field_at", "initial_field"]

#: Variables of a DAS-like dataset.
DAS_VARS = ("o3_vmr", "temperature", "surface_pressure", "surface_altitude", "hybrid_a",
            "hybrid_b")


def das_like(ds: xr.Dataset, name: str) -> xr.Dataset:
    """``ds`` if it has every variable of :data:`DAS_VARS` and a level dim; else an
    AssimilationInputError that calls it ``name``."""
    missing = [v for v in DAS_VARS if v not in ds.variables]
    if missing:
        raise AssimilationInputError(f"{name} lacks {missing}; expected a DAS-like dataset "
                                     f"with {list(DAS_VARS)} (see hubkit.simulate.das_field)")
    level_dim(ds["o3_vmr"])
    return ds


def field_at(ds: xr.Dataset, var: str, t) -> xr.DataArray:
    """``ds[var]`` at the time nearest ``t`` (all of it when it has no time)."""
    da = ds[var]
    return da.sel(time=t, method="nearest") if "time" in da.dims else da


def initial_field(ds: xr.Dataset, name: str, lev: str) -> np.ndarray:
    """``ds[name]`` at its first time as (level, latitude, longitude) floats."""
    da = ds[name].isel(time=0) if "time" in ds[name].dims else ds[name]
    return np.asarray(da.transpose(lev, "latitude", "longitude").values, dtype=float)


def das_dataset(bg, lev, times, fields: dict, lat, lon, diagnostics=None) -> xr.Dataset:
    """The ``das`` layout: dims (time, level, latitude, longitude) and ``interface``.

    ``fields`` maps names to ozone arrays (time, level, latitude, longitude) [mol mol⁻¹];
    temperature and surface pressure come from ``bg`` at the time nearest each of ``times``;
    ``diagnostics`` maps names to per-time ``(values, attrs)``."""
    dims = ("time", "level", "latitude", "longitude")
    t_near = [field_at(bg, "temperature", t).transpose(lev, "latitude", "longitude").values
              for t in times]
    ps_near = [field_at(bg, "surface_pressure", t).transpose("latitude", "longitude").values
               for t in times]
    units = {"units": "mol mol-1", "standard_name": "mole_fraction_of_ozone_in_air"}
    data = {name: (dims, arr, dict(units, long_name=name.replace("_", " ")))
            for name, arr in fields.items()}
    data["temperature"] = (dims, np.stack(t_near).astype(float),
                           {"units": "K", "standard_name": "air_temperature"})
    data["surface_pressure"] = (("time", "latitude", "longitude"), np.stack(ps_near),
                                {"units": "Pa", "standard_name": "surface_air_pressure"})
    zs = bg["surface_altitude"].transpose("latitude", "longitude")
    data["surface_altitude"] = (("latitude", "longitude"), np.asarray(zs.values, dtype=float),
                                {"units": "m", "standard_name": "surface_altitude"})
    for name in ("hybrid_a", "hybrid_b"):
        data[name] = ("interface", np.asarray(bg[name].values, dtype=float), bg[name].attrs)
    for name, (arr, attrs) in (diagnostics or {}).items():
        data[name] = ("time", arr, attrs)
    coords = {"time": times, "latitude": ("latitude", lat, {"units": "degrees_north"}),
              "longitude": ("longitude", lon, {"units": "degrees_east"})}
    if lev in bg.coords:
        coords["level"] = ("level", bg[lev].values, bg[lev].attrs)
    return xr.Dataset(data, coords=coords,
                      attrs={"title": "ozone analyses and forecasts on hybrid levels",
                             "hubkit_species": "o3", "hubkit_product_type": "das"})
