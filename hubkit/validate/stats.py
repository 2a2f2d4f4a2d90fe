"""Statistics of satellite − ground differences, per station and overall.

Bias with its standard error, scatter (standard deviation), root mean square, Pearson
correlation of the paired values with a 95 % interval from Fisher's z transform (Fisher 1921;
the standard large-sample interval: tanh(atanh r ± 1.96 / sqrt(n − 3))), and the TCCON
validation figures of Wunch et al. (2011, ACP): the station-to-station variability of the bias
(standard deviation of the station biases) next to the mean scatter.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["difference_statistics"]

_Z95 = 1.959963984540054  # the 97.5 % quantile of the standard normal distribution


def _one(satellite: np.ndarray, ground: np.ndarray) -> dict:
    ok = np.isfinite(satellite) & np.isfinite(ground)
    s, g = satellite[ok], ground[ok]
    d = s - g
    n = int(d.size)
    out = {"n": n, "bias": np.nan, "bias_se": np.nan, "scatter": np.nan, "rms": np.nan,
           "r": np.nan, "r_low": np.nan, "r_high": np.nan}
    if n == 0:
        return out
    out["bias"] = float(d.mean())
    out["rms"] = float(np.sqrt(np.mean(d ** 2)))
    if n >= 2:
        out["scatter"] = float(d.std(ddof=1))
        out["bias_se"] = out["scatter"] / np.sqrt(n)
        if s.std() > 0 and g.std() > 0:
            r = float(np.corrcoef(s, g)[0, 1])
            out["r"] = r
            if n > 3 and abs(r) < 1:
                z, half = np.arctanh(r), _Z95 / np.sqrt(n - 3)
                out["r_low"], out["r_high"] = float(np.tanh(z - half)), float(np.tanh(z + half))
    return out


def difference_statistics(pairs: pd.DataFrame, by: str = "station") -> pd.DataFrame:
    """Bias, scatter, correlation and counts of ``satellite − ground`` per group and overall.

    Parameters
    ----------
    pairs : pandas.DataFrame
        With columns ``satellite`` and ``ground`` (e.g. from :func:`~hubkit.validate.colocate`
        or after smoothing correction) and the grouping column ``by``.
    by : str
        Column naming the groups (default ``station``).

    Returns
    -------
    pandas.DataFrame
        Indexed by group, plus a last row ``all``: ``n``, ``bias`` (mean difference),
        ``bias_se`` (its standard error, scatter / sqrt n), ``scatter`` (standard deviation of
        the differences), ``rms``, ``r`` with its 95 % interval ``r_low``, ``r_high``. The row
        ``all`` also gives ``station_to_station``: the standard deviation of the group biases.
    """
    rows, names = [], []
    for name, group in pairs.groupby(by, sort=True):
        rows.append(_one(group["satellite"].to_numpy(float), group["ground"].to_numpy(float)))
        names.append(name)
    overall = _one(pairs["satellite"].to_numpy(float), pairs["ground"].to_numpy(float))
    biases = np.array([r["bias"] for r in rows], dtype=float)
    biases = biases[np.isfinite(biases)]
    overall["station_to_station"] = float(biases.std(ddof=1)) if biases.size >= 2 else np.nan
    rows.append(overall)
    names.append("all")
    return pd.DataFrame(rows, index=pd.Index(names, name=by))
