"""Spectral weights and band integrals: the CIE erythemal action spectrum, the extraterrestrial
solar spectrum, and the per-bin weights that turn a binned surface irradiance into the UV index
and the UV-A irradiance.

A radiative-transfer engine gives the surface irradiance of each wavelength bin as a fraction
``T_k`` of the top-of-atmosphere flux of that bin. Inside a bin the solar spectrum has fine
structure (Fraunhofer lines) and the erythemal weight falls by a factor of 1.24 per nm, so the
band integrals are formed with per-bin weights integrated at the spectrum's own resolution:

    UVI = 40 m2/W * sum_k T_k * integral_k E0(l) s_er(l) dl
    UVA = sum_{k in 315-400 nm} T_k * integral_k E0(l) dl

which is exact when ``T`` is constant across each bin (1-nm bins here).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from hubkit.errors import UVInputError

UVI_PER_W_M2 = 40.0
"""UV index per W m-2 of erythemally weighted irradiance: one UVI unit is 25 mW m-2 (WHO 2002)."""

UVA_BAND_NM = (315.0, 400.0)


def erythemal_weight(wavelength_nm):
    """The CIE 1998 erythemal reference action spectrum s_er(lambda), dimensionless.

    s_er = 1 for lambda <= 298 nm; 10^(0.094 (298 - lambda)) for 298 < lambda <= 328 nm;
    10^(0.015 (140 - lambda)) for 328 < lambda <= 400 nm; 0 above 400 nm (CIE S 007/E:1998,
    McKinlay & Diffey 1987).

    Parameters
    ----------
    wavelength_nm : array_like
        Wavelength in nm.

    Returns
    -------
    numpy.ndarray
        The weight, same shape.
    """
    lam = np.asarray(wavelength_nm, dtype=float)
    uvb = 10.0 ** (0.094 * (298.0 - lam))
    uva = 10.0 ** (0.015 * (140.0 - lam))
    return np.where(lam <= 298.0, 1.0,
                    np.where(lam <= 328.0, uvb, np.where(lam <= 400.0, uva, 0.0)))


@lru_cache(maxsize=1)
def extraterrestrial_spectrum() -> tuple[np.ndarray, np.ndarray]:
    """The ASTM G173-03 extraterrestrial solar spectral irradiance at 1 AU.

    Returns
    -------
    wavelength_nm, irradiance_w_m2_nm : numpy.ndarray
        Wavelengths (0.5 nm steps in the UV) and irradiance in W m-2 nm-1, as shipped with pvlib
        (``pvlib.spectrum.get_reference_spectra``; ASTM G173-03, derived from the Gueymard 2004
        SMARTS extraterrestrial spectrum).
    """
    from pvlib.spectrum import get_reference_spectra

    spectra = get_reference_spectra(standard="ASTM G173-03")
    return spectra.index.to_numpy(dtype=float), spectra["extraterrestrial"].to_numpy(dtype=float)


def _integral_on_bins(lam, f, edges):
    """Trapezoidal integral of samples ``f(lam)`` over each bin of ``edges``, with the samples
    linearly interpolated at the bin edges."""
    fine = np.union1d(lam[(lam > edges[0]) & (lam < edges[-1])], edges)
    values = np.interp(fine, lam, f)
    steps = 0.5 * (values[1:] + values[:-1]) * np.diff(fine)
    cumulative = np.concatenate([[0.0], np.cumsum(steps)])
    at_edges = cumulative[np.searchsorted(fine, edges)]
    return np.diff(at_edges)


def band_weights(edges_nm) -> dict[str, np.ndarray]:
    """Per-bin weights of the UV index and the UV-A band for wavelength bins ``edges_nm``.

    Parameters
    ----------
    edges_nm : array_like
        Bin edges in nm, increasing; 315 and 400 nm must be edges (the UV-A band is formed of
        whole bins).

    Returns
    -------
    dict
        ``"uvi"``: 40 m2/W * integral over each bin of E0 s_er [UVI per unit transmittance];
        ``"uva"``: integral over each bin of E0 inside 315-400 nm [W m-2 per unit transmittance];
        ``"e0"``: integral of E0 over each bin [W m-2].
    """
    edges = np.asarray(edges_nm, dtype=float)
    if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
        raise UVInputError(f"wavelength bin edges must increase; got {edges!r}")
    for band_edge in UVA_BAND_NM:
        if edges[0] <= band_edge <= edges[-1] and not np.any(np.isclose(edges, band_edge)):
            raise UVInputError(f"{band_edge} nm must be a bin edge (the UV-A band is whole bins)")
    lam, e0 = extraterrestrial_spectrum()
    if edges[0] < lam[0] or edges[-1] > lam[-1]:
        raise UVInputError(f"bins {edges[0]}-{edges[-1]} nm outside the spectrum "
                           f"{lam[0]}-{lam[-1]} nm")
    e0_bins = _integral_on_bins(lam, e0, edges)
    # the product E0 s_er on a grid fine enough for s_er (it changes 1.24x per nm below 328 nm)
    inside = lam[(lam >= edges[0]) & (lam <= edges[-1])]
    fine = np.union1d(np.arange(edges[0], edges[-1] + 1e-9, 0.05), inside)
    weighted = np.interp(fine, lam, e0) * erythemal_weight(fine)
    uvi = UVI_PER_W_M2 * _integral_on_bins(fine, weighted, edges)
    mids = 0.5 * (edges[1:] + edges[:-1])
    in_uva = (mids > UVA_BAND_NM[0]) & (mids < UVA_BAND_NM[1])
    return {"uvi": uvi, "uva": np.where(in_uva, e0_bins, 0.0), "e0": e0_bins}
