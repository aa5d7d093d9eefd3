"""How tasks fail on the sandbox, with AWS's stop codes, reasons and service events
(docs/sandbox.md, "Task stop codes and reasons", "Deployment circuit breaker",
"Service events", "Container health checks" and "ALB target health")."""

from __future__ import annotations

import re

from world import World


def first_stopped(world: World) -> dict:
    return world.wait_for(
        lambda: (t := world.tasks("STOPPED")) and t[0].get("stopCode") and t[0],
        what="a stopped task",
    )


def test_missing_image_fails_the_first_deployment_without_rollback(world: World) -> None:
    """The chapter's own flow: the service is created before the image is pushed."""
    world.register_task_definition()
    world.create_service()
    service = world.wait_for(
        lambda: (s := world.service())["deployments"][0]["rolloutState"] == "FAILED" and s,
        what="the circuit breaker",
    )
    (deployment,) = service["deployments"]
    # Threshold for desired 2 = max(3, ceil(0.5 x 2)) = 3; nothing to roll back to
    # (docs/sandbox.md, "Deployment circuit breaker").
    assert deployment["status"] == "PRIMARY"
    assert deployment["failedTasks"] == 3
    assert (
        deployment["rolloutStateReason"] == "ECS deployment circuit breaker: tasks failed to start."
    )
    assert service["runningCount"] == 0
    assert (
        f"(service demo-dev-app-service) (deployment {deployment['id']}) deployment failed: tasks failed to start."
        in world.messages()
    )
    task = first_stopped(world)
    # The Fargate 1.4 wording, stopCode TaskFailedToStart (docs/sandbox.md, "Task stop codes
    # and reasons").
    assert task["stopCode"] == "TaskFailedToStart"
    assert task["stoppedReason"] == (
        "CannotPullContainerError: pull image manifest has been retried 5 time(s): failed to "
        f"resolve ref {world.ids['repo_uri']}:latest: not found"
    )
    # A FAILED deployment launches no new tasks (docs/sandbox.md, "Deployments and rolling
    # updates").
    started = sum("has started" in m for m in world.messages())
    world.wait_for(lambda: not world.tasks(), what="no pending tasks")
    assert sum("has started" in m for m in world.messages()) == started
    # The chapter's fix: push, then force a new deployment -> steady state.
    world.push_image()
    world.client("ecs").update_service(
        cluster=world.ids["cluster"], service=world.ids["service"], forceNewDeployment=True
    )
    service = world.wait_steady()
    assert service["deployments"][0]["id"] != deployment["id"]
    assert service["runningCount"] == 2


def test_bad_update_trips_circuit_breaker_and_rolls_back(world: World) -> None:
    world.push_image()
    world.register_task_definition()
    world.create_service()
    good = world.wait_steady()["deployments"][0]
    world.register_task_definition(container={"image": f"{world.ids['repo_uri']}:does-not-exist"})
    world.client("ecs").update_service(
        cluster=world.ids["cluster"],
        service=world.ids["service"],
        taskDefinition=world.ids["task_definition"],
    )
    world.wait_for(
        lambda: any("rolling back to deployment" in m for m in world.messages()), what="a rollback"
    )
    messages = world.messages()
    assert f"(service demo-dev-app-service) rolling back to deployment {good['id']}." in messages
    assert any(
        re.fullmatch(
            r"\(service demo-dev-app-service\) \(deployment ecs-svc/\d{19}\) deployment failed: tasks failed to start\.",
            m,
        )
        for m in messages
    )
    service = world.service()
    primary = service["deployments"][0]
    assert primary["taskDefinition"] == good["taskDefinition"]
    assert (
        primary["rolloutStateReason"]
        == f"ECS deployment circuit breaker: rolling back to deploymentId {good['id']}."
    )
    # The old tasks kept serving throughout (min 100%): the rollback ends steady.
    service = world.wait_steady()
    assert service["taskDefinition"] == good["taskDefinition"]
    assert {h["TargetHealth"]["State"] for h in world.target_health()} == {"healthy"}


def test_denied_secret_is_a_resource_initialization_error(world: World) -> None:
    world.client("iam").delete_role_policy(
        RoleName="demo-dev-ecs-execution-role", PolicyName="demo-dev-ecs-execution-policy"
    )
    world.push_image()
    world.register_task_definition()
    world.create_service(desired=1)
    task = first_stopped(world)
    assert task["stopCode"] == "TaskFailedToStart"
    secret = world.ids["secret"]
    account = world.account_id
    # The 2026 ap-northeast-1 wording, with the execution role's assumed-role ARN
    # (docs/sandbox.md, "Task stop codes and reasons").
    pattern = (
        r"ResourceInitializationError: unable to pull secrets or registry auth: execution resource "
        r"retrieval failed: unable to retrieve secret from asm: service call has been retried 1 time\(s\): "
        rf"failed to fetch secret {re.escape(secret)} from secrets manager: operation error Secrets Manager: "
        r"GetSecretValue, https response error StatusCode: 400, RequestID: [0-9a-f-]{36}, api error "
        rf"AccessDeniedException: User: arn:aws:sts::{account}:assumed-role/demo-dev-ecs-execution-role/"
        rf"{task['taskArn'].rsplit('/', 1)[-1]} is not authorized to perform: secretsmanager:GetSecretValue "
        rf"on resource: {re.escape(secret)} because no identity-based policy allows the "
        r"secretsmanager:GetSecretValue action"
    )
    assert re.fullmatch(pattern, task["stoppedReason"]), task["stoppedReason"]


def test_explicit_deny_beats_allow(world: World) -> None:
    world.client("iam").put_role_policy(
        RoleName="demo-dev-ecs-execution-role",
        PolicyName="deny-secrets",
        PolicyDocument='{"Version": "2012-10-17", "Statement": [{"Effect": "Deny", '
        '"Action": "secretsmanager:*", "Resource": "*"}]}',
    )
    world.push_image()
    world.register_task_definition()
    world.create_service(desired=1)
    task = first_stopped(world)
    assert task["stoppedReason"].endswith("with an explicit deny in an identity-based policy")


def test_missing_log_group(world: World) -> None:
    world.client("logs").delete_log_group(logGroupName=world.ids["log_group"])
    world.push_image()
    world.register_task_definition()
    world.create_service(desired=1)
    task = first_stopped(world)
    assert task["stopCode"] == "TaskFailedToStart"
    assert task["stoppedReason"].startswith(
        "ResourceInitializationError: failed to validate logger args"
    )
    assert "The specified log group does not exist" in task["stoppedReason"]


def test_failing_health_check_path_replaces_tasks(world: World) -> None:
    world.client("elbv2").modify_target_group(
        TargetGroupArn=world.ids["tg"], HealthCheckPath="/nope"
    )
    world.push_image()
    world.register_task_definition()
    world.create_service(desired=1)
    unhealthy = world.wait_for(
        lambda: [h for h in world.target_health() if h["TargetHealth"]["State"] == "unhealthy"],
        what="an unhealthy target",
    )
    # Reason code and description for a wrong status code (docs/sandbox.md, "ALB target
    # health").
    assert unhealthy[0]["TargetHealth"]["Reason"] == "Target.ResponseCodeMismatch"
    assert (
        unhealthy[0]["TargetHealth"]["Description"]
        == "Health checks failed with these codes: [404]"
    )
    task = first_stopped(world)
    # The scheduler replaces it (docs/sandbox.md, "ALB target health" and "Task stop codes
    # and reasons").
    assert task["stopCode"] == "ServiceSchedulerInitiated"
    assert (
        task["stoppedReason"]
        == f"Task failed ELB health checks in (target-group {world.ids['tg']})"
    )
    messages = world.messages()
    assert any(
        re.fullmatch(
            rf"\(service demo-dev-app-service\) \(task [0-9a-f]{{32}}\) \(port 3000\) is unhealthy in "
            rf"\(target-group {re.escape(world.ids['tg'])}\) due to \(reason Health checks failed with these codes: \[404\]\)\.",
            m,
        )
        for m in messages
    )
    world.wait_for(
        lambda: any(
            "Amazon ECS replaced 1 tasks due to an unhealthy status." in m for m in world.messages()
        ),
        what="a replacement",
    )
    # Fixing the path heals the service.
    world.client("elbv2").modify_target_group(
        TargetGroupArn=world.ids["tg"], HealthCheckPath="/health"
    )
    world.wait_steady(timeout=90)


def test_container_health_check_counts_only_when_declared(world: World) -> None:
    world.push_image()
    check = {
        "command": [
            "CMD-SHELL",
            'python -c "import sys, urllib.request, os; urllib.request.urlopen(f\'http://{os.environ[\\"HOST\\"]}:3000/health\', timeout=2)"',
        ],
        "interval": 5,
        "timeout": 2,
        "retries": 2,
        "startPeriod": 10,
    }
    world.register_task_definition(container={"healthCheck": check})
    world.create_service(desired=1)
    world.wait_steady()
    # With a declared health check the task reports HEALTHY (docs/sandbox.md, "Container
    # health checks").
    task = world.wait_for(
        lambda: (t := world.tasks()) and t[0]["healthStatus"] == "HEALTHY" and t[0], what="HEALTHY"
    )
    assert task["containers"][0]["healthStatus"] == "HEALTHY"


def test_failing_container_health_check_replaces_task(world: World) -> None:
    world.push_image()
    check = {"command": ["CMD-SHELL", "exit 1"], "interval": 5, "timeout": 2, "retries": 2}
    world.register_task_definition(container={"healthCheck": check})
    world.create_service(desired=1)
    task = world.wait_for(
        lambda: (t := [x for x in world.tasks("STOPPED") if x.get("stoppedReason")]) and t[0],
        what="a replaced task",
    )
    assert task["stopCode"] == "ServiceSchedulerInitiated"
    assert task["stoppedReason"] == "Task failed container health checks"
    assert any(m.endswith("failed container health checks.") for m in world.messages())


def test_essential_container_exit(world: World) -> None:
    world.push_image()
    world.register_task_definition(
        container={"command": ["python", "-c", "import sys; print('bye'); sys.exit(3)"]}
    )
    world.create_service(
        desired=1, deploymentConfiguration={"maximumPercent": 200, "minimumHealthyPercent": 100}
    )
    task = first_stopped(world)
    assert task["stopCode"] == "EssentialContainerExited"
    assert task["stoppedReason"] == "Essential container in task exited"
    assert task["containers"][0]["exitCode"] == 3


def test_stopped_tasks_are_listed_only_with_desired_status_stopped(world: World) -> None:
    world.register_task_definition()
    world.create_service(desired=1)
    first_stopped(world)
    ecs = world.client("ecs")
    running = ecs.list_tasks(cluster=world.ids["cluster"], serviceName=world.ids["service"])[
        "taskArns"
    ]
    stopped = ecs.list_tasks(
        cluster=world.ids["cluster"], serviceName=world.ids["service"], desiredStatus="STOPPED"
    )["taskArns"]
    assert stopped and not set(stopped) & set(running)


def test_private_subnets_without_nat_cannot_reach_aws(endpoint: str) -> None:
    """Why chapter 7 turns the NAT gateway on: tasks without a public IP in private
    subnets have no way to ECR, Secrets Manager or CloudWatch Logs."""
    world = World(endpoint, "444444444401")
    world.build_all(nat=False)
    world.push_image()
    world.register_task_definition()
    world.create_service(desired=1)
    task = first_stopped(world)
    assert task["stopCode"] == "TaskFailedToStart"
    assert task["stoppedReason"].startswith(
        "ResourceInitializationError: unable to pull secrets or registry auth: The task cannot "
        "pull registry auth from Amazon ECR: There is a connection issue between the task and "
        "Amazon ECR. Check your task network configuration."
    )


def test_vpc_endpoints_replace_the_nat_gateway(endpoint: str) -> None:
    """Chapter 8: interface endpoints (ecr.api, ecr.dkr, logs, secretsmanager) with private
    DNS, in a group that admits 443 from the VPC, plus the S3 gateway endpoint let the tasks
    start without a NAT gateway."""
    world = World(endpoint, "444444444402")
    world.build_all(nat=False)
    ec2 = world.client("ec2")
    vpc, subnets = world.ids["vpc"], world.ids["subnets"]
    private = [subnets["private_a"], subnets["private_c"]]
    endpoints_sg = ec2.create_security_group(
        GroupName=f"{world.name}-vpc-endpoints-sg", Description="endpoints", VpcId=vpc
    )["GroupId"]
    ec2.authorize_security_group_ingress(
        GroupId=endpoints_sg,
        IpPermissions=[
            {
                "IpProtocol": "tcp",
                "FromPort": 443,
                "ToPort": 443,
                "IpRanges": [{"CidrIp": "10.0.0.0/16"}],
            }
        ],
    )
    for service in ("ecr.api", "ecr.dkr", "logs"):
        ec2.create_vpc_endpoint(
            VpcId=vpc,
            ServiceName=f"com.amazonaws.ap-northeast-1.{service}",
            VpcEndpointType="Interface",
            SubnetIds=private,
            SecurityGroupIds=[endpoints_sg],
            PrivateDnsEnabled=True,
        )
    tables = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["RouteTables"]
    private_tables = [
        t["RouteTableId"]
        for t in tables
        if any(a.get("SubnetId") in private for a in t["Associations"])
    ]
    ec2.create_vpc_endpoint(
        VpcId=vpc,
        ServiceName="com.amazonaws.ap-northeast-1.s3",
        VpcEndpointType="Gateway",
        RouteTableIds=private_tables,
    )
    world.push_image()
    world.register_task_definition()
    world.create_service(desired=1)
    # Without the secretsmanager endpoint the secrets can't be fetched...
    task = first_stopped(world)
    assert "connection issue between the task and AWS Secrets Manager" in task["stoppedReason"]
    # ...with it, the service reaches a steady state.
    ec2.create_vpc_endpoint(
        VpcId=vpc,
        ServiceName="com.amazonaws.ap-northeast-1.secretsmanager",
        VpcEndpointType="Interface",
        SubnetIds=private,
        SecurityGroupIds=[endpoints_sg],
        PrivateDnsEnabled=True,
    )
    world.client("ecs").update_service(
        cluster=world.ids["cluster"], service=world.ids["service"], forceNewDeployment=True
    )
    world.wait_steady()
