"""The layers of ../shared/DESIGN.md hold: a small AST check of every hubkit import.

Science (fusion, assimilation, ozone, uv, co2, validate, simulate, osse, constants, geodesy) never
imports storage, ingest, the chain, compute, the CLI or plotting; the store never imports science,
the chain or the readers (files come in through hubkit.ingest); the chain reaches science only
through its steps module; compute needs only the errors.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "hubkit"
SCIENCE = ("fusion", "assimilation", "ozone", "uv", "co2", "validate", "simulate", "osse",
           "constants", "geodesy")
NOT_FROM_SCIENCE = ("io", "ingest", "store", "catalog", "chain", "compute", "cli", "plot",
                    "widgets", "demo", "hub")


def _module(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every ``hubkit.*`` module a file imports, at any depth (lazy imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("hubkit"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "hubkit":
                found.update(f"hubkit.{a.name}" for a in node.names)
            elif node.module.startswith("hubkit."):
                found.add(node.module)
    return found


def _top(module: str) -> str:
    return module.split(".")[1] if module.count(".") else ""


FILES = sorted(PACKAGE.rglob("*.py"))


def _files_of(tops) -> list[Path]:
    return [p for p in FILES if _top(_module(p)) in tops]


@pytest.mark.parametrize("path", _files_of(SCIENCE), ids=lambda p: _module(p))
def test_science_never_imports_storage_chain_compute_cli_or_plots(path):
    bad = sorted(m for m in _imports(path) if _top(m) in NOT_FROM_SCIENCE)
    assert not bad, f"{_module(path)} imports {bad}"


@pytest.mark.parametrize("path", _files_of({"store", "catalog"}), ids=lambda p: _module(p))
def test_the_store_never_imports_science_the_chain_or_the_readers(path):
    bad = sorted(m for m in _imports(path) if _top(m) in SCIENCE + ("chain", "io", "ingest"))
    assert not bad, f"{_module(path)} imports {bad}"


@pytest.mark.parametrize("path", _files_of({"chain"}), ids=lambda p: _module(p))
def test_the_chain_reaches_science_only_through_its_steps(path):
    if _module(path) in ("hubkit.chain.steps", "hubkit.chain.report"):
        return  # the steps call science; the report scores against a nature run (hubkit.osse)
    bad = sorted(m for m in _imports(path) if _top(m) in SCIENCE)
    assert not bad, f"{_module(path)} imports {bad}"


@pytest.mark.parametrize("path", _files_of({"compute"}), ids=lambda p: _module(p))
def test_compute_knows_only_dask_and_the_errors(path):
    """Finding a Dask cluster needs nothing of hubkit but its errors (and other compute rooms)."""
    bad = sorted(m for m in _imports(path) if _top(m) not in ("compute", "errors"))
    assert not bad, f"{_module(path)} imports {bad}"


def test_the_rule_sees_a_violation(tmp_path):
    """The check is not blind: an import of the store inside a function is found."""
    bad = tmp_path / "x.py"
    bad.write_text("def f():\n    from hubkit.store import Store\n    import hubkit.chain\n")
    assert _imports(bad) == {"hubkit.store", "hubkit.chain"}


def _private_imports(path: Path) -> list[str]:
    """``module._name`` imported by ``path`` from another module, and private modules
    (``hubkit.io._common``) imported from outside their package."""
    own = _module(path) if path.is_relative_to(PACKAGE) else None
    own_package = own.rsplit(".", 1)[0] if own and path.name != "__init__.py" else own
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not (isinstance(node, ast.ImportFrom) and node.module and node.level == 0
                and node.module.startswith("hubkit")):
            continue
        if node.module != own:
            found += [f"{node.module}.{a.name}" for a in node.names
                      if a.name.startswith("_") and not a.name.startswith("__")]
        parts = node.module.split(".")
        for k, part in enumerate(parts):
            if part.startswith("_") and own is not None:
                package = ".".join(parts[:k])
                if not (own_package == package or (own_package or "").startswith(package + ".")):
                    found.append(node.module)
    return found


@pytest.mark.parametrize("path", FILES + sorted((PACKAGE.parent / "tests").glob("*.py")),
                         ids=lambda p: p.name if p.parent.name == "tests" else _module(p))
def test_no_private_name_is_imported_across_modules(path):
    """One module's ``_helper`` is its own: another module that needs it imports a public name
    (tests too); a private module (``io/_common.py``) serves its own package only."""
    assert not _private_imports(path), f"{path.name} imports {_private_imports(path)}"


def test_the_private_import_rule_sees_a_violation(tmp_path):
    bad = tmp_path / "x.py"
    bad.write_text("from hubkit.fusion.linalg import _chol_inv\n")
    assert _private_imports(bad) == ["hubkit.fusion.linalg._chol_inv"]


def test_ruff_passes_with_the_docstring_rules():
    """``make lint`` as a test: pyflakes, pycodestyle, isort, bugbear, pyupgrade, and numpy
    docstrings on the public API (pyproject.toml), so CI enforces them."""
    import subprocess
    import sys

    root = PACKAGE.parent
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "hubkit", "tests", "benchmarks"],
                          cwd=root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-1000:]
