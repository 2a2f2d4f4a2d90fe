"""The three filters as the cycles carry them: a state, its forecast step and its analysis step.

:func:`cycle_filter` starts one of

- :class:`EnsembleCycle` — the LETKF (Hunt et al. 2007) of an ensemble, analysing ``ln x`` so
  that every member stays positive;
- :class:`VarianceCycle` — the parameterised-covariance filter of TM5 (:mod:`.pkf`; Segers et
  al. 2005): a mean and an error variance field with fixed correlations;
- :class:`KalmanCycle` — the exact Kalman filter of a mean and a full covariance (small grids).

Each has ``forecast(model, air_mass, seconds, start)`` (the first guess, (L, G)),
``analyse(observations)`` (an :class:`Analysis` of :class:`.profiles.ProfileObservations`) and
``spread()`` (the error standard deviation, (L, G)). Grid points are flattened latitude-major.

References
----------
.. [1] Hunt, Kostelich, Szunyogh, Physica D 230, 112-126, 2007.
   doi:10.1016/j.physd.2006.11.008
.. [2] Segers, Eskes, van der A, van Oss, van Velthoven, Q. J. R. Meteorol. Soc. 131, 477-502,
   2005. doi:10.1256/qj.04.92
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hubkit.assimilation import filters as F
from hubkit.assimilation import pkf as PK
from hubkit.assimilation.background import initial_ensemble
from hubkit.assimilation.diagnostics import ensemble_chi2
from hubkit.assimilation.options import CycleOptions
from hubkit.assimilation.profiles import ProfileObservations
from hubkit.constants import EARTH_RADIUS
from hubkit.geodesy import grid_unit_vectors

__all__ = ["Analysis", "CycleGrid", "EnsembleCycle", "KalmanCycle", "VarianceCycle",
           "cycle_filter", "nonnegative_columns"]

#: Floor of ``x`` before ``ln x`` in the LETKF. [mol mol⁻¹]
TINY = 1e-15


class CycleGrid:
    """The model grid of the cycles: ``levels`` × ``latitude`` × ``longitude`` cells.

    ``size`` is the number of columns G; ``glat``, ``glon`` their centres, flattened
    latitude-major. [°]
    """

    def __init__(self, latitude: np.ndarray, longitude: np.ndarray, levels: int):
        self.lat, self.lon = latitude, longitude
        self.levels, self.ny, self.nx = int(levels), latitude.size, longitude.size
        self.size = self.ny * self.nx
        self.glat, self.glon = np.repeat(latitude, self.nx), np.tile(longitude, self.ny)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(levels, latitude, longitude)."""
        return self.levels, self.ny, self.nx


@dataclass
class Analysis:
    """One analysis time: the state, and the departures of the observations from the first
    guess and from the analysis, whitened (None without observations).

    Attributes
    ----------
    state : ndarray, (L, G)
        Analysis (the forecast itself without observations). [mol mol⁻¹]
    omb, oma : ndarray or None, (n,)
        Observation minus first guess, minus analysis, in units of the observation error. [1]
    chi2 : float
        Innovation χ² per observed value (Desroziers et al. 2005). [1]
    spread_obs : float
        First-guess spread in the same whitened space. [1]
    negative : int
        Columns made non-negative after the analysis (:func:`nonnegative_columns`).
    """

    state: np.ndarray
    omb: np.ndarray | None = None
    oma: np.ndarray | None = None
    chi2: float = np.nan
    spread_obs: float = np.nan
    negative: int = 0


def nonnegative_columns(x, thickness):
    """Make columns non-negative keeping each column's ozone mass.

    Negative values are set to 0 and the column's positive values scaled down so that
    ``Σ_l x_l Δp_l`` is what it was (columns with a negative total are set to 0).

    Parameters
    ----------
    x : ndarray, (L, G)
        Mixing ratios of G columns. [mol mol⁻¹]
    thickness : ndarray, (L,)
        Layer thickness weights (e.g. Δp at a reference surface pressure). [Pa]

    Returns
    -------
    x : ndarray, (L, G)
        Non-negative mixing ratios. [mol mol⁻¹]
    changed : int
        Number of columns that had negative values.
    """
    x = np.asarray(x, dtype=float)
    bad = np.any(x < 0, axis=0)
    if not bad.any():
        return x, 0
    w = np.abs(np.asarray(thickness, dtype=float))[:, None]
    total = np.sum(x[:, bad] * w, axis=0)
    pos = np.clip(x[:, bad], 0.0, None)
    scale = np.where(total > 0, total / np.maximum(np.sum(pos * w, axis=0), 1e-300), 0.0)
    out = x.copy()
    out[:, bad] = pos * scale
    return out, int(bad.sum())


class EnsembleCycle:
    """The LETKF's ensemble (N, L, G), analysed in ``ln x`` with horizontal localisation and
    the multiplicative inflation ``rho`` of one analysis interval."""

    def __init__(self, grid: CycleGrid, opts: CycleOptions, ensemble: np.ndarray, rho: float):
        self.grid, self.opts, self.ens, self.rho = grid, opts, ensemble, rho

    def forecast(self, model, m, seconds, start) -> np.ndarray:
        """Every member run by ``model`` from air mass ``m``; the ensemble mean (L, G)."""
        g = self.grid
        self.ens = model.run(self.ens.reshape(-1, *g.shape), m, seconds, start=start)[0] \
            .reshape(self.opts.members, g.levels, g.size)
        return self.ens.mean(axis=0)

    def analyse(self, obs: ProfileObservations) -> Analysis:
        """The LETKF on the sphere of the members' ``ln x`` (Hunt et al. 2007)."""
        g, opts, rho = self.grid, self.opts, self.rho
        y = obs.values
        hx = obs.h(self.ens)  # (N, p)
        d_b = y - hx.mean(axis=0)
        spread_obs = float(np.sqrt(np.mean(hx.var(axis=0, ddof=1))))
        chi2 = ensemble_chi2(d_b, (hx - hx.mean(axis=0)).T * np.sqrt(rho))
        olat, olon = obs.lat[obs.owner], obs.lon[obs.owner]
        z = np.moveaxis(np.log(np.maximum(self.ens, TINY)), 1, 2)  # (N, G, L)
        z = F.letkf_sphere(z, y, hx, 1.0, g.glat, g.glon, olat, olon, opts.half_width,
                           inflation=rho, workers=opts.workers)
        self.ens = np.exp(np.moveaxis(z, 2, 1))
        xa = self.ens.mean(axis=0)
        return Analysis(xa, d_b, y - obs.h(self.ens).mean(axis=0), chi2, spread_obs)

    def spread(self) -> np.ndarray:
        """Standard deviation of the members (L, G)."""
        return self.ens.std(axis=0, ddof=1)


class VarianceCycle:
    """The PKF's mean (L·G) and error variance (L, G), with fixed correlations: ``Cv`` in
    the vertical, ``opts.correlation_model`` in the horizontal."""

    def __init__(self, grid: CycleGrid, opts: CycleOptions, x: np.ndarray, sd: np.ndarray,
                 Cv: np.ndarray, thickness: np.ndarray):
        self.grid, self.opts, self.Cv, self.thickness = grid, opts, Cv, thickness
        self.mean = x.reshape(-1).copy()
        self.var = sd**2  # (L, G)
        # model-error variance per second (L, ny, nx): model_error × x per 12 h
        self.q_rate = ((opts.model_error * x) ** 2 / 43200.0).reshape(grid.shape)

    def forecast(self, model, m, seconds, start) -> np.ndarray:
        """Mean and variance advanced by :func:`.pkf.pkf_forecast`; the mean (L, G)."""
        g = self.grid
        mean, var = PK.pkf_forecast(model, self.mean.reshape(g.shape),
                                    self.var.reshape(g.shape), m, seconds, start, self.q_rate)
        self.mean, self.var = mean.reshape(-1), var.reshape(g.levels, g.size)
        return self.mean.reshape(g.levels, g.size)

    def analyse(self, obs: ProfileObservations) -> Analysis:
        """Optimal interpolation with the parameterised covariance (:func:`.pkf.pkf_analysis`),
        then mass-conserving non-negative columns."""
        g, opts = self.grid, self.opts
        y = obs.values
        off = obs.h_full(np.zeros((g.levels, g.size)))
        d_b = y - obs.h(self.mean.reshape(g.levels, g.size))
        res = PK.pkf_analysis(self.mean.reshape(g.levels, g.size), self.var, obs.y, 1.0,
                              obs.cell, obs.column_operators(), g.glat, g.glon,
                              opts.correlation_length, self.Cv, obs_offset=off,
                              kind=opts.correlation_model)
        # padded rows (K = 0, y = off = 0) add nothing to dᵀS⁻¹d: per kept value
        self.var, chi2 = res.variance, res.omf_chi2 * obs.y.size / y.size
        xa, bad = nonnegative_columns(res.mean.reshape(g.levels, g.size), self.thickness)
        self.mean = xa.reshape(-1)
        return Analysis(xa, d_b, y - obs.h(xa), chi2, negative=bad)

    def spread(self) -> np.ndarray:
        """Square root of the variance field (L, G)."""
        return np.sqrt(self.var)


def _xyz(lat, lon):
    return EARTH_RADIUS * grid_unit_vectors(lat, lon)


class KalmanCycle:
    """The exact Kalman filter's mean (L·G) and covariance (L·G, L·G); the initial and model
    errors are correlated by ``Cv`` in the vertical and a Gaussian of
    ``opts.correlation_length`` in chordal distance."""

    def __init__(self, grid: CycleGrid, opts: CycleOptions, x: np.ndarray, sd: np.ndarray,
                 Cv: np.ndarray, thickness: np.ndarray):
        self.grid, self.thickness = grid, thickness
        xyz = _xyz(grid.lat, grid.lon)
        chord = np.linalg.norm(xyz[:, None] - xyz[None], axis=-1)
        corr = np.kron(Cv, np.exp(-0.5 * (chord / opts.correlation_length) ** 2))
        s = sd.ravel()
        self.P = corr * s[:, None] * s[None]
        self.mean = x.reshape(-1).copy()
        Qs = opts.model_error * np.repeat(np.abs(x).mean(axis=1), grid.size)
        self.Q = corr * Qs[:, None] * Qs[None]

    def forecast(self, model, m, seconds, start) -> np.ndarray:
        """Mean by the model, covariance ``M P Mᵀ + Q`` by its tangent-linear runs."""
        g = self.grid
        if seconds > 0:
            run = dict(start=start, mode="anomaly")
            self.mean = model.run(self.mean.reshape(g.shape), m, seconds, start=start)[0] \
                .reshape(-1)
            MP = model.run(self.P.reshape(-1, *g.shape), m, seconds, **run)[0] \
                .reshape(self.P.shape)
            P = model.run(MP.T.copy().reshape(-1, *g.shape), m, seconds, **run)[0] \
                .reshape(self.P.shape)
            self.P = 0.5 * (P + P.T) + self.Q
        return self.mean.reshape(g.levels, g.size)

    def analyse(self, obs: ProfileObservations) -> Analysis:
        """The Kalman analysis (:func:`.filters.kalman_analysis`), then mass-conserving
        non-negative columns."""
        g = self.grid
        y = obs.values
        H = obs.matrix(g.levels, g.size)
        off = obs.h(np.zeros((g.levels, g.size)))
        S = H @ self.P @ H.T + np.eye(y.size)
        d_b = y - off - H @ self.mean
        chi2 = float(d_b @ np.linalg.solve(S, d_b)) / y.size
        spread_obs = float(np.sqrt(np.mean(np.diag(S) - 1.0)))
        mean, self.P = F.kalman_analysis(self.mean, self.P, y - off, H, np.ones(y.size))
        xa, bad = nonnegative_columns(mean.reshape(g.levels, g.size), self.thickness)
        self.mean = xa.reshape(-1)
        return Analysis(xa, d_b, y - off - H @ self.mean, chi2, spread_obs, bad)

    def spread(self) -> np.ndarray:
        """Square root of the covariance's diagonal (L, G)."""
        return np.sqrt(np.clip(np.diag(self.P), 0, None)).reshape(self.grid.levels,
                                                                   self.grid.size)


def cycle_filter(opts: CycleOptions, grid: CycleGrid, x, sd, Cv, thickness, rho, rng):
    """The filter ``opts.filter`` started from the state ``x`` (L, G) with errors of standard
    deviation ``sd`` (L, G), vertically correlated by ``Cv`` (L, L); ``thickness`` (L,) weighs
    the layers of a column [Pa], ``rho`` is the LETKF's inflation per analysis and ``rng``
    draws its initial ensemble (:func:`.background.initial_ensemble`)."""
    if opts.filter == "letkf":
        ens = initial_ensemble(rng, x, sd, Cv, grid.lat, grid.lon, opts.members,
                               opts.correlation_length)  # (N, L, G)
        return EnsembleCycle(grid, opts, ens, rho)
    if opts.filter == "pkf":
        return VarianceCycle(grid, opts, x, sd, Cv, thickness)
    return KalmanCycle(grid, opts, x, sd, Cv, thickness)
