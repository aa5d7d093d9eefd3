"""Memory limits, and the port, role and log mistakes AWS reports (docs/sandbox.md, "Memory
limits" and "IAM roles and propagation"), with plain boto3 against the sandbox."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest
from world import World

from handson.sandbox.dataplane.memory import (
    MAX_SAMPLE_SECONDS,
    MIB,
    SAMPLE_SECONDS,
    MemoryWatcher,
    next_sample_in,
)
from handson.sandbox.dataplane.secrets import LOG_GROUP_MISSING_REASON

OOM_REASON = "OutOfMemoryError: Container killed due to memory usage"
ASSUME_ROLE_ERROR = (
    "ECS was unable to assume the role '{arn}' that was provided for this task. Please verify "
    "that the role being passed has the proper trust relationship and permissions and that "
    "your IAM user has permissions to pass this role."
)
# Waits for a trigger file, then allocates 4 MiB at a time until it is killed.
ALLOCATE = """
import os, sys, time
print("started", flush=True)
while not os.path.exists(sys.argv[1]):
    time.sleep(0.02)
print("allocating", flush=True)
held = []
while True:
    held.append(b"x" * (4 * 1024 * 1024))
    time.sleep(0.002)
"""


def error_of(call: Any, **kwargs: Any) -> dict[str, str]:
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call(**kwargs)
    return dict(caught.value.response["Error"])


def first_stopped(world: World) -> dict[str, Any]:
    return dict(
        world.wait_for(
            lambda: (t := world.tasks("STOPPED")) and t[0].get("stopCode") and t[0],
            what="a stopped task",
        )
    )


def describe(world: World, arn: str) -> dict[str, Any]:
    ecs = world.client("ecs")
    return dict(ecs.describe_tasks(cluster=world.ids["cluster"], tasks=[arn])["tasks"][0])


def wait_status(world: World, arn: str, status: str) -> dict[str, Any]:
    return dict(
        world.wait_for(
            lambda: (t := describe(world, arn))["lastStatus"] == status and t,
            what=f"task {status}",
        )
    )


def assert_oom(task: dict[str, Any]) -> None:
    assert task["stopCode"] == "EssentialContainerExited"
    assert task["stoppedReason"] == "Essential container in task exited"
    (container,) = task["containers"]
    assert container["exitCode"] == 137
    assert container["reason"] == OOM_REASON


# ------------------------------------------------------------------ memory limits


def test_a_task_far_from_its_limit_is_sampled_less_often() -> None:
    assert next_sample_in(0) == SAMPLE_SECONDS
    assert next_sample_in(10 * MIB) == SAMPLE_SECONDS
    assert next_sample_in(512 * MIB) == pytest.approx(0.5)
    assert next_sample_in(8192 * MIB) == MAX_SAMPLE_SECONDS


def test_the_watcher_samples_a_task_again_when_it_is_due() -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        watcher = MemoryWatcher(interval=3600)  # its own thread stays out of the way
        watcher.watch("task", {"app": (sleeper.pid, 1024 * MIB)}, None)
        entry = watcher._tasks["task"]
        watcher.sample(now=100.0)
        used = entry.peak["app"]
        assert entry.due == pytest.approx(100.0 + next_sample_in(1024 * MIB - used))
        due = entry.due
        watcher.sample(now=due - 0.01)  # not yet: untouched
        assert entry.due == due
        watcher.sample(now=due)
        assert entry.due > due
    finally:
        watcher.stop()
        sleeper.kill()
        sleeper.wait()


def test_container_memory_below_what_the_app_uses(world: World) -> None:
    """The kit's app needs more than 20 MiB: it is killed as it starts."""
    world.push_image()
    world.register_task_definition(container={"memory": 20})
    world.create_service(desired=1)
    assert_oom(first_stopped(world))


def test_allocating_past_the_limit_in_a_running_task(world: World, tmp_path: Path) -> None:
    world.push_image()
    trigger = tmp_path / "allocate-now"
    world.register_task_definition(
        container={"memory": 64, "command": ["python", "-c", ALLOCATE, str(trigger)]}
    )
    arn = world.run_task()
    running = wait_status(world, arn, "RUNNING")
    assert "reason" not in running["containers"][0]
    trigger.touch()
    task = wait_status(world, arn, "STOPPED")
    assert_oom(task)


def test_task_memory_limits_containers_without_their_own(world: World, tmp_path: Path) -> None:
    world.push_image()
    trigger = tmp_path / "allocate-now"
    trigger.touch()
    world.register_task_definition(container={"command": ["python", "-c", ALLOCATE, str(trigger)]})
    task = wait_status(world, world.run_task(), "STOPPED")
    assert_oom(task)


def test_memory_reservation_is_a_soft_limit(world: World) -> None:
    """memoryReservation below what the app uses is not enforced; the chapter's 512 MiB
    task runs the app without a kill."""
    world.push_image()
    world.register_task_definition(container={"memoryReservation": 16})
    world.create_service(desired=1)
    service = world.wait_steady()
    assert service["runningCount"] == 1
    assert not world.tasks("STOPPED")


def test_run_task_memory_override(world: World) -> None:
    world.push_image()
    world.register_task_definition()
    name = f"{world.name}-app"
    arn = world.run_task(overrides={"containerOverrides": [{"name": name, "memory": 20}]})
    assert_oom(wait_status(world, arn, "STOPPED"))


def _definition(container: dict[str, Any], **task: Any) -> dict[str, Any]:
    definition: dict[str, Any] = {
        "family": "worker",
        "networkMode": "awsvpc",
        "requiresCompatibilities": ["FARGATE"],
        "cpu": "256",
        "memory": "512",
        "containerDefinitions": [{"name": "worker", "image": "busybox", **container}],
    }
    definition.update(task)
    return {k: v for k, v in definition.items() if v is not None}


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        (
            _definition({"memory": 1024}),
            "The 'memory' setting for container 'worker' is greater than for the task.",
        ),
        (
            _definition({"memory": 128, "memoryReservation": 256}),
            "Invalid setting for container 'worker'. The 'memory' setting must be greater "
            "than or equal to 'memoryReservation'.",
        ),
        (
            _definition({}, requiresCompatibilities=["EC2"], cpu=None, memory=None),
            "Invalid setting for container 'worker'. At least one of 'memory' or "
            "'memoryReservation' must be specified.",
        ),
        (
            _definition({"memory": 128}, memory=None),
            "Fargate requires that 'memory' be defined at the task level.",
        ),
        (
            _definition({"memoryReservation": 1024}),
            "The sum of all container 'memoryReservation' values cannot be greater than the "
            "value of the task 'memory'.",
        ),
        (
            _definition(
                {
                    "logConfiguration": {
                        "logDriver": "awslogs",
                        "options": {"awslogs-group": "/ecs/worker", "awslogs-region": "x"},
                    }
                }
            ),
            "Fargate requires task definition to have execution role ARN to support log "
            "driver awslogs.",
        ),
    ],
)
def test_refused_registrations(
    new_account: World, definition: dict[str, Any], message: str
) -> None:
    ecs = new_account.client("ecs")
    error = error_of(ecs.register_task_definition, **definition)
    assert (error["Code"], error["Message"]) == ("ClientException", message)


def test_accepted_memory_settings(new_account: World) -> None:
    ecs = new_account.client("ecs")
    for container in ({"memory": 512}, {"memory": 256, "memoryReservation": 256}, {}):
        ecs.register_task_definition(**_definition(container))


# ------------------------------------------------------------- ports, roles, logs


def test_load_balancer_port_the_container_does_not_map(world: World) -> None:
    world.push_image()
    world.register_task_definition()
    ecs = world.client("ecs")
    balancer = {"targetGroupArn": world.ids["tg"], "containerName": "demo-dev-app"}
    error = error_of(world.create_service, loadBalancers=[{**balancer, "containerPort": 8080}])
    assert error["Code"] == "InvalidParameterException"
    assert (
        error["Message"] == "The container demo-dev-app did not have a container port 8080 defined."
    )
    world.create_service(desired=0)
    other = world.register_task_definition(
        container={"portMappings": [{"containerPort": 8080, "protocol": "tcp"}]}
    )
    error = error_of(
        ecs.update_service,
        cluster=world.ids["cluster"],
        service=world.ids["service"],
        taskDefinition=other,
    )
    assert error["Code"] == "InvalidParameterException"
    assert (
        error["Message"] == "The container demo-dev-app did not have a container port 3000 defined."
    )


def test_execution_role_ecs_cannot_assume(world: World) -> None:
    world.push_image()
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "ec2.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    arn = world.client("iam").create_role(
        RoleName="demo-dev-wrong-trust", AssumeRolePolicyDocument=json.dumps(trust)
    )["Role"]["Arn"]
    world.register_task_definition(executionRoleArn=arn)
    expected = ASSUME_ROLE_ERROR.format(arn=arn)
    error = error_of(world.run_task)
    assert (error["Code"], error["Message"]) == ("ClientException", expected)
    world.create_service(desired=1)
    event = f"(service demo-dev-app-service) failed to launch a task with (error {expected})."
    world.wait_for(lambda: event in world.messages(), what="the launch failure event")
    assert not world.tasks() and not world.tasks("STOPPED")


def test_missing_log_group_has_aws_wording(world: World) -> None:
    world.client("logs").delete_log_group(logGroupName=world.ids["log_group"])
    world.push_image()
    world.register_task_definition()
    task = wait_status(world, world.run_task(), "STOPPED")
    assert task["stopCode"] == "TaskFailedToStart"
    assert task["stoppedReason"] == LOG_GROUP_MISSING_REASON
    assert LOG_GROUP_MISSING_REASON == (
        "ResourceInitializationError: failed to validate logger args: create stream has been "
        "retried 1 times: failed to create Cloudwatch log stream: ResourceNotFoundException: "
        "The specified log group does not exist. : exit status 1"
    )
