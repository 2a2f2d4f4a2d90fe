"""Build ``06_co2_plumes.ipynb`` (no stored outputs): ``python notebooks/make_06_co2_plumes.py``."""

from _notebook import code, md, write

CELLS = [
    ("md", """# CO2 plumes in OCO-2 soundings: detect, estimate, attribute

Converged Gaussian-on-a-line fits in ±100 km windows along each orbit (`hubkit.co2.find_peaks`),
a Δχ² test against the line alone, one detection per plume, emissions by cross-sectional flux
and source attribution from an inventory. Method and differences from oco2peak:
`docs/co2.md`. First the real orbit-11522 segment over the South African Highveld (when
`../shared/data/oco2peak` is there), then a simulated week with plumes of known emission."""),
    ("code", """import json
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import xarray as xr

import hubkit
from hubkit import co2, ingest, plot
from hubkit.simulate import oco2_tracks

%matplotlib inline
# your own scratch store: the simulated products stay out of the shared HUBKIT_STORE
# (hubkit.open_store() opens that one, to search the real data)
store = hubkit.open_store(hubkit.scratch_store_url("notebooks"))
shared = Path("..").resolve().parent / "shared" / "data" / "oco2peak"
segment = shared / "oco2_orbit11522_20160831_segment_300-800km.csv"
print(store, "| real data:", segment.exists())"""),
    ("md", "## The real segment: upload, detect"),
    ("code", """if segment.exists():
    item = ingest.upload(store, segment)
    real = store.open(item).load()
    # the extract's window centres are the rows with position % 15 == 5 (see its README)
    real_peaks = co2.find_peaks(real, co2.PeakOptions(offset=5))
    cols = ["latitude", "longitude", "delta", "delta_err", "sigma", "sigma_err",
            "significance", "emission", "emission_err", "emission_flag"]
    display(real_peaks[cols].to_dataframe().round(3))
else:
    real_peaks = None
    print("shared sample data absent: skipping the real segment")"""),
    ("code", """if real_peaks is not None and real_peaks.sizes["peak"]:
    main = int(np.argmax(real_peaks["significance"].values))
    window = co2.window_data(real, real_peaks, main, co2.PeakOptions(offset=5))
    plot.peak_profile(window, real_peaks.isel(peak=main),
                      title="orbit 11522, 2016-08-31: the Highveld plume (converged fit)")
    plt.show()"""),
    ("md", """oco2peak reported this plume with σ ≈ 12.9 km and δ ≈ 4.3 ppm from a fit stopped after
one iteration; the converged least-squares fit of the same window is wider (see `docs/co2.md`).
The extract has no TCWV, so 25 kg/m² is assumed (flag 4), as oco2peak did."""),
    ("code", """inventory_csv = shared / "CO2_emissions_inventory_merged_2018.csv"
attribution = None
if real_peaks is not None and inventory_csv.exists():
    inv = pd.read_csv(inventory_csv, index_col=0)
    sources = co2.inventory_table(inv, emission="CO2/CO2e emissions (in tonnes per year)")
    attribution = co2.attribute_sources(real_peaks, sources, max_hours=12.0)
    named = attribution.merge(inv[["CO2/CO2e emissions source"]], left_on="source",
                              right_index=True)
    display(named.round(3))
    plot.peaks_map(real_peaks, sources=sources, attribution=attribution, soundings=real,
                   title="Highveld: detections, wind (1 h), attributed sources")
    plt.show()"""),
    ("md", """## The peaks product: a Parquet table with a STAC item

One row per detection with every fitted parameter and its uncertainty, the test statistic, the
wind, the emission with its uncertainty and flags, and the attributed source; the options and
units travel in the table's attributes. The soundings of a window are not stored with it: they
are recomputed on demand from the soundings product the peaks came from."""),
    ("code", """if real_peaks is not None:
    table = co2.peaks_table(real_peaks, attribution)
    peaks_item = store.put_table(table, product_type="oco2-peaks", inputs=[item.id],
                                 step="co2.find_peaks", step_version="1",
                                 parameters={"options": table.attrs["options"]})
    stored = store.open(peaks_item)  # a pandas DataFrame
    print(peaks_item.id, "->", peaks_item.assets["data"].href,
          f"({peaks_item.assets['data'].media_type}), {len(stored)} peaks")
    cols = ["orbit", "latitude", "longitude", "delta", "delta_err", "sigma", "emission",
            "emission_err", "source", "source_emission"]
    display(stored[[c for c in cols if c in stored]].round(2))
    # one detection's window, recomputed from the stored soundings
    options = co2.PeakOptions.from_json(stored.attrs["options"])
    row = stored.loc[stored["significance"].idxmax()]
    window = co2.peak_window(store.open(item).load(), row, options)
    print(f"{len(window)} soundings of the main plume's window, from {item.id}")"""),
    ("md", """### Browse the detections

A slider and a drop-down over the stored table; each selection recomputes the window and
redraws the profile (`hubkit.widgets.PeakBrowser`, offline)."""),
    ("code", """from hubkit.widgets import PeakBrowser

if real_peaks is not None:
    browser = PeakBrowser(real, stored)
    display(browser)
    browser.dropdown.value = int(row.name)  # what a click does: the main plume"""),
    ("md", """## A simulated week with plumes of known emission

`oco2_tracks(..., plumes=6)` puts six point sources upwind of each orbit; their Gaussian plumes
(Nassar et al. 2017) are added to 0.7 ppm noise. We detect, then compare with the truth."""),
    ("code", """tracks = oco2_tracks(24, seconds=1500.0, plumes=6, seed=1)
week = xr.concat(tracks, "sounding", combine_attrs="drop_conflicts")
t0 = time.perf_counter()
peaks = co2.find_peaks(week)
print(f"{week.sizes['sounding']:,} soundings, {peaks.attrs['windows_fitted']:,} windows, "
      f"{peaks.sizes['peak']} detections in {time.perf_counter() - t0:.1f} s")"""),
    ("code", """truth = pd.DataFrame([s for ds in tracks
                      for s in json.loads(ds.attrs["plume_sources"])])
rows = []
for _, s in truth.iterrows():
    p = peaks.sel(peak=peaks["orbit"].values == s["orbit_number"])
    d = co2.haversine(s["crossing_latitude"], s["crossing_longitude"], p["latitude"].values,
                      p["longitude"].values)
    if d.size and d.min() < 10:
        j = int(np.argmin(d))
        rows.append({"true": s["emission"], "estimated": float(p["emission"].values[j]),
                     "err": float(p["emission_err"].values[j])})
match = pd.DataFrame(rows)
print(f"{len(match)} of {len(truth)} simulated plumes detected (the rest fall in cloud gaps "
      f"or are weak); median estimated/true = {np.median(match.estimated / match.true):.2f}")
fig, ax = plt.subplots(figsize=(5, 5))
ax.errorbar(match.true, match.estimated, yerr=match.err, fmt="o", ms=4, alpha=0.7)
lim = [0, 1.1 * max(match.true.max(), match.estimated.max())]
ax.plot(lim, lim, "k--", lw=1)
ax.set_xlabel("true emission [kg/s]")
ax.set_ylabel("cross-sectional flux estimate [kg/s]")
ax.set_title("simulated week: emission recovery")
plt.show()"""),
    ("md", """## Store the week's peaks table (with provenance)

On a cluster, `co2.find_peaks(week, client=hubkit.compute.client())` fits the orbits as one
Dask task each on the workers, with the same results."""),
    ("code", """week_table = co2.peaks_table(peaks)
week_item = store.put_table(week_table, product_type="oco2-peaks",
                            inputs=["simulated-week-seed-1"], step="co2.find_peaks",
                            step_version="1", parameters={"options": week_table.attrs["options"]})
print(week_item.id, week_item.bbox)
print([i.id for i in store.search("oco2-peaks", datetime="2016-08-31")])"""),
]


if __name__ == "__main__":
    print(write([md(src) if kind == "md" else code(src) for kind, src in CELLS], "06_co2_plumes.ipynb"))
