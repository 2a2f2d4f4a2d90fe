"""The processing chain: declared steps, a level-triggered reconciler on Dask, watch mode.

Steps are data (:class:`Step`): which products they read and how those are grouped into units of
work (:class:`Query`), which product type they write, the pure function that turns the unit's
datasets into the output, its version, parameters and resources. :func:`reconcile` looks at the
catalog alone, computes the id every unit's output must have (the same content-derived id
:meth:`hubkit.store.Store.put` gives it: input ids + step + version + parameters), and submits
only the units whose output is not there to the Dask cluster of :mod:`hubkit.compute`. Each
task reopens the store from its URL on the worker, reads its inputs, runs the function and
commits the output with its provenance; the Item is the commit point, so a task that dies leaves
no visible product. Running it again, after any crash, does only what is still missing; two
reconcilers at once produce each product once (ids are deterministic, commits exclusive).

The default chain (:func:`default_steps`), after AURORA's Data Processing Chain (Gai et al.
2021, sections 4-5):

- ``l2-ozone`` grouped by the hour of each item's start time → ``fused-ozone``
  (:func:`hubkit.fusion.fuse_product`);
- ``fused-ozone`` grouped into 12-h cycles ending at 00 and 12 UTC, plus the previous cycle's
  ``das`` (cycled, :attr:`Query.previous`) → ``das`` (:func:`hubkit.assimilation.assimilate`,
  via :func:`assimilate_window`: hourly LETKF analyses from the previous analysis, or from
  the climatology for the first cycle);
- each ``das`` item → ``das-forecast``, +12 h and +24 h (:func:`forecast_das`);
- each ``oco2-soundings`` item → ``oco2-peaks`` (:func:`hubkit.co2.find_peaks`,
  :func:`hubkit.co2.peaks_table`);
- each ``das`` item → ``troc`` (:func:`hubkit.ozone.tropospheric_ozone`);
- each ``das`` item, with the nearest ``surface-albedo``, ``aerosol`` and ``cloud`` products
  when the store has them → ``surface-uv``, with local-solar-noon maps
  (:func:`hubkit.uv.surface.surface_uv_from_inputs`; clear-sky defaults, recorded, otherwise).

A windowed unit (``"hour"``, ``"day"``, ``"12h-cycle"``) is run once its window is closed: its end
plus :attr:`Query.settle` has passed, or it holds :attr:`Query.expected` inputs — AURORA's
policy of going on with the files that arrived in time, made explicit and configurable. It
also waits while a step that writes its input type still has missing units in that window, so
that a cycle is assimilated once, from all its hours, rather than once early and once again.

References
----------
.. [1] Gai et al., Remote Sens. 13, 210, 2021. doi:10.3390/rs13020210
"""

from __future__ import annotations

import itertools
import json
import logging
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

import pandas as pd

from hubkit.errors import ChainError, HubkitError, StoreError

__all__ = [
    "GROUPINGS",
    "Query",
    "Report",
    "Step",
    "StepReport",
    "Unit",
    "default_steps",
    "plan",
    "reconcile",
    "status",
    "watch",
]

log = logging.getLogger(__name__)

#: How a query groups its items into units: each item alone, or all items whose start time
#: falls in the same UTC hour / day / 12-h assimilation cycle (00-12 and 12-24 UTC, so each
#: window ends at 00 or 12 UTC, the analysis times of the assimilation, Gai et al. 2021). The value
#: is the width of a window (None: no window); windows start at multiples of it after 00 UTC.
GROUPINGS: dict[str, pd.Timedelta | None] = {
    "item": None,
    "hour": pd.Timedelta(hours=1),
    "12h-cycle": pd.Timedelta(hours=12),
    "day": pd.Timedelta(days=1),
}

_FAILURES = "chain-failures"  # kind of the store records that log failed units


# --------------------------------------------------------------------------------------------
# Declarations
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    """Which products a step reads and how they are grouped into units of work.

    Attributes
    ----------
    product_type : str
        Collection read, e.g. ``"l2-ozone"``.
    group_by : str
        One of :data:`GROUPINGS`: ``"item"`` (one unit per product), ``"hour"``,
        ``"12h-cycle"`` or ``"day"`` (all products whose start time falls in that UTC window,
        ``[begin, begin + width)``, form one unit).
    settle : float
        A window is closed, and its unit ready, once its end is this long past. [s]
        Products without a start time are always their own unit.
    expected : int, optional
        A window holding at least this many input products is closed at once, before its end
        (e.g. 12 hourly ``fused-ozone`` products of a 12-h cycle). Default: only time closes
        it.
    previous : bool
        Cycled: each unit also reads the output of the same step's unit of the window just
        before it (the previous cycle's analysis), passed to the function as ``previous=``
        (None for the first window or after a gap, a cold start). That output's id is an
        input of the unit, so ids still follow from inputs; the unit waits until it exists.
    auxiliary : tuple of str
        Optional inputs (e.g. ``("surface-albedo", "aerosol", "cloud")`` for the UV): per
        type, the product whose time range is nearest the unit's start (one without a time
        range fits any unit) is added to the unit's inputs and passed after the main ones;
        none when the store holds none. A new auxiliary product makes a new output id, so
        reconciling recomputes with it.
    """

    product_type: str
    group_by: str = "item"
    settle: float = 0.0
    expected: int | None = None
    previous: bool = False
    auxiliary: tuple[str, ...] = ()

    def __post_init__(self):
        if self.group_by not in GROUPINGS:
            raise ValueError(
                f"Query.group_by={self.group_by!r}: expected one of {sorted(GROUPINGS)}"
            )
        if self.settle < 0:
            raise ValueError(f"Query.settle={self.settle!r}: expected a delay >= 0 [s]")
        if self.previous and self.group_by == "item":
            raise ValueError("Query.previous needs a windowed grouping (hour, 12h-cycle, day)")
        if self.expected is not None and int(self.expected) < 1:
            raise ValueError(f"Query.expected={self.expected!r}: expected a count >= 1 of "
                             "input products, or None (only time closes a window)")

    def describe(self) -> str:
        if self.group_by == "item":
            return f"each {self.product_type} item"
        return f"{self.product_type} grouped by {self.group_by} of the item's start time"


@dataclass(frozen=True)
class Step:
    """One step of the chain, declared as data.

    Attributes
    ----------
    name : str
        Step name, recorded in the provenance and part of the output ids (``"fusion.cdf"``).
    version : str
        Step version: a new version makes new output ids, so reconciling recomputes everything
        the step made (the way to roll out a fixed function).
    input : Query
        What the step reads and how it groups it.
    output : str
        Product type written.
    function : callable
        ``function(datasets, **parameters)``: a list of opened input products (datasets or
        tables, in input-id order) → one :class:`xarray.Dataset` or :class:`pandas.DataFrame`.
        Pure: no I/O, no global state. Must be importable on the Dask workers.
    parameters : mapping
        Keyword arguments of ``function``; JSON-serialisable, part of the output ids.
    resources : mapping
        Dask worker resources per task (``{"MEMORY": 2e9}``), honoured when the workers
        declare them.
    retries : int
        Times a unit that failed is submitted again within one reconcile. [1] (A task whose
        worker died is re-run by Dask itself, up to its ``allowed-failures``.)
    backoff : float
        Delay before the first retry, doubled at each further one. [s]
    """

    name: str
    version: str
    input: Query
    output: str
    function: Callable
    parameters: Mapping = field(default_factory=dict)
    resources: Mapping = field(default_factory=dict)
    retries: int = 1
    backoff: float = 1.0

    def __post_init__(self):
        try:
            json.dumps(dict(self.parameters))
        except TypeError as exc:
            raise ValueError(
                f"Step {self.name!r}: parameters must be JSON-serialisable (they are part of the "
                f"output ids and the provenance): {exc}"
            ) from None

    def output_id(self, inputs: Sequence[str]) -> str:
        """The id the output of a unit reading ``inputs`` has, known before it runs."""
        from hubkit.store import _computed_identity

        return _computed_identity(self.output, inputs, self.name, self.version,
                                  dict(self.parameters))[0]


@dataclass(frozen=True)
class Unit:
    """One unit of work: a step applied to a group of input products."""

    step: str
    group: str
    inputs: tuple[str, ...]
    output_id: str
    previous: str | None = None  # the previous cycle's output (the last of ``inputs``)


# --------------------------------------------------------------------------------------------
# The default chain
# --------------------------------------------------------------------------------------------


def _concat(datasets, dim: str):
    import xarray as xr

    if len(datasets) == 1:
        return datasets[0]
    return xr.concat(datasets, dim=dim, data_vars="all", coords="different", compat="equals",
                     join="outer", combine_attrs="drop_conflicts")


def _valid_rows(ds, dim: str):
    """``ds`` without the rows its reader flagged in ``input_flag`` (position or time missing,
    value invalid: :mod:`hubkit.io.validation`), so no science step computes with them. The
    rows left out are counted in the attribute ``hubkit_flagged_rows_skipped``."""
    import numpy as np

    if "input_flag" not in ds or dim not in ds["input_flag"].dims:
        return ds
    flagged = np.asarray(ds["input_flag"].values) != 0
    if not flagged.any():
        return ds
    out = ds.isel({dim: np.flatnonzero(~flagged)})
    out.attrs["hubkit_flagged_rows_skipped"] = int(flagged.sum())
    return out


def fuse_hour(datasets, *, cell=(1.0, 1.0, 3600.0), levels=30, top=100.0):
    """Step function: fuse the ``l2-ozone`` products of one hour (:func:`fusion.fuse_product`)
    on the chain's one fusion grid, so that fused products of different hours compare.

    Parameters
    ----------
    datasets : list of xarray.Dataset
        ``l2-ozone`` products, concatenated along ``retrieval``.
    cell : sequence of float
        Box size ``(Δlatitude [°], Δlongitude [°], Δtime [s])``.
    levels, top : int, float
        The fusion grid: ``levels`` pressures spaced evenly in ln p from 101325 Pa up to
        ``top``. [1, Pa]
    """
    import numpy as np

    from hubkit import fusion

    pressure = np.geomspace(101325.0, float(top), int(levels))
    l2 = _valid_rows(_concat(datasets, "retrieval"), "retrieval")
    return fusion.fuse_product(l2, cell=tuple(cell), pressure=pressure)


def _meteorology(grid, seed, start, end):
    """The meteorology driving the DAS: :func:`hubkit.simulate.das_field` (simulated; the
    chain has no analysed meteorology yet) every 12 h over ``[start, end]``."""
    import numpy as np

    from hubkit import simulate

    nlon, nlat, n_levels = (int(n) for n in grid)
    steps = int((end - start) / pd.Timedelta(hours=12)) + 1
    return simulate.das_field(nlon=nlon, nlat=nlat, ntime=max(steps, 2), n_levels=n_levels,
                              start=start.tz_localize(None).isoformat()
                              if start.tz else start.isoformat(),
                              step_hours=12.0, dtype=np.float64, seed=int(seed))


def assimilate_window(datasets, previous=None, *, window="12h", interval="1h",
                      grid=(72, 36, 30), members=32, seed=0, wind_speed=20.0, spread=0.3,
                      spread_stratosphere=0.1, model_error=0.1, vertical_length=0.5,
                      vertical_model="soar"):
    """Step function: the ``das`` product of one assimilation cycle, cycled.

    The ``fused-ozone`` products of the window ``[E - window, E)`` (E at 00 or 12 UTC), on
    one fusion grid and moved to one prior (:func:`hubkit.fusion.concat_fused`), are
    assimilated by the LETKF (:func:`hubkit.assimilation.assimilate`) with an analysis every
    ``interval`` (each hour of fused products), starting at ``E - window`` from ``previous``
    — the previous cycle's ``das`` product (a warm start: its analysis, spread and free run,
    :func:`hubkit.assimilation.forecast.warm_start`) — or, for the first cycle or after a gap,
    from the climatology (a cold start, :func:`hubkit.assimilation.forecast.cold_start`). The
    product holds the analysis at ``E`` and the window's observation-space diagnostics
    (:func:`hubkit.assimilation.cycling.window_diagnostics`); ``hubkit_start`` says cold or
    warm. The meteorology and winds are simulated (:func:`_meteorology`, solid-body winds),
    and the product says so.

    Parameters
    ----------
    datasets : list of xarray.Dataset
        ``fused-ozone`` products of one window.
    previous : xarray.Dataset, optional
        The previous cycle's ``das`` product.
    window, interval : str
        Cycle length (the step's grouping) and analysis interval.
    grid : sequence of int
        DAS grid ``(n_longitude, n_latitude, n_levels)`` (regular, global).
    members, seed : int
        LETKF ensemble size and seed.
    wind_speed : float
        Equatorial speed of the solid-body winds. [m s⁻¹]
    spread, spread_stratosphere, model_error, vertical_length : float
        Background errors (:class:`hubkit.assimilation.CycleOptions`). [1]
    vertical_model : str
        Vertical correlation model of the background errors.

    References
    ----------
    .. [1] Gai et al., Remote Sens. 13, 210, 2021. doi:10.3390/rs13020210
    .. [2] Hunt, Kostelich, Szunyogh, Physica D 230, 112-126, 2007.
       doi:10.1016/j.physd.2006.11.008
    """
    import numpy as np

    from hubkit import fusion
    from hubkit.assimilation import CycleOptions, assimilate
    from hubkit.assimilation import forecast as FC
    from hubkit.assimilation.cycling import solid_body_winds, window_diagnostics

    fused = fusion.concat_fused(datasets)
    finite = np.ones(fused.sizes["cell"], bool)
    for name in ("o3_vmr", "averaging_kernel", "noise_covariance"):
        values = np.asarray(fused[name].values, dtype=float)
        finite &= np.isfinite(values.reshape(values.shape[0], -1)).all(axis=1)
    fused = fused.isel(cell=np.flatnonzero(finite))
    if fused.sizes["cell"] == 0:
        raise ValueError("no fused profile with finite values in this window")
    width = pd.Timedelta(window)
    end = pd.Timestamp(np.asarray(fused["time"].values).min()).floor(width) + width
    begin = end - width
    met = _meteorology(grid, seed, begin, end)
    winds = solid_body_winds(met.latitude, met.longitude, speed=float(wind_speed))
    if previous is None:
        background = FC.cold_start(met, begin, end)
    else:
        background = FC.warm_start(previous, met, end)
    options = CycleOptions(members=int(members), seed=int(seed), spread=float(spread),
                           spread_stratosphere=float(spread_stratosphere),
                           model_error=float(model_error),
                           vertical_length=float(vertical_length),
                           vertical_model=str(vertical_model))
    das = assimilate(fused, background=background, winds=winds, window=interval,
                     options=options, until=end)
    out = das.sel(time=[np.datetime64(end.tz_localize(None) if end.tz else end, "ns")])
    diag = window_diagnostics(das)
    for name in ("n_obs", "n_values", "omb_mean", "omb_rms", "oma_mean", "oma_rms",
                 "spread_obs"):
        out[name] = ("time", np.array([diag[name]]), das[name].attrs)
    out["omf_chi2"] = ("time", np.array([diag["chi2"]]), das["omf_chi2"].attrs)
    out = out.drop_vars([v for v in ("rmse_forecast", "rmse_analysis", "rmse_free")
                         if v in out])
    out.attrs.update(das.attrs)
    out.attrs.update({
        "hubkit_window_start": begin.isoformat(),
        "hubkit_window_end": end.isoformat(),
        "hubkit_profiles_in_window": int(fused.sizes["cell"]),
        "hubkit_start": "warm" if previous is not None else "cold",
        "hubkit_background": ("previous cycle's analysis" if previous is not None else
                              "climatology (hubkit.assimilation.background, Fioletov et al. "
                              "2002 columns)"),
        "hubkit_simulated": "true",
        "hubkit_simulated_inputs": f"meteorology hubkit.simulate.das_field (seed {int(seed)}), "
                                   f"solid-body winds {float(wind_speed):g} m/s",
    })
    return out


def forecast_das(datasets, *, leads=("12h", "24h"), seed=0, wind_speed=20.0):
    """Step function: forecasts (``das-forecast``) of one ``das`` analysis, ``leads`` ahead
    (:func:`hubkit.assimilation.forecast.forecast`), with the meteorology and winds of the
    assimilation step (its grid, and the same ``seed`` and ``wind_speed``)."""
    from hubkit.assimilation import forecast as FC
    from hubkit.assimilation.cycling import solid_body_winds

    (das,) = datasets
    t0 = pd.Timestamp(das["time"].values[-1])
    last = max(pd.Timedelta(lead) for lead in leads)
    grid = (das.sizes["longitude"], das.sizes["latitude"], das.sizes["interface"] - 1)
    met = _meteorology(grid, seed, t0, t0 + last)
    winds = solid_body_winds(met.latitude, met.longitude, speed=float(wind_speed))
    out = FC.forecast(das, met, winds, leads=tuple(leads))
    out.attrs["hubkit_simulated"] = "true"
    out.attrs["hubkit_simulated_inputs"] = f"meteorology hubkit.simulate.das_field (seed {seed})"
    return out


def detect_peaks(datasets, **options):
    """Step function: the ``oco2-peaks`` table of one ``oco2-soundings`` product.

    ``options`` are :class:`hubkit.co2.PeakOptions` fields (defaults when empty).
    """
    from hubkit import co2

    ds = _valid_rows(_concat(datasets, "sounding"), "sounding")
    peaks = co2.find_peaks(ds, co2.PeakOptions(**options), scheduler="sync")
    return co2.peaks_table(peaks)


def troc(datasets, *, fixed_altitude=6000.0):
    """Step function: the tropospheric ozone (``troc``) of one ``das`` product.

    Parameters
    ----------
    fixed_altitude : float
        Altitude of the fixed-level tropopause. [m]
    """
    from hubkit import ozone

    (ds,) = datasets
    return ozone.tropospheric_ozone(ds, fixed_altitude=float(fixed_altitude))


def surface_uv(datasets, *, noon=True):
    """Step function: the UV index and UV-A maps (``surface-uv``) of one ``das`` product.

    The first dataset is the ``das`` product; the others are the optional ``surface-albedo``,
    ``aerosol`` and ``cloud`` products the step found (:attr:`Query.auxiliary`), regridded
    and used by :func:`hubkit.uv.surface.surface_uv_from_inputs`; absent ones take its
    documented defaults (clear sky), and the product records which were used. With ``noon``
    it adds the UV index at each longitude's local solar noon of the day, the daily maximum
    people are warned of (AURORA, Gai et al. 2021).
    """
    from hubkit.uv.inputs import AEROSOL_PRODUCT, ALBEDO_PRODUCT, CLOUD_PRODUCT
    from hubkit.uv.surface import surface_uv_from_inputs

    das, *aux = datasets
    by_type = {ds.attrs.get("hubkit_product_type"): ds for ds in aux}
    return surface_uv_from_inputs(das, albedo=by_type.get(ALBEDO_PRODUCT),
                                  aerosol=by_type.get(AEROSOL_PRODUCT),
                                  cloud=by_type.get(CLOUD_PRODUCT), noon=bool(noon))


def default_steps() -> list[Step]:
    """The chain of AURORA's Data Processing Chain (Gai et al. 2021, sections 4-5).

    The assimilation cycle closes one hour after its end (late hours of fused ozone still come
    in), or at once when all 12 hourly ``fused-ozone`` products of the cycle are there.
    """
    das = {"window": "12h", "interval": "1h", "grid": [72, 36, 30], "members": 32, "seed": 0,
           "wind_speed": 20.0, "spread": 0.3, "spread_stratosphere": 0.1, "model_error": 0.1,
           "vertical_length": 0.5, "vertical_model": "soar"}
    return [
        Step("fusion.cdf", "2", Query("l2-ozone", "hour"), "fused-ozone", fuse_hour,
             parameters={"cell": [1.0, 1.0, 3600.0], "levels": 30, "top": 100.0}),
        Step("assimilation.letkf", "2",
             Query("fused-ozone", "12h-cycle", settle=3600.0, expected=12, previous=True),
             "das", assimilate_window, parameters=das),
        Step("assimilation.forecast", "1", Query("das", "item"), "das-forecast", forecast_das,
             parameters={"leads": ["12h", "24h"], "seed": das["seed"],
                         "wind_speed": das["wind_speed"]}),
        Step("co2.peaks", "1", Query("oco2-soundings", "item"), "oco2-peaks", detect_peaks),
        Step("ozone.troc", "1", Query("das", "item"), "troc", troc,
             parameters={"fixed_altitude": 6000.0}),
        Step("uv.surface", "2",
             Query("das", "item", auxiliary=("surface-albedo", "aerosol", "cloud")),
             "surface-uv", surface_uv, parameters={"noon": True}),
    ]


# --------------------------------------------------------------------------------------------
# Planning: what should exist
# --------------------------------------------------------------------------------------------


def _units(step: Step, index: pd.DataFrame, now: pd.Timestamp,
           pending: Sequence[pd.Timestamp | None] = ()) -> tuple[list[Unit], int]:
    """The units of ``step`` over the catalog ``index``, and how many of its input products
    wait in windows that are not closed yet.

    A window ``[begin, begin + width)`` is closed when ``now`` is past its end plus
    ``settle``, or when it holds ``expected`` inputs. ``pending`` are the start times of the
    missing units of steps that write this step's input type (None: a unit without one); a
    window that one of them falls in waits for it, whatever the clock says.
    """
    rows = index[index["collection"] == step.input.product_type]
    width = GROUPINGS[step.input.group_by]
    groups: dict[str | pd.Timestamp, list[str]] = {}
    for item_id, start in zip(rows["id"].astype(str), rows["start"], strict=True):
        if width is None or pd.isna(start):
            groups.setdefault(item_id, []).append(item_id)
        else:
            groups.setdefault(pd.Timestamp(start).floor(width), []).append(item_id)
    settle = pd.Timedelta(seconds=step.input.settle)
    expected = step.input.expected
    blocked = {pd.Timestamp(t).floor(width) for t in pending if t is not None} \
        if width is not None else set()
    block_all = width is not None and any(t is None for t in pending)
    units, waiting = [], 0
    made: dict[pd.Timestamp, str] = {}  # window start -> output id (cycled steps)
    for key, ids in sorted(groups.items(), key=lambda kv: _key_text(kv[0])):
        if isinstance(key, pd.Timestamp):
            closed = key + width + settle <= now or (expected is not None
                                                     and len(ids) >= expected)
            if not closed or block_all or key in blocked:
                waiting += len(ids)
                continue
        inputs = tuple(sorted(ids)) + _auxiliary(step, index, rows, ids)
        previous = made.get(key - width) if step.input.previous else None
        if previous is not None:
            inputs = inputs + (previous,)
        out_id = step.output_id(inputs)
        if step.input.previous:
            made[key] = out_id
        units.append(Unit(step.name, _key_text(key), inputs, out_id, previous))
    return units, waiting


def _auxiliary(step: Step, index: pd.DataFrame, rows: pd.DataFrame, ids) -> tuple[str, ...]:
    """Ids of the auxiliary products of a unit made of ``ids`` (see :attr:`Query.auxiliary`):
    per type the one whose time range lies nearest the unit's earliest start."""
    if not step.input.auxiliary:
        return ()
    starts = pd.to_datetime(rows.loc[rows["id"].astype(str).isin(list(ids)), "start"],
                            utc=True).dropna()
    when = starts.min() if len(starts) else None
    chosen = []
    for kind in step.input.auxiliary:
        cand = index[index["collection"] == kind]
        if not len(cand):
            continue
        begin = pd.to_datetime(cand["start"], utc=True)
        end = pd.to_datetime(cand["end"], utc=True).fillna(begin)
        if when is None:
            gap = pd.Series(0.0, index=cand.index)
        else:
            gap = ((begin - when).dt.total_seconds().clip(lower=0)
                   + (when - end).dt.total_seconds().clip(lower=0)).fillna(0.0)
        best = cand.assign(_gap=gap.values).sort_values(["_gap", "id"]).iloc[0]
        chosen.append(str(best["id"]))
    return tuple(chosen)


def _key_text(key) -> str:
    return key.isoformat() if isinstance(key, pd.Timestamp) else str(key)


def _unit_start(unit: Unit) -> pd.Timestamp | None:
    """The window start of a windowed unit (its group key), None for a per-item unit."""
    try:
        return pd.Timestamp(unit.group)
    except (ValueError, TypeError):
        return None


@dataclass
class StepReport:
    """What one step should have produced, what is there, and what a run did.

    ``failed`` maps output ids to the recorded error (a :class:`ChainError` message naming the
    inputs); ``blocked`` are the missing units of a cycled step that wait for the previous
    cycle's output (they run in a later wave); ``waiting`` counts input products in windows
    not yet closed; ``seconds`` sums the
    time the units done in this run took on the workers (reading, computing, writing). [s]
    """

    name: str
    output: str
    expected: list[Unit] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    missing: list[Unit] = field(default_factory=list)
    submitted: list[str] = field(default_factory=list)
    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    waiting: int = 0
    seconds: float = 0.0
    blocked: list[Unit] = field(default_factory=list)

    def row(self) -> dict:
        return {"step": self.name, "output": self.output, "expected": len(self.expected),
                "present": len(self.present),
                "missing": len(self.missing) + len(self.blocked),
                "failed": len(self.failed), "waiting": self.waiting,
                "submitted": len(self.submitted), "done": len(self.done),
                "seconds": round(self.seconds, 2)}


@dataclass
class Report:
    """Result of :func:`plan`, :func:`status` or :func:`reconcile`: one :class:`StepReport`
    per step, in chain order."""

    steps: list[StepReport]
    dry_run: bool = True
    seconds: float = 0.0

    @property
    def submitted(self) -> list[str]:
        return [i for s in self.steps for i in s.submitted]

    @property
    def failed(self) -> dict[str, str]:
        return {k: v for s in self.steps for k, v in s.failed.items()}

    @property
    def missing(self) -> list[Unit]:
        return [u for s in self.steps for u in s.missing]

    def table(self) -> pd.DataFrame:
        """One row per step: expected, present, missing, failed, waiting, submitted, done."""
        return pd.DataFrame([s.row() for s in self.steps])

    def __str__(self) -> str:
        lines = [self.table().to_string(index=False)]
        for s in self.steps:
            for out_id, error in s.failed.items():
                lines.append(f"failed {s.name} -> {out_id}: {error.splitlines()[0]}")
        return "\n".join(lines)


def _read_failure(store, output_id: str) -> dict | None:
    return store.get_record(_FAILURES, output_id)


def _write_failure(store, unit: Unit, step: Step, error: str, tb: str) -> None:
    record = {"output_id": unit.output_id, "step": step.name, "version": step.version,
              "inputs": list(unit.inputs), "error": error, "traceback": tb,
              "time": datetime.now(timezone.utc).isoformat()}
    try:
        store.put_record(_FAILURES, unit.output_id, record)
    except OSError as exc:  # a read-only store: the report still has it
        log.warning("cannot record the failure of %s: %s", unit.output_id, exc)


def _clear_failure(store, output_id: str) -> None:
    store.delete_record(_FAILURES, output_id)


def _check_steps(steps: Sequence[Step]) -> list[Step]:
    steps = list(default_steps() if steps is None else steps)
    names = [s.name for s in steps]
    if len(set(names)) != len(names):
        raise ChainError(f"step names must be unique, got {names}")
    return steps


def plan(store, steps: Sequence[Step] | None = None, *, now=None) -> Report:
    """Compare the catalog with what ``steps`` should have produced; write nothing.

    Failures recorded by earlier runs are reported under ``failed`` (and still counted as
    missing: the next :func:`reconcile` tries them again). A windowed step waits for the
    windows where a step writing its input type still has missing units (see :func:`_units`),
    so nothing downstream is made from an incomplete or failed set.

    Parameters
    ----------
    now : datetime-like, optional
        The clock the windows are closed against (default: the current UTC time; a replay of
        archived data can pass its simulated time).
    """
    steps = _check_steps(steps)
    now = pd.Timestamp(now or datetime.now(timezone.utc))
    index = store.index()
    present_ids = set(index["id"].astype(str))
    first = {step.name: _units(step, index, now) for step in steps}
    pending: dict[str, list[pd.Timestamp | None]] = {}  # product type -> missing unit starts
    for step in steps:
        pending.setdefault(step.output, []).extend(
            _unit_start(u) for u in first[step.name][0] if u.output_id not in present_ids)
    reports = []
    for step in steps:
        held = pending.get(step.input.product_type, [])
        if held and GROUPINGS[step.input.group_by] is not None:
            units, waiting = _units(step, index, now, held)
        else:
            units, waiting = first[step.name]
        rep = StepReport(step.name, step.output, expected=units, waiting=waiting)
        for unit in units:
            if unit.output_id in present_ids:
                rep.present.append(unit.output_id)
            elif unit.previous is not None and unit.previous not in present_ids:
                rep.blocked.append(unit)  # waits for the previous cycle's output
            else:
                rep.missing.append(unit)
                record = _read_failure(store, unit.output_id)
                if record is not None:
                    rep.failed[unit.output_id] = record["error"]
        reports.append(rep)
    return Report(reports, dry_run=True)


def status(store, steps: Sequence[Step] | None = None, *, now=None) -> Report:
    """Per step: expected, present, missing, failed (the same as :func:`plan`; ``now`` is the
    clock windows close by, default the wall clock)."""
    return plan(store, steps, now=now)


def status_by_day(store, steps: Sequence[Step] | None = None, *, now=None) -> pd.DataFrame:
    """Per UTC day of the data and per step: units done, pending (missing, not failed) and
    failed, and input products waiting in open windows are left out (``status`` counts them).

    A unit's day is that of the earliest start time among its inputs (``unknown`` where the
    inputs have none).
    """
    report = plan(store, steps, now=now)
    index = store.index()
    starts = dict(zip(index["id"].astype(str), pd.to_datetime(index["start"], utc=True),
                      strict=True))
    rows = []
    for s in report.steps:
        present, failed = set(s.present), set(s.failed)
        for unit in s.expected:
            times = [starts[i] for i in unit.inputs if i in starts and not pd.isna(starts[i])]
            day = min(times).strftime("%Y-%m-%d") if times else "unknown"
            state = ("done" if unit.output_id in present else
                     "failed" if unit.output_id in failed else "pending")
            rows.append({"day": day, "step": s.name, "state": state})
    columns = ["day", "step", "done", "pending", "failed"]
    if not rows:
        return pd.DataFrame(columns=columns)
    counts = (pd.DataFrame(rows).groupby(["day", "step", "state"], sort=True).size()
              .unstack("state", fill_value=0))
    counts = counts.reindex(columns=["done", "pending", "failed"], fill_value=0).reset_index()
    order = {s.name: k for k, s in enumerate(report.steps)}
    counts = counts.sort_values(["day", "step"], key=lambda c: c.map(order) if c.name == "step"
                                else c)
    return counts[columns].reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# Running a unit (on a Dask worker)
# --------------------------------------------------------------------------------------------


def run_unit(store_url: str, storage_options: dict, step: Step, unit: Unit, *,
             delay: float = 0.0) -> dict:
    """Compute and commit one unit's output; runs on a Dask worker.

    The store is reopened from its URL (the worker may be another process or machine). When
    the output already exists (another reconciler made it) nothing is computed. A retry waits
    ``delay`` seconds first (the back-off).

    Raises
    ------
    ChainError
        An input cannot be read (naming it), or the step function failed (naming the inputs).
    """
    import dask
    import xarray as xr

    from hubkit.store import Store

    if delay > 0:
        time.sleep(delay)
    t0 = time.perf_counter()
    store = Store(store_url, **storage_options)
    try:
        store.get_item(unit.output_id)
        return {"id": unit.output_id, "status": "present",
                "seconds": time.perf_counter() - t0}
    except StoreError:
        pass
    with dask.config.set(scheduler="sync"):  # the task is the unit of parallelism
        datasets = []
        for input_id in unit.inputs:
            try:
                data = store.open(input_id)
                if isinstance(data, xr.Dataset):
                    data = data.load()
            except Exception as exc:
                raise ChainError(
                    f"step {step.name!r}: input {input_id} cannot be read from {store.url}: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            datasets.append(data)
        extra = {}
        if step.input.previous:
            extra["previous"] = datasets.pop() if unit.previous is not None else None
        try:
            out = step.function(datasets, **extra, **dict(step.parameters))
        except Exception as exc:
            raise ChainError(
                f"step {step.name!r} v{step.version} failed on inputs {list(unit.inputs)}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        simulated = [i for i, d in zip(unit.inputs, datasets + [extra.get("previous")],
                                       strict=False) if _is_simulated(d)]
        if simulated and not _is_simulated(out):
            out.attrs["hubkit_simulated"] = "true"  # made from simulated input: labelled
            out.attrs.setdefault("hubkit_simulated_inputs", ", ".join(simulated))
        natures = {getattr(d, "attrs", {}).get("hubkit_nature_run")
                   for d in datasets + [extra.get("previous")]} - {None}
        if len(natures) == 1 and "hubkit_nature_run" not in out.attrs:
            out.attrs["hubkit_nature_run"] = natures.pop()  # the truth it can be scored on
        common = dict(product_type=step.output, inputs=list(unit.inputs), step=step.name,
                      step_version=step.version, parameters=dict(step.parameters))
        if isinstance(out, pd.DataFrame):
            item = store.put_table(out, **common)
        elif isinstance(out, xr.Dataset):
            item = store.put(out, **common)
        else:
            raise ChainError(
                f"step {step.name!r}: the function returned {type(out).__name__}, expected an "
                "xarray.Dataset or a pandas.DataFrame"
            )
    if item.id != unit.output_id:  # the planner and the store disagree on the identity
        raise ChainError(f"step {step.name!r}: stored {item.id}, expected {unit.output_id}")
    return {"id": item.id, "status": "done", "seconds": time.perf_counter() - t0}


def _is_simulated(data) -> bool:
    """A product made from simulated input carries ``hubkit_simulated = "true"``."""
    return str(getattr(data, "attrs", {}).get("hubkit_simulated", "")).lower() == "true"


# --------------------------------------------------------------------------------------------
# Reconciling
# --------------------------------------------------------------------------------------------


def _submit_wave(store, client, steps: list[Step], report: Report,
                 progress: bool = False) -> int:
    """Submit every missing unit, wait for all, retry failures with back-off, record outcomes.
    Returns the number of units done. With ``progress``, one tqdm bar per step counts its
    units as they finish (done or failed for good)."""
    from distributed import as_completed
    from tqdm.auto import tqdm

    def submit(step, unit, attempt):
        delay = step.backoff * 2 ** (attempt - 1) if attempt else 0.0
        return client.submit(
            run_unit, store.url, store.storage_options, step, unit, delay=delay,
            key=f"hubkit-chain-{unit.output_id}-{time.time_ns()}", pure=False,
            resources=dict(step.resources) or None,
        )

    by_name = {s.name: s for s in steps}
    futures = {}
    for rep in report.steps:
        step = by_name[rep.name]
        for unit in rep.missing:
            futures[submit(step, unit, 0)] = (rep, step, unit, 0)
            rep.submitted.append(unit.output_id)
    bars = {}
    for rep in report.steps:
        if rep.missing and progress:
            bars[rep.name] = tqdm(total=len(rep.missing), desc=f"{rep.name:<18}", unit="unit",
                                  position=len(bars), leave=True, dynamic_ncols=True)
    n_done = 0
    pending = as_completed(list(futures))
    for fut in pending:
        rep, step, unit, attempt = futures.pop(fut)
        try:
            result = fut.result()
        except Exception as exc:
            if attempt < step.retries:
                log.info("retrying %s (attempt %d): %s", unit.output_id, attempt + 2, exc)
                retry = submit(step, unit, attempt + 1)
                futures[retry] = (rep, step, unit, attempt + 1)
                pending.add(retry)
                continue
            error = str(exc) if isinstance(exc, HubkitError) else (
                f"step {step.name!r} on inputs {list(unit.inputs)}: {type(exc).__name__}: {exc}"
            )
            tb = "".join(traceback.format_exception(exc))
            rep.failed[unit.output_id] = error
            _write_failure(store, unit, step, error, tb)
            log.warning("%s", error)
            if rep.name in bars:
                bars[rep.name].set_postfix(failed=len(rep.failed), refresh=False)
                bars[rep.name].update()
        else:
            n_done += 1
            rep.done.append(unit.output_id)
            rep.seconds += float(result.get("seconds", 0.0))
            rep.failed.pop(unit.output_id, None)
            _clear_failure(store, unit.output_id)
            if rep.name in bars:
                bars[rep.name].update()
        finally:
            fut.release()
    for bar in bars.values():
        bar.close()
    return n_done


def reconcile(store, steps: Sequence[Step] | None = None, client=None, *,
              dry_run: bool = False, max_waves: int | None = None, now=None,
              progress: bool = False) -> Report:
    """Make the catalog hold every product ``steps`` should have produced from it.

    Computes the expected output of every unit (:func:`plan`), submits the missing ones to Dask
    (one task per unit), and waits. Outputs of one wave can be inputs of later steps, so it
    plans again until a wave produces nothing new (at most ``max_waves``; by default until then:
    a cycled step makes one cycle per wave, each from the previous one's output). Safe to run
    at any time: what exists is never recomputed, and a unit whose output
    another run committed meanwhile is skipped by the task itself.

    Parameters
    ----------
    store : hubkit.store.Store
    steps : sequence of Step, optional
        Default: :func:`default_steps`.
    client : distributed.Client, optional
        Default: :func:`hubkit.compute.client`, started only when there is work, closed after.
    dry_run : bool
        Only plan: list what is missing, submit and write nothing.
    now : datetime-like, optional
        The clock windows are closed against (default: the current UTC time).
    progress : bool
        Show a progress bar per step (tqdm, on stderr) over its units as they complete.

    Returns
    -------
    Report
        The plan of the first wave, with ``submitted``, ``done`` and ``failed`` of all waves.
        A failed unit is recorded in the store (``hubkit chain status`` shows it) without
        stopping the others.
    """
    steps = _check_steps(steps)
    t0 = time.perf_counter()
    report = plan(store, steps, now=now)
    report.dry_run = dry_run
    if dry_run or not report.missing:
        report.seconds = time.perf_counter() - t0
        return report
    own = client is None
    if own:
        from hubkit import compute

        client = compute.client()
    try:
        tried: set[str] = set()
        current = report
        for _wave in (range(max_waves) if max_waves else itertools.count()):
            for rep in current.steps:  # a unit is tried once per reconcile
                rep.missing = [u for u in rep.missing if u.output_id not in tried]
            if not current.missing:
                break
            tried.update(u.output_id for u in current.missing)
            done = _submit_wave(store, client, steps, current, progress)
            if current is not report:
                _merge(report, current)
            if not done:
                break
            current = plan(store, steps, now=now)
    finally:
        if own:
            client.close()
    final = plan(store, steps, now=now)
    for rep, fin in zip(report.steps, final.steps, strict=True):
        rep.present, rep.expected, rep.waiting = fin.present, fin.expected, fin.waiting
        rep.missing, rep.blocked = fin.missing, fin.blocked
        rep.failed = {k: v for k, v in rep.failed.items()
                      if k in {u.output_id for u in fin.missing}}
    report.seconds = time.perf_counter() - t0
    return report


def _merge(report: Report, wave: Report) -> None:
    for rep, new in zip(report.steps, wave.steps, strict=True):
        rep.submitted.extend(new.submitted)
        rep.done.extend(new.done)
        rep.seconds += new.seconds
        rep.failed.update(new.failed)


def _round_errors() -> tuple[type[BaseException], ...]:
    """Errors of one watch round that the next round may not have: store or network trouble."""
    errors: list[type[BaseException]] = [HubkitError, OSError]
    try:
        from botocore.exceptions import BotoCoreError

        errors.append(BotoCoreError)
    except ImportError:  # pragma: no cover - botocore comes with s3fs
        pass
    return tuple(errors)


_ROUND_ERRORS = _round_errors()


def watch(store, steps: Sequence[Step] | None = None, interval: float = 30.0, client=None, *,
          max_rounds: int | None = None, on_report: Callable[[Report], None] | None = None,
          sleep: Callable[[float], None] = time.sleep,
          now: Callable[[], object] | None = None) -> int:
    """Reconcile every ``interval`` seconds until interrupted (the operational mode).

    Nothing is kept between rounds but the catalog, so a restarted watcher carries on where
    the last one stopped. A round that fails on the store (a :class:`HubkitError`, or an
    ``OSError``/botocore error of an unreachable object store) is logged and the next round
    tries again.

    Parameters
    ----------
    interval : float
        Pause between the end of one round and the start of the next. [s]
    client : distributed.Client, optional
        Used for every round; default one :func:`hubkit.compute.client` for the whole watch.
    max_rounds : int, optional
        Stop after this many rounds (tests, batch jobs); default: run until interrupted.
    on_report : callable, optional
        Called with each round's :class:`Report` (the CLI prints it).
    now : callable, optional
        Clock of each round (returns what :func:`reconcile`'s ``now`` takes), for replaying
        archived data: windows then close by the replayed time, not the wall clock.

    Returns
    -------
    int
        Rounds run.
    """
    if interval < 0:
        raise ValueError(f"watch: interval={interval!r}, expected a pause >= 0 [s]")
    steps = _check_steps(steps)
    own = client is None
    if own:
        from hubkit import compute

        client = compute.client()
    rounds = 0
    try:
        while max_rounds is None or rounds < max_rounds:
            try:
                report = reconcile(store, steps, client, now=now() if now else None)
            except _ROUND_ERRORS as exc:
                log.warning("chain round failed: %s: %s", type(exc).__name__, exc)
            else:
                if on_report is not None:
                    on_report(report)
            rounds += 1
            if max_rounds is None or rounds < max_rounds:
                sleep(interval)
    finally:
        if own:
            client.close()
    return rounds
