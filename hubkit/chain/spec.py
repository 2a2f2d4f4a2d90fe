"""Declarations of the processing chain: how steps read, group and write products."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd

from hubkit import catalog
from hubkit.errors import ChainSpecError

__all__ = ["GROUPINGS", "Query", "Step", "Unit"]

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
    companions : tuple of str
        Inputs to compare with (e.g. ``("tccon-columns",)`` for a validation): every product
        of these types whose time range overlaps the unit's, widened by ``companion_slack``
        on both sides, passed after the auxiliary ones (sorted by id). A unit that finds none
        is not made (nothing to compare with); a new overlapping product makes a new output
        id, so reconciling refreshes the comparison.
    companion_slack : float
        How far beyond the unit's time range a companion may lie. [s]
    """

    product_type: str
    group_by: str = "item"
    settle: float = 0.0
    expected: int | None = None
    previous: bool = False
    auxiliary: tuple[str, ...] = ()
    companions: tuple[str, ...] = ()
    companion_slack: float = 0.0

    def __post_init__(self):
        if self.group_by not in GROUPINGS:
            raise ChainSpecError(
                f"Query.group_by={self.group_by!r}: expected one of {sorted(GROUPINGS)}"
            )
        if self.settle < 0:
            raise ChainSpecError(f"Query.settle={self.settle!r}: expected a delay >= 0 [s]")
        if self.previous and self.group_by == "item":
            raise ChainSpecError("Query.previous needs a windowed grouping (hour, 12h-cycle, day)")
        if self.companion_slack < 0:
            raise ChainSpecError(f"Query.companion_slack={self.companion_slack!r}: expected a "
                                 "delay >= 0 [s]")
        if self.expected is not None and int(self.expected) < 1:
            raise ChainSpecError(f"Query.expected={self.expected!r}: expected a count >= 1 of "
                                 "input products, or None (only time closes a window)")

    def describe(self) -> str:
        """What the query reads, in words (e.g. ``"each oco2-soundings item"``)."""
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
    check : callable, optional
        ``check(step)`` raises :class:`~hubkit.errors.ChainSpecError` when the parameters do
        not fit the step's grouping (e.g. a fusion cell longer than the hour it fuses), so a
        wrong declaration fails when it is made, not on the workers.
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
    check: Callable | None = None

    def __post_init__(self):
        try:
            json.dumps(dict(self.parameters))
        except TypeError as exc:
            raise ChainSpecError(
                f"Step {self.name!r}: parameters must be JSON-serialisable (they are part of the "
                f"output ids and the provenance): {exc}"
            ) from None
        self._check_parameters()
        if self.check is not None:
            self.check(self)

    def _check_parameters(self) -> None:
        """Every parameter is one the function takes (a typo would be part of the output ids
        and fail only on the workers)."""
        try:
            accepted = inspect.signature(self.function).parameters
        except (TypeError, ValueError):  # a callable without a signature: nothing to check
            return
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values()):
            return
        unknown = sorted(set(self.parameters) - set(accepted))
        if unknown:
            names = [n for n, p in accepted.items() if p.kind is inspect.Parameter.KEYWORD_ONLY]
            raise ChainSpecError(
                f"Step {self.name!r}: {getattr(self.function, '__name__', self.function)} takes "
                f"no parameter {', '.join(unknown)}; it takes {', '.join(names) or 'none'}")

    def output_id(self, inputs: Sequence[str]) -> str:
        """The id the output of a unit reading ``inputs`` has, known before it runs."""
        return catalog.computed_identity(self.output, inputs, self.name, self.version,
                                         dict(self.parameters))[0]


@dataclass(frozen=True)
class Unit:
    """One unit of work: a step applied to a group of input products."""

    step: str
    group: str
    inputs: tuple[str, ...]
    output_id: str
    previous: str | None = None  # the previous cycle's output (the last of ``inputs``)
