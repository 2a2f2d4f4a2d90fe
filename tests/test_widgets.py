"""The notebook peak browser, driven headless as a notebook user's clicks would drive it."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest

from hubkit import co2
from hubkit.simulate import oco2_tracks

pytest.importorskip("ipywidgets")
matplotlib.use("Agg")

from hubkit.widgets import PeakBrowser  # noqa: E402


@pytest.fixture(scope="module")
def detections():
    ds = oco2_tracks(1, seconds=1500.0, plumes=7, seed=11)[0]
    peaks = co2.find_peaks(ds)
    assert peaks.sizes["peak"] >= 2
    return ds, co2.peaks_table(peaks)


def _png(browser):
    (out,) = browser.output.outputs
    return out["data"]["image/png"]


def _drawn(browser):
    """The x and y of the model curve on the current figure, and its title."""
    ax = browser.figure.axes[0]
    model = ax.lines[1]
    return np.asarray(model.get_xdata()), np.asarray(model.get_ydata()), ax.get_title()


def test_browser_redraws_the_selected_peak(detections):
    ds, table = detections
    browser = PeakBrowser(ds, table)
    first_png = _png(browser)
    x0, y0, title0 = _drawn(browser)
    assert "#0" in title0 and "δ" in browser.info.value
    # the drawn model is the stored fit on the window recomputed from the soundings
    w0 = co2.peak_window(ds, table.iloc[0], co2.PeakOptions.from_json(table.attrs["options"]))
    np.testing.assert_allclose(np.sort(x0), np.sort(w0["x"]))
    np.testing.assert_allclose(y0.max(), w0["model"].max())

    browser.dropdown.value = 1  # a user picks the second detection
    assert browser.slider.value == 1
    x1, y1, title1 = _drawn(browser)
    assert "#1" in title1 and _png(browser) != first_png
    w1 = browser.window(1)
    np.testing.assert_allclose(np.sort(x1), np.sort(w1["x"]))
    np.testing.assert_allclose(y1.max(), w1["model"].max())
    assert not np.array_equal(y1, y0)

    browser.slider.value = 0  # ... and slides back
    assert browser.dropdown.value == 0
    assert _drawn(browser)[2] == title0 and len(browser.output.outputs) == 1


def test_browser_accepts_find_peaks_output_and_no_peaks(detections):
    ds, table = detections
    peaks = co2.find_peaks(ds)
    browser = PeakBrowser(ds, peaks)
    pd.testing.assert_frame_equal(browser.table, table)
    empty = PeakBrowser(ds, table.iloc[:0])
    assert empty.figure is None and empty.output.outputs == ()
    assert empty.info.value == "no detections" and empty.slider.disabled
