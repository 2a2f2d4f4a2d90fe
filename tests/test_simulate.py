"""The OCO-2 track simulator against orbital facts (L2 ozone: see tests/test_fusion.py)."""

from __future__ import annotations

import numpy as np

from hubkit import schemas, simulate


def _haversine_km(lat1, lon1, lat2, lon2, radius=6371.0):
    p1, p2 = np.deg2rad(lat1), np.deg2rad(lat2)
    dlat, dlon = p2 - p1, np.deg2rad(lon2 - lon1)
    a = np.sin(dlat / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlon / 2) ** 2
    return 2 * radius * np.arcsin(np.sqrt(a))


def test_tracks_follow_the_orbit():
    tracks = simulate.oco2_tracks(12, seconds=60.0, seed=3)
    for k, ds in enumerate(tracks):
        schemas.validate(ds, source=f"orbit {k}")
        lon = ds["longitude"].values
        assert np.all((lon >= -180) & (lon < 180)), "longitudes must stay in [-180, 180)"
        # footprint 1 of successive frames: one frame period apart at the ground speed
        fp1 = (ds["sounding_id"].values % 10) == 1
        t = ds["time"].values[fp1].astype("datetime64[ns]").astype(np.int64) / 1e9
        lat, lon1 = ds["latitude"].values[fp1], lon[fp1]
        speed = _haversine_km(lat[:-1], lon1[:-1], lat[1:], lon1[1:]) / np.diff(t)
        np.testing.assert_allclose(np.median(speed), 6.75, rtol=0.01)  # [km s-1]
        assert np.all(np.diff(lat) > 0), "daytime OCO-2 tracks ascend (south to north)"
    # successive orbits: one period (98.8 min) later and 24.7 degrees further west
    t0 = np.array([ds["time"].values.min() for ds in tracks])
    gaps = np.diff(t0).astype("timedelta64[s]").astype(float)
    np.testing.assert_allclose(gaps, 98.8 * 60, atol=1)
    lon0 = np.array([ds["longitude"].values[0] for ds in tracks])
    np.testing.assert_allclose((lon0[:-1] - lon0[1:]) % 360.0, 24.7, atol=0.05)
