"""Options of the plume detection (:class:`PeakOptions`, oco2peak's defaults and hubkit's
additions) and the meaning of the emission flags."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, fields, replace

from hubkit.errors import CO2InputError

log = logging.getLogger(__name__)

#: Bits of ``emission_flag``.
EMISSION_FLAGS = {
    1: "no wind: emission not estimated",
    2: "surface pressure missing: 101325 Pa assumed",
    4: "tcwv missing: 25 kg m-2 assumed (as oco2peak)",
    8: "wind nearly parallel to the track (normal component < 0.5 m s-1)",
}
#: One word per bit of ``emission_flag`` (CF ``flag_meanings``), in the order of
#: :data:`EMISSION_FLAGS`.
EMISSION_FLAG_NAMES = {
    1: "no_wind",
    2: "surface_pressure_missing",
    4: "tcwv_missing",
    8: "wind_parallel_to_track",
}
DEFAULT_TCWV = 25.0  # [kg m-2], oco2peak's constant
DEFAULT_PRESSURE = 101325.0  # [Pa]


@dataclass(frozen=True)
class PeakOptions:
    """Settings of :func:`find_peaks` (defaults: hubkit's detection; see :meth:`oco2peak`).

    Attributes
    ----------
    half_width : float
        Half the fit window. [km]
    step, offset : int
        Every ``step``-th sounding of an orbit (from ``offset``) is a candidate centre.
    min_soundings : int
        Fewest soundings in a window for it to be fitted (oco2peak: 400).
    min_orbit_soundings : int
        Orbits with fewer soundings are skipped (oco2peak: 500).
    sigma_range : (float, float)
        Widths the fit searches. [km]
    n_sigma : int
        Grid widths before refinement.
    min_sigma, max_sigma : float
        Width rule for a detection. [km]
    threshold : float
        Least ``Δχ²/s²`` (Gaussian+line against line, ``s²`` the noise scale) of a detection.
    prescreen : float
        Windows whose grid ``Δχ²/s²`` reaches ``prescreen × threshold`` are iterated to the
        exact optimum, and only those whose ``Δχ²/s²`` on every other grid width reaches half
        of that are evaluated on the others; dips (``δ < 0``) are not refined. Measured on the
        real segment and on simulated plumes: the exact ``Δχ²`` exceeds the grid's by at most
        4 % (real) and 38 % (weak simulated windows), and every window significant after
        refinement had at least 0.93 of the threshold on every other width, so the default
        0.5 misses none; 0 evaluates every window on the full grid and iterates every peak.
    density_rule : bool
        oco2peak's rule: at least ``⌊σ⌋`` soundings in each of ``[-σ,0], [0,σ], [-3σ,-2σ],
        [2σ,3σ]``.
    min_r : float or None
        Least Pearson correlation of model and data within ``±4σ`` (oco2peak: 0.5).
    nms_sigmas : float
        Detections closer than ``nms_sigmas × max(σ)`` to a stronger one are suppressed.
    quality_flag : int or None
        Keep soundings with this ``xco2_quality_flag`` (None: keep all).
    coordinate : str
        ``"track"`` (true along-track distance), ``"distance"`` (the dataset's ``distance``) or
        ``"haversine"`` (from the orbit's first sounding, R = 6367 km, as oco2peak).
    noise_scale : float or None
        ``s``: factor on the sounding uncertainties; None estimates it per orbit as the root of
        the median reduced χ² of the line fits of its windows (background windows dominate).
    wind : (str, str)
        Names of the wind variables (e.g. a boundary-layer wind when the dataset has one).
    wind_uncertainty : float
        Error of the normal wind component. [m s-1]
    background_uncertainty : float
        Error of the local background under the plume. [ppm]
    """

    half_width: float = 100.0
    step: int = 15
    offset: int = 0
    min_soundings: int = 100
    min_orbit_soundings: int = 200
    sigma_range: tuple[float, float] = (1.5, 50.0)
    n_sigma: int = 10
    min_sigma: float = 2.0
    max_sigma: float = 100.0 / 3.0
    threshold: float = 25.0
    prescreen: float = 0.5
    density_rule: bool = False
    min_r: float | None = None
    nms_sigmas: float = 3.0
    quality_flag: int | None = 0
    coordinate: str = "track"
    noise_scale: float | None = None
    wind: tuple[str, str] = ("windspeed_u", "windspeed_v")
    wind_uncertainty: float = 1.0
    background_uncertainty: float = 0.1

    @classmethod
    def oco2peak(cls, **changes) -> PeakOptions:
        """oco2peak's windows and rules (400/500 soundings, haversine distance, density and
        R ≥ 0.5 rules, no significance test, no suppression) on converged fits."""
        base = cls(min_soundings=400, min_orbit_soundings=500, density_rule=True, min_r=0.5,
                   threshold=0.0, nms_sigmas=0.0, coordinate="haversine", prescreen=0.0)
        return replace(base, **changes)

    def to_json(self) -> str:
        """The options as JSON (stored with the peaks; :meth:`from_json` reads it back)."""
        return json.dumps({k: (list(v) if isinstance(v, tuple) else v)
                           for k, v in asdict(self).items()})

    @classmethod
    def from_json(cls, text: str) -> PeakOptions:
        """Options from :meth:`to_json` (e.g. ``peaks.attrs["options"]``)."""
        d = json.loads(text)
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise CO2InputError(f"PeakOptions.from_json: unknown options {unknown}; expected some "
                                f"of {sorted(known)}")
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()})



def stored_options(attrs) -> PeakOptions:
    """The :class:`PeakOptions` stored in ``attrs["options"]`` (peaks attributes, as written
    by :meth:`PeakOptions.to_json`); the defaults when they are absent or unreadable."""
    text = attrs.get("options")
    if isinstance(text, str) and text.startswith("{"):
        try:
            return PeakOptions.from_json(text)
        except (ValueError, TypeError):
            log.info("peaks carry options hubkit cannot read (%.60s…): defaults used", text)
    return PeakOptions()
