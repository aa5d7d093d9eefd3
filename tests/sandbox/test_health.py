"""Target health's start-up time: the sandbox speeds up AWS's clock, not the app's start.

A new target whose checks get no answer while its app listens on no port yet turns unhealthy
only after 20 real seconds, or after AWS's own window if that is shorter; a wrong answer, or
no answer from an app that already listens, counts at once (README, sandbox section, "Time").
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from handson.sandbox.dataplane.clock import Clock
from handson.sandbox.dataplane.health import (
    REASONS,
    CheckResult,
    TargetHealthTable,
    TargetRecord,
)

NO_ANSWER = CheckResult(False, "Target.FailedHealthChecks", REASONS["Target.FailedHealthChecks"])
TIMED_OUT = CheckResult(False, "Target.Timeout", REASONS["Target.Timeout"])
WRONG_CODE = CheckResult(
    False, "Target.ResponseCodeMismatch", "Health checks failed with these codes: [404]"
)


class StoppedClock(Clock):
    """A sandbox clock that moves only when the test says so (AWS seconds)."""

    def __init__(self, speed: float) -> None:
        super().__init__(speed)
        self.aws_now = 0.0

    def now(self) -> float:
        return self.aws_now


def _table(speed: float) -> tuple[TargetHealthTable, StoppedClock]:
    clock = StoppedClock(speed)
    return TargetHealthTable(clock, lambda *_: None, threading.RLock()), clock


def _target() -> TargetRecord:
    return TargetRecord(
        account="123456789012",
        region="ap-northeast-1",
        tg_arn="arn:aws:elasticloadbalancing:ap-northeast-1:123456789012:targetgroup/tg/1",
        target_id="10.0.11.5",
        port=3000,
        availability_zone="ap-northeast-1a",
        registered_at=0.0,
    )


def _group(interval: int = 30, unhealthy: int = 2) -> dict[str, Any]:
    return {
        "healthCheckIntervalSeconds": interval,
        "unhealthyThresholdCount": unhealthy,
        "healthyThresholdCount": 5,
    }


@pytest.mark.parametrize("result", [NO_ANSWER, TIMED_OUT])
def test_a_starting_target_without_an_answer_stays_initial_for_20_real_seconds(
    result: CheckResult,
) -> None:
    table, clock = _table(speed=20)
    target, group = _target(), _group()

    for aws_seconds in (5, 35, 65, 95):  # checks every 30 AWS s: 0.25 to 4.75 real s
        clock.aws_now = aws_seconds
        table.apply(target, result, group, starting=True)
        assert (target.state, target.reason) == ("initial", "Elb.InitialHealthChecking")

    clock.aws_now = 20 * 20  # 20 real seconds after registration
    table.apply(target, result, group, starting=True)
    assert (target.state, target.reason) == ("unhealthy", result.reason)


def test_a_starting_target_that_answers_late_becomes_healthy() -> None:
    table, clock = _table(speed=20)
    target, group = _target(), _group()
    for aws_seconds in (5, 35, 65):
        clock.aws_now = aws_seconds
        table.apply(target, NO_ANSWER, group, starting=True)

    clock.aws_now = 95
    table.apply(target, CheckResult(True), group, starting=False)

    assert (target.state, target.reason) == ("healthy", None)


def test_a_wrong_answer_counts_at_once() -> None:
    table, clock = _table(speed=20)
    target, group = _target(), _group()

    clock.aws_now = 5
    table.apply(target, WRONG_CODE, group, starting=False)
    assert target.state == "initial"
    clock.aws_now = 35
    table.apply(target, WRONG_CODE, group, starting=False)

    assert (target.state, target.reason) == ("unhealthy", "Target.ResponseCodeMismatch")


def test_the_allowance_is_never_longer_than_awss_own_window() -> None:
    # AWS timing (speed 1), 5 s interval, threshold 2: AWS decides 15 s after registration.
    table, clock = _table(speed=1)
    target, group = _target(), _group(interval=5, unhealthy=2)

    clock.aws_now = 10
    table.apply(target, NO_ANSWER, group, starting=True)
    assert target.state == "initial"
    clock.aws_now = 15
    table.apply(target, NO_ANSWER, group, starting=True)

    assert (target.state, target.reason) == ("unhealthy", "Target.FailedHealthChecks")


@pytest.mark.parametrize("result", [NO_ANSWER, TIMED_OUT])
def test_no_answer_from_an_app_that_already_listens_counts_at_once(result: CheckResult) -> None:
    # The app is up on another port, or a rule drops the check: waiting won't help.
    table, clock = _table(speed=20)
    target, group = _target(), _group()

    for aws_seconds in (5, 35):
        clock.aws_now = aws_seconds
        table.apply(target, result, group, starting=False)

    assert (target.state, target.reason) == ("unhealthy", result.reason)


def test_a_check_that_breaks_is_logged_and_the_target_is_checked_again(caplog) -> None:
    """A check runs on a worker thread: an error there must not leave the target marked
    in flight (it would never be checked again and stay initial for good)."""

    def broken(record: TargetRecord, port: int) -> bool:
        raise RuntimeError("the network rules could not be read")

    table = TargetHealthTable(StoppedClock(20), lambda *_: None, threading.RLock(), broken)
    record = _target()
    record.in_flight = True  # as run_checks leaves it when it submits the check
    with caplog.at_level("ERROR", logger="handson.sandbox.dataplane.health"):
        table._check(record, {**_group(), "healthCheckPort": "traffic-port"})
    assert not record.in_flight
    assert "health check of 10.0.11.5:3000 failed" in caplog.text
    assert "the network rules could not be read" in caplog.text
