"""Build ``05_uv_index.ipynb`` (no stored outputs): ``python notebooks/make_05_uv_index.py``."""


from _notebook import code, md, write

CELLS = [
md("""# 05 · Surface UV index from a lookup table

The last step of the processing chain (Gai et al. 2021, doi:10.3390/rs13020210, section 4.3.4;
Lipponen et al. 2020, doi:10.3390/atmos11040324): the UV index and the UV-A irradiance at the
surface, interpolated in a table that a radiative-transfer engine computed over seven inputs —
total ozone, surface elevation, surface albedo, aerosol optical depth and single-scattering albedo,
solar zenith angle, cloud optical thickness. hubkit's table was made with NCAR's TUV-x (the
`musica` package) and ships with the library; `hubkit uv build-table` makes your own. Details and
the interpolation error it costs: `docs/uv.md`."""),
code("""import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

import hubkit
from hubkit import plot, simulate
from hubkit.errors import UVInputError
from hubkit.uv import index, solar
from hubkit.uv.table import default_table

# your own scratch store: the simulated products stay out of the shared HUBKIT_STORE
# (hubkit.open_store() opens that one, to search the real data)
store = hubkit.open_store(hubkit.scratch_store_url("notebooks"))
table = default_table()
print(table.attrs["source"], "|", table.attrs["engine_solver"])
print({axis: table[axis].size for axis in table.uvi.dims},
      f"{table.uvi.size:,} nodes, built in {table.attrs['build_seconds']:.0f} s")"""),
md("""## The table along each axis

Red dots are nodes, the lines the multilinear interpolation in the transformed axes (ln ozone,
ln(1 + AOD), ln(1 + cloud optical thickness / 20), √cos SZA) of ln UVI. The UV index falls with ozone,
aerosol and cloud, rises with albedo and elevation, and follows the sun."""),
code("""fig = plot.uv_table_axes(table)
plt.show()
fig = plot.uv_table_axes(table, variable="uva", base={"cot": 5.0})
plt.show()"""),
md("""## The table against the engine

Between nodes the table is an interpolation; here it is compared with direct TUV-x runs at
points that are not nodes (this needs `musica`, which the hub image has)."""),
code("""from hubkit.uv import engine

points = [dict(ozone=280.0, elevation=1500.0, aod=0.25, ssa=0.92, cot=3.0, sza=40.0, albedo=0.12),
          dict(ozone=420.0, elevation=300.0, aod=0.05, ssa=0.95, cot=0.0, sza=63.0, albedo=0.03)]
for p in points:
    direct = engine.surface_uv(engine.Atmosphere(ozone=p["ozone"], elevation=p["elevation"],
                                                 aod=p["aod"], ssa=p["ssa"], cot=p["cot"]),
                               p["sza"], p["albedo"])
    uvi, uva, flag = index.surface_uv_arrays(p["ozone"], p["elevation"], p["albedo"], p["aod"],
                                             p["ssa"], p["sza"], p["cot"], table=table)
    print(f"{p}\\n  UVI table {float(uvi):.3f} engine {direct['uvi'][0, 0]:.3f} "
          f"({float(uvi) / direct['uvi'][0, 0] - 1:+.2%}); UV-A table {float(uva):.2f} "
          f"engine {direct['uva'][0, 0]:.2f} W/m2 "
          f"({float(uva) / direct['uva'][0, 0] - 1:+.2%})")"""),
md("""## A global UV-index map at local noon from a DAS ozone field

A simulated DAS field goes into the store like an assimilation output. `surface_uv` takes the
total ozone column from it, the orography as elevation, and — since we pass nothing else —
the documented clear-sky defaults for albedo, aerosol and cloud, recorded in the product. With
`local_noon=True` each longitude is evaluated at its local solar noon (the daily maximum)."""),
code("""das = simulate.das_field(nlon=144, nlat=72, ntime=2, n_levels=40, start="2024-06-21T00",
                         step_hours=12.0, seed=3)
das_item = store.put(das, product_type="das", inputs=["simulate.das_field"],
                     step="simulate.das_field", parameters={"seed": 3, "grid": "2.5x2.5x40"})
das_lazy = store.open(das_item).chunk({"latitude": 36})

from hubkit.uv.surface import surface_uv

client = hubkit.compute.client(n_workers=1, threads_per_worker=2)
uv = surface_uv(das_lazy, local_noon=True, table=table).compute()
print(uv.attrs["hubkit_uv_inputs"])
noon = uv.isel(time=0)
fig = plot.field_map(noon.uvi, cmap="inferno", vmin=0, vmax=18, label="UV index",
                     title="clear-sky UV index at local solar noon, 21 June (simulated DAS ozone)")
plt.show()"""),
md("""## Against the clear-sky formula of Madronich

A widely used fit to radiative-transfer runs (Madronich 2007): UVI ≈ 12.5 μ₀^2.42 (Ω/300 DU)^−1.23
for clear skies at sea level. Without aerosol our table is 2 % (overhead sun) to 8 % (SZA 60°)
below it; the default aerosol (AOD 0.1, SSA 0.9) takes another 5-6 %, and elevation adds about
6 % per km, which is the spread you see."""),
code("""mu0 = np.cos(np.deg2rad(noon.sza)).clip(min=0)
madronich = 12.5 * mu0**2.42 * (noon.total_ozone / 300.0) ** -1.23
ratio = (noon.uvi / madronich).where(noon.sza < 60)
fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
axes[0].scatter(madronich.values.ravel(), noon.uvi.values.ravel(), s=2,
                c=das.surface_altitude.values.ravel() / 1000, cmap="viridis")
axes[0].plot([0, 18], [0, 18], "k--", lw=0.8)
axes[0].set(xlabel="Madronich formula", ylabel="table (colour: elevation km)", title="UV index")
axes[1].hist(ratio.values[np.isfinite(ratio.values)], bins=60)
axes[1].set(xlabel="table / formula (SZA < 60°)", ylabel="cells")
plt.tight_layout()
plt.show()
print(f"median ratio {float(ratio.median()):.3f}, 5-95 %: "
      f"{float(ratio.quantile(0.05)):.3f}-{float(ratio.quantile(0.95)):.3f}")"""),
md("""## Clouds and aerosol change the picture

Fields the user provides replace the defaults: here a band of thick cloud over the tropics and a
dust-like aerosol plume, both on the DAS grid."""),
code("""lat, lon = das.latitude, das.longitude
cot = (30.0 * np.exp(-((lat - 5.0) / 8.0) ** 2) * (1 + 0 * lon)).rename("cot")
aod = (0.1 + 1.2 * np.exp(-((lat - 20.0) / 8.0) ** 2 - ((lon - 0.0) / 25.0) ** 2)).rename("aod")
cloudy = surface_uv(das_lazy, local_noon=True, cot=cot, aod=aod, ssa=0.88, table=table).compute()
fig = plot.field_map((cloudy.uvi - uv.uvi).isel(time=0), cmap="RdBu_r", vmin=-8, vmax=8,
                     label="UV index change", title="with a tropical cloud band and a dust plume")
plt.show()
item = store.put(cloudy, product_type="surface-uv", inputs=[das_item.id], step="uv.surface",
                 parameters={"local_noon": True, "cot": "tropical band", "aod": "dust plume"})
print(item.id, store.open(item).attrs["hubkit_uv_inputs"])"""),
md("""## Any shape, lazily

`uv_index` works on NumPy arrays or xarray fields of any shape; with Dask-backed inputs it stays
lazy and runs chunk-parallel. Inputs are checked: an SZA in radians labelled as degrees, negative
ozone or an albedo above 1 raise an error naming the variable."""),
code("""sza = solar.solar_zenith_angle(np.datetime64("2024-03-20T12:00"), lat, lon)
sza = sza.assign_attrs(units="degree")
ozone = xr.full_like(sza, 300.0).assign_attrs(units="DU").chunk({"latitude": 18})
elev = xr.zeros_like(sza).assign_attrs(units="m")
lazy = index.uv_index(ozone, elev, 0.05, 0.1, 0.9, sza, 0.0, table=table)
print(type(lazy.data).__name__, "->", float(lazy.max().compute()), "max UVI at the equinox")
try:
    index.uv_index(ozone, elev, 0.05, 0.1, 0.9, np.deg2rad(sza).assign_attrs(units="degree"), 0.0,
                   table=table)
except UVInputError as err:
    print("UVInputError:", err)"""),
code("client.close()"),
]
write(CELLS, "05_uv_index.ipynb")
