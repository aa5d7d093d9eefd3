"""handson.logs against the sandbox: the API's log group and the views of its events."""

from __future__ import annotations

import re
import time

import pandas as pd
import pytest

from handson import logs
from handson.exceptions import ConfigurationError, NotFoundError

STREAM_A = "ecs/my-project-dev-app/aaaa"
STREAM_B = "ecs/my-project-dev-app/bbbb"


def describe_group(lab) -> dict | None:
    groups = lab.client("logs").describe_log_groups(logGroupNamePrefix="/ecs/")["logGroups"]
    return next((g for g in groups if g["logGroupName"] == logs.log_group_name(lab)), None)


@pytest.fixture
def written(lab) -> list[tuple[int, str, str]]:
    """The log group with six events in two streams, interleaved in time (one second
    apart, the newest a minute ago): (timestamp, stream, message), oldest first."""
    logs.ensure_log_group(lab)
    client = lab.client("logs")
    group = logs.log_group_name(lab)
    start = int(time.time() * 1000) - 60_000 - 6_000
    events = [(start + i * 1000, (STREAM_A, STREAM_B)[i % 2], f"line {i}") for i in range(6)]
    for stream in (STREAM_A, STREAM_B):
        client.create_log_stream(logGroupName=group, logStreamName=stream)
        client.put_log_events(
            logGroupName=group,
            logStreamName=stream,
            logEvents=[{"timestamp": t, "message": m} for t, s, m in events if s == stream],
        )
    return events


# ------------------------------------------------------------------ log group


def test_log_group_keeps_events_14_days_and_is_tagged(lab):
    assert logs.ensure_log_group(lab) == f"/ecs/{lab.prefix}"
    group = describe_group(lab)
    assert group["retentionInDays"] == 14
    arn = group["arn"].removesuffix(":*")
    tags = lab.client("logs").list_tags_for_resource(resourceArn=arn)["tags"]
    assert tags == {t["Key"]: t["Value"] for t in lab.tag_list(f"/ecs/{lab.prefix}")}


def test_second_run_makes_no_changes(lab, make_lab):
    logs.ensure_log_group(lab)
    again = make_lab(student=lab.student)
    assert logs.ensure_log_group(again) == f"/ecs/{lab.prefix}"
    assert again.log.mutating() == []


def test_other_retention_is_set_back_to_14_days(lab):
    client = lab.client("logs")
    client.create_log_group(logGroupName=logs.log_group_name(lab))
    client.put_retention_policy(logGroupName=logs.log_group_name(lab), retentionInDays=30)
    before = len(lab.log.calls)

    logs.ensure_log_group(lab)

    assert [c.operation for c in lab.log.calls[before:] if c.mutating] == ["PutRetentionPolicy"]
    assert describe_group(lab)["retentionInDays"] == 14


def test_longer_names_with_the_same_prefix_are_not_the_group(lab):
    lab.client("logs").create_log_group(logGroupName=f"/ecs/{lab.prefix}-other")
    logs.ensure_log_group(lab)
    assert describe_group(lab) is not None


# --------------------------------------------------------------------- streams


def test_streams_newest_first(lab, written):
    table = logs.show_log_streams(lab)
    assert list(table.columns) == ["stream", "last_event_time", "first_event_time"]
    # line 5 (the newest) went to STREAM_B.
    assert table["stream"].tolist() == [STREAM_B, STREAM_A]
    newest = pd.Timestamp(written[-1][0], unit="ms", tz="UTC")
    assert table["last_event_time"].iloc[0] == newest
    assert (table["first_event_time"] <= table["last_event_time"]).all()
    assert logs.show_log_streams(lab, limit=1)["stream"].tolist() == [STREAM_B]


def test_streams_of_a_missing_group_say_what_to_run(lab):
    with pytest.raises(NotFoundError, match="ResourceNotFoundException") as caught:
        logs.show_log_streams(lab)
    assert "notebook 00" in caught.value.hint


# ---------------------------------------------------------------------- events


def test_events_across_streams_in_time_order(lab, written):
    table = logs.show_log_events(lab)
    assert list(table.columns) == ["time", "stream", "message"]
    assert table["message"].tolist() == [m for _, _, m in written]
    assert table["stream"].tolist() == [s for _, s, _ in written]
    assert str(table["time"].dt.tz) == "UTC"
    assert table["time"].is_monotonic_increasing


def test_limit_keeps_the_latest_events(lab, written):
    table = logs.show_log_events(lab, limit=3)
    assert table["message"].tolist() == ["line 3", "line 4", "line 5"]


def test_since_minutes_leaves_out_older_events(lab, written):
    client = lab.client("logs")
    old = int(time.time() * 1000) - 3 * 60 * 60 * 1000
    client.create_log_stream(logGroupName=logs.log_group_name(lab), logStreamName="old")
    client.put_log_events(
        logGroupName=logs.log_group_name(lab),
        logStreamName="old",
        logEvents=[{"timestamp": old, "message": "three hours ago"}],
    )
    assert "three hours ago" in logs.show_log_events(lab)["message"].tolist()
    recent = logs.show_log_events(lab, since_minutes=60)
    assert recent["message"].tolist() == [m for _, _, m in written]


def test_stream_prefix_keeps_matching_streams(lab, written):
    table = logs.show_log_events(lab, stream_prefix=STREAM_A)
    assert table["stream"].unique().tolist() == [STREAM_A]


def test_empty_group_gives_an_empty_table(lab):
    logs.ensure_log_group(lab)
    table = logs.show_log_events(lab)
    assert table.empty
    assert list(table.columns) == ["time", "stream", "message"]


@pytest.mark.parametrize(
    ("options", "message"),
    [({"limit": 0}, "at least 1 event"), ({"since_minutes": 0}, "above 0")],
)
def test_bad_options_are_refused_before_any_call(lab, options, message):
    with pytest.raises(ConfigurationError, match=message):
        logs.show_log_events(lab, **options)
    assert lab.log.calls == []


# -------------------------------------------------------------------- teardown


def test_delete_leaves_nothing_and_can_run_again(lab, make_lab, written):
    logs.delete_log_group(lab)
    assert describe_group(lab) is None
    again = make_lab(student=lab.student)
    logs.delete_log_group(again)
    assert again.log.mutating() == []


# ------------------------------------------------------------- handson logs tail


def test_tail_prints_what_aws_logs_tail_prints(lab, written):
    lines: list[str] = []
    assert logs.tail_log_events(lab, write=lines.append) == 6
    first = written[0]
    stamp = pd.Timestamp(first[0], unit="ms", tz="UTC").to_pydatetime().isoformat()
    assert lines[0] == f"{stamp} {first[1]} {first[2]}"  # detailed: time, stream, message
    # isoformat(), as the AWS CLI writes it: microseconds unless they are 0, and the offset.
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?\+00:00", stamp)
    short: list[str] = []
    logs.tail_log_events(lab, fmt="short", write=short.append)
    assert short[0] == f"{pd.Timestamp(first[0], unit='ms'):%Y-%m-%dT%H:%M:%S} line 0"


def test_tail_follow_shows_each_new_event_once_until_ctrl_c(lab, written):
    lines: list[str] = []
    polls: list[float] = []
    group = logs.log_group_name(lab)

    def sleep(seconds: float) -> None:
        polls.append(seconds)
        if len(polls) == 1:  # a new event arrives while tail waits
            lab.client("logs").put_log_events(
                logGroupName=group,
                logStreamName=STREAM_A,
                logEvents=[{"timestamp": int(time.time() * 1000), "message": "new line"}],
            )
        else:
            raise KeyboardInterrupt

    assert logs.tail_log_events(lab, follow=True, fmt="short", write=lines.append, sleep=sleep) == 7
    assert [line.split(" ", 1)[1] for line in lines] == [f"line {i}" for i in range(6)] + [
        "new line"
    ]
    assert polls == [logs.FOLLOW_SECONDS, logs.FOLLOW_SECONDS]


def test_a_reader_reads_each_event_once_and_looks_back_for_late_ones(lab, written):
    # Flow log records carry their window's start and arrive minutes later, after newer
    # ones: a reader with an overlap finds them, one without does not (it reads on from the
    # newest event it saw, as `aws logs tail --follow` does).
    group = logs.log_group_name(lab)
    plain = logs.EventReader(lab, group, None)
    looking_back = logs.EventReader(lab, group, None, overlap_ms=10_000)
    for reader in (plain, looking_back):
        assert [e["message"] for e in reader.read()] == [m for _, _, m in written]
        assert list(reader.read()) == [], "nothing read twice"
    late = written[-1][0] - 2_500  # older than the newest event, inside the overlap
    lab.client("logs").put_log_events(
        logGroupName=group,
        logStreamName=STREAM_A,
        logEvents=[{"timestamp": late, "message": "late line"}],
    )
    assert list(plain.read()) == []
    assert [e["message"] for e in looking_back.read()] == ["late line"]
    assert list(looking_back.read()) == []


def test_tail_since(lab, written):
    assert logs.tail_log_events(lab, since="30s", write=lambda line: None) == 0
    assert logs.tail_log_events(lab, since="2h", write=lambda line: None) == 6
    assert logs.since_millis("10m", now=1000.0) == 400_000
    assert logs.since_millis("2025-07-28T16:00:00Z") == 1753718400000
    assert logs.since_millis("2025-07-28T16:00:00") == 1753718400000  # UTC unless told


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"since": "5h30m"}, "--since '5h30m': give a number and one unit"),
        ({"fmt": "json"}, "--format 'json': choose detailed or short"),
    ],
)
def test_tail_bad_options(lab, options, message):
    with pytest.raises(ConfigurationError, match=message):
        logs.tail_log_events(lab, **options)


def test_filter_log_events_interleaves_the_streams_as_aws_does(lab, written):
    # AWS ignores `interleaved` since June 2019 and always merges the streams in time order.
    answer = lab.client("logs").filter_log_events(logGroupName=logs.log_group_name(lab))
    assert [e["message"] for e in answer["events"]] == [f"line {i}" for i in range(6)]
