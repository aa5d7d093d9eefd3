"""handson CRUD API: the small users service the course deploys to ECS behind an ALB.

Standard library HTTP server plus psycopg 3. Configuration comes from the environment:
HOST, PORT, APP_ENV, DB_HOST, DB_PORT, DB_NAME, DB_USER, DB_PASSWORD, SKIP_DB_WAIT,
DB_WAIT_TIMEOUT. Run with ``python main.py``.
"""

import json
import logging
import os
import queue
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.rows import dict_row

VERSION = "1.0.0"
MAX_BODY_BYTES = 1024 * 1024
POOL_MAX_SIZE = 10
POOL_MAX_IDLE = 4
CONNECT_TIMEOUT_S = 5
SHUTDOWN_GRACE_S = 10.0
INT4_MAX = 2**31 - 1
USER_COLUMNS = "id, name, email, age, created_at, updated_at"

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS users (
    id SERIAL PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT NOT NULL UNIQUE,
    age INTEGER,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
)
"""
# Any constant works; it only has to be the same in every replica of the service.
SCHEMA_LOCK_KEY = 7_151_001

log = logging.getLogger("handson.api")


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class Config:
    """Settings read once from the environment at start."""

    host: str
    port: int
    environment: str
    db_host: str
    db_port: int
    db_name: str
    db_user: str
    db_password: str
    skip_db_wait: bool
    db_wait_timeout: float

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "Config":
        """Build the configuration; raises ValueError naming the variable that is wrong."""
        return cls(
            host=env.get("HOST", "0.0.0.0") or "0.0.0.0",
            port=_int_var(env, "PORT", 3000),
            environment=env.get("APP_ENV", "development") or "development",
            db_host=env.get("DB_HOST", "localhost") or "localhost",
            db_port=_int_var(env, "DB_PORT", 5432),
            db_name=env.get("DB_NAME", "postgres") or "postgres",
            db_user=env.get("DB_USER", "postgres") or "postgres",
            db_password=env.get("DB_PASSWORD", ""),
            skip_db_wait=env.get("SKIP_DB_WAIT", "").strip().lower() in ("1", "true", "yes"),
            db_wait_timeout=float(_int_var(env, "DB_WAIT_TIMEOUT", 60)),
        )

    def connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for psycopg.connect (holds the password: never log this)."""
        kwargs: dict[str, Any] = {
            "host": self.db_host,
            "port": self.db_port,
            "dbname": self.db_name,
            "user": self.db_user,
            "connect_timeout": CONNECT_TIMEOUT_S,
            "application_name": "handson-api",
            "autocommit": True,
        }
        if self.db_password:
            kwargs["password"] = self.db_password
        return kwargs

    def db_label(self) -> str:
        """Where the database is, for log lines: no password, no conninfo."""
        return f"{self.db_host}:{self.db_port}/{self.db_name} as {self.db_user}"

    def redact(self, text: str) -> str:
        """Remove the password from a message, in case a driver ever echoes it."""
        return text.replace(self.db_password, "***") if self.db_password else text


def _int_var(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None


def one_line(exc: BaseException, config: Config) -> str:
    """An exception as a single redacted log line (one CloudWatch event per line)."""
    text = " | ".join(part.strip() for part in str(exc).splitlines() if part.strip())
    return config.redact(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)


# --------------------------------------------------------------------------- database


class PoolExhausted(Exception):
    """Every database connection stayed busy for longer than the connect timeout."""


class Database:
    """A small thread-safe connection pool: at most POOL_MAX_SIZE connections, a few kept idle."""

    def __init__(self, config: Config) -> None:
        self._config = config
        self._idle: queue.LifoQueue[psycopg.Connection[dict[str, Any]]] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(POOL_MAX_SIZE)

    def _connect(self) -> psycopg.Connection[dict[str, Any]]:
        return psycopg.connect(**self._config.connect_kwargs(), row_factory=dict_row)

    @contextmanager
    def connection(self) -> Iterator[tuple[psycopg.Connection[dict[str, Any]], bool]]:
        """Lend a connection; yields (connection, reused) and takes it back afterwards."""
        if not self._slots.acquire(timeout=CONNECT_TIMEOUT_S):
            raise PoolExhausted("all database connections are busy")
        conn: psycopg.Connection[dict[str, Any]] | None = None
        try:
            reused = True
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                conn, reused = self._connect(), False
            yield conn, reused
        finally:
            if conn is not None:
                self._give_back(conn)
            self._slots.release()

    def _give_back(self, conn: psycopg.Connection[dict[str, Any]]) -> None:
        if conn.closed or conn.broken or self._idle.qsize() >= POOL_MAX_IDLE:
            conn.close()
        else:
            self._idle.put(conn)

    def run(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        """Run one statement (autocommit) and return its rows.

        A pooled connection may have died while idle (database restart, failover, idle
        timeout). Each statement is atomic, so when a reused connection turns out broken
        the statement is retried on a fresh connection.
        """
        for attempt in range(1, 4):
            with self.connection() as (conn, reused):
                try:
                    cur = conn.execute(sql, params)
                    return cur.fetchall() if cur.description else []
                except psycopg.OperationalError:
                    if attempt == 3 or not (reused and conn.broken):
                        raise
            log.warning("Database connection was lost; reconnecting")
            # Whatever killed it (restart, failover) killed the other idle connections too.
            self.close()
        raise AssertionError("unreachable")

    def close(self) -> None:
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return


def wait_for_database(config: Config) -> bool:
    """Try to connect until it works or DB_WAIT_TIMEOUT seconds have passed."""
    deadline = time.monotonic() + config.db_wait_timeout
    attempt = 0
    log.info("Waiting for database %s (timeout %gs)", config.db_label(), config.db_wait_timeout)
    while True:
        attempt += 1
        try:
            psycopg.connect(**config.connect_kwargs()).close()
        except psycopg.Error as exc:
            remaining = deadline - time.monotonic()
            log.warning("Database not ready (attempt %d): %s", attempt, one_line(exc, config))
            if remaining <= 0:
                return False
            time.sleep(min(1.0, remaining))
        else:
            log.info("Database is ready (attempt %d)", attempt)
            return True


def apply_schema(db: Database) -> None:
    """Create the users table if needed. Idempotent.

    Replicas start together (desired count 2), and two concurrent CREATE TABLE IF NOT EXISTS
    can still collide in the catalog, so the migration runs under an advisory lock.
    """
    with db.connection() as (conn, _reused), conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_KEY,))
        conn.execute(SCHEMA_SQL)
    log.info("Schema applied (table users)")


# --------------------------------------------------------------------------- serialisation


def iso_utc(value: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and Z, like JavaScript's Date.toISOString()."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def user_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "email": row["email"],
        "age": row["age"],
        "created_at": iso_utc(row["created_at"]),
        "updated_at": iso_utc(row["updated_at"]),
    }


# --------------------------------------------------------------------------- users API


class ApiError(Exception):
    """An error answered as {"error": message} with an HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def parse_id(raw: str) -> int:
    if not re.fullmatch(r"[0-9]+", raw):
        raise ApiError(400, "Invalid user ID")
    user_id = int(raw)
    if user_id > INT4_MAX:  # beyond SERIAL's range: cannot exist
        raise ApiError(404, "User not found")
    return user_id


def validate_fields(body: dict[str, Any], *, partial: bool) -> dict[str, Any]:
    """Check name, email and age; returns only the fields that were given."""
    fields: dict[str, Any] = {}
    for key in ("name", "email"):
        if key in body:
            value = body[key]
            if not isinstance(value, str) or not value.strip():
                raise ApiError(400, f"{key.capitalize()} must be a non-empty string")
            fields[key] = value.strip()
    if not partial and ("name" not in fields or "email" not in fields):
        raise ApiError(400, "Name and email are required")
    if "age" in body:
        age = body["age"]
        if age is not None and (
            isinstance(age, bool) or not isinstance(age, int) or not 0 <= age <= INT4_MAX
        ):
            raise ApiError(400, "Age must be a non-negative integer or null")
        fields["age"] = age
    if partial and not fields:
        raise ApiError(400, "Provide at least one of name, email, age")
    return fields


class UsersApi:
    """The users resource: each method returns (status, payload) or raises ApiError."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def list_users(self) -> tuple[int, dict[str, Any]]:
        rows = self.db.run(f"SELECT {USER_COLUMNS} FROM users ORDER BY id")
        return 200, {"users": [user_json(r) for r in rows]}

    def get_user(self, user_id: int) -> tuple[int, dict[str, Any]]:
        rows = self.db.run(f"SELECT {USER_COLUMNS} FROM users WHERE id = %s", (user_id,))
        return 200, {"user": user_json(self._one(rows))}

    def create_user(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        fields = validate_fields(body, partial=False)
        rows = self._write(
            f"INSERT INTO users (name, email, age) VALUES (%s, %s, %s) RETURNING {USER_COLUMNS}",
            (fields["name"], fields["email"], fields.get("age")),
        )
        return 201, {"user": user_json(self._one(rows))}

    def update_user(self, user_id: int, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        fields = validate_fields(body, partial=True)
        # Column names come from the fixed whitelist in validate_fields, never from the client.
        assignments = ", ".join(f"{column} = %s" for column in fields)
        rows = self._write(
            f"UPDATE users SET {assignments}, updated_at = NOW() WHERE id = %s "
            f"RETURNING {USER_COLUMNS}",
            (*fields.values(), user_id),
        )
        return 200, {"user": user_json(self._one(rows))}

    def delete_user(self, user_id: int) -> tuple[int, dict[str, Any]]:
        rows = self.db.run(f"DELETE FROM users WHERE id = %s RETURNING {USER_COLUMNS}", (user_id,))
        return 200, {"message": "User deleted", "user": user_json(self._one(rows))}

    def _write(self, sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
        try:
            return self.db.run(sql, params)
        except pg_errors.UniqueViolation:
            raise ApiError(409, "Email already exists") from None

    @staticmethod
    def _one(rows: list[dict[str, Any]]) -> dict[str, Any]:
        if not rows:
            raise ApiError(404, "User not found")
        return rows[0]


# --------------------------------------------------------------------------- HTTP


class ApiServer(ThreadingHTTPServer):
    """Thread-per-connection server that counts requests in flight for a graceful stop."""

    daemon_threads = True  # idle keep-alive connections must not block exit
    allow_reuse_address = True
    request_queue_size = 128  # socketserver's default backlog of 5 resets bursts of connects

    def __init__(self, config: Config, api: UsersApi) -> None:
        if ":" in config.host:
            self.address_family = socket.AF_INET6
        self.config = config
        self.api = api
        self.stopping = False
        self._inflight = 0
        self._inflight_cond = threading.Condition()
        super().__init__((config.host, config.port), RequestHandler)

    @contextmanager
    def tracking(self) -> Iterator[None]:
        with self._inflight_cond:
            self._inflight += 1
        try:
            yield
        finally:
            with self._inflight_cond:
                self._inflight -= 1
                self._inflight_cond.notify_all()

    def drain(self, timeout: float) -> bool:
        """Wait until no request is being handled; False if some were still running."""
        with self._inflight_cond:
            return self._inflight_cond.wait_for(lambda: self._inflight == 0, timeout)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up mid-request (a load balancer closing an idle
        connection, a health check that timed out) is one log line, not a traceback."""
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionResetError, BrokenPipeError, TimeoutError)):
            log.info("client %s closed the connection: %s", client_address[0], error)
            return
        super().handle_error(request, client_address)


class RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "handson-api/" + VERSION
    # Longer than the ALB's 60 s idle timeout, so the ALB, not the target, closes idle links.
    timeout = 75
    server: ApiServer
    _body: bytes = b""

    def do_GET(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_OPTIONS(self) -> None:
        self._handle()

    def _handle(self) -> None:
        started = time.perf_counter()
        method = "GET" if self.command == "HEAD" else self.command
        path = self.path.split("?", 1)[0].split("#", 1)[0]
        with self.server.tracking():
            try:
                self._body = self._read_body()
                status, payload = self._route(method, path)
            except ApiError as exc:
                status, payload = exc.status, {"error": exc.message}
            except Exception as exc:
                log.error("%s %s failed: %s", self.command, path, one_line(exc, self.server.config))
                status, payload = 500, {"error": "Internal server error"}
            if self.server.stopping:
                self.close_connection = True
            self._send_json(status, payload)
        elapsed_ms = (time.perf_counter() - started) * 1000
        log.info("%s %s %d %.1fms", self.command, path, status, elapsed_ms)

    def _route(self, method: str, path: str) -> tuple[int, dict[str, Any]]:
        if len(path) > 1:
            path = path.rstrip("/")
        api = self.server.api
        if path == "/" and method == "GET":
            return 200, {
                "message": "handson CRUD API Server",
                "version": VERSION,
                "environment": self.server.config.environment,
                "endpoints": {"health": "/health", "users": "/api/users"},
            }
        if path == "/health" and method == "GET":
            return 200, {"status": "healthy", "timestamp": iso_utc(datetime.now(UTC))}
        if path == "/api/users":
            if method == "GET":
                return api.list_users()
            if method == "POST":
                return api.create_user(self._json_body())
        elif path.startswith("/api/users/") and path.count("/") == 3:
            raw_id = path.rsplit("/", 1)[1]
            if method == "GET":
                return api.get_user(parse_id(raw_id))
            if method == "PUT":
                return api.update_user(parse_id(raw_id), self._json_body())
            if method == "DELETE":
                return api.delete_user(parse_id(raw_id))
        raise ApiError(404, "Not found")

    def _read_body(self) -> bytes:
        """Read the whole body before routing, so that an early error (say a bad id on PUT)
        never leaves unread bytes that a keep-alive connection would take as the next request."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            raise ApiError(400, "Chunked request bodies are not supported; send Content-Length")
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.close_connection = True
            raise ApiError(400, "Invalid Content-Length") from None
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            raise ApiError(413, "Request body too large")
        return self.rfile.read(length) if length > 0 else b""

    def _json_body(self) -> dict[str, Any]:
        try:
            body = json.loads(self._body)
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, "Invalid JSON body") from None
        if not isinstance(body, dict):
            raise ApiError(400, "JSON body must be an object")
        return body

    def _send_json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Protocol-level errors (bad request line, oversized headers) also answer JSON."""
        self.close_connection = True
        try:
            self._send_json(code, {"error": message or HTTPStatus(code).phrase})
        except OSError:
            pass
        log.info("%s %s %d", self.command or "-", getattr(self, "path", "") or "-", code)

    def version_string(self) -> str:
        return self.server_version  # no Python version in the Server header

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # _handle logs one line per request itself

    def log_message(self, format: str, *args: Any) -> None:
        log.warning("http: %s", format % args)


# --------------------------------------------------------------------------- entry point


def configure_logging() -> None:
    # StreamHandler flushes after every record: one line, one CloudWatch event, right away.
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def main() -> int:
    """Wait for the database, migrate, serve until SIGTERM/SIGINT; returns the exit status."""
    configure_logging()
    try:
        config = Config.from_env()
    except ValueError as exc:
        log.error("Invalid configuration: %s", exc)
        return 1

    def stop_while_starting(signum: int, _frame: FrameType | None) -> None:
        log.info("Received %s before the server started; exiting", signal.Signals(signum).name)
        raise SystemExit(0)

    # ECS may stop a task that is still waiting for its database: that is a clean stop too.
    signal.signal(signal.SIGTERM, stop_while_starting)
    signal.signal(signal.SIGINT, stop_while_starting)

    db = Database(config)
    if config.skip_db_wait:
        log.info("SKIP_DB_WAIT set: not waiting for the database, schema not applied")
    else:
        if not wait_for_database(config):
            log.error(
                "Database %s not reachable after %gs; exiting",
                config.db_label(),
                config.db_wait_timeout,
            )
            return 1
        try:
            apply_schema(db)
        except psycopg.Error as exc:
            log.error("Schema migration failed: %s", one_line(exc, config))
            return 1

    try:
        server = ApiServer(config, UsersApi(db))
    except OSError as exc:
        log.error("Cannot listen on %s:%d: %s", config.host, config.port, exc)
        return 1

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("Received %s, shutting down", signal.Signals(signum).name)
        server.stopping = True
        # shutdown() blocks until serve_forever returns, which runs in this (main) thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    shown_host = f"[{config.host}]" if ":" in config.host else config.host
    log.info(
        "Server listening on http://%s:%d (environment=%s)",
        shown_host,
        server.server_address[1],
        config.environment,
    )
    server.serve_forever(poll_interval=0.2)

    if not server.drain(SHUTDOWN_GRACE_S):
        log.warning("Requests still running after %gs; stopping anyway", SHUTDOWN_GRACE_S)
    server.server_close()
    db.close()
    log.info("Server stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
