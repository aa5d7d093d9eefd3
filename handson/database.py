"""The app's PostgreSQL database on Amazon RDS, and its credentials secret (chapter 5).

RDS runs the database server for us in the private subnets; only the ECS tasks reach it
(the RDS security group lets in 5432 from the ECS security group). The master password
is generated here, given to RDS once, and kept only in the Secrets Manager secret.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
from botocore.exceptions import ClientError

from handson import pricing, secrets, waiting
from handson.aws_errors import step
from handson.connection import Lab
from handson.exceptions import ConfigurationError, NotFoundError
from handson.i18n import _

__all__ = [
    "DB_PARAMETERS",
    "Database",
    "delete_database",
    "ensure_database",
    "ensure_db_instance",
    "ensure_db_subnet_group",
    "ensure_parameter_group",
    "get_database",
    "show_database",
]

ENGINE = "postgres"
ENGINE_VERSION = "15.8"
PARAMETER_GROUP_FAMILY = "postgres15"
INSTANCE_CLASS = "db.t3.micro"
ALLOCATED_STORAGE_GB = 20
MASTER_USERNAME = "postgres"
BACKUP_RETENTION_DAYS = 7
# name -> (value, apply method). shared_preload_libraries is static in PostgreSQL: RDS
# only accepts it as pending-reboot. log_statement is dynamic and applies at once.
DB_PARAMETERS: dict[str, tuple[str, str]] = {
    "shared_preload_libraries": ("pg_stat_statements", "pending-reboot"),
    "log_statement": ("all", "immediate"),
}
# RDS takes 5 to 15 minutes to create or delete an instance: poll every 5 s, up to 40 min.
# "It can take up to 20 minutes before the new instance is available"; deleting, minutes.
WAIT_SECONDS = 2400.0
# RDS error codes for a missing resource.
_INSTANCE_NOT_FOUND = "DBInstanceNotFound"
_SUBNET_GROUP_NOT_FOUND = "DBSubnetGroupNotFoundFault"
_PARAMETER_GROUP_NOT_FOUND = "DBParameterGroupNotFound"


@dataclass(frozen=True)
class Database:
    """The RDS instance and its secret, as the series' Terraform outputs them."""

    endpoint: str
    address: str
    port: int
    name: str
    db_subnet_group_id: str
    secret_arn: str
    secret_name: str


def _instance_id(lab: Lab) -> str:
    return lab.name("db")


def _db_name(lab: Lab) -> str:
    # PostgreSQL database names on RDS take letters, digits and underscores only.
    return f"{lab.prefix}_db".replace("-", "_")


def _exists(describe: Callable[..., Any], code: str, key: str, **params: str) -> bool:
    """Whether a describe call by name finds its resource.

    AWS answers a missing name with the ``code`` error; moto (so the sandbox) answers
    DescribeDBParameterGroups with an empty list instead, which means the same.
    """
    try:
        return bool(describe(**params)[key])
    except ClientError as error:
        if error.response["Error"]["Code"] == code:
            return False
        raise


def _describe_instance(lab: Lab) -> dict[str, Any] | None:
    try:
        instances = lab.client("rds").describe_db_instances(DBInstanceIdentifier=_instance_id(lab))
    except ClientError as error:
        if error.response["Error"]["Code"] == _INSTANCE_NOT_FOUND:
            return None
        raise
    return dict(instances["DBInstances"][0])


def _check_network(private_subnet_ids: list[str], security_group_id: str | None = None) -> None:
    if (
        not isinstance(private_subnet_ids, list | tuple)
        or len(private_subnet_ids) < 2
        or not all(isinstance(s, str) and s.startswith("subnet-") for s in private_subnet_ids)
    ):
        raise ConfigurationError(
            _(
                "private_subnet_ids={private_subnet_ids!r}: RDS needs the private subnets of two "
                "availability zones, e.g. ['subnet-0a...', 'subnet-0c...'] (the network's "
                "private subnet ids)."
            ).format(private_subnet_ids=private_subnet_ids)
        )
    if security_group_id is not None and not (
        isinstance(security_group_id, str) and security_group_id.startswith("sg-")
    ):
        raise ConfigurationError(
            _(
                "security_group_id={security_group_id!r}: give the RDS security group's id "
                "(sg-...), the one that lets in 5432 from the ECS tasks."
            ).format(security_group_id=security_group_id)
        )


@step("Create the DB subnet group")
def ensure_db_subnet_group(lab: Lab, *, private_subnet_ids: list[str]) -> str:
    """The private subnets RDS may place the database in (one per availability zone).

    Calls DescribeDBSubnetGroups, and CreateDBSubnetGroup when missing. Idempotent.
    Chapter 5. Returns the subnet group's name (its id).
    """
    _check_network(private_subnet_ids)
    rds = lab.client("rds")
    name = lab.name("db-subnet-group")
    if not _exists(
        rds.describe_db_subnet_groups,
        _SUBNET_GROUP_NOT_FOUND,
        "DBSubnetGroups",
        DBSubnetGroupName=name,
    ):
        rds.create_db_subnet_group(
            DBSubnetGroupName=name,
            DBSubnetGroupDescription=f"Private subnets of {_instance_id(lab)}",
            SubnetIds=list(private_subnet_ids),
            Tags=lab.tag_list(name),
        )
    return name


@step("Create the DB parameter group")
def ensure_parameter_group(lab: Lab) -> str:
    """PostgreSQL settings for the instance: load pg_stat_statements (query statistics)
    and log every statement.

    Calls DescribeDBParameterGroups, CreateDBParameterGroup when missing,
    DescribeDBParameters (the user-set ones), and ModifyDBParameterGroup only for the
    parameters whose value differs. Idempotent. Chapter 5. Returns the group's name.
    """
    rds = lab.client("rds")
    name = lab.name("pg15")
    if not _exists(
        rds.describe_db_parameter_groups,
        _PARAMETER_GROUP_NOT_FOUND,
        "DBParameterGroups",
        DBParameterGroupName=name,
    ):
        rds.create_db_parameter_group(
            DBParameterGroupName=name,
            DBParameterGroupFamily=PARAMETER_GROUP_FAMILY,
            Description=f"PostgreSQL 15 parameters of {_instance_id(lab)}",
            Tags=lab.tag_list(name),
        )
    current = {
        p["ParameterName"]: p.get("ParameterValue")
        for page in rds.get_paginator("describe_db_parameters").paginate(
            DBParameterGroupName=name, Source="user"
        )
        for p in page["Parameters"]
    }
    changes = [
        {"ParameterName": key, "ParameterValue": value, "ApplyMethod": method}
        for key, (value, method) in DB_PARAMETERS.items()
        if current.get(key) != value
    ]
    if changes:
        rds.modify_db_parameter_group(DBParameterGroupName=name, Parameters=changes)
    return name


@step("Create the RDS instance")
def ensure_db_instance(
    lab: Lab,
    *,
    db_subnet_group: str,
    parameter_group: str,
    security_group_id: str,
    master_password: str,
) -> dict[str, Any]:
    """The PostgreSQL 15.8 server itself (db.t3.micro, 20 GB, one AZ, private, 7-day
    backups, its log exported to CloudWatch), then waits until it is available.

    Calls DescribeDBInstances, CreateDBInstance when missing (``master_password`` is used
    only then), and polls DescribeDBInstances until the status is "available".
    Idempotent. Chapter 5. Returns the instance as DescribeDBInstances shows it.
    """
    if not isinstance(master_password, str) or not master_password:
        raise ConfigurationError(_("master_password is empty: use secrets.generate_password()."))
    rds = lab.client("rds")
    identifier = _instance_id(lab)
    instance = _describe_instance(lab)
    if instance is None:
        rds.create_db_instance(
            DBInstanceIdentifier=identifier,
            Engine=ENGINE,
            EngineVersion=ENGINE_VERSION,
            DBInstanceClass=INSTANCE_CLASS,
            AllocatedStorage=ALLOCATED_STORAGE_GB,
            StorageType="gp2",
            DBName=_db_name(lab),
            MasterUsername=MASTER_USERNAME,
            MasterUserPassword=master_password,
            DBSubnetGroupName=db_subnet_group,
            DBParameterGroupName=parameter_group,
            VpcSecurityGroupIds=[security_group_id],
            PubliclyAccessible=False,
            MultiAZ=False,
            BackupRetentionPeriod=BACKUP_RETENTION_DAYS,
            EnableCloudwatchLogsExports=["postgresql"],
            Tags=lab.tag_list(identifier),
        )
    elif instance["DBInstanceStatus"] == "available":
        return instance
    # The create response has no endpoint yet: AWS assigns it while creating.
    waiting.wait(
        rds, "db_instance_available", timeout=WAIT_SECONDS, DBInstanceIdentifier=identifier
    )
    return dict(rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0])


@step("Create the database and its secret")
def ensure_database(lab: Lab, *, private_subnet_ids: list[str], security_group_id: str) -> Database:
    """The RDS PostgreSQL instance with a generated master password, and the secret that
    keeps that password with the instance's real endpoint.

    Runs ensure_db_subnet_group, ensure_parameter_group, ensure_db_instance and
    secrets.ensure_db_secret. When the instance exists but its secret does not (an earlier
    run stopped half-way), nobody knows the password any more: a new one is set with
    ModifyDBInstance (MasterUserPassword, ApplyImmediately) and the secret created with it.
    Idempotent: a second run changes nothing. Chapter 5.
    """
    _check_network(private_subnet_ids, security_group_id)
    subnet_group = ensure_db_subnet_group(lab, private_subnet_ids=private_subnet_ids)
    parameter_group = ensure_parameter_group(lab)
    existing = _describe_instance(lab)
    secret_exists = secrets.find_db_secret(lab) is not None
    # Used only where it becomes the DB's password: a new instance, or a reset one.
    password = secrets.generate_password()
    instance = ensure_db_instance(
        lab,
        db_subnet_group=subnet_group,
        parameter_group=parameter_group,
        security_group_id=security_group_id,
        master_password=password,
    )
    if existing is not None and not secret_exists:
        _reset_master_password(lab, password)
    secret_arn = secrets.ensure_db_secret(
        lab,
        host=instance["Endpoint"]["Address"],
        port=int(instance["Endpoint"]["Port"]),
        dbname=instance["DBName"],
        username=instance["MasterUsername"],
        password=password,
        # A new instance has the new password, even when an old secret survived it.
        replace_password=existing is None,
    )
    return _database(instance, secret_arn, lab.name("db-credentials"))


@step("Reset the DB master password")
def _reset_master_password(lab: Lab, password: str) -> None:
    rds = lab.client("rds")
    rds.modify_db_instance(
        DBInstanceIdentifier=_instance_id(lab), MasterUserPassword=password, ApplyImmediately=True
    )
    waiting.wait(
        rds, "db_instance_available", timeout=WAIT_SECONDS, DBInstanceIdentifier=_instance_id(lab)
    )


def _database(instance: dict[str, Any], secret_arn: str, secret_name: str) -> Database:
    if "Endpoint" not in instance:
        # AWS shows the endpoint only once the instance has been created.
        identifier, status = instance["DBInstanceIdentifier"], instance["DBInstanceStatus"]
        raise NotFoundError(
            _(
                "The RDS instance {identifier} has no endpoint yet: it is {status!r}, and AWS "
                "assigns its address while creating it."
            ).format(identifier=identifier, status=status),
            code="InvalidDBInstanceState",
            operation="DescribeDBInstances",
            hint=_(
                "Wait until it is available (run notebook 00 again: it waits), or "
                "`aws rds wait db-instance-available --db-instance-identifier {identifier}`."
            ).format(identifier=identifier),
        )
    address = str(instance["Endpoint"]["Address"])
    port = int(instance["Endpoint"]["Port"])
    return Database(
        endpoint=f"{address}:{port}",
        address=address,
        port=port,
        name=str(instance["DBName"]),
        db_subnet_group_id=str(instance["DBSubnetGroup"]["DBSubnetGroupName"]),
        secret_arn=secret_arn,
        secret_name=secret_name,
    )


@step("Look up the database")
def get_database(lab: Lab) -> Database:
    """The existing RDS instance and its secret, without creating anything.

    Calls DescribeDBInstances and DescribeSecret (read only). Raises NotFoundError when
    either is missing: run notebook 00 first. Chapter 5.
    """
    instance = lab.client("rds").describe_db_instances(DBInstanceIdentifier=_instance_id(lab))
    secret = lab.client("secretsmanager").describe_secret(SecretId=lab.name("db-credentials"))
    return _database(instance["DBInstances"][0], str(secret["ARN"]), str(secret["Name"]))


@step("Show the database")
def show_database(lab: Lab) -> pd.DataFrame:
    """The RDS instance's settings and state, one row (none when it doesn't exist).

    Calls DescribeDBInstances (read only). Chapter 5.
    """
    columns = ["identifier", "engine", "version", "class", "status", "endpoint", "port", "db name"]
    instance = _describe_instance(lab)
    if instance is None:
        return pd.DataFrame([], columns=columns)
    endpoint = instance.get("Endpoint") or {}
    row = {
        "identifier": instance["DBInstanceIdentifier"],
        "engine": instance["Engine"],
        "version": instance["EngineVersion"],
        "class": instance["DBInstanceClass"],
        "status": instance["DBInstanceStatus"],
        "endpoint": endpoint.get("Address"),
        "port": endpoint.get("Port"),
        "db name": instance.get("DBName"),
    }
    return pd.DataFrame([row], columns=columns)


@step("Delete the database and its secret")
def delete_database(lab: Lab) -> None:
    """Delete the RDS instance without a final snapshot and wait until it is gone (its
    parameter and subnet groups can't be deleted while it uses them), then the groups
    and the secret.

    Calls DescribeDBInstances, DeleteDBInstance (SkipFinalSnapshot), DeleteDBParameterGroup,
    DeleteDBSubnetGroup and secrets.delete_db_secret. Idempotent. Teardown.
    """
    rds = lab.client("rds")
    instance = _describe_instance(lab)
    if instance is not None:
        if instance["DBInstanceStatus"] != "deleting":
            rds.delete_db_instance(
                DBInstanceIdentifier=_instance_id(lab),
                SkipFinalSnapshot=True,
                DeleteAutomatedBackups=True,
            )
        waiting.wait(
            rds,
            "db_instance_deleted",
            timeout=WAIT_SECONDS,
            DBInstanceIdentifier=_instance_id(lab),
        )
    parameter_group, subnet_group = lab.name("pg15"), lab.name("db-subnet-group")
    if _exists(
        rds.describe_db_parameter_groups,
        _PARAMETER_GROUP_NOT_FOUND,
        "DBParameterGroups",
        DBParameterGroupName=parameter_group,
    ):
        rds.delete_db_parameter_group(DBParameterGroupName=parameter_group)
    if _exists(
        rds.describe_db_subnet_groups,
        _SUBNET_GROUP_NOT_FOUND,
        "DBSubnetGroups",
        DBSubnetGroupName=subnet_group,
    ):
        rds.delete_db_subnet_group(DBSubnetGroupName=subnet_group)
    secrets.delete_db_secret(lab)


def hourly_cost(lab: Lab) -> pricing.Estimate:
    """What the DB instance costs per hour while it exists (its class and its storage);
    nothing when there is none. Calls DescribeDBInstances. Read-only."""
    instance = _describe_instance(lab)
    if instance is None or instance.get("DBInstanceStatus") == "deleting":
        return pricing.Estimate(_("RDS instance"), 0, 0.0)
    return pricing.database(
        lab.region, instance["DBInstanceClass"], int(instance["AllocatedStorage"])
    )


def leftovers(lab: Lab) -> list[tuple[str, str, str]]:
    """What of this module is still tagged for the student: the DB instance, its subnet
    group and parameter group, as (service, kind, id) rows for teardown.leftovers."""
    rds = lab.client("rds")
    found: list[tuple[str, str, str]] = [
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
