"""Units read with pint, in the CF / UDUNITS-2 grammar the providers write: one helper for the
readers (:mod:`hubkit.io`) and for the science functions that take users' arrays (TROC, UV).

Providers spell the same unit many ways: NOAA ObsPack writes ``nanomol mol-1`` or
``mol mol-1``, the ICOS Carbon Portal ``µmol mol-1``, ICOS ATC text files ``nmol.mol-¹``, AGAGE
the bare scale factor ``1e-12``. CF (conventions section 3.1) takes units strings from UDUNITS-2,
whose grammar writes a product with a space or a period and a power as a trailing integer
(``kg m-2``, ``m.s-1``); a unit may be a plain number (``1e-9``). :func:`parse_units` turns such a
string into a :mod:`pint` quantity (number times unit) in one registry of this module, where the
mole-fraction words of the community are defined as what they mean:

- ``ppm``, ``ppmv`` = 1e-6, ``ppb``, ``ppbv`` = 1e-9, ``ppt``, ``pptv`` = 1e-12 (mol mol-1; pint's
  default registry reads ``ppt`` as a pico-pint and knows no ``ppb``),
- ``degrees_north`` / ``degrees_east`` (CF's latitude and longitude units) as degrees.

The registry is private to hubkit (pint's application registry is left alone), so a user's own
pint set-up neither changes nor is changed by the readers.

References
----------
.. [1] CF Conventions 1.10, section 3.1 "Units". https://cfconventions.org
.. [2] UDUNITS-2 unit grammar. https://docs.unidata.ucar.edu/udunits/current/
"""

from __future__ import annotations

import functools
import logging
import math
import os
import re
import shutil
import sys
import tempfile
import threading
import time

import numpy as np

from hubkit.constants import DOBSON_UNIT
from hubkit.errors import SchemaError
from hubkit.schemas import canonical_units

__all__ = ["CANONICAL_UNITS", "conversion_attrs", "conversion_factor", "convert_units",
           "convertible_units", "factor_to", "mislabelled_units", "normalise_units", "parse_units",
           "remove_stale_builds", "same_quantity"]

#: Definitions added to pint's defaults (pint's definition syntax).
_DEFINITIONS = (
    "ppb = 1e-9 = ppbv",
    "ppt = 1e-12 = pptv",
    "ppmv = 1e-6",
    "degrees_north = degree = degree_north = degrees_N = degree_N",
    "degrees_east = degree = degree_east = degrees_E = degree_E",
    f"DU = {DOBSON_UNIT!r} molecule / m ** 2 = dobson_unit = Dobson = dobson",
)

_SUPERSCRIPTS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻⁺", "0123456789-+")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
#: One factor of a UDUNITS product: a name, then an optional integer power.
_FACTOR = re.compile(r"([A-Za-z_%µμ][A-Za-z_µμ]*)(?:\^|\*\*)?([+-]?\d+)?")

log = logging.getLogger(__name__)


#: pint registries and parsers are not thread-safe, and parallel uploads read files in threads:
#: building the registry and every parse hold this lock (two registries made at once gave
#: quantities that cannot be compared, a conversion that failed one upload in a few).
_LOCK = threading.RLock()


@functools.lru_cache(maxsize=1)
def _registry():
    """hubkit's registry: pint's defaults and :data:`_DEFINITIONS`.

    Parsing pint's definition files costs ~0.15 s of CPU in every process; pint can keep the
    parsed result in a disk cache (``cache_folder``), which brings that to ~0.02 s. The cache is
    hubkit's own folder (:func:`_cache_folder`), written whole or not at all, so processes that
    start at once never read a half-written one; when it cannot be written or read the
    registry is built without it, as before.
    """
    import pint

    with _LOCK:
        folder, publish_as = _cache_folder(pint)
        reg = None
        if folder is not None:
            try:
                reg = _new_registry(pint, folder)
            except Exception as exc:  # a damaged or unreadable cache is only a slower start
                log.debug("pint cache %s not used: %s", folder, exc)
            if publish_as is not None:
                _publish(folder, publish_as, reg is not None)
        if reg is None:
            reg = _new_registry(pint, None)
        # one parse of the six lines, each then added in order as define(line) adds it (the
        # definitions differ only in the line numbers pint keeps for messages): 1.7 -> 0.5 ms
        # of CPU of the registry's ~18.5 ms build from the cache (process_time, fresh process)
        reg.load_definitions(list(_DEFINITIONS))
        return reg


def _new_registry(pint, cache_folder):
    return pint.UnitRegistry(autoconvert_offset_to_baseunit=False, on_redefinition="ignore",
                             cache_folder=cache_folder)


def _cache_folder(pint) -> tuple[str | None, str | None]:
    """``(folder, publish_as)``: the folder pint's cache is read from (or written to), and
    the final path to publish it under when it is being built (None when it is already
    there).

    The cache lives in ``$XDG_CACHE_HOME/hubkit/`` (``~/.cache/hubkit/``), one folder per pint
    and Python version. A complete folder is only read. A missing one is built in a private
    temporary folder that :func:`_publish` renames into place: a rename is atomic, and the
    first of several processes wins. Any OSError (no home, read-only, a file in the way)
    means no cache: ``(None, None)``.
    """
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    if not os.path.isabs(base):  # XDG ignores a relative one; "~" is a home that is unknown
        return None, None
    final = os.path.join(base, "hubkit", f"pint-{pint.__version__}-py{sys.version_info[0]}"
                                         f".{sys.version_info[1]}")
    remove_stale_builds(os.path.dirname(final))
    if os.path.isdir(final):
        return final, None
    try:
        os.makedirs(os.path.dirname(final), exist_ok=True)
        return tempfile.mkdtemp(prefix=".building-", dir=os.path.dirname(final)), final
    except OSError as exc:
        log.debug("no pint cache under %s: %s", base, exc)
        return None, None


#: A ``.building-*`` folder of the pint cache untouched (the folder and what it holds) for
#: this long is left over from a build that was interrupted: a build takes well under a
#: second. [s]
STALE_BUILD_SECONDS = 600.0


def remove_stale_builds(folder: str) -> list[str]:
    """Remove the ``.building-*`` folders in ``folder`` that no process is building any more.

    A build interrupted (killed, out of space) leaves its private folder behind. One is
    stale when neither it nor anything in it changed for :data:`STALE_BUILD_SECONDS`; a
    fresher one may be another process's build under way and is kept, as is every other
    name. A process whose old folder is removed under it only loses its cache: pint's build
    fails or is published whole, and the registry is built either way (:func:`_registry`).
    Never raises; returns the paths removed.
    """
    removed = []
    try:
        with os.scandir(folder) as listing:
            entries = [e for e in listing if e.name.startswith(".building-")
                       and e.is_dir(follow_symlinks=False)]
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        try:
            with os.scandir(entry.path) as inside:
                touched = max([entry.stat(follow_symlinks=False).st_mtime,
                               *(e.stat(follow_symlinks=False).st_mtime for e in inside)])
        except OSError:  # removed meanwhile, or unreadable: not ours to judge
            continue
        if now - touched > STALE_BUILD_SECONDS:
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(entry.path)
            log.debug("removed the stale pint cache build %s", entry.path)
    return removed


def _publish(building: str, final: str, ok: bool) -> None:
    """Rename the cache built in ``building`` to ``final``; drop it when it failed, or when
    another process published first (the rename then fails: ``final`` is not empty)."""
    if ok:
        try:
            os.rename(building, final)
            return
        except OSError:
            pass
    shutil.rmtree(building, ignore_errors=True)


def _pint_expression(text: str) -> str:
    """A UDUNITS product (``nanomol mol-1``, ``nmol.mol-¹``, ``kg m^-2``, ``mol/mol``) as a pint
    expression (``nanomol * mol ** -1``)."""
    text = text.translate(_SUPERSCRIPTS).replace("**", "^")
    parts = []
    for chunk in re.split(r"\s*/\s*", text):
        factors = []
        for token in re.split(r"\s+|(?<=[A-Za-z0-9_µμ])\.(?=[A-Za-zµμ_])", chunk.strip()):
            if not token:
                continue
            if _NUMBER.fullmatch(token):
                factors.append(token)
                continue
            match = _FACTOR.fullmatch(token)
            if match is None:
                raise ValueError(f"{token!r} is not a UDUNITS factor")
            name, power = match.groups()
            factors.append(name if power is None else f"{name} ** {int(power)}")
        parts.append(" * ".join(factors) or "1")
    return " / ".join(f"({p})" for p in parts)


def parse_units(units: str):
    """``units`` (CF / UDUNITS-2 spelling) as a :class:`pint.Quantity` of magnitude one unit.

    A unit that is a number (``1e-12``) or has one (``1e-9 mol mol-1``) keeps it as the
    magnitude. Raises :class:`ValueError` when the string is not a unit pint knows.
    """
    with _LOCK:
        return _parse(str(units).strip())


@functools.lru_cache(maxsize=512)
def _parse(text: str):
    import pint

    if not text:
        raise ValueError("empty units string")
    try:
        return _registry().Quantity(_pint_expression(text))
    except (pint.errors.PintError, ValueError, AttributeError, TypeError, SyntaxError) as exc:
        raise ValueError(f"{text!r} is not a unit in the CF/UDUNITS grammar ({exc})") from None


def same_quantity(a: str, b: str) -> bool:
    """Whether units ``a`` and ``b`` measure the same quantity (same dimensionality)."""
    try:
        return parse_units(a).dimensionality == parse_units(b).dimensionality
    except ValueError:
        return False


def conversion_factor(found: str, expected: str) -> float:
    """The number values in ``found`` are multiplied by to be in ``expected``.

    A ratio within 1e-14 of its 12-significant-digit form is that form, so a ratio of powers
    of ten is exactly the power of ten (``nanomol mol-1`` to ``ppb`` is 1, ``mol mol-1`` to
    ``ppb`` is 1e9 exactly, where pint's floating-point chain may give 999999999.9999999).
    Raises :class:`ValueError` when either is not a unit or they measure different quantities.
    """
    if type(found) is str and type(expected) is str:
        return _factor(found, expected)
    return _uncached_factor(found, expected)


@functools.lru_cache(maxsize=1024)
def _factor(found: str, expected: str) -> float:
    """:func:`conversion_factor` of two strings, remembered: the registry never changes after it
    is built, and readers ask for the same few pairs in every file (a station read asked ~12
    times, each a chain of pint arithmetic; errors are not remembered, so they repeat). With
    :func:`_normalised`: a second read of the BAO tower file 29.7 -> 23.7 ms of CPU; a fresh
    process's first read ~0.5 ms less (most pairs are new there)."""
    return _uncached_factor(found, expected)


def _uncached_factor(found, expected) -> float:
    with _LOCK:
        src, dst = parse_units(found), parse_units(expected)
        if src.dimensionality != dst.dimensionality:
            raise ValueError(f"{found!r} ({src.dimensionality}) and {expected!r} "
                             f"({dst.dimensionality}) measure different quantities")
        ratio = float((src / dst).to("dimensionless").magnitude)
    if not math.isfinite(ratio) or ratio == 0.0:
        raise ValueError(f"no finite factor between {found!r} and {expected!r}")
    short = float(f"{ratio:.12g}")
    # pint's chain of float products leaves a few ulp on exact ratios: snap to the short form
    # only then (a ratio such as t yr-1 -> kg s-1 has more than 12 significant digits)
    return short if abs(short - ratio) <= 1e-14 * abs(ratio) else ratio


#: Spellings of "no unit" that arrays carry (CF writes ``1``), and of the Dobson unit and the
#: degree outside the UDUNITS grammar; compared in lower case.
_SPELLINGS = {
    **dict.fromkeys(("", "1", "-", "dimensionless", "none", "unitless", "fraction"), "1"),
    **dict.fromkeys(("du", "dobson unit", "dobson units", "dobson_units"), "DU"),
    "°": "degree",
}


def factor_to(found, expected: str, *, what: str, error: type[Exception] = ValueError,
              missing: str | None = None) -> float:
    """The factor that converts values in units ``found`` to ``expected``, for an input array.

    Any unit of the same quantity converts (``hPa`` to ``Pa`` is 100, ``mol m-2`` to ``DU`` is
    1 / 4.4615e-4, ``%`` to ``1`` is 0.01, ``rad`` to ``degree`` is 180 / π), in the spelling of
    :func:`parse_units` or a common one (``-``, ``none``, ``du``, ``Dobson units``, ``°``).
    Temperatures in degrees Celsius or Fahrenheit (an offset, not a factor) are refused.

    Parameters
    ----------
    found : str or None
        The array's ``units`` attribute; None when it has none.
    expected : str
        The units the computation needs.
    what : str
        Names the array in the error (the caller, the file or product, the variable).
    error : type
        The exception raised (a :class:`~hubkit.errors.HubkitError` subclass of the caller).
    missing : str, optional
        Units assumed when ``found`` is None; without it a missing attribute is an error.

    Raises
    ------
    error
        ``found`` is missing (and no ``missing``), not a unit, or of another quantity; the
        message says what was found and what was expected.
    """
    if found is None:
        if missing is None:
            raise error(f"{what} has no 'units' attribute; expected {expected!r} (or any unit "
                        "of the same quantity)")
        found = missing
    text = _SPELLINGS.get(str(found).strip().lower(), str(found).strip())
    try:
        return conversion_factor(text, expected)
    except (ValueError, TypeError) as exc:  # pint's offset-unit errors are TypeErrors
        raise error(f"{what} has units {str(found)!r}; expected {expected!r} (or any unit of "
                    f"the same quantity): {exc}") from None


# --- hubkit's spellings: the units a canonical variable is written in, and readers' conversions

#: The spellings canonical variables use (docs/nomenclature.md). A unit found in a file is
#: reported under the first of these it equals exactly (``nanomol mol-1`` -> ``ppb``).
CANONICAL_UNITS = (
    "mol mol-1", "ppm", "ppb", "ppt", "Pa", "hPa", "kPa", "m", "km", "m s-1", "kg m-2", "%",
    "K", "s", "kg s-1", "g s-1", "t yr-1", "atm",
)
_ANGLES = {"degrees_north": "latitude", "degrees_east": "longitude", "degrees": None}


def _parsed(units):
    try:
        return parse_units(units)
    except ValueError:
        return None


def normalise_units(units) -> str | None:
    """Canonical spelling of ``units``: ``nanomol mol-1`` -> ``ppb``, ``µmol mol-1`` -> ``ppm``,
    ``1e-12`` -> ``ppt``, ``m s^-1`` -> ``m s-1``, ``Percent`` -> ``%`` …; a unit hubkit has no
    canonical spelling for (or that pint does not know) is returned stripped, unchanged."""
    if units is None:
        return None
    return _normalised(str(units))


@functools.lru_cache(maxsize=1024)
def _normalised(units: str) -> str:
    """:func:`normalise_units` of a string, remembered (a station read asked ~16 times, each
    comparing with every canonical unit through pint)."""
    text = canonical_units(units.strip().replace("**", "").replace("^", ""))
    if text.lower() in ("degree", "deg"):
        text = "degrees"
    if text in CANONICAL_UNITS or text.lower() in _ANGLES:
        return text.lower() if text.lower() in _ANGLES else text
    found = _parsed(text)
    if found is None:
        return text
    for name in CANONICAL_UNITS:
        if found.dimensionality == _parsed(name).dimensionality and \
                conversion_factor(text, name) == 1.0:
            return name
    return text


def convertible_units(expected: str) -> list[str]:
    """Canonical spellings :func:`convert_units` turns into ``expected`` (``expected`` first);
    any other unit of the same quantity in the CF/UDUNITS grammar converts too."""
    expected = normalise_units(expected)
    target = _parsed(expected)
    if target is None or expected in _ANGLES:
        return [expected]
    return [expected, *(u for u in CANONICAL_UNITS if u != expected
                        and _parsed(u).dimensionality == target.dimensionality)]


def mislabelled_units(units, ratio: float) -> list[tuple[str, str]]:
    """``(a, b)`` pairs: numbers in unit ``a`` labelled ``b`` are ``ratio`` times off, for the
    canonical units of the quantity of ``units`` that involve ``units`` itself (a units-error
    hint)."""
    units = normalise_units(units)
    if units not in CANONICAL_UNITS:
        return []
    same = convertible_units(units)
    return [(a, b) for a in same for b in same if units in (a, b) and a != b
            and np.isclose(conversion_factor(a, b), ratio, rtol=1e-9)]


def _angle_ok(src: str, dst: str) -> bool | None:
    """Latitude and longitude units convert only to themselves (or from plain degrees)."""
    if src not in _ANGLES and dst not in _ANGLES:
        return None
    return src == dst or (src == "degrees" and dst in ("degrees_north", "degrees_east"))


def convert_units(values, found, expected: str, *, path, name: str) -> np.ndarray:
    """Return ``values`` (float64) converted from units ``found`` to ``expected``.

    The factor comes from pint (:func:`hubkit.units.conversion_factor`; powers of ten stay
    exact). Raises :class:`SchemaError` naming ``path``
    and the variable ``name`` when ``found`` is not a unit or not one of the same quantity.
    Readers record what they converted with :func:`conversion_attrs`.
    """
    values = np.asarray(values, dtype=np.float64)
    src, dst = normalise_units(found), normalise_units(expected)
    if src == dst:
        return values
    angle = _angle_ok(src, dst)
    if angle:
        return values
    if angle is None and src is not None:
        try:
            factor = conversion_factor(src, dst)
        except ValueError:
            pass
        else:
            return values if factor == 1.0 else values * factor
    choices = " or ".join(repr(u) for u in convertible_units(dst))
    why = "" if src is None or _parsed(src) is not None else \
        " (not a unit in the CF/UDUNITS grammar)"
    raise SchemaError(f"{path}: variable {name!r} has units {found!r}{why}, expected {choices}")


def conversion_attrs(found, expected: str) -> dict:
    """Attributes recording a conversion from ``found`` to ``expected`` (empty when the two
    are the same spelling): ``units_converted_from`` and ``units_conversion_factor``."""
    if found is None or str(found).strip() == expected:
        return {}
    src, dst = normalise_units(found), normalise_units(expected)
    factor = 1.0 if src == dst or _angle_ok(src, dst) else conversion_factor(src, dst)
    return {"units_converted_from": str(found), "units_conversion_factor": factor}
