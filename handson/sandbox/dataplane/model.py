"""The data plane's records of ECS services, deployments and tasks.

These are plain objects. ``to_api`` methods render them in the shape of the ECS API
(camelCase, as botocore's service model names the members), so the control plane can
answer DescribeTasks / DescribeServices from them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from handson.sandbox.dataplane.clock import utcnow

# The states before RUNNING (docs/sandbox.md, "Task lifecycle").
STARTING_STATES = ("PROVISIONING", "PENDING", "ACTIVATING")


@dataclass
class Container:
    """One container of a task (a local process once the task is ACTIVATING)."""

    name: str
    image: str
    essential: bool
    definition: dict[str, Any]
    runtime_id: str
    last_status: str = "PENDING"
    exit_code: int | None = None
    reason: str | None = None
    health_status: str = "UNKNOWN"
    image_digest: str | None = None

    def to_api(self, task: Task) -> dict[str, Any]:
        data: dict[str, Any] = {
            "containerArn": f"{task.arn.replace(':task/', ':container/')}/{self.runtime_id}",
            "taskArn": task.arn,
            "name": self.name,
            "image": self.image,
            "runtimeId": f"{task.id}-{self.runtime_id}",
            "lastStatus": self.last_status,
            "networkBindings": [],
            "networkInterfaces": [
                {"attachmentId": task.attachment_id, "privateIpv4Address": task.private_ip}
            ]
            if task.private_ip
            else [],
            "healthStatus": self.health_status,
            "cpu": str(self.definition.get("cpu", 0)),
        }
        if self.image_digest:
            data["imageDigest"] = self.image_digest
        if self.exit_code is not None:
            data["exitCode"] = self.exit_code
        if self.reason:
            data["reason"] = self.reason
        if "memory" in self.definition:
            data["memory"] = str(self.definition["memory"])
        return data


@dataclass
class Task:
    """An ECS task: its lifecycle, its containers and its network interface."""

    arn: str
    id: str
    account: str
    region: str
    cluster_arn: str
    task_definition: dict[str, Any]
    group: str
    started_by: str
    containers: list[Container]
    subnet_id: str
    security_groups: list[str]
    assign_public_ip: bool = False
    overrides: dict[str, Any] = field(default_factory=dict)
    service_arn: str | None = None
    service_uid: str | None = None  # which incarnation of the service owns it
    deployment_id: str | None = None
    tags: list[dict[str, str]] = field(default_factory=list)
    last_status: str = "PROVISIONING"
    desired_status: str = "RUNNING"
    state_since: float = 0.0  # sandbox clock, AWS seconds
    stop_code: str | None = None
    stopped_reason: str | None = None
    created_at: datetime = field(default_factory=utcnow)
    timestamps: dict[str, datetime] = field(default_factory=dict)
    # Network: the ENI in the VPC, and the loopback address that stands in for it.
    eni_id: str | None = None
    attachment_id: str = ""
    private_ip: str | None = None
    mac_address: str | None = None
    local_host: str | None = None
    availability_zone: str = ""
    # Load balancer registrations: (target group ARN, container port).
    registrations: list[tuple[str, int]] = field(default_factory=list)
    accounted: bool = False  # the scheduler has counted its stop (throttle, breaker)
    launched_at: float | None = None  # sandbox clock: containers started
    running_since: float | None = None  # sandbox clock: reached RUNNING
    version: int = 1

    @property
    def task_definition_arn(self) -> str:
        return str(self.task_definition["taskDefinitionArn"])

    @property
    def cluster_name(self) -> str:
        return self.cluster_arn.rsplit("/", 1)[-1]

    @property
    def alive(self) -> bool:
        """Wanted to run: not asked to stop."""
        return self.desired_status == "RUNNING"

    @property
    def starting(self) -> bool:
        return self.last_status in STARTING_STATES

    @property
    def health_status(self) -> str:
        """From essential containers, UNHEALTHY > UNKNOWN > HEALTHY.

        See docs/sandbox.md, "Container health checks".
        """
        statuses = [c.health_status for c in self.containers if c.essential]
        if "UNHEALTHY" in statuses:
            return "UNHEALTHY"
        if "UNKNOWN" in statuses or not statuses:
            return "UNKNOWN"
        return "HEALTHY"

    def mark(self, name: str) -> None:
        """Record a lifecycle timestamp once (pullStartedAt, startedAt, ...)."""
        self.timestamps.setdefault(name, utcnow())

    def to_api(self, include_tags: bool = False) -> dict[str, Any]:
        td = self.task_definition
        data: dict[str, Any] = {
            "taskArn": self.arn,
            "clusterArn": self.cluster_arn,
            "taskDefinitionArn": self.task_definition_arn,
            "lastStatus": self.last_status,
            "desiredStatus": self.desired_status,
            "launchType": "FARGATE",
            "platformVersion": "1.4.0",
            "platformFamily": "Linux",
            "cpu": str(td.get("cpu", "")),
            "memory": str(td.get("memory", "")),
            "group": self.group,
            "startedBy": self.started_by,
            "createdAt": self.created_at,
            "version": self.version,
            "availabilityZone": self.availability_zone,
            "connectivity": "CONNECTED" if self.last_status != "PROVISIONING" else "DISCONNECTED",
            "healthStatus": self.health_status,
            "containers": [c.to_api(self) for c in self.containers],
            "overrides": {"containerOverrides": [], "inferenceAcceleratorOverrides": []}
            | self.overrides,
            "attachments": self._attachments(),
            "enableExecuteCommand": False,
            "ephemeralStorage": {"sizeInGiB": 20},
        }
        for name, value in self.timestamps.items():
            data[name] = value
        if self.stop_code:
            data["stopCode"] = self.stop_code
        if self.stopped_reason:
            data["stoppedReason"] = self.stopped_reason
        if include_tags:
            data["tags"] = self.tags
        return data

    def _attachments(self) -> list[dict[str, Any]]:
        if not self.eni_id:
            return []
        if self.last_status == "PROVISIONING":
            status = "PRECREATED"
        elif self.last_status in ("DEPROVISIONING",):
            status = "DELETING"
        elif self.last_status == "STOPPED":
            status = "DELETED"
        else:
            status = "ATTACHED"
        return [
            {
                "id": self.attachment_id,
                "type": "ElasticNetworkInterface",
                "status": status,
                "details": [
                    {"name": "subnetId", "value": self.subnet_id},
                    {"name": "networkInterfaceId", "value": self.eni_id},
                    {"name": "macAddress", "value": self.mac_address or ""},
                    {"name": "privateIPv4Address", "value": self.private_ip or ""},
                ],
            }
        ]


@dataclass
class Deployment:
    """One deployment of a service (docs/sandbox.md, "Deployments and rolling updates")."""

    id: str
    task_definition: str
    desired_count: int
    status: str = "PRIMARY"
    rollout_state: str = "IN_PROGRESS"
    rollout_state_reason: str = ""
    failed_tasks: int = 0
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)
    # Circuit breaker bookkeeping: once a task of this deployment counted as healthy,
    # failures stop being evaluated (docs/sandbox.md, "Deployment circuit breaker").
    had_healthy_task: bool = False

    def __post_init__(self) -> None:
        if not self.rollout_state_reason:
            self.rollout_state_reason = f"ECS deployment {self.id} in progress."

    def to_api(self, running: int, pending: int, network: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "taskDefinition": self.task_definition,
            "desiredCount": self.desired_count,
            "pendingCount": pending,
            "runningCount": running,
            "failedTasks": self.failed_tasks,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "launchType": "FARGATE",
            "platformVersion": "1.4.0",
            "platformFamily": "Linux",
            "networkConfiguration": network,
            "rolloutState": self.rollout_state,
            "rolloutStateReason": self.rollout_state_reason,
        }


@dataclass
class ServiceState:
    """What the service scheduler knows about one ECS service."""

    uid: str  # a service deleted and created again under the same ARN gets a new uid
    arn: str
    name: str
    account: str
    region: str
    cluster_arn: str
    desired_count: int
    load_balancers: list[dict[str, Any]]
    network_configuration: dict[str, Any]
    deployment_configuration: dict[str, Any]
    health_check_grace_period: int
    deployments: list[Deployment]
    events: list[dict[str, Any]] = field(default_factory=list)
    status: str = "ACTIVE"
    last_completed: Deployment | None = None
    consecutive_launch_failures: int = 0
    next_launch_at: float = 0.0
    steady: bool = False
    notified_unable: bool = False

    @property
    def primary(self) -> Deployment:
        return self.deployments[0]

    @property
    def min_percent(self) -> int:
        return int(self.deployment_configuration.get("minimumHealthyPercent", 100))

    @property
    def max_percent(self) -> int:
        return int(self.deployment_configuration.get("maximumPercent", 200))

    @property
    def circuit_breaker(self) -> dict[str, Any]:
        return dict(self.deployment_configuration.get("deploymentCircuitBreaker") or {})

    def circuit_breaker_threshold(self) -> int:
        """0.5 x desired count, clamped to [3, 200], rounded up.

        See docs/sandbox.md, "Deployment circuit breaker".
        """
        return min(200, max(3, math.ceil(0.5 * self.desired_count)))

    def lower_bound(self) -> int:
        """Tasks that must stay healthy during a deployment.

        See docs/sandbox.md, "Deployments and rolling updates".
        """
        return math.ceil(self.desired_count * self.min_percent / 100)

    def upper_bound(self) -> int:
        """Tasks allowed RUNNING or PENDING during a deployment.

        See docs/sandbox.md, "Deployments and rolling updates".
        """
        return math.floor(self.desired_count * self.max_percent / 100)
