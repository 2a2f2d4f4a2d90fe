"""hubkit.units keeps pint's parsed definitions in a disk cache: the same answers with it, without
it, from a damaged one, and when several processes build it at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Prints what the registry answers: every canonical unit pair's factor, spellings normalised.
_PROBE = r"""
import json
from hubkit import units
pairs = {}
for a in units.CANONICAL_UNITS:
    for b in units.CANONICAL_UNITS:
        try:
            pairs[f"{a}|{b}"] = units.conversion_factor(a, b)
        except ValueError:
            pairs[f"{a}|{b}"] = None
spellings = ["nanomol mol-1", "µmol mol-1", "nmol.mol-¹", "1e-12", "m s^-1", "Percent",
             "degrees_north", "mol m-2", "DU", "kg m-2 s-1"]
print(json.dumps({"pairs": pairs, "names": [units.normalise_units(s) for s in spellings],
                  "du": units.conversion_factor("mol m-2", "DU")}))
"""


def _probe(cache_home, cwd=None) -> subprocess.Popen:
    env = {**os.environ, "XDG_CACHE_HOME": str(cache_home),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-c", _PROBE], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=cwd)


def _answer(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def uncached(tmp_path_factory) -> dict:
    """The answers of a registry built without a cache (the cache home is a file)."""
    blocked = tmp_path_factory.mktemp("blocked") / "not-a-folder"
    blocked.write_text("a file where the cache folder would go")
    answer = _answer(_probe(blocked))
    assert blocked.read_text() == "a file where the cache folder would go"
    assert answer["names"][:4] == ["ppb", "ppm", "ppb", "ppt"]
    return answer


def test_processes_starting_at_once_build_one_cache_and_agree(tmp_path, uncached):
    procs = [_probe(tmp_path) for _ in range(3)]
    answers = [_answer(p) for p in procs]
    assert all(a == uncached for a in answers)
    folder = tmp_path / "hubkit"
    built = sorted(p.name for p in folder.iterdir())
    assert len(built) == 1 and built[0].startswith("pint-"), built  # no half-built folder left
    assert list((folder / built[0]).glob("*.pickle"))
    # a later process reads it and answers the same
    assert _answer(_probe(tmp_path)) == uncached


def test_a_damaged_cache_is_not_used(tmp_path, uncached):
    _answer(_probe(tmp_path))
    (cache,) = (tmp_path / "hubkit").iterdir()
    pickles = list(cache.glob("*.pickle"))
    assert pickles
    for p in pickles:
        p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 3])  # truncated
    assert _answer(_probe(tmp_path)) == uncached


def test_a_relative_cache_home_is_not_used(tmp_path, uncached):
    assert _answer(_probe("relative-cache", cwd=tmp_path)) == uncached
    assert list(tmp_path.iterdir()) == []  # nothing made in the working directory


def test_stale_half_built_caches_are_removed_and_fresh_ones_kept(tmp_path, uncached):
    """A build that was interrupted (or lost the race and could not clean up) leaves a
    ``.building-*`` folder; the next process removes those untouched for a day (longer than
    :data:`hubkit.units.STALE_BUILD_SECONDS`), and leaves alone one another process may be
    building now (fresh) and anything that is not a build folder."""
    _answer(_probe(tmp_path))  # the cache is built
    folder = tmp_path / "hubkit"
    old = os.stat(folder).st_mtime - 86400
    stale = folder / ".building-interrupted"
    stale.mkdir()
    (stale / "part.pickle").write_bytes(b"half")
    for p in (stale / "part.pickle", stale):
        os.utime(p, (old, old))
    fresh = folder / ".building-now"
    fresh.mkdir()
    (fresh / "part.pickle").write_bytes(b"being written")
    old_inside = folder / ".building-old-folder-new-file"  # an old folder, a file just written
    old_inside.mkdir()
    (old_inside / "part.pickle").write_bytes(b"being written")
    os.utime(old_inside, (old, old))
    other = folder / "notes.txt"
    other.write_text("not ours to remove")
    os.utime(other, (old, old))
    assert _answer(_probe(tmp_path)) == uncached
    left = sorted(p.name for p in folder.iterdir())
    assert ".building-interrupted" not in left
    assert {".building-now", ".building-old-folder-new-file", "notes.txt"} <= set(left), left
    assert any(name.startswith("pint-") for name in left)


def test_remembered_conversions_are_the_computed_ones():
    """conversion_factor and normalise_units remember answers per string: asked twice, they
    answer (or refuse, with the same message) as the computation does each time."""
    from hubkit import units

    spellings = [*units.CANONICAL_UNITS, "nanomol mol-1", "µmol mol-1", "nmol.mol-¹", "1e-12",
                 "m s^-1", "Percent", "degrees_north", "degrees_east", "mol m-2", "DU",
                 "no such unit", "0 m"]

    def outcome(f, *args):
        try:
            return f(*args)
        except Exception as exc:  # "0 m" gives pint's ZeroDivisionError, before and after
            return f"{type(exc).__name__}: {exc}"

    for a in spellings:
        expected = outcome(units._normalised.__wrapped__, a)
        twice = [outcome(units.normalise_units, a) for _ in range(2)]
        assert twice == [expected, expected], a
        for b in spellings:
            expected = outcome(units._uncached_factor, a, b)
            twice = [outcome(units.conversion_factor, a, b) for _ in range(2)]
            assert twice == [expected, expected], (a, b)


def _unit_strings(shared_data) -> set[str]:
    """Every unit string of the real files (as stored, and as hubkit's readers record them)
    and every one the tests spell (``units=...``, ``"units": ...``, ``units: ...``)."""
    import re

    import netCDF4

    from hubkit import io as hio
    from hubkit import units

    found = set(units.CANONICAL_UNITS)
    for path in sorted((shared_data / "real").iterdir()) + sorted(
            (shared_data / "oco2peak").iterdir()):
        if path.suffix == ".nc":
            with netCDF4.Dataset(path) as nc:
                groups = [nc]
                while groups:
                    group = groups.pop()
                    groups.extend(group.groups.values())
                    found.update(str(v.units) for v in group.variables.values()
                                 if "units" in v.ncattrs())
        try:
            ds = hio.read(path)
        except Exception:
            continue
        for var in ds.variables.values():
            found.update(str(var.attrs[k]) for k in ("units", "units_converted_from")
                         if k in var.attrs)
    spelled = re.compile(r"""units["']?\s*[=:]\s*["']([^"'\n]{1,40})["']""")
    for test in sorted(ROOT.glob("tests/*.py")):
        found.update(spelled.findall(test.read_text(encoding="utf-8")))
    return found


def test_hubkits_definitions_read_every_unit_as_one_define_each_did(shared_data):
    """The registry adds hubkit's definitions with one parse (load_definitions): every unit
    string of the real files and the tests reads as in a registry that defined them line by
    line, and converts to every canonical unit with the same factor."""
    import pint

    from hubkit import units

    new = units._registry()
    old = pint.UnitRegistry(autoconvert_offset_to_baseunit=False, on_redefinition="ignore")
    for line in units._DEFINITIONS:
        old.define(line)

    def read(reg, text):
        try:
            q = reg.Quantity(units._pint_expression(text))
            factors = []
            for name in units.CANONICAL_UNITS:
                try:
                    ratio = (q / reg.Quantity(units._pint_expression(name))).to("dimensionless")
                    factors.append(float(ratio.magnitude))
                except pint.errors.PintError:
                    factors.append(None)
            return q.magnitude, str(q.units), str(q.dimensionality), factors
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"

    strings = _unit_strings(shared_data)
    assert {"nanomol mol-1", "mol mol-1", "nmol mol-1", "degrees_north"} <= strings
    for text in sorted(strings):
        assert read(new, text) == read(old, text), text
