"""NOAA GML CCGG / ObsPack text "event" files: flask samples with a position per sample.

Layout (NOAA GML CCGG flask data README, https://gml.noaa.gov/aftp/data/trace_gases/ and the
ObsPack user guide, https://gml.noaa.gov/ccgg/obspack/documentation.html): a first line
``# number_of_header_lines: N``, then ``#`` header lines (``contact_*``, ``description_*``), the
last of them ``# data_fields: ...`` naming the whitespace-separated columns: the sample's site
code, UTC date and time (``sample_year`` ... ``sample_seconds``), ``sample_id``,
``sample_method``, ``parameter_formula`` (the species), ``analysis_group_abbr``,
``analysis_value`` and ``analysis_uncertainty`` (-999.99 when there is none),
``analysis_flag`` (the NOAA 3-character flag), ``analysis_instrument``, the analysis date,
``sample_latitude``, ``sample_longitude``, ``sample_altitude`` (m above sea level),
``sample_elevation``, ``sample_intake_height`` and ``event_number``. A flask analysed twice is
two lines with one event number: both are kept.

Moving platforms (ships, aircraft) carry their position in every line: the product's bounding
box is the track's extent. The file states no unit: the README gives the mole fractions of the
CCGG flask network as micromol mol-1 (ppm) for CO2, nanomol mol-1 (ppb) for CH4, CO, N2O and H2
and picomol mol-1 (ppt) for SF6; the unit assumed is recorded in ``value.attrs``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from hubkit.errors import IngestError, SchemaError
from hubkit.io import station

__all__ = ["FORMAT", "PRODUCT_TYPE", "READER_VERSION", "VARIABLE_MAP", "read", "sniff"]

FORMAT = "obspack-text"
PRODUCT_TYPE = station.PRODUCT_TYPE
READER_VERSION = "1"

#: Raw event-file column -> canonical name (the date and time columns make ``time``).
VARIABLE_MAP = {
    "analysis_value": "value", "analysis_uncertainty": "value_unc", "analysis_flag": "qc_flag",
    "analysis_instrument": "instrument", "sample_latitude": "latitude",
    "sample_longitude": "longitude", "sample_altitude": "altitude",
    "sample_elevation": "elevation", "sample_intake_height": "inlet_height",
    "sample_id": "sample_id", "sample_method": "sample_method",
    "sample_site_code": "sample_site_code", "analysis_group_abbr": "analysis_group",
    "event_number": "event_number",
}

#: Units of the CCGG flask network by species (the README; the files say none).
CCGG_UNITS = {"co2": "umol mol-1", "ch4": "nmol mol-1", "co": "nmol mol-1",
              "n2o": "nmol mol-1", "h2": "nmol mol-1", "sf6": "pmol mol-1"}
#: Columns the reader needs.
REQUIRED = ("sample_year", "sample_month", "sample_day", "sample_hour", "sample_minute",
            "sample_seconds", "parameter_formula", "analysis_value", "sample_latitude",
            "sample_longitude")
_MISSING = (-999.99, -999.999, -9999.99, -99.99)
#: NOAA ship-cruise site codes (first three letters): Pacific Ocean, South China Sea, Western
#: Pacific cruises.
_SHIPS = ("poc", "scs", "wpc")
_HEAD = re.compile(rb"^# number_of_header_lines:\s*(\d+)")


def sniff(path, head: bytes) -> bool:
    """``# number_of_header_lines: N`` first, a ``# data_fields:`` header line with
    ``analysis_value``."""
    if _HEAD.match(head) is None:
        return False
    fields, _, _ = _header(Path(path))
    return "analysis_value" in fields


def _header(path: Path):
    """``(data field names, header dict, number of header lines)``."""
    with open(path, encoding="utf-8", errors="replace") as f:
        first = f.readline()
        match = re.match(r"# number_of_header_lines:\s*(\d+)", first)
        if match is None:
            raise IngestError(f"{path}: first line {first[:60]!r}, expected "
                              "'# number_of_header_lines: N'")
        n = int(match.group(1))
        header, fields = {}, []
        for _ in range(n - 1):
            line = f.readline()
            if not line.startswith("#"):
                raise IngestError(f"{path}: the header declares {n} lines but line "
                                  f"{len(header) + 2} is not a '#' line: {line[:60]!r}")
            key, _, value = line[1:].partition(":")
            key, value = key.strip(), value.strip()
            if key == "data_fields":
                fields = value.split()
            elif key != "comment":
                header[key] = value
    return fields, header, n


def read(path) -> xr.Dataset:
    """Read a CCGG/ObsPack event file into a canonical ``surface-obs`` dataset."""
    path = Path(path)
    fields, header, n = _header(path)
    missing = [c for c in REQUIRED if c not in fields]
    if missing:
        raise SchemaError(f"{path}: data_fields lack {missing}; expected the event-file "
                          f"columns {list(REQUIRED)}")
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.read().splitlines()[n:]
    cols = station.text_rows(path, lines, fields, first_line=n + 1)
    station.refuse_non_air(path, header.get("description_project-abbr"),
                           header.get("description_strategy-abbr"))
    species_found = sorted({s.lower() for s in cols["parameter_formula"]})
    if len(species_found) != 1:
        raise SchemaError(f"{path}: column 'parameter_formula' holds {species_found}, expected "
                          "one species per file")
    species = species_found[0]
    if species not in CCGG_UNITS:
        raise SchemaError(f"{path}: species {species!r} has no documented CCGG unit; expected "
                          f"one of {sorted(CCGG_UNITS)}")
    num = {c: station.numbers(path, cols[c], c, missing=_MISSING) for c in fields
           if c.startswith(("sample_", "analysis_", "event_")) and c not in
           ("sample_site_code", "sample_id", "sample_method", "analysis_group_abbr",
            "analysis_flag", "analysis_instrument")}
    time = _times(path, num, "sample")
    units = CCGG_UNITS[species]
    per_row = {
        "latitude": (num["sample_latitude"], "degrees_north", {"_source": "sample_latitude"}),
        "longitude": (num["sample_longitude"], "degrees_east",
                      {"_source": "sample_longitude"}),
    }
    for src, unit, long_name in (
            ("sample_altitude", "m", "sample altitude above sea level"),
            ("sample_elevation", "m", "surface elevation above sea level"),
            ("sample_intake_height", "m", "sample intake height above ground"),
            ("analysis_uncertainty", units, "uncertainty of value")):
        if src in num:
            per_row[VARIABLE_MAP[src]] = (num[src], unit, {"long_name": long_name,
                                                           "_source": src})
    for src in ("analysis_flag", "analysis_instrument", "sample_id", "sample_method",
                "sample_site_code", "analysis_group_abbr"):
        name = VARIABLE_MAP[src]
        if src in cols:
            per_row[name] = (cols[src].astype(str).astype(object), None,
                             {"long_name": src.replace("_", " "), "_source": src})
    if "event_number" in num:
        per_row["event_number"] = (num["event_number"].astype(np.int64), None,
                                   {"long_name": "NOAA sample event number"})
    if "analysis_year" in num:
        per_row["analysis_time"] = (_times(path, num, "analysis"), None,
                                    {"long_name": "time of the analysis (UTC)"})
    code = header.get("description_site-code") or (cols.get("sample_site_code", ["?"])[0])
    lat, lon = num["sample_latitude"], num["sample_longitude"]
    moving = np.nanmax(lat) != np.nanmin(lat) or np.nanmax(lon) != np.nanmin(lon)
    platform = "ship" if code.lower().startswith(_SHIPS) else "mobile" if moving else "fixed"
    ds = station.build(
        path, fmt=FORMAT, species=species, time=time, value=num["analysis_value"],
        value_units=units, per_row={"_value_source": "analysis_value", **per_row},
        station={
            "site_code": code.upper(),
            "network": "NOAA",
            "platform": platform,
            "data_owner": header.get("contact_name"),
            "instrument": ", ".join(sorted(set(cols.get("analysis_instrument", [])))) or None,
            "measurement_type": header.get("description_strategy-abbr", "flask"),
        },
        provider_attrs={k.replace("-", "_"): v for k, v in header.items()},
        title=f"NOAA CCGG {species.upper()} {header.get('description_strategy-abbr', '')} "
              f"samples, {code}",
        references="NOAA GML CCGG flask data README (https://gml.noaa.gov/aftp/data/"
                   "trace_gases/); ObsPack user guide (https://gml.noaa.gov/ccgg/obspack/)",
    )
    ds["value"].attrs["units_assumed"] = (
        f"the file gives no unit: {units} for {species} from the NOAA GML CCGG flask README")
    return ds


def _times(path, num, prefix: str) -> np.ndarray:
    parts = {k: num[f"{prefix}_{k}"] for k in ("year", "month", "day", "hour", "minute")}
    seconds = num.get(f"{prefix}_seconds", np.zeros_like(parts["year"]))
    if any(np.isnan(v).any() for v in (*parts.values(), seconds)):
        raise IngestError(f"{path}: a {prefix} date or time field is missing; expected "
                          "year, month, day, hour, minute and seconds on every line")
    try:
        return pd.to_datetime(pd.DataFrame(
            {**{k: v.astype(np.int64) for k, v in parts.items()},
             "second": seconds.astype(np.int64)})).to_numpy(dtype="datetime64[ns]")
    except (ValueError, OverflowError) as exc:
        raise IngestError(f"{path}: {prefix} date/time columns do not form dates ({exc}); "
                          "expected valid UTC dates") from None
