"""Real column and peak data in their providers' formats, uploaded as a user does (`hubkit upload`).

TCCON GGG2020 public netCDF (Harwell), a GOSAT GHG-CCI-style XCH4 file and the oco2peak project's
tables (``../shared/data/real`` and ``../shared/data/oco2peak``, see their READMEs). Every file:
the format is detected, every row is stored, the stored values equal the raw values read here
independently (netCDF4 / pandas) after the unit conversion (rtol 1e-12), the species is
searchable, the bounding box is the station's or the soundings', and `hubkit show` prints it.
Broken copies of the real files (made in tmp_path, never in the repository) are refused with an
error that names the file, the variable and the expectation, and leave the store unchanged.
"""

from __future__ import annotations

import json
import shutil

import netCDF4
import numpy as np
import pandas as pd
import pytest
from test_store import listing_checksum

from hubkit import io as hio
from hubkit.cli import main
from hubkit.errors import HubkitError, IngestError, SchemaError
from hubkit.store import Store

RTOL = 1e-12
TCCON = "real/hw20230402_20230402.public.qc.nc"
GOSAT = "real/gosat-fts_gosat_20160101_ch4-column.nc"


@pytest.fixture
def store_env(tmp_path, monkeypatch):
    url = str(tmp_path / "store")
    monkeypatch.setenv("HUBKIT_STORE", url)
    for var in ("HUBKIT_DASK", "DASK_SCHEDULER_ADDRESS", "DASK_GATEWAY__ADDRESS"):
        monkeypatch.delenv(var, raising=False)
    return url


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def upload_one(capsys, path):
    """`hubkit upload PATH -q` -> the product id (and the command must succeed)."""
    code, out, err = run(capsys, "upload", path, "-q")
    assert code == 0, err
    ids = out.split()
    assert len(ids) == 1, out
    return ids[0]


def search_ids(capsys, *argv):
    code, out, err = run(capsys, "search", "--json", *argv)
    assert code == 0, err
    return [d["id"] for d in json.loads(out)]


def raw(path, name):
    """A variable as the file holds it (fill values -> NaN), float64."""
    with netCDF4.Dataset(path) as nc:
        return np.ma.filled(np.ma.asarray(nc[name][:]).astype(np.float64), np.nan)


# -- the catalog: coordinates chosen by standard_name, not by the first degrees_north -------------
def test_generic_upload_of_tccon_file_is_catalogued_at_the_station(shared_data, tmp_path):
    """`--format cf` stores the file as it is; its bbox must be the station (lat, long), not
    the range of prior_equivalent_latitude (-36...75), the first degrees_north variable."""
    path = shared_data / TCCON
    lat, lon = raw(path, "lat"), raw(path, "long")
    item = Store(str(tmp_path / "store")).upload(path, "cf")
    w, s, e, n = item.bbox
    np.testing.assert_allclose([s, n], [lat.min(), lat.max()], rtol=1e-6)
    np.testing.assert_allclose([w, e], [lon.min(), lon.max()], rtol=1e-6)
    assert abs(s - 51.57) < 1e-4 and abs(w + 1.32) < 1e-4
