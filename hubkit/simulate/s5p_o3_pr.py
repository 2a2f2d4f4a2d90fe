"""Simulated ozone profile retrievals written in the layout of the Sentinel-5P TROPOMI
``L2__O3__PR`` product, to test the reader of real files without having one.

The layout follows the S5P ozone profile Product User Manual [1]_ as HARP ingests it [2]_
(processor 02.01.00 and later): netCDF-4 groups ``/PRODUCT`` (``ozone_profile``,
``ozone_profile_precision`` [mol m-3], ``pressure`` [Pa], ``altitude`` [m], ``qa_value``,
``latitude``, ``longitude``, ``time`` [s since 2010-01-01], ``delta_time`` [ms since the time
reference], ``ozone_total_column`` [mol m-2]), ``/PRODUCT/SUPPORT_DATA/DETAILED_RESULTS``
(``averaging_kernel`` on (level, level), ``ozone_profile_error_covariance_matrix``
[mol2 m-6]), ``/PRODUCT/SUPPORT_DATA/INPUT_DATA`` (``ozone_profile_apriori``,
``ozone_profile_apriori_precision`` with its ``correlation_length`` [m], ``temperature`` [K],
``surface_pressure`` [Pa]) and ``/PRODUCT/SUPPORT_DATA/GEOLOCATIONS``; every array on
``(time, scanline, ground_pixel[, level[, level]])`` with ``time`` of length 1, in float32 like
the real files.

The product is in number density: a volume mixing ratio ``x`` becomes ``n = x p / (R T)``
[mol m-3] with the level's pressure and temperature (a standard-atmosphere lapse rate here), an
averaging kernel ``A[l, k]`` becomes ``A[l, k] n_air[l] / n_air[k]`` and a covariance
``S[l, k]`` becomes ``S[l, k] n_air[l] n_air[k]``. All pixels of a scanline share its time. The
noise covariance gets 1e-4 of its mean variance added on the diagonal, so that it stays
positive definite in float32 (the function returns what the file holds).

References
----------
.. [1] KNMI, "Sentinel-5 precursor/TROPOMI Level 2 Product User Manual Ozone profile",
   S5P-KNMI-L2-0135-MA (issue 2.x, processor 02.04.00); Keppens, A. et al., Atmos. Meas. Tech.
   17, 3969-3993, 2024. doi:10.5194/amt-17-3969-2024
.. [2] S[&]T, HARP ingestion definition S5P_L2_O3_PR (stcorp.github.io/harp).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import xarray as xr

from hubkit.constants import GRAVITY, MOLAR_GAS_CONSTANT, MOLAR_MASS_AIR

__all__ = ["standard_temperature", "write_s5p_o3_pr"]

#: netCDF default fill value of float32, which S5P products use.
_FILL = np.float32(9.96921e36)
#: Reference of the ``time`` variable of S5P products.
S5P_EPOCH = np.datetime64("2010-01-01T00:00:00", "ns")


def standard_temperature(pressure):
    """Temperature of the US Standard Atmosphere 1976 up to 20 km, isothermal above. [K]

    Parameters
    ----------
    pressure : array_like
        [Pa]
    """
    p = np.asarray(pressure, dtype=np.float64)
    t0, lapse, p0 = 288.15, 6.5e-3, 101325.0
    exponent = lapse * MOLAR_GAS_CONSTANT / (GRAVITY * MOLAR_MASS_AIR)
    return np.maximum(t0 * (p / p0) ** exponent, 216.65)


def _altitude(pressure, temperature):
    """Hypsometric altitude of the levels above the first one. [m]"""
    scale = MOLAR_GAS_CONSTANT / (MOLAR_MASS_AIR * GRAVITY)
    t_mid = 0.5 * (temperature[..., 1:] + temperature[..., :-1])
    dz = scale * t_mid * np.log(pressure[..., :-1] / pressure[..., 1:])
    return np.concatenate([np.zeros(pressure.shape[:-1] + (1,)), np.cumsum(dz, -1)], -1)


def write_s5p_o3_pr(l2: xr.Dataset, path, *, ground_pixels: int = 8, orbit: int = 34567,
                    correlation_length: float = 6000.0) -> xr.Dataset:
    """Write canonical ``l2-ozone`` retrievals as a TROPOMI ``L2__O3__PR`` file.

    Parameters
    ----------
    l2 : xarray.Dataset
        ``l2-ozone`` retrievals on one number of levels (e.g. :func:`hubkit.simulate.l2_ozone`
        of one instrument), ordered by time.
    path : str or os.PathLike
        The file to write (netCDF-4).
    ground_pixels : int
        Pixels across track; the last scanline is filled with empty pixels (``qa_value`` 0).
    orbit : int
        Absolute orbit number (global attribute).
    correlation_length : float
        Of the a priori covariance, in altitude. [m]

    Returns
    -------
    xarray.Dataset
        The retrievals as the file holds them (times of the scanlines, values rounded to
        float32), in file order: what the reader must give back.
    """
    import netCDF4

    path = Path(path)
    n, m = l2.sizes["retrieval"], l2.sizes["level"]
    l2 = l2.isel(retrieval=np.argsort(l2["time"].values, kind="stable")).load()
    scanlines = math.ceil(n / ground_pixels)
    size = scanlines * ground_pixels
    p = l2["pressure"].values.astype(np.float64)
    temp = standard_temperature(p)
    n_air = p / (MOLAR_GAS_CONSTANT * temp)  # [mol m-3]
    n_o3 = l2["o3_vmr"].values * n_air
    prior = l2["o3_vmr_apriori"].values * n_air
    kernel = l2["averaging_kernel"].values * n_air[:, :, None] / n_air[:, None, :]
    noise = l2["noise_covariance"].values
    # a retrieval with fewer channels than levels has a singular noise covariance, which float32
    # rounding would make indefinite; real optimal-estimation error covariances are full rank:
    # add 1e-4 of the mean variance on the diagonal (returned with the other values)
    noise = noise + np.eye(m) * (1e-4 * np.trace(noise, axis1=1, axis2=2) / m)[:, None, None]
    cov = noise * n_air[:, :, None] * n_air[:, None, :]
    prior_sd = np.sqrt(np.diagonal(l2["apriori_covariance"].values, axis1=1, axis2=2)) * n_air \
        if "apriori_covariance" in l2 else 0.3 * prior
    altitude = _altitude(p, temp)
    # one time per scanline: the first pixel's, to the millisecond
    times = l2["time"].values.astype("datetime64[ms]")
    line_time = times[::ground_pixels]
    reference = line_time[0].astype("datetime64[D]")
    delta_ms = (line_time - reference).astype(np.int64)

    def grid(values, fill=np.nan):
        out = np.full((size,) + values.shape[1:], fill, dtype=np.float32)
        out[:n] = values
        return out.reshape((1, scanlines, ground_pixels) + values.shape[1:])

    dims2 = ("time", "scanline", "ground_pixel")
    dims3, dims4 = dims2 + ("level",), dims2 + ("level", "level")
    with netCDF4.Dataset(path, "w", format="NETCDF4") as nc:
        nc.setncatts({
            "Conventions": "CF-1.7", "institution": "KNMI",
            "title": "TROPOMI/S5P Ozone Profile (simulated by hubkit)",
            "product_name": "L2__O3__PR", "sensor": "TROPOMI", "platform": "S5P",
            "processor_version": "02.04.00", "orbit": np.int32(orbit),
            "time_reference": f"{reference}T00:00:00Z",
            "time_coverage_start": f"{times[0]}Z", "time_coverage_end": f"{times[-1]}Z",
            "hubkit_simulated": "true",
        })
        prod = nc.createGroup("PRODUCT")
        support = prod.createGroup("SUPPORT_DATA")
        detailed = support.createGroup("DETAILED_RESULTS")
        inputs = support.createGroup("INPUT_DATA")
        geo = support.createGroup("GEOLOCATIONS")
        for name, length in (("time", 1), ("scanline", scanlines),
                             ("ground_pixel", ground_pixels), ("level", m), ("corner", 4),
                             ("dimension_surface_albedo", 2), ("dimension_cloud_albedo", 2)):
            prod.createDimension(name, length)
        for name, values in (("scanline", np.arange(scanlines)),
                             ("ground_pixel", np.arange(ground_pixels)),
                             ("level", np.arange(m)), ("corner", np.arange(4)),
                             ("dimension_surface_albedo", [3.28e-7, 3.4e-7]),
                             ("dimension_cloud_albedo", [3.28e-7, 3.4e-7])):
            prod.createVariable(name, "f8" if "albedo" in name else "i4", (name,))[:] = values
        t = prod.createVariable("time", "i4", ("time",))
        t.units, t.standard_name = "seconds since 2010-01-01 00:00:00", "time"
        t[:] = [int((reference.astype("datetime64[s]") - S5P_EPOCH.astype("datetime64[s]"))
                    .astype(np.int64))]
        dt = prod.createVariable("delta_time", "i4", ("time", "scanline"))
        dt.units = f"milliseconds since {reference} 00:00:00"
        dt[:] = delta_ms[None, :]

        def var(group, name, values, dims, units, **attrs):
            v = group.createVariable(name, "f4", dims, fill_value=_FILL, zlib=True)
            if units is not None:
                v.units = units
            v.setncatts(attrs)
            v[:] = np.ma.masked_invalid(values)
            return v

        var(prod, "latitude", grid(l2["latitude"].values), dims2, "degrees_north",
            standard_name="latitude")
        var(prod, "longitude", grid(l2["longitude"].values), dims2, "degrees_east",
            standard_name="longitude")
        var(prod, "ozone_profile", grid(n_o3), dims3, "mol m-3",
            long_name="ozone number density profile",
            standard_name="mole_concentration_of_ozone_in_air", ancillary_variables="qa_value")
        var(prod, "ozone_profile_precision",
            grid(np.sqrt(np.diagonal(cov, axis1=1, axis2=2))), dims3, "mol m-3")
        var(prod, "pressure", grid(p), dims3, "Pa", standard_name="air_pressure")
        var(prod, "altitude", grid(altitude), dims3, "m", standard_name="altitude")
        column = np.sum(0.5 * (n_o3[:, 1:] + n_o3[:, :-1]) * np.diff(altitude, axis=1), axis=1)
        var(prod, "ozone_total_column", grid(column), dims2, "mol m-2")
        qa = prod.createVariable("qa_value", "u1", dims2, fill_value=np.uint8(255))
        qa.scale_factor, qa.add_offset, qa.units = np.float32(0.01), np.float32(0.0), "1"
        qa.valid_min, qa.valid_max = np.uint8(0), np.uint8(100)
        qa[:] = grid(np.ones(n), fill=0.0)  # full quality; the padding pixels are empty
        var(detailed, "averaging_kernel", grid(kernel), dims4, "1")
        var(detailed, "ozone_profile_error_covariance_matrix", grid(cov), dims4, "mol2 m-6")
        var(inputs, "ozone_profile_apriori", grid(prior), dims3, "mol m-3")
        var(inputs, "ozone_profile_apriori_precision", grid(prior_sd), dims3, "mol m-3",
            correlation_length=np.float32(correlation_length))
        var(inputs, "temperature", grid(temp), dims3, "K")
        var(inputs, "surface_pressure", grid(p[:, 0]), dims2, "Pa")
        var(geo, "solar_zenith_angle", grid(np.full(n, 40.0)), dims2, "degree")

    f32 = {name: np.asarray(l2[name].values, dtype=np.float32).astype(np.float64)
           for name in ("latitude", "longitude")}
    out = l2.assign_coords(latitude=("retrieval", f32["latitude"], l2["latitude"].attrs),
                           longitude=("retrieval", f32["longitude"], l2["longitude"].attrs),
                           time=("retrieval", np.repeat(line_time, ground_pixels)[:n]
                                 .astype("datetime64[ns]")))
    out["noise_covariance"] = (out["noise_covariance"].dims, noise,
                               out["noise_covariance"].attrs)
    out.attrs["instrument"] = "TROPOMI"
    return out
