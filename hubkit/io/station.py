"""What the station readers share: the canonical ``surface-obs`` dataset and its station metadata.

Not a reader (:mod:`hubkit.io` lists no format here). Every station reader (``obspack``,
``obspack_text``, ``icos_nc``, ``icos_atc``, ``agage``) parses its file into plain arrays and
metadata and calls :func:`build`, so all of them give the same layout:

- dimension ``time`` (one row per observation, every row of the file kept; a tower's intake
  heights share time stamps, ``inlet_height`` tells them apart), ``time`` its coordinate, and
  ``latitude``, ``longitude``, ``altitude``, ``inlet_height`` coordinates along it;
- ``value`` (mole fraction in the species' unit, :data:`hubkit.schemas.SURFACE_OBS`), its
  uncertainties (``value_std_dev``, ``value_unc``, ``value_repeatability``), ``nvalue``, the
  provider's flags as plain ``str`` (``qc_flag``) or integers, anything else the file holds per
  row;
- the station attributes of :data:`STATION_ATTRS` (site code and name, network, calibration
  scale, platform, data owner, instrument, measurement type, site position, inlet heights) and
  the provider's global attributes, unchanged (a name hubkit uses itself gets ``original_``).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import xarray as xr

from hubkit import schemas
from hubkit.errors import IngestError, SchemaError
from hubkit.io._common import CONVENTIONS
from hubkit.units import conversion_attrs, convert_units

__all__ = ["PRODUCT_TYPE", "STANDARD_NAMES", "STATION_ATTRS", "build", "number_attr",
           "numbers", "refuse_non_air", "species_units", "text_rows"]

PRODUCT_TYPE = "surface-obs"

#: Station attributes every station product carries (those the file gives): name -> meaning.
STATION_ATTRS = {
    "site_code": "station code, upper case (BAO, TOH)",
    "site_name": "station name",
    "network": "network or distributor (NOAA, ICOS, AGAGE)",
    "calibration_scale": "calibration scale of the mole fractions (WMO CH4 X2004A ...)",
    "platform": "fixed, ship, aircraft",
    "data_owner": "who owns the data (principal investigators or laboratory)",
    "instrument": "instrument(s) that measured",
    "measurement_type": "insitu or flask",
    "site_latitude": "nominal station latitude [degrees_north]",
    "site_longitude": "nominal station longitude [degrees_east]",
    "site_elevation": "ground elevation of the station [m above sea level]",
    "inlet_heights": "intake heights above ground of the rows, sorted [m]",
}

#: CF standard names of the mole fractions (CF standard name table, version 84).
STANDARD_NAMES = {
    "co2": "mole_fraction_of_carbon_dioxide_in_air",
    "ch4": "mole_fraction_of_methane_in_air",
    "n2o": "mole_fraction_of_nitrous_oxide_in_air",
    "co": "mole_fraction_of_carbon_monoxide_in_air",
    "h2": "mole_fraction_of_molecular_hydrogen_in_air",
    "sf6": "mole_fraction_of_sulfur_hexafluoride_in_air",
    "cfc-11": "mole_fraction_of_cfc11_in_air",
    "cfc-12": "mole_fraction_of_cfc12_in_air",
}

#: Attribute names hubkit sets itself: a provider's attribute of that name is kept as
#: ``original_<name>``.
_OWN = {"Conventions", "title", "source", "history", "comment", "references", "instrument",
        "platform", "network", "site_code", "site_name", "calibration_scale", "data_owner",
        "measurement_type", "site_latitude", "site_longitude", "site_elevation",
        "inlet_heights", "inlet_height"}

#: Words in a file's description that say its samples are not atmospheric air.
_NOT_AIR = re.compile(r"\b(firn|ice[ _-]?core|snow|ocean[ _-]?water|seawater|soil[ _-]?gas)\b",
                      re.IGNORECASE)


def species_units(path, species: str) -> str:
    """The unit ``value`` of ``species`` is stored in, or SchemaError for a species the
    ``surface-obs`` schema does not know (a mole fraction whose range nobody set)."""
    units = dict(schemas.SURFACE_OBS.species_units)
    if species not in units:
        raise SchemaError(
            f"{path}: species {species!r} is not a mole fraction hubkit knows; expected one of "
            f"{sorted(units)} (read other files with format 'cf')")
    return units[species]


def number_attr(path, attrs: dict, key: str, *, required: bool = True) -> float | None:
    """Global attribute ``key`` as a float: providers write numbers as text (ICOS '147.0')."""
    if key not in attrs:
        if required:
            raise SchemaError(f"{path}: global attribute {key!r} is missing; expected a number")
        return None
    raw = attrs[key]
    text = raw.decode() if isinstance(raw, bytes) else raw
    try:
        value = float(np.asarray(text).item() if not isinstance(text, str) else text.strip())
    except (TypeError, ValueError):
        raise SchemaError(
            f"{path}: global attribute {key!r} is {raw!r}, expected a number") from None
    if not np.isfinite(value):
        raise SchemaError(f"{path}: global attribute {key!r} is {raw!r}, expected a finite "
                          "number")
    return value


def refuse_non_air(path, *texts) -> None:
    """Raise :class:`IngestError` when the file describes its samples as something other than
    atmospheric air (firn air, ice-core air, sea water ...): such values are no time series of
    the atmosphere at the site and must not be stored as one (nor split into fake sites)."""
    for text in texts:
        if text is None:
            continue
        match = _NOT_AIR.search(str(text))
        if match:
            raise IngestError(
                f"{path}: the samples are {match.group(0)!r} samples, not atmospheric air "
                f"(found in {str(text)[:120]!r}); expected a record of ambient air at a "
                "station or platform. Read them with format 'cf' to keep them apart")


def _plain(value):
    """Global attribute values as JSON-friendly Python (numbers, text, lists)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist() if value.size > 1 else value.ravel()[0].item()
    return value


def build(path, *, fmt: str, species: str, time, value, value_units: str,
          per_row: dict, station: dict, provider_attrs: dict, title: str,
          references: str) -> xr.Dataset:
    """The canonical ``surface-obs`` dataset of one station file.

    Parameters
    ----------
    path : path-like
        The source file (named in errors, ``attrs['source']``).
    fmt : str
        The reader's format name.
    species : str
        Lower-case species (``ch4``, ``cfc-11``).
    time : ndarray of datetime64[ns], (n,)
        Start of each sample or averaging period (UTC).
    value : ndarray, (n,)
        Mole fractions as the file gives them, in ``value_units``.
    value_units : str
        The unit the file gives (any CF/UDUNITS spelling); converted to the species' unit.
    per_row : dict
        ``{name: (values, units or None, attrs)}`` of the other per-row variables; names among
        ``value_std_dev``, ``value_unc``, ``value_repeatability`` (and any ``units`` equal to
        ``"species"``) are converted like ``value``; ``latitude``, ``longitude``, ``altitude``
        and ``inlet_height`` become coordinates.
    station : dict
        Values of :data:`STATION_ATTRS` (``None`` ones left out).
    provider_attrs : dict
        The file's global attributes (kept unchanged; see the module docstring).
    title, references : str
        Dataset title; the format specification cited.
    """
    path = Path(path)
    out_units = species_units(path, species)
    n = len(time)
    coords = {"time": xr.Variable(("time",), np.asarray(time, dtype="datetime64[ns]"),
                                  {"long_name": "start of the sampling period (UTC)",
                                   "standard_name": "time"})}
    data_vars = {}

    def mole_fraction(name, values, found, attrs):
        arr = convert_units(values, found, out_units, path=path, name=attrs.pop("_source", name))
        return xr.Variable(("time",), arr, {**attrs, "units": out_units,
                                            **conversion_attrs(found, out_units)})

    data_vars["value"] = mole_fraction("value", value, value_units, {
        "long_name": f"{species.upper()} dry-air mole fraction",
        **({"standard_name": STANDARD_NAMES[species]} if species in STANDARD_NAMES else {}),
        "_source": per_row.pop("_value_source", "value"),
    })
    for name, (values, units, attrs) in per_row.items():
        values = np.asarray(values)
        if values.shape[:1] != (n,):
            raise SchemaError(f"{path}: variable {attrs.get('_source', name)!r} has "
                              f"{values.shape[:1]} rows, expected {n} (one per observation)")
        attrs = dict(attrs)
        if units == "species":
            raise SchemaError(f"{path}: {name!r}: give the file's units, not 'species'")
        if name.startswith("value_") and values.dtype.kind == "f" and units is not None:
            var = mole_fraction(name, values, units, attrs)
        else:
            source = attrs.pop("_source", name)
            if units is not None and name in ("latitude", "longitude", "altitude",
                                              "inlet_height"):
                canonical = {"latitude": "degrees_north", "longitude": "degrees_east"}.get(
                    name, "m")
                values = convert_units(values, units, canonical, path=path, name=source)
                attrs = {**attrs, "units": canonical, **conversion_attrs(units, canonical)}
            elif units is not None:
                attrs["units"] = units
            # text goes through xarray's pandas round trip of object arrays: skipping it
            # (fastpath) saved ~7 ms of a fresh process's reads, but the first text array the
            # retrieval decodes then paid pandas' and Arrow's first use, and the whole
            # benchmarks.openghg workflow was ~6 ms slower (25 interleaved rounds)
            var = xr.Variable(("time",) + tuple(attrs.pop("_dims", ())), values, attrs)
        if name in ("latitude", "longitude", "altitude", "inlet_height"):
            coords[name] = var
        else:
            data_vars[name] = var
    for name in ("latitude", "longitude"):
        if name not in coords:
            raise SchemaError(f"{path}: no {name} for the observations; expected a per-sample "
                              f"{name} or the station's in the global attributes")
    ds = xr.Dataset(data_vars, coords=coords)
    attrs = {}
    for key, value in provider_attrs.items():
        attrs[f"original_{key}" if key in _OWN or key.startswith("hubkit") else key] = \
            _plain(value)
    if "inlet_height" in ds.coords:
        heights = np.unique(ds["inlet_height"].values[np.isfinite(ds["inlet_height"].values)])
        station = {**station, "inlet_heights": [float(h) for h in heights]}
    for key in STATION_ATTRS:
        if station.get(key) is not None and station.get(key) != "":
            attrs[key] = _plain(station[key])
    attrs.update(
        Conventions=CONVENTIONS,
        title=title,
        hubkit_product_type=PRODUCT_TYPE,
        hubkit_format=fmt,
        hubkit_species=species,
        source=path.name,
        references=references,
    )
    ds.attrs = attrs
    schemas.validate(ds, source=str(path), product_type=PRODUCT_TYPE)
    return ds


def text_rows(path, lines, fields: list[str], *, first_line: int, sep: str | None = None):
    """``{field: ndarray of str}`` of the data lines of a text table, every line checked.

    ``lines`` are the data lines (comments and header removed), ``first_line`` the 1-based line
    number of the first of them (for messages), ``sep`` the separator (``None``: whitespace).
    A line with another number of fields (a truncated file, a shifted column) raises
    :class:`IngestError` naming the file, the line and the fields expected.
    """
    rows = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        parts = line.rstrip("\r\n").split(sep)
        if len(parts) != len(fields):
            raise IngestError(
                f"{path}: line {first_line + i} has {len(parts)} fields, expected "
                f"{len(fields)} ({' '.join(fields[:6])} ...); the file is truncated or damaged")
        rows.append([p.strip() for p in parts])
    if not rows:
        raise IngestError(f"{path}: no data lines after the header; expected one observation "
                          "per line")
    table = np.array(rows, dtype=object)
    return {name: table[:, j] for j, name in enumerate(fields)}


def numbers(path, column, name: str, *, missing=()) -> np.ndarray:
    """A text column as float64, the provider's missing-value codes ``missing`` as NaN.

    A field that is no number raises :class:`IngestError` naming the column and row.
    """
    out = np.empty(len(column), dtype=np.float64)
    for i, text in enumerate(column):
        if text == "":
            out[i] = np.nan
            continue
        try:
            out[i] = float(text)
        except ValueError:
            raise IngestError(f"{path}: column {name!r} row {i + 1} is {text!r}, expected a "
                              "number") from None
    for code in missing:
        out[out == code] = np.nan
    return out
