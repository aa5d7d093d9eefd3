"""Tearing down a class on the sandbox: the plan lists what the kit made, teardown_class
deletes it in every account (a failing student never stops the others), nothing is left."""

from __future__ import annotations

import pytest

import handson.teardown
from handson import chapters, ecs, logs
from handson.classroom import Roster, load_roster, teardown_class, teardown_plan
from handson.connection import connect, sandbox_account_id

FULL = "teardown-full"
LIGHT = "teardown-light"
EMPTY = "teardown-empty"


def write_roster(path, students):
    rows = [f"{s},{sandbox_account_id(s)}" for s in students]
    path.write_text("student,account_id\n" + "\n".join(rows) + "\n")
    return load_roster(path)


@pytest.fixture
def roster(sandbox_server, tmp_path):
    chapters.build_prerequisites(connect("sandbox", student=FULL), enable_nat_gateway=True)
    light = connect("sandbox", student=LIGHT)
    ecs.ensure_cluster(light)
    logs.ensure_log_group(light)
    return write_roster(tmp_path / "roster.csv", (FULL, LIGHT))


def test_plan_then_teardown_leaves_nothing_tagged(roster, monkeypatch) -> None:
    plan = teardown_plan(roster, backend="sandbox")
    assert list(plan.columns) == ["student", "service", "kind", "id", "error"]
    assert set(plan["error"]) == {""}
    kinds = plan.groupby("student")["kind"].apply(set).to_dict()
    assert {"vpc", "nat gateway", "load balancer", "cluster", "db instance", "role"} <= kinds[FULL]
    assert kinds[LIGHT] == {"cluster", "log group"}

    # One student's teardown fails: the others are still torn down, and the summary says so.
    real_teardown = handson.teardown.teardown

    def failing_for_light(lab):
        if lab.student == LIGHT:
            raise handson.HandsonError("the instructor's role may not delete this")
        return real_teardown(lab)

    monkeypatch.setattr(handson.teardown, "teardown", failing_for_light)
    summary = teardown_class(roster, backend="sandbox", parallel=2)
    assert list(summary.columns) == ["student", "status", "error", "leftovers"]
    rows = {r["student"]: r for r in summary.to_dict("records")}
    assert (rows[FULL]["status"], rows[FULL]["leftovers"], rows[FULL]["error"]) == ("ok", 0, "")
    assert rows[LIGHT]["status"] == "failed" and rows[LIGHT]["leftovers"] == 2
    assert rows[LIGHT]["error"].startswith("the instructor's role may not delete this; 2 tagged")
    assert set(teardown_plan(roster, backend="sandbox")["student"]) == {LIGHT}

    # Retry the student who failed.
    monkeypatch.setattr(handson.teardown, "teardown", real_teardown)
    retry = Roster(roster.path, tuple(s for s in roster if s.student == LIGHT))
    summary = teardown_class(retry, backend="sandbox")
    assert summary[["student", "status", "leftovers"]].values.tolist() == [[LIGHT, "ok", 0]]
    assert teardown_plan(roster.path, backend="sandbox").empty
    for student in (FULL, LIGHT):
        assert handson.teardown.leftovers(connect("sandbox", student=student)).empty


def test_teardown_of_a_student_never_provisioned_is_ok(sandbox_server, tmp_path) -> None:
    roster = write_roster(tmp_path / "roster.csv", (EMPTY,))
    assert teardown_plan(roster, backend="sandbox").empty
    summary = teardown_class(roster, backend="sandbox")
    assert summary[["status", "error", "leftovers"]].values.tolist() == [["ok", "", 0]]
