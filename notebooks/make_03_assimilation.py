"""Build ``03_assimilation.ipynb`` (no stored outputs): ``python notebooks/make_03_assimilation.py``."""


from _notebook import code, md, write

CELLS = [
md("""# 03 · Assimilation of fused ozone: a twin experiment

The second step of the chain (Gai et al. 2021, doi:10.3390/rs13020210, section 4.3.2): fused ozone
profiles are assimilated into a tracer-transport model by a local ensemble transform Kalman
filter (LETKF, Hunt et al. 2007, doi:10.1016/j.physd.2006.11.008) in 12-hour cycles with analyses
at 00 and 12 UTC, as TM5 did (Eskes et al. 2003, doi:10.1256/qj.02.14). The output is the **DAS
product**: analysis and forecast ozone on hybrid levels with temperature, surface pressure and the
hybrid coefficients, which the tropospheric-ozone step reads.

In a *twin experiment* the truth is known: we run the model from a perturbed initial field (the
truth), simulate fused profiles of it (averaging kernels, correlated noise), and assimilate them
starting from the unperturbed field. Without assimilation (the *free run*) the error stays; the
analysis should converge to the truth within the observation error. Equations: `docs/assimilation.md`."""),
code("""import matplotlib.pyplot as plt
import numpy as np

import hubkit
from hubkit import simulate
from hubkit.assimilation.cycling import (CycleOptions, assimilate, cycle_times, free_run,
                                         solid_body_winds)
from hubkit.simulate import fused_observations
from hubkit.ozone import tropospheric_ozone

# your own scratch store: the simulated products stay out of the shared HUBKIT_STORE
# (hubkit.open_store() opens that one, to search the real data)
store = hubkit.open_store(hubkit.scratch_store_url("notebooks"))
store"""),
md("## Model grid, winds and the truth run\n\nA 5° × 5° global grid with 10 hybrid levels; the winds are a solid-body rotation tilted 0.3 rad from the pole (Williamson et al. 1992, test case 1), so the flow crosses the polar caps."),
code("""bg = simulate.das_field(nlon=72, nlat=36, ntime=1, n_levels=10, dtype=np.float64,
                        start="2024-07-01T00", seed=3)
winds = solid_body_winds(bg.latitude, bg.longitude, speed=30.0, tilt=0.3)
lam, phi = np.meshgrid(np.radians(bg.longitude), np.radians(bg.latitude))
pattern = np.sin(2 * lam + 1.0) * np.cos(phi) + 0.6 * np.cos(3 * lam - 2 * phi) * np.cos(phi) ** 2
truth_init = bg.copy()
truth_init["o3_vmr"] = bg.o3_vmr * (1.0 + 0.3 * pattern)  # the truth differs by up to ~45 %
times = cycle_times("2024-07-01T00", "2024-07-05T00", window="12h")
truth = free_run(truth_init, winds, times)
print(len(times), "analysis times:", [str(t)[:13] for t in times[:3]], "...")"""),
md("## Simulated fused profiles\n\n150 fused profiles per cycle on 10 pressure levels, each with the averaging kernel and noise covariance of an optimal-estimation retrieval (5 % measurement noise, 50 % prior uncertainty). We store them as a `fused-ozone` product, as the fusion step would."),
code("""pressure = np.geomspace(90000.0, 500.0, 10)  # fusion levels [Pa]
fused = fused_observations(truth, times, pressure, cells_per_time=150, seed=4)
dfs = float(np.trace(fused.averaging_kernel.isel(cell=0)))
obs_err = float(np.sqrt(np.mean(np.diagonal(fused.noise_covariance.values, axis1=1, axis2=2))))
print(dict(fused.sizes), f"DFS {dfs:.1f}, RMS noise {obs_err * 1e9:.0f} ppbv")
fused_item = store.put(fused.drop_vars("o3_vmr_true"), product_type="fused-ozone",
                       step="simulate.fused_observations", step_version="1",
                       parameters={"cells_per_time": 150, "relative_error": 0.05})
fused_item.id"""),
md("## Cycling: 4 days, analyses at 00 and 12 UTC\n\n16 members, Gaspari–Cohn localisation with half-width 800 km, 5 % multiplicative inflation."),
code("""opts = CycleOptions(filter="letkf", members=16, half_width=800e3, inflation=1.05, seed=0)
das = assimilate(fused, background=bg, winds=winds, window="12h", options=opts, truth=truth)
das[["n_obs", "omf_chi2", "rmse_free", "rmse_forecast", "rmse_analysis"]].to_dataframe()"""),
md("Store the DAS product; its STAC item records the fused product it came from, the step and its parameters."),
code("""item = store.put(das, product_type="das", inputs=[fused_item.id], step="assimilation.letkf",
                 step_version="1", parameters={"window": "12h", "members": 16,
                                               "half_width_m": 800e3, "inflation": 1.05})
print(item.id, item.properties["hubkit:provenance"]["inputs"])"""),
md("## Maps: truth, free run and analysis\n\nOzone at model level 5 (about 20 hPa, near the stratospheric maximum) at the last analysis time."),
code("""k, t = 4, -1
fields = {"truth": truth.o3_vmr.isel(time=t, level=k), "free run": das.o3_vmr_free.isel(time=t, level=k),
          "analysis": das.o3_vmr.isel(time=t, level=k)}
vmin, vmax = (float(f(fields["truth"])) * 1e6 for f in (np.min, np.max))
fig, axes = plt.subplots(2, 2, figsize=(13, 7), sharex=True, sharey=True)
for ax, (name, f) in zip(axes.flat, fields.items()):
    im = ax.pcolormesh(bg.longitude, bg.latitude, f * 1e6, vmin=vmin, vmax=vmax, cmap="viridis")
    ax.set(title=f"{name}, {str(das.time.values[t])[:13]} UTC")
fig.colorbar(im, ax=axes[0], label="O3 [ppmv]")
err = (fields["analysis"] - fields["truth"]) * 1e6
im = axes[1, 1].pcolormesh(bg.longitude, bg.latitude, err, cmap="RdBu_r", vmin=-0.2, vmax=0.2)
sel = fused.time == das.time.values[t]
axes[1, 1].plot(fused.longitude[sel], fused.latitude[sel], "k.", ms=3)
axes[1, 1].set(title="analysis - truth (dots: fused profiles)")
fig.colorbar(im, ax=axes[1], label="O3 error [ppmv]")
for ax in axes[:, 0]:
    ax.set(ylabel="latitude [°N]")
for ax in axes[1]:
    ax.set(xlabel="longitude [°E]")
plt.show()"""),
md("## RMSE over time\n\nThe free run keeps its initial error; forecasts and analyses fall to below the observation noise within two days. The OmF χ² per observation approaching 1 shows the filter's error estimate is consistent with the innovations."),
code("""fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4))
for name, style in (("rmse_free", "k--"), ("rmse_forecast", "C1o-"), ("rmse_analysis", "C0s-")):
    ax1.plot(das.time, das[name] * 1e9, style, label=name.removeprefix("rmse_"))
ax1.axhline(obs_err * 1e9, color="gray", lw=0.8, label="RMS observation noise")
ax1.set(ylabel="RMSE [ppbv]", yscale="log", title="error against the truth")
ax1.legend()
ax2.plot(das.time, das.omf_chi2, "C3o-")
ax2.axhline(1.0, color="gray", lw=0.8)
ax2.set(ylabel="OmF χ² / observation", title="innovation consistency", yscale="log")
fig.autofmt_xdate()
plt.show()"""),
md("""## The TM5 filter: parameterised covariance (PKF)

TM5's assimilation (Eskes et al. 2003, doi:10.1256/qj.02.14; Segers et al. 2005,
doi:10.1256/qj.04.92) does not carry an ensemble: the forecast error covariance is a variance
field, advected with the ozone by the same transport model and growing by a model error, times a
fixed correlation model (here Gaussian in chordal distance, 1500 km); the analysis is optimal
interpolation with that covariance. Same observations, same start:"""),
code("""das_pkf = assimilate(fused, background=bg, winds=winds, window="12h",
                     options=CycleOptions(filter="pkf", correlation_length=1500e3), truth=truth)
fig, ax = plt.subplots(figsize=(8, 4))
ax.plot(das.time, das.rmse_free * 1e9, "k--", label="free run")
ax.plot(das.time, das.rmse_analysis * 1e9, "C0s-", label="LETKF analysis")
ax.plot(das_pkf.time, das_pkf.rmse_analysis * 1e9, "C2^-", label="PKF analysis")
ax.axhline(obs_err * 1e9, color="gray", lw=0.8, label="RMS observation noise")
ax.set(ylabel="RMSE [ppbv]", yscale="log", title="LETKF and PKF against the truth")
ax.legend()
fig.autofmt_xdate()
plt.show()
print(f"last cycle: LETKF {float(das.rmse_analysis[-1]) * 1e9:.1f} ppbv, "
      f"PKF {float(das_pkf.rmse_analysis[-1]) * 1e9:.1f} ppbv, PKF OmF chi2 "
      f"{float(das_pkf.omf_chi2[-1]):.2f}")"""),
md("""## Against a truth the filter does not know: an OSSE

A twin whose truth is drawn with the structure the filter assumes proves little. An
observing-system simulation experiment (`hubkit.osse`) instead observes a **nature run**
(`hubkit.simulate.NatureRun`: the climatology with its own bias, random perturbations with an
exponential vertical correlation and slowly changing amplitudes, an elevated tropospheric ozone
layer the climatology lacks) with the four simulated instruments over Europe, every hour, fuses
each hour on one grid and assimilates each 12-h cycle from the previous analysis, exactly as the
chain does. Every analysis is scored against the truth: total and 0-6 km column RMSE of the
analysis, its 12-h first guess, a free run and the climatology. (10° grid here to be quick; the
chain runs 5°, `python -m benchmarks.osse` scores it.)"""),
code("""from hubkit import plot
from hubkit.osse import OsseConfig, run_osse

osse = run_osse(OsseConfig(grid=(36, 18, 20), hours=36, spacing=2.0,
                           fusion_cell=(2.0, 2.0, 3600.0), fusion_levels=20))
columns = ["time", "start", "n_obs", "chi2", "rmse_trop_analysis", "rmse_trop_forecast",
           "rmse_trop_climatology", "rmse_total_analysis", "rmse_total_climatology"]
osse.table[columns].round(2)"""),
code("""fig = plot.cycle_diagnostics(osse.table, title="OSSE: the chain against its nature run")
plt.show()"""),
md("## The next step reads the DAS product\n\n`hubkit.ozone.tropospheric_ozone` computes the tropospheric ozone columns from it. With only 10 hybrid levels the WMO lapse-rate tropopause is often not resolved (use 60+ levels operationally), so we map the column below the fixed 6-km level."),
code("""troc = tropospheric_ozone(das.isel(time=[-1]))
fig, ax = plt.subplots(figsize=(8, 4))
im = ax.pcolormesh(bg.longitude, bg.latitude, troc.o3_column_fixed.isel(time=0), cmap="magma")
fig.colorbar(im, label="O3 column, surface to 6 km [DU]")
ax.set(xlabel="longitude [°E]", ylabel="latitude [°N]", title="TROC step on the last analysis")
plt.show()"""),
]
write(CELLS, "03_assimilation.ipynb")
