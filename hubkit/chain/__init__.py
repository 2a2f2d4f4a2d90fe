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

from hubkit.chain.plan import Report, StepReport, plan, status, status_by_day
from hubkit.chain.run import reconcile, run_unit, watch
from hubkit.chain.spec import GROUPINGS, Query, Step, Unit
from hubkit.chain.steps import (
    assimilate_window,
    default_steps,
    detect_peaks,
    forecast_das,
    fuse_hour,
    surface_uv,
    troc,
)

__all__ = [
    "GROUPINGS",
    "Query",
    "Report",
    "Step",
    "StepReport",
    "Unit",
    "assimilate_window",
    "default_steps",
    "detect_peaks",
    "forecast_das",
    "fuse_hour",
    "plan",
    "reconcile",
    "run_unit",
    "status",
    "status_by_day",
    "surface_uv",
    "troc",
    "watch",
]
