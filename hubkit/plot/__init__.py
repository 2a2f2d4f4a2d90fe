"""Plots that work offline: maps, product figures, the report's figures.

- :mod:`hubkit.plot.scales`: the fixed physical colour ranges and labels;
- :mod:`hubkit.plot.coast`: coastlines from files on disk, never a download;
- :mod:`hubkit.plot.maps`: soundings, gridded fields, detected plumes;
- :mod:`hubkit.plot.products`: station time series, plume profiles, ozone columns, the UV
  table, validation against ground truth;
- :mod:`hubkit.plot.cycles`: the assimilation's per-cycle diagnostics;
- :mod:`hubkit.plot.quicklook`: a first figure of any product.

Every public name is importable from ``hubkit.plot`` itself.
"""

from hubkit.plot.coast import (
                               COASTLINE_CANDIDATES,
                               coastline_file,
                               coastline_source,
                               coastline_summary,
)
from hubkit.plot.cycles import cycle_diagnostics
from hubkit.plot.maps import field_map, peaks_map, soundings_map
from hubkit.plot.products import (
                               UV_BASE_POINT,
                               peak_profile,
                               time_series,
                               troc_profile,
                               uv_table_axes,
                               validation_figure,
)
from hubkit.plot.quicklook import quick_look
from hubkit.plot.scales import COLOUR_RANGES, QUANTITY_OF, ColourRange, colour_range, lat_lon_label

__all__ = ["COASTLINE_CANDIDATES", "COLOUR_RANGES", "QUANTITY_OF", "UV_BASE_POINT",
           "ColourRange", "coastline_file", "coastline_source", "coastline_summary",
           "colour_range", "cycle_diagnostics", "field_map", "lat_lon_label", "peak_profile",
           "peaks_map", "quick_look", "soundings_map", "time_series", "troc_profile",
           "uv_table_axes", "validation_figure"]
