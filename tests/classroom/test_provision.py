"""Provisioning a class on the sandbox: every student's notebooks run in parallel, a failing
student is reported at its failing cell without stopping the others, and a resumed run
completes only the students that are not done."""

from __future__ import annotations

import errno
import importlib
import inspect
import os
from pathlib import Path

import nbformat
import pandas as pd
import psutil
import pytest
import zmq

from handson import ecs
from handson.classroom import load_roster
from handson.cli import build_parser
from handson.connection import connect, sandbox_account_id
from handson.exceptions import ConfigurationError, RosterError

# The package exports provision() under the submodule's name: import the module itself.
provision_module = importlib.import_module("handson.classroom.provision")
provision = provision_module.provision

NB00, NB07 = "00_setup.ipynb", "07_ecs_task_definition_and_service.ipynb"
BOTH = ("00", "07")  # the default is 00 only: a class does chapter 7 itself
# prov-b is given a task size Fargate doesn't offer: chapter 7 stops at its settings check.
STUDENTS = ("prov-a", "prov-b", "prov-c")
FAILING = "prov-b"


def write_roster(directory: Path, students: tuple[str, ...]) -> Path:
    path = directory / "roster.csv"
    rows = "".join(f"{s},{sandbox_account_id(s)}\n" for s in students)
    path.write_text("student,account_id\n" + rows)
    return path


@pytest.fixture(scope="module")
def first_run(sandbox_server, tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp("class")
    roster = load_roster(write_roster(work, STUDENTS))
    out = work / "runs"
    report = provision(
        roster,
        notebooks=BOTH,
        out=out,
        parallel=3,
        progress=False,
        overrides={FAILING: {"task_memory": 4096}},
    )
    return {
        "roster": roster,
        "out": out,
        "report": report,
        # Read now: the resumed run rewrites them.
        "csv": pd.read_csv(out / "report.csv"),
        "html": (out / "report.html").read_text(),
    }


@pytest.fixture(scope="module")
def resumed_run(first_run) -> dict:
    out = first_run["out"]
    before = {p: p.stat().st_mtime_ns for p in out.glob("*/*.ipynb") if FAILING not in str(p)}
    report = provision(
        first_run["roster"], notebooks=BOTH, out=out, resume=True, parallel=3, progress=False
    )
    return {"report": report, "mtimes_before": before}


def statuses(table: pd.DataFrame) -> dict[tuple[str, str], str]:
    return {(r.student, r.notebook): r.status for r in table.itertuples()}


def failing_cell(path: Path) -> nbformat.NotebookNode:
    notebook = nbformat.read(path, as_version=4)
    (cell,) = [c for c in notebook.cells if "check_settings" in c.source]
    return cell


def test_one_failing_student_does_not_stop_the_others(first_run) -> None:
    report = first_run["report"]
    assert list(report.table.columns) == [
        "student",
        "notebook",
        "status",
        "duration",
        "failing_cell",
        "error",
        "output",
    ]
    assert statuses(report.table) == {
        ("prov-a", NB00): "ok",
        ("prov-a", NB07): "ok",
        ("prov-b", NB00): "ok",
        ("prov-b", NB07): "failed",
        ("prov-c", NB00): "ok",
        ("prov-c", NB07): "ok",
    }
    assert report.ok is False
    assert report.failed == [FAILING]
    assert (report.table.duration > 0).all()
    for student in ("prov-a", "prov-c"):
        assert provision_module.is_done(first_run["out"] / student, ("00", "07"))
        service = ecs.show_service(connect("sandbox", student=student))
        assert service[["desired", "running"]].values.tolist() == [[2, 2]]


def test_notebook_07_runs_in_the_students_kernel_numbered_from_1(first_run) -> None:
    for student in ("prov-a", "prov-c"):
        notebook = nbformat.read(first_run["out"] / student / NB07, as_version=4)
        counts = [c.execution_count for c in notebook.cells if c.cell_type == "code"]
        assert counts == list(range(1, len(counts) + 1))
        # A restarted count in the same history session makes IPython print an error.
        streams = [o.text for c in notebook.cells for o in c.get("outputs", []) if "text" in o]
        assert not [text for text in streams if "History logging moved" in text]


def test_the_next_notebook_gets_the_same_kernel_with_nothing_left_defined(tmp_path) -> None:
    kernel = provision_module._StudentKernel(tmp_path)

    def run(code: str) -> tuple[int, list[str]]:
        manager = kernel.for_notebook()
        if not manager.has_kernel:
            manager.start_kernel()
        client = manager.client()
        client.start_channels()
        client.wait_for_ready(timeout=60)
        printed: list[str] = []

        def keep(message: dict) -> None:
            if message["msg_type"] == "stream":
                printed.append(message["content"]["text"].strip())

        reply = client.execute_interactive(code, output_hook=keep, timeout=60)
        return reply["content"]["execution_count"], printed

    try:
        assert run("import json\nx = 1\nprint(x)") == (1, ["1"])
        pid = kernel.manager.provisioner.pid
        # The names are gone, the imported modules stay.
        code = "import sys\nprint('x' in dir(), 'json' in dir(), 'json' in sys.modules)"
        assert run(code) == (1, ["False False True"])
        assert kernel.manager.provisioner.pid == pid
        assert kernel.started == 1
    finally:
        kernel.discard()
    assert kernel.manager is None


def test_the_report_names_the_failing_cell_and_error(first_run) -> None:
    table = first_run["report"].table
    (row,) = table[table.status == "failed"].itertuples()
    cell = failing_cell(Path(row.output))
    assert row.failing_cell == cell.execution_count
    assert row.error.startswith("FargateSizeError: Fargate has no task size with 256 CPU units")
    assert "\n" not in row.error
    assert row.output == str(first_run["out"] / FAILING / NB07)
    ok = table[table.status == "ok"]
    assert ok.failing_cell.isna().all() and (ok.error == "").all()


def test_the_failed_notebook_is_marked_at_the_failing_cell(first_run) -> None:
    path = first_run["out"] / FAILING / NB07
    notebook = nbformat.read(path, as_version=4)
    assert notebook.metadata.papermill.exception is True
    sources = [c.source for c in notebook.cells]
    index = next(i for i, s in enumerate(sources) if "check_settings" in s)
    # papermill's banner at the top links to a marker it puts just before the failing cell.
    assert "An Exception was encountered at" in sources[0]
    assert 'id="papermill-error-cell"' in sources[index - 1]
    assert [o.ename for o in notebook.cells[index].outputs] == ["FargateSizeError"]
    later = [c for c in notebook.cells[index + 1 :] if c.cell_type == "code"]
    assert all(c.execution_count is None for c in later)
    assert not provision_module.is_done(first_run["out"] / FAILING, ("00", "07"))


def test_report_files_are_written(first_run) -> None:
    csv, html = first_run["csv"], first_run["html"]
    assert statuses(csv) == statuses(first_run["report"].table)
    assert csv.loc[csv.status == "failed", "failing_cell"].tolist() == [
        first_run["report"].table.failing_cell.dropna().iloc[0]
    ]
    assert "FargateSizeError" in html and FAILING in html and "<table" in html


def test_only_the_student_parameters_are_passed(first_run) -> None:
    for student in STUDENTS:
        notebook = nbformat.read(first_run["out"] / student / NB00, as_version=4)
        account = sandbox_account_id(student)
        expected = {
            "student": student,
            "region": "ap-northeast-1",
            "role_arn": f"arn:aws:iam::{account}:role/OrganizationAccountAccessRole",
            "backend": "sandbox",
            "lang": "en",  # the edition: HANDSON_LANG, else English
        }
        if student == FAILING:
            expected["task_memory"] = 4096
        assert dict(notebook.metadata.papermill.parameters) == expected


def test_resume_completes_only_the_failed_student(resumed_run, first_run) -> None:
    report = resumed_run["report"]
    assert statuses(report.table) == {
        ("prov-a", NB00): "done before",
        ("prov-a", NB07): "done before",
        ("prov-b", NB00): "ok",
        ("prov-b", NB07): "ok",
        ("prov-c", NB00): "done before",
        ("prov-c", NB07): "done before",
    }
    assert report.ok is True
    after = {p: p.stat().st_mtime_ns for p in resumed_run["mtimes_before"]}
    assert after == resumed_run["mtimes_before"]
    assert statuses(pd.read_csv(first_run["out"] / "report.csv")) == statuses(report.table)
    assert provision_module.is_done(first_run["out"] / FAILING, ("00", "07"))
    service = ecs.show_service(connect("sandbox", student=FAILING))
    assert service[["desired", "running"]].values.tolist() == [[2, 2]]


def test_a_hung_run_is_stopped_by_the_watchdog(sandbox_server, tmp_path) -> None:
    roster = write_roster(tmp_path, ("prov-slow",))
    # Building chapters 1-6 takes seconds: one second is too short, as a hung kernel would be.
    report = provision(roster, notebooks=BOTH, out=tmp_path / "runs", timeout=1.0, progress=False)
    assert statuses(report.table) == {("prov-slow", NB00): "failed", ("prov-slow", NB07): "skipped"}
    assert report.table.error.iloc[0].startswith("Timeout: the run took longer than 1 s")
    kernels = [
        p for p in psutil.Process().children(recursive=True) if "ipykernel_launcher" in p.cmdline()
    ]
    assert kernels == []
    assert not provision_module.is_done(tmp_path / "runs" / "prov-slow", ("00",))


@pytest.fixture
def flaky_kernel_start(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Kernel starts fail with "Address already in use" a given number of times."""
    failures = [0]
    manager = provision_module._KernelManager
    start = manager.start_kernel

    def flaky(self, **kwargs):
        if failures[0] > 0:
            failures[0] -= 1
            raise zmq.ZMQError(errno.EADDRINUSE)
        return start(self, **kwargs)

    monkeypatch.setattr(manager, "start_kernel", flaky)
    return failures


def job(tmp_path: Path, student: str) -> object:
    return provision_module._Job(
        student=student,
        parameters={"00": {"student": student, "backend": "sandbox"}},
        notebooks=("00",),
        directory=tmp_path,
        timeout=300.0,
        lang="en",
        environ=dict(os.environ),
    )


def test_a_kernel_that_fails_to_start_is_started_again(
    sandbox_server, flaky_kernel_start, tmp_path
) -> None:
    flaky_kernel_start[0] = 2
    kernel = provision_module._StudentKernel(tmp_path / "k")
    try:
        row = provision_module._run_notebook(job(tmp_path, "prov-retry"), "00", kernel)
    finally:
        kernel.discard()
    assert (row["status"], row["error"]) == ("ok", "")
    assert flaky_kernel_start[0] == 0
    assert provision_module.is_done(tmp_path, ("00",))


def test_a_kernel_that_never_starts_fails_after_three_retries(
    sandbox_server, flaky_kernel_start, tmp_path
) -> None:
    flaky_kernel_start[0] = 10
    kernel = provision_module._StudentKernel(tmp_path / "k")
    row = provision_module._run_notebook(job(tmp_path, "prov-nostart"), "00", kernel)
    assert row["status"] == "failed"
    assert row["error"] == "ZMQError: Address already in use (kernel start, 4 tries)"
    assert flaky_kernel_start[0] == 10 - 4
    # papermill leaves no exception in a notebook whose kernel never started: not done.
    assert not provision_module.is_done(tmp_path, ("00",))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"extra_parameters": {"task_memroy": 1024}}, "'task_memroy', which the notebooks"),
        ({"extra_parameters": {"aws_secret_access_key": "x"}}, "which the notebooks don't have"),
        ({"overrides": {"nobody": {"task_memory": 1024}}}, "overrides for nobody: not on"),
        ({"overrides": {"prov-v": {"student": "other"}}}, "sets 'student': that comes from"),
        ({"parallel": 0}, "parallel=0"),
        ({"notebooks": ("42",)}, "No course notebook '42'"),
        ({"backend": "local"}, "backend='local'"),
    ],
)
def test_bad_options_are_refused_before_anything_runs(tmp_path, options, message) -> None:
    roster = write_roster(tmp_path, ("prov-v",))
    with pytest.raises(ConfigurationError, match=message.replace("(", r"\(")):
        provision(roster, out=tmp_path / "runs", progress=False, **options)
    assert not (tmp_path / "runs").exists()


def test_a_class_in_japanese_gets_the_japanese_notebooks(sandbox_server, tmp_path) -> None:
    roster = write_roster(tmp_path, ("prov-ja",))
    report = provision(roster, notebooks=("00",), out=tmp_path / "runs", lang="ja", progress=False)
    assert list(report.table["status"]) == ["ok"]
    notebook = nbformat.read(tmp_path / "runs" / "prov-ja" / NB00, as_version=4)
    assert notebook.metadata.papermill.parameters["lang"] == "ja"
    assert notebook.metadata.papermill.input_path.endswith(f"notebooks/ja/{NB00}")
    first = next(c.source for c in notebook.cells if c.cell_type == "markdown")
    assert any("\u3040" <= ch <= "\u30ff" for ch in first), first  # kana: the Japanese text


def test_the_default_is_notebook_00_only(tmp_path) -> None:
    """Chapters 1-6: in a class on chapter 7 the students do chapter 7 themselves."""
    assert provision_module.DEFAULT_NOTEBOOKS == ("00",)
    assert inspect.signature(provision).parameters["notebooks"].default == ("00",)
    args = build_parser().parse_args(["provision", str(tmp_path / "roster.csv")])
    assert args.notebooks == "00"
    assert args.lang is None  # HANDSON_LANG, else English
    assert build_parser().parse_args(["provision", "r.csv", "--lang", "ja"]).lang == "ja"


def exercise_notebook(directory: Path) -> str:
    """A notebook of its own with a ``fault`` parameter (as a break-and-fix exercise has)."""
    cell = nbformat.v4.new_code_cell(
        'student = "student01"\nbackend = "sandbox"\nfault = "none"\ntask_memory = 512',
        metadata={"tags": ["parameters"]},
    )
    kernel = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    path = directory / "exercise.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[cell], metadata=kernel), path)
    return str(path)


def test_roster_parameter_columns_are_passed_per_student(tmp_path) -> None:
    exercise = exercise_notebook(tmp_path)
    path = tmp_path / "roster.csv"
    path.write_text(
        "student,account_id,fault,task_memory\n"
        "prov-p1,111111111111,wrong-port,1024\n"
        "prov-p2,222222222222,,\n"
        "prov-p3,333333333333,plain-password,\n"
    )
    roster = load_roster(path, notebooks=("00", exercise))
    parameters = provision_module._parameters(
        roster,
        "sandbox",
        "en",
        ("00", exercise),
        {"task_cpu": 512},
        {"prov-p3": {"task_memory": 2048}},
    )
    first, second, third = (parameters[s] for s in ("prov-p1", "prov-p2", "prov-p3"))
    identity = first["00"].copy()
    for name in ("task_cpu", "task_memory", "lang"):
        identity.pop(name)
    assert first["00"]["lang"] == "en" and "lang" not in first[exercise]  # 00's cell has it
    assert identity == roster.students[0].notebook_parameters("sandbox")
    # Notebook 00 has no fault parameter: only the exercise gets it.
    assert "fault" not in first["00"] and first[exercise]["fault"] == "wrong-port"
    assert (first["00"]["task_memory"], first["00"]["task_cpu"]) == (1024, 512)
    assert "task_cpu" not in first[exercise], "not a parameter of the exercise"
    assert "fault" not in second[exercise], "an empty cell is the notebook's default"
    assert "task_memory" not in second["00"]
    assert third[exercise] == {
        **roster.students[2].notebook_parameters("sandbox"),
        "fault": "plain-password",
        "task_memory": 2048,  # overrides win over the roster
    }


def test_a_roster_column_for_a_notebook_not_run_is_refused_before_anything(tmp_path) -> None:
    exercise = exercise_notebook(tmp_path)
    path = tmp_path / "roster.csv"
    path.write_text("student,account_id,fault\nprov-f,111111111111,wrong-port\n")
    roster = load_roster(path, notebooks=(exercise,))
    with pytest.raises(RosterError) as error:
        provision(roster, out=tmp_path / "runs", progress=False)
    assert [(p.line, p.column) for p in error.value.problems] == [(1, "fault")]
    assert "nor a parameter of notebook 00" in str(error.value)
    assert not (tmp_path / "runs").exists()
