"""Live views: a watch polls from its own thread for a set time, shows its text in place
(replaced, or appended for a log), ends at its time, on Stop or on an error; in a kernel
the cell returns at once and the saved notebook keeps a line saying what ran live;
``logs.follow`` shows a new event, ``ecs.watch_service`` the service and its tasks."""

from __future__ import annotations

import itertools
import threading
import time

import nbformat
import pytest
from nbclient import NotebookClient

from handson import chapters, ecs, live, logs
from handson.exceptions import ConfigurationError


def counter() -> live.Poll:
    numbers = itertools.count(1)
    return lambda: f"poll {next(numbers)}"


def test_a_watch_replaces_its_text_and_ends_at_its_time(capsys: pytest.CaptureFixture[str]) -> None:
    view = live.Watch("counter", counter(), seconds=0.3, interval=0.05).start()
    assert view.wait(10)
    polls = int(view.text.split()[1])
    assert polls >= 2 and view.text == f"poll {polls}", "each poll's text replaces the last"
    assert view.status.startswith("counter: ended after") and view.error is None
    printed = capsys.readouterr().out.split("\n\n")
    assert printed[:2] == ["poll 1", "poll 2"], "outside a notebook it prints each new text"


def test_an_appending_watch_keeps_every_line(capsys: pytest.CaptureFixture[str]) -> None:
    view = live.Watch("log", counter(), seconds=0.3, interval=0.05, append=True).start()
    assert view.wait(10)
    lines = view.text.splitlines()
    assert lines == [f"poll {n}" for n in range(1, len(lines) + 1)] and len(lines) >= 2
    assert capsys.readouterr().out.splitlines() == lines


def test_the_stop_button_ends_it_sooner() -> None:
    view = live.Watch("counter", counter(), seconds=600, interval=0.05)
    view.widget()
    view.start()
    time.sleep(0.2)
    label, button, body = view._widgets  # type: ignore[misc]
    assert label.value.startswith("counter: live,") and "poll" in body.value
    button.click()
    assert view.wait(10), "stopped long before its 600 s"
    assert view.status.startswith("counter: stopped after") and button.disabled
    assert label.value == view.status


def test_a_failing_poll_ends_it_and_says_why() -> None:
    def poll() -> str:
        raise RuntimeError("the service is gone")

    view = live.Watch("service", poll, seconds=600, interval=0.05).start()
    assert view.wait(10)
    assert isinstance(view.error, RuntimeError)
    assert view.status == "service: stopped by an error: the service is gone"


@pytest.mark.parametrize("seconds, interval", [(0, 1), (10, 0), (-1, 1)])
def test_a_watch_needs_a_time_and_an_interval(seconds: float, interval: float) -> None:
    with pytest.raises(ConfigurationError, match="must be more than 0"):
        live.Watch("x", counter(), seconds=seconds, interval=interval)


KERNEL_CELLS = [
    """\
import itertools
from handson import live

numbers = itertools.count(1)
view = live.watch("counter", lambda: f"poll {next(numbers)}", seconds=1, interval=0.1)
view""",
    "print(view.wait(10), view.status.split(' after')[0], view.text)",
]


def test_in_a_kernel_the_cell_returns_at_once_and_the_watch_goes_on() -> None:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in KERNEL_CELLS])
    NotebookClient(notebook, kernel_name="python3", timeout=60).execute()
    (shown,) = notebook.cells[0].outputs
    assert "application/vnd.jupyter.widget-view+json" in shown["data"], "live in JupyterLab"
    assert shown["data"]["text/plain"] == (
        "(a live view of counter for 1 s, with a Stop button)"
    ), "what a saved notebook shows"
    (ended,) = notebook.cells[1].outputs
    assert ended["text"].startswith("True counter: ended poll ")
    assert int(ended["text"].split()[-1]) >= 5, "it kept polling after its cell returned"


def test_follow_shows_a_new_event_within_one_poll(lab, capsys: pytest.CaptureFixture[str]) -> None:
    logs.ensure_log_group(lab)
    group = logs.log_group_name(lab)
    client = lab.client("logs")
    client.create_log_stream(logGroupName=group, logStreamName="ecs/app/one")

    def put(message: str) -> None:
        client.put_log_events(
            logGroupName=group,
            logStreamName="ecs/app/one",
            logEvents=[{"timestamp": int(time.time() * 1000), "message": message}],
        )

    put("GET /health 200")
    later = threading.Timer(1.0, put, args=("POST /api/users 201",))
    later.start()
    view = logs.follow(lab, seconds=logs.FOLLOW_SECONDS + 1)
    later.join()
    assert [line.split(" ", 1)[1] for line in view.text.splitlines()] == [
        "GET /health 200",
        "POST /api/users 201",
    ], "each event once, the new one at the next poll"
    assert capsys.readouterr().out.splitlines() == view.text.splitlines()
    with pytest.raises(ConfigurationError, match="detailed or short"):
        logs.follow(lab, fmt="long")


def test_watch_service_shows_the_deployment_and_its_tasks(sandbox_server) -> None:
    from handson.connection import connect

    lab = connect("sandbox", student="live-watch-student")
    chapters.deploy_chapter7(lab, chapters.build_prerequisites(lab))
    view = ecs.watch_service(lab, seconds=0.5)
    assert view.error is None
    summary, service, tasks, events = view.text.split("\n\n")
    assert summary == "2/2 tasks running, 0 pending, rollout COMPLETED"
    assert "PRIMARY" in service and "COMPLETED" in service
    assert len(tasks.splitlines()) == 3 and tasks.count("RUNNING") == 2
    assert "has reached a steady state." in events
