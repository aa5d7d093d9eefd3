"""Fixtures for the library tests that need AWS's control-plane time."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest

from handson import sandbox
from handson.connection import Lab, connect


@pytest.fixture
def timed_lab() -> Iterator[Callable[[float], Lab]]:
    """``timed_lab(control_speed)``: a student of a sandbox of its own, whose control-plane
    states last AWS's durations divided by ``control_speed``."""
    with ExitStack() as stack:

        def factory(control_speed: float) -> Lab:
            stack.enter_context(sandbox.private(control_speed=control_speed))
            return connect("sandbox", student="timed01")

        yield factory
