"""Committed notebook outputs show whole values: no table cell is cut with "..."."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted([*ROOT.glob("notebooks/*.ipynb"), *ROOT.glob("solutions/*.ipynb")])
# pandas marks a cut value with "..." at its end, or a cut table with a "..." column/row.
CUT = re.compile(r"\S\.\.\.(\s|$)|^\s*\.\.\.\s*$|\s\.\.\.\s", re.MULTILINE)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_output_value_is_cut(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    cut = []
    for index, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []):
            text = output.get("data", {}).get("text/plain") or output.get("text") or ""
            text = "".join(text)
            if CUT.search(text):
                cut.append((index, CUT.search(text).group(0)))
    assert not cut, f"cells with values cut by '...': {cut}"
