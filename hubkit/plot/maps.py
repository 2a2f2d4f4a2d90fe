"""Maps: soundings coloured by a variable, gridded fields, detected plumes."""

from __future__ import annotations

import logging

import numpy as np

from hubkit.errors import PlotInputError
from hubkit.plot.coast import add_coastlines
from hubkit.plot.scales import data_range_note, scale_for

__all__ = ["as_list", "field_map", "peaks_map", "soundings_map"]

log = logging.getLogger(__name__)


def as_list(datasets):
    if isinstance(datasets, (list, tuple)):
        return list(datasets)
    return [datasets]


def soundings_map(datasets, *, variable: str = "xco2", ax=None, title: str | None = None,
                  vmin: float | None = None, vmax: float | None = None, max_points: int = 200_000,
                  pad: float = 2.0, quantity: str | None = None):
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
    vmin, vmax : float, optional
        Colour range [units of ``variable``]; by default the fixed range of the quantity
        (:data:`COLOUR_RANGES`), else the whole data range.
    max_points : int
        At most this many points are drawn (evenly thinned), to keep figures light.
    pad : float
        Margin around the soundings. [°]
    quantity : str, optional
        A key of :data:`COLOUR_RANGES` (default: looked up from ``variable``).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

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
    lat, lon, val = (np.concatenate(a) for a in (lat, lon, val))
    ok = np.isfinite(lat) & np.isfinite(lon) & np.isfinite(val)
    lat, lon, val = lat[ok], lon[ok], val[ok]
    if lat.size == 0:
        raise PlotInputError(f"soundings_map: no finite {variable} to draw")
    vmin, vmax, extend, cmap, _ = scale_for(val, variable, quantity, vmin, vmax, None)
    step = max(1, lat.size // max_points)
    lat, lon, val = lat[::step], lon[::step], val[::step]

    transform, note = None, None
    if ax is None:
        try:
            import cartopy.crs as ccrs

            fig, ax = plt.subplots(
                figsize=(8, 6), subplot_kw={"projection": ccrs.PlateCarree()}
            )
        except ImportError:
            fig, ax = plt.subplots(figsize=(8, 6))
    fig = ax.figure
    if hasattr(ax, "projection"):
        import cartopy.crs as ccrs

        transform = ccrs.PlateCarree()
        ax.set_extent(
            [max(lon.min() - pad, -180), min(lon.max() + pad, 180),
             max(lat.min() - pad, -90), min(lat.max() + pad, 90)],
            crs=transform,
        )
        note = add_coastlines(ax)
        grid = ax.gridlines(draw_labels=True, linewidth=0.3, alpha=0.5)
        grid.top_labels = grid.right_labels = False
    else:
        ax.set_xlabel("longitude [°E]")
        ax.set_ylabel("latitude [°N]")
        ax.set_aspect("equal", adjustable="datalim")
        note = "cartopy not installed: no coastlines"
    kwargs = {"transform": transform} if transform is not None else {}
    sc = ax.scatter(lon, lat, c=val, s=2, cmap=cmap, vmin=vmin, vmax=vmax,
                    rasterized=True, **kwargs)
    fig.colorbar(sc, ax=ax, shrink=0.8, label=f"{variable} [{units}]", extend=extend)
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
    arrow_hours : float
        Wind arrows show the distance travelled in this time. [h]
    """
    import matplotlib.pyplot as plt

    lat = np.asarray(peaks["latitude"].values, dtype=float)
    lon = np.asarray(peaks["longitude"].values, dtype=float)
    try:
        import cartopy.crs as ccrs

        proj = ccrs.PlateCarree()
    except ImportError:  # pragma: no cover - cartopy is a dependency
        proj = None
    if ax is None:
        fig = plt.figure(figsize=(7, 6))
        ax = fig.add_subplot(1, 1, 1, projection=proj) if proj else fig.add_subplot(1, 1, 1)
    kw = {"transform": proj} if proj else {}
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
        ax.figure.colorbar(sc, ax=ax, shrink=0.7, label="peak height δ [ppm]")
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
        if proj:
            ax.set_extent(ext, crs=proj)
            note = add_coastlines(ax)
            if note:
                ax.text(0.01, 0.01, note, transform=ax.transAxes, fontsize=7, color="0.4")
            ax.gridlines(draw_labels=True, linewidth=0.3)
        else:
            ax.set_xlim(ext[:2])
            ax.set_ylim(ext[2:])
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="upper right")
    ax.set_title(title or f"{lat.size} detections (arrows: wind, {arrow_hours:g} h of travel)")
    return ax.figure



def field_map(da, *, ax=None, title: str | None = None, cmap: str | None = None,
              vmin: float | None = None, vmax: float | None = None, label: str | None = None,
              quantity: str | None = None):
    """Map of a gridded 2-D field (``latitude`` × ``longitude``) on a Plate Carrée map.

    Parameters
    ----------
    da : xarray.DataArray
        With ``latitude`` [°N] and ``longitude`` [°E] dims (other dims must be selected first);
        dask arrays are computed. NaN cells are left blank.
    ax : matplotlib Axes, optional
        Draw into this (a cartopy GeoAxes for a projected map); a new figure otherwise.
    cmap : str, optional
        Matplotlib colour map (default: the quantity's, else viridis).
    vmin, vmax : float, optional
        Colour range [units of ``da``]; by default the fixed range of the quantity
        (:data:`COLOUR_RANGES`: UV index 0-14, total ozone 200-500 DU ...) with its colour-bar
        arrows, else the whole data range. Explicit values get arrows where the data go beyond.
    label : str, optional
        Colour-bar label; ``long_name [units]`` by default.
    quantity : str, optional
        A key of :data:`COLOUR_RANGES` (default: looked up from ``da.name``).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

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
    transform, note = None, None
    if ax is None:
        try:
            import cartopy.crs as ccrs

            fig, ax = plt.subplots(figsize=(9, 4.8),
                                   subplot_kw={"projection": ccrs.PlateCarree()})
        except ImportError:
            fig, ax = plt.subplots(figsize=(9, 4.8))
    fig = ax.figure
    if hasattr(ax, "projection"):
        import cartopy.crs as ccrs

        transform = ccrs.PlateCarree()
        ax.set_global()
        note = add_coastlines(ax)
        grid = ax.gridlines(draw_labels=True, linewidth=0.3, alpha=0.5)
        grid.top_labels = grid.right_labels = False
    else:
        ax.set_xlabel("longitude [°E]")
        ax.set_ylabel("latitude [°N]")
        note = "cartopy not installed: no coastlines"
    kwargs = {"transform": transform} if transform is not None else {}
    mesh = ax.pcolormesh(lon, lat, np.ma.masked_invalid(val), cmap=cmap, vmin=vmin, vmax=vmax,
                         shading="nearest", rasterized=True, **kwargs)
    units = da.attrs.get("units", "")
    fig.colorbar(mesh, ax=ax, shrink=0.8, extend=extend,
                 label=label or f"{da.attrs.get('long_name', da.name)} [{units}]")
    data_range_note(ax, finite, units)
    if title:
        ax.set_title(title)
    if note:
        ax.text(0.01, 0.01, note, transform=ax.transAxes, fontsize=7, color="0.4")
        log.info("field_map: %s", note)
    return fig

