"""The chain's science against physics and a known truth (issue 16).

- the background climatology against the published zonal-mean total ozone;
- full-rank vertical correlations; the prior adjustment (Rodgers & Connor 2003) as an identity;
  non-negative analyses that keep the column;
- the nature run: the statistics it promises, and that the background does not contain it;
- an OSSE of six 12-h cycles on a small domain: L2 retrievals of the nature run → fusion on
  one grid → cycled LETKF → scores against the truth.
"""

from __future__ import annotations

import numpy as np
import pytest

from hubkit import fusion, simulate
from hubkit.assimilation.background import (
    ozone_climatology,
    total_column_climatology,
    vertical_correlation,
)
from hubkit.assimilation.cycling import nonnegative_columns
from hubkit.constants import DU_PER_PA
from hubkit.osse import OsseConfig, run_osse


def _column(x, p):
    edges = np.concatenate([[p[0]], np.sqrt(p[1:] * p[:-1]), [0.0]])
    return DU_PER_PA * np.sum(x * -np.diff(edges), axis=-1)


@pytest.mark.parametrize("lat, month, low, high", [
    # zonal means of Fioletov et al. (2002), 1964-1980, with their seasonal cycle
    (0.0, 1, 245, 275), (0.0, 7, 250, 280),
    (45.0, 3, 350, 390), (45.0, 10, 285, 315), (45.0, 7, 315, 345),
    (-45.0, 10, 335, 365), (70.0, 3, 400, 440),
])
def test_climatology_total_column_matches_published_zonal_means(lat, month, low, high):
    t = np.datetime64(f"2024-{month:02d}-15")
    p = np.geomspace(101325.0, 0.5, 400)
    column = _column(ozone_climatology(lat, t, p), p)
    assert low <= column <= high
    # the profile integrates to the column climatology it was scaled to (within the 1 %
    # the coarser 400-level quadrature allows)
    assert column == pytest.approx(float(total_column_climatology(lat, t)), rel=0.01)


def test_climatology_profile_shape_is_physical():
    p = np.geomspace(101325.0, 50.0, 200)
    x = ozone_climatology(0.0, np.datetime64("2024-07-01"), p)
    k = np.argmax(x)
    assert 5e-6 < x[k] < 12e-6 and 500.0 < p[k] < 2000.0  # tropical maximum near 10 hPa
    surface = ozone_climatology(45.0, np.datetime64("2024-07-01"), p)[0]
    assert 25e-9 < surface < 70e-9  # northern mid-latitude summer boundary layer


def test_vertical_correlation_is_full_rank():
    s = np.log(np.geomspace(100000.0, 100.0, 30))  # 30 levels, 0.24 apart in ln p
    for kind in ("gaussian", "soar"):
        C = vertical_correlation(s, 0.5, kind)
        assert np.allclose(np.diag(C), 1.0) and np.allclose(C, C.T)
        assert np.linalg.eigvalsh(C).min() > 0 and np.linalg.matrix_rank(C) == 30
    # SOAR stays well conditioned at long lengths, where a Gaussian loses numerical rank
    assert np.linalg.eigvalsh(vertical_correlation(s, 1.0, "soar")).min() > 1e-4
    # the rank-2 cos/sin structure it replaces could not represent a layer's own error
    z = np.linspace(0.0, 1.0, 30)
    old = np.cos(0.5 * np.pi * (z[:, None] - z[None]))
    assert np.linalg.matrix_rank(old) == 2


def test_adjust_prior_is_the_rodgers_connor_identity():
    rng = np.random.default_rng(3)
    m, n_cells = 12, 5
    A = rng.uniform(-0.2, 0.8, (n_cells, m, m))
    truth = rng.uniform(1e-8, 1e-5, (n_cells, m))
    xa, xa_new = rng.uniform(1e-8, 1e-5, (2, m))
    noise = rng.normal(0.0, 1e-8, (n_cells, m))
    # the same measurement retrieved with two priors (linear retrieval, Rodgers 2000 eq. 3.10)
    x1 = xa + np.einsum("cij,cj->ci", A, truth - xa) + noise
    x2 = xa_new + np.einsum("cij,cj->ci", A, truth - xa_new) + noise
    import xarray as xr

    ds = xr.Dataset({"o3_vmr": (("cell", "level"), x1),
                     "averaging_kernel": (("cell", "level", "level_in"), A),
                     "o3_vmr_apriori": (("level",), xa),
                     "pressure": (("level",), np.geomspace(1e5, 100.0, m))})
    moved = fusion.adjust_prior(ds, xa_new)
    np.testing.assert_allclose(moved["o3_vmr"].values, x2, rtol=0, atol=1e-10 * x2.max())
    np.testing.assert_array_equal(moved["o3_vmr_apriori"].values, xa_new)
    other = ds.assign(pressure=ds["pressure"] * 1.01)
    with pytest.raises(fusion.FusionInputError, match="one fusion grid"):
        fusion.concat_fused([ds, other])


def test_nonnegative_columns_keep_the_column_mass():
    x = np.array([[2.0, -1.0], [-0.5, 3.0], [1.0, 1.0]])
    dp = np.array([1000.0, 2000.0, 500.0])
    out, changed = nonnegative_columns(x, dp)
    assert changed == 2 and np.all(out >= 0)
    np.testing.assert_allclose(out.T @ dp, x.T @ dp, rtol=1e-12)


def test_nature_run_has_the_structure_it_promises():
    nature = simulate.NatureRun(seed=5)
    rng = np.random.default_rng(0)
    n = 6000
    lat, lon = rng.uniform(-60, 60, n), rng.uniform(-180, 180, n)
    start = np.datetime64("2024-07-01T00", "ns")
    t = start + (rng.uniform(0.0, 100.0, n) * 86400e9).astype("timedelta64[ns]")
    p = np.array([80000.0, 70000.0, 40000.0])
    d = nature.perturbation(lat, lon, t, p)
    np.testing.assert_allclose(d.std(axis=0), 1.0, atol=0.1)  # unit variance
    corr = np.corrcoef(d.T)
    # exponential in ln p with length 0.5: exp(-ln(8/7)/0.5) = 0.77, exp(-ln 2/0.5) = 0.25
    assert corr[0, 1] == pytest.approx(np.exp(-np.log(8 / 7) / 0.5), abs=0.1)
    assert corr[0, 2] == pytest.approx(np.exp(-np.log(2.0) / 0.5), abs=0.1)
    # the truth is not the background: its relative departures from the climatology are the
    # promised 25 % in the troposphere
    x = nature.ozone(lat, lon, t, p)
    clim = ozone_climatology(lat, t, p)
    assert np.std(np.log(x[:, 0] / clim[:, 0])) == pytest.approx(0.25, abs=0.05)
    # and the pattern changes: at the same places two days later it is another field
    later = nature.perturbation(lat, lon, t + np.timedelta64(2, "D"), p)
    assert abs(np.corrcoef(d[:, 0], later[:, 0])[0, 1]) < 0.7


@pytest.fixture(scope="module")
def osse():
    """Six 12-h cycles on a 10° grid over Europe, hourly GEO and daily LEO retrievals."""
    cfg = OsseConfig(grid=(36, 18, 20), bbox=(-15.0, 35.0, 35.0, 60.0), hours=72,
                     spacing=2.0, fusion_cell=(2.0, 2.0, 3600.0), fusion_levels=20)
    return run_osse(cfg)


def test_osse_cycles_warm_after_the_first(osse):
    table = osse.table
    assert len(table) == 6
    assert list(table["start"]) == ["cold"] + ["warm"] * 5
    assert (table["negative"] == 0).all()  # no negative ozone anywhere, any cycle


def test_osse_total_column_beats_climatology_and_free_run(osse):
    table = osse.table.iloc[1:]  # after the first cycle, in every cycle
    assert (table["rmse_total_analysis"] < 0.5 * table["rmse_total_climatology"]).all()
    assert (table["rmse_total_analysis"] < table["rmse_total_free"]).all()
    # the 12-h first guess (the previous analysis, forecast) beats the free run
    assert (table["rmse_total_forecast"] < table["rmse_total_free"]).all()


def test_osse_tropospheric_column_beats_climatology_and_free_run(osse):
    table = osse.table.iloc[1:]
    assert (table["rmse_trop_analysis"] < 0.5 * table["rmse_trop_climatology"]).all()
    assert (table["rmse_trop_analysis"] < table["rmse_trop_free"]).all()
    assert (table["rmse_trop_forecast"] < table["rmse_trop_free"]).all()


def test_osse_observation_space_consistency(osse):
    table = osse.table
    assert (table["oma_rms"] < table["omb_rms"]).all()  # the analysis fits better
    assert table["chi2"].between(0.5, 2.0).all()  # innovations as large as expected
    # spread against skill: the innovations are as large as the observation error and the
    # ensemble spread say, omb_rms² ≈ 1 + spread², within a factor 2 in variance
    ratio = table["omb_rms"] ** 2 / (1.0 + table["spread_obs"] ** 2)
    assert ratio.between(0.5, 2.0).all(), ratio


def test_osse_products_against_truth(osse):
    table = osse.table.iloc[1:]
    assert (table["troc_bias"].abs() < 10.0).all()  # TROC within ±10 % of the truth's
    assert (table["uvi_error_median"] < 5.0).all()  # local-noon UV index within 5 %


def test_osse_recovers_the_ozone_layer_where_observed(osse):
    early = osse.table.iloc[:4]  # the layer lies over the observed region for two days
    recovered = early["layer_recovered"].dropna()
    assert len(recovered) >= 3 and (recovered > 0.5).all(), recovered
