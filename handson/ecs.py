"""Amazon ECS: the cluster (chapter 4), the task definition and the service (chapter 7).

A task definition is the blueprint of a task, like a docker-compose service; a service
keeps ``desiredCount`` tasks of it running, registers them with the ALB's target group,
replaces unhealthy ones and rolls out new versions.
"""

from __future__ import annotations

import json
import re
import shlex
import time
from dataclasses import dataclass
from typing import Any

import pandas as pd
from botocore.exceptions import ClientError

from handson import awscli, fargate, live, waiting
from handson.aws_errors import step, stop_hint
from handson.connection import Lab
from handson.exceptions import (
    AwsError,
    ConfigurationError,
    DeploymentError,
    NotFoundError,
    WaitTimeoutError,
)
from handson.i18n import _
from handson.progress import Progress, service_progress, service_text

CONTAINER_PORT = 3000
MAX_APP_COUNT = 10
# DeleteTaskDefinitions takes up to 10 revisions per call.
DELETE_BATCH = 10
# IAM is eventually consistent: for seconds after a role is created, ECS can't assume it
# ("failed to launch a task with (error ECS was unable to assume the role ...)").
IAM_PROPAGATION_SECONDS = 10.0
_ROLE_NOT_ASSUMED = re.compile(r"ECS was unable to assume the role '([^']+)'")


@dataclass(frozen=True)
class TaskDefinition:
    arn: str
    family: str
    revision: int


@dataclass(frozen=True)
class Service:
    name: str
    arn: str
    cluster_arn: str
    desired_count: int


def check_app_count(app_count: int) -> int:
    """Check the number of tasks (0 to 10 in this course) before any AWS call."""
    if (
        isinstance(app_count, bool)
        or not isinstance(app_count, int)
        or not 0 <= app_count <= MAX_APP_COUNT
    ):
        raise ConfigurationError(
            _(
                "app_count={app_count!r}: the number of tasks must be a whole number from 0 to "
                "{maximum} (the chapter uses 2)."
            ).format(app_count=app_count, maximum=MAX_APP_COUNT)
        )
    return app_count


def check_settings(task_cpu: str | int, task_memory: str | int, app_count: int) -> tuple[int, int]:
    """Check the chapter's settings before any AWS call: the task size against the Fargate
    table (256 CPU units allow 512, 1024 or 2048 MiB) and the number of tasks."""
    cpu, memory = fargate.check_task_size(task_cpu, task_memory)
    check_app_count(app_count)
    return cpu, memory


# ------------------------------------------------------------------- the cluster


@step("Create the ECS cluster")
def ensure_cluster(lab: Lab) -> str:
    """An ECS cluster groups services and tasks; on Fargate it has no servers to manage.

    Calls DescribeClusters, then CreateCluster (Container Insights on, FARGATE and
    FARGATE_SPOT capacity providers) if it's missing. Idempotent. Chapter 4.
    """
    ecs = lab.client("ecs")
    name = lab.name("cluster")
    found = ecs.describe_clusters(clusters=[name])["clusters"]
    active = [c for c in found if c["status"] == "ACTIVE"]
    if active:
        return str(active[0]["clusterArn"])
    cluster = ecs.create_cluster(
        clusterName=name,
        settings=[{"name": "containerInsights", "value": "enabled"}],
        capacityProviders=["FARGATE", "FARGATE_SPOT"],
        defaultCapacityProviderStrategy=[{"capacityProvider": "FARGATE", "base": 1, "weight": 100}],
        tags=lab.tag_list(name, key="key", value="value"),
    )["cluster"]
    return str(cluster["clusterArn"])


def cluster_arn(lab: Lab) -> str:
    clusters = lab.client("ecs").describe_clusters(clusters=[lab.name("cluster")])["clusters"]
    active = [c for c in clusters if c["status"] == "ACTIVE"]
    if not active:
        raise NotFoundError(
            _("The ECS cluster {cluster} doesn't exist.").format(cluster=lab.name("cluster")),
            code="ClusterNotFoundException",
            operation="DescribeClusters",
            hint=_("Run notebook 00 (chapters 1-6) first."),
        )
    return str(active[0]["clusterArn"])


# --------------------------------------------------------------- task definition


def task_definition_spec(
    lab: Lab,
    *,
    image_uri: str,
    execution_role_arn: str,
    task_role_arn: str,
    secret_arn: str,
    log_group: str,
    task_cpu: str | int = 256,
    task_memory: str | int = 512,
) -> dict[str, Any]:
    """The RegisterTaskDefinition parameters of the chapter, as its Terraform writes them.

    The seed's Node app read NODE_ENV; the kit's Python app reads APP_ENV. There is no
    task-level healthCheck: ECS would ignore the image's Dockerfile HEALTHCHECK anyway.
    """
    cpu, memory = fargate.check_task_size(task_cpu, task_memory)
    name = lab.name("app")
    secrets = [
        ("DB_HOST", "host"),
        ("DB_PORT", "port"),
        ("DB_NAME", "dbname"),
        ("DB_USER", "username"),
        ("DB_PASSWORD", "password"),
    ]
    return {
        "family": name,
        "networkMode": "awsvpc",
        "requiresCompatibilities": ["FARGATE"],
        "cpu": str(cpu),
        "memory": str(memory),
        "executionRoleArn": execution_role_arn,
        "taskRoleArn": task_role_arn,
        "containerDefinitions": [
            {
                "name": name,
                "image": image_uri,
                "essential": True,
                "portMappings": [{"containerPort": CONTAINER_PORT, "protocol": "tcp"}],
                "environment": [
                    {"name": "APP_ENV", "value": "production"},
                    {"name": "PORT", "value": str(CONTAINER_PORT)},
                ],
                # ":<json key>::" keeps the version fields empty: AWSCURRENT.
                "secrets": [
                    {"name": env, "valueFrom": f"{secret_arn}:{key}::"} for env, key in secrets
                ],
                "logConfiguration": {
                    "logDriver": "awslogs",
                    "options": {
                        "awslogs-group": log_group,
                        "awslogs-region": lab.region,
                        "awslogs-stream-prefix": "ecs",
                    },
                },
            }
        ],
    }


def _comparable(definition: dict[str, Any]) -> dict[str, Any]:
    """The parts of a task definition the kit sets, in a form that compares equal."""
    containers = []
    for c in definition["containerDefinitions"]:
        containers.append(
            {
                "name": c["name"],
                "image": c["image"],
                "essential": c.get("essential", True),
                "ports": sorted(
                    (int(p["containerPort"]), p.get("protocol", "tcp"))
                    for p in c.get("portMappings", [])
                ),
                "environment": sorted((e["name"], e["value"]) for e in c.get("environment", [])),
                "secrets": sorted((s["name"], s["valueFrom"]) for s in c.get("secrets", [])),
                "logConfiguration": c.get("logConfiguration"),
                "memory": c.get("memory"),
                "memoryReservation": c.get("memoryReservation"),
            }
        )
    return {
        "cpu": str(definition.get("cpu")),
        "memory": str(definition.get("memory")),
        "networkMode": definition.get("networkMode"),
        "executionRoleArn": definition.get("executionRoleArn"),
        "taskRoleArn": definition.get("taskRoleArn"),
        "containers": containers,
    }


TASK_DEFINITION_KEYS = ("family", "cpu", "memory", "containerDefinitions")
# What DescribeTaskDefinition adds that RegisterTaskDefinition does not take.
_READ_ONLY = (
    "taskDefinitionArn",
    "revision",
    "status",
    "requiresAttributes",
    "compatibilities",
    "registeredAt",
    "registeredBy",
    "deregisteredAt",
    "deleteRequestedAt",
)


def _check_spec(
    spec: Any, required: tuple[str, ...], *, operation: str, example: str, needs: str
) -> None:
    """A learner's spec is a dict with ``required`` keys, or a ConfigurationError says so."""
    if not isinstance(spec, dict):
        raise ConfigurationError(
            _(
                "spec is a {kind}: give the {operation} parameters as a dict, e.g. {example}."
            ).format(kind=type(spec).__name__, operation=operation, example=example)
        )
    missing = [key for key in required if key not in spec]
    if missing:
        raise ConfigurationError(
            _("The spec has no {keys}: {needs}.").format(keys=", ".join(missing), needs=needs)
        )


def _check_task_definition_spec(spec: dict[str, Any]) -> None:
    _check_spec(
        spec,
        TASK_DEFINITION_KEYS,
        operation="RegisterTaskDefinition",
        example="{'family': ..., 'cpu': '256', 'memory': '512', "
        "'containerDefinitions': [container], ...}",
        needs=_("a Fargate task definition needs {keys} (and networkMode, the roles, ...)").format(
            keys=", ".join(TASK_DEFINITION_KEYS)
        ),
    )
    fargate.check_task_size(spec["cpu"], spec["memory"])


@step("Register the task definition")
def ensure_task_definition(lab: Lab, spec: dict[str, Any]) -> TaskDefinition:
    """Register the task definition, unless its latest revision already says the same.

    Each RegisterTaskDefinition makes a new revision (family:1, family:2, ...); the kit
    reuses the latest ACTIVE one when nothing changed. Calls DescribeTaskDefinition and
    RegisterTaskDefinition. Idempotent. Chapter 7.
    """
    _check_task_definition_spec(spec)
    ecs = lab.client("ecs")
    family = spec["family"]
    latest = _latest_revision(lab, family)
    if latest is not None and _comparable(latest) == _comparable(spec):
        return TaskDefinition(latest["taskDefinitionArn"], family, int(latest["revision"]))
    registered = ecs.register_task_definition(
        **spec, tags=lab.tag_list(lab.name("app-task"), key="key", value="value")
    )["taskDefinition"]
    return TaskDefinition(registered["taskDefinitionArn"], family, int(registered["revision"]))


@step("Find the latest task definition")
def latest_task_definition(lab: Lab) -> TaskDefinition:
    """The newest ACTIVE revision of the chapter's family ``P-E-app``.

    Calls ListTaskDefinitions and DescribeTaskDefinition. Read-only. Chapter 7.
    """
    latest = _latest_revision(lab, lab.name("app"))
    if latest is None:
        raise NotFoundError(
            _("No task definition of the family {family} is registered.").format(
                family=lab.name("app")
            ),
            code="ClientException",
            operation="ListTaskDefinitions",
            hint=_("Register the task definition first (exercise 1, or notebook 07)."),
        )
    return TaskDefinition(latest["taskDefinitionArn"], latest["family"], int(latest["revision"]))


@step("Start a new revision from the latest one")
def spec_from_latest(
    lab: Lab, *, cpu: str | int | None = None, memory: str | int | None = None
) -> dict[str, Any]:
    """The RegisterTaskDefinition parameters of the latest revision, with a new task size.

    Registering it makes the next revision; the size is checked against the Fargate
    table first. Calls DescribeTaskDefinition. Read-only. Chapter 7, exercise 2.
    """
    latest = _latest_revision(lab, lab.name("app"))
    if latest is None:
        latest_task_definition(lab)  # raises the kit's NotFoundError with its hint
    spec = {k: v for k, v in dict(latest or {}).items() if k not in _READ_ONLY}
    if cpu is not None or memory is not None:
        new_cpu, new_memory = fargate.check_task_size(
            spec["cpu"] if cpu is None else cpu, spec["memory"] if memory is None else memory
        )
        spec["cpu"], spec["memory"] = str(new_cpu), str(new_memory)
    return spec


def _latest_revision(lab: Lab, family: str) -> dict[str, Any] | None:
    ecs = lab.client("ecs")
    arns = ecs.list_task_definitions(
        familyPrefix=family, status="ACTIVE", sort="DESC", maxResults=1
    )["taskDefinitionArns"]
    if not arns:
        return None
    return dict(ecs.describe_task_definition(taskDefinition=arns[0])["taskDefinition"])


# --------------------------------------------------------------------- service

# The article's --query for its describe-services and describe-tasks commands.
SERVICE_QUERY = "services[0].{Status:status,RunningCount:runningCount,DesiredCount:desiredCount}"
STOPPED_QUERY = "tasks[0].{StopCode:stopCode,StoppedReason:stoppedReason}"
DEPLOYMENT_CONFIGURATION = {
    "maximumPercent": 200,
    "minimumHealthyPercent": 100,
    "deploymentCircuitBreaker": {"enable": True, "rollback": True},
}


def _describe_service(lab: Lab) -> dict[str, Any] | None:
    try:
        services = lab.client("ecs").describe_services(
            cluster=lab.name("cluster"), services=[lab.name("app-service")]
        )["services"]
    except ClientError as error:
        # No cluster, no service: a teardown that already removed it, or nothing built yet.
        if error.response["Error"]["Code"] == "ClusterNotFoundException":
            return None
        raise
    active = [s for s in services if s["status"] != "INACTIVE"]
    return dict(active[0]) if active else None


def describe_service(lab: Lab) -> dict[str, Any]:
    """DescribeServices of the chapter's service (NotFoundError with a hint if missing)."""
    service = _describe_service(lab)
    if service is None:
        raise NotFoundError(
            _("The ECS service {service} doesn't exist.").format(service=lab.name("app-service")),
            code="ServiceNotFoundException",
            operation="DescribeServices",
            hint=_("Run the 'create the service' step of chapter 7 first."),
        )
    return service


def service_spec(
    lab: Lab,
    *,
    task_definition_arn: str,
    private_subnet_ids: list[str],
    security_group_id: str,
    target_group_arn: str,
    app_count: int = 2,
) -> dict[str, Any]:
    """The CreateService parameters of the chapter, as its Terraform writes them (no AWS
    call): tasks in the private subnets without public IPs, registered in the target
    group on port 3000, maximumPercent 200 / minimumHealthyPercent 100, circuit breaker
    with rollback."""
    return {
        "cluster": lab.name("cluster"),
        "serviceName": lab.name("app-service"),
        "taskDefinition": task_definition_arn,
        "desiredCount": app_count,
        "launchType": "FARGATE",
        "networkConfiguration": {
            "awsvpcConfiguration": {
                "subnets": list(private_subnet_ids),
                "securityGroups": [security_group_id],
                "assignPublicIp": "DISABLED",
            }
        },
        "loadBalancers": [
            {
                "targetGroupArn": target_group_arn,
                "containerName": lab.name("app"),
                "containerPort": CONTAINER_PORT,
            }
        ],
        "deploymentConfiguration": DEPLOYMENT_CONFIGURATION,
    }


@step("Create the ECS service")
def ensure_service(
    lab: Lab,
    *,
    task_definition_arn: str,
    private_subnet_ids: list[str],
    security_group_id: str,
    target_group_arn: str,
    app_count: int = 2,
) -> Service:
    """A service keeps ``app_count`` tasks running behind the ALB and rolls out updates.

    Tasks run in the private subnets without public IPs, register in the target group on
    port 3000, and deploy with maximumPercent 200 / minimumHealthyPercent 100 and the
    circuit breaker with rollback. When the service exists, the running task definition
    is left alone (the chapter's ``ignore_changes = [task_definition]``); only a changed
    desired count is applied. Calls DescribeServices, CreateService or UpdateService.
    Idempotent. Chapter 7.
    """
    check_app_count(app_count)
    spec = service_spec(
        lab,
        task_definition_arn=task_definition_arn,
        private_subnet_ids=private_subnet_ids,
        security_group_id=security_group_id,
        target_group_arn=target_group_arn,
        app_count=app_count,
    )
    return _apply_service(lab, spec, settings=("desiredCount",))


# What UpdateService can change of a running service, as CreateService names it.
UPDATABLE = (
    "taskDefinition",
    "desiredCount",
    "networkConfiguration",
    "loadBalancers",
    "deploymentConfiguration",
)
REQUIRED = ("serviceName", "cluster", "taskDefinition", "desiredCount", "launchType")


@step("Create the ECS service from your settings")
def create_service(lab: Lab, spec: dict[str, Any]) -> Service:
    """Create the service from CreateService parameters you wrote (the exercise).

    If the service already exists (notebook 07 made it, or you ran this before), the
    settings UpdateService can change are brought to yours: a different task
    definition or network starts a rolling deployment, as on AWS. The name and cluster
    are checked before any AWS call. Calls DescribeServices, then CreateService or
    UpdateService. Idempotent. Chapter 7, exercise 3.
    """
    _check_service_spec(lab, spec)
    return _apply_service(lab, spec, settings=UPDATABLE)


def _check_service_spec(lab: Lab, spec: dict[str, Any]) -> None:
    _check_spec(
        spec,
        REQUIRED,
        operation="CreateService",
        example="{'serviceName': ..., 'cluster': ..., 'taskDefinition': ..., ...}",
        needs=_("CreateService needs {keys} (and networkConfiguration for awsvpc tasks)").format(
            keys=", ".join(REQUIRED)
        ),
    )
    for key, expected in (("serviceName", "app-service"), ("cluster", "cluster")):
        if spec[key] != lab.name(expected):
            raise ConfigurationError(
                _(
                    "{key}={value!r}: the chapter's {key} is {expected!r} (lab.name({suffix!r}))."
                ).format(key=key, value=spec[key], expected=lab.name(expected), suffix=expected)
            )
    check_app_count(spec["desiredCount"])


def _apply_service(lab: Lab, spec: dict[str, Any], *, settings: tuple[str, ...]) -> Service:
    """Create the service, or update the ``settings`` of the existing one that differ."""
    ecs = lab.client("ecs")
    name = spec["serviceName"]
    existing = _describe_service(lab)
    if existing is None:
        created = ecs.create_service(
            **spec, tags=spec.get("tags") or lab.tag_list(name, key="key", value="value")
        )["service"]
        return Service(name, created["serviceArn"], created["clusterArn"], spec["desiredCount"])
    changes = {
        key: spec[key]
        for key in settings
        if key in spec and _differs(key, existing.get(key), spec[key])
    }
    if changes:
        ecs.update_service(cluster=spec["cluster"], service=name, **changes)
    return Service(name, existing["serviceArn"], existing["clusterArn"], spec["desiredCount"])


def _differs(key: str, current: Any, wanted: Any) -> bool:
    if key == "networkConfiguration":
        now = (current or {}).get("awsvpcConfiguration", {})
        new = wanted.get("awsvpcConfiguration", {})
        return (
            sorted(now.get("subnets", [])) != sorted(new.get("subnets", []))
            or sorted(now.get("securityGroups", [])) != sorted(new.get("securityGroups", []))
            or now.get("assignPublicIp", "DISABLED") != new.get("assignPublicIp", "DISABLED")
        )
    if key == "deploymentConfiguration":
        # AWS adds defaults (alarms, circuit breaker off) to what was sent: compare what was.
        return any((current or {}).get(k) != v for k, v in wanted.items())
    if key == "taskDefinition":  # an ARN, or family:revision
        return str(current).rsplit("/", 1)[-1] != str(wanted).rsplit("/", 1)[-1]
    return bool(current != wanted)


@step("Restart the service with the pushed image")
def restart_service(lab: Lab, *, image_digest: str | None = None) -> str | None:
    """Start a new deployment so tasks pull the image again (``--force-new-deployment``).

    ``:latest`` is a moving tag: running tasks keep the image they pulled, so after a push
    the service needs a new deployment. Skipped (returns None) when every running task
    already runs ``image_digest`` and the service is steady, so re-running is safe.
    Calls DescribeServices, ListTasks, DescribeTasks, UpdateService. Chapter 7.
    """
    service = describe_service(lab)
    if image_digest and _runs_digest(lab, service, image_digest):
        return None
    updated = lab.client("ecs").update_service(
        cluster=lab.name("cluster"), service=service["serviceName"], forceNewDeployment=True
    )["service"]
    return str(updated["deployments"][0]["id"])


def _runs_digest(lab: Lab, service: dict[str, Any], digest: str) -> bool:
    deployments = service["deployments"]
    if len(deployments) != 1 or deployments[0]["rolloutState"] != "COMPLETED":
        return False
    tasks = _tasks(lab, "RUNNING", service)
    if len(tasks) != service["desiredCount"]:
        return False
    return all(c.get("imageDigest") == digest for t in tasks for c in t["containers"])


@step("Change the number of tasks")
def scale_service(lab: Lab, count: int) -> None:
    """Set the service's desired count; the scheduler starts or stops tasks to match.

    Calls UpdateService. Chapter 7.
    """
    check_app_count(count)
    lab.client("ecs").update_service(
        cluster=lab.name("cluster"), service=lab.name("app-service"), desiredCount=count
    )


# ------------------------------------------------------- new versions, rollbacks

_IMAGE_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_REVISION = re.compile(
    r"^(arn:aws[a-z-]*:ecs:[a-z0-9-]+:\d{12}:task-definition/)?[A-Za-z0-9_-]{1,255}:\d+$"
)
ROLLBACK_EVENT = "rolling back to deployment"


def _check_revision(task_definition_arn: str) -> str:
    if not isinstance(task_definition_arn, str) or not _REVISION.match(task_definition_arn):
        raise ConfigurationError(
            _(
                "task_definition_arn={task_definition_arn!r} is not a task definition revision: "
                "pass the ARN register_revision returned (its .arn), or 'family:revision'."
            ).format(task_definition_arn=task_definition_arn)
        )
    return task_definition_arn


def _with_tag(image: str, tag: str) -> str:
    """``image`` (``repo:tag``, ``repo@sha256:...`` or ``repo``) pointing at ``tag``."""
    repository = image.split("@", 1)[0]
    if ":" in repository.rsplit("/", 1)[-1]:
        repository = repository.rsplit(":", 1)[0]
    return f"{repository}:{tag}"


@step("Register a revision with another image tag")
def register_revision(lab: Lab, *, image_tag: str) -> TaskDefinition:
    """Register the next revision of the task definition the service runs, with one
    change: the container's image tag. ECS keeps every revision (family:1, family:2...).

    Calls DescribeServices and DescribeTaskDefinition, then RegisterTaskDefinition unless
    the family's latest ACTIVE revision already says the same (running the cell again
    reuses it). A tag that isn't in ECR gives a revision whose tasks can't start.
    Chapter 7 (circuit breaker).
    """
    if not isinstance(image_tag, str) or not _IMAGE_TAG.match(image_tag):
        raise ConfigurationError(
            _(
                "image_tag={image_tag!r} is not a valid image tag: use up to 128 letters, "
                "digits, '_', '.' or '-', starting with a letter, digit or '_' (e.g. 'v9')."
            ).format(image_tag=image_tag)
        )
    service = describe_service(lab)
    current = lab.client("ecs").describe_task_definition(taskDefinition=service["taskDefinition"])[
        "taskDefinition"
    ]
    spec = {k: v for k, v in dict(current).items() if k not in _READ_ONLY}
    containers = [dict(c) for c in spec["containerDefinitions"]]
    containers[0]["image"] = _with_tag(str(containers[0]["image"]), image_tag)
    spec["containerDefinitions"] = containers
    return ensure_task_definition(lab, spec)


@step("Deploy a task definition revision")
def deploy_revision(lab: Lab, task_definition_arn: str) -> str:
    """Point the service at another task definition revision: ECS starts a rolling
    deployment (new tasks first, within maximumPercent) and returns its id.

    Calls DescribeTaskDefinition and DescribeServices, then UpdateService unless the
    service's newest deployment already runs that revision (running the cell again starts
    nothing new). A deregistered revision is refused with a hint. Chapter 7.
    """
    _check_revision(task_definition_arn)
    definition = lab.client("ecs").describe_task_definition(taskDefinition=task_definition_arn)[
        "taskDefinition"
    ]
    if definition.get("status") == "INACTIVE":
        raise ConfigurationError(
            _(
                "{revision} is deregistered "
                "(INACTIVE): ECS won't start new deployments of it. Register it again with "
                "register_revision(lab, image_tag=...) and deploy the new revision."
            ).format(revision=definition["taskDefinitionArn"].rsplit("/", 1)[-1])
        )
    service = describe_service(lab)
    primary = service["deployments"][0]
    if primary["taskDefinition"] == definition["taskDefinitionArn"]:
        return str(primary["id"])
    updated = lab.client("ecs").update_service(
        cluster=lab.name("cluster"),
        service=service["serviceName"],
        taskDefinition=definition["taskDefinitionArn"],
    )["service"]
    return str(updated["deployments"][0]["id"])


def wait_for_rollback(
    lab: Lab,
    deployment_id: str,
    *,
    timeout: float = 1800.0,
    poll: float = 1.0,
    max_poll: float = 10.0,
) -> pd.DataFrame:
    """Wait while the circuit breaker fails deployment ``deployment_id`` and rolls the
    service back to the last deployment that completed, until the service is steady again.

    Polls DescribeServices (less often while nothing changes, up to ``max_poll`` s). Returns
    the service events since that deployment started, oldest first: the tasks that failed,
    "deployment failed", "rolling back to deployment ...", "deployment completed". Raises
    DeploymentError when the deployment succeeded instead, or failed without a rollback.
    Chapter 7.
    """
    if not isinstance(deployment_id, str) or not deployment_id.startswith("ecs-svc/"):
        raise ConfigurationError(
            _(
                "deployment_id={deployment_id!r}: pass the id deploy_revision returned "
                "('ecs-svc/...')."
            ).format(deployment_id=deployment_id)
        )
    deadline = time.monotonic() + timeout
    delay, last, since = poll, None, None
    while True:
        service = describe_service(lab)
        deployments = service["deployments"]
        primary = deployments[0]
        mine = next((d for d in deployments if d["id"] == deployment_id), None)
        if mine is not None and since is None:
            since = mine.get("createdAt")
        steady = (
            len(deployments) == 1
            and primary.get("rolloutState") == "COMPLETED"
            and service["runningCount"] == service["desiredCount"]
            and service["pendingCount"] == 0
        )
        if steady and primary["id"] == deployment_id:
            raise DeploymentError(
                _(
                    "Deployment {deployment_id} completed: its tasks started, so there was "
                    "nothing to roll back. To see the circuit breaker, deploy a revision whose "
                    "image tag is not in ECR (register_revision(lab, image_tag='does-not-exist'))."
                ).format(deployment_id=deployment_id)
            )
        if steady:
            return _events_since(service, since)
        if primary["id"] == deployment_id and primary.get("rolloutState") == "FAILED":
            raise DeploymentError(
                _failure_message(lab, service, primary)
                + "\n"
                + _(
                    "The circuit breaker did not roll back: the service needs "
                    "deploymentCircuitBreaker={'enable': True, 'rollback': True}."
                )
            )
        state = (tuple(d["id"] for d in deployments), service["runningCount"])
        delay = poll if state != last else min(delay * 1.5, max_poll)
        last = state
        if time.monotonic() > deadline:
            events = "\n".join(e["message"] for e in service["events"][:5])
            raise WaitTimeoutError(
                _(
                    "The service was not steady again within {timeout:.0f} s. "
                    "Latest events:\n{events}"
                ).format(timeout=timeout, events=events)
            )
        time.sleep(delay)


def _events_since(service: dict[str, Any], since: Any) -> pd.DataFrame:
    events = [e for e in service["events"] if since is None or e["createdAt"] >= since]
    if since is None:
        events = events[:10]
    return pd.DataFrame(
        [
            {"time": pd.Timestamp(e["createdAt"]).tz_convert("UTC"), "message": e["message"]}
            for e in reversed(events)
        ],
        columns=["time", "message"],
    )


@step("Deregister a task definition revision")
def deregister_revision(lab: Lab, task_definition_arn: str) -> None:
    """Deregister one revision (status INACTIVE): no new deployment or task can use it, and
    the family's latest ACTIVE revision is again the one before it.

    Calls DescribeServices and DescribeTaskDefinition, then DeregisterTaskDefinition unless
    it is already INACTIVE (running the cell again is safe). The revision the service runs
    is refused. Chapter 7.
    """
    _check_revision(task_definition_arn)
    ecs = lab.client("ecs")
    definition = ecs.describe_task_definition(taskDefinition=task_definition_arn)["taskDefinition"]
    arn = str(definition["taskDefinitionArn"])
    service = describe_service(lab)
    if arn in {d["taskDefinition"] for d in service["deployments"]}:
        raise ConfigurationError(
            _(
                "The service still runs {revision}: wait until the rollback is "
                "over (wait_for_rollback) before deregistering it."
            ).format(revision=arn.rsplit("/", 1)[-1])
        )
    if definition.get("status") != "INACTIVE":
        ecs.deregister_task_definition(taskDefinition=arn)


# ----------------------------------------------------------------------- waits


def wait_for_rollout(
    lab: Lab,
    *,
    timeout: float = 900.0,
    poll: float = 1.0,
    max_poll: float = 10.0,
    progress: Progress | None = None,
    raise_on_failure: bool = True,
) -> pd.DataFrame:
    """Wait until the service's newest deployment is COMPLETED (steady state) or FAILED.

    Polls DescribeServices (like ``aws ecs wait services-stable``, which also needs one
    deployment and runningCount == desiredCount), every ``poll`` seconds at first and
    less often while nothing changes, up to ``max_poll``: a class of 30 waiting for
    minutes on AWS stays well inside the ECS API rate limits. A FAILED deployment (the circuit
    breaker tripped) raises DeploymentError listing why the tasks stopped, unless
    ``raise_on_failure`` is False. A deployment the circuit breaker stopped before any task
    launched only because ECS could not assume a role yet (just created: IAM is eventually
    consistent) is started again once, with UpdateService(forceNewDeployment), when the
    role has propagated. Returns the service table. Chapter 7.
    """
    deadline = time.monotonic() + timeout
    report = progress or service_progress()
    delay, last, redeployed = poll, None, False
    while True:
        service = describe_service(lab)
        report(service)
        primary = service["deployments"][0]
        state = (
            len(service["deployments"]),
            primary["rolloutState"],
            service["runningCount"],
            service["pendingCount"],
        )
        delay = poll if state != last else min(delay * 1.5, max_poll)
        last = state
        if primary["rolloutState"] == "FAILED":
            if not redeployed and _roles_were_propagating(lab, service, primary):
                redeployed = True
                lab.client("ecs").update_service(
                    cluster=lab.name("cluster"),
                    service=service["serviceName"],
                    forceNewDeployment=True,
                )
                continue
            report(service, final=True)
            if raise_on_failure:
                raise DeploymentError(_failure_message(lab, service, primary))
            return service_table(service)
        if (
            len(service["deployments"]) == 1
            and primary["rolloutState"] == "COMPLETED"
            and service["runningCount"] == service["desiredCount"]
            and service["pendingCount"] == 0
        ):
            report(service, final=True)
            return service_table(service)
        if time.monotonic() > deadline:
            report(service, final=True)
            events = "\n".join(e["message"] for e in service["events"][:5])
            raise WaitTimeoutError(
                _(
                    "The service did not reach a steady state within {timeout:.0f} s. "
                    "Latest events:\n{events}"
                ).format(timeout=timeout, events=events)
            )
        time.sleep(delay)


def _launch_errors(service: dict[str, Any], deployment: dict[str, Any]) -> list[str]:
    """The errors of the launches that failed (no task created) since ``deployment``
    started, oldest first."""
    prefix = f"(service {service['serviceName']}) failed to launch a task with (error "
    return [
        e["message"][len(prefix) : -2]
        for e in reversed(service["events"])
        if e["createdAt"] >= deployment["createdAt"] and e["message"].startswith(prefix)
    ]


def _roles_were_propagating(lab: Lab, service: dict[str, Any], deployment: dict[str, Any]) -> bool:
    """Whether ``deployment`` failed before any task launched only because ECS could not
    assume roles that trust it; then waits until they are IAM_PROPAGATION_SECONDS old."""
    errors = _launch_errors(service, deployment)
    started = f"(service {service['serviceName']}) has started "
    if not errors or any(
        e["message"].startswith(started) and e["createdAt"] >= deployment["createdAt"]
        for e in service["events"]
    ):
        return False
    found = [_ROLE_NOT_ASSUMED.match(error) for error in errors]
    if not all(found):
        return False
    roles = {match.group(1) for match in found if match}
    pause = 0.0
    for arn in roles:
        try:
            role = lab.client("iam").get_role(RoleName=arn.rsplit("/", 1)[-1])["Role"]
        except ClientError:
            return False
        if "ecs-tasks.amazonaws.com" not in json.dumps(role["AssumeRolePolicyDocument"]):
            return False  # a wrong trust policy: waiting won't help
        age = (pd.Timestamp.now(tz="UTC") - pd.Timestamp(role["CreateDate"])).total_seconds()
        pause = max(pause, IAM_PROPAGATION_SECONDS - age)
    time.sleep(min(max(pause, 0.0), IAM_PROPAGATION_SECONDS))
    return True


def _failure_message(lab: Lab, service: dict[str, Any], deployment: dict[str, Any]) -> str:
    # The deployment's id, AWS's reason and the tasks' errors stay as AWS wrote them.
    lines = [
        _("Deployment {deployment_id} failed: {reason}").format(
            deployment_id=deployment["id"], reason=deployment["rolloutStateReason"]
        )
    ]

    def check(hint: str) -> str:
        return "\n  " + _("Check: {hint}").format(hint=hint) if hint else ""

    for error in dict.fromkeys(_launch_errors(service, deployment)):
        lines.append(
            _("- a task failed to launch: {error}").format(error=error) + check(stop_hint(error))
        )
    for reason in dict.fromkeys(
        t.get("stoppedReason", "") for t in _tasks(lab, "STOPPED", service)
    ):
        if reason:
            lines.append(
                _("- a task stopped: {reason}").format(reason=reason) + check(stop_hint(reason))
            )
    return "\n".join(lines)


# ----------------------------------------------------------------------- views


def service_table(service: dict[str, Any]) -> pd.DataFrame:
    """One row per deployment, with the service's own counts (the seed's describe-services)."""
    rows = []
    for d in service["deployments"]:
        rows.append(
            {
                "service": service["serviceName"],
                "status": service["status"],
                "desired": service["desiredCount"],
                "running": service["runningCount"],
                "pending": service["pendingCount"],
                "deployment": d["status"],
                "task_definition": d["taskDefinition"].rsplit("/", 1)[-1],
                "rollout_state": d.get("rolloutState", ""),
                "deployment_running": d["runningCount"],
                "failed_tasks": d.get("failedTasks", 0),
            }
        )
    return pd.DataFrame(rows)


@step("Show the service")
def show_service(lab: Lab) -> pd.DataFrame:
    """The service's status, desired/running/pending counts and rollout state per deployment.

    Calls DescribeServices, like the article's ``aws ecs describe-services --query
    'services[0].{Status:status,RunningCount:runningCount,DesiredCount:desiredCount}'``.
    """
    typed = awscli.command(
        "ecs",
        "DescribeServices",
        {"cluster": lab.name("cluster"), "services": [lab.name("app-service")]},
        query=SERVICE_QUERY,
        output="table",
    )
    with lab.log.typed_as([typed]):
        return service_table(describe_service(lab))


def _tasks(
    lab: Lab, desired_status: str, service: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """The service's tasks with ``desired_status``, oldest first. ``service`` is its
    DescribeServices record when the caller has it (else looked up when there are tasks)."""
    ecs = lab.client("ecs")
    arns = ecs.list_tasks(
        cluster=lab.name("cluster"),
        serviceName=lab.name("app-service"),
        desiredStatus=desired_status,
    )["taskArns"]
    tasks: list[dict[str, Any]] = []
    for start in range(0, len(arns), 100):  # DescribeTasks takes up to 100 tasks
        tasks += ecs.describe_tasks(cluster=lab.name("cluster"), tasks=arns[start : start + 100])[
            "tasks"
        ]
    # ListTasks finds tasks by the service's name, so for an hour it also lists the stopped
    # tasks of a deleted service of the same name (a course run again): not this one's.
    if tasks and service is None:
        service = _describe_service(lab)
    if service is not None:
        tasks = [t for t in tasks if t["createdAt"] >= service["createdAt"]]
    return sorted(tasks, key=lambda t: t["createdAt"])


def task_rows(tasks: list[dict[str, Any]]) -> pd.DataFrame:
    rows = []
    for t in tasks:
        ip = next(
            (
                n["privateIpv4Address"]
                for c in t["containers"]
                for n in c.get("networkInterfaces", [])
            ),
            "",
        )
        reason = t.get("stoppedReason", "")
        rows.append(
            {
                "task": t["taskArn"].rsplit("/", 1)[-1],
                "last_status": t["lastStatus"],
                "desired_status": t["desiredStatus"],
                "health": t.get("healthStatus", ""),
                "availability_zone": t.get("availabilityZone", ""),
                "private_ip": ip,
                "task_definition": t["taskDefinitionArn"].rsplit("/", 1)[-1],
                "stop_code": t.get("stopCode", ""),
                "stopped_reason": reason,
                "check": stop_hint(reason) if reason else "",
            }
        )
    columns = [
        "task", "last_status", "desired_status", "health", "availability_zone", "private_ip",
        "task_definition", "stop_code", "stopped_reason", "check",
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


@step("Show the tasks")
def show_tasks(lab: Lab) -> pd.DataFrame:
    """The service's running tasks: status, health, AZ and private IP, in zone order.

    Calls ListTasks and DescribeTasks.
    """
    # Tasks started together have no set order; by zone, a re-run shows the same table.
    tasks = sorted(_tasks(lab, "RUNNING"), key=lambda t: t.get("availabilityZone", ""))
    return task_rows(tasks)


@step("Show the stopped tasks")
def show_stopped_tasks(lab: Lab) -> pd.DataFrame:
    """Stopped tasks with their stop code and reason (kept at least an hour by ECS), and
    what to check for each reason (the chapter's troubleshooting).

    Calls ListTasks and DescribeTasks, like the article's ``aws ecs describe-tasks --tasks
    $(aws ecs list-tasks --desired-status STOPPED ...)`` (which shows the newest one).
    """
    cluster = shlex.quote(lab.name("cluster"))
    listed = (
        f"aws ecs list-tasks --cluster {cluster} --desired-status STOPPED "
        "--query 'taskArns[0]' --output text"
    )
    typed = (
        f"aws ecs describe-tasks --cluster {cluster} --tasks $({listed}) "
        f"--query {shlex.quote(STOPPED_QUERY)} --output table"
    )
    with lab.log.typed_as([typed]):
        return task_rows(_tasks(lab, "STOPPED"))


@step("Show why tasks stopped")
def show_stop_reasons(lab: Lab) -> pd.DataFrame:
    """Each distinct reason the service's tasks stopped for, oldest first: its stop code,
    the availability zones it happened in, and what to check (the chapter's
    troubleshooting, one row per cause instead of one per task).

    Calls ListTasks and DescribeTasks. Read-only. Chapter 7.
    """
    rows: dict[tuple[str, str], set[str]] = {}
    for task in _tasks(lab, "STOPPED"):
        key = (task.get("stopCode", ""), task.get("stoppedReason", ""))
        rows.setdefault(key, set()).add(task.get("availabilityZone", ""))
    return pd.DataFrame(
        [
            {
                "stop_code": code,
                "stopped_reason": reason,
                "zones": ", ".join(sorted(zones)),
                "check": stop_hint(reason) if reason else "",
            }
            for (code, reason), zones in rows.items()
        ],
        columns=["stop_code", "stopped_reason", "zones", "check"],
    )


WATCH_SECONDS = 5.0  # how often a watched service is described again


def watch_service(lab: Lab, *, seconds: float = 120.0) -> live.Watch:
    """Show the service as it changes, in place, for ``seconds`` (the Stop button ends it
    sooner): its deployments with their counts, its running tasks and its latest events,
    described again every 5 s, while the notebook stays free (start a deployment in the
    next cell and watch ECS replace the tasks). Calls DescribeServices, ListTasks and
    DescribeTasks.
    """

    def poll() -> str:
        service = describe_service(lab)
        tasks = task_rows(_tasks(lab, "RUNNING", service))
        events = [
            f"{pd.Timestamp(e['createdAt']).tz_convert('UTC'):%H:%M:%S} {e['message']}"
            for e in service["events"][:5]
        ]
        columns = ["task", "last_status", "health", "availability_zone", "task_definition"]
        return "\n\n".join(
            [
                service_text(service),
                service_table(service).to_string(index=False),
                tasks[columns].to_string(index=False) if len(tasks) else _("(no running task)"),
                "\n".join(events),
            ]
        )

    return live.watch(lab.name("app-service"), poll, seconds=seconds, interval=WATCH_SECONDS)


@step("Show the service events")
def show_service_events(lab: Lab, *, limit: int = 10) -> pd.DataFrame:
    """The service scheduler's latest events, newest first (the console's Events tab)."""
    events = describe_service(lab)["events"][:limit]
    return pd.DataFrame(
        [
            {"time": pd.Timestamp(e["createdAt"]).tz_convert("UTC"), "message": e["message"]}
            for e in events
        ],
        columns=["time", "message"],
    )


def outputs(lab: Lab) -> dict[str, str]:
    """The chapter's ``terraform output`` values for ECS."""
    service = describe_service(lab)
    arn = service["taskDefinition"]
    return {
        "ecs_cluster_id": service["clusterArn"],
        "ecs_service_name": service["serviceName"],
        "ecs_task_definition_arn": arn,
        "ecs_task_definition_family": arn.rsplit("/", 1)[-1].rsplit(":", 1)[0],
    }


# -------------------------------------------------------------------- teardown


@step("Delete the ECS service")
def delete_service(lab: Lab) -> None:
    """Scale the service to 0 and delete it; wait until it is INACTIVE. Idempotent."""
    service = _describe_service(lab)
    if service is None:
        return
    ecs = lab.client("ecs")
    ecs.delete_service(cluster=lab.name("cluster"), service=service["serviceName"], force=True)
    waiting.wait(
        ecs,
        "services_inactive",
        timeout=600.0,
        cluster=lab.name("cluster"),
        services=[service["serviceName"]],
    )


@step("Delete the task definitions")
def delete_task_definitions(lab: Lab) -> None:
    """Deregister every revision of the chapter's family, then delete them: on AWS a
    deregistered revision stays INACTIVE (listed, and counted) for good unless it is
    deleted, which moves it to DELETE_IN_PROGRESS until no task uses it.

    Calls ListTaskDefinitions, DeregisterTaskDefinition for each ACTIVE revision and
    DeleteTaskDefinitions for the INACTIVE ones (10 at a time, AWS's limit). Idempotent.
    """
    ecs = lab.client("ecs")
    for arn in _family_revisions(lab, "ACTIVE"):
        ecs.deregister_task_definition(taskDefinition=arn)
    inactive = _family_revisions(lab, "INACTIVE")
    for start in range(0, len(inactive), DELETE_BATCH):
        answer = ecs.delete_task_definitions(taskDefinitions=inactive[start : start + DELETE_BATCH])
        if answer.get("failures"):
            failure = answer["failures"][0]
            raise AwsError(
                _("DeleteTaskDefinitions refused {arn}: {reason}").format(
                    arn=failure.get("arn"), reason=failure.get("reason")
                ),
                code="ClientException",
                operation="DeleteTaskDefinitions",
                hint=_(
                    "Run the teardown cell again; if it is refused again, deregister the "
                    "revision in the ECS console and delete it there."
                ),
            )


def _family_revisions(lab: Lab, status: str) -> list[str]:
    """The ARNs of the chapter's family's revisions in ``status`` (ACTIVE or INACTIVE)."""
    paginator = lab.client("ecs").get_paginator("list_task_definitions")
    pages = paginator.paginate(familyPrefix=lab.name("app"), status=status)
    return [arn for page in pages for arn in page["taskDefinitionArns"]]


@step("Delete the ECS cluster")
def delete_cluster(lab: Lab) -> None:
    """Delete the cluster once it has no services. Idempotent."""
    ecs = lab.client("ecs")
    found = ecs.describe_clusters(clusters=[lab.name("cluster")])["clusters"]
    if any(c["status"] == "ACTIVE" for c in found):
        ecs.delete_cluster(cluster=lab.name("cluster"))


def show_container_settings(spec: dict[str, Any]) -> pd.DataFrame:
    """The container's settings in a task definition spec, one row each (no secret values:
    a secret row shows where ECS will fetch the value from). Settings left out show as
    "(not set)"."""
    container = (spec.get("containerDefinitions") or [{}])[0]
    unset = _("(not set)")
    options = (container.get("logConfiguration") or {}).get("options", {})
    rows = [
        ("family", spec.get("family", unset)),
        ("cpu / memory", f"{spec.get('cpu', unset)} / {spec.get('memory', unset)}"),
        ("network mode", spec.get("networkMode", unset)),
        ("container", container.get("name", unset)),
        ("image", container.get("image", unset)),
        (
            "port",
            ", ".join(str(p.get("containerPort")) for p in container.get("portMappings", []))
            or unset,
        ),
    ]
    rows += [(f"env {e['name']}", e.get("value", "")) for e in container.get("environment", [])]
    # valueFrom is <secret ARN>:<json key>:<stage>:<id>: show the key only.
    rows += [
        (f"secret {s['name']}", str(s.get("valueFrom", "")).rsplit(":", 3)[-3])
        if str(s.get("valueFrom", "")).count(":") >= 9
        else (f"secret {s['name']}", str(s.get("valueFrom", "")))
        for s in container.get("secrets", [])
    ]
    rows.append(
        (
            "logs",
            _("{group} (prefix {prefix})").format(
                group=options.get("awslogs-group", unset),
                prefix=options.get("awslogs-stream-prefix", unset),
            ),
        )
    )
    return pd.DataFrame(rows, columns=["setting", "value"])


def leftovers(lab: Lab) -> list[tuple[str, str, str]]:
    """What of this module is still tagged for the student: the cluster (while ACTIVE),
    its services and the task definitions not deleted (ACTIVE or INACTIVE), as
    (service, kind, id) rows for teardown.leftovers."""
    ecs_client = lab.client("ecs")
    found: list[tuple[str, str, str]] = []
    for arn in ecs_client.list_clusters()["clusterArns"]:
        cluster = ecs_client.describe_clusters(clusters=[arn], include=["TAGS"])["clusters"][0]
        if cluster["status"] != "ACTIVE" or not lab.owns(
            cluster.get("tags"), key="key", value="value"
        ):
            continue
        found.append(("ecs", "cluster", arn))
        for service_arn in ecs_client.list_services(cluster=arn)["serviceArns"]:
            found.append(("ecs", "service", service_arn))
    for status in ("ACTIVE", "INACTIVE"):  # INACTIVE ones too: teardown deletes them
        found += [("ecs", "task definition", a) for a in _family_revisions(lab, status)]
    return found
