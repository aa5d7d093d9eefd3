"""handson: a course kit for running a containerised API on Amazon ECS (Fargate) behind an ALB.

``lab = handson.connect()`` opens a student's account (the local sandbox by default);
the chapter steps live in one module per AWS concern: ``handson.network``,
``handson.loadbalancer``, ``handson.registry``, ``handson.ecs``, ``handson.logs``,
``handson.iam``, ``handson.secrets``, ``handson.database``; ``handson.chapters`` builds
chapters 1-6, ``handson.teardown`` removes it all, and ``handson.terraform`` shows each
step as the series' Terraform.
"""

from handson import (
    chapters,
    checks,
    database,
    ecs,
    fargate,
    faults,
    iam,
    loadbalancer,
    logs,
    network,
    registry,
    secrets,
    teardown,
    terraform,
)
from handson import display as _display
from handson.connection import Lab, connect, show_cli
from handson.exceptions import HandsonError

__version__ = "0.1.0"

_display.apply()

__all__ = [
    "HandsonError",
    "Lab",
    "__version__",
    "chapters",
    "checks",
    "connect",
    "database",
    "ecs",
    "fargate",
    "faults",
    "iam",
    "loadbalancer",
    "logs",
    "network",
    "registry",
    "secrets",
    "show_cli",
    "teardown",
    "terraform",
]
