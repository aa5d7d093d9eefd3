"""The class board: one row per student, what runs in their account and what it costs.

The instructor watches it during the class (``handson status roster.csv``): a student whose
service is not 2/2, whose targets are not healthy or whose ALB does not answer needs help.
The ``checks`` column says how many of the exercises' self-checks the student passes
("3/6"); ``handson grade`` says which criteria fail.
"""

from __future__ import annotations

import http.client
import os
from collections.abc import Sequence
from typing import Any

import pandas as pd

from handson import database, ecs, loadbalancer, network, pricing, secrets
from handson.aws_errors import step
from handson.classroom.grade import check_names, grade_lab, score
from handson.classroom.parallel import each_student, error_text
from handson.classroom.roster import Roster, Student, as_roster, check_backend
from handson.connection import Lab, connect
from handson.exceptions import ConfigurationError, NotFoundError
from handson.i18n import N_, _

__all__ = ["COLUMNS", "class_cost", "status", "student_status"]

COLUMNS = [
    "student",
    "account",
    "desired",
    "running",
    "healthy_targets",
    "registered_targets",
    "rollout",
    "alb_health",
    "usd_per_hour",
    "checks",
    "error",
]
COUNTS = ["desired", "running", "healthy_targets", "registered_targets"]


def status(
    roster: Roster | str | os.PathLike[str],
    *,
    backend: str = "sandbox",
    parallel: int = 8,
    health_timeout: float = 3.0,
    checks: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The class board: a row per student with the service's desired/running tasks, the
    healthy/registered targets, the latest rollout state, whether the ALB answers /health,
    the estimated USD per hour of what bills by the hour (see :func:`student_status`) and
    how many of ``checks`` (every self-check by default) the student passes, as "3/6".
    :func:`class_cost` sums the class's cost.

    Reads ``parallel`` accounts at a time and changes nothing. A student whose account
    can't be read, or has nothing provisioned yet, gets a row with ``error`` saying so.
    """
    names = check_names(checks)
    roster = as_roster(roster)
    check_backend(backend)
    if not health_timeout > 0:
        raise ConfigurationError(
            _("health_timeout={timeout!r}: give seconds above 0.").format(timeout=health_timeout)
        )

    def row(student: Student) -> dict[str, Any]:
        values: dict[str, Any] = {"student": student.student, "account": student.account_id}
        try:
            lab = connect(**student.notebook_parameters(backend))  # type: ignore[arg-type]
            values["account"] = lab.account_id
            values.update(student_status(lab, health_timeout=health_timeout))
            values["checks"] = score(grade_lab(lab, names))
        except Exception as error:  # reported in the row: one account never stops the board
            values["error"] = error_text(error)
        return values

    board = pd.DataFrame(each_student(roster, row, parallel=parallel), columns=COLUMNS)
    board[COUNTS] = board[COUNTS].astype("Int64")
    board["checks"] = board["checks"].fillna("")
    return board


@step(N_("Read the student's status"))
def student_status(lab: Lab, *, health_timeout: float = 3.0) -> dict[str, Any]:
    """One student's board row (without the name): service counts, target health, rollout,
    /health through the ALB and the hourly cost of what bills by the hour: the NAT gateways
    and their addresses, the ALB (with an LCU and its public addresses), the running
    tasks, the DB instance and its storage, the interface endpoints and the secrets. Data
    and log charges come on top (handson.pricing.price_table).

    Calls DescribeNatGateways, DescribeLoadBalancers, DescribeTargetGroups,
    DescribeListeners, DescribeTargetHealth, DescribeClusters, DescribeServices,
    DescribeTaskDefinition, DescribeDBInstances, DescribeVpcEndpoints and ListSecrets, then
    sends GET /health; changes nothing. Chapter 7.
    """
    missing: list[str] = []
    usd = pricing.nat_gateways(lab.region, _live_nat_gateways(lab)).usd_per_hour
    usd += database.hourly_cost(lab).usd_per_hour
    usd += network.endpoints.hourly_cost(lab).usd_per_hour
    usd += secrets.hourly_cost(lab).usd_per_hour
    values: dict[str, Any] = {"alb_health": "", "rollout": "", "error": ""}
    try:
        alb = loadbalancer.get_alb(lab)
    except NotFoundError:
        missing.append("ALB")
        usd += loadbalancer.hourly_cost(lab).usd_per_hour  # it bills without its listener
    else:
        usd += loadbalancer.hourly_cost(lab, alb).usd_per_hour
        targets = loadbalancer.show_target_health(lab, alb)
        values["healthy_targets"] = int((targets["state"] == "healthy").sum())
        values["registered_targets"] = len(targets)
        values["alb_health"] = _health(lab, alb.url, health_timeout)
    try:
        ecs.cluster_arn(lab)  # DescribeServices fails differently without a cluster
        service = ecs.describe_service(lab)
    except NotFoundError:
        missing.append("ECS service")
    else:
        values["desired"] = service["desiredCount"]
        values["running"] = service["runningCount"]
        primary = next(
            (d for d in service["deployments"] if d["status"] == "PRIMARY"),
            service["deployments"][0],
        )
        values["rollout"] = primary.get("rolloutState", "")
        usd += _fargate_per_hour(lab, service)
    values["usd_per_hour"] = round(usd, 4)
    if len(missing) == 2:
        values["error"] = _("not provisioned")
    elif missing:
        values["error"] = _("partly provisioned: no {missing}").format(missing=missing[0])
    return values


def class_cost(board: pd.DataFrame) -> pd.DataFrame:
    """The class's cost from its board: how many students' accounts were read, and the sum
    of their USD per hour and per 730-hour month (no AWS call)."""
    read = board[board["usd_per_hour"].notna()]
    hourly = float(read["usd_per_hour"].sum())
    return pd.DataFrame(
        [
            {
                "students": len(read),
                "usd_per_hour": round(hourly, 4),
                "usd_per_month": round(hourly * pricing.HOURS_PER_MONTH, 2),
            }
        ],
        columns=["students", "usd_per_hour", "usd_per_month"],
    )


def _live_nat_gateways(lab: Lab) -> int:
    nats = lab.client("ec2").describe_nat_gateways(
        Filter=[*lab.tag_filters(), {"Name": "state", "Values": list(network.LIVE_NAT_STATES)}]
    )["NatGateways"]
    return len(nats)


def _fargate_per_hour(lab: Lab, service: dict[str, Any]) -> float:
    """Running tasks at their task definition's size; during a rollout two revisions run."""
    total = 0.0
    for deployment in service["deployments"]:
        if not deployment["runningCount"]:
            continue
        definition = lab.client("ecs").describe_task_definition(
            taskDefinition=deployment["taskDefinition"]
        )["taskDefinition"]
        total += pricing.fargate_tasks(
            lab.region,
            deployment["runningCount"],
            int(definition["cpu"]),
            int(definition["memory"]),
        ).usd_per_hour
    return total


def _health(lab: Lab, url: str, timeout: float) -> str:
    try:
        response = lab.http("GET", f"{url}/health", timeout=timeout)
    except (OSError, http.client.HTTPException) as error:
        # A new ALB's DNS name takes minutes to resolve on AWS; a stuck target times out.
        reason = getattr(error, "reason", None) or error
        return _("no answer ({reason})").format(reason=reason)
    return "ok" if response.status == 200 else f"HTTP {response.status}"
