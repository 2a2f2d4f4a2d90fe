"""Build ``08_real_ghg_data.ipynb`` (no stored outputs).

Run ``python notebooks/make_08_real_ghg_data.py``.
"""


from _notebook import code, md, write

CELLS = [
md("""# 08 · Real greenhouse-gas data in their providers' formats

Station and ship data as NOAA GML distributes them (ObsPack netCDF and CCGG event text), uploaded
as they come: hubkit detects each format, converts units exactly (pint, the CF unit grammar),
keeps every observation — a tall tower's three intake heights share their time stamps — and
catalogues the station: site, inlet, network, calibration scale, platform.

The files are in `../shared/data/real/` (from OpenGHG's test data, Apache-2.0). The measurements
belong to their providers: NOAA GML (BAO tower, Andrews et al. 2014, doi:10.5194/amt-7-647-2014;
the Pacific Ocean cruise flasks) and CSIRO (Estevan Point flasks, in NOAA's GLOBALVIEWplus CH4
ObsPack v2.0, doi:10.25925/20200424). Cite them if you show results."""),
code("""from pathlib import Path

import matplotlib.pyplot as plt

import hubkit
from hubkit import ingest, plot

real = Path("..").resolve().parent / "shared" / "data" / "real"
if not real.is_dir():
    raise FileNotFoundError(f"{real}: the shared real sample data are not beside the repository")
# your own scratch store: what the examples upload stays out of the shared HUBKIT_STORE
# (hubkit.open_store() opens that one, to search the real data)
store = hubkit.open_store(hubkit.scratch_store_url("notebooks"))
store"""),
md("""## Upload the ObsPack files

A tall tower (BAO, Colorado: CH4 at 22, 100 and 300 m, in `nanomol mol-1`), flasks at a coastal
site (ESP, British Columbia: CH4 in `mol mol-1`) and flasks from a ship crossing the Pacific at
25°N (CO, one position per sample)."""),
code("""files = [real / "ch4_bao_tower-insitu_1_ccgg_all.nc",
         real / "ch4_esp_surface-flask_2_representative.nc",
         real / "co_pocn25_surface-flask_1_ccgg_event.txt"]
items = ingest.upload_many(store, files, progress=False)
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

Column-averaged mole fractions from the ground (TCCON GGG2020, Harwell UK; Laughner et al. 2024,
doi:10.5194/essd-16-2197-2024) and from space (GOSAT proxy XCH4 of the University of Leicester,
ESA GHG-CCI; Parker et al. 2020, doi:10.5194/essd-12-3383-2020), uploaded the same way: each is
detected, converted and catalogued with its species, averaging kernels and a priori profiles."""),
code("""columns = ingest.upload_many(store, [real / "hw20230402_20230402.public.qc.nc",
                             real / "gosat-fts_gosat_20160101_ch4-column.nc"], progress=False)
for item in columns:
    print(f"{item.collection_id:<16} {item.id:<40} bbox {[round(v, 2) for v in item.bbox]}")
print("XCH4 products:", [i.id for i in store.search(species="ch4")])
tccon = store.open(columns[0])
gosat = store.open(columns[1])
print(f"TCCON Harwell: {tccon.sizes['time']} retrievals, XCH4 {float(tccon.xch4.mean()):.1f} "
      f"{tccon.xch4.attrs['units']}; GOSAT: {gosat.sizes['sounding']} soundings on "
      f"{gosat.sizes['level']} levels")"""),
code("""fig = plt.figure(figsize=(12, 4.2), layout="constrained")
ax1 = fig.add_subplot(1, 2, 1)
ax1.errorbar(tccon.time.values, tccon.xch4, yerr=tccon.xch4_uncertainty, fmt=".", ms=4)
ax1.set(title="TCCON Harwell, 2023-04-02", ylabel=f"XCH4 [{tccon.xch4.attrs['units']}]",
        xlabel="time (UTC)")
ax1.tick_params(axis="x", labelrotation=30)
ax2 = fig.add_subplot(1, 2, 2)
ax2.plot(gosat.xch4_averaging_kernel.T, gosat.pressure.T / 100, color="C0", alpha=0.2, lw=0.8)
ax2.set(yscale="log", xlabel="GOSAT column averaging kernel [1]", ylabel="pressure [hPa]",
        title=f"{gosat.sizes['sounding']} GOSAT soundings, 2016-01-01")
ax2.invert_yaxis()
plt.show()
plot.soundings_map(gosat, variable="xch4", title="GOSAT proxy XCH4, 2016-01-01")
plt.show()"""),
md("""A satellite column is not the same quantity as a station's column: it sees the atmosphere
through its averaging kernel. Comparing them the right way (colocation, the station's profile seen
through the satellite's kernel) is notebook `09_validation`."""),
]
write(CELLS, "08_real_ghg_data.ipynb")
