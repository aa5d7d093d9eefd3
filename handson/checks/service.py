"""Check of exercise 3: the service the learner created, and its steady state."""

from __future__ import annotations

from typing import Any

from handson import chapters, ecs
from handson.checks.base import Criteria, register
from handson.connection import Lab
from handson.i18n import N_, _

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
        _("steady state"),
        len(deployments) == 1
        and primary.get("rolloutState") == "COMPLETED"
        and service["runningCount"] == service["desiredCount"],
        _(
            "{deployments} deployment(s), rollout {rollout}, {running} of {desired} tasks running"
        ).format(
            deployments=len(deployments),
            rollout=primary.get("rolloutState"),
            running=service["runningCount"],
            desired=service["desiredCount"],
        ),
        _(
            "Wait for the rollout (handson.ecs.wait_for_rollout(lab)); if it failed, read "
            "handson.ecs.show_stopped_tasks(lab) and show_service_events(lab)."
        ),
    )
    healthy = healthy_targets(lab, target_group_arn)
    return (
        c.expect(
            _("healthy targets"),
            len(healthy) == service["desiredCount"] and service["desiredCount"] > 0,
            _("{healthy} healthy of {desired} desired").format(
                healthy=len(healthy), desired=service["desiredCount"]
            ),
            _(
                "Every task should be a healthy target: read handson.loadbalancer."
                "show_target_health(lab) for the reason the ALB gives."
            ),
        )
        and ok
    )


@register("07-service", N_("Create the service"))
def check_service(lab: Lab, c: Criteria) -> None:
    """Exercise 3: every setting of chapter 7's service, then its steady state."""
    pre = chapters.get_prerequisites(lab)
    service = ecs.describe_service(lab)
    c.equal(_("status"), service["status"], "ACTIVE", _("Create the service: it is not ACTIVE."))
    c.equal(_("launch type"), service.get("launchType"), "FARGATE", _("Set launchType='FARGATE'."))
    c.equal(
        _("desired count"),
        service["desiredCount"],
        APP_COUNT,
        _("desiredCount={count}: two tasks, one per availability zone.").format(count=APP_COUNT),
    )
    vpc = (service.get("networkConfiguration") or {}).get("awsvpcConfiguration", {})
    c.equal(
        _("private subnets"),
        sorted(vpc.get("subnets", [])),
        sorted(pre.network.private_subnet_ids),
        _(
            "Run the tasks in the two private subnets (pre.network.private_subnet_ids): only "
            "the ALB is public."
        ),
    )
    c.equal(
        _("no public IP"),
        vpc.get("assignPublicIp"),
        "DISABLED",
        _(
            "assignPublicIp='DISABLED': the tasks reach AWS through the NAT gateway, and "
            "nobody reaches them except through the ALB."
        ),
    )
    c.equal(
        _("security group"),
        vpc.get("securityGroups", []),
        [pre.network.ecs_security_group_id],
        _(
            "securityGroups=[pre.network.ecs_security_group_id] ({group_id}): it lets the ALB "
            "in on port 3000."
        ).format(group_id=pre.network.ecs_security_group_id),
    )
    balancers = [
        (b.get("targetGroupArn"), b.get("containerName"), b.get("containerPort"))
        for b in service.get("loadBalancers", [])
    ]
    expected = [(pre.alb.target_group_arn, lab.name("app"), ecs.CONTAINER_PORT)]
    # The hint is the setting itself: code, the same in every language.
    setting = (
        f"loadBalancers=[{{'targetGroupArn': pre.alb.target_group_arn, 'containerName': "
        f"{lab.name('app')!r}, 'containerPort': 3000}}]"
    )
    c.expect(
        _("load balancer"),
        balancers == expected,
        [f"{str(arn).rsplit(':', 1)[-1]} -> {name}:{port}" for arn, name, port in balancers],
        setting,
    )
    config = service.get("deploymentConfiguration", {})
    c.equal(
        _("minimum healthy percent"),
        config.get("minimumHealthyPercent"),
        100,
        _("minimumHealthyPercent=100: a rolling update never drops below the 2 healthy tasks."),
    )
    c.equal(
        _("maximum percent"),
        config.get("maximumPercent"),
        200,
        _("maximumPercent=200: the new tasks may start next to the old ones (up to 4)."),
    )
    breaker = config.get("deploymentCircuitBreaker", {})
    c.expect(
        _("circuit breaker with rollback"),
        breaker.get("enable") is True and breaker.get("rollback") is True,
        f"enable={breaker.get('enable')}, rollback={breaker.get('rollback')}",
        _(
            "deploymentCircuitBreaker={setting}: a deployment whose tasks fail is stopped and "
            "the last working one comes back."
        ).format(setting="{'enable': True, 'rollback': True}"),
    )
    c.expect(
        _("runs the chapter's task definition"),
        service["taskDefinition"].rsplit("/", 1)[-1].startswith(lab.name("app") + ":"),
        service["taskDefinition"].rsplit("/", 1)[-1],
        _("taskDefinition is a revision of {family} (exercise 1).").format(family=lab.name("app")),
    )
    steady(c, lab, service, pre.alb.target_group_arn)
