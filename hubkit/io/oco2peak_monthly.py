"""Monthly global means of OCO-2 XCO2 written by the oco2peak project (``xco2_monthly_mean.csv``).

``;``-separated, header ``xco2;yearmonth``: the mean of the quality-flag-0 XCO2 [ppm] of all
soundings of a month, the month as ``YYMM`` (2000 + YY) [1]_. Rows are kept in file order (the
file is not sorted); ``time`` is the first instant of the month (UTC), ``yearmonth`` the text
as given. The file has no position: the product has no bounding box (it is a global mean).

References
----------
.. [1] oco2peak, Data For Good France, season 7 (2020), github.com/dataforgoodfr/
   batch7_satellite_ges, dataset/xco2_monthly_mean.csv.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from hubkit import schemas
from hubkit.errors import IngestError, SchemaError
from hubkit.io._common import CONVENTIONS

__all__ = ["FORMAT", "PRODUCT_TYPE", "READER_VERSION", "VARIABLE_MAP", "read", "sniff"]

FORMAT = "oco2peak-monthly"
PRODUCT_TYPE = "xco2-monthly-mean"
READER_VERSION = "1"

VARIABLE_MAP = {"xco2": "xco2", "yearmonth": "yearmonth"}
DIM = "time"


def sniff(path, head: bytes) -> bool:
    """Text whose header is exactly the two columns ``xco2`` and ``yearmonth``."""
    if not head or b"\0" in head:
        return False
    line = head.split(b"\n", 1)[0].decode("utf-8", "replace").lstrip("\ufeff").strip()
    sep = ";" if ";" in line else ","
    return sorted(c.strip() for c in line.split(sep)) == ["xco2", "yearmonth"]


def read(path) -> xr.Dataset:
    """Read ``xco2_monthly_mean.csv`` into a canonical ``xco2-monthly-mean`` dataset."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            sep = ";" if ";" in f.readline() else ","
        df = pd.read_csv(path, sep=sep, dtype=str)
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise IngestError(f"{path}: cannot be parsed as oco2peak monthly means: {exc}") from exc
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in VARIABLE_MAP if c not in df.columns]
    extra = [c for c in df.columns if c not in VARIABLE_MAP]
    if missing or extra:
        raise SchemaError(
            f"{path}: column(s) {missing} missing and {extra} unexpected; expected exactly "
            "'xco2' [ppm] and 'yearmonth' (YYMM), the month being the only time axis")
    if len(df) == 0:
        raise SchemaError(f"{path}: no data rows; expected one row per month")
    xco2 = pd.to_numeric(df["xco2"], errors="coerce").to_numpy(dtype=np.float64)
    if np.isnan(xco2).any():
        row = int(np.flatnonzero(np.isnan(xco2))[0])
        raise SchemaError(f"{path}: column 'xco2' holds {df['xco2'].iloc[row]!r} in data row "
                          f"{row + 1}; expected a number [ppm]")
    text = df["yearmonth"].astype(str).str.strip()
    ok = text.str.fullmatch(r"\d{2}(0[1-9]|1[0-2])").to_numpy()
    if not ok.all():
        row = int(np.flatnonzero(~ok)[0])
        raise SchemaError(f"{path}: column 'yearmonth' holds {text.iloc[row]!r} in data row "
                          f"{row + 1}; expected YYMM (e.g. 1601 for January 2016)")
    time = pd.to_datetime("20" + text, format="%Y%m").to_numpy(dtype="datetime64[ns]")
    ds = xr.Dataset(
        {"xco2": (DIM, xco2, {"units": "ppm", "cell_methods": "time: mean (monthly, global)",
                              "long_name": "monthly global mean of OCO-2 XCO2 "
                                           "(xco2_quality_flag 0)"}),
         "yearmonth": (DIM, text.to_numpy(dtype=object), {"long_name": "YYMM as in the file"})},
        coords={"time": (DIM, time, {"standard_name": "time",
                                     "long_name": "first instant of the month (UTC)"})},
    )
    ds.attrs = {
        "Conventions": CONVENTIONS,
        "title": "OCO-2 XCO2 monthly global means (oco2peak)",
        "hubkit_product_type": PRODUCT_TYPE,
        "hubkit_format": FORMAT,
        "hubkit_species": "co2",
        "source": path.name,
        "platform": "OCO-2",
        "instrument": "OCO-2",
        "references": "oco2peak, Data For Good France (2020); OCO-2 Science Team, OCO-2 Lite "
                      "XCO2 v9/v10, GES DISC",
    }
    schemas.validate(ds, source=str(path), product_type=PRODUCT_TYPE)
    return ds
