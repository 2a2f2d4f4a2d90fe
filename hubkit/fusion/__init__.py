"""Complete Data Fusion (CDF) of vertical profile retrievals, batched over fusion cells.

Many level-2 retrievals of the same profile (different instruments, platforms, bands) are fused
into one profile with its averaging kernel and covariances by the Complete Data Fusion of
Ceccherini et al. (2015). The kernel :func:`cdf` works on stacked NumPy arrays: any number of
fusion cells (leading dimensions) times ``N`` retrieval slots per cell; a cell with fewer
retrievals has its spare slots marked invalid and they carry zero information. The work is done
by batched Cholesky factorisations and matrix products; the only explicit inverses are the output
covariances. :func:`fuse_cells` wraps the kernel in :func:`xarray.apply_ufunc` with
``dask="parallelized"``; :func:`fuse_product` groups an ``l2-ozone`` dataset into space-time cells
(Zoppetti et al. 2021) and returns a ``fused-ozone`` dataset. Nothing here opens a file.

Symbols (docs/fusion.md): retrieval ``i`` on its own grid of ``m`` levels has profile
``x̂_i``, averaging kernel ``A_i``, noise covariance ``S_n,i``, a priori ``x_a,i`` (and
``S_a,i``), and the grid operator ``Φ_i`` (``m × n``) from the fusion grid (``n`` levels) to its
own. The fusion a priori is ``x_a, S_a``.

References
----------
.. [1] Ceccherini, Carli, Raspollini, "Equivalence of data fusion and simultaneous retrieval",
   Opt. Express 23, 8476-8488, 2015. doi:10.1364/OE.23.008476
.. [2] Ceccherini et al., "Interpolation and coincidence errors in the complete data fusion",
   Atmos. Meas. Tech. 11, 1009-1017, 2018. doi:10.5194/amt-11-1009-2018
.. [3] Ceccherini et al., "The cost function of the data fusion process and its application",
   Atmos. Meas. Tech. 12, 2967-2977, 2019. doi:10.5194/amt-12-2967-2019
.. [4] Zoppetti et al., "Application of the Complete Data Fusion algorithm to the ozone profiles
   measured by geostationary and low-Earth-orbit satellites", Atmos. Meas. Tech. 14, 2041-2053,
   2021. doi:10.5194/amt-14-2041-2021
.. [5] Rodgers, "Inverse Methods for Atmospheric Sounding", World Scientific, 2000.
   doi:10.1142/3171
"""

from __future__ import annotations

from hubkit.errors import FusionInputError
from hubkit.fusion.cells import fuse_cells, group_cells
from hubkit.fusion.grid import grid_operator, profile_covariance
from hubkit.fusion.kernel import CdfOptions, CdfResult, cdf
from hubkit.fusion.product import adjust_prior, concat_fused, fuse_product

__all__ = [
    "CdfOptions",
    "CdfResult",
    "FusionInputError",
    "adjust_prior",
    "cdf",
    "concat_fused",
    "fuse_cells",
    "fuse_product",
    "grid_operator",
    "group_cells",
    "profile_covariance",
]
