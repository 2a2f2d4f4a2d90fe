"""The peaks product: one row per detection, ready for :meth:`hubkit.store.Store.put_table`.

The table holds every fitted parameter with its uncertainty, the test statistics, the wind, the
emission with its uncertainty and flags, and the best-ranked inventory source; the detection
options are kept as JSON in its ``attrs`` and each column's units in ``attrs["units"]``. The
soundings of a detection's window are not stored: :func:`hubkit.co2.peak_window` recomputes them
from the soundings product.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from hubkit.errors import CO2InputError

__all__ = ["SOURCE_COLUMNS", "peaks_table"]

#: Columns of :func:`hubkit.co2.attribute_sources` carried into the table for the rank-1
#: source (prefixed ``source_`` where they are not already).
SOURCE_COLUMNS = {
    "source": "source", "source_latitude": "source_latitude",
    "source_longitude": "source_longitude", "source_emission": "source_emission",
    "distance": "source_distance", "downwind": "source_downwind",
    "crosswind": "source_crosswind", "travel_hours": "source_travel_hours",
    "predicted_delta": "source_predicted_delta", "explained": "source_explained",
}
_SOURCE_UNITS = {
    "source_latitude": "degrees_north", "source_longitude": "degrees_east",
    "source_emission": "kg s-1", "source_distance": "km", "source_downwind": "km",
    "source_crosswind": "km", "source_travel_hours": "h", "source_predicted_delta": "ppm",
    "source_explained": "1",
}

#: The CF flag attributes (and hubkit's ``flag_descriptions``) a column keeps in
#: ``attrs["flags"]``.
_FLAG_ATTRS = ("flag_masks", "flag_values", "flag_meanings", "flag_descriptions")


def _plain(value):
    """A JSON-ready attribute value (NumPy scalars to Python)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def peaks_table(peaks: xr.Dataset, attribution: pd.DataFrame | None = None) -> pd.DataFrame:
    """The detections of :func:`hubkit.co2.find_peaks` as a table product.

    Parameters
    ----------
    peaks : xarray.Dataset
        :func:`find_peaks` output (dim ``peak``).
    attribution : pandas.DataFrame, optional
        :func:`hubkit.co2.attribute_sources` of these ``peaks``: the rank-1 candidate of each
        detection becomes its ``source, source_latitude, source_longitude`` [°],
        ``source_emission`` [kg s-1], ``source_distance, source_downwind, source_crosswind``
        [km], ``source_travel_hours`` [h], ``source_predicted_delta`` [ppm],
        ``source_explained``; ``n_candidates`` counts the candidates kept (0: none upwind).

    Returns
    -------
    pandas.DataFrame
        One row per detection (RangeIndex, in the order of ``peaks``); ``attrs`` hold the
        dataset's attributes (``options`` as JSON, ``noise_scale``, counts ...) and ``units``
        (``{column: units}``) and, for flag columns such as ``emission_flag``, ``flags``
        (``{column: {flag_masks, flag_meanings, flag_descriptions}}``, CF style), so
        ``store.put_table(table, product_type="oco2-peaks", ...)`` stores it as it is.
    """
    if "peak" not in peaks.dims and peaks.sizes:
        raise CO2InputError(f"peaks_table: dataset has dims {tuple(peaks.dims)}, expected 'peak' "
                            "(find_peaks output)")
    df = peaks.to_dataframe().reset_index(drop=True) if peaks.data_vars else pd.DataFrame()
    units = {str(k): v.attrs["units"] for k, v in peaks.data_vars.items() if "units" in v.attrs}
    if attribution is not None:
        missing = sorted((set(SOURCE_COLUMNS) | {"peak", "rank"}) - set(attribution.columns))
        if missing:
            raise CO2InputError(f"peaks_table: attribution lacks {missing}; expected "
                                "attribute_sources() output")
        best = attribution[attribution["rank"] == 1].set_index("peak")
        best = best[list(SOURCE_COLUMNS)].rename(columns=SOURCE_COLUMNS)
        best["source"] = best["source"].map(str)
        df = df.join(best, how="left")
        counts = attribution.groupby("peak").size()
        df["n_candidates"] = counts.reindex(df.index, fill_value=0).to_numpy(dtype=np.int64)
        units.update(_SOURCE_UNITS)
    attrs = {str(k): _plain(v) for k, v in peaks.attrs.items()}
    attrs["units"] = units
    flags = {str(name): {k: _plain(v) for k, v in var.attrs.items() if k in _FLAG_ATTRS}
             for name, var in peaks.data_vars.items()
             if "flag_masks" in var.attrs or "flag_values" in var.attrs}
    if flags:
        attrs["flags"] = flags
    df.attrs = attrs
    return df
