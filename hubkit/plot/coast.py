"""Coastlines that work offline.

Cartopy draws coastlines from Natural Earth downloads by default, which fail without a network.
Here coastlines come only from files on disk, the first found of: the shapefile
``HUBKIT_COASTLINES`` names, the crude GSHHS shapefile of Debian's ``python-cartopy-data``
(:data:`COASTLINE_CANDIDATES`) or of cartopy's data folder, and last the Natural Earth 1:110m
coastline shipped with hubkit (``hubkit/data/ne_110m_coastline.npz``, public domain; see
``hubkit/data/ne_110m_coastline.md``), so a plain ``pip install`` draws coastlines without a
network. :func:`coastline_source` says which one maps use (``hubkit doctor`` prints it).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["COASTLINE_CANDIDATES", "SHIPPED_COASTLINE", "CoastlineSource", "add_coastlines",
           "coastline_file", "coastline_source", "coastline_summary", "shipped_coastline",
           "write_shipped_coastline"]

log = logging.getLogger(__name__)

#: The Natural Earth 1:110m coastline shipped with hubkit (lines as lon/lat points, float32).
SHIPPED_COASTLINE = Path(__file__).resolve().parents[1] / "data" / "ne_110m_coastline.npz"

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



@dataclass(frozen=True)
class CoastlineSource:
    """Where maps take their coastlines from: ``kind`` is ``"shapefile"`` (a GSHHS or Natural
    Earth shapefile on disk), ``"shipped"`` (:data:`SHIPPED_COASTLINE`) or ``"none"``."""

    kind: str
    path: Path | None
    description: str


def coastline_source() -> CoastlineSource:
    """The coastlines maps draw: a shapefile on this machine (:func:`coastline_file`), else
    the Natural Earth 1:110m coastline shipped with hubkit, else none."""
    path = coastline_file()
    if path is not None:
        what = "GSHHS crude" if "gshhs" in str(path).lower() else "shapefile"
        return CoastlineSource("shapefile", path, f"{what} {path}")
    if SHIPPED_COASTLINE.is_file():
        return CoastlineSource("shipped", SHIPPED_COASTLINE,
                               f"Natural Earth 1:110m shipped with hubkit ({SHIPPED_COASTLINE})")
    return CoastlineSource("none", None, "none found")


#: What ``hubkit doctor`` suggests for finer coastlines than the shipped ones.
FINER_COASTLINES = ("for finer ones: apt-get install python-cartopy-data (GSHHS), or set "
                    "HUBKIT_COASTLINES to a GSHHS or Natural Earth coastline .shp file")


def coastline_summary() -> str:
    """One line for ``hubkit doctor``: which coastlines maps use and how to get better ones."""
    source = coastline_source()
    if source.kind == "shapefile":
        return source.description
    if source.kind == "shipped":
        return f"{source.description}; {FINER_COASTLINES}"
    return f"none found (maps are drawn without coastlines); {FINER_COASTLINES}"


def shipped_coastline(path: Path | None = None) -> list[np.ndarray]:
    """The shipped coastline as a list of ``(n, 2)`` arrays of longitude, latitude. [°E, °N]"""
    with np.load(path or SHIPPED_COASTLINE, allow_pickle=False) as data:
        points, starts = data["points"].astype(float), data["starts"]
    return np.split(points, starts[1:])


def write_shipped_coastline(geojson, path) -> Path:
    """Write the LineStrings of a GeoJSON coastline (Natural Earth's ``ne_110m_coastline``)
    as :data:`SHIPPED_COASTLINE` does: ``points`` (float32 lon/lat) and the ``starts`` of
    each line, compressed. Returns ``path``."""
    import json

    features = json.loads(Path(geojson).read_text(encoding="utf-8"))["features"]
    lines = []
    for feature in features:
        geometry = feature["geometry"]
        parts = ([geometry["coordinates"]] if geometry["type"] == "LineString"
                 else geometry["coordinates"] if geometry["type"] == "MultiLineString" else [])
        lines.extend(np.asarray(part, dtype=float)[:, :2] for part in parts if len(part) > 1)
    starts = np.cumsum([0] + [len(line) for line in lines[:-1]]).astype(np.int32)
    np.savez_compressed(path, points=np.concatenate(lines).astype(np.float32), starts=starts)
    return Path(path)


def add_coastlines(ax) -> str | None:
    """Coastlines from :func:`coastline_source` on ``ax``; returns a note when there are none."""
    source = coastline_source()
    if source.kind == "none":
        return ("no coastline data (install python-cartopy-data, or reinstall hubkit): "
                "coastlines omitted")
    import cartopy.crs as ccrs
    import cartopy.feature as cfeature

    if source.kind == "shipped":
        from shapely.geometry import LineString

        geometries = [LineString(line) for line in shipped_coastline(source.path)]
        ax.add_feature(cfeature.ShapelyFeature(
            geometries, ccrs.PlateCarree(), facecolor="none", edgecolor="0.3", linewidth=0.6))
        return None
    path = source.path
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
