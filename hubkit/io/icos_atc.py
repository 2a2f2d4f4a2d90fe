"""ICOS ATC Level-2 text time series (``ICOS_ATC_L2_<release>_<site>_<height>_<type>.<SPECIES>``).

Layout (ICOS ATC L2 data files, described in their own header and in Hazan et al. 2016,
doi:10.5194/amt-9-4719-2016): ``# KEY: value`` header lines, their number in
``# HEADER LINES: N`` (station code and name, latitude/longitude, altitude in m asl, sampling
heights in m agl, parameter, ``MEASUREMENT UNIT`` such as ``nmol.mol-¹``, measurement method,
``MEASUREMENT SCALE``, contributor, data policy), the last header line the ``;``-separated column
names: ``Site;SamplingHeight;Year;Month;Day;Hour;Minute;DecimalDate;<species>;Stdev;NbPoints;
Flag;InstrumentId;QualityId;LTR;CMR;STTB;QcBias;QcBiasUncertainty;<species>-WithoutSpikes;
Stdev-WithoutSpikes;NbPoints-WithoutSpikes``. Times are UTC, the start of the hour. Gaps are
filled with -999.99 (value) and -9.99 (standard deviation), read here as missing; flags are
'O' (valid after manual control), 'N' (before it), 'K' (invalid).
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

FORMAT = "icos-atc"
PRODUCT_TYPE = station.PRODUCT_TYPE
READER_VERSION = "1"
_MISSING = (-999.99, -9.99)
#: Columns besides the species' -> (canonical name, in the species' unit?, long name).
COLUMNS = {
    "Stdev": ("value_std_dev", True, "standard deviation of the measurements of the hour"),
    "NbPoints": ("nvalue", False, "number of measurements averaged into value"),
    "LTR": ("ltr", True, "long-term repeatability (Yver Kwok et al. 2015)"),
    "CMR": ("cmr", True, "continuous measurement repeatability (Yver Kwok et al. 2015)"),
    "STTB": ("sttb", True, "short-term target bias"),
    "QcBias": ("qc_bias", True, "bias estimated by the quality control"),
    "QcBiasUncertainty": ("qc_bias_uncertainty", True, "uncertainty of qc_bias"),
    "InstrumentId": ("instrument_id", False, "ICOS instrument id"),
    "QualityId": ("quality_id", False, "ICOS quality id"),
}
#: Raw ICOS ATC column (``<species>`` stands for the parameter) -> canonical name.
VARIABLE_MAP = {"<species>": "value", "Flag": "qc_flag", "SamplingHeight": "inlet_height",
                **{k: v[0] for k, v in COLUMNS.items()}}


def sniff(path, head: bytes) -> bool:
    """ICOS ATC header keys ``HEADER LINES``, ``STATION CODE`` and ``MEASUREMENT UNIT``."""
    return head.startswith(b"# TITLE:") and all(
        k in head for k in (b"# HEADER LINES:", b"# STATION CODE:", b"# MEASUREMENT UNIT:"))


def _header(path: Path):
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    lines = text.splitlines()
    match = re.search(r"^# HEADER LINES:\s*(\d+)", text, re.MULTILINE)
    if match is None:
        raise IngestError(f"{path}: no '# HEADER LINES: N' line; expected the ICOS ATC header")
    n = int(match.group(1))
    if n > len(lines) or not lines[n - 1].startswith("#"):
        raise IngestError(f"{path}: the header declares {n} lines but the file has "
                          f"{len(lines)} lines or line {n} is not a '#' line")
    header = {}
    for line in lines[:n - 1]:
        key, sep, value = line[1:].partition(":")
        if sep and key.strip().isupper():
            header[key.strip()] = value.strip()
    fields = lines[n - 1].lstrip("#").strip().split(";")
    return header, fields, lines[n:], n


def read(path) -> xr.Dataset:
    """Read an ICOS ATC L2 text file into a canonical ``surface-obs`` dataset."""
    path = Path(path)
    header, fields, lines, n = _header(path)
    species = header.get("PARAMETER", "").strip().lower()
    if not species or species not in [f.lower() for f in fields]:
        raise SchemaError(f"{path}: header PARAMETER is {header.get('PARAMETER')!r} and the "
                          f"columns are {fields}; expected a column named after the parameter")
    spec_col = fields[[f.lower() for f in fields].index(species)]
    cols = station.text_rows(path, lines, fields, first_line=n + 1, sep=";")
    units = header.get("MEASUREMENT UNIT")
    if not units:
        raise SchemaError(f"{path}: header 'MEASUREMENT UNIT' is missing; expected the unit of "
                          f"column {spec_col!r} (e.g. nmol.mol-¹)")
    num = {f: station.numbers(path, cols[f], f, missing=_MISSING) for f in fields
           if f not in ("Site", "Flag")}
    for f in ("Year", "Month", "Day", "Hour", "Minute"):
        if f not in num or np.isnan(num[f]).any():
            raise IngestError(f"{path}: column {f!r} is missing or has empty fields; expected "
                              "the UTC date and time on every line")
    time = pd.to_datetime(pd.DataFrame({k.lower(): num[k].astype(np.int64) for k in
                                        ("Year", "Month", "Day", "Hour", "Minute")})
                          ).to_numpy(dtype="datetime64[ns]")
    lat = _coordinate(path, header, "LATITUDE", "N")
    lon = _coordinate(path, header, "LONGITUDE", "E")
    ground = _coordinate(path, header, "ALTITUDE", "m")
    heights = num["SamplingHeight"] if "SamplingHeight" in num else None
    rows = len(time)
    per_row = {
        "latitude": (np.full(rows, lat), "degrees_north", {"comment": "header LATITUDE"}),
        "longitude": (np.full(rows, lon), "degrees_east", {"comment": "header LONGITUDE"}),
    }
    if heights is not None:
        per_row["inlet_height"] = (heights, "m", {"long_name": "sampling height above ground",
                                                  "_source": "SamplingHeight"})
        per_row["altitude"] = (ground + heights, "m", {
            "long_name": "sample altitude above sea level (station altitude + height)"})
    for src, (name, is_mf, long_name) in COLUMNS.items():
        if src in num:
            values = num[src]
            if not is_mf and not np.isnan(values).any():
                values = values.astype(np.int64)
            per_row[name] = (values, units if is_mf else None,
                             {"long_name": long_name, "_source": src})
    for src in fields:  # the despiked series: same unit
        if src.lower().endswith("-withoutspikes"):
            base = src[: -len("-WithoutSpikes")]
            name = {"Stdev": "value_std_dev", "NbPoints": "nvalue"}.get(base, "value")
            values = num[src]
            per_row[f"{name}_without_spikes"] = (
                values if name != "nvalue" else values.astype(np.int64),
                None if name == "nvalue" else units,
                {"long_name": f"{base} without spikes (El Yazidi et al. 2018)",
                 "_source": src})
    per_row["qc_flag"] = (cols["Flag"].astype(str).astype(object), None, {
        "long_name": "ICOS ATC flag: O valid (manual control), N before manual control, "
                     "K invalid", "_source": "Flag"})
    code = header.get("STATION CODE", "").upper()
    site = sorted(set(cols["Site"]))
    if site != [code]:
        raise SchemaError(f"{path}: column 'Site' holds {site}, expected the header's station "
                          f"code {code!r} on every line")
    method = header.get("MEASUREMENT METHOD")
    ds = station.build(
        path, fmt=FORMAT, species=species, time=time, value=num[spec_col], value_units=units,
        per_row={"_value_source": spec_col, **per_row},
        station={
            "site_code": code,
            "site_name": header.get("STATION NAME"),
            "network": "ICOS",
            "calibration_scale": header.get("MEASUREMENT SCALE"),
            "platform": "fixed" if "Stationary" in header.get("OBSERVATION CATEGORY", "")
            else header.get("OBSERVATION CATEGORY"),
            "data_owner": header.get("CONTRIBUTOR"),
            "instrument": method,
            "measurement_type": "insitu" if header.get("SAMPLING TYPE", "").lower() in
            ("continuous", "insitu", "in situ") else header.get("SAMPLING TYPE"),
            "site_latitude": lat,
            "site_longitude": lon,
            "site_elevation": ground,
        },
        provider_attrs={"icos_" + k.lower().replace(" ", "_").replace("/", "_"): v
                        for k, v in header.items()},
        title=header.get("TITLE", f"ICOS ATC {species.upper()} at {code}"),
        references="ICOS ATC L2 data files (header); Hazan et al. 2016, "
                   "doi:10.5194/amt-9-4719-2016",
    )
    ds["value"].attrs["comment"] = "-999.99 (the file's gap filler) read as missing"
    declared = header.get("TOTAL LINES")
    if declared and declared.isdigit() and int(declared) != n + len(lines):
        ds.attrs["hubkit_comment"] = (f"the header declares {declared} lines, the file holds "
                                      f"{n + len(lines)} (an extract); every data line was read")
    return ds


def _coordinate(path, header, key: str, suffix: str) -> float:
    text = header.get(key, "")
    match = re.fullmatch(r"(-?\d+(?:\.\d*)?)\s*" + suffix + r"?(\s.*)?", text)
    if match is None:
        raise SchemaError(f"{path}: header {key!r} is {text!r}, expected a number followed by "
                          f"{suffix!r}")
    return float(match.group(1))
