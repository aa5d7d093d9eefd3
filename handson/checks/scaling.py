"""Check of exercise 6: the service scaled out and in, and is back at two tasks."""

from __future__ import annotations

from handson import chapters, ecs
from handson.checks.base import Criteria, register
from handson.checks.service import APP_COUNT, steady
from handson.connection import Lab
from handson.i18n import N_, _

SCALED_IN = 2  # 3 -> 1 stops two tasks


def stopped_reasons(lab: Lab) -> list[str]:
    """The stoppedReason of each stopped task of the service (ECS keeps them about an
    hour). Calls ListTasks and DescribeTasks. Read-only."""
    ecs_client = lab.client("ecs")
    arns = ecs_client.list_tasks(
        cluster=lab.name("cluster"), serviceName=lab.name("app-service"), desiredStatus="STOPPED"
    )["taskArns"]
    reasons: list[str] = []
    for start in range(0, len(arns), 100):
        tasks = ecs_client.describe_tasks(
            cluster=lab.name("cluster"), tasks=arns[start : start + 100]
        )
        reasons += [str(t.get("stoppedReason", "")) for t in tasks["tasks"]]
    return reasons


@register("07-scale", N_("Scale the service"))
def check_scaling(lab: Lab, c: Criteria) -> None:
    """Exercise 6: tasks stopped by the current deployment's scale-in, then back to 2."""
    pre = chapters.get_prerequisites(lab)
    service = ecs.describe_service(lab)
    primary = service["deployments"][0]
    reason = f"Scaling activity initiated by (deployment {primary['id']})"
    scaled_in = sum(r == reason for r in stopped_reasons(lab))
    c.expect(
        _("tasks stopped by scale-in"),
        scaled_in >= SCALED_IN,
        _("{count} stopped task(s) with '{reason}'").format(count=scaled_in, reason=reason),
        _(
            "Scale out to 3 (handson.ecs.scale_service(lab, 3)), wait for the third healthy "
            "target, then scale in to 1: ECS stops two tasks with this reason."
        ),
    )
    c.equal(
        _("desired count back at 2"),
        service["desiredCount"],
        APP_COUNT,
        _(
            "Scale back to 2 at the end (handson.ecs.scale_service(lab, 2)): one task per "
            "availability zone, as chapter 7 left it."
        ),
    )
    steady(c, lab, service, pre.alb.target_group_arn)
