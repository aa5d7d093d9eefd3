"""Fixtures: one sandbox server for the session, a fresh account per test.

The sandbox runs in a private HANDSON_HOME on free ports, so the tests never touch a
sandbox the developer may have running, and never reach a real AWS account.
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from handson import sandbox
from handson.sandbox.config import SandboxConfig

sys.path.insert(0, str(Path(__file__).parent))

from world import World  # noqa: E402

_accounts = itertools.count(100000000001)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def make_config() -> SandboxConfig:
    home = Path(tempfile.mkdtemp(prefix="handson-test-"))
    # PostgreSQL runs as an unprivileged user when the tests run as root: it must be
    # able to reach the sandbox's state directory.
    home.chmod(0o755)
    return SandboxConfig(home=home, port=free_port(), alb_port=free_port(), speed=20.0)


@pytest.fixture(autouse=True)
def _no_real_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test can reach a real account: credentials are fake, profiles are ignored."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-northeast-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)


@pytest.fixture(scope="session")
def sandbox_config() -> SandboxConfig:
    return make_config()


@pytest.fixture(scope="session")
def sandbox_server(sandbox_config: SandboxConfig) -> Iterator[sandbox.SandboxStatus]:
    status = sandbox.start(sandbox_config)
    try:
        yield status
    finally:
        sandbox.stop(sandbox_config)
        shutil.rmtree(sandbox_config.home, ignore_errors=True)


@pytest.fixture
def endpoint(sandbox_server: sandbox.SandboxStatus) -> str:
    assert sandbox_server.endpoint_url
    return sandbox_server.endpoint_url


@pytest.fixture
def alb_proxy(sandbox_server: sandbox.SandboxStatus) -> str:
    assert sandbox_server.alb_proxy_url
    return sandbox_server.alb_proxy_url


@pytest.fixture
def world(endpoint: str) -> World:
    """Chapters 1-6 built in a new account: network, ALB, cluster, roles, DB, secret."""
    w = World(endpoint, str(next(_accounts)))
    w.build_all()
    return w


@pytest.fixture
def new_account(endpoint: str) -> World:
    """An empty new account."""
    return World(endpoint, str(next(_accounts)))
