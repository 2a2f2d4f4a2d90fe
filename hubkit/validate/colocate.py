"""Colocation of satellite soundings with ground stations.

Two steps, both vectorised and memory-bounded:

1. :func:`spatial_pairs` finds every (sounding, station) pair within a great-circle distance or a
   latitude/longitude box. The soundings are bucketed into cells of at least the search radius
   (one ``uint16`` key per sounding, sorted by NumPy's radix sort in linear time); each station
   then looks only at the contiguous runs of soundings in the cells its search region touches,
   so the work grows with soundings + pairs, not soundings × stations.
2. :func:`colocate` keeps the pairs with station measurements within a time window of the
   sounding and gives, per pair, the mean of those measurements, its uncertainty, how many there
   were and the time to the nearest one; an optional *dynamic* criterion (Wunch et al. 2011:
   the free-tropospheric potential temperature at 700 hPa, T700, at the sounding and at the
   station within ±2 K, in a ±10° latitude × ±30° longitude box and a window of days) replaces a
   tight distance by a wide box plus agreement of a quantity that follows the air mass.

References
----------
Wunch, D., et al. (2011): A method for evaluating bias in global measurements of CO2 total
columns from space, Atmos. Chem. Phys., 11, 12317–12337.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from hubkit.co2.track import EARTH_RADIUS, haversine
from hubkit.errors import ComparisonInputError

__all__ = ["Criteria", "colocate", "spatial_pairs"]

#: Length of one degree of latitude on the mean sphere. [km]
_KM_PER_DEG = np.pi * EARTH_RADIUS / 180.0


@dataclass(frozen=True)
class Criteria:
    """What makes a sounding and a station measurement coincide.

    Parameters
    ----------
    max_distance_km : float, optional
        Great-circle distance between the sounding and the station. [km]
    max_dlat, max_dlon : float, optional
        A box instead: |Δlatitude| ≤ ``max_dlat`` and |Δlongitude| ≤ ``max_dlon`` (across the
        date line). [°] Exactly one of the distance and the box is given.
    max_dt : numpy.timedelta64
        Station measurements within ± ``max_dt`` of the sounding are averaged.
    max_dynamic : float, optional
        With dynamic values given to :func:`colocate`: |sounding value − mean station value in
        the window| ≤ ``max_dynamic`` (Wunch et al. 2011: T700 within 2 K). [unit of the values]
    """

    max_distance_km: float | None = None
    max_dlat: float | None = None
    max_dlon: float | None = None
    max_dt: np.timedelta64 = np.timedelta64(1, "h")
    max_dynamic: float | None = None

    def __post_init__(self):
        box = self.max_dlat is not None or self.max_dlon is not None
        if (self.max_distance_km is None) == (not box):
            raise ComparisonInputError(
                "give either max_distance_km or the box (max_dlat and max_dlon)")
        if box and (self.max_dlat is None or self.max_dlon is None):
            raise ComparisonInputError("a box needs both max_dlat and max_dlon [°]")
        for name in ("max_distance_km", "max_dlat", "max_dlon", "max_dynamic"):
            v = getattr(self, name)
            if v is not None and not (np.isfinite(v) and v > 0):
                raise ComparisonInputError(f"{name} must be a positive number, got {v!r}")
        if np.timedelta64(self.max_dt) < np.timedelta64(0, "s"):
            raise ComparisonInputError(f"max_dt must not be negative, got {self.max_dt!r}")

    @classmethod
    def wunch2011(cls, days: float = 5.0) -> Criteria:
        """The dynamic criteria of Wunch et al. (2011): a ±10° latitude × ±30° longitude box,
        ±``days``, T700 within 2 K."""
        return cls(max_dlat=10.0, max_dlon=30.0,
                   max_dt=np.timedelta64(int(days * 86400), "s"), max_dynamic=2.0)


def _wrap(dlon):
    """Longitude differences folded into [-180, 180). [°]"""
    return (np.asarray(dlon) + 180.0) % 360.0 - 180.0


def spatial_pairs(lat, lon, station_lat, station_lon, *, max_distance_km=None, max_dlat=None,
                  max_dlon=None):
    """Every (sounding, station) pair within a distance or a latitude/longitude box.

    Parameters
    ----------
    lat, lon : array_like, (n,)
        Soundings. [°] Non-finite positions never pair.
    station_lat, station_lon : array_like, (m,)
        Stations. [°]
    max_distance_km : float, optional
        Great-circle distance (haversine on the mean sphere). [km]
    max_dlat, max_dlon : float, optional
        The box, instead of the distance. [°]

    Returns
    -------
    sounding, station : ndarray of int64
        Indices of the pairs, sorted by station then sounding.
    distance : ndarray of float
        Their great-circle distances. [km]
    """
    lat = np.asarray(lat, dtype=float).ravel()
    lon = np.asarray(lon, dtype=float).ravel()
    slat = np.atleast_1d(np.asarray(station_lat, dtype=float))
    slon = np.atleast_1d(np.asarray(station_lon, dtype=float))
    if lat.shape != lon.shape or slat.shape != slon.shape:
        raise ComparisonInputError("latitude and longitude arrays must have the same length")
    if max_distance_km is not None:
        reach_lat = max_distance_km / _KM_PER_DEG  # the distance, as degrees of latitude
    else:
        reach_lat = float(max_dlat)
    # cells of at least the reach (at least 1°, so that 180 x 360 keys fit in uint16)
    cell = max(1.0, reach_lat)
    nb, nc = int(np.ceil(180.0 / cell)), int(np.ceil(360.0 / cell))
    ok = np.isfinite(lat) & np.isfinite(lon)
    band = np.clip(((lat + 90.0) // cell), 0, nb - 1)
    col = np.clip((((lon + 180.0) % 360.0) // cell), 0, nc - 1)
    key = np.where(ok, band * nc + col, nb * nc).astype(np.uint16)  # nb*nc: no position
    order = np.argsort(key, kind="stable")  # a radix sort for 16-bit keys: linear time
    start = np.zeros(nb * nc + 2, dtype=np.int64)
    np.cumsum(np.bincount(key, minlength=nb * nc + 1), out=start[1:])

    out_i, out_j, out_d = [], [], []
    for j, (la, lo) in enumerate(zip(slat, slon, strict=True)):
        lat0, lat1 = la - reach_lat, la + reach_lat
        b0 = int(np.clip((lat0 + 90.0) // cell, 0, nb - 1))
        b1 = int(np.clip((lat1 + 90.0) // cell, 0, nb - 1))
        if max_distance_km is None:
            reach_lon = float(max_dlon)
        elif reach_lat >= 90.0 - abs(la):  # the cap holds a pole: every longitude
            reach_lon = 360.0
        else:  # the widest longitude span of a spherical cap of radius reach_lat
            ratio = np.sin(np.deg2rad(reach_lat)) / np.cos(np.deg2rad(la))
            reach_lon = np.rad2deg(np.arcsin(min(1.0, ratio))) + 1e-9
        if reach_lon >= 180.0:
            col_ranges = [(0, nc - 1)]
        else:
            c0 = int(((lo - reach_lon + 180.0) % 360.0) // cell)
            c1 = int(((lo + reach_lon + 180.0) % 360.0) // cell)
            c0, c1 = min(c0, nc - 1), min(c1, nc - 1)
            col_ranges = [(c0, c1)] if c0 <= c1 else [(c0, nc - 1), (0, c1)]
        runs = [order[start[b * nc + c0]:start[b * nc + c1 + 1]]
                for b in range(b0, b1 + 1) for c0, c1 in col_ranges]
        cand = np.concatenate(runs) if runs else np.empty(0, dtype=np.int64)
        d = haversine(lat[cand], lon[cand], la, lo)
        if max_distance_km is not None:
            keep = d <= max_distance_km
        else:
            keep = ((np.abs(lat[cand] - la) <= max_dlat)
                    & (np.abs(_wrap(lon[cand] - lo)) <= max_dlon))
        cand, d = cand[keep], d[keep]
        sort = np.argsort(cand, kind="stable")
        out_i.append(cand[sort].astype(np.int64))
        out_j.append(np.full(cand.size, j, dtype=np.int64))
        out_d.append(d[sort])
    if not out_i:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0)
    return np.concatenate(out_i), np.concatenate(out_j), np.concatenate(out_d)


def _window_means(t, value, unc, dyn, obs_t, obs_v, obs_u, obs_d, dt):
    """Per sounding time ``t``: number, mean, uncertainty of the mean and mean dynamic value of
    the station measurements (sorted times ``obs_t``) within ± ``dt``, and the time to the
    nearest one (cumulative sums: linear in soundings + measurements)."""
    lo = np.searchsorted(obs_t, t - dt, side="left")
    hi = np.searchsorted(obs_t, t + dt, side="right")
    n = hi - lo
    cs_v = np.concatenate([[0.0], np.cumsum(obs_v)])
    cs_u = np.concatenate([[0.0], np.cumsum(obs_u ** 2)])
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (cs_v[hi] - cs_v[lo]) / n
        mean_unc = np.sqrt(cs_u[hi] - cs_u[lo]) / n
        mean_dyn = None
        if obs_d is not None:
            cs_d = np.concatenate([[0.0], np.cumsum(obs_d)])
            mean_dyn = (cs_d[hi] - cs_d[lo]) / n
    k = np.searchsorted(obs_t, t)
    before = np.abs(t - obs_t[np.clip(k - 1, 0, obs_t.size - 1)])
    after = np.abs(obs_t[np.clip(k, 0, obs_t.size - 1)] - t)
    nearest = np.minimum(before, after) if obs_t.size else np.full(t.shape, np.iinfo(np.int64).max)
    return n, mean, mean_unc, mean_dyn, nearest


def colocate(soundings, stations, observations, criteria: Criteria) -> pd.DataFrame:
    """Pairs of soundings and station measurements that coincide, as a tidy table.

    Parameters
    ----------
    soundings : mapping of array_like (a DataFrame or Dataset works)
        ``latitude``, ``longitude`` [°], ``time`` (datetime64), ``value`` and ``uncertainty`` [any
        one unit], optionally ``dynamic`` (e.g. T700 [K]) and ``sounding_id``.
    stations : mapping of array_like
        ``station`` (names), ``latitude``, ``longitude``. [°]
    observations : mapping of array_like
        ``station`` (one of the names), ``time``, ``value``, ``uncertainty`` in the unit of the
        soundings, optionally ``dynamic``.
    criteria : Criteria
        The distance (or box), time window and optional dynamic limit of a coincidence.

    Returns
    -------
    pandas.DataFrame
        One row per pair: ``sounding`` (index, or the ``sounding_id``), ``station``,
        ``distance_km``, ``dt_nearest`` (to the nearest station measurement), ``n_station``,
        ``time``, ``latitude``, ``longitude``, ``satellite``, ``satellite_uncertainty``,
        ``ground`` (mean of the measurements in the window), ``ground_uncertainty`` (of that
        mean), ``difference`` (satellite − ground) and, with dynamic values, ``dynamic_difference``.
        Sorted by station and sounding.
    """
    lat = np.asarray(soundings["latitude"], dtype=float)
    lon = np.asarray(soundings["longitude"], dtype=float)
    t = np.asarray(soundings["time"]).astype("datetime64[ns]").astype(np.int64)
    value = np.asarray(soundings["value"], dtype=float)
    unc = np.asarray(soundings["uncertainty"], dtype=float)
    dyn = np.asarray(soundings["dynamic"], dtype=float) if "dynamic" in soundings else None
    names = np.asarray(stations["station"]).astype(str)
    i, j, dist = spatial_pairs(lat, lon, stations["latitude"], stations["longitude"],
                               max_distance_km=criteria.max_distance_km,
                               max_dlat=criteria.max_dlat, max_dlon=criteria.max_dlon)
    dt = np.timedelta64(criteria.max_dt, "ns").astype(np.int64)
    obs_station = np.asarray(observations["station"]).astype(str)
    obs_t_all = np.asarray(observations["time"]).astype("datetime64[ns]").astype(np.int64)
    obs_v_all = np.asarray(observations["value"], dtype=float)
    obs_u_all = np.asarray(observations["uncertainty"], dtype=float)
    obs_d_all = (np.asarray(observations["dynamic"], dtype=float)
                 if "dynamic" in observations else None)
    if criteria.max_dynamic is not None and (dyn is None or obs_d_all is None):
        raise ComparisonInputError("criteria.max_dynamic needs 'dynamic' values of the "
                                   "soundings and of the station measurements")

    parts = []
    for js in np.unique(j):
        sel = j == js
        ii = i[sel]
        mine = (obs_station == names[js]) & np.isfinite(obs_v_all)
        order = np.argsort(obs_t_all[mine], kind="stable")
        ot = obs_t_all[mine][order]
        od = obs_d_all[mine][order] if obs_d_all is not None else None
        n, mean, mean_unc, mean_dyn, nearest = _window_means(
            t[ii], value[ii], unc[ii], dyn, ot, obs_v_all[mine][order],
            obs_u_all[mine][order], od, dt)
        keep = (n > 0) & np.isfinite(value[ii])
        ddyn = None
        if criteria.max_dynamic is not None:
            ddyn = dyn[ii] - mean_dyn
            keep &= np.abs(ddyn) <= criteria.max_dynamic
        ii = ii[keep]
        row = {
            "sounding": (np.asarray(soundings["sounding_id"])[ii] if "sounding_id" in soundings
                         else ii),
            "station": np.full(ii.size, names[js], dtype=object),
            "distance_km": dist[sel][keep],
            "dt_nearest": nearest[keep].astype("timedelta64[ns]"),
            "n_station": n[keep],
            "time": t[ii].astype("datetime64[ns]"),
            "latitude": lat[ii], "longitude": lon[ii],
            "satellite": value[ii], "satellite_uncertainty": unc[ii],
            "ground": mean[keep], "ground_uncertainty": mean_unc[keep],
        }
        row["difference"] = row["satellite"] - row["ground"]
        if ddyn is not None:
            row["dynamic_difference"] = ddyn[keep]
        parts.append(pd.DataFrame(row))
    if not parts:
        columns = ["sounding", "station", "distance_km", "dt_nearest", "n_station", "time",
                   "latitude", "longitude", "satellite", "satellite_uncertainty", "ground",
                   "ground_uncertainty", "difference"]
        return pd.DataFrame({c: [] for c in columns})
    return pd.concat(parts, ignore_index=True)
