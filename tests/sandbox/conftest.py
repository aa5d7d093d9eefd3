"""Fixtures for the sandbox tests: a fresh account per test, built with plain boto3."""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterator
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
def world(endpoint: str) -> Iterator[World]:
    """Chapters 1-6 built in a new account: network, ALB, cluster, roles, DB, secret."""
    w = World(endpoint, str(next(_accounts)))
    w.build_all()
    yield w
    w.stop_services()


@pytest.fixture
def new_account(endpoint: str) -> Iterator[World]:
    """An empty new account."""
    w = World(endpoint, str(next(_accounts)))
    yield w
    w.stop_services()
