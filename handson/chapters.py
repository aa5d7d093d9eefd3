"""The series' chapters, each declared once: what notebook 00 builds for it, its notebook,
what teardown deletes for it and where its leftovers are looked up.

:func:`build_prerequisites` runs chapters 1-6's builds in order (what chapter 7, the
course, assumes exists); :func:`handson.teardown.teardown` runs the chapters' deletes in
reverse. Each step is idempotent, so running either again changes nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from handson import database, ecs, iam, loadbalancer, logs, network, progress, registry, secrets
from handson.connection import Lab
from handson.exceptions import ConfigurationError, NotFoundError
from handson.i18n import N_, _

# What the builds have made so far, by name: the fields of Prerequisites.
Built = dict[str, Any]
Leftovers = Callable[[Lab], list[tuple[str, str, str]]]
# The seed article's chapter: the course. The chapters before it are its prerequisites.
COURSE = "07"


@dataclass(frozen=True)
class Prerequisites:
    """Ids and ARNs of what chapters 1-6 built (the series' ``terraform output``)."""

    network: network.Network
    alb: loadbalancer.Alb
    cluster_arn: str
    execution_role_arn: str
    task_role_arn: str
    repository: registry.Repository
    log_group: str
    database: database.Database


@dataclass(frozen=True)
class Chapter:
    """One chapter of the series, declared once."""

    key: str
    title: str
    # What notebook 00 runs for it, given what the chapters before it built (None: built
    # with another chapter, or by its own notebook).
    build: Callable[[Lab, Built, bool], None] | None = None
    notebook: str | None = None  # its lesson in notebooks/, if it has one
    # What teardown deletes for it, in order (label, step); chapters go in reverse.
    deletes: tuple[tuple[str, Callable[[Lab], None]], ...] = ()
    # The look-ups of what its modules tagged, for teardown.leftovers.
    leftovers: tuple[Leftovers, ...] = ()
    # What the account holds once the chapter is built, for its check: (service, kind of
    # resource as the leftovers look-ups name it, the counts that are right).
    expects: tuple[tuple[str, str, tuple[int, ...]], ...] = ()


def _build_network(lab: Lab, built: Built, enable_nat_gateway: bool) -> None:
    built["network"] = network.ensure_network(lab, enable_nat_gateway=enable_nat_gateway)


def _build_alb(lab: Lab, built: Built, enable_nat_gateway: bool) -> None:
    net = built["network"]
    built["alb"] = loadbalancer.ensure_alb(
        lab,
        vpc_id=net.vpc_id,
        subnet_ids=list(net.public_subnet_ids),
        security_group_id=net.alb_security_group_id,
    )


def _build_ecs_ecr_iam(lab: Lab, built: Built, enable_nat_gateway: bool) -> None:
    built["cluster_arn"] = ecs.ensure_cluster(lab)
    built["log_group"] = logs.ensure_log_group(lab)
    built["execution_role_arn"] = iam.ensure_execution_role(lab)
    built["repository"] = registry.ensure_repository(lab)
    registry.ensure_repository_policy(lab, execution_role_arn=built["execution_role_arn"])


def _build_database(lab: Lab, built: Built, enable_nat_gateway: bool) -> None:
    net = built["network"]
    built["database"] = db = database.ensure_database(
        lab,
        private_subnet_ids=list(net.private_subnet_ids),
        security_group_id=net.rds_security_group_id,
    )
    # Chapter 4's task role, made here: its policy names this chapter's secret.
    built["task_role_arn"] = iam.ensure_task_role(
        lab, log_group_arn=logs.log_group_arn(lab), secret_arn=db.secret_arn
    )


CHAPTERS: tuple[Chapter, ...] = (
    Chapter(
        "01",
        N_("VPC network"),
        build=_build_network,  # chapter 2's security groups, NACLs and NAT too
        notebook="01_vpc.ipynb",
        deletes=((N_("VPC network (NAT, subnets, ...)"), network.delete_network),),
        leftovers=(network.leftovers,),
        expects=(
            ("ec2", "vpc", (1,)),
            ("ec2", "subnet", (4,)),
            ("ec2", "internet gateway", (1,)),
            ("ec2", "route table", (3,)),
        ),
    ),
    Chapter(
        "02",
        N_("security + NAT"),
        notebook="02_security_and_nat.ipynb",
        expects=(
            ("ec2", "network acl", (2,)),
            ("ec2", "security group", (3, 4)),  # 4 with chapter 8's endpoints group
            ("ec2", "nat gateway", (0, 2)),  # off, or one per zone
            ("ec2", "elastic ip", (0, 2)),
        ),
    ),
    Chapter(
        "03",
        N_("ALB"),
        build=_build_alb,
        notebook="03_alb.ipynb",
        deletes=((N_("ALB, listener, target group"), loadbalancer.delete_alb),),
        leftovers=(loadbalancer.leftovers,),
        expects=(("elbv2", "load balancer", (1,)), ("elbv2", "target group", (1,))),
    ),
    Chapter(
        "04",
        N_("ECS + IAM"),
        build=_build_ecs_ecr_iam,
        notebook="04_ecs_ecr_iam.ipynb",
        deletes=(
            (N_("ECS cluster"), ecs.delete_cluster),
            (N_("ECR repository"), registry.delete_repository),
            (N_("CloudWatch log group"), logs.delete_log_group),
            (N_("IAM roles"), iam.delete_roles),
        ),
        leftovers=(ecs.leftovers, registry.leftovers, logs.leftovers, iam.leftovers),
        expects=(
            ("ecs", "cluster", (1,)),
            ("ecr", "repository", (1,)),
            ("logs", "log group", (1, 2)),  # chapter 8 adds the flow logs' group
            # The execution role; chapter 5 adds the task role, chapter 8 the flow logs'.
            ("iam", "role", (1, 2, 3)),
        ),
    ),
    Chapter(
        "05",
        N_("RDS"),
        build=_build_database,
        notebook="05_rds.ipynb",
        deletes=((N_("RDS database and its secret"), database.delete_database),),
        leftovers=(database.leftovers, secrets.leftovers),
        expects=(
            ("rds", "db subnet group", (1,)),
            ("rds", "db parameter group", (1,)),
            ("rds", "db instance", (1,)),
            ("secretsmanager", "secret", (1,)),
            ("iam", "role", (2, 3)),
        ),
    ),
    # Built locally; chapter 7's first step pushes it. Its check reads the Dockerfile.
    Chapter("06", N_("image"), notebook="06_image.ipynb"),
    Chapter(
        "07",
        N_("ECS task definition and service"),
        notebook="07_ecs_task_definition_and_service.ipynb",
        deletes=(
            (N_("ECS service"), ecs.delete_service),
            (N_("ECS task definitions"), ecs.delete_task_definitions),
        ),
    ),
    Chapter(
        "08",
        N_("VPC endpoints"),
        notebook="08_vpc_endpoints.ipynb",
        deletes=((N_("VPC endpoints and flow logs"), network.delete_endpoints),),
        leftovers=(network.endpoints.leftovers,),
        expects=(
            ("ec2", "vpc endpoint", (1 + len(network.INTERFACE_SERVICES),)),
            ("ec2", "flow log", (1,)),
            ("ec2", "nat gateway", (0,)),
            ("logs", "log group", (2,)),
            ("iam", "role", (3,)),
        ),
    ),
)


def chapter(key: str) -> Chapter:
    """The chapter ``key`` ("01" ... "07"); ConfigurationError naming the keys if unknown."""
    for declared in CHAPTERS:
        if declared.key == key:
            return declared
    keys = ", ".join(c.key for c in CHAPTERS)
    raise ConfigurationError(
        _("There is no chapter {key!r}: choose from {keys}.").format(key=key, keys=keys)
    )


def inventory(lab: Lab) -> Counter[tuple[str, str]]:
    """How many resources of each (service, kind) are tagged for the student, as the
    chapters' leftovers look-ups find them."""
    return Counter(
        (service, kind)
        for declared in CHAPTERS
        for finder in declared.leftovers
        for service, kind, _id in finder(lab)
    )


def chapter_notebooks() -> dict[str, str]:
    """The chapters' lessons in notebooks/, by chapter key."""
    return {c.key: c.notebook for c in CHAPTERS if c.notebook is not None}


def build_prerequisites(lab: Lab, *, enable_nat_gateway: bool = True) -> Prerequisites:
    """Build chapters 1-6 for the student: network (+ NAT when enabled), ALB, ECS cluster,
    IAM roles, ECR repository, log group, RDS PostgreSQL and its secret. Idempotent."""
    built: Built = {}
    for chapter in CHAPTERS:
        if chapter.key < COURSE and chapter.build is not None:
            chapter.build(lab, built, enable_nat_gateway)
    return Prerequisites(**built)


def get_prerequisites(lab: Lab) -> Prerequisites:
    """Look up what chapters 1-6 built, without changing anything.

    Raises NotFoundError (with "run notebook 00 first") when something is missing.
    """
    net = network.get_network(lab)
    db = database.get_database(lab)
    return Prerequisites(
        network=net,
        alb=loadbalancer.get_alb(lab),
        cluster_arn=ecs.cluster_arn(lab),
        execution_role_arn=iam.get_role_arn(lab, "ecs-execution-role"),
        task_role_arn=iam.get_role_arn(lab, "ecs-task-role"),
        repository=registry.get_repository(lab),
        log_group=logs.log_group_name(lab),
        database=db,
    )


def show_prerequisites(lab: Lab, pre: Prerequisites) -> pd.DataFrame:
    """A table of what chapters 1-6 left in the account, chapter by chapter."""
    net, alb, db = pre.network, pre.alb, pre.database
    # Each row's chapter as "<key> <its title>", the title in the learner's language.
    ch01, ch02, ch03, ch04, ch05 = (
        f"{key} {_(chapter(key).title)}" for key in ("01", "02", "03", "04", "05")
    )
    rows = [
        (ch01, "VPC", lab.name("vpc"), net.vpc_id),
        (ch01, _("public subnets"), "a, c", ", ".join(net.public_subnet_ids)),
        (ch01, _("private subnets"), "a, c", ", ".join(net.private_subnet_ids)),
        (ch01, _("internet gateway"), lab.name("igw"), net.internet_gateway_id),
        (ch02, _("security groups"), "alb, ecs, rds", ", ".join(
            [net.alb_security_group_id, net.ecs_security_group_id, net.rds_security_group_id]
        )),
        (ch02, _("NAT gateways"), "a, c", ", ".join(net.nat_gateway_ids) or _("(off)")),
        (ch03, _("load balancer"), lab.name("alb"), alb.alb_dns_name),
        (ch03, _("target group"), lab.name("ecs-tg"), alb.target_group_arn.rsplit(":", 1)[-1]),
        (ch04, _("cluster"), lab.name("cluster"), pre.cluster_arn.rsplit(":", 1)[-1]),
        (ch04, _("execution role"), lab.name("ecs-execution-role"), pre.execution_role_arn),
        (ch04, _("task role"), lab.name("ecs-task-role"), pre.task_role_arn),
        (ch04, _("ECR repository"), pre.repository.name, pre.repository.uri),
        (ch04, _("log group"), pre.log_group, _("14 days")),
        (ch05, "PostgreSQL", lab.name("db"), f"{db.address}:{db.port}/{db.name}"),
        (ch05, _("DB secret"), db.secret_name, _("(value not shown)")),
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=["chapter", "resource", "name", "id / value"])


def outputs(lab: Lab, pre: Prerequisites) -> pd.DataFrame:
    """The series' ``terraform output`` values that chapter 7 reads."""
    values = {
        "vpc_id": pre.network.vpc_id,
        "alb_dns_name": pre.alb.alb_dns_name,
        "target_group_arn": pre.alb.target_group_arn,
        "ecs_cluster_id": pre.cluster_arn,
        "ecr_repository_url": pre.repository.uri,
        "cloudwatch_log_group_name": pre.log_group,
        "db_secret_arn": pre.database.secret_arn,
    }
    try:
        values.update(ecs.outputs(lab))
    except NotFoundError:  # before the service exists there is nothing to add
        pass
    return pd.DataFrame(list(values.items()), columns=["output", "value"])


def task_definition_spec(
    lab: Lab, pre: Prerequisites, *, task_cpu: str | int = 256, task_memory: str | int = 512
) -> dict[str, Any]:
    """Chapter 7's task definition, wired to what chapters 1-6 built (no AWS call)."""
    return ecs.task_definition_spec(
        lab,
        image_uri=f"{pre.repository.uri}:latest",
        execution_role_arn=pre.execution_role_arn,
        task_role_arn=pre.task_role_arn,
        secret_arn=pre.database.secret_arn,
        log_group=pre.log_group,
        task_cpu=task_cpu,
        task_memory=task_memory,
    )


def deploy_chapter7(
    lab: Lab,
    pre: Prerequisites,
    *,
    app_count: int = 2,
    task_cpu: str | int = 256,
    task_memory: str | int = 512,
) -> pd.DataFrame:
    """Chapter 7 in one go, image first (so no failed first deployment): the execution
    role's secret policy, the image push, the task definition, the service, and the wait
    for its steady state. Returns the service table. Idempotent.

    The notebook walks through the same steps one by one, in the article's order.
    """
    ecs.check_settings(task_cpu, task_memory, app_count)
    iam.ensure_execution_secret_policy(lab, secret_arn=pre.database.secret_arn)
    image = registry.push_image(lab)
    spec = task_definition_spec(lab, pre, task_cpu=task_cpu, task_memory=task_memory)
    definition = ecs.ensure_task_definition(lab, spec)
    ecs.ensure_service(
        lab,
        task_definition_arn=definition.arn,
        private_subnet_ids=list(pre.network.private_subnet_ids),
        security_group_id=pre.network.ecs_security_group_id,
        target_group_arn=pre.alb.target_group_arn,
        app_count=app_count,
    )
    ecs.restart_service(lab, image_digest=image.digest)
    return ecs.wait_for_rollout(lab, poll=0.2, progress=progress.silent)
