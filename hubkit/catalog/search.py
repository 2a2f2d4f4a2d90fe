"""The search index (one row per Item, a cache rebuildable from the Items) and its filters:
product type, bounding box, time range (ISO 8601), species, instrument and station facets."""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from hubkit.catalog.ids import STAC_PREFIX
from hubkit.errors import SearchTermError, StoreError

#: Columns of the search index, one row per Item.
INDEX_COLUMNS = {
    "id": "string",
    "collection": "string",
    "species": "string",
    "instrument": "string",
    "platform": "string",
    "site": "string",
    "inlets": "string",
    "network": "string",
    "scale": "string",
    "start": "datetime64[ns, UTC]",
    "end": "datetime64[ns, UTC]",
    "west": "float64",
    "south": "float64",
    "east": "float64",
    "north": "float64",
}


def index_problem(df: pd.DataFrame) -> str | None:
    """Why a search index read back from storage cannot be trusted, or None.

    Expects exactly :data:`INDEX_COLUMNS` with string, UTC date-time and float columns (any
    time resolution) and one row per id.
    """
    if list(df.columns) != list(INDEX_COLUMNS):
        return f"columns {list(df.columns)}, expected {list(INDEX_COLUMNS)}"
    for name, dtype in INDEX_COLUMNS.items():
        col = df[name].dtype
        if dtype.startswith("datetime"):
            ok = isinstance(col, pd.DatetimeTZDtype) and str(col.tz) == "UTC"
        elif dtype == "float64":
            ok = pd.api.types.is_float_dtype(col)
        else:
            ok = pd.api.types.is_string_dtype(col) and not pd.api.types.is_object_dtype(col)
        if not ok:
            return f"column {name!r} has type {col}, expected {dtype}"
    if df["id"].duplicated().any():
        return f"{int(df['id'].duplicated().sum())} duplicate id row(s)"
    return None


def index_rows(items: list[dict]) -> pd.DataFrame:
    """One search-index row per Item dict (as stored in the item's JSON)."""
    rows = []
    for d in items:
        p = d.get("properties", {})
        bbox = d.get("bbox") or [np.nan] * 4
        start = p.get("start_datetime") or p.get("datetime")
        end = p.get("end_datetime") or p.get("datetime")
        instruments = p.get("instruments") or [None]
        inlets = p.get(f"{STAC_PREFIX}inlet_heights")
        rows.append(
            {
                "id": d["id"],
                "collection": d.get("collection"),
                "species": p.get(f"{STAC_PREFIX}species"),
                "instrument": instruments[0],
                "platform": p.get("platform"),
                "site": p.get(f"{STAC_PREFIX}site"),
                "inlets": " ".join(f"{float(h):g}" for h in inlets) if inlets else None,
                "network": p.get(f"{STAC_PREFIX}network"),
                "scale": p.get(f"{STAC_PREFIX}calibration_scale"),
                "start": start,
                "end": end,
                "west": bbox[0],
                "south": bbox[1],
                "east": bbox[2],
                "north": bbox[3],
            }
        )
    df = pd.DataFrame(rows, columns=list(INDEX_COLUMNS))
    for name, dtype in INDEX_COLUMNS.items():
        if dtype.startswith("datetime"):
            df[name] = pd.to_datetime(df[name], utc=True, format="ISO8601")
        else:
            df[name] = df[name].astype(dtype)
    return df


def parse_inlet(value) -> float:
    """An intake height [m] from ``100``, ``100.0``, ``"100m"`` or ``"100 m"``."""
    text = str(value).strip().lower().removesuffix("magl").removesuffix("m").strip()
    try:
        height = float(text)
    except ValueError:
        raise StoreError(f"inlet {value!r}: expected an intake height in metres such as 100 or "
                         "'100m'") from None
    if not math.isfinite(height):
        raise StoreError(f"inlet {value!r}: expected a finite height in metres")
    return height


def _has_inlet(text, height: float) -> bool:
    if text is None or text is pd.NA or not isinstance(text, str):
        return False
    return any(abs(float(h) - height) <= 0.05 for h in text.split())


_PARTIAL = (
    (re.compile(r"^\d{4}$"), "%Y", "year"),
    (re.compile(r"^\d{4}-\d{2}$"), "%Y-%m", "month"),
    (re.compile(r"^\d{4}-\d{2}-\d{2}$"), "%Y-%m-%d", "day"),
)


#: ISO 8601 date and time, the forms accepted besides the partial dates of :data:`_PARTIAL`:
#: ``2016-08-31T11:55``, ``…:00``, ``…:00.5``, with ``Z`` or an offset (UTC when none).
_ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?"
                       r"(Z|[+-]\d{2}(:?\d{2})?)?$", re.IGNORECASE)
_ISO_EXAMPLES = "2016-08, 2016-08-31 or 2016-08-31T11:55:00Z"


def _not_iso(text: str) -> SearchTermError:
    """The error for a date that is not ISO 8601, with the right form of an ambiguous one."""
    hint = ""
    m = re.match(r"^(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})$", text)
    if m:
        a, b, year = int(m.group(1)), int(m.group(2)), m.group(3)
        forms = sorted({f"{year}-{mm:02d}-{dd:02d}" for dd, mm in ((a, b), (b, a))
                        if 1 <= mm <= 12 and 1 <= dd <= 31})
        if forms:
            hint = f" (write {' or '.join(forms)}: day and month cannot be told apart here)"
    return SearchTermError(
        f"cannot read {text!r} as a date or time; expected ISO 8601 (year-month-day, UTC "
        f"unless an offset is given) such as {_ISO_EXAMPLES}{hint}")


def _parse_instant(value, *, end: bool) -> pd.Timestamp | None:
    """A start or end of a time filter as a UTC timestamp. Strings must be ISO 8601; a date
    without a time (and a year or month) as an end means the end of that period, inclusive."""
    if isinstance(value, datetime):  # also pandas.Timestamp
        t = pd.Timestamp(value)
        return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
    if isinstance(value, np.datetime64):
        return pd.Timestamp(value).tz_localize("UTC")
    if hasattr(value, "isoformat") and not isinstance(value, str):  # datetime.date
        value = value.isoformat()
    text = str(value).strip()
    if text in ("", ".."):
        return None
    for pattern, fmt, period in _PARTIAL:
        if pattern.match(text):
            try:
                t = pd.Timestamp(datetime.strptime(text, fmt), tz="UTC")
            except ValueError:
                raise _not_iso(text) from None
            if not end:
                return t
            if period == "year":
                nxt = t + pd.DateOffset(years=1)
            elif period == "month":
                nxt = t + pd.DateOffset(months=1)
            else:
                nxt = t + timedelta(days=1)
            return nxt - pd.Timedelta(1, "ns")
    if not _ISO_TIME.match(text):
        raise _not_iso(text)
    try:
        t = pd.Timestamp(text)
    except ValueError:
        raise _not_iso(text) from None
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def parse_datetime_range(value) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    """Parse a STAC-style datetime filter into an inclusive UTC ``(start, end)``.

    Accepts ``"2016-08/2016-09"`` (a partial date on the right means the end of that period:
    here all of September), ``"2016-08-31"`` (that whole day), open ends ``"../2016-09"``, or a
    ``(start, end)`` pair of strings, dates, datetimes or ``None``. Strings are ISO 8601
    only: ``01/09/2016`` (9 January or 1 September?) is a :class:`SearchTermError` naming the
    two ISO forms it could mean.
    """
    if value is None:
        return None, None
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise StoreError(f"datetime range {value!r}: expected (start, end)")
        start, end = value
    elif isinstance(value, str) and "/" in value:
        start, end = value.split("/", 1)
    else:
        start = end = value
    start = _parse_instant(start, end=False) if start is not None else None
    end = _parse_instant(end, end=True) if end is not None else None
    if start is not None and end is not None and end < start:
        raise StoreError(f"datetime range {value!r}: the end is before the start")
    return start, end


def filter_index(
    df: pd.DataFrame,
    *,
    collection: str | None = None,
    bbox=None,
    datetime=None,
    species: str | None = None,
    instrument: str | None = None,
    site: str | None = None,
    inlet=None,
    network: str | None = None,
    scale: str | None = None,
    platform: str | None = None,
) -> pd.DataFrame:
    """Rows of the index whose Items match every given filter (``None`` = no filter).

    ``species``, ``instrument``, ``site``, ``network``, ``scale`` (calibration scale) and
    ``platform`` match case-insensitively and whole; ``inlet`` is an intake height [m] (a
    number, or text such as ``"100m"``) that one of the product's inlets must have (within
    0.05 m).

    ``bbox`` is ``(west, south, east, north)`` in degrees and matches Items whose bounding box
    intersects it; ``datetime`` (see :func:`parse_datetime_range`) matches Items whose time range
    overlaps it.
    """
    mask = np.ones(len(df), dtype=bool)
    if collection is not None:
        mask &= (df["collection"] == collection).to_numpy(dtype=bool, na_value=False)
    if species is not None:  # a product of several gases lists them: "co2,ch4,co"
        listed = df["species"].str.lower().str.split(",")
        wanted = species.strip().lower()
        mask &= np.array([isinstance(v, list) and wanted in (g.strip() for g in v)
                          for v in listed], dtype=bool)
    for column, wanted in (("instrument", instrument), ("site", site), ("network", network),
                           ("scale", scale), ("platform", platform)):
        if wanted is not None:
            mask &= (df[column].str.lower() == str(wanted).strip().lower()).to_numpy(
                bool, na_value=False)
    if inlet is not None:
        height = parse_inlet(inlet)
        mask &= np.array([_has_inlet(text, height) for text in df["inlets"]], dtype=bool)
    if bbox is not None:
        try:
            w, s, e, n = (float(v) for v in bbox)
        except (TypeError, ValueError):
            raise StoreError(
                f"bbox {bbox!r}: expected four numbers west,south,east,north"
            ) from None
        if not (-180 <= w <= e <= 180 and -90 <= s <= n <= 90):
            raise StoreError(
                f"bbox {bbox!r}: expected west <= east within [-180, 180] and south <= north "
                "within [-90, 90] (degrees)"
            )
        mask &= (
            (df["west"] <= e) & (df["east"] >= w) & (df["south"] <= n) & (df["north"] >= s)
        ).to_numpy(dtype=bool)
    start, end = parse_datetime_range(datetime)
    if start is not None:
        mask &= (df["end"] >= start).to_numpy(dtype=bool, na_value=False)
    if end is not None:
        mask &= (df["start"] <= end).to_numpy(dtype=bool, na_value=False)
    return df[mask]
