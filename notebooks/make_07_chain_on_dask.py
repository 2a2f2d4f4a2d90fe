"""Build ``07_chain_on_dask.ipynb`` (no stored outputs):
``python notebooks/make_07_chain_on_dask.py``."""


from _notebook import code, md, write

CELLS = [
md("""# 07 · The processing chain on a Dask cluster

AURORA's Data Processing Chain (Gai et al. 2021, doi:10.3390/rs13020210, sections 4-5) turns
level-2 ozone retrievals into fused profiles every hour, assimilates them every 12 hours, and from
each analysis computes the tropospheric ozone column and the surface UV index; OCO-2 soundings go
through a plume detector beside it. `hubkit.chain` runs the same steps on Dask against the
product store: a *level-triggered* reconciler reads the catalog, works out which products the
steps should have made from it, and submits only the missing ones. Every product records its
inputs, so a UV map can be traced back to the L2 files it came from. How to operate it:
`docs/chain.md`."""),
code("""import tempfile
from pathlib import Path

import matplotlib.pyplot as plt

import hubkit
from hubkit import chain, compute, ingest, plot, simulate
from hubkit.chain.report import processing_table, report_figure
from hubkit.io.l2_ozone import write_l2_ozone
from hubkit.io.oco2_lite import write_oco2_lite

# your own scratch store: the simulated products stay out of the shared HUBKIT_STORE
# (hubkit.open_store() opens that one, to search the real data)
store = hubkit.open_store(hubkit.scratch_store_url("notebooks"))
client = compute.client()  # the hub's gateway, HUBKIT_DASK, or a LocalCluster here
print(client.hubkit_backend.describe())
print("dashboard:", client.dashboard_link)
store"""),
md("""## Three hours of L2 ozone and one OCO-2 orbit

Simulated inputs (`hubkit.simulate`): retrievals of four Sentinel-4/5-like instruments over
central Europe, one file per hour from 09 to 11 UTC (all in the 00-12 UTC assimilation cycle),
and one OCO-2-like track over the South African Highveld. They are written as files and uploaded
as an instrument team would upload theirs."""),
code("""workdir = tempfile.TemporaryDirectory(prefix="hubkit-07-")  # the files, until uploaded
inputs = Path(workdir.name)
instruments = ("S4-UV", "S5-UV", "S5-TIR", "S4-VIS")


def l2_hour(hour):
    start = f"2024-07-01T{hour:02d}:00:00"
    ds = simulate.l2_ozone(instruments=instruments, start=start, hours=1, seed=hour)
    return write_l2_ozone(ds, inputs / f"l2_o3_sim_20240701{hour:02d}.nc")


files = [l2_hour(h) for h in (9, 10, 11)]
(orbit,) = simulate.oco2_tracks(1, seed=2016)
files.append(write_oco2_lite(orbit, inputs / "simulated_oco2_160831.nc4"))
uploaded = ingest.upload_many(store, files, progress=False)
l2_ids = [item.id for item in uploaded if item.collection_id == "l2-ozone"]
for path, item in zip(files, uploaded):
    print(f"{Path(path).name:<34} {Path(path).stat().st_size / 1e6:5.1f} MB -> {item.id}")"""),
md("""## What the chain should make, before it runs

`chain.status` compares the catalog with the steps (`chain.default_steps()`): three hours to
fuse and one OCO-2 orbit to search for plumes. The later steps expect nothing yet, as their
inputs do not exist. Once there are fused hours, a 12-h cycle still *waits* (its fused products
counted under `waiting`) while fusion has missing hours in it, so it is assimilated once, from
all its hours."""),
code("""steps = chain.default_steps()
for step in steps:
    print(f"{step.name:<19} v{step.version}: {step.input.describe():<52} -> {step.output}")
chain.status(store, steps).table()"""),
md("""## Reconcile on the cluster

One Dask task per missing unit; each task reopens the store on its worker, reads the inputs,
runs the step function and commits the product (the STAC item last, so nothing half-written is
ever visible). A unit is submitted as soon as its inputs are committed, so fused ozone → DAS →
TROC and UV flow through the cluster while later hours are still being fused; the assimilation
cycles, which must run one after the other, go first. A progress bar per step counts its units."""),
code("""report = chain.reconcile(store, steps, client=client, progress=True)
print(f"{len(report.submitted)} unit(s) run in {report.seconds:.1f} s; failed: {report.failed}")
report.table()"""),
md("""Status again: everything expected is present. Running the reconciler again submits
nothing — the product ids follow from the inputs, the step, its version and parameters, so what
exists is never made twice."""),
code("""print(chain.status(store, steps))
again = chain.reconcile(store, steps, client=client)
print("submitted on a second run:", again.submitted)"""),
md("""## The operational mode: `chain.watch`

`hubkit chain watch --interval 30s` reconciles in a loop as files arrive. Here a late hour
(12 UTC, the first of the 12-24 UTC cycle) is uploaded and two rounds of `chain.watch` pick it
up: it is fused, and its cycle (long past its end on the data's day) is assimilated."""),
code("""ingest.upload(store, l2_hour(12))
rounds = chain.watch(store, steps, interval=0.0, client=client, max_rounds=2,
                     on_report=lambda r: print(f"round: {len(r.submitted)} unit(s) run"))
chain.status(store, steps).table()"""),
md("""## Provenance: from a UV map back to its L2 files

Each STAC item carries `hubkit:provenance` (inputs, step, version, parameters, time). Walking the
inputs of the 12 UTC surface-UV product goes surface-uv → das → fused-ozone → l2-ozone → the
uploaded file."""),
code("""def lineage(item_id, indent="", last=True, top=True, leaves=None):
    \"\"\"Print the provenance tree of a product; return the ids of the uploads it rests on.\"\"\"
    leaves = set() if leaves is None else leaves
    item = store.get_item(item_id)
    prov = item.properties["hubkit:provenance"]
    when = str(item.common_metadata.start_datetime or item.datetime)[:16]
    branch = "" if top else ("└─ " if last else "├─ ")
    print(f"{indent}{branch}{item_id}  ({prov['step']} v{prov['step_version']}, {when})")
    below = indent + ("" if top else ("   " if last else "│  "))
    for k, source in enumerate(prov["inputs"]):
        end = k == len(prov["inputs"]) - 1
        if isinstance(source, dict):  # an upload: the file it was made from
            leaves.add(item_id)
            print(f"{below}{'└─ ' if end else '├─ '}file {source['file']} "
                  f"(sha256 {source['sha256'][:12]}…)")
        else:
            lineage(source, below, end, top=False, leaves=leaves)
    return leaves


uv_item = min(store.search("surface-uv"), key=lambda i: i.datetime)
sources = lineage(uv_item.id)
print("\\nrests on exactly the three uploaded hours:", sorted(sources) == sorted(l2_ids))
print("parameters of its analysis:",
      store.get_item(uv_item.properties["hubkit:provenance"]["inputs"][0])
      .properties["hubkit:provenance"]["parameters"])"""),
md("""## The UV index of that analysis, and the chain's daily report

The assimilation runs on a coarse global grid (5° × 5°) with a climatological background; the
analysis moves ozone only where the fused profiles are. The report is AURORA's Figure 13: products
made and megabytes processed per day and step, computed from the store alone."""),
code("""uv = store.open(uv_item)["uvi"].isel(time=0).load()
fig = plot.field_map(uv, title=f"UV index (clear sky), {str(uv_item.datetime)[:16]} UTC",
                     cmap="magma", vmin=0.0, label="UV index")
plt.show()
table = processing_table(store)
fig = report_figure(table, title="hubkit processing chain, this notebook's store")
plt.show()
table"""),
code("""client.close()
workdir.cleanup()  # the simulated files; their products stay in the store"""),
]
write(CELLS, "07_chain_on_dask.ipynb")
