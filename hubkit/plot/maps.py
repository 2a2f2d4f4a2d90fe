"""Maps: soundings coloured by a variable, gridded fields, detected plumes."""

from __future__ import annotations

import logging

import numpy as np

from hubkit.errors import PlotInputError
from hubkit.plot.coast import add_coastlines
from hubkit.plot.scales import cf_label, colorbar_beside, data_range_note, scale_for

__all__ = ["DEGREE_STEPS", "GAP_STYLES", "MAP_RATIO", "as_list", "balanced_extent",
           "cell_edges_extent", "degree_ticks", "field_map", "gap_key", "hatch_gaps",
           "lonlat_kwargs", "map_frame", "new_map_axes", "peaks_map", "soundings_map"]

log = logging.getLogger(__name__)


#: The width/height range [1] a map's extent is widened into (a single north-south orbit would
#: otherwise make a sliver with overlapping longitude labels).
MAP_RATIO = (0.6, 2.2)


def balanced_extent(west: float, east: float, south: float, north: float,
                    ratio: tuple[float, float] = MAP_RATIO) -> tuple[float, float, float, float]:
    """The extent ``(west, east, south, north)`` [°] widened about its centre until its
    width/height (in degrees, as Plate Carrée draws them) lies within ``ratio``; kept inside
    -180..180, -90..90."""
    width, height = max(east - west, 1e-6), max(north - south, 1e-6)
    if width / height < ratio[0]:
        grow = (ratio[0] * height - width) / 2
        west, east = west - grow, east + grow
        if west < -180:
            west, east = -180.0, min(180.0, east + (-180 - west))
        if east > 180:
            west, east = max(-180.0, west - (east - 180)), 180.0
    elif width / height > ratio[1]:
        grow = (width / ratio[1] - height) / 2
        south, north = south - grow, north + grow
        if south < -90:
            south, north = -90.0, min(90.0, north + (-90 - south))
        if north > 90:
            south, north = max(-90.0, south - (north - 90)), 90.0
    return float(west), float(east), float(south), float(north)


def new_map_axes(figsize=(8, 6), fig=None, position=(1, 1, 1)):
    """A Plate Carrée GeoAxes (plain axes without cartopy) at subplot ``position`` of ``fig``;
    in a new figure, with room left on the right for a colour bar."""
    import matplotlib.pyplot as plt

    if fig is None:
        fig = plt.figure(figsize=figsize)
        fig.subplots_adjust(left=0.08, right=0.84)
    try:
        import cartopy.crs as ccrs

        ax = fig.add_subplot(*position, projection=ccrs.PlateCarree())
    except ImportError:  # pragma: no cover - cartopy is a dependency
        ax = fig.add_subplot(*position)
    return ax


#: Gridline spacings a map may use [°]: round numbers of degrees.
DEGREE_STEPS = (0.5, 1, 2, 2.5, 5, 10, 15, 20, 30, 45, 60, 90)


def degree_ticks(lo: float, hi: float, nbins: int = 5) -> np.ndarray:
    """Gridline positions inside ``lo``..``hi`` [°] (not on its edges, where the labels of
    neighbouring maps would collide): multiples of the smallest of :data:`DEGREE_STEPS` that
    gives at most ``nbins`` of them."""
    for step in (*DEGREE_STEPS, 180):
        ticks = np.arange(np.ceil(lo / step) * step, hi + 1e-9, step)
        ticks = ticks[(ticks > lo + 1e-6) & (ticks < hi - 1e-6)]
        if ticks.size <= nbins:
            return ticks
    return ticks


def lonlat_kwargs(ax) -> dict:
    """The keyword arguments that put data given in longitude/latitude on ``ax``."""
    if not hasattr(ax, "projection"):
        return {}
    import cartopy.crs as ccrs

    return {"transform": ccrs.PlateCarree()}


def map_frame(ax, extent=None, *, labels=("left", "bottom"), nbins: int = 5,
              coastlines: bool = True):
    """Extent (balanced, :func:`balanced_extent`; the globe when None), coastlines and labelled
    gridlines of a map. Returns ``(note, kwargs)``: a note when there are no coastlines, and
    the keyword arguments that put data in longitude/latitude on ``ax``.

    Gridline labels go on ``labels`` (left and bottom by default: the colour bar is on the
    right), at most ``nbins`` per axis so they never overlap; longitudes read 30°W, not -30.
    """
    if not hasattr(ax, "projection"):
        ax.set_xlabel("longitude [°E]")
        ax.set_ylabel("latitude [°N]")
        if extent is not None:
            west, east, south, north = balanced_extent(*extent)
            ax.set_xlim(west, east)
            ax.set_ylim(south, north)
        ax.set_aspect("equal", adjustable="box")
        return "cartopy not installed: no coastlines", {}
    kwargs = lonlat_kwargs(ax)
    if extent is None:
        ax.set_global()
    else:
        ax.set_extent(balanced_extent(*extent), crs=kwargs["transform"])
    note = add_coastlines(ax) if coastlines else None
    west, east, south, north = ax.get_extent(crs=kwargs["transform"])
    grid = ax.gridlines(draw_labels=list(labels) if labels else False, linewidth=0.3,
                        alpha=0.5, xlocs=degree_ticks(west, east, nbins),
                        ylocs=degree_ticks(south, north, nbins))
    grid.xlabel_style = grid.ylabel_style = {"size": 8}
    return note, kwargs


def cell_edges_extent(lat, lon) -> tuple[float, float, float, float]:
    """``(west, east, south, north)`` [°] of a grid's cells (centres ± half a step)."""
    def edges(x, lo, hi):
        x = np.sort(np.asarray(x, dtype=float))
        half = 0.5 * (np.min(np.diff(x)) if x.size > 1 else 1.0)
        return max(lo, x[0] - half), min(hi, x[-1] + half)

    return (*edges(lon, -180.0, 180.0), *edges(lat, -90.0, 90.0))


#: How cells without a value are drawn: hatched (a few gaps in a full field) or grey (sparse
#: coverage, where hatching would hide the data); the word the legend uses for each.
GAP_STYLES = {
    "hatch": {"facecolor": "none", "edgecolor": "0.55", "hatch": "////", "word": "hatched"},
    "grey": {"facecolor": "0.85", "edgecolor": "none", "hatch": None, "word": "grey"},
}


def gap_key(why: str | None = None, style: str = "hatch"):
    """The legend entry of :func:`hatch_gaps`: ``"hatched: no value (why)"``."""
    from matplotlib.patches import Patch

    look = GAP_STYLES[style]
    text = f"{look['word']}: no value" + (f" ({why})" if why else "")
    return Patch(facecolor="white" if look["hatch"] else look["facecolor"],
                 edgecolor=look["edgecolor"] if look["hatch"] else "0.6", hatch=look["hatch"],
                 label=text)


def hatch_gaps(ax, lat, lon, missing, why: str | None = None, kwargs=None, *,
               legend: bool = True, style: str = "hatch"):
    """Mark the cells of a ``lat`` × ``lon`` grid where ``missing`` is true (hatched, or grey:
    :data:`GAP_STYLES`) and (``legend``) say so in a legend entry ``"hatched: no value"``
    (+ ``why``, :func:`gap_key`), so a blank is never mistaken for a low value.

    Returns the PatchCollection (gid ``"no_data"``), or None when no cell is missing.
    """
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import Rectangle

    missing = np.asarray(missing, dtype=bool)
    if not missing.any():
        return None
    dlat = np.min(np.diff(np.sort(lat))) if len(lat) > 1 else 1.0
    dlon = np.min(np.diff(np.sort(lon))) if len(lon) > 1 else 1.0
    rows, cols = np.nonzero(missing)
    boxes = [Rectangle((lon[j] - dlon / 2, lat[i] - dlat / 2), dlon, dlat)
             for i, j in zip(rows, cols, strict=True)]
    look = GAP_STYLES[style]
    cells = PatchCollection(boxes, facecolor=look["facecolor"], edgecolor=look["edgecolor"],
                            hatch=look["hatch"], linewidth=0.0, zorder=0.9, **(kwargs or {}))
    cells.set_gid("no_data")
    ax.add_collection(cells)
    if legend:
        ax.legend(handles=[gap_key(why, style)], loc="lower left", fontsize=7,
                  framealpha=0.85)
    return cells


def as_list(datasets):
    """``datasets`` as a list: a list or tuple's items, or a single dataset alone."""
    if isinstance(datasets, (list, tuple)):
        return list(datasets)
    return [datasets]


def soundings_map(datasets, *, variable: str = "xco2", ax=None, title: str | None = None,
                  vmin: float | None = None, vmax: float | None = None, max_points: int = 200_000,
                  pad: float = 2.0, quantity: str | None = None, label: str | None = None):
    """Map of soundings coloured by ``variable`` (default XCO2), on a Plate Carrée map.

    Parameters
    ----------
    datasets : xarray.Dataset or list of them
        Canonical soundings (``latitude``, ``longitude`` and ``variable`` along one dim); dask
        arrays are computed.
    variable : str
        The variable to colour by.
    ax : matplotlib Axes, optional
        Draw into this (a cartopy GeoAxes for a projected map); a new figure otherwise.
    title : str, optional
        Default: ``variable`` and the number of soundings drawn.
    vmin, vmax : float, optional
        Colour range [units of ``variable``]; by default the fixed range of the quantity
        (:data:`COLOUR_RANGES`), else the whole data range.
    max_points : int
        At most this many points are drawn (evenly thinned), to keep figures light.
    pad : float
        Margin around the soundings. [°]
    quantity : str, optional
        A key of :data:`COLOUR_RANGES` (default: looked up from ``variable``).
    label : str, optional
        Colour-bar label; by default ``long_name [units]`` of ``variable`` (:func:`cf_label`).

    Returns
    -------
    matplotlib.figure.Figure
        The map keeps a sensible shape (width/height between 0.6 and 2.2, widened around a
        north-south track), with the colour bar as tall as the map.
    """
    lat, lon, val, units = [], [], [], ""
    for ds in as_list(datasets):
        for name in ("latitude", "longitude", variable):
            if name not in ds.variables:
                raise KeyError(
                    f"soundings_map: dataset {ds.attrs.get('source', '')!r} has no variable "
                    f"{name!r}; expected latitude, longitude and {variable}"
                )
        lat.append(np.asarray(ds["latitude"].values, dtype=float).ravel())
        lon.append(np.asarray(ds["longitude"].values, dtype=float).ravel())
        val.append(np.asarray(ds[variable].values, dtype=float).ravel())
        units = ds[variable].attrs.get("units", units)
        label = label or cf_label(ds[variable])
    lat, lon, val = (np.concatenate(a) for a in (lat, lon, val))
    ok = np.isfinite(lat) & np.isfinite(lon) & np.isfinite(val)
    lat, lon, val = lat[ok], lon[ok], val[ok]
    if lat.size == 0:
        raise PlotInputError(f"soundings_map: no finite {variable} to draw")
    vmin, vmax, extend, cmap, _ = scale_for(val, variable, quantity, vmin, vmax, None)
    step = max(1, lat.size // max_points)
    lat, lon, val = lat[::step], lon[::step], val[::step]

    if ax is None:
        ax = new_map_axes(figsize=(8, 6))
    fig = ax.figure
    extent = (max(lon.min() - pad, -180), min(lon.max() + pad, 180),
              max(lat.min() - pad, -90), min(lat.max() + pad, 90))
    note, kwargs = map_frame(ax, extent)
    sc = ax.scatter(lon, lat, c=val, s=2, cmap=cmap, vmin=vmin, vmax=vmax,
                    rasterized=True, **kwargs)
    colorbar_beside(sc, ax, label=label, extend=extend)
    data_range_note(ax, val, units)
    ax.set_title(title or f"{variable}: {lat.size:,} soundings")
    if note:
        ax.text(0.01, 0.01, note, transform=ax.transAxes, fontsize=7, color="0.4")
        log.info("soundings_map: %s", note)
    return fig



def peaks_map(peaks, *, sources=None, attribution=None, soundings=None, ax=None,
              title: str | None = None, pad: float = 1.0, arrow_hours: float = 1.0):
    """Map of detections (coloured by peak height) with wind arrows and attributed sources.

    Parameters
    ----------
    peaks : xarray.Dataset
        :func:`hubkit.co2.find_peaks` output.
    sources : pandas.DataFrame, optional
        Inventory (``latitude``, ``longitude``, ``emission``) drawn as grey crosses.
    attribution : pandas.DataFrame, optional
        :func:`hubkit.co2.attribute_sources` output: rank-1 sources are joined to their peak.
    soundings : xarray.Dataset, optional
        Soundings drawn underneath (small grey dots).
    ax : matplotlib Axes, optional
        Draw into this (a cartopy GeoAxes for a projected map); a new figure otherwise.
    title : str, optional
        Default: the number of detections and the time of travel of the wind arrows.
    pad : float
        Margin around the peaks and soundings, which also bounds the sources drawn. [°]
    arrow_hours : float
        Wind arrows show the distance travelled in this time. [h]
    """
    lat = np.asarray(peaks["latitude"].values, dtype=float)
    lon = np.asarray(peaks["longitude"].values, dtype=float)
    if ax is None:
        ax = new_map_axes(figsize=(7, 6))
    kw = lonlat_kwargs(ax)

    lats, lons = [lat], [lon]
    if soundings is not None:
        slat, slon = soundings["latitude"].values, soundings["longitude"].values
        step = max(1, slat.size // 50_000)
        ax.plot(slon[::step], slat[::step], ".", ms=1, color="0.8", **kw)
        lats.append(slat)
        lons.append(slon)
    if lat.size:
        sc = ax.scatter(lon, lat, c=peaks["delta"].values, cmap="viridis", s=40,
                        edgecolor="k", zorder=3, **kw)
        colorbar_beside(sc, ax, label="peak height δ [ppm]")
        if "windspeed_u" in peaks:
            u = np.asarray(peaks["windspeed_u"].values, dtype=float)
            v = np.asarray(peaks["windspeed_v"].values, dtype=float)
            km = 3.6 * arrow_hours
            dlat = v * km / 111.2
            dlon = u * km / (111.2 * np.cos(np.deg2rad(lat)))
            ax.quiver(lon, lat, dlon, dlat, angles="xy", scale_units="xy", scale=1,
                      color="C3", width=0.004, zorder=4, **kw)
    if sources is not None and len(sources):
        box = (np.nanmin(np.concatenate(lons)) - pad, np.nanmax(np.concatenate(lons)) + pad,
               np.nanmin(np.concatenate(lats)) - pad, np.nanmax(np.concatenate(lats)) + pad)
        inside = sources[(sources["longitude"].between(box[0], box[1]))
                         & (sources["latitude"].between(box[2], box[3]))]
        ax.plot(inside["longitude"], inside["latitude"], "x", color="0.3", ms=4,
                label="inventory sources", **kw)
    if attribution is not None and len(attribution):
        best = attribution[attribution["rank"] == 1]
        for _, r in best.iterrows():
            k = int(r["peak"])
            ax.plot([r["source_longitude"], lon[k]], [r["source_latitude"], lat[k]], "-",
                    color="C1", lw=1, **kw)
        ax.plot(best["source_longitude"], best["source_latitude"], "*", color="C1", ms=10,
                label="attributed source", **kw)
    all_lat, all_lon = np.concatenate(lats), np.concatenate(lons)
    if all_lat.size:
        ext = (np.nanmin(all_lon) - pad, np.nanmax(all_lon) + pad,
               np.nanmin(all_lat) - pad, np.nanmax(all_lat) + pad)
        note, _ = map_frame(ax, ext)
        if note:
            ax.text(0.01, 0.01, note, transform=ax.transAxes, fontsize=7, color="0.4")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="upper right")
    ax.set_title(title or f"{lat.size} detections (arrows: wind, {arrow_hours:g} h of travel)")
    return ax.figure



def field_map(da, *, ax=None, title: str | None = None, cmap: str | None = None,
              vmin: float | None = None, vmax: float | None = None, label: str | None = None,
              quantity: str | None = None, gaps: str | None = None, extent=None):
    """Map of a gridded 2-D field (``latitude`` × ``longitude``) on a Plate Carrée map.

    Parameters
    ----------
    da : xarray.DataArray
        With ``latitude`` [°N] and ``longitude`` [°E] dims (other dims must be selected first);
        dask arrays are computed. NaN cells are hatched (:func:`hatch_gaps`).
    ax : matplotlib Axes, optional
        Draw into this (a cartopy GeoAxes for a projected map); a new figure otherwise.
    title : str, optional
        Axes title; none by default.
    cmap : str, optional
        Matplotlib colour map (default: the quantity's, else viridis).
    vmin, vmax : float, optional
        Colour range [units of ``da``]; by default the fixed range of the quantity
        (:data:`COLOUR_RANGES`: UV index 0-14, total ozone 200-500 DU ...) with its colour-bar
        arrows, else the whole data range. Explicit values get arrows where the data go beyond.
    label : str, optional
        Colour-bar label; ``long_name [units]`` by default (:func:`cf_label`).
    quantity : str, optional
        A key of :data:`COLOUR_RANGES` (default: looked up from ``da.name``).
    gaps : str, optional
        Why cells have no value, for the legend of the hatching (e.g. from
        :func:`hubkit.plot.scales.flag_summary`); "no value" alone by default.
    extent : (west, east, south, north), optional
        Map extent [°]; by default the grid's cells.

    Returns
    -------
    matplotlib.figure.Figure
        The colour bar is as tall as the map.
    """
    extra = [d for d in da.dims if d not in ("latitude", "longitude")]
    if extra or set(da.dims) != {"latitude", "longitude"}:
        raise PlotInputError(f"field_map: {da.name!r} has dims {da.dims}; expected exactly "
                             "('latitude', 'longitude'): select the other dims first")
    da = da.transpose("latitude", "longitude")
    lat = np.asarray(da["latitude"].values, dtype=float)
    lon = np.asarray(da["longitude"].values, dtype=float)
    val = np.asarray(da.values, dtype=float)
    finite = val[np.isfinite(val)]
    if finite.size == 0:
        raise PlotInputError(f"field_map: {da.name!r} holds no finite value to draw")
    vmin, vmax, extend, cmap, _ = scale_for(finite, da.name, quantity, vmin, vmax, cmap)
    if ax is None:
        ax = new_map_axes(figsize=(9, 4.8))
    fig = ax.figure
    note, kwargs = map_frame(ax, cell_edges_extent(lat, lon) if extent is None else extent)
    mesh = ax.pcolormesh(lon, lat, np.ma.masked_invalid(val), cmap=cmap, vmin=vmin, vmax=vmax,
                         shading="nearest", rasterized=True, **kwargs)
    hatch_gaps(ax, lat, lon, ~np.isfinite(val), gaps, kwargs)
    units = da.attrs.get("units", "")
    colorbar_beside(mesh, ax, extend=extend, label=label or cf_label(da))
    data_range_note(ax, finite, units)
    if title:
        ax.set_title(title)
    if note:
        ax.text(0.01, 0.01, note, transform=ax.transAxes, fontsize=7, color="0.4")
        log.info("field_map: %s", note)
    return fig

