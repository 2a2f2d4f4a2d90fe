"""Surface irradiance of one atmosphere from NCAR's TUV-x (the ``musica`` package).

TUV-x (Madronich and Flocke 1999; the TUV 5.4 data set: US Standard Atmosphere 1976 profiles,
O3 and O2 cross sections, pseudo-spherical discrete-ordinate solver of Stamnes et al. 1988) is
driven here for the surface-UV lookup table: the column starts at the surface elevation, the
ozone profile is scaled to the requested total column, an aerosol layer (exponential profile,
Angstrom law) and a cloud layer are added as host radiators, and the global downward irradiance
at the surface is returned per wavelength bin as a fraction of the top-of-atmosphere flux.

What we measured of ``musica`` 0.17.2 and rely on here:

* ``spectral_irradiance`` is normalised to the top-of-atmosphere flux of each bin (the direct
  component at the top edge is cos(SZA)); the surface global irradiance is direct + diffuse
  downward at the bottom edge. Its ``dose_rates`` add the upwelling irradiance, so they are not
  used.
* ``earth_sun_distance`` scales the field; we pass 1 AU and apply (1 AU / r)^2 ourselves.
* The 8-stream solver has windows in solar zenith angle (about 12.5-21.5, up to 28 under heavy
  absorbing aerosol, 45.75-48 and 70-71 degrees) where the irradiance jumps by several percent,
  a bin can go negative or, rarely, explode.
  The table nodes are chosen outside those windows (:data:`GLITCH_WINDOWS_8`), and
  :func:`surface_uv` bridges across them from SZAs outside.
* Albedo: for a Lambertian surface the surface irradiance at albedo A is exactly
  E(A) = E0 / (1 - A S) per wavelength, S being the spherical albedo of the atmosphere seen from
  below; two runs (A = 0 and A = A1) give E0 and S and hence every albedo.

Engine runs are slow (tens of ms each); everything here is for building tables, not for fields.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

import numpy as np

from hubkit.errors import EngineError, UVInputError

DU_MOLECULES_CM2 = 2.6867e16
"""Molecules cm-2 in one Dobson unit (0.01 mm of pure ozone at 273.15 K, 1013.25 hPa)."""

WAVELENGTH_EDGES_NM = np.concatenate([np.arange(280.0, 320.0, 1.0),
                                      np.arange(320.0, 400.0 + 0.1, 2.5)])
"""Bins of the table's spectra: 1 nm from 280 to 320 nm, where ozone absorption and the
erythemal weight change fast, 2.5 nm from 320 to 400 nm (315 and 400 nm are edges)."""

STREAMS = 8
GLITCH_WINDOWS_8 = ((11.5, 28.5), (45.0, 48.5), (69.5, 71.5))
"""SZA windows [degrees] where the 8-stream solver of musica 0.17.2 is not smooth (measured:
jumps of several percent, a negative bin at 46.5 and 70 degrees, bins of 1e31 at 23 degrees;
the first window is 12.5-21.5 degrees in a clear sky and reaches 28 degrees under a heavy
absorbing aerosol; 4, 6, 10, 12 and 16 streams have windows of their own)."""

ALBEDO_PROBE = 0.5
"""Second albedo of the two runs that give E0 and the atmosphere's spherical albedo S."""


@dataclass(frozen=True)
class Atmosphere:
    """One column for the engine. Aerosol and cloud optical properties are the table's settings.

    Parameters
    ----------
    ozone : float
        Total ozone column [DU]; the USSA ozone profile is scaled to it.
    elevation : float
        Surface elevation [m] above sea level; the column starts there.
    aod : float
        Aerosol optical depth at 550 nm; ``angstrom`` gives its spectral slope.
    ssa : float
        Aerosol single-scattering albedo (wavelength-independent).
    cot : float
        Cloud optical thickness (wavelength-independent), spread over ``cloud_layer`` km above
        the surface, single-scattering albedo ``cloud_ssa``, asymmetry ``cloud_g``.
    """

    ozone: float = 300.0
    elevation: float = 0.0
    aod: float = 0.0
    ssa: float = 0.9
    cot: float = 0.0
    angstrom: float = 1.0
    aerosol_g: float = 0.7
    aerosol_scale_height_km: float = 2.0
    cloud_layer_km: tuple[float, float] = (1.0, 3.0)
    cloud_ssa: float = 0.9999
    cloud_g: float = 0.85
    top_km: float = 120.0
    extra: dict = field(default_factory=dict)


def _require_musica():
    try:
        import musica  # noqa: F401
        from musica.tuvx import v54
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise EngineError(
            "building a UV table needs NCAR's TUV-x from the 'musica' package: "
            "pip install 'hubkit[uv]'  (or pip install musica)"
        ) from err
    return v54


def engine_version() -> str:
    """Version string of the engine, for provenance."""
    import musica

    return f"TUV-x (musica {musica.__version__}), TUV 5.4 data"


def _height_edges(elevation_km: float, top_km: float) -> np.ndarray:
    """Layer edges from the surface to the top: 0.5 km below 3 km above the surface, then the
    integer km, 5 km above 50 km."""
    lower = elevation_km + np.arange(0.0, 3.0, 0.5)
    middle = np.arange(np.floor(lower[-1]) + 1.0, 50.0, 1.0)
    upper = np.arange(50.0, top_km + 1e-9, 5.0)
    edges = np.concatenate([lower, middle[middle > lower[-1] + 0.25], upper])
    return np.unique(np.round(edges, 6))


def _config(v54, streams: int) -> str:
    """The TUV 5.4 radiative-transfer configuration with only what the surface field needs
    (no photolysis or dose rates), the discrete-ordinate solver, absolute data paths."""
    path = v54.config_file_path()
    base = os.path.dirname(path)
    with open(path) as f:
        full = json.load(f)
    rt = full["radiative transfer"]
    rt["solver"] = {"type": "discrete ordinate", "number of streams": int(streams)}
    for section in rt["cross sections"]:
        for entry in section.get("netcdf files", []):
            entry["file path"] = os.path.join(base, entry["file path"])
    key = "cross section parameters file"
    o2 = {key: os.path.join(base, full["O2 absorption"][key])}
    return json.dumps({"O2 absorption": o2, "grids": [], "profiles": [], "radiative transfer": rt})


class Engine:
    """A TUV-x set-up for one surface elevation and aerosol/cloud/ozone state.

    Build one per atmosphere (construction is ~10 ms), then call :meth:`transmittance` for each
    solar zenith angle and albedo.
    """

    def __init__(self, atmosphere: Atmosphere, streams: int = STREAMS):
        from musica.tuvx import TUVX, Grid, GridMap, Profile, ProfileMap, Radiator, RadiatorMap

        v54 = _require_musica()
        self.atmosphere = atm = atmosphere
        z_s = atm.elevation / 1000.0
        if not 0.0 <= z_s < 10.0:
            raise EngineError(f"surface elevation {atm.elevation} m outside 0-10,000 m")
        edges = _height_edges(z_s, atm.top_km)
        heights = Grid(name="height", units="km", num_sections=edges.size - 1)
        heights.edges = edges
        heights.midpoints = 0.5 * (edges[1:] + edges[:-1])
        wl = WAVELENGTH_EDGES_NM
        wavelengths = Grid(name="wavelength", units="nm", num_sections=wl.size - 1)
        wavelengths.edges = wl
        wavelengths.midpoints = 0.5 * (wl[1:] + wl[:-1])
        grids = GridMap()
        grids["height", "km"] = heights
        grids["wavelength", "nm"] = wavelengths

        dz_cm = np.diff(edges) * 1e5
        profiles = ProfileMap()
        for name in ("air", "O2", "O3", "temperature"):
            units = "K" if name == "temperature" else "molecule cm-3"
            standard = v54.profile(name, heights)  # the USSA profile, interpolated to our layers
            mid = np.asarray(standard.midpoint_values, dtype=float).copy()
            edge_values = np.asarray(standard.edge_values, dtype=float).copy()
            exo = float(standard.exo_layer_density)
            layers = mid * dz_cm if units != "K" else None
            if name == "O3":
                column = (layers.sum() + exo) / DU_MOLECULES_CM2
                scale = atm.ozone / column
                mid, edge_values = mid * scale, edge_values * scale
                layers, exo = layers * scale, exo * scale
            kwargs = {} if layers is None else {"layer_densities": layers}
            profiles[name, units] = Profile(
                name=name, units=units, grid=heights, edge_values=edge_values,
                midpoint_values=mid, exo_layer_density=exo, **kwargs,
            )
        self._albedo = Profile(
            name="surface albedo", units="none", grid=wavelengths,
            edge_values=np.zeros(wl.size), midpoint_values=np.zeros(wl.size - 1),
        )
        profiles["surface albedo", "none"] = self._albedo
        # TUV-x needs the flux profile; the field comes out normalised to it, so its values do
        # not enter the result (we weight with our own spectrum, hubkit.uv.spectra)
        profiles["extraterrestrial flux", "photon cm-2 s-1"] = v54.profile(
            "extraterrestrial flux", wavelengths)

        mids_nm = wavelengths.midpoints
        n_layers, n_wl = edges.size - 1, wl.size - 1
        above = heights.midpoints - z_s
        radiators = RadiatorMap()
        # aerosol: exponential in height above the surface, Angstrom spectral law
        weights = np.exp(-(edges[:-1] - z_s) / atm.aerosol_scale_height_km) - np.exp(
            -(edges[1:] - z_s) / atm.aerosol_scale_height_km)
        weights /= weights.sum()
        spectral = (mids_nm / 550.0) ** (-atm.angstrom)
        radiators["aerosol"] = Radiator(
            name="aerosol", height_grid=heights, wavelength_grid=wavelengths,
            optical_depths=atm.aod * spectral[:, None] * weights[None, :],
            single_scattering_albedos=np.full((n_wl, n_layers), atm.ssa),
            asymmetry_factors=np.full((n_wl, n_layers), atm.aerosol_g),
        )
        lo, hi = atm.cloud_layer_km
        in_cloud = (above > lo) & (above < hi)
        cloud_od = np.where(in_cloud, atm.cot / max(in_cloud.sum(), 1), 0.0)
        radiators["cloud"] = Radiator(
            name="cloud", height_grid=heights, wavelength_grid=wavelengths,
            optical_depths=np.broadcast_to(cloud_od, (n_wl, n_layers)).copy(),
            single_scattering_albedos=np.full((n_wl, n_layers), atm.cloud_ssa),
            asymmetry_factors=np.full((n_wl, n_layers), atm.cloud_g),
        )
        self.streams = streams
        self._tuvx = TUVX(grid_map=grids, profile_map=profiles, radiator_map=radiators,
                          config_string=_config(v54, streams))
        self._live_albedo = self._tuvx.get_profile_map()["surface albedo", "none"]

    def _run(self, sza_deg: float, albedo: float) -> np.ndarray:
        n = WAVELENGTH_EDGES_NM.size
        self._live_albedo.edge_values = np.full(n, albedo)
        self._live_albedo.midpoint_values = np.full(n - 1, albedo)
        field = self._tuvx.run(np.deg2rad(sza_deg), 1.0).spectral_irradiance.values
        surface = field[:, 0, :]  # (wavelength, component) at the bottom edge
        return surface[:, 0] + surface[:, 2]  # direct + diffuse downward

    def transmittance(self, sza_deg: float) -> tuple[np.ndarray, np.ndarray]:
        """Surface global irradiance over a black surface, as a fraction of the top-of-atmosphere
        flux per bin, and the spherical albedo S of the atmosphere per bin.

        Returns ``(t0, s)`` so that the transmittance over a Lambertian surface of albedo A is
        ``t0 / (1 - A s)``.
        """
        t0 = self._run(sza_deg, 0.0)
        t1 = self._run(sza_deg, ALBEDO_PROBE)
        with np.errstate(divide="ignore", invalid="ignore"):
            s = np.where(t1 > 0, (1.0 - t0 / t1) / ALBEDO_PROBE, 0.0)
        return t0, s

    def checked_transmittance(self, sza_deg: float) -> tuple[np.ndarray, np.ndarray, bool]:
        """:meth:`transmittance`, bridged where the solver gives an impossible field.

        Outside the known glitch windows the solver can still fail for some atmospheres (we met
        bins of 1e31 at SZA 23° under an absorbing aerosol): a field that is not finite, negative,
        above the top-of-atmosphere flux, or with a spherical albedo outside [0, 1) is replaced by
        the interpolation, linear in cos SZA of ln T and of S, between the nearest plausible
        fields 0.5-2° either side. Returns ``(t0, s, bridged)``.
        """
        t0, s = self.transmittance(sza_deg)
        if _plausible(t0, s):
            return t0, s, False
        mu = np.cos(np.deg2rad(sza_deg))
        for step in (0.5, 1.0, 1.5, 2.0):
            lo, hi = max(sza_deg - step, 0.0), min(sza_deg + step, 90.0)
            (t_lo, s_lo), (t_hi, s_hi) = self.transmittance(lo), self.transmittance(hi)
            if _plausible(t_lo, s_lo) and _plausible(t_hi, s_hi):
                mu_lo, mu_hi = np.cos(np.deg2rad(lo)), np.cos(np.deg2rad(hi))
                w = (mu - mu_lo) / (mu_hi - mu_lo)
                ln_t = (1 - w) * np.log(t_lo) + w * np.log(t_hi)
                return np.exp(ln_t), (1 - w) * s_lo + w * s_hi, True
        raise EngineError(f"TUV-x gives no plausible field near SZA {sza_deg}° for "
                          f"{self.atmosphere}")


def _plausible(t0: np.ndarray, s: np.ndarray) -> bool:
    """A surface field a solver can give: finite, 0 < T <= 1 of the top-of-atmosphere flux,
    spherical albedo in [0, 1)."""
    return bool(np.isfinite(t0).all() and np.isfinite(s).all() and (t0 > 0).all()
                and (t0 <= 1.0).all() and (s >= 0).all() and (s < 1).all())


def in_glitch_window(sza_deg) -> np.ndarray:
    """True where the 8-stream solver is not smooth in SZA (see :data:`GLITCH_WINDOWS_8`)."""
    sza = np.asarray(sza_deg, dtype=float)
    out = np.zeros(sza.shape, dtype=bool)
    for lo, hi in GLITCH_WINDOWS_8:
        out |= (sza >= lo) & (sza <= hi)
    return out


def lagrange_weights(x, nodes) -> np.ndarray:
    """Weights ``(len(x), len(nodes))`` of the Lagrange polynomial through ``nodes`` at ``x``:
    the interpolant of values ``f(nodes)`` at ``x`` is ``weights @ f``."""
    x = np.asarray(x, dtype=float)
    nodes = np.asarray(nodes, dtype=float)
    w = np.ones((x.size, nodes.size))
    for k in range(nodes.size):
        for m in range(nodes.size):
            if m != k:
                w[:, k] *= (x - nodes[m]) / (nodes[k] - nodes[m])
    return w


def _bridge(sza: float) -> np.ndarray:
    """Four SZAs outside the glitch window that holds ``sza``, two on each side."""
    for lo, hi in GLITCH_WINDOWS_8:
        if lo <= sza <= hi:
            return np.array([lo - 3.0, lo, hi, hi + 3.0])
    raise UVInputError(f"SZA {sza} is not in a glitch window")


def surface_uv(atmosphere: Atmosphere, sza_deg, albedo, earth_sun_distance: float = 1.0,
               streams: int = STREAMS) -> dict[str, np.ndarray]:
    """UV index and UV-A irradiance at the surface straight from the engine (slow; for tables and
    tests).

    Inside the solver's glitch windows the value is bridged from four SZAs outside the window by a
    cubic in cos(SZA) of the logarithm (the field is smooth in cos SZA; the solver is not there).

    Parameters
    ----------
    atmosphere : Atmosphere
        The column: total ozone, elevation, aerosol and cloud.
    sza_deg : float or sequence of float
        Solar zenith angles [degrees], at most 90.
    albedo : float or sequence of float
        Surface albedos; every albedo is computed from the same two runs per SZA.
    earth_sun_distance : float
        [AU]; the result scales as (1 AU / r)^2.
    streams : int
        Discrete-ordinate streams (8; glitch windows are those of 8 streams).

    Returns
    -------
    dict
        ``"uvi"`` and ``"uva"`` [W m-2], arrays of shape (len(sza), len(albedo)).
    """
    from hubkit.uv.spectra import band_weights

    szas = np.atleast_1d(np.asarray(sza_deg, dtype=float))
    albedos = np.atleast_1d(np.asarray(albedo, dtype=float))
    weights = band_weights(WAVELENGTH_EDGES_NM)
    eng = Engine(atmosphere, streams=streams)

    def at(sza: float) -> tuple[np.ndarray, np.ndarray]:
        t0, s, _ = eng.checked_transmittance(sza)
        t = t0[None, :] / (1.0 - albedos[:, None] * s[None, :])
        return t @ weights["uvi"], t @ weights["uva"]

    uvi = np.empty((szas.size, albedos.size))
    uva = np.empty_like(uvi)
    for i, sza in enumerate(szas):
        if streams == STREAMS and in_glitch_window(sza):
            bridge = _bridge(sza)
            lag = lagrange_weights([np.cos(np.deg2rad(sza))], np.cos(np.deg2rad(bridge)))[0]
            values = [at(b) for b in bridge]
            uvi[i] = np.exp(sum(lag[k] * np.log(values[k][0]) for k in range(4)))
            uva[i] = np.exp(sum(lag[k] * np.log(values[k][1]) for k in range(4)))
        else:
            uvi[i], uva[i] = at(sza)
    scale = 1.0 / earth_sun_distance**2
    return {"uvi": uvi * scale, "uva": uva * scale}


def settings(atmosphere: Atmosphere | None = None) -> dict:
    """The engine settings recorded in a table's attributes."""
    atm = asdict(atmosphere or Atmosphere())
    atm.pop("extra")
    for key in ("ozone", "elevation", "aod", "ssa", "cot"):
        atm.pop(key)
    return {
        "engine": engine_version(),
        "solver": f"pseudo-spherical discrete ordinate, {STREAMS} streams "
                  f"(no nodes in its SZA glitch windows {GLITCH_WINDOWS_8})",
        "wavelength_bins_nm": "280-320 by 1, 320-400 by 2.5",
        "albedo_method": f"E(A) = E0 / (1 - A S) from runs at A = 0 and {ALBEDO_PROBE}",
        **{k: (list(v) if isinstance(v, tuple) else v) for k, v in atm.items()},
    }
