"""Planning: what the steps should have produced from the catalog, what is there, what is
missing or failed (and the store records of failures)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

import pandas as pd

from hubkit.chain.spec import GROUPINGS, Step, Unit
from hubkit.chain.steps import default_steps
from hubkit.errors import ChainError

__all__ = ["Report", "StepReport", "plan", "status", "status_by_day"]

log = logging.getLogger(__name__)

FAILURES = "chain-failures"  # kind of the store records that log failed units


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
        companions = _companions(step, index, rows, ids)
        if step.input.companions and not companions:
            continue  # nothing to compare with (yet)
        inputs = tuple(sorted(ids)) + _auxiliary(step, index, rows, ids) + companions
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


def _companions(step: Step, index: pd.DataFrame, rows: pd.DataFrame, ids) -> tuple[str, ...]:
    """Ids of the products to compare a unit made of ``ids`` with (:attr:`Query.companions`):
    every one whose time range overlaps the unit's, widened by ``companion_slack``."""
    if not step.input.companions:
        return ()
    mine = rows[rows["id"].astype(str).isin(list(ids))]
    begin = pd.to_datetime(mine["start"], utc=True).min()
    end = pd.to_datetime(mine["end"], utc=True).fillna(pd.to_datetime(mine["start"], utc=True))
    end = end.max()
    if pd.isna(begin):
        return ()
    slack = pd.Timedelta(seconds=step.input.companion_slack)
    cand = index[index["collection"].isin(step.input.companions)]
    c_begin = pd.to_datetime(cand["start"], utc=True)
    c_end = pd.to_datetime(cand["end"], utc=True).fillna(c_begin)
    overlap = (c_begin <= end + slack) & (c_end >= begin - slack)
    return tuple(sorted(cand.loc[overlap.fillna(False).to_numpy(bool), "id"].astype(str)))


def _key_text(key) -> str:
    return key.isoformat() if isinstance(key, pd.Timestamp) else str(key)


def unit_start(unit: Unit) -> pd.Timestamp | None:
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
    cycle's output (they are submitted when it is committed); ``waiting`` counts input products
    in windows not yet closed; ``seconds`` sums the time the units done in this run took on the
    workers (reading, computing, writing). [s]
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
        """This step's row of :meth:`Report.table`: names, unit counts and seconds."""
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
        """The output ids submitted in this run, over all steps."""
        return [i for s in self.steps for i in s.submitted]

    @property
    def failed(self) -> dict[str, str]:
        """The recorded errors by output id, over all steps."""
        return {k: v for s in self.steps for k, v in s.failed.items()}

    @property
    def missing(self) -> list[Unit]:
        """The missing units (blocked ones left out), over all steps."""
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


def read_failure(store, output_id: str) -> dict | None:
    return store.get_record(FAILURES, output_id)


def write_failure(store, unit: Unit, step: Step, error: str, tb: str) -> None:
    record = {"output_id": unit.output_id, "step": step.name, "version": step.version,
              "inputs": list(unit.inputs), "error": error, "traceback": tb,
              "time": datetime.now(timezone.utc).isoformat()}
    try:
        store.put_record(FAILURES, unit.output_id, record)
    except OSError as exc:  # a read-only store: the report still has it
        log.warning("cannot record the failure of %s: %s", unit.output_id, exc)


def clear_failure(store, output_id: str) -> None:
    store.delete_record(FAILURES, output_id)


def check_steps(steps: Sequence[Step]) -> list[Step]:
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
    store : hubkit.store.Store
        Whose catalog and failure records are read.
    steps : sequence of Step, optional
        Default: :func:`default_steps`.
    now : datetime-like, optional
        The clock the windows are closed against (default: the current UTC time; a replay of
        archived data can pass its simulated time).
    """
    steps = check_steps(steps)
    now = pd.Timestamp(now or datetime.now(timezone.utc))
    index = store.index()
    present_ids = set(index["id"].astype(str))
    first = {step.name: _units(step, index, now) for step in steps}
    pending: dict[str, list[pd.Timestamp | None]] = {}  # product type -> missing unit starts
    for step in steps:
        pending.setdefault(step.output, []).extend(
            unit_start(u) for u in first[step.name][0] if u.output_id not in present_ids)
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
                record = read_failure(store, unit.output_id)
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
