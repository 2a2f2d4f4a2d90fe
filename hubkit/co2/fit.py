"""Converged least-squares fits of a Gaussian on a linear background, for every window at once.

The model of one window of soundings centred on a candidate sounding is

.. math::

    y(x) = m\\,x + b + \\delta\\,\\exp\\left(-\\frac{x^2}{2\\sigma^2}\\right),
    \\qquad A = \\delta\\,\\sigma\\sqrt{2\\pi}                                    (1)

with ``x`` the along-track distance from the window centre [km], ``y`` XCO2 [ppm], ``δ`` the peak
height [ppm], ``σ`` the width [km] and ``A`` the area [ppm km] (the amplitude of the oco2peak
parametrisation). For a fixed ``σ`` the model is linear in ``(m, b, δ)``: variable projection
(Golub & Pereyra 1973) eliminates them in closed form, leaving a one-dimensional profile
``χ²(σ)``. Every window is evaluated on a geometric grid of ``σ`` (cheap, single precision, the
Gaussian clipped to ``|x| <= 6σ``), and the windows that may matter are refined to the exact
optimum in double precision by a safeguarded secant iteration on ``dχ²/d ln σ`` (the gradient
follows from the envelope theorem), started from the parabola through the grid values. The
line-only fit of every window comes from prefix sums, in O(n) for all windows together.

:func:`fit_segments` does the same for the windows of many orbits at once, cut into tasks that
may run on several cores; every window's arithmetic depends on its own soundings only, so the
result is bit-for-bit the same however the windows are grouped.
"""

from __future__ import annotations

import os

import numpy as np

from hubkit.co2._kernels import WindowData, fit_chunk
from hubkit.errors import CO2InputError

__all__ = ["CHUNK_ELEMENTS", "SQRT_2PI", "fit_segments", "fit_windows", "gaussian_line",
           "window_bounds"]

SQRT_2PI = float(np.sqrt(2.0 * np.pi))


def gaussian_line(x, slope, intercept, delta, sigma):
    """The model (1): a Gaussian of height ``delta`` and width ``sigma`` on a line.

    Parameters
    ----------
    x : array_like
        Along-track distance from the Gaussian's centre. [km]
    slope : float
        Background slope. [ppm km-1]
    intercept : float
        Background at ``x = 0``. [ppm]
    delta : float
        Peak height above the background. [ppm]
    sigma : float
        Gaussian standard deviation. [km]

    Returns
    -------
    ndarray
        Modelled XCO2. [ppm]
    """
    x = np.asarray(x, dtype=float)
    return slope * x + intercept + delta * np.exp(-0.5 * (x / sigma) ** 2)


def window_bounds(x, centres, half_width):
    """Index bounds ``[lo, hi)`` of the soundings within ``±half_width`` of each centre.

    Parameters
    ----------
    x : array_like, (n,)
        Along-track coordinate, sorted ascending. [km]
    centres : array_like of int, (k,)
        Positions in ``x`` of the window centres.
    half_width : float
        Half the window length. [km]

    Returns
    -------
    lo, hi : ndarray of int, (k,)
        ``x[lo:hi]`` are the soundings with ``|x - x[centre]| <= half_width``.
    """
    x = np.asarray(x, dtype=float)
    c = x[np.asarray(centres, dtype=np.intp)]
    lo = np.searchsorted(x, c - half_width, side="left")
    hi = np.searchsorted(x, c + half_width, side="right")
    return lo, hi


#: Window elements per task: the tasks of many orbits (or of one long orbit) share the cores,
#: and a task's refinement iterates its windows together (its grid goes through them in pieces
#: of :data:`hubkit.co2._kernels.GRID_ELEMENTS`).
CHUNK_ELEMENTS = 1 << 19
def _line_moments(x, y, w, centres, lo, hi):
    """Weighted moments of each window about its centre, from prefix sums (float64)."""
    s = x - x[0]
    cum = np.zeros((6, x.size + 1))
    for k, v in enumerate((w, w * s, w * s * s, w * y, w * s * y, w * y * y)):
        np.cumsum(v, out=cum[k, 1:])
    W, Ws, Wss, Wy, Wsy, Wyy = cum[:, hi] - cum[:, lo]
    c = s[centres]
    return {
        "Sw": W, "Sx": Ws - c * W, "Sxx": Wss - 2 * c * Ws + c * c * W,
        "Sy": Wy, "Sxy": Wsy - c * Wy, "Syy": Wyy,
    }


def _line_fit(mo):
    det = mo["Sw"] * mo["Sxx"] - mo["Sx"] ** 2
    det = np.where(det > 0, det, np.nan)
    slope = (mo["Sw"] * mo["Sxy"] - mo["Sx"] * mo["Sy"]) / det
    intercept = (mo["Sxx"] * mo["Sy"] - mo["Sx"] * mo["Sxy"]) / det
    chi2 = mo["Syy"] - slope * mo["Sxy"] - intercept * mo["Sy"]
    return slope, intercept, np.maximum(chi2, 0.0), det


def fit_windows(x, y, uncertainty=None, centres=None, *, half_width=100.0,
                sigma_range=(1.5, 50.0), n_sigma=12, refine=None, tol=1e-10, max_iter=60):
    """Least-squares fit of the model (1) in the window around each candidate centre.

    Every window gets the line-only fit and the Gaussian+line fit on a geometric grid of
    ``n_sigma`` widths spanning ``sigma_range``; the windows selected by ``refine`` are then
    iterated to the exact least-squares optimum (``converged`` True).

    Parameters
    ----------
    x : array_like, (n,)
        Along-track coordinate, sorted ascending, of one orbit. [km]
    y : array_like, (n,)
        XCO2. [ppm]
    uncertainty : array_like, (n,), optional
        One-sigma uncertainty of each sounding (weights ``1/uncertainty²``). [ppm]
        Without it every sounding has weight 1 (uncertainty 1 ppm).
    centres : array_like of int, optional
        Positions in ``x`` of the window centres (default: every sounding).
    half_width : float
        Half the window length. [km]
    sigma_range : (float, float)
        Smallest and largest width searched. [km]
    n_sigma : int
        Number of grid widths (geometric spacing); the refinement starts from the best of them.
    refine : None, "all", float, array or callable
        Which windows are iterated to the optimum: ``"all"``, or those whose grid-best ``Δχ²``
        reaches this value (one per window for an array; ``None``: refine none). A callable
        gets the line-only results (``n``, ``chi2_line`` ...) and returns one of these.
    tol : float
        Convergence tolerance on ``ln σ``.
    max_iter : int
        Iteration limit of the refinement.

    Returns
    -------
    dict of ndarray, one value per window
        ``centre, lo, hi, n, slope`` [ppm km-1], ``intercept`` [ppm], ``delta`` [ppm], ``sigma``
        [km], ``amplitude`` [ppm km], ``chi2_line``, ``chi2``, ``delta_chi2`` (in units of the
        given uncertainties), ``slope_line, intercept_line``, the unscaled standard errors
        ``delta_err, sigma_err, amplitude_err, slope_err, intercept_err`` (NaN where not
        refined; multiply by the noise scale), ``converged``, ``at_bound`` (the grid optimum
        is at an end of ``sigma_range``) and ``iterations`` (exact evaluations of the profile
        during the refinement).

    See Also
    --------
    fit_segments : the same for many orbits at once, on several cores.

    References
    ----------
    .. [1] Golub, G. H. and Pereyra, V., "The differentiation of pseudo-inverses and nonlinear
       least squares problems whose variables separate", SIAM J. Numer. Anal. 10, 413-432,
       1973. doi:10.1137/0710036
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 1 or y.shape != x.shape:
        raise CO2InputError(f"x and y must be 1-D of one length; got shapes {x.shape}, {y.shape}")
    if x.size and np.any(np.diff(x) < 0):
        raise CO2InputError("x (along-track coordinate [km]) must be sorted ascending")
    centres = np.arange(x.size) if centres is None else np.asarray(centres, dtype=np.intp)
    out = fit_segments(x, y, uncertainty, [0, x.size], centres, half_width=half_width,
                       sigma_range=sigma_range, n_sigma=n_sigma, refine=refine, tol=tol,
                       max_iter=max_iter)
    del out["segment"]
    return out


def fit_segments(x, y, uncertainty, segments, centres, *, half_width=100.0,
                 sigma_range=(1.5, 50.0), n_sigma=12, refine=None, tol=1e-10, max_iter=60,
                 peaks_only=False, screen=None, map_chunks=None):
    """:func:`fit_windows` for the windows of many orbits at once.

    The soundings of the orbits are laid end to end; each window stays inside its own orbit.
    The windows of all orbits are cut into tasks of about :data:`CHUNK_ELEMENTS` window
    elements (several short orbits in one task, a long orbit in several), which ``map_chunks``
    may run in parallel threads. Each window's arithmetic depends only on its own soundings,
    so a window's fit is bit-for-bit the same whichever other windows share its task (the
    orbit-by-orbit fits of a Dask cluster equal the in-process ones).

    Parameters
    ----------
    x : array_like, (n,)
        Along-track coordinate, sorted ascending within each orbit. [km]
    y : array_like, (n,)
        XCO2. [ppm]
    uncertainty : array_like, (n,) or None
        One-sigma uncertainty of each sounding; None: 1 ppm. [ppm]
    segments : array_like of int, (m + 1,)
        Boundaries of the orbits: orbit ``j`` is ``x[segments[j]:segments[j + 1]]``.
    centres : array_like of int, (k,)
        Positions in ``x`` of the window centres, ascending.
    half_width, sigma_range, n_sigma, refine, tol, max_iter
        As :func:`fit_windows`; a callable ``refine`` also gets ``segment`` (the orbit of
        each window), so its thresholds can differ per orbit.
    peaks_only : bool
        Refine only the windows whose grid optimum is a peak (``δ > 0``): within one grid
        step of σ neither the sign of ``δ`` nor ``Δχ²`` changes by much, so a dip cannot
        become a significant peak (what :func:`hubkit.co2.find_peaks` needs).
    screen : float, optional
        A fraction of the ``refine`` threshold. With it, every other grid width (the widest
        included) is evaluated first, and the others, like the refinement, only for the
        windows whose best ``Δχ²`` of a peak there reaches ``screen × threshold``; the other
        windows keep the optimum of those widths. :func:`hubkit.co2.find_peaks` uses 0.5
        (measured on the real segment and on simulated plumes: every window significant after
        refinement had at least 0.93 of the detection threshold, four times the screen, on
        those widths).
    map_chunks : callable, optional
        ``map_chunks(function, list_of_arguments) -> list of results``; the default runs the
        tasks one after the other (e.g. pass a thread pool's map to use several cores).

    Returns
    -------
    dict of ndarray
        As :func:`fit_windows`, plus ``segment``; ``centre, lo, hi`` index ``x``.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if uncertainty is None:
        w = np.ones_like(x)
    else:
        unc = np.asarray(uncertainty, dtype=np.float64)
        if unc.shape != x.shape or not np.all(unc > 0):
            low = np.nanmin(unc) if unc.size else None
            raise CO2InputError("uncertainty must be positive and finite, one value per sounding "
                                f"[ppm]; got shape {unc.shape}, min {low}")
        w = 1.0 / unc**2
    segments = np.asarray(segments, dtype=np.intp)
    centres = np.asarray(centres, dtype=np.intp)
    k = centres.size
    seg = np.searchsorted(segments, centres, side="right") - 1
    lo, hi = np.zeros(k, dtype=np.intp), np.zeros(k, dtype=np.intp)
    yc = np.empty_like(y)
    y0 = np.zeros(k)
    mo = {name: np.zeros(k) for name in ("Sw", "Sx", "Sxx", "Sy", "Sxy", "Syy")}
    first = np.searchsorted(seg, np.arange(segments.size), side="left")
    for j in range(segments.size - 1):
        a, b = segments[j], segments[j + 1]
        if b <= a:
            continue
        xs = x[a:b]
        med = float(np.median(y[a:b]))
        yc[a:b] = y[a:b] - med  # centred: the normal equations stay well conditioned
        i0, i1 = first[j], first[j + 1]
        if i1 <= i0:
            continue
        c = centres[i0:i1] - a
        lo_j, hi_j = window_bounds(xs, c, half_width)
        lo[i0:i1], hi[i0:i1], y0[i0:i1] = lo_j + a, hi_j + a, med
        for name, v in _line_moments(xs, yc[a:b], w[a:b], c, lo_j, hi_j).items():
            mo[name][i0:i1] = v
    line = _line_fit(mo)
    out = {
        "centre": centres, "lo": lo, "hi": hi, "n": hi - lo, "segment": seg,
        "slope_line": line[0], "intercept_line": line[1] + y0, "chi2_line": line[2],
    }
    if callable(refine):
        refine = refine(out)
    if refine is None:
        thr = None
    elif isinstance(refine, str):
        if refine != "all":
            raise CO2InputError(f"refine={refine!r}; expected None, 'all', a number, an array or "
                                "a callable")
        thr = np.full(k, -np.inf)
    else:
        thr = np.broadcast_to(np.asarray(refine, dtype=np.float64), (k,))
    nanv = np.full(k, np.nan)
    res = {n: nanv.copy() for n in ("slope", "intercept", "delta", "sigma", "delta_chi2",
                                    "delta_err", "sigma_err", "amplitude_err", "slope_err",
                                    "intercept_err")}
    res["converged"] = np.zeros(k, dtype=bool)
    res["at_bound"] = np.zeros(k, dtype=bool)
    res["iterations"] = np.zeros(k, dtype=np.int16)
    if k and x.size:
        if screen is not None and thr is not None:
            screen = float(screen) * thr
        else:
            screen = None
        data = WindowData(x, yc, w, centres, lo, hi, mo, line, thr,
                     np.geomspace(sigma_range[0], sigma_range[1], n_sigma), tol, max_iter,
                     half_width, peaks_only, screen)
        # tasks of equal size, as many as a multiple of the cores when they run in parallel
        cum = np.cumsum(hi - lo)
        n_tasks = -(-int(cum[-1]) // CHUNK_ELEMENTS)
        if map_chunks is not None:
            cores = os.cpu_count() or 1
            n_tasks = -(-n_tasks // cores) * cores
        cuts = np.searchsorted(cum, np.arange(1, n_tasks) * (cum[-1] / n_tasks), side="right")
        bounds = np.unique(np.concatenate([[0], cuts[cuts < k], [k]]))
        tasks = [(data, int(i0), int(i1)) for i0, i1 in zip(bounds[:-1], bounds[1:],
                                                            strict=True)]
        if map_chunks is None or len(tasks) == 1:
            parts = [fit_chunk(t) for t in tasks]
        else:
            parts = map_chunks(fit_chunk, tasks)
        for (_, i0, i1), part in zip(tasks, parts, strict=True):
            for name, v in part.items():
                res[name][i0:i1] = v
    res["intercept"] = res["intercept"] + y0
    res["amplitude"] = res["delta"] * res["sigma"] * SQRT_2PI
    res["chi2"] = out["chi2_line"] - res["delta_chi2"]
    out.update(res)
    return out
