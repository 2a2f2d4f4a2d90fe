"""Tropospheric ozone (TROC) from ozone and temperature fields on hybrid model levels.

The third step of the processing chain (Gai et al. 2021, section 4.3.3): for every column,
hybrid pressures, dry hydrostatic heights, the WMO lapse-rate tropopause, layer partial columns
in Dobson units and their mass-conserving regridding to tropospheric sub-columns. Every function
is a pure NumPy kernel vectorised over any leading dims (level axis last);
:func:`tropospheric_ozone` maps them over an xarray/Dask dataset. Nothing here opens a file.
Equations and references: ``docs/troc.md``.

Topics: :mod:`.atmosphere` (constants, US Standard Atmosphere 1976), :mod:`.vertical` (hybrid
pressure, hydrostatics, the ECMWF L137 table), :mod:`.tropopause` (WMO LRT), :mod:`.columns`
(Dobson units, regridding, sub-column grid), :mod:`.troc` (the product).

References
----------
.. [1] Gai et al., Remote Sens. 13, 210, 2021. doi:10.3390/rs13020210
.. [2] WMO, WMO Bull. 6, 134-138, 1957.
.. [3] Reichler, Dameris, Sausen, GRL 30, 2042, 2003. doi:10.1029/2003GL018240
.. [4] Keppens et al., Atmos. Meas. Tech. 12, 4379-4391, 2019. doi:10.5194/amt-12-4379-2019
.. [5] U.S. Standard Atmosphere, 1976, NOAA-S/T 76-1562.
.. [6] Simmons, Burridge, Mon. Wea. Rev. 109, 758-766, 1981.
   doi:10.1175/1520-0493(1981)109<0758:AEAAMC>2.0.CO;2
"""

from hubkit.ozone.atmosphere import (
    DU_PER_VMR_PA,
    OzoneInputError,
    geometric_altitude,
    standard_atmosphere,
    standard_atmosphere_height,
)
from hubkit.ozone.columns import partial_columns, regrid_mass_conserving, subcolumn_edges
from hubkit.ozone.troc import FLAG_MEANINGS, tropospheric_ozone, tropospheric_ozone_arrays
from hubkit.ozone.tropopause import lapse_rate_tropopause
from hubkit.ozone.vertical import (
    hybrid_pressure,
    hydrostatic_altitude,
    l137_coefficients,
    level_order,
)

__all__ = [
    "DU_PER_VMR_PA",
    "FLAG_MEANINGS",
    "OzoneInputError",
    "geometric_altitude",
    "hybrid_pressure",
    "hydrostatic_altitude",
    "l137_coefficients",
    "lapse_rate_tropopause",
    "level_order",
    "partial_columns",
    "regrid_mass_conserving",
    "standard_atmosphere",
    "standard_atmosphere_height",
    "subcolumn_edges",
    "tropospheric_ozone",
    "tropospheric_ozone_arrays",
]
