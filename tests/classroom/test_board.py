"""The class board on the sandbox: a provisioned student, a half-built one and a newcomer."""

from __future__ import annotations

import time

import pandas as pd
import pytest

from handson import chapters, checks, loadbalancer
from handson.classroom import class_cost, load_roster, status
from handson.classroom.board import student_status
from handson.connection import connect, sandbox_account_id

# Tokyo's prices per hour (docs/sandbox.md, "Prices"): the ALB with an idle LCU and a public
# IPv4 address in each of its two zones; two NAT gateways with their Elastic IPs; two
# 0.25 vCPU / 0.5 GB tasks; a db.t3.micro with 20 GB of gp2, and one secret (per month).
ALB = 0.0243 + 0.008 + 2 * 0.005
NAT = 2 * (0.062 + 0.005)
FARGATE = 2 * (0.25 * 0.05056 + 0.5 * 0.00553)
DB_AND_SECRET = 0.026 + 20 * 0.138 / 730 + 0.40 / 730
READY = "board-ready"
HALF = "board-half"
NEWCOMER = "board-newcomer"


def provision_chapter_7(lab) -> None:
    """Notebooks 00 and 07 in-process: chapters 1-6, the image, the task definition and a
    2-task service behind the ALB (as tests/library/test_ecs.py does)."""
    pre = chapters.build_prerequisites(lab, enable_nat_gateway=True)
    chapters.deploy_chapter7(lab, pre)
    for _ in range(300):  # the ALB marks targets healthy after two passing checks
        if list(loadbalancer.show_target_health(lab)["state"]) == ["healthy", "healthy"]:
            return
        time.sleep(0.2)


@pytest.fixture(scope="module")
def roster(sandbox_server, tmp_path_factory):
    provision_chapter_7(connect("sandbox", student=READY))
    chapters.build_prerequisites(connect("sandbox", student=HALF), enable_nat_gateway=False)
    path = tmp_path_factory.mktemp("board") / "roster.csv"
    rows = [f"{s},{sandbox_account_id(s)}" for s in (READY, HALF, NEWCOMER)]
    path.write_text("student,account_id\n" + "\n".join(rows) + "\n")
    return load_roster(path)


@pytest.fixture(scope="module")
def board(roster):
    table = status(roster, backend="sandbox", parallel=3)
    return {row["student"]: row for row in table.to_dict("records")}


def test_board_has_a_row_per_student_in_roster_order(roster) -> None:
    table = status(roster.path, backend="sandbox")
    assert list(table["student"]) == [READY, HALF, NEWCOMER]
    assert list(table.columns) == [
        "student", "account", "desired", "running", "healthy_targets", "registered_targets",
        "rollout", "alb_health", "usd_per_hour", "checks", "error",
    ]  # fmt: skip


def test_a_provisioned_student(board) -> None:
    row = board[READY]
    assert row["account"] == sandbox_account_id(READY)
    assert (row["desired"], row["running"]) == (2, 2)
    assert (row["healthy_targets"], row["registered_targets"]) == (2, 2)
    assert row["rollout"] == "COMPLETED"
    assert row["alb_health"] == "ok"
    assert row["error"] == ""
    assert row["usd_per_hour"] == pytest.approx(ALB + NAT + FARGATE + DB_AND_SECRET, abs=1e-4)


def test_a_student_without_the_service(board) -> None:
    row = board[HALF]
    assert row["error"] == "partly provisioned: no ECS service"
    assert row["registered_targets"] == 0
    assert row["alb_health"] == "HTTP 503", "an ALB without targets answers 503"
    assert row["usd_per_hour"] == pytest.approx(ALB + DB_AND_SECRET, abs=1e-4), (
        "no NAT gateway, no task"
    )


def test_a_student_never_provisioned(board) -> None:
    row = board[NEWCOMER]
    assert row["error"] == "not provisioned"
    assert row["account"] == sandbox_account_id(NEWCOMER)
    assert row["usd_per_hour"] == 0
    assert pd.isna(row["desired"]) and pd.isna(row["running"]) and row["rollout"] == ""


def test_the_board_counts_the_checks_each_student_passes(board) -> None:
    total = len(checks.names())
    lab = connect("sandbox", student=READY)
    passed = sum(checks.check(lab, name).passed for name in checks.names())
    assert passed >= 2, "chapter 7's own task definition and service pass their checks"
    assert board[READY]["checks"] == f"{passed}/{total}"
    assert board[NEWCOMER]["checks"] == f"0/{total}"


def test_the_class_cost_sums_the_students(roster) -> None:
    table = status(roster, backend="sandbox", parallel=3)
    cost = class_cost(table).iloc[0]
    hourly = ALB + NAT + FARGATE + DB_AND_SECRET + ALB + DB_AND_SECRET
    assert cost["students"] == 3
    assert cost["usd_per_hour"] == pytest.approx(hourly, abs=1e-3)
    assert cost["usd_per_month"] == pytest.approx(hourly * 730, abs=0.1)


def test_a_board_row_reads_each_resource_once(roster) -> None:
    # A class board refreshes 30 rows at a time: no describe call repeated within a row.
    lab = connect("sandbox", student=READY)
    student_status(lab)
    calls = lab.api_calls()
    described = calls[calls["operation"].str.startswith("Describe")]["operation"]
    assert described.value_counts().max() == 1, described.value_counts().to_dict()
