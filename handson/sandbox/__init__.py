"""The sandbox: a local AWS whose ECS tasks really run.

moto's server answers the AWS APIs; the data plane (``handson.sandbox.dataplane``) runs
ECS tasks as local processes, health-checks and routes ALB traffic, ships logs to
CloudWatch Logs and backs RDS with a local PostgreSQL.
"""

from handson.sandbox.config import SandboxConfig, load_config
from handson.sandbox.lifecycle import (
    SandboxStatus,
    inject_faults,
    mutating_calls,
    private,
    reset,
    start,
    status,
    stop,
)

__all__ = [
    "SandboxConfig",
    "SandboxStatus",
    "inject_faults",
    "load_config",
    "mutating_calls",
    "private",
    "reset",
    "start",
    "status",
    "stop",
]
