"""The Application Load Balancer (chapter 3): the public entry point of the API.

An internet-facing ALB in the public subnets listens on HTTP:80 and forwards every request
to the target group ``P-E-ecs-tg``. The ECS service (chapter 7) registers its tasks' private
IPs there; the ALB only sends traffic to targets that answer 200 on ``/health``.
"""

from __future__ import annotations

import json
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final

import pandas as pd
from botocore.exceptions import ClientError, WaiterError

from handson import awscli, pricing, waiting
from handson.aws_errors import step
from handson.connection import HttpResponse, Lab
from handson.exceptions import ConfigurationError, NotFoundError, WaitTimeoutError
from handson.i18n import N_, _

__all__ = [
    "Alb",
    "LoadBalancer",
    "Probe",
    "ProbeAnswer",
    "call_alb",
    "delete_alb",
    "ensure_alb",
    "ensure_listener",
    "ensure_load_balancer",
    "ensure_target_group",
    "get_alb",
    "show_alb_responses",
    "show_probe",
    "show_target_health",
    "start_probe",
    "watch_targets",
]

TARGET_PORT: Final = 3000
LISTENER_PORT: Final = 80
DEREGISTRATION_DELAY: Final = "60"
# The series' health check, in the parameter names CreateTargetGroup, ModifyTargetGroup
# and DescribeTargetGroups share, so one table serves creating, comparing and repairing.
HEALTH_CHECK: Final[dict[str, Any]] = {
    "HealthCheckProtocol": "HTTP",
    "HealthCheckPort": "traffic-port",
    "HealthCheckEnabled": True,
    "HealthCheckPath": "/health",
    "HealthCheckIntervalSeconds": 30,
    "HealthCheckTimeoutSeconds": 5,
    "HealthyThresholdCount": 2,
    "UnhealthyThresholdCount": 2,
    "Matcher": {"HttpCode": "200"},
}
# AWS keeps a target group "in use" for a few seconds after its load balancer is deleted.
TG_DELETE_ATTEMPTS: Final = 12
TG_DELETE_PAUSE: Final = 5.0
NOT_BUILT_HINT: Final = N_("Notebook 00 builds chapters 1-6, the ALB (chapter 3) included.")
# The traffic probe: a request every PROBE_INTERVAL seconds, for PROBE_MAX_SECONDS at most.
PROBE_INTERVAL: Final = 0.1
PROBE_MAX_SECONDS: Final = 900.0
PROBE_TIMEOUT: Final = 10.0
PROBE_COLUMNS: Final = ["answer", "failed", "requests", "first_at_s", "last_at_s"]
WATCH_COLUMNS: Final = ["target", "state", "reason", "first_seen_s"]
GONE: Final = "(gone)"
MAX_TARGETS: Final = 10
# The article's --query for describe-target-health.
TARGET_HEALTH_QUERY = (
    "TargetHealthDescriptions[*].{Target:Target.Id,Health:TargetHealth.State,"
    "Description:TargetHealth.Description}"
)
TARGET_HEALTH_COLUMNS: Final = [
    "target",
    "port",
    "availability_zone",
    "state",
    "reason",
    "description",
]


@dataclass(frozen=True)
class LoadBalancer:
    """The load balancer alone, as :func:`ensure_load_balancer` returns it."""

    arn: str
    dns_name: str
    zone_id: str
    availability_zones: tuple[str, ...]


@dataclass(frozen=True)
class Alb:
    """What chapter 7 needs from chapter 3 (the series' ``terraform output`` values)."""

    alb_arn: str
    alb_dns_name: str
    alb_zone_id: str
    target_group_arn: str
    listener_arn: str
    availability_zones: tuple[str, ...]  # where it has a node, each with a public address

    @property
    def url(self) -> str:
        return f"http://{self.alb_dns_name}"


# ------------------------------------------------------------------ look-ups


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _zones(lb: dict[str, Any]) -> tuple[str, ...]:
    return tuple(sorted(z["ZoneName"] for z in lb.get("AvailabilityZones", [])))


def _find_load_balancer(lab: Lab) -> dict[str, Any] | None:
    try:
        found = lab.client("elbv2").describe_load_balancers(Names=[lab.name("alb")])
    except ClientError as error:
        if _error_code(error) == "LoadBalancerNotFound":
            return None
        raise
    return dict(found["LoadBalancers"][0])


def _find_target_group(lab: Lab) -> dict[str, Any] | None:
    try:
        found = lab.client("elbv2").describe_target_groups(Names=[lab.name("ecs-tg")])
    except ClientError as error:
        if _error_code(error) == "TargetGroupNotFound":
            return None
        raise
    return dict(found["TargetGroups"][0])


def _find_listener(lab: Lab, load_balancer_arn: str) -> dict[str, Any] | None:
    listeners = lab.client("elbv2").describe_listeners(LoadBalancerArn=load_balancer_arn)
    return next((li for li in listeners["Listeners"] if li["Port"] == LISTENER_PORT), None)


def _missing(what: str, code: str, operation: str) -> NotFoundError:
    return NotFoundError(
        _("{what} doesn't exist yet: run notebook 00 first.").format(what=what),
        code=code,
        operation=operation,
        hint=_(NOT_BUILT_HINT),
    )


def _load_balancer(lab: Lab) -> dict[str, Any]:
    lb = _find_load_balancer(lab)
    if lb is None:
        raise _missing(
            _("The load balancer {name}").format(name=lab.name("alb")),
            "LoadBalancerNotFound",
            "DescribeLoadBalancers",
        )
    return lb


def _target_group(lab: Lab) -> dict[str, Any]:
    group = _find_target_group(lab)
    if group is None:
        raise _missing(
            _("The target group {name}").format(name=lab.name("ecs-tg")),
            "TargetGroupNotFound",
            "DescribeTargetGroups",
        )
    return group


def _wait(lab: Lab, waiter: str, what: str, **params: Any) -> None:
    try:
        waiting.wait(lab.client("elbv2"), waiter, timeout=300.0, **params)
    except WaiterError as error:
        raise WaitTimeoutError(
            _(
                "{what} took longer than 5 minutes ({reason}). Look at it in the EC2 "
                "console (Load Balancers) and run the cell again."
            ).format(what=what, reason=error.reason)
        ) from error


# ------------------------------------------------------------------- create


@step("Create the load balancer")
def ensure_load_balancer(
    lab: Lab, *, subnet_ids: Sequence[str], security_group_id: str
) -> LoadBalancer:
    """An internet-facing Application Load Balancer ``P-E-alb`` in the public subnets,
    behind the ALB security group; AWS gives it a public DNS name.

    Calls DescribeLoadBalancers, then CreateLoadBalancer if it's missing, and waits until
    it is active. Idempotent. Chapter 3.
    """
    if len(set(subnet_ids)) < 2:
        raise ConfigurationError(
            _(
                "subnet_ids={subnet_ids!r}: an ALB needs subnets in two Availability "
                "Zones. Pass both public subnets (ap-northeast-1a and ap-northeast-1c)."
            ).format(subnet_ids=list(subnet_ids))
        )
    if not security_group_id:
        raise ConfigurationError(
            _("security_group_id is empty: pass the id of the ALB security group (P-E-alb-sg).")
        )
    lb = _find_load_balancer(lab)
    if lb is None:
        name = lab.name("alb")
        lb = lab.client("elbv2").create_load_balancer(
            Name=name,
            Subnets=list(subnet_ids),
            SecurityGroups=[security_group_id],
            Scheme="internet-facing",
            Type="application",
            IpAddressType="ipv4",
            Tags=lab.tag_list(name),
        )["LoadBalancers"][0]
    if lb["State"]["Code"] != "active":
        # A new ALB is "provisioning" for a minute or two before it routes traffic.
        _wait(
            lab,
            "load_balancer_available",
            _("The load balancer becoming active"),
            LoadBalancerArns=[lb["LoadBalancerArn"]],
        )
    return LoadBalancer(
        arn=lb["LoadBalancerArn"],
        dns_name=lb["DNSName"],
        zone_id=lb["CanonicalHostedZoneId"],
        availability_zones=_zones(lb),
    )


@step("Create the target group")
def ensure_target_group(lab: Lab, *, vpc_id: str) -> str:
    """The target group ``P-E-ecs-tg``: the list of task IPs (port 3000) the ALB may send
    requests to, and the health check (``GET /health`` must answer 200) that decides which.

    Calls DescribeTargetGroups and DescribeTargetGroupAttributes; CreateTargetGroup if it's
    missing, ModifyTargetGroup only if its health check differs from the series', and
    ModifyTargetGroupAttributes only if the deregistration delay isn't 60 s. Idempotent.
    Chapter 3. Returns the target group's ARN.
    """
    if not vpc_id:
        raise ConfigurationError(_("vpc_id is empty: pass the id of the VPC P-E-vpc."))
    elb = lab.client("elbv2")
    group = _find_target_group(lab)
    if group is None:
        name = lab.name("ecs-tg")
        group = elb.create_target_group(
            Name=name,
            Protocol="HTTP",
            Port=TARGET_PORT,
            VpcId=vpc_id,
            TargetType="ip",
            Tags=lab.tag_list(name),
            **HEALTH_CHECK,
        )["TargetGroups"][0]
    else:
        _check_fixed_settings(lab, group, vpc_id)
        if any(group.get(key) != value for key, value in HEALTH_CHECK.items()):
            elb.modify_target_group(TargetGroupArn=group["TargetGroupArn"], **HEALTH_CHECK)
    arn = str(group["TargetGroupArn"])
    attributes = elb.describe_target_group_attributes(TargetGroupArn=arn)["Attributes"]
    delay = next(
        (a["Value"] for a in attributes if a["Key"] == "deregistration_delay.timeout_seconds"),
        None,
    )
    if delay != DEREGISTRATION_DELAY:
        # AWS's default is 300 s: a stopping task would keep the rollout waiting 5 minutes.
        elb.modify_target_group_attributes(
            TargetGroupArn=arn,
            Attributes=[
                {"Key": "deregistration_delay.timeout_seconds", "Value": DEREGISTRATION_DELAY}
            ],
        )
    return arn


def _check_fixed_settings(lab: Lab, group: dict[str, Any], vpc_id: str) -> None:
    """A target group's VPC, protocol, port and target type can't be changed afterwards."""
    expected = {"VpcId": vpc_id, "Protocol": "HTTP", "Port": TARGET_PORT, "TargetType": "ip"}
    wrong = {k: group.get(k) for k, v in expected.items() if group.get(k) != v}
    if wrong:
        raise ConfigurationError(
            _(
                "The target group {name} exists with {wrong}, which can't be "
                "changed (the series uses {expected}). Delete it with delete_alb(lab) and run "
                "this step again."
            ).format(name=lab.name("ecs-tg"), wrong=wrong, expected=expected)
        )


@step("Create the HTTP:80 listener")
def ensure_listener(lab: Lab, *, load_balancer_arn: str, target_group_arn: str) -> str:
    """The ALB's listener on HTTP port 80, forwarding every request to the target group.

    Calls DescribeListeners, then CreateListener if it's missing, or ModifyListener only if
    it forwards elsewhere. Idempotent. Chapter 3. Returns the listener's ARN.
    """
    elb = lab.client("elbv2")
    actions = [{"Type": "forward", "TargetGroupArn": target_group_arn}]
    listener = _find_listener(lab, load_balancer_arn)
    if listener is None:
        listener = elb.create_listener(
            LoadBalancerArn=load_balancer_arn,
            Protocol="HTTP",
            Port=LISTENER_PORT,
            DefaultActions=actions,
            Tags=lab.tag_list(lab.name("alb-http")),
        )["Listeners"][0]
    else:
        current = [(a["Type"], a.get("TargetGroupArn")) for a in listener["DefaultActions"]]
        if listener["Protocol"] != "HTTP" or current != [("forward", target_group_arn)]:
            elb.modify_listener(
                ListenerArn=listener["ListenerArn"], Protocol="HTTP", DefaultActions=actions
            )
    return str(listener["ListenerArn"])


@step("Create the ALB")
def ensure_alb(lab: Lab, *, vpc_id: str, subnet_ids: Sequence[str], security_group_id: str) -> Alb:
    """Chapter 3 in one step: the load balancer, its target group and the HTTP:80 listener.

    Calls what :func:`ensure_load_balancer`, :func:`ensure_target_group` and
    :func:`ensure_listener` call. Idempotent. Chapter 3.
    """
    lb = ensure_load_balancer(lab, subnet_ids=subnet_ids, security_group_id=security_group_id)
    target_group_arn = ensure_target_group(lab, vpc_id=vpc_id)
    listener_arn = ensure_listener(lab, load_balancer_arn=lb.arn, target_group_arn=target_group_arn)
    return Alb(
        alb_arn=lb.arn,
        alb_dns_name=lb.dns_name,
        alb_zone_id=lb.zone_id,
        target_group_arn=target_group_arn,
        listener_arn=listener_arn,
        availability_zones=lb.availability_zones,
    )


# ------------------------------------------------------------------- look at


def hourly_cost(lab: Lab, alb: Alb | None = None) -> pricing.Estimate:
    """What the ALB costs per hour while it exists: its hour, about one LCU when idle, and
    a public IPv4 address for its node in each zone. Calls DescribeLoadBalancers, unless
    given the ALB :func:`get_alb` found."""
    if alb is None:
        lb = _find_load_balancer(lab)
        if lb is None:
            return pricing.Estimate("Application Load Balancer", 0, 0.0)
        zones = len(_zones(lb))
    else:
        zones = len(alb.availability_zones)
    addresses = pricing.public_addresses(lab.region, zones)
    usd = pricing.load_balancer(lab.region).usd_per_hour + addresses.usd_per_hour
    return pricing.Estimate("Application Load Balancer", 1, usd)


@step("Look up the ALB")
def get_alb(lab: Lab) -> Alb:
    """The ALB chapter 3 built, looked up by name (no changes).

    Calls DescribeLoadBalancers, DescribeTargetGroups and DescribeListeners. Chapter 3.
    Raises NotFoundError when a part is missing (run notebook 00 first).
    """
    lb = _load_balancer(lab)
    group = _target_group(lab)
    listener = _find_listener(lab, lb["LoadBalancerArn"])
    if listener is None:
        raise _missing(
            _("The HTTP:80 listener of {name}").format(name=lab.name("alb")),
            "ListenerNotFound",
            "DescribeListeners",
        )
    return Alb(
        alb_arn=lb["LoadBalancerArn"],
        alb_dns_name=lb["DNSName"],
        alb_zone_id=lb["CanonicalHostedZoneId"],
        target_group_arn=group["TargetGroupArn"],
        listener_arn=listener["ListenerArn"],
        availability_zones=_zones(lb),
    )


@step("Show the targets' health")
def show_target_health(lab: Lab, alb: Alb | None = None) -> pd.DataFrame:
    """The targets registered in ``P-E-ecs-tg`` and what the ALB's health check thinks of
    them (initial, healthy, unhealthy, draining...), with AWS's reason when not healthy.

    Calls DescribeTargetGroups (unless given the ALB :func:`get_alb` found) and
    DescribeTargetHealth (``aws elbv2 describe-target-health``). Chapter 7's
    troubleshooting view.
    """
    arn = _target_group(lab)["TargetGroupArn"] if alb is None else alb.target_group_arn
    params = {"TargetGroupArn": arn}
    typed = awscli.command(
        "elbv2", "DescribeTargetHealth", params, query=TARGET_HEALTH_QUERY, output="table"
    )
    with lab.log.typed_as([typed]):
        descriptions = lab.client("elbv2").describe_target_health(**params)[
            "TargetHealthDescriptions"
        ]
    rows = [
        {
            "target": d["Target"]["Id"],
            "port": d["Target"].get("Port"),
            "availability_zone": d["Target"].get("AvailabilityZone", ""),
            "state": d["TargetHealth"].get("State", ""),
            "reason": d["TargetHealth"].get("Reason", ""),
            "description": d["TargetHealth"].get("Description", ""),
        }
        for d in descriptions
    ]
    # AWS lists targets in no set order; one row per zone, in zone order, reads the same on
    # every run.
    rows.sort(key=lambda r: (r["availability_zone"], r["target"]))
    return pd.DataFrame(rows, columns=TARGET_HEALTH_COLUMNS)


# ---------------------------------------------------------------- call the API


def _check_path(path: str) -> None:
    if not path.startswith("/"):
        raise ConfigurationError(
            _("path={path!r}: start the path with '/', e.g. '/health'.").format(path=path)
        )


@step("Call the API through the ALB")
def call_alb(lab: Lab, path: str = "/", *, method: str = "GET", body: Any = None) -> HttpResponse:
    """One HTTP request to the API through the ALB's DNS name, as ``curl`` would send it.

    Calls DescribeLoadBalancers to find the DNS name, then sends the request (no AWS API).
    Chapter 7. A 503 means the target group has no registered targets yet, a 502 or 504 that
    a target did not answer properly.
    """
    _check_path(path)
    url = f"http://{_load_balancer(lab)['DNSName']}{path}"
    return lab.http(method.upper(), url, body)


@step("Call the API through the ALB, several times")
def show_alb_responses(
    lab: Lab, calls: Sequence[tuple[str, str] | tuple[str, str, Any]]
) -> pd.DataFrame:
    """Several requests through the ALB, one row each: method, path, status, body.

    Each call is ``(method, path)`` or ``(method, path, json_body)``, e.g.
    ``("POST", "/api/users", {"name": "Taro", "email": "taro@example.com"})``. Calls
    DescribeLoadBalancers once, then sends the requests in order. Chapter 7.
    """
    for call in calls:
        _check_path(call[1])
    base = f"http://{_load_balancer(lab)['DNSName']}"
    rows = []
    for method, path, *rest in calls:
        response = lab.http(method.upper(), base + path, rest[0] if rest else None)
        rows.append(
            {
                "method": response.method,
                "path": path,
                "status": response.status,
                "body": response.text,
            }
        )
    return pd.DataFrame(rows, columns=["method", "path", "status", "body"])


# ------------------------------------------------------------- watch a rollout


@dataclass(frozen=True)
class ProbeAnswer:
    """One probe request: when it was sent (seconds after the probe started), the HTTP
    status (0 when no answer came back), the app's ``version`` and the error, if any."""

    at: float
    status: int
    version: str = ""
    error: str = ""

    @property
    def failed(self) -> bool:
        """A 5xx from the ALB or the app, or no answer at all: a request a user would lose."""
        return self.status == 0 or self.status >= 500

    @property
    def answer(self) -> str:
        """How the summary names this answer: ``version 2.0.0``, ``failed: HTTP 502``..."""
        if self.status == 0:
            return f"failed: {self.error or 'no answer'}"
        if self.failed:
            return f"failed: HTTP {self.status}"
        if self.version:
            return f"version {self.version}"
        return f"HTTP {self.status}"


class Probe:
    """Requests sent to the ALB one after another in a background thread, as a user of the
    API would; made by :func:`start_probe`. ``stop()`` ends it and returns the summary.

    Also a context manager: ``with start_probe(lab) as probe: ...`` stops it on leaving.
    """

    def __init__(
        self, lab: Lab, url: str, *, interval: float, max_seconds: float, timeout: float
    ) -> None:
        self.url = url
        self.interval = interval
        self.max_seconds = max_seconds
        self._lab = lab
        self._timeout = timeout
        self._answers: list[ProbeAnswer] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="handson-probe", daemon=True)

    def start(self) -> Probe:
        """Start sending requests in the background thread; returns the probe."""
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            at = time.monotonic() - self._started
            if at >= self.max_seconds:
                return
            try:
                response = self._lab.http("GET", self.url, timeout=self._timeout)
                answer = ProbeAnswer(round(at, 3), response.status, _version(response.text))
            except Exception as error:  # a lost request, whatever the cause
                answer = ProbeAnswer(round(at, 3), 0, error=type(error).__name__)
            with self._lock:
                self._answers.append(answer)
            self._stop.wait(self.interval)

    @property
    def running(self) -> bool:
        """Whether requests are still being sent (False after stop() or max_seconds)."""
        return self._thread.is_alive()

    @property
    def answers(self) -> list[ProbeAnswer]:
        """Every request so far, oldest first."""
        with self._lock:
            return list(self._answers)

    @property
    def requests(self) -> int:
        """How many requests were sent so far."""
        return len(self.answers)

    @property
    def failed(self) -> int:
        """How many requests failed (5xx or no answer)."""
        return sum(a.failed for a in self.answers)

    @property
    def versions(self) -> dict[str, int]:
        """Successful answers per app version, e.g. ``{"1.0.0": 40, "2.0.0": 35}``."""
        counts: dict[str, int] = {}
        for a in self.answers:
            if not a.failed and a.version:
                counts[a.version] = counts.get(a.version, 0) + 1
        return counts

    def summary(self) -> pd.DataFrame:
        """One row per kind of answer, in the order first seen: how many, first and last."""
        rows: dict[str, dict[str, Any]] = {}
        for a in self.answers:
            row = rows.setdefault(
                a.answer,
                {"answer": a.answer, "failed": a.failed, "requests": 0, "first_at_s": a.at},
            )
            row["requests"] += 1
            row["last_at_s"] = a.at
        return pd.DataFrame(list(rows.values()), columns=PROBE_COLUMNS)

    def stop(self) -> pd.DataFrame:
        """Stop sending requests (the one in flight finishes) and return the summary."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(self._timeout + 1.0)
        return self.summary()

    def __enter__(self) -> Probe:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return (
            f"Probe({self.url}, {state}, {self.requests} requests, {self.failed} failed, "
            f"versions={self.versions})"
        )


_probes: weakref.WeakKeyDictionary[Lab, Probe] = weakref.WeakKeyDictionary()
_probes_lock = threading.Lock()


def _version(text: str) -> str:
    try:
        body = json.loads(text)
    except ValueError:
        return ""
    return str(body.get("version", "")) if isinstance(body, dict) else ""


def _check_positive(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigurationError(
            _("{name}={value!r}: give a number of seconds above 0.").format(name=name, value=value)
        )


@step("Probe the API through the ALB")
def start_probe(
    lab: Lab,
    path: str = "/",
    *,
    interval: float = PROBE_INTERVAL,
    max_seconds: float = PROBE_MAX_SECONDS,
) -> Probe:
    """Start calling the API through the ALB in the background, one request after another,
    like users would during a deployment; the ALB spreads them over its healthy targets.

    Calls DescribeLoadBalancers once, then sends ``GET path`` every ``interval`` seconds
    until ``probe.stop()`` or ``max_seconds``. A probe still running for this lab is
    stopped first, so running the cell again is safe. Chapter 7 (rolling update).
    """
    _check_path(path)
    _check_positive("interval", interval)
    _check_positive("max_seconds", max_seconds)
    url = f"http://{_load_balancer(lab)['DNSName']}{path}"
    with _probes_lock:
        previous = _probes.get(lab)
        if previous is not None:
            previous.stop()
        probe = Probe(lab, url, interval=interval, max_seconds=max_seconds, timeout=PROBE_TIMEOUT)
        _probes[lab] = probe
    return probe.start()


def show_probe(probe: Probe) -> pd.DataFrame:
    """What the probe's requests got so far: one row per app version (or failure) with the
    number of requests and when it was first and last seen. No AWS call."""
    if not isinstance(probe, Probe):
        raise ConfigurationError(
            _(
                "probe={probe!r}: pass what start_probe(lab) returned, e.g. "
                "probe = handson.loadbalancer.start_probe(lab)."
            ).format(probe=probe)
        )
    return probe.summary()


@step("Watch the targets' health")
def watch_targets(
    lab: Lab, *, until_healthy: int, timeout: float = 600.0, poll: float = 0.25
) -> pd.DataFrame:
    """Watch the target group while the service adds or removes tasks: each target's
    states as the ALB reports them (initial, healthy, draining...) and when each was first
    seen, until exactly ``until_healthy`` targets are registered, all healthy.

    Polls DescribeTargetGroups once, then DescribeTargetHealth every ``poll`` seconds. A
    deregistered target stays ``draining`` for the deregistration delay (60 s here) before
    it is gone. Raises WaitTimeoutError after ``timeout`` seconds. Chapter 7.
    """
    if (
        isinstance(until_healthy, bool)
        or not isinstance(until_healthy, int)
        or not 0 <= until_healthy <= MAX_TARGETS
    ):
        raise ConfigurationError(
            _(
                "until_healthy={until_healthy!r}: give the number of tasks the service should "
                "settle at, a whole number from 0 to {most} (the desired count)."
            ).format(until_healthy=until_healthy, most=MAX_TARGETS)
        )
    _check_positive("timeout", timeout)
    _check_positive("poll", poll)
    arn = _target_group(lab)["TargetGroupArn"]
    elb = lab.client("elbv2")
    started = time.monotonic()
    rows: list[dict[str, Any]] = []
    last: dict[str, tuple[str, str]] = {}
    while True:
        at = round(time.monotonic() - started, 2)
        seen: dict[str, tuple[str, str]] = {}
        for d in elb.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]:
            target = f"{d['Target']['Id']}:{d['Target'].get('Port', TARGET_PORT)}"
            health = d["TargetHealth"]
            seen[target] = (str(health.get("State", "")), str(health.get("Reason", "")))
        for target in [t for t in last if t not in seen and last[t][0] != GONE]:
            seen[target] = (GONE, "")
        for target, (state, reason) in sorted(seen.items()):
            if last.get(target) != (state, reason):
                rows.append(
                    {"target": target, "state": state, "reason": reason, "first_seen_s": at}
                )
        last.update(seen)
        listed = [state for state, _reason in seen.values() if state != GONE]
        if len(listed) == until_healthy and all(state == "healthy" for state in listed):
            return pd.DataFrame(rows, columns=WATCH_COLUMNS)
        if time.monotonic() - started > timeout:
            now = ", ".join(f"{t} {s}" for t, (s, _reason) in seen.items() if s != GONE)
            raise WaitTimeoutError(
                _(
                    "The target group did not settle at {until_healthy} healthy targets within "
                    "{timeout:.0f} s (targets now: {now}). Look at handson.loadbalancer."
                    "show_target_health(lab) and handson.ecs.show_service_events(lab), then run "
                    "the cell again."
                ).format(until_healthy=until_healthy, timeout=timeout, now=now or _("none"))
            )
        time.sleep(poll)


# ------------------------------------------------------------------- delete


@step("Delete the ALB")
def delete_alb(lab: Lab) -> None:
    """Delete the listener, the load balancer (waiting until it is gone) and the target group.

    Calls DescribeLoadBalancers, DescribeListeners, DeleteListener, DeleteLoadBalancer,
    DescribeTargetGroups and DeleteTargetGroup (retried while AWS still reports it in use).
    Idempotent. Chapter 3 (teardown).
    """
    elb = lab.client("elbv2")
    lb = _find_load_balancer(lab)
    if lb is not None:
        arn = lb["LoadBalancerArn"]
        for listener in elb.describe_listeners(LoadBalancerArn=arn)["Listeners"]:
            elb.delete_listener(ListenerArn=listener["ListenerArn"])
        elb.delete_load_balancer(LoadBalancerArn=arn)
        _wait(
            lab, "load_balancers_deleted", _("Deleting the load balancer"), LoadBalancerArns=[arn]
        )
    group = _find_target_group(lab)
    if group is None:
        return
    for attempt in range(1, TG_DELETE_ATTEMPTS + 1):
        try:
            elb.delete_target_group(TargetGroupArn=group["TargetGroupArn"])
            return
        except ClientError as error:
            if _error_code(error) != "ResourceInUse" or attempt == TG_DELETE_ATTEMPTS:
                raise
            time.sleep(TG_DELETE_PAUSE)


def leftovers(lab: Lab) -> list[tuple[str, str, str]]:
    """What of this module is still tagged for the student: the load balancer and target group, as
    (service, kind, id) rows for teardown.leftovers."""
    elb = lab.client("elbv2")
    arns = [
        ("load balancer", lb["LoadBalancerArn"])
        for lb in elb.describe_load_balancers()["LoadBalancers"]
    ]
    arns += [
        ("target group", tg["TargetGroupArn"])
        for tg in elb.describe_target_groups()["TargetGroups"]
    ]
    found: list[tuple[str, str, str]] = []
    for start in range(0, len(arns), 20):  # DescribeTags takes up to 20 ARNs
        chunk = dict((arn, kind) for kind, arn in arns[start : start + 20])
        for description in elb.describe_tags(ResourceArns=list(chunk))["TagDescriptions"]:
            if lab.owns(description["Tags"]):
                found.append(
                    ("elbv2", chunk[description["ResourceArn"]], description["ResourceArn"])
                )
    return found
