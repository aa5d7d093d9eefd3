"""Chapters 00 -> 07 -> 99 with AWS's control-plane time, as a learner runs them.

The other notebook runs (nbval) use the default control speed, ten times the data plane's
speed. Here the control plane runs at the data plane's own speed (20): an RDS instance is
``creating`` for 12 s, a NAT gateway ``pending`` for 4.5 s, a stopped task's network
interface lingers for 3 s. A notebook that skips a wait, or a teardown that deletes in the
wrong order, fails here as it would on AWS.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

from handson import course, sandbox
from handson.connection import connect
from handson.sandbox.config import DEFAULT_SPEED, SandboxConfig
from handson.teardown import leftovers

pytestmark = pytest.mark.slow
STUDENT = "timed01"


@pytest.fixture(scope="module")
def aws_timed_sandbox() -> Iterator[SandboxConfig]:
    # The environment points at it for the module, so the notebooks' kernels find it.
    with sandbox.private(control_speed=DEFAULT_SPEED) as config:
        yield config


def _outputs(path: Path) -> str:
    notebook = nbformat.read(path, as_version=4)
    return "\n".join(
        str(output.get("text", "")) + str(output.get("data", {}).get("text/plain", ""))
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )


def test_chapters_00_07_99_pass_with_awss_control_plane_time(
    aws_timed_sandbox: SandboxConfig, tmp_path: Path
) -> None:
    assert aws_timed_sandbox.effective_control_speed == DEFAULT_SPEED

    ran = course.run_course(student=STUDENT, notebooks=("00", "07", "99"), out=tmp_path)

    assert [p.name for p in ran] == [
        "00_setup.ipynb",
        "07_ecs_task_definition_and_service.ipynb",
        "99_teardown.ipynb",
    ]
    chapter7 = _outputs(ran[1])
    assert "COMPLETED" in chapter7  # the rollout after the push
    assert "healthy" in chapter7
    # Teardown waited for every state it needed (RDS deleting, NAT deleting, ENIs
    # released) and left nothing behind in the account.
    lab = connect("sandbox", student=STUDENT)
    assert leftovers(lab).empty
