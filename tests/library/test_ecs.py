"""handson.ecs on the sandbox: the chapter's task definition and service, step by step."""

from __future__ import annotations

import pytest

from handson import chapters, ecs, iam, logs, progress, registry
from handson.exceptions import ConfigurationError, DeploymentError, NotFoundError


@pytest.fixture(scope="module")
def built(sandbox_server):
    """Chapters 1-6 for one student, shared by the tests of this module."""
    from handson.connection import connect

    lab = connect("sandbox", student="ecs-module-student")
    pre = chapters.build_prerequisites(lab, enable_nat_gateway=True)
    iam.ensure_execution_secret_policy(lab, secret_arn=pre.database.secret_arn)
    return lab, pre


def create_service(lab, pre, task_definition, count=2):
    return ecs.ensure_service(
        lab,
        task_definition_arn=task_definition.arn,
        private_subnet_ids=list(pre.network.private_subnet_ids),
        security_group_id=pre.network.ecs_security_group_id,
        target_group_arn=pre.alb.target_group_arn,
        app_count=count,
    )


def test_task_definition_is_the_chapters(built) -> None:
    lab, pre = built
    spec = chapters.task_definition_spec(lab, pre)
    assert spec["family"] == "my-project-dev-app"
    (container,) = spec["containerDefinitions"]
    assert container["environment"] == [
        {"name": "APP_ENV", "value": "production"},
        {"name": "PORT", "value": "3000"},
    ]
    assert [s["valueFrom"].rsplit(":", 3)[1:] for s in container["secrets"]] == [
        ["host", "", ""], ["port", "", ""], ["dbname", "", ""], ["username", "", ""], ["password", "", ""],
    ]  # fmt: skip
    assert "healthCheck" not in container
    first = ecs.ensure_task_definition(lab, spec)
    calls = len(lab.log.mutating())
    again = ecs.ensure_task_definition(lab, spec)
    assert again == first and len(lab.log.mutating()) == calls, "same content: no new revision"
    changed = ecs.ensure_task_definition(
        lab, chapters.task_definition_spec(lab, pre, task_cpu=512, task_memory=1024)
    )
    assert changed.revision == first.revision + 1
    registered = lab.client("ecs").describe_task_definition(
        taskDefinition=first.arn, include=["TAGS"]
    )
    assert {"key": "Student", "value": lab.student} in registered["tags"]


def test_settings_are_checked_first() -> None:
    with pytest.raises(ConfigurationError, match="app_count"):
        ecs.check_settings(256, 512, 11)
    with pytest.raises(ConfigurationError, match="512, 1024 or 2048"):
        ecs.check_settings(256, 4096, 2)
    assert ecs.check_settings("1 vCPU", "2GB", 2) == (1024, 2048)


def test_service_fails_then_runs_after_push_and_restart(built) -> None:
    lab, pre = built
    td = ecs.ensure_task_definition(lab, chapters.task_definition_spec(lab, pre))
    service = create_service(lab, pre, td)
    assert service.desired_count == 2
    # No image yet: the circuit breaker fails the first deployment (the chapter's flow).
    with pytest.raises(DeploymentError) as failed:
        ecs.wait_for_rollout(lab, timeout=120, poll=0.2)
    assert "CannotPullContainerError" in str(failed.value)
    assert "push it with push_image()" in str(failed.value)
    stopped = ecs.show_stopped_tasks(lab)
    assert set(stopped["stop_code"]) == {"TaskFailedToStart"}
    reasons = ecs.show_stop_reasons(lab)  # one row per cause, not per task
    assert len(reasons) == 1 and len(stopped) >= 3
    assert reasons["stopped_reason"][0].startswith("CannotPullContainerError")
    assert reasons["zones"][0] == "ap-northeast-1a, ap-northeast-1c"
    assert "push it with push_image()" in reasons["check"][0]
    image = registry.push_image(lab)
    deployment = ecs.restart_service(lab, image_digest=image.digest)
    assert deployment is not None and deployment.startswith("ecs-svc/")
    table = ecs.wait_for_rollout(lab, timeout=120, poll=0.2)
    assert table[["desired", "running", "rollout_state"]].values.tolist() == [[2, 2, "COMPLETED"]]
    # Restarting again with the same image changes nothing: every task runs it already.
    mutating = len(lab.log.mutating())
    assert ecs.restart_service(lab, image_digest=image.digest) is None
    # Re-running the create step keeps the running task definition (ignore_changes).
    newer = ecs.ensure_task_definition(
        lab, chapters.task_definition_spec(lab, pre, task_cpu=512, task_memory=1024)
    )
    create_service(lab, pre, newer)
    assert len(lab.log.mutating()) == mutating + 1, "only the new revision was registered"
    assert ecs.describe_service(lab)["taskDefinition"] != newer.arn
    tasks = ecs.show_tasks(lab)
    assert len(tasks) == 2 and set(tasks["last_status"]) == {"RUNNING"}
    assert list(tasks["availability_zone"]) == sorted(tasks["availability_zone"])
    assert set(tasks["health"]) == {"UNKNOWN"}, "no container health check is declared"
    events = ecs.show_service_events(lab, limit=3)
    assert events["message"][0].endswith("has reached a steady state.")


def test_a_service_made_again_lists_only_its_own_stopped_tasks(built) -> None:
    """ListTasks finds tasks by service name, so a deleted namesake's stopped tasks are
    listed for an hour (a course run again after its teardown); the views keep the tasks
    created since this service was (DescribeServices' createdAt)."""
    lab, pre = built
    if not ecs.show_service(lab)["running"].eq(2).all():
        pytest.skip("needs the running service of the previous test")
    ecs.restart_service(lab)
    ecs.wait_for_rollout(lab, timeout=120, poll=0.2)
    assert len(ecs.show_stopped_tasks(lab)) >= 2
    ecs.delete_service(lab)
    create_service(lab, pre, ecs.latest_task_definition(lab))
    ecs.wait_for_rollout(lab, timeout=120, poll=0.2)
    listed = lab.client("ecs").list_tasks(
        cluster=lab.name("cluster"), serviceName=lab.name("app-service"), desiredStatus="STOPPED"
    )["taskArns"]
    assert len(listed) >= 2, "AWS lists the namesake's stopped tasks too"
    assert ecs.show_stopped_tasks(lab).empty
    assert ecs.show_stop_reasons(lab).empty
    assert len(ecs.show_tasks(lab)) == 2


def test_scale_and_delete(built) -> None:
    lab, pre = built
    if not ecs.show_service(lab)["running"].eq(2).all():
        pytest.skip("needs the running service of the previous test")
    ecs.scale_service(lab, 1)
    table = ecs.wait_for_rollout(lab, timeout=120, poll=0.2)
    assert table["running"].tolist() == [1]
    outputs = ecs.outputs(lab)
    assert outputs["ecs_service_name"] == "my-project-dev-app-service"
    assert outputs["ecs_task_definition_family"] == "my-project-dev-app"
    ecs.delete_service(lab)
    with pytest.raises(NotFoundError):
        ecs.describe_service(lab)
    ecs.delete_service(lab)  # idempotent
    ecs.delete_task_definitions(lab)
    ecs.delete_cluster(lab)
    ecs.delete_cluster(lab)
    with pytest.raises(NotFoundError):
        ecs.cluster_arn(lab)


@pytest.mark.slow
def test_a_rollout_stopped_while_the_roles_propagated_is_deployed_again(timed_lab) -> None:
    # IAM is eventually consistent: a service of 3 tasks created right after its roles
    # fails its first launch, which trips the circuit breaker (3 failed tasks); the wait
    # deploys again once the roles have propagated, and the service becomes steady.
    lab = timed_lab(8)  # the roles propagate in 1 s
    ec2 = lab.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="app", Description="app", VpcId=vpc)["GroupId"]
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    table = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc]}])
    route_table = table["RouteTables"][0]["RouteTableId"]
    ec2.create_route(RouteTableId=route_table, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    registry.ensure_repository(lab)
    image = registry.push_image(lab)
    logs.ensure_log_group(lab)
    ecs.ensure_cluster(lab)
    role = iam.ensure_execution_role(lab)
    definition = lab.client("ecs").register_task_definition(
        family=lab.name("app"),
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="256",
        memory="512",
        executionRoleArn=role,
        containerDefinitions=[
            {
                "name": lab.name("app"),
                "image": image.uri,
                "portMappings": [{"containerPort": 3000}],
                "environment": [{"name": "PORT", "value": "3000"}],
            }
        ],
    )["taskDefinition"]
    lab.client("ecs").create_service(
        cluster=lab.name("cluster"),
        serviceName=lab.name("app-service"),
        taskDefinition=definition["taskDefinitionArn"],
        desiredCount=3,
        launchType="FARGATE",
        networkConfiguration={
            "awsvpcConfiguration": {
                "subnets": [subnet],
                "securityGroups": [group],
                "assignPublicIp": "ENABLED",
            }
        },
        deploymentConfiguration=ecs.DEPLOYMENT_CONFIGURATION,
    )

    ecs.wait_for_rollout(lab, timeout=120, progress=progress.silent)

    service = ecs.describe_service(lab)
    assert service["runningCount"] == 3
    messages = [e["message"] for e in reversed(service["events"])]
    assert f"unable to assume the role '{role}'" in messages[0]
    assert any("deployment failed: tasks failed to start." in m for m in messages)
    assert messages[-1] == f"(service {lab.name('app-service')}) has reached a steady state."
    assert [c.operation for c in lab.log.calls if c.operation == "UpdateService"] == [
        "UpdateService"
    ]


def test_teardown_deletes_task_definitions_instead_of_leaving_them_inactive(lab) -> None:
    # On AWS a deregistered revision stays INACTIVE (listed) for good unless deleted;
    # DeleteTaskDefinitions takes 10 at a time: 12 revisions need two calls.
    client = lab.client("ecs")
    for _ in range(12):
        client.register_task_definition(
            family=lab.name("app"),
            containerDefinitions=[{"name": "app", "image": "nginx", "memory": 128}],
        )
    client.deregister_task_definition(taskDefinition=f"{lab.name('app')}:1")
    kinds = [kind for _, kind, _ in ecs.leftovers(lab)]
    assert kinds.count("task definition") == 12  # the INACTIVE one is a leftover too
    ecs.delete_task_definitions(lab)
    for status in ("ACTIVE", "INACTIVE"):
        listed = client.list_task_definitions(familyPrefix=lab.name("app"), status=status)
        assert listed["taskDefinitionArns"] == []
    calls = [c.operation for c in lab.log.calls if c.operation == "DeleteTaskDefinitions"]
    assert calls == ["DeleteTaskDefinitions", "DeleteTaskDefinitions"]
    ecs.delete_task_definitions(lab)  # again: nothing to do
    assert not [kind for _, kind, _ in ecs.leftovers(lab) if kind == "task definition"]
    # ECS keeps the family's name: the next revision is 13, not 1 again.
    again = client.register_task_definition(
        family=lab.name("app"),
        containerDefinitions=[{"name": "app", "image": "nginx", "memory": 128}],
    )["taskDefinition"]
    assert again["revision"] == 13
    latest = client.describe_task_definition(taskDefinition=lab.name("app"))["taskDefinition"]
    assert latest["revision"] == 13
