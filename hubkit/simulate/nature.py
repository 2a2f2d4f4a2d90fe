"""A nature run for observing-system simulation experiments (OSSEs), independent of the DAS.

The truth ozone is an analytic field that can be evaluated at any place, time and pressure —
at a retrieval's footprint on its own pressure grid for the L2 simulator, or at the layer mid
pressures of a DAS grid to score the analyses — built so that the assimilation's background
does not contain it by construction:

.. math::
    x(φ, λ, t, p) = x_c(φ, t, p)\\,(1 + β(φ, p))\\, e^{σ(p)\\, δ} + x_{layer}

- ``x_c`` is the background climatology (:func:`hubkit.assimilation.background.
  ozone_climatology`); ``β`` a smooth systematic error of that climatology (by default +6 %
  in the northern mid-latitude troposphere, −6 % in the stratosphere above it), as a real
  climatology has;
- ``δ`` unit-variance random perturbations: a sum of random Fourier modes (Rahimi & Recht
  2007) with a Gaussian horizontal correlation (length ``ℓ``) and an *exponential* vertical
  correlation in ln p (Cauchy-distributed vertical wavenumbers; the DAS assumes a Gaussian one,
  so the truth is rougher than the background errors the filter models), each mode's amplitude
  oscillating with its own period of 5-20 days (chemistry the transport model does not
  have: ozone's chemical lifetime is weeks in the free troposphere, longer in the lower
  stratosphere; the synoptic changes are the motion), the pattern carried by solid-body
  rotation about an axis tilted by ``α`` —
  the flow of :func:`hubkit.assimilation.cycling.solid_body_winds`, the winds the DAS model is
  driven by (it shares the meteorology, as an operational DAS is driven by analysed winds);
- ``σ(p)`` the relative amplitude, 25 % in the troposphere and 8 % in the stratosphere;
- ``x_layer`` an elevated tropospheric ozone layer (45 ppbv at 550 hPa, 600 km radius) that
  grows and decays over four days (half grown at
  ``start``) while the flow carries it — a feature absent from the
  climatology, for the test that the analysis recovers it where it is observed.

References
----------
.. [1] Rahimi, Recht, "Random features for large-scale kernel machines", NIPS 20, 2007.
.. [2] Williamson et al., J. Comput. Phys. 102, 211-224, 1992 (solid-body rotation, test 1).
.. [3] Arnold, Dey, "Observing-systems simulation experiments: past, present and future",
   Bull. Am. Meteorol. Soc. 67, 687-695, 1986. doi:10.1175/1520-0477(1986)067<0687:OSSEPP>2.0.CO;2
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import xarray as xr

from hubkit.constants import EARTH_RADIUS
from hubkit.geodesy import unit_vectors

__all__ = ["NatureRun"]


@lru_cache(maxsize=16)
def _modes(seed: int, modes: int, horizontal_length: float, vertical_length: float,
           period_days: tuple[float, float]):
    rng = np.random.default_rng(seed)
    k = rng.normal(size=(modes, 3)) * (EARTH_RADIUS / horizontal_length)  # per unit vector
    q = rng.standard_cauchy(size=modes) / vertical_length  # exp(-|Δ ln p| / L) correlation
    phase = rng.uniform(0.0, 2.0 * np.pi, modes)
    nu = 2.0 * np.pi / (rng.uniform(*period_days, modes) * 86400.0)  # [rad s-1]
    psi = rng.uniform(0.0, 2.0 * np.pi, modes)
    return k, q, phase, nu, psi


def _rotate(v, axis, angle):
    """Rodrigues' rotation of vectors ``v`` (..., 3) about the unit ``axis`` by ``angle``
    (...) [rad]."""
    c, s = np.cos(angle)[..., None], np.sin(angle)[..., None]
    cross = np.cross(axis, v)
    dot = (v @ axis)[..., None]
    return v * c + cross * s + axis * dot * (1.0 - c)


@dataclass(frozen=True)
class NatureRun:
    """The truth of an OSSE (see the module docstring); deterministic for its fields.

    Attributes
    ----------
    seed : int
        Seed of the random modes.
    start : str
        Time zero of the motion and of the layer's life (ISO 8601, UTC).
    sd_troposphere, sd_stratosphere : float
        Relative standard deviation ``σ`` of the perturbations below ~250 hPa and above. [1]
    horizontal_length : float
        Gaussian horizontal correlation length ``ℓ`` of the perturbations. [m]
    vertical_length : float
        Exponential vertical correlation length in ln p. [1]
    modes : int
        Random Fourier modes.
    period_days : tuple of float
        Range of the modes' amplitude periods. [d]
    wind_speed, tilt : float
        Solid-body flow carrying the pattern: equatorial speed [m s⁻¹] and axis tilt [rad].
    bias : float
        Amplitude of the climatology's systematic error ``β``. [1]
    layer : tuple of float
        Ozone layer: latitude [°], longitude [°] at ``start``, pressure [Pa], peak excess
        [mol mol⁻¹], radius [m], half-width in ln p [1], lifetime [d]; amplitude 0 for none.
    """

    seed: int = 1
    start: str = "2024-07-01T00:00"
    sd_troposphere: float = 0.25
    sd_stratosphere: float = 0.08
    horizontal_length: float = 1200e3
    vertical_length: float = 0.5
    modes: int = 96
    period_days: tuple[float, float] = (5.0, 20.0)
    wind_speed: float = 20.0
    tilt: float = 0.3
    bias: float = 0.06
    layer: tuple[float, ...] = (47.0, -12.0, 55000.0, 45e-9, 600e3, 0.18, 4.0)

    # -- pieces ------------------------------------------------------------------------------
    def _seconds(self, time) -> np.ndarray:
        t = np.asarray(time, dtype="datetime64[ns]")
        return (t - np.datetime64(self.start, "ns")) / np.timedelta64(1, "s")

    def _axis(self) -> np.ndarray:
        return np.array([-np.sin(self.tilt), 0.0, np.cos(self.tilt)])

    def _origin(self, lat, lon, seconds):
        """Where the air at (lat, lon) was at ``start`` (unit vectors, ...×3)."""
        omega = self.wind_speed / EARTH_RADIUS
        return _rotate(unit_vectors(lat, lon), self._axis(), -omega * seconds)

    def _sigma(self, lnp):
        w = 0.5 * (1.0 + np.tanh((lnp - np.log(25000.0)) / 0.3))  # 1 in the troposphere
        return self.sd_stratosphere + (self.sd_troposphere - self.sd_stratosphere) * w, w

    def perturbation(self, latitude, longitude, time, pressure):
        """The unit-variance perturbation ``δ`` (..., m) at ``pressure`` (..., m) [Pa]."""
        k, q, phase, nu, psi = _modes(int(self.seed), int(self.modes),
                                      float(self.horizontal_length),
                                      float(self.vertical_length), tuple(self.period_days))
        secs = self._seconds(time)
        x0 = self._origin(latitude, longitude, secs)  # (..., 3)
        horiz = x0 @ k.T + phase  # (..., K)
        amp = np.sqrt(2.0) * np.cos(nu * secs[..., None] + psi)  # (..., K)
        lnp = np.log(np.asarray(pressure, dtype=float))
        # Σ_k amp_k cos(horiz_k + q_k s) = Re Σ_k amp_k e^{i horiz_k} e^{i q_k s}
        c = amp * np.exp(1j * horiz)  # (..., K)
        out = np.einsum("...k,...mk->...m", c, np.exp(1j * lnp[..., None] * q)).real
        return np.sqrt(2.0 / k.shape[0]) * out

    def layer_excess(self, latitude, longitude, time, pressure):
        """The ozone layer's excess mixing ratio (..., m). [mol mol⁻¹]"""
        lat0, lon0, p0, amplitude, radius, width, life = self.layer
        if amplitude == 0:
            return np.zeros(np.broadcast_shapes(np.shape(latitude) + (1,), np.shape(pressure)))
        secs = self._seconds(time)
        x0 = self._origin(latitude, longitude, secs)
        chord = EARTH_RADIUS * np.linalg.norm(x0 - unit_vectors(lat0, lon0), axis=-1)
        # half grown at ``start``, at its peak a quarter of its life later, gone at 3/4
        frac = np.clip(secs / (life * 86400.0) + 0.25, 0.0, 1.0)
        growth = np.sin(np.pi * frac) ** 2
        horiz = amplitude * growth * np.exp(-0.5 * (chord / radius) ** 2)
        lnp = np.log(np.asarray(pressure, dtype=float))
        return horiz[..., None] * np.exp(-0.5 * ((lnp - np.log(p0)) / width) ** 2)

    def ozone(self, latitude, longitude, time, pressure):
        """True ozone mixing ratio at points and pressures.

        Parameters
        ----------
        latitude, longitude : array_like, (...)
            Position. [°]
        time : array_like of datetime64, (...)
            Time (broadcast against the position).
        pressure : array_like, (..., m) or (m,)
            Pressures of the profile. [Pa]

        Returns
        -------
        ndarray, (..., m)
            Ozone. [mol mol⁻¹]
        """
        from hubkit.assimilation.background import ozone_climatology

        lat, lon, t = np.broadcast_arrays(np.asarray(latitude, float),
                                          np.asarray(longitude, float),
                                          np.asarray(time, dtype="datetime64[ns]"))
        p = np.broadcast_to(np.asarray(pressure, dtype=float),
                            lat.shape + (np.shape(pressure)[-1],))
        clim = ozone_climatology(lat, t, p)
        lnp = np.log(p)
        sigma, trop = self._sigma(lnp)
        beta = self.bias * (2.0 * trop - 1.0) * np.cos(np.deg2rad(lat - 45.0))[..., None]
        delta = self.perturbation(lat, lon, t, p)
        return clim * (1.0 + beta) * np.exp(sigma * delta) \
            + self.layer_excess(lat, lon, t, p)

    def on_grid(self, met: xr.Dataset, times, *, subsamples: int = 3) -> xr.Dataset:
        """The truth on a DAS grid: ``met`` (DAS-like meteorology, e.g. :func:`hubkit.
        simulate.das_field`) at ``times`` (nearest) with ``o3_vmr`` the truth at each layer's
        mid pressure, averaged over ``subsamples`` × ``subsamples`` points spread evenly in
        each grid cell (the cell mean a grid model can represent). [mol mol⁻¹]"""
        from hubkit.assimilation.background import climatology_state, level_dim

        out = climatology_state(met, times)
        lev = level_dim(out["o3_vmr"])
        a = np.asarray(met["hybrid_a"].values, dtype=float)
        b = np.asarray(met["hybrid_b"].values, dtype=float)
        ps = out["surface_pressure"].transpose("time", "latitude", "longitude").values
        ph = a + b * ps[..., None]
        mid = np.maximum(0.5 * (ph[..., 1:] + ph[..., :-1]), 1e-2)
        lat = np.asarray(met["latitude"].values, float)
        lon = np.asarray(met["longitude"].values, float)
        dlat, dlon = 180.0 / lat.size, 360.0 / lon.size
        n = max(int(subsamples), 1)
        offsets = (np.arange(n) + 0.5) / n - 0.5
        tt = np.asarray(out["time"].values, dtype="datetime64[ns]")[:, None, None]
        shape = ps.shape
        x = 0.0
        for fy in offsets:
            for fx in offsets:
                sub_lat = np.clip(lat + fy * dlat, -90.0, 90.0)[None, :, None]
                sub_lon = (lon + fx * dlon)[None, None, :]
                x = x + self.ozone(np.broadcast_to(sub_lat, shape),
                                   np.broadcast_to(sub_lon, shape),
                                   np.broadcast_to(tt, shape), mid)
        o3 = np.moveaxis(x / n**2, -1, 1)
        return out.assign(o3_vmr=(("time", lev, "latitude", "longitude"), o3,
                                  {"units": "mol mol-1",
                                   "standard_name": "mole_fraction_of_ozone_in_air",
                                   "long_name": "true ozone of the nature run (cell mean)"}))

    def describe(self) -> dict:
        """The fields as JSON-serialisable parameters (recorded in simulated products)."""
        return {"seed": int(self.seed), "start": self.start,
                "sd_troposphere": self.sd_troposphere, "sd_stratosphere": self.sd_stratosphere,
                "horizontal_length": self.horizontal_length,
                "vertical_length": self.vertical_length, "modes": int(self.modes),
                "period_days": list(self.period_days), "wind_speed": self.wind_speed,
                "tilt": self.tilt, "bias": self.bias, "layer": list(self.layer)}

    @classmethod
    def from_description(cls, description: dict) -> NatureRun:
        """Inverse of :meth:`describe`."""
        d = dict(description)
        d["period_days"] = tuple(d.get("period_days", cls.period_days))
        d["layer"] = tuple(d.get("layer", cls.layer))
        return cls(**d)
