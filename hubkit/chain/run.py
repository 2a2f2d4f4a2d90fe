"""Running the chain: one unit on a Dask worker, the level-triggered reconciler, watch mode."""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable, Sequence

import pandas as pd

from hubkit.chain.plan import (
    Report,
    check_steps,
    clear_failure,
    plan,
    unit_start,
    write_failure,
)
from hubkit.chain.spec import GROUPINGS, Step, Unit
from hubkit.errors import ChainError, ChainSpecError, HubkitError, StoreError

__all__ = ["reconcile", "run_unit", "watch"]

log = logging.getLogger(__name__)


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


def _upstream(steps: list[Step]) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Per step, the steps above its input type: two or more links up (windowed steps only),
    and at any distance.

    A windowed unit is made from whatever inputs its window holds once the steps writing its
    input type have no missing unit there (:func:`~hubkit.chain.plan.plan`). A step further
    up may still be running a unit whose output will give such a writer a new unit in the
    window, one the plan cannot see yet. The reconciler used to plan between waves, when
    nothing ran, so this never arose; planning while units run, a windowed step waits until
    none of these is running.
    """
    writers: dict[str, set[str]] = {}
    for s in steps:
        writers.setdefault(s.output, set()).add(s.name)
    feeds = {s.name: writers.get(s.input.product_type, set()) for s in steps}
    far, every = {}, {}
    for s in steps:
        above: set[str] = set()
        frontier = set(feeds[s.name])
        seen = set(frontier)
        while frontier:  # breadth first; steps at distance >= 2 collected
            nxt = {u for name in frontier for u in feeds[name]} - seen
            above |= {u for name in frontier for u in feeds[name]}
            seen |= nxt
            frontier = nxt
        every[s.name] = seen
        if GROUPINGS[s.input.group_by] is not None:
            far[s.name] = above
    return far, every


def _cold_too_early(unit: Unit, step: Step, above: set[str],
                    running: dict[str, dict[str, Unit]]) -> bool:
    """A cycled unit planned without a previous cycle (a cold start) while a unit above it
    in an earlier window (or in none) still runs: the previous window may only be waiting
    for that unit, and is then no gap. Planned between waves it could not happen."""
    if not step.input.previous or unit.previous is not None:
        return False
    start = unit_start(unit)
    for name in above:
        for other in running.get(name, {}).values():
            when = unit_start(other)
            if start is None or when is None or when < start:
                return True
    return False


def _consumed(steps: list[Step]) -> set[str]:
    """The names of the steps whose output another step (or a later cycle of itself) reads:
    only their completions can make new units, so only they call for planning again."""
    read = {t for s in steps for t in (s.input.product_type, *s.input.auxiliary,
                                        *s.input.companions)}
    return {s.name for s in steps if s.output in read or s.input.previous}


def _run_units(store, client, steps: list[Step], report: Report, *, now=None,
               max_plans: int | None = None, progress: bool = False) -> None:
    """Submit the missing units of ``report``, then each unit as soon as it is ready.

    Whenever a unit whose output some step reads is committed (and no other completion is
    already waiting to be handled), the catalog is planned again and the units that became
    ready are submitted at once, while the others still run: an assimilation cycle starts when
    its own hours are fused, not when every hour is, and no step waits for an unrelated one
    to finish. A unit is submitted once per call (its retries aside); failures are retried
    with back-off, then recorded. ``submitted``, ``done``, ``failed`` and ``seconds`` of
    ``report``'s step reports are filled in; at most ``max_plans`` plans (the first one
    included) submit work. With ``progress``, one bar per step counts its units as they
    finish (done or failed for good); its total grows as units are submitted.
    """
    from distributed import as_completed

    from hubkit.progress import progress_bar

    by_name = {s.name: s for s in steps}
    reps = {rep.name: rep for rep in report.steps}
    upstream, above = _upstream(steps)
    consumed = _consumed(steps)
    tried: set[str] = set()
    running: dict[str, dict[str, Unit]] = {}  # step -> units submitted, not finished for good
    futures: dict = {}
    bars: dict = {}
    pending = as_completed()

    def submit(step, unit, attempt):
        delay = step.backoff * 2 ** (attempt - 1) if attempt else 0.0
        fut = client.submit(
            run_unit, store.url, store.storage_options, step, unit, delay=delay,
            key=f"hubkit-chain-{unit.output_id}-{time.time_ns()}", pure=False,
            resources=dict(step.resources) or None,
            # a cycled step's units are the chain's critical path: run before queued others
            priority=1 if step.input.previous else 0,
        )
        futures[fut] = (reps[step.name], step, unit, attempt)
        pending.add(fut)

    def submit_ready(planned: Report) -> int:
        n = 0
        for new in planned.steps:
            step, rep = by_name[new.name], reps[new.name]
            if any(running.get(u) for u in upstream.get(step.name, ())):
                continue  # a unit further up may still add to its windows: plan it later
            units = [u for u in new.missing if u.output_id not in tried
                     and not _cold_too_early(u, step, above[step.name], running)]
            for unit in units:
                tried.add(unit.output_id)
                submit(step, unit, 0)
                rep.submitted.append(unit.output_id)
            running.setdefault(step.name, {}).update((u.output_id, u) for u in units)
            n += len(units)
            if units and progress:
                if step.name not in bars:
                    bars[step.name] = progress_bar(total=0, desc=f"{step.name:<18}",
                                                   unit="unit", position=len(bars))
                bars[step.name].total += len(units)
                if hasattr(bars[step.name], "refresh"):
                    bars[step.name].refresh()
        return n

    plans = 1 if submit_ready(report) else 0
    replan = False
    while not pending.is_empty():
        fut = next(pending)
        rep, step, unit, attempt = futures.pop(fut)
        try:
            result = fut.result()
        except Exception as exc:
            if attempt < step.retries:
                log.info("retrying %s (attempt %d): %s", unit.output_id, attempt + 2, exc)
                submit(step, unit, attempt + 1)
                continue
            error = str(exc) if isinstance(exc, HubkitError) else (
                f"step {step.name!r} on inputs {list(unit.inputs)}: {type(exc).__name__}: {exc}"
            )
            tb = "".join(traceback.format_exception(exc))
            rep.failed[unit.output_id] = error
            write_failure(store, unit, step, error, tb)
            log.warning("%s", error)
            if step.name in bars:
                bars[step.name].set_postfix(failed=len(rep.failed), refresh=False)
                bars[step.name].update()
            replan |= step.name in consumed  # a step it held back may now be planned
        else:
            rep.done.append(unit.output_id)
            rep.seconds += float(result.get("seconds", 0.0))
            rep.failed.pop(unit.output_id, None)
            clear_failure(store, unit.output_id)
            if step.name in bars:
                bars[step.name].update()
            replan |= step.name in consumed
        finally:
            fut.release()
        running[step.name].pop(unit.output_id, None)
        # plan again once the completions at hand are handled (one plan for a burst)
        if replan and not pending.has_ready() and (max_plans is None or plans < max_plans):
            replan = False
            if submit_ready(plan(store, steps, now=now)):
                plans += 1
    for bar in bars.values():
        bar.close()


def reconcile(store, steps: Sequence[Step] | None = None, client=None, *,
              dry_run: bool = False, max_waves: int | None = None, now=None,
              progress: bool = False) -> Report:
    """Make the catalog hold every product ``steps`` should have produced from it.

    Computes the expected output of every unit (:func:`plan`), submits the missing ones to Dask
    (one task per unit), and waits. Outputs of one unit can be inputs of later steps, so each
    time a unit whose output some step reads is committed it plans again and submits what
    became ready, while the rest runs (an assimilation cycle starts once its own hours are
    fused; a cycled step's units go before other queued ones), until nothing is running. Safe
    to run at any time: what exists is never recomputed, and a unit whose output another run
    committed meanwhile is skipped by the task itself.

    Parameters
    ----------
    store : hubkit.store.Store
        Whose catalog is read and where the outputs and failure records are written.
    steps : sequence of Step, optional
        Default: :func:`default_steps`.
    client : distributed.Client, optional
        Default: :func:`hubkit.compute.client`, started only when there is work, closed after.
    dry_run : bool
        Only plan: list what is missing, submit and write nothing.
    max_waves : int, optional
        Most plans that submit work (the first one included; 1: only what is missing now);
        default: until nothing more becomes ready.
    now : datetime-like, optional
        The clock windows are closed against (default: the current UTC time).
    progress : bool
        Show a progress bar per step (tqdm, on stderr) over its units as they complete.

    Returns
    -------
    Report
        The first plan, with ``submitted``, ``done`` and ``failed`` of the whole run.
        A failed unit is recorded in the store (``hubkit chain status`` shows it) without
        stopping the others.
    """
    steps = check_steps(steps)
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
        _run_units(store, client, steps, report, now=now, max_plans=max_waves,
                   progress=progress)
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
    store : hubkit.store.Store
        Reconciled each round (see :func:`reconcile`).
    steps : sequence of Step, optional
        Default: :func:`default_steps`.
    interval : float
        Pause between the end of one round and the start of the next. [s]
    client : distributed.Client, optional
        Used for every round; default one :func:`hubkit.compute.client` for the whole watch.
    max_rounds : int, optional
        Stop after this many rounds (tests, batch jobs); default: run until interrupted.
    on_report : callable, optional
        Called with each round's :class:`Report` (the CLI prints it).
    sleep : callable
        Called with ``interval`` to pause between rounds (tests pass one that returns at
        once); default :func:`time.sleep`.
    now : callable, optional
        Clock of each round (returns what :func:`reconcile`'s ``now`` takes), for replaying
        archived data: windows then close by the replayed time, not the wall clock.

    Returns
    -------
    int
        Rounds run.
    """
    if interval < 0:
        raise ChainSpecError(f"watch: interval={interval!r}, expected a pause >= 0 [s]")
    steps = check_steps(steps)
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
