"""OCO-2 XCO2 plume detection, emission estimates and source attribution.

Pure functions on NumPy, pandas and xarray (no file or network I/O):

- :mod:`hubkit.co2.fit` — converged, batched Gaussian-on-a-line fits in along-track windows
  (variable projection, Golub & Pereyra 1973): ``fit_windows`` for one orbit,
  ``fit.fit_segments`` for the windows of many orbits in tasks on several cores;
- :mod:`hubkit.co2.track` — great-circle geometry, a true along-track coordinate, the wind
  normal to the track;
- :mod:`hubkit.co2.detect` — :func:`find_peaks`: candidate windows fitted orbit by orbit, on
  threads or Dask; its rooms: :mod:`~hubkit.co2.options` (:class:`PeakOptions`, emission flags),
  :mod:`~hubkit.co2.prepare` (the soundings cleaned and ordered along track),
  :mod:`~hubkit.co2.select` (Δχ² test, oco2peak's rules as options, non-maximum suppression,
  cross-sectional-flux emissions, Zheng et al. 2020) and :mod:`~hubkit.co2.window` (a
  detection's soundings recomputed on demand);
- :mod:`hubkit.co2.emission` — cross-sectional flux, Gaussian plume model (Nassar et al. 2017);
- :mod:`hubkit.co2.attribution` — upwind inventory sources ranked by predicted enhancement;
- :mod:`hubkit.co2.table` — :func:`peaks_table`, the peaks product (Parquet via
  ``Store.put_table``).

The method and its differences from oco2peak are described in ``docs/co2.md``.
"""

from hubkit.co2.attribution import attribute_sources, inventory_table, sources_table
from hubkit.co2.detect import find_peaks
from hubkit.co2.emission import (
    cross_sectional_flux,
    dry_air_column,
    fit_plume_emission,
    plume_column,
    plume_sigma_y,
    plume_xco2,
)
from hubkit.co2.fit import fit_windows, gaussian_line, window_bounds
from hubkit.co2.options import EMISSION_FLAG_NAMES, EMISSION_FLAGS, PeakOptions
from hubkit.co2.prepare import prepare_soundings
from hubkit.co2.table import peaks_table
from hubkit.co2.track import along_track, haversine, local_offsets, normal_wind
from hubkit.co2.window import peak_window, window_data

__all__ = [
    "EMISSION_FLAG_NAMES", "EMISSION_FLAGS", "PeakOptions", "along_track", "attribute_sources",
    "cross_sectional_flux",
    "dry_air_column", "find_peaks", "fit_plume_emission", "fit_windows", "gaussian_line",
    "haversine", "inventory_table", "local_offsets", "normal_wind", "peak_window", "sources_table",
    "peaks_table", "plume_column", "plume_sigma_y", "plume_xco2", "prepare_soundings",
    "window_bounds", "window_data",
]
