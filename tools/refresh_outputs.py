"""Refresh the notebooks' committed outputs (``make outputs``): a maintainer's tool, not
part of the library.

Re-executes notebooks in place on a fresh, private sandbox. The outputs written are the
run's own, as a learner sees them (no placeholders). The sandbox is seeded; what still varies
between runs (times, ports, task ids) nbval compares through notebooks/sanitize.cfg, and a
cell whose new outputs compare equal to its committed ones keeps the committed ones, so
running it twice gives no diff::

    .venv/bin/python tools/refresh_outputs.py notebooks,solutions
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from handson import i18n, sandbox
from handson.course import (
    NOTEBOOK_DIR,
    SOLUTIONS_DIR,
    expand_keys,
    notebook_path,
    prepare_solutions,
)


def refresh_outputs(keys: Sequence[str], langs: Sequence[str] = i18n.LANGUAGES) -> list[Path]:
    """Re-execute the notebooks of ``keys`` in place, each edition of ``langs`` on a fresh,
    seeded, private sandbox of its own (as nbval runs them, conftest.py)."""
    import nbformat
    from nbclient import NotebookClient

    done = []
    for lang in langs:
        prepared = False
        with sandbox.private(seed=7):
            for key in expand_keys(keys):
                path = notebook_path(key, lang)
                if path.parent in (SOLUTIONS_DIR, SOLUTIONS_DIR / lang) and not prepared:
                    prepare_solutions()  # as nbval does before the first solution (conftest.py)
                    prepared = True
                committed = nbformat.read(path, as_version=4)
                notebook = nbformat.read(path, as_version=4)
                NotebookClient(
                    notebook,
                    timeout=1800,
                    kernel_name="python3",
                    resources={"metadata": {"path": str(path.parent)}},
                    record_timing=False,
                ).execute()
                nbformat.write(settle(notebook, committed, sanitize_rules()), path)
                done.append(path)
    return done


Rules = list[tuple[re.Pattern[str], str]]


def sanitize_rules(path: Path = NOTEBOOK_DIR / "sanitize.cfg") -> Rules:
    """The regex/replace pairs of nbval's sanitize file (``[section]`` lines are comments)."""
    rules: Rules = []
    pattern: str | None = None
    for line in path.read_text().splitlines():
        if line.startswith("regex:"):
            pattern = line.removeprefix("regex:").strip()
        elif line.startswith("replace:") and pattern is not None:
            rules.append((re.compile(pattern), line.removeprefix("replace:").strip()))
            pattern = None
    return rules


def settle(notebook: Any, committed: Any, rules: Rules) -> Any:
    """The executed ``notebook`` to write: a cell whose outputs compare equal (sanitized,
    as nbval compares them) to its ``committed`` ones, which hold no placeholder, keeps
    those; fixed ipywidgets model ids; no widget state; the installed kernel's spec."""
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            view = output.get("data", {}).get("application/vnd.jupyter.widget-view+json")
            if view is not None:
                view["model_id"] = "widget"
    if len(committed.cells) == len(notebook.cells):
        for new, old in zip(notebook.cells, committed.cells, strict=True):
            if (
                new.cell_type == old.cell_type == "code"
                and new.source == old.source
                and _compared(new, rules) == _compared(old, rules)
                and not any(placeholders(text, rules) for text in _texts(old))
            ):
                new.outputs = old.outputs
    notebook.metadata.pop("widgets", None)
    notebook.metadata["kernelspec"] = kernelspec()
    return notebook


def placeholders(text: str, rules: Rules) -> list[str]:
    """The sanitize rules' placeholders (``HEX``, ``127.0.0.1:PORT``, ...) found in ``text``:
    what a learner would see instead of a real value had outputs been saved sanitized."""
    found = []
    for placeholder in {replacement for _, replacement in rules}:
        parts = [re.escape(part) for part in re.split(r"\\\d", placeholder)]
        pattern = r"\S*?".join(parts)
        if placeholder[:1].isalnum():
            pattern = r"\b" + pattern
        if placeholder[-1:].isalnum():
            pattern += r"\b"
        found += re.findall(pattern, text)
    return found


def _texts(cell: Any) -> list[str]:
    texts = []
    for output in cell.get("outputs", []):
        if "text" in output:
            texts.append("".join(output["text"]))
        for mime, value in output.get("data", {}).items():
            if mime.startswith("text/"):
                texts.append("".join(value))
    return texts


def _compared(cell: Any, rules: Rules) -> list[str]:
    compared = []
    for text in _texts(cell):
        for pattern, replacement in rules:
            text = pattern.sub(replacement, text)
        compared.append(text)
    return compared


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
    parser.add_argument(
        "--lang", choices=i18n.LANGUAGES, help="one edition only (default: every edition)"
    )
    args = parser.parse_args(argv)
    langs = [args.lang] if args.lang else list(i18n.LANGUAGES)
    for path in refresh_outputs(args.notebooks.split(","), langs):
        print(f"refreshed {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
