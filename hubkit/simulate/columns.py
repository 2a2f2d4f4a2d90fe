"""Column soundings of a GOSAT-like instrument around a ground station, retrieved from the
station's own best profile: inputs for validation demos with a known answer.

Each sounding sees the profile of the station record nearest its time (the station's a priori
scaled by its retrieved column, TCCON's profile-scaling retrieval), plus a bias, on 20 levels,
through a linear optimal-estimation retrieval (Rodgers 2000): channel weighting functions peaked
at random heights, a 2 % prior uncertainty correlated over 0.3 of the column, channel noise that
keeps the column averaging kernel well below 1 in the upper levels, and measurement noise. So
the smoothing-corrected difference with the station is the bias plus noise, and the plain one
adds the smoothing error.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from hubkit import schemas

__all__ = ["xgas_soundings_near"]


def xgas_soundings_near(station: xr.Dataset, *, species: str = "ch4", n: int = 200,
                        radius: float = 2.0, minutes: float = 30.0, bias: float = 0.0,
                        noise: float = 1.0, levels: int = 20, seed: int = 0) -> xr.Dataset:
    """``xgas-soundings`` around a TCCON-like station product.

    Parameters
    ----------
    station : xarray.Dataset
        A ``tccon-columns`` product: ``x<species>``, ``<species>_apriori``, ``prior_pressure``
        [Pa], ``integration_operator``, ``latitude``, ``longitude``, ``time``.
    species : str
        The gas, lower case (``"ch4"``, ``"co2"`` ...), as in the station's variable names.
    n : int
        Soundings.
    radius : float
        Soundings fall within ± ``radius`` degrees of latitude and longitude of the station. [°]
    minutes : float
        ... and within ± ``minutes`` of one of its records.
    bias : float
        Added to every retrieved column (a known satellite bias). [unit of ``x<species>``]
    noise : float
        Standard deviation of the retrieved column's noise. [unit of ``x<species>``]
    levels : int
        Retrieval levels, surface (980 hPa) to 5 hPa.
    seed : int
        Of the random generator: the same seed gives the same soundings.

    Returns
    -------
    xarray.Dataset
        Dims ``sounding`` and ``level``: ``x<species>``, its uncertainty and averaging kernel,
        ``<species>_apriori``, ``pressure`` [Pa], ``pressure_weight``; attributes mark it
        simulated.
    """
    rng = np.random.default_rng(seed)
    name = f"x{species}"
    units = station[name].attrs.get("units", "")
    t_station = station["time"].values
    pick = rng.integers(0, t_station.size, n)
    times = t_station[pick] + rng.uniform(-minutes, minutes, n).astype("timedelta64[m]")
    lat0 = float(np.asarray(station["latitude"]).ravel()[0])
    lon0 = float(np.asarray(station["longitude"]).ravel()[0])
    pressure = np.geomspace(98000.0, 500.0, levels)[None, :] * rng.uniform(0.97, 1.01, (n, 1))
    edges = np.concatenate([pressure[:, :1] * 1.02, np.sqrt(pressure[:, 1:] * pressure[:, :-1]),
                            np.zeros((n, 1))], axis=1)
    weights = -np.diff(edges, axis=1)
    weights /= weights.sum(axis=1, keepdims=True)
    z = np.linspace(0.0, 1.0, levels)
    corr = np.exp(-np.abs(z[:, None] - z[None, :]) / 0.3)
    value, kernel, prior = np.empty(n), np.empty((n, levels)), np.empty((n, levels))
    xa_station = station[f"{species}_apriori"].values
    op = station["integration_operator"].values
    p_station = station["prior_pressure"].values
    for k in range(n):
        r = int(np.abs(t_station - times[k]).argmin())
        gamma = station[name].values[r] / np.sum(op[r] * xa_station[r])
        order = np.argsort(p_station[r])
        truth = np.interp(np.log(pressure[k]), np.log(p_station[r][order]),
                          (gamma * xa_station[r])[order])
        xa = np.full(levels, float(np.mean(truth))) * (1.0 - 0.05 * z)  # a smooth climatology
        sa = (0.02 * xa[:, None]) * corr * (0.02 * xa[None, :])
        channels = 12
        centres = rng.uniform(0.0, 0.8, channels)
        jac = np.exp(-((z[None, :] - centres[:, None]) / 0.25) ** 2)
        se = np.diag(rng.uniform(2.0, 8.0, channels) ** 2)
        gain = sa @ jac.T @ np.linalg.inv(jac @ sa @ jac.T + se)
        A = gain @ jac
        x_hat = xa + A @ (truth - xa)
        h = weights[k]
        value[k] = h @ x_hat + bias + rng.normal(0.0, noise)
        kernel[k] = (h @ A) / h
        prior[k] = xa
    dims = ("sounding", "level")
    return xr.Dataset(
        {
            name: ("sounding", value, {"units": units}),
            f"{name}_uncertainty": ("sounding", np.full(n, float(noise)), {"units": units}),
            f"{name}_averaging_kernel": (dims, kernel, {"units": "1"}),
            f"{species}_apriori": (dims, prior, {"units": units}),
            "pressure": (dims, pressure, {"units": "Pa"}),
            "pressure_weight": (dims, weights, {"units": "1"}),
        },
        coords={
            "time": ("sounding", times.astype("datetime64[ns]")),
            "latitude": ("sounding", lat0 + rng.uniform(-radius, radius, n),
                         {"units": "degrees_north"}),
            "longitude": ("sounding", lon0 + rng.uniform(-radius, radius, n),
                          {"units": "degrees_east"}),
        },
        attrs={"hubkit_product_type": schemas.XGAS_SOUNDINGS.product_type,
               "hubkit_species": species,
               "title": f"simulated GOSAT-like X{species.upper()} soundings near a station",
               "source": "hubkit.simulate.xgas_soundings_near",
               "hubkit_simulated": "true",
               "hubkit_simulated_inputs": f"the station's scaled a priori profile, bias {bias:g}, "
                                          f"noise {noise:g} {units}, seed {seed}"},
    )
