"""The emission inventory merged by the oco2peak project, as a ``sources`` product.

One ``,``-separated row per source [1]_: an unnamed first column (the row label the
``index_<type>`` lists of the project's ``peaks_and_invent`` tables refer to), ``latitude``,
``longitude``, ``Data source`` (WRI Global Power Plant Database, Global Energy Monitor coal
plant tracker, Sandbag EU ETS, CDP/Opendatasoft cities), ``CO2/CO2e emissions source`` (15
types: City, Coal power plant ...), ``CO2/CO2e emissions (in tonnes per year)`` and ``CO2 or
CO2e``.

Every row is kept, in file order, on the dimension ``source``: ``source`` is the file's label
(the merged file repeats labels: they were the row numbers of the inventories it merged, so a
label alone does not name one row), ``source_row`` the 0-based row, ``emission`` the yearly
emission as a mean rate [kg s-1] (tonnes per Julian year; NaN where the inventory gives
none), ``source_type``, ``data_source`` and ``emission_quantity`` (``CO2`` or ``CO2e``: the
latter includes other greenhouse gases as CO2 equivalent). :func:`hubkit.co2.sources_table`
turns the product into the table :func:`hubkit.co2.attribute_sources` takes.

References
----------
.. [1] oco2peak, Data For Good France, season 7 (2020), github.com/dataforgoodfr/
   batch7_satellite_ges, "dataset/Output inventory data/Merge of peaks".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from hubkit import schemas
from hubkit.errors import IngestError, SchemaError
from hubkit.io._common import CONVENTIONS, column_numbers
from hubkit.units import conversion_attrs, convert_units

__all__ = ["FORMAT", "PRODUCT_TYPE", "READER_VERSION", "VARIABLE_MAP", "read", "sniff"]

FORMAT = "oco2peak-inventory"
PRODUCT_TYPE = "sources"
READER_VERSION = "1"

EMISSION_COLUMN = "CO2/CO2e emissions (in tonnes per year)"
#: CSV column -> canonical name.
VARIABLE_MAP = {
    "": "source",
    "latitude": "latitude",
    "longitude": "longitude",
    "Data source": "data_source",
    "CO2/CO2e emissions source": "source_type",
    EMISSION_COLUMN: "emission",
    "CO2 or CO2e": "emission_quantity",
}
_TEXT = ("Data source", "CO2/CO2e emissions source", "CO2 or CO2e")
DIM = "source"


def sniff(path, head: bytes) -> bool:
    """Text whose header has latitude, longitude and the emission column of the inventory."""
    if not head or b"\0" in head:
        return False
    line = head.split(b"\n", 1)[0].decode("utf-8", "replace")
    return EMISSION_COLUMN in line and "latitude" in line and "longitude" in line


def read(path) -> xr.Dataset:
    """Read the oco2peak merged inventory into a canonical ``sources`` dataset."""
    path = Path(path)
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise IngestError(f"{path}: cannot be parsed as the oco2peak inventory: {exc}") from exc
    df.columns = ["" if str(c).startswith("Unnamed") else str(c).strip() for c in df.columns]
    missing = [c for c in VARIABLE_MAP if c not in df.columns and c not in _TEXT]
    if missing:
        raise SchemaError(f"{path}: column(s) {missing or ['(unnamed label)']} missing; expected "
                          f"the columns {list(VARIABLE_MAP)} (first one unnamed)")
    if len(df) == 0:
        raise SchemaError(f"{path}: no data rows; expected at least one source")
    one = (DIM,)
    labels = column_numbers(df, "", path)
    if not np.isfinite(labels).all() or (labels != np.round(labels)).any():
        raise SchemaError(f"{path}: the first (unnamed) column holds a label that is not a whole "
                          "number; expected the inventory's integer row labels")
    data_vars = {
        "source": xr.Variable(one, labels.astype(np.int64), {
            "long_name": "row label of the merged inventory (not unique)"}),
        "source_row": xr.Variable(one, np.arange(len(df), dtype=np.int64),
                                  {"long_name": "0-based data row of the file"}),
        "emission": xr.Variable(one, convert_units(
            column_numbers(df, EMISSION_COLUMN, path), "t yr-1", "kg s-1", path=path,
            name=EMISSION_COLUMN), {
            "units": "kg s-1", **conversion_attrs("t yr-1", "kg s-1"),
            "comment": "t yr-1 with the Julian year (365.25 days)",
            "long_name": "yearly emission as a mean rate"}),
    }
    coords = {name: xr.Variable(one, column_numbers(df, name, path), {
        "units": f"degrees_{'north' if name == 'latitude' else 'east'}", "standard_name": name})
        for name in ("latitude", "longitude")}
    for column in _TEXT:
        if column in df.columns:
            data_vars[VARIABLE_MAP[column]] = xr.Variable(
                one, df[column].fillna("").to_numpy(dtype=object), {"long_name": column})
    ds = xr.Dataset(data_vars, coords=coords)
    ds.attrs = {
        "Conventions": CONVENTIONS,
        "title": "oco2peak merged CO2 emission inventory",
        "hubkit_product_type": PRODUCT_TYPE,
        "hubkit_format": FORMAT,
        "hubkit_species": "co2",
        "source": path.name,
        "comment": "compiled by oco2peak from the WRI Global Power Plant Database, Global Energy "
                   "Monitor Coal Plant Tracker, Sandbag (EU ETS) and CDP/Opendatasoft cities; "
                   "these keep their own terms",
        "references": "oco2peak, Data For Good France (2020), github.com/dataforgoodfr/"
                      "batch7_satellite_ges",
    }
    schemas.validate(ds, source=str(path), product_type=PRODUCT_TYPE)
    return ds
