"""Peak tables of the oco2peak project (Data For Good France, 2020): XCO2 plumes along OCO-2.

Three layouts, all ``,``-separated with one row per detected peak and the columns
``sounding_id, latitude, longitude, orbit, slope, intercept, amplitude, sigma, delta, R,
windspeed_u, windspeed_v, surface_pressure`` [1]_:

- the reference output of ``find_peak.gaussian_fit_on_df`` (adds ``tcwv, gCO2_per_s,
  ktCO2_per_h``);
- ``peaks_out_YYMM.csv`` (adds ``surface_pressure_apriori, land_water_indicator,
  land_fraction, surf_pres`` and the outlier labels ``y_class_*`` (1 inlier, -1 outlier) and
  ``outlier_score_lof``);
- ``peaks_and_invent_YYMM.csv`` (adds ``date``, ``geometry``, the WKT polygon of the
  wind-oriented capture zone, and for each of 15 inventory source types ``index_<type>``, the
  list of inventory row labels inside the zone as the project wrote it, e.g. ``[5394.0]``, and
  ``number_<type>``, their count).

Units are those of the project (it states none in the files): the fit along track in km
(``sigma`` [km], ``amplitude`` [ppm km], ``slope`` [ppm km-1]), pressures in hPa (stored in
Pa), ``gCO2_per_s`` in g s-1 (stored as ``emission`` [kg s-1]). The per-type columns become
two variables on ``(peak, source_type)``: ``n_sources`` and ``source_indices`` (the text as
given). The time of a peak is decoded from its sounding id (``YYYYMMDDhhmmssmf``, UTC); a
``date`` column is kept as ``date``. Unknown columns are kept under their own names.

References
----------
.. [1] oco2peak, Data For Good France, season 7 (2020), github.com/dataforgoodfr/
   batch7_satellite_ges (find_peak.py, dataset/output, dataset/peaks_and_invent).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from hubkit import schemas
from hubkit.errors import IngestError, SchemaError
from hubkit.io._common import CONVENTIONS, column_numbers, decode_sounding_id
from hubkit.units import conversion_attrs, convert_units

#: Cells that mean "no value" in the peak tables (pandas wrote NaN as the word ``nan``).
_MISSING = ("", "nan")

__all__ = ["FORMAT", "PRODUCT_TYPE", "READER_VERSION", "VARIABLE_MAP", "read", "sniff"]

FORMAT = "oco2peak-peaks"
PRODUCT_TYPE = "oco2peak-peaks"
READER_VERSION = "1"

#: CSV column -> (canonical name, units in the file, canonical units); ``None``: no units.
VARIABLE_MAP: dict[str, tuple[str, str | None, str | None]] = {
    "latitude": ("latitude", "degrees_north", "degrees_north"),
    "longitude": ("longitude", "degrees_east", "degrees_east"),
    "slope": ("slope", "ppm km-1", "ppm km-1"),
    "intercept": ("intercept", "ppm", "ppm"),
    "amplitude": ("amplitude", "ppm km", "ppm km"),
    "sigma": ("sigma", "km", "km"),
    "delta": ("delta", "ppm", "ppm"),
    "R": ("R", "1", "1"),
    "windspeed_u": ("windspeed_u", "m s-1", "m s-1"),
    "windspeed_v": ("windspeed_v", "m s-1", "m s-1"),
    "surface_pressure": ("surface_pressure", "hPa", "Pa"),
    "surface_pressure_apriori": ("surface_pressure_apriori", "hPa", "Pa"),
    "surf_pres": ("surface_pressure_anomaly", "hPa", "Pa"),
    "land_fraction": ("land_fraction", "%", "%"),
    "tcwv": ("tcwv", "kg m-2", "kg m-2"),
    "gCO2_per_s": ("emission", "g s-1", "kg s-1"),
    "ktCO2_per_h": ("emission_kt_per_hour", "kt h-1", "kt h-1"),
    "outlier_score_lof": ("outlier_score_lof", "1", "1"),
}
#: Columns of whole numbers (ids, orbits, flags, labels).
_INTEGER = ("orbit", "land_water_indicator", "y_class_lof", "y_class_dbscan",
            "y_class_lof_only_gaussian_param", "y_class_dbscan_only_gaussian_param")
_REQUIRED = ("sounding_id", "latitude", "longitude", "orbit", "amplitude", "sigma", "delta")
_LONG_NAMES = {
    "emission": "emission estimate of the project (cross-sectional flux, gCO2_per_s)",
    "surface_pressure_anomaly": "surface pressure minus its a priori (surf_pres)",
    "capture_zone": "WKT polygon (lon lat, degrees) of the wind-oriented capture zone",
    "n_sources": "inventory sources of each type inside the capture zone",
    "source_indices": "inventory row labels inside the capture zone, as written by oco2peak",
}
DIM = "peak"


def _header(head: bytes) -> list[str]:
    line = head.split(b"\n", 1)[0].decode("utf-8", "replace").lstrip("\ufeff").strip()
    return [c.strip() for c in line.split(",")]


def sniff(path, head: bytes) -> bool:
    """Text whose header holds the peak-fit columns (sounding_id ... amplitude, sigma, delta)."""
    if not head or b"\0" in head:
        return False
    return set(_REQUIRED) <= set(_header(head))


def _ids(df: pd.DataFrame, path: Path) -> np.ndarray:
    text = df["sounding_id"].astype(str).str.strip().str.removesuffix(".0")
    ok = text.str.fullmatch(r"\d{16}").to_numpy()
    if not ok.all():
        row = int(np.flatnonzero(~ok)[0])
        raise SchemaError(f"{path}: column 'sounding_id' holds {text.iloc[row]!r} in data row "
                          f"{row + 1}; expected 16 digits YYYYMMDDhhmmssmf for every peak")
    return text.astype(np.int64).to_numpy()


def read(path) -> xr.Dataset:
    """Read an oco2peak peak table into a canonical ``oco2peak-peaks`` dataset."""
    path = Path(path)
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise IngestError(f"{path}: cannot be parsed as an oco2peak peak table: {exc}") from exc
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in _REQUIRED if c not in df.columns]
    if missing:
        raise SchemaError(f"{path}: column(s) {missing} missing; expected the oco2peak peak "
                          f"columns {list(_REQUIRED)} (found {list(df.columns)[:20]})")
    if len(df) == 0:
        raise SchemaError(f"{path}: no data rows; expected at least one peak")
    one = (DIM,)
    ids = _ids(df, path)
    time, _ = decode_sounding_id(ids)
    coords = {"time": xr.Variable(one, time, {"standard_name": "time",
                                               "long_name": "time of the peak's sounding (UTC)"})}
    data_vars = {"sounding_id": xr.Variable(one, ids, {"long_name": "OCO-2 sounding id of the "
                                                       "window centre YYYYMMDDhhmmssmf"})}
    types = [c[len("index_"):] for c in df.columns
             if c.startswith("index_") and f"number_{c[len('index_'):]}" in df.columns]
    grouped = {f"index_{t}" for t in types} | {f"number_{t}" for t in types}
    for column in df.columns:
        if column == "sounding_id" or column in grouped:
            continue
        if column in VARIABLE_MAP:
            name, found, units = VARIABLE_MAP[column]
            values = convert_units(column_numbers(df, column, path, missing=_MISSING), found,
                                   units, path=path, name=column)
            attrs = {"units": units, "long_name": _LONG_NAMES.get(name, name.replace("_", " ")),
                     **conversion_attrs(found, units)}
            if name in ("latitude", "longitude"):
                attrs["standard_name"] = name
            (coords if name in ("latitude", "longitude") else data_vars)[name] = \
                xr.Variable(one, values, attrs)
        elif column in _INTEGER:
            values = column_numbers(df, column, path, missing=_MISSING)
            if np.isfinite(values).all():
                values = values.astype(np.int64)
            data_vars[column] = xr.Variable(one, values)
        elif column == "date":
            data_vars["date"] = xr.Variable(one, pd.to_datetime(
                df[column], format="ISO8601").to_numpy(dtype="datetime64[ns]"),
                {"long_name": "date column of the file (UTC)"})
        elif column == "geometry":
            data_vars["capture_zone"] = xr.Variable(
                one, df[column].fillna("").to_numpy(dtype=object),
                {"long_name": _LONG_NAMES["capture_zone"]})
        else:  # an unknown column: numbers if it holds only numbers, else text
            values = pd.to_numeric(df[column], errors="coerce")
            keep = values.to_numpy(np.float64) if values.notna().sum() == df[column].notna().sum() \
                else df[column].fillna("").to_numpy(dtype=object)
            data_vars[column] = xr.Variable(one, keep)
    if types:
        counts = np.stack([column_numbers(df, f"number_{t}", path, missing=_MISSING)
                           for t in types], axis=1)
        data_vars["n_sources"] = xr.Variable(
            (DIM, "source_type"), counts.astype(np.int64) if np.isfinite(counts).all()
            else counts, {"long_name": _LONG_NAMES["n_sources"]})
        data_vars["source_indices"] = xr.Variable(
            (DIM, "source_type"),
            np.stack([df[f"index_{t}"].fillna("").to_numpy(dtype=object) for t in types], 1),
            {"long_name": _LONG_NAMES["source_indices"]})
        coords["source_type"] = xr.Variable(("source_type",), np.array(types, dtype=object))
    ds = xr.Dataset(data_vars, coords=coords)
    ds.attrs = {
        "Conventions": CONVENTIONS,
        "title": "XCO2 peaks detected by oco2peak",
        "hubkit_product_type": PRODUCT_TYPE,
        "hubkit_format": FORMAT,
        "hubkit_species": "co2",
        "source": path.name,
        "platform": "OCO-2",
        "instrument": "OCO-2",
        "comment": "fits of the oco2peak project, stopped after about one Levenberg-Marquardt "
                   "iteration (ftol=xtol=0.5): not least-squares optima",
        "references": "oco2peak, Data For Good France (2020), github.com/dataforgoodfr/"
                      "batch7_satellite_ges; OCO-2 Science Team, OCO-2 Lite XCO2, GES DISC",
    }
    schemas.validate(ds, source=str(path), product_type=PRODUCT_TYPE)
    return ds
