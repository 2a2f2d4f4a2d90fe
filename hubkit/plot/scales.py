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

__all__ = ["COLOUR_RANGES", "QUANTITY_OF", "ColourRange", "colour_range", "data_range_note",
           "scale_for"]


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
    """Write the data's range in the corner of the map (what the colour arrows hide)."""
    ax.text(0.99, 0.01, f"data {np.min(values):.4g} to {np.max(values):.4g} {units}".rstrip(),
            transform=ax.transAxes, fontsize=7, color="0.2", ha="right", va="bottom",
            bbox={"facecolor": "white", "alpha": 0.7, "edgecolor": "none", "pad": 1})
