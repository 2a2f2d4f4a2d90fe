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
- each ``oco2-soundings`` item → ``oco2-peaks`` (:func:`hubkit.co2.find_peaks`,
  :func:`hubkit.co2.peaks_table`);
- each ``das`` item → ``troc`` (:func:`hubkit.ozone.tropospheric_ozone`).

TODO: wire in fused-ozone → das per 12-h cycle (assimilation, issue 5) and das → uv (surface UV,
issue 6) when those modules provide a product-level function; until then the chain has no step
for them (nothing is faked).

References
----------
.. [1] Gai et al., Remote Sens. 13, 210, 2021. doi:10.3390/rs13020210
"""

from __future__ import annotations

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
#: falls in the same UTC hour / day. The value is the width of a window (None: no window).
GROUPINGS: dict[str, pd.Timedelta | None] = {
    "item": None,
    "hour": pd.Timedelta(hours=1),
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
        One of :data:`GROUPINGS`: ``"item"`` (one unit per product), ``"hour"`` or ``"day"``
        (all products whose start time falls in that UTC window form one unit).
    settle : float
        A window is closed, and its unit ready, only once its end is this long past. [s]
        Products without a start time are always their own unit.
    """

    product_type: str
    group_by: str = "item"
    settle: float = 0.0

    def __post_init__(self):
        if self.group_by not in GROUPINGS:
            raise ValueError(
                f"Query.group_by={self.group_by!r}: expected one of {sorted(GROUPINGS)}"
            )
        if self.settle < 0:
            raise ValueError(f"Query.settle={self.settle!r}: expected a delay >= 0 [s]")

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


# --------------------------------------------------------------------------------------------
# The default chain
# --------------------------------------------------------------------------------------------


def _concat(datasets, dim: str):
    import xarray as xr

    if len(datasets) == 1:
        return datasets[0]
    return xr.concat(datasets, dim=dim, data_vars="all", coords="different", compat="equals",
                     join="outer", combine_attrs="drop_conflicts")


def fuse_hour(datasets, *, cell=(1.0, 1.0, 3600.0)):
    """Step function: fuse the ``l2-ozone`` products of one hour (:func:`fusion.fuse_product`).

    Parameters
    ----------
    datasets : list of xarray.Dataset
        ``l2-ozone`` products, concatenated along ``retrieval``.
    cell : sequence of float
        Box size ``(Δlatitude [°], Δlongitude [°], Δtime [s])``.
    """
    from hubkit import fusion

    return fusion.fuse_product(_concat(datasets, "retrieval"), cell=tuple(cell))


def detect_peaks(datasets, **options):
    """Step function: the ``oco2-peaks`` table of one ``oco2-soundings`` product.

    ``options`` are :class:`hubkit.co2.PeakOptions` fields (defaults when empty).
    """
    from hubkit import co2

    ds = _concat(datasets, "sounding")
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


def default_steps() -> list[Step]:
    """The chain as far as its science modules exist (see the module docstring's TODO)."""
    return [
        Step("fusion.cdf", "1", Query("l2-ozone", "hour"), "fused-ozone", fuse_hour,
             parameters={"cell": [1.0, 1.0, 3600.0]}),
        Step("co2.peaks", "1", Query("oco2-soundings", "item"), "oco2-peaks", detect_peaks),
        Step("ozone.troc", "1", Query("das", "item"), "troc", troc,
             parameters={"fixed_altitude": 6000.0}),
    ]


# --------------------------------------------------------------------------------------------
# Planning: what should exist
# --------------------------------------------------------------------------------------------


def _units(step: Step, index: pd.DataFrame, now: pd.Timestamp) -> tuple[list[Unit], int]:
    """The units of ``step`` over the catalog ``index``, and how many windows are still open."""
    rows = index[index["collection"] == step.input.product_type]
    width = GROUPINGS[step.input.group_by]
    groups: dict[str, list[str]] = {}
    waiting = 0
    for item_id, start in zip(rows["id"].astype(str), rows["start"], strict=True):
        if width is None or pd.isna(start):
            groups.setdefault(item_id, []).append(item_id)
            continue
        begin = pd.Timestamp(start).floor(width)
        if begin + width + pd.Timedelta(seconds=step.input.settle) > now:
            waiting += 1
            continue
        groups.setdefault(begin.isoformat(), []).append(item_id)
    units = [
        Unit(step.name, key, tuple(sorted(ids)), step.output_id(ids))
        for key, ids in sorted(groups.items())
    ]
    return units, waiting


@dataclass
class StepReport:
    """What one step should have produced, what is there, and what a run did.

    ``failed`` maps output ids to the recorded error (a :class:`ChainError` message naming the
    inputs); ``waiting`` counts input products in windows not yet closed.
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

    def row(self) -> dict:
        return {"step": self.name, "output": self.output, "expected": len(self.expected),
                "present": len(self.present), "missing": len(self.missing),
                "failed": len(self.failed), "waiting": self.waiting,
                "submitted": len(self.submitted), "done": len(self.done)}


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
    missing: the next :func:`reconcile` tries them again).
    """
    steps = _check_steps(steps)
    now = pd.Timestamp(now or datetime.now(timezone.utc))
    index = store.index()
    present_ids = set(index["id"].astype(str))
    reports = []
    for step in steps:
        units, waiting = _units(step, index, now)
        rep = StepReport(step.name, step.output, expected=units, waiting=waiting)
        for unit in units:
            if unit.output_id in present_ids:
                rep.present.append(unit.output_id)
            else:
                rep.missing.append(unit)
                record = _read_failure(store, unit.output_id)
                if record is not None:
                    rep.failed[unit.output_id] = record["error"]
        reports.append(rep)
    return Report(reports, dry_run=True)


def status(store, steps: Sequence[Step] | None = None) -> Report:
    """Per step: expected, present, missing, failed (the same as :func:`plan`)."""
    return plan(store, steps)


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
    store = Store(store_url, **storage_options)
    try:
        store.get_item(unit.output_id)
        return {"id": unit.output_id, "status": "present"}
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
        try:
            out = step.function(datasets, **dict(step.parameters))
        except Exception as exc:
            raise ChainError(
                f"step {step.name!r} v{step.version} failed on inputs {list(unit.inputs)}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
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
    return {"id": item.id, "status": "done"}


# --------------------------------------------------------------------------------------------
# Reconciling
# --------------------------------------------------------------------------------------------


def _submit_wave(store, client, steps: list[Step], report: Report) -> int:
    """Submit every missing unit, wait for all, retry failures with back-off, record outcomes.
    Returns the number of units done."""
    from distributed import as_completed

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
    n_done = 0
    pending = as_completed(list(futures))
    for fut in pending:
        rep, step, unit, attempt = futures.pop(fut)
        try:
            fut.result()
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
        else:
            n_done += 1
            rep.done.append(unit.output_id)
            rep.failed.pop(unit.output_id, None)
            _clear_failure(store, unit.output_id)
        finally:
            fut.release()
    return n_done


def reconcile(store, steps: Sequence[Step] | None = None, client=None, *,
              dry_run: bool = False, max_waves: int | None = None) -> Report:
    """Make the catalog hold every product ``steps`` should have produced from it.

    Computes the expected output of every unit (:func:`plan`), submits the missing ones to Dask
    (one task per unit), and waits. Outputs of one wave can be inputs of later steps, so it
    plans again until a wave produces nothing new (at most ``max_waves``, default the number of
    steps). Safe to run at any time: what exists is never recomputed, and a unit whose output
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

    Returns
    -------
    Report
        The plan of the first wave, with ``submitted``, ``done`` and ``failed`` of all waves.
        A failed unit is recorded in the store (``hubkit chain status`` shows it) without
        stopping the others.
    """
    steps = _check_steps(steps)
    t0 = time.perf_counter()
    report = plan(store, steps)
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
        for _wave in range(max_waves or len(steps)):
            for rep in current.steps:  # a unit is tried once per reconcile
                rep.missing = [u for u in rep.missing if u.output_id not in tried]
            if not current.missing:
                break
            tried.update(u.output_id for u in current.missing)
            done = _submit_wave(store, client, steps, current)
            if current is not report:
                _merge(report, current)
            if not done:
                break
            current = plan(store, steps)
    finally:
        if own:
            client.close()
    final = plan(store, steps)
    for rep, now in zip(report.steps, final.steps, strict=True):
        rep.present, rep.expected, rep.waiting = now.present, now.expected, now.waiting
        rep.missing = now.missing
        rep.failed = {k: v for k, v in rep.failed.items()
                      if k in {u.output_id for u in now.missing}}
    report.seconds = time.perf_counter() - t0
    return report


def _merge(report: Report, wave: Report) -> None:
    for rep, new in zip(report.steps, wave.steps, strict=True):
        rep.submitted.extend(new.submitted)
        rep.done.extend(new.done)
        rep.failed.update(new.failed)


def watch(store, steps: Sequence[Step] | None = None, interval: float = 30.0, client=None, *,
          max_rounds: int | None = None, on_report: Callable[[Report], None] | None = None,
          sleep: Callable[[float], None] = time.sleep) -> int:
    """Reconcile every ``interval`` seconds until interrupted (the operational mode).

    Nothing is kept between rounds but the catalog, so a restarted watcher carries on where
    the last one stopped. A round that raises a :class:`HubkitError` (store unreachable) is
    logged and the next round tries again.

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
                report = reconcile(store, steps, client)
            except HubkitError as exc:
                log.warning("chain round failed: %s", exc)
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
