"""The sample API (app/main.py) against a real PostgreSQL, run the way the image runs it."""

from __future__ import annotations

import json
import re
import socket
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pytest

ISO_MS_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
READY_LINE = "Server listening on http://"
USER_KEYS = {"id", "name", "email", "age", "created_at", "updated_at"}


def email() -> str:
    return f"{uuid.uuid4().hex[:12]}@example.com"


def create(app, **fields):
    body = {"name": "Taro", "email": email(), **fields}
    resp = app.request("POST", "/api/users", body)
    assert resp.status == 201, resp.raw
    return resp.json["user"]


def assert_error(resp, status: int) -> None:
    assert resp.status == status, (resp.status, resp.raw)
    assert resp.headers["content-type"] == "application/json"
    body = resp.json
    assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"]


# --------------------------------------------------------------------------- info routes


def test_root(app):
    resp = app.request("GET", "/")
    assert resp.status == 200
    assert resp.headers["content-type"] == "application/json"
    assert resp.json == {
        "message": "handson CRUD API Server",
        "version": "1.0.0",
        "environment": "test",
        "endpoints": {"health": "/health", "users": "/api/users"},
    }


def test_health(app):
    resp = app.request("GET", "/health")
    assert resp.status == 200
    assert resp.headers["content-type"] == "application/json"
    body = resp.json
    assert body["status"] == "healthy"
    assert ISO_MS_Z.match(body["timestamp"]), body["timestamp"]
    datetime.fromisoformat(body["timestamp"])


def test_environment_defaults_to_development(launch, db_env):
    env = {k: v for k, v in db_env.items() if k != "APP_ENV"}
    other = launch({**env, "SKIP_DB_WAIT": "true"})
    try:
        assert other.request("GET", "/").json["environment"] == "development"
        assert "(environment=development)" in other.output
    finally:
        assert other.stop() == 0


# --------------------------------------------------------------------------- users CRUD


def test_create_returns_201_and_user(app):
    addr = email()
    resp = app.request("POST", "/api/users", {"name": "Hanako", "email": addr, "age": 31})
    assert resp.status == 201
    assert resp.headers["content-type"] == "application/json"
    user = resp.json["user"]
    assert set(user) == USER_KEYS
    assert isinstance(user["id"], int)
    assert (user["name"], user["email"], user["age"]) == ("Hanako", addr, 31)
    assert ISO_MS_Z.match(user["created_at"]) and ISO_MS_Z.match(user["updated_at"])


def test_create_without_age_stores_null(app):
    assert create(app)["age"] is None


def test_list_users(app):
    a, b = create(app), create(app)
    resp = app.request("GET", "/api/users")
    assert resp.status == 200
    users = resp.json["users"]
    ids = [u["id"] for u in users]
    assert a["id"] in ids and b["id"] in ids
    assert ids == sorted(ids)
    assert all(set(u) == USER_KEYS for u in users)


def test_get_user(app):
    user = create(app, age=20)
    resp = app.request("GET", f"/api/users/{user['id']}")
    assert resp.status == 200
    assert resp.json == {"user": user}


def test_update_user_refreshes_updated_at(app):
    user = create(app, age=20)
    resp = app.request("PUT", f"/api/users/{user['id']}", {"name": "Jiro"})
    assert resp.status == 200
    updated = resp.json["user"]
    assert updated["name"] == "Jiro"
    assert (updated["email"], updated["age"]) == (user["email"], 20)
    assert updated["created_at"] == user["created_at"]
    assert datetime.fromisoformat(updated["updated_at"]) > datetime.fromisoformat(
        user["updated_at"]
    )


def test_update_email_and_clear_age(app):
    user = create(app, age=20)
    addr = email()
    resp = app.request("PUT", f"/api/users/{user['id']}", {"email": addr, "age": None})
    assert resp.status == 200
    assert (resp.json["user"]["email"], resp.json["user"]["age"]) == (addr, None)
    assert app.request("GET", f"/api/users/{user['id']}").json["user"]["email"] == addr


def test_delete_user_returns_it(app):
    user = create(app)
    resp = app.request("DELETE", f"/api/users/{user['id']}")
    assert resp.status == 200
    assert resp.json["user"] == user
    assert_error(app.request("GET", f"/api/users/{user['id']}"), 404)
    assert_error(app.request("DELETE", f"/api/users/{user['id']}"), 404)


def test_concurrent_creates(app):
    with ThreadPoolExecutor(max_workers=16) as pool:
        users = list(pool.map(lambda _: create(app), range(40)))
    assert len({u["id"] for u in users}) == 40


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
@pytest.mark.parametrize("raw_id", ["abc", "1x", "-1", "1.5"])
def test_non_numeric_id_is_400(app, method, raw_id):
    body = {"name": "X"} if method == "PUT" else None
    assert_error(app.request(method, f"/api/users/{raw_id}", body), 400)


@pytest.mark.parametrize(
    "body",
    [
        {"email": "a@example.com"},
        {"name": "A"},
        {},
        {"name": "", "email": "b@example.com"},
        {"name": "A", "email": None},
        {"name": 5, "email": "c@example.com"},
        {"name": "A", "email": "d@example.com", "age": "old"},
        {"name": "A", "email": "e@example.com", "age": True},
    ],
)
def test_create_invalid_fields_is_400(app, body):
    assert_error(app.request("POST", "/api/users", body), 400)


@pytest.mark.parametrize(("method", "path"), [("POST", "/api/users"), ("PUT", "/api/users/1")])
@pytest.mark.parametrize("raw", [b"{not json", b"", b"[1, 2]", b'"text"', b"\xff\xfe"])
def test_invalid_json_body_is_400(app, method, path, raw):
    assert_error(app.request(method, path, raw=raw), 400)


def test_update_with_no_fields_is_400(app):
    user = create(app)
    assert_error(app.request("PUT", f"/api/users/{user['id']}", {}), 400)
    assert_error(app.request("PUT", f"/api/users/{user['id']}", {"name": ""}), 400)


@pytest.mark.parametrize("user_id", ["999999", "99999999999999999999"])
def test_unknown_id_is_404(app, user_id):
    assert_error(app.request("GET", f"/api/users/{user_id}"), 404)
    assert_error(app.request("PUT", f"/api/users/{user_id}", {"name": "X"}), 404)
    assert_error(app.request("DELETE", f"/api/users/{user_id}"), 404)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/nope"),
        ("GET", "/api"),
        ("GET", "/api/users/1/extra"),
        ("POST", "/health"),
        ("DELETE", "/api/users"),
        ("PATCH", "/api/users/1"),
    ],
)
def test_unknown_route_is_404(app, method, path):
    assert_error(app.request(method, path), 404)


def test_duplicate_email_is_409(app):
    first = create(app)
    assert_error(app.request("POST", "/api/users", {"name": "Dup", "email": first["email"]}), 409)
    second = create(app)
    assert_error(app.request("PUT", f"/api/users/{second['id']}", {"email": first["email"]}), 409)


def test_keep_alive_connection_survives_an_early_error(app):
    """A PUT rejected for its id must not leave its body in the stream for the next request."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", app.port, timeout=10)
    try:
        conn.request("PUT", "/api/users/abc", body=b'{"name": "X"}')
        first = conn.getresponse()
        first.read()
        conn.request("GET", "/health")
        second = conn.getresponse()
        assert (first.status, second.status) == (400, 200)
        assert second.read().startswith(b'{"status": "healthy"')
    finally:
        conn.close()


def raw_exchange(app, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", app.port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_malformed_request_answers_json(app):
    huge_header = b"X-Big: " + b"a" * 70000 + b"\r\n"
    reply = raw_exchange(app, b"GET /health HTTP/1.1\r\n" + huge_header + b"\r\n")
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431 ") and b"Content-Type: application/json" in head
    assert json.loads(body)["error"]


def test_oversized_body_is_refused(app):
    reply = raw_exchange(
        app, b"POST /api/users HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n\r\n{}"
    )
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 ")
    assert set(json.loads(body)) == {"error"}


def test_head_and_trailing_slash(app):
    head = app.request("HEAD", "/health")
    assert (head.status, head.raw) == (200, b"")
    assert app.request("GET", "/api/users/").status == 200


# --------------------------------------------------------------------------- database life


def test_schema(app, sql):
    rows = sql.execute(
        "SELECT column_name, data_type, is_nullable, column_default "
        "FROM information_schema.columns WHERE table_name = 'users' ORDER BY ordinal_position"
    ).fetchall()
    columns = {name: (dtype, nullable, default) for name, dtype, nullable, default in rows}
    assert list(columns) == ["id", "name", "email", "age", "created_at", "updated_at"]
    assert columns["id"][0] == "integer" and "nextval" in columns["id"][2]
    assert columns["name"][:2] == ("text", "NO")
    assert columns["email"][:2] == ("text", "NO")
    assert columns["age"][:2] == ("integer", "YES")
    for ts in ("created_at", "updated_at"):
        assert columns[ts][0].startswith("timestamp") and "now()" in columns[ts][2]
    unique = sql.execute(
        "SELECT count(*) FROM information_schema.table_constraints "
        "WHERE table_name = 'users' AND constraint_type IN ('UNIQUE', 'PRIMARY KEY')"
    ).fetchone()
    assert unique == (2,)


def test_schema_is_applied_idempotently(launch, app, db_env):
    user = create(app)
    second = launch(db_env)  # same database: CREATE TABLE IF NOT EXISTS again
    try:
        assert "Schema applied" in second.output
        assert second.request("GET", f"/api/users/{user['id']}").json["user"] == user
    finally:
        assert second.stop() == 0


def test_recovers_when_database_connections_drop(app, sql):
    create(app)  # make sure the app holds an idle pooled connection
    killed = sql.execute(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE application_name = 'handson-api'"
    ).fetchone()[0]
    assert killed >= 1
    assert app.request("GET", "/api/users").status == 200
    assert create(app)["id"]


def test_skip_db_wait_without_database(launch, db_env, tmp_path):
    password = db_env["DB_PASSWORD"]
    app = launch({**db_env, "SKIP_DB_WAIT": "1", "DB_HOST": str(tmp_path / "no-socket-here")})
    try:
        assert "SKIP_DB_WAIT" in app.output and "Waiting for database" not in app.output
        assert app.request("GET", "/").status == 200
        assert app.request("GET", "/health").json["status"] == "healthy"
        assert_error(app.request("GET", "/api/users"), 500)
        assert_error(app.request("GET", "/api/users/1"), 500)
        assert_error(app.request("POST", "/api/users", {"name": "A", "email": email()}), 500)
        # validation still answers before the database is needed
        assert_error(app.request("POST", "/api/users", {"name": "A"}), 400)
    finally:
        assert app.stop() == 0
    assert password not in app.output


def test_skip_db_wait_with_database_serves_crud(launch, db_env):
    app = launch({**db_env, "SKIP_DB_WAIT": "true"})
    try:
        assert "Schema applied" not in app.output
        assert app.request("GET", "/api/users").status == 200  # the table exists already
    finally:
        assert app.stop() == 0


def test_database_wait_times_out_with_exit_1(launch, db_env):
    app = launch({**db_env, "DB_NAME": "no_such_db", "DB_WAIT_TIMEOUT": "1"}, wait_ready=False)
    assert app.proc.wait(30) == 1
    app.wait_for_line("exiting")
    attempts = [line for line in app.lines if "Database not ready (attempt" in line]
    assert len(attempts) >= 2, app.output
    assert all(line.startswith("WARNING ") for line in attempts)
    assert any(line.startswith("ERROR ") and "not reachable" in line for line in app.lines)
    assert READY_LINE not in app.output
    assert db_env["DB_PASSWORD"] not in app.output


def test_sigterm_while_waiting_for_the_database_exits_0(launch, db_env):
    app = launch({**db_env, "DB_NAME": "no_such_db"}, wait_ready=False)
    assert app.wait_for_line("Database not ready (attempt 1)")
    assert app.stop() == 0
    assert app.wait_for_line("before the server started; exiting")


def test_waits_for_a_database_that_comes_up_late(launch, db_env, sql):
    """The database is created while the app is already retrying."""
    sql.execute("DROP DATABASE IF EXISTS handson_late")
    app = launch({**db_env, "DB_NAME": "handson_late"}, wait_ready=False)
    try:
        assert app.wait_for_line("Database not ready (attempt 1)")
        sql.execute("CREATE DATABASE handson_late")
        assert app.wait_for_line(READY_LINE), app.output
        assert app.request("GET", "/api/users").json == {"users": []}
    finally:
        assert app.stop() == 0
    sql.execute("DROP DATABASE IF EXISTS handson_late")


@pytest.mark.parametrize("bad", [{"PORT": "abc"}, {"DB_WAIT_TIMEOUT": "soon"}])
def test_invalid_configuration_exits_1(launch, bad):
    app = launch({"SKIP_DB_WAIT": "1", **bad}, wait_ready=False)
    assert app.proc.wait(30) == 1
    app.wait_for_line("Invalid configuration")
    assert "Invalid configuration" in app.output


# --------------------------------------------------------------------------- process


def test_sigterm_exits_0(launch, db_env):
    app = launch(db_env)
    assert app.request("GET", "/api/users").status == 200
    assert app.stop() == 0
    app.wait_for_line("Server stopped")
    assert "Received SIGTERM, shutting down" in app.output
    assert app.lines[-1] == "INFO Server stopped"


def test_log_lines(app):
    app.request("GET", "/health")
    app.request("GET", "/api/users/abc")
    assert app.wait_for_line("GET /api/users/abc 400")
    assert any(re.fullmatch(r"INFO GET /health 200 \d+\.\dms", line) for line in app.lines)
    start = [line for line in app.lines if READY_LINE in line]
    assert start == [f"INFO Server listening on http://127.0.0.1:{app.port} (environment=test)"]
    assert all(re.match(r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL) ", line) for line in app.lines)


def test_a_client_that_resets_the_connection_is_one_log_line(app):
    """A health check that times out or a proxy that hangs up mid-request resets the
    connection: the app logs one line, never a traceback a learner would take for a bug."""
    import struct

    sock = socket.create_connection(("127.0.0.1", app.port), timeout=10)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # headers not finished
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()  # with SO_LINGER 0: a TCP reset instead of a FIN
    assert app.wait_for_line("closed the connection")
    assert app.request("GET", "/health").status == 200
    assert "Traceback" not in app.output


def test_password_never_in_output(app, db_env):
    assert app.lines
    assert db_env["DB_PASSWORD"] not in app.output


def test_startup_and_memory(app, record_property):
    """Measured, reported, not timed: RSS must stay under 60 MB after real traffic."""
    for _ in range(50):
        app.request("GET", "/api/users")
    rss_mib = app.rss_kib() / 1024
    record_property("startup_s", app.startup_s)
    record_property("rss_mib", rss_mib)
    print(
        f"\napp startup (spawn to listening line, DB ready): {app.startup_s * 1000:.0f} ms; "
        f"RSS after traffic: {rss_mib:.1f} MiB"
    )
    assert rss_mib < 60
