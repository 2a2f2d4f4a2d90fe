"""Source attribution: which inventory sources upwind of a detection could have made it."""

from __future__ import annotations

import numpy as np
import pandas as pd

from hubkit.co2.emission import plume_xco2
from hubkit.co2.track import haversine, local_offsets
from hubkit.errors import CO2InputError

__all__ = ["SECONDS_PER_YEAR", "attribute_sources", "inventory_table", "sources_table"]

SECONDS_PER_YEAR = 365.25 * 86400.0


def inventory_table(frame: pd.DataFrame, *, emission: str, units: str = "t yr-1",
                    latitude: str = "latitude", longitude: str = "longitude") -> pd.DataFrame:
    """Normalise an emission inventory to ``latitude, longitude, emission`` [kg s-1].

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per source (e.g. the oco2peak merged inventory).
    emission : str
        Column of the emission.
    units : str
        Units of that column: ``"t yr-1"``, ``"kt yr-1"``, ``"Mt yr-1"`` or ``"kg s-1"``.
    latitude, longitude : str
        Columns of the position. [°]

    Returns
    -------
    pandas.DataFrame
        ``source`` (the row label of ``frame``), ``latitude``, ``longitude``, ``emission``
        [kg s-1] and the other columns of ``frame``; rows without position or with a
        non-positive emission are dropped.
    """
    factor = {"t yr-1": 1e3, "kt yr-1": 1e6, "Mt yr-1": 1e9, "kg s-1": SECONDS_PER_YEAR}
    if units not in factor:
        raise CO2InputError(f"units={units!r}; expected one of {sorted(factor)}")
    for c in (emission, latitude, longitude):
        if c not in frame:
            raise CO2InputError(f"inventory column {c!r} is missing; found {list(frame.columns)}")
    out = frame.rename(columns={latitude: "latitude", longitude: "longitude"}).copy()
    out["emission"] = pd.to_numeric(frame[emission], errors="coerce") * factor[units] / \
        SECONDS_PER_YEAR
    out["source"] = frame.index.to_numpy()
    good = (np.isfinite(out["latitude"]) & np.isfinite(out["longitude"])
            & (out["emission"] > 0))
    return out[good.to_numpy()].reset_index(drop=True)


def sources_table(sources) -> pd.DataFrame:
    """A stored ``sources`` product (e.g. the oco2peak inventory) as :func:`attribute_sources`
    takes it.

    Parameters
    ----------
    sources : xarray.Dataset
        Dim ``source``: ``source`` (label), ``latitude, longitude`` [°], ``emission``
        [kg s-1] and any other per-source variables (``source_type`` ...).

    Returns
    -------
    pandas.DataFrame
        :func:`inventory_table` of it: ``source, latitude, longitude, emission`` [kg s-1] and
        the other variables; rows without position or with no positive emission are left out
        (the product itself keeps them).
    """
    frame = sources.reset_coords().to_dataframe()
    if "source" in frame:
        frame = frame.set_index("source")
    return inventory_table(frame, emission="emission", units="kg s-1")


def attribute_sources(peaks, sources: pd.DataFrame, *, max_hours: float = 3.0,
                      min_wind: float = 0.5, stability: str | float = "B",
                      top: int = 3) -> pd.DataFrame:
    """Rank the inventory sources upwind of each detection by the enhancement they predict.

    For a detection at P with wind ``(u, v)``, the candidates are the sources within the
    distance the wind travels in ``max_hours`` that lie upwind (downwind distance from source
    to P positive). Each predicts at P the XCO2 enhancement of a Gaussian plume
    (:func:`hubkit.co2.emission.plume_xco2`, Nassar et al. 2017) carrying its inventory
    emission; candidates are ranked by that prediction, and ``explained`` is its ratio to the
    observed peak height.

    Parameters
    ----------
    peaks : xarray.Dataset or pandas.DataFrame
        Detections (:func:`find_peaks`): ``latitude, longitude`` [°], ``windspeed_u,
        windspeed_v`` [m s-1], ``delta`` [ppm]; ``surface_pressure`` [Pa] and ``tcwv``
        [kg m-2] when present.
    sources : pandas.DataFrame
        :func:`inventory_table` output: ``latitude, longitude`` [°], ``emission`` [kg s-1].
    max_hours : float
        Longest travel time from source to detection. [h]
    min_wind : float
        Below this wind speed no direction is trusted and nothing is attributed. [m s-1]
    stability : str or float
        Plume spread (see :func:`hubkit.co2.emission.plume_sigma_y`).
    top : int
        Candidates kept per detection.

    Returns
    -------
    pandas.DataFrame
        One row per (detection, candidate): ``peak`` (row of ``peaks``), ``rank`` (1 = best),
        ``source``, ``source_latitude``, ``source_longitude``, ``source_emission``
        [kg s-1], ``distance``, ``downwind``, ``crosswind`` [km], ``travel_hours`` [h],
        ``predicted_delta`` [ppm], ``explained``.

    References
    ----------
    .. [1] Nassar, R. et al., GRL 44, 10045-10053, 2017. doi:10.1002/2017GL074702
    """
    p = peaks.to_dataframe() if hasattr(peaks, "to_dataframe") else pd.DataFrame(peaks)
    for c in ("latitude", "longitude", "windspeed_u", "windspeed_v", "delta"):
        if c not in p:
            raise CO2InputError(f"attribute_sources: peaks lack {c!r}; expected find_peaks output")
    for c in ("latitude", "longitude", "emission"):
        if c not in sources:
            raise CO2InputError(f"attribute_sources: sources lack {c!r}; use inventory_table()")
    order = np.argsort(sources["latitude"].to_numpy(), kind="stable")
    slat = sources["latitude"].to_numpy()[order]
    slon = sources["longitude"].to_numpy()[order]
    semi = sources["emission"].to_numpy()[order]
    sid = (sources["source"].to_numpy() if "source" in sources else sources.index.to_numpy())
    sid = sid[order]
    ps = p["surface_pressure"].to_numpy() if "surface_pressure" in p else np.full(len(p), 101325.)
    tw = p["tcwv"].to_numpy() if "tcwv" in p else np.zeros(len(p))
    rows = []
    for i, (lat, lon, u, v, d) in enumerate(zip(p["latitude"], p["longitude"],
                                                 p["windspeed_u"], p["windspeed_v"],
                                                 p["delta"], strict=False)):
        speed = float(np.hypot(u, v))
        if not np.isfinite(speed) or speed < min_wind:
            continue
        reach = speed * max_hours * 3.6  # [km]
        a = np.searchsorted(slat, lat - reach / 111.0, "left")
        b = np.searchsorted(slat, lat + reach / 111.0, "right")
        if b <= a:
            continue
        dist = haversine(lat, lon, slat[a:b], slon[a:b])
        near = np.flatnonzero(dist <= reach)
        if not near.size:
            continue
        e, n = local_offsets(lat, lon, slat[a:b][near], slon[a:b][near])  # source - peak [km]
        we, wn = u / speed, v / speed
        downwind = -(e * we + n * wn)  # from source to peak, along the wind [km]
        crosswind = -(e * wn - n * we)
        up = downwind > 0
        if not up.any():
            continue
        near, downwind, crosswind = near[up], downwind[up], crosswind[up]
        pred = plume_xco2(downwind * 1e3, crosswind * 1e3, semi[a:b][near], speed,
                          ps[i] if np.isfinite(ps[i]) else 101325.0,
                          tw[i] if np.isfinite(tw[i]) else 0.0, stability)
        best = np.argsort(-pred, kind="stable")[:top]
        for r, j in enumerate(best):
            k = a + near[j]
            rows.append({
                "peak": i, "rank": r + 1, "source": sid[k],
                "source_latitude": slat[k], "source_longitude": slon[k],
                "source_emission": semi[k], "distance": float(dist[near[j]]),
                "downwind": float(downwind[j]), "crosswind": float(crosswind[j]),
                "travel_hours": float(downwind[j] / (speed * 3.6)),
                "predicted_delta": float(pred[j]),
                "explained": float(pred[j] / d) if d else np.nan,
            })
    cols = ["peak", "rank", "source", "source_latitude", "source_longitude", "source_emission",
            "distance", "downwind", "crosswind", "travel_hours", "predicted_delta", "explained"]
    return pd.DataFrame(rows, columns=cols)
