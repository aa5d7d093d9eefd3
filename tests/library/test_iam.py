"""The ECS roles (chapter 4) and the execution role's secret policy (chapter 7)."""

from __future__ import annotations

import json

import pytest

from handson import iam
from handson.exceptions import ConfigurationError

TRUST_SERVICE = "ecs-tasks.amazonaws.com"


@pytest.fixture
def arns(lab):
    """A log group and a secret ARN in the student's account (the roles only name them)."""
    prefix = f"arn:aws:{{}}:ap-northeast-1:{lab.account_id}"
    return {
        "log_group": prefix.format("logs") + f":log-group:/ecs/{lab.prefix}:*",
        "secret": prefix.format("secretsmanager") + f":secret:{lab.prefix}-db-credentials-AbCdEf",
        "other_secret": prefix.format("secretsmanager") + ":secret:other-XyZ123",
    }


def _tags(lab, role: str) -> dict[str, str]:
    tags = lab.client("iam").list_role_tags(RoleName=role)["Tags"]
    return {t["Key"]: t["Value"] for t in tags}


def _mutations_of(lab, action) -> list[str]:
    before = len(lab.log.calls)
    action()
    return [c.operation for c in lab.log.calls[before:] if c.mutating]


def test_execution_role_trusts_ecs_tasks_and_has_the_managed_policy(lab) -> None:
    arn = iam.ensure_execution_role(lab)

    name = f"{lab.prefix}-ecs-execution-role"
    role = lab.client("iam").get_role(RoleName=name)["Role"]
    assert role["Arn"] == arn
    statement = role["AssumeRolePolicyDocument"]["Statement"][0]
    assert statement["Principal"] == {"Service": TRUST_SERVICE}
    assert statement["Action"] == "sts:AssumeRole"
    attached = lab.client("iam").list_attached_role_policies(RoleName=name)["AttachedPolicies"]
    assert [p["PolicyArn"] for p in attached] == [iam.EXECUTION_MANAGED_POLICY_ARN]
    assert _tags(lab, name) == {t["Key"]: t["Value"] for t in lab.tag_list(name)}


def test_execution_role_second_run_changes_nothing(lab) -> None:
    first = iam.ensure_execution_role(lab)

    assert _mutations_of(lab, lambda: iam.ensure_execution_role(lab)) == []
    assert iam.ensure_execution_role(lab) == first


def test_execution_role_reattaches_a_detached_managed_policy(lab) -> None:
    iam.ensure_execution_role(lab)
    name = f"{lab.prefix}-ecs-execution-role"
    lab.client("iam").detach_role_policy(RoleName=name, PolicyArn=iam.EXECUTION_MANAGED_POLICY_ARN)

    assert _mutations_of(lab, lambda: iam.ensure_execution_role(lab)) == ["AttachRolePolicy"]


def test_task_role_inline_policy(lab, arns) -> None:
    arn = iam.ensure_task_role(lab, log_group_arn=arns["log_group"], secret_arn=arns["secret"])

    name = f"{lab.prefix}-ecs-task-role"
    client = lab.client("iam")
    role = client.get_role(RoleName=name)["Role"]
    assert role["Arn"] == arn
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": TRUST_SERVICE
    }
    assert client.list_role_policies(RoleName=name)["PolicyNames"] == [
        f"{lab.prefix}-ecs-task-policy"
    ]
    document = client.get_role_policy(RoleName=name, PolicyName=f"{lab.prefix}-ecs-task-policy")[
        "PolicyDocument"
    ]
    logs, secret = document["Statement"]
    assert logs == {
        "Effect": "Allow",
        "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
        "Resource": arns["log_group"],
    }
    assert secret == {
        "Effect": "Allow",
        "Action": ["secretsmanager:GetSecretValue"],
        "Resource": arns["secret"],
    }
    assert client.list_attached_role_policies(RoleName=name)["AttachedPolicies"] == []
    assert _tags(lab, name) == {t["Key"]: t["Value"] for t in lab.tag_list(name)}


def test_task_role_takes_the_log_group_arn_with_or_without_the_stream_wildcard(lab, arns) -> None:
    bare = arns["log_group"].removesuffix(":*")
    iam.ensure_task_role(lab, log_group_arn=bare, secret_arn=arns["secret"])

    assert (
        _mutations_of(
            lab,
            lambda: iam.ensure_task_role(
                lab, log_group_arn=arns["log_group"], secret_arn=arns["secret"]
            ),
        )
        == []
    )


def test_task_role_policy_is_put_again_only_when_it_changes(lab, arns) -> None:
    iam.ensure_task_role(lab, log_group_arn=arns["log_group"], secret_arn=arns["secret"])

    same = _mutations_of(
        lab,
        lambda: iam.ensure_task_role(
            lab, log_group_arn=arns["log_group"], secret_arn=arns["secret"]
        ),
    )
    changed = _mutations_of(
        lab,
        lambda: iam.ensure_task_role(
            lab, log_group_arn=arns["log_group"], secret_arn=arns["other_secret"]
        ),
    )

    assert same == []
    assert changed == ["PutRolePolicy"]


def test_execution_secret_policy_allows_only_that_secret(lab, arns) -> None:
    iam.ensure_execution_role(lab)

    name = iam.ensure_execution_secret_policy(lab, secret_arn=arns["secret"])

    assert name == f"{lab.prefix}-ecs-execution-policy"
    document = lab.client("iam").get_role_policy(
        RoleName=f"{lab.prefix}-ecs-execution-role", PolicyName=name
    )["PolicyDocument"]
    assert document["Statement"] == [
        {
            "Effect": "Allow",
            "Action": ["secretsmanager:GetSecretValue"],
            "Resource": arns["secret"],
        }
    ]


def test_execution_secret_policy_compares_documents_in_any_form(lab, arns) -> None:
    iam.ensure_execution_role(lab)
    role, policy = f"{lab.prefix}-ecs-execution-role", f"{lab.prefix}-ecs-execution-policy"
    # The same permissions written differently (as a learner might in the console):
    # keys in another order, a single Action string, the Statement as a lone object.
    lab.client("iam").put_role_policy(
        RoleName=role,
        PolicyName=policy,
        PolicyDocument=json.dumps(
            {
                "Statement": {
                    "Resource": [arns["secret"]],
                    "Action": "secretsmanager:GetSecretValue",
                    "Effect": "Allow",
                },
                "Version": "2012-10-17",
            }
        ),
    )

    same = _mutations_of(
        lab, lambda: iam.ensure_execution_secret_policy(lab, secret_arn=arns["secret"])
    )
    other = _mutations_of(
        lab, lambda: iam.ensure_execution_secret_policy(lab, secret_arn=arns["other_secret"])
    )
    again = _mutations_of(
        lab, lambda: iam.ensure_execution_secret_policy(lab, secret_arn=arns["other_secret"])
    )

    assert same == []
    assert other == ["PutRolePolicy"]
    assert again == []


def test_bad_arns_are_refused_before_any_call(lab, arns) -> None:
    before = len(lab.log.calls)
    with pytest.raises(ConfigurationError, match="secret_arn"):
        iam.ensure_execution_secret_policy(lab, secret_arn="my-project-dev-db-credentials")
    with pytest.raises(ConfigurationError, match="log_group_arn"):
        iam.ensure_task_role(lab, log_group_arn="/ecs/my-project-dev", secret_arn=arns["secret"])

    assert lab.log.calls[before:] == []


def test_show_roles(lab, arns) -> None:
    assert iam.show_roles(lab).empty
    iam.ensure_execution_role(lab)
    iam.ensure_task_role(lab, log_group_arn=arns["log_group"], secret_arn=arns["secret"])
    iam.ensure_execution_secret_policy(lab, secret_arn=arns["secret"])

    table = iam.show_roles(lab)

    assert list(table.columns) == ["role", "arn", "attached policies", "inline policies"]
    rows = table.set_index("role").to_dict("index")
    assert rows[f"{lab.prefix}-ecs-execution-role"]["attached policies"] == (
        "AmazonECSTaskExecutionRolePolicy"
    )
    assert rows[f"{lab.prefix}-ecs-execution-role"]["inline policies"] == (
        f"{lab.prefix}-ecs-execution-policy"
    )
    assert rows[f"{lab.prefix}-ecs-task-role"]["attached policies"] == ""
    assert rows[f"{lab.prefix}-ecs-task-role"]["inline policies"] == f"{lab.prefix}-ecs-task-policy"


def test_delete_roles_removes_policies_and_roles_and_is_idempotent(lab, arns) -> None:
    iam.ensure_execution_role(lab)
    iam.ensure_execution_secret_policy(lab, secret_arn=arns["secret"])
    iam.ensure_task_role(lab, log_group_arn=arns["log_group"], secret_arn=arns["secret"])

    iam.delete_roles(lab)

    names = {r["RoleName"] for r in lab.client("iam").list_roles()["Roles"]}
    assert f"{lab.prefix}-ecs-execution-role" not in names
    assert f"{lab.prefix}-ecs-task-role" not in names
    assert _mutations_of(lab, lambda: iam.delete_roles(lab)) == []
