"""CSV soundings extracted from OCO-2 Lite files by the oco2peak project (Data For Good, 2020).

Two layouts are read:

- the project's own extract, ``;``-separated: ``sounding_id;latitude;longitude;xco2;
  xco2_uncert;orbit;windspeed_u;windspeed_v;surface_pressure;surface_pressure_apriori;
  land_water_indicator;land_fraction`` (surface pressures in hPa, land fraction in %);
- the ``,``-separated orbit segments rebuilt from the project's documentation
  (``orbit,sounding_id,distance_km,latitude,longitude,xco2,windspeed_u,windspeed_v,
  surface_pressure,aux_is_interpolated``), where most rows have no sounding id.

**Time.** The CSV has no time column; it comes from the sounding id ``YYYYMMDDhhmmssmf`` (UTC
date and time to the second, ``m`` tenths of a second, ``f`` the footprint 1-8, see
:func:`hubkit.io._common.decode_sounding_id`). Rows without an id get an *estimated* time,
flagged in ``time_is_estimated``:

1. with a ``distance`` column and at least one row with an id: linear interpolation of time in
   along-track distance between the rows with an id; beyond the first and last of them, linear
   extrapolation with the mean ground speed (least-squares slope of time against distance over
   all rows with an id; the nominal OCO-2 ground speed, 6.76 km/s, when fewer than two);
2. with ids but no distance: the same in row order (the file lists soundings along track);
3. with no id at all: the date in the file name (``_YYYYMMDD_``) at 00:00 UTC.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from hubkit import schemas
from hubkit.errors import IngestError, SchemaError
from hubkit.io._common import (
    OCO2_GROUND_SPEED,
    cf_attrs,
    column_numbers,
    decode_sounding_id,
    oco2_soundings_attrs,
)
from hubkit.units import convert_units

__all__ = ["FORMAT", "PRODUCT_TYPE", "READER_VERSION", "VARIABLE_MAP", "read", "sniff"]

FORMAT = "oco2peak-csv"
PRODUCT_TYPE = "oco2-soundings"
READER_VERSION = "1"

#: CSV column -> canonical name.
VARIABLE_MAP = {
    "sounding_id": "sounding_id",
    "latitude": "latitude",
    "longitude": "longitude",
    "xco2": "xco2",
    "xco2_uncert": "xco2_uncertainty",
    "xco2_quality_flag": "xco2_quality_flag",
    "orbit": "orbit",
    "windspeed_u": "windspeed_u",
    "windspeed_v": "windspeed_v",
    "surface_pressure": "surface_pressure",
    "surface_pressure_apriori": "surface_pressure_apriori",
    "land_water_indicator": "land_water_indicator",
    "land_fraction": "land_fraction",
    "tcwv": "tcwv",
    "distance_km": "distance",
    "distance": "distance",
    "aux_is_interpolated": "aux_is_interpolated",
}

#: Units of the CSV columns (the files carry none); ``None`` for ids and flags.
SOURCE_UNITS = {
    "latitude": "degrees_north",
    "longitude": "degrees_east",
    "xco2": "ppm",
    "xco2_uncert": "ppm",
    "windspeed_u": "m s-1",
    "windspeed_v": "m s-1",
    "surface_pressure": "hPa",
    "surface_pressure_apriori": "hPa",
    "land_fraction": "%",
    "tcwv": "kg m-2",
    "distance_km": "km",
    "distance": "km",
}

REQUIRED = ("xco2", "latitude", "longitude")
DIM = "sounding"
_INTEGER = ("orbit", "land_water_indicator", "xco2_quality_flag")
_BOOLEAN = ("aux_is_interpolated",)
_COORDS = ("time", "latitude", "longitude")


def _first_line(head: bytes) -> str:
    return head.split(b"\n", 1)[0].decode("utf-8", "replace").lstrip("\ufeff").strip()


def sniff(path, head: bytes) -> bool:
    """Text whose first line names ``xco2`` and ``latitude``, separated by ``;`` or ``,``."""
    if not head or b"\0" in head:
        return False
    line = _first_line(head)
    columns = {c.strip() for c in re.split("[;,]", line)}
    # an along-track extract without positions is recognised, to be refused with its reason
    return "xco2" in columns and bool({"latitude", "distance_km", "distance"} & columns) and (
        ";" in line or "," in line)


def _parse_ids(column: pd.Series, path: Path) -> np.ndarray:
    """Sounding ids as int64 (0 where empty); digits are parsed exactly, not through float.

    Anything but 16 digits (``YYYYMMDDhhmmssmf``) or an empty cell is refused.
    """
    out = np.zeros(len(column), dtype=np.int64)
    wrong = []
    for i, text in enumerate(column.to_numpy(dtype=object)):
        if text is None or (isinstance(text, float) and np.isnan(text)):
            continue
        text = str(text).strip()
        if text.endswith(".0"):
            text = text[:-2]
        if text.isdigit() and len(text) == 16:
            out[i] = int(text)
        elif text:
            wrong.append(i)
    if wrong:
        raise SchemaError(
            f"{path}: column 'sounding_id' holds {len(wrong)} of {len(out)} values that are not "
            f"16 digits (row {wrong[0]}: {str(column.iloc[wrong[0]])[:40]!r}); expected sounding "
            "ids of 16 digits YYYYMMDDhhmmssmf, or an empty cell"
        )
    return out


def _check_header(columns: list[str], path: Path) -> None:
    """Refuse a column named twice (pandas would silently read the second as 'xco2.1')."""
    for name in dict.fromkeys(c for c in columns if c):
        where = [i for i, c in enumerate(columns) if c == name]
        if len(where) > 1:
            raise SchemaError(
                f"{path}: column {name!r} appears {len(where)} times (columns "
                f"{', '.join(str(i + 1) for i in where)}); expected each column once"
            )


def _booleans(column: pd.Series) -> np.ndarray:
    text = column.astype(str).str.strip().str.lower()
    return text.isin(["true", "1", "1.0", "yes"]).to_numpy()


def _estimate_times(time: np.ndarray, distance: np.ndarray | None, path: Path):
    """Fill NaT in ``time``; return ``(time, is_estimated, how)``."""
    known = ~np.isnat(time)
    estimated = ~known
    if known.all():
        return time, estimated, "every time decoded from the sounding id"
    if not known.any():
        match = re.search(r"_(\d{8})_", path.name)
        day = pd.to_datetime(match.group(1), format="%Y%m%d", errors="coerce") if match else None
        if day is None or pd.isna(day):
            raise SchemaError(
                f"{path}: no time: column 'sounding_id' is empty or missing and the file name "
                "holds no date '_YYYYMMDD_'; expected sounding ids YYYYMMDDhhmmssmf"
            )
        filled = np.full(time.shape, day.to_datetime64(), dtype="datetime64[ns]")
        return filled, estimated, "no sounding id: date from the file name at 00:00 UTC"
    if distance is not None and np.isfinite(distance[known]).any():
        x, how = distance, "linear in along-track distance between rows with a sounding id"
        known &= np.isfinite(distance)
    else:
        x, how = np.arange(time.size, dtype=np.float64), "linear in row order between ids"
    t0 = time[known].min()
    xk = x[known]
    tk = (time[known] - t0).astype(np.int64) / 1e9
    order = np.argsort(xk, kind="stable")
    xk, tk = xk[order], tk[order]
    if xk.size >= 2 and np.ptp(xk) > 0:
        slope = np.polyfit(xk, tk, 1)[0]
    else:
        slope = 0.0
    if not slope > 0:
        slope = 1.0 / OCO2_GROUND_SPEED if x is distance else 0.0
    seconds = np.interp(x, xk, tk)
    seconds = np.where(x < xk[0], tk[0] + slope * (x - xk[0]), seconds)
    seconds = np.where(x > xk[-1], tk[-1] + slope * (x - xk[-1]), seconds)
    guess = t0 + np.round(np.nan_to_num(seconds) * 1e9).astype("timedelta64[ns]")
    time = np.where(estimated, guess, time)
    how += f"; extrapolated beyond them at {slope:.5f} s/km" if x is distance else ""
    return time.astype("datetime64[ns]"), estimated, how


def read(path) -> xr.Dataset:
    """Read an oco2peak CSV (``;`` or ``,`` layout) into a canonical ``oco2-soundings`` dataset."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            header = _first_line(f.read(65536))
        sep = ";" if ";" in header else ","
        _check_header([c.strip() for c in header.split(sep)], path)
        df = pd.read_csv(path, sep=sep, dtype={"sounding_id": str}, skipinitialspace=True)
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise IngestError(f"{path}: cannot be parsed as an oco2peak CSV: {exc}") from exc
    df.columns = [str(c).strip() for c in df.columns]
    df = df.drop(columns=[c for c in df.columns if c.startswith("Unnamed") or c == ""])
    if not {"latitude", "longitude"} & set(df.columns) and (
            {"distance_km", "distance"} & set(df.columns)):
        raise SchemaError(
            f"{path}: columns 'latitude' and 'longitude' are missing: the file holds "
            f"{len(df)} soundings with only {list(df.columns)}; expected a position for every "
            "sounding. Without positions hubkit cannot place the soundings on the map, find "
            "them by area, fit peaks (its along-track coordinate is computed on the sphere "
            "from the positions) or attribute sources; the along-track distance cannot be "
            "turned back into positions. Take the positions from the OCO-2 Lite file of the "
            "orbit (upload that instead), or read this file with pandas for a distance-only "
            "look at the data"
        )
    for column in REQUIRED:
        if column not in df.columns:
            raise SchemaError(
                f"{path}: column {column!r} is missing; expected the columns {list(REQUIRED)} "
                f"(found {list(df.columns)})"
            )
    if len(df) == 0:
        raise SchemaError(f"{path}: no data rows; expected at least one sounding")

    coords, data_vars = {}, {}
    for column, name in VARIABLE_MAP.items():
        if column not in df.columns or name in coords or name in data_vars:
            continue
        if column == "sounding_id":
            arr, units = _parse_ids(df[column], path), None
        elif column in _BOOLEAN:
            arr, units = _booleans(df[column]), None
        elif column in _INTEGER:
            arr, units = column_numbers(df, column, path), None
            if np.isfinite(arr).all():
                arr = arr.astype(np.int64 if column == "orbit" else np.int8)
        else:
            units = schemas.OCO2_SOUNDINGS.var(name).units
            arr = convert_units(column_numbers(df, column, path), SOURCE_UNITS[column], units,
                                path=path, name=column)
        (coords if name in _COORDS else data_vars)[name] = xr.Variable(
            (DIM,), arr, cf_attrs(name, units))

    ids = data_vars["sounding_id"].values if "sounding_id" in data_vars else np.zeros(len(df))
    time, footprint = decode_sounding_id(ids)
    distance = data_vars["distance"].values if "distance" in data_vars else None
    time, estimated, how = _estimate_times(time, distance, path)
    coords["time"] = xr.Variable((DIM,), time, cf_attrs("time"))
    data_vars["time_is_estimated"] = xr.Variable((DIM,), estimated, cf_attrs("time_is_estimated"))
    if "sounding_id" in data_vars:
        data_vars["footprint"] = xr.Variable((DIM,), footprint, cf_attrs("footprint"))

    ds = xr.Dataset(data_vars, coords={k: coords[k] for k in _COORDS})
    ds.attrs.update(oco2_soundings_attrs(
        path, title="OCO-2 XCO2 soundings (oco2peak CSV extract)", fmt=FORMAT,
        time_estimation=(
            f"{int(estimated.sum())} of {estimated.size} times estimated "
            f"(time_is_estimated): {how}. Sounding ids YYYYMMDDhhmmssmf are decoded as UTC time "
            "to the second plus m tenths of a second; f is the footprint."
        ),
        references="oco2peak, Data For Good France (2020), github.com/dataforgoodfr/"
                   "batch7_satellite_ges; OCO-2 Science Team, OCO-2 Lite XCO2, GES DISC",
    ))
    schemas.validate(ds, source=str(path), product_type=PRODUCT_TYPE)
    return ds
