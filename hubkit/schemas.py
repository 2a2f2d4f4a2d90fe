"""One schema per product type: required variables, their dims, dtypes and canonical units.

A reader in :mod:`hubkit.io` returns a canonical :class:`xarray.Dataset`; :func:`validate` checks it
against the schema of its product type before anything is stored. Errors name the source file,
the variable and what was expected, e.g.::

    SchemaError: oco2_LtCO2_160831.nc4: variable 'xco2' has units 'mol mol-1', expected 'ppm'

The product type is also the id of the STAC Collection the product is catalogued in. Canonical
names and units are listed in ``docs/nomenclature.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import xarray as xr

from hubkit.errors import SchemaError, VariableNameError

__all__ = ["PRODUCT_TYPES", "Schema", "Var", "get_schema", "product_type_of", "validate",
           "zarr_name_problem"]

#: Unit spellings that mean the same thing; the first of each group is the canonical spelling.
_UNIT_ALIASES = (
    ("ppm", "ppmv", "umol mol-1", "µmol mol-1", "1e-6"),
    ("ppb", "ppbv", "nmol mol-1", "1e-9"),
    ("ppt", "pptv", "pmol mol-1", "1e-12"),
    ("mol mol-1", "mol/mol", "1"),
    ("Pa", "pascal"),
    ("hPa", "mbar", "millibar", "hectopascal"),
    ("%", "percent", "Percent"),
    ("m s-1", "m/s"),
    ("kg m-2", "kg/m2", "kg/m^2"),
    ("degrees_north", "degree_north", "degrees_N", "degree_N"),
    ("degrees_east", "degree_east", "degrees_E", "degree_E"),
    ("m", "meter", "metre", "meters", "metres"),
    ("km", "kilometer", "kilometre"),
)
_CANONICAL_UNIT = {alias: group[0] for group in _UNIT_ALIASES for alias in group}


def canonical_units(units: str | None) -> str | None:
    """Return the canonical spelling of ``units`` (unknown spellings are returned unchanged)."""
    if units is None:
        return None
    units = str(units).strip()
    return _CANONICAL_UNIT.get(units, units)


@dataclass(frozen=True)
class Var:
    """A variable (or coordinate) a product must or may hold.

    ``units=None`` means the variable carries no units (flags, ids, times); ``kinds`` lists the
    accepted NumPy dtype kinds (``"f"`` float, ``"iu"`` integer, ``"M"`` datetime, ``"OUS"`` text).
    """

    name: str
    dims: tuple[str, ...]
    units: str | None = None
    kinds: str = "f"
    required: bool = True
    description: str = ""
    #: The units depend on the species (``attrs['hubkit_species']``), see ``Schema.species_units``.
    per_species: bool = False
    #: Dims of ``dims`` the variable may lack (e.g. ``("time",)`` for a static map); the others
    #: must be there, in the order of ``dims``.
    optional_dims: tuple[str, ...] = ()
    # -- semantic rules, checked by hubkit.io.validation after every reader --------------------
    #: Valid values ``(low, high)``, inclusive, in ``units``; a row holding a value outside (or an
    #: infinite one) is invalid. ``None``: no range check.
    valid_range: tuple[float, float] | None = None
    #: Range the median of a file's finite values must fall in. A median outside it that another
    #: unit of the same quantity would bring inside is a units error (XCO2 of 4e-4 "ppm").
    plausible: tuple[float, float] | None = None
    #: A row with an invalid value: ``"raise"`` refuses the file, ``"flag"`` keeps the row
    #: unchanged and marks it in ``input_flag`` (a file whose rows are all invalid is refused).
    invalid: str = "raise"
    #: A row whose value is missing (NaN, NaT): ``"allow"``, or ``"flag"`` it in ``input_flag``.
    #: A variable missing in every row is refused whatever this says.
    missing: str = "allow"
    #: Longitudes at or above this are shifted by -360 (recorded in ``attrs['comment']`` and
    #: ``hubkit_normalised``): ``[180, 360)`` becomes ``[-180, 0)``, exactly.
    wrap_at: float | None = None

    def __post_init__(self):
        if self.invalid not in ("raise", "flag"):
            raise SchemaError(f"Var {self.name!r}: invalid={self.invalid!r}, expected 'raise' "
                              "or 'flag'")
        if self.missing not in ("allow", "flag"):
            raise SchemaError(f"Var {self.name!r}: missing={self.missing!r}, expected 'allow' "
                              "or 'flag'")

    def dims_match(self, found: tuple[str, ...]) -> bool:
        """Whether dims ``found`` are ``dims``, or ``dims`` without some of ``optional_dims``."""
        if tuple(found) == self.dims:
            return True
        kept = tuple(d for d in self.dims if d in found or d not in self.optional_dims)
        return bool(self.optional_dims) and tuple(found) == kept

    def dims_text(self) -> str:
        """``dims`` as in messages, the optional ones marked, e.g. ``([time], latitude, ...)``."""
        return "(" + ", ".join(f"[{d}]" if d in self.optional_dims else d
                               for d in self.dims) + ")"


@dataclass(frozen=True)
class Schema:
    """The contract of one product type (= STAC collection id)."""

    product_type: str
    title: str
    description: str
    species: str | None
    variables: tuple[Var, ...] = field(default_factory=tuple)
    #: The variable whose values must not be all missing (the measured quantity).
    measured: str | None = None
    #: ``(species, units)`` pairs for the variables marked ``per_species``: mole fractions are
    #: kept in the unit the community uses for that species (CO2 in ppm, CH4 in ppb ...).
    species_units: tuple[tuple[str, str], ...] = ()
    #: ``(species, (low, high))``: ``valid_range`` and ``plausible`` of the ``per_species``
    #: variables, in the species' units.
    species_ranges: tuple[tuple[str, tuple[float, float]], ...] = ()
    #: Plausible time window ``(start, end, why)`` of the platform: ISO dates, ``end=None`` for
    #: "now + 2 days". Times outside are refused. ``None``: no window (generic datasets).
    time_window: tuple[str, str | None, str] | None = None
    #: Rows out of time order: ``"refuse"`` (:class:`~hubkit.errors.TimeOrderError`), ``"sort"``
    #: (stable sort by time, the file's row numbers kept in ``source_row``) or ``None`` (any).
    time_order: str | None = None
    #: Identifier variables whose values must be unique (0 and NaN mean "unknown", not compared).
    unique: tuple[str, ...] = ()
    #: Check variables that CF marks as latitude or longitude (generic datasets).
    cf_axes: bool = False

    def __post_init__(self):
        if self.time_order not in ("refuse", "sort", None):
            raise SchemaError(f"Schema {self.product_type!r}: time_order={self.time_order!r}, "
                              "expected 'refuse', 'sort' or None")

    def var(self, name: str) -> Var:
        """The :class:`Var` called ``name`` (KeyError if the schema has none)."""
        for v in self.variables:
            if v.name == name:
                return v
        raise KeyError(name)

    def units_of(self, var: Var, species: str | None = None) -> str | None:
        """The units ``var`` must have in a dataset of ``species`` (``var.units`` by default)."""
        if var.per_species and species is not None:
            return dict(self.species_units).get(str(species).lower(), var.units)
        return var.units

    def range_of(self, var: Var, species: str | None = None) -> tuple[float, float] | None:
        """``var.valid_range``, or the range of ``species`` for a ``per_species`` variable."""
        if var.per_species and species is not None:
            return dict(self.species_ranges).get(str(species).lower(), var.valid_range)
        return var.valid_range


_SOUNDING = ("sounding",)
#: Valid latitudes and longitudes [degrees]; longitudes in [180, 360] are shifted to [-180, 0].
LATITUDE_RANGE = (-90.0, 90.0)
LONGITUDE_RANGE = (-180.0, 360.0)


def _input_flag(dims: tuple[str, ...]) -> Var:
    return Var("input_flag", dims, None, kinds="u", required=False,
               description="rows the input validation found invalid, kept unchanged (0: valid)")


OCO2_SOUNDINGS = Schema(
    product_type="oco2-soundings",
    title="OCO-2 XCO2 soundings",
    description=(
        "Column-averaged dry-air CO2 mole fraction of OCO-2 soundings (Lite files or the oco2peak "
        "CSV extract), one row per sounding, canonical names and units."
    ),
    species="co2",
    measured="xco2",
    time_window=("2014-07-02", None, "OCO-2 was launched on 2014-07-02"),
    time_order="refuse",  # along-track analyses read soundings in file order
    unique=("sounding_id",),
    variables=(
        Var("xco2", _SOUNDING, "ppm", description="bias-corrected column-average CO2",
            valid_range=(100.0, 1000.0), plausible=(100.0, 1000.0), invalid="flag"),
        Var("latitude", _SOUNDING, "degrees_north", valid_range=LATITUDE_RANGE, missing="flag"),
        Var("longitude", _SOUNDING, "degrees_east", valid_range=LONGITUDE_RANGE, missing="flag",
            wrap_at=180.0),
        Var("time", _SOUNDING, None, kinds="M", missing="flag"),
        Var("xco2_uncertainty", _SOUNDING, "ppm", required=False),
        Var("xco2_quality_flag", _SOUNDING, None, kinds="iuf", required=False),
        Var("sounding_id", _SOUNDING, None, kinds="iuf", required=False),
        Var("orbit", _SOUNDING, None, kinds="iuf", required=False),
        Var("altitude", _SOUNDING, "m", required=False),
        Var("land_water_indicator", _SOUNDING, None, kinds="iuf", required=False),
        Var("windspeed_u", _SOUNDING, "m s-1", required=False),
        Var("windspeed_v", _SOUNDING, "m s-1", required=False),
        Var("surface_pressure", _SOUNDING, "Pa", required=False),
        Var("surface_pressure_apriori", _SOUNDING, "Pa", required=False),
        Var("tcwv", _SOUNDING, "kg m-2", required=False),
        Var("distance", _SOUNDING, "km", required=False),
        Var("land_fraction", _SOUNDING, "%", required=False),
        Var("footprint", _SOUNDING, None, kinds="iu", required=False,
            description="OCO-2 footprint number 1-8 (0: unknown)"),
        Var("time_is_estimated", _SOUNDING, None, kinds="b", required=False,
            description="time interpolated along track, not given by the source"),
        Var("aux_is_interpolated", _SOUNDING, None, kinds="b", required=False,
            description="wind and pressure interpolated by the source (oco2peak extract)"),
        _input_flag(_SOUNDING),
    ),
)

_PEAK = ("peak",)

OCO2_PEAKS = Schema(
    product_type="oco2-peaks",
    title="OCO-2 XCO2 plume detections",
    description=(
        "A table (Parquet) of CO2 plumes detected along OCO-2 orbits by hubkit.co2.find_peaks: "
        "one row per detection with the converged Gaussian-on-a-line fit, its uncertainties, "
        "the cross-sectional-flux emission and the attributed inventory source. The soundings "
        "of a detection's window are recomputed on demand (hubkit.co2.peak_window)."
    ),
    species="co2",
    variables=(
        Var("latitude", _PEAK, "degrees_north"),
        Var("longitude", _PEAK, "degrees_east"),
        Var("orbit", _PEAK, None, kinds="iuf"),
        Var("along", _PEAK, "km", description="along-track coordinate of the window centre"),
        Var("delta", _PEAK, "ppm", description="peak height above the background"),
        Var("sigma", _PEAK, "km", description="Gaussian width along track"),
        Var("amplitude", _PEAK, "ppm km"),
        Var("slope", _PEAK, "ppm km-1"),
        Var("intercept", _PEAK, "ppm"),
        Var("emission", _PEAK, "kg s-1", description="cross-sectional flux"),
        Var("emission_err", _PEAK, "kg s-1"),
        Var("time", _PEAK, None, kinds="M", required=False),
    ),
)

_RL = ("retrieval", "level")
_RLL = ("retrieval", "level", "level_in")

L2_OZONE = Schema(
    product_type="l2-ozone",
    title="Level-2 ozone profile retrievals",
    description=(
        "Ozone profile retrievals with averaging kernels, noise covariances and a priori on their "
        "own pressure grid, one row per retrieval (the input of Complete Data Fusion)."
    ),
    species="o3",
    measured="o3_vmr",
    time_window=("1970-04-08", None, "satellite ozone profiles began with BUV on Nimbus-4, "
                                     "launched on 1970-04-08"),
    variables=(
        Var("o3_vmr", _RL, "mol mol-1", description="retrieved ozone volume mixing ratio",
            # retrievals can go slightly negative; 100 ppm is far above any ozone in air
            valid_range=(-1e-5, 1e-4), plausible=(1e-8, 2e-5), invalid="flag"),
        Var("o3_vmr_apriori", _RL, "mol mol-1"),
        Var("averaging_kernel", _RLL, "1", description="A[l, k] = d(retrieved l)/d(true k)"),
        Var("noise_covariance", _RLL, "mol2 mol-2"),
        Var("apriori_covariance", _RLL, "mol2 mol-2", required=False),
        Var("pressure", _RL, "Pa"),
        Var("latitude", ("retrieval",), "degrees_north", valid_range=LATITUDE_RANGE,
            missing="flag"),
        Var("longitude", ("retrieval",), "degrees_east", valid_range=LONGITUDE_RANGE,
            missing="flag", wrap_at=180.0),
        Var("time", ("retrieval",), None, kinds="M", missing="flag"),
        Var("instrument", ("retrieval",), None, kinds="OUST", required=False),
        Var("surface_pressure", ("retrieval",), "Pa", required=False),
        _input_flag(("retrieval",)),
    ),
)

_CL = ("cell", "level")
_CLL = ("cell", "level", "level_in")

FUSED_OZONE = Schema(
    product_type="fused-ozone",
    title="Fused ozone profiles (Complete Data Fusion)",
    description=(
        "Ozone profiles fused from the L2 retrievals of one space-time cell each by the Complete "
        "Data Fusion (hubkit.fusion), with averaging kernel and covariances on a common grid."
    ),
    species="o3",
    measured="o3_vmr",
    variables=(
        Var("o3_vmr", _CL, "mol mol-1", description="fused ozone volume mixing ratio"),
        Var("averaging_kernel", _CLL, "1", description="fused averaging kernel"),
        Var("noise_covariance", _CLL, "mol2 mol-2"),
        Var("total_covariance", _CLL, "mol2 mol-2", description="noise + smoothing"),
        Var("o3_vmr_apriori", ("level",), "mol mol-1", description="fusion a priori"),
        Var("apriori_covariance", ("level", "level_in"), "mol2 mol-2", required=False),
        Var("pressure", ("level",), "Pa"),
        Var("latitude", ("cell",), "degrees_north", description="cell centre"),
        Var("longitude", ("cell",), "degrees_east", description="cell centre"),
        Var("time", ("cell",), None, kinds="M", description="cell centre"),
        Var("dfs", ("cell",), "1", required=False, description="degrees of freedom, trace(A)"),
        Var("cost", ("cell",), "1", required=False, description="minimum CDF cost"),
        Var("cost_dof", ("cell",), None, kinds="iu", required=False),
        Var("n_retrievals", ("cell",), None, kinds="iu", required=False),
        Var("n_fused", ("cell",), None, kinds="iu", required=False),
    ),
)

_TLYX = ("time", "level", "latitude", "longitude")

#: The meteorology and grid every DAS-layout product carries (what the TROC step reads).
_DAS_MET = (
    Var("temperature", _TLYX, "K"),
    Var("surface_pressure", ("time", "latitude", "longitude"), "Pa"),
    Var("surface_altitude", ("latitude", "longitude"), "m"),
    Var("hybrid_a", ("interface",), "Pa"),
    Var("hybrid_b", ("interface",), "1"),
    Var("time", ("time",), None, kinds="M"),
)

DAS = Schema(
    product_type="das",
    title="Ozone analyses and forecasts on hybrid levels (data assimilation)",
    description=(
        "Analysis and forecast ozone of the assimilation of fused profiles "
        "(hubkit.assimilation.cycling), one time per cycle, with the meteorology the "
        "tropospheric-ozone step reads."
    ),
    species="o3",
    measured="o3_vmr",
    variables=(
        Var("o3_vmr", _TLYX, "mol mol-1", description="analysis"),
        Var("o3_vmr_forecast", _TLYX, "mol mol-1", required=False),
        *_DAS_MET,
        Var("latitude", ("latitude",), "degrees_north"),
        Var("longitude", ("longitude",), "degrees_east"),
        Var("omf_chi2", ("time",), "1", required=False,
            description="innovation chi-square per observed value (Desroziers et al. 2005)"),
        Var("o3_vmr_spread", _TLYX, "mol mol-1", required=False,
            description="analysis standard deviation (carried to the next cycle)"),
        Var("o3_vmr_free", _TLYX, "mol mol-1", required=False,
            description="free model run from the first cold start"),
        Var("n_obs", ("time",), "1", kinds="iu", required=False,
            description="fused profiles assimilated in the cycle"),
        Var("n_values", ("time",), "1", kinds="iu", required=False,
            description="observed values assimilated in the cycle"),
        *(Var(name, ("time",), "1", required=False, description=text) for name, text in (
            ("omb_mean", "mean observation minus first guess, whitened"),
            ("omb_rms", "rms observation minus first guess, whitened"),
            ("oma_mean", "mean observation minus analysis, whitened"),
            ("oma_rms", "rms observation minus analysis, whitened"),
            ("spread_obs", "first-guess ensemble spread in observation space, whitened"))),
    ),
)

DAS_FORECAST = Schema(
    product_type="das-forecast",
    title="Ozone forecasts on hybrid levels",
    description=(
        "Forecasts of a DAS analysis (hubkit.assimilation.forecast), one time per forecast "
        "period; the analysis time is the attribute forecast_reference_time."
    ),
    species="o3",
    measured="o3_vmr",
    variables=(
        Var("o3_vmr", _TLYX, "mol mol-1", description="forecast"),
        *_DAS_MET,
        Var("forecast_period", ("time",), "h", kinds="f"),
        Var("latitude", ("latitude",), "degrees_north"),
        Var("longitude", ("longitude",), "degrees_east"),
    ),
)

_TROC_DIMS = ("time", "latitude", "longitude")

TROC = Schema(
    product_type="troc",
    title="Tropospheric ozone: lapse-rate tropopause, sub-columns and columns",
    description=(
        "The tropospheric ozone of a DAS product (hubkit.ozone.tropospheric_ozone, Gai et al. "
        "2021 section 4.3.3): WMO lapse-rate and fixed-level tropopauses, 20 sub-columns from "
        "the surface to the LRT and the columns to 6 km and to the LRT. Dims are checked in "
        "order: those of a DAS product without its level (a TROC of fields stored in another "
        "order is transposed to it before it is stored)."
    ),
    species="o3",
    measured="surface_o3_vmr",
    variables=(
        Var("surface_o3_vmr", _TROC_DIMS, "mol mol-1", description="at the lowest model level"),
        Var("tropopause_altitude", _TROC_DIMS, "m", description="WMO LRT, NaN where none"),
        Var("tropopause_pressure", _TROC_DIMS, "Pa"),
        Var("fixed_tropopause_pressure", _TROC_DIMS, "Pa"),
        Var("o3_subcolumns", _TROC_DIMS + ("subcolumn",), "DU",
            description="[z_s, next km, ..., last km, z_LRT], NaN above the LRT"),
        Var("o3_column_fixed", _TROC_DIMS, "DU", description="surface to the fixed level"),
        Var("o3_column_lrt", _TROC_DIMS, "DU", description="surface to the LRT"),
        Var("tropopause_flag", _TROC_DIMS, None, kinds="iu",
            description="1 no LRT, 2 sub-columns merged at the top, 4 surface above 6 km"),
        Var("surface_altitude", ("latitude", "longitude"), "m"),
        Var("surface_pressure", _TROC_DIMS, "Pa"),
        Var("time", ("time",), None, kinds="M"),
        Var("latitude", ("latitude",), "degrees_north"),
        Var("longitude", ("longitude",), "degrees_east"),
    ),
)

_OBS = ("time",)
#: Halocarbons and other trace gases reported in ppt (AGAGE, NOAA HATS), by their usual names.
_PPT_SPECIES = ("sf6", "cfc-11", "cfc-12", "cfc-113", "cfc-114", "cfc-115", "hcfc-22",
                "hcfc-141b", "hcfc-142b", "hfc-23", "hfc-32", "hfc-125", "hfc-134a",
                "hfc-143a", "hfc-152a", "ccl4", "ch3ccl3", "ch3cl", "ch3br", "nf3", "so2f2",
                "cf4", "c2f6", "halon-1211", "halon-1301", "cos")

SURFACE_OBS = Schema(
    product_type="surface-obs",
    title="Station and mobile-platform mole fractions (in situ and flask)",
    description=(
        "Dry-air mole fractions measured at a station, tower, ship or aircraft: NOAA ObsPack "
        "(netCDF and text event files), ICOS (Carbon Portal netCDF, ATC L2 text), AGAGE. One "
        "product per file, one row per observation on the dimension 'time' (sorted, every row "
        "kept: several intake heights may share a time stamp, 'inlet_height' says which), the "
        "station's metadata in the attributes (site, inlet, network, scale, platform, owner)."
    ),
    species=None,  # the species comes from the file
    measured="value",
    # Mole fractions are kept in the unit each community reports in: 'value' is in ppm for CO2
    # but in ppb for CH4, N2O, CO and H2 and in ppt for SF6 and the halocarbons ('ppm' stays the
    # default for unlisted species).
    species_units=(
        ("co2", "ppm"), ("ch4", "ppb"), ("n2o", "ppb"), ("co", "ppb"), ("h2", "ppb"),
        *((s, "ppt") for s in _PPT_SPECIES),
    ),
    # surface air, in the units above: wide enough for polluted towers and plumes
    species_ranges=(
        ("co2", (100.0, 2000.0)), ("ch4", (300.0, 50000.0)), ("n2o", (200.0, 2000.0)),
        ("co", (1.0, 50000.0)), ("h2", (100.0, 5000.0)), ("sf6", (0.01, 1000.0)),
        *((s, (0.0, 100000.0)) for s in _PPT_SPECIES if s != "sf6"),
    ),
    time_window=("1957-01-01", None, "surface in-situ records began in 1957 (South Pole, "
                                     "then Mauna Loa in 1958)"),
    time_order="sort",  # a time series: merged or concatenated files are sorted, rows kept
    variables=(
        Var("value", _OBS, "ppm", per_species=True,
            description="dry-air mole fraction of the species",
            valid_range=(100.0, 2000.0), plausible=(100.0, 2000.0), invalid="flag"),
        Var("time", _OBS, None, kinds="M", missing="flag",
            description="start of the sampling or averaging period (UTC)"),
        Var("latitude", _OBS, "degrees_north", valid_range=LATITUDE_RANGE, missing="flag"),
        Var("longitude", _OBS, "degrees_east", valid_range=LONGITUDE_RANGE, missing="flag",
            wrap_at=180.0),
        Var("altitude", _OBS, "m", required=False,
            description="sample altitude above sea level (intake included)"),
        Var("inlet_height", _OBS, "m", required=False,
            description="intake height above ground"),
        Var("value_std_dev", _OBS, "ppm", required=False, per_species=True,
            description="standard deviation of the values averaged into value (variability)"),
        Var("value_unc", _OBS, "ppm", required=False, per_species=True,
            description="uncertainty of value, as the provider estimated it"),
        Var("value_repeatability", _OBS, "ppm", required=False, per_species=True,
            description="measurement repeatability (precision)"),
        Var("nvalue", _OBS, None, kinds="iuf", required=False,
            description="number of measurements averaged into value"),
        Var("qc_flag", _OBS, None, kinds="OUS", required=False,
            description="the provider's quality-control flag (text, e.g. NOAA '...', ICOS 'O')"),
        Var("obs_flag", _OBS, None, kinds="iuf", required=False,
            description="1: representative (use), 0: not"),
        Var("source_row", _OBS, None, kinds="iu", required=False,
            description="row of the file the observation was read from (rows sorted by time)"),
        _input_flag(_OBS),
    ),
)

_T = ("time",)

TCCON_COLUMNS = Schema(
    product_type="tccon-columns",
    title="TCCON column-averaged dry-air mole fractions",
    description=(
        "Ground-based FTS retrievals of one TCCON station (GGG2020 public files): XCO2, XCH4, "
        "XCO, XN2O ... with precisions, column averaging kernels on their altitude levels and "
        "a priori profiles, one row per time (hubkit.io.tccon)."
    ),
    species=None,  # several gases: attrs['hubkit_species'] lists them, comma-separated
    measured="xco2",
    time_window=("2004-01-01", None, "TCCON began at Park Falls in 2004"),
    variables=(
        Var("time", _T, None, kinds="M", missing="flag"),
        Var("latitude", _T, "degrees_north", valid_range=LATITUDE_RANGE, missing="flag"),
        Var("longitude", _T, "degrees_east", valid_range=LONGITUDE_RANGE, missing="flag",
            wrap_at=180.0),
        Var("altitude", _T, "m", required=False, description="station altitude"),
        Var("xco2", _T, "ppm", valid_range=(100.0, 1000.0), plausible=(100.0, 1000.0),
            invalid="flag"),
        Var("xco2_uncertainty", _T, "ppm", required=False),
        Var("xch4", _T, "ppb", required=False, plausible=(300.0, 5000.0)),
        Var("xch4_uncertainty", _T, "ppb", required=False),
        Var("xco", _T, "ppb", required=False),
        Var("xn2o", _T, "ppb", required=False, plausible=(100.0, 1000.0)),
        Var("xco2_averaging_kernel", ("time", "ak_altitude"), "1", required=False),
        Var("xch4_averaging_kernel", ("time", "ak_altitude"), "1", required=False),
        Var("co2_apriori", ("time", "prior_altitude"), "ppm", required=False,
            description="a priori profile, wet mole fraction"),
        Var("ch4_apriori", ("time", "prior_altitude"), "ppb", required=False),
        Var("ak_pressure", ("ak_altitude",), "Pa", required=False),
        _input_flag(_T),
    ),
)

_SL = ("sounding", "level")

XGAS_SOUNDINGS = Schema(
    product_type="xgas-soundings",
    title="Satellite column-averaged CH4 and CO2 soundings with averaging kernels",
    description=(
        "Level-2 XCH4 and/or XCO2 of satellite soundings (GOSAT and other ESA GHG-CCI style "
        "files, hubkit.io.ghg_cci): one row per sounding with its column averaging kernel, "
        "pressure levels, pressure weights and a priori profile."
    ),
    species=None,  # ch4, co2 or both: attrs['hubkit_species']
    time_window=("2009-01-23", None, "GOSAT, the first GHG-CCI sensor in this format, was "
                                     "launched on 2009-01-23 (SCIAMACHY data from 2002 use "
                                     "the cf format)"),
    variables=(
        Var("time", _SOUNDING, None, kinds="M", missing="flag"),
        Var("latitude", _SOUNDING, "degrees_north", valid_range=LATITUDE_RANGE,
            missing="flag"),
        Var("longitude", _SOUNDING, "degrees_east", valid_range=LONGITUDE_RANGE,
            missing="flag", wrap_at=180.0),
        Var("xch4", _SOUNDING, "ppb", required=False, valid_range=(300.0, 5000.0),
            plausible=(300.0, 5000.0), invalid="flag"),
        Var("xch4_uncertainty", _SOUNDING, "ppb", required=False),
        Var("xch4_averaging_kernel", _SL, "1", required=False),
        Var("ch4_apriori", _SL, "ppb", required=False),
        Var("xco2", _SOUNDING, "ppm", required=False, valid_range=(100.0, 1000.0),
            plausible=(100.0, 1000.0), invalid="flag"),
        Var("xco2_uncertainty", _SOUNDING, "ppm", required=False),
        Var("xco2_averaging_kernel", _SL, "1", required=False),
        Var("co2_apriori", _SL, "ppm", required=False),
        Var("pressure", _SL, "Pa"),
        Var("pressure_weight", _SL, "1", required=False),
        _input_flag(_SOUNDING),
    ),
)

OCO2PEAK_PEAKS = Schema(
    product_type="oco2peak-peaks",
    title="XCO2 peaks detected by the oco2peak project",
    description=(
        "The oco2peak project's detections along OCO-2 orbits (Data For Good, 2020): the "
        "Gaussian fit of each peak (not converged: the project stopped its fits after about one "
        "iteration), wind, surface pressure, emission estimate and, where the file has them, "
        "outlier labels or the inventory sources inside the wind-oriented capture zone "
        "(hubkit.io.oco2peak_peaks). hubkit's own detections are the oco2-peaks product."
    ),
    species="co2",
    measured="delta",
    time_window=("2014-07-02", None, "OCO-2 was launched on 2014-07-02"),
    variables=(
        Var("latitude", _PEAK, "degrees_north", valid_range=LATITUDE_RANGE, missing="flag"),
        Var("longitude", _PEAK, "degrees_east", valid_range=LONGITUDE_RANGE, missing="flag",
            wrap_at=180.0),
        Var("time", _PEAK, None, kinds="M", missing="flag"),
        Var("sounding_id", _PEAK, None, kinds="iu"),
        Var("orbit", _PEAK, None, kinds="iuf"),
        Var("delta", _PEAK, "ppm", description="peak height above the background"),
        Var("sigma", _PEAK, "km"),
        Var("amplitude", _PEAK, "ppm km"),
        Var("slope", _PEAK, "ppm km-1", required=False),
        Var("intercept", _PEAK, "ppm", required=False),
        Var("windspeed_u", _PEAK, "m s-1", required=False),
        Var("windspeed_v", _PEAK, "m s-1", required=False),
        Var("surface_pressure", _PEAK, "Pa", required=False),
        Var("tcwv", _PEAK, "kg m-2", required=False),
        Var("emission", _PEAK, "kg s-1", required=False,
            description="the project's emission estimate (gCO2_per_s)"),
        _input_flag(_PEAK),
    ),
)

_SOURCE = ("source",)

SOURCES = Schema(
    product_type="sources",
    title="Emission inventories: point and city sources",
    description=(
        "One row per inventory source with its position and yearly emission as a mean rate, "
        "the input of the source attribution (hubkit.co2.attribute_sources through "
        "hubkit.co2.sources_table); read from the oco2peak merged inventory "
        "(hubkit.io.oco2peak_inventory)."
    ),
    species="co2",
    measured="emission",
    variables=(
        Var("source", _SOURCE, None, kinds="iu", description="the inventory's own row label"),
        Var("latitude", _SOURCE, "degrees_north", valid_range=LATITUDE_RANGE, missing="flag"),
        Var("longitude", _SOURCE, "degrees_east", valid_range=LONGITUDE_RANGE, missing="flag",
            wrap_at=180.0),
        Var("emission", _SOURCE, "kg s-1", description="yearly emission as a mean rate; NaN "
                                                       "where the inventory gives none"),
        Var("source_type", _SOURCE, None, kinds="OUST", required=False),
        _input_flag(_SOURCE),
    ),
)

XCO2_MONTHLY_MEAN = Schema(
    product_type="xco2-monthly-mean",
    title="Monthly mean XCO2",
    description=(
        "Monthly means of OCO-2 XCO2 over the whole globe, one row per month (the oco2peak "
        "project's xco2_monthly_mean.csv); time is the first instant of the month."
    ),
    species="co2",
    measured="xco2",
    variables=(
        Var("time", _T, None, kinds="M"),
        Var("xco2", _T, "ppm", valid_range=(100.0, 1000.0), plausible=(100.0, 1000.0)),
    ),
)

CF_DATASET = Schema(
    product_type="cf-dataset",
    title="Generic CF datasets",
    description="Any CF-convention netCDF or Zarr dataset, stored as it is.",
    species=None,
    variables=(),
    cf_axes=True,
)

_UV_AXES = ("ozone", "elevation", "albedo", "aod", "ssa", "cot", "sza")

UV_TABLE = Schema(
    product_type="uv-table",
    title="Surface UV lookup tables",
    description=(
        "UV index and UV-A irradiance over ozone, elevation, albedo, aerosol, cloud and solar "
        "zenith angle, computed with a radiative-transfer engine (hubkit.uv.table)."
    ),
    species=None,
    measured="uvi",
    variables=(
        Var("uvi", _UV_AXES, "1"),
        Var("uva", _UV_AXES, "W m-2"),
        Var("ozone", ("ozone",), "DU"),
        Var("elevation", ("elevation",), "m"),
        Var("sza", ("sza",), "degree"),
    ),
)

_TYX = ("time", "latitude", "longitude")
_DYX = ("day", "latitude", "longitude")

SURFACE_UV = Schema(
    product_type="surface-uv",
    title="Surface UV index and UV-A maps",
    description=(
        "UV index and UV-A irradiance of the analysis and forecast times of a DAS product, "
        "from the UV lookup table (hubkit.uv.surface)."
    ),
    species=None,
    measured="uvi",
    variables=(
        Var("uvi", _TYX, "1"),
        Var("uva", _TYX, "W m-2"),
        Var("uvi_forecast", _TYX, "1", required=False),
        Var("uva_forecast", _TYX, "W m-2", required=False),
        Var("total_ozone", _TYX, "DU"),
        Var("sza", _TYX, "degree"),
        Var("uv_flag", _TYX, None, kinds="iu"),
        Var("uvi_noon", _DYX, "1", required=False,
            description="UV index at each longitude's local solar noon of each day"),
        Var("uva_noon", _DYX, "W m-2", required=False),
        Var("total_ozone_noon", _DYX, "DU", required=False,
            description="total ozone interpolated in time to the local solar noon"),
        Var("sza_noon", _DYX, "degree", required=False),
        Var("uv_flag_noon", _DYX, None, kinds="iu", required=False),
        Var("noon_time", ("day", "longitude"), None, kinds="M", required=False,
            description="UTC time of local solar noon"),
        Var("time", ("time",), None, kinds="M"),
        Var("latitude", ("latitude",), "degrees_north"),
        Var("longitude", ("longitude",), "degrees_east"),
    ),
)

# -- inputs of the surface UV besides ozone (hubkit.io.uv_inputs, hubkit.uv.inputs) -----------

_MAP = ("time", "latitude", "longitude")


def _map_var(name: str, description: str, required: bool = True) -> Var:
    """A dimensionless map on (latitude, longitude), optionally per time."""
    return Var(name, _MAP, "1", required=required, optional_dims=("time",),
               description=description)


_GRID_VARS = (
    Var("latitude", ("latitude",), "degrees_north"),
    Var("longitude", ("longitude",), "degrees_east"),
    Var("time", ("time",), None, kinds="M", required=False),
)

SURFACE_ALBEDO = Schema(
    product_type="surface-albedo",
    title="Surface albedo in the UV",
    description=(
        "Lambertian surface albedo (e.g. a UV albedo climatology, snow cover) on a regular "
        "latitude-longitude grid, static or per time: an input of the surface UV "
        "(hubkit.uv.surface.surface_uv_from_inputs)."
    ),
    species=None,
    measured="surface_albedo",
    variables=(_map_var("surface_albedo", "surface albedo in [0, 1]"), *_GRID_VARS),
)

AEROSOL = Schema(
    product_type="aerosol",
    title="Aerosol optical depth and single-scattering albedo",
    description=(
        "Aerosol optical depth at 550 nm and (optionally) single-scattering albedo on a regular "
        "latitude-longitude grid, static or per time: an input of the surface UV."
    ),
    species=None,
    measured="aod",
    variables=(
        _map_var("aod", "aerosol optical depth at 550 nm, >= 0"),
        _map_var("ssa", "aerosol single-scattering albedo in (0, 1]", required=False),
        *_GRID_VARS,
    ),
)

CLOUD = Schema(
    product_type="cloud",
    title="Cloud optical thickness",
    description=(
        "Cloud optical thickness (visible, grid-box effective) on a regular latitude-longitude "
        "grid, static or per time: an input of the surface UV."
    ),
    species=None,
    measured="cloud_optical_thickness",
    variables=(_map_var("cloud_optical_thickness", "cloud optical thickness, >= 0"),
               *_GRID_VARS),
)

_PAIR = ("pair",)

VALIDATION_PAIRS = Schema(
    product_type="validation-pairs",
    title="Satellite soundings colocated with ground stations",
    description=(
        "A table (Parquet) of one satellite product's soundings colocated with the TCCON-like "
        "station products overlapping it in time (hubkit.validate.compare_with_tccon): one row "
        "per (sounding, station, species) with both values, their uncertainties, the distance "
        "and time to the nearest station measurement, and, where the soundings carry averaging "
        "kernels, the station's profile seen through them (ground_smoothed)."
    ),
    species=None,
    variables=(
        Var("latitude", _PAIR, "degrees_north"),
        Var("longitude", _PAIR, "degrees_east"),
        Var("time", _PAIR, None, kinds="M"),
        Var("distance_km", _PAIR, "km"),
        Var("satellite", _PAIR, None, kinds="f"),
        Var("ground", _PAIR, None, kinds="f"),
        Var("difference", _PAIR, None, kinds="f"),
    ),
)

PRODUCT_TYPES: dict[str, Schema] = {
    s.product_type: s
    for s in (OCO2_SOUNDINGS, L2_OZONE, FUSED_OZONE, DAS, DAS_FORECAST, SURFACE_OBS,
              CF_DATASET, OCO2_PEAKS, UV_TABLE, SURFACE_UV, TROC, SURFACE_ALBEDO, AEROSOL, CLOUD,
              TCCON_COLUMNS, XGAS_SOUNDINGS, OCO2PEAK_PEAKS, SOURCES, XCO2_MONTHLY_MEAN,
              VALIDATION_PAIRS)
}


def get_schema(product_type: str) -> Schema:
    """Return the schema of ``product_type``; unknown names raise :class:`SchemaError`."""
    try:
        return PRODUCT_TYPES[product_type]
    except KeyError:
        raise SchemaError(
            f"unknown product type {product_type!r}; expected one of {sorted(PRODUCT_TYPES)}"
        ) from None


def product_type_of(ds: xr.Dataset) -> str:
    """The product type a canonical dataset declares in ``attrs['hubkit_product_type']``."""
    try:
        return ds.attrs["hubkit_product_type"]
    except KeyError:
        raise SchemaError(
            "dataset has no attrs['hubkit_product_type']; expected one of "
            f"{sorted(PRODUCT_TYPES)} (readers in hubkit.io set it)"
        ) from None


def zarr_name_problem(name) -> str | None:
    """Why the Zarr layout cannot hold a variable called ``name`` as given, or ``None``."""
    name = str(name)
    if "/" in name or "\\" in name:
        return "holds '/' or '\\', which Zarr reads as a path: the variable would become a group"
    if name == "" or set(name) == {"."}:
        return "is empty or only dots, which Zarr cannot store as a node name"
    if name.startswith("__"):
        return "starts with '__', which Zarr v3 reserves"
    return None


def _all_missing(values: np.ndarray) -> bool:
    if values.size == 0:
        return True
    if values.dtype.kind == "f":
        return bool(np.all(np.isnan(values)))
    if values.dtype.kind == "M":
        return bool(np.all(np.isnat(values)))
    return False


def validate(ds: xr.Dataset, source: str = "<dataset>", product_type: str | None = None) -> None:
    """Check ``ds`` against the schema of its product type; raise :class:`SchemaError` if not.

    Parameters
    ----------
    ds : xarray.Dataset
        A canonical dataset, as returned by a :mod:`hubkit.io` reader.
    source : str
        The file the dataset came from, named in every error message.
    product_type : str, optional
        Defaults to ``ds.attrs['hubkit_product_type']``.
    """
    schema = get_schema(product_type or product_type_of(ds))
    species = ds.attrs.get("hubkit_species")
    for name in ds.variables:
        problem = zarr_name_problem(name)
        if problem:
            raise VariableNameError(
                f"{source}: variable {name!r} {problem}; expected a name without '/' or '\\' "
                "(readers encode such names reversibly, e.g. 'dir%5Cname')")
    if not ds.data_vars:
        raise SchemaError(f"{source}: dataset has no data variables; expected at least one")
    for name, size in ds.sizes.items():
        if size == 0:
            raise SchemaError(f"{source}: dimension {name!r} is empty; expected at least 1 element")
    for var in schema.variables:
        if var.name not in ds.variables:
            if var.required:
                raise SchemaError(
                    f"{source}: required variable {var.name!r} is missing; expected "
                    f"{var.name}{var.dims} [{var.units or 'no units'}] for product type "
                    f"{schema.product_type!r}"
                )
            continue
        da = ds[var.name]
        if not var.dims_match(tuple(da.dims)):
            expected = var.dims_text() + " (dims in brackets optional)" if var.optional_dims \
                else str(var.dims)
            raise SchemaError(
                f"{source}: variable {var.name!r} has dims {tuple(da.dims)}, expected {expected}"
            )
        if da.dtype.kind not in var.kinds:
            raise SchemaError(
                f"{source}: variable {var.name!r} has dtype {da.dtype}, expected a dtype of kind "
                f"{var.kinds!r} (f float, i/u integer, b bool, M datetime, O/U/S/T text)"
            )
        expected = schema.units_of(var, species)
        if expected is not None:
            found = canonical_units(da.attrs.get("units"))
            if found != canonical_units(expected):
                raise SchemaError(
                    f"{source}: variable {var.name!r} has units {da.attrs.get('units')!r}, "
                    f"expected {expected!r}"
                )
    if schema.measured is not None and _all_missing(np.asarray(ds[schema.measured].values)):
        raise SchemaError(
            f"{source}: variable {schema.measured!r} holds no valid value (all NaN); expected "
            "at least one measurement"
        )


def validate_table(df, units: dict, source: str = "<table>", product_type: str = "") -> None:
    """Check a table product (:meth:`hubkit.store.Store.put_table`) against its schema.

    The columns are checked as the variables of a dataset along the schema's one dimension:
    required columns present, dtype kinds and ``units`` (``{column: units}``) as the schema
    says. An empty table (no rows) is valid when it has the required columns.
    """
    schema = get_schema(product_type)
    if len(df) == 0:
        missing = [v.name for v in schema.variables if v.required and v.name not in df.columns]
        if missing:
            raise SchemaError(f"{source}: required columns {missing} are missing for product "
                              f"type {schema.product_type!r}")
        return
    dims = schema.variables[0].dims if schema.variables else ("row",)
    ds = xr.Dataset(
        {str(c): (dims, np.asarray(df[c].to_numpy()), {"units": units.get(str(c))}
                  if units.get(str(c)) is not None else {})
         for c in df.columns},
        attrs={"hubkit_species": schema.species} if schema.species else {},
    )
    validate(ds, source=source, product_type=product_type)
