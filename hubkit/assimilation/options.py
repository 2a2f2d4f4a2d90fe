"""Settings of the assimilation cycles, their analysis times, and the checks of their inputs.

:class:`CycleOptions` holds what travels together (filter, ensemble, localisation, inflation,
errors, model step); :func:`cycle_times` gives the analysis times of a window (00 and 12 UTC for
the 12-h default, as TM5, Eskes et al. 2003); :func:`check_options` and :func:`check_fused` say
what is wrong with settings or fused profiles before any cycle runs.

References
----------
.. [1] Eskes, van Velthoven, Valks, Kelder, Q. J. R. Meteorol. Soc. 129, 1663-1681, 2003.
   doi:10.1256/qj.02.14
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from hubkit.errors import AssimilationInputError

__all__ = ["FUSED_VARS", "CycleOptions", "check_fused", "check_options", "cycle_times"]

#: Variables :func:`hubkit.assimilation.cycling.assimilate` needs of a fused-ozone product
#: (besides the chosen covariance).
FUSED_VARS = ("o3_vmr", "averaging_kernel", "o3_vmr_apriori", "pressure", "latitude",
              "longitude", "time")


@dataclass(frozen=True)
class CycleOptions:
    """Settings of :func:`~hubkit.assimilation.cycling.assimilate` that travel together.

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
        one superobservation (:func:`.profiles.superob_profiles`; exact for profiles on one prior).
    signal_threshold : float
        Whitened profile components whose signal-to-noise (singular value of ``L⁻¹AS``, with
        ``S`` the initial relative spread × the prior) is below this are not assimilated:
        they carry only noise (:func:`.profiles.informative_rows`). 0 keeps every component. [1]
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


def check_fused(fused: xr.Dataset, opts: CycleOptions) -> None:
    """Raise an AssimilationInputError unless ``fused`` is a fused-ozone dataset of finite
    profiles (cell, level) with the covariance ``opts.covariance`` names."""
    need = FUSED_VARS + (f"{opts.covariance}_covariance",)
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


def check_options(opts: CycleOptions) -> None:
    """Raise an AssimilationInputError naming the first setting of ``opts`` out of range."""
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
