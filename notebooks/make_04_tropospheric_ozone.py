"""Build ``04_tropospheric_ozone.ipynb`` (no stored outputs):
``python notebooks/make_04_tropospheric_ozone.py``."""


from _notebook import code, md, write

CELLS = [
md("""# 04 · Tropospheric ozone (TROC) from a DAS field

The third step of the processing chain (Gai et al. 2021, doi:10.3390/rs13020210, section 4.3.3):
from an assimilated ozone and temperature field on hybrid model levels, compute for every column
the hybrid pressures, dry hydrostatic heights, the WMO lapse-rate tropopause (WMO 1957; Reichler
et al. 2003, doi:10.1029/2003GL018240), the fixed 6-km tropopause, the tropospheric ozone profile
as 20 sub-columns regridded mass-conservingly (Keppens et al. 2019, doi:10.5194/amt-12-4379-2019)
and the tropospheric columns in Dobson units — the whole globe as array operations, chunked with
Dask. The equations are in `docs/troc.md`."""),
code("""import matplotlib.pyplot as plt
import numpy as np

import hubkit
from hubkit import ozone, plot, simulate

# your own scratch store: the simulated products stay out of the shared HUBKIT_STORE
# (hubkit.open_store() opens that one, to search the real data)
store = hubkit.open_store(hubkit.scratch_store_url("notebooks"))
store"""),
md("""## A simulated DAS field, stored and opened lazily

`simulate.das_field` makes a DAS-like field on 60 hybrid levels (top first, as ECMWF and TM5 store
them) with orography, surface pressure and travelling waves; north of 80°N a polar-night profile
that has no lapse-rate tropopause. It goes into the store like an assimilation output would, and
comes back as a lazy, Zarr-backed dataset."""),
code("""das = simulate.das_field(nlon=144, nlat=72, ntime=4, n_levels=60, seed=1)
das_item = store.put(das, product_type="das", inputs=["simulate.das_field"],
                     step="simulate.das_field", parameters={"seed": 1, "grid": "2.5x2.5x60"})
das_lazy = store.open(das_item)
print(dict(das_lazy.sizes), f"{das_lazy.nbytes / 1e6:.1f} MB,",
      ozone.level_order(das_lazy.hybrid_a, das_lazy.hybrid_b))"""),
md("""## TROC on Dask

`tropospheric_ozone` checks the inputs (names, units, level counts), then maps the NumPy kernel
over the chunks with `xr.apply_ufunc(..., dask="parallelized")`. Nothing is computed until
`.compute()`."""),
code("""client = hubkit.compute.client(n_workers=1, threads_per_worker=2)
print(client.hubkit_backend)
lazy = ozone.tropospheric_ozone(das_lazy.chunk({"time": 1, "latitude": 36}))
print(type(lazy.o3_column_lrt.data).__name__, lazy.o3_column_lrt.data.npartitions, "chunks")
troc = lazy.compute()
flags = troc.tropopause_flag.values
print(f"{np.mean(flags & 1 > 0):.1%} of the columns have no lapse-rate tropopause (flag bit 1)")
print(f"tropospheric column to the LRT: {float(troc.o3_column_lrt.mean()):.1f} DU on average, "
      f"to 6 km: {float(troc.o3_column_fixed.mean()):.1f} DU")"""),
md("Store the product; its STAC item records the input, the step and its parameters."),
code("""item = store.put(troc, product_type="troc", inputs=[das_item.id],
                 step="ozone.troc", step_version="1",
                 parameters={"fixed_altitude": 6000.0, "grid": "2.5x2.5x60"})
print(item.id, item.properties["hubkit:provenance"]["step"])
print(store.open(item))"""),
md("## Maps of the lapse-rate tropopause and of the tropospheric column"),
code("""first = troc.isel(time=0)
fig = plot.field_map(first.tropopause_altitude / 1000, cmap="viridis",
                     label="lapse-rate tropopause [km]",
                     title=f"WMO LRT, {str(troc.time.values[0])[:16]} UTC (blank: no LRT)")
plt.show()
fig = plot.field_map(first.o3_column_lrt, cmap="magma", label="tropospheric O3 column [DU]",
                     title="ozone column from the surface to the LRT")
plt.show()"""),
md("""## One profile against its regridded sub-columns

The sub-column grid is `[z_surface, next whole km, …, last whole km, z_LRT]`; it is rebuilt from
the stored surface and tropopause altitudes with `ozone.subcolumn_edges`. Over the Tibetan Plateau
the surface is near 5 km, so the 6-km column is thin."""),
code("""for lat, lon in ((-0.0, -150.0), (32.0, 88.0)):
    col = das.isel(time=0).sel(latitude=lat, longitude=lon, method="nearest")
    tc = troc.isel(time=0).sel(latitude=lat, longitude=lon, method="nearest")
    edges, _ = ozone.subcolumn_edges(tc.surface_altitude, tc.tropopause_altitude)
    print(f"({float(col.latitude):.2f}, {float(col.longitude):.2f}): edges [km]",
          np.round(edges[np.isfinite(edges)] / 1000, 2))
    title = plot.lat_lon_label(float(col.latitude), float(col.longitude))  # 148.8°W, not -148.8°E
    plot.troc_profile(col, tc, title=title)
    plt.show()"""),
md("""## The columns are conserved

Independently of the sub-column machinery: the model-level partial columns regridded onto the
single layer [p_surface, p_LRT] give the column to the LRT (to rounding)."""),
code("""field = das.isel(time=0)
ph, _ = ozone.hybrid_pressure(field.hybrid_a.values, field.hybrid_b.values,
                              field.surface_pressure.values)  # (lat, lon, interface), top first
layers = ozone.partial_columns(np.moveaxis(field.o3_vmr.values, 0, -1), ph)  # [DU]
p_tp = first.tropopause_pressure.values
check = ozone.regrid_mass_conserving(layers, ph, np.stack([p_tp, ph[..., -1]], axis=-1))[..., 0]
rel = np.nanmax(np.abs(check - first.o3_column_lrt.values) / check)
print(f"largest relative difference from the model-level integral: {rel:.1e}")"""),
code("client.close()"),
]
write(CELLS, "04_tropospheric_ozone.ipynb")
