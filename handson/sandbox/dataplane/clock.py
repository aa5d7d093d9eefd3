"""Sandbox time: AWS's intervals run ``speed`` times faster than the wall clock.

Durations in the data plane are written in AWS seconds (30 s health check interval,
300 s deregistration delay, ...). ``Clock.now()`` counts AWS seconds since the sandbox
started, so comparing against those durations needs no conversion anywhere else.
Timestamps shown to users (createdAt, log event times) stay real wall-clock times.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime


class Clock:
    """Monotonic sandbox clock in AWS seconds."""

    def __init__(self, speed: float) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self._start = time.monotonic()

    def now(self) -> float:
        """AWS seconds elapsed since the sandbox started."""
        return (time.monotonic() - self._start) * self.speed

    def real_seconds(self, aws_seconds: float) -> float:
        """How long ``aws_seconds`` of AWS time lasts on the wall clock."""
        return aws_seconds / self.speed


def utcnow() -> datetime:
    """The wall-clock time, timezone-aware, as AWS timestamps are."""
    return datetime.now(UTC)
