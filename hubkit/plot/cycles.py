"""Per-cycle diagnostics of the assimilation, the way a data-assimilation scientist reads them.

:func:`cycle_diagnostics` draws one table row per analysis cycle:

* the fit to the observations: observation-minus-background (O−B) and observation-minus-analysis
  (O−A), whitened by the observation error (dimensionless), mean and RMS. The analysis must fit
  better than the background: RMS O−A < RMS O−B;
* the innovation χ²/dof (Desroziers et al. 2005 [1]_): ``E[dᵀ(HBHᵀ + R)⁻¹d] / p = 1`` when the
  background and observation errors are specified right; 0.5-2 is drawn as the acceptable band;
* the ensemble spread against the RMS O−B, both in the whitened observation space: an ensemble
  whose spread represents the background error has ``RMS(O−B)² ≈ spread² + 1`` (the 1 is the
  whitened observation error; Houtekamer & Mitchell 2005 [2]_, Desroziers et al. 2005 eq. 1);
* the observations assimilated per cycle, with cold starts marked;
* with an OSSE truth: the RMSE against the truth of the analysis, the forecast (first guess),
  a free model run and the climatology, for the total column and the 0-6 km column [DU], and
  the biases [%] when given.

References
----------
.. [1] Desroziers, Berre, Chapnik & Poli, Q. J. R. Meteorol. Soc. 131, 3385-3396, 2005.
   doi:10.1256/qj.05.108
.. [2] Houtekamer & Mitchell, Q. J. R. Meteorol. Soc. 131, 3269-3289, 2005.
   doi:10.1256/qj.05.135
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from hubkit.errors import PlotInputError

__all__ = ["CHI2_BAND", "COLUMNS", "TRUTH_KINDS", "cycle_diagnostics"]

#: The χ²/dof band drawn as acceptable (ideal 1).
CHI2_BAND = (0.5, 2.0)

#: Truth comparisons, in drawing order.
TRUTH_KINDS = ("analysis", "forecast", "free", "climatology")

#: The columns :func:`cycle_diagnostics` reads (only ``time`` is required), with their meaning.
COLUMNS = {
    "time": "analysis time (datetime64, UTC)",
    "n_obs": "profiles assimilated [1]",
    "omb_mean": "mean O-B, whitened by the observation error [1]",
    "omb_rms": "RMS O-B, whitened [1]",
    "oma_mean": "mean O-A, whitened [1]",
    "oma_rms": "RMS O-A, whitened [1]",
    "chi2": "innovation chi-square per degree of freedom (Desroziers et al. 2005) [1]",
    "spread_obs": "ensemble spread in the whitened observation space [1]",
    "start": "'cold' or 'warm'",
    **{f"rmse_{part}_{kind}": f"RMSE of the {kind} against the truth, {what} [DU]"
       for kind in TRUTH_KINDS for part, what in (("total", "total column"),
                                                   ("trop", "0-6 km column"))},
    **{f"bias_{part}_{kind}": f"bias of the {kind} against the truth, {what} [%]"
       for kind in TRUTH_KINDS for part, what in (("total", "total column"),
                                                   ("trop", "0-6 km column"))},
}

_STYLE = {"marker": "o", "ms": 4, "lw": 1.4}
_KIND_COLOURS = {"analysis": "C0", "forecast": "C1", "free": "C2", "climatology": "0.45"}


def _line(ax, x, table, column, label, **kwargs):
    """Plot ``table[column]`` against ``x`` with the column name as the line's gid."""
    if column not in table:
        return None
    (line,) = ax.plot(x, table[column].to_numpy(dtype=float), label=label,
                      **{**_STYLE, **kwargs})
    line.set_gid(column)
    return line


def _missing(ax, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what} in the table", transform=ax.transAxes, ha="center",
            va="center", color="0.4", fontsize=9)


def _checked(table) -> pd.DataFrame:
    if not isinstance(table, pd.DataFrame):
        raise PlotInputError(f"cycle_diagnostics: table is a {type(table).__name__}; expected "
                             "a pandas.DataFrame with one row per cycle")
    if "time" not in table.columns:
        raise PlotInputError(f"cycle_diagnostics: the table has no column 'time'; expected the "
                             f"analysis times (columns found: {list(table.columns)})")
    if len(table) == 0:
        raise PlotInputError("cycle_diagnostics: the table has no rows; expected one per cycle")
    try:
        time = pd.to_datetime(table["time"])
    except (ValueError, TypeError) as exc:
        raise PlotInputError(f"cycle_diagnostics: column 'time' is not datetime-like "
                             f"({exc}); expected datetime64 analysis times") from None
    if time.isna().any():
        raise PlotInputError(f"cycle_diagnostics: column 'time' has {int(time.isna().sum())} "
                             "missing value(s); expected one analysis time per row")
    if getattr(time.dt, "tz", None) is not None:
        time = time.dt.tz_convert("UTC").dt.tz_localize(None)
    return table.assign(time=time).sort_values("time", ignore_index=True)


def cycle_diagnostics(table: pd.DataFrame, *, title: str | None = None):
    """Per-cycle diagnostics of an assimilation run (one row per cycle), as a figure.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per analysis cycle. Required: ``time`` (analysis time, datetime64 UTC).
        Optional (panels say when absent): ``n_obs`` [1], ``omb_mean``, ``omb_rms``,
        ``oma_mean``, ``oma_rms`` (O−B and O−A whitened by the observation error) [1],
        ``chi2`` (innovation χ²/dof, Desroziers et al. 2005) [1], ``spread_obs`` (ensemble
        spread in the whitened observation space) [1], ``start`` (``"cold"``/``"warm"``), and
        with a known truth ``rmse_total_{kind}``, ``rmse_trop_{kind}`` [DU] and
        ``bias_total_{kind}``, ``bias_trop_{kind}`` [%] for ``kind`` in :data:`TRUTH_KINDS`
        (see :data:`COLUMNS`).
    title : str, optional
        Figure title (default: cycles, cold starts and the mean χ²/dof).

    Returns
    -------
    matplotlib.figure.Figure
        Panels sharing the time axis: O−B/O−A; χ²/dof with the band :data:`CHI2_BAND`; RMS O−B
        against the spread and the consistent ``sqrt(spread² + 1)``; observations per cycle;
        and, with truth columns, the RMSE per kind for the total and the 0-6 km column and the
        biases. Each data line's gid is its column name (``sqrt(spread² + 1)``:
        ``"spread_obs_expected_omb_rms"``); cold starts are vertical dotted lines.

    Raises
    ------
    PlotInputError
        Not a DataFrame, no ``time`` column, no rows, or times that are not datetimes.

    References
    ----------
    .. [1] Desroziers et al., Q. J. R. Meteorol. Soc. 131, 3385-3396, 2005.
       doi:10.1256/qj.05.108
    """
    import matplotlib.pyplot as plt

    table = _checked(table)
    x = table["time"].to_numpy()
    truth_parts = [part for part in ("total", "trop")
                   if any(f"rmse_{part}_{k}" in table for k in TRUTH_KINDS)]
    has_bias = any(f"bias_{p}_{k}" in table for p in ("total", "trop") for k in TRUTH_KINDS)
    n_panels = 4 + len(truth_parts) + int(has_bias)
    fig, axes = plt.subplots(n_panels, 1, figsize=(10.5, 2.0 * n_panels + 0.6), sharex=True,
                             constrained_layout=True)
    ax_fit, ax_chi2, ax_spread, ax_obs = axes[:4]

    # O-B and O-A
    _line(ax_fit, x, table, "omb_rms", "RMS O−B", color="C3")
    _line(ax_fit, x, table, "oma_rms", "RMS O−A", color="C0")
    _line(ax_fit, x, table, "omb_mean", "mean O−B", color="C3", ls="--", marker="s")
    _line(ax_fit, x, table, "oma_mean", "mean O−A", color="C0", ls="--", marker="s")
    ax_fit.axhline(0.0, color="0.6", lw=0.8)
    ax_fit.set_ylabel("O−B, O−A\n(whitened) [1]")
    if not any(c in table for c in ("omb_rms", "oma_rms", "omb_mean", "oma_mean")):
        _missing(ax_fit, "O−B / O−A")

    # chi-square per degree of freedom
    band = ax_chi2.axhspan(*CHI2_BAND, color="C2", alpha=0.15,
                           label=f"acceptable {CHI2_BAND[0]:g}–{CHI2_BAND[1]:g}")
    band.set_gid("chi2_band")
    ax_chi2.axhline(1.0, color="C2", lw=0.8)
    if _line(ax_chi2, x, table, "chi2", "χ²/dof (Desroziers et al. 2005)", color="k") is None:
        _missing(ax_chi2, "χ²/dof")
    else:
        top = np.nanmax(np.append(table["chi2"].to_numpy(dtype=float), CHI2_BAND[1]))
        ax_chi2.set_ylim(0.0, 1.1 * top if np.isfinite(top) else 2.5)
    ax_chi2.set_ylabel("innovation\nχ²/dof [1]")

    # spread against RMS O-B
    _line(ax_spread, x, table, "omb_rms", "RMS O−B", color="C3")
    if _line(ax_spread, x, table, "spread_obs", "ensemble spread", color="C4") is not None:
        expected = np.sqrt(table["spread_obs"].to_numpy(dtype=float) ** 2 + 1.0)
        (line,) = ax_spread.plot(x, expected, label="√(spread² + 1): consistent RMS O−B",
                                 color="C4", ls=":", **{k: v for k, v in _STYLE.items()
                                                        if k != "lw"})
        line.set_gid("spread_obs_expected_omb_rms")
    if not ax_spread.lines:
        _missing(ax_spread, "spread or O−B")
    ax_spread.set_ylabel("whitened\nobs. space [1]")

    # observations per cycle
    if "n_obs" in table:
        bars = ax_obs.bar(x, table["n_obs"].to_numpy(dtype=float), width=_bar_width(x),
                          color="0.55", label="profiles assimilated")
        for patch in bars:
            patch.set_gid("n_obs")
    else:
        _missing(ax_obs, "n_obs")
    ax_obs.set_ylabel("observations\nper cycle")

    # truth
    for ax, part in zip(axes[4:], truth_parts, strict=False):
        for kind in TRUTH_KINDS:
            _line(ax, x, table, f"rmse_{part}_{kind}", kind, color=_KIND_COLOURS[kind])
        ax.set_ylabel(f"RMSE vs truth\n{'total' if part == 'total' else '0–6 km'} column [DU]")
        ax.set_ylim(bottom=0.0)
    if has_bias:
        ax = axes[-1]
        for part, ls in (("total", "-"), ("trop", "--")):
            for kind in TRUTH_KINDS:
                _line(ax, x, table, f"bias_{part}_{kind}",
                      f"{kind} ({'total' if part == 'total' else '0–6 km'})",
                      color=_KIND_COLOURS[kind], ls=ls)
        ax.axhline(0.0, color="0.6", lw=0.8)
        ax.set_ylabel("bias vs truth [%]")

    cold = table["start"].astype(str).str.lower().eq("cold").to_numpy() \
        if "start" in table else np.zeros(len(table), bool)
    for ax in axes:
        for k, t in enumerate(x[cold]):
            line = ax.axvline(t, color="0.3", ls=":", lw=1.0,
                              label="cold start" if k == 0 else None)
            line.set_gid("cold_start")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    axes[-1].set_xlabel("analysis time (UTC)")
    if len(x) == 1:  # one cycle: a day around it, so the point is not at the frame's edge
        axes[-1].set_xlim(x[0] - np.timedelta64(12, "h"), x[0] + np.timedelta64(12, "h"))
    chi2 = (f"; mean χ²/dof {np.nanmean(table['chi2'].to_numpy(dtype=float)):.2f}"
            if "chi2" in table and table["chi2"].notna().any() else "")
    fig.suptitle(title or f"Assimilation diagnostics: {len(table)} cycle(s), {int(cold.sum())} "
                          f"cold start(s){chi2}", fontsize=10)
    return fig


def _bar_width(x: np.ndarray):
    """Bar width: 60 % of the smallest step between cycles (6 h for a single cycle)."""
    if x.size < 2:
        return np.timedelta64(6, "h")
    return 0.6 * np.min(np.diff(x))
