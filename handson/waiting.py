"""Waiting for AWS: botocore's own waiters, checked often at first, then less often.

A boto3 waiter pauses a fixed ``Delay`` between checks (15-30 s for most): on AWS a
resource that is ready in 40 s is then seen at 45 or 60 s, and one that is ready at once
still costs a full pause. :func:`wait` asks the waiter after half a second, then after pauses that
grow by half up to 15 s, so a short wait stays short and a long one (an RDS instance,
minutes) makes few calls: a class of 30 waiting together stays inside the API rate
limits.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError, WaiterError

FIRST_PAUSE = 0.5
LONGEST_PAUSE = 15.0


def wait(
    client: Any,
    waiter_name: str,
    *,
    timeout: float,
    first: float = FIRST_PAUSE,
    longest: float = LONGEST_PAUSE,
    **params: Any,
) -> None:
    """Wait until the waiter ``waiter_name`` of ``client`` succeeds with ``params``.

    Raises botocore's WaiterError as the waiter does: at once when the resource reaches
    a failure state (a NAT gateway "failed"), or with the last answer after ``timeout``
    seconds.
    """
    waiter = client.get_waiter(waiter_name)
    deadline = time.monotonic() + timeout
    pause = first
    while True:
        try:
            # One check: success returns, a failure state raises "...terminal failure...".
            waiter.wait(**params, WaiterConfig={"Delay": 1, "MaxAttempts": 1})
            return
        except WaiterError as error:
            if "Max attempts exceeded" not in str(error) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 1.5, longest)


def until(
    check: Callable[[], bool],
    *,
    timeout: float,
    first: float = FIRST_PAUSE,
    longest: float = LONGEST_PAUSE,
) -> bool:
    """Call ``check`` until it returns True, with the same growing pauses as :func:`wait`,
    for what botocore has no waiter for (VPC endpoints). False after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    pause = first
    while not check():
        if time.monotonic() + pause > deadline:
            return False
        time.sleep(pause)
        pause = min(pause * 1.5, longest)
    return True


def retry_while_dependent(
    call: Callable[[], Any], *, timeout: float = 900.0, longest: float = LONGEST_PAUSE
) -> Any:
    """Run ``call`` (a delete), again while AWS answers DependencyViolation.

    What a deleted resource leaves behind goes away by itself, a while later: a stopped
    task's or a deleted load balancer's network interfaces keep their security groups
    and subnets in use for a minute or more (once seen: 15 minutes), so AWS refuses to
    delete those at first. Other errors, and the last refusal after ``timeout`` seconds,
    are raised.
    """
    deadline = time.monotonic() + timeout
    pause = FIRST_PAUSE
    while True:
        try:
            return call()
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code")
            if code != "DependencyViolation" or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 1.5, longest)
