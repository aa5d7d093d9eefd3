"""The course end to end on the sandbox: notebooks 00 and 07 run headless for a student,
a second run changes nothing, teardown leaves nothing, and no secret leaks anywhere."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from handson import chapters, course, ecs, loadbalancer, logs, sandbox, teardown
from handson.connection import connect, sandbox_account_id
from handson.exceptions import FargateSizeError

STUDENT = "course-student"
NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"


def final_tables(lab) -> dict[str, list[dict]]:
    """The tables `make course` prints, without what changes by the second (times)."""
    service = ecs.show_service(lab)
    health = loadbalancer.show_target_health(lab)
    return {
        "service": service.to_dict("records"),
        "targets": health.to_dict("records"),
    }


@pytest.fixture(scope="module")
def course_run(sandbox_server, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    paths = course.run_course(student=STUDENT, notebooks=("00", "07"), out=out)
    lab = connect("sandbox", student=STUDENT)
    return {"out": out, "paths": paths, "lab": lab, "tables": final_tables(lab)}


def outputs_text(path: Path) -> str:
    notebook = nbformat.read(path, as_version=4)
    texts = []
    for cell in notebook.cells:
        texts.append(cell.source)
        for output in cell.get("outputs", []):
            texts.append(json.dumps(output))
    return "\n".join(texts)


def test_course_ends_with_two_running_tasks_healthy_targets_and_logs(course_run) -> None:
    lab = course_run["lab"]
    (row,) = course_run["tables"]["service"]
    assert (row["desired"], row["running"], row["pending"]) == (2, 2, 0)
    assert row["rollout_state"] == "COMPLETED"
    assert [t["state"] for t in course_run["tables"]["targets"]] == ["healthy", "healthy"]
    events = logs.show_log_events(lab, limit=50)
    assert events["message"].str.contains("Server listening").sum() == 2
    assert loadbalancer.call_alb(lab, "/health").json()["status"] == "healthy"


def test_second_run_creates_nothing_and_shows_the_same_tables(course_run, sandbox_config) -> None:
    lab = course_run["lab"]
    before = sandbox.mutating_calls(lab.account_id, sandbox_config)
    assert before, "the first run did change things"
    course.run_course(student=STUDENT, notebooks=("00", "07"), out=course_run["out"] / "again")
    after = sandbox.mutating_calls(lab.account_id, sandbox_config)
    # Counted by the sandbox server itself: zero mutating API calls on the second run.
    assert after == before
    assert final_tables(lab) == course_run["tables"]


def test_students_are_separate_accounts(course_run, make_lab) -> None:
    other = make_lab()
    assert other.account_id != course_run["lab"].account_id
    assert other.account_id == sandbox_account_id(other.student)
    assert other.client("ecs").list_clusters()["clusterArns"] == []
    assert other.client("ec2").describe_vpcs(Filters=other.tag_filters())["Vpcs"] == []
    assert teardown.leftovers(other).empty


def test_no_secret_anywhere(course_run, sandbox_config) -> None:
    lab = course_run["lab"]
    pre = chapters.get_prerequisites(lab)
    secret = json.loads(
        lab.client("secretsmanager").get_secret_value(SecretId=pre.database.secret_arn)[
            "SecretString"
        ]
    )
    password = secret["password"]
    assert len(password) == 32
    places = {str(p): outputs_text(p) for p in course_run["paths"]}
    places |= {str(p): outputs_text(p) for p in NOTEBOOK_DIR.glob("*.ipynb")}
    places["sandbox log"] = sandbox_config.log_file.read_text()
    places["app logs"] = "\n".join(logs.show_log_events(lab, limit=500)["message"])
    places["AWS CLI view"] = "\n".join(lab.cli_commands())
    for place, text in places.items():
        assert password not in text, place


def test_bad_task_size_fails_before_any_aws_call(make_lab, tmp_path, sandbox_config) -> None:
    lab = make_lab()
    with pytest.raises(FargateSizeError) as caught:
        ecs.task_definition_spec(
            lab,
            image_uri="x",
            execution_role_arn="x",
            task_role_arn="x",
            secret_arn="x",
            log_group="x",
            task_cpu=256,
            task_memory=4096,
        )
    message = str(caught.value)
    assert "512, 1024 or 2048" in message
    assert lab.log.calls == []
    # The notebook stops at its settings check: nothing is created in the account.
    student = "size-student"
    with pytest.raises(course.NotebookFailed) as failed:
        course.run_notebook(
            "07", tmp_path / "07.ipynb", {"student": student, "task_cpu": 256, "task_memory": 4096}
        )
    assert "FargateSizeError" in str(failed.value) and "512, 1024 or 2048" in str(failed.value)
    assert sandbox.mutating_calls(sandbox_account_id(student), sandbox_config) == {}


def test_teardown_leaves_nothing_tagged(course_run, tmp_path) -> None:
    lab = course_run["lab"]
    output = course.run_notebook("99", tmp_path / "99.ipynb", {"student": STUDENT})
    assert "Empty DataFrame" in outputs_text(output)
    assert teardown.leftovers(lab).empty
    # Running it again is safe.
    course.run_notebook("99", tmp_path / "99-again.ipynb", {"student": STUDENT})
    assert teardown.leftovers(lab).empty
