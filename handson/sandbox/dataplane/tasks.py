"""ECS tasks: the lifecycle as a transition table, run for real.

See docs/sandbox.md, "Task lifecycle".

A task is created with an ENI in its subnet (PROVISIONING); in PENDING the agent
fetches secrets, checks the log group and pulls the image, any of which can fail the
task with AWS's own stoppedReason; in ACTIVATING the containers start as local
processes and the task registers with its target groups; then RUNNING. A stop goes
DEACTIVATING (targets deregistered and drained) -> STOPPING (SIGTERM, SIGKILL after
stopTimeout) -> DEPROVISIONING (ENI deleted) -> STOPPED.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from handson import image_format as images
from handson.sandbox.dataplane import memory, moto_bridge, secrets
from handson.sandbox.dataplane.clock import Clock
from handson.sandbox.dataplane.firewall import AWS_SERVICE_IP, Endpoint, Firewall, logged
from handson.sandbox.dataplane.health import ContainerCheck, run_container_check
from handson.sandbox.dataplane.iam_policy import is_allowed, trusts_service
from handson.sandbox.dataplane.model import STARTING_STATES, Container, Task
from handson.sandbox.dataplane.runtime import (
    ContainerProcess,
    Loopback,
    base_environment,
    resolve_argv,
)

log = logging.getLogger(__name__)

# How long each step takes on AWS (seconds), before the speed factor.
DURATIONS = {
    "PROVISIONING": 5.0,  # ENI attached
    "PENDING": 8.0,  # secrets, log group, image pull
    "ACTIVATING": 3.0,  # containers started, targets registered
    "DEACTIVATING": 2.0,  # without a load balancer
    "DEPROVISIONING": 5.0,  # ENI deleted
}
DEFAULT_STOP_TIMEOUT = 30.0  # Fargate stopTimeout default (docs/sandbox.md, "Task lifecycle")


class TaskStartError(Exception):
    """A task can't start: ``reason`` is the stoppedReason AWS would give."""

    def __init__(self, reason: str, container_reason: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.container_reason = container_reason


@dataclass
class Prepared:
    """What the agent resolved in PENDING for one container."""

    argv: list[str]
    cwd: Path
    env: dict[str, str]
    health: ContainerCheck | None
    log_target: tuple[str, str] | None  # (group, stream)


@dataclass
class LogLine:
    account: str
    region: str
    group: str
    stream: str
    timestamp: int
    message: str


@dataclass
class Running:
    """The processes and health-check state of one task's containers."""

    processes: dict[str, ContainerProcess] = field(default_factory=dict)
    prepared: dict[str, Prepared] = field(default_factory=dict)
    next_check: dict[str, float] = field(default_factory=dict)
    check_failures: dict[str, int] = field(default_factory=dict)
    checking: set[str] = field(default_factory=set)


def task_endpoint(task: Task) -> Endpoint:
    """A task as one side of a flow: its ENI's address, subnet and groups."""
    return Endpoint(
        task.private_ip or "", task.subnet_id, tuple(task.security_groups), interface=task.eni_id
    )


class Egress:
    """Whether a task reaches the AWS services Fargate needs to start it.

    A task in a private subnet needs a NAT gateway, or VPC endpoints (chapter 8); in a
    public subnet it needs a public IP. The HTTPS connection then goes through the task's
    security groups and its subnet's network ACL, and the NAT gateway's subnet's ACL or
    the interface endpoint's groups (see ``firewall``). Without a way out, AWS fails the
    task with a "connection issue" ResourceInitializationError or a pull timeout; so does
    the sandbox.
    """

    def __init__(self, task: Task, firewall: Firewall) -> None:
        self.task = task
        self.firewall = firewall
        self.route = moto_bridge.egress(task.account, task.region, task.subnet_id)
        self.internet = self.route["default_route"] == "nat" or (
            self.route["default_route"] == "igw" and task.assign_public_ip
        )
        self.endpoints: set[str] = self.route["endpoint_services"]
        self.source = task_endpoint(task)

    def require(self, service: str, what: str, **details: str) -> None:
        if not (self.internet or service in self.endpoints):
            raise TaskStartError(self._reason(service, AWS_SERVICE_IP, **details))
        task = self.task
        flow = self.firewall.service_flow(
            task.account, task.region, self.source, task.availability_zone, self.route, service
        )
        if not logged(
            lambda: self.firewall.check(task.account, task.region, flow),
            log.debug,
            f"task {task.id} -> {service} ({what})",
        ):
            raise TaskStartError(self._reason(service, flow.destination.ip, **details))

    def _reason(self, service: str, ip: str, image: str = "", secret_arn: str = "") -> str:
        region, timeout = self.task.region, f"dial tcp {ip}:443: i/o timeout"
        send = "exceeded maximum number of attempts, 3, https response error StatusCode: 0, "
        send += "RequestID: , request send failed"
        if service == "ecr.api":
            return (
                "ResourceInitializationError: unable to pull secrets or registry auth: The task "
                "cannot pull registry auth from Amazon ECR: There is a connection issue between "
                "the task and Amazon ECR. Check your task network configuration. operation "
                f'error ECR: GetAuthorizationToken, {send}, Post "https://api.ecr.{region}.'
                f'amazonaws.com/": {timeout}'
            )
        if service == "secretsmanager":
            return (
                "ResourceInitializationError: unable to pull secrets or registry auth: execution "
                "resource retrieval failed: unable to retrieve secret from asm: There is a "
                "connection issue between the task and AWS Secrets Manager. Check your task "
                f"network configuration. failed to fetch secret {secret_arn} from secrets "
                f"manager: operation error Secrets Manager: GetSecretValue, {send}, Post "
                f'"https://secretsmanager.{region}.amazonaws.com/": {timeout}'
            )
        if service == "logs":
            return (
                "ResourceInitializationError: failed to validate logger args: create stream has "
                "been retried 1 times: failed to create Cloudwatch log stream: RequestError: send "
                f'request failed caused by: Post "https://logs.{region}.amazonaws.com/": '
                f"{timeout} : exit status 1"
            )
        ref = _full_ref(image)
        if service == "ecr.dkr":
            registry, _, rest = ref.partition("/")
            repository, _, tag = rest.rpartition(":")
            return (
                "CannotPullContainerError: pull image manifest has been retried 5 time(s): "
                f'failed to resolve ref {ref}: failed to do request: Head "https://{registry}/v2/'
                f'{repository}/manifests/{tag}": {timeout}'
            )
        return (
            "CannotPullContainerError: ref pull has been retried 5 time(s): failed to copy: "
            'httpReadSeeker: failed open: failed to do request: Get "https://prod-'
            f'{region}-starport-layer-bucket.s3.{region}.amazonaws.com/": {timeout}'
        )


class TaskRunner:
    """Creates tasks and moves each one through its lifecycle on every tick."""

    def __init__(
        self,
        *,
        loopback: Loopback,
        clock: Clock,
        sandbox_id: str,
        hosts_file: Callable[[str, str], Path],
        lock: threading.RLock,
        firewall: Firewall,
    ) -> None:
        self.clock = clock
        self.firewall = firewall
        self.sandbox_id = sandbox_id
        self.hosts_file = hosts_file
        self.lock = lock
        self.tasks: dict[str, Task] = {}
        # The same tasks by service (uid -> arn -> task): the scheduler looks up a service's
        # tasks several times per service per tick, and a class has hundreds of tasks.
        self.by_service: dict[str, dict[str, Task]] = {}
        self.running: dict[str, Running] = {}
        self.loopback = loopback
        # (account, region, ENI IP) -> loopback address standing in for it
        self.addresses: dict[tuple[str, str, str], str] = {}
        self._log_lines: list[LogLine] = []
        self._log_lock = threading.Lock()
        self.memory = memory.MemoryWatcher()

    # ----------------------------------------------------------------- creation

    def _placement(
        self, account: str, region: str, cluster_arn: str, group: str, subnets: list[str]
    ) -> str:
        """The subnet for a new task of ``group``: one in the zone that has the fewest of the
        group's live tasks, the first such in the order given (docs/sandbox.md, "Task
        placement")."""
        live: dict[str, int] = {}
        for task in self.tasks.values():
            if (task.account, task.region, task.cluster_arn, task.group) == (
                account,
                region,
                cluster_arn,
                group,
            ) and task.desired_status != "STOPPED":
                live[task.availability_zone] = live.get(task.availability_zone, 0) + 1
        return min(
            subnets,
            key=lambda s: live.get(self.firewall.subnet_zone(account, region, s), 0),
        )

    def create(
        self,
        *,
        account: str,
        region: str,
        cluster_arn: str,
        task_definition: dict[str, Any],
        network: dict[str, Any],
        group: str,
        started_by: str = "",
        overrides: dict[str, Any] | None = None,
        service_uid: str | None = None,
        service_arn: str | None = None,
        deployment_id: str | None = None,
        tags: list[dict[str, str]] | None = None,
    ) -> Task:
        """A new task in PROVISIONING, with an ENI in one of the given subnets."""
        vpc = network.get("awsvpcConfiguration") or {}
        subnet = self._placement(
            account, region, cluster_arn, group, list(vpc.get("subnets") or [])
        )
        task_id = moto_bridge.random_hex(32)
        cluster_name = cluster_arn.rsplit("/", 1)[-1]
        arn = f"arn:aws:ecs:{region}:{account}:task/{cluster_name}/{task_id}"
        eni = moto_bridge.create_eni(
            account,
            region,
            subnet,
            list(vpc.get("securityGroups") or []),
            f"arn:aws:ecs:{region}:{account}:attachment/{task_id}",
        )
        overrides = overrides or {}
        by_name = {o.get("name"): o for o in overrides.get("containerOverrides", [])}
        containers = []
        for cdef in task_definition["containerDefinitions"]:
            merged = dict(cdef)
            override = by_name.get(cdef["name"], {})
            if "command" in override:
                merged["command"] = override["command"]
            if "environment" in override:
                merged["environment"] = [*cdef.get("environment", []), *override["environment"]]
            for key in ("memory", "memoryReservation"):
                if override.get(key) is not None:
                    merged[key] = override[key]
            containers.append(
                Container(
                    name=cdef["name"],
                    image=cdef.get("image", ""),
                    essential=bool(cdef.get("essential", True)),
                    definition=merged,
                    runtime_id=moto_bridge.random_hex(8),
                )
            )
        task = Task(
            arn=arn,
            id=task_id,
            account=account,
            region=region,
            cluster_arn=cluster_arn,
            task_definition=task_definition,
            group=group,
            started_by=started_by,
            containers=containers,
            subnet_id=subnet,
            security_groups=list(vpc.get("securityGroups") or []),
            assign_public_ip=vpc.get("assignPublicIp") == "ENABLED",
            overrides=overrides,
            service_arn=service_arn,
            service_uid=service_uid,
            deployment_id=deployment_id,
            tags=tags or [],
            state_since=self.clock.now(),
            eni_id=eni["id"],
            attachment_id=moto_bridge.random_uuid(),
            private_ip=eni["ip"],
            mac_address=eni["mac"],
            availability_zone=eni["availabilityZone"],
        )
        self.tasks[arn] = task
        if service_uid is not None:
            self.by_service.setdefault(service_uid, {})[arn] = task
        return task

    def forget(self, arn: str) -> None:
        """Drop a stopped task from the records (it no longer shows in DescribeTasks)."""
        task = self.tasks.pop(arn)
        if task.service_uid is not None:
            of_service = self.by_service.get(task.service_uid, {})
            of_service.pop(arn, None)
            if not of_service:
                self.by_service.pop(task.service_uid, None)

    def clear(self) -> None:
        """Forget every task (the sandbox's reset)."""
        self.tasks.clear()
        self.by_service.clear()

    # ------------------------------------------------------------------ stopping

    def request_stop(self, task: Task, code: str, reason: str) -> None:
        """Ask a task to stop (desiredStatus STOPPED); it winds down over later ticks."""
        if not task.alive:
            return
        task.desired_status = "STOPPED"
        task.stop_code = code
        task.stopped_reason = reason
        task.version += 1
        task.mark("stoppingAt")
        if task.last_status == "RUNNING":
            self._enter(task, "DEACTIVATING")
            self.deregister(task)
        elif task.last_status in STARTING_STATES:
            self._enter(task, "STOPPING")
            self._signal_all(task, kill=False)

    @staticmethod
    def release_eni(account: str, region: str, eni_id: str) -> None:
        """Delete a stopped task's ENI (the data plane delays this: control.py)."""
        moto_bridge.delete_eni(account, region, eni_id)

    def deregister(self, task: Task) -> None:
        for tg_arn, port in task.registrations:
            moto_bridge.deregister_target(
                task.account, task.region, tg_arn, task.private_ip or "", port
            )

    # --------------------------------------------------------------------- ticks

    def advance(self, task: Task, draining: Callable[[Task], bool]) -> None:
        """Move ``task`` on by as many states as the sandbox clock allows."""
        for _ in range(len(DURATIONS) + 3):
            before = task.last_status
            self._step(task, draining)
            if task.last_status == before:
                return

    def _step(self, task: Task, draining: Callable[[Task], bool]) -> None:
        now = self.clock.now()
        elapsed = now - task.state_since
        status = task.last_status
        if status == "PROVISIONING" and elapsed >= DURATIONS["PROVISIONING"]:
            self._enter(task, "PENDING")
            task.mark("pullStartedAt")
        elif status == "PENDING" and elapsed >= DURATIONS["PENDING"]:
            try:
                prepared = self._prepare(task)
                self._launch(task, prepared)
            except TaskStartError as error:
                self._fail_to_start(task, error)
                return
            task.mark("pullStoppedAt")
            self._enter(task, "ACTIVATING")
        elif status == "ACTIVATING":
            if self._essential_exit(task):
                return
            if elapsed >= DURATIONS["ACTIVATING"]:
                self._enter(task, "RUNNING")
                task.running_since = now
                task.mark("startedAt")
                task.mark("connectivityAt")
        elif status == "RUNNING":
            self._essential_exit(task)
            self._container_checks(task, now)
        elif status == "DEACTIVATING":
            wait = draining(task) if task.registrations else elapsed < DURATIONS["DEACTIVATING"]
            if not wait:
                self._enter(task, "STOPPING")
                self._signal_all(task, kill=False)
        elif status == "STOPPING":
            self._finish_stopping(task, elapsed)
        elif status == "DEPROVISIONING" and elapsed >= DURATIONS["DEPROVISIONING"]:
            self._enter(task, "STOPPED")
            task.mark("stoppedAt")

    def _enter(self, task: Task, status: str) -> None:
        task.last_status = status
        task.state_since = self.clock.now()
        task.version += 1

    def _fail_to_start(self, task: Task, error: TaskStartError) -> None:
        task.desired_status = "STOPPED"
        task.stop_code = "TaskFailedToStart"
        task.stopped_reason = error.reason
        for container in task.containers:
            container.last_status = "STOPPED"
            if error.container_reason:
                container.reason = error.container_reason
        task.mark("stoppingAt")
        self._enter(task, "STOPPING")
        self._signal_all(task, kill=True)

    def _essential_exit(self, task: Task) -> bool:
        """Note exited containers; True when an essential one ended the task."""
        running = self.running.get(task.arn)
        if running is None:
            return False
        ended = False
        for container in task.containers:
            process = running.processes.get(container.name)
            if process is None or container.last_status == "STOPPED":
                continue
            code = process.poll()
            if code is None:
                continue
            container.last_status = "STOPPED"
            self._note_exit(task, container, code)
            if container.essential and task.alive:
                ended = True
        if ended:
            task.mark("executionStoppedAt")
            self.request_stop(
                task, "EssentialContainerExited", "Essential container in task exited"
            )
        return ended

    def _note_exit(self, task: Task, container: Container, code: int) -> None:
        """Record a container's exit as ECS shows it: killed by signal N is 128 + N, and
        a container killed for its memory has AWS's OutOfMemoryError reason."""
        container.exit_code = code if code >= 0 else 128 - code
        if self.memory.killed(task.arn, container.name):
            container.exit_code = memory.OOM_EXIT_CODE
            container.reason = memory.OOM_REASON

    def _signal_all(self, task: Task, *, kill: bool) -> None:
        running = self.running.get(task.arn)
        if running is None:
            return
        for process in running.processes.values():
            process.kill() if kill else process.terminate()

    def _finish_stopping(self, task: Task, elapsed: float) -> None:
        running = self.running.get(task.arn)
        if running is not None:
            stop_timeout = max(
                float(c.definition.get("stopTimeout", DEFAULT_STOP_TIMEOUT))
                for c in task.containers
            )
            if elapsed >= stop_timeout:
                self._signal_all(task, kill=True)
            for container in task.containers:
                process = running.processes.get(container.name)
                if process is None:
                    continue
                code = process.poll()
                if code is None:
                    return
                if container.last_status != "STOPPED" or container.exit_code is None:
                    container.last_status = "STOPPED"
                    self._note_exit(task, container, code)
        for container in task.containers:
            container.last_status = "STOPPED"
        task.mark("executionStoppedAt")
        self.running.pop(task.arn, None)
        self.memory.forget(task.arn)
        self._release_network(task)
        self._enter(task, "DEPROVISIONING")

    def _release_network(self, task: Task) -> None:
        if task.private_ip:
            local = self.addresses.pop((task.account, task.region, task.private_ip), None)
            if local:
                self.loopback.release(local)
        if task.eni_id:
            # AWS detaches and deletes the ENI after the task stopped, not at once: until
            # then it keeps its security groups and subnet from being deleted.
            self.release_eni(task.account, task.region, task.eni_id)

    # --------------------------------------------------------------- PENDING work

    def _prepare(self, task: Task) -> dict[str, Prepared]:
        """What the Fargate agent does before containers start; raises TaskStartError."""
        td = task.task_definition
        prepared: dict[str, Prepared] = {}
        network = Egress(task, self.firewall)
        # Registry auth and secrets first ("unable to pull secrets or registry auth"),
        # then the log stream, then the image layers.
        network.require("ecr.api", "registry auth")
        resolved = {c.name: self._resolve_secrets(task, c, network) for c in task.containers}
        for container in task.containers:
            log_target = self._log_target(task, container, network)
            network.require("ecr.dkr", "image manifest", image=container.image)
            network.require("s3", "image layers", image=container.image)
            image = self._pull(task, container)
            cdef = container.definition
            argv = images.container_command(
                image.config,
                command_override=cdef.get("command"),
                entrypoint_override=cdef.get("entryPoint"),
            )
            try:
                argv = resolve_argv(argv)
            except (FileNotFoundError, ValueError) as exc:
                raise TaskStartError(
                    "CannotStartContainerError: ResourceInitializationError: failed to create "
                    f'new container runtime task: exec: "{exc}": executable file not found in '
                    "$PATH: unknown"
                ) from exc
            env = base_environment(self.sandbox_id, self.hosts_file(task.account, task.region))
            # The image's PATH names its base image's folders, which don't exist here.
            env.update({k: v for k, v in image.config.env.items() if k != "PATH"})
            env.update(
                {
                    "AWS_REGION": task.region,
                    "AWS_DEFAULT_REGION": task.region,
                    "AWS_EXECUTION_ENV": "AWS_ECS_FARGATE",
                    "ECS_CONTAINER_METADATA_URI_V4": "http://169.254.170.2/v4/" + task.id,
                }
            )
            env.update({e["name"]: str(e["value"]) for e in cdef.get("environment", [])})
            env.update(resolved[container.name])
            health = cdef.get("healthCheck")
            prepared[container.name] = Prepared(
                argv=argv,
                cwd=image.context_dir,
                env=env,
                health=ContainerCheck.from_definition(health) if health else None,
                log_target=log_target,
            )
        if td.get("networkMode") not in (None, "awsvpc"):
            raise TaskStartError("CannotStartContainerError: the sandbox runs awsvpc tasks only")
        return prepared

    def _resolve_secrets(self, task: Task, container: Container, network: Egress) -> dict[str, str]:
        """Fetch the container's secrets with the execution role, as the agent does.

        See docs/sandbox.md, "Secrets in task definitions".
        """
        values: dict[str, str] = {}
        entries = container.definition.get("secrets") or []
        if not entries:
            return values
        role_arn = task.task_definition.get("executionRoleArn") or ""
        policies = moto_bridge.role_policies(task.account, role_arn) or []
        for entry in entries:
            ref = secrets.parse_secret_reference(entry["valueFrom"])
            network.require("secretsmanager", "secret", secret_arn=ref.secret_arn)
            found = moto_bridge.secret(task.account, task.region, ref.secret_arn)
            resource = found["arn"] if found else ref.secret_arn
            decision = is_allowed(policies, "secretsmanager:GetSecretValue", resource)
            if not decision.allowed:
                raise TaskStartError(
                    secrets.stopped_reason_access_denied(
                        ref.secret_arn,
                        account_id=task.account,
                        execution_role_name=role_arn.rsplit("/", 1)[-1],
                        task_id=task.id,
                        request_id=moto_bridge.random_uuid(),
                        resource_arn=resource,
                        decision=decision,
                    )
                )
            if found is None or ref.kind != "secretsmanager":
                raise TaskStartError(
                    secrets.stopped_reason_secret_not_found(
                        ref.secret_arn, request_id=moto_bridge.random_uuid()
                    )
                )
            try:
                values[entry["name"]] = secrets.extract_secret_value(
                    found["secretString"] or "", ref
                )
            except secrets.SecretResolutionError as exc:
                raise TaskStartError(secrets.stopped_reason_secret_value(exc)) from exc
        return values

    def _log_target(
        self, task: Task, container: Container, network: Egress
    ) -> tuple[str, str] | None:
        config = container.definition.get("logConfiguration") or {}
        if config.get("logDriver") != "awslogs":
            return None
        network.require("logs", "log stream")
        options = config.get("options") or {}
        group = options.get("awslogs-group", "")
        region = options.get("awslogs-region", task.region)
        if not moto_bridge.log_group_exists(task.account, region, group):
            if str(options.get("awslogs-create-group", "false")).lower() == "true":
                moto_bridge.create_log_group(task.account, region, group)
            else:
                raise TaskStartError(secrets.stopped_reason_log_group_missing())
        prefix = options.get("awslogs-stream-prefix", "")
        stream = f"{prefix}/{container.name}/{task.id}" if prefix else task.id
        return group, stream

    def _pull(self, task: Task, container: Container) -> images.LocalImage:
        try:
            ref = images.parse_image_uri(container.image)
        except ValueError as exc:
            raise TaskStartError(
                f"CannotPullContainerError: invalid reference format: {container.image}"
            ) from exc
        manifest = None
        if ref.is_ecr:
            manifest = moto_bridge.image_manifest(
                ref.account_id,
                ref.region,
                ref.repository,
                None if ref.digest else ref.tag,
                ref.digest,
            )
        if manifest is None:
            # The Fargate 1.4 wording for an image not in ECR (docs/sandbox.md, "Task stop
            # codes and reasons").
            raise TaskStartError(
                "CannotPullContainerError: pull image manifest has been retried 5 time(s): "
                f"failed to resolve ref {_full_ref(container.image)}: not found",
                container_reason="CannotPullContainerError: failed to resolve ref: not found",
            )
        local = images.read_manifest(manifest[0])
        if local is None or not local.context_dir.is_dir():
            raise TaskStartError(
                "CannotPullContainerError: pull image manifest has been retried 5 time(s): "
                f"failed to resolve ref {_full_ref(container.image)}: the sandbox runs only "
                "images pushed with its Docker-free push (handson registry push)"
            )
        container.image_digest = manifest[1]
        return local

    # --------------------------------------------------------------- ACTIVATING

    def _launch(self, task: Task, prepared: dict[str, Prepared]) -> None:
        local = self.loopback.allocate()
        task.local_host = local
        self.addresses[(task.account, task.region, task.private_ip or "")] = local
        # Single-address mode: the container ports get their ports on 127.0.0.1 before
        # any process can bind them.
        for container in task.containers:
            for mapping in container.definition.get("portMappings") or []:
                if mapping.get("containerPort"):
                    self.loopback.listen_address(local, int(mapping["containerPort"]))
        running = Running(prepared=prepared)
        self.running[task.arn] = running
        task.launched_at = self.clock.now()
        for container in task.containers:
            plan = prepared[container.name]
            env = dict(plan.env)
            env["HOST"] = local
            env.update(self.loopback.environment(local))
            plan.env = env
            sink = self._sink(task, plan.log_target)
            try:
                running.processes[container.name] = ContainerProcess(
                    plan.argv, cwd=plan.cwd, env=env, sink=sink
                )
            except OSError as exc:
                raise TaskStartError(
                    f"CannotStartContainerError: ResourceInitializationError: {exc}"
                ) from exc
            container.last_status = "RUNNING"
            if plan.health is not None:
                running.next_check[container.name] = self.clock.now() + plan.health.interval
        self.memory.watch(
            task.arn,
            {
                c.name: (running.processes[c.name].pid, memory.container_limit(c.definition))
                for c in task.containers
                if c.name in running.processes
            },
            memory.task_limit(task.task_definition, task.overrides),
        )

    def _sink(self, task: Task, target: tuple[str, str] | None) -> Callable[[str, int], None]:
        if target is None:
            return lambda line, ts: None
        group, stream = target

        def sink(line: str, timestamp: int) -> None:
            with self._log_lock:
                self._log_lines.append(
                    LogLine(task.account, task.region, group, stream, timestamp, line)
                )

        return sink

    def flush_logs(self) -> None:
        """Ship buffered output lines to CloudWatch Logs, in order, one event per line."""
        with self._log_lock:
            lines, self._log_lines = self._log_lines, []
        streams: dict[tuple[str, str, str, str], list[dict[str, Any]]] = {}
        for line in lines:
            key = (line.account, line.region, line.group, line.stream)
            streams.setdefault(key, []).append(
                {"timestamp": line.timestamp, "message": line.message}
            )
        for (account, region, group, stream), events in streams.items():
            events.sort(key=lambda e: e["timestamp"])  # stable: equal stamps keep their order
            moto_bridge.put_log_events(account, region, group, stream, events)

    # ---------------------------------------------------- container health checks

    def _container_checks(self, task: Task, now: float) -> None:
        running = self.running.get(task.arn)
        if running is None:
            return
        for container in task.containers:
            plan = running.prepared.get(container.name)
            if plan is None or plan.health is None or container.name in running.checking:
                continue
            if now < running.next_check.get(container.name, 0):
                continue
            running.checking.add(container.name)
            running.next_check[container.name] = now + plan.health.interval
            threading.Thread(
                target=self._run_check, args=(task, container, plan, running), daemon=True
            ).start()

    def _run_check(
        self, task: Task, container: Container, plan: Prepared, running: Running
    ) -> None:
        check = plan.health
        assert check is not None
        ok = run_container_check(
            check,
            cwd=str(plan.cwd),
            env=plan.env,
            timeout=max(self.clock.real_seconds(check.timeout), 1.0),
        )
        with self.lock:
            running.checking.discard(container.name)
            launched = task.launched_at if task.launched_at is not None else self.clock.now()
            in_start_period = self.clock.now() - launched < check.start_period
            if ok:
                container.health_status = "HEALTHY"
                running.check_failures[container.name] = 0
            elif not (in_start_period and container.health_status != "HEALTHY"):
                # Failures inside startPeriod don't count until the first success
                # (docs/sandbox.md, "Container health checks").
                failures = running.check_failures.get(container.name, 0) + 1
                running.check_failures[container.name] = failures
                if failures >= check.retries:
                    container.health_status = "UNHEALTHY"

    def stop_everything(self) -> None:
        """Kill every container process now (sandbox shutdown or reset)."""
        for arn, running in self.running.items():
            self.memory.forget(arn)
            for process in running.processes.values():
                process.kill()
        self.running.clear()


ECS_TASKS_PRINCIPAL = "ecs-tasks.amazonaws.com"


def role_error(
    account: str, task_definition: dict[str, Any], overrides: dict[str, Any] | None = None
) -> str | None:
    """Why ECS can't assume the task's execution or task role, or None.

    ECS assumes both roles as ``ecs-tasks.amazonaws.com``: a role that doesn't exist,
    whose trust policy doesn't name that service, or that was created or re-trusted too
    recently (IAM is eventually consistent), stops the launch with AWS's message
    (docs/sandbox.md, "IAM roles and propagation").
    """
    overrides = overrides or {}
    for key in ("executionRoleArn", "taskRoleArn"):
        arn = overrides.get(key) or task_definition.get(key)
        if not arn:
            continue
        trust = moto_bridge.role_trust_policy(account, arn)
        if (
            trust is None
            or not trusts_service(trust, ECS_TASKS_PRINCIPAL)
            or moto_bridge.role_propagating(account, arn)
        ):
            return (
                f"ECS was unable to assume the role '{arn}' that was provided for this task. "
                "Please verify that the role being passed has the proper trust relationship "
                "and permissions and that your IAM user has permissions to pass this role."
            )
    return None


def _full_ref(image: str) -> str:
    return image if ":" in image.rsplit("/", 1)[-1] or "@" in image else f"{image}:latest"


def hosts_json(mapping: dict[str, str]) -> str:
    return json.dumps(mapping, indent=1, sort_keys=True)
