"""Observation-space diagnostics of the cycles, and the record of what each analysis time gave.

Per analysis time: the profiles and values assimilated, observation minus first guess and minus
analysis in units of the observation error (``omb``, ``oma``), the innovation χ² per value
(Desroziers et al. 2005: about 1 for a consistent filter) and the first-guess spread in the same
space; with a known truth, the RMSE of forecast, analysis and free run. :func:`window_diagnostics`
combines them over a window.

References
----------
.. [1] Desroziers, Berre, Chapnik, Poli, Q. J. R. Meteorol. Soc. 131, 3385-3396, 2005.
   doi:10.1256/qj.05.108
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from hubkit.assimilation.background import level_dim

__all__ = ["DIAGNOSTICS", "ERRORS", "FIELDS", "CycleRecord", "ensemble_chi2",
           "window_diagnostics"]

#: Per-time diagnostics of :func:`hubkit.assimilation.cycling.assimilate` and their attributes.
DIAGNOSTICS = {
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

#: Ozone fields of the ``das`` product, one per analysis time.
FIELDS = ("o3_vmr", "o3_vmr_forecast", "o3_vmr_free", "o3_vmr_spread")

#: Errors against a known truth (twin experiments). [mol mol⁻¹]
ERRORS = ("rmse_forecast", "rmse_analysis", "rmse_free")


def ensemble_chi2(d: np.ndarray, Y: np.ndarray) -> float:
    """``dᵀ(YYᵀ/(N−1) + I)⁻¹d / p`` by the Woodbury identity (``Y`` (p, N), whitened)."""
    N = Y.shape[1]
    Yd = Y.T @ d
    inner = np.linalg.solve((N - 1) * np.eye(N) + Y.T @ Y, Yd)
    return float(d @ d - Yd @ inner) / d.size


def window_diagnostics(das: xr.Dataset) -> dict:
    """A window's observation-space diagnostics, combined over the analysis times of
    :func:`hubkit.assimilation.cycling.assimilate`'s output (means and mean squares weighted by
    the values observed): ``n_obs``, ``n_values``, ``omb_mean``, ``omb_rms``, ``oma_mean``,
    ``oma_rms``, ``chi2`` (the innovation χ²/dof of Desroziers et al. 2005), ``spread_obs``;
    NaN without observations."""
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


class CycleRecord:
    """What the analysis times gave, one after another: the ozone fields of :data:`FIELDS`,
    the diagnostics of :data:`DIAGNOSTICS` and, with a truth, the errors."""

    def __init__(self) -> None:
        self.fields: dict[str, list] = {k: [] for k in FIELDS}
        self.diag: dict[str, list] = {k: [] for k in DIAGNOSTICS}
        self.rmse: dict[str, list] = {k: [] for k in ERRORS}

    def add_observations(self, n_profiles, d_b, d_a, chi2, spread_obs) -> None:
        """The diagnostics of one analysis of ``n_profiles`` profiles with whitened departures
        ``d_b`` (first guess) and ``d_a`` (analysis); None without observations."""
        self.diag["n_obs"].append(int(n_profiles))
        self.diag["n_values"].append(0 if d_b is None else int(d_b.size))
        for name, d in (("omb", d_b), ("oma", d_a)):
            self.diag[f"{name}_mean"].append(np.nan if d is None else float(np.mean(d)))
            self.diag[f"{name}_rms"].append(np.nan if d is None
                                            else float(np.sqrt(np.mean(d**2))))
        self.diag["omf_chi2"].append(float(chi2))
        self.diag["spread_obs"].append(float(spread_obs))

    def add_fields(self, shape, analysis, forecast, free, spread) -> None:
        """The fields of one analysis time, each reshaped to ``shape`` (L, ny, nx)."""
        for name, x in zip(FIELDS, (analysis, forecast, free, spread), strict=True):
            self.fields[name].append(x.reshape(shape))

    def add_errors(self, truth: xr.Dataset, t, shape, forecast, analysis, free) -> None:
        """RMSE of forecast, analysis and free run against ``truth['o3_vmr']`` at ``t``."""
        xt = truth["o3_vmr"].sel(time=t)
        xt = np.asarray(xt.transpose(level_dim(xt), "latitude", "longitude").values, dtype=float)
        for k, x in zip(ERRORS, (forecast, analysis, free), strict=True):
            self.rmse[k].append(float(np.sqrt(np.mean((x.reshape(shape) - xt) ** 2))))

    def stacked_fields(self) -> dict[str, np.ndarray]:
        """Each field over the analysis times (time, L, ny, nx)."""
        return {k: np.stack(v) for k, v in self.fields.items()}

    def diagnostics(self) -> dict[str, tuple[np.ndarray, dict]]:
        """Each diagnostic (and error, if any) over the analysis times, with its attributes."""
        diagnostics = {k: (np.asarray(v, dtype=np.int64 if k.startswith("n_") else float),
                           DIAGNOSTICS[k]) for k, v in self.diag.items()}
        for k, v in self.rmse.items():
            if v:
                diagnostics[k] = (np.asarray(v), {"units": "mol mol-1", "long_name":
                                                  k.replace("_", " ") + " against truth"})
        return diagnostics
