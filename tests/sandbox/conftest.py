"""Fixtures for the sandbox tests: a fresh account per test, built with plain boto3."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import pytest

from handson import sandbox

sys.path.insert(0, str(Path(__file__).parent))

from world import World  # noqa: E402

_accounts = itertools.count(100000000001)


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
