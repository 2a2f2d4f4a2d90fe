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

Everything is pure: datasets in, datasets out, no store access.

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

from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from hubkit.assimilation import background as BG
from hubkit.assimilation import filters as F
from hubkit.assimilation import pkf as PK
from hubkit.assimilation.profiles import fusion_edges, layer_maps, profile_observations
from hubkit.assimilation.transport import check_grid, make_model, solid_body_winds
from hubkit.constants import EARTH_RADIUS
from hubkit.errors import AssimilationInputError
from hubkit.geodesy import grid_unit_vectors

__all__ = ["CycleOptions", "assimilate", "cycle_times", "free_run", "fused_observations",
           "nonnegative_columns", "solid_body_winds", "window_diagnostics"]

_FUSED_VARS = ("o3_vmr", "averaging_kernel", "o3_vmr_apriori", "pressure", "latitude",
               "longitude", "time")
_DAS_VARS = ("o3_vmr", "temperature", "surface_pressure", "surface_altitude", "hybrid_a",
             "hybrid_b")


@dataclass(frozen=True)
class CycleOptions:
    """Settings of :func:`assimilate` that travel together.

    Attributes
    ----------
    filter : {"letkf", "kf", "pkf"}
        LETKF (any grid), the exact Kalman filter (state of ``levels × cells`` ≤ 3000) or the
        parameterised-covariance Kalman filter of TM5 (:mod:`.pkf`: advected variance field,
        fixed correlations, OI analysis; any grid, cost grows with the profiles per window).
    members : int
        Ensemble size of the LETKF.
    half_width : float
        Gaspari–Cohn half-width of the horizontal localisation (LETKF). [m]
    inflation : float
        Multiplicative covariance inflation per 12 h: each analysis inflates by
        ``inflation ** (interval / 12 h)``, so hourly analyses inflate as much per day as
        twice-daily ones (inflating by the full factor every hour grew the spread of unobserved
        regions by 1.8× a day, and their log-space ensemble mean with it). [1]
    spread : float
        Initial background error standard deviation, relative to the background. [1]
    correlation_length : float
        Horizontal correlation length of the initial errors (and, for the KF, of the model
        error; for the PKF, of its fixed correlation model). [m]
    model_error : float
        Model error standard deviation relative to the state: per analysis interval for the
        KF (relative to the level mean); per 12 h for the PKF (its variance grows linearly in
        time at that rate) and for a warm-started LETKF (added to the previous analysis
        spread at the window's start). [1]
    dt : float
        Transport time step (sub-stepped where the Courant number exceeds 1). [s]
    covariance : {"noise", "total"}
        Which fused covariance is the observation error (``noise_covariance`` is right with
        the averaging-kernel operator; ``total_covariance`` adds the smoothing error).
    seed : int
        Seed of the initial ensemble.
    relaxation_time : float
        Time scale ``τ`` of the first-order chemistry in the forecast model, relaxing ozone
        towards the background's initial field (the climatology, :func:`.models.
        relax_to_climatology`); 0 for none. [s]
    correlation_model : {"gaussian", "soar"}
        Horizontal correlation function of the PKF (:func:`.pkf.correlation_function`).
    workers : int, optional
        Threads for the LETKF analysis (:func:`.filters.letkf_sphere`); default one. The
        result does not depend on it.
    vertical_length : float
        Length of the vertical background-error correlation in ln p (0.5: about 3.5 km),
        full rank (:func:`.background.vertical_correlation`). [1]
    vertical_model : {"gaussian", "soar"}
        Form of that vertical correlation.
    spread_stratosphere : float, optional
        Initial relative error above ~250 hPa; ``spread`` is then the tropospheric one, with
        a smooth transition (tanh in ln p, 0.3 wide). Climatologies miss 20-30 % of
        tropospheric ozone and ~10 % of stratospheric ozone. Default: ``spread`` everywhere.
        [1]
    superob : bool
        Average the profiles of one analysis time that fall in the same model column into
        one superobservation (:func:`superob_profiles`; exact for profiles on one prior).
    signal_threshold : float
        Whitened profile components whose signal-to-noise (singular value of ``L⁻¹AS``, with
        ``S`` the initial relative spread × the prior) is below this are not assimilated:
        they carry only noise (:func:`_informative_rows`). 0 keeps every component. [1]
    """

    filter: str = "letkf"
    members: int = 16
    half_width: float = 800e3
    inflation: float = 1.05
    spread: float = 0.2
    correlation_length: float = 1500e3
    model_error: float = 0.02
    dt: float = 3600.0
    covariance: str = "noise"
    seed: int = 0
    relaxation_time: float = 0.0
    correlation_model: str = "gaussian"
    workers: int | None = None
    vertical_length: float = 0.5
    vertical_model: str = "gaussian"
    spread_stratosphere: float | None = None
    superob: bool = True
    signal_threshold: float = 0.1


# -- the public pieces --------------------------------------------------------------------------
def cycle_times(start, end, window="12h"):
    """Analysis times: the clock times that are multiples of ``window`` after 00 UTC.

    Parameters
    ----------
    start, end : datetime-like
        First and last admissible time (inclusive).
    window : str or pandas.Timedelta
        Cycle length; must divide 24 h (``"12h"``: 00 and 12 UTC as in TM5, [1]_).

    Returns
    -------
    numpy.ndarray of datetime64[ns]

    References
    ----------
    .. [1] Eskes et al., Q. J. R. Meteorol. Soc. 129, 1663-1681, 2003. doi:10.1256/qj.02.14
    """
    w = pd.Timedelta(window)
    if w <= pd.Timedelta(0) or pd.Timedelta("1D") % w != pd.Timedelta(0):
        raise AssimilationInputError(f"window={window!r}: expected a positive duration that "
                                     "divides 24 h (e.g. '12h', '6h', '3h')")
    t0, t1 = pd.Timestamp(start), pd.Timestamp(end)
    if t1 < t0:
        raise AssimilationInputError(f"end {t1} is before start {t0}")
    return pd.date_range(t0.ceil(w), t1.floor(w), freq=w).values.astype("datetime64[ns]")


def _das_like(ds: xr.Dataset, name: str) -> xr.Dataset:
    missing = [v for v in _DAS_VARS if v not in ds.variables]
    if missing:
        raise AssimilationInputError(f"{name} lacks {missing}; expected a DAS-like dataset "
                                     f"with {list(_DAS_VARS)} (see hubkit.simulate.das_field)")
    BG.level_dim(ds["o3_vmr"])
    return ds


def _at(ds: xr.Dataset, var: str, t) -> xr.DataArray:
    da = ds[var]
    return da.sel(time=t, method="nearest") if "time" in da.dims else da


def free_run(background, winds, times, *, dt=3600.0, relaxation_time=0.0, climatology=None):
    """Transport ``background`` ozone, without assimilation, to each of ``times``.

    Parameters
    ----------
    background : xarray.Dataset
        DAS-like dataset (``hubkit.simulate.das_field`` layout); ozone at its first time is the
        initial state. [mol mol⁻¹]
    winds : xarray.Dataset
        ``eastward_wind``, ``northward_wind`` on the cell centres (optionally per level, and
        with a ``time`` dim: interpolated linearly in time to the middle of each step).
        [m s⁻¹]
    times : array_like of datetime64
        Output times, increasing, not before the initial time.
    dt : float
        Time step. [s]
    relaxation_time : float
        First-order chemistry time scale towards ``climatology`` (as
        ``CycleOptions.relaxation_time``); 0 for none. [s]
    climatology : xarray.Dataset, optional
        DAS-like ``o3_vmr`` relaxed to (its first time); default the initial ozone.

    Returns
    -------
    xarray.Dataset
        DAS-like dataset on ``times``: transported ``o3_vmr``, the rest from ``background``
        (nearest time).
    """
    bg = _das_like(background, "background")
    lat, lon, edges = check_grid(bg, "background")
    o3 = bg["o3_vmr"].isel(time=0) if "time" in bg["o3_vmr"].dims else bg["o3_vmr"]
    lev = BG.level_dim(o3)
    o3 = o3.transpose(lev, "latitude", "longitude")
    t0 = np.datetime64(pd.Timestamp(bg["time"].values.ravel()[0]), "ns")
    times = np.asarray(times, dtype="datetime64[ns]")
    if times.size == 0 or np.any(np.diff(times) < np.timedelta64(0)) or times[0] < t0:
        raise AssimilationInputError("times must be increasing and not before the background")
    q = np.asarray(o3.values, dtype=float)
    clim = q if climatology is None else _first(climatology, "o3_vmr", lev)
    model = make_model(winds, lat, lon, edges, o3.shape[0], dt, True, t_ref=t0,
                        relaxation_time=relaxation_time, climatology=clim)
    m = model.air_mass()
    out, t = [], t0
    for tk in times:
        q, m = model.run(q, m, (tk - t) / np.timedelta64(1, "s"),
                         start=(t - t0) / np.timedelta64(1, "s"))
        t = tk
        out.append(q)
    return _das_dataset(bg, lev, times, {"o3_vmr": np.stack(out)}, lat, lon)


def _das_dataset(bg, lev, times, fields: dict, lat, lon, diagnostics=None) -> xr.Dataset:
    """The ``das`` layout: dims (time, level, latitude, longitude) and ``interface``."""
    dims = ("time", "level", "latitude", "longitude")
    t_near = [_at(bg, "temperature", t).transpose(lev, "latitude", "longitude").values
              for t in times]
    ps_near = [_at(bg, "surface_pressure", t).transpose("latitude", "longitude").values
               for t in times]
    units = {"units": "mol mol-1", "standard_name": "mole_fraction_of_ozone_in_air"}
    data = {name: (dims, arr, dict(units, long_name=name.replace("_", " ")))
            for name, arr in fields.items()}
    data["temperature"] = (dims, np.stack(t_near).astype(float),
                           {"units": "K", "standard_name": "air_temperature"})
    data["surface_pressure"] = (("time", "latitude", "longitude"), np.stack(ps_near),
                                {"units": "Pa", "standard_name": "surface_air_pressure"})
    zs = bg["surface_altitude"].transpose("latitude", "longitude")
    data["surface_altitude"] = (("latitude", "longitude"), np.asarray(zs.values, dtype=float),
                                {"units": "m", "standard_name": "surface_altitude"})
    for name in ("hybrid_a", "hybrid_b"):
        data[name] = ("interface", np.asarray(bg[name].values, dtype=float), bg[name].attrs)
    for name, (arr, attrs) in (diagnostics or {}).items():
        data[name] = ("time", arr, attrs)
    coords = {"time": times, "latitude": ("latitude", lat, {"units": "degrees_north"}),
              "longitude": ("longitude", lon, {"units": "degrees_east"})}
    if lev in bg.coords:
        coords["level"] = ("level", bg[lev].values, bg[lev].attrs)
    return xr.Dataset(data, coords=coords,
                      attrs={"title": "ozone analyses and forecasts on hybrid levels",
                             "hubkit_species": "o3", "hubkit_product_type": "das"})


def _xyz(lat, lon):
    return EARTH_RADIUS * grid_unit_vectors(lat, lon)


def _check_fused(fused: xr.Dataset, opts: CycleOptions) -> None:
    need = _FUSED_VARS + (f"{opts.covariance}_covariance",)
    missing = [v for v in need if v not in fused.variables]
    if missing:
        raise AssimilationInputError(f"fused lacks {missing}; expected a fused-ozone dataset "
                                     "(hubkit.fusion.fuse_product)")
    if "cell" not in fused["o3_vmr"].dims:
        raise AssimilationInputError(f"fused['o3_vmr'] has dims {fused['o3_vmr'].dims}; "
                                     "expected (cell, level)")
    for v in ("o3_vmr", "averaging_kernel", f"{opts.covariance}_covariance"):
        if not np.all(np.isfinite(np.asarray(fused[v].values, dtype=float))):
            raise AssimilationInputError(f"fused[{v!r}] has NaN or infinite values; drop those "
                                         "cells first")


def _check_options(opts: CycleOptions) -> None:
    if opts.filter not in ("letkf", "kf", "pkf"):
        raise AssimilationInputError(f"filter={opts.filter!r}: expected 'letkf', 'kf' or "
                                     "'pkf'")
    if opts.correlation_model not in ("gaussian", "soar"):
        raise AssimilationInputError(f"correlation_model={opts.correlation_model!r}: expected "
                                     "'gaussian' or 'soar'")
    if not float(opts.relaxation_time) >= 0:
        raise AssimilationInputError(f"relaxation_time={opts.relaxation_time!r}: expected >= 0 "
                                     "[s] (0: no chemistry)")
    if opts.covariance not in ("noise", "total"):
        raise AssimilationInputError(f"covariance={opts.covariance!r}: expected 'noise' or "
                                     "'total'")
    if opts.filter == "letkf" and int(opts.members) < 2:
        raise AssimilationInputError(f"members={opts.members!r}: expected >= 2")
    if opts.vertical_model not in ("gaussian", "soar"):
        raise AssimilationInputError(f"vertical_model={opts.vertical_model!r}: expected "
                                     "'gaussian' or 'soar'")
    for name in ("half_width", "inflation", "spread", "correlation_length", "dt",
                 "vertical_length"):
        if not float(getattr(opts, name)) > 0:
            raise AssimilationInputError(f"{name}={getattr(opts, name)!r}: expected > 0")


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
    _check_options(opts)
    _check_fused(fused, opts)
    bg = _das_like(background, "background")
    lat, lon, edges = check_grid(bg, "background")
    lev = BG.level_dim(bg["o3_vmr"])
    xb = _first(bg, "o3_vmr", lev)
    n_lev, ny, nx = xb.shape
    G = ny * nx
    if not np.all(np.isfinite(xb)) or np.any(xb <= 0):
        raise AssimilationInputError("background o3_vmr must be finite and > 0 everywhere")
    if opts.filter == "kf" and n_lev * G > 3000:
        raise AssimilationInputError(f"filter='kf' on {n_lev} x {G} = {n_lev * G} state "
                                     "elements; the exact KF is for <= 3000, use 'letkf'")
    a = np.asarray(bg["hybrid_a"].values, dtype=float)
    b = np.asarray(bg["hybrid_b"].values, dtype=float)
    if a.size != n_lev + 1 or b.size != n_lev + 1:
        raise AssimilationInputError(f"hybrid_a/hybrid_b have {a.size}/{b.size} interfaces, "
                                     f"expected {n_lev + 1} (levels + 1)")
    t_obs = np.asarray(fused["time"].values, dtype="datetime64[ns]")
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
    clim = xb if climatology is None else _first(climatology, "o3_vmr", lev)
    model = make_model(winds, lat, lon, edges, n_lev, opts.dt, opts.filter != "kf", t_ref=t0,
                        relaxation_time=opts.relaxation_time, climatology=clim)
    rng = np.random.default_rng(opts.seed)
    warm = "o3_vmr_spread" in bg
    x_flat = xb.reshape(n_lev, G)
    if warm:
        prev = _first(bg, "o3_vmr_spread", lev).reshape(n_lev, G)
        sd = np.sqrt(prev**2 + (opts.model_error * x_flat) ** 2)
    else:
        sd = _relative_spread(opts, a, b)[:, None] * x_flat
    free = _first(bg, "o3_vmr_free", lev) if "o3_vmr_free" in bg else xb.copy()
    Cv = BG.vertical_correlation(BG.level_log_pressure(a, b), opts.vertical_length,
                                 opts.vertical_model)
    glat, glon = np.repeat(lat, nx), np.tile(lon, ny)
    if opts.filter == "letkf":
        ens = _initial_ensemble(rng, x_flat, sd, Cv, lat, lon, opts)  # (N, L, G)
    elif opts.filter == "pkf":
        mean = xb.reshape(-1).copy()
        var = sd**2  # (L, G)
        # model-error variance per second (L, ny, nx): model_error × x per 12 h
        q_rate = ((opts.model_error * x_flat) ** 2 / 43200.0).reshape(n_lev, ny, nx)
    else:
        chord = np.linalg.norm(_xyz(lat, lon)[:, None] - _xyz(lat, lon)[None], axis=-1)
        corr = np.kron(Cv, np.exp(-0.5 * (chord / opts.correlation_length) ** 2))
        s = sd.ravel()
        P = corr * s[:, None] * s[None]
        mean = xb.reshape(-1).copy()
        Qs = opts.model_error * np.repeat(np.abs(x_flat).mean(axis=1), G)
        Q = corr * Qs[:, None] * Qs[None]
    thickness = -np.diff(a + b * 101325.0) * (1.0 if a[0] < a[-1] or b[0] < b[-1] else -1.0)
    m = model.air_mass()
    t = t0
    half = np.timedelta64(int(w.value // 2), "ns")
    rho = float(opts.inflation) ** (w / pd.Timedelta(hours=12))  # inflation per analysis
    res = {k: [] for k in ("o3_vmr", "o3_vmr_forecast", "o3_vmr_free", "o3_vmr_spread")}
    diag = {k: [] for k in _DIAGNOSTICS}
    rmse = {k: [] for k in ("rmse_forecast", "rmse_analysis", "rmse_free")}
    negative = 0
    for tk in times:
        secs = (tk - t) / np.timedelta64(1, "s")
        start = (t - t0) / np.timedelta64(1, "s")
        m_start = m
        free, m = model.run(free, m_start, secs, start=start)
        if opts.filter == "letkf":
            ens = model.run(ens.reshape(-1, n_lev, ny, nx), m_start, secs, start=start)[0] \
                .reshape(opts.members, n_lev, G)
            xf = ens.mean(axis=0)
        elif opts.filter == "pkf":
            mean, var = _pkf_forecast(model, mean.reshape(n_lev, ny, nx),
                                      var.reshape(n_lev, ny, nx), m_start, secs, start, q_rate)
            mean, var = mean.reshape(-1), var.reshape(n_lev, G)
            xf = mean.reshape(n_lev, G)
        elif secs > 0:
            run = dict(start=start, mode="anomaly")
            mean = model.run(mean.reshape(n_lev, ny, nx), m_start, secs, start=start)[0] \
                .reshape(-1)
            MP = model.run(P.reshape(-1, n_lev, ny, nx), m_start, secs, **run)[0] \
                .reshape(P.shape)
            P = model.run(MP.T.copy().reshape(-1, n_lev, ny, nx), m_start, secs, **run)[0] \
                .reshape(P.shape)
            P = 0.5 * (P + P.T) + Q
            xf = mean.reshape(n_lev, G)
        else:
            xf = mean.reshape(n_lev, G)
        t = tk
        sel = np.flatnonzero((t_obs > tk - half) & (t_obs <= tk + half))
        ps_flat = np.asarray(_at(bg, "surface_pressure", tk).transpose("latitude", "longitude")
                             .values, dtype=float).ravel()
        d_b = d_a = None
        spread_obs = chi2 = np.nan
        if sel.size:
            obs = profile_observations(fused, sel, ps_flat, a, b, lat, lon, opts)
            y = obs.values
            if opts.filter == "letkf":
                hx = obs.h(ens)  # (N, p)
                d_b = y - hx.mean(axis=0)
                spread_obs = float(np.sqrt(np.mean(hx.var(axis=0, ddof=1))))
                chi2 = _chi2(d_b, (hx - hx.mean(axis=0)).T * np.sqrt(rho))
                olat, olon = obs.lat[obs.owner], obs.lon[obs.owner]
                z = np.moveaxis(np.log(np.maximum(ens, _TINY)), 1, 2)  # (N, G, L)
                z = F.letkf_sphere(z, y, hx, 1.0, glat, glon, olat, olon, opts.half_width,
                                   inflation=rho, workers=opts.workers)
                ens = np.exp(np.moveaxis(z, 2, 1))
                xa = ens.mean(axis=0)
                d_a = y - obs.h(ens).mean(axis=0)
            elif opts.filter == "pkf":
                K = np.einsum("pkm,pmj,pjl->pkl", obs.linv, obs.A, obs.phi)
                off = obs.h_full(np.zeros((n_lev, G)))
                d_b = y - obs.h(mean.reshape(n_lev, G))
                res_pkf = PK.pkf_analysis(mean.reshape(n_lev, G), var, obs.y, 1.0, obs.cell, K,
                                          glat, glon, opts.correlation_length, Cv,
                                          obs_offset=off, kind=opts.correlation_model)
                # padded rows (K = 0, y = off = 0) add nothing to dᵀS⁻¹d: per kept value
                var, chi2 = res_pkf.variance, res_pkf.omf_chi2 * obs.y.size / y.size
                xa, bad = nonnegative_columns(res_pkf.mean.reshape(n_lev, G), thickness)
                negative += bad
                mean = xa.reshape(-1)
                d_a = y - obs.h(xa)
            else:
                H = obs.matrix(n_lev, G)
                off = obs.h(np.zeros((n_lev, G)))
                S = H @ P @ H.T + np.eye(y.size)
                d_b = y - off - H @ mean
                chi2 = float(d_b @ np.linalg.solve(S, d_b)) / y.size
                spread_obs = float(np.sqrt(np.mean(np.diag(S) - 1.0)))
                mean, P = F.kalman_analysis(mean, P, y - off, H, np.ones(y.size))
                xa, bad = nonnegative_columns(mean.reshape(n_lev, G), thickness)
                negative += bad
                mean = xa.reshape(-1)
                d_a = y - off - H @ mean
        else:
            xa = xf
        _record(diag, sel.size, d_b, d_a, chi2, spread_obs)
        shape = (n_lev, ny, nx)
        res["o3_vmr"].append(xa.reshape(shape))
        res["o3_vmr_forecast"].append(xf.reshape(shape))
        res["o3_vmr_free"].append(free.reshape(shape))
        if opts.filter == "letkf":
            spread = ens.std(axis=0, ddof=1)
        elif opts.filter == "pkf":
            spread = np.sqrt(var)
        else:
            spread = np.sqrt(np.clip(np.diag(P), 0, None)).reshape(n_lev, G)
        res["o3_vmr_spread"].append(spread.reshape(shape))
        if truth is not None:
            xt = truth["o3_vmr"].sel(time=tk)
            xt = np.asarray(xt.transpose(BG.level_dim(xt), "latitude", "longitude").values,
                            dtype=float)
            for k, x in (("rmse_forecast", xf), ("rmse_analysis", xa), ("rmse_free", free)):
                rmse[k].append(float(np.sqrt(np.mean((x.reshape(shape) - xt) ** 2))))
    diagnostics = {k: (np.asarray(v, dtype=np.int64 if k.startswith("n_") else float),
                       _DIAGNOSTICS[k]) for k, v in diag.items()}
    for k, v in rmse.items():
        if v:
            diagnostics[k] = (np.asarray(v), {"units": "mol mol-1", "long_name":
                                              k.replace("_", " ") + " against truth"})
    out = _das_dataset(bg, lev, times, {k: np.stack(v) for k, v in res.items()}, lat, lon,
                       diagnostics)
    out.attrs.update({"hubkit_filter": opts.filter, "hubkit_window": str(window),
                      "hubkit_start": "warm" if warm else "cold",
                      "hubkit_negative_columns": int(negative),
                      "references": "Eskes et al. 2003 doi:10.1256/qj.02.14; Hunt et al. 2007 "
                                    "doi:10.1016/j.physd.2006.11.008; Desroziers et al. 2005 "
                                    "doi:10.1256/qj.05.108"})
    return out


#: Per-time diagnostics of :func:`assimilate` and their attributes.
_DIAGNOSTICS = {
    "n_obs": {"units": "1", "long_name": "fused profiles assimilated"},
    "n_values": {"units": "1", "long_name": "observed values assimilated"},
    "omb_mean": {"units": "1", "long_name": "mean observation minus first guess, whitened"},
    "omb_rms": {"units": "1", "long_name": "rms observation minus first guess, whitened"},
    "oma_mean": {"units": "1", "long_name": "mean observation minus analysis, whitened"},
    "oma_rms": {"units": "1", "long_name": "rms observation minus analysis, whitened"},
    "omf_chi2": {"units": "1", "long_name": "innovation chi-square per observed value, "
                 "d^T (H Pf H^T + R)^-1 d / p (Desroziers et al. 2005)"},
    "spread_obs": {"units": "1", "long_name": "first-guess spread in observation space, "
                   "whitened"},
}
_TINY = 1e-15  # floor of ln x for the LETKF [mol mol-1]


def window_diagnostics(das: xr.Dataset) -> dict:
    """A window's observation-space diagnostics, combined over the analysis times of
    :func:`assimilate`'s output (means and mean squares weighted by the values observed):
    ``n_obs``, ``n_values``, ``omb_mean``, ``omb_rms``, ``oma_mean``, ``oma_rms``, ``chi2``
    (the innovation χ²/dof of Desroziers et al. 2005), ``spread_obs``; NaN without
    observations."""
    n = np.asarray(das["n_values"].values, dtype=float) if "n_values" in das else None
    out = {"n_obs": int(np.nansum(das["n_obs"].values)) if "n_obs" in das else 0,
           "n_values": int(n.sum()) if n is not None else 0}
    if n is None or n.sum() == 0:
        return out | {k: np.nan for k in ("omb_mean", "omb_rms", "oma_mean", "oma_rms",
                                          "chi2", "spread_obs")}
    w = n / n.sum()
    ok = n > 0

    def mean(name):
        return float(np.sum(w[ok] * np.asarray(das[name].values, float)[ok]))

    def rms(name):
        return float(np.sqrt(np.sum(w[ok] * np.asarray(das[name].values, float)[ok] ** 2)))

    return out | {"omb_mean": mean("omb_mean"), "omb_rms": rms("omb_rms"),
                  "oma_mean": mean("oma_mean"), "oma_rms": rms("oma_rms"),
                  "chi2": mean("omf_chi2"), "spread_obs": rms("spread_obs")}



def _record(diag, n_profiles, d_b, d_a, chi2, spread_obs):
    diag["n_obs"].append(int(n_profiles))
    diag["n_values"].append(0 if d_b is None else int(d_b.size))
    for name, d in (("omb", d_b), ("oma", d_a)):
        diag[f"{name}_mean"].append(np.nan if d is None else float(np.mean(d)))
        diag[f"{name}_rms"].append(np.nan if d is None else float(np.sqrt(np.mean(d**2))))
    diag["omf_chi2"].append(float(chi2))
    diag["spread_obs"].append(float(spread_obs))


def _relative_spread(opts, a, b) -> np.ndarray:
    """Initial relative error per model level (L,) (:func:`.background.relative_spread`)."""
    return BG.relative_spread(BG.level_log_pressure(a, b), opts.spread,
                              opts.spread_stratosphere)


def _first(ds: xr.Dataset, name: str, lev: str) -> np.ndarray:
    """``ds[name]`` at its first time as (level, latitude, longitude) floats."""
    da = ds[name].isel(time=0) if "time" in ds[name].dims else ds[name]
    return np.asarray(da.transpose(lev, "latitude", "longitude").values, dtype=float)


def _initial_ensemble(rng, x, sd, correlation, lat, lon, opts) -> np.ndarray:
    """Members ``x · exp(r p − r²/2)``, recentred on ``x`` (N, L, G): ``p`` unit-variance
    perturbations with the vertical ``correlation`` and a Gaussian horizontal correlation
    (:func:`.background.correlated_perturbations`), normalised to unit sample variance per
    point, ``r = sd / x`` the relative standard deviation. Positive by construction."""
    p = BG.correlated_perturbations(rng, opts.members, lat, lon, correlation,
                                    opts.correlation_length)
    p = p - p.mean(axis=0)
    p = p / np.maximum(p.std(axis=0, ddof=1), 1e-12)
    r = sd / x
    ens = x[None] * np.exp(r[None] * p - 0.5 * r[None] ** 2)
    return ens * (x / ens.mean(axis=0))[None]


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


def _pkf_forecast(model, mean, var, m, seconds, start, q_rate):
    """PKF forecast (Eskes et al. 2003; Segers et al. 2005): the mean by the model, the error
    variance advected as a tracer by the same transport (decaying by ``e^{−2h/τ}`` under the
    first-order chemistry), plus the model-error variance ``q_rate`` (L, ny, nx)
    [units² s⁻¹] × time.
    ``mean``, ``var`` (L, ny, nx); returns both advanced by ``seconds``."""
    mean = model.run(mean, m, seconds, start=start)[0]
    var = model.run(var, m, seconds, start=start, mode="variance")[0]
    return mean, np.clip(var, 0.0, None) + q_rate * max(float(seconds), 0.0)


def _chi2(d: np.ndarray, Y: np.ndarray) -> float:
    """``dᵀ(YYᵀ/(N−1) + I)⁻¹d / p`` by the Woodbury identity (``Y`` (p, N), whitened)."""
    N = Y.shape[1]
    Yd = Y.T @ d
    inner = np.linalg.solve((N - 1) * np.eye(N) + Y.T @ Y, Yd)
    return float(d @ d - Yd @ inner) / d.size


def fused_observations(truth, times, pressure, *, cells_per_time=50, relative_error=0.05,
                       prior_error=0.5, seed=0):
    """Simulated fused-ozone profiles of a known field (for twin experiments).

    At each time, ``cells_per_time`` grid columns are drawn at random; the true column is mapped
    to layers around the fusion levels (mass-conserving ``Φ``) and observed by an optimal-
    estimation retrieval with a direct measurement of every level: ``A = S_a(S_a + S_ε)⁻¹``,
    ``x̂ = x_a + A(Φx + ε − x_a)``, noise covariance ``A S_ε Aᵀ`` (Rodgers 2000, eqs. 2.45,
    3.10, 3.16), so that the averaging kernels and the noise are those the assimilation expects.

    Parameters
    ----------
    truth : xarray.Dataset
        DAS-like true field with a time dim (e.g. from :func:`free_run`). [mol mol⁻¹]
    times : array_like of datetime64
        Observation times (each must be in ``truth``).
    pressure : array_like, (m,)
        Fusion levels. [Pa]
    cells_per_time : int
        Profiles per time.
    relative_error : float
        Measurement noise standard deviation relative to the prior profile. [1]
    prior_error : float
        Prior standard deviation relative to the prior profile (correlation length 0.8 in
        ln p). [1]
    seed : int
        Random seed.

    Returns
    -------
    xarray.Dataset
        ``fused-ozone`` layout: ``o3_vmr``, ``averaging_kernel``, ``noise_covariance``,
        ``total_covariance``, ``o3_vmr_apriori``, ``pressure``, ``latitude``, ``longitude``,
        ``time``, plus ``o3_vmr_true`` (``Φx``). [mol mol⁻¹, 1, mol² mol⁻²]
    """
    tr = _das_like(truth, "truth")
    lat, lon, _ = check_grid(tr, "truth")
    lev = BG.level_dim(tr["o3_vmr"])
    p = np.sort(np.asarray(pressure, dtype=float))[::-1]
    m = p.size
    a = np.asarray(tr["hybrid_a"].values, dtype=float)
    b = np.asarray(tr["hybrid_b"].values, dtype=float)
    rng = np.random.default_rng(seed)
    G = lat.size * lon.size
    xs, cells, tt = [], [], []
    for tk in np.asarray(times, dtype="datetime64[ns]"):
        x = np.asarray(tr["o3_vmr"].sel(time=tk).transpose(lev, "latitude", "longitude").values,
                       dtype=float).reshape(-1, G)
        ps = np.asarray(_at(tr, "surface_pressure", tk).transpose("latitude", "longitude")
                        .values, dtype=float).ravel()
        c = rng.choice(G, size=min(int(cells_per_time), G), replace=False)
        ph = a[None, :] + b[None, :] * ps[c, None]
        top_first = ph[0, 0] < ph[0, -1]
        col = x[:, c].T
        if top_first:
            ph, col = ph[:, ::-1], col[:, ::-1]
        phi = layer_maps(ph, fusion_edges(p, ps[c]))
        xs.append(np.einsum("pml,pl->pm", phi, col))
        cells.append(c)
        tt.append(np.full(c.size, tk))
    xtrue = np.concatenate(xs)
    cell = np.concatenate(cells)
    P = xtrue.shape[0]
    xa = xtrue.mean(axis=0)
    lnp = np.log(p)
    Sa = (prior_error * xa)[:, None] * (prior_error * xa)[None] \
        * np.exp(-np.abs(lnp[:, None] - lnp[None]) / 0.8)
    se = (relative_error * xa) ** 2
    A = Sa @ np.linalg.inv(Sa + np.diag(se))
    Sn = A @ np.diag(se) @ A.T
    Ss = (A - np.eye(m)) @ Sa @ (A - np.eye(m)).T
    eps = rng.normal(size=(P, m)) * np.sqrt(se)
    y = xa + (xtrue + eps - xa) @ A.T
    CL, CLL = ("cell", "level"), ("cell", "level", "level_in")
    rep = (P, m, m)
    iy, ix = np.divmod(cell, lon.size)
    return xr.Dataset(
        {"o3_vmr": (CL, y, {"units": "mol mol-1"}),
         "o3_vmr_true": (CL, xtrue, {"units": "mol mol-1"}),
         "averaging_kernel": (CLL, np.broadcast_to(A, rep).copy(), {"units": "1"}),
         "noise_covariance": (CLL, np.broadcast_to(Sn, rep).copy(), {"units": "mol2 mol-2"}),
         "total_covariance": (CLL, np.broadcast_to(Sn + Ss, rep).copy(),
                              {"units": "mol2 mol-2"}),
         "o3_vmr_apriori": ("level", xa, {"units": "mol mol-1"}),
         "pressure": ("level", p, {"units": "Pa"}),
         "latitude": ("cell", lat[iy], {"units": "degrees_north"}),
         "longitude": ("cell", lon[ix], {"units": "degrees_east"}),
         "time": ("cell", np.concatenate(tt))},
        attrs={"hubkit_product_type": "fused-ozone", "hubkit_species": "o3",
               "source": "hubkit.assimilation.cycling.fused_observations (simulated)",
               "hubkit_simulated": "true"})
