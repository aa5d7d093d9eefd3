"""Refresh the notebooks' committed outputs (``make outputs``): a maintainer's tool, not
part of the library.

Re-executes notebooks in place on a fresh, private sandbox. The sandbox is seeded, and what
still varies between runs (times, ports) is normalised with notebooks/sanitize.cfg before
writing, as nbval compares them, so running it twice gives no diff::

    .venv/bin/python tools/refresh_outputs.py notebooks,solutions
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from handson import sandbox
from handson.course import (
    NOTEBOOK_DIR,
    SOLUTIONS_DIR,
    expand_keys,
    notebook_path,
    prepare_solutions,
)


def refresh_outputs(keys: Sequence[str]) -> list[Path]:
    """Re-execute the notebooks of ``keys`` in place on a fresh, seeded, private sandbox."""
    import nbformat
    from nbclient import NotebookClient

    done = []
    prepared = False
    with sandbox.private(seed=7):
        for key in expand_keys(keys):
            path = notebook_path(key)
            if path.parent == SOLUTIONS_DIR and not prepared:
                prepare_solutions()  # as nbval does before the first solution (conftest.py)
                prepared = True
            notebook = nbformat.read(path, as_version=4)
            NotebookClient(
                notebook,
                timeout=1800,
                kernel_name="python3",
                resources={"metadata": {"path": str(path.parent)}},
                record_timing=False,
            ).execute()
            nbformat.write(normalise(notebook, sanitize_rules()), path)
            done.append(path)
    return done


def sanitize_rules(path: Path = NOTEBOOK_DIR / "sanitize.cfg") -> list[tuple[re.Pattern[str], str]]:
    """The regex/replace pairs of nbval's sanitize file (``[section]`` lines are comments)."""
    rules: list[tuple[re.Pattern[str], str]] = []
    pattern: str | None = None
    for line in path.read_text().splitlines():
        if line.startswith("regex:"):
            pattern = line.removeprefix("regex:").strip()
        elif line.startswith("replace:") and pattern is not None:
            rules.append((re.compile(pattern), line.removeprefix("replace:").strip()))
            pattern = None
    return rules


def normalise(notebook: Any, rules: list[tuple[re.Pattern[str], str]]) -> Any:
    """Outputs with what varies between runs replaced, as nbval compares them: sanitize
    rules on text, fixed ipywidgets model ids, no widget state in the metadata; the
    installed kernel's spec in the metadata."""

    def clean(text: Any) -> Any:
        if isinstance(text, list):
            text = "".join(text)
        for pattern, replacement in rules:
            text = pattern.sub(replacement, text)
        return text

    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if "text" in output:
                output["text"] = clean(output["text"])
            for mime, value in output.get("data", {}).items():
                if mime.startswith("text/"):
                    output["data"][mime] = clean(value)
                elif mime == "application/vnd.jupyter.widget-view+json":
                    value["model_id"] = "widget"
    notebook.metadata.pop("widgets", None)
    notebook.metadata["kernelspec"] = kernelspec()
    return notebook


def kernelspec(name: str = "python3") -> dict[str, str]:
    """The notebook metadata JupyterLab writes for the installed kernel: a notebook saved
    with other values shows as modified as soon as it is opened."""
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec(name)
    return {"display_name": spec.display_name, "language": spec.language, "name": name}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "notebooks",
        help="comma-separated keys: notebooks (all, in nbval's order), solutions, or "
        "00, 07, 99, instructor, solutions/04_...",
    )
    args = parser.parse_args(argv)
    for path in refresh_outputs(args.notebooks.split(",")):
        print(f"refreshed {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
