"""The series' chapters 1-6 in one go: what chapter 7 (the course) assumes exists.

Each step is idempotent, so running this again for the same student changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from handson import database, ecs, iam, loadbalancer, logs, network, registry
from handson.connection import Lab
from handson.exceptions import NotFoundError


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


def build_prerequisites(lab: Lab, *, enable_nat_gateway: bool = True) -> Prerequisites:
    """Build chapters 1-6 for the student: network (+ NAT when enabled), ALB, ECS cluster,
    IAM roles, ECR repository, log group, RDS PostgreSQL and its secret. Idempotent."""
    net = network.ensure_network(lab, enable_nat_gateway=enable_nat_gateway)
    alb = loadbalancer.ensure_alb(
        lab,
        vpc_id=net.vpc_id,
        subnet_ids=list(net.public_subnet_ids),
        security_group_id=net.alb_security_group_id,
    )
    cluster = ecs.ensure_cluster(lab)
    log_group = logs.ensure_log_group(lab)
    execution_role = iam.ensure_execution_role(lab)
    repository = registry.ensure_repository(lab)
    registry.ensure_repository_policy(lab, execution_role_arn=execution_role)
    db = database.ensure_database(
        lab,
        private_subnet_ids=list(net.private_subnet_ids),
        security_group_id=net.rds_security_group_id,
    )
    task_role = iam.ensure_task_role(
        lab, log_group_arn=_log_group_arn(lab, log_group), secret_arn=db.secret_arn
    )
    return Prerequisites(net, alb, cluster, execution_role, task_role, repository, log_group, db)


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


def _log_group_arn(lab: Lab, name: str) -> str:
    return f"arn:aws:logs:{lab.region}:{lab.account_id}:log-group:{name}"


def show_prerequisites(lab: Lab, pre: Prerequisites) -> pd.DataFrame:
    """A table of what chapters 1-6 left in the account, chapter by chapter."""
    net, alb, db = pre.network, pre.alb, pre.database
    rows = [
        ("01 VPC network", "VPC", lab.name("vpc"), net.vpc_id),
        ("01 VPC network", "public subnets", "a, c", ", ".join(net.public_subnet_ids)),
        ("01 VPC network", "private subnets", "a, c", ", ".join(net.private_subnet_ids)),
        ("01 VPC network", "internet gateway", lab.name("igw"), net.internet_gateway_id),
        ("02 security + NAT", "security groups", "alb, ecs, rds", ", ".join(
            [net.alb_security_group_id, net.ecs_security_group_id, net.rds_security_group_id]
        )),
        ("02 security + NAT", "NAT gateways", "a, c", ", ".join(net.nat_gateway_ids) or "(off)"),
        ("03 ALB", "load balancer", lab.name("alb"), alb.alb_dns_name),
        ("03 ALB", "target group", lab.name("ecs-tg"), alb.target_group_arn.rsplit(":", 1)[-1]),
        ("04 ECS + IAM", "cluster", lab.name("cluster"), pre.cluster_arn.rsplit(":", 1)[-1]),
        ("04 ECS + IAM", "execution role", lab.name("ecs-execution-role"), pre.execution_role_arn),
        ("04 ECS + IAM", "task role", lab.name("ecs-task-role"), pre.task_role_arn),
        ("04 ECS + IAM", "ECR repository", pre.repository.name, pre.repository.uri),
        ("04 ECS + IAM", "log group", pre.log_group, "14 days"),
        ("05 RDS", "PostgreSQL", lab.name("db"), f"{db.address}:{db.port}/{db.name}"),
        ("05 RDS", "DB secret", db.secret_name, "(value not shown)"),
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
    return ecs.wait_for_rollout(lab, poll=0.2, progress=lambda service: None)
