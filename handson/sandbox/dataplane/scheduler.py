"""The ECS service scheduler: desired count, rolling deployments, circuit breaker, events.

Each tick, for every service: replace tasks that failed their health checks (after the
grace period), start tasks for the PRIMARY deployment within maximumPercent, stop old
deployments' tasks while minimumHealthyPercent allows, scale in, trip the circuit breaker
(and roll back), and report "deployment completed" / "has reached a steady state".
Message shapes and numbers are AWS's (docs/sandbox.md, "Service events" and "Deployments and
rolling updates").
"""

from __future__ import annotations

from typing import Any

from handson.sandbox.dataplane import moto_bridge
from handson.sandbox.dataplane.clock import Clock, utcnow
from handson.sandbox.dataplane.health import TargetHealthTable
from handson.sandbox.dataplane.model import Deployment, ServiceState, Task
from handson.sandbox.dataplane.tasks import TaskRunner, role_error

MAX_EVENTS = 100  # the latest 100 events (docs/sandbox.md, "Service events")
# Without a load balancer or container health check, a RUNNING task counts as healthy
# after this long (docs/sandbox.md, "Deployments and rolling updates").
UNCHECKED_HEALTHY_AFTER = 40.0
# Restart throttle after launch failures: grows up to 15 minutes (docs/sandbox.md, "Restart
# throttling").
THROTTLE_BASE, THROTTLE_MAX = 10.0, 900.0
UNABLE_TO_START_AFTER = 3
# ECS learns of target health by polling the load balancer: it acts on an unhealthy
# target this long (AWS seconds) after the target turned unhealthy.
ELB_HEALTH_POLL = 10.0
# A launch that failed before any task existed (a role ECS can't assume) is tried again
# after this long (AWS seconds).
ROLE_RETRY = 30.0


def new_deployment_id() -> str:
    return f"ecs-svc/{moto_bridge.random_digits(19)}"


class Scheduler:
    """Runs every service's scheduling step; owns the services' records."""

    def __init__(self, clock: Clock, runner: TaskRunner, targets: TargetHealthTable) -> None:
        self.clock = clock
        self.runner = runner
        self.targets = targets
        self.services: dict[str, ServiceState] = {}  # by uid
        self._uid = 0

    # ------------------------------------------------------------ service records

    def add(self, **fields: Any) -> ServiceState:
        self._uid += 1
        service = ServiceState(uid=f"svc-{self._uid}", **fields)
        self.services[service.uid] = service
        return service

    def by_arn(self, arn: str) -> ServiceState | None:
        """The newest incarnation of a service ARN."""
        found = [s for s in self.services.values() if s.arn == arn]
        return found[-1] if found else None

    def tasks_of(self, service: ServiceState) -> list[Task]:
        return list(self.runner.by_service.get(service.uid, {}).values())

    def event(self, service: ServiceState, message: str) -> None:
        service.events.insert(
            0, {"id": moto_bridge.random_uuid(), "createdAt": utcnow(), "message": message}
        )
        del service.events[MAX_EVENTS:]

    def deploy(self, service: ServiceState, task_definition: str) -> Deployment:
        """Start a new PRIMARY deployment; the others become ACTIVE and wind down."""
        for deployment in service.deployments:
            deployment.status = "ACTIVE"
            deployment.updated_at = utcnow()
        deployment = Deployment(
            id=new_deployment_id(),
            task_definition=task_definition,
            desired_count=service.desired_count,
        )
        service.deployments.insert(0, deployment)
        service.steady = False
        # Updating the service resets the restart throttle at once (docs/sandbox.md, "Restart
        # throttling").
        service.consecutive_launch_failures = 0
        service.next_launch_at = 0.0
        service.notified_unable = False
        return deployment

    def view(self, service: ServiceState) -> dict[str, Any]:
        """Attributes of the service as DescribeServices shows them."""
        tasks = [t for t in self.tasks_of(service) if t.alive]
        running = [t for t in tasks if t.last_status == "RUNNING"]
        pending = [t for t in tasks if t.starting]
        network = service.network_configuration
        deployments = [
            d.to_api(
                sum(t.deployment_id == d.id for t in running),
                sum(t.deployment_id == d.id for t in pending),
                network,
            )
            for d in service.deployments
        ]
        view: dict[str, Any] = {
            "status": service.status,
            "desired_count": service.desired_count,
            "running_count": len(running),
            "pending_count": len(pending),
            "deployments": deployments,
            "events": list(service.events),
            "deployment_configuration": service.deployment_configuration,
            "task_definition": service.primary.task_definition,
        }
        if service.load_balancers:
            view["health_check_grace_period_seconds"] = service.health_check_grace_period
        return view

    # --------------------------------------------------------------- health views

    def healthy(self, service: ServiceState, task: Task) -> bool:
        """Whether the scheduler counts ``task`` as healthy (docs/sandbox.md, "Deployments and
        rolling updates")."""
        if task.last_status != "RUNNING" or not task.alive:
            return False
        checked = any(c.definition.get("healthCheck") for c in task.containers if c.essential)
        if checked and task.health_status != "HEALTHY":
            return False
        if service.load_balancers:
            if not task.registrations:
                return False
            for tg_arn, port in task.registrations:
                record = self.targets.get(tg_arn, task.private_ip or "", port)
                if record is None or record.state != "healthy":
                    return False
            return True
        if checked:
            return True
        return self.clock.now() - (task.running_since or 0.0) >= UNCHECKED_HEALTHY_AFTER

    def draining(self, task: Task) -> bool:
        """Whether any of the task's targets is still registered or draining."""
        return any(
            self.targets.get(tg_arn, task.private_ip or "", port) is not None
            for tg_arn, port in task.registrations
        )

    # ------------------------------------------------------------------ the tick

    def schedule(self, service: ServiceState) -> None:
        if service.status == "INACTIVE":
            return
        self._register_targets(service)
        replaced = self._replace_unhealthy(service)
        for task in self.tasks_of(service):
            if not task.alive and not task.accounted:
                task.accounted = True
                self._account_stop(service, task)
        for task in self.tasks_of(service):
            if self.healthy(service, task):
                self._note_healthy(service, task)
        if service.status == "ACTIVE":
            self._launch(service, replaced)
        self._stop_old(service)
        self._scale_in(service)
        self._retire_deployments(service)
        self._report_steady(service)

    def _deployment(self, service: ServiceState, deployment_id: str | None) -> Deployment | None:
        return next((d for d in service.deployments if d.id == deployment_id), None)

    def _register_targets(self, service: ServiceState) -> None:
        registered: dict[str, int] = {}
        for task in self.tasks_of(service):
            if task.last_status != "ACTIVATING" or task.registrations or not task.alive:
                continue
            for lb in service.load_balancers:
                names = {c.name for c in task.containers}
                if lb.get("containerName") not in names or not lb.get("targetGroupArn"):
                    continue
                port = int(lb["containerPort"])
                moto_bridge.register_target(
                    task.account, task.region, lb["targetGroupArn"], task.private_ip or "", port
                )
                task.registrations.append((lb["targetGroupArn"], port))
                registered[lb["targetGroupArn"]] = registered.get(lb["targetGroupArn"], 0) + 1
        for tg_arn, count in registered.items():
            self.event(
                service,
                f"(service {service.name}) registered {count} targets in (target-group {tg_arn})",
            )

    def _replace_unhealthy(self, service: ServiceState) -> int:
        now = self.clock.now()
        replaced = 0
        for task in self.tasks_of(service):
            if task.last_status != "RUNNING" or not task.alive:
                continue
            if now - (task.running_since or now) < service.health_check_grace_period:
                continue
            reason = None
            for tg_arn, port in task.registrations:
                record = self.targets.get(tg_arn, task.private_ip or "", port)
                if (
                    record is not None
                    and record.state == "unhealthy"
                    and now - (record.unhealthy_since or now) >= ELB_HEALTH_POLL
                ):
                    self.event(
                        service,
                        f"(service {service.name}) (task {task.id}) (port {port}) is unhealthy in "
                        f"(target-group {tg_arn}) due to (reason {record.description}).",
                    )
                    reason = f"Task failed ELB health checks in (target-group {tg_arn})"
                    break
            if reason is None and task.health_status == "UNHEALTHY":
                self.event(
                    service,
                    f"(service {service.name}) (task {task.id}) failed container health checks.",
                )
                reason = "Task failed container health checks"
            if reason is None:
                continue
            self._stop(service, [task], "ServiceSchedulerInitiated", reason)
            replaced += 1
        return replaced

    def _note_healthy(self, service: ServiceState, task: Task) -> None:
        deployment = self._deployment(service, task.deployment_id)
        service.consecutive_launch_failures = 0
        service.notified_unable = False
        if deployment is not None and not deployment.had_healthy_task:
            # Once a deployment has a running task the failed count resets to zero and
            # stops being evaluated (docs/sandbox.md, "Deployment circuit breaker").
            deployment.had_healthy_task = True
            deployment.failed_tasks = 0

    def _launch(self, service: ServiceState, replaced: int) -> None:
        primary = service.primary
        if primary.rollout_state == "FAILED":
            # A FAILED deployment launches no new tasks (docs/sandbox.md, "Deployments and
            # rolling updates").
            return
        alive = [t for t in self.tasks_of(service) if t.alive]
        mine = [t for t in alive if t.deployment_id == primary.id]
        need = primary.desired_count - len(mine)
        if need <= 0 or self.clock.now() < service.next_launch_at:
            return
        room = service.upper_bound() - len(alive)
        count = min(need, room)
        if count <= 0:
            old_healthy = sum(
                self.healthy(service, t) for t in alive if t.deployment_id != primary.id
            )
            if old_healthy <= service.lower_bound() and not service.notified_unable:
                service.notified_unable = True
                self.event(
                    service,
                    f"(service {service.name}) was unable to stop or start tasks during a "
                    "deployment because of the service deployment configuration. Update the "
                    "minimumHealthyPercent or maximumPercent value and try again.",
                )
            return
        td = moto_bridge.task_definition(service.account, service.region, primary.task_definition)
        if td is None:
            return
        error = role_error(service.account, td)
        if error is not None:
            # No task is created; the scheduler tries again a little later. Each task it
            # couldn't launch is a failed task for the circuit breaker (README, sandbox).
            service.next_launch_at = self.clock.now() + ROLE_RETRY
            self.event(
                service, f"(service {service.name}) failed to launch a task with (error {error})."
            )
            self._count_failed(service, primary, count)
            return
        started = [
            self.runner.create(
                account=service.account,
                region=service.region,
                cluster_arn=service.cluster_arn,
                task_definition=td,
                network=service.network_configuration,
                group=f"service:{service.name}",
                started_by=primary.id,
                service_uid=service.uid,
                service_arn=service.arn,
                deployment_id=primary.id,
            )
            for _ in range(count)
        ]
        listed = " ".join(f"(task {t.id})" for t in started)
        message = f"(service {service.name}) has started {len(started)} tasks: {listed}."
        if replaced:
            message += f" Amazon ECS replaced {replaced} tasks due to an unhealthy status."
        self.event(service, message)
        primary.updated_at = utcnow()
        service.steady = False

    def _stop_old(self, service: ServiceState) -> None:
        primary = service.primary
        alive = [t for t in self.tasks_of(service) if t.alive]
        old = [t for t in alive if t.deployment_id != primary.id]
        if not old:
            return
        healthy = sum(self.healthy(service, t) for t in alive)
        lower = service.lower_bound()
        # Tasks that aren't healthy go first: stopping them costs no healthy capacity.
        for task in sorted(old, key=lambda t: self.healthy(service, t)):
            if self.healthy(service, task):
                if healthy - 1 < lower:
                    break
                healthy -= 1
            self._stop(
                service,
                [task],
                "ServiceSchedulerInitiated",
                f"Scaling activity initiated by (deployment {task.deployment_id})",
            )

    def _scale_in(self, service: ServiceState) -> None:
        primary = service.primary
        mine = [t for t in self.tasks_of(service) if t.alive and t.deployment_id == primary.id]
        extra = len(mine) - primary.desired_count
        if extra <= 0:
            return
        # Starting or unhealthy tasks first, then the newest.
        victims = sorted(mine, key=lambda t: (self.healthy(service, t), -t.created_at.timestamp()))
        self._stop(
            service,
            victims[:extra],
            "ServiceSchedulerInitiated",
            f"Scaling activity initiated by (deployment {primary.id})",
        )

    def _stop(self, service: ServiceState, tasks: list[Task], code: str, reason: str) -> None:
        running = [t for t in tasks if t.last_status == "RUNNING"]
        for task in tasks:
            self.runner.request_stop(task, code, reason)
        if not running:
            return
        by_deployment: dict[str | None, int] = {}
        by_group: dict[str, int] = {}
        for task in running:
            if task.registrations:
                by_deployment[task.deployment_id] = by_deployment.get(task.deployment_id, 0) + 1
            for tg_arn, _port in task.registrations:
                by_group[tg_arn] = by_group.get(tg_arn, 0) + 1
        for deployment_id, count in by_deployment.items():
            self.event(
                service,
                f"(service {service.name}, taskSet {deployment_id}) has begun draining "
                f"connections on {count} tasks.",
            )
        for tg_arn, count in by_group.items():
            self.event(
                service,
                f"(service {service.name}) deregistered {count} targets in (target-group {tg_arn})",
            )
        listed = " ".join(f"(task {t.id})" for t in running)
        self.event(
            service, f"(service {service.name}) has stopped {len(running)} running tasks: {listed}."
        )
        service.steady = False

    def _retire_deployments(self, service: ServiceState) -> None:
        tasks = self.tasks_of(service)
        for deployment in list(service.deployments[1:]):
            mine = [t for t in tasks if t.deployment_id == deployment.id]
            deployment.desired_count = sum(t.alive for t in mine)
            if all(t.last_status == "STOPPED" for t in mine):
                # INACTIVE deployments drop out of DescribeServices (docs/sandbox.md,
                # "Deployments and rolling updates").
                deployment.status = "INACTIVE"
                service.deployments.remove(deployment)
        if service.status == "DRAINING" and all(t.last_status == "STOPPED" for t in tasks):
            service.status = "INACTIVE"

    def _report_steady(self, service: ServiceState) -> None:
        primary = service.primary
        if service.status != "ACTIVE" or len(service.deployments) != 1:
            service.steady = False
            return
        if primary.rollout_state == "FAILED":
            return
        tasks = self.tasks_of(service)
        alive = [t for t in tasks if t.alive]
        winding_down = any(not t.alive and t.last_status != "STOPPED" for t in tasks)
        if (
            len(alive) != primary.desired_count
            or winding_down
            or not all(self.healthy(service, t) for t in alive)
        ):
            service.steady = False
            return
        if primary.rollout_state == "IN_PROGRESS":
            primary.rollout_state = "COMPLETED"
            primary.rollout_state_reason = f"ECS deployment {primary.id} completed."
            primary.updated_at = utcnow()
            self.event(
                service, f"(service {service.name}) (deployment {primary.id}) deployment completed."
            )
            service.last_completed = primary
        if not service.steady:
            service.steady = True
            self.event(service, f"(service {service.name}) has reached a steady state.")

    # ---------------------------------------------------------- failed launches

    def _account_stop(self, service: ServiceState, task: Task) -> None:
        """Count a task that was asked to stop: restart throttle and circuit breaker."""
        failed = task.stop_code in ("TaskFailedToStart", "EssentialContainerExited") or (
            task.stopped_reason or ""
        ).startswith("Task failed ")
        if not failed:
            return
        if task.running_since is None:
            service.consecutive_launch_failures += 1
            streak = service.consecutive_launch_failures
            service.next_launch_at = self.clock.now() + min(
                THROTTLE_MAX, THROTTLE_BASE * 2 ** max(0, streak - 2)
            )
            if streak >= UNABLE_TO_START_AFTER and not service.notified_unable:
                service.notified_unable = True
                self.event(
                    service,
                    f"(service {service.name}) is unable to consistently start tasks successfully.",
                )
        self._count_failed(service, self._deployment(service, task.deployment_id), 1)

    def _count_failed(
        self, service: ServiceState, deployment: Deployment | None, count: int
    ) -> None:
        """Add failed tasks to the deployment's count (tasks that stopped before RUNNING
        or failed their health checks, and tasks the scheduler couldn't launch); trip the
        circuit breaker at the threshold."""
        breaker = service.circuit_breaker
        if deployment is None or not breaker.get("enable") or deployment.had_healthy_task:
            return
        if deployment.rollout_state != "IN_PROGRESS":
            return
        deployment.failed_tasks += count
        deployment.updated_at = utcnow()
        if deployment.failed_tasks >= service.circuit_breaker_threshold():
            self._trip(service, deployment, rollback=bool(breaker.get("rollback")))

    def _trip(self, service: ServiceState, deployment: Deployment, *, rollback: bool) -> None:
        """FAILED, and back to the last completed deployment (docs/sandbox.md, "Deployment
        circuit breaker")."""
        deployment.rollout_state = "FAILED"
        deployment.rollout_state_reason = "ECS deployment circuit breaker: tasks failed to start."
        self.event(
            service,
            f"(service {service.name}) (deployment {deployment.id}) deployment failed: "
            "tasks failed to start.",
        )
        target = service.last_completed
        if not rollback or target is None or deployment is not service.primary:
            return
        back = self.deploy(service, target.task_definition)
        back.rollout_state_reason = (
            f"ECS deployment circuit breaker: rolling back to deploymentId {target.id}."
        )
        self.event(service, f"(service {service.name}) rolling back to deployment {target.id}.")
