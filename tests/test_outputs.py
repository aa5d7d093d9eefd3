"""Committed notebooks: outputs show whole values (no table cell is cut with "..."), and
their kernel metadata is what JupyterLab writes, so opening one does not mark it modified."""

from __future__ import annotations

import platform
import re
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(
    [
        *ROOT.glob("notebooks/*.ipynb"),
        *ROOT.glob("solutions/*.ipynb"),
        *ROOT.glob("exercises/*.ipynb"),
    ]
)
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


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_the_kernel_metadata_is_the_installed_kernels(path: Path) -> None:
    # JupyterLab writes the kernel's spec and language_info into a notebook it opens; a
    # difference marks the notebook modified at once (the unsaved dot).
    spec = KernelSpecManager().get_kernel_spec("python3")
    metadata = nbformat.read(path, as_version=4).metadata
    assert metadata.kernelspec == {
        "display_name": spec.display_name,
        "language": spec.language,
        "name": "python3",
    }
    assert metadata.language_info["version"] == platform.python_version()
    assert "widgets" not in metadata, "no saved widget state"
