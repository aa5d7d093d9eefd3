"""handson.waiting: botocore's waiters checked with growing pauses; deletes retried while
AWS answers DependencyViolation."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError, WaiterError

from handson import waiting


class FakeWaiter:
    def __init__(self, answers: list[str]) -> None:
        self.answers = answers
        self.calls: list[dict[str, Any]] = []

    def wait(self, **params: Any) -> None:
        self.calls.append(params)
        answer = self.answers.pop(0)
        if answer == "pending":
            raise WaiterError("w", "Max attempts exceeded", {"State": "pending"})
        if answer == "failed":
            raise WaiterError("w", "Waiter encountered a terminal failure state", {})


class FakeClient:
    def __init__(self, waiter: FakeWaiter) -> None:
        self.waiter = waiter

    def get_waiter(self, name: str) -> FakeWaiter:
        return self.waiter


def test_wait_checks_once_per_pause_until_success(monkeypatch) -> None:
    pauses: list[float] = []
    monkeypatch.setattr(waiting.time, "sleep", pauses.append)
    waiter = FakeWaiter(["pending", "pending", "pending", "ok"])
    waiting.wait(FakeClient(waiter), "nat_gateway_available", timeout=60, NatGatewayIds=["n"])
    assert len(waiter.calls) == 4
    assert all(c["WaiterConfig"]["MaxAttempts"] == 1 for c in waiter.calls)
    assert waiter.calls[0]["NatGatewayIds"] == ["n"]
    assert pauses == [0.5, 0.75, 1.125]


def test_wait_raises_a_failure_state_at_once(monkeypatch) -> None:
    monkeypatch.setattr(waiting.time, "sleep", lambda _: None)
    waiter = FakeWaiter(["failed", "ok"])
    with pytest.raises(WaiterError, match="terminal failure"):
        waiting.wait(FakeClient(waiter), "w", timeout=60)
    assert len(waiter.calls) == 1


def test_wait_gives_up_after_its_timeout_with_the_last_answer(monkeypatch) -> None:
    monkeypatch.setattr(waiting.time, "sleep", lambda _: None)
    with pytest.raises(WaiterError, match="Max attempts"):
        waiting.wait(FakeClient(FakeWaiter(["pending"] * 3)), "w", timeout=0)


def _refusal(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"}}, "DeleteSecurityGroup")


def test_a_delete_is_retried_while_dependent(monkeypatch) -> None:
    monkeypatch.setattr(waiting.time, "sleep", lambda _: None)
    answers = [_refusal("DependencyViolation"), _refusal("DependencyViolation"), "done"]

    def delete() -> str:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert waiting.retry_while_dependent(delete) == "done"


def test_other_errors_are_not_retried() -> None:
    def delete() -> None:
        raise _refusal("InvalidGroup.NotFound")

    with pytest.raises(ClientError, match="InvalidGroup.NotFound"):
        waiting.retry_while_dependent(delete)
