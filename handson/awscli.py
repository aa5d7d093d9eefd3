"""Render a boto3 call as the AWS CLI command that does the same thing."""

from __future__ import annotations

import json
import re
import shlex
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
    parts = ["aws", CLI_NAMES.get(service, service), kebab(operation)]
    for key, value in params.items():
        option = f"--{kebab(key)}"
        if isinstance(value, bool):
            parts.append(option if value else f"--no-{kebab(key)}")
        elif isinstance(value, str | int | float):
            parts += [option, shlex.quote(str(value))]
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            parts += [option, *(shlex.quote(v) for v in value)]
        else:
            parts += [option, shlex.quote(json.dumps(value, separators=(",", ":"), default=str))]
    if query is not None:
        parts += ["--query", shlex.quote(query)]
    if output is not None:
        parts += ["--output", output]
    return " ".join(parts)
