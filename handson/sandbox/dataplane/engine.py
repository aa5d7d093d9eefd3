"""The data plane: what moto does not do, over every account and region.

``DataPlane`` answers the hooked API operations (see ``moto_bridge.hooks``, which the
server installs for it) and runs the reconcile loop: task lifecycles, the service
scheduler, ALB health checks, log shipping. One re-entrant lock guards all state; API
requests hold it too, so each request sees the data plane between two ticks.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from handson import fargate
from handson.sandbox.dataplane import memory, moto_bridge
from handson.sandbox.dataplane.clock import Clock
from handson.sandbox.dataplane.control import ControlPlane
from handson.sandbox.dataplane.database import PostgresHost
from handson.sandbox.dataplane.firewall import (
    INTERNET_CLIENT,
    Endpoint,
    Firewall,
    Flow,
    alb_endpoint,
    logged,
)
from handson.sandbox.dataplane.flowlogs import FlowLogs
from handson.sandbox.dataplane.health import TargetHealthTable
from handson.sandbox.dataplane.moto_bridge import ApiError
from handson.sandbox.dataplane.proxy import EdgeProxy, Route
from handson.sandbox.dataplane.runtime import SLOTS, Loopback, Slot, loopback_mode
from handson.sandbox.dataplane.scheduler import Scheduler, new_deployment_id
from handson.sandbox.dataplane.tasks import TaskRunner, hosts_json, role_error, task_endpoint

log = logging.getLogger(__name__)

TICK_SECONDS = 0.05
# Stopped tasks stay visible "for at least 1 hour" (docs/sandbox.md, "Task lifecycle"); the sandbox
# keeps them an hour of wall-clock time whatever the speed factor.
STOPPED_TASK_RETENTION_SECONDS = 3600.0
DEFAULT_DEPLOYMENT_CONFIGURATION: dict[str, Any] = {
    "deploymentCircuitBreaker": {"enable": False, "rollback": False},
    "maximumPercent": 200,
    "minimumHealthyPercent": 100,
}


class DataPlane:
    """Runs ECS tasks and services, ALB health and traffic, logs and databases."""

    def __init__(
        self,
        *,
        state_dir: Path,
        speed: float,
        sandbox_id: str,
        alb_port: int,
        control_speed: float = 0.0,
        loopback: str = "auto",
    ) -> None:
        self.state_dir = state_dir
        self.sandbox_id = sandbox_id
        self.lock = threading.RLock()
        self.clock = Clock(speed)
        self.control = ControlPlane(control_speed)
        # Network interfaces of deleted resources not yet cleaned up (see ``linger``).
        self._lingering: list[dict[str, Any]] = []
        # Security groups and network ACLs between the ALB, the tasks, RDS and AWS's APIs.
        self.firewall = Firewall(self.lock)
        # VPC Flow Logs: the firewall tells them of each flow it decides.
        self.flow_logs = FlowLogs(self.clock, self.firewall, self.lock)
        self.firewall.observer = self.flow_logs.observe
        # Each sandbox on the machine holds its own 127.x.0.0/16 (and run of ports in
        # single mode), so that two of them don't hand out the same task addresses.
        self.slot = Slot(alb_port % SLOTS)
        first = self.slot.first_address
        self.loopback = Loopback(
            first,
            mode=loopback_mode(loopback, first),
            ports_file=state_dir / "dns" / "ports.json",
            first_port=self.slot.first_port,
        )
        self.runner = TaskRunner(
            loopback=self.loopback,
            clock=self.clock,
            sandbox_id=sandbox_id,
            hosts_file=self.hosts_file,
            lock=self.lock,
            firewall=self.firewall,
        )
        self.runner.release_eni = self._release_eni  # type: ignore[method-assign]
        self.targets = TargetHealthTable(
            self.clock,
            self._resolve,
            self.lock,
            reachable=self._alb_reaches,
            dial=self.loopback.dial,
            listening=self._listening,
        )
        self.scheduler = Scheduler(self.clock, self.runner, self.targets)
        self.database = PostgresHost(state_dir / "postgres")
        self.database.admit = self._db_admits
        # Per account and region: host name -> loopback address (the VPC's DNS).
        self.dns: dict[tuple[str, str], dict[str, str]] = {}
        self.db_addresses: dict[str, str] = {}  # instance key -> loopback address
        self._database_started = False
        self.proxy = EdgeProxy(self._route, host="127.0.0.1", port=alb_port)
        self._turns: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ running

    def start(self) -> None:
        self.proxy.start()
        self._thread = threading.Thread(target=self._loop, name="reconcile", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self.lock:
            self.runner.stop_everything()
        self.runner.memory.stop()
        self.proxy.stop()
        self.targets.close()
        self.database.stop()
        self.slot.release()

    def reset(self) -> None:
        """Forget every task, service and database (moto forgets the rest)."""
        with self.lock:
            self.runner.stop_everything()
            self.runner.clear()
            self.runner.addresses.clear()
            self.scheduler.services.clear()
            self.targets.records.clear()
            for key in list(self.db_addresses):
                self.database.delete_instance(key)
            self.dns.clear()
            self.db_addresses.clear()
            self.control.clear()
            self._lingering.clear()
            self.firewall.clear()
            self.flow_logs.clear()

    def _loop(self) -> None:
        while not self._stop.wait(TICK_SECONDS):
            try:
                self.tick()
            except Exception:  # keep the sandbox alive; the log says what broke
                log.exception("reconcile tick failed")

    def tick(self) -> None:
        with self.lock:
            self.control.run_due()
            for task in list(self.runner.tasks.values()):
                self.runner.advance(task, self.scheduler.draining)
            for service in list(self.scheduler.services.values()):
                self.scheduler.schedule(service)
            groups = list(moto_bridge.target_groups())
            self.targets.sync(groups, self._target_zones())
            self.targets.run_checks(groups)
            self.runner.flush_logs()
            self.flow_logs.deliver()
            self._prune()

    def linger(self, account: str, region: str, state: str, **held: list[str]) -> None:
        """Keep what a deleted resource's network interfaces held (security groups,
        subnets, public addresses of a VPC) in use until ``state`` has lasted its time."""
        record = {"account": account, "region": region, **{k: set(v) for k, v in held.items()}}
        self._lingering.append(record)
        self.control.later(state, lambda: self._lingering.remove(record))

    def lingering(self, account: str, region: str, kind: str, value: str) -> bool:
        """Whether a deleted resource's interfaces still hold ``value`` (a ``kind`` id)."""
        return any(
            r["account"] == account and r["region"] == region and value in r.get(kind, ())
            for r in self._lingering
        )

    def check_delete_cluster(self, account: str, region: str, cluster_arn: str) -> None:
        """AWS refuses to delete a cluster that still has services or tasks."""
        services = [
            s
            for s in self.scheduler.services.values()
            if s.cluster_arn == cluster_arn and s.status in ("ACTIVE", "DRAINING")
        ]
        if services:
            raise ApiError(
                "ClusterContainsServicesException",
                "The Cluster cannot be deleted while Services are active.",
            )
        if any(
            t.last_status != "STOPPED" for t in self._cluster_tasks(account, region, cluster_arn)
        ):
            raise ApiError(
                "ClusterContainsTasksException",
                "The Cluster cannot be deleted while Tasks are active.",
            )

    def _release_eni(self, account: str, region: str, eni_id: str) -> None:
        self.control.later(
            "task.eni-release", lambda: moto_bridge.delete_eni(account, region, eni_id)
        )

    def _prune(self) -> None:
        now = self.clock.now()
        keep = STOPPED_TASK_RETENTION_SECONDS * self.clock.speed
        for arn, task in list(self.runner.tasks.items()):
            if task.last_status == "STOPPED" and now - task.state_since > keep:
                self.runner.forget(arn)

    def _target_zones(self) -> dict[str, str]:
        return {
            f"{t.account}:{t.region}:{t.private_ip}": t.availability_zone
            for t in self.runner.tasks.values()
            if t.private_ip
        }

    def _resolve(self, account: str, region: str, ip: str) -> str | None:
        return self.runner.addresses.get((account, region, ip))

    def _listening(self, account: str, region: str, ip: str) -> bool:
        """Whether the app of the task with this address listens on any TCP port yet."""
        with self.lock:
            pids = [
                process.pid
                for task in self.runner.tasks.values()
                if (task.account, task.region, task.private_ip) == (account, region, ip)
                and task.arn in self.runner.running
                for process in self.runner.running[task.arn].processes.values()
            ]
        return any(conn.status == "LISTEN" for conn in _tcp_connections(pids))

    # ---------------------------------------------------------------- ALB traffic

    def _route(self, hostname: str, port: int) -> Route | None:
        with self.lock:
            lb = moto_bridge.load_balancer_by_dns(hostname)
        if lb is None or port not in lb["listeners"]:
            return None
        groups = [arn for arn, weight in lb["listeners"][port] if weight > 0]
        if not groups:
            return None
        account, region = lb["account"], lb["region"]
        with self.lock:
            node = alb_endpoint(self.firewall, account, region, lb)
            admitted = node is None or logged(
                lambda: self.firewall.check(
                    account, region, Flow(Endpoint(INTERNET_CLIENT), node, port)
                ),
                log.debug,
                f"client -> {lb['arn']}:{port}",
            )
        return Route(
            pick=lambda: self._pick(account, region, groups),
            admitted=admitted,
            # Clients wait in real seconds; never hold them shorter than lab.http's timeout.
            hold_seconds=max(self.clock.real_seconds(130.0), 15.0),
            reachable=lambda target: self._alb_reaches_host(account, region, lb, target),
            unreachable_wait=self.clock.real_seconds(10.0),
            dial=lambda target: self.loopback.dial(*target),
        )

    # ------------------------------------------------------------ network rules

    def _task_endpoint(self, account: str, region: str, ip: str) -> tuple[Any, Endpoint] | None:
        for task in self.runner.tasks.values():
            if (task.account, task.region, task.private_ip) == (account, region, ip):
                if task.last_status != "STOPPED":
                    return task, task_endpoint(task)
        return None

    def _alb_flow_allowed(
        self, account: str, region: str, lb: dict[str, Any], target_ip: str, port: int
    ) -> bool:
        """Whether the ALB's node (in the target's zone) reaches a task on ``port``."""
        found = self._task_endpoint(account, region, target_ip)
        if found is None:
            return True  # not a task's address: no rules the sandbox knows of
        task, target = found
        node = alb_endpoint(self.firewall, account, region, lb, zone=task.availability_zone)
        if node is None:
            return True
        return logged(
            lambda: self.firewall.check(account, region, Flow(node, target, port)),
            log.debug,
            f"ALB -> {target_ip}:{port}",
        )

    def _alb_reaches(self, record: Any, port: int) -> bool:
        """For health checks: whether the target group's ALB reaches the target."""
        tg = moto_bridge.target_group(record.account, record.region, record.tg_arn)
        for lb_arn in (tg or {}).get("loadBalancerArns", [])[:1]:
            lb = moto_bridge.load_balancer_network(record.account, record.region, lb_arn)
            if lb is not None:
                return self._alb_flow_allowed(
                    record.account, record.region, lb, record.target_id, port
                )
        return True

    def _alb_reaches_host(
        self, account: str, region: str, lb: dict[str, Any], target: tuple[str, int]
    ) -> bool:
        """For requests: whether the ALB reaches the task behind a loopback address."""
        with self.lock:
            for (acct, reg, ip), local in self.runner.addresses.items():
                if (acct, reg, local) == (account, region, target[0]):
                    return self._alb_flow_allowed(account, region, lb, ip, target[1])
        return True

    def _db_admits(self, key: str, peer: tuple[str, int]) -> bool:
        """Whether a connection to a DB instance's front gets through the network rules:
        the task that opened it (found by its socket) must be allowed out by its groups
        and in by the instance's. Connections from outside any task are not filtered."""
        account, rest = key.split("-", 1)
        parts = rest.split("-", 3)
        if len(parts) < 4:
            return True
        region, identifier = "-".join(parts[:3]), parts[3]
        with self.lock:
            candidates = [
                (task, [p.pid for p in self.runner.running[task.arn].processes.values()])
                for task in self.runner.tasks.values()
                if task.account == account
                and task.region == region
                and task.arn in self.runner.running
            ]
        task = _task_of_connection(candidates, peer)
        if task is None or not task.private_ip:
            return True
        with self.lock:
            db = moto_bridge.db_instance_network(account, region, identifier)
            if db is None:
                return True
            instance = self.firewall.placed(
                account,
                region,
                f"rds:{identifier}",
                db["subnets"],
                db["securityGroups"],
                zone=task.availability_zone,
            )
            if instance is None:
                return True
            source = task_endpoint(task)
            return logged(
                lambda: self.firewall.check(account, region, Flow(source, instance, db["port"])),
                log.debug,
                f"{task.private_ip} -> {identifier}:{db['port']}",
            )

    def _pick(self, account: str, region: str, groups: list[str]) -> tuple[str, int] | None:
        """A target for one request: healthy ones in turn; all of them if none is healthy."""
        with self.lock:
            records = [r for arn in groups for r in self.targets.for_group(arn)]
            serving = [r for r in records if r.draining_until is None]
            healthy = [r for r in serving if r.state == "healthy"]
            # Fail open when every target is unhealthy (docs/sandbox.md, "ALB target health").
            if not healthy and serving and all(r.state == "unhealthy" for r in serving):
                healthy = serving
            if not healthy:
                return None
            key = ",".join(groups)
            turn = self._turns.get(key, 0)
            self._turns[key] = turn + 1
            record = healthy[turn % len(healthy)]
            host = self._resolve(account, region, record.target_id)
        return None if host is None else (host, record.port)

    # ------------------------------------------------------------ ECS: checks

    def check_task_definition(self, account: str, region: str, params: dict[str, Any]) -> None:
        """AWS's RegisterTaskDefinition validation that moto skips."""
        if "FARGATE" in (params.get("requiresCompatibilities") or []):
            message = fargate.register_error(params.get("cpu"), params.get("memory"))
            if message:
                raise ApiError("ClientException", message)
        message = memory.register_error(params)
        if message:
            raise ApiError("ClientException", message)
        for cdef in params.get("containerDefinitions") or []:
            if cdef.get("secrets") and not params.get("executionRoleArn"):
                raise ApiError(
                    "ClientException",
                    "When you are specifying container secrets, you must also specify a value "
                    "for 'executionRoleArn'.",
                )
            options = (cdef.get("logConfiguration") or {}).get("options") or {}
            driver = (cdef.get("logConfiguration") or {}).get("logDriver")
            if driver == "awslogs" and not options.get("awslogs-group"):
                raise ApiError(
                    "ClientException",
                    "Log driver awslogs option 'awslogs-group' should not be null or empty.",
                )
            fargate_task = "FARGATE" in (params.get("requiresCompatibilities") or [])
            if driver == "awslogs" and fargate_task and not params.get("executionRoleArn"):
                raise ApiError(
                    "ClientException",
                    "Fargate requires task definition to have execution role ARN to support "
                    "log driver awslogs.",
                )

    def check_create_service(self, account: str, region: str, params: dict[str, Any]) -> None:
        cluster = params.get("cluster")
        moto_bridge.cluster_arn(account, region, cluster)
        name = params.get("serviceName") or ""
        existing = moto_bridge.existing_service(account, region, cluster or "default", name)
        if existing and existing["status"] == "ACTIVE":
            raise ApiError("InvalidParameterException", "Creation of service was not idempotent.")
        if existing and existing["status"] == "DRAINING":
            raise ApiError(
                "InvalidParameterException", "Unable to Start a service that is still Draining."
            )
        self._check_service_shape(account, region, params, params.get("taskDefinition"))

    def check_update_service(self, account: str, region: str, params: dict[str, Any]) -> None:
        if params.get("desiredCount") is not None and int(params["desiredCount"]) < 0:
            raise ApiError("InvalidParameterException", "Desired count must be 0 or greater.")
        config = params.get("deploymentConfiguration")
        if config:
            self._check_percentages(config)
        td_name = params.get("taskDefinition")
        if not td_name:
            return
        td = moto_bridge.task_definition(account, region, td_name)
        if td is None:
            raise ApiError("ClientException", "TaskDefinition not found.")
        # A new revision must still map the port the service's load balancer sends to.
        balancers = params.get("loadBalancers")
        if balancers is None:
            name = str(params.get("service") or "").rsplit("/", 1)[-1]
            cluster = str(params.get("cluster") or "default").rsplit("/", 1)[-1]
            found = [
                s
                for s in self.scheduler.services.values()
                if (s.account, s.region, s.name) == (account, region, name)
                and s.cluster_arn.rsplit("/", 1)[-1] == cluster
                and s.status != "INACTIVE"
            ]
            balancers = found[-1].load_balancers if found else []
        self._check_container_ports(td, balancers)

    @staticmethod
    def _check_container_ports(td: dict[str, Any], balancers: list[dict[str, Any]]) -> None:
        names = {c["name"]: c for c in td["containerDefinitions"]}
        for lb in balancers:
            container = names.get(lb.get("containerName", ""))
            if container is None:
                raise ApiError(
                    "InvalidParameterException",
                    f"The container {lb.get('containerName')} does not exist in the task "
                    "definition.",
                )
            ports = {int(p.get("containerPort", 0)) for p in container.get("portMappings", [])}
            if int(lb.get("containerPort", 0)) not in ports:
                raise ApiError(
                    "InvalidParameterException",
                    f"The container {container['name']} did not have a container port "
                    f"{lb.get('containerPort')} defined.",
                )

    def _check_service_shape(
        self, account: str, region: str, params: dict[str, Any], td_name: str | None
    ) -> None:
        td = moto_bridge.task_definition(account, region, td_name or "")
        if td is None:
            raise ApiError("ClientException", "TaskDefinition not found.")
        if td["networkMode"] == "awsvpc" and not params.get("networkConfiguration"):
            raise ApiError(
                "InvalidParameterException",
                "Network Configuration must be provided when networkMode 'awsvpc' is specified.",
            )
        if int(params.get("desiredCount") or 0) < 0:
            raise ApiError("InvalidParameterException", "Desired count must be 0 or greater.")
        self._check_percentages(params.get("deploymentConfiguration") or {})
        for lb in params.get("loadBalancers") or []:
            tg = moto_bridge.target_group(account, region, lb.get("targetGroupArn", ""))
            if tg is None:
                raise ApiError(
                    "InvalidParameterException",
                    "Unable to assume role and validate the specified targetGroupArn. Please "
                    "verify that the ECS service role being passed has the proper permissions.",
                )
            if not tg["loadBalancerArns"]:
                raise ApiError(
                    "InvalidParameterException",
                    f"The target group with targetGroupArn {tg['arn']} does not have an "
                    "associated load balancer.",
                )
        self._check_container_ports(td, params.get("loadBalancers") or [])

    @staticmethod
    def _check_percentages(config: dict[str, Any]) -> None:
        low = config.get("minimumHealthyPercent")
        high = config.get("maximumPercent")
        if low is not None and high is not None and int(high) < int(low):
            raise ApiError(
                "InvalidParameterException",
                "maximumPercent must be greater than or equal to minimumHealthyPercent.",
            )

    # ------------------------------------------------------------- ECS: services

    def service_created(
        self, account: str, region: str, params: dict[str, Any], info: dict[str, Any]
    ) -> None:
        from handson.sandbox.dataplane.model import Deployment

        config = json.loads(json.dumps(DEFAULT_DEPLOYMENT_CONFIGURATION))
        config.update(params.get("deploymentConfiguration") or {})
        self.scheduler.add(
            arn=info["serviceArn"],
            name=info["serviceName"],
            account=account,
            region=region,
            cluster_arn=info["clusterArn"],
            desired_count=int(params.get("desiredCount") or 0),
            load_balancers=list(params.get("loadBalancers") or []),
            network_configuration=params.get("networkConfiguration") or {},
            deployment_configuration=config,
            health_check_grace_period=int(params.get("healthCheckGracePeriodSeconds") or 0),
            deployments=[
                Deployment(
                    id=new_deployment_id(),
                    task_definition=info["taskDefinition"],
                    desired_count=int(params.get("desiredCount") or 0),
                )
            ],
        )

    def service_updated(
        self, account: str, region: str, params: dict[str, Any], info: dict[str, Any]
    ) -> None:
        service = self.scheduler.by_arn(info["serviceArn"])
        if service is None:
            return
        if params.get("desiredCount") is not None:
            service.desired_count = int(params["desiredCount"])
            service.primary.desired_count = service.desired_count
            service.steady = False
        if params.get("deploymentConfiguration"):
            service.deployment_configuration.update(params["deploymentConfiguration"])
        if params.get("healthCheckGracePeriodSeconds") is not None:
            service.health_check_grace_period = int(params["healthCheckGracePeriodSeconds"])
        if params.get("networkConfiguration"):
            service.network_configuration = params["networkConfiguration"]
        wanted = params.get("taskDefinition")
        if wanted:
            td = moto_bridge.task_definition(account, region, wanted)
            wanted = td["taskDefinitionArn"] if td else wanted
        changed = bool(wanted) and wanted != service.primary.task_definition
        if changed or params.get("forceNewDeployment"):
            self.scheduler.deploy(service, wanted or service.primary.task_definition)

    def service_deleted(self, arn: str) -> None:
        service = self.scheduler.by_arn(arn)
        if service is None:
            return
        service.status = "DRAINING"
        service.desired_count = 0
        for deployment in service.deployments:
            deployment.desired_count = 0
        for task in self.scheduler.tasks_of(service):
            self.runner.request_stop(
                task,
                "ServiceSchedulerInitiated",
                f"Scaling activity initiated by (deployment {task.deployment_id})",
            )

    def service_view(self, arn: str) -> dict[str, Any] | None:
        service = self.scheduler.by_arn(arn)
        return None if service is None else self.scheduler.view(service)

    # ---------------------------------------------------------------- ECS: tasks

    def _cluster_tasks(self, account: str, region: str, cluster_arn: str) -> list[Any]:
        return [
            t
            for t in self.runner.tasks.values()
            if t.account == account and t.region == region and t.cluster_arn == cluster_arn
        ]

    def run_task(
        self, account: str, region: str, cluster_arn: str, params: dict[str, Any]
    ) -> list[dict[str, Any]]:
        td = moto_bridge.task_definition(account, region, params.get("taskDefinition") or "")
        if td is None:
            raise ApiError("ClientException", "TaskDefinition not found.")
        role = role_error(account, td, params.get("overrides"))
        if role is not None:
            raise ApiError("ClientException", role)
        count = int(params.get("count") or 1)
        if not 1 <= count <= 10:
            raise ApiError("InvalidParameterException", "count must be between 1 and 10.")
        network = params.get("networkConfiguration") or {}
        if not (network.get("awsvpcConfiguration") or {}).get("subnets"):
            raise ApiError(
                "InvalidParameterException",
                "Network Configuration must be provided when networkMode 'awsvpc' is specified.",
            )
        tasks = [
            self.runner.create(
                account=account,
                region=region,
                cluster_arn=cluster_arn,
                task_definition=td,
                network=network,
                group=params.get("group") or f"family:{td['family']}",
                started_by=params.get("startedBy") or "",
                overrides=params.get("overrides") or {},
                tags=params.get("tags") or [],
            )
            for _ in range(count)
        ]
        return [t.to_api() for t in tasks]

    def list_tasks(
        self, account: str, region: str, cluster_arn: str, params: dict[str, Any]
    ) -> list[str]:
        # AWS lists tasks whose desiredStatus is RUNNING unless asked for another.
        wanted = params.get("desiredStatus") or "RUNNING"
        service = params.get("serviceName")
        family = params.get("family")
        started_by = params.get("startedBy")
        arns = []
        for task in self._cluster_tasks(account, region, cluster_arn):
            if task.desired_status != wanted:
                continue
            if service and task.group != f"service:{service.rsplit('/', 1)[-1]}":
                continue
            if family and task.task_definition["family"] != family:
                continue
            if started_by and task.started_by != started_by:
                continue
            arns.append(task.arn)
        return arns

    def describe_tasks(
        self, account: str, region: str, cluster_arn: str, params: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
        wanted = params.get("tasks") or []
        if not wanted:
            raise ApiError("InvalidParameterException", "Tasks cannot be empty.")
        include_tags = "TAGS" in (params.get("include") or [])
        by_id = {t.id: t for t in self._cluster_tasks(account, region, cluster_arn)}
        found, failures = [], []
        for ref in wanted:
            task = by_id.get(ref.rsplit("/", 1)[-1])
            if task is None:
                failures.append({"arn": ref, "reason": "MISSING"})
            else:
                found.append(task.to_api(include_tags))
        return found, failures

    def stop_task(
        self, account: str, region: str, cluster_arn: str, params: dict[str, Any]
    ) -> dict[str, Any]:
        ref = params.get("task") or ""
        for task in self._cluster_tasks(account, region, cluster_arn):
            if task.id == ref.rsplit("/", 1)[-1]:
                reason = params.get("reason") or "Task stopped by user"
                self.runner.request_stop(task, "UserInitiated", reason)
                return task.to_api()
        raise ApiError("InvalidParameterException", "The referenced task was not found.")

    # ------------------------------------------------------------ target health

    def describe_target_health(
        self, account: str, region: str, tg_arn: str, targets: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        # A target registered a moment ago is listed at once (as "initial"), as on AWS.
        self.targets.sync(list(moto_bridge.target_groups()), self._target_zones())
        tg = moto_bridge.target_group(account, region, tg_arn)
        hc_port = tg["healthCheckPort"] if tg else "traffic-port"
        if not targets:
            return [r.to_api(hc_port) for r in self.targets.for_group(tg_arn)]
        out = []
        default_port = tg["port"] if tg else None
        for target in targets:
            port = int(target.get("Port") or default_port or 0)
            record = self.targets.get(tg_arn, target["Id"], port)
            if record is not None:
                out.append(record.to_api(hc_port))
                continue
            out.append(
                {
                    "Target": {"Id": target["Id"], "Port": port},
                    "HealthCheckPort": str(port) if hc_port == "traffic-port" else hc_port,
                    "TargetHealth": {
                        "State": "unused",
                        "Reason": "Target.NotRegistered",
                        "Description": "Target is not registered to the target group",
                    },
                }
            )
        return out

    # -------------------------------------------------------------------- RDS

    def hosts_file(self, account: str, region: str) -> Path:
        return self.state_dir / "dns" / f"{account}-{region}.json"

    def _write_hosts(self, account: str, region: str) -> None:
        path = self.hosts_file(account, region)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(hosts_json(self.dns.get((account, region), {})))
        tmp.replace(path)

    @staticmethod
    def _db_key(account: str, region: str, identifier: str) -> str:
        return f"{account}-{region}-{identifier}"

    def db_instance_created(
        self, account: str, region: str, view: dict[str, Any], password: str | None
    ) -> None:
        if not str(view["engine"]).startswith(("postgres", "aurora-postgresql")):
            return
        key = self._db_key(account, region, view["identifier"])
        self._start_database()
        for _attempt in range(20):
            # Another program (or another sandbox) may hold this address and port.
            address = self.db_addresses.get(key) or self.runner.loopback.allocate()
            try:
                self.database.create_instance(
                    key,
                    master_user=view["masterUsername"] or "postgres",
                    master_password=password or "",
                    db_name=view["dbName"],
                    listen=self.loopback.listen_address(address, int(view["port"])),
                )
                break
            except OSError:
                self.db_addresses.pop(key, None)
        else:
            raise ApiError("InternalFailure", "The sandbox found no free loopback address.")
        self.db_addresses[key] = address
        self.dns.setdefault((account, region), {})[view["address"]] = address
        self._write_hosts(account, region)

    def _start_database(self) -> None:
        """Start PostgreSQL on first use; drop databases left by an earlier sandbox run."""
        if self._database_started:
            return
        self.database.start()
        for key in self.database.instances():
            if key not in self.db_addresses:
                self.database.delete_instance(key)
        self._database_started = True

    def db_password_changed(
        self, account: str, region: str, view: dict[str, Any], password: str
    ) -> None:
        key = self._db_key(account, region, view["identifier"])
        if key in self.db_addresses:
            self.database.set_master_password(key, password)

    def db_instance_deleted(self, account: str, region: str, view: dict[str, Any]) -> None:
        key = self._db_key(account, region, view["identifier"])
        address = self.db_addresses.pop(key, None)
        if address is None:
            return
        self.database.delete_instance(key)
        self.runner.loopback.release(address)
        self.dns.get((account, region), {}).pop(view["address"], None)
        self._write_hosts(account, region)

    # ----------------------------------------------------------------- status

    def summary(self) -> dict[str, Any]:
        """Counts and ALB addresses for ``sandbox status``."""
        with self.lock:
            tasks = list(self.runner.tasks.values())
            balancers = list(moto_bridge.load_balancers())
            return {
                "accounts": moto_bridge.accounts(),
                "services": sum(s.status != "INACTIVE" for s in self.scheduler.services.values()),
                "tasks_running": sum(t.last_status == "RUNNING" for t in tasks),
                "tasks_total": len(tasks),
                "databases": len(self.db_addresses),
                "speed": self.clock.speed,
                "control_speed": self.control.control_speed,
                "loopback": self.loopback.mode,
                "load_balancers": balancers,
            }


def _tcp_connections(pids: list[int]) -> Iterator[Any]:
    """The TCP sockets of these processes and their children (psutil: no root needed for
    our own children, on macOS too)."""
    import psutil

    for pid in pids:
        try:
            process = psutil.Process(pid)
            for member in [process, *process.children(recursive=True)]:
                yield from member.net_connections(kind="tcp")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue


def _task_of_connection(candidates: list[tuple[Any, list[int]]], peer: tuple[str, int]) -> Any:
    """The task whose processes hold the client end of a connection from ``peer``.

    Every task's processes share the host's loopback interface, so the source address
    does not tell them apart; the socket's owner does."""
    for task, pids in candidates:
        for conn in _tcp_connections(pids):
            if conn.laddr and (conn.laddr.ip, conn.laddr.port) == tuple(peer[:2]):
                return task
    return None
