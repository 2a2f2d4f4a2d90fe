"""Cycling: forecast/analysis cycles of fused ozone profiles into DAS ozone on hybrid levels.

:func:`assimilate` runs the chain of TM5's sequential assimilation (Eskes et al. 2003) with the
pieces of this package: the flux-form transport of :mod:`.models` (optionally with first-order
chemistry relaxing to a climatology, and time-varying winds) carries an ensemble (LETKF), a mean
and covariance (exact Kalman filter, small grids) or a mean and an error variance field with
fixed correlations (the parameterised-covariance filter of TM5, :mod:`.pkf`; Segers et al.
2005) from one analysis time to the next;
analyses are made at clock times that are multiples of ``window`` after 00 UTC (00 and 12 UTC for
the 12-h default), from the fused profiles whose time lies within half a window of the analysis
time. A fused profile ``x̂`` with averaging kernel ``A``, prior ``x_a`` and error covariance ``R``
is simulated from the model column ``x`` (sampled in the grid cell holding the profile) by

.. math::
    H(x) = x_a + A(Φx − x_a)

with ``Φ`` the mass-conserving layer map from the hybrid layers of that column to layers around
the fusion levels (:func:`.operators.layer_mapping`). Correlated profile errors are whitened,
``y' = L⁻¹x̂``, ``H'(x) = L⁻¹H(x)`` with ``R = LLᵀ``, so that the LETKF (Hunt et al. 2007) sees
unit-variance, uncorrelated observations; localisation is horizontal (Gaspari–Cohn), a column's
levels share its weights. Temperature, surface pressure and the hybrid coefficients are not
analysed; they come from ``background`` (the meteorology that drives TM5 too).

Everything is pure: datasets in, datasets out, no store access. The rooms of the cycles:
:mod:`.options` (settings, analysis times, input checks), :mod:`.das` (the DAS layout),
:mod:`.cycle_filters` (LETKF, PKF and KF as the cycles carry them), :mod:`.profiles` (fused
profiles as observations), :mod:`.diagnostics` (observation-space diagnostics, the record of
each analysis time), :mod:`.forecast` (free runs, warm and cold starts, forecasts);
:func:`hubkit.simulate.fused_observations` makes the profiles of a twin experiment.

References
----------
.. [1] Eskes, van Velthoven, Valks, Kelder, "Assimilation of GOME total-ozone satellite
   observations in a three-dimensional tracer-transport model", Q. J. R. Meteorol. Soc. 129,
   1663-1681, 2003. doi:10.1256/qj.02.14
.. [2] Hunt, Kostelich, Szunyogh, "Efficient data assimilation for spatiotemporal chaos: a local
   ensemble transform Kalman filter", Physica D 230, 112-126, 2007.
   doi:10.1016/j.physd.2006.11.008
.. [3] Williamson, Drake, Hack, Jakob, Swarztrauber, "A standard test set for numerical
   approximations to the shallow water equations in spherical geometry", J. Comput. Phys. 102,
   211-224, 1992. doi:10.1016/S0021-9991(05)80016-6
.. [4] Rodgers, "Inverse Methods for Atmospheric Sounding", World Scientific, 2000.
   doi:10.1142/3171
.. [5] Segers, Eskes, van der A, van Oss, van Velthoven, "Assimilation of GOME ozone profiles
   and a global chemistry-transport model using a Kalman filter with anisotropic covariance",
   Q. J. R. Meteorol. Soc. 131, 477-502, 2005. doi:10.1256/qj.04.92
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from hubkit.assimilation.background import (
    level_dim,
    level_log_pressure,
    relative_spread,
    vertical_correlation,
)
from hubkit.assimilation.cycle_filters import (
    Analysis,
    CycleGrid,
    cycle_filter,
    nonnegative_columns,
)
from hubkit.assimilation.das import das_dataset, das_like, field_at, initial_field
from hubkit.assimilation.diagnostics import CycleRecord, window_diagnostics
from hubkit.assimilation.forecast import free_run
from hubkit.assimilation.options import CycleOptions, check_fused, check_options, cycle_times
from hubkit.assimilation.profiles import profile_observations
from hubkit.assimilation.transport import check_grid, make_model, solid_body_winds
from hubkit.errors import AssimilationInputError

__all__ = ["CycleOptions", "assimilate", "cycle_times", "free_run", "nonnegative_columns",
           "solid_body_winds", "window_diagnostics"]


def assimilate(fused, *, background, winds, window="12h", options=None, truth=None,
               climatology=None, until=None):
    """Forecast/analysis cycles of fused ozone profiles: the DAS product, one time per analysis.

    Parameters
    ----------
    fused : xarray.Dataset
        ``fused-ozone`` product(s) (:func:`hubkit.fusion.fuse_product`; several on one fusion
        grid concatenated along ``cell`` by :func:`hubkit.fusion.concat_fused`): ``o3_vmr``
        (cell, level) [mol mol⁻¹], ``averaging_kernel`` (cell, level, level_in) [1],
        ``noise_covariance``/``total_covariance`` [mol² mol⁻²], ``o3_vmr_apriori`` (level)
        [mol mol⁻¹], ``pressure`` (level) [Pa], ``latitude``, ``longitude`` [°] and ``time``
        per cell.
    background : xarray.Dataset
        DAS-like initial state and meteorology (:func:`hubkit.simulate.das_field` layout) on
        a regular global grid: ``o3_vmr`` at its first time is the initial state; temperature
        [K] and surface pressure [Pa] at the nearest time go into each output time. A *warm
        start* is a previous analysis: when ``background`` holds ``o3_vmr_spread`` (the
        analysis standard deviation of the previous cycle) the initial errors have that
        standard deviation (plus the model error, :attr:`CycleOptions.model_error`), and when
        it holds ``o3_vmr_free`` the free run goes on from it. Otherwise (a *cold start*) the
        initial errors are :attr:`CycleOptions.spread` × the state.
    winds : xarray.Dataset
        ``eastward_wind``, ``northward_wind`` [m s⁻¹] on the cell centres (latitude,
        longitude), optionally with a level dim; steady, or with a ``time`` dim, interpolated
        linearly in time to the middle of each model step (constant outside the given times).
    window : str
        Analysis interval dividing 24 h; analyses at the clock times that are its multiples
        (``"12h"``: 00 and 12 UTC as TM5 [1]_; ``"1h"``: each hour of fused products), from
        the profiles within half an interval.
    options : CycleOptions, optional
        Filter and model settings.
    truth : xarray.Dataset, optional
        Known true ``o3_vmr`` (time, level, latitude, longitude) of a twin experiment; adds
        ``rmse_*`` diagnostics.
    climatology : xarray.Dataset, optional
        DAS-like ``o3_vmr`` the forecast model's chemistry relaxes to (with
        :attr:`CycleOptions.relaxation_time`); default the initial state.
    until : datetime-like, optional
        Go on (forecasting) to this time even when the last profile is earlier (e.g. the end
        of a cycle).

    Returns
    -------
    xarray.Dataset
        Product type ``das``, one ``time`` per analysis: ``o3_vmr`` (analysis, the ensemble
        mean for the LETKF), ``o3_vmr_forecast`` (first guess), ``o3_vmr_free`` (no
        assimilation), ``o3_vmr_spread`` (analysis standard deviation) [mol mol⁻¹],
        ``temperature`` [K], ``surface_pressure`` [Pa], ``surface_altitude`` [m],
        ``hybrid_a`` [Pa], ``hybrid_b`` [1] — the layout
        :func:`hubkit.ozone.tropospheric_ozone` reads — and per-time diagnostics (NaN where
        no profile was assimilated): ``n_obs`` (profiles), ``n_values`` (observed values),
        ``omb_mean``/``omb_rms`` and ``oma_mean``/``oma_rms`` (observation minus first guess
        / analysis, whitened by the observation error, so 1 is the size of that error),
        ``omf_chi2`` (``dᵀ(HP_fHᵀ + R)⁻¹d / p``, about 1 for a consistent filter, Desroziers
        et al. 2005), ``spread_obs`` (first-guess spread in the same whitened space: with
        ``omb_rms² ≈ spread_obs² + 1`` the spread matches the error); with ``truth``
        ``rmse_forecast``, ``rmse_analysis``, ``rmse_free`` [mol mol⁻¹]. The attribute
        ``hubkit_start`` says ``cold`` or ``warm``.

    Notes
    -----
    The LETKF analyses ``ln x`` (Hunt et al. 2007 with the nonlinear operator
    ``H(exp z)``), so every member, and their mean, stays positive. The KF and PKF analyse
    ``x``; a column with negative values after their analysis is made non-negative by
    :func:`nonnegative_columns` (mass-conserving), and the number of such columns is recorded
    in ``hubkit_negative_columns``.

    References
    ----------
    .. [1] Eskes et al., Q. J. R. Meteorol. Soc. 129, 1663-1681, 2003. doi:10.1256/qj.02.14
    .. [2] Hunt, Kostelich, Szunyogh, Physica D 230, 112-126, 2007.
       doi:10.1016/j.physd.2006.11.008
    .. [3] Desroziers, Berre, Chapnik, Poli, Q. J. R. Meteorol. Soc. 131, 3385-3396, 2005.
       doi:10.1256/qj.05.108
    """
    opts = options or CycleOptions()
    if not isinstance(opts, CycleOptions):
        raise AssimilationInputError(f"options is a {type(opts).__name__}; expected CycleOptions")
    check_options(opts)
    check_fused(fused, opts)
    bg = das_like(background, "background")
    lat, lon, edges = check_grid(bg, "background")
    lev = level_dim(bg["o3_vmr"])
    xb = initial_field(bg, "o3_vmr", lev)
    grid = CycleGrid(lat, lon, xb.shape[0])
    a, b = _check_background(bg, xb, opts)
    t_obs = np.asarray(fused["time"].values, dtype="datetime64[ns]")
    t0, times = _analysis_times(bg, t_obs, window, until)
    clim = xb if climatology is None else initial_field(climatology, "o3_vmr", lev)
    model = make_model(winds, lat, lon, edges, grid.levels, opts.dt, opts.filter != "kf",
                       t_ref=t0, relaxation_time=opts.relaxation_time, climatology=clim)
    x = xb.reshape(grid.levels, grid.size)
    Cv = vertical_correlation(level_log_pressure(a, b), opts.vertical_length,
                              opts.vertical_model)
    w = pd.Timedelta(window)
    rho = float(opts.inflation) ** (w / pd.Timedelta(hours=12))  # inflation per analysis
    filt = cycle_filter(opts, grid, x, _initial_spread(bg, lev, x, a, b, opts), Cv,
                        _layer_thickness(a, b), rho, np.random.default_rng(opts.seed))
    free = initial_field(bg, "o3_vmr_free", lev) if "o3_vmr_free" in bg else xb.copy()
    cycle = _Cycle(model, filt, free, t0)
    record = CycleRecord()
    half = np.timedelta64(int(w.value // 2), "ns")
    negative = 0
    for tk in times:
        xf = cycle.forecast_step(tk)
        sel = np.flatnonzero((t_obs > tk - half) & (t_obs <= tk + half))
        analysis = _analysis_step(cycle, fused, sel, bg, tk, a, b, grid, opts, xf)
        negative += analysis.negative
        record.add_observations(sel.size, analysis.omb, analysis.oma, analysis.chi2,
                                analysis.spread_obs)
        record.add_fields(grid.shape, analysis.state, xf, cycle.free, filt.spread())
        if truth is not None:
            record.add_errors(truth, tk, grid.shape, xf, analysis.state, cycle.free)
    out = das_dataset(bg, lev, times, record.stacked_fields(), lat, lon, record.diagnostics())
    out.attrs.update({"hubkit_filter": opts.filter, "hubkit_window": str(window),
                      "hubkit_start": "warm" if "o3_vmr_spread" in bg else "cold",
                      "hubkit_negative_columns": int(negative),
                      "references": "Eskes et al. 2003 doi:10.1256/qj.02.14; Hunt et al. 2007 "
                                    "doi:10.1016/j.physd.2006.11.008; Desroziers et al. 2005 "
                                    "doi:10.1256/qj.05.108"})
    return out


# -- the steps of assimilate ---------------------------------------------------------------------
def _check_background(bg: xr.Dataset, xb: np.ndarray, opts: CycleOptions):
    """The hybrid coefficients ``a`` [Pa], ``b`` [1] of ``bg``, once its initial ozone ``xb``
    (L, ny, nx) and its size are fit for ``opts.filter``."""
    n_lev = xb.shape[0]
    size = xb.size
    if not np.all(np.isfinite(xb)) or np.any(xb <= 0):
        raise AssimilationInputError("background o3_vmr must be finite and > 0 everywhere")
    if opts.filter == "kf" and size > 3000:
        raise AssimilationInputError(f"filter='kf' on {n_lev} x {size // n_lev} = {size} state "
                                     "elements; the exact KF is for <= 3000, use 'letkf'")
    a = np.asarray(bg["hybrid_a"].values, dtype=float)
    b = np.asarray(bg["hybrid_b"].values, dtype=float)
    if a.size != n_lev + 1 or b.size != n_lev + 1:
        raise AssimilationInputError(f"hybrid_a/hybrid_b have {a.size}/{b.size} interfaces, "
                                     f"expected {n_lev + 1} (levels + 1)")
    return a, b


def _analysis_times(bg: xr.Dataset, t_obs: np.ndarray, window, until):
    """The start ``t0`` (the background's first time, else the first profile's) and the
    analysis times up to the last profile (or ``until``) plus half a window."""
    t0 = np.datetime64(pd.Timestamp(np.ravel(bg["time"].values)[0]), "ns") \
        if "time" in bg.variables else t_obs.min()
    w = pd.Timedelta(window)
    last = max(t_obs.max(), t0) + w / 2
    if until is not None:
        last = max(pd.Timestamp(last), pd.Timestamp(until).tz_localize(None)
                   if pd.Timestamp(until).tz else pd.Timestamp(until))
    times = cycle_times(t0, last, window)
    if times.size == 0:
        raise AssimilationInputError(f"no analysis time between the background ({t0}) and the "
                                     f"last profile ({t_obs.max()}) for window={window!r}")
    return t0, times


def _initial_spread(bg, lev, x, a, b, opts: CycleOptions) -> np.ndarray:
    """Initial error standard deviation (L, G) of the state ``x`` (L, G): a warm start's
    analysis spread grown by the model error, else ``opts.spread`` (and
    ``opts.spread_stratosphere``) × the state (:func:`.background.relative_spread`)."""
    if "o3_vmr_spread" in bg:
        prev = initial_field(bg, "o3_vmr_spread", lev).reshape(x.shape)
        return np.sqrt(prev**2 + (opts.model_error * x) ** 2)
    spread = relative_spread(level_log_pressure(a, b), opts.spread, opts.spread_stratosphere)
    return spread[:, None] * x


def _layer_thickness(a, b) -> np.ndarray:
    """Layer thickness at the standard surface pressure (L,), positive. [Pa]"""
    return -np.diff(a + b * 101325.0) * (1.0 if a[0] < a[-1] or b[0] < b[-1] else -1.0)


class _Cycle:
    """The running state of :func:`assimilate`: the filter, the free run, the air mass and the
    time they have reached, from the start ``t0``."""

    def __init__(self, model, filt, free: np.ndarray, t0):
        self.model, self.filt, self.free, self.t0 = model, filt, free, t0
        self.m, self.t = model.air_mass(), t0

    def forecast_step(self, tk) -> np.ndarray:
        """The free run and the filter advanced to ``tk``; the first guess (L, G)."""
        secs = (tk - self.t) / np.timedelta64(1, "s")
        start = (self.t - self.t0) / np.timedelta64(1, "s")
        m_start = self.m
        self.free, self.m = self.model.run(self.free, m_start, secs, start=start)
        xf = self.filt.forecast(self.model, m_start, secs, start)
        self.t = tk
        return xf


def _analysis_step(cycle: _Cycle, fused, sel, bg, tk, a, b, grid: CycleGrid, opts,
                   forecast) -> Analysis:
    """The analysis at ``tk`` of the fused profiles ``sel``; the first guess without any."""
    if not sel.size:
        return Analysis(forecast)
    ps_flat = np.asarray(field_at(bg, "surface_pressure", tk).transpose("latitude", "longitude")
                         .values, dtype=float).ravel()
    obs = profile_observations(fused, sel, ps_flat, a, b, grid.lat, grid.lon, opts)
    return cycle.filt.analyse(obs)
