"""Plots that work offline: maps of soundings (with coastlines where a local copy exists).

Cartopy draws coastlines from Natural Earth downloads by default, which fail without a network.
Here coastlines come only from shapefiles already on disk (Debian's ``python-cartopy-data``
ships the crude GSHHS ones); without them the map is drawn without coastlines and says so.

Colour scales are honest: a quantity of :data:`COLOUR_RANGES` (UV index, total ozone,
tropospheric column, ozone mixing ratio) is always drawn on its fixed physical range, with
arrows on the colour bar for values beyond it, so maps of different runs compare and a wrong
value shows as wrong; any other quantity is drawn over its whole data range. Nothing is clipped
at percentiles, and every map states the range of its data.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hubkit.errors import PlotInputError
from hubkit.plot_cycles import cycle_diagnostics

__all__ = ["COLOUR_RANGES", "ColourRange", "coastline_file", "colour_range",
           "cycle_diagnostics", "field_map", "peak_profile", "peaks_map", "soundings_map",
           "time_series", "troc_profile", "validation_figure"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ColourRange:
    """A fixed colour scale of a physical quantity: ``vmin``-``vmax`` [units], and the colour-bar
    arrows (``extend``: ``"min"``, ``"max"``, ``"both"``) for values beyond it."""

    vmin: float
    vmax: float
    extend: str
    units: str
    cmap: str
    label: str
    why: str


#: The one table of colour ranges; maps of these quantities always use them.
COLOUR_RANGES = {
    "uvi": ColourRange(
        0.0, 14.0, "max", "1", "magma", "UV index",
        "WHO (2002) categories up to 'extreme' (11+); the clear-sky sea-level maximum is about "
        "12-15 in the tropics, 7-9 at 50°N in summer: more is high ground, or an error"),
    "total_ozone": ColourRange(
        200.0, 500.0, "both", "DU", "viridis", "total ozone column [DU]",
        "the range of the global climatology outside the ozone hole (< 220 DU) and the late-"
        "winter polar maxima (> 450 DU)"),
    "tropospheric_column": ColourRange(
        10.0, 60.0, "both", "DU", "viridis", "tropospheric ozone column [DU]",
        "satellite tropospheric columns span 10-60 DU (Ziemke et al. 2011, doi:10.5194/"
        "acp-11-9237-2011); less is high ground or a polar tropopause, more is pollution"),
    "o3_ppbv": ColourRange(
        0.0, 120.0, "max", "ppbv", "viridis", "ozone [ppbv]",
        "tropospheric ozone mixing ratios: 10-30 ppbv clean marine, 40-80 polluted, > 100 "
        "only in stratospheric intrusions or smog"),
}

#: Variable names of the products -> their quantity in :data:`COLOUR_RANGES`.
QUANTITY_OF = {
    "uvi": "uvi", "uvi_noon": "uvi", "uvi_forecast": "uvi",
    "total_ozone": "total_ozone", "total_ozone_noon": "total_ozone",
    "total_ozone_forecast": "total_ozone",
    "o3_column_lrt": "tropospheric_column", "o3_column_fixed": "tropospheric_column",
    "o3_500hpa": "o3_ppbv",
}


def colour_range(name: str | None, quantity: str | None = None) -> ColourRange | None:
    """The fixed colour range of a variable name (:data:`QUANTITY_OF`) or of ``quantity``
    (a key of :data:`COLOUR_RANGES`); None when it has none."""
    if quantity is not None:
        if quantity not in COLOUR_RANGES:
            raise KeyError(f"colour_range: quantity {quantity!r}; expected one of "
                           f"{sorted(COLOUR_RANGES)}")
        return COLOUR_RANGES[quantity]
    return COLOUR_RANGES.get(QUANTITY_OF.get(str(name)))


def _scale(values: np.ndarray, name, quantity, vmin, vmax, cmap):
    """``(vmin, vmax, extend, cmap, fixed range or None)``: the quantity's fixed range, else
    the data's whole range; explicit ``vmin``/``vmax`` win, and then the arrows follow the data."""
    fixed = colour_range(name, quantity)
    lo, hi = float(np.min(values)), float(np.max(values))
    if fixed is not None and vmin is None and vmax is None:
        return fixed.vmin, fixed.vmax, fixed.extend, cmap or fixed.cmap, fixed
    vmin = (fixed.vmin if fixed else lo) if vmin is None else vmin
    vmax = (fixed.vmax if fixed else hi) if vmax is None else vmax
    below, above = lo < vmin, hi > vmax
    extend = {(True, True): "both", (True, False): "min", (False, True): "max"}.get(
        (below, above), "neither")
    return vmin, vmax, extend, cmap or (fixed.cmap if fixed else "viridis"), fixed


def _data_range_note(ax, values: np.ndarray, units: str) -> None:
    """Write the data's range in the corner of the map (what the colour arrows hide)."""
    ax.text(0.99, 0.01, f"data {np.min(values):.4g} to {np.max(values):.4g} {units}".rstrip(),
            transform=ax.transAxes, fontsize=7, color="0.2", ha="right", va="bottom",
            bbox={"facecolor": "white", "alpha": 0.7, "edgecolor": "none", "pad": 1})

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
        raise PlotInputError(f"soundings_map: no finite {variable} to draw")
    vmin, vmax, extend, cmap, _ = _scale(val, variable, quantity, vmin, vmax, None)
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
        note = _add_coastlines(ax)
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
    _data_range_note(ax, val, units)
    ax.set_title(title or f"{variable}: {lat.size:,} soundings")
    if note:
        ax.text(0.01, 0.01, note, transform=ax.transAxes, fontsize=7, color="0.4")
        log.info("soundings_map: %s", note)
    return fig


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

    datasets = _as_list(datasets)
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


# -- gridded fields and tropospheric ozone profiles (hubkit.ozone) -----------------------------
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
    vmin, vmax, extend, cmap, _ = _scale(finite, da.name, quantity, vmin, vmax, cmap)
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
        note = _add_coastlines(ax)
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
    _data_range_note(ax, finite, units)
    if title:
        ax.set_title(title)
    if note:
        ax.text(0.01, 0.01, note, transform=ax.transAxes, fontsize=7, color="0.4")
        log.info("field_map: %s", note)
    return fig


def troc_profile(column, troc, *, ax=None, title: str | None = None):
    """One column's ozone profile on model levels beside its tropospheric sub-columns.

    Parameters
    ----------
    column : xarray.Dataset
        One column of the input field (``o3_vmr`` [mol mol-1], ``temperature`` [K],
        ``surface_pressure``, ``surface_altitude``, ``hybrid_a``, ``hybrid_b``).
    troc : xarray.Dataset
        The same column of :func:`hubkit.ozone.tropospheric_ozone`.

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
    note = _add_coastlines(ax_map)
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


# -- quick look at any product (hubkit plot) ---------------------------------------------------
#: Variables a soundings quick look prefers, first found.
_SOUNDING_VARIABLES = ("xco2", "xch4", "xco", "total_ozone", "o3_column", "value")
#: Positions, times and identifiers: never the variable a quick look colours by.
_NOT_DRAWN = ("latitude", "longitude", "time", "sounding_id", "orbit", "footprint", "peak")


def _numeric(data, names) -> list[str]:
    """The names among ``names`` worth colouring by: numeric (not bool), not a flag, position,
    time or identifier. Only dtypes are looked at (nothing lazy is computed)."""
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    return [str(n) for n in names if str(n) not in _NOT_DRAWN and "flag" not in str(n)
            and is_numeric_dtype(data[n].dtype) and not is_bool_dtype(data[n].dtype)]


def _pick(requested, candidates: list[str], name: str, what: str) -> str:
    if requested is not None:
        if requested not in candidates:
            raise PlotInputError(f"{name} has no {what} {requested!r} to draw; expected one of "
                                 f"{', '.join(candidates) or 'none'}")
        return requested
    if not candidates:
        raise PlotInputError(f"{name} has no numeric {what} to draw")
    return next((v for v in _SOUNDING_VARIABLES if v in candidates), candidates[0])


def quick_look(data, *, name: str = "product", variable: str | None = None,
               title: str | None = None):
    """A first figure of any product, drawn by the function that suits its shape.

    - a table (:func:`hubkit.export.as_table`: Parquet tables, datasets on ``peak``) with
      ``latitude``/``longitude``: :func:`peaks_map` when it has the peak height ``delta``, else
      its points coloured by ``variable`` (:func:`soundings_map`);
    - a dataset on ``latitude`` × ``longitude``: :func:`field_map` of ``variable`` (default the
      first such), other dims at their first index (named in the title);
    - a dataset with ``value`` on ``time`` (station data): :func:`time_series`;
    - soundings (``latitude``, ``longitude`` and ``variable`` on one dim): :func:`soundings_map`
      (default ``xco2``, ``xch4`` ..., else the first numeric variable).

    Returns ``(figure, what)``, ``what`` saying which figure was drawn. Other products raise
    :class:`PlotInputError` (a :class:`~hubkit.errors.ProductKindError` for a table without
    positions) naming ``name`` and what was expected.
    """
    import pandas as pd
    import xarray as xr

    from hubkit.export import TABLE_DIM, as_table, to_geojson

    label = title or name
    if isinstance(data, pd.DataFrame) or (isinstance(data, xr.Dataset)
                                         and TABLE_DIM in data.dims):
        table = as_table(data, name=name)
        to_geojson(table.head(0), name=name)  # the same refusal as export: positions needed
        if "delta" in table.columns and variable in (None, "delta"):
            return peaks_map(table, title=f"{label}: {len(table)} detection(s)"), "peaks map"
        chosen = _pick(variable, _numeric(table, table.columns), name, "column")
        ds = xr.Dataset({c: ("row", table[c].to_numpy()) for c in
                         ("latitude", "longitude", chosen)})
        ds[chosen].attrs["units"] = (table.attrs.get("units") or {}).get(chosen, "")
        fig = soundings_map(ds, variable=chosen, title=f"{label}: {chosen}, {len(table)} rows")
        return fig, f"map of {chosen}"
    if not isinstance(data, xr.Dataset):
        raise PlotInputError(f"{name}: cannot draw a {type(data).__name__}; expected a product "
                             "opened from the store (a dataset or a table)")
    if {"latitude", "longitude"} <= set(data.dims):
        gridded = [str(k) for k, v in data.data_vars.items()
                   if {"latitude", "longitude"} <= set(v.dims)
                   and np.issubdtype(v.dtype, np.number)]
        chosen = _pick(variable, gridded, name, "gridded variable")
        da = data[chosen]
        at = {d: 0 for d in da.dims if d not in ("latitude", "longitude")}
        da = da.isel(at)
        where = ", ".join(f"{d}={_label_of(da[d].values) if d in da.coords else 0}"
                          for d in at)
        what = f"map of {chosen}" + (f" at {where}" if where else "")
        return field_map(da, title=f"{label}: {chosen}" + (f" ({where})" if where else "")), what
    if "value" in data.data_vars and data["value"].dims == ("time",) and variable in (
            None, "value"):
        return time_series(data, title=f"{label}: value"), "time series of value"
    if "latitude" in data.variables and "longitude" in data.variables:
        dims = data["latitude"].dims
        if len(dims) == 1 and data["longitude"].dims == dims:
            candidates = _numeric(data, [k for k, v in data.data_vars.items() if v.dims == dims])
            chosen = _pick(variable, candidates, name, "variable")
            fig = soundings_map(data, variable=chosen,
                                title=f"{label}: {chosen}, {data.sizes[dims[0]]:,} soundings")
            return fig, f"soundings map of {chosen}"
    dims = ", ".join(f"{k}={v}" for k, v in data.sizes.items()) or "none"
    raise PlotInputError(
        f"{name} has dims {dims}; a quick look needs a latitude × longitude grid, soundings "
        "with latitude/longitude along one dim, station values on time, or a table with "
        "latitude/longitude")


def _label_of(value) -> str:
    """A coordinate value for a title: times in ISO 8601, numbers short."""
    value = np.asarray(value)
    if np.issubdtype(value.dtype, np.datetime64):
        return str(np.datetime_as_string(value, unit="s"))
    if np.issubdtype(value.dtype, np.number):
        return f"{value.item():g}"
    return str(value.item())
