"""Check of exercise 5: version 2 shipped with a rolling update, and a rollback seen."""

from __future__ import annotations

from handson import chapters, ecs, loadbalancer
from handson.checks.base import Criteria, register
from handson.checks.service import steady
from handson.connection import Lab
from handson.i18n import N_, _

FIRST_VERSION = "1.0.0"


def latest_digest(lab: Lab) -> str | None:
    """The digest ``:latest`` points at in ECR, or None. Calls DescribeImages. Read-only."""
    ecr = lab.client("ecr")
    try:
        found = ecr.describe_images(
            repositoryName=lab.name("app"), imageIds=[{"imageTag": "latest"}]
        )["imageDetails"]
    except ecr.exceptions.ImageNotFoundException:
        return None
    return str(found[0]["imageDigest"]) if found else None


def running_digests(lab: Lab) -> list[str]:
    """The image digest of each running task's container. Calls ListTasks, DescribeTasks."""
    ecs_client = lab.client("ecs")
    arns = ecs_client.list_tasks(
        cluster=lab.name("cluster"), serviceName=lab.name("app-service"), desiredStatus="RUNNING"
    )["taskArns"]
    if not arns:
        return []
    tasks = ecs_client.describe_tasks(cluster=lab.name("cluster"), tasks=arns[:100])["tasks"]
    running = [t for t in tasks if t["lastStatus"] == "RUNNING"]
    return [str(c.get("imageDigest", "")) for t in running for c in t["containers"]]


def _short(digest: str | None) -> str:
    return (digest or _("(none)"))[: len("sha256:") + 12]


@register("07-version-2", N_("Ship version 2"))
def check_version_2(lab: Lab, c: Criteria) -> None:
    """Exercise 5: the ALB answers the new version, every task runs ``:latest``, the
    circuit breaker rolled a broken revision back, and that revision is deregistered."""
    pre = chapters.get_prerequisites(lab)
    service = ecs.describe_service(lab)
    response = loadbalancer.call_alb(lab, "/")
    try:
        body = response.json()
    except ValueError:
        body = {}
    version = str(body.get("version", "")) if isinstance(body, dict) else ""
    c.expect(
        _("GET / answers the new version"),
        response.status == 200 and bool(version) and version != FIRST_VERSION,
        _("HTTP {status}, version {version}").format(
            status=response.status, version=version or _("(none)")
        ),
        _(
            "Change VERSION in your copy (handson.registry.set_app_version(app_dir, '2.0.0')), "
            "push it as :latest (push_image(lab, context=app_dir)) and force a new deployment "
            "(handson.ecs.restart_service(lab, image_digest=image.digest))."
        ),
    )
    latest = latest_digest(lab)
    digests = running_digests(lab)
    c.expect(
        _("every task runs the image :latest points at"),
        bool(digests) and latest is not None and all(d == latest for d in digests),
        _(":latest is {latest}; tasks run {digests}").format(
            latest=_short(latest), digests=", ".join(_short(d) for d in digests) or _("none")
        ),
        _(
            "Running tasks keep the image they pulled: after the push, force a new deployment "
            "(handson.ecs.restart_service(lab, image_digest=image.digest)) and wait for it."
        ),
    )
    rollbacks = [e["message"] for e in service["events"] if ecs.ROLLBACK_EVENT in e["message"]]
    c.expect(
        _("the circuit breaker rolled back a failed deployment"),
        bool(rollbacks),
        rollbacks[0] if rollbacks else _("no 'rolling back to deployment' event"),
        _(
            "Register a revision whose image tag is not in ECR (handson.ecs.register_revision("
            "lab, image_tag='does-not-exist')), deploy it (deploy_revision) and wait "
            "(wait_for_rollback): its tasks can't pull the image, so ECS rolls back."
        ),
    )
    latest_revision = ecs.latest_task_definition(lab).arn
    running = service["taskDefinition"]
    c.expect(
        _("the broken revision is deregistered"),
        latest_revision == running,
        _("latest ACTIVE {latest}, the service runs {running}").format(
            latest=latest_revision.rsplit("/", 1)[-1], running=running.rsplit("/", 1)[-1]
        ),
        _(
            "Deregister the broken revision (handson.ecs.deregister_revision(lab, broken.arn)) "
            "so that the family's latest ACTIVE revision is the one that works."
        ),
    )
    steady(c, lab, service, pre.alb.target_group_arn)
