"""What the notebook builders share: markdown and code cells, stable cell ids, one writer.

A builder lists its cells and calls :func:`write`; rebuilding a notebook whose text did not
change leaves the file byte for byte as it was (nbformat would give every cell a new random id).
"""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def md(source: str) -> nbformat.NotebookNode:
    """A markdown cell."""
    return new_markdown_cell(source)


def code(source: str) -> nbformat.NotebookNode:
    """A code cell (no outputs: the tests execute the notebooks)."""
    return new_code_cell(source)


def write(cells, name: str) -> Path:
    """Write ``cells`` as ``notebooks/<name>`` with ids ``cell-00``, ``cell-01`` …"""
    nb = new_notebook(cells=list(cells))
    for k, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{k:02d}"
    nb.metadata["kernelspec"] = KERNELSPEC
    out = Path(__file__).with_name(name)
    nbformat.write(nb, out)
    return out
