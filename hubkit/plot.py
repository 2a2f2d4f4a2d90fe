"""Plots that work offline: maps of soundings (with coastlines where a local copy exists).

Cartopy draws coastlines from Natural Earth downloads by default, which fail without a network.
Here coastlines come only from shapefiles already on disk (Debian's ``python-cartopy-data``
ships the crude GSHHS ones); without them the map is drawn without coastlines and says so.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

__all__ = ["coastline_file", "peak_profile", "peaks_map", "soundings_map"]

log = logging.getLogger(__name__)

#: Where crude GSHHS coastlines are looked for, in order (``HUBKIT_COASTLINES`` first).
COASTLINE_CANDIDATES = (
    "/usr/share/cartopy/data/shapefiles/gshhs/c/GSHHS_c_L1.shp",
    "/usr/local/share/cartopy/data/shapefiles/gshhs/c/GSHHS_c_L1.shp",
)


def coastline_file() -> Path | None:
    """A coastline shapefile on this machine, or None (see :data:`COASTLINE_CANDIDATES`)."""
    candidates = [os.environ.get("HUBKIT_COASTLINES"), *COASTLINE_CANDIDATES]
    try:
        import cartopy

        data_dir = cartopy.config.get("data_dir")
        if data_dir:
            candidates.append(os.path.join(data_dir, "shapefiles/gshhs/c/GSHHS_c_L1.shp"))
    except ImportError:
        pass
    for c in candidates:
        if c and Path(c).is_file():
            return Path(c)
    return None


def _as_list(datasets):
    if isinstance(datasets, (list, tuple)):
        return list(datasets)
    return [datasets]


def soundings_map(datasets, *, variable: str = "xco2", ax=None, title: str | None = None,
                  vmin: float | None = None, vmax: float | None = None, max_points: int = 200_000,
                  pad: float = 2.0):
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
        Colour range [units of ``variable``]; the 2nd and 98th percentiles by default.
    max_points : int
        At most this many points are drawn (evenly thinned), to keep figures light.
    pad : float
        Margin around the soundings. [°]

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    lat, lon, val, units = [], [], [], ""
    for ds in _as_list(datasets):
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
        raise ValueError(f"soundings_map: no finite {variable} to draw")
    step = max(1, lat.size // max_points)
    lat, lon, val = lat[::step], lon[::step], val[::step]
    if vmin is None or vmax is None:
        lo, hi = np.percentile(val, [2, 98])
        vmin = lo if vmin is None else vmin
        vmax = hi if vmax is None else vmax

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
        note = _add_coastlines(ax)
        grid = ax.gridlines(draw_labels=True, linewidth=0.3, alpha=0.5)
        grid.top_labels = grid.right_labels = False
    else:
        ax.set_xlabel("longitude [°E]")
        ax.set_ylabel("latitude [°N]")
        ax.set_aspect("equal", adjustable="datalim")
        note = "cartopy not installed: no coastlines"
    kwargs = {"transform": transform} if transform is not None else {}
    sc = ax.scatter(lon, lat, c=val, s=2, cmap="viridis", vmin=vmin, vmax=vmax,
                    rasterized=True, **kwargs)
    fig.colorbar(sc, ax=ax, shrink=0.8, label=f"{variable} [{units}]")
    ax.set_title(title or f"{variable}: {lat.size:,} soundings")
    if note:
        ax.text(0.01, 0.01, note, transform=ax.transAxes, fontsize=7, color="0.4")
        log.info("soundings_map: %s", note)
    return fig


def _add_coastlines(ax) -> str | None:
    """Coastlines from a local shapefile; returns a note when there are none."""
    path = coastline_file()
    if path is None:
        return "no local coastline data (install python-cartopy-data): coastlines omitted"
    import cartopy.crs as ccrs
    import cartopy.feature as cfeature
    from cartopy.io.shapereader import Reader

    # pyshp logs a warning for each lake-only ring of GSHHS; they are harmless, keep them quiet.
    shp_log = logging.getLogger("shapefile")
    quiet = logging.Filter("hubkit-no-such-logger")
    shp_log.addFilter(quiet)
    try:
        geometries = list(Reader(str(path)).geometries())
    finally:
        shp_log.removeFilter(quiet)
    feature = cfeature.ShapelyFeature(
        geometries, ccrs.PlateCarree(), facecolor="none", edgecolor="0.3", linewidth=0.6
    )
    ax.add_feature(feature)
    return None


def peak_profile(window, peak=None, *, ax=None, title: str | None = None):
    """Along-track XCO2 of one detection's window with the fitted Gaussian and background.

    Parameters
    ----------
    window : pandas.DataFrame
        :func:`hubkit.co2.window_data` output (``x`` [km], ``xco2``, ``model``, ``background``).
    peak : xarray.Dataset, optional
        The detection (one element of :func:`hubkit.co2.find_peaks`), for the legend.
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
            note = _add_coastlines(ax)
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
