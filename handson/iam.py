"""IAM roles of the ECS tasks: the execution role (chapter 4, its secret policy in chapter 7)
and the task role (chapter 4).

ECS uses the *execution role* itself, before the app starts: to pull the image from ECR,
to create the log stream and to read the secrets the task definition injects. The *task
role* is the identity of the app's own AWS calls inside the container.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
from botocore.exceptions import ClientError

from handson.aws_errors import step
from handson.connection import Lab
from handson.exceptions import ConfigurationError, NotFoundError
from handson.i18n import _

__all__ = [
    "EXECUTION_MANAGED_POLICY_ARN",
    "delete_flow_logs_role",
    "delete_roles",
    "ensure_execution_role",
    "ensure_flow_logs_role",
    "ensure_execution_secret_policy",
    "ensure_task_role",
    "flow_logs_policy",
    "show_roles",
]

EXECUTION_MANAGED_POLICY_ARN = (
    "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
)
# Both roles are assumed by ECS tasks: the same trust policy for each.
TRUST_POLICY: dict[str, Any] = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "ecs-tasks.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}
# Policy fields where AWS takes a single value or a list of values alike.
_LIST_OR_SINGLE = {"Statement", "Action", "NotAction", "Resource", "NotResource"}


def _execution_role_name(lab: Lab) -> str:
    return lab.name("ecs-execution-role")


def _task_role_name(lab: Lab) -> str:
    return lab.name("ecs-task-role")


def _check_arn(value: str, *, label: str, marker: str, example: str) -> None:
    if not (isinstance(value, str) and value.startswith("arn:") and marker in value):
        raise ConfigurationError(
            _("{label}={value!r} is not an ARN like {example!r}.").format(
                label=label, value=value, example=example
            )
        )


def _get_role(lab: Lab, name: str) -> dict[str, Any] | None:
    try:
        return lab.client("iam").get_role(RoleName=name)["Role"]
    except ClientError as error:
        if error.response["Error"]["Code"] == "NoSuchEntity":
            return None
        raise


def _trust(service: str) -> dict[str, Any]:
    """A trust policy letting the AWS service ``service`` assume the role."""
    statement = {**TRUST_POLICY["Statement"][0], "Principal": {"Service": service}}
    return {**TRUST_POLICY, "Statement": [statement]}


def _ensure_role(
    lab: Lab, name: str, description: str, *, service: str = "ecs-tasks.amazonaws.com"
) -> str:
    role = _get_role(lab, name)
    if role is None:
        role = lab.client("iam").create_role(
            RoleName=name,
            AssumeRolePolicyDocument=json.dumps(_trust(service)),
            Description=description,
            Tags=lab.tag_list(name),
        )["Role"]
    return str(role["Arn"])


def _canonical(value: Any) -> Any:
    """A policy document in one form: "x" and ["x"] alike, lists in a fixed order."""
    if isinstance(value, dict):
        return {
            key: _canonical(
                item if isinstance(item, list) or key not in _LIST_OR_SINGLE else [item]
            )
            for key, item in value.items()
        }
    if isinstance(value, list):
        return sorted(
            (_canonical(item) for item in value), key=lambda v: json.dumps(v, sort_keys=True)
        )
    return value


def _put_inline_policy(lab: Lab, role: str, name: str, document: dict[str, Any]) -> None:
    """Put the role's inline policy only when it is missing or says something else."""
    iam = lab.client("iam")
    try:
        current = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
    except ClientError as error:
        if error.response["Error"]["Code"] != "NoSuchEntity":
            raise
        current = None
    # boto3 hands the document back as a dict (it URL-decodes and parses it).
    if current is not None and _canonical(current) == _canonical(document):
        return
    iam.put_role_policy(RoleName=role, PolicyName=name, PolicyDocument=json.dumps(document))


@step("Create the ECS task execution role")
def ensure_execution_role(lab: Lab) -> str:
    """The role ECS itself uses to start a task: pull the image, write logs, read secrets.

    Calls GetRole, then CreateRole (trusting ecs-tasks.amazonaws.com) when missing, and
    AttachRolePolicy (AmazonECSTaskExecutionRolePolicy) when not attached yet. Idempotent.
    Chapter 4. Returns the role's ARN.
    """
    name = _execution_role_name(lab)
    arn = _ensure_role(lab, name, "ECS task execution role: image pull, logs, secrets")
    attached = lab.client("iam").list_attached_role_policies(RoleName=name)["AttachedPolicies"]
    if EXECUTION_MANAGED_POLICY_ARN not in {p["PolicyArn"] for p in attached}:
        lab.client("iam").attach_role_policy(RoleName=name, PolicyArn=EXECUTION_MANAGED_POLICY_ARN)
    return arn


@step("Create the ECS task role")
def ensure_task_role(lab: Lab, *, log_group_arn: str, secret_arn: str) -> str:
    """The role the app's own code runs as inside the container, with an inline policy
    letting it write to its log group and read the DB secret.

    Calls GetRole, CreateRole when missing, GetRolePolicy, and PutRolePolicy only when the
    inline policy is missing or different. Idempotent. Chapter 4. Returns the role's ARN.
    """
    _check_arn(
        log_group_arn,
        label="log_group_arn",
        marker=":log-group:",
        example="arn:aws:logs:ap-northeast-1:123456789012:log-group:/ecs/my-project-dev",
    )
    _check_arn(
        secret_arn,
        label="secret_arn",
        marker=":secret:",
        example="arn:aws:secretsmanager:ap-northeast-1:123456789012:secret:name-AbCdEf",
    )
    name = _task_role_name(lab)
    arn = _ensure_role(lab, name, "ECS task role: the app's own AWS permissions")
    # DescribeLogGroups gives the ARN with ":*" at the end, CloudFormation and Terraform
    # without: the log streams are "<group arn>:log-stream:<name>", matched by "<group>:*".
    streams = log_group_arn.removesuffix(":*") + ":*"
    document = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": streams,
            },
            {
                "Effect": "Allow",
                "Action": ["secretsmanager:GetSecretValue"],
                "Resource": secret_arn,
            },
        ],
    }
    _put_inline_policy(lab, name, lab.name("ecs-task-policy"), document)
    return arn


@step("Let the execution role read the DB secret")
def ensure_execution_secret_policy(lab: Lab, *, secret_arn: str) -> str:
    """Allow ECS to read the DB secret when it starts a task, so it can inject the
    password into the container (secretsmanager:GetSecretValue on that secret only).

    Calls GetRolePolicy, and PutRolePolicy only when the inline policy is missing or says
    something else (compared as parsed JSON, in any order). Idempotent. Chapter 7.
    Returns the inline policy's name.
    """
    _check_arn(
        secret_arn,
        label="secret_arn",
        marker=":secret:",
        example="arn:aws:secretsmanager:ap-northeast-1:123456789012:secret:name-AbCdEf",
    )
    policy = execution_secret_policy(lab, secret_arn=secret_arn)
    _put_inline_policy(lab, policy["RoleName"], policy["PolicyName"], policy["PolicyDocument"])
    return str(policy["PolicyName"])


def execution_secret_policy(lab: Lab, *, secret_arn: str) -> dict[str, Any]:
    """The PutRolePolicy parameters of the execution role's secret policy (no AWS call):
    secretsmanager:GetSecretValue on the DB secret only."""
    return {
        "RoleName": _execution_role_name(lab),
        "PolicyName": lab.name("ecs-execution-policy"),
        "PolicyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": ["secretsmanager:GetSecretValue"],
                    "Resource": secret_arn,
                }
            ],
        },
    }


def get_role_arn(lab: Lab, suffix: str) -> str:
    """The ARN of the student's role ``<prefix>-<suffix>`` (look-up only).

    Raises NotFoundError with "run notebook 00 first" when the role is missing.
    """
    name = lab.name(suffix)
    role = _get_role(lab, name)
    if role is None:
        raise NotFoundError(
            _("The IAM role {name} doesn't exist.").format(name=name),
            code="NoSuchEntity",
            operation="GetRole",
            hint=_("Run notebook 00 (chapters 1-6) first."),
        )
    return str(role["Arn"])


@step("Show the ECS roles")
def show_roles(lab: Lab) -> pd.DataFrame:
    """The execution and task roles that exist, with their attached and inline policies.

    Calls GetRole, ListAttachedRolePolicies and ListRolePolicies (read only). Chapters 4, 7.
    """
    iam = lab.client("iam")
    rows = []
    for name in (_execution_role_name(lab), _task_role_name(lab)):
        role = _get_role(lab, name)
        if role is None:
            continue
        attached = iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]
        inline = iam.list_role_policies(RoleName=name)["PolicyNames"]
        rows.append(
            {
                "role": name,
                "arn": role["Arn"],
                "attached policies": ", ".join(sorted(p["PolicyName"] for p in attached)),
                "inline policies": ", ".join(sorted(inline)),
            }
        )
    return pd.DataFrame(rows, columns=["role", "arn", "attached policies", "inline policies"])


@step("Delete the ECS roles")
def delete_roles(lab: Lab) -> None:
    """Delete the task and execution roles; IAM refuses to delete a role that still has
    policies, so they are detached and deleted first.

    Calls GetRole, ListAttachedRolePolicies, DetachRolePolicy, ListRolePolicies,
    DeleteRolePolicy and DeleteRole. Idempotent (a missing role is skipped). Teardown.
    """
    for name in (_task_role_name(lab), _execution_role_name(lab)):
        _delete_role(lab, name)


def _delete_role(lab: Lab, name: str) -> None:
    iam = lab.client("iam")
    if _get_role(lab, name) is None:
        return
    for policy in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
        iam.detach_role_policy(RoleName=name, PolicyArn=policy["PolicyArn"])
    for policy_name in iam.list_role_policies(RoleName=name)["PolicyNames"]:
        iam.delete_role_policy(RoleName=name, PolicyName=policy_name)
    iam.delete_role(RoleName=name)


# ------------------------------------------------------------------ chapter 8


def _flow_logs_role_name(lab: Lab) -> str:
    return lab.name("vpc-flow-logs-role")


def flow_logs_policy(log_group_arn: str) -> dict[str, Any]:
    """What VPC Flow Logs needs to write to its log group (no AWS call)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": [
                    "logs:CreateLogStream",
                    "logs:PutLogEvents",
                    "logs:DescribeLogGroups",
                    "logs:DescribeLogStreams",
                ],
                "Resource": [log_group_arn, f"{log_group_arn}:*"],
            }
        ],
    }


@step("Create the VPC Flow Logs role")
def ensure_flow_logs_role(lab: Lab, *, log_group_arn: str) -> str:
    """The role VPC Flow Logs assumes to write its records to CloudWatch Logs, with an
    inline policy for that one log group.

    Calls GetRole, CreateRole (trusting vpc-flow-logs.amazonaws.com) when missing,
    GetRolePolicy, and PutRolePolicy only when the policy is missing or different.
    Idempotent. Chapter 8. Returns the role's ARN.
    """
    _check_arn(
        log_group_arn,
        label="log_group_arn",
        marker=":log-group:",
        example="arn:aws:logs:ap-northeast-1:123456789012:log-group:/aws/vpc/my-project-dev",
    )
    name = _flow_logs_role_name(lab)
    arn = _ensure_role(
        lab, name, "VPC Flow Logs: write to its log group", service="vpc-flow-logs.amazonaws.com"
    )
    _put_inline_policy(lab, name, "write-flow-logs", flow_logs_policy(log_group_arn))
    return arn


@step("Delete the VPC Flow Logs role")
def delete_flow_logs_role(lab: Lab) -> None:
    """Delete the flow logs role and its policy. Calls GetRole, ListAttachedRolePolicies,
    ListRolePolicies, DeleteRolePolicy and DeleteRole. Idempotent. Teardown of chapter 8."""
    _delete_role(lab, _flow_logs_role_name(lab))


def leftovers(lab: Lab) -> list[tuple[str, str, str]]:
    """What of this module is still tagged for the student: the IAM roles, as
    (service, kind, id) rows for teardown.leftovers."""
    client = lab.client("iam")
    found: list[tuple[str, str, str]] = []
    for role in client.list_roles()["Roles"]:
        if not role["RoleName"].startswith(lab.prefix):
            continue
        tags = client.list_role_tags(RoleName=role["RoleName"])["Tags"]
        if lab.owns(tags):
            found.append(("iam", "role", role["RoleName"]))
    return found
