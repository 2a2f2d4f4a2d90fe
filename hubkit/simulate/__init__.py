"""Synthetic but physically sensible inputs for demos, tests and benchmarks, at any size.

Nothing here reads or writes files: the functions return canonical datasets, which
:mod:`hubkit.io` writers turn into files in the real source layouts.

- :func:`oco2_tracks` — OCO-2-like soundings with CO2 plumes of known emission;
- :func:`l2_ozone` — L2 ozone profile retrievals of several instruments, sampling a truth;
- :class:`NatureRun` — the truth of an OSSE, independent of the assimilation's background;
- :func:`write_s5p_o3_pr` — L2 ozone retrievals written in the Sentinel-5P TROPOMI
  ``L2__O3__PR`` layout (the one writer here: the layout is a real product's, for its reader);
- :func:`das_field`, :func:`das_hybrid_coefficients` — DAS-like fields and meteorology on
  hybrid levels;
- :func:`xgas_soundings_near` — GOSAT-like column soundings around a TCCON station, retrieved
  from its own profile (validation with a known answer);
- :func:`fused_observations` — fused ozone profiles of a known DAS-like field, the observations
  of an assimilation twin experiment.
"""

from hubkit.simulate.columns import xgas_soundings_near
from hubkit.simulate.das import das_field, das_hybrid_coefficients
from hubkit.simulate.fused import fused_observations
from hubkit.simulate.l2_ozone import O3_INSTRUMENTS, l2_ozone
from hubkit.simulate.nature import NatureRun
from hubkit.simulate.oco2 import oco2_tracks
from hubkit.simulate.s5p_o3_pr import write_s5p_o3_pr

__all__ = ["O3_INSTRUMENTS", "NatureRun", "das_field", "das_hybrid_coefficients",
           "fused_observations", "l2_ozone", "oco2_tracks", "write_s5p_o3_pr",
           "xgas_soundings_near"]
