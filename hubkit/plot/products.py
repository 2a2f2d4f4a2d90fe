"""Figures of one product kind each: station time series, a plume's along-track profile, a
tropospheric ozone column, the UV lookup table, satellite against ground truth."""

from __future__ import annotations

import numpy as np

from hubkit.plot.coast import add_coastlines
from hubkit.plot.maps import as_list

__all__ = ["UV_BASE_POINT", "peak_profile", "time_series", "troc_profile", "uv_table_axes",
           "validation_figure"]


#: Uncertainty variables drawn as a band around ``value`` by :func:`time_series`, first found.
_SPREADS = ("value_variability", "value_std_dev", "value_unc", "value_repeatability")


def time_series(datasets, *, variable: str = "value", ax=None, title: str | None = None,
                band: bool = True):
    """Time series of station data (``hubkit.timeseries.get_obs`` results), one line each.

    Parameters
    ----------
    datasets : xarray.Dataset or list of them
        Indexed by ``time``, holding ``variable``; dask arrays are computed. The legend says
        ``<site_code> <inlet_height> m`` from the attributes.
    variable : str
        The variable drawn (default the mole fraction ``value``).
    ax : matplotlib Axes, optional
        Draw into this; a new figure otherwise.
    title : str, optional
        Default: the species and the sites.
    band : bool
        Shade ± the first uncertainty found (variability of an average, standard deviation,
        uncertainty or repeatability), where ``variable`` is ``value``.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    from hubkit.errors import PlotInputError

    datasets = as_list(datasets)
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 4))
    units, species, drawn = "", set(), 0
    for ds in datasets:
        if variable not in ds.variables or "time" not in ds.variables:
            raise PlotInputError(f"time_series: dataset {ds.attrs.get('source', '')!r} has no "
                                 f"{variable!r} or 'time'; expected a get_obs result")
        t = np.asarray(ds["time"].values)
        y = np.asarray(ds[variable].values, dtype=float)
        ok = ~np.isnat(t) & np.isfinite(y)
        if not ok.any():
            continue
        inlet = ds.attrs.get("inlet_height")
        label = " ".join(str(v) for v in (ds.attrs.get("site_code"),
                                          f"{inlet:g} m" if inlet is not None else None) if v)
        style = "-" if ok.sum() > 200 else ".-"
        line, = ax.plot(t[ok], y[ok], style, lw=0.8, ms=3, label=label or None)
        spread = next((n for n in _SPREADS if n in ds.data_vars), None) if band and \
            variable == "value" else None
        if spread is not None:
            e = np.asarray(ds[spread].values, dtype=float)[ok]
            good = np.isfinite(e)
            if good.any():
                ax.fill_between(t[ok], np.where(good, y[ok] - e, np.nan),
                                np.where(good, y[ok] + e, np.nan), color=line.get_color(),
                                alpha=0.2, lw=0)
        units = ds[variable].attrs.get("units", units)
        species.add(str(ds.attrs.get("hubkit_species", "")).upper())
        drawn += 1
    if not drawn:
        raise PlotInputError(f"time_series: no finite {variable!r} to draw")
    ax.set_ylabel(f"{'/'.join(sorted(species)) or variable} [{units}]")
    ax.set_xlabel("time (UTC)")
    ax.grid(alpha=0.3)
    if any(line.get_label() and not line.get_label().startswith("_") for line in ax.lines):
        ax.legend(fontsize=8)
    ax.set_title(title or f"{'/'.join(sorted(species))} time series")
    ax.figure.autofmt_xdate()
    return ax.figure



def peak_profile(window, peak=None, *, ax=None, title: str | None = None):
    """Along-track XCO2 of one detection's window with the fitted Gaussian and background.

    Parameters
    ----------
    window : pandas.DataFrame
        :func:`hubkit.co2.window_data` output (``x`` [km], ``xco2``, ``model``, ``background``).
    peak : xarray.Dataset, optional
        The detection (one element of :func:`hubkit.co2.find_peaks`), for the legend.
    ax : matplotlib Axes, optional
        Draw into this; a new figure otherwise.
    title : str, optional
        Axes title; none by default.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3.5))
    order = np.argsort(window["x"].to_numpy())
    x = window["x"].to_numpy()[order]
    ax.plot(x, window["xco2"].to_numpy()[order], ".", ms=3, color="0.55", label="soundings")
    label = "Gaussian + line"
    if peak is not None:
        label += (f": δ = {float(peak['delta']):.2f} ppm, σ = {float(peak['sigma']):.1f} km")
        if "emission" in peak and np.isfinite(float(peak["emission"])):
            label += f", Q = {float(peak['emission']):.0f} kg/s"
    ax.plot(x, window["model"].to_numpy()[order], "-", color="C3", lw=1.8, label=label)
    ax.plot(x, window["background"].to_numpy()[order], "--", color="C0", lw=1, label="background")
    ax.set_xlabel("along-track distance from the centre [km]")
    ax.set_ylabel("XCO2 [ppm]")
    ax.legend(fontsize=8, loc="upper left")
    if title:
        ax.set_title(title)
    return ax.figure



def troc_profile(column, troc, *, ax=None, title: str | None = None):
    """One column's ozone profile on model levels beside its tropospheric sub-columns.

    Parameters
    ----------
    column : xarray.Dataset
        One column of the input field (``o3_vmr`` [mol mol-1], ``temperature`` [K],
        ``surface_pressure``, ``surface_altitude``, ``hybrid_a``, ``hybrid_b``).
    troc : xarray.Dataset
        The same column of :func:`hubkit.ozone.tropospheric_ozone`.
    ax : pair of matplotlib Axes, optional
        The left and right panels (sharing the altitude axis); a new figure otherwise.
    title : str, optional
        Title of the left panel; none by default (the right one states the columns).

    Returns
    -------
    matplotlib.figure.Figure
        Left: VMR [ppbv] against altitude [km] on the model levels and as the mean VMR of each
        sub-column; right: the sub-columns [DU] as bars over their altitude ranges, with the
        lapse-rate and 6-km tropopauses.
    """
    import matplotlib.pyplot as plt

    from hubkit import ozone

    a, b = column["hybrid_a"].values, column["hybrid_b"].values
    ph, _ = ozone.hybrid_pressure(a, b, float(column["surface_pressure"]))
    zh, zf = ozone.hydrostatic_altitude(ph, column["temperature"].values.astype(float),
                                        float(column["surface_altitude"]))
    vmr = column["o3_vmr"].values.astype(float)
    edges, _ = ozone.subcolumn_edges(float(troc["surface_altitude"]),
                                     float(troc["tropopause_altitude"]))
    sub = troc["o3_subcolumns"].values
    ok = np.isfinite(sub)
    fin = np.isfinite(zh) & (ph > 0)
    order = np.argsort(zh[fin])
    p_edges = np.exp(np.interp(edges, zh[fin][order], np.log(ph[fin][order])))
    mean_vmr = sub[ok] / (ozone.DU_PER_VMR_PA * -np.diff(p_edges)[ok])
    if ax is None:
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 5), sharey=True)
    else:
        ax1, ax2 = ax
        fig = ax1.figure
    z_tp = float(troc["tropopause_altitude"]) / 1000
    keep = zf < 1000 * (np.nan_to_num(z_tp, nan=15.0) + 1.5)
    ax1.plot(vmr[keep] * 1e9, zf[keep] / 1000, ".-", color="0.4", label="model levels")
    ax1.stairs(mean_vmr * 1e9, edges[: ok.sum() + 1] / 1000, orientation="horizontal",
               color="C3", lw=2, baseline=None, label="sub-column mean")
    ax1.set(xlabel="O3 [ppbv]", ylabel="altitude [km]")
    ax2.barh(0.5 * (edges[:-1] + edges[1:])[ok] / 1000, sub[ok], height=np.diff(edges)[ok] / 1000,
             color="C0", alpha=0.7, edgecolor="k", label="sub-columns")
    ax2.set(xlabel="partial column [DU]")
    for axis in (ax1, ax2):
        axis.axhline(z_tp, color="C2", ls="--", label=f"LRT {z_tp:.2f} km")
        axis.axhline(6.0, color="C1", ls=":", label="6 km")
    ax1.legend(fontsize=8)
    ax2.legend(fontsize=8)
    ax2.set_title(f"{np.nansum(sub):.1f} DU to the LRT, {float(troc['o3_column_fixed']):.1f} DU "
                  "to 6 km", fontsize=9)
    if title:
        ax1.set_title(title, fontsize=9)
    return fig


UV_BASE_POINT = {"ozone": 300.0, "elevation": 0.0, "albedo": 0.05, "aod": 0.1, "ssa": 0.9,
                 "cot": 0.0, "sza": 30.0}


def uv_table_axes(table, *, base: dict | None = None, variable: str = "uvi"):
    """The lookup table along each of its seven axes through a base point: the nodes (dots) and
    the interpolation between them (lines), one panel per axis.

    Parameters
    ----------
    table : xarray.Dataset
        A table in the :mod:`hubkit.uv` format.
    base : dict, optional
        Values of the axes that are held fixed (default :data:`UV_BASE_POINT`: 300 DU, sea
        level, albedo 0.05, AOD 0.1, SSA 0.9, clear sky, SZA 30°).
    variable : {"uvi", "uva"}
        The table's variable to draw: UV index [1] or UV-A irradiance [W m⁻²].

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    from hubkit.uv.interp import table_interpolate

    base = {**UV_BASE_POINT, **(base or {})}
    axes = [d for d in table[variable].dims]
    fig, panels = plt.subplots(1, len(axes), figsize=(2.3 * len(axes), 2.6), sharey=False)
    for ax, axis in zip(np.atleast_1d(panels), axes, strict=True):
        nodes = table[axis].values
        fine = np.linspace(nodes[0], nodes[-1], 200)
        point = {a: (fine if a == axis else base[a]) for a in axes}
        values, _ = table_interpolate(table, variable, **point)
        at_nodes, _ = table_interpolate(table, variable, **{**point, axis: nodes})
        ax.plot(fine, values, color="tab:blue", lw=1.2)
        ax.plot(nodes, at_nodes, "o", color="tab:red", ms=3)
        ax.set_xlabel(f"{axis} [{table[axis].attrs.get('units', '')}]", fontsize=8)
        ax.tick_params(labelsize=7)
    units = table[variable].attrs.get("units", "")
    np.atleast_1d(panels)[0].set_ylabel(f"{variable} [{units}]", fontsize=8)
    fixed = ", ".join(f"{k} {v:g}" for k, v in base.items())
    fig.suptitle(f"{table[variable].attrs.get('long_name', variable)}; elsewhere {fixed}",
                 fontsize=8)
    fig.tight_layout()
    return fig


def validation_figure(pairs, statistics, *, stations=None, quantity: str = "XCO2",
                      units: str = "", title: str | None = None):
    """Satellite against ground truth, three panels: where the colocated soundings and the
    stations are (offline coastlines), satellite against ground (plain and, where present,
    smoothing-corrected, with the 1:1 line and the statistics), and the differences in time.

    Parameters
    ----------
    pairs : pandas.DataFrame
        From :func:`hubkit.validate.colocate` or :func:`hubkit.validate.compare_with_tccon`.
    statistics : pandas.DataFrame
        From :func:`hubkit.validate.difference_statistics` (of the corrected values when there
        are any).
    stations : mapping, optional
        ``station``, ``latitude``, ``longitude`` of the stations, marked on the map.
    quantity, units : str
        Axis labels, e.g. ``"XCH4"``, ``"ppb"``.
    title : str, optional
        Figure title; none by default.
    """
    import cartopy.crs as ccrs
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(15, 4.8), layout="constrained")
    grid = fig.add_gridspec(1, 3, width_ratios=[1.2, 1.0, 1.3])
    ax_map = fig.add_subplot(grid[0], projection=ccrs.PlateCarree())
    ax_sc, ax_ts = fig.add_subplot(grid[1]), fig.add_subplot(grid[2])
    unit = f" [{units}]" if units else ""
    smoothed = "ground_smoothed" in pairs
    if pairs.empty:
        for ax in (ax_sc, ax_ts):
            ax.text(0.5, 0.5, "no colocated pairs", ha="center", va="center",
                    transform=ax.transAxes)
    else:
        lon, lat = pairs["longitude"].to_numpy(float), pairs["latitude"].to_numpy(float)
        pad = max(1.0, 0.15 * max(np.ptp(lon), np.ptp(lat)))
        ax_map.set_extent([lon.min() - pad, lon.max() + pad, max(-90, lat.min() - pad),
                           min(90, lat.max() + pad)], crs=ccrs.PlateCarree())
        ax_map.scatter(lon, lat, s=8, c="C0", transform=ccrs.PlateCarree(),
                       label="colocated soundings")
        if stations is not None:
            ax_map.scatter(stations["longitude"], stations["latitude"], s=90, marker="^",
                           c="C3", edgecolors="k", transform=ccrs.PlateCarree(),
                           label="station", zorder=3)
        ax_map.gridlines(draw_labels=["left", "bottom"], linewidth=0.3, color="0.7")
        ax_map.legend(loc="upper left", fontsize=8)
        ground = pairs["ground_smoothed"] if smoothed else pairs["ground"]
        ax_sc.scatter(pairs["ground"], pairs["satellite"], s=10, c="0.6", label="plain")
        if smoothed:
            ax_sc.scatter(ground, pairs["satellite"], s=10, c="C3",
                          label="ground seen through the satellite's kernel")
        both = np.concatenate([pairs["satellite"].to_numpy(float), ground.to_numpy(float),
                               pairs["ground"].to_numpy(float)])
        lo, hi = np.nanmin(both), np.nanmax(both)
        ax_sc.plot([lo, hi], [lo, hi], "k--", lw=0.8, label="1:1")
        diff = pairs["difference_smoothed"] if smoothed else pairs["difference"]
        for name, group in pairs.assign(_d=diff).groupby("station"):
            ax_ts.plot(group["time"], group["_d"], ".", label=str(name))
        ax_ts.axhline(0.0, color="k", lw=0.8)
        row = statistics.loc["all"]
        ax_sc.text(0.02, 0.98, f"n = {int(row['n'])}\nbias = {row['bias']:.2f} ± "
                   f"{row['bias_se']:.2f}{unit}\nscatter = {row['scatter']:.2f}{unit}\n"
                   f"r = {row['r']:.2f}", transform=ax_sc.transAxes, va="top", fontsize=9)
        ax_sc.legend(loc="lower right", fontsize=8)
        ax_ts.legend(fontsize=8)
    note = add_coastlines(ax_map)
    if note:
        ax_map.set_title(note, fontsize=8)
    ax_sc.set(xlabel=f"ground {quantity}{unit}", ylabel=f"satellite {quantity}{unit}",
              title="satellite against ground")
    ax_ts.set(xlabel="time (UTC)", ylabel=f"satellite − ground {quantity}{unit}",
              title="differences" + (" (smoothing-corrected)" if smoothed else ""))
    ax_ts.tick_params(axis="x", labelrotation=30)
    if title:
        fig.suptitle(title)
    return fig

