"""Surface UV index and UV-A irradiance from a lookup table made with a radiative-transfer engine.

The last step of the processing chain (Gai et al. 2021, section 4.3.4; Lipponen et al. 2020):
total ozone column, surface elevation, surface albedo, aerosol optical depth and single-scattering
albedo, solar zenith angle and cloud optical thickness go in; the UV index and the UV-A
(315-400 nm) irradiance come out, by multilinear interpolation in a table that NCAR's TUV-x
computed over those seven axes.

Topics: :mod:`.spectra` (CIE erythemal action spectrum, extraterrestrial spectrum, band
integrals), :mod:`.engine` (driving TUV-x for one atmosphere), :mod:`.table` (building, storing
and loading the lookup table; the table shipped with hubkit), :mod:`.interp` (multilinear
interpolation in transformed axes), :mod:`.index` (``uv_index``/``uva`` with input checks, for
arrays, xarray and Dask), :mod:`.solar` (solar zenith angle and Earth-Sun distance),
:mod:`.inputs` (surface-albedo, aerosol and cloud products regridded onto the DAS grid),
:mod:`.surface` (the chain step from a DAS product: :func:`~hubkit.uv.surface.surface_uv`, and
:func:`~hubkit.uv.surface.surface_uv_from_inputs` with those products and the local-solar-noon
maps).

The table format (one xarray Dataset, CF attributes) is the contract between them:

* dims, in this order: ``ozone`` [DU], ``elevation`` [m], ``albedo`` [1], ``aod`` [1, at 550 nm],
  ``ssa`` [1], ``cot`` [1], ``sza`` [degree]; coordinates strictly monotonic.
* each coordinate has an ``interpolation_axis`` attribute: ``linear``, ``log`` (ln x),
  ``log1p`` (ln(1 + x), for axes that include 0), ``log1p_20`` (ln(1 + x/20), the cloud axis),
  ``cos`` (cos of degrees) or ``sqrt_cos`` (the square root of that, the SZA axis);
* data variables ``uvi`` [1] and ``uva`` [W m-2] on all seven dims, each with an
  ``interpolation_value`` attribute: ``linear`` or ``log`` (interpolate ln value);
* attributes recording the engine, its version, the solver and streams, the wavelength grid,
  the extraterrestrial spectrum and the atmosphere (see :func:`hubkit.uv.table.build_table`).

References
----------
.. [1] Gai et al., Remote Sens. 13, 210, 2021. doi:10.3390/rs13020210
.. [2] Lipponen et al., Atmosphere 11, 324, 2020. doi:10.3390/atmos11040324
.. [3] CIE S 007/E:1998, Erythema reference action spectrum and standard erythema dose.
.. [4] Madronich et al., TUV-x: NCAR Tropospheric Ultraviolet-Visible radiation model.
"""

from hubkit.uv.index import FLAG_MEANINGS, surface_uv_arrays, uv_index, uva

__all__ = ["FLAG_MEANINGS", "surface_uv_arrays", "uv_index", "uva"]
