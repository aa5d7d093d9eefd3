"""RDS for PostgreSQL in the sandbox: one shared server, one TCP front per instance."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import psycopg
import pytest

from handson.sandbox.dataplane.database import PostgresHost, instance_prefix

MASTER = "postgres"


@dataclass
class Instance:
    key: str
    password: str
    db: str
    address: tuple[str, int]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _second_address(port: int) -> tuple[str, int]:
    """127.0.0.2 on the same port where the loopback has it (Linux), else another port."""
    try:
        with socket.socket() as sock:
            sock.bind(("127.0.0.2", port))
        return "127.0.0.2", port
    except OSError:
        return "127.0.0.1", _free_port()


def _create(host: PostgresHost, inst: Instance) -> None:
    host.create_instance(
        inst.key, master_user=MASTER, master_password=inst.password, db_name=inst.db,
        listen=inst.address,
    )  # fmt: skip


def connect(inst: Instance, **params: object) -> psycopg.Connection:
    """A client connection to the instance's front, as an app would open it."""
    settings: dict[str, object] = {
        "host": inst.address[0], "port": inst.address[1], "user": MASTER,
        "password": inst.password, "dbname": inst.db, "connect_timeout": 10,
    }  # fmt: skip
    settings.update(params)
    return psycopg.connect(autocommit=True, **settings)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory):
    host = PostgresHost(tmp_path_factory.mktemp("rds"))
    host.start()
    port = _free_port()
    a = Instance("123456789012-ap-northeast-1-alpha", "alpha-1", "appa", ("127.0.0.1", port))
    b = Instance("123456789012-ap-northeast-1-bravo", "bravo-2", "appb", _second_address(port))
    _create(host, a)
    _create(host, b)
    try:
        yield host, a, b
    finally:
        host.stop()


def _refused(inst: Instance, **params: object) -> str:
    with pytest.raises(psycopg.OperationalError) as info:
        connect(inst, **params).close()
    return str(info.value)


def test_same_master_user_each_reaches_its_own_database(env) -> None:
    host, a, b = env
    seen = {}
    for inst in (a, b):
        with connect(inst) as conn:
            user, database = conn.execute("SELECT session_user, current_database()").fetchone()
            assert database.startswith(instance_prefix(inst.key)) and database.endswith(inst.db)
            # The client is told the name it used, not the private role name.
            assert conn.info.parameter_status("session_authorization") == MASTER
            seen[inst.key] = user
    assert len(set(seen.values())) == 2
    assert host.instances() == sorted([a.key, b.key])


def test_one_instance_cannot_see_the_others_data(env) -> None:
    _, a, b = env
    with connect(a) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS secrets (v text)")
        conn.execute("INSERT INTO secrets VALUES ('alpha only')")
        private_db = conn.execute("SELECT current_database()").fetchone()[0]
    with connect(b) as conn:
        assert conn.execute("SELECT to_regclass('secrets')").fetchone() == (None,)
    # Neither the client-visible name nor the private name of a's database leads there.
    assert 'database "appa" does not exist' in _refused(b, dbname="appa")
    assert f'database "{private_db}" does not exist' in _refused(b, dbname=private_db)


def test_wrong_password_is_rejected(env) -> None:
    _, a, b = env
    message = _refused(a, password=b.password)
    assert f'password authentication failed for user "{MASTER}"' in message
    assert instance_prefix(a.key) not in message


def test_unknown_database_is_reported_with_the_clients_name(env) -> None:
    _, a, _ = env
    message = _refused(a, dbname="nope")
    assert 'FATAL:  database "nope" does not exist' in message
    assert instance_prefix(a.key) not in message


def test_default_postgres_database_exists_like_on_rds(env) -> None:
    _, a, _ = env
    with connect(a, dbname="postgres") as conn:
        assert conn.execute("SELECT current_database()").fetchone()[0].endswith("_postgres")
    with connect(a, dbname="") as conn:  # libpq defaults the database to the user name
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_ssl_prefer_falls_back_to_clear_and_require_fails_cleanly(env) -> None:
    _, a, _ = env
    with connect(a) as conn:  # psycopg's default sslmode is prefer
        assert conn.pgconn.ssl_in_use is False
    with connect(a, sslmode="prefer", gssencmode="prefer") as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert "server does not support SSL" in _refused(a, sslmode="require")


def _packet(code: int, payload: bytes = b"") -> bytes:
    body = code.to_bytes(4, "big") + payload
    return (len(body) + 4).to_bytes(4, "big") + body


def test_front_answers_encryption_requests_with_n(env) -> None:
    _, a, _ = env
    with socket.create_connection(a.address, timeout=10) as sock:
        sock.sendall(_packet(80877104))  # GSSENCRequest
        assert sock.recv(1) == b"N"
        sock.sendall(_packet(80877103))  # SSLRequest
        assert sock.recv(1) == b"N"
        sock.sendall(_packet(196608, b"database\0x\0\0"))  # no user: the server's error
        assert sock.recv(1) == b"E"
    with socket.create_connection(a.address, timeout=10) as sock:
        sock.sendall(b"\x00\x00\x00\x02")  # impossible length
        reply = sock.recv(1000)
        assert reply[:1] == b"E" and b"08P01" in reply


def test_cancel_request_reaches_the_server(env) -> None:
    _, a, _ = env
    outcome: list[BaseException | None] = []
    with connect(a) as busy, connect(a) as watcher:
        pid = busy.info.backend_pid

        def run() -> None:
            try:
                busy.execute("SELECT pg_sleep(60)")
                outcome.append(None)
            except BaseException as exc:  # handed to the main thread
                outcome.append(exc)

        worker = threading.Thread(target=run)
        worker.start()
        for _ in range(1000):  # until the query is running, so the cancel cannot miss it
            state = watcher.execute(
                "SELECT state FROM pg_stat_activity WHERE pid = %s", (pid,)
            ).fetchone()
            if state == ("active",):
                break
            time.sleep(0.01)
        busy.cancel_safe()
        worker.join(30)
    assert isinstance(outcome[0], psycopg.errors.QueryCanceled)


def test_set_master_password(env) -> None:
    host, a, _ = env
    host.set_master_password(a.key, "changed-secret-3")
    try:
        assert "password authentication failed" in _refused(a)
        with connect(a, password="changed-secret-3") as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        host.set_master_password(a.key, a.password)
    with pytest.raises(KeyError):
        host.set_master_password("no-such-instance", "x")


def test_create_again_keeps_data_and_checks_master_user(env) -> None:
    host, a, _ = env
    with connect(a) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS kept (v int)")
        conn.execute("INSERT INTO kept VALUES (42)")
    _create(host, a)
    with connect(a) as conn:
        assert (42,) in conn.execute("SELECT v FROM kept").fetchall()
    with pytest.raises(ValueError, match="master user"):
        host.create_instance(
            a.key, master_user="admin", master_password="x", db_name=None, listen=a.address
        )


def test_delete_instance_drops_it(env) -> None:
    host, _, _ = env
    # A key with odd characters and too long for an identifier; port 0 picks a free port.
    key = "999999999999-eu-west-1-" + "Very.Long/Name-" * 8
    host.create_instance(
        key, master_user="admin", master_password="pw-gamma", db_name="shop",
        listen=("127.0.0.1", 0),
    )  # fmt: skip
    inst = Instance(key, "pw-gamma", "shop", host.address(key))
    with connect(inst, user="admin") as conn:
        conn.execute("CREATE TABLE doomed (v int)")
    assert key in host.instances()

    host.delete_instance(key)
    assert key not in host.instances()
    _refused(inst, user="admin")  # nothing listens there any more
    host.create_instance(
        key, master_user="admin", master_password="pw-gamma", db_name="shop", listen=inst.address
    )
    with connect(inst, user="admin") as conn:
        assert conn.execute("SELECT to_regclass('doomed')").fetchone() == (None,)
    host.delete_instance(key)
    host.delete_instance(key)  # unknown keys are fine


def test_instances_can_be_created_from_many_threads(env) -> None:
    host, _, _ = env
    keys = [f"111111111111-us-east-1-t{i}" for i in range(3)]
    errors: list[BaseException] = []

    def create(key: str) -> None:
        try:
            host.create_instance(
                key, master_user=MASTER, master_password=key, db_name=None,
                listen=("127.0.0.1", 0),
            )  # fmt: skip
        except BaseException as exc:  # handed to the main thread
            errors.append(exc)

    threads = [threading.Thread(target=create, args=(key,)) for key in keys]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    try:
        for key in keys:
            inst = Instance(key, key, "postgres", host.address(key))
            with connect(inst) as conn:
                assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        for key in keys:
            host.delete_instance(key)


def test_pids_are_the_servers_processes(env) -> None:
    host, _, _ = env
    pids = host.pids()
    assert len(pids) >= 2  # the postmaster and its helpers
    names = []
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):  # a backend may just have ended
            names.append(psutil.Process(pid).name())
    assert set(names) == {"postgres"}


def _snapshot(pids: list[int]) -> list[tuple[int, float]]:
    """(pid, create_time) of those still running (a backend may just have ended)."""
    procs = []
    for pid in pids:
        try:
            procs.append((pid, psutil.Process(pid).create_time()))
        except psutil.NoSuchProcess:
            pass
    return procs


def _alive(procs: list[tuple[int, float]]) -> list[int]:
    """Those of (pid, create_time) still running (a reused pid is another process)."""
    alive = []
    for pid, created in procs:
        try:
            proc = psutil.Process(pid)
            if proc.create_time() == created and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            pass
    return alive


def _using(data_dir: Path) -> list[int]:
    """Processes started with ``data_dir``'s cluster (postgres -D <pgdata>)."""
    pgdata = str(data_dir / "pgdata")
    return [
        proc.pid
        for proc in psutil.process_iter(["cmdline"])
        if pgdata in (proc.info["cmdline"] or [])
    ]


def test_stop_leaves_no_process_and_restart_reuses_the_data(env) -> None:
    host, a, b = env
    with connect(b) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS survivor (v text)")
        conn.execute("INSERT INTO survivor VALUES ('still here')")
    cluster = (host.data_dir / "pgdata" / "PG_VERSION").stat().st_ino
    procs = _snapshot(host.pids())

    host.stop()
    assert _alive(procs) == []
    assert _using(host.data_dir) == []
    assert host.pids() == []
    _refused(a)  # the fronts are gone too

    host.start()
    host.start()  # idempotent
    assert (host.data_dir / "pgdata" / "PG_VERSION").stat().st_ino == cluster  # no new initdb
    assert host.instances() == sorted([a.key, b.key])  # known before the fronts are back
    _create(host, a)
    _create(host, b)
    with connect(b) as conn:
        assert conn.execute("SELECT v FROM survivor").fetchall() == [("still here",)]
