"""Data assimilation: forecast models, Kalman and ensemble filters, observation operators.

- :mod:`hubkit.assimilation.filters` — exact Kalman filter, stochastic EnKF, ETKF and LETKF
  (batched over grid points) with Gaspari–Cohn localisation (horizontal, optionally vertical)
  and multiplicative inflation.
- :mod:`hubkit.assimilation.pkf` — the parameterised-covariance Kalman filter of TM5 (variance
  field × fixed correlation model, optimal-interpolation analysis).
- :mod:`hubkit.assimilation.models` — Lorenz-96 (RK4), a mass-conserving flux-form tracer
  transport on a periodic or global latitude-longitude grid, and first-order chemistry
  (relaxation to a climatology).
- :mod:`hubkit.assimilation.operators` — retrieval operator with averaging kernel and prior,
  column operator, layer mapping, superobbing.
- :mod:`hubkit.assimilation.transport` (the DAS model and its winds), :mod:`.profiles` (fused
  profiles as observations: layer map, superobs, informative components), :mod:`.background`
  (climatology, full-rank background errors, the initial ensemble), :mod:`.forecast` (free runs,
  cold and warm starts, forecasts).
- :mod:`hubkit.assimilation.cycling` — :func:`~hubkit.assimilation.cycling.assimilate`: forecast
  and analysis cycles of fused ozone profiles at 00 and 12 UTC, producing the ``das`` product;
  its rooms :mod:`.options` (CycleOptions, analysis times, input checks), :mod:`.das` (the DAS
  layout), :mod:`.cycle_filters` (LETKF, PKF and KF as the cycles carry them) and
  :mod:`.diagnostics` (observation-space diagnostics, the record of each analysis time).

Every function is pure (NumPy in, NumPy out) and opens no file. Errors on bad input are
:class:`AssimilationInputError` (a :class:`ValueError`), naming the argument and what was expected.
"""

from hubkit.assimilation.cycling import CycleOptions, assimilate
from hubkit.errors import AssimilationInputError

__all__ = ["AssimilationInputError", "CycleOptions", "assimilate"]
