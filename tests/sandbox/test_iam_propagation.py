"""IAM is eventually consistent: ECS can't assume a role for a few seconds after it was
created or its trust policy changed (docs/sandbox.md, "IAM roles and propagation"), on a
sandbox of its own whose control plane runs 8 times faster than AWS (the 8 s propagation
lasts 1 s). A launch that fails for it counts for the circuit breaker (docs/sandbox.md,
"Deployment circuit breaker")."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from world import ECS_TASKS_TRUST, EXECUTION_POLICY_ARN, World

from handson import sandbox
from handson.sandbox.config import SandboxConfig
from handson.sandbox.dataplane.control import DURATIONS

CONTROL_SPEED = 8.0
PROPAGATION = DURATIONS["iam-role.propagation"] / CONTROL_SPEED  # wall-clock seconds
ASSUME_ROLE_ERROR = (
    "ECS was unable to assume the role '{arn}' that was provided for this task. Please verify "
    "that the role being passed has the proper trust relationship and permissions and that "
    "your IAM user has permissions to pass this role."
)
_accounts = itertools.count(500000000001)


@pytest.fixture(scope="module")
def timed_sandbox() -> Iterator[SandboxConfig]:
    with sandbox.private(control_speed=CONTROL_SPEED) as config:
        yield config


def _build(world: World) -> World:
    """Network without NAT, cluster, roles, log group and the pushed image: tasks run in a
    public subnet with a public IP, without a database or an ALB."""
    world.build_network(nat=False)
    world.build_cluster_and_roles()
    world.push_image()
    return world


@pytest.fixture
def world(timed_sandbox: SandboxConfig) -> Iterator[World]:
    w = _build(World(timed_sandbox.endpoint_url, str(next(_accounts))))
    yield w
    w.stop_services()


@pytest.fixture
def instant_world(new_account: World) -> World:
    """The same in the shared sandbox, whose control plane is instant."""
    return _build(new_account)


def _public_network(world: World) -> dict[str, Any]:
    return {
        "awsvpcConfiguration": {
            "subnets": [world.ids["subnets"]["public_a"]],
            "securityGroups": [world.ids["sgs"]["ecs"]],
            "assignPublicIp": "ENABLED",
        }
    }


def _new_execution_role(world: World, name: str) -> str:
    iam = world.client("iam")
    arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=ECS_TASKS_TRUST)["Role"]["Arn"]
    iam.attach_role_policy(RoleName=name, PolicyArn=EXECUTION_POLICY_ARN)
    return str(arn)


def _run_task(world: World) -> str:
    return world.run_task(networkConfiguration=_public_network(world))


def _refusal(world: World) -> tuple[str, str]:
    with pytest.raises(ClientError) as refused:
        _run_task(world)
    error = refused.value.response["Error"]
    return error["Code"], error["Message"]


def _run_when_propagated(world: World, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return _run_task(world)
        except ClientError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.mark.slow
def test_run_task_right_after_create_role_is_refused_until_the_role_propagated(world) -> None:
    created = time.monotonic()
    arn = _new_execution_role(world, "demo-dev-fresh-role")
    world.register_task_definition(executionRoleArn=arn)

    assert _refusal(world) == ("ClientException", ASSUME_ROLE_ERROR.format(arn=arn))
    _run_when_propagated(world)
    assert time.monotonic() - created >= PROPAGATION

    # A changed trust policy propagates again.
    changed = time.monotonic()
    world.client("iam").update_assume_role_policy(
        RoleName="demo-dev-fresh-role", PolicyDocument=ECS_TASKS_TRUST
    )
    assert _refusal(world) == ("ClientException", ASSUME_ROLE_ERROR.format(arn=arn))
    _run_when_propagated(world)
    assert time.monotonic() - changed >= PROPAGATION


@pytest.mark.slow
def test_a_service_created_right_after_its_role_fails_to_launch_then_runs(world) -> None:
    arn = _new_execution_role(world, "demo-dev-fresh-role")
    world.register_task_definition(executionRoleArn=arn)
    world.create_service(desired=1, networkConfiguration=_public_network(world))
    failed = (
        "(service demo-dev-app-service) failed to launch a task with "
        f"(error {ASSUME_ROLE_ERROR.format(arn=arn)})."
    )

    def failed_once() -> dict[str, Any] | None:
        service = world.service()
        return service if failed in [e["message"] for e in service["events"]] else None

    seen = world.wait_for(failed_once, what="the launch failure event")
    # No task was created; the failed launch counts for the circuit breaker.
    assert seen["deployments"][0]["failedTasks"] == 1
    assert not world.tasks() and not world.tasks("STOPPED")

    steady = world.wait_steady()
    assert steady["runningCount"] == 1
    messages = list(reversed(world.messages()))  # oldest first
    assert messages[0] == failed
    assert messages.count(failed) == 1  # the scheduler's retry comes after the propagation
    assert messages[1].startswith("(service demo-dev-app-service) has started 1 tasks:")
    assert messages[-1] == "(service demo-dev-app-service) has reached a steady state."


def test_with_an_instant_control_plane_a_new_role_works_at_once(instant_world) -> None:
    world = instant_world
    arn = _new_execution_role(world, "demo-dev-fresh-role")
    world.register_task_definition(executionRoleArn=arn)
    _run_task(world)
    world.create_service(desired=1, networkConfiguration=_public_network(world))
    world.wait_steady()
    assert not [m for m in world.messages() if "unable to assume" in m]


def test_launch_failures_count_for_the_circuit_breaker(instant_world) -> None:
    # A role ECS can never assume: each task the scheduler can't launch is a failed task,
    # and at the threshold (3 for desired 3) the deployment fails without any task.
    world = instant_world
    iam = world.client("iam")
    arn = iam.create_role(
        RoleName="demo-dev-wrong-trust",
        AssumeRolePolicyDocument=ECS_TASKS_TRUST.replace("ecs-tasks", "ec2"),
    )["Role"]["Arn"]
    world.register_task_definition(executionRoleArn=arn)
    world.create_service(desired=3, networkConfiguration=_public_network(world))

    deployment = world.wait_for(
        lambda: (d := world.service()["deployments"][0])["rolloutState"] == "FAILED" and d,
        what="the circuit breaker",
    )
    assert deployment["failedTasks"] == 3
    assert deployment["rolloutStateReason"] == (
        "ECS deployment circuit breaker: tasks failed to start."
    )
    assert (
        "(service demo-dev-app-service) (deployment "
        f"{deployment['id']}) deployment failed: tasks failed to start."
    ) in world.messages()
    assert not world.tasks() and not world.tasks("STOPPED")
