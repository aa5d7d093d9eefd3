"""Committed notebooks of both editions: outputs show whole values (no table cell is cut
with "..."), real values rather than the sanitize file's placeholders, and their kernel
metadata is what JupyterLab writes, so opening one does not mark it modified."""

from __future__ import annotations

import platform
import re
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(
    path
    for folder in ("notebooks", "solutions", "exercises")
    for pattern in ("*.ipynb", "ja/*.ipynb")  # both editions
    for path in ROOT.glob(f"{folder}/{pattern}")
)
# pandas marks a cut value with "..." at its end, or a cut table with a "..." column/row.
CUT = re.compile(r"\S\.\.\.(\s|$)|^\s*\.\.\.\s*$|\s\.\.\.\s", re.MULTILINE)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
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


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_outputs_hold_real_values_not_placeholders(path: Path, tool: Any) -> None:
    # nbval compares outputs through notebooks/sanitize.cfg; the saved ones are what the
    # run printed (a learner copies "curl http://my-project-dev-alb-1234.../", not "HEX").
    refresh = tool("refresh_outputs")
    rules = refresh.sanitize_rules()
    found = [
        (index, refresh.placeholders(text, rules))
        for index, cell in enumerate(nbformat.read(path, as_version=4).cells)
        for text in refresh._texts(cell)
        if refresh.placeholders(text, rules)
    ]
    assert not found, f"cells whose outputs hold sanitize placeholders: {found}"


def test_placeholders_are_found(tool: Any) -> None:
    refresh = tool("refresh_outputs")
    rules = refresh.sanitize_rules()
    text = "task HEX at 127.X.X.X (10.0.11.N), 127.0.0.1:PORT, secret:db-SUFFIX, TIME"
    assert sorted(refresh.placeholders(text, rules)) == sorted(
        ["HEX", "127.X.X.X", "10.0.11.N", "127.0.0.1:PORT", "secret:db-SUFFIX", "TIME"]
    )
    assert refresh.placeholders("arn:aws:iam::123456789012:role/x 10.0.11.25 HEXAGON", rules) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
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


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_the_saved_rollout_shows_the_final_counts_in_text(lang: str) -> None:
    """Notebook 07's last rollout wait keeps its end state as a line of text (2 of 2, in
    the edition's language), not a widget's repr at 0."""
    from handson import course, i18n
    from handson.progress import service_text

    notebook = nbformat.read(course.notebook_path("07", lang), as_version=4)
    waits = [
        cell
        for cell in notebook.cells
        if cell.cell_type == "code" and cell.source.strip() == "handson.ecs.wait_for_rollout(lab)"
    ]
    i18n.use(lang)
    try:
        done = service_text(
            {
                "desiredCount": 2,
                "pendingCount": 0,
                "deployments": [{"runningCount": 2, "rolloutState": "COMPLETED"}],
            }
        )
    finally:
        i18n.use("en")
    printed = "".join(o.get("text", "") for o in waits[-1].outputs if o.output_type == "stream")
    assert done in printed.splitlines(), printed
    assert "IntProgress(value=0" not in str(waits[-1].outputs)
