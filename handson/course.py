"""Run the course notebooks headless with papermill, for one student.

``make course`` calls :func:`run_course` for ``student01`` and then prints the service,
target-health and log tables; the instructor's batch run uses the same function per
student.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from handson import i18n
from handson.chapters import COURSE, chapter_notebooks
from handson.exceptions import ConfigurationError, HandsonError
from handson.i18n import _

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
SOLUTIONS_DIR = ROOT / "solutions"
# Notebook 00 builds chapters 1-6; the chapters' own lessons come from their declarations.
NOTEBOOKS = {
    "00": "00_setup.ipynb",
    **chapter_notebooks(),
    "99": "99_teardown.ipynb",
    "instructor": "instructor.ipynb",
}
# papermill's default graceful kernel shutdown can stall for seconds (docs/sandbox.md,
# "Tooling: what moto, papermill, nbval and pgserver do").
KERNEL_OPTIONS = {"shutdown_kernel": "immediate"}


class NotebookFailed(HandsonError):
    """A notebook failed: ``cell`` is the failing cell's number, ``error`` its error."""

    def __init__(self, notebook: Path, cell: int | None, error: str) -> None:
        where = _(" at cell {cell}").format(cell=cell) if cell is not None else ""
        super().__init__(
            _("{notebook} failed{where}: {error}").format(
                notebook=notebook.name, where=where, error=error
            )
        )
        self.notebook = notebook
        self.cell = cell
        self.error = error


def notebook_path(key: str, lang: str = "en") -> Path:
    """The course notebook for "00", "07" or "99" (or a file name in notebooks/), or a
    path from the project's root such as "solutions/01_task_definition.ipynb", in the
    edition of ``lang``."""
    name = NOTEBOOKS.get(key, key)
    for path in (NOTEBOOK_DIR / name, ROOT / name):
        if path.is_file() and path.suffix == ".ipynb":
            edition = edition_path(path, lang)
            if not edition.is_file():
                raise ConfigurationError(
                    _("No {lang} edition of {notebook} ({edition}): run `make editions`.").format(
                        lang=lang, notebook=path.name, edition=edition
                    )
                )
            return edition
    choices = ", ".join([*NOTEBOOKS, "solutions/<name>.ipynb"])
    raise ConfigurationError(
        _("No course notebook {key!r}: choose from {choices}.").format(key=key, choices=choices)
    )


def edition_path(source: Path, lang: str) -> Path:
    """Where the ``lang`` edition of the English notebook ``source`` is: the source itself
    for English, else ``<its folder>/<lang>/<its name>`` (built by ``make editions``)."""
    return source if i18n.language(lang) == "en" else source.parent / lang / source.name


def solution_keys() -> list[str]:
    """The solution notebooks, in the order they run (their file names)."""
    return [f"solutions/{p.name}" for p in sorted(SOLUTIONS_DIR.glob("*.ipynb"))]


def replay_order() -> list[str]:
    """The order nbval and ``make outputs`` run the course notebooks in, on one sandbox:
    00, the course and the chapters after it, 99, then chapters 1-6's lessons on the
    account 99 emptied (so that they show what they create, as for a learner who starts
    the series with them; they leave what 00 leaves, for the solutions after them), then
    the instructor's."""
    lessons = [key for key in chapter_notebooks() if key < COURSE]
    later = [key for key in chapter_notebooks() if key > COURSE]
    return ["00", COURSE, *later, "99", *lessons, "instructor"]


def expand_keys(keys: Sequence[str]) -> list[str]:
    """The notebook keys with "solutions" standing for every solution and "notebooks" for
    the course notebooks (:func:`replay_order`), in order."""
    groups = {"solutions": solution_keys, "notebooks": replay_order}
    return [k for key in keys for k in (groups[key]() if key in groups else [key])]


def prepare_solutions(*, student: str = "student01") -> Path:
    """Run notebook 00 for ``student``, as a learner does before the exercises; the
    executed copy goes to a temporary directory. Returns it."""
    import tempfile

    out = Path(tempfile.mkdtemp(prefix="handson-00-")) / "00_setup.ipynb"
    return run_notebook("00", out, {"student": student})


def run_notebook(
    key: str,
    output: Path,
    parameters: dict[str, Any],
    *,
    timeout: float = 1800.0,
    lang: str = "en",
) -> Path:
    """Execute one course notebook, in the edition of ``lang``, with ``parameters`` into
    ``output``.

    On failure papermill marks the failing cell in the output notebook; this raises
    NotebookFailed naming that cell and the error.
    """
    import papermill as pm

    source = notebook_path(key, lang)
    parameters = {"lang": lang, **parameters}
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
    lang: str = "en",
) -> list[Path]:
    """Run the notebooks in order for one student, in the edition of ``lang``, into
    ``out/<student>/``."""
    params = {"student": student, **(parameters or {})}
    return [
        run_notebook(key, out / student / notebook_path(key, lang).name, params, lang=lang)
        for key in notebooks
    ]


def summary(
    *, student: str = "student01", backend: str = "sandbox", lang: str = "en"
) -> list[tuple[str, Any]]:
    """The tables ``make course`` prints at the end: service, target health, logs."""
    from handson import ecs, loadbalancer, logs
    from handson.connection import connect

    lab = connect(backend, student=student, lang=lang)  # type: ignore[arg-type]
    return [
        (_("ECS service"), ecs.show_service(lab)),
        (_("ALB target health"), loadbalancer.show_target_health(lab)),
        (_("Latest app log events"), logs.show_log_events(lab, limit=10)),
    ]
