"""The chapter's resources as the series writes them: Terraform (HCL) rendered from the
very specs the library sends to AWS, so a learner of the series can map each kit call back
to their ``.tf`` files.

Nothing here calls AWS. Each function builds the parameters of one API call with the
library's own spec functions (the RegisterTaskDefinition, CreateService and PutRolePolicy
parameters it sends) and returns the HCL block that makes the same resource;
:func:`chapter7` puts the chapter together with its variables, provider and outputs.
Names that start with the series' prefix are written as
``${var.project_name}-${var.environment}-...``; IDs and ARNs of what chapters 1-6 made are
written as values (the series reads them from those chapters' resources).
"""

from __future__ import annotations

import json
import re
from typing import Any

from handson import chapters, ecs, iam
from handson.chapters import Prerequisites
from handson.connection import Lab

__all__ = [
    "chapter7",
    "execution_secret_policy",
    "hcl_value",
    "provider_and_variables",
    "service",
    "task_definition",
]

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
PREFIX_REF = "${var.project_name}-${var.environment}"


class Expression(str):
    """HCL written as is (a reference such as ``var.app_count``), not as a string."""


def hcl_value(value: Any, indent: int = 0) -> str:
    """``value`` in HCL syntax: strings quoted, lists and objects over several lines."""
    pad, inner = "  " * indent, "  " * (indent + 1)
    if isinstance(value, Expression):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, list):
        if not value:
            return "[]"
        if all(not isinstance(v, dict | list) for v in value):
            return "[" + ", ".join(hcl_value(v) for v in value) + "]"
        items = [f"{inner}{hcl_value(v, indent + 1)}," for v in value]
        return "[\n" + "\n".join(items) + f"\n{pad}]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        width = max(len(_key(k)) for k in value)
        lines = [
            f"{inner}{_key(k):<{width}} = {hcl_value(v, indent + 1)}" for k, v in value.items()
        ]
        return "{\n" + "\n".join(lines) + f"\n{pad}}}"
    raise TypeError(f"no HCL for {type(value).__name__}")


def _string(text: str) -> str:
    """``text`` as an HCL string literal: ``${`` and ``%{`` would start a template there,
    ``$${`` and ``%%{`` are the literal characters."""
    return json.dumps(text).replace("${", "$${").replace("%{", "%%{")


def _key(key: str) -> str:
    return key if IDENTIFIER.match(key) else json.dumps(key)


class _Nested:
    """A block inside a block (``default_tags { ... }``), not an attribute."""

    def __init__(self, body: list[tuple[str, Any]]) -> None:
        self.body = body


def _block(header: str, body: list[tuple[str, Any]], indent: int = 0) -> str:
    """A block: ``header { name = value ... }``; a value that is a ``_Nested`` is a block
    inside it."""
    pad, inner = "  " * indent, "  " * (indent + 1)
    attributes = [(k, v) for k, v in body if not isinstance(v, _Nested)]
    width = max((len(k) for k, _ in attributes), default=0)
    lines = []
    for key, value in body:
        if isinstance(value, _Nested):
            lines.append(_block(key, value.body, indent + 1))
        else:
            lines.append(f"{inner}{key:<{width}} = {hcl_value(value, indent + 1)}")
    return f"{pad}{header} {{\n" + "\n".join(lines) + f"\n{pad}}}"


def _named(lab: Lab, value: Any) -> Any:
    """Names with the series' prefix written with its variables (not ARNs or image URIs)."""
    if isinstance(value, str) and not value.startswith("arn:") and ".dkr.ecr." not in value:
        if lab.prefix not in value:
            return value
        literals = (_string(part)[1:-1] for part in value.split(lab.prefix))
        return Expression('"' + PREFIX_REF.join(literals) + '"')
    if isinstance(value, list):
        return [_named(lab, v) for v in value]
    if isinstance(value, dict):
        return {k: _named(lab, v) for k, v in value.items()}
    return value


def provider_and_variables(
    lab: Lab, *, app_count: int = 2, task_cpu: int | str = 256, task_memory: int | str = 512
) -> str:
    """The chapter's variables (with the values this lab uses as defaults) and the AWS
    provider, whose default tags are the kit's tags on every resource."""
    variables = [
        ("project_name", "string", lab.project_name),
        ("environment", "string", lab.environment),
        ("app_count", "number", int(app_count)),
        ("task_cpu", "number", int(task_cpu)),
        ("task_memory", "number", int(task_memory)),
    ]
    blocks = [
        _block(f'variable "{name}"', [("type", Expression(kind)), ("default", default)])
        for name, kind, default in variables
    ]
    tags = {**lab.tags, "Project": Expression("var.project_name")}
    tags["Environment"] = Expression("var.environment")
    provider = _block(
        'provider "aws"',
        [("region", lab.region), ("default_tags", _Nested([("tags", tags)]))],
    )
    return "\n\n".join([*blocks, provider])


def execution_secret_policy(lab: Lab, *, secret_arn: str) -> str:
    """``aws_iam_role_policy``: the execution role's secret policy, from the PutRolePolicy
    parameters ``handson.iam.ensure_execution_secret_policy`` sends."""
    policy = iam.execution_secret_policy(lab, secret_arn=secret_arn)
    body = [
        ("name", _named(lab, policy["PolicyName"])),
        ("role", _named(lab, policy["RoleName"])),
        ("policy", Expression(f"jsonencode({hcl_value(policy['PolicyDocument'], 1)})")),
    ]
    return _block('resource "aws_iam_role_policy" "ecs_task_execution_secrets"', body)


def task_definition(lab: Lab, spec: dict[str, Any]) -> str:
    """``aws_ecs_task_definition``: the RegisterTaskDefinition parameters ``spec``."""
    containers = _named(lab, spec["containerDefinitions"])
    body = [
        ("family", _named(lab, spec["family"])),
        ("network_mode", spec["networkMode"]),
        ("requires_compatibilities", spec["requiresCompatibilities"]),
        ("cpu", Expression("var.task_cpu")),  # the spec's cpu and memory: the defaults
        ("memory", Expression("var.task_memory")),
        ("execution_role_arn", spec["executionRoleArn"]),
        ("task_role_arn", spec["taskRoleArn"]),
        ("container_definitions", Expression(f"jsonencode({hcl_value(containers, 1)})")),
        ("tags", {"Name": _named(lab, lab.name("app-task"))}),
    ]
    return _block('resource "aws_ecs_task_definition" "app"', body)


def service(lab: Lab, pre: Prerequisites, *, app_count: int = 2) -> str:
    """``aws_ecs_service``: the CreateService parameters ``handson.ecs.ensure_service``
    sends for chapters 1-6's network and target group, with the chapter's
    ``ignore_changes = [task_definition]`` (a new image is rolled out by
    ``update-service --force-new-deployment``, not by Terraform)."""
    spec = ecs.service_spec(
        lab,
        task_definition_arn="",  # Terraform refers to the task definition resource
        private_subnet_ids=list(pre.network.private_subnet_ids),
        security_group_id=pre.network.ecs_security_group_id,
        target_group_arn=pre.alb.target_group_arn,
        app_count=app_count,
    )
    network = spec["networkConfiguration"]["awsvpcConfiguration"]
    deployment = spec["deploymentConfiguration"]
    body: list[tuple[str, Any]] = [
        ("name", _named(lab, spec["serviceName"])),
        ("cluster", _named(lab, spec["cluster"])),
        ("task_definition", Expression("aws_ecs_task_definition.app.arn")),
        ("desired_count", Expression("var.app_count")),
        ("launch_type", spec["launchType"]),
        ("deployment_maximum_percent", deployment["maximumPercent"]),
        ("deployment_minimum_healthy_percent", deployment["minimumHealthyPercent"]),
        (
            "deployment_circuit_breaker",
            _Nested(
                [
                    ("enable", deployment["deploymentCircuitBreaker"]["enable"]),
                    ("rollback", deployment["deploymentCircuitBreaker"]["rollback"]),
                ]
            ),
        ),
        (
            "network_configuration",
            _Nested(
                [
                    ("subnets", network["subnets"]),
                    ("security_groups", network["securityGroups"]),
                    ("assign_public_ip", network["assignPublicIp"] == "ENABLED"),
                ]
            ),
        ),
    ]
    for balancer in spec["loadBalancers"]:
        body.append(
            (
                "load_balancer",
                _Nested(
                    [
                        ("target_group_arn", balancer["targetGroupArn"]),
                        ("container_name", _named(lab, balancer["containerName"])),
                        ("container_port", balancer["containerPort"]),
                    ]
                ),
            )
        )
    body.append(("tags", {"Name": _named(lab, spec["serviceName"])}))
    body.append(("lifecycle", _Nested([("ignore_changes", [Expression("task_definition")])])))
    return _block('resource "aws_ecs_service" "app"', body)


OUTPUTS = (
    ("ecs_service_name", "aws_ecs_service.app.name"),
    ("ecs_task_definition_arn", "aws_ecs_task_definition.app.arn"),
    ("ecs_task_definition_family", "aws_ecs_task_definition.app.family"),
)


def chapter7(
    lab: Lab,
    pre: Prerequisites,
    *,
    app_count: int = 2,
    task_cpu: str | int = 256,
    task_memory: str | int = 512,
) -> str:
    """The whole chapter as one Terraform file: variables and provider, the execution
    role's secret policy, the task definition, the service and the outputs the article
    reads, from the same specs the library's chapter 7 sends (no AWS call)."""
    spec = chapters.task_definition_spec(lab, pre, task_cpu=task_cpu, task_memory=task_memory)
    parts = [
        provider_and_variables(
            lab, app_count=app_count, task_cpu=spec["cpu"], task_memory=spec["memory"]
        ),
        execution_secret_policy(lab, secret_arn=pre.database.secret_arn),
        task_definition(lab, spec),
        service(lab, pre, app_count=app_count),
        *(_block(f'output "{name}"', [("value", Expression(ref))]) for name, ref in OUTPUTS),
    ]
    return "\n\n".join(parts) + "\n"
