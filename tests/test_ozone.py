"""Tropospheric ozone against published numbers and physical invariants.

Truth: the US Standard Atmosphere 1976 (NOAA-S/T 76-1562; p(11 km) = 22632.06 Pa at 216.65 K),
the ECMWF L137 table (half-level pressures and geopotential altitudes of the standard
atmosphere, published with the a/b coefficients), the Dobson-unit definition and exact
analytic columns. Tolerances are stated at each test. The LRT of a sharp (kinked) tropopause
sampled on a grid of spacing Δz lies +0.16 Δz to +0.39 Δz above the kink, depending on where the
kink falls between levels (+0.19 Δz when it falls on a level): Reichler et al. 2003,
doi:10.1029/2003GL018240.
"""

from __future__ import annotations

import dask.array
import numpy as np
import pytest
import xarray as xr

from hubkit import ozone, schemas, simulate
from hubkit.errors import SchemaError
from hubkit.ozone import OzoneInputError
from hubkit.ozone._l137 import L137_CHECK_HPA

#: Full-level geopotential altitudes [m] of the standard atmosphere in the ECMWF L137 table.
L137_FULL_LEVEL_ALTITUDE = {137: 10.00, 120: 798.62, 100: 4338.77, 77: 10986.70, 60: 16281.10,
                            50: 19827.95}


def us_standard_on(z):
    """Standard-atmosphere temperature at geopotential heights ``z`` [m]."""
    return ozone.standard_atmosphere(z)[0]


def l137_standard():
    """The standard atmosphere on L137 at p_s = 1013.25 hPa: ph, pf, T, zh, zf (top first)."""
    a, b = ozone.l137_coefficients()
    ph, pf = ozone.hybrid_pressure(a, b, 101325.0)
    t = us_standard_on(ozone.standard_atmosphere_height(pf))
    zh, zf = ozone.hydrostatic_altitude(ph, t, 0.0)
    return ph, pf, t, zh, zf


@pytest.fixture(scope="module")
def das():
    return simulate.das_field(36, 18, 2, 40, seed=3)


# -- standard atmosphere, hybrid levels, hydrostatics --------------------------------------------
def test_standard_atmosphere_published_values():
    t, p = ozone.standard_atmosphere([0.0, 11000.0, 20000.0, 32000.0, 47000.0])
    np.testing.assert_allclose(t, [288.15, 216.65, 216.65, 228.65, 270.65], atol=1e-9)
    # Table 4 of the 1976 report (base pressures) to its printed digits
    np.testing.assert_allclose(p, [101325.0, 22632.06, 5474.889, 868.0187, 110.9063], rtol=2e-7)
    h = ozone.standard_atmosphere_height(p)
    np.testing.assert_allclose(h, [0.0, 11000.0, 20000.0, 32000.0, 47000.0], atol=1e-6)
    assert ozone.geometric_altitude(11000.0) == pytest.approx(11019.07, abs=0.01)


def test_hybrid_pressure_reproduces_the_published_l137_table():
    a, b = ozone.l137_coefficients()
    assert a.shape == b.shape == (138,)
    ph, pf = ozone.hybrid_pressure(a, b, 101325.0)
    for k, p_hpa in L137_CHECK_HPA.items():  # the b column is published to 6 decimals: 0.05 Pa
        assert ph[k] / 100 == pytest.approx(p_hpa, abs=1e-3)
    assert pf[0] / 100 == pytest.approx(0.0100, abs=1e-4)  # full level 1 of the table
    assert ozone.level_order(a, b) == "top-first"
    assert ozone.level_order(a[::-1], b[::-1]) == "bottom-first"
    # broadcasting over a field of surface pressures
    ph2, pf2 = ozone.hybrid_pressure(a, b, np.full((3, 4), 90000.0))
    assert ph2.shape == (3, 4, 138) and pf2.shape == (3, 4, 137)
    assert np.all(np.diff(ph2, axis=-1) > 0)


def test_hydrostatic_heights_of_the_standard_atmosphere_on_l137():
    ph, pf, t, zh, zf = l137_standard()
    exact = ozone.standard_atmosphere_height(ph[1:])
    below = exact < 20000.0
    assert np.max(np.abs(zh[1:][below] - exact[below])) < 1.0  # [m]
    for level, z_pub in L137_FULL_LEVEL_ALTITUDE.items():  # ECMWF's column, within 1 m
        assert zf[level - 1] == pytest.approx(z_pub, abs=1.0)
    assert np.isinf(zh[0])  # the model top is at p = 0


def test_hydrostatic_pressure_at_11_km_on_a_uniform_grid():
    """p(11 km) = 22632.06 Pa: integrate up a 50-m grid and read the pressure at 11 km."""
    z_levels = np.arange(0.0, 20001.0, 50.0)
    ph = ozone.standard_atmosphere(z_levels)[1]  # interfaces from the exact pressures
    pf = 0.5 * (ph[1:] + ph[:-1])
    t = us_standard_on(ozone.standard_atmosphere_height(pf))
    zh, _ = ozone.hydrostatic_altitude(ph, t, 0.0)
    assert np.max(np.abs(zh - z_levels)) < 1.0
    p11 = np.exp(np.interp(11000.0, zh, np.log(ph)))
    assert p11 == pytest.approx(22632.06, abs=1.0)
    # either level order, same heights
    zh_r, _ = ozone.hydrostatic_altitude(ph[::-1], t[::-1], 0.0)
    np.testing.assert_allclose(zh_r[::-1], zh, rtol=0, atol=1e-9)


# -- WMO lapse-rate tropopause -------------------------------------------------------------------
@pytest.mark.parametrize("dz", [50.0, 100.0, 250.0, 500.0, 1000.0])
def test_lrt_of_the_standard_atmosphere_on_uniform_grids(dz):
    z = np.arange(0.0, 30001.0, dz)  # a level at 11 km: the bias is +0.19 dz
    h = ozone.lapse_rate_tropopause(us_standard_on(z), z)
    assert abs(h - 11000.0) <= 0.2 * dz + 5.0
    shifts = np.linspace(0.0, dz, 7, endpoint=False)  # any phase: within 0.4 dz, never below
    zz = np.arange(0.0, 30001.0, dz)[None, :] + shifts[:, None]
    hh = ozone.lapse_rate_tropopause(us_standard_on(zz), zz)
    assert np.all((hh >= 11000.0) & (hh - 11000.0 <= 0.4 * dz + 5.0)), hh


def test_lrt_of_the_standard_atmosphere_on_l137():
    ph, pf, t, zh, zf = l137_standard()
    h = ozone.lapse_rate_tropopause(t, zf, pressure=pf)
    k = np.argmin(np.abs(zf - 11000.0))
    dz = abs(zf[k - 1] - zf[k])
    assert abs(h - 11000.0) <= 0.2 * dz + 5.0, (h, dz)
    assert ozone.lapse_rate_tropopause(t[::-1], zf[::-1], pressure=pf[::-1]) == h


def test_no_tropopause_gives_nan_never_an_exception():
    z = np.arange(0.0, 30001.0, 250.0)
    ok = us_standard_on(z)
    polar = 250.0 - 3e-3 * z  # cools at 3 K/km throughout: no level qualifies
    short = np.where(z < 11000.0, 288.15 - 6.5e-3 * z,  # drops below 2 K/km for only 1 km
                     np.where(z < 12000.0, 216.65, 216.65 - 6e-3 * (z - 12000.0)))
    h = ozone.lapse_rate_tropopause(np.stack([ok, polar, short, np.full_like(z, np.nan)]), z)
    assert h[0] == pytest.approx(11048.1, abs=0.1) and np.all(np.isnan(h[1:3]))
    assert np.isnan(h[3])
    # the pressure window (550-75 hPa) hides a crossing above it
    p = ozone.standard_atmosphere(z)[1]
    assert np.isnan(ozone.lapse_rate_tropopause(ok, z, pressure=p, pressure_range=(1e4, 2e4)))


def test_a_shallow_stable_layer_is_not_the_tropopause():
    """An isothermal layer of 1 km at 8 km fails the 2-km condition; the LRT is the next one."""
    z = np.arange(0.0, 25001.0, 100.0)
    t = 288.15 - 6.5e-3 * np.minimum(z, 8000.0) - 6.5e-3 * np.clip(z - 9000.0, 0.0, 3000.0)
    h = ozone.lapse_rate_tropopause(t, z)
    assert 12000.0 <= h <= 12000.0 + 0.4 * 100.0
    assert ozone.lapse_rate_tropopause(t[::-1], z[::-1]) == h


# -- Dobson units and regridding -----------------------------------------------------------------
def test_dobson_units():
    assert ozone.DU_PER_VMR_PA == pytest.approx(7891.3, rel=5e-5)
    c = ozone.partial_columns(np.array([1e-6]), np.array([100000.0, 99900.0]))
    assert c[0] == pytest.approx(0.7891, abs=5e-5)  # 1 ppmv over 1 hPa
    a, b = ozone.l137_coefficients()
    ph, _ = ozone.hybrid_pressure(a, b, 98765.0)
    total = ozone.partial_columns(np.full(137, 3e-7), ph).sum()
    assert total == pytest.approx(ozone.DU_PER_VMR_PA * 3e-7 * 98765.0, rel=1e-13)


def random_layers(rng, n, lo=0.0, hi=1.0):
    e = np.sort(rng.uniform(lo, hi, n + 1))
    e[0], e[-1] = lo, hi
    return e


def test_regridding_conserves_and_is_exact_on_equal_grids():
    rng = np.random.default_rng(7)
    cols = rng.uniform(0.0, 5.0, (50, 30))
    cols[:, 3] = 0.0
    src = np.stack([random_layers(rng, 30, 0.0, 20000.0) for _ in range(50)])
    dst = np.stack([random_layers(rng, 11, 0.0, 20000.0) for _ in range(50)])
    out = ozone.regrid_mass_conserving(cols, src, dst)
    np.testing.assert_allclose(out.sum(-1), cols.sum(-1), rtol=1e-12)
    assert np.all(out >= 0.0)
    same = ozone.regrid_mass_conserving(cols, src, src)
    np.testing.assert_allclose(same, cols, rtol=0, atol=1e-12 * cols.sum(-1).max())
    # refine (split every layer in three) then coarsen back
    t = np.linspace(0, 1, 4)[:-1]
    fine = np.concatenate([(src[:, :-1, None] + t * np.diff(src)[:, :, None]).reshape(50, -1),
                           src[:, -1:]], axis=-1)
    back = ozone.regrid_mass_conserving(ozone.regrid_mass_conserving(cols, src, fine), fine, src)
    np.testing.assert_allclose(back, cols, rtol=0, atol=1e-12 * cols.sum(-1).max())
    # decreasing coordinates (pressure), partial overlap, NaN padding
    p_src = 1e5 - src * 4.0
    out_p = ozone.regrid_mass_conserving(cols, p_src, 1e5 - dst * 4.0)
    np.testing.assert_allclose(out_p, out, rtol=1e-10, atol=1e-12)
    part = ozone.regrid_mass_conserving(cols[0], src[0], [-100.0, 0.0, np.nan])
    assert part[0] == 0.0 and np.isnan(part[1])


def test_subcolumn_grid():
    edges, merged = ozone.subcolumn_edges([300.0, -400.0, 2000.0, 500.0],
                                          [11400.0, 18500.0, 25000.0, np.nan])
    np.testing.assert_array_equal(edges[0, :13], [300.0, *range(1000, 12000, 1000), 11400.0])
    assert np.all(np.isnan(edges[0, 13:]))
    assert edges[1, 0] == -400.0 and edges[1, 1] == 0.0 and edges[1, -1] == 18500.0
    assert merged.tolist() == [False, False, True, False]
    assert edges[2, -2] == 21000.0 and edges[2, -1] == 25000.0
    assert edges[3, 0] == 500.0 and np.all(np.isnan(edges[3, 1:]))


# -- the TROC product ----------------------------------------------------------------------------
def test_uniform_vmr_gives_the_exact_analytic_columns(das):
    ds = das.copy()
    ds["o3_vmr"] = xr.full_like(ds["o3_vmr"], 50e-9, dtype=float)
    out = ozone.tropospheric_ozone(ds)
    k = ozone.DU_PER_VMR_PA * 50e-9
    ps = ds.surface_pressure
    ok = out.tropopause_flag == 0
    np.testing.assert_allclose(out.o3_column_lrt.where(ok),
                               (k * (ps - out.tropopause_pressure)).where(ok), rtol=1e-10)
    np.testing.assert_allclose(out.o3_column_fixed, k * (ps - out.fixed_tropopause_pressure),
                               rtol=1e-10)
    np.testing.assert_allclose(out.o3_subcolumns.sum("subcolumn", min_count=1).where(ok),
                               out.o3_column_lrt.where(ok), rtol=1e-12)
    assert (out.surface_o3_vmr == 50e-9).all()


def test_troc_of_a_das_field(das):
    out = ozone.tropospheric_ozone(das)
    flag = out.tropopause_flag.values
    polar = das.latitude.values > 81.0
    assert np.all(flag[:, polar] & 1) and not np.any(flag[:, ~polar] & 1)
    assert np.all(np.isnan(out.tropopause_altitude.values[:, polar]))
    z = out.tropopause_altitude.values[:, ~polar]
    assert 8000.0 < np.nanmin(z) and np.nanmax(z) < 18500.0
    assert np.all(out.tropopause_pressure.values[:, ~polar] < 40000.0)
    col = out.o3_column_lrt.values[:, ~polar]
    assert np.all((col > 5.0) & (col < 60.0))  # [DU], realistic tropospheric columns
    edges, _ = ozone.subcolumn_edges(out.surface_altitude, out.tropopause_altitude)
    n_layers = np.isfinite(np.diff(edges, axis=-1)).sum(-1)
    assert np.array_equal(n_layers, np.isfinite(out.o3_subcolumns).sum("subcolumn").values)
    assert out.o3_subcolumns.attrs["units"] == "DU"
    assert out.tropopause_altitude.attrs["standard_name"] == "tropopause_altitude"


def test_level_order_does_not_matter():
    top = simulate.das_field(24, 12, 1, 30, level_order="top-first", seed=1)
    bottom = simulate.das_field(24, 12, 1, 30, level_order="bottom-first", seed=1)
    np.testing.assert_array_equal(top.o3_vmr.values[:, ::-1], bottom.o3_vmr.values)
    xr.testing.assert_allclose(ozone.tropospheric_ozone(top), ozone.tropospheric_ozone(bottom),
                               rtol=1e-13, atol=0)


def test_numpy_xarray_and_dask_paths_agree(das):
    eager = ozone.tropospheric_ozone(das)
    lazy = ozone.tropospheric_ozone(das.chunk({"time": 1, "latitude": 5}))
    assert isinstance(lazy.o3_column_lrt.data, dask.array.Array)
    xr.testing.assert_allclose(eager, lazy.compute(), rtol=1e-14, atol=0)
    # the NumPy kernel on (time, lat, lon, level) arrays, and a dataset in another dim order
    arrs = ozone.tropospheric_ozone_arrays(
        np.moveaxis(das.o3_vmr.values, 1, -1), np.moveaxis(das.temperature.values, 1, -1),
        das.surface_pressure.values, das.surface_altitude.values,
        das.hybrid_a.values, das.hybrid_b.values)
    for name, values in arrs.items():
        np.testing.assert_allclose(values, eager[name].values, rtol=1e-14, atol=0, err_msg=name)
    shuffled = ozone.tropospheric_ozone(das.transpose("longitude", "level", ...))
    assert shuffled.o3_subcolumns.dims[0] == "longitude"
    xr.testing.assert_allclose(shuffled.transpose(*eager.o3_subcolumns.dims),
                               eager.transpose(*eager.o3_subcolumns.dims), rtol=1e-14, atol=0)


@pytest.mark.parametrize("change, match", [
    (lambda ds: ds.drop_vars("hybrid_b"), "hybrid_b"),
    (lambda ds: ds.assign(surface_pressure=ds.surface_pressure.assign_attrs(units="hPa")),
     r"surface_pressure spans \[6.3\d+e\+06, .*expected Pa within"),
    (lambda ds: ds.assign(surface_pressure=ds.surface_pressure.assign_attrs(units="K")),
     "surface_pressure.*has units 'K'; expected 'Pa'"),
    (lambda ds: ds.assign(surface_pressure=(ds.surface_pressure / 100).assign_attrs(units="Pa")),
     "surface_pressure.*hPa given instead of Pa"),
    (lambda ds: ds.isel(interface=slice(1, None)), "interfaces"),
    (lambda ds: ds.assign(temperature=ds.temperature.assign_attrs(units="degC")), "temperature"),
    (lambda ds: ds.assign(o3_vmr=ds.o3_vmr.assign_attrs(units="DU")), "o3_vmr"),
])
def test_bad_input_names_the_variable(das, change, match):
    with pytest.raises(OzoneInputError, match=match):
        ozone.tropospheric_ozone(change(das))


def test_inputs_in_other_units_give_the_same_columns(das):
    """Surface pressure in hPa, surface altitude in km and ozone in ppbv convert through
    hubkit.units: the same TROC as in Pa, m and mol mol-1."""
    other = das.assign(
        surface_pressure=(das.surface_pressure / 100.0).assign_attrs(units="hPa"),
        surface_altitude=(das.surface_altitude / 1000.0).assign_attrs(units="km"),
        o3_vmr=(das.o3_vmr * 1e9).assign_attrs(units="ppbv"))
    expected = ozone.tropospheric_ozone(das)
    found = ozone.tropospheric_ozone(other)
    # o3_vmr is float32: its change of units rounds at 6e-8
    for name, rtol in (("o3_column_fixed", 1e-6), ("o3_column_lrt", 1e-6),
                       ("surface_pressure", 1e-12)):
        np.testing.assert_allclose(found[name].values, expected[name].values, rtol=rtol,
                                   equal_nan=True)


def test_bad_input_to_the_kernels():
    with pytest.raises(OzoneInputError, match="a has 5 interfaces and b 4"):
        ozone.hybrid_pressure(np.zeros(5), np.linspace(0, 1, 4), 1e5)
    with pytest.raises(OzoneInputError, match="interfaces = levels"):
        ozone.hydrostatic_altitude(np.linspace(1e5, 1e3, 5), np.full(5, 250.0), 0.0)
    with pytest.raises(OzoneInputError, match="edges = layers"):
        ozone.regrid_mass_conserving(np.ones(3), np.arange(3.0), np.arange(3.0))


def test_ppbv_input_is_converted(das):
    ppb = das.assign(o3_vmr=(das.o3_vmr.astype(float) * 1e9).assign_attrs(units="ppbv"))
    xr.testing.assert_allclose(ozone.tropospheric_ozone(ppb),
                               ozone.tropospheric_ozone(das.assign(o3_vmr=das.o3_vmr.astype(float))),
                               rtol=1e-12)


def test_troc_product_is_stored_with_provenance(das):
    import hubkit

    store = hubkit.open_store("memory://troc-test")
    out = ozone.tropospheric_ozone(das)
    item = store.put(out, product_type="troc", inputs=["das-test"], step="ozone.troc",
                     step_version="1", parameters={"fixed_altitude": 6000.0})
    back = store.open(item)
    np.testing.assert_array_equal(back.o3_column_lrt.values, out.o3_column_lrt.values)
    assert item.bbox[1] < -80 and item.bbox[3] > 80


def test_troc_output_follows_the_troc_schema(das):
    """The product of tropospheric_ozone, eager and lazy, is what the 'troc' schema declares,
    which is the product type of the chain's das -> troc step and what the store checks."""
    from hubkit import chain

    schema = schemas.get_schema("troc")
    (step,) = [s for s in chain.default_steps() if s.input.product_type == "das"
               and s.function is chain.troc]
    assert step.output == schema.product_type == "troc"
    for out in (ozone.tropospheric_ozone(das),
                ozone.tropospheric_ozone(das.chunk({"time": 1, "latitude": 9})).compute()):
        assert schemas.product_type_of(out) == "troc"
        schemas.validate(out, source="troc-test")
        assert set(out.data_vars) == {v.name for v in schema.variables} - set(out.coords)
        for var in schema.variables:
            assert out[var.name].dims == var.dims, var.name


def test_the_chain_makes_a_troc_product_of_a_das_product(das, tmp_path):
    import hubkit
    from hubkit import chain

    store = hubkit.open_store(str(tmp_path / "store"))
    das_item = store.put(das.assign_attrs(hubkit_product_type="das"), product_type="das",
                         inputs=["das-test"], step="test")
    (step,) = [s for s in chain.default_steps() if s.function is chain.troc]
    (report,) = chain.plan(store, [step]).steps
    (unit,) = report.missing
    assert unit.inputs == (das_item.id,) or list(unit.inputs) == [das_item.id]
    assert chain.run_unit(store.url, {}, step, unit)["status"] == "done"
    item = store.get_item(unit.output_id)
    assert item.collection_id == "troc"
    back = store.open(item)
    schemas.validate(back, source=unit.output_id, product_type="troc")
    xr.testing.assert_allclose(back.o3_column_lrt, ozone.tropospheric_ozone(das).o3_column_lrt)


@pytest.mark.parametrize("change, match", [
    (lambda out: out.drop_vars("o3_column_lrt"), "o3_column_lrt.*missing"),
    (lambda out: out.assign(o3_subcolumns=out.o3_subcolumns.assign_attrs(units="mol m-2")),
     "o3_subcolumns.*units"),
    (lambda out: out.assign(tropopause_flag=out.tropopause_flag.astype(float)),
     "tropopause_flag.*dtype"),
    (lambda out: out.transpose("longitude", ...), "dims"),
    (lambda out: out.assign(surface_o3_vmr=out.surface_o3_vmr * np.nan), "no valid value"),
])
def test_a_product_violating_the_troc_schema_is_refused(das, change, match):
    import hubkit

    bad = change(ozone.tropospheric_ozone(das))
    with pytest.raises(SchemaError, match=match):
        schemas.validate(bad, source="troc-test")
    store = hubkit.open_store("memory://troc-schema-test")
    with pytest.raises(SchemaError, match=match):
        store.put(bad, product_type="troc", inputs=["das-test"], step="ozone.troc")


def test_kernel_shortcuts_change_nothing(das):
    """Blocks, the 37.5-hPa level cut and the LRT search window give what the plain per-column
    functions give."""
    x = np.moveaxis(das.o3_vmr.values, 1, -1).astype(float)
    t = np.moveaxis(das.temperature.values, 1, -1).astype(float)
    args = (x, t, das.surface_pressure.values, das.surface_altitude.values,
            das.hybrid_a.values, das.hybrid_b.values)
    default = ozone.tropospheric_ozone_arrays(*args)
    small = ozone.tropospheric_ozone_arrays(*args, block=7)
    b_per_column = np.broadcast_to(das.hybrid_b.values, das.surface_pressure.shape + (41,))
    per_column = ozone.tropospheric_ozone_arrays(*args[:5], b_per_column)
    for name in default:
        np.testing.assert_array_equal(small[name], default[name], err_msg=name)
        np.testing.assert_array_equal(per_column[name], default[name], err_msg=name)
    ph, pf = ozone.hybrid_pressure(das.hybrid_a.values, das.hybrid_b.values,
                                   das.surface_pressure.values)
    _, zf = ozone.hydrostatic_altitude(ph, t, das.surface_altitude.values)
    plain = ozone.lapse_rate_tropopause(t, zf, pressure=pf)
    np.testing.assert_allclose(default["tropopause_altitude"], plain, rtol=1e-12)


def test_kernel_agrees_with_the_public_functions_column_by_column(das):
    """The vectorised kernel against the paper's per-column design with the public functions
    (pressures interpolated in ln p, then regrid_mass_conserving), to 1e-10 relative."""
    out = ozone.tropospheric_ozone(das)
    a, b = das.hybrid_a.values, das.hybrid_b.values  # top first
    rng = np.random.default_rng(0)
    for k, j, i in zip(rng.integers(0, 2, 25), rng.integers(0, 18, 25), rng.integers(0, 36, 25),
                       strict=True):
        x = das.o3_vmr.values[k, :, j, i].astype(float)
        t = das.temperature.values[k, :, j, i].astype(float)
        ps, zs = float(das.surface_pressure[k, j, i]), float(das.surface_altitude[j, i])
        ph, pf = ozone.hybrid_pressure(a, b, ps)
        zh, zf = ozone.hydrostatic_altitude(ph, t, zs)
        z_tp = ozone.lapse_rate_tropopause(t, zf, pressure=pf)
        layers = ozone.partial_columns(x[::-1], ph[::-1])
        zh_up, lnp_up = zh[::-1][:-1], np.log(ph[::-1][:-1])
        edges, _ = ozone.subcolumn_edges(zs, z_tp)
        p_edges = np.where(np.isnan(edges), np.nan, np.exp(np.interp(edges, zh_up, lnp_up)))
        sub = ozone.regrid_mass_conserving(layers, ph[::-1], p_edges)
        p_fixed = np.exp(np.interp(6000.0, zh_up, lnp_up))
        col_fixed = ozone.regrid_mass_conserving(layers, ph[::-1], np.array([ps, p_fixed]))[0]
        got = out.isel(time=k, latitude=j, longitude=i)
        np.testing.assert_allclose(got.o3_subcolumns.values, sub, rtol=1e-10, atol=1e-13)
        if zs >= 6000.0:  # the fixed level is underground
            col_fixed = p_fixed = np.nan
        np.testing.assert_allclose(float(got.o3_column_fixed), col_fixed, rtol=1e-10)
        np.testing.assert_allclose(float(got.fixed_tropopause_pressure), p_fixed, rtol=1e-12)
        np.testing.assert_allclose(float(got.o3_column_lrt), np.nansum(sub) if np.isfinite(z_tp)
                                   else np.nan, rtol=1e-10)
        if np.isfinite(z_tp):
            np.testing.assert_allclose(float(got.tropopause_pressure),
                                       np.exp(np.interp(z_tp, zh_up, lnp_up)), rtol=1e-12)


def test_a_broken_column_spoils_only_itself(das):
    bad = das.copy(deep=True)
    bad["temperature"][0, :, 4, 7] = np.nan
    out, ref = ozone.tropospheric_ozone(bad), ozone.tropospheric_ozone(das)
    assert np.isnan(out.o3_column_lrt[0, 4, 7]) and out.tropopause_flag[0, 4, 7] & 1
    keep = np.ones(out.o3_column_lrt.shape, dtype=bool)
    keep[0, 4, 7] = False
    np.testing.assert_array_equal(out.o3_subcolumns.values[keep], ref.o3_subcolumns.values[keep])
