"""handson.terraform: the rendered HCL parses with a maintained HCL2 parser (python-hcl2),
and every value in it is the value the library sent and the value AWS describes, for the
chapter's defaults and for changed settings."""

from __future__ import annotations

import json
import re
from typing import Any

import hcl2
import pytest

from handson import chapters, ecs, iam, terraform
from handson.connection import connect

SETTINGS = {
    "defaults": {"app_count": 2, "task_cpu": 256, "task_memory": 512},
    "changed": {"app_count": 3, "task_cpu": 512, "task_memory": 1024},
}
VAR = re.compile(r"\$\{var\.(\w+)\}")


@pytest.fixture(scope="module", params=list(SETTINGS))
def built(request, sandbox_server) -> dict[str, Any]:
    """Chapter 7 deployed with the settings, and its Terraform parsed."""
    settings = SETTINGS[request.param]
    lab = connect("sandbox", student=f"tf-{request.param}")
    pre = chapters.build_prerequisites(lab)
    chapters.deploy_chapter7(lab, pre, **settings)
    text = terraform.chapter7(lab, pre, **settings)
    return {"lab": lab, "pre": pre, "settings": settings, "text": text, "hcl": parse(text)}


def parse(text: str) -> dict[str, Any]:
    """Variables (their defaults), resources and outputs, with every ``var.`` reference
    resolved, quotes dropped and ``jsonencode(...)`` parsed again."""
    raw = hcl2.loads(text)
    variables = {
        unquote(name): plain(body["default"], {})
        for block in raw["variable"]
        for name, body in block.items()
    }
    resources = {}
    for block in raw["resource"]:
        for kind, named in block.items():
            for name, body in named.items():
                resources[f"{unquote(kind)}.{unquote(name)}"] = plain(body, variables)
    outputs = {
        unquote(name): plain(body, variables)["value"]
        for block in raw["output"]
        for name, body in block.items()
    }
    provider = plain(raw["provider"][0], variables)
    return {
        "variables": variables,
        "resources": resources,
        "outputs": outputs,
        "provider": provider,
    }


def unquote(text: str) -> str:
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] == '"' else text


def plain(value: Any, variables: dict[str, Any]) -> Any:
    if isinstance(value, dict):
        return {unquote(k): plain(v, variables) for k, v in value.items() if k != "__is_block__"}
    if isinstance(value, list):
        return [plain(v, variables) for v in value]
    if not isinstance(value, str):
        return value
    if value.startswith("${jsonencode(") and value.endswith(")}"):
        return plain(hcl2.loads("v = " + value[len("${jsonencode(") : -2])["v"], variables)
    whole = re.fullmatch(r"\$\{var\.(\w+)\}", value)
    if whole:
        return variables[whole.group(1)]
    if value.startswith("${") and value.endswith("}"):
        return ("ref", value[2:-1])  # a reference to another resource
    return VAR.sub(lambda m: str(variables[m.group(1)]), unquote(value))


def test_variables_are_the_settings_used(built) -> None:
    lab, settings = built["lab"], built["settings"]
    assert built["hcl"]["variables"] == {
        "project_name": lab.project_name,
        "environment": lab.environment,
        **settings,
    }
    provider = built["hcl"]["provider"]["aws"]
    assert provider["region"] == lab.region
    assert provider["default_tags"][0]["tags"] == lab.tags


def test_task_definition_is_the_spec_and_what_ecs_describes(built) -> None:
    lab, pre, settings = built["lab"], built["pre"], built["settings"]
    spec = chapters.task_definition_spec(
        lab, pre, task_cpu=settings["task_cpu"], task_memory=settings["task_memory"]
    )
    rendered = built["hcl"]["resources"]["aws_ecs_task_definition.app"]
    assert {
        "family": rendered["family"],
        "networkMode": rendered["network_mode"],
        "requiresCompatibilities": rendered["requires_compatibilities"],
        "cpu": str(rendered["cpu"]),
        "memory": str(rendered["memory"]),
        "executionRoleArn": rendered["execution_role_arn"],
        "taskRoleArn": rendered["task_role_arn"],
        "containerDefinitions": rendered["container_definitions"],
    } == spec
    assert rendered["tags"] == {"Name": lab.name("app-task")}

    described = lab.client("ecs").describe_task_definition(
        taskDefinition=spec["family"], include=["TAGS"]
    )
    definition = described["taskDefinition"]
    for key in ("family", "networkMode", "requiresCompatibilities", "cpu", "memory"):
        assert definition[key] == spec[key], key
    (container,) = definition["containerDefinitions"]
    for key, value in rendered["container_definitions"][0].items():
        assert container[key] == value, key
    tags = {t["key"]: t["value"] for t in described["tags"]}
    assert tags == {**lab.tags, **rendered["tags"]}


def test_service_is_the_spec_and_what_ecs_describes(built) -> None:
    lab, pre, settings = built["lab"], built["pre"], built["settings"]
    rendered = built["hcl"]["resources"]["aws_ecs_service.app"]
    spec = ecs.service_spec(
        lab,
        task_definition_arn="",
        private_subnet_ids=list(pre.network.private_subnet_ids),
        security_group_id=pre.network.ecs_security_group_id,
        target_group_arn=pre.alb.target_group_arn,
        app_count=settings["app_count"],
    )
    (network,) = rendered["network_configuration"]
    (breaker,) = rendered["deployment_circuit_breaker"]
    balancers = [
        {
            "targetGroupArn": b["target_group_arn"],
            "containerName": b["container_name"],
            "containerPort": b["container_port"],
        }
        for b in rendered["load_balancer"]
    ]
    as_spec = {
        "cluster": rendered["cluster"],
        "serviceName": rendered["name"],
        "taskDefinition": "",
        "desiredCount": rendered["desired_count"],
        "launchType": rendered["launch_type"],
        "networkConfiguration": {
            "awsvpcConfiguration": {
                "subnets": network["subnets"],
                "securityGroups": network["security_groups"],
                "assignPublicIp": "ENABLED" if network["assign_public_ip"] else "DISABLED",
            }
        },
        "loadBalancers": balancers,
        "deploymentConfiguration": {
            "maximumPercent": rendered["deployment_maximum_percent"],
            "minimumHealthyPercent": rendered["deployment_minimum_healthy_percent"],
            "deploymentCircuitBreaker": breaker,
        },
    }
    assert as_spec == spec
    assert rendered["task_definition"] == ("ref", "aws_ecs_task_definition.app.arn")
    assert rendered["lifecycle"] == [{"ignore_changes": ["task_definition"]}]

    service = ecs.describe_service(lab)
    assert service["serviceName"] == rendered["name"]
    assert service["clusterArn"].endswith(f":cluster/{rendered['cluster']}")
    assert service["desiredCount"] == settings["app_count"]
    assert service["launchType"] == rendered["launch_type"]
    assert service["loadBalancers"] == balancers
    awsvpc = service["networkConfiguration"]["awsvpcConfiguration"]
    assert sorted(awsvpc["subnets"]) == sorted(network["subnets"])
    assert awsvpc["securityGroups"] == network["security_groups"]
    assert awsvpc["assignPublicIp"] == "DISABLED"
    deployment = service["deploymentConfiguration"]
    assert deployment["maximumPercent"] == rendered["deployment_maximum_percent"]
    assert deployment["minimumHealthyPercent"] == rendered["deployment_minimum_healthy_percent"]
    assert deployment["deploymentCircuitBreaker"] == breaker


def test_execution_secret_policy_is_what_iam_holds(built) -> None:
    lab, pre = built["lab"], built["pre"]
    rendered = built["hcl"]["resources"]["aws_iam_role_policy.ecs_task_execution_secrets"]
    spec = iam.execution_secret_policy(lab, secret_arn=pre.database.secret_arn)
    assert rendered == {
        "name": spec["PolicyName"],
        "role": spec["RoleName"],
        "policy": spec["PolicyDocument"],
    }
    held = lab.client("iam").get_role_policy(
        RoleName=rendered["role"], PolicyName=rendered["name"]
    )["PolicyDocument"]
    assert (json.loads(held) if isinstance(held, str) else held) == rendered["policy"]


def test_outputs_are_the_ones_the_article_reads(built) -> None:
    assert built["hcl"]["outputs"] == {
        "ecs_service_name": ("ref", "aws_ecs_service.app.name"),
        "ecs_task_definition_arn": ("ref", "aws_ecs_task_definition.app.arn"),
        "ecs_task_definition_family": ("ref", "aws_ecs_task_definition.app.family"),
    }


def test_strings_that_look_like_interpolation_stay_literal() -> None:
    assert terraform.hcl_value("cost: ${5}") == '"cost: $${5}"'
    assert hcl2.loads(f"v = {terraform.hcl_value('cost: ${5}')}")["v"] == '"cost: $${5}"'
    assert terraform.hcl_value("%{ if x }") == '"%%{ if x }"'
