"""Sentinel-5P TROPOMI ``L2__O3__PR`` ozone profile files, as canonical ``l2-ozone`` retrievals.

The product (netCDF-4 with groups, layout of the Product User Manual [1]_ as HARP ingests it
[2]_) holds, for each pixel of ``(time, scanline, ground_pixel)``:

- ``/PRODUCT``: ``ozone_profile`` and ``ozone_profile_precision`` [mol m-3] on ``level``,
  ``pressure`` [Pa] and ``altitude`` [m] of the levels (processor 02.01.00 and later; before,
  both were in ``INPUT_DATA``), ``qa_value`` (0-1), ``latitude``, ``longitude``, ``time``
  [s since 2010-01-01] and ``delta_time`` [ms since it, per scanline];
- ``/PRODUCT/SUPPORT_DATA/DETAILED_RESULTS``: ``averaging_kernel`` (level, level) and
  ``ozone_profile_error_covariance_matrix`` [mol2 m-6];
- ``/PRODUCT/SUPPORT_DATA/INPUT_DATA``: ``ozone_profile_apriori`` [mol m-3],
  ``ozone_profile_apriori_precision`` with the attribute ``correlation_length`` [m],
  ``temperature`` [K], ``surface_pressure`` [Pa].

The canonical dataset is in volume mixing ratio, which the fusion takes: with the air number
density of each level :math:`n_{air} = p / (R T)` [mol m-3] (``R`` = N_A k_B),

.. math:: x = n / n_{air}, \\quad A^x_{lk} = A^n_{lk} n_{air,k} / n_{air,l}, \\quad
          S^x_{lk} = S^n_{lk} / (n_{air,l} n_{air,k})

(the averaging kernel and covariances of a state scaled by a diagonal matrix). The a priori
covariance is rebuilt as HARP does, :math:`S_a[l, k] = \\sigma_l \\sigma_k
\\exp(-|z_l - z_k| / L)`. The error covariance matrix of the product is taken as the retrieval
noise covariance (``noise_covariance``), as HARP labels it the profile's covariance.

Pixels are flattened scanline by scanline into ``retrieval``; their ``scanline`` and
``ground_pixel`` are kept, with ``qa_value`` (the PUM recommends > 0.5 for profiles; nothing
is filtered here). Pixels without any retrieval (no finite ozone value, e.g. the fill pixels of
a partial last scanline) are left out and counted in ``attrs['hubkit_empty_pixels']``.

References
----------
.. [1] KNMI, "Sentinel-5 precursor/TROPOMI Level 2 Product User Manual Ozone profile",
   S5P-KNMI-L2-0135-MA; Keppens, A. et al., "5 years of Sentinel-5P TROPOMI operational ozone
   profiling ...", Atmos. Meas. Tech. 17, 3969-3993, 2024. doi:10.5194/amt-17-3969-2024
.. [2] S[&]T, HARP ingestion definition S5P_L2_O3_PR, stcorp.github.io/harp (mapping of the
   product's variables to their paths).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from hubkit import schemas
from hubkit.constants import MOLAR_GAS_CONSTANT
from hubkit.errors import SchemaError
from hubkit.io._common import CONVENTIONS, decode_time, is_netcdf_head, open_netcdf, to_float
from hubkit.units import convert_units

__all__ = ["FORMAT", "PRODUCT_TYPE", "READER_VERSION", "VARIABLE_MAP", "read", "sniff"]

FORMAT = "s5p-o3-pr"
PRODUCT_TYPE = "l2-ozone"
READER_VERSION = "1"

_DETAILED = "PRODUCT/SUPPORT_DATA/DETAILED_RESULTS"
_INPUT = "PRODUCT/SUPPORT_DATA/INPUT_DATA"
#: Product path -> canonical name (the canonical variables are computed from these).
VARIABLE_MAP = {
    "PRODUCT/ozone_profile": "o3_vmr",
    "PRODUCT/latitude": "latitude",
    "PRODUCT/longitude": "longitude",
    "PRODUCT/time": "time",
    "PRODUCT/delta_time": "time",
    "PRODUCT/pressure": "pressure",
    "PRODUCT/altitude": "altitude",
    "PRODUCT/qa_value": "qa_value",
    "PRODUCT/ozone_total_column": "o3_total_column",
    f"{_DETAILED}/averaging_kernel": "averaging_kernel",
    f"{_DETAILED}/ozone_profile_error_covariance_matrix": "noise_covariance",
    f"{_INPUT}/ozone_profile_apriori": "o3_vmr_apriori",
    f"{_INPUT}/ozone_profile_apriori_precision": "apriori_covariance",
    f"{_INPUT}/temperature": "temperature",
    f"{_INPUT}/surface_pressure": "surface_pressure",
}
_NUMBER_DENSITY = ("mol m-3", "mol/m3", "mol m**-3", "mol m^-3", "mol.m-3")
_COVARIANCE = ("mol2 m-6", "mol2/m6", "mol^2 m^-6", "(mol m-3)2", "(mol/m^3)^2", "mol2.m-6")


def sniff(path, head: bytes) -> bool:
    """HDF5 with ``/PRODUCT/ozone_profile`` and ``/PRODUCT/SUPPORT_DATA/DETAILED_RESULTS/
    averaging_kernel``."""
    if not is_netcdf_head(head):
        return False
    try:
        with open_netcdf(path) as nc:
            prod = nc.groups.get("PRODUCT")
            return prod is not None and "ozone_profile" in prod.variables and \
                "averaging_kernel" in prod["SUPPORT_DATA/DETAILED_RESULTS"].variables
    except Exception:
        return False


def _get(nc, where: str, path: Path, *, old: str | None = None):
    """The variable at ``where`` (or at ``old``, its place before processor 02.01.00)."""
    for candidate in (where, old):
        if candidate is None:
            continue
        try:
            return nc[candidate]
        except (IndexError, KeyError):
            continue
    raise SchemaError(f"{path}: variable '/{where}' is missing; expected it in an S5P "
                      "L2__O3__PR file (Product User Manual, processor 02.01.00 or later)")


def _units(var, accepted, path: Path, expected: str) -> None:
    found = str(getattr(var, "units", "")).strip()
    if found not in accepted:
        raise SchemaError(f"{path}: variable '{var.group().path.rstrip('/')}/{var.name}' has "
                          f"units {found!r}, expected {expected!r}")


def _pixels(values: np.ndarray, n_pixel_dims: int = 3) -> np.ndarray:
    """``(time, scanline, ground_pixel, ...)`` -> ``(pixel, ...)``."""
    shape = values.shape
    return values.reshape((int(np.prod(shape[:n_pixel_dims])),) + shape[n_pixel_dims:])


def read(path) -> xr.Dataset:
    """Read an S5P ``L2__O3__PR`` file into a canonical ``l2-ozone`` dataset (vmr)."""
    path = Path(path)
    with open_netcdf(path) as nc:
        nc.set_auto_maskandscale(True)
        ozone = _get(nc, "PRODUCT/ozone_profile", path)
        if ozone.ndim != 4:
            raise SchemaError(f"{path}: variable '/PRODUCT/ozone_profile' has dims "
                              f"{ozone.dimensions}, expected (time, scanline, ground_pixel, "
                              "level)")
        _units(ozone, _NUMBER_DENSITY, path, "mol m-3")
        n_o3 = _pixels(to_float(ozone[:]))
        n_levels = n_o3.shape[1]
        fields = {}
        for key, where, old in (
                ("precision", "PRODUCT/ozone_profile_precision", None),
                ("apriori", f"{_INPUT}/ozone_profile_apriori", None),
                ("apriori_sd", f"{_INPUT}/ozone_profile_apriori_precision", None)):
            var = _get(nc, where, path, old=old)
            _units(var, _NUMBER_DENSITY, path, "mol m-3")
            fields[key] = _pixels(to_float(var[:]))
        correlation = getattr(_get(nc, f"{_INPUT}/ozone_profile_apriori_precision", path),
                              "correlation_length", None)
        if correlation is None:
            raise SchemaError(f"{path}: variable '/{_INPUT}/ozone_profile_apriori_precision' "
                              "has no attribute 'correlation_length'; expected the a priori "
                              "correlation length [m]")
        kernel = _get(nc, f"{_DETAILED}/averaging_kernel", path)
        fields["kernel"] = _pixels(to_float(kernel[:]))
        cov = _get(nc, f"{_DETAILED}/ozone_profile_error_covariance_matrix", path)
        _units(cov, _COVARIANCE, path, "mol2 m-6")
        fields["cov"] = _pixels(to_float(cov[:]))
        for key, where, old, units in (
                ("pressure", "PRODUCT/pressure", f"{_INPUT}/pressure", "Pa"),
                ("altitude", "PRODUCT/altitude", f"{_INPUT}/altitude", "m"),
                ("temperature", f"{_INPUT}/temperature", None, "K"),
                ("surface_pressure", f"{_INPUT}/surface_pressure", None, "Pa"),
                ("latitude", "PRODUCT/latitude", None, "degrees_north"),
                ("longitude", "PRODUCT/longitude", None, "degrees_east")):
            var = _get(nc, where, path, old=old)
            fields[key] = _pixels(convert_units(to_float(var[:]), getattr(var, "units", None),
                                                units, path=path, name=f"/{where}"))
        qa = _pixels(to_float(_get(nc, "PRODUCT/qa_value", path)[:]))
        total = nc["PRODUCT"].variables.get("ozone_total_column")
        total = _pixels(to_float(total[:])) if total is not None else None
        tvar, dvar = _get(nc, "PRODUCT/time", path), _get(nc, "PRODUCT/delta_time", path)
        reference = decode_time(to_float(tvar[:]), getattr(tvar, "units", None), path=path,
                                name="/PRODUCT/time")
        if not str(getattr(dvar, "units", "")).startswith("milliseconds"):
            raise SchemaError(f"{path}: variable '/PRODUCT/delta_time' has units "
                              f"{getattr(dvar, 'units', None)!r}, expected 'milliseconds since "
                              "<the time reference>'")
        delta = to_float(dvar[:])  # (time, scanline)
        shape = ozone.shape[:3]
        provider = {k: nc.getncattr(k) for k in nc.ncattrs()}
    ms = np.broadcast_to(delta[:, :, None], shape)
    line_time = reference[:, None, None] + np.round(np.nan_to_num(ms) * 1e6).astype(
        "timedelta64[ns]")
    time = _pixels(np.where(np.isnan(ms), np.datetime64("NaT"), line_time))
    scanline = _pixels(np.broadcast_to(np.arange(shape[1])[None, :, None], shape))
    pixel = _pixels(np.broadcast_to(np.arange(shape[2])[None, None, :], shape))

    keep = np.isfinite(n_o3).any(axis=1)
    if not keep.any():
        raise SchemaError(f"{path}: variable '/PRODUCT/ozone_profile' holds no value; "
                          "expected at least one retrieved profile")
    n_air = fields["pressure"] / (MOLAR_GAS_CONSTANT * fields["temperature"])  # [mol m-3]
    if not (np.isfinite(n_air[keep]).all() and (n_air[keep] > 0).all()):
        raise SchemaError(f"{path}: variables '/PRODUCT/pressure' and '/{_INPUT}/temperature' "
                          "give a non-positive or missing air density on a retrieved pixel; "
                          "expected p > 0 [Pa] and T > 0 [K] on every level")
    ratio = n_air[:, None, :] / n_air[:, :, None]  # n_air[k] / n_air[l]
    sd, z = fields["apriori_sd"], fields["altitude"]
    sa = sd[:, :, None] * sd[:, None, :] * np.exp(
        -np.abs(z[:, :, None] - z[:, None, :]) / float(correlation))
    outer = n_air[:, :, None] * n_air[:, None, :]
    rl, rll = ("retrieval", "level"), ("retrieval", "level", "level_in")
    one = ("retrieval",)
    data = {
        "o3_vmr": (rl, (n_o3 / n_air)[keep], {"units": "mol mol-1",
                                              "standard_name": "mole_fraction_of_ozone_in_air"}),
        "o3_vmr_apriori": (rl, (fields["apriori"] / n_air)[keep], {"units": "mol mol-1"}),
        "averaging_kernel": (rll, (fields["kernel"] * ratio)[keep], {"units": "1"}),
        "noise_covariance": (rll, (fields["cov"] / outer)[keep], {"units": "mol2 mol-2"}),
        "apriori_covariance": (rll, (sa / outer)[keep], {
            "units": "mol2 mol-2", "comment": "sd_l sd_k exp(-|z_l - z_k| / correlation_length)"
                                              f", correlation_length {float(correlation)} m"}),
        "pressure": (rl, fields["pressure"][keep], {"units": "Pa",
                                                    "standard_name": "air_pressure"}),
        "altitude": (rl, fields["altitude"][keep], {"units": "m"}),
        "temperature": (rl, fields["temperature"][keep], {"units": "K"}),
        "surface_pressure": (one, fields["surface_pressure"][keep], {"units": "Pa"}),
        "qa_value": (one, qa[keep], {"units": "1", "long_name": "quality (0 none, 1 full); "
                                                                "PUM: use > 0.5"}),
        "scanline": (one, scanline[keep].astype(np.int32)),
        "ground_pixel": (one, pixel[keep].astype(np.int32)),
        "instrument": (one, np.full(int(keep.sum()), "TROPOMI", dtype=object)),
    }
    if total is not None:
        data["o3_total_column"] = (one, total[keep], {"units": "mol m-2"})
    ds = xr.Dataset(data, coords={
        "latitude": (one, fields["latitude"][keep], {"units": "degrees_north",
                                                     "standard_name": "latitude"}),
        "longitude": (one, fields["longitude"][keep], {"units": "degrees_east",
                                                       "standard_name": "longitude"}),
        "time": (one, time[keep], {"standard_name": "time"}),
    })
    if ds.sizes["level"] != n_levels:  # pragma: no cover - shapes come from one array
        raise SchemaError(f"{path}: inconsistent level count")
    attrs = {k: v for k, v in provider.items() if k != "source"}
    attrs.update({
        "Conventions": CONVENTIONS,
        "hubkit_product_type": PRODUCT_TYPE,
        "hubkit_format": FORMAT,
        "hubkit_species": "o3",
        "source": path.name,
        "instrument": "TROPOMI",
        "platform": str(provider.get("platform", "S5P")),
        "hubkit_empty_pixels": int((~keep).sum()),
        "hubkit_conversion": "number density [mol m-3] to volume mixing ratio with "
                             "n_air = p / (R T) of each level (R = N_A k_B)",
        "references": "S5P-KNMI-L2-0135-MA (TROPOMI ozone profile PUM); Keppens et al., AMT "
                      "17, 3969, 2024, doi:10.5194/amt-17-3969-2024",
    })
    ds.attrs = attrs
    schemas.validate(ds, source=str(path), product_type=PRODUCT_TYPE)
    return ds
