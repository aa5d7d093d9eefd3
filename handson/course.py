"""Run the course notebooks headless with papermill, for one student.

``make course`` calls :func:`run_course` for ``student01`` and then prints the service,
target-health and log tables; the instructor's batch run uses the same function per
student.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from handson.exceptions import ConfigurationError, HandsonError

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
SOLUTIONS_DIR = ROOT / "solutions"
NOTEBOOKS = {
    "00": "00_setup.ipynb",
    "07": "07_ecs_task_definition_and_service.ipynb",
    "99": "99_teardown.ipynb",
    "instructor": "instructor.ipynb",
}
# papermill's default graceful kernel shutdown can stall for seconds (tooling-notes.md).
KERNEL_OPTIONS = {"shutdown_kernel": "immediate"}


class NotebookFailed(HandsonError):
    """A notebook failed: ``cell`` is the failing cell's number, ``error`` its error."""

    def __init__(self, notebook: Path, cell: int | None, error: str) -> None:
        where = f" at cell {cell}" if cell is not None else ""
        super().__init__(f"{notebook.name} failed{where}: {error}")
        self.notebook = notebook
        self.cell = cell
        self.error = error


def notebook_path(key: str) -> Path:
    """The course notebook for "00", "07" or "99" (or a file name in notebooks/), or a
    path from the project's root such as "solutions/01_task_definition.ipynb"."""
    name = NOTEBOOKS.get(key, key)
    for path in (NOTEBOOK_DIR / name, ROOT / name):
        if path.is_file() and path.suffix == ".ipynb":
            return path
    choices = ", ".join([*NOTEBOOKS, "solutions/<name>.ipynb"])
    raise ConfigurationError(f"No course notebook {key!r}: choose from {choices}.")


def solution_keys() -> list[str]:
    """The solution notebooks, in the order they run (their file names)."""
    return [f"solutions/{p.name}" for p in sorted(SOLUTIONS_DIR.glob("*.ipynb"))]


def expand_keys(keys: Sequence[str]) -> list[str]:
    """The notebook keys with "solutions" standing for every solution, in order."""
    return [k for key in keys for k in (solution_keys() if key == "solutions" else [key])]


def prepare_solutions(*, student: str = "student01") -> Path:
    """Run notebook 00 for ``student``, as a learner does before the exercises; the
    executed copy goes to a temporary directory. Returns it."""
    import tempfile

    out = Path(tempfile.mkdtemp(prefix="handson-00-")) / "00_setup.ipynb"
    return run_notebook("00", out, {"student": student})


def run_notebook(
    key: str, output: Path, parameters: dict[str, Any], *, timeout: float = 1800.0
) -> Path:
    """Execute one course notebook with ``parameters`` into ``output``.

    On failure papermill marks the failing cell in the output notebook; this raises
    NotebookFailed naming that cell and the error.
    """
    import papermill as pm

    source = notebook_path(key)
    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        pm.execute_notebook(
            str(source),
            str(output),
            parameters=parameters,
            cwd=str(source.parent),
            progress_bar=False,
            execution_timeout=int(timeout),
            kernel_name="python3",
            **KERNEL_OPTIONS,
        )
    except pm.PapermillExecutionError as error:
        raise NotebookFailed(output, error.exec_count, f"{error.ename}: {error.evalue}") from error
    return output


def run_course(
    *,
    student: str = "student01",
    notebooks: Sequence[str] = ("00", "07"),
    out: Path = Path("runs"),
    parameters: dict[str, Any] | None = None,
) -> list[Path]:
    """Run the notebooks in order for one student into ``out/<student>/``."""
    params = {"student": student, **(parameters or {})}
    return [run_notebook(key, out / student / notebook_path(key).name, params) for key in notebooks]


def summary(*, student: str = "student01", backend: str = "sandbox") -> list[tuple[str, Any]]:
    """The tables ``make course`` prints at the end: service, target health, logs."""
    from handson import ecs, loadbalancer, logs
    from handson.connection import connect

    lab = connect(backend, student=student)  # type: ignore[arg-type]
    return [
        ("ECS service", ecs.show_service(lab)),
        ("ALB target health", loadbalancer.show_target_health(lab)),
        ("Latest app log events", logs.show_log_events(lab, limit=10)),
    ]


def refresh_outputs(keys: Sequence[str]) -> list[Path]:
    """Re-execute notebooks in place on a fresh, private sandbox so that the committed
    outputs are current (``make outputs``). The sandbox is seeded, and what still varies
    between runs (times, ports) is normalised with notebooks/sanitize.cfg before writing,
    so running it twice gives no diff.
    """
    import nbformat
    from nbclient import NotebookClient

    from handson import sandbox

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
    rules on text, fixed ipywidgets model ids, no widget state in the metadata."""

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
    return notebook
