"""Satellite column soundings against a TCCON station, with the satellite's smoothing applied to
the station's profile.

TCCON retrieves a scaling of its a priori profile: its best estimate of the profile is
``γ · xa_T`` with ``γ = X_T / (column of xa_T)`` (the column through the file's own integration
operator). Following Wunch et al. (2011, Phil. Trans.) and Rodgers & Connor (2003), that profile
is put on the satellite's pressure levels and seen through the satellite's column averaging
kernel and a priori (:func:`~hubkit.validate.smoothing.smooth_column`), so the difference
compares like with like: what is left is not the satellite's smoothing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from hubkit.errors import ComparisonInputError
from hubkit.validate.colocate import Criteria, colocate
from hubkit.validate.smoothing import interp_profile, smooth_column

__all__ = ["compare_with_tccon", "station_series"]


def _var(ds: xr.Dataset, name: str, what: str) -> xr.DataArray:
    if name not in ds:
        source = ds.attrs.get("source", "the dataset")
        raise ComparisonInputError(f"{source}: no variable {name!r} ({what}); it has "
                       f"{', '.join(sorted(map(str, ds.data_vars)))}")
    return ds[name]


def station_series(station: xr.Dataset, species: str) -> dict:
    """The station's measurements of ``x<species>`` as a table for :func:`colocate`: name,
    position (the first record's), times, values and uncertainties."""
    x = _var(station, f"x{species}", "the station's column")
    unc = station.get(f"x{species}_uncertainty", xr.full_like(x, np.nan))
    name = str(station.attrs.get("site_code") or station.attrs.get("short_location")
               or station.attrs.get("source", "station"))
    return {
        "stations": {"station": [name],
                     "latitude": [float(np.asarray(station["latitude"]).ravel()[0])],
                     "longitude": [float(np.asarray(station["longitude"]).ravel()[0])]},
        "observations": {"station": np.full(x.size, name), "time": station["time"].values,
                         "value": x.values.astype(float), "uncertainty": unc.values.astype(float)},
    }


def compare_with_tccon(soundings: xr.Dataset, station: xr.Dataset, species: str,
                       criteria: Criteria, *, smoothing: bool = True) -> pd.DataFrame:
    """Pairs of satellite soundings and TCCON measurements, with the smoothing-corrected ground
    value when the soundings carry averaging kernels.

    Parameters
    ----------
    soundings : xarray.Dataset
        Dim ``sounding``: ``x<species>`` and ``x<species>_uncertainty``, ``latitude``,
        ``longitude``, ``time``; for the smoothing correction also ``pressure`` [Pa],
        ``pressure_weight``, ``x<species>_averaging_kernel`` and ``<species>_apriori`` on
        (sounding, level), in the unit of ``x<species>``.
    station : xarray.Dataset
        A ``tccon-columns`` product: ``x<species>`` and its uncertainty, the a priori profile
        ``<species>_apriori`` with ``prior_pressure`` [Pa] and ``integration_operator`` on its
        prior levels.
    species : str
        ``co2``, ``ch4``, ``co``, ``n2o`` …
    criteria : Criteria
        What makes a sounding and a station measurement coincide (:func:`colocate`).
    smoothing : bool
        Apply the satellite's kernel to the station's profile (needs the variables above).

    Returns
    -------
    pandas.DataFrame
        The table of :func:`~hubkit.validate.colocate` plus, with ``smoothing``,
        ``ground_smoothed`` (the station's scaled-prior profile as the satellite would see it,
        from the station record nearest in time) and ``difference_smoothed``.
    """
    x = _var(soundings, f"x{species}", "the satellite column")
    sat_unit, ground_unit = x.attrs.get("units"), station[f"x{species}"].attrs.get("units")
    if sat_unit and ground_unit and sat_unit != ground_unit:
        raise ComparisonInputError(f"x{species} is in {sat_unit!r} in the soundings and in "
                                   f"{ground_unit!r} at the station; convert one first")
    table = station_series(station, species)
    sat = {"latitude": soundings["latitude"].values, "longitude": soundings["longitude"].values,
           "time": soundings["time"].values, "value": x.values.astype(float),
           "uncertainty": soundings.get(f"x{species}_uncertainty",
                                        xr.full_like(x, np.nan)).values.astype(float)}
    pairs = colocate(sat, table["stations"], table["observations"], criteria)
    if not smoothing or pairs.empty:
        return pairs
    k = pairs["sounding"].to_numpy(int)
    ak = _var(soundings, f"x{species}_averaging_kernel", "the column averaging kernel")
    level = ak.dims[-1]
    prior = _var(soundings, f"{species}_apriori", "the satellite's a priori profile")
    pw = _var(soundings, "pressure_weight", "the pressure weights")
    p_sat = _var(soundings, "pressure", "the pressure of the satellite's levels")
    sub = {"sounding": k}
    a = ak.isel(sub).transpose(..., level).values
    xa = prior.isel(sub).transpose(..., level).values
    h = pw.isel(sub).transpose(..., level).values
    p = p_sat.isel(sub).transpose(..., level).values if "sounding" in p_sat.dims else \
        np.broadcast_to(p_sat.values, a.shape)
    # the station's profile: its a priori scaled by its retrieval, nearest record in time
    st_prior = _var(station, f"{species}_apriori", "the station's a priori profile")
    op = _var(station, "integration_operator", "the station's column integration operator")
    p_st = _var(station, "prior_pressure", "the pressure of the station's prior levels")
    st_t = station["time"].values.astype("datetime64[ns]").astype(np.int64)
    pair_t = pairs["time"].to_numpy().astype("datetime64[ns]").astype(np.int64)
    near = np.abs(pair_t[:, None] - st_t[None, :]).argmin(axis=1)
    xa_t = st_prior.values[near].astype(float)
    gamma = station[f"x{species}"].values[near] / np.sum(op.values[near] * xa_t, axis=-1)
    profile = interp_profile(gamma[:, None] * xa_t, p_st.values[near], p)
    smoothed = smooth_column(profile, xa, a, h)
    pairs["ground_smoothed"] = smoothed
    pairs["difference_smoothed"] = pairs["satellite"] - smoothed
    return pairs
