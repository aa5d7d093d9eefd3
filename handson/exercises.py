"""Exercise notebooks made from their solutions: one source, two notebooks.

``solutions/*.ipynb`` are the masters. In each exercise cell the answer sits between
``### BEGIN SOLUTION`` and ``### END SOLUTION`` (nbgrader's markers); the exercise is the
same notebook with each answer replaced by nbgrader's stub (``# YOUR CODE HERE`` and
``raise NotImplementedError()``) and every output cleared. nbgrader's own
``ClearSolutions`` preprocessor does the replacing, standalone, without its database or
course layout. ``make exercises`` (``python -m handson.exercises``) writes them, for each
edition (``solutions/ja/`` gives ``exercises/ja/``); a test fails when ``exercises/``
differs from what it would write.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from handson import i18n
from handson.i18n import _

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS_DIR = ROOT / "solutions"
EXERCISES_DIR = ROOT / "exercises"
# Run metadata a solution picks up when executed; an exercise starts clean.
_RUN_METADATA = ("papermill", "widgets", "execution")


def make_exercise(solution: Any) -> Any:
    """The exercise of a solution notebook (an nbformat node; the solution is unchanged)."""
    import copy

    from nbgrader.preprocessors import ClearSolutions

    notebook = copy.deepcopy(solution)
    notebook, _resources = ClearSolutions(enforce_metadata=False).preprocess(notebook, {})
    for key in _RUN_METADATA:
        notebook.metadata.pop(key, None)
    for cell in notebook.cells:
        for key in _RUN_METADATA:
            cell.metadata.pop(key, None)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return notebook


def exercise_text(solution_path: Path) -> str:
    """The exercise notebook's file content for ``solution_path``, as ``make exercises``
    writes it."""
    import nbformat

    solution = nbformat.read(solution_path, as_version=4)
    return str(nbformat.writes(make_exercise(solution))) + "\n"


def editions() -> list[tuple[Path, Path]]:
    """(solutions, exercises) folders of each edition: English, then each built one."""
    pairs = [(SOLUTIONS_DIR, EXERCISES_DIR)]
    for lang in i18n.LANGUAGES[1:]:
        if (SOLUTIONS_DIR / lang).is_dir():
            pairs.append((SOLUTIONS_DIR / lang, EXERCISES_DIR / lang))
    return pairs


def write_exercises(solutions: Path = SOLUTIONS_DIR, exercises: Path = EXERCISES_DIR) -> list[Path]:
    """Write one exercise per solution notebook; the same solutions give the same bytes."""
    written = []
    exercises.mkdir(parents=True, exist_ok=True)
    for path in sorted(solutions.glob("*.ipynb")):
        target = exercises / path.name
        target.write_text(exercise_text(path), encoding="utf-8")
        written.append(target)
    return written


def stale_exercises(solutions: Path = SOLUTIONS_DIR, exercises: Path = EXERCISES_DIR) -> list[str]:
    """The exercise notebooks that are missing, edited by hand or left over: what
    ``make exercises`` would change."""
    stale = []
    wanted = {p.name: p for p in sorted(solutions.glob("*.ipynb"))}
    for name, path in wanted.items():
        target = exercises / name
        if not target.exists() or target.read_text(encoding="utf-8") != exercise_text(path):
            stale.append(name)
    stale += sorted(p.name for p in exercises.glob("*.ipynb") if p.name not in wanted)
    return stale


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m handson.exercises",
        description="Write exercises/*.ipynb from solutions/*.ipynb (answers become stubs).",
    )
    parser.add_argument(
        "--check", action="store_true", help="only list the exercises that are out of date"
    )
    args = parser.parse_args(argv)
    if args.check:
        stale = [
            f"{exercises.relative_to(ROOT)}/{name}"
            for solutions, exercises in editions()
            for name in stale_exercises(solutions, exercises)
        ]
        for name in stale:
            print(_("out of date: {name} (run: make exercises)").format(name=name))
        return 1 if stale else 0
    for solutions, exercises in editions():
        for path in write_exercises(solutions, exercises):
            print(_("wrote {path}").format(path=path.relative_to(ROOT)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
