"""Converged least-squares fits of a Gaussian on a linear background, for every window at once.

The model of one window of soundings centred on a candidate sounding is

.. math::

    y(x) = m\\,x + b + \\delta\\,\\exp\\left(-\\frac{x^2}{2\\sigma^2}\\right),
    \\qquad A = \\delta\\,\\sigma\\sqrt{2\\pi}                                    (1)

with ``x`` the along-track distance from the window centre [km], ``y`` XCO2 [ppm], ``δ`` the peak
height [ppm], ``σ`` the width [km] and ``A`` the area [ppm km] (the amplitude of the oco2peak
parametrisation). For a fixed ``σ`` the model is linear in ``(m, b, δ)``: variable projection
(Golub & Pereyra 1973) eliminates them in closed form, leaving a one-dimensional profile
``χ²(σ)``. Every window is evaluated on a geometric grid of ``σ`` (cheap, single precision), and
the windows that may matter are refined to the exact optimum in double precision by a bracketed
false-position iteration on ``dχ²/d ln σ`` (the gradient follows from the envelope theorem). The
line-only fit of every window comes from prefix sums, in O(n) for all windows together.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SQRT_2PI", "fit_windows", "gaussian_line", "window_bounds"]

SQRT_2PI = float(np.sqrt(2.0 * np.pi))
_TINY = 1e-300


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


class _Windows:
    """The soundings of every window laid end to end (ragged), with the per-element terms."""

    def __init__(self, x, y, w, centres, lo, hi):
        n = hi - lo
        self.starts = np.zeros(n.size, dtype=np.intp)
        np.cumsum(n[:-1], out=self.starts[1:])
        idx = np.arange(int(n.sum()), dtype=np.intp) - np.repeat(self.starts - lo, n)
        self.dx = x[idx] - np.repeat(x[centres], n)  # [km]
        self.w = w[idx]
        self.y = y[idx]
        self.lengths = n
        self._cast = {}

    def reduce(self, values):
        return np.add.reduceat(values, self.starts)

    def subset(self, keep):
        """The windows ``keep`` (bool mask) only."""
        out = _Windows.__new__(_Windows)
        n = np.diff(np.append(self.starts, self.dx.size))[keep]
        starts = self.starts[keep]
        out.starts = np.zeros(n.size, dtype=np.intp)
        np.cumsum(n[:-1], out=out.starts[1:])
        idx = np.arange(int(n.sum()), dtype=np.intp) - np.repeat(out.starts - starts, n)
        out.dx, out.w, out.y = self.dx[idx], self.w[idx], self.y[idx]
        out.lengths = n
        out._cast = {}
        return out

    def cast(self, dtype):
        """``(-dx²/2, w, dx, y)`` in ``dtype`` (cached)."""
        key = np.dtype(dtype).str
        if key not in self._cast:
            self._cast[key] = tuple(v.astype(dtype) for v in
                                    (-0.5 * self.dx * self.dx, self.w, self.dx, self.y))
        return self._cast[key]


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


def _profile(mo, line, Sg, Sxg, Sgg, Syg):
    """Closed-form (m, b, δ) and Δχ² for one σ, given the Gaussian's weighted sums."""
    slope0, intercept0, _, det = line
    # projection of g on the line space: (b_g, m_g) = M0^-1 [Sg, Sxg]
    bg = (mo["Sxx"] * Sg - mo["Sx"] * Sxg) / det
    mg = (mo["Sw"] * Sxg - mo["Sx"] * Sg) / det
    rg = Sgg - bg * Sg - mg * Sxg
    ry = Syg - intercept0 * Sg - slope0 * Sxg
    ok = rg > 1e-12 * np.maximum(Sgg, _TINY)
    rg = np.where(ok, rg, np.nan)
    delta = ry / rg
    gain = np.where(ok, ry * delta, 0.0)
    delta = np.where(ok, delta, 0.0)
    return slope0 - delta * mg, intercept0 - delta * bg, delta, gain


def _gauss_sums(win, a, dtype, extra=False):
    """Σwg, Σwxg, Σwg², Σwyg (and the σ-derivative sums) of every window for ``a = 1/σ²``."""
    u, w, x, y = win.cast(dtype)
    if np.ndim(a) == 0:  # one σ for every window
        g = np.exp(u * u.dtype.type(a))
    else:
        g = np.exp(u * np.repeat(np.asarray(a, dtype=dtype), win.lengths))
    wg = w * g
    red = win.reduce
    out = [red(wg), red(wg * x), red(wg * g), red(wg * y)]
    if extra:
        wgx2 = wg * x * x
        out += [red(wgx2 * y), red(wgx2 * x), red(wgx2), red(wgx2 * g), red(wgx2 * x * x * g)]
    return [np.asarray(v, dtype=np.float64) for v in out]


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
    refine : None, "all", float or callable
        Which windows are iterated to the optimum: ``"all"``, or those whose grid-best ``Δχ²``
        reaches this value (``None``: refine none). A callable gets the line-only results
        (``n``, ``chi2_line`` ...) and returns one of these.
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
        is at an end of ``sigma_range``) and ``iterations``.

    References
    ----------
    .. [1] Golub, G. H. and Pereyra, V., "The differentiation of pseudo-inverses and nonlinear
       least squares problems whose variables separate", SIAM J. Numer. Anal. 10, 413-432,
       1973. doi:10.1137/0710036
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 1 or y.shape != x.shape:
        raise ValueError(f"x and y must be 1-D of one length; got shapes {x.shape}, {y.shape}")
    if x.size and np.any(np.diff(x) < 0):
        raise ValueError("x (along-track coordinate [km]) must be sorted ascending")
    if uncertainty is None:
        w = np.ones_like(x)
    else:
        unc = np.asarray(uncertainty, dtype=np.float64)
        if unc.shape != x.shape or not np.all(unc > 0):
            low = np.nanmin(unc) if unc.size else None
            raise ValueError("uncertainty must be positive and finite, one value per sounding "
                             f"[ppm]; got shape {unc.shape}, min {low}")
        w = 1.0 / unc**2
    centres = np.arange(x.size) if centres is None else np.asarray(centres, dtype=np.intp)
    lo, hi = window_bounds(x, centres, half_width)
    k = centres.size
    y0 = float(np.median(y)) if y.size else 0.0
    yc = y - y0  # centred: the normal equations stay well conditioned
    mo = _line_moments(x, yc, w, centres, lo, hi)
    line = _line_fit(mo)
    out = {
        "centre": centres, "lo": lo, "hi": hi, "n": hi - lo,
        "slope_line": line[0], "intercept_line": line[1] + y0, "chi2_line": line[2],
    }
    if callable(refine):
        refine = refine(out)
    nanv = np.full(k, np.nan)
    res = {n: nanv.copy() for n in ("slope", "intercept", "delta", "sigma", "delta_chi2",
                                    "delta_err", "sigma_err", "amplitude_err", "slope_err",
                                    "intercept_err")}
    res["converged"] = np.zeros(k, dtype=bool)
    res["at_bound"] = np.zeros(k, dtype=bool)
    res["iterations"] = np.zeros(k, dtype=np.int16)
    if k and x.size:
        _fit(x, yc, w, centres, lo, hi, mo, line, res, sigma_range, n_sigma, refine, tol,
             max_iter, half_width)
    res["intercept"] = res["intercept"] + y0
    res["amplitude"] = res["delta"] * res["sigma"] * SQRT_2PI
    res["chi2"] = out["chi2_line"] - res["delta_chi2"]
    out.update(res)
    return out


def _fit(x, yc, w, centres, lo, hi, mo, line, res, sigma_range, n_sigma, refine, tol,
         max_iter, half_width):
    win = _Windows(x, yc, w, centres, lo, hi)
    sigmas = np.geomspace(sigma_range[0], sigma_range[1], n_sigma)
    best = np.full(centres.size, -np.inf)
    kbest = np.zeros(centres.size, dtype=np.intp)
    params = np.zeros((3, centres.size))
    for j, s in enumerate(sigmas):  # the grid, in single precision
        sums = _gauss_sums(win, 1.0 / s**2, np.float32)
        m, b, d, gain = _profile(mo, line, *sums)
        better = gain > best
        best[better], kbest[better] = gain[better], j
        params[:, better] = m[better], b[better], d[better]
    # grid optimum of every window (single-precision sums; refined windows are replaced below)
    res["sigma"] = sigmas[kbest]
    res["slope"], res["intercept"], res["delta"] = params
    res["delta_chi2"] = np.maximum(best, 0.0)
    res["at_bound"] = (kbest == 0) | (kbest == n_sigma - 1)
    if refine is None:
        return
    todo = (~res["at_bound"]) & (res["delta_chi2"] > 0)
    if refine != "all":
        todo &= res["delta_chi2"] >= float(refine)
    if not todo.any():
        return
    sub = win.subset(todo)
    mo_s = {k: v[todo] for k, v in mo.items()}
    line_s = tuple(v[todo] for v in line)
    t_lo, t_hi = np.log(sigmas[kbest[todo] - 1]), np.log(sigmas[kbest[todo] + 1])

    def grad(t):
        s = np.exp(t)
        sums = _gauss_sums(sub, np.exp(-2 * t), np.float64, extra=True)
        m, b, d, gain = _profile(mo_s, line_s, *sums[:4])
        ty, tx, t1, tg = sums[4:8]
        # d chi2 / d ln(sigma) = -2 delta / sigma^2 * sum(w r g x^2)
        h = -2.0 * d / s**2 * (ty - m * tx - b * t1 - d * tg)
        return h, (m, b, d, gain, sums)

    h_lo, _ = grad(t_lo)
    h_hi, _ = grad(t_hi)
    bracketed = (h_lo < 0) & (h_hi > 0)
    t = np.where(bracketed, 0.5 * (t_lo + t_hi), np.log(res["sigma"][todo]))
    active = bracketed.copy()
    side = np.zeros(t.size, dtype=np.int8)
    iters = np.zeros(t.size, dtype=np.int16)
    done = np.zeros(t.size, dtype=bool)
    for _ in range(max_iter):
        if not active.any():
            break
        denom = h_hi - h_lo
        t_new = np.where(denom != 0, (t_lo * h_hi - t_hi * h_lo) / np.where(denom != 0, denom, 1),
                         0.5 * (t_lo + t_hi))
        outside = ~((t_new > t_lo) & (t_new < t_hi))
        t_new = np.where(outside, 0.5 * (t_lo + t_hi), t_new)
        t_new = np.where(active, t_new, t)
        h, _ = grad(t_new)
        step = np.abs(t_new - t)
        t = t_new
        iters += active
        neg = active & (h < 0)
        pos = active & (h > 0)
        t_lo, h_lo = np.where(neg, t, t_lo), np.where(neg, h, h_lo)
        t_hi, h_hi = np.where(pos, t, t_hi), np.where(pos, h, h_hi)
        # Illinois: halve the stale end's value when the same end moves twice
        h_hi = np.where(neg & (side == -1), 0.5 * h_hi, h_hi)
        h_lo = np.where(pos & (side == 1), 0.5 * h_lo, h_lo)
        side = np.where(neg, -1, np.where(pos, 1, side)).astype(np.int8)
        finished = active & ((h == 0) | (step < tol) | (t_hi - t_lo < tol))
        done |= finished
        active &= ~finished
    h, (m, b, d, gain, sums) = grad(t)
    s = np.exp(t)
    ok = done & np.isfinite(d)
    keep = np.flatnonzero(todo)
    for name, v in (("slope", m), ("intercept", b), ("delta", d), ("delta_chi2", gain),
                    ("sigma", s)):
        res[name][keep[ok]] = v[ok]
    res["converged"][keep[ok]] = True
    res["iterations"][keep] = iters
    _errors(res, keep[ok], mo_s, sums, m, d, s, ok)


def _errors(res, where, mo, sums, m, d, s, ok):
    """Unscaled standard errors from (JᵀWJ)⁻¹ at the optimum, J = ∂model/∂(m, b, δ, σ)."""
    Sg, Sxg, Sgg, _, _, tx, t1, tg, t4 = sums
    c = d / s**3  # ∂g/∂σ = g x² / σ³, times δ
    F = np.empty((m.size, 4, 4))
    F[:, 0, 0], F[:, 0, 1], F[:, 0, 2], F[:, 0, 3] = mo["Sxx"], mo["Sx"], Sxg, c * tx
    F[:, 1, 1], F[:, 1, 2], F[:, 1, 3] = mo["Sw"], Sg, c * t1
    F[:, 2, 2], F[:, 2, 3] = Sgg, c * tg
    F[:, 3, 3] = c * c * t4
    iu = np.triu_indices(4, 1)
    F[:, iu[1], iu[0]] = F[:, iu[0], iu[1]]
    F = F[ok]
    cov = np.full_like(F, np.nan)
    good = np.isfinite(F).all(axis=(1, 2))
    good[good] = np.linalg.cond(F[good]) < 1e14
    cov[good] = np.linalg.inv(F[good])
    dd, s_ = d[ok], s[ok]
    var = np.diagonal(cov, axis1=1, axis2=2)
    res["slope_err"][where] = np.sqrt(var[:, 0])
    res["intercept_err"][where] = np.sqrt(var[:, 1])
    res["delta_err"][where] = np.sqrt(var[:, 2])
    res["sigma_err"][where] = np.sqrt(var[:, 3])
    var_a = 2 * np.pi * (s_**2 * var[:, 2] + dd**2 * var[:, 3] + 2 * dd * s_ * cov[:, 2, 3])
    res["amplitude_err"][where] = np.sqrt(np.maximum(var_a, 0.0))
