"""Text and names from a file made safe for the terminal, the catalog and the Zarr layout.

A file name or an attribute can hold ANSI escape sequences (which rewrite a terminal), newlines
(which forge lines of output) or megabytes of text (which the catalog would copy into every
search); a netCDF variable name can hold ``\\`` (which Zarr reads as a path separator, so the
variable became a sub-group and was lost). Nothing here changes a data value; every change to
a name or an attribute is recorded in the dataset's attributes.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from hubkit.errors import VariableNameError
from hubkit.schemas import zarr_name_problem

__all__ = ["ATTR_MAX_CHARS", "clean_attrs", "printable", "zarr_safe_names"]

#: Longest string attribute kept whole [characters]; longer ones are cut, and the cut recorded
#: in ``attrs['hubkit_truncated_attrs']``. The longest attribute of the real provider files we
#: test with is 6,961 characters (a TCCON description).
ATTR_MAX_CHARS = 16384

_ALLOWED_IN_TEXT = "\n\t"


def printable(text, *, keep_newlines: bool = False) -> str:
    """``text`` with control and format characters written as escapes (``\\x1b``, ``\\n``).

    ANSI escape sequences then show as text instead of acting on the terminal, and a newline
    cannot start a forged line. ``keep_newlines`` keeps newlines and tabs (multi-line
    attributes such as ``history``).
    """
    text = str(text)
    if text.isprintable():
        return text
    return "".join(
        ch if ch.isprintable() or (keep_newlines and ch in _ALLOWED_IN_TEXT)
        else ch.encode("unicode_escape").decode("ascii")
        for ch in text
    )


def _clean_value(value, key: str, notes: dict) -> object:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        clean = printable(value, keep_newlines=key != "source")
        if clean != value:
            notes.setdefault("hubkit_escaped_attrs", []).append(key)
        if len(clean) > ATTR_MAX_CHARS:
            notes.setdefault("hubkit_truncated_attrs", []).append(
                f"{key}: {len(clean)} characters cut to {ATTR_MAX_CHARS}")
            clean = clean[:ATTR_MAX_CHARS] + " [truncated by hubkit]"
        return clean
    if isinstance(value, np.ndarray) and value.size > ATTR_MAX_CHARS:
        notes.setdefault("hubkit_truncated_attrs", []).append(
            f"{key}: {value.size} elements cut to {ATTR_MAX_CHARS}")
        return value.ravel()[:ATTR_MAX_CHARS]
    return value


def _clean(attrs: dict, prefix: str, notes: dict) -> dict:
    out = {}
    for key, value in attrs.items():
        safe_key = printable(key)
        if safe_key != key:
            notes.setdefault("hubkit_escaped_attrs", []).append(f"{prefix}{safe_key} (name)")
        out[safe_key] = _clean_value(value, f"{prefix}{safe_key}", notes)
    return out


def clean_attrs(ds: xr.Dataset) -> xr.Dataset:
    """Escape control characters in (and cap the length of) every attribute of ``ds``.

    Returns ``ds`` itself when nothing needed a change; else a shallow copy whose attributes
    ``hubkit_escaped_attrs`` and ``hubkit_truncated_attrs`` list what was changed.
    """
    notes: dict = {}
    attrs = _clean(ds.attrs, "", notes)
    var_attrs = {name: _clean(var.attrs, f"{name}.", notes) for name, var in ds.variables.items()}
    if not notes:
        return ds
    out = ds.copy(deep=False)
    out.attrs = attrs
    for name, new in var_attrs.items():
        out[name].attrs = new
    for key, items in notes.items():
        out.attrs[key] = "; ".join(items)
    return out


def _encode(name: str) -> str:
    name = name.replace("%", "%25").replace("/", "%2F").replace("\\", "%5C")
    if name.startswith("__"):
        name = "%5F" + name[1:]
    if name == "" or set(name) == {"."}:
        name = name.replace(".", "%2E") or "%00"
    return name


def zarr_safe_names(ds: xr.Dataset, source) -> xr.Dataset:
    """Rename variables the Zarr layout cannot hold, reversibly: ``dir\\name`` -> ``dir%5Cname``.

    Characters are percent-encoded (``%`` itself as ``%25``), and the variable keeps its name in
    ``attrs['hubkit_original_name']``; ``attrs['hubkit_renamed']`` of the dataset lists the
    renames. A rename that would clash with another variable is refused.
    """
    renames = {name: _encode(str(name)) for name in ds.variables if zarr_name_problem(name)}
    if not renames:
        return ds
    for old, new in renames.items():
        if new in ds.variables:
            raise VariableNameError(
                f"{source}: variable {printable(old)!r} {zarr_name_problem(old)}, and its encoded "
                f"name {new!r} is taken by another variable; expected names without '/' or '\\'")
    out = ds.rename_vars(renames)
    for old, new in renames.items():
        out[new].attrs = {**out[new].attrs, "hubkit_original_name": str(old)}
    out.attrs["hubkit_renamed"] = "; ".join(
        f"{printable(old)!r} -> {new!r}" for old, new in renames.items())
    return out
