"""Notebook widgets (ipywidgets): browse detections without leaving the notebook, offline.

The widgets draw with :mod:`hubkit.plot` into PNG images held by an :class:`ipywidgets.Output`,
so they need no network, no JavaScript extension beyond ipywidgets' own, and work the same in
JupyterLab, classic Notebook and VS Code.
"""

from __future__ import annotations

import io
import logging

import numpy as np
import pandas as pd

__all__ = ["PeakBrowser", "peak_browser"]

log = logging.getLogger(__name__)


def _label(i: int, row: pd.Series) -> str:
    parts = [f"#{i}"]
    if "orbit" in row:
        parts.append(f"orbit {int(row['orbit'])}")
    if "time" in row and pd.notna(row["time"]):
        parts.append(pd.Timestamp(row["time"]).strftime("%Y-%m-%d %H:%M"))
    parts.append(f"{row['latitude']:.2f}°, {row['longitude']:.2f}°")
    parts.append(f"δ {row['delta']:.2f} ppm")
    return " · ".join(parts)


def _summary(row: pd.Series) -> str:
    def pm(name, symbol, unit, fmt=".2f"):
        if name not in row or not np.isfinite(row[name]):
            return ""
        err = row.get(f"{name}_err", np.nan)
        err = f" ± {err:{fmt}}" if np.isfinite(err) else ""
        return f"<b>{symbol}</b> {row[name]:{fmt}}{err} {unit}"

    items = [pm("delta", "δ", "ppm"), pm("sigma", "σ", "km", ".1f"),
             pm("amplitude", "A", "ppm km", ".1f"), pm("emission", "Q", "kg/s", ".0f")]
    if "significance" in row:
        items.append(f"<b>Δχ²/s²</b> {row['significance']:.1f}")
    if "source" in row and isinstance(row["source"], str) and row["source"]:
        items.append(f"<b>source</b> {row['source']} "
                     f"({row.get('source_emission', np.nan):.0f} kg/s, "
                     f"{row.get('source_distance', np.nan):.0f} km)")
    return " &nbsp;|&nbsp; ".join(i for i in items if i)


class PeakBrowser:
    """A detection selector (slider and drop-down, linked) that redraws the peak's profile.

    Each selection recomputes the detection's window from the soundings
    (:func:`hubkit.co2.peak_window`, cached) and draws it with :func:`hubkit.plot.peak_profile`.

    Parameters
    ----------
    soundings : xarray.Dataset
        The ``oco2-soundings`` the detections were found in.
    peaks : pandas.DataFrame or xarray.Dataset
        A peaks table (:func:`hubkit.co2.peaks_table`, or a stored ``oco2-peaks`` product
        opened with ``store.open``) or :func:`hubkit.co2.find_peaks` output.
    options : hubkit.co2.PeakOptions, optional
        The detection options; by default those stored with the peaks.

    Attributes
    ----------
    widget : ipywidgets.VBox
        What the notebook displays (a browser also displays itself).
    slider, dropdown : ipywidgets.IntSlider, ipywidgets.Dropdown
        The selection (row of the table); setting either redraws.
    output : ipywidgets.Output
        Holds the current profile as a PNG image.
    figure : matplotlib.figure.Figure or None
        The current profile (closed after rendering; its artists remain inspectable).
    """

    def __init__(self, soundings, peaks, options=None, *, figsize=(8.0, 3.5)):
        import ipywidgets as w

        from hubkit import co2
        from hubkit.co2.options import stored_options

        table = peaks if isinstance(peaks, pd.DataFrame) else co2.peaks_table(peaks)
        self.soundings = soundings
        self.table = table.reset_index(drop=True)
        self.options = options or stored_options(table.attrs)
        self.figsize = figsize
        self.figure = None
        self._windows: dict[int, pd.DataFrame] = {}
        n = len(self.table)
        self.slider = w.IntSlider(value=0, min=0, max=max(n - 1, 0), description="peak",
                                  continuous_update=False, disabled=n == 0)
        self.dropdown = w.Dropdown(
            options=[(_label(i, r), i) for i, r in self.table.iterrows()] or [("no peaks", 0)],
            value=0, layout=w.Layout(width="32em"), disabled=n == 0)
        self._link = w.link((self.slider, "value"), (self.dropdown, "value"))
        self.info = w.HTML()
        self.output = w.Output()
        self.widget = w.VBox([w.HBox([self.slider, self.dropdown]), self.info, self.output])
        self.slider.observe(self._on_change, names="value")
        self.draw(0)

    def _on_change(self, change) -> None:
        self.draw(int(change["new"]))

    def window(self, i: int) -> pd.DataFrame:
        """The soundings of detection ``i`` with the fitted model (computed once)."""
        from hubkit import co2

        if i not in self._windows:
            self._windows[i] = co2.peak_window(self.soundings, self.table.iloc[i], self.options)
        return self._windows[i]

    def draw(self, i: int) -> None:
        """Show detection ``i`` (the slider and drop-down follow)."""
        import matplotlib.pyplot as plt
        from IPython.display import Image

        from hubkit import plot

        if self.slider.value != i:  # the slider's observer draws
            self.slider.value = i
            return
        self.output.outputs = ()
        if not len(self.table):
            self.info.value = "no detections"
            self.figure = None
            return
        row = self.table.iloc[i]
        fig, ax = plt.subplots(figsize=self.figsize)
        plot.peak_profile(self.window(i), row, ax=ax, title=self.dropdown.options[i][0])
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
        plt.close(fig)
        self.figure = fig
        self.info.value = _summary(row)
        self.output.append_display_data(Image(data=buf.getvalue(), format="png"))

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)


def peak_browser(soundings, peaks, options=None) -> PeakBrowser:
    """A :class:`PeakBrowser` over ``peaks`` (display it as a notebook cell's last value)."""
    return PeakBrowser(soundings, peaks, options)
