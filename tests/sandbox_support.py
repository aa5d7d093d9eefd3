"""Shared test helpers: a private sandbox configuration on free ports."""

from __future__ import annotations

import socket
import tempfile
from pathlib import Path

from handson.sandbox.config import SandboxConfig


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def make_config() -> SandboxConfig:
    """A sandbox in a new HANDSON_HOME on free ports, so tests never touch the
    developer's own sandbox."""
    home = Path(tempfile.mkdtemp(prefix="handson-test-"))
    # PostgreSQL runs as an unprivileged user when the tests run as root: it must be
    # able to reach the sandbox's state directory.
    home.chmod(0o755)
    return SandboxConfig(home=home, port=free_port(), alb_port=free_port(), speed=20.0)
