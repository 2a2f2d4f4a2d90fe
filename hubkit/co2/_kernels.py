"""The batched kernels behind :func:`hubkit.co2.fit.fit_segments`: the σ grid of every window in
single precision and the refinement of the windows that matter to the exact least-squares
optimum (variable projection, Golub & Pereyra 1973, doi:10.1137/0710036).

Every function here works window by window on ragged layouts (the soundings of every window
laid end to end, sums by ``np.add.reduceat``), so a window's result depends on its own
soundings only, never on which other windows share its task.
"""

from __future__ import annotations

import numpy as np

_TINY = 1e-300
#: Window elements per piece of a task's grid: its single-precision arrays stay in the L2 cache.
GRID_ELEMENTS = 1 << 17
#: The grid evaluates ``exp(-x²/2σ²)`` only where ``|x| <= 6σ`` (it is below 1.6e-8 beyond:
#: under single-precision rounding) ...
_K_GRID = 6.0
#: ... and the refinement where ``|x| <= 10σ`` (the terms beyond, ``x⁴``-weighted included,
#: are below 1e-17 of the sums: under double-precision rounding).
_K_EXACT = 10.0
_HALF_LOG2E = 0.5 / np.log(2.0)


def _ragged(lo, n):
    """Positions ``lo[i] + arange(n[i])`` of every window laid end to end, and the starts."""
    starts = np.zeros(n.size, dtype=np.intp)
    np.cumsum(n[:-1], out=starts[1:])
    idx = np.arange(int(n.sum()), dtype=np.intp) - np.repeat(starts - lo, n)
    return idx, starts


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


class WindowData:
    """What every task of :func:`fit_segments` reads (shared, never written)."""

    def __init__(self, x, yc, w, centres, lo, hi, mo, line, thr, sigmas, tol, max_iter,
                 half_width, peaks_only, screen):
        self.x, self.yc, self.w = x, yc, w
        self.w32, self.y32 = w.astype(np.float32), yc.astype(np.float32)
        self.centres, self.lo, self.hi = centres, lo, hi
        self.mo, self.line, self.thr = mo, line, thr
        self.sigmas, self.tol, self.max_iter = sigmas, tol, max_iter
        self.half_width, self.peaks_only = half_width, peaks_only
        self.screen = screen


def fit_chunk(task):
    """Grid and refinement of the windows ``i0:i1``: their results (a dict of arrays)."""
    d, i0, i1 = task
    part = slice(i0, i1)
    c, lo, hi = d.centres[part], d.lo[part], d.hi[part]
    mo = {k: v[part] for k, v in d.mo.items()}
    line = tuple(v[part] for v in d.line)
    sigmas = d.sigmas
    n_sigma = sigmas.size
    kbest = np.zeros(c.size, dtype=np.intp)
    best, params = np.zeros(c.size), np.zeros((3, c.size))
    quiet = None if d.screen is None else np.zeros(c.size, dtype=bool)
    gains = np.full((n_sigma, c.size), np.nan)
    cum = np.cumsum(hi - lo)
    cuts = np.searchsorted(cum, np.arange(1, cum[-1] // GRID_ELEMENTS + 1) * GRID_ELEMENTS,
                           side="right")
    edges = np.unique(np.concatenate([[0], cuts[cuts < c.size], [c.size]]))
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        g = slice(a, b)
        screen = None if d.screen is None else d.screen[i0 + a:i0 + b]
        kb, be, pa, qu, gains[:, g] = _grid(d, c[g], lo[g], hi[g],
                                            {k: v[g] for k, v in mo.items()},
                                            tuple(v[g] for v in line), screen)
        kbest[g], best[g], params[:, g] = kb, be, pa
        if qu is not None:
            quiet[g] = qu
    at_bound = (kbest == 0) | (kbest == n_sigma - 1)
    res = {"sigma": sigmas[kbest], "slope": params[0], "intercept": params[1],
           "delta": params[2], "delta_chi2": np.maximum(best, 0.0), "at_bound": at_bound}
    if d.thr is None:
        return res
    todo = (~at_bound) & (best > 0) & (best >= d.thr[part])
    if d.peaks_only:
        todo &= params[2] > 0
    if quiet is not None:
        todo &= ~quiet
    todo = np.flatnonzero(todo)
    if todo.size:
        nan = np.full(c.size, np.nan)
        res.update({name: nan.copy() for name in ("delta_err", "sigma_err", "amplitude_err",
                                                  "slope_err", "intercept_err")})
        res["converged"] = np.zeros(c.size, dtype=bool)
        res["iterations"] = np.zeros(c.size, dtype=np.int16)
        _refine(d, res, todo, c, lo, hi, mo, line, kbest, gains)
    return res


def _grid(d, c, lo, hi, mo, line, screen):
    """Δχ² of every window on the σ grid (single precision), widest σ first: the support of
    the Gaussian shrinks with σ, so the windows are clipped to ``|x| <= 6σ`` as σ falls.

    With ``screen`` (one value per window), every other width is evaluated first (the widest
    included) and the others only for the windows whose best Δχ² of a peak reached ``screen``
    (the others are marked in ``quiet`` and keep that coarser optimum).
    """
    n = hi - lo
    starts = np.zeros(n.size, dtype=np.intp)
    np.cumsum(n[:-1], out=starts[1:])
    idx = np.ones(int(n.sum()), dtype=np.intp)  # lo[i] + arange(n[i]) for every window
    idx[0] = lo[0]
    idx[starts[1:]] = lo[1:] - hi[:-1] + 1
    np.cumsum(idx, out=idx)
    dx = d.x[idx]
    dx -= np.repeat(d.x[c], n)
    xs = dx.astype(np.float32)
    u = xs * xs
    u *= np.float32(-_HALF_LOG2E)
    full = (u, xs, d.w32[idx], d.y32[idx], starts)
    best = np.full(c.size, -np.inf)
    kbest = np.zeros(c.size, dtype=np.intp)
    params = np.zeros((3, c.size))
    gains = np.full((d.sigmas.size, c.size), np.nan)
    js = np.arange(d.sigmas.size - 1, -1, -1)
    if screen is None:
        _grid_pass(d, full, js, mo, line, best, kbest, params, gains)
        return kbest, best, params, None, gains
    peak = np.full(c.size, -np.inf)  # best Δχ² of a peak (δ > 0)
    _grid_pass(d, full, js[0::2], mo, line, best, kbest, params, gains, peak)
    loud = np.flatnonzero(peak >= screen)
    if loud.size:
        sub = _take(full, loud)
        rows = (best[loud], kbest[loud], params[:, loud], gains[:, loud])
        _grid_pass(d, sub, js[1::2], {k: v[loud] for k, v in mo.items()},
                   tuple(v[loud] for v in line), *rows)
        best[loud], kbest[loud], params[:, loud], gains[:, loud] = rows
    quiet = np.ones(c.size, dtype=bool)
    quiet[loud] = False
    return kbest, best, params, quiet, gains


def _take(layout, rows):
    """The windows ``rows`` of a single-precision layout."""
    u, xs, ws, ys, starts = layout
    ends = np.append(starts[1:], u.size)
    n = ends[rows] - starts[rows]
    new = np.zeros(n.size, dtype=np.intp)
    np.cumsum(n[:-1], out=new[1:])
    idx = np.arange(int(n.sum()), dtype=np.intp) - np.repeat(new - starts[rows], n)
    return u[idx], xs[idx], ws[idx], ys[idx], new


def _grid_pass(d, layout, js, mo, line, best, kbest, params, gains, peak=None):
    """Evaluate the grid widths ``js`` (descending) and keep each window's best (the
    narrowest of equal ones, as an ascending scan would)."""
    u, xs, ws, ys, starts = layout
    radius = d.half_width
    red = np.add.reduceat
    sums = np.empty((4, len(js), starts.size))
    for i, j in enumerate(js):
        s = d.sigmas[j]
        if _K_GRID * s < 0.7 * radius:  # clip when it drops a third of the elements or more
            radius = _K_GRID * s
            keep = u >= np.float32(-_HALF_LOG2E * radius * radius)
            # the centre stays: n >= 1
            n = red(keep.view(np.uint8), starts, dtype=np.intp)
            u, xs, ws, ys = u[keep], xs[keep], ws[keep], ys[keep]
            starts = np.zeros(n.size, dtype=np.intp)
            np.cumsum(n[:-1], out=starts[1:])
        g = np.multiply(u, np.float32(1.0 / s**2))
        np.exp2(g, out=g)  # exp(-x²/2σ²), u holding -x²·log2(e)/2
        wg = ws * g
        sums[0, i], sums[1, i] = red(wg, starts), red(wg * xs, starts)
        sums[2, i], sums[3, i] = red(wg * g, starts), red(wg * ys, starts)
    m, b, dd, gain = _profile(mo, line, *sums)  # every width at once
    for i, j in enumerate(js):
        better = (gain[i] > best) | ((gain[i] == best) & (j < kbest))
        best[better], kbest[better] = gain[i][better], j
        params[:, better] = m[i][better], b[i][better], dd[i][better]
        gains[j] = gain[i]
    if peak is not None:
        np.maximum(peak, np.where(dd > 0, gain, -np.inf).max(axis=0), out=peak)


class _Exact:
    """The soundings of the windows being refined, clipped to ``|x| <= 10σ_max`` each, with
    the products the sums need (double precision)."""

    def __init__(self, d, c, lo, hi, radius):
        n = hi - lo
        idx, starts = _ragged(lo, n)
        dx = d.x[idx] - np.repeat(d.x[c], n)
        keep = np.abs(dx) <= np.repeat(radius, n)
        self.lengths = np.add.reduceat(keep.view(np.uint8), starts, dtype=np.intp)
        idx, x = idx[keep], dx[keep]
        self.starts = np.zeros(n.size, dtype=np.intp)
        np.cumsum(self.lengths[:-1], out=self.starts[1:])
        w, y = d.w[idx], d.yc[idx]
        wx2 = w * x * x
        self.u = -0.5 * x * x
        # weights of the nine sums: Σw g·(1, x, y, x²y, x³, x²) and Σw g²·(1, x², x⁴)
        self.v1 = (w, w * x, w * y, wx2 * y, wx2 * x, wx2)
        self.v2 = (w, wx2, wx2 * x * x)

    def take(self, keep):
        """The windows ``keep`` (indices) only."""
        out = _Exact.__new__(_Exact)
        n = self.lengths[keep]
        idx, out.starts = _ragged(self.starts[keep], n)
        out.lengths = n
        out.u = self.u[idx]
        out.v1 = tuple(v[idx] for v in self.v1)
        out.v2 = tuple(v[idx] for v in self.v2)
        return out

    def sums(self, t):
        """Σwg, Σwxg, Σwg², Σwyg and the σ-derivative sums for ``σ = exp(t)`` per window."""
        g = np.exp(self.u * np.repeat(np.exp(-2.0 * t), self.lengths))
        red = np.add.reduceat
        s1 = [red(g * v, self.starts) for v in self.v1]
        g2 = g * g
        s2 = [red(g2 * v, self.starts) for v in self.v2]
        # (Sg, Sxg, Sgg, Syg, Σwgx²y, Σwgx³, Σwgx², Σwg²x², Σwg²x⁴)
        return [s1[0], s1[1], s2[0], s1[2], s1[3], s1[4], s1[5], s2[1], s2[2]]


def _refine(d, res, todo, c, lo, hi, mo, line, kbest, gains):
    """Iterate ``dχ²/d ln σ`` to zero: the exact optimum of the profile ``χ²(σ)``.

    The first point is the vertex of the parabola through the three grid values around the
    best grid width, the second a Newton step from it with the parabola's curvature; when they
    do not straddle the root, the grid neighbour on the missing side does (else the window is
    not converged). Then secant steps through the last two evaluations while they stay inside
    the bracket, false position with the Illinois modification otherwise (Dekker's safeguard),
    until ``ln σ`` moves, or the secant would move it, by less than ``tol``. A window is
    evaluated only while it iterates, and its last evaluation is its result; ``iterations``
    counts the exact evaluations.
    """
    sigmas = d.sigmas
    kb = kbest[todo]
    t_lo, t_hi = np.log(sigmas[kb - 1]), np.log(sigmas[kb + 1])
    t_k = np.log(sigmas[kb])
    step_t = np.log(sigmas[1] / sigmas[0])
    g_lo, g_0, g_hi = gains[kb - 1, todo], gains[kb, todo], gains[kb + 1, todo]
    curv = g_lo - 2.0 * g_0 + g_hi  # < 0 at a grid maximum
    good = np.isfinite(curv) & (curv < 0)
    t0 = t_k + np.where(good, 0.5 * step_t * (g_lo - g_hi) / np.where(good, curv, -1.0), 0.0)
    t0 = np.clip(t0, t_k - 0.5 * step_t, t_k + 0.5 * step_t)
    slope = np.where(good, -curv / step_t**2, np.nan)  # estimate of d/dt (dχ²/dt) > 0
    mo_s = {k: v[todo] for k, v in mo.items()}
    line_s = tuple(v[todo] for v in line)
    layout = _Exact(d, c[todo], lo[todo], hi[todo], _K_EXACT * sigmas[kb + 1])
    nt = todo.size
    last = [np.full(nt, np.nan) for _ in range(4)]  # m, b, δ, Δχ² at the last evaluation
    last_sums = [np.full(nt, np.nan) for _ in range(9)]
    iters = np.zeros(nt, dtype=np.int16)
    t_prev, h_prev = np.full(nt, np.nan), np.full(nt, np.nan)  # the last two evaluations
    t_cur, h_cur = np.full(nt, np.nan), np.full(nt, np.nan)

    def grad(layout, rows, t, store):
        """dχ²/d ln σ at ``t`` of the windows ``rows``; ``store``: those whose results count."""
        s = np.exp(t)
        sums = layout.sums(t)
        m, b, dd, gain = _profile({k: v[rows] for k, v in mo_s.items()},
                                  tuple(v[rows] for v in line_s), *sums[:4])
        ty, tx, t1, tg = sums[4:8]
        # d chi2 / d ln(sigma) = -2 delta / sigma^2 * sum(w r g x^2)  (envelope theorem)
        h = -2.0 * dd / s**2 * (ty - m * tx - b * t1 - dd * tg)
        where = rows[store]
        for k, v in enumerate((m, b, dd, gain)):
            last[k][where] = v[store]
        for k, v in enumerate(sums):
            last_sums[k][where] = v[store]
        iters[where] += 1
        t_prev[where], h_prev[where] = t_cur[where], h_cur[where]
        t_cur[where], h_cur[where] = t[store], h[store]
        return h

    everyone = np.arange(nt)
    alltrue = np.ones(nt, dtype=bool)
    h0 = grad(layout, everyone, t0, alltrue)
    newton = t0 - h0 / slope
    inside = np.isfinite(newton) & (newton > t_lo) & (newton < t_hi)
    # no usable Newton step: a quarter grid step downhill
    t1 = np.where(inside, newton, t0 - 0.25 * step_t * np.sign(h0))
    t1 = np.where(h0 == 0, t0, t1)
    h1 = grad(layout, everyone, t1, alltrue)
    # the bracket: the largest t with h < 0 and the smallest with h > 0 among the two points
    a_lo = np.where((h0 < 0) & (h1 < 0), np.maximum(t0, t1),
                    np.where(h0 < 0, t0, np.where(h1 < 0, t1, np.nan)))
    f_lo = np.where(a_lo == t1, h1, h0)
    a_hi = np.where((h0 > 0) & (h1 > 0), np.minimum(t0, t1),
                    np.where(h0 > 0, t0, np.where(h1 > 0, t1, np.nan)))
    f_hi = np.where(a_hi == t1, h1, h0)
    done = (h0 == 0) | (h1 == 0)
    ok_b = np.ones(nt, dtype=bool)
    for missing, t_end, sign in ((np.isnan(a_lo), t_lo, -1.0), (np.isnan(a_hi), t_hi, 1.0)):
        rows = np.flatnonzero(missing & ~done)
        if rows.size:  # the grid neighbour on that side closes the bracket, or nothing does
            h_end = grad(layout.take(rows), rows, t_end[rows], np.ones(rows.size, dtype=bool))
            closes = np.sign(h_end) == sign
            ok_b[rows[~closes]] = False
            if sign < 0:
                a_lo[rows], f_lo[rows] = t_end[rows], h_end
            else:
                a_hi[rows], f_hi[rows] = t_end[rows], h_end
    t_lo, h_lo, t_hi, h_hi = a_lo, f_lo, a_hi, f_hi
    active = ok_b & ~done
    side = np.zeros(nt, dtype=np.int8)
    rows = everyone  # the windows of ``layout``
    for _ in range(d.max_iter):
        act = active[rows]
        n_act = int(act.sum())
        if not n_act:
            break
        if n_act < 0.6 * rows.size:  # compact: evaluate the iterating windows only
            keep = np.flatnonzero(act)
            layout, rows, act = layout.take(keep), rows[keep], act[keep]
        a_lo, a_hi, f_lo, f_hi = t_lo[rows], t_hi[rows], h_lo[rows], h_hi[rows]
        denom = f_hi - f_lo
        t_new = np.where(denom != 0, (a_lo * f_hi - a_hi * f_lo) / np.where(denom != 0, denom, 1),
                         0.5 * (a_lo + a_hi))
        outside = ~((t_new > a_lo) & (t_new < a_hi))
        t_new = np.where(outside, 0.5 * (a_lo + a_hi), t_new)
        # the secant through the last two evaluations when it falls inside the bracket
        # (superlinear), else false position: Dekker's safeguard
        tc, hc, tp, hp = t_cur[rows], h_cur[rows], t_prev[rows], h_prev[rows]
        dh = hc - hp
        sec = tc - hc * (tc - tp) / np.where(dh != 0, dh, 1.0)
        use = (dh != 0) & np.isfinite(sec) & (sec > a_lo) & (sec < a_hi)
        t_new = np.where(use, sec, t_new)
        # converged where the secant's next correction is below tol: the last evaluation
        # is the optimum to within tol (superlinear convergence), no need to make it
        there = act & use & (np.abs(sec - tc) < d.tol)
        done[rows[there]] = True
        active[rows[there]] = False
        act = act & ~there
        t_new = np.where(act, t_new, tc)  # finished windows stay where they are
        h = grad(layout, rows, t_new, act)
        step = np.abs(t_new - tc)
        neg, pos = act & (h < 0), act & (h > 0)
        t_lo[rows], h_lo[rows] = np.where(neg, t_new, a_lo), np.where(neg, h, f_lo)
        t_hi[rows], h_hi[rows] = np.where(pos, t_new, a_hi), np.where(pos, h, f_hi)
        # Illinois: halve the stale end's value when the same end moves twice
        sd = side[rows]
        h_hi[rows] = np.where(neg & (sd == -1), 0.5 * h_hi[rows], h_hi[rows])
        h_lo[rows] = np.where(pos & (sd == 1), 0.5 * h_lo[rows], h_lo[rows])
        side[rows] = np.where(neg, -1, np.where(pos, 1, sd)).astype(np.int8)
        finished = act & ((h == 0) | (step < d.tol) | (t_hi[rows] - t_lo[rows] < d.tol))
        done[rows[finished]] = True
        active[rows[finished]] = False
    m, b, dd, gain = last
    s = np.exp(t_cur)  # the last evaluation of every window
    ok = done & np.isfinite(dd)
    keep = todo
    for name, v in (("slope", m), ("intercept", b), ("delta", dd), ("delta_chi2", gain),
                    ("sigma", s)):
        res[name][keep[ok]] = v[ok]
    res["converged"][keep[ok]] = True
    res["iterations"][keep] = iters
    _errors(res, keep[ok], mo_s, last_sums, m, dd, s, ok)


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
