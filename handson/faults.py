"""Break and fix (exercise 4): one fault in the learner's own, working chapter-7 deployment.

``handson.faults.apply(lab)`` changes one thing in the account with ordinary AWS API calls,
so the same lab runs on the sandbox and on real AWS. The learner then reads what AWS says
(stopped tasks, service events, target health, logs: the article's troubleshooting
section), repairs it, restarts the service, and runs ``handson.checks.check(lab,
"07-break-and-fix")``. Each student gets a fault of their own (:func:`pick`); the
instructor may name one instead.

Every fault but one is in the *environment* (ECR, IAM, the target group, the routes), not
in the task definition: the service's circuit breaker rolls a bad revision back by itself,
but a rollback does not bring back a deleted image, policy or route, so the fault stays
until the learner repairs it. Memory is a task-definition setting, so ``out-of-memory``
deploys a revision whose container limit is below what the app uses *and* turns the
circuit breaker's rollback off in the same UpdateService (as someone "tuning" a service
might): the deployment fails and stays failed, and the repair is two things, a revision
with the memory back and the rollback on again. The faults that only bite when a task
starts (image, secret policy, route) stop the running tasks, as AWS does when it replaces
tasks, so the symptom shows.

The faults (``FAULTS``):

- ``image-tag``: the image tag the task definition names is deleted from ECR;
- ``secret-policy``: the execution role loses its inline policy for the DB secret;
- ``health-check-path``: the target group checks a path the app does not serve;
- ``container-port``: the target group checks a port the container does not listen on;
- ``nat-route``: a private route table loses its 0.0.0.0/0 route to the NAT gateway;
- ``out-of-memory``: a revision gives the app container a memory limit below what the app
  uses (its tasks stop with ``OutOfMemoryError: Container killed due to memory usage``),
  deployed with the circuit breaker's rollback off;
- ``alb-rule``: the ECS tasks' security group loses its rule for port 3000 from the ALB's
  group, so the ALB's health checks time out (``Target.Timeout``).
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import pandas as pd
from botocore.exceptions import ClientError

from handson import database, ecs, iam, loadbalancer, network, registry
from handson.aws_errors import step
from handson.connection import Lab
from handson.exceptions import (
    ConfigurationError,
    DeploymentError,
    NotFoundError,
    WaitTimeoutError,
)
from handson.i18n import N_, _
from handson.network.security import _permission_keys, _security_groups
from handson.network.vpc import _require_vpc

__all__ = [
    "FAULTS",
    "FAULT_TAG",
    "AppliedFault",
    "Assessment",
    "Fault",
    "Repair",
    "applied",
    "apply",
    "assess",
    "pick",
    "repair",
    "repaired",
    "restore_memory",
    "show_fault",
    "symptom",
    "wait_for_symptom",
]

# The service's tags that say which fault was applied, and when (UTC, ISO 8601).
FAULT_TAG: Final = "handson:fault"
APPLIED_AT_TAG: Final = "handson:fault-applied-at"
# What the faults put in place of the chapter's settings.
WRONG_HEALTH_CHECK_PATH: Final = "/healthz"
# The ECS security group lets the ALB in on 80 and 3000: on port 80 nothing listens, so
# the health check is refused (Target.FailedHealthChecks), on AWS as on the sandbox.
WRONG_HEALTH_CHECK_PORT: Final = "80"
# The zone whose private route table loses its NAT route (the first of the two).
NAT_ROUTE_ZONE_INDEX: Final = 0
STOP_REASON: Final = "Stopped for the break-and-fix lab (handson.faults.apply)"
# The out-of-memory fault's container limit (MiB): the app needs about 40 MiB (AWS's
# smallest container limit is 6 MiB). A limit from ENOUGH_MEMORY_MIB up counts as repaired.
STARVED_MEMORY_MIB: Final = 24
ENOUGH_MEMORY_MIB: Final = 128
OOM_REASON: Final = "OutOfMemoryError"
NO_ROLLBACK: Final = {
    **ecs.DEPLOYMENT_CONFIGURATION,
    "deploymentCircuitBreaker": {"enable": True, "rollback": False},
}


@dataclass(frozen=True)
class Fault:
    """One fault of the lab: its title, what the learner will see, where to look, and the
    documented repair (the library calls that undo it)."""

    name: str
    title: str
    repaired_when: str
    symptom: str
    look_at: str
    repair: str


# A fault's texts are messages of the catalog (N_(): shown with _()). Each repair ends with
# the same sentence, " Then restart the service: ...", written out: Babel reads literals only.
FAULTS: Final[dict[str, Fault]] = {
    "image-tag": Fault(
        name="image-tag",
        title=N_("the image tag is not in ECR"),
        repaired_when=N_("the task definition's image tag is in ECR"),
        symptom=N_(
            "New tasks stop with CannotPullContainerError: ... failed to resolve ref "
            "<repository>:latest: not found; the service has no running task and the ALB "
            "answers 503."
        ),
        look_at=N_("handson.ecs.show_stopped_tasks(lab), handson.registry.show_images(lab)"),
        repair=N_(
            "Push the image again: handson.registry.push_image(lab)."
            " Then restart the service: handson.ecs.restart_service(lab) and "
            "handson.ecs.wait_for_rollout(lab)."
        ),
    ),
    "secret-policy": Fault(
        name="secret-policy",
        title=N_("the execution role may not read the DB secret"),
        repaired_when=N_("the execution role may read the DB secret"),
        symptom=N_(
            "New tasks stop with ResourceInitializationError: unable to pull secrets or "
            "registry auth ... AccessDeniedException ... is not authorized to perform: "
            "secretsmanager:GetSecretValue."
        ),
        look_at=N_("handson.ecs.show_stopped_tasks(lab), handson.iam.show_roles(lab)"),
        repair=N_(
            "Put the execution role's inline policy back: "
            "handson.iam.ensure_execution_secret_policy(lab, secret_arn=pre.database.secret_arn)."
            " Then restart the service: handson.ecs.restart_service(lab) and "
            "handson.ecs.wait_for_rollout(lab)."
        ),
    ),
    "health-check-path": Fault(
        name="health-check-path",
        title=N_("the target group checks the wrong path"),
        repaired_when=N_("the target group checks GET /health"),
        symptom=N_(
            "Targets turn unhealthy with Target.ResponseCodeMismatch (Health checks failed "
            "with these codes: [404]); ECS stops them (Task failed ELB health checks) and "
            "starts new ones, again and again."
        ),
        look_at=N_(
            "handson.loadbalancer.show_target_health(lab), handson.ecs.show_service_events(lab)"
        ),
        repair=N_(
            "Put the chapter's health check back on the target group (GET /health on the "
            "traffic port): handson.loadbalancer.ensure_target_group(lab, "
            "vpc_id=pre.network.vpc_id)."
            " Then restart the service: handson.ecs.restart_service(lab) and "
            "handson.ecs.wait_for_rollout(lab)."
        ),
    ),
    "container-port": Fault(
        name="container-port",
        title=N_("the target group checks a port the container does not listen on"),
        repaired_when=N_("the target group checks the traffic port (3000)"),
        symptom=N_(
            "Targets turn unhealthy with Target.FailedHealthChecks (Health checks failed): "
            "nothing answers on the health check port; ECS stops them (Task failed ELB health "
            "checks) and starts new ones, again and again."
        ),
        look_at=N_(
            "handson.loadbalancer.show_target_health(lab) (the port column), "
            "handson.ecs.show_service_events(lab)"
        ),
        repair=N_(
            "Check the traffic port (3000, the container's) again: "
            "handson.loadbalancer.ensure_target_group(lab, vpc_id=pre.network.vpc_id)."
            " Then restart the service: handson.ecs.restart_service(lab) and "
            "handson.ecs.wait_for_rollout(lab)."
        ),
    ),
    "nat-route": Fault(
        name="nat-route",
        title=N_("a private subnet has no route to the NAT gateway"),
        repaired_when=N_("every private route table sends 0.0.0.0/0 to a NAT gateway"),
        symptom=N_(
            "Tasks in one private subnet stop with ResourceInitializationError: ... There "
            "is a connection issue between the task and Amazon ECR ... i/o timeout; tasks in the "
            "other zone run."
        ),
        look_at=N_(
            "handson.ecs.show_stopped_tasks(lab) (the availability_zone column), "
            "handson.network.show_network(lab) (the route tables)"
        ),
        repair=N_(
            "Give the private route tables their 0.0.0.0/0 route to the NAT gateways "
            "again: handson.network.ensure_nat_gateways(lab, enabled=True)."
            " Then restart the service: handson.ecs.restart_service(lab) and "
            "handson.ecs.wait_for_rollout(lab)."
        ),
    ),
    "out-of-memory": Fault(
        name="out-of-memory",
        title=N_(
            "the app container's memory limit is below what the app uses, and the "
            "deployment does not roll back"
        ),
        # 128 is ENOUGH_MEMORY_MIB, written out: a message of the catalog is a literal.
        repaired_when=N_(
            "the service's revision gives the app container no memory limit or "
            "at least 128 MiB, and the circuit breaker rolls back"
        ),
        symptom=N_(
            "New tasks stop with Essential container in task exited; the container "
            "says OutOfMemoryError: Container killed due to memory usage (exit code 137); the "
            "deployment fails and is not rolled back."
        ),
        look_at=N_(
            "handson.ecs.show_stopped_tasks(lab), handson.ecs.show_stop_reasons(lab), "
            "handson.ecs.show_service(lab) (the task definition and deployments)"
        ),
        repair=N_(
            "Register a revision without the container memory limit (the chapter sets "
            "only the task's 512 MiB) and deploy it with the circuit breaker's rollback on: "
            "handson.faults.restore_memory(lab)."
            " Then restart the service: handson.ecs.restart_service(lab) and "
            "handson.ecs.wait_for_rollout(lab)."
        ),
    ),
    "alb-rule": Fault(
        name="alb-rule",
        title=N_("the ECS tasks' security group no longer lets the ALB in on port 3000"),
        repaired_when=N_("the ECS tasks' security group allows port 3000 from the ALB's group"),
        symptom=N_(
            "Targets turn unhealthy with Target.Timeout (Request timed out): the ALB's "
            "health checks get no answer; ECS stops them (Task failed ELB health checks) and "
            "starts new ones, again and again; requests through the ALB end in 504."
        ),
        look_at=N_(
            "handson.loadbalancer.show_target_health(lab), "
            "handson.network.show_network(lab) (the security groups' inbound rules)"
        ),
        repair=N_(
            "Put the chapter's security-group rules back: "
            "handson.network.ensure_security_groups(lab)."
            " Then restart the service: handson.ecs.restart_service(lab) and "
            "handson.ecs.wait_for_rollout(lab)."
        ),
    ),
}


@dataclass(frozen=True)
class AppliedFault:
    """A fault recorded on the service: its name, the service and when it was applied.

    From :func:`apply`, ``changed`` says whether the account was changed now (False when
    the fault was in place already) and ``stopped_tasks`` which tasks were stopped so that
    their replacements meet the fault.
    """

    name: str
    service: str
    applied_at: str
    changed: bool = False
    stopped_tasks: tuple[str, ...] = ()

    def __repr__(self) -> str:
        # The notebook shows this after apply(): it doesn't give the answer away.
        return _(
            "A fault was applied to {service} at {applied_at}. Find out what AWS "
            "says is wrong (stuck? handson.faults.show_fault(lab) names it)."
        ).format(service=self.service, applied_at=self.applied_at)


@dataclass(frozen=True)
class Repair:
    """Whether a fault is repaired in the account: what was seen, and what to do if not."""

    repaired: bool
    saw: str
    hint: str


@dataclass(frozen=True)
class Assessment:
    """What :func:`assess` read: the service, the fault recorded on it (None when none
    was applied), whether it is repaired, and what AWS reports about it ("" for nothing)."""

    service: dict[str, Any]
    applied: AppliedFault | None
    state: Repair | None
    symptom: str

    @property
    def fault(self) -> Fault | None:
        return None if self.applied is None else FAULTS[self.applied.name]

    @property
    def target_group_arn(self) -> str:
        return _target_group_arn(self.service)


# ------------------------------------------------------------------ choosing


def pick(student: str) -> str:
    """The default fault of a student, the same in every process and on every machine.

    The name's trailing number moves one fault on, so student01 and student02 (neighbours
    in the classroom) get different faults; the rest of the name, hashed, picks the start.
    """
    names = list(FAULTS)
    match = re.fullmatch(r"(.*?)(\d*)", student)
    stem, number = (match.group(1), match.group(2)) if match else (student, "")
    start = int(hashlib.sha256(stem.encode()).hexdigest(), 16)
    return names[(start + int(number or 0)) % len(names)]


def _check_name(name: object) -> str:
    if not isinstance(name, str) or name not in FAULTS:
        raise ConfigurationError(
            _(
                "fault={name!r} is not one of the lab's faults: {faults} "
                "(or None for the student's own)."
            ).format(name=name, faults=", ".join(FAULTS))
        )
    return name


# ------------------------------------------------------------- what is there


def _service_tags(lab: Lab, service_arn: str) -> dict[str, str]:
    tags = lab.client("ecs").list_tags_for_resource(resourceArn=service_arn)["tags"]
    return {t["key"]: t["value"] for t in tags}


def _record(lab: Lab, service: dict[str, Any]) -> AppliedFault | None:
    tags = _service_tags(lab, service["serviceArn"])
    name = tags.get(FAULT_TAG)
    if name not in FAULTS:
        return None
    return AppliedFault(name, service["serviceName"], tags.get(APPLIED_AT_TAG, ""))


@step("Look up the applied fault")
def applied(lab: Lab) -> AppliedFault | None:
    """The fault recorded on the service's ``handson:fault`` tag, or None.

    Calls DescribeServices and ListTagsForResource. Read-only.
    """
    return _record(lab, ecs.describe_service(lab))


def _service_image(lab: Lab, service: dict[str, Any]) -> tuple[str, str]:
    """(repository, tag) of the image the service's task definition runs."""
    definition = lab.client("ecs").describe_task_definition(
        taskDefinition=service["taskDefinition"]
    )["taskDefinition"]
    image = str(definition["containerDefinitions"][0]["image"])
    path = image.split("/", 1)[-1]
    if "@" in path:
        raise ConfigurationError(
            _(
                "The service runs {image}, pinned by digest: the image-tag fault needs a tag "
                "(the chapter's :latest)."
            ).format(image=image)
        )
    repository, _colon, tag = path.partition(":")
    return repository, tag or "latest"


def _target_group_arn(service: dict[str, Any]) -> str:
    balancers = service.get("loadBalancers") or []
    if not balancers:
        raise NotFoundError(
            _("The service {service} has no target group.").format(service=service["serviceName"]),
            code="TargetGroupNotFound",
            operation="DescribeServices",
            hint=_("Create the service of chapter 7 behind the ALB (exercise 3)."),
        )
    return str(balancers[0]["targetGroupArn"])


def _target_group(lab: Lab, service: dict[str, Any]) -> dict[str, Any]:
    found = lab.client("elbv2").describe_target_groups(TargetGroupArns=[_target_group_arn(service)])
    return dict(found["TargetGroups"][0])


def _private_route_tables(lab: Lab) -> list[tuple[str, dict[str, Any] | None]]:
    """(name, route table or None) of the private route tables, zone by zone."""
    names = [lab.name(f"private-rt-{zone[-1]}") for zone in network.availability_zones(lab)]
    found = lab.client("ec2").describe_route_tables(
        Filters=[{"Name": "tag:Name", "Values": names}, *lab.tag_filters()]
    )["RouteTables"]
    by_name = {
        next((t["Value"] for t in table.get("Tags", []) if t["Key"] == "Name"), ""): table
        for table in found
    }
    return [(name, by_name.get(name)) for name in names]


def _nat_route(table: dict[str, Any]) -> dict[str, Any] | None:
    return next(
        (
            r
            for r in table.get("Routes", [])
            if r.get("DestinationCidrBlock") == network.ANYWHERE and r.get("NatGatewayId")
        ),
        None,
    )


# ------------------------------------------------------------------ breaking


def _break_image_tag(lab: Lab, service: dict[str, Any]) -> bool:
    repository, tag = _service_image(lab, service)
    deleted = lab.client("ecr").batch_delete_image(
        repositoryName=repository, imageIds=[{"imageTag": tag}]
    )
    return bool(deleted.get("imageIds"))


def _break_secret_policy(lab: Lab, service: dict[str, Any]) -> bool:
    try:
        lab.client("iam").delete_role_policy(
            RoleName=lab.name("ecs-execution-role"), PolicyName=lab.name("ecs-execution-policy")
        )
    except ClientError as error:
        if error.response["Error"]["Code"] == "NoSuchEntity":
            return False
        raise
    return True


def _break_health_check(lab: Lab, service: dict[str, Any], **wrong: str) -> bool:
    group = _target_group(lab, service)
    if all(group.get(key) == value for key, value in wrong.items()):
        return False
    lab.client("elbv2").modify_target_group(TargetGroupArn=group["TargetGroupArn"], **wrong)
    return True


def _break_nat_route(lab: Lab, service: dict[str, Any]) -> bool:
    name, table = _private_route_tables(lab)[NAT_ROUTE_ZONE_INDEX]
    if table is None:
        raise NotFoundError(
            _("The route table {name} doesn't exist.").format(name=name),
            code="InvalidRouteTableID.NotFound",
            operation="DescribeRouteTables",
            hint=_(network.NOT_BUILT_HINT),  # marked where handson.network defines it
        )
    if _nat_route(table) is None:
        return False
    lab.client("ec2").delete_route(
        RouteTableId=table["RouteTableId"], DestinationCidrBlock=network.ANYWHERE
    )
    return True


def _app_container(lab: Lab, service: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(family:revision, app container definition) of the service's task definition."""
    definition = lab.client("ecs").describe_task_definition(
        taskDefinition=service["taskDefinition"]
    )["taskDefinition"]
    revision = f"{definition['family']}:{definition['revision']}"
    containers = definition["containerDefinitions"]
    app = next((c for c in containers if c["name"] == lab.name("app")), containers[0])
    return revision, dict(app)


def _rolls_back(service: dict[str, Any]) -> bool:
    config = service.get("deploymentConfiguration") or {}
    breaker = config.get("deploymentCircuitBreaker") or {}
    return bool(breaker.get("enable") and breaker.get("rollback"))


def _break_out_of_memory(lab: Lab, service: dict[str, Any]) -> bool:
    _revision, app = _app_container(lab, service)
    if app.get("memory") == STARVED_MEMORY_MIB and not _rolls_back(service):
        return False
    spec = ecs.spec_from_latest(lab)
    for container in spec["containerDefinitions"]:
        if container["name"] == app["name"]:
            container["memory"] = STARVED_MEMORY_MIB
            container.pop("memoryReservation", None)  # it may not exceed the hard limit
    starved = ecs.ensure_task_definition(lab, spec)
    lab.client("ecs").update_service(
        cluster=service["clusterArn"],
        service=service["serviceName"],
        taskDefinition=starved.arn,
        deploymentConfiguration=NO_ROLLBACK,
    )
    return True


def _alb_rule(lab: Lab) -> tuple[str, str, bool]:
    """(ECS group id, ALB group id, whether the ECS group lets the ALB's in on 3000)."""
    groups = _security_groups(lab, _require_vpc(lab)["VpcId"])
    ecs_group, alb_group = groups.get(lab.name("ecs-sg")), groups.get(lab.name("alb-sg"))
    if ecs_group is None or alb_group is None:
        raise NotFoundError(
            _("The security groups {alb_group} and {ecs_group} don't exist.").format(
                alb_group=lab.name("alb-sg"), ecs_group=lab.name("ecs-sg")
            ),
            code="InvalidGroup.NotFound",
            operation="DescribeSecurityGroups",
            hint=_(network.NOT_BUILT_HINT),  # marked where handson.network defines it
        )
    port = loadbalancer.TARGET_PORT
    keys = _permission_keys(ecs_group.get("IpPermissions", []))
    allowed = ("tcp", port, port, alb_group["GroupId"]) in keys
    return ecs_group["GroupId"], alb_group["GroupId"], allowed


def _break_alb_rule(lab: Lab, service: dict[str, Any]) -> bool:
    ecs_group, alb_group, allowed = _alb_rule(lab)
    if not allowed:
        return False
    port = loadbalancer.TARGET_PORT
    # The rule as the chapter wrote it (with its description), as the console removes it.
    pair = {"GroupId": alb_group, "Description": f"from {lab.name('alb-sg')}"}
    lab.client("ec2").revoke_security_group_ingress(
        GroupId=ecs_group,
        IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": port, "ToPort": port, "UserIdGroupPairs": [pair]}
        ],
    )
    return True


BREAKS: Final[dict[str, Callable[[Lab, dict[str, Any]], bool]]] = {
    "image-tag": _break_image_tag,
    "secret-policy": _break_secret_policy,
    "health-check-path": lambda lab, service: _break_health_check(
        lab, service, HealthCheckPath=WRONG_HEALTH_CHECK_PATH
    ),
    "container-port": lambda lab, service: _break_health_check(
        lab, service, HealthCheckPort=WRONG_HEALTH_CHECK_PORT
    ),
    "nat-route": _break_nat_route,
    "out-of-memory": _break_out_of_memory,
    "alb-rule": _break_alb_rule,
}
# Faults whose symptom is a target's health (the others show in stopped tasks).
TARGET_FAULTS: Final = frozenset({"health-check-path", "container-port", "alb-rule"})
# Faults that bite only when a task starts: the running tasks are stopped so that their
# replacements meet them (a health check change bites the running targets at once).
AT_START: Final = frozenset({"image-tag", "secret-policy", "nat-route"})


def _working(service: dict[str, Any]) -> bool:
    deployments = service["deployments"]
    return (
        service["status"] == "ACTIVE"
        and service["desiredCount"] > 0
        and len(deployments) == 1
        and deployments[0].get("rolloutState") == "COMPLETED"
        and service["runningCount"] == service["desiredCount"]
    )


def _stop_running_tasks(lab: Lab, service: dict[str, Any]) -> tuple[str, ...]:
    ecs_client = lab.client("ecs")
    arns = ecs_client.list_tasks(
        cluster=service["clusterArn"], serviceName=service["serviceName"], desiredStatus="RUNNING"
    )["taskArns"]
    for arn in arns:
        ecs_client.stop_task(cluster=service["clusterArn"], task=arn, reason=STOP_REASON)
    return tuple(arn.rsplit("/", 1)[-1] for arn in arns)


@step("Apply the break-and-fix fault")
def apply(lab: Lab, name: str | None = None) -> AppliedFault:
    """Break one thing in the student's working deployment with ordinary AWS calls (ECR
    BatchDeleteImage, IAM DeleteRolePolicy, ELB ModifyTargetGroup, EC2 DeleteRoute, or ECS
    RegisterTaskDefinition and UpdateService),
    stop the running tasks where the fault only bites at start, and tag the service
    ``handson:fault=<name>`` (TagResource) so the check knows which fault to look at.

    ``name`` is one of ``FAULTS`` (None: the student's own, :func:`pick`). Re-running it
    for the same fault is safe; another fault is refused while one is not repaired yet.
    """
    name = _check_name(pick(lab.student) if name is None else name)
    try:
        service = ecs.describe_service(lab)
    except NotFoundError as error:
        raise NotFoundError(
            _("There is no service to break yet: {message}").format(message=error.message),
            code=error.code,
            operation=error.operation,
            hint=_(
                "Deploy chapter 7 first (notebook 07, or exercises 1-3) and wait until it "
                "is steady."
            ),
        ) from error
    before = _record(lab, service)
    if before is not None and before.name != name and not repaired(lab, before.name).repaired:
        raise ConfigurationError(
            _(
                "Another fault ({fault}) is applied and not repaired yet: repair it first "
                "(handson.faults.repair(lab), then handson.ecs.restart_service(lab)), or run "
                "apply(lab, {fault!r}) again."
            ).format(fault=before.name)
        )
    if (before is None or before.name != name) and not _working(service):
        raise DeploymentError(
            _(
                "The service {service} isn't working yet "
                "({deployments} deployment(s), rollout "
                "{state}, {running} of "
                "{desired} tasks running): the lab breaks a working deployment. "
                "Wait for it (handson.ecs.wait_for_rollout(lab)) and run this cell again."
            ).format(
                service=service["serviceName"],
                deployments=len(service["deployments"]),
                state=service["deployments"][0].get("rolloutState"),
                running=service["runningCount"],
                desired=service["desiredCount"],
            )
        )
    changed = BREAKS[name](lab, service)
    applied_at = before.applied_at if before is not None and before.name == name else ""
    if changed or not applied_at:
        applied_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        lab.client("ecs").tag_resource(
            resourceArn=service["serviceArn"],
            tags=[{"key": FAULT_TAG, "value": name}, {"key": APPLIED_AT_TAG, "value": applied_at}],
        )
    stopped = _stop_running_tasks(lab, service) if changed and name in AT_START else ()
    return AppliedFault(name, service["serviceName"], applied_at, changed, stopped)


# ----------------------------------------------------------------- repaired?


def _repaired_image_tag(lab: Lab, service: dict[str, Any]) -> Repair:
    repository, tag = _service_image(lab, service)
    ecr = lab.client("ecr")
    try:
        found = ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])
    except ClientError as error:
        if error.response["Error"]["Code"] not in ("ImageNotFoundException",):
            raise
        return Repair(
            False,
            _("{image} is not in ECR").format(image=f"{repository}:{tag}"),
            _(FAULTS["image-tag"].repair),
        )
    digest = found["imageDetails"][0]["imageDigest"]
    return Repair(
        True,
        _("{image} is in ECR ({digest})").format(image=f"{repository}:{tag}", digest=digest[:19]),
        "",
    )


def _allows(statement: dict[str, Any], action: str, resource: str) -> bool:
    def listed(value: Any) -> list[str]:
        return [value] if isinstance(value, str) else list(value or [])

    return (
        statement.get("Effect") == "Allow"
        and any(fnmatch.fnmatchcase(action, a) for a in listed(statement.get("Action")))
        and any(fnmatch.fnmatchcase(resource, r) for r in listed(statement.get("Resource")))
    )


def _repaired_secret_policy(lab: Lab, service: dict[str, Any]) -> Repair:
    client = lab.client("iam")
    role = lab.name("ecs-execution-role")
    secret_arn = database.get_database(lab).secret_arn
    allowing = []
    for policy in client.list_role_policies(RoleName=role)["PolicyNames"]:
        document = client.get_role_policy(RoleName=role, PolicyName=policy)["PolicyDocument"]
        statements = document.get("Statement", [])
        statements = [statements] if isinstance(statements, dict) else statements
        if any(_allows(s, "secretsmanager:GetSecretValue", secret_arn) for s in statements):
            allowing.append(policy)
    if allowing:
        return Repair(
            True,
            _("{role} may read the DB secret (inline policy {policies})").format(
                role=role, policies=", ".join(allowing)
            ),
            "",
        )
    return Repair(
        False,
        _(
            "no inline policy of {role} allows secretsmanager:GetSecretValue on the DB secret"
        ).format(role=role),
        _(FAULTS["secret-policy"].repair),
    )


def _repaired_health_check(lab: Lab, service: dict[str, Any], key: str, fault: str) -> Repair:
    group = _target_group(lab, service)
    value = group.get(key)
    good = {loadbalancer.HEALTH_CHECK[key]}
    if key == "HealthCheckPort":
        good.add(str(loadbalancer.TARGET_PORT))
    return Repair(value in good, f"{key} {value}", "" if value in good else _(FAULTS[fault].repair))


def _repaired_nat_route(lab: Lab, service: dict[str, Any]) -> Repair:
    parts, ok = [], True
    for name, table in _private_route_tables(lab):
        route = None if table is None else _nat_route(table)
        if route is None or route.get("State", "active") != "active":
            ok = False
            state = (
                _("no route table") if table is None else _("no 0.0.0.0/0 route to a NAT gateway")
            )
            if route is not None:
                state = f"0.0.0.0/0 -> {route['NatGatewayId']} ({route.get('State')})"
            parts.append(f"{name}: {state}")
        else:
            parts.append(f"{name}: 0.0.0.0/0 -> {route['NatGatewayId']}")
    return Repair(ok, "; ".join(parts), "" if ok else _(FAULTS["nat-route"].repair))


def _repaired_out_of_memory(lab: Lab, service: dict[str, Any]) -> Repair:
    revision, app = _app_container(lab, service)
    limit = app.get("memory")
    enough = limit is None or int(limit) >= ENOUGH_MEMORY_MIB
    rollback = _rolls_back(service)
    saw = _("{revision}: container memory {memory}; circuit breaker rollback {rollback}").format(
        revision=revision,
        memory=_("not set") if limit is None else f"{limit} MiB",
        rollback=_("on") if rollback else _("off"),
    )
    ok = enough and rollback
    return Repair(ok, saw, "" if ok else _(FAULTS["out-of-memory"].repair))


def _repaired_alb_rule(lab: Lab, service: dict[str, Any]) -> Repair:
    ecs_group, alb_group, allowed = _alb_rule(lab)
    port = loadbalancer.TARGET_PORT
    if allowed:
        saw = _("{ecs_group} allows tcp {port} from {alb_group}")
    else:
        saw = _("{ecs_group} does not allow tcp {port} from {alb_group}")
    saw = saw.format(ecs_group=ecs_group, port=port, alb_group=alb_group)
    return Repair(allowed, saw, "" if allowed else _(FAULTS["alb-rule"].repair))


REPAIRED: Final[dict[str, Callable[[Lab, dict[str, Any]], Repair]]] = {
    "image-tag": _repaired_image_tag,
    "secret-policy": _repaired_secret_policy,
    "health-check-path": lambda lab, service: _repaired_health_check(
        lab, service, "HealthCheckPath", "health-check-path"
    ),
    "container-port": lambda lab, service: _repaired_health_check(
        lab, service, "HealthCheckPort", "container-port"
    ),
    "nat-route": _repaired_nat_route,
    "out-of-memory": _repaired_out_of_memory,
    "alb-rule": _repaired_alb_rule,
}


@step("Check the repair")
def repaired(lab: Lab, name: str | None = None) -> Repair:
    """Whether the fault ``name`` (None: the one applied) is repaired: the image tag is in
    ECR, the execution role may read the secret, the target group checks GET /health on
    the traffic port, every private route table sends 0.0.0.0/0 to a NAT gateway, or the
    service's revision leaves the app enough memory and the circuit breaker rolls back.

    Reads ECS, ECR, IAM, ELB or EC2 (Describe*, Get*, List*). Read-only.
    """
    service = ecs.describe_service(lab)
    if name is None:
        record = _record(lab, service)
        if record is None:
            return Repair(False, _("no fault applied"), _("Apply one: handson.faults.apply(lab)."))
        name = record.name
    return REPAIRED[_check_name(name)](lab, service)


# ------------------------------------------------------------------ symptoms


def _since(applied_at: str) -> datetime | None:
    try:
        return datetime.strptime(applied_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def _failed_tasks(
    lab: Lab, service: dict[str, Any], since: datetime | None
) -> list[dict[str, Any]]:
    """Service tasks that failed (to start, or their health checks) since ``since``,
    newest first."""
    client = lab.client("ecs")
    arns = client.list_tasks(
        cluster=service["clusterArn"], serviceName=service["serviceName"], desiredStatus="STOPPED"
    )["taskArns"]
    tasks: list[dict[str, Any]] = []
    for start in range(0, len(arns), 100):
        tasks += client.describe_tasks(
            cluster=service["clusterArn"], tasks=arns[start : start + 100]
        )["tasks"]
    failed = []
    for task in tasks:
        when = task.get("stoppingAt") or task.get("stoppedAt") or task["createdAt"]
        reason = task.get("stoppedReason", "")
        if since is not None and when < since:
            continue
        out_of_memory = any(
            str(c.get("reason", "")).startswith(OOM_REASON) for c in task.get("containers", [])
        )
        if (
            task.get("stopCode") == "TaskFailedToStart"
            or reason.startswith("Task failed ")
            or out_of_memory
        ):
            failed.append((when, task))
    return [task for _when, task in sorted(failed, key=lambda pair: pair[0], reverse=True)]


def _unhealthy_targets(lab: Lab, service: dict[str, Any]) -> list[str]:
    found = lab.client("elbv2").describe_target_health(TargetGroupArn=_target_group_arn(service))
    # The target, its port, AWS's reason code and description stay as AWS wrote them.
    return [
        _(
            "target {target} (health check port {port}) is unhealthy: {reason} ({description})"
        ).format(
            target=d["Target"]["Id"],
            port=d.get("HealthCheckPort"),
            reason=d["TargetHealth"].get("Reason"),
            description=d["TargetHealth"].get("Description"),
        )
        for d in found["TargetHealthDescriptions"]
        if d["TargetHealth"].get("State") == "unhealthy"
    ]


def _symptom(lab: Lab, service: dict[str, Any], record: AppliedFault) -> str:
    targets = _unhealthy_targets(lab, service) if record.name in TARGET_FAULTS else []
    if targets:
        return targets[0]
    failed = _failed_tasks(lab, service, _since(record.applied_at))
    if not failed:
        return ""
    said = _("a task stopped: {reason}").format(reason=failed[0].get("stoppedReason", ""))
    containers = [
        _("container {name}: {reason}, exit code {code}").format(
            name=c["name"], reason=c["reason"], code=c.get("exitCode")
        )
        for c in failed[0].get("containers", [])
        if str(c.get("reason", "")).startswith(OOM_REASON)
    ]
    return f"{said} ({'; '.join(containers)})" if containers else said


@step("Look for the fault's symptom")
def symptom(lab: Lab) -> str:
    """What AWS reports about the applied fault: an unhealthy target's reason
    (DescribeTargetHealth) or the latest failed task's stoppedReason (ListTasks,
    DescribeTasks), or "" while nothing shows yet. Read-only.
    """
    service = ecs.describe_service(lab)
    record = _record(lab, service)
    return "" if record is None else _symptom(lab, service, record)


def wait_for_symptom(lab: Lab, *, timeout: float = 900.0, poll: float = 2.0) -> str:
    """Wait until AWS reports the applied fault (a task that failed, or an unhealthy
    target) and return what it says. Polls :func:`symptom` every ``poll`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        found = symptom(lab)
        if found:
            return found
        if time.monotonic() > deadline:
            raise WaitTimeoutError(
                _(
                    "AWS reported nothing wrong within {timeout:.0f} s: was a fault applied "
                    "(handson.faults.apply(lab))? Look at handson.ecs.show_service_events(lab)."
                ).format(timeout=timeout)
            )
        time.sleep(poll)


@step("Assess the applied fault")
def assess(lab: Lab) -> Assessment:
    """Read which fault the service's tag names, whether it is repaired, and what AWS
    reports about it (the check's and show_fault's reads). Calls DescribeServices,
    ListTagsForResource and the reads of :func:`repaired` and :func:`symptom`. Read-only.
    """
    service = ecs.describe_service(lab)
    record = _record(lab, service)
    if record is None:
        return Assessment(service, None, None, "")
    state = REPAIRED[record.name](lab, service)
    return Assessment(service, record, state, _symptom(lab, service, record))


# -------------------------------------------------------------------- repair


def _fix_image_tag(lab: Lab) -> str:
    registry.push_image(lab)
    return "handson.registry.push_image(lab)"


def _fix_secret_policy(lab: Lab) -> str:
    iam.ensure_execution_secret_policy(lab, secret_arn=database.get_database(lab).secret_arn)
    return "handson.iam.ensure_execution_secret_policy(lab, secret_arn=pre.database.secret_arn)"


def _fix_target_group(lab: Lab) -> str:
    loadbalancer.ensure_target_group(lab, vpc_id=network.get_network(lab).vpc_id)
    return "handson.loadbalancer.ensure_target_group(lab, vpc_id=pre.network.vpc_id)"


def _fix_nat_route(lab: Lab) -> str:
    network.ensure_nat_gateways(lab, enabled=True)
    return "handson.network.ensure_nat_gateways(lab, enabled=True)"


@step("Give the app its memory back")
def restore_memory(lab: Lab) -> str:
    """Register a revision of the latest one without the app container's memory limit
    (the chapter sets only the task's memory) and point the service at it with the
    chapter's deployment configuration (circuit breaker with rollback). Calls
    DescribeTaskDefinition, RegisterTaskDefinition (unless the latest revision already has
    no limit), DescribeServices and UpdateService. Returns the revision's ARN.
    """
    spec = ecs.spec_from_latest(lab)
    for container in spec["containerDefinitions"]:
        if container["name"] == lab.name("app"):
            container.pop("memory", None)
    definition = ecs.ensure_task_definition(lab, spec)
    service = ecs.describe_service(lab)
    lab.client("ecs").update_service(
        cluster=service["clusterArn"],
        service=service["serviceName"],
        taskDefinition=definition.arn,
        deploymentConfiguration=ecs.DEPLOYMENT_CONFIGURATION,
    )
    return definition.arn


def _fix_out_of_memory(lab: Lab) -> str:
    restore_memory(lab)
    return "handson.faults.restore_memory(lab)"


def _fix_alb_rule(lab: Lab) -> str:
    network.ensure_security_groups(lab)
    return "handson.network.ensure_security_groups(lab)"


FIXES: Final[dict[str, Callable[[Lab], str]]] = {
    "image-tag": _fix_image_tag,
    "secret-policy": _fix_secret_policy,
    "health-check-path": _fix_target_group,
    "container-port": _fix_target_group,
    "nat-route": _fix_nat_route,
    "out-of-memory": _fix_out_of_memory,
    "alb-rule": _fix_alb_rule,
}


@step("Repair the fault")
def repair(lab: Lab, name: str | None = None) -> str:
    """Undo the fault ``name`` (None: the one applied) with the chapter's own idempotent
    step: push the image again (ECR PutImage), put the execution role's secret policy back
    (IAM PutRolePolicy), reset the target group's health check (ELB ModifyTargetGroup) or
    the NAT routes (EC2 CreateRoute), or deploy a revision with the app's memory back and
    the rollback on (:func:`restore_memory`). Returns the call it made.

    The tasks that failed stay stopped: restart the service afterwards
    (handson.ecs.restart_service(lab), then handson.ecs.wait_for_rollout(lab)).
    """
    if name is None:
        record = applied(lab)
        if record is None:
            raise ConfigurationError(
                _("No fault is applied to the service: there is nothing to repair.")
            )
        name = record.name
    return FIXES[_check_name(name)](lab)


# --------------------------------------------------------------------- views


@step("Show the applied fault")
def show_fault(lab: Lab) -> pd.DataFrame:
    """Which fault was applied, what AWS shows for it, where to look and how to repair it
    (gives the answer away: for when you are stuck, or after the check).

    Calls what :func:`assess` calls. Read-only.
    """
    found = assess(lab)
    columns = ["item", "value"]
    if found.applied is None or found.state is None or found.fault is None:
        return pd.DataFrame([(_("fault"), _("(none applied)"))], columns=columns)
    fault, state = found.fault, found.state
    answer = _("yes") if state.repaired else _("no")
    rows = [
        (_("fault"), fault.name),
        (_("what is wrong"), _(fault.title)),
        (_("applied at (UTC)"), found.applied.applied_at),
        (_("what you will see"), _(fault.symptom)),
        (_("where to look"), _(fault.look_at)),
        (_("latest failure AWS reported"), found.symptom or _("(none yet)")),
        (_("repair"), _(fault.repair)),
        (_("repaired"), f"{answer}: {state.saw}"),
    ]
    return pd.DataFrame(rows, columns=columns)
