"""Fixtures for the library tests that need AWS's control-plane time."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator

import pytest

from handson import sandbox
from handson.connection import Lab, connect
from handson.sandbox.config import SandboxConfig, environment, private_config


@pytest.fixture
def timed_lab(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[float], Lab]]:
    """``timed_lab(control_speed)``: a student of a sandbox of its own, whose control-plane
    states last AWS's durations divided by ``control_speed``."""
    started: list[SandboxConfig] = []

    def factory(control_speed: float) -> Lab:
        config = private_config(control_speed=control_speed)
        sandbox.start(config)
        started.append(config)
        for key, value in environment(config).items():
            monkeypatch.setenv(key, value)
        return connect("sandbox", student="timed01")

    yield factory
    for config in started:
        sandbox.stop(config)
        shutil.rmtree(config.home, ignore_errors=True)
