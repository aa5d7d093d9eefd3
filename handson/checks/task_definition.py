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
from handson.i18n import N_, _

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
            _("No task definition of the family {family} is registered.").format(
                family=lab.name("app")
            ),
            code="ClientException",
            operation="ListTaskDefinitions",
            hint=_("Register your task definition: handson.ecs.ensure_task_definition(lab, spec)."),
        )
    return dict(client.describe_task_definition(taskDefinition=arns[0])["taskDefinition"])


def _revision(definition: dict[str, Any]) -> str:
    return f"{definition['family']}:{definition['revision']}"


@register("07-task-definition", N_("Write the task definition"))
def check_task_definition(lab: Lab, c: Criteria) -> None:
    """Exercise 1: every setting of chapter 7's task definition."""
    pre = chapters.get_prerequisites(lab)
    td = learner_task_definition(lab)
    c.expect(_("a task definition is registered"), True, _revision(td))
    c.equal(
        _("family"),
        td["family"],
        lab.name("app"),
        _("Use family={family!r} (P-E-app).").format(family=lab.name("app")),
    )
    c.equal(
        _("network mode"),
        td.get("networkMode"),
        "awsvpc",
        _("Fargate tasks need networkMode='awsvpc': each task gets its own network interface."),
    )
    c.expect(
        _("runs on Fargate"),
        "FARGATE" in td.get("requiresCompatibilities", []),
        td.get("requiresCompatibilities", []),
        _("Set requiresCompatibilities=['FARGATE']."),
    )
    _size_is_valid(c, td)
    c.equal(
        _("execution role"),
        td.get("executionRoleArn"),
        pre.execution_role_arn,
        _(
            "executionRoleArn is the role ECS uses to pull the image and read the secret: "
            "{role_arn}"
        ).format(role_arn=pre.execution_role_arn),
    )
    c.equal(
        _("task role"),
        td.get("taskRoleArn"),
        pre.task_role_arn,
        _("taskRoleArn is the role the app itself runs with: {role_arn}").format(
            role_arn=pre.task_role_arn
        ),
    )
    containers = td.get("containerDefinitions", [])
    if not c.expect(
        _("one container, named P-E-app"),
        [x["name"] for x in containers] == [lab.name("app")],
        [x["name"] for x in containers],
        _(
            "Define one container named {container!r}: the service's load balancer "
            "setting refers to it by name."
        ).format(container=lab.name("app")),
    ):
        return
    container = containers[0]
    c.equal(
        _("image"),
        container.get("image"),
        f"{pre.repository.uri}:latest",
        _("image is the repository URL and tag: {image}").format(
            image=f"{pre.repository.uri}:latest"
        ),
    )
    mappings = container.get("portMappings", [])
    ports = [(p.get("containerPort"), p.get("protocol", "tcp")) for p in mappings]
    c.equal(
        _("port mapping"),
        [f"{port}/{proto}" for port, proto in ports],
        ["3000/tcp"],
        _("{setting}: the app listens on 3000 (docker-compose's ports).").format(
            setting="portMappings=[{'containerPort': 3000, 'protocol': 'tcp'}]"
        ),
    )
    environment = {e["name"]: e.get("value", "") for e in container.get("environment", [])}
    c.expect(
        _("environment APP_ENV and PORT"),
        environment.get("APP_ENV") == "production" and environment.get("PORT") == "3000",
        [f"{k}={v}" for k, v in environment.items() if "PASS" not in k.upper()],
        _("{setting} (the article's NODE_ENV is APP_ENV for the kit's Python app).").format(
            setting="environment=[{'name': 'APP_ENV', 'value': 'production'}, "
            "{'name': 'PORT', 'value': '3000'}]"
        ),
    )
    _secrets(c, container, pre.database.secret_arn)
    _no_plain_password(lab, c, environment, pre.database.secret_arn)
    _awslogs(lab, c, container, pre.log_group)


def _size_is_valid(c: Criteria, td: dict[str, Any]) -> None:
    cpu, memory = td.get("cpu"), td.get("memory")
    try:
        fargate.check_task_size(cpu or "", memory or "")
    except FargateSizeError as error:
        c.expect(_("a Fargate task size"), False, f"cpu {cpu} / memory {memory}", str(error))
    else:
        c.expect(_("a Fargate task size"), True, f"cpu {cpu} / memory {memory}")


def _secrets(c: Criteria, container: dict[str, Any], secret_arn: str) -> None:
    found = {s["name"]: s.get("valueFrom", "") for s in container.get("secrets", [])}
    for name, key in SECRET_KEYS.items():
        expected = f"{secret_arn}:{key}::"
        value = found.get(name)
        if value is None:
            hint = _("Add {entry} to secrets.").format(
                entry=f"{{'name': {name!r}, 'valueFrom': '<secret ARN>:{key}::'}}"
            )
        else:
            hint = _(
                "valueFrom must be `<secret ARN>:<json key>::`, e.g. {expected} (the two "
                "trailing colons keep the version stage and id empty: AWSCURRENT)."
            ).format(expected=expected)
        c.equal(_("secret {name}").format(name=name), value, expected, hint)


def _no_plain_password(lab: Lab, c: Criteria, environment: dict[str, str], secret_arn: str) -> None:
    stored = lab.client("secretsmanager").get_secret_value(SecretId=secret_arn)["SecretString"]
    password = json.loads(stored).get("password")
    named = [k for k in environment if "PASS" in k.upper()]
    leaked = [k for k, v in environment.items() if password and v == password]
    bad = sorted(set(named + leaked))
    # Never show a value here: only the names of the variables at fault.
    c.expect(
        _("no database password in plain environment"),
        not bad,
        _("environment variables holding a password: {names}").format(names=", ".join(bad))
        if bad
        else _("none"),
        _(
            "Anyone who can read the task definition sees its environment. Take the password "
            "out of environment and give it as a secret: DB_PASSWORD from "
            "'<secret ARN>:password::'."
        ),
    )


def _awslogs(lab: Lab, c: Criteria, container: dict[str, Any], log_group: str) -> None:
    config = container.get("logConfiguration") or {}
    options = config.get("options", {})
    c.equal(
        _("log driver"),
        config.get("logDriver"),
        "awslogs",
        _("logConfiguration.logDriver='awslogs'."),
    )
    c.equal(
        _("awslogs group"),
        options.get("awslogs-group"),
        log_group,
        _("options['awslogs-group'] is the log group of chapter 4: {log_group}").format(
            log_group=log_group
        ),
    )
    c.equal(
        _("awslogs region"),
        options.get("awslogs-region"),
        lab.region,
        _("options['awslogs-region'] is the region the log group is in: {region}").format(
            region=lab.region
        ),
    )
    c.equal(
        _("awslogs stream prefix"),
        options.get("awslogs-stream-prefix"),
        "ecs",
        _(
            "options['awslogs-stream-prefix']='ecs' (required on Fargate): streams are then "
            "named ecs/<container>/<task id>."
        ),
    )


@register("07-task-size", N_("Choose the task size"))
def check_task_size(lab: Lab, c: Criteria) -> None:
    """Exercise 2: a Fargate size with at least 0.5 vCPU and 1 GiB, and no bigger."""
    td = learner_task_definition(lab)
    cpu, memory = td.get("cpu") or "", td.get("memory") or ""
    c.expect(_("task definition"), True, _revision(td))
    try:
        cpu_units, memory_mib = fargate.check_task_size(cpu, memory)
    except FargateSizeError as error:
        c.expect(_("a Fargate task size"), False, f"cpu {cpu} / memory {memory}", str(error))
        return
    c.expect(_("a Fargate task size"), True, f"cpu {cpu_units} / memory {memory_mib} MiB")
    c.expect(
        _("at least 0.5 vCPU"),
        cpu_units >= NEEDED_CPU,
        _("{units} CPU units ({vcpu})").format(units=cpu_units, vcpu=fargate.vcpu_label(cpu_units)),
        _("The app needs half a vCPU: cpu {cpu} or more (1024 units are 1 vCPU).").format(
            cpu=NEEDED_CPU
        ),
    )
    c.expect(
        _("at least 1 GiB of memory"),
        memory_mib >= NEEDED_MEMORY,
        f"{memory_mib} MiB",
        _("The app needs {memory} MiB. With 512 CPU units Fargate offers 1024 to 4096 MiB.").format(
            memory=NEEDED_MEMORY
        ),
    )
    cheapest = _cheapest(lab.region)
    hourly = pricing.fargate_tasks(lab.region, 1, cpu_units, memory_mib).usd_per_hour
    c.expect(
        _("the cheapest size that fits"),
        (cpu_units, memory_mib) == cheapest,
        _("cpu {cpu} / memory {memory} MiB: ${usd:.5f} per task-hour").format(
            cpu=cpu_units, memory=memory_mib, usd=hourly
        ),
        _(
            "Fargate bills vCPU and GB by the second: each step up costs more. 256 CPU units "
            "allow 512, 1024 or 2048 MiB but only a quarter vCPU; 512 units allow 1024 to 4096 "
            "MiB: the smallest pair with both is cpu {cpu} / memory {memory}."
        ).format(cpu=cheapest[0], memory=cheapest[1]),
    )


def _cheapest(region: str) -> tuple[int, int]:
    fits = [
        (pricing.fargate_tasks(region, 1, cpu, memory).usd_per_hour, cpu, memory)
        for cpu, sizes in fargate.FARGATE_TASK_SIZES.items()
        for memory in sizes
        if cpu >= NEEDED_CPU and memory >= NEEDED_MEMORY
    ]
    _usd, cpu, memory = min(fits)
    return cpu, memory
