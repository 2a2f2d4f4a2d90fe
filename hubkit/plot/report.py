"""The report's figures: small multiples a researcher would publish.

- :func:`field_panels`: gridded fields as a grid of small maps (rows: a quantity or a level;
  columns: times), one colour scale and one colour bar per row (or one for all), gaps hatched;
- :func:`fused_ozone_panels`: the fused ozone of several hours, gridded on the fusion cells,
  at a few pressure levels (rows) and hours (columns);
- :func:`along_track_panels`: the along-track XCO2 of each detection with its fitted Gaussian.
"""

from __future__ import annotations

import numpy as np

from hubkit.errors import PlotInputError
from hubkit.plot.maps import cell_edges_extent, gap_key, hatch_gaps, map_frame, new_map_axes
from hubkit.plot.products import peak_profile
from hubkit.plot.scales import cf_label, colorbar_beside, lat_lon_label, scale_for

__all__ = ["along_track_panels", "field_panels", "fused_ozone_panels", "grid_cells"]


def field_panels(rows, *, column_titles, row_labels, quantities=None, labels=None, gaps=None,
                 title: str | None = None, shared: bool = False, panel_width: float = 3.2,
                 extent=None, gap_style: str = "hatch"):
    """Small multiples of 2-D fields: one map per field, one colour scale per row.

    Parameters
    ----------
    rows : list of lists of xarray.DataArray
        ``rows[i][j]``: the field of row ``i`` (a quantity or a level) and column ``j`` (a
        time), each on ``latitude`` × ``longitude``; None leaves a panel empty.
    column_titles, row_labels : list of str
        Above each column; left of each row.
    quantities : list of (str or None), optional
        Per row, a key of :data:`~hubkit.plot.scales.COLOUR_RANGES` (the fixed range) or None
        (the row's whole data range).
    labels : list of str, optional
        Per row, the colour-bar label (default :func:`cf_label` of the row's first field).
    gaps : list of lists of (str or None), optional
        Why cells of each panel have no value (legend of the hatching, :func:`hatch_gaps`).
    title : str, optional
        Figure title; none by default.
    gap_style : {"hatch", "grey"}
        How cells without a value are drawn (:data:`~hubkit.plot.maps.GAP_STYLES`).
    shared : bool
        One colour scale and one colour bar for all rows (the first row's quantity and label).
    panel_width : float
        Width of one map. [inch]
    extent : (west, east, south, north), optional
        Extent of every map [°]; by default the first field's cells.

    Returns
    -------
    matplotlib.figure.Figure
        Every colour bar is exactly as tall as the maps it serves.
    """
    import textwrap

    import matplotlib.pyplot as plt

    n_rows, n_cols = len(rows), max((len(r) for r in rows), default=0)
    fields = [f for r in rows for f in r if f is not None]
    if not fields:
        raise PlotInputError("field_panels: no field to draw")
    quantities = list(quantities or [None] * n_rows)
    first = fields[0].transpose("latitude", "longitude")
    extent = extent or cell_edges_extent(first["latitude"].values, first["longitude"].values)
    ratio = (extent[1] - extent[0]) / max(extent[3] - extent[2], 1e-6)
    height = panel_width / min(max(ratio, 0.6), 2.2)
    fig = plt.figure(figsize=(n_cols * panel_width + 2.2, n_rows * (height + 0.45) + 0.9))
    fig.subplots_adjust(left=0.06, right=1 - 1.5 / fig.get_figwidth(), bottom=0.08, top=0.86,
                        wspace=0.06, hspace=0.18)
    scales, reasons = [], {}
    groups = [list(range(n_rows))] if shared else [[i] for i in range(n_rows)]
    for group in groups:
        values = np.concatenate([np.asarray(f.values, dtype=float).ravel()
                                 for i in group for f in rows[i] if f is not None])
        finite = values[np.isfinite(values)]
        if finite.size == 0:
            finite = np.array([0.0, 1.0])
        scales.append((group, scale_for(finite, fields[0].name, quantities[group[0]],
                                        None, None, None)))
    for group, (vmin, vmax, extend, cmap, _) in scales:
        axes, mesh = [], None
        for i in group:
            for j in range(n_cols):
                ax = new_map_axes(fig=fig, position=(n_rows, n_cols, i * n_cols + j + 1))
                axes.append(ax)
                field = rows[i][j] if j < len(rows[i]) else None
                labels_at = [s for s, show in (("left", j == 0), ("bottom", i == n_rows - 1))
                             if show]
                note, kwargs = map_frame(ax, extent, labels=labels_at, nbins=4)
                if i == 0:
                    ax.set_title(column_titles[j], fontsize=9)
                if j == 0:
                    ax.text(-0.55 / panel_width, 0.5, row_labels[i], transform=ax.transAxes,
                            rotation=90,
                            ha="center", va="center", fontsize=9)
                if field is None:
                    ax.text(0.5, 0.5, "no product", transform=ax.transAxes, ha="center",
                            va="center", color="0.4", fontsize=8)
                    continue
                field = field.transpose("latitude", "longitude")
                lat = np.asarray(field["latitude"].values, dtype=float)
                lon = np.asarray(field["longitude"].values, dtype=float)
                val = np.asarray(field.values, dtype=float)
                mesh = ax.pcolormesh(lon, lat, np.ma.masked_invalid(val), cmap=cmap, vmin=vmin,
                                     vmax=vmax, shading="nearest", rasterized=True, **kwargs)
                why = gaps[i][j] if gaps is not None else None
                if hatch_gaps(ax, lat, lon, ~np.isfinite(val), why, kwargs, legend=False,
                              style=gap_style):
                    reasons.setdefault(why, None)
                if note and i == j == 0:
                    ax.text(0.01, 0.01, note, transform=ax.transAxes, fontsize=6, color="0.4")
        if mesh is not None:
            label = (labels[group[0]] if labels else None) or cf_label(rows[group[0]][0])
            tall = len(group) * height + (len(group) - 1) * 0.3  # the bar's height [inch]
            label = textwrap.fill(label.replace("\n", " "), max(16, int(tall / 0.075)))
            bar = colorbar_beside(mesh, axes, extend=extend, width=0.14)
            bar.set_label(label, fontsize=8)
    if reasons:
        known = [r for r in reasons if r]
        fig.legend(handles=[gap_key("; ".join(known) if known else None, gap_style)],
                   loc="lower left",
                   fontsize=8, frameon=False, bbox_to_anchor=(0.05, 0.0))
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def grid_cells(latitude, longitude, values, step: float, origin=(0.0, 0.0)):
    """Put values of fusion cells (one per cell centre) on the regular grid of those cells.

    Parameters
    ----------
    latitude, longitude : array_like, (n,)
        Cell centres. [°N], [°E]
    values : array_like, (n,)
        The value of each cell. [any]
    step : float
        Cell size. [°]
    origin : (lat, lon)
        A cell edge of the grid (the cells are ``origin + k * step`` wide). [°]

    Returns
    -------
    lat, lon : ndarray
        Centres of the grid covering the cells. [°]
    grid : ndarray, (lat, lon)
        The values, NaN where no cell has one.
    """
    latitude, longitude = np.asarray(latitude, float), np.asarray(longitude, float)
    i = np.floor((latitude - origin[0]) / step).astype(int)
    j = np.floor((longitude - origin[1]) / step).astype(int)
    if i.size == 0:
        raise PlotInputError("grid_cells: no cell to put on a grid")
    lat = origin[0] + (np.arange(i.min(), i.max() + 1) + 0.5) * step
    lon = origin[1] + (np.arange(j.min(), j.max() + 1) + 0.5) * step
    grid = np.full((lat.size, lon.size), np.nan)
    grid[i - i.min(), j - j.min()] = np.asarray(values, dtype=float)
    return lat, lon, grid


def _cell_step(ds) -> float:
    """The fusion cell size [°]: from ``fusion_cell`` ("1.0 deg x 1.0 deg x 3600.0 s"), else
    the smallest spacing of the cell centres."""
    text = str(ds.attrs.get("fusion_cell", ""))
    try:
        return float(text.split("deg")[0])
    except ValueError:
        lat = np.unique(np.asarray(ds["latitude"].values, float))
        return float(np.min(np.diff(lat))) if lat.size > 1 else 1.0


def fused_ozone_panels(products, *, pressures=(80000.0, 50000.0, 30000.0), max_hours: int = 6,
                       title: str | None = None):
    """The fused ozone of several hours on its fusion cells: rows are pressure levels, columns
    hours, one colour scale (the fixed 0-120 ppbv of ``o3_ppbv``) for all.

    Parameters
    ----------
    products : list of xarray.Dataset
        ``fused-ozone`` products (``o3_vmr`` [mol mol-1] on ``cell`` × ``level``, ``pressure``
        [Pa], the cells' ``latitude``, ``longitude`` and ``time``), one per hour.
    pressures : tuple of float
        Levels drawn: the product level nearest to each. [Pa]
    max_hours : int
        At most this many hours: every k-th of those given, from the first.
    title : str, optional
        Figure title; none by default.

    Returns
    -------
    matplotlib.figure.Figure
        Cells without a fused retrieval are grey; every hour and level is on the same grid.
    """
    if not products:
        raise PlotInputError("fused_ozone_panels: no fused-ozone product to draw")
    products = sorted(products, key=lambda ds: np.min(ds["time"].values))
    products = products[::-(-len(products) // max_hours)]  # every k-th hour, k = ceil(n/max)
    step = _cell_step(products[0])
    lat_all = np.concatenate([np.asarray(ds["latitude"].values, float) for ds in products])
    lon_all = np.concatenate([np.asarray(ds["longitude"].values, float) for ds in products])
    origin = (np.floor(lat_all.min() / step) * step, np.floor(lon_all.min() / step) * step)
    lat_c, lon_c, _ = grid_cells(lat_all, lon_all, np.zeros(lat_all.size), step, origin)
    extent = (lon_c[0] - step / 2, lon_c[-1] + step / 2, lat_c[0] - step / 2,
              lat_c[-1] + step / 2)
    import xarray as xr

    rows, row_labels = [], []
    for p in pressures:
        row = []
        for ds in products:
            level = int(np.abs(np.asarray(ds["pressure"].values, float) - p).argmin())
            vmr = np.asarray(ds["o3_vmr"].isel(level=level).values, float) * 1e9
            lat, lon, grid = grid_cells(ds["latitude"].values, ds["longitude"].values, vmr,
                                        step, origin)
            full = np.full((lat_c.size, lon_c.size), np.nan)
            i0 = int(round((lat[0] - lat_c[0]) / step))
            j0 = int(round((lon[0] - lon_c[0]) / step))
            full[i0:i0 + lat.size, j0:j0 + lon.size] = grid
            row.append(xr.DataArray(full, dims=("latitude", "longitude"), name="o3_ppbv",
                                    coords={"latitude": lat_c, "longitude": lon_c},
                                    attrs={"units": "ppbv", "long_name": ds["o3_vmr"].attrs.get(
                                        "long_name", "fused ozone")}))
        actual = float(np.asarray(products[0]["pressure"].values, float)[
            int(np.abs(np.asarray(products[0]["pressure"].values, float) - p).argmin())])
        rows.append(row)
        row_labels.append(f"{actual / 100:.0f} hPa")
    columns = [f"{str(np.min(ds['time'].values))[:16].replace('T', ' ')} UTC" for ds in products]
    gaps = [["no fused retrieval in the cell"] * len(products) for _ in rows]
    return field_panels(rows, column_titles=columns, row_labels=row_labels,
                        quantities=["o3_ppbv"] * len(rows), gaps=gaps, shared=True,
                        labels=[cf_label(rows[0][0])], title=title, extent=extent,
                        panel_width=2.6, gap_style="grey")


def along_track_panels(windows, peaks, *, titles=None, title: str | None = None):
    """Along-track XCO2 of each detection with its fitted Gaussian and background, one panel
    per detection (:func:`hubkit.plot.peak_profile` in each).

    Parameters
    ----------
    windows : list of pandas.DataFrame
        :func:`hubkit.co2.peak_window` of each detection.
    peaks : list of (pandas.Series or xarray.Dataset)
        The detections, for the legends and (without ``titles``) the panel titles.
    titles : list of str, optional
        Per panel; default the orbit and position of the detection.
    title : str, optional
        Figure title; none by default.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    if not windows:
        raise PlotInputError("along_track_panels: no detection to draw")
    fig, axes = plt.subplots(len(windows), 1, figsize=(8.5, 3.2 * len(windows)),
                             squeeze=False, layout="constrained")
    for k, (window, peak, ax) in enumerate(zip(windows, peaks, axes[:, 0], strict=True)):
        if titles is not None:
            name = titles[k]
        else:
            orbit = int(np.asarray(peak["orbit"])) if "orbit" in peak else None
            where = lat_lon_label(float(np.asarray(peak["latitude"])),
                                  float(np.asarray(peak["longitude"])))
            name = f"orbit {orbit}, {where}" if orbit is not None else where
        peak_profile(window, peak, ax=ax, title=name)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
