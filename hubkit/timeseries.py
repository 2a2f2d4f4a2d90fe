"""Station time series out of the store: one site, species and inlet, lazily, on a time index.

:func:`get_obs` is what OpenGHG's ``get_obs_surface(site=, species=, inlet=)`` is to its object
store: it finds the ``surface-obs`` products of a site and species (:meth:`Store.search` with the
station facets), keeps the rows of one intake height, cuts the period, averages and converts
units, and returns an :class:`xarray.Dataset` indexed by ``time`` whose data are Dask arrays:
a product larger than :data:`WHOLE_READ_BYTES` is read only when they are computed; a smaller
one (a station file, typically tens of kB) is read whole at once, its bytes checked against
their recorded hashes, and cut in memory. It reads the store only through its public methods
(search, open); no science, no file.

Why products hold a whole file and not one inlet each: one upload is one product (its id comes
from the file's bytes, its provenance is the file), and a tower's intake heights share their
time stamps, so the product keeps every row on ``time`` with ``inlet_height`` beside it; the
per-inlet series a user asks for is cut here, as OpenGHG's retrieval returns it.
"""

from __future__ import annotations

import uuid

import numpy as np
import pandas as pd
import xarray as xr

from hubkit.errors import SchemaError, StoreError

__all__ = ["PRODUCT_TYPE", "WHOLE_READ_BYTES", "get_obs"]

PRODUCT_TYPE = "surface-obs"
#: Variables converted with ``value`` when ``units`` is given (mole fractions of the species).
_MOLE_FRACTIONS = ("value", "value_std_dev", "value_unc", "value_repeatability",
                   "value_variability")
#: Two intake heights closer than this are the same inlet. [m]
INLET_TOLERANCE = 0.05
#: Products of at most this many bytes stored are read whole, at once, and cut in memory (one
#: batch of reads and no task graph per selection: ~2x less CPU than a lazy open of a station
#: file, ``python -m benchmarks.openghg``); larger ones are opened lazily and only the rows of
#: the inlet are read when computed.
WHOLE_READ_BYTES = 16 * 2**20


def get_obs(store, *, site: str, species: str, inlet=None, start=None, end=None,
            average: str | None = None, units: str | None = None,
            network: str | None = None) -> xr.Dataset:
    """The time series of ``species`` at ``site`` (one intake height), lazily.

    Parameters
    ----------
    store : hubkit.store.Store
        Where the ``surface-obs`` products are.
    site : str
        Station code, case-insensitive (``"BAO"``, ``"pocn25"`` for a ship's track).
    species : str
        ``"ch4"``, ``"co2"``, ``"cfc-11"`` ...
    inlet : float or str, optional
        Intake height above ground [m] (``100``, ``"100m"``). Required when the site's
        products have several heights (the error lists them).
    start, end : str or datetime-like, optional
        Period kept, inclusive (ISO 8601; ``end="2012-06"`` keeps all of June).
    average : str, optional
        A pandas offset (``"1h"``, ``"1D"``, ``"MS"``): ``value`` and the other float variables
        become period means (NaNs skipped), ``value_variability`` the sample standard deviation
        (ddof=1) of the values averaged and ``n_obs`` their number (a period without values
        holds NaN and ``n_obs`` 0: ``.dropna("time", subset=["value"])`` drops them once
        computed).
    units : str, optional
        Mole-fraction unit of the result (``"ppb"``, ``"nmol mol-1"``, ``"ppm"`` ...),
        converted exactly (pint factor, recorded in ``units_converted_from``).
    network : str, optional
        Only products of this network (``"NOAA"``, ``"ICOS"``, ``"AGAGE"``).

    Returns
    -------
    xarray.Dataset
        Indexed by ``time`` (sorted), ``value`` and what the products hold per row, the data
        variables Dask-backed (products of at most :data:`WHOLE_READ_BYTES` stored are already
        read, and their coordinates in memory);
        ``attrs`` of the (first) product plus ``inlet_height`` [m] and ``hubkit_products`` (the
        ids read).

    Raises
    ------
    StoreError
        No product matches, or several inlets match and ``inlet`` was not given.
    SchemaError
        ``units`` is not a unit of a mole fraction.
    """
    from hubkit.catalog import parse_datetime_range, parse_inlet

    height = None if inlet is None else parse_inlet(inlet)
    t0, t1 = parse_datetime_range((start, end)) if (start or end) else (None, None)
    items = store.search(PRODUCT_TYPE, species=species, site=site, inlet=height,
                         network=network, datetime=(start, end) if (start or end) else None)
    if not items:
        sites = sorted({str(i.properties.get("hubkit:site")) for i in
                        store.search(PRODUCT_TYPE, species=species)})
        raise StoreError(
            f"{store.url}: no {PRODUCT_TYPE} product of {species!r} at site {site!r}"
            + (f", inlet {height:g} m" if height is not None else "")
            + (f", network {network!r}" if network else "")
            + (f" between {start} and {end}" if (start or end) else "")
            + f"; sites with {species!r}: {sites or 'none'}")
    heights = sorted({float(h) for i in items for h in i.properties.get("hubkit:inlet_heights")
                      or [np.nan]})
    if height is None:
        if len(heights) > 1:
            raise StoreError(
                f"{store.url}: site {site!r} has {species!r} at {len(heights)} inlets "
                f"({', '.join(f'{h:g}' for h in heights)} m); pass inlet= one of them")
        height = heights[0]
    parts = [_one_inlet(store.open(item, load=WHOLE_READ_BYTES), height) for item in items]
    parts = [p for p in parts if p.sizes["time"]]
    ds = parts[0] if len(parts) == 1 else xr.concat(parts, dim="time", data_vars="all",
                                                    coords="different", compat="equals",
                                                    join="outer", combine_attrs="drop_conflicts")
    if not ds.indexes["time"].is_monotonic_increasing:  # (a stable sort of sorted times
        ds = ds.sortby("time")                              # is no change; it copies all)
    if t0 is not None or t1 is not None:
        times = pd.DatetimeIndex(ds["time"].values)
        keep = np.ones(times.size, dtype=bool)
        if t0 is not None:
            keep &= times >= t0.tz_convert(None)
        if t1 is not None:
            keep &= times <= t1.tz_convert(None)
        ds = ds.isel(time=np.flatnonzero(keep))
    if units is not None:
        ds = _convert(ds, units)
    if average is not None:
        ds = _average(ds, average)
    if not ds.chunks:  # small products were read whole: Dask-backed all the same
        ds = _as_dask(ds)
    ds.attrs["inlet_height"] = float(height) if np.isfinite(height) else None
    ds.attrs["hubkit_products"] = [i.id for i in items]
    return ds


def _as_dask(ds: xr.Dataset) -> xr.Dataset:
    """An in-memory series with its data variables as one-chunk Dask arrays; its coordinates
    (a few columns, which selections read anyway) stay in memory.

    Each array is named by a fresh token: ``Dataset.chunk()`` hashes every value for a name
    nothing else shares, and chunking the coordinates too made ``.load()`` ~1.5x dearer
    (1.0 + 6.3 ms against 0.5 + 4.3 ms of CPU for a BAO inlet).
    """
    import dask.array

    token = uuid.uuid4().hex
    out = ds.copy(deep=False)
    for name in ds.data_vars:
        var = out.variables[name]
        var.data = dask.array.from_array(var.data, chunks=var.shape, inline_array=True,
                                         name=f"hubkit-get-obs-{name}-{token}")
    return out


def _one_inlet(ds: xr.Dataset, height: float) -> xr.Dataset:
    """The rows of one intake height (the small coordinate is read, the data stay lazy)."""
    if "inlet_height" not in ds.coords or not np.isfinite(height):
        return ds
    heights = np.asarray(ds["inlet_height"].values, dtype=float)
    rows = np.flatnonzero(np.abs(heights - height) <= INLET_TOLERANCE)
    out = ds.isel(time=rows)
    return out.assign_coords(inlet_height=out["inlet_height"].load())


def _convert(ds: xr.Dataset, units: str) -> xr.Dataset:
    from hubkit.units import conversion_factor, normalise_units

    out = ds.copy()
    for name in _MOLE_FRACTIONS:
        if name not in out.data_vars:
            continue
        found = out[name].attrs.get("units")
        try:
            factor = conversion_factor(found, units)
        except ValueError as exc:
            raise SchemaError(f"get_obs: cannot give {name!r} in {units!r}: it is in "
                              f"{found!r} ({exc}); expected a mole-fraction unit such as "
                              "'ppm', 'ppb', 'ppt' or 'nmol mol-1'") from None
        attrs = dict(out[name].attrs)
        out[name] = out[name] * factor if factor != 1.0 else out[name]
        attrs.update(units=normalise_units(units), units_converted_from=found,
                     units_conversion_factor=factor)
        out[name].attrs = attrs
    return out


def _average(ds: xr.Dataset, period: str) -> xr.Dataset:
    try:
        pd.tseries.frequencies.to_offset(period)
    except ValueError:
        raise SchemaError(f"get_obs: average={period!r} is not a period; expected a pandas "
                          "offset such as '1h', '1D' or 'MS'") from None
    floats = [n for n, v in ds.data_vars.items() if v.dtype.kind == "f" and "time" in v.dims]
    if "value" not in floats:
        raise SchemaError("get_obs: no float 'value' to average")
    per = ds[floats].drop_vars([c for c in ds[floats].coords if c != "time"])
    out = per.resample(time=period).mean(skipna=True)
    values = per["value"].resample(time=period)
    out["value_variability"] = values.std(skipna=True, ddof=1)
    out["n_obs"] = values.count()
    for name in floats:
        out[name].attrs = {**ds[name].attrs, "cell_methods": f"time: mean (interval: {period})"}
    out["value_variability"].attrs = {
        "long_name": f"standard deviation of the values averaged over {period}",
        "units": ds["value"].attrs.get("units")}
    out["n_obs"].attrs = {"long_name": f"number of values averaged over {period}"}
    out.attrs = dict(ds.attrs)
    out.attrs["hubkit_average"] = period
    return out
