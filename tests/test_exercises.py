"""Exercises are made from the solutions (one source), and stop at their first stub."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import papermill as pm
import pytest

from handson import chapters, checks, course, ecs, exercises

SOLUTIONS = sorted(exercises.SOLUTIONS_DIR.glob("*.ipynb"))
STUB = "raise NotImplementedError()"


def test_every_solution_has_its_exercise_as_make_exercises_writes_it() -> None:
    assert SOLUTIONS, "no solution notebooks"
    assert len(exercises.editions()) == 2, "English and Japanese"
    for solutions, exercise_dir in exercises.editions():
        assert exercises.stale_exercises(solutions, exercise_dir) == [], "run: make exercises"


def test_make_exercises_twice_gives_the_same_bytes(tmp_path: Path) -> None:
    first = {p.name: p.read_bytes() for p in exercises.write_exercises(exercises=tmp_path)}
    second = {p.name: p.read_bytes() for p in exercises.write_exercises(exercises=tmp_path)}
    assert first == second
    assert set(first) == {p.name for p in SOLUTIONS}


def test_an_exercise_edited_by_hand_is_caught(tmp_path: Path) -> None:
    copy = tmp_path / "exercises"
    shutil.copytree(exercises.EXERCISES_DIR, copy)
    edited = copy / SOLUTIONS[0].name
    notebook = nbformat.read(edited, as_version=4)
    notebook.cells[-1].source += "\n# a hand edit"
    nbformat.write(notebook, edited)
    assert exercises.stale_exercises(exercises=copy) == [edited.name]
    (copy / "99_extra.ipynb").write_text(edited.read_text())
    assert exercises.stale_exercises(exercises=copy) == [edited.name, "99_extra.ipynb"]


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.stem)
def test_answers_become_stubs_and_outputs_are_cleared(solution: Path) -> None:
    exercise = nbformat.read(exercises.EXERCISES_DIR / solution.name, as_version=4)
    sources = [c.source for c in exercise.cells]
    assert not any("BEGIN SOLUTION" in s or "END SOLUTION" in s for s in sources)
    assert any(STUB in s for s in sources)
    assert all(c.outputs == [] for c in exercise.cells if c.cell_type == "code")
    tags = [c.metadata.get("tags", []) for c in exercise.cells]
    assert ["parameters"] in tags, "a parameters cell for papermill"
    assert 'handson.checks.check(lab, "07-' in sources[-1], "every exercise ends with its check"


def _first_stub(notebook: nbformat.NotebookNode) -> int:
    return next(i for i, c in enumerate(notebook.cells) if STUB in c.source)


@pytest.mark.slow
@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.stem)
def test_an_exercise_stops_at_its_first_stub_with_the_stub_error(
    solution: Path, make_lab, tmp_path: Path
) -> None:
    # The account as the earlier exercises leave it: notebook 00, then a task definition
    # (exercise 1) and from exercise 4 on a working service (exercise 3).
    lab = make_lab()
    pre = chapters.build_prerequisites(lab)
    if solution.name >= "04":
        chapters.deploy_chapter7(lab, pre)
    elif solution.name >= "02":
        ecs.ensure_task_definition(lab, chapters.task_definition_spec(lab, pre))
    exercise = exercises.EXERCISES_DIR / solution.name
    out = tmp_path / solution.name
    with pytest.raises(pm.PapermillExecutionError) as failure:
        pm.execute_notebook(
            str(exercise),
            str(out),
            parameters={"student": lab.student},
            cwd=str(exercise.parent),
            progress_bar=False,
            kernel_name="python3",
            shutdown_kernel="immediate",
        )
    assert failure.value.ename == "NotImplementedError"
    executed = nbformat.read(out, as_version=4)
    errored = [
        i
        for i, cell in enumerate(executed.cells)
        if any(o.get("output_type") == "error" for o in cell.get("outputs", []))
    ]
    # papermill adds a banner cell at the top of the output notebook
    source = nbformat.read(exercise, as_version=4)
    stub_source = source.cells[_first_stub(source)].source
    assert len(errored) == 1 and executed.cells[errored[0]].source == stub_source


@pytest.mark.slow
def test_the_solutions_also_run_after_notebook_07(make_lab, tmp_path: Path) -> None:
    """Notebook 07 and the exercises build the same resources: a learner who ran 07
    first gets through every solution, each ending with its check passing."""
    student = make_lab().student
    for key in ["00", "07", *course.solution_keys()]:
        course.run_notebook(key, tmp_path / Path(key).name, {"student": student})
    lab = make_lab(student=student)
    results = {name: checks.check(lab, name) for name in checks.names()}
    assert all(r.passed for r in results.values()), {n: r.failing for n, r in results.items()}
