"""Reaching the ALB by its DNS name through the sandbox's proxy, into the app and
PostgreSQL; logs; two accounts side by side."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request

from world import World


class Alb:
    """HTTP through the sandbox's ALB proxy, as ``curl --proxy`` would."""

    def __init__(self, proxy: str, dns_name: str) -> None:
        self.base = f"http://{dns_name}"
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": proxy}))

    def call(
        self, method: str, path: str, body: dict | None = None
    ) -> tuple[int, dict | str, dict]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.base + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with self.opener.open(request, timeout=10) as response:
                status, raw, headers = response.status, response.read(), dict(response.headers)
        except urllib.error.HTTPError as error:
            status, raw, headers = error.code, error.read(), dict(error.headers)
        try:
            return status, json.loads(raw), headers
        except json.JSONDecodeError:
            return status, raw.decode(), headers


def deploy(world: World, desired: int = 2) -> None:
    world.push_image()
    world.register_task_definition()
    world.create_service(desired=desired)
    world.wait_steady()


def test_alb_answers_health_and_crud_round_trip(world: World, alb_proxy: str) -> None:
    deploy(world)
    alb = Alb(alb_proxy, world.ids["alb_dns"])
    status, body, headers = alb.call("GET", "/")
    assert status == 200
    assert body["version"] == "1.0.0" and body["environment"] == "production"
    assert body["endpoints"] == {"health": "/health", "users": "/api/users"}
    status, body, _ = alb.call("GET", "/health")
    assert status == 200 and body["status"] == "healthy"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", body["timestamp"])
    # CRUD through the ALB into the RDS-backed PostgreSQL.
    status, body, _ = alb.call(
        "POST", "/api/users", {"name": "Test User", "email": "test@example.com"}
    )
    assert status == 201
    user_id = body["user"]["id"]
    assert alb.call("POST", "/api/users", {"name": "Again", "email": "test@example.com"})[0] == 409
    assert alb.call("POST", "/api/users", {"name": "No email"})[0] == 400
    status, body, _ = alb.call("GET", f"/api/users/{user_id}")
    assert status == 200 and body["user"]["email"] == "test@example.com"
    status, body, _ = alb.call("PUT", f"/api/users/{user_id}", {"age": 30})
    assert status == 200 and body["user"]["age"] == 30
    # Requests are spread over both tasks, and all see the same database.
    statuses = [alb.call("GET", "/api/users")[1]["users"][0]["age"] for _ in range(6)]
    assert statuses == [30] * 6
    assert alb.call("GET", "/api/users/abc")[0] == 400
    assert alb.call("DELETE", f"/api/users/{user_id}")[0] == 200
    assert alb.call("GET", f"/api/users/{user_id}")[0] == 404


def test_requests_spread_over_targets(world: World, alb_proxy: str) -> None:
    deploy(world)
    alb = Alb(alb_proxy, world.ids["alb_dns"])
    for _ in range(8):
        assert alb.call("GET", "/health")[0] == 200
    time.sleep(1.0)
    logs = world.client("logs")
    streams = logs.describe_log_streams(logGroupName=world.ids["log_group"])["logStreams"]
    served = 0
    for stream in streams:
        events = logs.get_log_events(
            logGroupName=world.ids["log_group"], logStreamName=stream["logStreamName"]
        )
        if any(
            "GET /health" in e["message"] and "ELB" not in e["message"] for e in events["events"]
        ):
            served += 1
    assert served == 2


def test_no_target_gives_503_like_an_alb(world: World, alb_proxy: str) -> None:
    status, body, headers = Alb(alb_proxy, world.ids["alb_dns"]).call("GET", "/health")
    assert status == 503
    assert "503 Service Temporarily Unavailable" in body
    assert headers["Server"] == "awselb/2.0"


def test_unknown_alb_name_is_not_routed(world: World, alb_proxy: str) -> None:
    status, _, _ = Alb(alb_proxy, "nope-123.ap-northeast-1.elb.amazonaws.com").call("GET", "/")
    assert status == 404


def test_log_streams_and_events(world: World, alb_proxy: str) -> None:
    deploy(world)
    Alb(alb_proxy, world.ids["alb_dns"]).call("GET", "/")
    logs = world.client("logs")
    task_ids = sorted(t["taskArn"].rsplit("/", 1)[-1] for t in world.tasks())
    streams = world.wait_for(
        lambda: logs.describe_log_streams(logGroupName=world.ids["log_group"])["logStreams"],
        what="log streams",
    )
    # <prefix>/<container>/<task-id> (docs/sandbox.md, "awslogs and CloudWatch Logs").
    assert sorted(s["logStreamName"] for s in streams) == [
        f"ecs/demo-dev-app/{t}" for t in task_ids
    ]
    events = world.wait_for(
        lambda: [
            e
            for s in streams
            for e in logs.get_log_events(
                logGroupName=world.ids["log_group"], logStreamName=s["logStreamName"]
            )["events"]
            if "Server listening" in e["message"]
        ],
        what="the start line",
    )
    assert len(events) == 2
    for stream in streams:
        got = logs.get_log_events(
            logGroupName=world.ids["log_group"], logStreamName=stream["logStreamName"]
        )["events"]
        stamps = [e["timestamp"] for e in got]
        assert stamps == sorted(stamps), "events are in order"
        assert abs(stamps[0] / 1000 - time.time()) < 120, "real timestamps"
        messages = [e["message"] for e in got]
        start = next(i for i, m in enumerate(messages) if "Server listening" in m)
        assert any("Schema applied" in m for m in messages[:start])
        # Secrets never reach the logs.
        assert not any(world.ids["db_password"] in m for m in messages)
    # filter_log_events across streams works too.
    found = logs.filter_log_events(logGroupName=world.ids["log_group"], filterPattern="listening")[
        "events"
    ]
    assert len(found) == 2


def test_two_accounts_are_isolated(world: World, new_account: World, alb_proxy: str) -> None:
    other = new_account
    other.build_all()
    deploy(world)
    # The same names in another account: its own VPC, ALB, cluster and service.
    other.push_image()
    other.register_task_definition(
        container={
            "environment": [
                {"name": "APP_ENV", "value": "other"},
                {"name": "PORT", "value": "3000"},
            ]
        }
    )
    other.create_service(desired=1)
    other.wait_steady()
    assert world.ids["alb_dns"] != other.ids["alb_dns"]
    assert world.ids["cluster"].split(":")[4] == world.account_id
    assert other.ids["cluster"].split(":")[4] == other.account_id
    ecs = world.client("ecs")
    assert ecs.list_clusters()["clusterArns"] == [world.ids["cluster"]]
    assert other.client("ecs").list_clusters()["clusterArns"] == [other.ids["cluster"]]
    assert len(world.tasks()) == 2 and len(other.tasks()) == 1
    # Each ALB reaches only its own account's tasks and database.
    mine = Alb(alb_proxy, world.ids["alb_dns"])
    theirs = Alb(alb_proxy, other.ids["alb_dns"])
    assert mine.call("GET", "/")[1]["environment"] == "production"
    assert theirs.call("GET", "/")[1]["environment"] == "other"
    assert mine.call("POST", "/api/users", {"name": "A", "email": "a@example.com"})[0] == 201
    assert theirs.call("GET", "/api/users")[1] == {"users": []}
    # A task of one account is unknown in the other.
    answer = other.client("ecs").describe_tasks(
        cluster=other.ids["cluster"], tasks=[world.tasks()[0]["taskArn"]]
    )
    assert answer["tasks"] == []
    assert answer["failures"][0]["reason"] == "MISSING"
