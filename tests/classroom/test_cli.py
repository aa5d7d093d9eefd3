"""The instructor's commands, run as a learner's terminal would run them (a subprocess with
the test session's environment, so it reaches the private sandbox)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

from handson import ecs, logs, teardown
from handson.connection import connect, sandbox_account_id


def handson(*args, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "handson", *map(str, args)],
        input=stdin,
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=600,
    )


def roster_of(path, *students):
    rows = [f"{s},{sandbox_account_id(s)}" for s in students]
    path.write_text("student,account_id\n" + "\n".join(rows) + "\n")
    return path


def test_roster_check_lists_every_bad_row_and_exits_1(tmp_path) -> None:
    path = tmp_path / "roster.csv"
    path.write_text(
        "student,account_id,region\n"
        "student01,123456789012,\n"
        "student02,1234,\n"
        "student03,210987654321,mars-1\n"
    )
    result = handson("roster", "check", path)
    assert result.returncode == 1, result.stderr
    assert result.stdout.splitlines()[1:] == [
        "  line 3, account_id: '1234': an AWS account id is 12 digits.",
        "  line 4, region: 'mars-1' is not an AWS region with ECS.",
    ]


def test_roster_check_of_a_good_roster_exits_0(tmp_path) -> None:
    path = roster_of(tmp_path / "roster.csv", "student01", "student02")
    result = handson("roster", "check", path)
    assert (result.returncode, result.stdout) == (0, f"{path}: no problems\n")


def test_roster_check_of_a_directory_or_latin1_file_exits_1(tmp_path) -> None:
    assert handson("roster", "check", tmp_path).returncode == 1
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("student,account_id,name\ns1,123456789012,José\n".encode("latin-1"))
    result = handson("roster", "check", latin1)
    assert result.returncode == 1 and "line 2: the file is not UTF-8" in result.stdout


def test_a_bad_roster_stops_status_before_any_account(tmp_path) -> None:
    path = tmp_path / "roster.csv"
    path.write_text("student,account_id\nstudent01,\n")
    result = handson("status", path)
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: The roster {path} has 1 problem:")


def test_provision_checks_its_options_before_any_account(tmp_path) -> None:
    path = roster_of(tmp_path / "roster.csv", "cli-provision")
    result = handson("provision", path, "--notebooks", "00,42", "--out", tmp_path / "runs")
    assert result.returncode == 1
    assert result.stderr.startswith("error: No course notebook '42'")
    assert not (tmp_path / "runs").exists()


def test_provision_runs_a_notebook_per_student_and_prints_the_report(
    sandbox_server, tmp_path
) -> None:
    path = roster_of(tmp_path / "roster.csv", "cli-provision")
    out = tmp_path / "runs"
    # No --notebooks: notebook 00 only (chapters 1-6), the students do chapter 7 themselves.
    result = handson("provision", path, "--parallel", "1", "--out", out)
    assert result.returncode == 0, result.stdout + result.stderr
    header, row = result.stdout.splitlines()
    assert header.split()[:3] == ["student", "notebook", "status"]
    assert row.split()[:3] == ["cli-provision", "00_setup.ipynb", "ok"]
    assert (out / "cli-provision" / "00_setup.ipynb").exists()
    assert not (out / "cli-provision" / "07_ecs_task_definition_and_service.ipynb").exists()


def test_status_prints_the_board_and_writes_csv(sandbox_server, tmp_path) -> None:
    path = roster_of(tmp_path / "roster.csv", "cli-newcomer")
    board = tmp_path / "board.csv"
    result = handson("status", path, "--backend", "sandbox", "--csv", board)
    assert result.returncode == 0, result.stderr
    assert "cli-newcomer" in result.stdout and "not provisioned" in result.stdout
    (row,) = csv.DictReader(board.open())
    assert (row["student"], row["account"], row["error"]) == (
        "cli-newcomer",
        sandbox_account_id("cli-newcomer"),
        "not provisioned",
    )


def test_teardown_asks_first_and_n_deletes_nothing(sandbox_server, tmp_path) -> None:
    lab = connect("sandbox", student="cli-teardown")
    cluster = ecs.ensure_cluster(lab)
    logs.ensure_log_group(lab)
    before = teardown.leftovers(lab)
    path = roster_of(tmp_path / "roster.csv", "cli-teardown")

    result = handson("teardown", path, stdin="n\n")
    assert result.returncode == 1, result.stderr
    assert cluster in result.stdout and "/ecs/my-project-dev" in result.stdout
    assert "Delete all of this? [y/N] Nothing deleted." in result.stdout
    assert teardown.leftovers(lab).equals(before)

    result = handson("teardown", path, "--parallel", "2", stdin="")  # no answer: no
    assert result.returncode == 1 and teardown.leftovers(lab).equals(before)

    result = handson("teardown", path, stdin="y\n")
    assert result.returncode == 0, result.stdout + result.stderr
    assert teardown.leftovers(lab).empty

    result = handson("teardown", path)
    assert result.returncode == 0
    assert result.stdout == "Nothing tagged by the kit in these accounts: nothing to delete.\n"
