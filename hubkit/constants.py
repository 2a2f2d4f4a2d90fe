"""Physical constants used across hubkit, each with its source (one place for each number).

References
----------
.. [1] Moritz, "Geodetic Reference System 1980", J. Geodesy 74, 128-133, 2000 (mean radius
   R1 = 6,371,008.8 m). doi:10.1007/s001900050278
.. [2] NOAA/NASA/USAF, "U.S. Standard Atmosphere, 1976", NOAA-S/T 76-1562 (g0, M_air, p0).
.. [3] CODATA 2018 (Avogadro and Boltzmann constants, exact since the 2019 SI).
"""

from __future__ import annotations

#: Mean Earth radius used by the assimilation grids, distances and the simulators. [m]
EARTH_RADIUS = 6.371e6
#: Mean Earth radius R1 of the Geodetic Reference System 1980 [1], the OCO-2 track geometry's. [m]
EARTH_MEAN_RADIUS_GRS80 = 6371008.8
#: Standard gravity (US Standard Atmosphere 1976). [m s-2]
GRAVITY = 9.80665
#: Molar mass of dry air (US Standard Atmosphere 1976). [kg mol-1]
MOLAR_MASS_AIR = 28.9644e-3
#: Avogadro constant (exact). [mol-1]
AVOGADRO = 6.02214076e23
#: Boltzmann constant (exact since the 2019 SI, CODATA 2018). [J K-1]
BOLTZMANN = 1.380649e-23
#: Molar gas constant N_A k_B. [J mol-1 K-1]
MOLAR_GAS_CONSTANT = AVOGADRO * BOLTZMANN
#: One Dobson unit. [molecules m-2]
DOBSON_UNIT = 2.6867811e20
#: Standard sea-level pressure. [Pa]
STANDARD_PRESSURE = 101325.0
#: Ozone column of air of mole fraction 1 over 1 Pa: N_A / (M_air g0 DU). [DU Pa-1]
DU_PER_PA = AVOGADRO / (MOLAR_MASS_AIR * GRAVITY * DOBSON_UNIT)
