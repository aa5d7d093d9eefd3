"""Checks of exercises 1 and 2: the task definition the learner wrote, and its size.

The learner's task definition is the latest ACTIVE revision of the family ``P-E-app``: a
revision that was only tried (exercise 5's broken one) is deregistered after the try.
"""

from __future__ import annotations

import json
from typing import Any

from handson import chapters, fargate, pricing
from handson.checks.base import Criteria, register
from handson.connection import Lab
from handson.exceptions import FargateSizeError, NotFoundError

SECRET_KEYS = {
    "DB_HOST": "host",
    "DB_PORT": "port",
    "DB_NAME": "dbname",
    "DB_USER": "username",
    "DB_PASSWORD": "password",
}
# Exercise 2's brief: the API caches its users in memory and needs at least half a vCPU
# and 1 GiB; the answer is the cheapest Fargate size that gives both.
NEEDED_CPU, NEEDED_MEMORY = 512, 1024


def learner_task_definition(lab: Lab) -> dict[str, Any]:
    """The latest ACTIVE revision of the family ``P-E-app``: the learner's newest.

    Calls ListTaskDefinitions and DescribeTaskDefinition. Read-only. NotFoundError when
    nothing is registered yet.
    """
    client = lab.client("ecs")
    arns = client.list_task_definitions(
        familyPrefix=lab.name("app"), status="ACTIVE", sort="DESC", maxResults=1
    )["taskDefinitionArns"]
    if not arns:
        raise NotFoundError(
            f"No task definition of the family {lab.name('app')} is registered.",
            code="ClientException",
            operation="ListTaskDefinitions",
            hint="Register your task definition: handson.ecs.ensure_task_definition(lab, spec).",
        )
    return dict(client.describe_task_definition(taskDefinition=arns[0])["taskDefinition"])


def _revision(definition: dict[str, Any]) -> str:
    return f"{definition['family']}:{definition['revision']}"


@register("07-task-definition", "Write the task definition")
def check_task_definition(lab: Lab, c: Criteria) -> None:
    """Exercise 1: every setting of chapter 7's task definition."""
    pre = chapters.get_prerequisites(lab)
    td = learner_task_definition(lab)
    c.expect("a task definition is registered", True, _revision(td))
    c.equal("family", td["family"], lab.name("app"), f"Use family={lab.name('app')!r} (P-E-app).")
    c.equal(
        "network mode",
        td.get("networkMode"),
        "awsvpc",
        "Fargate tasks need networkMode='awsvpc': each task gets its own network interface.",
    )
    c.expect(
        "runs on Fargate",
        "FARGATE" in td.get("requiresCompatibilities", []),
        td.get("requiresCompatibilities", []),
        "Set requiresCompatibilities=['FARGATE'].",
    )
    _size_is_valid(c, td)
    c.equal(
        "execution role",
        td.get("executionRoleArn"),
        pre.execution_role_arn,
        f"executionRoleArn is the role ECS uses to pull the image and read the secret: "
        f"{pre.execution_role_arn}",
    )
    c.equal(
        "task role",
        td.get("taskRoleArn"),
        pre.task_role_arn,
        f"taskRoleArn is the role the app itself runs with: {pre.task_role_arn}",
    )
    containers = td.get("containerDefinitions", [])
    if not c.expect(
        "one container, named P-E-app",
        [x["name"] for x in containers] == [lab.name("app")],
        [x["name"] for x in containers],
        f"Define one container named {lab.name('app')!r}: the service's load balancer "
        "setting refers to it by name.",
    ):
        return
    container = containers[0]
    c.equal(
        "image",
        container.get("image"),
        f"{pre.repository.uri}:latest",
        f"image is the repository URL and tag: {pre.repository.uri}:latest",
    )
    mappings = container.get("portMappings", [])
    ports = [(p.get("containerPort"), p.get("protocol", "tcp")) for p in mappings]
    c.equal(
        "port mapping",
        [f"{port}/{proto}" for port, proto in ports],
        ["3000/tcp"],
        "portMappings=[{'containerPort': 3000, 'protocol': 'tcp'}]: the app listens on 3000 "
        "(docker-compose's ports).",
    )
    environment = {e["name"]: e.get("value", "") for e in container.get("environment", [])}
    c.expect(
        "environment APP_ENV and PORT",
        environment.get("APP_ENV") == "production" and environment.get("PORT") == "3000",
        [f"{k}={v}" for k, v in environment.items() if "PASS" not in k.upper()],
        "environment=[{'name': 'APP_ENV', 'value': 'production'}, {'name': 'PORT', 'value': "
        "'3000'}] (the article's NODE_ENV is APP_ENV for the kit's Python app).",
    )
    _secrets(c, container, pre.database.secret_arn)
    _no_plain_password(lab, c, environment, pre.database.secret_arn)
    _awslogs(lab, c, container, pre.log_group)


def _size_is_valid(c: Criteria, td: dict[str, Any]) -> None:
    cpu, memory = td.get("cpu"), td.get("memory")
    try:
        fargate.check_task_size(cpu or "", memory or "")
    except FargateSizeError as error:
        c.expect("a Fargate task size", False, f"cpu {cpu} / memory {memory}", str(error))
    else:
        c.expect("a Fargate task size", True, f"cpu {cpu} / memory {memory}")


def _secrets(c: Criteria, container: dict[str, Any], secret_arn: str) -> None:
    found = {s["name"]: s.get("valueFrom", "") for s in container.get("secrets", [])}
    for name, key in SECRET_KEYS.items():
        expected = f"{secret_arn}:{key}::"
        value = found.get(name)
        if value is None:
            hint = f"Add {{'name': {name!r}, 'valueFrom': '<secret ARN>:{key}::'}} to secrets."
        else:
            hint = (
                f"valueFrom must be `<secret ARN>:<json key>::`, e.g. {expected} (the two "
                "trailing colons keep the version stage and id empty: AWSCURRENT)."
            )
        c.equal(f"secret {name}", value, expected, hint)


def _no_plain_password(lab: Lab, c: Criteria, environment: dict[str, str], secret_arn: str) -> None:
    stored = lab.client("secretsmanager").get_secret_value(SecretId=secret_arn)["SecretString"]
    password = json.loads(stored).get("password")
    named = [k for k in environment if "PASS" in k.upper()]
    leaked = [k for k, v in environment.items() if password and v == password]
    bad = sorted(set(named + leaked))
    # Never show a value here: only the names of the variables at fault.
    c.expect(
        "no database password in plain environment",
        not bad,
        f"environment variables holding a password: {', '.join(bad)}" if bad else "none",
        "Anyone who can read the task definition sees its environment. Take the password "
        "out of environment and give it as a secret: DB_PASSWORD from '<secret ARN>:password::'.",
    )


def _awslogs(lab: Lab, c: Criteria, container: dict[str, Any], log_group: str) -> None:
    config = container.get("logConfiguration") or {}
    options = config.get("options", {})
    c.equal(
        "log driver", config.get("logDriver"), "awslogs", "logConfiguration.logDriver='awslogs'."
    )
    c.equal(
        "awslogs group",
        options.get("awslogs-group"),
        log_group,
        f"options['awslogs-group'] is the log group of chapter 4: {log_group}",
    )
    c.equal(
        "awslogs region",
        options.get("awslogs-region"),
        lab.region,
        f"options['awslogs-region'] is the region the log group is in: {lab.region}",
    )
    c.equal(
        "awslogs stream prefix",
        options.get("awslogs-stream-prefix"),
        "ecs",
        "options['awslogs-stream-prefix']='ecs' (required on Fargate): streams are then "
        "named ecs/<container>/<task id>.",
    )


@register("07-task-size", "Choose the task size")
def check_task_size(lab: Lab, c: Criteria) -> None:
    """Exercise 2: a Fargate size with at least 0.5 vCPU and 1 GiB, and no bigger."""
    td = learner_task_definition(lab)
    cpu, memory = td.get("cpu") or "", td.get("memory") or ""
    c.expect("task definition", True, _revision(td))
    try:
        cpu_units, memory_mib = fargate.check_task_size(cpu, memory)
    except FargateSizeError as error:
        c.expect("a Fargate task size", False, f"cpu {cpu} / memory {memory}", str(error))
        return
    c.expect("a Fargate task size", True, f"cpu {cpu_units} / memory {memory_mib} MiB")
    c.expect(
        "at least 0.5 vCPU",
        cpu_units >= NEEDED_CPU,
        f"{cpu_units} CPU units ({fargate.vcpu_label(cpu_units)})",
        f"The app needs half a vCPU: cpu {NEEDED_CPU} or more (1024 units are 1 vCPU).",
    )
    c.expect(
        "at least 1 GiB of memory",
        memory_mib >= NEEDED_MEMORY,
        f"{memory_mib} MiB",
        f"The app needs {NEEDED_MEMORY} MiB. With 512 CPU units Fargate offers 1024 to 4096 MiB.",
    )
    cheapest = _cheapest(lab.region)
    hourly = pricing.fargate_tasks(lab.region, 1, cpu_units, memory_mib).usd_per_hour
    c.expect(
        "the cheapest size that fits",
        (cpu_units, memory_mib) == cheapest,
        f"cpu {cpu_units} / memory {memory_mib} MiB: ${hourly:.5f} per task-hour",
        "Fargate bills vCPU and GB by the second: each step up costs more. 256 CPU units "
        "allow 512, 1024 or 2048 MiB but only a quarter vCPU; 512 units allow 1024 to 4096 "
        f"MiB: the smallest pair with both is cpu {cheapest[0]} / memory {cheapest[1]}.",
    )


def _cheapest(region: str) -> tuple[int, int]:
    fits = [
        (pricing.fargate_tasks(region, 1, cpu, memory).usd_per_hour, cpu, memory)
        for cpu, sizes in fargate.FARGATE_TASK_SIZES.items()
        for memory in sizes
        if cpu >= NEEDED_CPU and memory >= NEEDED_MEMORY
    ]
    _, cpu, memory = min(fits)
    return cpu, memory
