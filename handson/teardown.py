"""Delete everything the kit made for a student, then prove nothing tagged is left.

Deletion runs in dependency order (the service before the cluster and the target group,
the ALB before the subnets, the NAT gateways before their Elastic IPs, ...). Every step
is idempotent, so a teardown that was interrupted can simply be run again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from handson import database, ecs, iam, loadbalancer, logs, network, registry
from handson.aws_errors import aws_errors
from handson.connection import Lab

STEPS: list[tuple[str, Callable[[Lab], None]]] = [
    ("ECS service", ecs.delete_service),
    ("ECS task definitions", ecs.delete_task_definitions),
    ("ECS cluster", ecs.delete_cluster),
    ("ALB, listener, target group", loadbalancer.delete_alb),
    ("RDS database and its secret", database.delete_database),
    ("ECR repository", registry.delete_repository),
    ("CloudWatch log group", logs.delete_log_group),
    ("IAM roles", iam.delete_roles),
    ("VPC network (NAT, subnets, ...)", network.delete_network),
]


def teardown(lab: Lab) -> pd.DataFrame:
    """Delete the student's resources in dependency order; a row per step."""
    rows = []
    for label, delete in STEPS:
        delete(lab)
        rows.append({"step": label, "status": "deleted"})
    return pd.DataFrame(rows)


def leftovers(lab: Lab) -> pd.DataFrame:
    """Everything still tagged for this student, service by service (empty when clean).

    Reads EC2, ELBv2, ECS, ECR, CloudWatch Logs, IAM, Secrets Manager and RDS.
    """
    rows: list[dict[str, str]] = []
    with aws_errors("leftovers"):
        for finder in (_ec2, _elbv2, _ecs, _ecr, _logs, _iam, _secrets, _rds):
            rows += [
                {"service": service, "kind": kind, "id": rid} for service, kind, rid in finder(lab)
            ]
    return pd.DataFrame(rows, columns=["service", "kind", "id"])


Found = list[tuple[str, str, str]]


def _ec2(lab: Lab) -> Found:
    ec2, filters = lab.client("ec2"), lab.tag_filters()
    found: Found = []
    listings: list[tuple[str, Callable[..., Any], str, str]] = [
        ("vpc", ec2.describe_vpcs, "Vpcs", "VpcId"),
        ("subnet", ec2.describe_subnets, "Subnets", "SubnetId"),
        (
            "internet gateway",
            ec2.describe_internet_gateways,
            "InternetGateways",
            "InternetGatewayId",
        ),
        ("route table", ec2.describe_route_tables, "RouteTables", "RouteTableId"),
        ("network acl", ec2.describe_network_acls, "NetworkAcls", "NetworkAclId"),
        ("security group", ec2.describe_security_groups, "SecurityGroups", "GroupId"),
        ("elastic ip", ec2.describe_addresses, "Addresses", "AllocationId"),
    ]
    for kind, call, key, id_key in listings:
        found += [("ec2", kind, item[id_key]) for item in call(Filters=filters)[key]]
    nats = ec2.describe_nat_gateways(Filters=filters)["NatGateways"]
    found += [
        ("ec2", "nat gateway", n["NatGatewayId"])
        for n in nats
        if n["State"] not in ("deleted", "deleting")
    ]
    return found


def _elbv2(lab: Lab) -> Found:
    elb = lab.client("elbv2")
    arns = [
        ("load balancer", lb["LoadBalancerArn"])
        for lb in elb.describe_load_balancers()["LoadBalancers"]
    ]
    arns += [
        ("target group", tg["TargetGroupArn"])
        for tg in elb.describe_target_groups()["TargetGroups"]
    ]
    found: Found = []
    for start in range(0, len(arns), 20):  # DescribeTags takes up to 20 ARNs
        chunk = dict((arn, kind) for kind, arn in arns[start : start + 20])
        for description in elb.describe_tags(ResourceArns=list(chunk))["TagDescriptions"]:
            if lab.owns(description["Tags"]):
                found.append(
                    ("elbv2", chunk[description["ResourceArn"]], description["ResourceArn"])
                )
    return found


def _ecs(lab: Lab) -> Found:
    ecs_client = lab.client("ecs")
    found: Found = []
    for arn in ecs_client.list_clusters()["clusterArns"]:
        cluster = ecs_client.describe_clusters(clusters=[arn], include=["TAGS"])["clusters"][0]
        if cluster["status"] != "ACTIVE" or not lab.owns(
            cluster.get("tags"), key="key", value="value"
        ):
            continue
        found.append(("ecs", "cluster", arn))
        for service_arn in ecs_client.list_services(cluster=arn)["serviceArns"]:
            found.append(("ecs", "service", service_arn))
    families = ecs_client.list_task_definitions(familyPrefix=lab.name("app"), status="ACTIVE")
    found += [("ecs", "task definition", a) for a in families["taskDefinitionArns"]]
    return found


def _ecr(lab: Lab) -> Found:
    ecr = lab.client("ecr")
    found: Found = []
    for repo in ecr.describe_repositories()["repositories"]:
        tags = ecr.list_tags_for_resource(resourceArn=repo["repositoryArn"])["tags"]
        if lab.owns(tags):
            found.append(("ecr", "repository", repo["repositoryName"]))
    return found


def _logs(lab: Lab) -> Found:
    client = lab.client("logs")
    found: Found = []
    for group in client.describe_log_groups(logGroupNamePrefix="/ecs/")["logGroups"]:
        tags = client.list_tags_log_group(logGroupName=group["logGroupName"])["tags"]
        if lab.owns(tags):
            found.append(("logs", "log group", group["logGroupName"]))
    return found


def _iam(lab: Lab) -> Found:
    client = lab.client("iam")
    found: Found = []
    for role in client.list_roles()["Roles"]:
        if not role["RoleName"].startswith(lab.prefix):
            continue
        tags = client.list_role_tags(RoleName=role["RoleName"])["Tags"]
        if lab.owns(tags):
            found.append(("iam", "role", role["RoleName"]))
    return found


def _secrets(lab: Lab) -> Found:
    secrets = lab.client("secretsmanager").list_secrets()["SecretList"]
    return [("secretsmanager", "secret", s["Name"]) for s in secrets if lab.owns(s.get("Tags"))]


def _rds(lab: Lab) -> Found:
    rds = lab.client("rds")
    found: Found = [
        ("rds", "db instance", db["DBInstanceIdentifier"])
        for db in rds.describe_db_instances()["DBInstances"]
        if lab.owns(db.get("TagList"))
    ]
    groups = [
        ("db subnet group", rds.describe_db_subnet_groups()["DBSubnetGroups"], "DBSubnetGroup"),
        (
            "db parameter group",
            rds.describe_db_parameter_groups()["DBParameterGroups"],
            "DBParameterGroup",
        ),
    ]
    for kind, items, key in groups:
        for group in items:
            tags = rds.list_tags_for_resource(ResourceName=group[f"{key}Arn"])["TagList"]
            if lab.owns(tags):
                found.append(("rds", kind, group[f"{key}Name"]))
    return found
