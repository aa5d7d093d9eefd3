"""Fixtures for the sample API: a real PostgreSQL (pgserver) and the app run as a subprocess."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

APP_DIR = Path(__file__).resolve().parents[2] / "app"
# Distinctive, so that a leak into the app's output cannot be missed.
DB_PASSWORD = "pw-Zq8!sEcReT-do-not-log-42"
DB_NAME = "handson_app_test"
READY_LINE = "Server listening on http://"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    raw: bytes

    @property
    def json(self):
        return json.loads(self.raw)


@dataclass
class AppProcess:
    """The app running as `python main.py` in app/, like the image's CMD."""

    proc: subprocess.Popen
    port: int
    lines: list[str] = field(default_factory=list)
    startup_s: float | None = None

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def request(
        self,
        method: str,
        path: str,
        body=None,
        *,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        try:
            data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
            hdrs = dict(headers or {})
            if data is not None:
                hdrs.setdefault("Content-Type", "application/json")
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
        finally:
            conn.close()

    def wait_for_line(self, needle: str, timeout: float = 15) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(needle in line for line in self.lines):
                return True
            if self.proc.poll() is not None:
                time.sleep(0.1)  # let the reader thread collect the last lines
                return any(needle in line for line in self.lines)
            time.sleep(0.01)
        return False

    def stop(self, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")


def start_app(env: dict[str, str], *, wait_ready: bool = True) -> AppProcess:
    """Start the app with a scrubbed environment plus `env`; wait for its listening line."""
    port = free_port()
    full_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "PYTHONUNBUFFERED": "1",
        **env,
    }
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "main.py"],
        cwd=APP_DIR,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    app = AppProcess(proc=proc, port=port)

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if READY_LINE in line and app.startup_s is None:
                app.startup_s = time.perf_counter() - started
            app.lines.append(line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()
    if wait_ready and not app.wait_for_line(READY_LINE):
        app.stop()
        raise AssertionError(f"app did not start:\n{app.output}")
    return app


@pytest.fixture(scope="module")
def pg(tmp_path_factory):
    """A PostgreSQL server on a unix socket, with an empty test database."""
    pgserver = pytest.importorskip("pgserver")
    # As root, pgserver runs PostgreSQL as an unprivileged user, which must be able to
    # reach the data directory: pytest's own temp root is private (0700).
    base = Path(tempfile.mkdtemp(prefix="handson-app-pg-"))
    base.chmod(0o755)
    server = pgserver.get_server(base / "data", cleanup_mode="delete")
    info = server.get_postmaster_info()
    conninfo = {"host": str(info.socket_dir), "port": info.port, "user": "postgres"}
    with psycopg.connect(**conninfo, dbname="postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME}")
        conn.execute(f"CREATE DATABASE {DB_NAME}")
    yield {**conninfo, "dbname": DB_NAME}
    server.cleanup()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def db_env(pg) -> dict[str, str]:
    return {
        "DB_HOST": pg["host"],
        "DB_PORT": str(pg["port"]),
        "DB_NAME": pg["dbname"],
        "DB_USER": pg["user"],
        "DB_PASSWORD": DB_PASSWORD,
        "APP_ENV": "test",
        "DB_WAIT_TIMEOUT": "10",
    }


@pytest.fixture
def launch():
    """start_app for one test; whatever it started is stopped afterwards."""
    started: list[AppProcess] = []

    def _launch(env: dict[str, str], *, wait_ready: bool = True) -> AppProcess:
        proc = start_app(env, wait_ready=wait_ready)
        started.append(proc)
        return proc

    yield _launch
    for proc in started:
        proc.stop()


@pytest.fixture(scope="module")
def app(db_env):
    proc = start_app(db_env)
    yield proc
    proc.stop()


@pytest.fixture
def sql(pg):
    """Run SQL against the test database (as the test, not through the app)."""
    with psycopg.connect(**pg, autocommit=True) as conn:
        yield conn
