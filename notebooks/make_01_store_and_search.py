"""Build ``01_store_and_search.ipynb`` (no stored outputs).

Run ``python notebooks/make_01_store_and_search.py``.
"""


from _notebook import code, md, write

CELLS = [
md("""# 01 · Store and search

Upload OCO-2 soundings into the hubkit store, search the catalog, open a product lazily, compute
on Dask and draw a map. The products go to your own scratch store (`hubkit.scratch_store_url`: a
folder of yours, or your prefix of the hub's bucket), not to the shared store `HUBKIT_STORE` names:
the orbits here are simulated."""),
code("""import tempfile
from pathlib import Path

import matplotlib.pyplot as plt

import hubkit
from hubkit import ingest, simulate
from hubkit.io.oco2_lite import write_oco2_lite
from hubkit.plot import soundings_map

# your own scratch store: the simulated products stay out of the shared HUBKIT_STORE
# (hubkit.open_store() opens that one, to search the real data)
store = hubkit.open_store(hubkit.scratch_store_url("notebooks"))
store"""),
md("""## Some files to upload

Three simulated OCO-2 orbits, written in the real OCO-2 Lite netCDF layout, and, when the shared
sample data sit beside the repository, the real oco2peak extract of orbit 11522 (2016-08-31)."""),
code("""work = Path(tempfile.mkdtemp(prefix="hubkit-nb01-"))
files = []
for ds in simulate.oco2_tracks(3, seed=1):
    path = work / f"simulated_oco2_160831_orbit{int(ds.orbit[0])}.nc4"
    write_oco2_lite(ds, path)
    files.append(path)

shared = Path("..").resolve().parent / "shared" / "data" / "oco2peak"
real = shared / "oco2_orbit11522_20160831_segment_300-800km.csv"
if real.exists():
    files.append(real)
[f.name for f in files]"""),
code("""items = ingest.upload_many(store, files)  # detects each format, validates, stores; progress bar
[item.id for item in items]"""),
md("""Uploading again is a no-op: the product id is derived from the file's content."""),
code("""again = ingest.upload(store, files[0])
assert again.id == items[0].id
again.id"""),
md("""## Search

By product type, bounding box (west, south, east, north in degrees) and time. `store.index()` is
the search index as a table."""),
code("""hits = store.search("oco2-soundings", bbox=(28, -29, 30, -24), datetime="2016-08-31")
print(len(hits), "product(s) over the Highveld on 2016-08-31")
index = store.index()
index[index["id"].isin([h.id for h in hits])]"""),
md("""## Open lazily and compute on Dask

`store.open` reads nothing yet: the variables are Dask arrays. `hubkit.compute.client()` picks the
Dask backend (a LocalCluster on a laptop, Dask Gateway in the hub)."""),
code("""ds = store.open(hits[0])
ds"""),
code("""client = hubkit.compute.client(n_workers=2, threads_per_worker=1)
print(client.hubkit_backend)
good = ds.where(ds.xco2_quality_flag == 0) if "xco2_quality_flag" in ds else ds
mean, count = float(good.xco2.mean().compute()), int(good.xco2.count().compute())
print(f"mean XCO2 {mean:.2f} ppm over {count} good soundings")"""),
md("""## Map of the soundings"""),
code("""title = "XCO2 over the Highveld, 2016-08-31"
fig = soundings_map([store.open(h) for h in hits], title=title)
plt.show()"""),
code("""client.close()"""),
]
write(CELLS, "01_store_and_search.ipynb")
