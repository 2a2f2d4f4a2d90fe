"""Build ``02_fusion.ipynb`` (no stored outputs): ``python notebooks/make_02_fusion.py``."""


from _notebook import code, md, write

CELLS = [
md("""# 02 · Complete Data Fusion of ozone profiles

Simulate L2 ozone retrievals of four Sentinel-4/5-like instruments (UV and VIS from
geostationary orbit every hour, UV and TIR from low Earth orbit), upload them to the hubkit store,
open them lazily, fuse every 1° × 1° × 1 h cell with the Complete Data Fusion (Ceccherini et al.
2015, doi:10.1364/OE.23.008476) on Dask, store the fused product with its provenance, and look at
fused versus individual profiles, averaging kernels and a map of the degrees of freedom.
The equations are in `docs/fusion.md`."""),
code("""import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import hubkit
from hubkit import fusion, ingest, simulate
from hubkit.io.l2_ozone import write_l2_ozone

# your own scratch store: the simulated products stay out of the shared HUBKIT_STORE
# (hubkit.open_store() opens that one, to search the real data)
store = hubkit.open_store(hubkit.scratch_store_url("notebooks"))
store"""),
md("## Simulate and upload L2 retrievals"),
code("""l2_sim = simulate.l2_ozone(n_levels=20, hours=2, bbox=(4.0, 43.0, 10.0, 49.0), seed=1)
path = Path(tempfile.mkdtemp(prefix="hubkit-nb02-")) / "o3_l2_20240701.nc"
write_l2_ozone(l2_sim.drop_vars("o3_vmr_true"), path)
item = ingest.upload(store, path)
print(item.id, dict(l2_sim.sizes))
print(l2_sim["instrument"].to_series().value_counts().to_dict())"""),
md("## Open lazily and fuse on Dask\n\n`fuse_product` groups the retrievals into cells and runs the batched CDF kernel chunk by chunk (`xr.apply_ufunc(..., dask=\"parallelized\")`)."),
code("""hits = store.search("l2-ozone", datetime="2024-07-01")
l2 = store.open(hits[0])
client = hubkit.compute.client(n_workers=1, threads_per_worker=2)
print(client.hubkit_backend)
grid = np.geomspace(101325.0, 100.0, 20)  # fusion grid [Pa]
fused = fusion.fuse_product(l2, cell=(1.0, 1.0, 3600.0), pressure=grid, chunk_cells=50).compute()
print(dict(fused.sizes), f"median DFS {float(fused.dfs.median()):.1f}",
      f"median chi2/dof {float((fused.cost / fused.cost_dof).median()):.2f}")"""),
md("Store the fused product; its STAC item records the input product, the step and its parameters."),
code("""out = store.put(fused, product_type="fused-ozone", inputs=[hits[0].id], step="fusion.cdf",
                step_version="1", parameters={"cell": [1.0, 1.0, 3600.0], "method": "total"})
print(out.id, out.properties["hubkit:provenance"]["inputs"])
in_mb = sum(l2[v].nbytes for v in l2.data_vars) / 1e6
print(f"{in_mb:.1f} MB of L2 in, {fused.nbytes / 1e6:.1f} MB fused out ({in_mb * 1e6 / fused.nbytes:.1f}x smaller)")"""),
md("## Fused versus individual profiles and averaging kernels"),
code("""c = int(np.argmax(fused.n_retrievals.values))
box = fusion.group_cells(l2_sim)
key = fusion.group_cells(fused.isel(cell=[c]))[0]
members = np.flatnonzero((box == key).all(axis=1))
fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(14, 5), sharey=True)
for r in members:
    ret = l2_sim.isel(retrieval=r)
    ax1.plot(ret.o3_vmr * 1e6, ret.pressure / 100, lw=0.8, alpha=0.7, label=str(ret.instrument.values))
ax1.plot(l2_sim.o3_vmr_true.isel(retrieval=members[0]) * 1e6, l2_sim.pressure.isel(retrieval=members[0]) / 100,
         "k--", label="truth")
sd = np.sqrt(np.diag(fused.total_covariance.isel(cell=c)))
ax1.errorbar(fused.o3_vmr.isel(cell=c) * 1e6, grid / 100, xerr=sd * 1e6, color="C3", lw=2, label="fused")
ax1.set(yscale="log", xlabel="O3 [ppmv]", ylabel="pressure [hPa]", title=f"cell {c}: {members.size} retrievals")
ax1.invert_yaxis()
handles, labels = ax1.get_legend_handles_labels()
keep = {l: h for h, l in zip(handles, labels)}
ax1.legend(keep.values(), keep.keys(), fontsize=8)
ak = fused.averaging_kernel.isel(cell=c).values
for row in range(0, 20, 3):
    ax2.plot(ak[row], grid / 100)
ax2.set(title=f"fused AK rows (DFS {float(fused.dfs[c]):.1f})", xlabel="A [1]")
r_uv = members[0]
ret = l2_sim.isel(retrieval=r_uv)
for row in range(0, 20, 3):
    ax3.plot(ret.averaging_kernel.values[row], ret.pressure / 100)
dfs_one = float(np.trace(ret.averaging_kernel.values))
ax3.set(title=f"{ret.instrument.values} AK rows (DFS {dfs_one:.1f})", xlabel="A [1]")
plt.tight_layout()
plt.show()"""),
md("## Degrees of freedom of the fused profiles"),
code("""first = fused.where(fused.time == fused.time.min(), drop=True)
fig, ax = plt.subplots(figsize=(6, 5))
sc = ax.scatter(first.longitude, first.latitude, c=first.dfs, s=600, marker="s", cmap="viridis")
plt.colorbar(sc, label="DFS of the fused profile")
ax.set(xlabel="longitude [°E]", ylabel="latitude [°N]", title=f"fused DFS, {str(first.time.values[0])[:16]} UTC")
plt.show()"""),
code("client.close()"),
]
write(CELLS, "02_fusion.ipynb")
