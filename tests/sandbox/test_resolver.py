"""The task processes' stand-in for VPC DNS (resolver/sitecustomize.py)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from handson.sandbox.dataplane.database import PostgresHost

RESOLVER_DIR = (
    Path(__file__).resolve().parents[2] / "handson" / "sandbox" / "dataplane" / "resolver"
)
ENDPOINT = "my-db.abc123.ap-northeast-1.rds.amazonaws.com"
PASSWORD = "resolver-secret-1"


def _loopback() -> str:
    """A loopback address other than 127.0.0.1 where the system has one (Linux)."""
    try:
        with socket.socket() as sock:
            sock.bind(("127.0.0.3", 0))
        return "127.0.0.3"
    except OSError:
        return "127.0.0.1"


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory):
    host = PostgresHost(tmp_path_factory.mktemp("rds"))
    host.start()
    try:
        yield host
    finally:
        host.stop()


def _instance(host: PostgresHost, key: str, listen: tuple[str, int]) -> tuple[str, int]:
    host.create_instance(
        key, master_user="postgres", master_password=PASSWORD, db_name="appdb", listen=listen
    )
    return host.address(key)


@pytest.fixture(scope="module")
def front(postgres: PostgresHost) -> tuple[str, int]:
    """An RDS instance's front on a loopback address, as the sandbox would start it."""
    return _instance(postgres, "123456789012-ap-northeast-1-my-db", (_loopback(), 0))


def run_python(code: str, env: dict[str, str]) -> dict:
    """Run ``code`` as a task process would run (shim first on PYTHONPATH); its JSON."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "HANDSON_"))}
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**clean, "PYTHONPATH": str(RESOLVER_DIR), **env},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_task_process_reaches_the_db_through_its_rds_hostname(front, tmp_path: Path) -> None:
    address, port = front
    hosts_file = tmp_path / "hosts.json"
    # The file may use any case; lookups ignore case and a trailing dot.
    hosts_file.write_text(json.dumps({ENDPOINT.upper(): address}))
    out = run_python(
        f"""
        import asyncio, json, os, socket, psycopg
        name, port = {ENDPOINT!r}, {port}
        out = {{
            "getaddrinfo": sorted({{a[4][0] for a in socket.getaddrinfo(name + ".", port)}}),
            "gethostbyname": socket.gethostbyname(name),
            "gethostbyname_ex": socket.gethostbyname_ex(name.upper())[2],
        }}
        # psycopg's connect() resolves in Python and gives libpq the address (hostaddr).
        with psycopg.connect(host=name, port=port, user="postgres",
                             password={PASSWORD!r}, dbname="appdb") as conn:
            out["database"] = conn.execute("SELECT current_database()").fetchone()[0]
            out["info"] = [conn.info.host, conn.info.hostaddr]
        url = f"postgresql://postgres:{PASSWORD}@{{name}}:{{port}}/appdb"
        with psycopg.connect(url) as conn:
            out["url"] = conn.execute("SELECT 1").fetchone()[0]
        async def main():
            async with await psycopg.AsyncConnection.connect(url) as conn:
                cur = await conn.execute("SELECT 1")
                return (await cur.fetchone())[0]
        out["async"] = asyncio.run(main())
        # libpq on its own resolves in C and does not see the sandbox's names.
        raw = psycopg.pq.PGconn.connect(
            f"host={{name}} port={{port}} connect_timeout=5".encode())
        out["libpq_alone"] = raw.error_message.decode()
        # A new map is picked up without restarting the process.
        path = os.environ["HANDSON_SANDBOX_HOSTS_FILE"]
        with open(path + ".tmp", "w") as f:
            json.dump({{"other-db.example.internal": "127.0.0.9"}}, f)
        os.replace(path + ".tmp", path)
        out["reloaded"] = socket.gethostbyname("other-db.example.internal")
        try:
            socket.getaddrinfo(name, port)
            out["old_name"] = "still mapped"
        except OSError:
            out["old_name"] = "gone"
        print(json.dumps(out))
        """,
        {"HANDSON_SANDBOX_HOSTS_FILE": str(hosts_file)},
    )
    assert out["getaddrinfo"] == [address]
    assert out["gethostbyname"] == address
    assert out["gethostbyname_ex"] == [address]
    assert out["database"].endswith("_appdb")
    assert out["info"] == [ENDPOINT, address]
    assert out["url"] == 1
    assert out["async"] == 1
    assert "could not translate host name" in out["libpq_alone"]
    assert out["reloaded"] == "127.0.0.9"
    assert out["old_name"] == "gone"


def test_shim_changes_nothing_without_the_variable(tmp_path: Path) -> None:
    # Another sitecustomize later on the path (the interpreter's, a venv's) still runs.
    other = tmp_path / "other"
    other.mkdir()
    (other / "sitecustomize.py").write_text("import os\nos.environ['CHAINED'] = 'yes'\n")
    out = run_python(
        """
        import json, os, socket, sys
        print(json.dumps({
            "shim": sys.modules["sitecustomize"].__file__,
            "patched": hasattr(socket.getaddrinfo, "__wrapped__"),
            "builtin": type(socket.gethostbyname).__name__,
            "chained": os.environ.get("CHAINED"),
        }))
        """,
        {"PYTHONPATH": os.pathsep.join([str(RESOLVER_DIR), str(other)])},
    )
    assert Path(out["shim"]).parent == RESOLVER_DIR
    assert out["patched"] is False
    assert out["builtin"] == "builtin_function_or_method"
    assert out["chained"] == "yes"


def test_single_address_mode_puts_stand_in_addresses_on_ports_of_127_0_0_1(
    postgres: PostgresHost, tmp_path: Path
) -> None:
    """The task listens on 127.20.0.5:3000 and its database is 127.20.0.7:5432, as the
    program sees it; both are ports of 127.0.0.1 the ports file names."""
    front = _instance(postgres, "123456789012-ap-northeast-1-single-db", ("127.0.0.1", 0))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        app_port = probe.getsockname()[1]
    (tmp_path / "hosts.json").write_text(json.dumps({ENDPOINT: "127.20.0.7"}))
    ports = {"127.20.0.5:3000": app_port, "127.20.0.7:5432": front[1]}
    (tmp_path / "ports.json").write_text(json.dumps(ports))
    out = run_python(
        f"""
        import asyncio, json, socket, threading, urllib.request, psycopg
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Hello(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.end_headers()
                self.wfile.write(repr(self.connection.getsockname()).encode())

            def log_message(self, *args):
                pass

        app = ThreadingHTTPServer(("0.0.0.0", 3000), Hello)
        threading.Thread(target=app.serve_forever, daemon=True).start()
        other = socket.socket()
        other.bind(("127.20.0.5", 8080))  # a port the task definition does not map
        other.listen()
        out = {{"app": app.server_address, "other": other.getsockname(),
                "real": socket.socket.getsockname.__wrapped__(app.socket)}}
        for url in ("http://127.20.0.5:3000/", "http://localhost:3000/"):
            out[url] = urllib.request.urlopen(url, timeout=5).read().decode()
        with socket.create_connection(("127.20.0.5", 8080), timeout=5) as client:
            out["other_peer"] = client.getpeername()
        kwargs = dict(host={ENDPOINT!r}, port=5432, user="postgres",
                      password={PASSWORD!r}, dbname="appdb", connect_timeout=5)
        with psycopg.connect(**kwargs) as conn:
            out["database"] = conn.execute("SELECT current_database()").fetchone()[0]
        async def main():
            async with await psycopg.AsyncConnection.connect(**kwargs) as conn:
                cur = await conn.execute("SELECT 1")
                return (await cur.fetchone())[0]
        out["async"] = asyncio.run(main())
        print(json.dumps(out))
        """,
        {
            "HANDSON_SANDBOX_HOSTS_FILE": str(tmp_path / "hosts.json"),
            "HANDSON_SANDBOX_PORTS_FILE": str(tmp_path / "ports.json"),
            "HANDSON_SANDBOX_ADDRESS": "127.20.0.5",
        },
    )
    assert out["app"] == ["127.20.0.5", 3000]
    assert out["real"] == ["127.0.0.1", app_port]
    assert out["other"] == ["127.20.0.5", 8080]
    assert out["other_peer"] == ["127.20.0.5", 8080]
    # Connections to the task's address or to localhost reach it, and see port 3000.
    assert out["http://127.20.0.5:3000/"] == "('127.20.0.5', 3000)"
    assert out["http://localhost:3000/"] == "('127.20.0.5', 3000)"
    assert out["database"].endswith("_appdb")
    assert out["async"] == 1
