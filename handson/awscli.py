"""Render a boto3 call as the AWS CLI command that does the same thing."""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

# boto3's endpoint prefixes whose CLI command names differ.
CLI_NAMES = {"elasticloadbalancing": "elbv2", "monitoring": "cloudwatch", "api.ecr": "ecr"}


def kebab(name: str) -> str:
    """``CreateService`` -> ``create-service``; ``desiredCount`` -> ``desired-count``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "-", name).lower()


def command(service: str, operation: str, params: dict[str, Any]) -> str:
    """``aws <service> <operation> --param value ...`` for one API call."""
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
    return " ".join(parts)
