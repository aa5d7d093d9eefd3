"""ALB target health and ECS container health checks.

Target health follows AWS's (docs/sandbox.md, "ALB target health"): a registered target
starts ``initial``, is ``healthy`` after its first passing check, turns ``unhealthy``
after UnhealthyThresholdCount consecutive failures and back after HealthyThresholdCount
passes; a deregistered target is ``draining`` for the deregistration delay.
Checks only ever connect to loopback addresses: a target whose IP the sandbox did not
hand out (one registered by hand, say) never answers, like an address with no route.
A check the security groups or network ACLs drop (``reachable`` says so) gets no answer
either: it fails after the health check timeout with ``Target.Timeout``.
"""

from __future__ import annotations

import http.client
import logging
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from handson.sandbox.dataplane.clock import Clock

log = logging.getLogger(__name__)

# Reason codes and their descriptions (docs/sandbox.md, "ALB target health").
REASONS = {
    "Elb.RegistrationInProgress": "Target registration is in progress",
    "Elb.InitialHealthChecking": "Initial health checks in progress",
    "Target.Timeout": "Request timed out",
    "Target.FailedHealthChecks": "Health checks failed",
    "Target.NotRegistered": "Target is not registered to the target group",
    "Target.NotInUse": "Target group is not configured to receive traffic from the load balancer",
    "Target.DeregistrationInProgress": "Target deregistration is in progress",
    "Target.HealthCheckDisabled": "Health checks are disabled",
}
# How long "Elb.RegistrationInProgress" lasts before the first check (AWS seconds).
REGISTRATION_SECONDS = 5.0
# The sandbox runs AWS's clock faster, but not the app's own start-up: on AWS a new target
# has registration + UnhealthyThresholdCount x interval (65 s by default) before it can be
# unhealthy, time enough for an app that starts in seconds. A check that gets no answer
# while the target's app listens on no port yet does not make a new target unhealthy until
# it has had this many real seconds, or AWS's own window in real seconds if that is
# shorter (the README's sandbox section, "Time"). An app that already listens (on another
# port, or behind a rule that drops the check) is judged at the sped-up pace.
STARTUP_SECONDS = 20.0
_NO_ANSWER = frozenset({"Target.Timeout", "Target.FailedHealthChecks"})


@dataclass
class CheckResult:
    ok: bool
    reason: str | None = None
    description: str | None = None


@dataclass
class TargetRecord:
    """One (target group, target) pair and its health."""

    account: str
    region: str
    tg_arn: str
    target_id: str
    port: int
    availability_zone: str | None
    registered_at: float
    state: str = "initial"
    reason: str | None = "Elb.RegistrationInProgress"
    description: str | None = REASONS["Elb.RegistrationInProgress"]
    next_check_at: float = 0.0
    passes: int = 0
    failures: int = 0
    draining_until: float | None = None
    in_flight: bool = False
    unhealthy_since: float | None = None

    def to_api(self, health_check_port: str) -> dict[str, Any]:
        health: dict[str, Any] = {"State": self.state}
        if self.reason:
            health["Reason"] = self.reason
            health["Description"] = self.description
        target: dict[str, Any] = {"Id": self.target_id, "Port": self.port}
        if self.availability_zone:
            target["AvailabilityZone"] = self.availability_zone
        port = str(self.port) if health_check_port == "traffic-port" else health_check_port
        return {"Target": target, "HealthCheckPort": port, "TargetHealth": health}


def matches(matcher: str, status: int) -> bool:
    """Whether an HTTP status satisfies a matcher such as "200", "200-299" or "200,302"."""
    for part in matcher.split(","):
        part = part.strip()
        if "-" in part:
            low, high = part.split("-", 1)
            if int(low) <= status <= int(high):
                return True
        elif part and int(part) == status:
            return True
    return False


def http_check(host: str, port: int, path: str, matcher: str, timeout: float) -> CheckResult:
    """One ALB health check: GET ``path`` and compare the status code.

    Reason codes as in docs/sandbox.md, "ALB target health".
    """
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", path, headers={"User-Agent": "ELB-HealthChecker/2.0"})
        status = connection.getresponse().status
    except TimeoutError:
        return CheckResult(False, "Target.Timeout", REASONS["Target.Timeout"])
    except (OSError, http.client.HTTPException):
        return CheckResult(False, "Target.FailedHealthChecks", REASONS["Target.FailedHealthChecks"])
    finally:
        connection.close()
    if matches(matcher, status):
        return CheckResult(True)
    return CheckResult(
        False, "Target.ResponseCodeMismatch", f"Health checks failed with these codes: [{status}]"
    )


class TargetHealthTable:
    """Health of every registered target, kept in step with moto's target groups."""

    def __init__(
        self,
        clock: Clock,
        resolve: Callable[[str, str, str], str | None],
        lock: threading.RLock,
        reachable: Callable[[TargetRecord, int], bool] | None = None,
        dial: Callable[[str, int], tuple[str, int]] | None = None,
        listening: Callable[[str, str, str], bool] | None = None,
    ) -> None:
        self.clock = clock
        self.lock = lock
        # reachable(record, port) -> whether the network rules let the ALB's check through
        self.reachable = reachable
        # resolve(account, region, ip) -> loopback address standing in for that IP
        self.resolve = resolve
        # dial(address, port) -> where a check connects to reach that loopback address
        # and port (another port on 127.0.0.1 in single-address mode)
        self.dial = dial or (lambda host, port: (host, port))
        # listening(account, region, ip) -> whether that target's app listens on any port
        self.listening = listening or (lambda account, region, ip: False)
        self.records: dict[tuple[str, str, int], TargetRecord] = {}
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="alb-health")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def sync(self, groups: list[tuple[str, str, dict[str, Any]]], azs: dict[str, str]) -> None:
        """Start tracking new registrations and start draining removed ones."""
        now = self.clock.now()
        seen: set[tuple[str, str, int]] = set()
        for account, region, tg in groups:
            for target in tg["targets"]:
                key = (tg["arn"], target["Id"], int(target["Port"]))
                seen.add(key)
                record = self.records.get(key)
                if record is None or record.draining_until is not None:
                    self.records[key] = TargetRecord(
                        account=account,
                        region=region,
                        tg_arn=tg["arn"],
                        target_id=target["Id"],
                        port=int(target["Port"]),
                        availability_zone=azs.get(f"{account}:{region}:{target['Id']}"),
                        registered_at=now,
                        next_check_at=now + REGISTRATION_SECONDS,
                    )
        by_arn = {tg["arn"]: tg for _, _, tg in groups}
        for key, record in list(self.records.items()):
            if key in seen:
                continue
            tg = by_arn.get(record.tg_arn)
            if tg is None:
                del self.records[key]
            elif record.draining_until is None:
                record.draining_until = now + tg["deregistrationDelay"]
                record.state = "draining"
                record.reason = "Target.DeregistrationInProgress"
                record.description = REASONS[record.reason]
            elif now >= record.draining_until:
                del self.records[key]

    def run_checks(self, groups: list[tuple[str, str, dict[str, Any]]]) -> None:
        """Send the health checks that are due, each on a worker thread."""
        now = self.clock.now()
        for _account, _region, tg in groups:
            for target in tg["targets"]:
                record = self.records.get((tg["arn"], target["Id"], int(target["Port"])))
                if record is None or record.draining_until is not None or record.in_flight:
                    continue
                if not tg["healthCheckEnabled"]:
                    record.state, record.reason = "unavailable", "Target.HealthCheckDisabled"
                    record.description = REASONS[record.reason]
                    continue
                if not tg["loadBalancerArns"]:
                    record.state, record.reason = "unused", "Target.NotInUse"
                    record.description = REASONS[record.reason]
                    continue
                if record.state == "unused":
                    record.state, record.reason = "initial", "Elb.InitialHealthChecking"
                    record.description = REASONS[record.reason]
                if now < record.next_check_at:
                    continue
                record.in_flight = True
                record.next_check_at = now + tg["healthCheckIntervalSeconds"]
                self._pool.submit(self._check, record, dict(tg))

    def _check(self, record: TargetRecord, tg: dict[str, Any]) -> None:
        try:
            self._check_once(record, tg)
        except Exception:  # never leave the target without checks: the next one is due
            log.exception("health check of %s:%s failed", record.target_id, record.port)
            with self.lock:
                record.in_flight = False

    def _check_once(self, record: TargetRecord, tg: dict[str, Any]) -> None:
        port = (
            record.port if tg["healthCheckPort"] == "traffic-port" else int(tg["healthCheckPort"])
        )
        with self.lock:
            host = self.resolve(record.account, record.region, record.target_id)
            dropped = self.reachable is not None and not self.reachable(record, port)
        # The app answers in real time, as on AWS: wait the whole timeout, unscaled.
        timeout = float(tg["healthCheckTimeoutSeconds"])
        if dropped:
            # A dropped SYN is never answered: the check gives up after its timeout.
            time.sleep(self.clock.real_seconds(tg["healthCheckTimeoutSeconds"]))
            result = CheckResult(False, "Target.Timeout", REASONS["Target.Timeout"])
        elif host is None:
            result = CheckResult(False, "Target.Timeout", REASONS["Target.Timeout"])
        else:
            result = http_check(
                *self.dial(host, port), tg["healthCheckPath"], tg["matcher"], timeout
            )
        starting = (
            record.state == "initial"
            and result.reason in _NO_ANSWER
            and not self.listening(record.account, record.region, record.target_id)
        )
        with self.lock:
            self.apply(record, result, tg, starting=starting)

    def apply(
        self, record: TargetRecord, result: CheckResult, tg: dict[str, Any], *, starting: bool
    ) -> None:
        """Move a target between states after one check; ``starting``: the check got no
        answer and the target's app listens on no port yet (thresholds: docs/sandbox.md,
        "ALB target health")."""
        record.in_flight = False
        if record.draining_until is not None:
            return
        if result.ok:
            record.passes += 1
            record.failures = 0
            # A new target is healthy after one passing check; an unhealthy one needs
            # HealthyThresholdCount passes in a row.
            needed = 1 if record.state == "initial" else tg["healthyThresholdCount"]
            if record.state == "healthy" or record.passes >= needed:
                record.state, record.reason, record.description = "healthy", None, None
            return
        record.passes = 0
        if starting and self._starting(record, tg):
            # Still starting: this check counts only once the start-up time is over.
            record.failures = min(record.failures + 1, tg["unhealthyThresholdCount"] - 1)
        else:
            record.failures += 1
        if record.state == "initial" and record.failures < tg["unhealthyThresholdCount"]:
            record.reason = "Elb.InitialHealthChecking"
            record.description = REASONS[record.reason]
            return
        if record.state == "healthy" and record.failures < tg["unhealthyThresholdCount"]:
            return
        if record.state != "unhealthy":
            record.unhealthy_since = self.clock.now()
        record.state, record.reason, record.description = (
            "unhealthy",
            result.reason,
            result.description,
        )

    def _starting(self, record: TargetRecord, tg: dict[str, Any]) -> bool:
        """Whether a new target is still within its real start-up time (STARTUP_SECONDS)."""
        window = (
            REGISTRATION_SECONDS + tg["unhealthyThresholdCount"] * tg["healthCheckIntervalSeconds"]
        )
        elapsed = self.clock.real_seconds(self.clock.now() - record.registered_at)
        return elapsed < min(STARTUP_SECONDS, window)

    def for_group(self, tg_arn: str) -> list[TargetRecord]:
        return [r for r in self.records.values() if r.tg_arn == tg_arn]

    def get(self, tg_arn: str, target_id: str, port: int) -> TargetRecord | None:
        return self.records.get((tg_arn, target_id, port))


@dataclass
class ContainerCheck:
    """A task definition healthCheck, with Docker/ECS defaults (docs/sandbox.md, "Container
    health checks")."""

    command: list[str]
    interval: float = 30
    timeout: float = 5
    retries: int = 3
    start_period: float = 0

    @classmethod
    def from_definition(cls, spec: dict[str, Any]) -> ContainerCheck:
        return cls(
            command=list(spec["command"]),
            interval=float(spec.get("interval", 30)),
            timeout=float(spec.get("timeout", 5)),
            retries=int(spec.get("retries", 3)),
            start_period=float(spec.get("startPeriod", 0)),
        )

    def argv(self) -> list[str]:
        kind, *rest = self.command
        if kind == "CMD-SHELL":
            return ["/bin/sh", "-c", " ".join(rest)]
        if kind == "CMD":
            return rest
        raise ValueError(f"healthCheck command must start with CMD or CMD-SHELL, not {kind!r}")


def run_container_check(
    check: ContainerCheck, *, cwd: str, env: dict[str, str], timeout: float
) -> bool:
    """Run a container health check command; exit 0 means healthy."""
    try:
        completed = subprocess.run(
            check.argv(),
            cwd=cwd,
            env=env,
            timeout=timeout,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
    except (subprocess.TimeoutExpired, OSError, ValueError):
        return False
    return completed.returncode == 0
