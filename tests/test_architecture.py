"""The layers of ../shared/DESIGN.md hold: a small AST check of every hubkit import.

Science (fusion, assimilation, ozone, uv, co2, validate, simulate, osse, constants, geodesy) never
imports storage, ingest, the chain, compute, the CLI or plotting; the store never imports science,
the chain or the readers (files come in through hubkit.ingest); the chain reaches science only
through its steps module.
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


def test_the_rule_sees_a_violation(tmp_path):
    """The check is not blind: an import of the store inside a function is found."""
    bad = tmp_path / "x.py"
    bad.write_text("def f():\n    from hubkit.store import Store\n    import hubkit.chain\n")
    assert _imports(bad) == {"hubkit.store", "hubkit.chain"}
