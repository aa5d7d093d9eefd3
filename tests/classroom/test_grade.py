"""Grading a class on the sandbox: three students who did chapter 7, one of whom then
registered a task definition with the database password in plain environment.

``handson grade`` runs the self-checks in every account (changing nothing): that
student's row names the failing criteria, the others pass, and the exit status is 1.
"""

from __future__ import annotations

import csv
import importlib
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from handson import chapters, loadbalancer, teardown
from handson.classroom import Gradebook, grade, load_roster
from handson.connection import connect, sandbox_account_id
from handson.exceptions import ConfigurationError

GOOD = ("grade-a", "grade-c")
WRONG = "grade-b"
STUDENTS = ("grade-a", "grade-b", "grade-c")
# The chapter's checks (more are being written for the later exercises).
CHECKS = ("07-task-definition", "07-task-size", "07-service")


def handson(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "handson", *map(str, args)],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=600,
    )


def do_chapter_7(student: str) -> None:
    """What a student does in the class: chapter 7, at the size exercise 2 asks for."""
    lab = connect("sandbox", student=student)
    pre = chapters.build_prerequisites(lab, enable_nat_gateway=True)
    chapters.deploy_chapter7(lab, pre, task_cpu=512, task_memory=1024)
    for _ in range(300):  # the ALB marks targets healthy after two passing checks
        if list(loadbalancer.show_target_health(lab)["state"]) == ["healthy", "healthy"]:
            return
        time.sleep(0.2)


def put_the_password_in_plain_environment(student: str) -> None:
    """A new revision of P-E-app (plain boto3) with DB_PASSWORD moved out of secrets."""
    lab = connect("sandbox", student=student)
    pre = chapters.get_prerequisites(lab)
    spec = chapters.task_definition_spec(lab, pre, task_cpu=512, task_memory=1024)
    (container,) = spec["containerDefinitions"]
    container["secrets"] = [s for s in container["secrets"] if s["name"] != "DB_PASSWORD"]
    container["environment"].append({"name": "DB_PASSWORD", "value": "not-a-secret"})
    lab.client("ecs").register_task_definition(**spec)


@pytest.fixture(scope="module")
def roster(sandbox_server, tmp_path_factory) -> Path:
    with ThreadPoolExecutor(max_workers=len(STUDENTS)) as pool:
        list(pool.map(do_chapter_7, STUDENTS))
    put_the_password_in_plain_environment(WRONG)
    path = tmp_path_factory.mktemp("grade") / "roster.csv"
    rows = "".join(f"{s},{sandbox_account_id(s)}\n" for s in STUDENTS)
    path.write_text("student,account_id\n" + rows)
    return path


@pytest.fixture(scope="module")
def graded(roster, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("grade-out")
    before = {s: teardown.leftovers(connect("sandbox", student=s)) for s in STUDENTS}
    result = handson("grade", roster, "--checks", ",".join(CHECKS), "--parallel", "3", "--out", out)
    return {"result": result, "out": out, "before": before}


def test_grade_names_the_failing_criterion_and_exits_1(graded) -> None:
    result = graded["result"]
    assert result.returncode == 1, result.stdout + result.stderr
    rows = {r["student"]: r for r in csv.DictReader((graded["out"] / "gradebook.csv").open())}
    assert list(rows) == list(STUDENTS)
    wrong = rows[WRONG]
    assert (wrong["07-task-definition"], wrong["07-task-size"], wrong["07-service"]) == (
        "False",
        "True",
        "True",
    )
    assert wrong["failing"] == (
        "07-task-definition: secret DB_PASSWORD; "
        "07-task-definition: no database password in plain environment"
    )
    assert wrong["score"] == "2/3"
    for student in GOOD:
        assert [rows[student][c] for c in CHECKS] == ["True", "True", "True"]
        assert (rows[student]["failing"], rows[student]["error"], rows[student]["score"]) == (
            "",
            "",
            "3/3",
        )
    assert "07-task-definition: secret DB_PASSWORD" in result.stdout
    assert "not-a-secret" not in result.stdout + (graded["out"] / "gradebook.csv").read_text()


def test_grade_writes_html_and_changes_nothing(graded) -> None:
    page = (graded["out"] / "gradebook.html").read_text()
    assert page.count("&#10008; not yet") == 1 and page.count("&#10004; passed") == 8
    assert "2 of 3 students pass every check" in page
    assert graded["result"].stdout.splitlines()[-2:] == [
        f"wrote {graded['out'] / 'gradebook.csv'}",
        f"wrote {graded['out'] / 'gradebook.html'}",
    ]
    for student in STUDENTS:
        after = teardown.leftovers(connect("sandbox", student=student))
        assert after.equals(graded["before"][student])


def test_the_gradebook_object(roster) -> None:
    book = grade(load_roster(roster), list(CHECKS), parallel=2)
    assert isinstance(book, Gradebook)
    assert book.checks == CHECKS
    assert list(book.table.columns) == ["student", *CHECKS, "score", "failing", "error"]
    assert (book.passed, book.failed, book.ok) == (list(GOOD), [WRONG], False)
    detail = book.result(WRONG, "07-task-definition")
    assert detail.failing == ["secret DB_PASSWORD", "no database password in plain environment"]
    assert "DB_PASSWORD" in detail.table.loc[~detail.table.passed, "saw"].iloc[1]
    everyone = grade(roster, "07-service")
    assert (everyone.checks, everyone.ok, everyone.passed) == (
        ("07-service",),
        True,
        list(STUDENTS),
    )


def test_an_account_that_cannot_be_reached_gets_a_row_saying_so(
    roster, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The package exports grade() under the submodule's name: import the module itself.
    grade_module = importlib.import_module("handson.classroom.grade")

    def connect_or_fail(**parameters: object) -> object:
        if parameters["student"] == WRONG:
            raise ConfigurationError("AccessDenied: the role can't be assumed.")
        return connect(**parameters)  # type: ignore[arg-type]

    monkeypatch.setattr(grade_module, "connect", connect_or_fail)
    book = grade(roster, CHECKS, parallel=3)
    row = book.table.set_index("student").loc[WRONG]
    assert row["error"] == "could not reach the account: AccessDenied: the role can't be assumed."
    assert book.table.set_index("student").loc[WRONG, list(CHECKS)].isna().all()
    assert (row["score"], row["failing"]) == ("", "")
    assert (book.passed, book.failed) == (list(GOOD), [WRONG])


def test_unknown_checks_are_refused_before_anything_runs(tmp_path) -> None:
    path = tmp_path / "roster.csv"
    path.write_text(f"student,account_id\ngrade-x,{sandbox_account_id('grade-x')}\n")
    out = tmp_path / "out"
    result = handson("grade", path, "--checks", "07-service,07-servise,nope", "--out", out)
    assert result.returncode == 1
    assert result.stderr.startswith(
        "error: There is no check called '07-servise', 'nope'. The checks are: 07-task-definition,"
    )
    assert not out.exists()
    with pytest.raises(ConfigurationError, match="No check given"):
        grade(path, [])
