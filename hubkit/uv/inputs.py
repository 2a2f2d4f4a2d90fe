"""Surface albedo, aerosol and cloud products brought onto a DAS grid for the surface UV.

Gai et al. (2021, section 4.3.4) take the surface albedo, the aerosol and the clouds of the UV
calculation from other sources than the ozone analysis. Here they come as hubkit products of the
types ``surface-albedo``, ``aerosol`` and ``cloud`` (:mod:`hubkit.io.uv_inputs`), on any regular
latitude-longitude grid and with or without times. :func:`grid_input` interpolates one of them
bilinearly in latitude and longitude onto the DAS cell centres (periodic in longitude for a
global grid; nearest neighbour within one input cell of the input's edge or of a missing value)
and keeps its own times; :meth:`GriddedInput.at` then takes the input time nearest to each time
wanted (the product's times, or each longitude's local solar noon). Cells the input does not
cover get the default of :data:`hubkit.uv.surface.DEFAULTS`, and the record says how many.

Pure functions: no file or store is opened here.

References
----------
.. [1] Gai et al., Remote Sens. 13, 210, 2021. doi:10.3390/rs13020210
.. [2] Lipponen et al., Atmosphere 11, 324, 2020. doi:10.3390/atmos11040324
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from hubkit.errors import UVInputError
from hubkit.uv.index import check_range

__all__ = ["ALBEDO_PRODUCT", "AEROSOL_PRODUCT", "CLOUD_PRODUCT", "TABLE_INPUTS", "GriddedInput",
           "grid_input", "regrid"]

#: Product types of the UV inputs (= STAC collections), by the argument name of
#: :func:`hubkit.uv.surface.surface_uv_from_inputs`.
ALBEDO_PRODUCT = "surface-albedo"
AEROSOL_PRODUCT = "aerosol"
CLOUD_PRODUCT = "cloud"

#: Lookup-table input -> (argument, product type, variable in the product).
TABLE_INPUTS = {
    "albedo": ("albedo", ALBEDO_PRODUCT, "surface_albedo"),
    "aod": ("aerosol", AEROSOL_PRODUCT, "aod"),
    "ssa": ("aerosol", AEROSOL_PRODUCT, "ssa"),
    "cot": ("cloud", CLOUD_PRODUCT, "cloud_optical_thickness"),
}


def _spacing(values: np.ndarray) -> float:
    return float(np.median(np.diff(values))) if values.size > 1 else 360.0


def _wrap_longitudes(field: xr.DataArray, target_lon: np.ndarray) -> xr.DataArray:
    """Longitudes in the target's convention ([-180, 180) or [0, 360)), sorted, and padded by
    one column at each end when the input is global (so interpolation is periodic)."""
    lon = np.asarray(field["longitude"].values, dtype=np.float64)
    lon = (lon + 180.0) % 360.0 - 180.0 if np.nanmin(target_lon) < 0 else lon % 360.0
    field = field.assign_coords(longitude=lon).sortby("longitude")
    lon = np.asarray(field["longitude"].values)
    if lon.size > 1 and np.unique(lon).size == lon.size:
        gap = lon[0] + 360.0 - lon[-1]
        if gap <= 1.5 * _spacing(lon) + 1e-9:
            first = field.isel(longitude=[0]).assign_coords(longitude=[lon[0] + 360.0])
            last = field.isel(longitude=[-1]).assign_coords(longitude=[lon[-1] - 360.0])
            field = xr.concat([last, field, first], dim="longitude")
    return field


def regrid(field: xr.DataArray, latitude, longitude) -> xr.DataArray:
    """Bilinear interpolation of a map onto other cell centres, in latitude and longitude.

    .. math:: f(\\phi, \\lambda) = \\sum_{i,j \\in \\{0,1\\}} w_i(\\phi)\\, w_j(\\lambda)\\,
              f(\\phi_i, \\lambda_j)

    with linear weights between the input centres bracketing each target centre. Where that is
    undefined (a target outside the input's first/last centre, or a missing corner value) the
    nearest input value within one input cell spacing is used; beyond, NaN.

    Parameters
    ----------
    field : xarray.DataArray
        Dims ``latitude`` [°N], ``longitude`` [°E] (any convention, any order) and optionally
        others (e.g. ``time``), which are kept.
    latitude, longitude : array_like
        Target cell centres. [°N], [°E]

    Returns
    -------
    xarray.DataArray
        On the target ``latitude`` and ``longitude`` (the other dims first), float64.
    """
    for dim in ("latitude", "longitude"):
        if dim not in field.dims:
            raise UVInputError(f"regrid: {field.name!r} has dims {field.dims}; expected "
                               "latitude and longitude")
    lat = np.asarray(latitude, dtype=np.float64)
    lon = np.asarray(longitude, dtype=np.float64)
    field = _wrap_longitudes(field.astype(np.float64).sortby("latitude"), lon)
    linear = field.interp(latitude=lat, longitude=lon, method="linear")
    tol_lat = _spacing(np.asarray(field["latitude"].values))
    tol_lon = _spacing(np.asarray(field["longitude"].values))
    nearest = (field.reindex(latitude=lat, method="nearest", tolerance=tol_lat + 1e-9)
               .reindex(longitude=lon, method="nearest", tolerance=tol_lon + 1e-9))
    # bilinear weights are convex: clip the round-off (-1e-15 from zeros) to the input's range
    out = linear.fillna(nearest).clip(float(field.min()), float(field.max()))
    others = [d for d in out.dims if d not in ("latitude", "longitude")]
    out = out.transpose(*others, "latitude", "longitude")
    return out.assign_attrs(field.attrs)


@dataclass(frozen=True)
class GriddedInput:
    """One lookup-table input (``albedo``, ``aod``, ``ssa`` or ``cot``) on the DAS grid.

    ``values`` is a constant (the default or a number the caller gave) or a DataArray on
    ([time,] latitude, longitude) with the input product's own times; ``record`` says where it
    came from.
    """

    name: str
    values: float | xr.DataArray
    default: float
    record: str
    product: str | None = None

    def at(self, times: np.ndarray) -> tuple[float | np.ndarray, float]:
        """Values at the input time nearest to each of ``times``.

        Parameters
        ----------
        times : ndarray of datetime64, (n,) or (n, longitude)
            Times wanted, for all cells of a longitude.

        Returns
        -------
        values : float or ndarray, (n, latitude, longitude)
            The default where the input has no value.
        max_offset : float
            Largest distance from a wanted time to the input time used. [h] (0 for a
            constant or a static map)
        """
        if not isinstance(self.values, xr.DataArray):
            return self.values, 0.0
        field = np.asarray(self.values.values, dtype=np.float64)
        nlon = field.shape[-1]
        t = np.asarray(times, dtype="datetime64[ns]")
        t = np.broadcast_to(t.reshape(t.shape[0], -1), (t.shape[0], nlon))
        if "time" not in self.values.dims:
            out = np.broadcast_to(field, (t.shape[0], *field.shape)).copy()
            offset = 0.0
        else:
            own = np.asarray(self.values["time"].values, dtype="datetime64[ns]")
            distance = np.abs((t[..., None] - own).astype(np.float64))  # (n, lon, own) [ns]
            pick = distance.argmin(axis=-1)  # (n, lon)
            out = np.transpose(field[pick, :, np.arange(nlon)[None, :]], (0, 2, 1))
            offset = float(np.take_along_axis(distance, pick[..., None], -1).max()) / 3.6e12
        return np.where(np.isnan(out), self.default, out), offset


def _check_dataset(argument: str, ds, variables: list[str]) -> None:
    if not isinstance(ds, xr.Dataset):
        raise UVInputError(f"surface_uv_from_inputs: {argument} must be an xarray.Dataset of "
                           f"product type {TABLE_INPUTS[variables[0]][1]!r} (hubkit.io."
                           f"uv_inputs); got {type(ds).__name__}")
    kind = ds.attrs.get("hubkit_product_type")
    expected = TABLE_INPUTS[variables[0]][1]
    if kind is not None and kind != expected:
        raise UVInputError(f"surface_uv_from_inputs: {argument} is a {kind!r} product; "
                           f"expected product type {expected!r}")


def grid_input(name: str, dataset: xr.Dataset | None, latitude, longitude, default: float,
               argument: str | None = None) -> GriddedInput:
    """One lookup-table input from its product (or the default), regridded with :func:`regrid`.

    Parameters
    ----------
    name : {"albedo", "aod", "ssa", "cot"}
        The lookup-table input (:data:`TABLE_INPUTS`).
    dataset : xarray.Dataset or None
        The product (``surface-albedo``, ``aerosol`` or ``cloud``), as read by
        :mod:`hubkit.io.uv_inputs` or opened from the store; None: the default is used.
    latitude, longitude : array_like
        The DAS cell centres. [°N], [°E]
    default : float
        Used where the product has no value, or without a product. [1]
    argument : str, optional
        The caller's argument name, for messages (default from :data:`TABLE_INPUTS`).

    Returns
    -------
    GriddedInput
    """
    if name not in TABLE_INPUTS:
        raise UVInputError(f"grid_input: name {name!r}; expected one of {sorted(TABLE_INPUTS)}")
    argument = argument or TABLE_INPUTS[name][0]
    kind, variable = TABLE_INPUTS[name][1:]
    if dataset is None:
        return GriddedInput(name, default, default, f"default {default:g} (no {kind} product)")
    _check_dataset(argument, dataset, [name])
    if variable not in dataset:
        if name == "ssa":  # an aerosol product may carry the optical depth only
            return GriddedInput(name, default, default,
                                f"default {default:g} (the {kind} product has no 'ssa')")
        raise UVInputError(f"surface_uv_from_inputs: {argument} has no variable {variable!r}; "
                           f"expected a {kind!r} product (variables {list(dataset.data_vars)})")
    product = dataset.attrs.get("hubkit_product_id")
    source = dataset.attrs.get("source", "?")
    # every value of the product is checked, not only those the DAS grid happens to sample
    check_range(name, np.asarray(dataset[variable].values, dtype=np.float64),
                f"surface_uv_from_inputs: {argument} ({source}) variable {variable!r}:")
    field = regrid(dataset[variable], latitude, longitude)
    where = f"product {product} ({source})" if product else f"dataset {source!r}"
    missing = int(np.isnan(field.values).any(axis=0).sum()) if "time" in field.dims \
        else int(np.isnan(field.values).sum())
    cells = field.sizes["latitude"] * field.sizes["longitude"]
    record = (f"{where} variable {variable!r}, bilinear to the DAS grid"
              + (f"; default {default:g} in {missing} of {cells} cells it does not cover"
                 if missing else "")
              + ("; nearest time" if "time" in field.dims else "; static"))
    return GriddedInput(name, field, default, record, product)
