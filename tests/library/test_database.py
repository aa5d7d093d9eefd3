"""The RDS database and its secret (chapter 5)."""

from __future__ import annotations

import json
import string

import pytest

from handson import database, secrets, waiting
from handson.exceptions import ConfigurationError, NotFoundError


@pytest.fixture
def network(lab) -> dict[str, object]:
    """A VPC with two private subnets (1a, 1c) and an RDS security group, made with plain EC2
    calls (the kit's network module is tested on its own)."""
    return _network(lab)


def _network(lab) -> dict[str, object]:
    ec2 = lab.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, AvailabilityZone=zone)["Subnet"]["SubnetId"]
        for cidr, zone in (("10.0.11.0/24", "ap-northeast-1a"), ("10.0.12.0/24", "ap-northeast-1c"))
    ]
    sg = ec2.create_security_group(GroupName=f"{lab.prefix}-rds-sg", Description="RDS", VpcId=vpc)[
        "GroupId"
    ]
    return {"vpc": vpc, "subnets": subnets, "sg": sg}


def _ensure(lab, network) -> database.Database:
    return database.ensure_database(
        lab, private_subnet_ids=network["subnets"], security_group_id=network["sg"]
    )


def _mutations_of(lab, action) -> list[str]:
    before = len(lab.log.calls)
    action()
    return [c.operation for c in lab.log.calls[before:] if c.mutating]


def _tags(tag_list) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in tag_list}


def _secret(lab) -> dict[str, object]:
    """The secret's JSON, read as ECS would (never printed: assert on it only)."""
    value = lab.client("secretsmanager").get_secret_value(SecretId=f"{lab.prefix}-db-credentials")
    return json.loads(value["SecretString"])


def _instance(lab) -> dict[str, object]:
    rds = lab.client("rds")
    return rds.describe_db_instances(DBInstanceIdentifier=f"{lab.prefix}-db")["DBInstances"][0]


def test_instance_settings_and_tags(lab, network) -> None:
    _ensure(lab, network)

    instance = _instance(lab)
    assert instance["DBInstanceStatus"] == "available"
    assert (instance["Engine"], instance["EngineVersion"]) == ("postgres", "15.8")
    assert instance["DBInstanceClass"] == "db.t3.micro"
    assert instance["AllocatedStorage"] == 20
    assert instance["MasterUsername"] == "postgres"
    assert instance["DBName"] == "my_project_dev_db"
    assert instance["PubliclyAccessible"] is False
    assert instance["MultiAZ"] is False
    assert instance["BackupRetentionPeriod"] == 7
    assert instance["EnabledCloudwatchLogsExports"] == ["postgresql"]
    assert [g["VpcSecurityGroupId"] for g in instance["VpcSecurityGroups"]] == [network["sg"]]
    assert instance["DBSubnetGroup"]["DBSubnetGroupName"] == f"{lab.prefix}-db-subnet-group"
    assert [g["DBParameterGroupName"] for g in instance["DBParameterGroups"]] == [
        f"{lab.prefix}-pg15"
    ]
    assert _tags(instance["TagList"]) == _tags(lab.tag_list(f"{lab.prefix}-db"))


def test_subnet_group_and_parameter_group(lab, network) -> None:
    _ensure(lab, network)
    rds = lab.client("rds")

    group = rds.describe_db_subnet_groups(DBSubnetGroupName=f"{lab.prefix}-db-subnet-group")[
        "DBSubnetGroups"
    ][0]
    assert sorted(s["SubnetIdentifier"] for s in group["Subnets"]) == sorted(network["subnets"])
    assert _tags(rds.list_tags_for_resource(ResourceName=group["DBSubnetGroupArn"])["TagList"]) == (
        _tags(lab.tag_list(f"{lab.prefix}-db-subnet-group"))
    )
    parameters = rds.describe_db_parameter_groups(DBParameterGroupName=f"{lab.prefix}-pg15")[
        "DBParameterGroups"
    ][0]
    assert parameters["DBParameterGroupFamily"] == "postgres15"
    assert _tags(
        rds.list_tags_for_resource(ResourceName=parameters["DBParameterGroupArn"])["TagList"]
    ) == _tags(lab.tag_list(f"{lab.prefix}-pg15"))
    values = rds.describe_db_parameters(DBParameterGroupName=f"{lab.prefix}-pg15", Source="user")
    assert {
        p["ParameterName"]: (p["ParameterValue"], p["ApplyMethod"]) for p in values["Parameters"]
    } == {
        "shared_preload_libraries": ("pg_stat_statements", "pending-reboot"),
        "log_statement": ("all", "immediate"),
    }


def test_secret_matches_the_instance(lab, network) -> None:
    db = _ensure(lab, network)

    instance = _instance(lab)
    stored = _secret(lab)
    assert {k: v for k, v in stored.items() if k != "password"} == {
        "username": "postgres",
        "engine": "postgres",
        "host": instance["Endpoint"]["Address"],
        "port": instance["Endpoint"]["Port"],
        "dbname": "my_project_dev_db",
    }
    assert len(stored["password"]) == 32
    described = lab.client("secretsmanager").describe_secret(SecretId=db.secret_arn)
    assert described["Name"] == f"{lab.prefix}-db-credentials"
    assert _tags(described["Tags"]) == _tags(lab.tag_list(f"{lab.prefix}-db-credentials"))
    assert db == database.Database(
        endpoint=f"{instance['Endpoint']['Address']}:{instance['Endpoint']['Port']}",
        address=instance["Endpoint"]["Address"],
        port=instance["Endpoint"]["Port"],
        name="my_project_dev_db",
        db_subnet_group_id=f"{lab.prefix}-db-subnet-group",
        secret_arn=described["ARN"],
        secret_name=f"{lab.prefix}-db-credentials",
    )


def test_the_password_is_never_shown(lab, network) -> None:
    db = _ensure(lab, network)
    password = _secret(lab)["password"]

    shown = [
        repr(db),
        repr(lab.log.calls),
        *lab.cli_commands(),
        database.show_database(lab).to_string(),
    ]

    assert not [text for text in shown if password in text]


def test_second_run_changes_nothing(lab, network) -> None:
    first = _ensure(lab, network)
    password = _secret(lab)["password"]

    assert _mutations_of(lab, lambda: _ensure(lab, network)) == []
    assert _ensure(lab, network) == first
    assert _secret(lab)["password"] == password


def test_half_made_run_sets_a_new_password_and_creates_the_secret(lab, network) -> None:
    _ensure(lab, network)
    old = _secret(lab)["password"]
    lab.client("secretsmanager").delete_secret(
        SecretId=f"{lab.prefix}-db-credentials", ForceDeleteWithoutRecovery=True
    )

    before = len(lab.log.calls)
    db = _ensure(lab, network)
    changes = [c for c in lab.log.calls[before:] if c.mutating]

    assert [c.operation for c in changes] == ["ModifyDBInstance", "CreateSecret"]
    assert changes[0].params["MasterUserPassword"] == "****"
    assert changes[0].params["ApplyImmediately"] is True
    stored = _secret(lab)
    # The CLI view shows the secret's fields, what to type, with only the password masked.
    shown = json.loads(changes[1].params["SecretString"])
    assert shown == {**stored, "password": "****"}
    assert stored["password"] != old
    assert len(stored["password"]) == 32
    assert stored["host"] == db.address
    assert _mutations_of(lab, lambda: _ensure(lab, network)) == []


def test_recreated_instance_gets_its_new_password_into_the_old_secret(lab, network) -> None:
    _ensure(lab, network)
    old = _secret(lab)["password"]
    rds = lab.client("rds")
    rds.delete_db_instance(DBInstanceIdentifier=f"{lab.prefix}-db", SkipFinalSnapshot=True)
    rds.get_waiter("db_instance_deleted").wait(DBInstanceIdentifier=f"{lab.prefix}-db")

    changes = _mutations_of(lab, lambda: _ensure(lab, network))

    assert changes == ["CreateDBInstance", "PutSecretValue"]
    assert _secret(lab)["password"] != old


def test_parameters_are_modified_only_when_different(lab) -> None:
    database.ensure_parameter_group(lab)
    lab.client("rds").modify_db_parameter_group(
        DBParameterGroupName=f"{lab.prefix}-pg15",
        Parameters=[
            {"ParameterName": "log_statement", "ParameterValue": "none", "ApplyMethod": "immediate"}
        ],
    )

    before = len(lab.log.calls)
    database.ensure_parameter_group(lab)
    changes = [c for c in lab.log.calls[before:] if c.mutating]

    assert [c.operation for c in changes] == ["ModifyDBParameterGroup"]
    assert [p["ParameterName"] for p in changes[0].params["Parameters"]] == ["log_statement"]
    assert _mutations_of(lab, lambda: database.ensure_parameter_group(lab)) == []


def test_db_secret_updates_connection_fields_but_keeps_its_password(lab) -> None:
    fields = {"host": "a.example", "port": 5432, "dbname": "app", "username": "postgres"}
    arn = secrets.ensure_db_secret(lab, **fields, password="first-Passw0rd!")

    moved = {**fields, "host": "b.example"}
    changes = _mutations_of(
        lab, lambda: secrets.ensure_db_secret(lab, **moved, password="second-Passw0rd!")
    )

    assert changes == ["PutSecretValue"]
    assert _secret(lab) == {**moved, "engine": "postgres", "password": "first-Passw0rd!"}
    assert _mutations_of(lab, lambda: secrets.ensure_db_secret(lab, **moved, password="x")) == []
    assert secrets.find_db_secret(lab) == arn


def test_db_secret_scheduled_for_deletion_is_restored(lab) -> None:
    fields = {"host": "a.example", "port": 5432, "dbname": "app", "username": "postgres"}
    arn = secrets.ensure_db_secret(lab, **fields, password="first-Passw0rd!")
    lab.client("secretsmanager").delete_secret(SecretId=arn, RecoveryWindowInDays=7)

    changes = _mutations_of(
        lab, lambda: secrets.ensure_db_secret(lab, **fields, password="second-Passw0rd!")
    )

    assert changes == ["RestoreSecret"]
    assert _secret(lab)["password"] == "first-Passw0rd!"


def test_generated_passwords_suit_rds() -> None:
    allowed = set(string.ascii_letters + string.digits + secrets.PASSWORD_SYMBOLS)
    passwords = [secrets.generate_password() for _ in range(50)]

    assert all(len(p) == 32 for p in passwords)
    assert all(set(p) <= allowed for p in passwords)
    assert not any(c in p for p in passwords for c in '/@" ')
    assert len(set(passwords)) == 50
    assert len(secrets.generate_password(8)) == 8
    with pytest.raises(ConfigurationError, match="8 to 128"):
        secrets.generate_password(4)


def test_bad_network_input_is_refused_before_any_call(lab, network) -> None:
    before = len(lab.log.calls)
    with pytest.raises(ConfigurationError, match="private_subnet_ids"):
        database.ensure_database(
            lab, private_subnet_ids=network["subnets"][:1], security_group_id=network["sg"]
        )
    with pytest.raises(ConfigurationError, match="security_group_id"):
        database.ensure_database(
            lab, private_subnet_ids=network["subnets"], security_group_id=network["vpc"]
        )

    assert lab.log.calls[before:] == []


def test_get_database_looks_up_only(lab, network) -> None:
    with pytest.raises(NotFoundError, match="notebook 00"):
        database.get_database(lab)
    created = _ensure(lab, network)

    before = len(lab.log.calls)
    assert database.get_database(lab) == created
    assert [c for c in lab.log.calls[before:] if c.mutating] == []


def test_show_database(lab, network) -> None:
    columns = ["identifier", "engine", "version", "class", "status", "endpoint", "port", "db name"]
    assert list(database.show_database(lab).columns) == columns
    assert database.show_database(lab).empty
    db = _ensure(lab, network)

    row = database.show_database(lab).iloc[0].to_dict()

    assert row == {
        "identifier": f"{lab.prefix}-db",
        "engine": "postgres",
        "version": "15.8",
        "class": "db.t3.micro",
        "status": "available",
        "endpoint": db.address,
        "port": db.port,
        "db name": "my_project_dev_db",
    }


def test_delete_database_removes_everything_and_is_idempotent(lab, network) -> None:
    _ensure(lab, network)

    database.delete_database(lab)

    rds = lab.client("rds")
    assert rds.describe_db_instances()["DBInstances"] == []
    assert rds.describe_db_subnet_groups()["DBSubnetGroups"] == []
    names = [
        g["DBParameterGroupName"] for g in rds.describe_db_parameter_groups()["DBParameterGroups"]
    ]
    assert f"{lab.prefix}-pg15" not in names
    assert secrets.find_db_secret(lab) is None
    assert _mutations_of(lab, lambda: database.delete_database(lab)) == []


def test_bad_secret_input_is_refused_without_showing_the_password(lab) -> None:
    before = len(lab.log.calls)
    with pytest.raises(ConfigurationError, match="port") as error:
        secrets.ensure_db_secret(
            lab, host="a.example", port=0, dbname="app", username="postgres", password="Hidden-1!"
        )

    assert "Hidden-1!" not in str(error.value) + repr(error.value)
    assert lab.log.calls[before:] == []


@pytest.mark.slow
def test_the_endpoint_is_read_only_once_the_instance_is_created(timed_lab) -> None:
    lab = timed_lab(100)  # the instance is "creating" for 2.4 s
    network = _network(lab)
    # An earlier run's secret survived; the instance is being created again.
    secrets.ensure_db_secret(
        lab, host="old", port=5432, dbname="my_project_dev_db", username="postgres", password="x"
    )
    rds = lab.client("rds")
    rds.create_db_instance(
        DBInstanceIdentifier=f"{lab.prefix}-db",
        Engine="postgres",
        DBInstanceClass="db.t3.micro",
        AllocatedStorage=20,
        DBName="my_project_dev_db",
        MasterUsername="postgres",
        MasterUserPassword="password-for-tests-1",
        DBSubnetGroupName=database.ensure_db_subnet_group(
            lab, private_subnet_ids=network["subnets"]
        ),
    )

    with pytest.raises(NotFoundError) as early:
        database.get_database(lab)
    assert early.value.code == "InvalidDBInstanceState"
    assert f"{lab.prefix}-db has no endpoint yet: it is 'creating'" in early.value.message
    assert "db-instance-available" in early.value.hint

    waiting.wait(rds, "db_instance_available", timeout=60, DBInstanceIdentifier=f"{lab.prefix}-db")
    found = database.get_database(lab)
    assert found.address == _instance(lab)["Endpoint"]["Address"]
    assert found.port == 5432
