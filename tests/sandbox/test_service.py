"""A service's life on the sandbox, driven with plain boto3: steady state, scaling,
rolling updates and draining. Expected strings and numbers are AWS's (docs/sandbox.md,
"Service events" and "Deployments and rolling updates")."""

from __future__ import annotations

import re
from collections import Counter

from world import World

DEPLOYMENT_ID = re.compile(r"^ecs-svc/\d{19}$")
TASK_ARN = re.compile(r"^arn:aws:ecs:ap-northeast-1:\d{12}:task/[\w-]+/[0-9a-f]{32}$")


def deploy(world: World, desired: int = 2) -> dict:
    world.push_image()
    world.register_task_definition()
    world.create_service(desired=desired)
    return world.wait_steady()


def test_new_service_reaches_steady_state(world: World) -> None:
    service = deploy(world)
    # One PRIMARY deployment, COMPLETED with AWS's reason text (docs/sandbox.md,
    # "Deployments and rolling updates").
    (deployment,) = service["deployments"]
    assert DEPLOYMENT_ID.match(deployment["id"])
    assert deployment["status"] == "PRIMARY"
    assert deployment["rolloutStateReason"] == f"ECS deployment {deployment['id']} completed."
    assert (service["desiredCount"], service["runningCount"], service["pendingCount"]) == (2, 2, 0)
    messages = world.messages()
    # Event shapes, newest first (docs/sandbox.md, "Service events").
    assert messages[0] == "(service demo-dev-app-service) has reached a steady state."
    assert messages[1] == (
        f"(service demo-dev-app-service) (deployment {deployment['id']}) deployment completed."
    )
    assert (
        f"(service demo-dev-app-service) registered 2 targets in (target-group {world.ids['tg']})"
        in messages
    )
    assert any(
        re.fullmatch(
            r"\(service demo-dev-app-service\) has started 2 tasks: \(task [0-9a-f]{32}\) \(task [0-9a-f]{32}\)\.",
            m,
        )
        for m in messages
    )
    # The boto3 waiter agrees: one deployment and runningCount == desiredCount
    # (docs/sandbox.md, "Deployments and rolling updates").
    world.client("ecs").get_waiter("services_stable").wait(
        cluster=world.ids["cluster"],
        services=[world.ids["service"]],
        WaiterConfig={"Delay": 1, "MaxAttempts": 5},
    )
    tasks = world.tasks()
    assert len(tasks) == 2
    for task in tasks:
        assert TASK_ARN.match(task["taskArn"])
        assert task["lastStatus"] == "RUNNING" and task["desiredStatus"] == "RUNNING"
        assert task["launchType"] == "FARGATE"
        assert task["group"] == "service:demo-dev-app-service"
        # No container health check in the task definition -> UNKNOWN, even though the
        # image's Dockerfile has a HEALTHCHECK: ECS ignores it (docs/sandbox.md, "Container
        # health checks").
        assert task["healthStatus"] == "UNKNOWN"
        for stamp in ("createdAt", "pullStartedAt", "pullStoppedAt", "startedAt"):
            assert stamp in task
        assert task["containers"][0]["lastStatus"] == "RUNNING"
        ip = task["containers"][0]["networkInterfaces"][0]["privateIpv4Address"]
        assert ip.startswith(("10.0.11.", "10.0.12.")), "tasks sit in the private subnets"
    # The two tasks are spread over both private subnets' AZs, and each has an ENI.
    assert {t["availabilityZone"] for t in tasks} == {"ap-northeast-1a", "ap-northeast-1c"}
    enis = world.client("ec2").describe_network_interfaces()["NetworkInterfaces"]
    task_ips = {t["containers"][0]["networkInterfaces"][0]["privateIpv4Address"] for t in tasks}
    assert task_ips <= {e["PrivateIpAddress"] for e in enis}
    # Both targets healthy, no reason (docs/sandbox.md, "ALB target health").
    health = world.target_health()
    assert sorted(h["Target"]["Id"] for h in health) == sorted(task_ips)
    assert {h["TargetHealth"]["State"] for h in health} == {"healthy"}
    assert all("Reason" not in h["TargetHealth"] for h in health)


def test_lifecycle_passes_through_every_state(world: World) -> None:
    world.push_image()
    world.register_task_definition()
    world.create_service(desired=1)
    seen: list[str] = []

    def watch() -> bool:
        for task in world.tasks():
            if not seen or seen[-1] != task["lastStatus"]:
                seen.append(task["lastStatus"])
        return bool(seen) and seen[-1] == "RUNNING"

    world.wait_for(watch, what="a RUNNING task")
    # The states come in this order, fast polling may skip none or some (docs/sandbox.md,
    # "Task lifecycle").
    order = ["PROVISIONING", "PENDING", "ACTIVATING", "RUNNING"]
    assert seen == sorted(set(seen), key=order.index)
    assert seen[0] in ("PROVISIONING", "PENDING")


def test_scale_two_three_one(world: World) -> None:
    world.push_image()
    world.register_task_definition()
    world.run_task()  # a task of another group, in one zone, counts for none of the service's
    world.create_service(desired=2)
    world.wait_steady()
    ecs = world.client("ecs")
    ecs.update_service(cluster=world.ids["cluster"], service=world.ids["service"], desiredCount=3)
    service = world.wait_for(
        lambda: (
            (s := world.service())["runningCount"] == 3
            and s["events"][0]["message"].endswith("steady state.")
            and s
        ),
        what="3 running",
    )
    assert service["desiredCount"] == 3
    assert len(service["deployments"]) == 1, "scaling is not a new deployment"
    # Spread over the zones, the odd task in the first subnet's zone: a fixed tie-break, so
    # a re-run of a lesson places the tasks alike (docs/sandbox.md, "Task placement").
    first_subnet = service["networkConfiguration"]["awsvpcConfiguration"]["subnets"][0]
    (first,) = world.client("ec2").describe_subnets(SubnetIds=[first_subnet])["Subnets"]
    zones = Counter(t["availabilityZone"] for t in world.tasks())
    assert zones == {
        first["AvailabilityZone"]: 2,
        ({"ap-northeast-1a", "ap-northeast-1c"} - {first["AvailabilityZone"]}).pop(): 1,
    }
    ecs.update_service(cluster=world.ids["cluster"], service=world.ids["service"], desiredCount=1)
    world.wait_for(lambda: world.service()["runningCount"] == 1, what="scale in to 1")
    stopping = world.tasks("STOPPED")
    assert len(stopping) == 2
    deployment_id = world.service()["deployments"][0]["id"]
    for task in stopping:
        # Scale-in reason and code (docs/sandbox.md, "Task stop codes and reasons").
        assert task["stopCode"] == "ServiceSchedulerInitiated"
        assert (
            task["stoppedReason"] == f"Scaling activity initiated by (deployment {deployment_id})"
        )
    world.wait_steady()
    assert len(world.tasks()) == 1


def test_draining_on_scale_in(world: World) -> None:
    deploy(world)
    ecs = world.client("ecs")
    ecs.update_service(cluster=world.ids["cluster"], service=world.ids["service"], desiredCount=1)
    # The deregistered target is draining for the deregistration delay (60 s here, 3 s at
    # the default speed) while its task sits in DEACTIVATING (docs/sandbox.md, "ALB target
    # health" and "Task lifecycle").
    draining = world.wait_for(
        lambda: [h for h in world.target_health() if h["TargetHealth"]["State"] == "draining"],
        what="a draining target",
    )
    assert draining[0]["TargetHealth"]["Reason"] == "Target.DeregistrationInProgress"
    assert draining[0]["TargetHealth"]["Description"] == "Target deregistration is in progress"
    stopping = [
        t for t in world.tasks("STOPPED") if t["stoppedReason"].startswith("Scaling activity")
    ]
    assert [t["lastStatus"] for t in stopping] == ["DEACTIVATING"]
    messages = world.messages()
    assert any(
        re.fullmatch(
            r"\(service demo-dev-app-service, taskSet ecs-svc/\d{19}\) has begun draining connections on 1 tasks\.",
            m,
        )
        for m in messages
    )
    assert (
        f"(service demo-dev-app-service) deregistered 1 targets in (target-group {world.ids['tg']})"
        in messages
    )
    # After the delay the target is gone and the task passes STOPPING and DEPROVISIONING.
    world.wait_for(lambda: len(world.target_health()) == 1, what="draining to end")
    task = world.wait_for(
        lambda: (t := world.tasks("STOPPED")) and t[0]["lastStatus"] == "STOPPED" and t[0],
        what="the task to stop",
    )
    for stamp in ("stoppingAt", "executionStoppedAt", "stoppedAt"):
        assert stamp in task
    assert task["stoppedAt"] >= task["stoppingAt"]


def test_rolling_update_keeps_minimum_healthy(world: World) -> None:
    deploy(world)
    old = world.service()["deployments"][0]
    old_tasks = {t["taskArn"] for t in world.tasks()}
    world.register_task_definition(
        container={
            "environment": [
                {"name": "APP_ENV", "value": "staging"},
                {"name": "PORT", "value": "3000"},
            ]
        }
    )
    ecs = world.client("ecs")
    ecs.update_service(
        cluster=world.ids["cluster"],
        service=world.ids["service"],
        taskDefinition=world.ids["task_definition"],
    )
    lowest_healthy = 2
    saw_two_deployments = False

    def done() -> bool:
        nonlocal lowest_healthy, saw_two_deployments
        healthy = sum(h["TargetHealth"]["State"] == "healthy" for h in world.target_health())
        lowest_healthy = min(lowest_healthy, healthy)
        service = world.service()
        if len(service["deployments"]) == 2:
            saw_two_deployments = True
            primary, active = service["deployments"]
            assert (primary["status"], active["status"]) == ("PRIMARY", "ACTIVE")
            assert active["id"] == old["id"]
            # At most floor(2 x 200%) = 4 tasks running or pending (docs/sandbox.md,
            # "Deployments and rolling updates").
            assert service["runningCount"] + service["pendingCount"] <= 4
        return (
            len(service["deployments"]) == 1
            and service["deployments"][0]["rolloutState"] == "COMPLETED"
            and service["runningCount"] == 2
        )

    world.wait_for(done, what="the rollout to finish")
    assert saw_two_deployments
    # Min 100% keeps 2 healthy targets throughout (docs/sandbox.md, "Deployments and
    # rolling updates").
    assert lowest_healthy >= 2
    new_tasks = world.tasks()
    assert not old_tasks & {t["taskArn"] for t in new_tasks}
    assert {t["taskDefinitionArn"] for t in new_tasks} == {world.ids["task_definition"]}
    for task in world.tasks("STOPPED"):
        assert task["stoppedReason"] == f"Scaling activity initiated by (deployment {old['id']})"


def test_force_new_deployment_replaces_tasks(world: World) -> None:
    deploy(world)
    before = {t["taskArn"] for t in world.tasks()}
    first = world.service()["deployments"][0]["id"]
    world.client("ecs").update_service(
        cluster=world.ids["cluster"], service=world.ids["service"], forceNewDeployment=True
    )
    service = world.wait_for(
        lambda: (s := world.wait_steady()) and s["deployments"][0]["id"] != first and s,
        what="a new completed deployment",
    )
    assert service["deployments"][0]["taskDefinition"] == world.ids["task_definition"]
    assert not before & {t["taskArn"] for t in world.tasks()}


def test_stop_task_is_replaced(world: World) -> None:
    deploy(world)
    ecs = world.client("ecs")
    victim = world.tasks()[0]["taskArn"]
    answer = ecs.stop_task(cluster=world.ids["cluster"], task=victim)["task"]
    # The answer shows desiredStatus STOPPED while the task is still winding down
    # (docs/sandbox.md, "Task lifecycle").
    assert answer["desiredStatus"] == "STOPPED"
    assert answer["lastStatus"] != "STOPPED"
    world.wait_for(
        lambda: len(world.tasks()) == 2 and victim not in {t["taskArn"] for t in world.tasks()},
        what="a replacement",
    )
    stopped = ecs.describe_tasks(cluster=world.ids["cluster"], tasks=[victim])["tasks"][0]
    assert stopped["stopCode"] == "UserInitiated"
    assert stopped["stoppedReason"] == "Task stopped by user"
    world.wait_steady()
