"""The soundings as the detection wants them: cleaned, ordered along each orbit, with a true
along-track coordinate and the track direction."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import xarray as xr

from hubkit.co2.options import PeakOptions
from hubkit.co2.track import OCO2PEAK_EARTH_RADIUS, along_tracks, haversine
from hubkit.errors import CO2InputError

log = logging.getLogger(__name__)

_OPTIONAL = ("xco2_uncertainty", "surface_pressure", "tcwv", "land_water_indicator",
             "footprint", "sounding_id", "time")


def prepare_soundings(ds: xr.Dataset, options: PeakOptions | None = None) -> pd.DataFrame:
    """The soundings to fit: quality-filtered, finite, de-duplicated, ordered along track.

    Parameters
    ----------
    ds : xarray.Dataset
        Canonical ``oco2-soundings`` (dim ``sounding``; ``xco2`` [ppm], ``latitude``,
        ``longitude`` [°], ``time``; optional ``orbit``, ``xco2_uncertainty``, wind, ...).
    options : PeakOptions, optional
        Its ``quality_flag``, ``wind`` variables and along-track ``coordinate`` are used;
        default ``PeakOptions()``.

    Returns
    -------
    pandas.DataFrame
        One row per kept sounding, sorted by ``orbit`` then ``along`` [km], with ``index`` the
        sounding's position in ``ds`` and the unit track direction ``track_east, track_north``.
    """
    cols = prepare(ds, options or PeakOptions())
    if not cols["index"].size:
        return pd.DataFrame({k: v for k, v in cols.items()
                             if k not in ("along", "track_east", "track_north")}).assign(
            along=[], track_east=[], track_north=[])
    return pd.DataFrame(cols)


def _first_occurrences(keys):
    """Positions of the first occurrence of each distinct row of ``keys`` (ascending)."""
    order = np.lexsort(keys[::-1])  # stable: the first occurrence leads its group
    same = np.ones(order.size - 1, dtype=bool)
    for k in keys:
        ks = k[order]
        same &= ks[1:] == ks[:-1]
    return np.sort(order[np.r_[True, ~same]])


def prepare(ds: xr.Dataset, o: PeakOptions) -> dict:
    """:func:`prepare_soundings` as a column name → array dict (no pandas on the way: one
    selection, one sort, the along-track coordinate of all orbits at once)."""
    for name in ("xco2", "latitude", "longitude"):
        if name not in ds.variables:
            raise CO2InputError(f"find_peaks: variable {name!r} is missing; expected canonical "
                                "oco2-soundings (xco2 [ppm], latitude, longitude, time)")
    if "sounding" not in ds.dims:
        raise CO2InputError(f"find_peaks: dataset has dims {tuple(ds.dims)}, expected 'sounding'")
    cols = {"index": np.arange(ds.sizes["sounding"])}
    names = ["xco2", "latitude", "longitude", *o.wind, *_OPTIONAL, "orbit", "distance",
             "xco2_quality_flag"]
    for name in names:
        if name in ds.variables and name not in cols:
            cols[name] = np.asarray(ds[name].values)
    if o.coordinate == "track" and "time" not in cols:
        raise CO2InputError("find_peaks: coordinate='track' needs the variable 'time' (the order "
                            "along track); pass coordinate='haversine' for data without time")
    if o.coordinate == "distance" and "distance" not in cols:
        raise CO2InputError("find_peaks: coordinate='distance' needs the variable 'distance' [km]")
    if o.coordinate not in ("track", "distance", "haversine"):
        raise CO2InputError(f"coordinate={o.coordinate!r}; expected 'track', 'distance' "
                            "or 'haversine'")
    keep = (np.isfinite(cols["xco2"]) & np.isfinite(cols["latitude"])
            & np.isfinite(cols["longitude"]))
    if o.quality_flag is not None and "xco2_quality_flag" in cols:
        keep &= cols["xco2_quality_flag"] == o.quality_flag
    sel = np.flatnonzero(keep)
    if "sounding_id" in cols and (cols["sounding_id"][sel] > 0).all():
        sid = cols["sounding_id"][sel]
        if sid.size > 1 and not (np.diff(sid) > 0).all():  # increasing ids are distinct
            sel = sel[_first_occurrences([sid])]
    elif sel.size > 1:
        key = [cols[c][sel] for c in ("time", "latitude", "longitude") if c in cols]
        sel = sel[_first_occurrences(key)]
    if "orbit" not in cols:
        cols["orbit"] = np.zeros(cols["index"].size, dtype=np.int64)
    if "xco2_uncertainty" in cols:
        u = cols["xco2_uncertainty"][sel].astype(float)
        if not (np.isfinite(u) & (u > 0)).all():
            log.info("xco2_uncertainty not positive everywhere: uniform weights used")
            del cols["xco2_uncertainty"]
    # one sort by orbit then time, every orbit's coordinate at once, one reordering by
    # along-track position at the end (the other columns are gathered once, at the end)
    second = cols["time"][sel] if "time" in cols else sel
    sel = sel[np.lexsort((second, cols["orbit"][sel]))]
    orbit = cols["orbit"][sel]
    n = orbit.size
    if not n:
        return {**{k: v[sel] for k, v in cols.items()}, "along": np.zeros(0),
                "track_east": np.zeros(0), "track_north": np.zeros(0)}
    cuts = np.concatenate([[0], np.flatnonzero(orbit[1:] != orbit[:-1]) + 1, [n]])
    lat, lon = cols["latitude"][sel], cols["longitude"][sel]
    if "time" in cols:
        along, east, north = along_tracks(lat, lon, cols["time"][sel], cuts)
    else:
        along, east, north = np.empty(n), np.empty(n), np.empty(n)
        for a, b in zip(cuts[:-1], cuts[1:], strict=True):
            east[a:b], north[a:b] = _chord(lat[a:b], lon[a:b])
    if o.coordinate == "distance":
        along = cols["distance"][sel].astype(float)
    elif o.coordinate == "haversine":
        along = np.empty(n)
        for a, b in zip(cuts[:-1], cuts[1:], strict=True):
            along[a:b] = haversine(lat[a], lon[a], lat[a:b], lon[a:b], OCO2PEAK_EARTH_RADIUS)
    order = np.lexsort((along, orbit))  # stable: within each orbit, by position
    if (order[1:] > order[:-1]).all():
        order = slice(None)  # already in along-track order
    out = {k: v[sel[order]] for k, v in cols.items()}
    out.update(along=along[order], track_east=east[order], track_north=north[order])
    return out


def _chord(lat, lon):
    from hubkit.co2.track import local_offsets

    e, n = local_offsets(lat[0], lon[0], lat[-1:], lon[-1:])
    norm = float(np.hypot(e[0], n[0])) or 1.0
    return np.full(lat.size, e[0] / norm), np.full(lat.size, n[0] / norm)
