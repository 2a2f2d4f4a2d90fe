"""The DAS forecast model: a regular global grid, winds, and flux-form tracer transport with
prescribed mass fluxes (TM5's way), optionally with first-order chemistry.

References
----------
.. [1] Williamson et al., J. Comput. Phys. 102, 211-224, 1992. doi:10.1016/S0021-9991(05)80016-6
.. [2] Krol et al., Geosci. Model Dev. 3, 109-126, 2010 (TM5 mass fluxes).
   doi:10.5194/gmd-3-109-2010
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from hubkit.assimilation import models as M
from hubkit.errors import AssimilationInputError

__all__ = ["GridModel", "check_grid", "face_winds", "make_model", "solid_body_winds"]


def check_grid(ds: xr.Dataset, name: str):
    """Latitudes, longitudes and latitude edges of a regular global grid (checked)."""
    lat = np.asarray(ds["latitude"].values, dtype=float)
    lon = np.asarray(ds["longitude"].values, dtype=float)
    ny, nx = lat.size, lon.size
    if ny < 2 or nx < 3:
        raise AssimilationInputError(f"{name} has {ny} latitudes and {nx} longitudes; expected "
                                     "a global grid of at least 2 x 3 cells")
    edges = np.linspace(-90.0, 90.0, ny + 1)
    if not np.allclose(lat, 0.5 * (edges[1:] + edges[:-1]), atol=1e-6):
        raise AssimilationInputError(f"{name}: latitude must be the centres of a regular global "
                                     f"grid, increasing ({ny} cells of {180 / ny:g}°)")
    if not np.allclose(np.diff(lon), 360.0 / nx, atol=1e-6):
        raise AssimilationInputError(f"{name}: longitude must be regular with spacing "
                                     f"{360 / nx:g}° (a global grid of {nx} cells)")
    return lat, lon, edges


def solid_body_winds(latitude, longitude, *, speed=20.0, tilt=0.3):
    """Solid-body rotation about an axis tilted by ``tilt`` from the pole (Williamson et al.
    1992, test case 1, eqs. 72-73): non-divergent, crossing the pole region when tilted.

    Parameters
    ----------
    latitude : array_like, (ny,)
        Cell-centre latitudes. [°]
    longitude : array_like, (nx,)
        Cell-centre longitudes. [°]
    speed : float
        Equatorial speed ``u_0``. [m s⁻¹]
    tilt : float
        Angle ``α`` between the rotation axis and the pole. [rad]

    Returns
    -------
    xarray.Dataset
        ``eastward_wind`` and ``northward_wind`` (latitude, longitude). [m s⁻¹]

    References
    ----------
    .. [1] Williamson et al., J. Comput. Phys. 102, 211-224, 1992.
       doi:10.1016/S0021-9991(05)80016-6
    """
    lat = np.asarray(latitude, dtype=float)
    lon = np.asarray(longitude, dtype=float)
    phi, lam = np.meshgrid(np.radians(lat), np.radians(lon), indexing="ij")
    u = speed * (np.cos(phi) * np.cos(tilt) + np.sin(phi) * np.cos(lam) * np.sin(tilt))
    v = -speed * np.sin(lam) * np.sin(tilt)
    dims = ("latitude", "longitude")
    return xr.Dataset({"eastward_wind": (dims, u, {"units": "m s-1"}),
                       "northward_wind": (dims, v, {"units": "m s-1"})},
                      coords={"latitude": lat, "longitude": lon})


def face_winds(winds: xr.Dataset, lat, lon, n_levels: int):
    """Winds at the west faces (T, L, ny, nx) and south edges (T, L, ny+1, nx) from cell
    centres, and the wind times (T,) as datetime64 (``None`` for steady winds, T = 1)."""
    for name in ("eastward_wind", "northward_wind"):
        if name not in winds.variables:
            raise AssimilationInputError(f"winds lacks {name!r}; expected eastward_wind and "
                                         "northward_wind [m s-1] on (latitude, longitude)")
    out, wtimes = [], None
    for name in ("eastward_wind", "northward_wind"):
        da = winds[name]
        if "time" in da.dims:
            wtimes = np.asarray(da["time"].values, dtype="datetime64[ns]")
            if wtimes.size > 1 and np.any(np.diff(wtimes) <= np.timedelta64(0)):
                raise AssimilationInputError(f"winds[{name!r}] time must be strictly increasing")
        else:
            da = da.expand_dims(time=1)
        extra = [d for d in da.dims if d not in ("time", "latitude", "longitude")]
        if len(extra) > 1 or da.sizes.get("latitude") != lat.size \
                or da.sizes.get("longitude") != lon.size:
            raise AssimilationInputError(
                f"winds[{name!r}] has dims {dict(da.sizes)}; expected (latitude: {lat.size}, "
                f"longitude: {lon.size}), optionally a level dim of {n_levels} and a time dim")
        da = da.transpose("time", *extra, "latitude", "longitude")
        w = np.asarray(da.values, dtype=float)
        nt = w.shape[0]
        w = np.broadcast_to(w if w.ndim == 4 else w[:, None], (nt, n_levels) + w.shape[-2:])
        if w.shape[1] != n_levels or not np.all(np.isfinite(w)):
            raise AssimilationInputError(f"winds[{name!r}] must be finite with {n_levels} "
                                         "levels (or none)")
        out.append(w)
    u, v = out
    if u.shape[0] != v.shape[0]:
        raise AssimilationInputError("eastward_wind and northward_wind must share their times")
    u_face = 0.5 * (u + np.roll(u, 1, axis=-1))
    v_edge = np.zeros(v.shape[:2] + (lat.size + 1, lon.size))
    v_edge[..., 1:-1, :] = 0.5 * (v[..., 1:, :] + v[..., :-1, :])
    return u_face, v_edge, (wtimes if u.shape[0] > 1 else None)


@dataclass
class GridModel:
    """Transport on the DAS grid with fluxes from the winds and the carried air mass.

    The face mass fluxes are prescribed from the winds and the reference (unit-density) air
    mass, the cell area — as TM5 takes its mass fluxes from the meteorology — and the air mass
    per cell is carried from step to step with the tracer by those same fluxes, so the tracer
    mass ``Σ q·m`` is conserved exactly and a uniform ``q`` stays uniform even where the
    interpolated winds are slightly divergent. (Fluxes recomputed from the carried air mass
    feed back on it and grow unstable across the poles on fine grids; prescribed fluxes let it
    drift only by the discrete divergence, < 0.5 % in 4 days on a 2° grid.) The air mass does
    not depend on the tracer, so every run that starts from the same air mass at the same time
    shares it.

    Winds ``u``, ``v`` are (T, L, ...) at ``wind_seconds`` (T,) after ``t_ref``; with T > 1 each
    step uses the winds linearly interpolated to the middle of the step (held constant outside
    the given times). With a finite ``tau``, each step ends with the exact first-order
    relaxation towards ``climatology`` (:func:`.models.relax_to_climatology`).
    """

    area: np.ndarray
    edges: np.ndarray
    u: np.ndarray
    v: np.ndarray
    dt: float
    slopes: bool = True
    wind_seconds: np.ndarray | None = None
    tau: float = np.inf
    climatology: np.ndarray | None = None

    def air_mass(self) -> np.ndarray:
        """The reference air mass to start :meth:`run` from: the cell area on every level,
        (L, ny, nx). [m², at unit density]"""
        return np.broadcast_to(self.area, self.u.shape[1:2] + self.area.shape).copy()

    def _winds_at(self, seconds: float):
        if self.wind_seconds is None or self.u.shape[0] == 1:
            return self.u[0], self.v[0]
        ts = self.wind_seconds
        j = int(np.clip(np.searchsorted(ts, seconds, side="right") - 1, 0, ts.size - 2))
        f = float(np.clip((seconds - ts[j]) / (ts[j + 1] - ts[j]), 0.0, 1.0))
        return ((1.0 - f) * self.u[j] + f * self.u[j + 1],
                (1.0 - f) * self.v[j] + f * self.v[j + 1])

    def run(self, q: np.ndarray, m: np.ndarray, seconds: float, *, start: float = 0.0,
            mode: str = "state"):
        """Advance ``q`` (..., L, ny, nx) and air mass ``m`` (L, ny, nx) by ``seconds`` from
        ``start`` seconds after ``t_ref``. ``mode`` says how the relaxation acts: ``"state"``
        relaxes to the climatology, ``"anomaly"`` (covariance columns, perturbations) decays
        by ``e^{−h/τ}`` (the linear part), ``"variance"`` by ``e^{−2h/τ}``."""
        n = int(np.ceil(seconds / self.dt - 1e-9))
        if n <= 0:
            return q, m
        step = seconds / n
        q = np.array(q, dtype=float)
        m = np.array(m, dtype=float)
        steady = self.wind_seconds is None
        same = bool(np.all(self.u == self.u[:, :1]) and np.all(self.v == self.v[:, :1])
                    and np.all(m == m[:1]))
        groups = [slice(None)] if same else [slice(k, k + 1) for k in range(self.u.shape[1])]
        decay = np.exp(-step / self.tau) if np.isfinite(self.tau) else 1.0
        for g in groups:
            k = 0 if same else g.start
            clim = None
            if self.climatology is not None and mode == "state" and decay != 1.0:
                clim = self.climatology if same else self.climatology[g]
            view = q[..., g, :, :]
            flat = view.reshape((-1,) + view.shape[-3:])  # (fields, levels, ny, nx)
            # blocks of fields of about 2**22 values: bounded memory, arrays in cache longer
            size = max(1, (1 << 22) // int(np.prod(flat.shape[1:])))
            for b in range(0, flat.shape[0], size):
                sub, mk = flat[b:b + size], m[k]
                for i in range(n):
                    if i == 0 or not steady:
                        u, v = self._winds_at(start + (i + 0.5) * step)
                        fx, fy = M.mass_fluxes_latlon(u[k], v[k], self.area, self.edges, step)
                    sub, mm = M.transport_step(sub, mk, fx, fy, periodic_y=False,
                                               slopes=self.slopes)
                    mk = mm.reshape((-1,) + mk.shape)[0]
                    if decay != 1.0:
                        if clim is not None:
                            sub = M.relax_to_climatology(sub, clim, self.tau, step)
                        else:
                            sub = sub * (decay**2 if mode == "variance" else decay)
                flat[b:b + size] = sub
            q[..., g, :, :] = flat.reshape(view.shape)
            m[g] = mk
        return q, m



def make_model(winds, lat, lon, edges, n_levels, dt, slopes, *, t_ref=None,
                relaxation_time=None, climatology=None):
    """The :class:`GridModel` for ``winds`` on a regular global grid (checked).

    Parameters
    ----------
    winds : xarray.Dataset
        ``eastward_wind`` and ``northward_wind`` on (latitude, longitude), optionally with a
        level dim of ``n_levels`` and a time dim (see :func:`face_winds`). [m s⁻¹]
    lat, lon : ndarray, (ny,), (nx,)
        Cell-centre latitudes and longitudes (:func:`check_grid`). [°]
    edges : ndarray, (ny + 1,)
        Latitude cell edges, from −90 to 90. [°]
    n_levels : int
        Number of model levels ``L``.
    dt : float
        Longest time step; :meth:`GridModel.run` splits a run into equal steps no longer. [s]
    slopes : bool
        Minmod-limited linear reconstruction (second order) instead of first-order upwind.
    t_ref : datetime64, optional
        Time that ``start`` of :meth:`GridModel.run` counts from, to place time-varying winds;
        default the first wind time.
    relaxation_time : float, optional
        First-order chemistry time scale towards ``climatology``; 0 or None for none. [s]
    climatology : array_like, (L, ny, nx), optional
        State the chemistry relaxes to (broadcast to that shape); required with
        ``relaxation_time``. [same unit as the tracer]

    Returns
    -------
    GridModel
    """
    if not (np.isfinite(dt) and dt > 0):
        raise AssimilationInputError(f"dt={dt!r}: expected a time step > 0 [s]")
    u, v, wtimes = face_winds(winds, lat, lon, n_levels)
    secs = None
    if wtimes is not None:
        if t_ref is None:
            t_ref = wtimes[0]
        secs = (wtimes - np.datetime64(t_ref, "ns")) / np.timedelta64(1, "s")
    tau = np.inf if not relaxation_time else float(relaxation_time)
    if not tau > 0:
        raise AssimilationInputError(f"relaxation_time={relaxation_time!r}: expected > 0 [s] "
                                     "(0 or None: no chemistry)")
    clim = None
    if np.isfinite(tau):
        if climatology is None:
            raise AssimilationInputError("relaxation_time is set but no climatology is given")
        clim = np.broadcast_to(np.asarray(climatology, dtype=float),
                               (n_levels, lat.size, lon.size))
    return GridModel(M.cell_area_latlon(edges, lon.size), edges, u, v, float(dt), slopes, secs,
                  tau, clim)
