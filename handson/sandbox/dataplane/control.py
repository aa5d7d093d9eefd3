"""Control-plane time: the states AWS passes through before a resource is ready or gone.

On AWS an RDS instance is ``creating`` for minutes, a NAT gateway ``pending``, an ALB
``provisioning``, an interface VPC endpoint ``pending``; a deleted NAT gateway is
``deleting`` first, a deleted RDS instance ``deleting``; a stopped Fargate task's network
interface lingers before it is released, and so do a deleted ALB's; ECS can't assume an
IAM role for a few seconds after it was created or its trust policy changed. The sandbox
keeps each state for AWS's typical duration divided by the control speed (the sandbox's
settings), so code that skips a wait, or deletes in the wrong order, fails here as it
would in front of a class. Durations are in AWS seconds (the README's sandbox section
lists them).
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable
from typing import Final

# AWS's typical durations, in seconds. AWS publishes none of these as a number; they are
# what is commonly seen (RDS: "up to 20 minutes", usually a few; NAT and ALB: 1-3 min).
DURATIONS: Final[dict[str, float]] = {
    "db-instance.creating": 240.0,
    "db-instance.backing-up": 60.0,
    "db-instance.deleting": 120.0,
    "nat-gateway.pending": 90.0,
    "nat-gateway.deleting": 60.0,
    "load-balancer.provisioning": 120.0,
    "load-balancer.eni-release": 120.0,
    "vpc-endpoint.pending": 60.0,
    "task.eni-release": 60.0,
    # IAM is eventually consistent: a role just created, or whose trust policy just
    # changed, can't be assumed by ECS yet ("seconds").
    "iam-role.propagation": 8.0,
}


class ControlPlane:
    """Runs actions when their state's time is up (wall-clock seconds, scaled)."""

    def __init__(self, control_speed: float) -> None:
        if control_speed < 0:
            raise ValueError("control speed must be 0 (instant) or positive")
        self.control_speed = control_speed
        self._due: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()

    @property
    def instant(self) -> bool:
        return self.control_speed == 0

    def seconds(self, state: str) -> float:
        """How long ``state`` lasts on the wall clock here (0 when instant)."""
        return 0.0 if self.instant else DURATIONS[state] / self.control_speed

    def later(self, state: str, action: Callable[[], None]) -> None:
        """Run ``action`` once ``state`` has lasted its time (at once when instant)."""
        if self.instant:
            action()
            return
        due = time.monotonic() + self.seconds(state)
        heapq.heappush(self._due, (due, next(self._order), action))

    def run_due(self) -> None:
        """Run every action whose time is up, oldest first (called by each tick)."""
        now = time.monotonic()
        while self._due and self._due[0][0] <= now:
            _, _, action = heapq.heappop(self._due)
            action()

    def clear(self) -> None:
        self._due.clear()
