"""CloudWatch Logs: the API's log group (chapter 4) and views of its logs (chapter 7).

ECS's ``awslogs`` driver sends each container's stdout and stderr to the log group
``/ecs/P-E``, one log stream per task (``ecs/<container>/<task id>``).
"""

from __future__ import annotations

import datetime as dt
import heapq
import re
import time
from collections.abc import Callable, Iterator
from typing import Any, Final

import pandas as pd

from handson import awscli, live
from handson.aws_errors import step
from handson.connection import Lab
from handson.exceptions import ConfigurationError
from handson.i18n import _

__all__ = [
    "RETENTION_DAYS",
    "delete_log_group",
    "delete_flow_log_group",
    "ensure_flow_log_group",
    "ensure_log_group",
    "flow_log_group_arn",
    "flow_log_group_name",
    "log_group_arn",
    "log_group_name",
    "show_log_events",
    "show_log_streams",
    "tail_log_events",
]

RETENTION_DAYS: Final = 14
EVENT_COLUMNS: Final = ["time", "stream", "message"]
STREAM_COLUMNS: Final = ["stream", "last_event_time", "first_event_time"]
TAIL_FORMATS: Final = ("detailed", "short")
# --since: a number and one unit, as `aws logs tail` reads it (or an ISO 8601 time).
RELATIVE_SINCE: Final = re.compile(r"^(?P<amount>\d+)(?P<unit>[smhdw])$")
UNIT_SECONDS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# How often --follow asks for new events (`aws logs tail` waits 5 s between requests).
FOLLOW_SECONDS: Final = 5.0


def log_group_name(lab: Lab) -> str:
    """``/ecs/<project>-<environment>``, the series' log group of the API's containers."""
    return f"/ecs/{lab.prefix}"


def log_group_arn(lab: Lab) -> str:
    """The log group's ARN, as an IAM policy names it (no AWS call)."""
    return _group_arn(lab, log_group_name(lab))


def _group_arn(lab: Lab, name: str) -> str:
    return f"arn:aws:logs:{lab.region}:{lab.account_id}:log-group:{name}"


def _find_log_group(lab: Lab, name: str) -> dict[str, Any] | None:
    pages = lab.client("logs").get_paginator("describe_log_groups")
    # The prefix also matches longer names (/ecs/P-E-other): keep the exact one.
    for page in pages.paginate(logGroupNamePrefix=name):
        for group in page["logGroups"]:
            if group["logGroupName"] == name:
                return dict(group)
    return None


def _utc(milliseconds: int | None) -> pd.Timestamp:
    """AWS's epoch milliseconds as a UTC time (NaT when a stream has no events yet)."""
    if milliseconds is None:
        return pd.NaT
    return pd.Timestamp(milliseconds, unit="ms", tz="UTC")


@step("Create the log group")
def ensure_log_group(lab: Lab) -> str:
    """The log group ``/ecs/P-E`` where the tasks' output goes, kept 14 days.

    Calls DescribeLogGroups, then CreateLogGroup if it's missing, and PutRetentionPolicy
    only if the retention isn't 14 days. Idempotent. Chapter 4. Returns the group's name.
    """
    return _ensure_group(lab, log_group_name(lab))


def _ensure_group(lab: Lab, name: str) -> str:
    logs = lab.client("logs")
    group = _find_log_group(lab, name)
    if group is None:
        logs.create_log_group(logGroupName=name, tags=dict(lab.tags, Name=name))
        group = {}
    # A new group keeps its events forever (and bills for them) until a retention is set.
    if group.get("retentionInDays") != RETENTION_DAYS:
        logs.put_retention_policy(logGroupName=name, retentionInDays=RETENTION_DAYS)
    return name


def flow_log_group_name(lab: Lab) -> str:
    """``/aws/vpc/<project>-<environment>``, chapter 8's log group of VPC Flow Logs."""
    return f"/aws/vpc/{lab.prefix}"


def flow_log_group_arn(lab: Lab) -> str:
    """The flow log group's ARN, as an IAM policy names it (no AWS call)."""
    return _group_arn(lab, flow_log_group_name(lab))


@step("Create the flow log group")
def ensure_flow_log_group(lab: Lab) -> str:
    """The log group ``/aws/vpc/P-E`` VPC Flow Logs writes to, kept 14 days.

    Calls DescribeLogGroups, CreateLogGroup if it's missing, PutRetentionPolicy if the
    retention isn't 14 days. Idempotent. Chapter 8. Returns the group's name.
    """
    return _ensure_group(lab, flow_log_group_name(lab))


@step("Delete the flow log group")
def delete_flow_log_group(lab: Lab) -> None:
    """Delete ``/aws/vpc/P-E`` with its records. Calls DescribeLogGroups and
    DeleteLogGroup. Idempotent. Teardown of chapter 8."""
    _delete_group(lab, flow_log_group_name(lab))


@step("Show the log streams")
def show_log_streams(lab: Lab, *, limit: int = 3) -> pd.DataFrame:
    """The log group's most recently written streams (one per task), newest first.

    Calls DescribeLogStreams ordered by LastEventTime, descending, like
    ``aws logs describe-log-streams --order-by LastEventTime --descending``. Chapter 7.
    """
    if not 1 <= limit <= 50:
        raise ConfigurationError(
            _("limit={limit!r}: DescribeLogStreams returns 1 to 50 streams.").format(limit=limit)
        )
    params = {"logGroupName": log_group_name(lab), "orderBy": "LastEventTime", "descending": True}
    typed = awscli.command(
        "logs",
        "DescribeLogStreams",
        params,
        query=f"logStreams[0:{limit}].logStreamName",
        output="table",
    )
    with lab.log.typed_as([typed]):
        streams = lab.client("logs").describe_log_streams(**params, limit=limit)["logStreams"]
    rows = [
        {
            "stream": s["logStreamName"],
            "last_event_time": _utc(s.get("lastEventTimestamp")),
            "first_event_time": _utc(s.get("firstEventTimestamp")),
        }
        for s in streams
    ]
    return pd.DataFrame(rows, columns=STREAM_COLUMNS)


@step("Show the latest log events")
def show_log_events(
    lab: Lab,
    *,
    limit: int = 20,
    stream_prefix: str | None = None,
    since_minutes: float | None = None,
    pattern: str | None = None,
) -> pd.DataFrame:
    """The latest ``limit`` events of the log group, across its streams, oldest first: time
    (UTC), stream and message, like ``aws logs tail --format short``.

    Calls FilterLogEvents (every page in the time range; only ``limit`` events are kept).
    ``stream_prefix`` keeps streams whose name starts with it (e.g. ``ecs/my-project-dev-app``);
    ``since_minutes`` reads only that far back, which is quicker on a long-lived group;
    ``pattern`` is a CloudWatch Logs filter pattern (e.g. ``listening`` or ``"GET /"``).
    Chapter 7.
    """
    if limit < 1:
        raise ConfigurationError(
            _("limit={limit!r}: ask for at least 1 event.").format(limit=limit)
        )
    if since_minutes is not None and since_minutes <= 0:
        raise ConfigurationError(
            _("since_minutes={since_minutes!r}: give a number of minutes above 0, or None.").format(
                since_minutes=since_minutes
            )
        )
    params: dict[str, Any] = {"logGroupName": log_group_name(lab)}
    if stream_prefix:
        params["logStreamNamePrefix"] = stream_prefix
    if pattern:
        params["filterPattern"] = pattern
    if since_minutes is not None:
        params["startTime"] = int((time.time() - since_minutes * 60) * 1000)
    pages = lab.client("logs").get_paginator("filter_log_events").paginate(**params)
    events = (event for page in pages for event in page["events"])
    # FilterLogEvents reads forward in time and can't read backwards, so keep the newest
    # `limit` events while paging instead of holding the whole range in memory.
    latest = heapq.nlargest(limit, events, key=lambda e: e["timestamp"])
    rows = [
        {"time": _utc(e["timestamp"]), "stream": e["logStreamName"], "message": e["message"]}
        for e in sorted(latest, key=lambda e: e["timestamp"])
    ]
    return pd.DataFrame(rows, columns=EVENT_COLUMNS)


def since_millis(since: str, *, now: float | None = None) -> int:
    """``--since`` as epoch milliseconds: ``10m``, ``2h``, ``1d`` back from now (one unit:
    s, m, h, d or w), or an ISO 8601 time (UTC unless it says otherwise)."""
    now = time.time() if now is None else now
    relative = RELATIVE_SINCE.match(since.strip())
    if relative:
        seconds = int(relative["amount"]) * UNIT_SECONDS[relative["unit"]]
        return int((now - seconds) * 1000)
    try:
        moment = dt.datetime.fromisoformat(since.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigurationError(
            _(
                "--since {since!r}: give a number and one unit (s, m, h, d or w), e.g. 10m or 2h, "
                "or an ISO 8601 time such as 2025-07-28T16:00:00Z."
            ).format(since=since)
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp() * 1000)


def format_tail_line(event: dict[str, Any], fmt: str = "detailed") -> str:
    """One event as `aws logs tail` prints it: ``detailed`` is the UTC time with its
    microseconds and offset, the stream and the message; ``short`` is the time to the
    second and the message."""
    moment = dt.datetime.fromtimestamp(event["timestamp"] / 1000, tz=dt.UTC)
    message = str(event["message"]).rstrip()
    if fmt == "short":
        return f"{moment:%Y-%m-%dT%H:%M:%S} {message}"
    return f"{moment.isoformat()} {event['logStreamName']} {message}"


def _check_format(spelled: str, fmt: str) -> None:
    if fmt not in TAIL_FORMATS:
        raise ConfigurationError(
            _("{spelled}: choose {names} or {last}.").format(
                spelled=spelled, names=", ".join(TAIL_FORMATS[:-1]), last=TAIL_FORMATS[-1]
            )
        )


class EventReader:
    """A log group's events from ``start`` (epoch ms, None for all) on, each event once over
    repeated reads. Each read pages through FilterLogEvents from the newest event seen,
    less ``overlap_ms`` for groups whose events can arrive after newer ones (flow logs)."""

    def __init__(self, lab: Lab, group: str, start: int | None, *, overlap_ms: int = 0) -> None:
        self._client = lab.client("logs")
        self._group = group
        self._start = start
        self._overlap_ms = overlap_ms
        self._seen: dict[str, int] = {}  # event id -> timestamp, from self._start on

    def read(self) -> Iterator[dict[str, Any]]:
        """The events not read before, page by page."""
        params: dict[str, Any] = {"logGroupName": self._group}
        if self._start is not None:
            params["startTime"] = self._start
        while True:
            answer = self._client.filter_log_events(**params)
            for event in answer["events"]:
                if event["eventId"] not in self._seen:
                    self._seen[event["eventId"]] = event["timestamp"]
                    yield event
            if "nextToken" not in answer:
                break
            params["nextToken"] = answer["nextToken"]
        if self._seen:
            start = max(self._seen.values()) - self._overlap_ms
            self._start = start if self._start is None else max(self._start, start)
            self._seen = {i: t for i, t in self._seen.items() if t >= start}


def _tail_events(
    lab: Lab, group: str, start: int, follow: bool, sleep: Callable[[float], None]
) -> Iterator[dict[str, Any]]:
    reader = EventReader(lab, group, start)
    while True:
        yield from reader.read()
        if not follow:
            return
        sleep(FOLLOW_SECONDS)


@step("Tail the log group")
def tail_log_events(
    lab: Lab,
    group: str | None = None,
    *,
    since: str = "10m",
    follow: bool = False,
    fmt: str = "detailed",
    write: Callable[[str], None] = print,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Print the log group's events since ``since`` (default: the last 10 minutes) as
    `aws logs tail` does, and with ``follow`` keep printing new ones until Ctrl-C.
    Returns how many events were printed.

    Calls FilterLogEvents (every 5 s while following). ``group`` defaults to the chapter's
    ``/ecs/P-E``; ``fmt`` is ``detailed`` or ``short``. `aws logs tail` exists only in
    version 2 of the AWS CLI; this prints the same lines. Chapter 7.
    """
    _check_format(f"--format {fmt!r}", fmt)
    start = since_millis(since)
    printed = 0
    try:
        for event in _tail_events(lab, group or log_group_name(lab), start, follow, sleep):
            write(format_tail_line(event, fmt))
            printed += 1
    except KeyboardInterrupt:  # the way out of --follow, as in the AWS CLI
        pass
    return printed


def follow(
    lab: Lab,
    group: str | None = None,
    *,
    seconds: float = 120.0,
    since: str = "1m",
    fmt: str = "short",
) -> live.Watch:
    """Show the log group's events as they arrive, in place, for ``seconds`` (the Stop
    button ends it sooner): what `aws logs tail --follow` prints, without holding the
    notebook. Calls FilterLogEvents every 5 s. ``group`` defaults to ``/ecs/P-E``; the
    view starts with the events of the last ``since``. Chapter 7.
    """
    _check_format(f"fmt={fmt!r}", fmt)
    name = group or log_group_name(lab)
    reader = EventReader(lab, name, since_millis(since))

    def poll() -> str:
        return "\n".join(format_tail_line(event, fmt) for event in reader.read())

    return live.watch(name, poll, seconds=seconds, interval=FOLLOW_SECONDS, append=True)


@step("Delete the log group")
def delete_log_group(lab: Lab) -> None:
    """Delete the log group ``/ecs/P-E`` and every event in it.

    Calls DescribeLogGroups, then DeleteLogGroup if it exists. Idempotent. Chapter 4
    (teardown).
    """
    _delete_group(lab, log_group_name(lab))


def _delete_group(lab: Lab, name: str) -> None:
    if _find_log_group(lab, name) is not None:
        lab.client("logs").delete_log_group(logGroupName=name)


def leftovers(lab: Lab) -> list[tuple[str, str, str]]:
    """What of this module is still tagged for the student: the log groups under /ecs/ and
    /aws/vpc/, as (service, kind, id) rows for teardown.leftovers."""
    client = lab.client("logs")
    found: list[tuple[str, str, str]] = []
    for prefix in ("/ecs/", "/aws/vpc/"):
        for group in client.describe_log_groups(logGroupNamePrefix=prefix)["logGroups"]:
            tags = client.list_tags_log_group(logGroupName=group["logGroupName"])["tags"]
            if lab.owns(tags):
                found.append(("logs", "log group", group["logGroupName"]))
    return found
