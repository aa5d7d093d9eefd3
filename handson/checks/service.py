"""Check of exercise 3: the service the learner created, and its steady state."""

from __future__ import annotations

from typing import Any

from handson import chapters, ecs
from handson.checks.base import Criteria, register
from handson.connection import Lab

APP_COUNT = 2


def healthy_targets(lab: Lab, target_group_arn: str) -> list[str]:
    """The targets the ALB counts as healthy. Calls DescribeTargetHealth. Read-only."""
    found = lab.client("elbv2").describe_target_health(TargetGroupArn=target_group_arn)
    return [
        d["Target"]["Id"]
        for d in found["TargetHealthDescriptions"]
        if d["TargetHealth"].get("State") == "healthy"
    ]


def steady(c: Criteria, lab: Lab, service: dict[str, Any], target_group_arn: str) -> bool:
    """Criteria shared by the service checks: one COMPLETED deployment with every desired
    task running, and as many healthy targets as desired tasks."""
    deployments = service["deployments"]
    primary = deployments[0]
    ok = c.expect(
        "steady state",
        len(deployments) == 1
        and primary.get("rolloutState") == "COMPLETED"
        and service["runningCount"] == service["desiredCount"],
        f"{len(deployments)} deployment(s), rollout {primary.get('rolloutState')}, "
        f"{service['runningCount']} of {service['desiredCount']} tasks running",
        "Wait for the rollout (handson.ecs.wait_for_rollout(lab)); if it failed, read "
        "handson.ecs.show_stopped_tasks(lab) and show_service_events(lab).",
    )
    healthy = healthy_targets(lab, target_group_arn)
    return (
        c.expect(
            "healthy targets",
            len(healthy) == service["desiredCount"] and service["desiredCount"] > 0,
            f"{len(healthy)} healthy of {service['desiredCount']} desired",
            "Every task should be a healthy target: read handson.loadbalancer."
            "show_target_health(lab) for the reason the ALB gives.",
        )
        and ok
    )


@register("07-service", "Create the service")
def check_service(lab: Lab, c: Criteria) -> None:
    """Exercise 3: every setting of chapter 7's service, then its steady state."""
    pre = chapters.get_prerequisites(lab)
    service = ecs.describe_service(lab)
    c.equal("status", service["status"], "ACTIVE", "Create the service: it is not ACTIVE.")
    c.equal("launch type", service.get("launchType"), "FARGATE", "Set launchType='FARGATE'.")
    c.equal(
        "desired count",
        service["desiredCount"],
        APP_COUNT,
        f"desiredCount={APP_COUNT}: two tasks, one per availability zone.",
    )
    vpc = (service.get("networkConfiguration") or {}).get("awsvpcConfiguration", {})
    c.equal(
        "private subnets",
        sorted(vpc.get("subnets", [])),
        sorted(pre.network.private_subnet_ids),
        "Run the tasks in the two private subnets (pre.network.private_subnet_ids): only the "
        "ALB is public.",
    )
    c.equal(
        "no public IP",
        vpc.get("assignPublicIp"),
        "DISABLED",
        "assignPublicIp='DISABLED': the tasks reach AWS through the NAT gateway, and nobody "
        "reaches them except through the ALB.",
    )
    c.equal(
        "security group",
        vpc.get("securityGroups", []),
        [pre.network.ecs_security_group_id],
        f"securityGroups=[pre.network.ecs_security_group_id] "
        f"({pre.network.ecs_security_group_id}): it lets the ALB in on port 3000.",
    )
    balancers = [
        (b.get("targetGroupArn"), b.get("containerName"), b.get("containerPort"))
        for b in service.get("loadBalancers", [])
    ]
    expected = [(pre.alb.target_group_arn, lab.name("app"), ecs.CONTAINER_PORT)]
    c.expect(
        "load balancer",
        balancers == expected,
        [f"{str(arn).rsplit(':', 1)[-1]} -> {name}:{port}" for arn, name, port in balancers],
        f"loadBalancers=[{{'targetGroupArn': pre.alb.target_group_arn, 'containerName': "
        f"{lab.name('app')!r}, 'containerPort': 3000}}]",
    )
    config = service.get("deploymentConfiguration", {})
    c.equal(
        "minimum healthy percent",
        config.get("minimumHealthyPercent"),
        100,
        "minimumHealthyPercent=100: a rolling update never drops below the 2 healthy tasks.",
    )
    c.equal(
        "maximum percent",
        config.get("maximumPercent"),
        200,
        "maximumPercent=200: the new tasks may start next to the old ones (up to 4).",
    )
    breaker = config.get("deploymentCircuitBreaker", {})
    c.expect(
        "circuit breaker with rollback",
        breaker.get("enable") is True and breaker.get("rollback") is True,
        f"enable={breaker.get('enable')}, rollback={breaker.get('rollback')}",
        "deploymentCircuitBreaker={'enable': True, 'rollback': True}: a deployment whose "
        "tasks fail is stopped and the last working one comes back.",
    )
    c.expect(
        "runs the chapter's task definition",
        service["taskDefinition"].rsplit("/", 1)[-1].startswith(lab.name("app") + ":"),
        service["taskDefinition"].rsplit("/", 1)[-1],
        f"taskDefinition is a revision of {lab.name('app')} (exercise 1).",
    )
    steady(c, lab, service, pre.alb.target_group_arn)
