"""The surface-UV lookup table: its nodes, how it is built with TUV-x, where it is kept.

A table is an xarray Dataset in the format of :mod:`hubkit.uv` (seven axes, ``uvi`` and ``uva``,
interpolation attributes, provenance). :func:`build_table` drives the engine over the nodes in
parallel worker processes (or on a Dask client) with a progress bar; :func:`default_table` loads
the table shipped with hubkit (``hubkit/data/uv_table.nc``, built by ``hubkit uv build-table
--ship``); a table built by a user can be kept in the store as a ``uv-table`` product.

What makes the full seven-dimensional table affordable on a small machine (Lipponen et al. 2020
ran libRadtran for theirs):

* albedo is exact per wavelength from two runs, E(A) = E0 / (1 - A S) (:mod:`.engine`);
* ozone enters through the transmittance of each wavelength, which is smooth in ozone: the
  engine runs at :data:`OZONE_ENGINE_NODES` and ln T and S of every bin are interpolated by a
  cubic in ozone to the table's ozone nodes (measured error: under 0.1 % of the UV index at
  SZA <= 60 degrees, under 0.5 % at 80 degrees; see ``docs/uv.md``);
* elevation, aerosol and cloud are full axes (they do not separate as factors).
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

import numpy as np
import xarray as xr

from hubkit import schemas
from hubkit.errors import UVInputError
from hubkit.uv import engine, spectra

TABLE_VERSION = "1"
SHIPPED_TABLE = "uv_table.nc"

OZONE_ENGINE_NODES = (100.0, 200.0, 350.0, 550.0)
"""Ozone columns [DU] the engine runs at; other ozone nodes come from a cubic in ozone of the
per-bin ln transmittance and spherical albedo."""

AXES = ("ozone", "elevation", "albedo", "aod", "ssa", "cot", "sza")

AXIS_ATTRS = {
    "ozone": {"units": "DU", "long_name": "total ozone column", "interpolation_axis": "log"},
    "elevation": {"units": "m", "long_name": "surface elevation above sea level",
                  "interpolation_axis": "linear"},
    "albedo": {"units": "1", "long_name": "surface albedo (Lambertian, spectrally flat)",
               "interpolation_axis": "linear"},
    "aod": {"units": "1", "long_name": "aerosol optical depth at 550 nm",
            "interpolation_axis": "log1p"},
    "ssa": {"units": "1", "long_name": "aerosol single-scattering albedo",
            "interpolation_axis": "linear"},
    # ln UV is closest to linear in ln(1 + cot/20) and in sqrt(cos sza): see hubkit.uv.interp
    "cot": {"units": "1", "long_name": "cloud optical thickness",
            "interpolation_axis": "log1p_20"},
    "sza": {"units": "degree", "long_name": "solar zenith angle",
            "interpolation_axis": "sqrt_cos"},
}

VALUE_ATTRS = {
    "uvi": {"units": "1", "long_name": "UV index (CIE 1998 erythemal irradiance x 40 m2 W-1)",
            "interpolation_value": "log"},
    "uva": {"units": "W m-2",
            "long_name": "UV-A irradiance, 315-400 nm, global on a horizontal surface",
            "interpolation_value": "log"},
}


@dataclass(frozen=True)
class Nodes:
    """The table's nodes on each axis (SZA nodes avoid the solver's glitch windows)."""

    ozone: tuple = (100.0, 150.0, 200.0, 250.0, 300.0, 350.0, 400.0, 475.0, 550.0)
    elevation: tuple = (0.0, 1000.0, 2500.0, 5000.0)
    albedo: tuple = (0.0, 0.05, 0.1, 0.2, 0.35, 0.5, 0.65, 0.8, 0.95)
    aod: tuple = (0.0, 0.1, 0.25, 0.5, 0.9, 1.5)
    ssa: tuple = (0.7, 0.8, 0.9, 1.0)
    cot: tuple = (0.0, 1.0, 3.0, 7.0, 15.0, 30.0, 55.0, 100.0)
    sza: tuple = (0.0, 6.0, 11.0, 30.0, 36.0, 42.0, 50.0, 55.0, 60.0, 65.0, 68.0, 73.0, 77.0,
                  80.0, 83.0, 86.0, 88.0, 90.0)
    ozone_engine: tuple = field(default=OZONE_ENGINE_NODES)

    def shape(self) -> tuple[int, ...]:
        """The number of nodes on each of the table's axes, in the order of :data:`AXES`."""
        return tuple(len(getattr(self, a)) for a in AXES)

    def check(self) -> None:
        """Raise :class:`UVInputError` unless every axis increases strictly, no SZA node lies
        in a glitch window and the engine's ozone nodes span the table's."""
        for axis in AXES + ("ozone_engine",):
            values = np.asarray(getattr(self, axis), dtype=float)
            if values.ndim != 1 or values.size < 1 or np.any(np.diff(values) <= 0):
                raise UVInputError(f"table nodes of {axis!r} must increase strictly; got {values}")
        window = engine.in_glitch_window(np.asarray(self.sza))
        if window.any():
            raise UVInputError(
                f"SZA nodes {np.asarray(self.sza)[window]} lie in the solver's glitch windows "
                f"{engine.GLITCH_WINDOWS_8}")
        if min(self.ozone) < min(self.ozone_engine) or max(self.ozone) > max(self.ozone_engine):
            raise UVInputError(f"ozone nodes {self.ozone} outside the engine's {self.ozone_engine}")


QUICK_NODES = Nodes(
    ozone=(200.0, 300.0, 450.0), elevation=(0.0, 2000.0), albedo=(0.0, 0.1, 0.5),
    aod=(0.0, 0.4), ssa=(0.8, 1.0), cot=(0.0, 5.0), sza=(0.0, 30.0, 60.0),
    ozone_engine=(200.0, 300.0, 450.0),
)
"""A small table (minutes to build) for trying the builder; not for science."""


def _run_column(task: tuple) -> tuple:
    """Worker: engine runs for one (elevation, aod, ssa, cot) at every engine ozone and SZA.

    Returns ``(key, t0, s, bridged)``: arrays (ozone_engine, sza, wavelength) and the number of
    fields bridged over a solver failure (:meth:`hubkit.uv.engine.Engine.checked_transmittance`).
    """
    key, elevation, aod, ssa, cot, ozone_nodes, szas = task
    n_wl = engine.WAVELENGTH_EDGES_NM.size - 1
    t0 = np.empty((len(ozone_nodes), len(szas), n_wl))
    s = np.empty_like(t0)
    bridged = 0
    for i, ozone in enumerate(ozone_nodes):
        eng = engine.Engine(engine.Atmosphere(ozone=ozone, elevation=elevation, aod=aod, ssa=ssa,
                                              cot=cot))
        for j, sza in enumerate(szas):
            t0[i, j], s[i, j], was_bridged = eng.checked_transmittance(sza)
            bridged += was_bridged
    return key, t0, s, bridged


def _integrate(t0, s, nodes: Nodes, weights) -> tuple[np.ndarray, np.ndarray]:
    """UVI and UV-A (ozone, albedo, sza) from the engine's (ozone_engine, sza, wl) arrays."""
    lag = engine.lagrange_weights(np.asarray(nodes.ozone), np.asarray(nodes.ozone_engine))
    with np.errstate(divide="ignore"):
        ln_t = np.log(np.clip(t0, 1e-300, None))
    ln_t = np.einsum("ok,kzw->ozw", lag, ln_t)
    s = np.einsum("ok,kzw->ozw", lag, s)
    albedo = np.asarray(nodes.albedo)
    t = np.exp(ln_t)[:, None] / (1.0 - albedo[None, :, None, None] * s[:, None])
    return t @ weights["uvi"], t @ weights["uva"]


def build_table(nodes: Nodes | None = None, *, workers: int | None = None, client=None,
                progress: bool = True) -> xr.Dataset:
    """Compute a surface-UV lookup table with TUV-x.

    Parameters
    ----------
    nodes : Nodes, optional
        The axes (default: the shipped table's :class:`Nodes`).
    workers : int, optional
        Worker processes (default: the CPUs this process may use). Ignored with ``client``.
    client : dask.distributed.Client, optional
        Run the engine tasks on this Dask cluster instead of local processes.
    progress : bool
        Show a progress bar (tqdm) over the engine tasks.

    Returns
    -------
    xarray.Dataset
        The table in the format of :mod:`hubkit.uv`, with build time and settings in its attrs.
    """
    from tqdm.auto import tqdm

    nodes = nodes or Nodes()
    nodes.check()
    weights = spectra.band_weights(engine.WAVELENGTH_EDGES_NM)
    tasks = []
    for e_i, elevation in enumerate(nodes.elevation):
        for a_i, aod in enumerate(nodes.aod):
            # without aerosol the single-scattering albedo changes nothing: one run for all
            ssas = nodes.ssa[:1] if aod == 0.0 else nodes.ssa
            for s_i, ssa in enumerate(ssas):
                for c_i, cot in enumerate(nodes.cot):
                    tasks.append(((e_i, a_i, s_i, c_i), elevation, aod, ssa, cot,
                                  tuple(nodes.ozone_engine), tuple(nodes.sza)))
    shape = nodes.shape()
    uvi = np.full(shape, np.nan)
    uva = np.full(shape, np.nan)
    started = time.perf_counter()
    bar = tqdm(total=len(tasks), desc="TUV-x table", unit="column", disable=not progress)

    bridged = 0

    def take(result):
        nonlocal bridged
        (e_i, a_i, s_i, c_i), t0, s, n_bridged = result
        bridged += n_bridged
        u, a = _integrate(t0, s, nodes, weights)  # (ozone, albedo, sza)
        targets = range(len(nodes.ssa)) if nodes.aod[a_i] == 0.0 else (s_i,)
        for k in targets:
            uvi[:, e_i, :, a_i, k, c_i, :] = u
            uva[:, e_i, :, a_i, k, c_i, :] = a
        bar.update(1)

    try:
        if client is not None:
            from dask.distributed import as_completed

            for future in as_completed(client.map(_run_column, tasks, pure=False)):
                take(future.result())
        else:
            n = workers or len(os.sched_getaffinity(0))
            if n <= 1:
                for task in tasks:
                    take(_run_column(task))
            else:
                with ProcessPoolExecutor(max_workers=n) as pool:
                    for result in pool.map(_run_column, tasks, chunksize=1):
                        take(result)
    finally:
        bar.close()
    elapsed = time.perf_counter() - started
    return _as_dataset(uvi, uva, nodes, elapsed, len(tasks), bridged)


def _as_dataset(uvi, uva, nodes: Nodes, elapsed: float, n_tasks: int,
                bridged: int) -> xr.Dataset:
    import hubkit

    coords = {a: (a, np.asarray(getattr(nodes, a), dtype=float), AXIS_ATTRS[a]) for a in AXES}
    ds = xr.Dataset(
        {"uvi": (AXES, uvi.astype(np.float32), VALUE_ATTRS["uvi"]),
         "uva": (AXES, uva.astype(np.float32), VALUE_ATTRS["uva"])},
        coords=coords,
    )
    settings = engine.settings()
    n_runs = n_tasks * len(nodes.ozone_engine) * len(nodes.sza) * 2
    ds.attrs.update({
        "title": "Surface UV index and UV-A lookup table",
        "Conventions": "CF-1.10",
        "hubkit_product_type": schemas.UV_TABLE.product_type,
        "hubkit_table_version": TABLE_VERSION,
        "hubkit_version": hubkit.__version__,
        "source": settings.pop("engine"),
        "references": (
            "Gai et al. 2021 Remote Sens. 13 210; Lipponen et al. 2020 Atmosphere 11 324; "
            "CIE S 007/E:1998; ASTM G173-03 extraterrestrial spectrum"),
        "extraterrestrial_spectrum": "ASTM G173-03 (pvlib), at 1 AU",
        "earth_sun_distance": "1 AU (scale by (1 AU / r)^2)",
        "ozone_engine_nodes_du": list(nodes.ozone_engine),
        "ozone_interpolation": "cubic in ozone of ln transmittance and spherical albedo per bin",
        "build_seconds": round(elapsed, 1),
        "engine_runs": n_runs,
        "engine_fields_bridged": bridged,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **{f"engine_{k}": (str(v) if isinstance(v, list | tuple) else v)
           for k, v in settings.items()},
    })
    return ds


def write_table(ds: xr.Dataset, path) -> None:
    """Write a table to netCDF (float32, compressed); atomically (temporary file, then rename)."""
    encoding = {v: {"zlib": True, "complevel": 6, "shuffle": True} for v in ds.data_vars}
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        ds.to_netcdf(tmp, encoding=encoding, engine="netcdf4")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def shipped_table_path():
    """Path of the table shipped with hubkit."""
    return resources.files("hubkit") / "data" / SHIPPED_TABLE


@lru_cache(maxsize=1)
def default_table() -> xr.Dataset:
    """The lookup table shipped with hubkit, loaded into memory (float64 values)."""
    from hubkit.errors import HubkitError

    path = shipped_table_path()
    if not path.is_file():
        raise HubkitError(f"the shipped UV table {path} is missing; build one with "
                          "'hubkit uv build-table --ship' (needs pip install 'hubkit[uv]')")
    with xr.open_dataset(path, engine="netcdf4") as ds:
        table = ds.load()
    for name in table.data_vars:
        table[name] = table[name].astype(np.float64)
    return table
