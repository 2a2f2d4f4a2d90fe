"""Running the chain: one unit on a Dask worker, the level-triggered reconciler, watch mode."""

from __future__ import annotations

import itertools
import logging
import time
import traceback
from collections.abc import Callable, Sequence

import pandas as pd

from hubkit.chain.plan import Report, check_steps, clear_failure, plan, write_failure
from hubkit.chain.spec import Step, Unit
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


def _submit_wave(store, client, steps: list[Step], report: Report,
                 progress: bool = False) -> int:
    """Submit every missing unit, wait for all, retry failures with back-off, record outcomes.
    Returns the number of units done. With ``progress``, one bar per step counts its
    units as they finish (done or failed for good)."""
    from distributed import as_completed

    from hubkit.progress import progress_bar

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
            bars[rep.name] = progress_bar(total=len(rep.missing), desc=f"{rep.name:<18}",
                                          unit="unit", position=len(bars))
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
            write_failure(store, unit, step, error, tb)
            log.warning("%s", error)
            if rep.name in bars:
                bars[rep.name].set_postfix(failed=len(rep.failed), refresh=False)
                bars[rep.name].update()
        else:
            n_done += 1
            rep.done.append(unit.output_id)
            rep.seconds += float(result.get("seconds", 0.0))
            rep.failed.pop(unit.output_id, None)
            clear_failure(store, unit.output_id)
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
        Whose catalog is read and where the outputs and failure records are written.
    steps : sequence of Step, optional
        Default: :func:`default_steps`.
    client : distributed.Client, optional
        Default: :func:`hubkit.compute.client`, started only when there is work, closed after.
    dry_run : bool
        Only plan: list what is missing, submit and write nothing.
    max_waves : int, optional
        Most waves to submit; default: until a wave produces nothing new.
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
