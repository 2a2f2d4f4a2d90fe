"""Colour scales and labels shared by every hubkit figure.

Colour scales are honest: a quantity of :data:`COLOUR_RANGES` (UV index, total ozone,
tropospheric column, ozone mixing ratio) is always drawn on its fixed physical range, with
arrows on the colour bar for values beyond it, so maps of different runs compare and a wrong
value shows as wrong; any other quantity is drawn over its whole data range. Nothing is clipped
at percentiles, and every map states the range of its data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["COLOUR_RANGES", "QUANTITY_OF", "BesideLocator", "ColourRange", "cf_label",
           "colorbar_beside", "colour_range", "data_range_note", "flag_summary", "lat_label",
           "lat_lon_label", "lon_label", "scale_for"]


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


def scale_for(values: np.ndarray, name, quantity, vmin, vmax, cmap):
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


def data_range_note(ax, values: np.ndarray, units: str) -> None:
    """Write the data's range in the corner of the map (what the colour arrows hide);
    dimensionless units ("1") are not written."""
    units = "" if units == "1" else units
    ax.text(0.99, 0.01, f"data {np.min(values):.4g} to {np.max(values):.4g} {units}".rstrip(),
            transform=ax.transAxes, fontsize=7, color="0.2", ha="right", va="bottom",
            bbox={"facecolor": "white", "alpha": 0.7, "edgecolor": "none", "pad": 1})


# -- labels ------------------------------------------------------------------------------------
def cf_label(da, fallback: str | None = None, *, width: int = 42) -> str:
    """A colour-bar or axis label from the CF attributes: ``long_name [units]``.

    The name is ``long_name``, else ``standard_name`` (underscores as spaces), else
    ``fallback``, else the variable's name; dimensionless units (``"1"``, empty) get no
    brackets. Labels longer than ``width`` characters are wrapped onto more lines, so a
    colour bar as tall as a small map can hold them.
    """
    import textwrap

    attrs = getattr(da, "attrs", {}) or {}
    name = (attrs.get("long_name") or str(attrs.get("standard_name", "")).replace("_", " ")
            or fallback or str(getattr(da, "name", "") or "value"))
    units = str(attrs.get("units", "") or "")
    label = f"{name} [{units}]" if units not in ("", "1") else str(name)
    return "\n".join(textwrap.wrap(label, width)) or label


def lon_label(lon: float, digits: int = 1) -> str:
    """A longitude as geographers write it: ``148.8°W``, ``12.0°E``, ``0.0°`` (never
    ``-148.8°E``); values outside -180..180 are wrapped into it first. [°E]"""
    lon = (float(lon) + 180.0) % 360.0 - 180.0
    text = f"{abs(lon):.{digits}f}"
    if float(text) == 0.0 or float(text) == 180.0:
        return f"{text}°"
    return f"{text}°{'E' if lon > 0 else 'W'}"


def lat_label(lat: float, digits: int = 1) -> str:
    """A latitude as ``33.9°S``, ``52.1°N``, ``0.0°``. [°N]"""
    text = f"{abs(float(lat)):.{digits}f}"
    if float(text) == 0.0:
        return f"{text}°"
    return f"{text}°{'N' if float(lat) > 0 else 'S'}"


def lat_lon_label(lat: float, lon: float, digits: int = 1) -> str:
    """``"33.9°S 148.8°W"``: a position for a title."""
    return f"{lat_label(lat, digits)} {lon_label(lon, digits)}"


def flag_summary(flags, where=None, *, counts: bool = True) -> str:
    """What the CF flags of the cells ``where`` (all cells by default) say, most frequent
    first: ``"no lapse rate tropopause (64 cells)"``; empty when none is set there.

    ``flags`` is a DataArray with ``flag_meanings`` and ``flag_masks`` (bit flags) or
    ``flag_values`` (exclusive values); a value of 0 means no flag. Without ``counts`` the
    meanings alone.
    """
    attrs = flags.attrs
    meanings = str(attrs.get("flag_meanings", "")).split()
    values = np.asarray(flags.values)
    if where is not None:
        values = values[np.asarray(where, dtype=bool)]
    show_counts, found = counts, []
    if "flag_masks" in attrs:
        for mask, meaning in zip(np.atleast_1d(attrs["flag_masks"]), meanings, strict=False):
            found.append((int(np.count_nonzero(values.astype(np.int64) & int(mask))), meaning))
    elif "flag_values" in attrs:
        for value, meaning in zip(np.atleast_1d(attrs["flag_values"]), meanings, strict=False):
            if int(value) != 0:
                found.append((int(np.count_nonzero(values == value)), meaning))
    found = sorted((c for c in found if c[0]), key=lambda c: -c[0])
    return "; ".join(meaning.replace("_", " ") + (f" ({n} cell{'s' if n > 1 else ''})"
                                                   if show_counts else "")
                     for n, meaning in found)


# -- colour bars -------------------------------------------------------------------------------
class BesideLocator:
    """Places a colour bar beside a group of axes, exactly as tall as they are drawn.

    Cartopy maps keep their aspect ratio, so the box they are drawn in is smaller than the
    room they were given; ``fig.colorbar(..., shrink=0.8)`` then guesses. This locator asks
    the axes where they are after their aspect is applied, at every draw. ``pad`` and
    ``width`` are in inches.
    """

    def __init__(self, axes, pad: float = 0.12, width: float = 0.16):
        self.axes = list(axes)
        self.pad, self.width = pad, width

    def __call__(self, cax, renderer):
        """The box of the colour bar ``cax`` in figure coordinates, beside the axes as drawn."""
        from matplotlib.transforms import Bbox

        boxes = []
        for ax in self.axes:
            ax.apply_aspect()
            boxes.append(ax.get_position(original=False))
        box = Bbox.union(boxes)
        fig_w = cax.figure.get_figwidth()
        return Bbox.from_bounds(box.x1 + self.pad / fig_w, box.y0, self.width / fig_w,
                                box.height)


def colorbar_beside(mappable, axes=None, *, label: str = "", extend: str = "neither",
                    pad: float = 0.12, width: float = 0.16):
    """A vertical colour bar right of ``axes`` (default the mappable's), as tall as they are.

    Parameters
    ----------
    mappable : matplotlib ScalarMappable
        What the colour bar shows (the image, mesh or scatter of the panels).
    axes : Axes or list of Axes, optional
        The panels the colour bar serves (a row or a block of small multiples).
    label : str
        Colour-bar label (:func:`cf_label`).
    extend : {"neither", "min", "max", "both"}
        Which ends get arrows, for values beyond the colour range.
    pad, width : float
        Gap to the axes and width of the bar. [inch]

    Returns
    -------
    matplotlib.colorbar.Colorbar
        Its axes carry the served axes as ``hubkit_serves``.
    """
    if axes is None:
        axes = [mappable.axes]
    elif not isinstance(axes, (list, tuple)):
        axes = [axes]
    fig = axes[0].figure
    cax = fig.add_axes([0.0, 0.0, 0.01, 0.01])
    cax.set_axes_locator(BesideLocator(axes, pad, width))
    cax.hubkit_serves = list(axes)
    colorbar = fig.colorbar(mappable, cax=cax, extend=extend, label=label)
    cax.set_box_aspect(None)  # the height is the panels' (a box aspect would shorten the bar)
    return colorbar
