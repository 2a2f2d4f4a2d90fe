"""Geometry of an OCO-2 orbit: great-circle distances, a true along-track coordinate, the track
direction and the wind component normal to it (all in metres on the sphere, never in degrees)."""

from __future__ import annotations

import numpy as np

from hubkit.constants import EARTH_MEAN_RADIUS_GRS80
from hubkit.geodesy import great_circle_distance

__all__ = ["EARTH_RADIUS", "OCO2PEAK_EARTH_RADIUS", "along_track", "along_tracks", "haversine",
           "local_offsets", "normal_wind"]

#: Mean Earth radius (GRS80 R1, :data:`hubkit.constants.EARTH_MEAN_RADIUS_GRS80`). [km]
EARTH_RADIUS = EARTH_MEAN_RADIUS_GRS80 / 1e3
#: The radius oco2peak uses in its haversine distance. [km]
OCO2PEAK_EARTH_RADIUS = 6367.0


def haversine(lat1, lon1, lat2, lon2, radius=EARTH_RADIUS):
    """Great-circle distance by the haversine formula, in km by default
    (:func:`hubkit.geodesy.great_circle_distance` with ``radius`` [km])."""
    return great_circle_distance(lat1, lon1, lat2, lon2, radius)


def _unit(lat, lon):
    phi, lam = np.deg2rad(lat), np.deg2rad(lon)
    return np.stack([np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)], -1)


def _east_north(p):
    lam = np.arctan2(p[..., 1], p[..., 0])
    phi = np.arcsin(np.clip(p[..., 2], -1, 1))
    east = np.stack([-np.sin(lam), np.cos(lam), np.zeros_like(lam)], -1)
    north = np.stack([-np.sin(phi) * np.cos(lam), -np.sin(phi) * np.sin(lam), np.cos(phi)], -1)
    return east, north


def local_offsets(lat0, lon0, lat, lon):
    """East and north offsets of points from a reference point (azimuthal, exact on the
    sphere for direction, great-circle for length).

    Parameters
    ----------
    lat0, lon0 : float
        Reference point. [°]
    lat, lon : array_like
        Points. [°]

    Returns
    -------
    east, north : ndarray
        Offsets. [km]
    """
    p0 = _unit(lat0, lon0)
    p = _unit(np.asarray(lat, float), np.asarray(lon, float))
    e, n = _east_north(p0)
    d = haversine(lat0, lon0, lat, lon)
    te, tn = p @ e, p @ n
    norm = np.hypot(te, tn)
    scale = np.where(norm > 0, d / np.where(norm > 0, norm, 1), 0.0)
    return te * scale, tn * scale


def along_track(latitude, longitude, time, *, bin_seconds=1.0, baseline=10):
    """A true along-track coordinate and the local track direction of one orbit's soundings.

    The soundings are grouped in ``bin_seconds`` bins of time; the bin centres (mean unit
    vectors) trace the ground track. The distance between successive centres is measured along
    the local track direction (so that across-track scatter of the footprints does not lengthen
    the track), and each sounding is placed by projecting its offset from its bin centre on that
    direction. The direction at a bin is the chord from ``baseline`` bins before to ``baseline``
    bins after it.

    Parameters
    ----------
    latitude, longitude : array_like, (n,)
        Sounding positions. [°]
    time : array_like of datetime64, (n,)
        Sounding times (their order is the order along track).
    bin_seconds : float
        Bin length. [s]
    baseline : int
        Half-span of the chord that gives the track direction. [bins]

    Returns
    -------
    s : ndarray, (n,)
        Along-track coordinate from the first bin. [km]
    track_east, track_north : ndarray, (n,)
        East and north components of the unit vector of the direction of flight.
    """
    lat = np.asarray(latitude, dtype=float)
    return along_tracks(lat, np.asarray(longitude, dtype=float), time, [0, lat.size],
                        bin_seconds=bin_seconds, baseline=baseline)


def along_tracks(latitude, longitude, time, segments, *, bin_seconds=1.0, baseline=10):
    """:func:`along_track` of many orbits at once, ``segments`` (m + 1 boundaries) delimiting
    them in the arrays; each orbit's result is bit-for-bit that of :func:`along_track` on it.

    Returns
    -------
    s, track_east, track_north : ndarray, (n,)
        As :func:`along_track`, each orbit from its own first bin. [km]
    """
    lat = np.asarray(latitude, dtype=float)
    lon = np.asarray(longitude, dtype=float)
    t = np.asarray(time).astype("datetime64[ns]").astype(np.int64) / 1e9
    n = lat.size
    if n == 0:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    cuts = np.asarray(segments, dtype=np.intp)
    cuts = cuts[np.r_[True, np.diff(cuts) > 0]]  # no empty orbits
    sizes = np.diff(cuts)
    seg = np.repeat(np.arange(sizes.size), sizes)
    t = t - np.minimum.reduceat(t, cuts[:-1])[seg]
    fl = np.floor(t / bin_seconds).astype(np.int64)
    key = fl + seg * (int(fl.max()) + 1)
    if (key[1:] >= key[:-1]).all():  # in time order already: number the bins in one pass
        k = np.zeros(n, dtype=np.intp)
        np.cumsum(key[1:] != key[:-1], out=k[1:])
    else:
        _, k = np.unique(key, return_inverse=True)
        k = k.reshape(-1)
    first_bin = np.minimum.reduceat(k, cuts[:-1])  # bins: orbit by orbit, in time order
    nb_all = int(k.max()) + 1
    nb = np.diff(np.r_[first_bin, nb_all])
    p = _unit(lat, lon)
    c = np.stack([np.bincount(k, weights=p[:, i], minlength=nb_all) for i in range(3)], -1)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    bin_seg = np.repeat(np.arange(nb.size), nb)
    j = np.arange(nb_all) - first_bin[bin_seg]
    last = nb[bin_seg] - 1
    tang = (c[first_bin[bin_seg] + np.minimum(j + baseline, last)]
            - c[first_bin[bin_seg] + np.maximum(j - baseline, 0)])
    for m in np.flatnonzero(nb == 1):  # one bin: the direction from the first to the last
        a, b = cuts[m], cuts[m + 1]
        order = np.argsort(t[a:b], kind="stable")
        tang[first_bin[m]] = p[a + order[-1]] - p[a + order[0]]
    tang -= np.sum(tang * c, axis=1, keepdims=True) * c
    norm = np.linalg.norm(tang, axis=1, keepdims=True)
    tang = np.where(norm > 0, tang / np.where(norm > 0, norm, 1), 0.0)
    step = np.sum((c[1:] - c[:-1]) * 0.5 * (tang[1:] + tang[:-1]), axis=1)
    sb = np.empty(nb_all)
    for m in range(nb.size):  # each orbit from its own first bin
        a = first_bin[m]
        sb[a:a + nb[m]] = np.concatenate([[0.0], np.cumsum(step[a:a + nb[m] - 1])]) * EARTH_RADIUS
    s = sb[k] + EARTH_RADIUS * np.sum((p - c[k]) * tang[k], axis=1)
    east, north = _east_north(c)
    return s, np.sum(tang * east, 1)[k], np.sum(tang * north, 1)[k]


def normal_wind(u, v, track_east, track_north):
    """Wind component normal to the track (its magnitude).

    Parameters
    ----------
    u, v : array_like
        Eastward and northward wind. [m s-1]
    track_east, track_north : array_like
        Unit vector of the track direction (east, north components).

    Returns
    -------
    ndarray
        ``|u·n_e + v·n_n|`` with ``n`` the unit normal to the track. [m s-1]
    """
    return np.abs(np.asarray(u) * np.asarray(track_north) - np.asarray(v) * np.asarray(track_east))
