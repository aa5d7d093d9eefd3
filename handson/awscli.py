"""Render a boto3 call as the AWS CLI command that does the same thing."""

from __future__ import annotations

import ast
import functools
import importlib.util
import json
import re
import shlex
from pathlib import Path
from typing import Any

# Operations that only read: everything else changes something in the account.
READ_PREFIXES = ("Describe", "List", "Get", "BatchGet", "Search", "Lookup", "Filter")

# boto3's endpoint prefixes whose CLI command names differ.
CLI_NAMES = {"elasticloadbalancing": "elbv2", "monitoring": "cloudwatch", "api.ecr": "ecr"}


def is_mutating(operation: str) -> bool:
    """Whether an API operation changes something (CreateService) or only reads (Describe...)."""
    return not operation.startswith(READ_PREFIXES)


def kebab(name: str) -> str:
    """``CreateService`` -> ``create-service``; ``desiredCount`` -> ``desired-count``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "-", name).lower()


@functools.cache
def _renamed_options() -> dict[str, str]:
    """The AWS CLI's own option renames, ``<service>.<operation or *>.<option>`` to the name
    it takes instead: ``ec2 create-network-acl-entry`` has ``--ingress``, not ``--no-egress``.

    Read from the installed CLI's ``customizations/argrename.py`` as data: importing the
    ``awscli`` package would set ``AWS_DATA_PATH`` in this process, which changes how
    boto3 reads profiles in the learner's kernel.
    """
    spec = importlib.util.find_spec("awscli")  # finds the package without running it
    if spec is None or spec.origin is None:
        return {}
    source = Path(spec.origin).parent / "customizations" / "argrename.py"
    for node in ast.parse(source.read_text()).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "ARGUMENT_RENAMES"
            for target in node.targets
        ):
            return dict(ast.literal_eval(node.value))
    return {}


def option(service: str, operation: str, name: str) -> str:
    """``--<name>`` as the AWS CLI spells it for ``aws <service> <operation>``."""
    renamed = _renamed_options()
    for key in (f"{service}.{operation}.{name}", f"{service}.*.{name}", f"*.*.{name}"):
        if key in renamed:
            return f"--{renamed[key]}"
    return f"--{name}"


def command(
    service: str,
    operation: str,
    params: dict[str, Any],
    *,
    query: str | None = None,
    output: str | None = None,
) -> str:
    """``aws <service> <operation> --param value ...`` for one API call, with the CLI's own
    ``--query`` (JMESPath) and ``--output`` when given."""
    cli_service, cli_operation = CLI_NAMES.get(service, service), kebab(operation)
    parts = ["aws", cli_service, cli_operation]
    for key, value in params.items():
        flag = option(cli_service, cli_operation, kebab(key))
        if isinstance(value, bool):
            parts.append(flag if value else option(cli_service, cli_operation, f"no-{kebab(key)}"))
        elif isinstance(value, str | int | float):
            parts += [flag, shlex.quote(str(value))]
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            parts += [flag, *(shlex.quote(v) for v in value)]
        else:
            parts += [flag, shlex.quote(json.dumps(value, separators=(",", ":"), default=str))]
    if query is not None:
        parts += ["--query", shlex.quote(query)]
    if output is not None:
        parts += ["--output", output]
    return " ".join(parts)
