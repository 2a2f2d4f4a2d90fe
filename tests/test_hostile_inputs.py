"""Hostile inputs, one table: each row says how the file is made and what must happen to it.

Every row goes through ``Store.upload`` on a directory store holding one good product, as a user's
``hubkit upload`` does. A refused file raises the stated :class:`HubkitError` subclass whose
message holds the stated words (file, variable, what was expected) and leaves the store listing
(paths and sizes) unchanged. An accepted file is stored with its values equal to the input bit for
bit; where rows are flagged, a :class:`FlaggedRowsWarning` says how many and ``input_flag`` marks
them. Each case has its own timeout: a hang (the FIFO) fails the case instead of the run.

The cases are those of issue 23 (silent corruption, silent acceptance, the hang, the lost variable,
the memory blow-up, the fusion prior) and of the foundation issue (truncated, empty, foreign,
wrong units, all-NaN, missing variable, missing file).
"""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import netCDF4
import numpy as np
import pytest
from fixtures import (
    write_cf_grid_fixture,
    write_l2_ozone_fixture,
    write_lite_fixture,
    write_obspack_fixture,
    write_oco2peak_semicolon_csv,
)
from test_store import listing_checksum

from hubkit import errors, ingest
from hubkit.io.sanitise import ATTR_MAX_CHARS
from hubkit.store import Store

LITE = "oco2_LtCO2_160831_B9003r_hostile.nc4"
N = 40  # soundings of the Lite fixture (5 frames of 8 footprints)


# --- how the files are made ------------------------------------------------------------------


def patch(path: Path, **changes) -> Path:
    """Rewrite variables of a netCDF file in place: ``name=function(old values) -> new values``,
    ``name__units="..."`` sets an attribute (``__`` separates the variable and the attribute)."""
    with netCDF4.Dataset(path, "r+") as nc:
        for key, change in changes.items():
            name, _, attr = key.partition("__")
            var = nc[name.replace("__", "/")] if not attr else nc[name]
            if attr:
                var.setncattr(attr, change)
            else:
                var.set_auto_mask(False)
                var[:] = change(np.array(var[:]))
    return path


def lite(tmp_path, name=LITE, **changes) -> Path:
    return patch(write_lite_fixture(tmp_path / name, n=N), **changes)


def rows(values, index, new):
    out = np.array(values, dtype=np.float64)
    out[index] = new
    return out


def csv(tmp_path, edit, name="oco2_1608_hostile.csv") -> Path:
    path = write_oco2peak_semicolon_csv(tmp_path / name)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(edit(lines)) + "\n")
    return path


def csv_column(lines, column, function):
    header = lines[0].split(";")
    k = header.index(column)
    out = [lines[0]]
    for i, line in enumerate(lines[1:]):
        cells = line.split(";")
        cells[k] = function(i, cells[k])
        out.append(";".join(cells))
    return out


def obspack(tmp_path, name="co2_mlo_surface-insitu_hostile.nc", **changes) -> Path:
    return patch(write_obspack_fixture(tmp_path / name), **changes)


def l2(tmp_path, name="l2_o3_hostile.nc", **changes) -> Path:
    return patch(write_l2_ozone_fixture(tmp_path / name), **changes)


def cf_with(tmp_path, name="grid_hostile.nc", setup=None) -> Path:
    path = write_cf_grid_fixture(tmp_path / name)
    with netCDF4.Dataset(path, "r+") as nc:
        setup(nc)
    return path


def big_variable(nc):
    nc.createDimension("x", 40000)
    nc.createDimension("y", 40000)
    nc.createVariable("big", "f4", ("x", "y"), zlib=True, chunksizes=(1000, 1000))


def backslash_variable(nc):
    var = nc.createVariable("dir\\name", "f4", ("lat",))
    var.units = "1"
    var[:] = [1.0, 2.0, 3.0]


def fifo(tmp_path, name="oco2_LtCO2_160831_B9003r_pipe.nc4") -> Path:
    """A named pipe; a writer opens (and closes) it after 20 s, so a reader that opened it
    fails the case instead of hanging the run (signals do not interrupt that open)."""
    path = tmp_path / name
    os.mkfifo(path)
    _unblock_later(path)
    return path


def _unblock_later(path: Path, after: float = 20.0) -> None:
    def writer():
        time.sleep(after)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)  # fails at once without a reader
            os.close(fd)
        except OSError:
            pass

    threading.Thread(target=writer, daemon=True).start()


def unix_socket(tmp_path) -> Path:
    path = Path(tempfile.mkdtemp(dir="/tmp")) / "s.nc"  # socket paths hold 107 bytes at most
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))  # the socket file stays after the socket is closed
    return path


def plain_directory(tmp_path) -> Path:
    folder = tmp_path / "some_files"
    folder.mkdir()
    write_lite_fixture(folder / "a.nc4", n=16)
    return folder


def small_zarr(tmp_path) -> Path:
    import xarray as xr

    folder = tmp_path / "grid.zarr"
    xr.Dataset({"co2": ("x", np.arange(3.0))}).to_zarr(folder, zarr_format=3,
                                                       consolidated=False)
    return folder


def zarr_with_fifo(tmp_path) -> Path:
    folder = small_zarr(tmp_path)
    os.mkfifo(folder / "co2" / "pipe")
    _unblock_later(folder / "co2" / "pipe")
    return folder


def _lite_with(tmp_path, setup) -> Path:
    path = write_lite_fixture(tmp_path / "oco2_LtCO2_160831_B9003r_big.nc4", n=N)
    with netCDF4.Dataset(path, "r+") as nc:
        setup(nc)
    return path


def _obspack_attr(tmp_path, name, value) -> Path:
    path = write_obspack_fixture(tmp_path / "co2_mlo_surface-insitu_hostile.nc")
    with netCDF4.Dataset(path, "r+") as nc:
        nc.setncattr(name, value)
    return path


def _l2_with_backslash(tmp_path) -> Path:
    path = write_l2_ozone_fixture(tmp_path / "l2_o3_hostile.nc")
    with netCDF4.Dataset(path, "r+") as nc:
        var = nc.createVariable("dir\\name", "f8", ("retrieval",))
        var[:] = np.arange(nc.dimensions["retrieval"].size)
    return path


def _symlink(tmp_path, target) -> Path:
    link = tmp_path / "link.nc4"
    link.symlink_to(target)
    return link


def _truncated(tmp_path) -> Path:
    good = write_lite_fixture(tmp_path / "good.nc4")
    return _bytes(tmp_path, "truncated.nc4", good.read_bytes()[: good.stat().st_size // 3])


def _bytes(tmp_path, name, data) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def zarr_with_dangling_link(tmp_path) -> Path:
    folder = small_zarr(tmp_path)
    (folder / "co2" / "gone").symlink_to(tmp_path / "nowhere")
    return folder


# --- the table -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Refused:
    error: type
    words: tuple[str, ...]


@dataclass(frozen=True)
class Flagged:
    count: int  # rows flagged in input_flag
    words: tuple[str, ...]  # in the warning
    same: tuple[str, ...] = ()  # variables stored bit for bit as the raw file holds them


@dataclass(frozen=True)
class Accepted:
    check: object = None  # check(item, ds, path) with more assertions
    same: tuple[str, ...] = field(default=())


def _sanitised_item(item, ds, path):
    props = item.properties
    for text in (props["hubkit:source"], props["title"],
                 props["hubkit:provenance"]["inputs"][0]["file"]):
        assert "\x1b" not in text and "\n" not in text, text
    assert "\\x1b" in props["hubkit:source"]


def _truncated_attr(item, ds, path):
    assert len(item.properties["title"]) <= ATTR_MAX_CHARS + 30
    assert len(ds.attrs["title"]) <= ATTR_MAX_CHARS + 30
    assert "title" in ds.attrs["hubkit_truncated_attrs"]
    assert "2097152" in ds.attrs["hubkit_truncated_attrs"]


def _encoded_name(item, ds, path):
    assert "dir\\name" not in ds.variables
    assert ds["dir%5Cname"].attrs["hubkit_original_name"] == "dir\\name"
    np.testing.assert_array_equal(ds["dir%5Cname"].values, [1.0, 2.0, 3.0])
    assert "dir%5Cname" in item.properties["hubkit:variables"]


def _normalised_longitude(item, ds, path):
    raw = netCDF4.Dataset(path)["longitude"][:].astype(np.float64)
    np.testing.assert_array_equal(ds["longitude"].values, np.where(raw >= 180, raw - 360, raw))
    assert "longitude" in ds.attrs["hubkit_normalised"]
    assert "-360" in ds["longitude"].attrs["comment"]
    assert item.bbox[0] >= -180 and item.bbox[2] <= 180


def _sorted_by_time(item, ds, path):
    assert ds.attrs["hubkit_sorted"].startswith("rows sorted by time")
    assert (np.diff(ds["time"].values.astype(np.int64)) >= 0).all()
    raw = netCDF4.Dataset(path)
    value = raw["value"][:].astype(np.float64) * 1e6
    np.testing.assert_array_equal(ds["value"].values, value[ds["source_row"].values])


def _truncated_site_name(item, ds, path):
    assert len(ds.attrs["site_name"]) <= ATTR_MAX_CHARS + 30
    assert "site_name" in ds.attrs["hubkit_truncated_attrs"]


def _encoded_extra(item, ds, path):
    assert ds["dir%5Cname"].attrs["hubkit_original_name"] == "dir\\name"
    np.testing.assert_array_equal(ds["dir%5Cname"].values, np.arange(6.0))


def _escaped_title(item, ds, path):
    for title in (item.properties["title"], ds.attrs["title"]):
        assert "\x1b" not in title and "\x07" not in title, title
        assert title.startswith("ok\\x1b]0;pwned"), title


NOW_PLUS = 3.0e9  # seconds since 1970, year 2065: beyond any plausible window's end

CASES = {
    # -- silent corruption of values (issue 23) --
    "lite-time-year-1019": (lambda t: lite(t, time=lambda v: v - 3.1e10), None, Refused(
        errors.TimeRangeError, ("hostile.nc4", "'time'", "40 of 40", "1677", "2262"))),
    "lite-time-year-2984": (lambda t: lite(t, time=lambda v: v + 3.2e10), None, Refused(
        errors.TimeRangeError, ("hostile.nc4", "'time'", "40 of 40", "2262"))),
    "lite-time-1e19-seconds": (lambda t: lite(t, time=lambda v: rows(v, 7, 1e19)), None, Refused(
        errors.TimeRangeError, ("hostile.nc4", "'time'", "1 of 40", "row 7", "1e+19"))),
    "lite-time-before-launch": (lambda t: lite(t, time=lambda v: v - 3.0e8), None, Refused(
        errors.TimeRangeError, ("hostile.nc4", "'time'", "40 of 40", "2014-07-02", "OCO-2"))),
    "lite-time-in-2065": (lambda t: lite(t, time=lambda v: rows(v, 0, NOW_PLUS)), None, Refused(
        errors.TimeRangeError, ("'time'", "1 of 40", "row 0"))),
    "lite-xco2-mole-fraction-as-ppm": (lambda t: lite(t, xco2=lambda v: v * 1e-6), None,
                                       Refused(errors.UnitsError,
                                               ("hostile.nc4", "'xco2'", "by 1e+6",
                                                "units error",
                                                "numbers in 'mol mol-1' labelled 'ppm'"))),
    # -- accepted without a word (issue 23) --
    "lite-latitude-200-all": (lambda t: lite(t, latitude=lambda v: v * 0 + 200), None, Refused(
        errors.CoordinateError, ("hostile.nc4", "'latitude'", "40 of 40", "[-90, 90]"))),
    "lite-latitude-200-some": (lambda t: lite(t, latitude=lambda v: rows(v, [2, 9], 200)), None,
                               Refused(errors.CoordinateError,
                                       ("'latitude'", "2 of 40", "rows 2, 9", "[-90, 90]"))),
    "lite-latitude-nan-all": (lambda t: lite(t, latitude=lambda v: v * np.nan), None, Refused(
        errors.CoordinateError, ("hostile.nc4", "'latitude'", "40 of 40", "missing"))),
    "lite-latitude-nan-some": (lambda t: lite(t, latitude=lambda v: rows(v, [4, 5, 6], np.nan)),
                               None, Flagged(3, ("3 of 40", "'input_flag'",
                                                 "latitude missing (NaN) in 3 (rows 4, 5, 6)"),
                                             same=("latitude", "xco2"))),
    "lite-longitude-720": (lambda t: lite(t, longitude=lambda v: rows(v, 1, 720)), None, Refused(
        errors.CoordinateError, ("'longitude'", "1 of 40", "row 1", "[-180, 360]"))),
    "lite-longitude-inf": (lambda t: lite(t, longitude=lambda v: rows(v, 3, np.inf)), None,
                           Refused(errors.CoordinateError, ("'longitude'", "1 of 40", "inf"))),
    "lite-longitude-0-360": (lambda t: lite(t, longitude=lambda v: v + 180), None,
                             Accepted(_normalised_longitude, same=("xco2", "latitude"))),
    "lite-time-nan-all": (lambda t: lite(t, time=lambda v: v * np.nan), None, Refused(
        errors.TimeRangeError, ("hostile.nc4", "'time'", "40 of 40", "missing"))),
    "lite-time-nan-some": (lambda t: lite(t, time=lambda v: rows(v, 12, np.nan)), None,
                           Flagged(1, ("1 of 40", "time missing (NaT) in 1 (row 12)"),
                                   same=("xco2",))),
    "lite-xco2-negative-all": (lambda t: lite(t, xco2=lambda v: -v), None, Refused(
        errors.ValueRangeError, ("hostile.nc4", "'xco2'", "40 of 40", "[100, 1000]"))),
    "lite-xco2-inf-all": (lambda t: lite(t, xco2=lambda v: v * np.inf), None, Refused(
        errors.ValueRangeError, ("hostile.nc4", "'xco2'", "40 of 40", "inf"))),
    "lite-xco2-inf-one": (lambda t: lite(t, xco2=lambda v: rows(v, 3, np.inf)), None,
                          Flagged(1, ("1 of 40",
                                      "xco2 outside [100, 1000] ppm or infinite in 1 (row 3)"),
                                  same=("xco2",))),
    "lite-xco2-negative-two": (lambda t: lite(t, xco2=lambda v: rows(v, [5, 6], -400.0)), None,
                               Flagged(2, ("2 of 40", "xco2 outside [100, 1000] ppm or "
                                                      "infinite in 2 (rows 5, 6)"),
                                       same=("xco2",))),
    "lite-sounding-id-identical": (lambda t: lite(t, sounding_id=lambda v: v * 0 + v[0]), None,
                                   Refused(errors.DuplicateIdError,
                                           ("hostile.nc4", "'sounding_id'", "40 of 40", "unique"))),
    "lite-sounding-id-duplicated": (lambda t: lite(t, sounding_id=lambda v: rows(v, 9, v[8])),
                                    None, Refused(errors.DuplicateIdError,
                                                  ("'sounding_id'", "2 of 40", "rows 8, 9"))),
    "lite-out-of-time-order": (lambda t: lite(t, time=lambda v: v[::-1].copy()), None, Refused(
        errors.TimeOrderError, ("hostile.nc4", "'time'", "32 of 40", "rows 8, 9",
                                "the first at 2016-08-31T11:55:21", "non-decreasing"))),
    "lite-ansi-newline-file-name": (
        lambda t: write_lite_fixture(t / "evil\x1b[31mred\nname.nc4", n=24), "oco2-lite",
        Accepted(_sanitised_item)),
    "lite-40000x40000-variable": (
        lambda t: _lite_with(t, big_variable), None,
        Refused(errors.InputTooLargeError, ("big.nc4", "'big'", "40000 x 40000", "limit"))),
    # -- the oco2peak CSV --
    "csv-duplicated-xco2-column": (
        lambda t: csv(t, lambda ls: [ls[0] + ";xco2"] + [x + ";1.0" for x in ls[1:]]), None,
        Refused(errors.SchemaError, ("hostile.csv", "'xco2'", "2 times", "once"))),
    "csv-latitude-200": (
        lambda t: csv(t, lambda ls: csv_column(ls, "latitude", lambda i, c: "200" if i == 3
                                               else c)), None,
        Refused(errors.CoordinateError, ("hostile.csv", "'latitude'", "1 of 24", "row 3"))),
    "csv-xco2-mole-fraction": (
        lambda t: csv(t, lambda ls: csv_column(ls, "xco2", lambda i, c: f"{float(c) * 1e-6:.8g}")),
        None, Refused(errors.UnitsError, ("hostile.csv", "'xco2'", "units error",
                                          "numbers in 'mol mol-1' labelled 'ppm'"))),
    "csv-sounding-id-duplicated": (
        lambda t: csv(t, lambda ls: ls[:3] + [ls[2]] + ls[4:]), None,
        Refused(errors.DuplicateIdError, ("hostile.csv", "'sounding_id'", "rows 1, 2"))),
    "csv-sounding-id-20-digits": (
        lambda t: csv(t, lambda ls: csv_column(ls, "sounding_id", lambda i, c: c + "0000" if i == 0
                                               else c)), None,
        Refused(errors.SchemaError, ("hostile.csv", "'sounding_id'", "row 0", "16 digits"))),
    # -- ObsPack --
    "obspack-time-overflow": (
        lambda t: obspack(t, time__units="days since 1970-01-01"), None,
        Refused(errors.TimeRangeError, ("hostile.nc", "'time'", "48 of 48", "2262"))),
    "obspack-time-1900": (
        lambda t: obspack(t, time=lambda v: v.astype(np.int64) - 3_000_000_000), None,
        Refused(errors.TimeRangeError, ("hostile.nc", "'time'", "1957"))),
    "obspack-value-ppm-labelled-mol": (
        lambda t: obspack(t, value=lambda v: v * 1e6), None,
        Refused(errors.UnitsError, ("hostile.nc", "'value'", "units error", "by 1e-6",
                                    "numbers in 'ppm' labelled 'mol mol-1'"))),
    "obspack-latitude-nan-all": (
        lambda t: obspack(t, latitude=lambda v: v * np.nan), None,
        Refused(errors.CoordinateError, ("hostile.nc", "'latitude'", "48 of 48"))),
    "obspack-out-of-time-order": (
        lambda t: obspack(t, time=lambda v: v[::-1].copy()), None, Accepted(_sorted_by_time)),
    "obspack-2mb-site-name": (lambda t: _obspack_attr(t, "site_name", "x" * 2_097_152), None,
                              Accepted(_truncated_site_name)),
    "obspack-value-negative-one": (
        lambda t: obspack(t, value=lambda v: rows(v, 10, -4e-4)), None,
        Flagged(1, ("1 of 48", "value outside [100, 2000] ppm or infinite in 1 (row 10)"))),
    # -- L2 ozone --
    "l2-o3-ppmv-labelled-mol": (
        lambda t: l2(t, o3_vmr__units="mol mol-1", o3_vmr_apriori__units="mol mol-1"), None,
        Refused(errors.UnitsError, ("hostile.nc", "'o3_vmr'", "by 1e-6", "units error",
                                    "numbers in 'ppm' labelled 'mol mol-1'"))),
    "l2-latitude-200": (
        lambda t: l2(t, latitude=lambda v: rows(v, 2, 200.0)), None,
        Refused(errors.CoordinateError, ("hostile.nc", "'latitude'", "1 of 6", "row 2"))),
    "l2-time-nan-all": (
        lambda t: l2(t, time=lambda v: v * np.nan), None,
        Refused(errors.TimeRangeError, ("hostile.nc", "'time'", "6 of 6"))),
    "l2-backslash-variable": (_l2_with_backslash, None, Accepted(_encoded_extra)),
    # -- generic CF --
    "cf-backslash-variable": (lambda t: cf_with(t, setup=backslash_variable), None,
                              Accepted(_encoded_name)),
    "cf-40000x40000-variable": (lambda t: cf_with(t, setup=big_variable), None, Refused(
        errors.InputTooLargeError, ("hostile.nc", "'big'", "40000 x 40000", "limit"))),
    "cf-2mb-global-attribute": (lambda t: cf_with(t, setup=lambda nc: nc.setncattr(
        "title", "t" * 2_097_152)), None, Accepted(_truncated_attr)),
    "cf-ansi-attribute": (lambda t: cf_with(t, setup=lambda nc: nc.setncattr(
        "title", "ok\x1b]0;pwned\x07\x1b[2J")), None, Accepted(_escaped_title)),
    "cf-latitude-200": (lambda t: cf_with(t, setup=lambda nc: nc["lat"].__setitem__(
        slice(None), [-30.0, 200.0, -20.0])), None,
        Refused(errors.CoordinateError, ("hostile.nc", "'lat'", "1 of 3", "[-90, 90]"))),
    "cf-time-1e19": (lambda t: cf_with(t, setup=lambda nc: nc["time"].__setitem__(
        slice(None), [0.0, 1e19])), None,
        Refused(errors.TimeRangeError, ("hostile.nc", "'time'"))),
    # -- not regular files (issue 23) --
    "fifo": (fifo, None, Refused(errors.IngestError, ("pipe.nc4", "FIFO", "regular file"))),
    "fifo-with-format": (fifo, "oco2-lite", Refused(errors.IngestError, ("FIFO",))),
    "symlink-to-fifo": (lambda t: _symlink(t, fifo(t)), None,
                        Refused(errors.IngestError, ("FIFO",))),
    "character-device": (lambda t: Path("/dev/null"), None,
                         Refused(errors.IngestError, ("/dev/null", "character device"))),
    "socket": (unix_socket, None, Refused(errors.IngestError, ("s.nc", "socket"))),
    "plain-directory": (plain_directory, None,
                        Refused(errors.IngestError, ("some_files", "directory", "its files"))),
    "zarr-with-fifo": (zarr_with_fifo, None, Refused(errors.IngestError, ("pipe", "FIFO"))),
    "zarr-with-dangling-link": (zarr_with_dangling_link, None,
                                Refused(errors.IngestError, ("gone", "cannot be examined"))),
    # -- the foundation issue's bad inputs --
    "truncated": (lambda t: _truncated(t), None, Refused(errors.IngestError, ("truncated.nc4",))),
    "empty": (lambda t: _bytes(t, "empty.nc4", b""), None,
              Refused(errors.IngestError, ("empty.nc4", "empty"))),
    "random-bytes": (lambda t: _bytes(t, "garbage.nc4", np.random.default_rng(0).bytes(5000)),
                     None, Refused(errors.IngestError, ("garbage.nc4", "not recognised"))),
    "png-as-lite": (lambda t: _bytes(t, "picture.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 100),
                    "oco2-lite", Refused(errors.HubkitError, ("picture.png",))),
    "unknown-format": (lambda t: write_lite_fixture(t / "good.nc4", n=16), "no-such-format",
                       Refused(errors.IngestError, ("good.nc4", "unknown format"))),
    "xco2-in-kelvin": (lambda t: write_lite_fixture(t / "kelvin.nc4", xco2_units="K"), None,
                       Refused(errors.SchemaError, ("kelvin.nc4", "xco2", "'K'", "ppm"))),
    "xco2-all-nan": (lambda t: write_lite_fixture(t / "nan.nc4", all_nan=True), None,
                     Refused(errors.SchemaError, ("nan.nc4", "xco2", "no valid value"))),
    "no-latitude": (lambda t: write_lite_fixture(t / "nolat.nc4", omit=("latitude",)),
                    "oco2-lite", Refused(errors.SchemaError, ("nolat.nc4", "latitude"))),
    "missing-file": (lambda t: t / "missing.nc4", None,
                     Refused(errors.IngestError, ("missing.nc4", "no such file"))),
}


@pytest.fixture
def store(tmp_path):
    store = Store(str(tmp_path / "store"))
    ingest.upload(store, write_lite_fixture(tmp_path / "kept.nc4", n=16))
    return store


def _raw(path: Path, name: str) -> np.ndarray:
    with netCDF4.Dataset(path) as nc:
        var = nc[name]
        var.set_auto_mask(False)
        return np.array(var[:], dtype=np.float64)


@pytest.mark.timeout(120, method="signal")
@pytest.mark.parametrize("case", list(CASES))
def test_hostile_input(case, store, tmp_path):
    make, fmt, outcome = CASES[case]
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    path = make(inputs)
    before = listing_checksum(store)
    if isinstance(outcome, Refused):
        started = time.monotonic()
        with pytest.raises(outcome.error) as info:
            ingest.upload(store, path, fmt)
        assert time.monotonic() - started < 15, "refused only after a wait (a hang)"
        message = str(info.value)
        for word in outcome.words:
            assert word in message, f"{word!r} not in {message!r}"
        assert listing_checksum(store) == before, f"{case} changed the store"
        return
    path = path
    if isinstance(outcome, Flagged):
        with pytest.warns(errors.FlaggedRowsWarning) as caught:
            item = ingest.upload(store, path, fmt)
        message = str(caught[0].message)
        for word in outcome.words:
            assert word in message, f"{word!r} not in {message!r}"
        ds = store.open(item).load()
        flag = ds["input_flag"].values
        assert int((flag != 0).sum()) == outcome.count
        assert ds["input_flag"].attrs["flag_meanings"]
        for name in outcome.same:  # flagged rows are kept and stored as given
            np.testing.assert_array_equal(ds[name].values, _raw(path, name), err_msg=name)
        return
    item = ingest.upload(store, path, fmt)
    ds = store.open(item).load()
    assert "input_flag" not in ds.variables
    if outcome.check is not None:
        outcome.check(item, ds, path)


#: Real provider files that loaded before the semantic checks: they must still load, unflagged
#: and unchanged in size (the shared data are beside the repository; skipped where absent).
REAL_FILES = {
    "oco2peak/oco2_orbit11522_20160831_segment_300-800km.csv": ("oco2peak-csv",
                                                                 {"sounding": 1598}),
    "real/ch4_esp_surface-flask_2_representative.nc": ("obspack", {"time": 109, "concern": 3}),
    "real/agage_thd_cfc-11_20240703-test.nc": ("agage", {"time": 1500}),
    "real/gosat-fts_gosat_20160101_ch4-column.nc": ("ghg-cci-l2", {"sounding": 49, "level": 20,
                                                                   "exposure": 3}),
    "real/hw20230402_20230402.public.qc.nc": ("tccon-ggg2020", {"time": 64, "ak_altitude": 51,
                                                                "prior_altitude": 51}),
    "real/test_toh_co2_147m.nc": ("icos-nc", {"time": 30}),
}


@pytest.mark.parametrize("name", list(REAL_FILES))
def test_real_files_that_loaded_still_load(shared_data, name):
    from hubkit import io as hio

    fmt, sizes = REAL_FILES[name]
    ds = hio.read(shared_data / name)  # a FlaggedRowsWarning would fail here (an error in tests)
    assert ds.attrs["hubkit_format"] == fmt
    assert dict(ds.sizes) == sizes
    changed = [k for k in ("hubkit_normalised", "hubkit_sorted", "hubkit_truncated_attrs",
                           "hubkit_escaped_attrs", "hubkit_renamed", "hubkit_input_flag")
               if k in ds.attrs]
    assert not changed and "input_flag" not in ds.variables, changed


def test_the_size_limit_is_checked_before_loading(tmp_path):
    """The 40000 x 40000 variable of an 8 KB file: refused in a child whose peak memory stays
    far below the 6.4 GB a load would take; a larger ``max_bytes`` is the documented way in."""
    import subprocess
    import sys

    path = cf_with(tmp_path, setup=big_variable)
    assert path.stat().st_size < 64_000
    # the child's own peak (VmHWM of its memory map): getrusage's ru_maxrss keeps, across exec,
    # the peak of the process it was forked from (pytest, about 1 GB late in a run)
    script = (
        "import re\n"
        "from hubkit import io as hio\n"
        "from hubkit.errors import InputTooLargeError\n"
        "try:\n"
        f"    hio.read({str(path)!r})\n"
        "except InputTooLargeError as exc:\n"
        "    status = open('/proc/self/status').read()\n"
        "    print('refused', re.search(r'VmHWM:\\s+(\\d+) kB', status).group(1))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    word, peak_kb = done.stdout.split()
    assert word == "refused" and int(peak_kb) < 1_000_000, done.stdout
    from hubkit import io as hio

    small = write_cf_grid_fixture(tmp_path / "small.nc")
    with pytest.raises(errors.InputTooLargeError, match=r"small\.nc.*'co2'.*limit"):
        hio.read(small, max_bytes=100)
    assert hio.read(small, max_bytes=10_000)["co2"].shape == (2, 3, 4)


@pytest.mark.parametrize("name", ["a/b", "dir\\name", "..", "__reserved"])
def test_names_zarr_cannot_hold_are_refused_where_not_encoded(name):
    """``store.put`` validates computed datasets: a name Zarr would turn into a group is refused
    (readers encode such names; see cf-backslash-variable above)."""
    import xarray as xr

    from hubkit import schemas

    ds = xr.Dataset({name: ("x", [1.0]), "co2": ("x", [404.0])},
                    attrs={"hubkit_product_type": "cf-dataset"})
    with pytest.raises(errors.VariableNameError, match="expected a name without"):
        schemas.validate(ds, source="computed")


def test_a_text_file_over_the_limit_is_refused_by_its_size(tmp_path):
    from hubkit import io as hio

    path = write_oco2peak_semicolon_csv(tmp_path / "oco2_1608_sample.csv")
    size = path.stat().st_size
    with pytest.raises(errors.InputTooLargeError) as info:
        hio.read(path, max_bytes=size - 1)
    message = str(info.value)
    assert "oco2_1608_sample.csv: the file holds" in message and "expected at most" in message
    assert "variable" not in message
    assert hio.read(path, max_bytes=size).sizes["sounding"] == 24


def test_a_schema_rule_with_a_policy_of_its_own_is_refused():
    """A new product type cannot spell a policy the validation does not know (it would be
    ignored silently)."""
    from hubkit import schemas

    with pytest.raises(errors.SchemaError, match=r"invalid='drop'.*'raise' or 'flag'"):
        schemas.Var("x", ("row",), "1", invalid="drop")
    with pytest.raises(errors.SchemaError, match=r"missing='raise'.*'allow' or 'flag'"):
        schemas.Var("x", ("row",), "1", missing="raise")
    with pytest.raises(errors.SchemaError, match=r"time_order='reverse'.*'refuse', 'sort' or None"):
        schemas.Schema("t", "t", "t", None, time_order="reverse")
