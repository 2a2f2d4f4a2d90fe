"""Comparison with ground truth: colocation, averaging-kernel-correct differences, statistics,
and gridded fields sampled at stations.

- :mod:`hubkit.validate.colocate` — soundings paired with station measurements (distance or box,
  time window, optional dynamic criterion of Wunch et al. 2011), vectorised and memory-bounded.
- :mod:`hubkit.validate.smoothing` — a reference profile as a retrieval would see it, priors
  exchanged, the smoothing error (Rodgers & Connor 2003).
- :mod:`hubkit.validate.columns` — satellite columns against a TCCON station, the station's
  profile seen through the satellite's kernel.
- :mod:`hubkit.validate.stats` — bias, scatter, correlation per station and overall.
- :mod:`hubkit.validate.sample` — a gridded field at station positions, times and altitudes.

Pure functions on NumPy, pandas and xarray objects: no file or network access.
"""

from hubkit.validate.colocate import Criteria, colocate, spatial_pairs
from hubkit.validate.columns import compare_with_tccon, station_series
from hubkit.validate.sample import compare_field_with_series, sample_at_points
from hubkit.validate.smoothing import (
    adjust_column_prior,
    adjust_profile_prior,
    column,
    interp_profile,
    pressure_weights,
    smooth_column,
    smooth_profile,
    smoothing_error,
)
from hubkit.validate.stats import difference_statistics

__all__ = [
    "Criteria", "adjust_column_prior", "adjust_profile_prior", "colocate", "column",
    "compare_field_with_series", "compare_with_tccon", "difference_statistics",
    "interp_profile", "pressure_weights", "sample_at_points", "smooth_column", "smooth_profile",
    "smoothing_error", "spatial_pairs", "station_series",
]
