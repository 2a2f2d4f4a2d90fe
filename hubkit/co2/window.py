"""The soundings one detection was fitted on, recomputed on demand from the soundings product."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import xarray as xr

from hubkit.co2.fit import gaussian_line
from hubkit.co2.options import PeakOptions, stored_options
from hubkit.co2.prepare import prepare_soundings
from hubkit.errors import CO2InputError

log = logging.getLogger(__name__)

def window_data(ds: xr.Dataset, peaks: xr.Dataset, i: int,
                options: PeakOptions | None = None) -> pd.DataFrame:
    """The soundings of detection ``i`` of ``peaks`` with the fitted model (on demand).

    See :func:`peak_window`; ``options`` default to those stored in ``peaks.attrs``.
    """
    return peak_window(ds, peaks.isel(peak=i), options or stored_options(peaks.attrs))




def peak_window(soundings: xr.Dataset, peak, options: PeakOptions | None = None
                ) -> pd.DataFrame:
    """The soundings one detection was fitted on, recomputed from the soundings product.

    Peaks tables keep the fit, not the window's soundings: this selects the detection's orbit in
    ``soundings``, prepares it as :func:`find_peaks` did (same options, so the same along-track
    coordinate) and returns the soundings within ``±half_width`` of the centre with the fitted
    model evaluated on them.

    Parameters
    ----------
    soundings : xarray.Dataset
        The ``oco2-soundings`` the detection was found in (all of its orbit).
    peak : pandas.Series, mapping or xarray.Dataset
        One detection: a row of :func:`hubkit.co2.peaks_table` (or of a stored ``oco2-peaks``
        table), or one element of :func:`find_peaks`. Needs ``orbit, along, slope, intercept,
        delta, sigma``.
    options : PeakOptions, optional
        The options of the detection run (``PeakOptions.from_json(table.attrs["options"])``);
        defaults to ``PeakOptions()``.

    Returns
    -------
    pandas.DataFrame
        One row per sounding, in along-track order: ``x`` (along track from the centre [km]),
        ``xco2``, ``model``, ``background`` [ppm], ``latitude``, ``longitude`` [°],
        ``sounding_index`` (position in ``soundings``), and ``xco2_uncertainty`` [ppm] and
        ``time`` when the soundings have them.
    """
    o = options or PeakOptions()
    for name in ("along", "slope", "intercept", "delta", "sigma"):
        if name not in peak:
            raise CO2InputError(f"peak_window: the peak lacks {name!r}; expected a row of "
                                "peaks_table() or find_peaks() output")
    orbit = np.asarray(peak["orbit"]).item() if "orbit" in peak else 0
    sub = soundings
    if "orbit" in soundings.variables:
        sub = soundings.isel(sounding=np.flatnonzero(soundings["orbit"].values == orbit))
    t = prepare_soundings(sub, o)
    s = t["along"].to_numpy()
    centre = float(np.asarray(peak["along"]))
    a = np.searchsorted(s, centre - o.half_width, "left")  # as fit_windows' window_bounds
    b = np.searchsorted(s, centre + o.half_width, "right")
    t = t.iloc[a:b]
    x = s[a:b] - centre
    m, c, d, w = (float(np.asarray(peak[k])) for k in ("slope", "intercept", "delta", "sigma"))
    out = pd.DataFrame({
        "x": x, "xco2": t["xco2"].to_numpy(),
        "model": gaussian_line(x, m, c, d, w),
        "background": m * x + c,
        "latitude": t["latitude"].to_numpy(), "longitude": t["longitude"].to_numpy(),
        "sounding_index": t["index"].to_numpy(),
    })
    if "orbit" in soundings.variables:  # positions in the whole dataset, not the orbit
        out["sounding_index"] = np.flatnonzero(soundings["orbit"].values == orbit)[
            out["sounding_index"].to_numpy()]
    for name in ("xco2_uncertainty", "time"):
        if name in t:
            out[name] = t[name].to_numpy()
    return out
