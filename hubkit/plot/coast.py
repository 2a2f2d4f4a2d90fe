"""Coastlines that work offline.

Cartopy draws coastlines from Natural Earth downloads by default, which fail without a network.
Here coastlines come only from files already on disk (Debian's ``python-cartopy-data`` ships the
crude GSHHS ones); without them the map is drawn without coastlines and says so.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

__all__ = ["COASTLINE_CANDIDATES", "add_coastlines", "coastline_file"]

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



def add_coastlines(ax) -> str | None:
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
