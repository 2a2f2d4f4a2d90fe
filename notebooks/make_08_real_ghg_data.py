"""Build ``08_real_ghg_data.ipynb`` (no stored outputs).

Run ``python notebooks/make_08_real_ghg_data.py``.
"""

from pathlib import Path

import nbformat as nbf

nb = nbf.v4.new_notebook()
md, code = nbf.v4.new_markdown_cell, nbf.v4.new_code_cell
nb.cells = [
md("""# 08 · Real greenhouse-gas data in their providers' formats

Station and ship data as NOAA GML distributes them (ObsPack netCDF and CCGG event text), uploaded
as they come: hubkit detects each format, converts units exactly (pint, the CF unit grammar),
keeps every observation — a tall tower's three intake heights share their time stamps — and
catalogues the station: site, inlet, network, calibration scale, platform.

The files are in `../shared/data/real/` (from OpenGHG's test data, Apache-2.0). The measurements
belong to their providers: NOAA GML (BAO tower, Andrews et al. 2014, doi:10.5194/amt-7-647-2014;
the Pacific Ocean cruise flasks) and CSIRO (Estevan Point flasks, in NOAA's GLOBALVIEWplus CH4
ObsPack v2.0, doi:10.25925/20200424). Cite them if you show results."""),
code("""import os
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt

import hubkit
from hubkit import plot

real = Path("..").resolve().parent / "shared" / "data" / "real"
if not real.is_dir():
    raise FileNotFoundError(f"{real}: the shared real sample data are not beside the repository")
# HUBKIT_STORE if set (the hub, the tests), else a scratch store that disappears with /tmp
store = hubkit.open_store(os.environ.get("HUBKIT_STORE")
                          or tempfile.mkdtemp(prefix="hubkit-nb08-"))
store"""),
md("""## Upload the ObsPack files

A tall tower (BAO, Colorado: CH4 at 22, 100 and 300 m, in `nanomol mol-1`), flasks at a coastal
site (ESP, British Columbia: CH4 in `mol mol-1`) and flasks from a ship crossing the Pacific at
25°N (CO, one position per sample)."""),
code("""files = [real / "ch4_bao_tower-insitu_1_ccgg_all.nc",
         real / "ch4_esp_surface-flask_2_representative.nc",
         real / "co_pocn25_surface-flask_1_ccgg_event.txt"]
items = store.upload_many(files, progress=False)
for item in items:
    p = item.properties
    print(f"{item.id}  {p['hubkit:provenance']['parameters']['format']:<13} "
          f"{p['hubkit:site']:<7} inlets {p['hubkit:inlet_heights']} m  "
          f"{p['platform']:<6} scale {p.get('hubkit:calibration_scale')}")"""),
md("""## Search by site and inlet

The search index has the station facets as columns; `store.search` filters on them (the same as
`hubkit search --site BAO --inlet 100m` on the command line)."""),
code("""hits = store.search("surface-obs", site="bao", inlet="100m", species="ch4")
print([h.id for h in hits])
index = store.index()
index[["id", "species", "site", "inlets", "network", "scale", "platform", "west", "south"]]"""),
md("""## Nothing lost

Every row of the tower file is stored: 4,190 observations at 1,400 time stamps. (OpenGHG 0.19
keeps 1,392 / 6 / 2 of them, as it de-duplicates time stamps before splitting the inlets.)"""),
code("""bao = store.open(hits[0])
heights = bao["inlet_height"].to_series().value_counts().sort_index()
print(f"{bao.sizes['time']} rows at {len(set(bao['time'].values))} time stamps")
heights"""),
md("""## A time series per inlet, daily means

`hubkit.get_obs` returns one inlet as a time-indexed dataset, lazily (Dask) — the shape
OpenGHG's `get_obs_surface` returns — with an optional average and target unit."""),
code("""daily = [hubkit.get_obs(store, site="BAO", species="ch4", inlet=h, average="1D")
         for h in (22, 100, 300)]
daily[1]"""),
code("""fig = plot.time_series(daily, title="CH4 at the BAO tower, daily means ± variability")
plt.show()"""),
md("""The flasks at Estevan Point, monthly means in ppm (converted exactly from the stored
ppb):"""),
code("""esp = hubkit.get_obs(store, site="ESP", species="ch4", average="MS", units="ppm")
esp = esp.dropna("time", subset=["value"]).compute()
print(esp["value"].attrs["units"], esp["value"].attrs["units_converted_from"])
fig = plot.time_series(esp, title="CH4 flasks at Estevan Point, monthly means")
plt.show()"""),
md("""## A map: the stations and the ship's track

The ship's product has one position per sample: its bounding box is the track's extent, not a
site."""),
code("""ship = hubkit.get_obs(store, site="POCN25", species="co")
print("bbox of the ship's product:", store.get_item(items[2].id).bbox)
fig = plot.soundings_map(ship, variable="value", title="CO along 25°N (ship flasks) "
                         "and the CH4 stations", pad=8)
ax = fig.axes[0]
on_map = {"transform": ax.projection} if hasattr(ax, "projection") else {}
for item in items[:2]:
    lon, lat = item.bbox[:2]
    ax.plot(lon, lat, "k^", ms=8, **on_map)
    ax.text(lon + 1, lat + 1, item.properties["hubkit:site"], **on_map)
if on_map:
    ax.set_extent([-160, -95, 15, 55], crs=ax.projection)
else:
    ax.set_xlim(-160, -95)
    ax.set_ylim(15, 55)
plt.show()"""),
md("""## TCCON and GOSAT columns

*To come (issue 17, the column readers): TCCON GGG2020 and GOSAT proxy XCH4 uploaded the same way,
their soundings searched by site and bbox, and compared with the station series above.*"""),
]
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nbf.write(nb, Path(__file__).with_name("08_real_ghg_data.ipynb"))
