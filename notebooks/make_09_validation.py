"""Build ``09_validation.ipynb`` (no stored outputs): ``python notebooks/make_09_validation.py``."""

from _notebook import code, md, write

CELLS = [
    ("md", """# Validation against TCCON: colocation and averaging-kernel-correct differences

A satellite column is a smoothed view of the atmosphere: each level counts with the retrieval's
averaging kernel, the rest comes from its a priori. Comparing it with a ground-based column as if
both saw the same thing leaves the *smoothing error* in the difference (Rodgers & Connor 2003).
Here a real TCCON GGG2020 file (Harwell, UK, 2 April 2023, in `../shared/data/real/`) meets
GOSAT-like XCH4 soundings simulated around it with a **known bias of +5 ppb**: colocate them,
compare plainly and through the satellite's kernel, and see which comparison finds the bias.
Method: `docs/ground-truth.md`."""),
    ("code", """from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import hubkit
from hubkit import chain, ingest, plot, simulate, validate

%matplotlib inline
# your own scratch store: the simulated soundings stay out of the shared HUBKIT_STORE
# (hubkit.open_store() opens that one, to search the real data)
store = hubkit.open_store(hubkit.scratch_store_url("notebooks"))
tccon = Path("..").resolve().parent / "shared" / "data" / "real" / "hw20230402_20230402.public.qc.nc"
if not tccon.exists():
    raise FileNotFoundError(f"{tccon}: the real TCCON sample file (see ../shared/data/real/README.md)")
print(store)"""),
    ("md", "## The station: upload the provider's file as it is"),
    ("code", """station_item = ingest.upload(store, tccon)
station = store.open(station_item)
print(station_item.id, "| bbox", station_item.bbox, "| species", station_item.properties["hubkit:species"])
print(f"{station.sizes['time']} retrievals, XCH4 {float(station.xch4.min()):.1f}-{float(station.xch4.max()):.1f} "
      f"{station.xch4.attrs['units']}, prior on {station.sizes['prior_altitude']} levels")"""),
    ("md", """## Satellite soundings with a known answer

Simulated (and marked so in their STAC item): 300 soundings within ±2° of Harwell and ±30 min of
a TCCON retrieval, each retrieved by linear optimal estimation from TCCON's own best profile
(its prior scaled by its retrieval), +5 ppb bias, 2 ppb noise
(`hubkit.simulate.xgas_soundings_near`)."""),
    ("code", """soundings = simulate.xgas_soundings_near(station, species="ch4", n=300, bias=5.0, noise=2.0, seed=9)
sat_item = store.put(soundings, product_type="xgas-soundings", step="simulate.xgas_soundings_near",
                     step_version="1", parameters={"bias": 5.0, "noise": 2.0, "seed": 9})
fig, ax = plt.subplots(figsize=(5, 4))
ax.plot(soundings.xch4_averaging_kernel.mean("sounding"), soundings.pressure.mean("sounding") / 100)
ax.set(yscale="log", xlabel="column averaging kernel [1]", ylabel="pressure [hPa]",
       title="mean kernel of the simulated soundings")
ax.invert_yaxis()
plt.show()"""),
    ("md", """## Colocate and compare

Pairs within 300 km of the station; TCCON retrievals within ±1 h of a sounding are averaged.
`ground` is TCCON's column; `ground_smoothed` is TCCON's profile as the satellite would see it."""),
    ("code", """criteria = validate.Criteria(max_distance_km=300.0, max_dt=np.timedelta64(1, "h"))
pairs = validate.compare_with_tccon(store.open(sat_item), station, "ch4", criteria)
plain = validate.difference_statistics(pairs)
corrected = validate.difference_statistics(pairs.assign(ground=pairs.ground_smoothed))
print("plain differences:")
print(plain.round(2).to_string())
print("smoothing-corrected differences (the known bias is +5 ppb):")
print(corrected.round(2).to_string())"""),
    ("code", """fig = plot.validation_figure(pairs, corrected, stations=validate.station_series(station, "ch4")["stations"],
                             quantity="XCH4", units="ppb", title="simulated GOSAT-like XCH4 against TCCON Harwell")
plt.show()"""),
    ("md", """The plain comparison mixes the bias with the smoothing error, which depends on how the
TCCON profile departs from the satellite's prior; the corrected one finds the bias within its
standard error. The difference between the two is the smoothing error itself:"""),
    ("code", """fig, ax = plt.subplots(figsize=(6, 3.5))
ax.hist(pairs.difference - pairs.difference_smoothed, bins=30)
ax.set(xlabel="plain − corrected difference = smoothing error [ppb]", ylabel="pairs")
plt.show()"""),
    ("md", """## The same as a chain step, on Dask

The default chain's `validate.tccon` step makes one `validation-pairs` table per satellite
product, against every TCCON product overlapping it in time, and makes it anew when another
station product arrives (`hubkit chain run`, or `hubkit validate` for one pair of products)."""),
    ("code", """steps = [s for s in chain.default_steps() if s.name == "validate.tccon"]
with hubkit.compute.client(n_workers=1, threads_per_worker=1) as client:
    report = chain.reconcile(store, steps, client=client)
[table_item] = store.search("validation-pairs")
table = store.open(table_item)
print(table_item.id, len(table), "pairs; inputs:", table_item.properties["hubkit:provenance"]["inputs"])"""),
]


if __name__ == "__main__":
    print(write([md(src) if kind == "md" else code(src) for kind, src in CELLS], "09_validation.ipynb"))
