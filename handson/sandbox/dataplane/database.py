"""RDS for PostgreSQL, backed by one local PostgreSQL server.

Thirty students may each create a DB instance, and every one of them calls its master
user "postgres". Running thirty PostgreSQL servers would cost seconds and hundreds of MB
each, so all instances share ONE server (the binaries bundled by the ``pgserver`` wheel;
no root, no Docker). The server listens only on a unix socket in a private directory.

Every instance gets its own private role and databases in that server, named after the
instance key (``i_<slug>_<hash>_<name>``), and a small TCP front on the instance's own
address. The front speaks just enough of the PostgreSQL wire protocol to rename
``user`` and ``database`` in the client's startup message; after that it pipes bytes
both ways. Passwords are checked by PostgreSQL itself (SCRAM): the SCRAM exchange does
not depend on the user name the client had in mind, so the instance's master password
works unchanged. Errors sent during the startup phase have the private names replaced
by the names the client used, so a client sees ``database "x" does not exist`` just as
with RDS. SQL functions such as ``current_user`` still show the private names.

The layout of ``data_dir``: ``pgdata/`` (the cluster), ``run/`` (the socket),
``postgres.log`` and ``host.lock`` (one owner process at a time).
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import fcntl
import hashlib
import importlib.util
import logging
import os
import re
import select
import selectors
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import psycopg
from psycopg import sql

log = logging.getLogger(__name__)

ADMIN_ROLE = "handson_admin"
# PostgreSQL refuses to run as root; as root (CI, containers) the server runs as this
# unprivileged account, the same convention as the pgserver package itself.
SERVICE_USER = "pgserver"
# Enough for 30 instances with a small connection pool each; every idle connection is
# a process of a few MB, so this is a cap, not a reservation.
MAX_CONNECTIONS = 300
CONNECTIONS_PER_INSTANCE = 50  # one student's runaway pool cannot starve the others
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
HANDSHAKE_TIMEOUT = 60.0  # PostgreSQL's own authentication_timeout
# A client the instance's security group drops waits for its own connect timeout; a
# connection the front does not admit is held silent at most this long.
DROP_HOLD_SECONDS = 130.0
_MAX_IDENTIFIER = 63  # NAMEDATALEN - 1 bytes; PostgreSQL cuts longer names
_MAX_STARTUP_PACKET = 10000  # PostgreSQL's MAX_STARTUP_PACKET_LENGTH
_LOG_ROTATE_BYTES = 10 * 1024 * 1024

# First int32 of the packets a client may send before its StartupMessage.
_PROTOCOL_3 = 3
_CANCEL_REQUEST = 80877102
_SSL_REQUEST = 80877103
_GSSENC_REQUEST = 80877104

_HBA = f"""\
# Written by handson on every start; edits are overwritten.
# The socket directory is private (0700), so only the sandbox reaches it: the admin
# role needs no password. Instance roles must prove their RDS master password.
# TYPE  DATABASE  USER  METHOD
local   all       {ADMIN_ROLE}  trust
local   all       all           scram-sha-256
"""


def _bin_dir() -> Path:
    """Folder of the PostgreSQL binaries bundled by pgserver.

    Found without importing pgserver, whose import has side effects we do not need.
    """
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the pgserver package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes, never in the middle of a character."""
    return text.encode()[:limit].decode(errors="ignore")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def instance_prefix(key: str) -> str:
    """Prefix of an instance's private role and database names.

    A readable tail of the key helps when reading ``ps`` or the server log; the hash
    keeps keys that slug alike apart.
    """
    slug = re.sub(r"[^a-z0-9]+", "_", key.lower()).strip("_")[-20:].strip("_")
    return f"i_{slug}_{_digest(key)}_" if slug else f"i_{_digest(key)}_"


def private_name(prefix: str, name: str) -> str:
    """The server-side name of a role or database a client calls ``name``.

    PostgreSQL cuts names in the startup message to 63 bytes; cut first so that the
    mapping agrees with what the client would get from a real server. Names too long
    to fit after the prefix end in a hash of the full name.
    """
    name = _clip(name, _MAX_IDENTIFIER)
    full = prefix + name
    if len(full.encode()) <= _MAX_IDENTIFIER:
        return full
    room = _MAX_IDENTIFIER - len(prefix.encode()) - 9
    return f"{prefix}{_clip(name, room)}_{_digest(name)}"


# --------------------------------------------------------------------------- wire format


class _ProtocolError(Exception):
    """The peer sent something that is not the PostgreSQL protocol."""


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    """Exactly ``size`` bytes; never more, so nothing is read past a message."""
    chunks = []
    while size:
        chunk = sock.recv(size)
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _read_startup_packet(sock: socket.socket) -> bytes:
    """One untyped packet (StartupMessage, SSLRequest, ...): its body after the length."""
    length = int.from_bytes(_recv_exact(sock, 4), "big")
    if not 8 <= length <= _MAX_STARTUP_PACKET:
        raise _ProtocolError("invalid length of startup packet")
    return _recv_exact(sock, length - 4)


def _cstrings(data: bytes) -> list[str]:
    """Null-terminated strings as sent by the protocol (always UTF-8 here, or bytes-safe)."""
    return [part.decode("utf-8", "surrogateescape") for part in data.split(b"\0")]


def _encode_cstring(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape") + b"\0"


def error_response(message: str, code: str, severity: str = "FATAL") -> bytes:
    """An ErrorResponse message, as PostgreSQL writes it."""
    body = b"".join(
        field.encode() + _encode_cstring(value)
        for field, value in (("S", severity), ("V", severity), ("C", code), ("M", message))
    )
    body += b"\0"
    return b"E" + (len(body) + 4).to_bytes(4, "big") + body


def _rewrite_fields(body: bytes, replace: dict[str, str]) -> bytes:
    """ErrorResponse/NoticeResponse body with private names replaced in every field."""
    out = []
    for field in body.rstrip(b"\0").split(b"\0"):
        if not field:
            continue
        value = field[1:].decode("utf-8", "surrogateescape")
        for old, new in replace.items():
            value = value.replace(old, new)
        out.append(field[:1] + _encode_cstring(value))
    return b"".join(out) + b"\0"


@dataclass(frozen=True)
class _Names:
    """What one client connection calls its user and database, and what they are."""

    client_user: str
    client_database: str
    user: str
    database: str

    def replacements(self) -> dict[str, str]:
        # Longest first, so a name that contains the other is replaced whole.
        pairs = {self.user: self.client_user, self.database: self.client_database}
        return dict(sorted(pairs.items(), key=lambda item: -len(item[0])))


def rewrite_startup(body: bytes, prefix: str) -> tuple[bytes, _Names | None]:
    """The StartupMessage to send to the server instead of ``body``.

    Returns the whole packet (with its length) and the names, or the packet unchanged
    and None when it is not a protocol-3 startup with a user: the server then answers
    with its own error, which names nothing private.
    """
    version = int.from_bytes(body[:4], "big")
    parts = _cstrings(body[4:])
    pairs = dict(zip(parts[0::2], parts[1::2], strict=False))
    pairs.pop("", None)
    user = pairs.get("user")
    if version >> 16 != _PROTOCOL_3 or not user:
        return (len(body) + 4).to_bytes(4, "big") + body, None
    client_user = _clip(user, _MAX_IDENTIFIER)
    # Like PostgreSQL: no database (or an empty one) means the database named as the user.
    client_database = _clip(pairs.get("database") or user, _MAX_IDENTIFIER)
    names = _Names(
        client_user=client_user,
        client_database=client_database,
        user=private_name(prefix, client_user),
        database=private_name(prefix, client_database),
    )
    pairs["user"] = names.user
    pairs["database"] = names.database
    out = body[:4] + b"".join(_encode_cstring(k) + _encode_cstring(v) for k, v in pairs.items())
    out += b"\0"
    return (len(out) + 4).to_bytes(4, "big") + out, names


# --------------------------------------------------------------------------------- front


class _Front:
    """The TCP endpoint of one DB instance, in front of the shared server.

    One thread accepts; every client connection gets two threads (one per direction),
    so a slow reader on one side never blocks the other side.
    """

    def __init__(
        self,
        listen: tuple[str, int],
        backend: str,
        prefix: str,
        admit: Callable[[tuple[str, int]], bool] | None = None,
    ) -> None:
        self.listen = listen
        self._backend = backend
        self._prefix = prefix
        # admit(peer address) -> whether the network rules let this client in
        self._admit = admit
        family = socket.AF_INET6 if ":" in listen[0] else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_STREAM)
        # Rebinding right after a restart must not wait for old connections in TIME_WAIT.
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._sock.bind(listen)
            self._sock.listen(128)
        except OSError:
            self._sock.close()
            raise
        # A socket pair wakes the accept loop on stop(); closing a socket another thread
        # waits on does not reliably wake it on every platform.
        self._wake_r, self._wake_w = socket.socketpair()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._stopped = False
        self._thread = threading.Thread(
            target=self._accept_loop, name=f"rds-front-{listen[0]}:{listen[1]}", daemon=True
        )
        self._thread.start()

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._sock.getsockname()[:2]
        return host, port

    def stop(self) -> None:
        """Stop accepting and cut every open connection."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            open_sockets = list(self._open)
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        self._thread.join(timeout=5)
        for sock in open_sockets:
            _shutdown(sock)
        for sock in (self._sock, self._wake_r, self._wake_w):
            sock.close()

    def _accept_loop(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._sock, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while not self._stopped:
                ready = {key.fileobj for key, _ in selector.select()}
                if self._wake_r in ready or self._stopped:
                    return
                try:
                    client, peer = self._sock.accept()
                except OSError:
                    continue
                if not self._track(client):
                    client.close()
                    return
                threading.Thread(target=self._serve, args=(client, peer), daemon=True).start()

    def _track(self, sock: socket.socket) -> bool:
        with self._lock:
            if self._stopped:
                return False
            self._open.add(sock)
            return True

    def _forget(self, *socks: socket.socket | None) -> None:
        with self._lock:
            for sock in socks:
                if sock is not None:
                    self._open.discard(sock)
                    sock.close()

    def _connect_backend(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(HANDSHAKE_TIMEOUT)
        try:
            sock.connect(self._backend)
        except OSError:
            sock.close()
            raise
        if not self._track(sock):
            sock.close()
            raise ConnectionAbortedError("front stopped")
        return sock

    def _dropped(self, client: socket.socket, peer: tuple[str, int]) -> bool:
        """Whether the network rules drop this client; if so, hold it silent until it
        gives up (its connect timeout), as a dropped SYN is never answered."""
        try:
            admitted = self._admit is None or self._admit(peer)
        except Exception:
            log.warning("database front: admission check failed", exc_info=True)
            admitted = True
        if admitted:
            return False
        deadline = time.monotonic() + DROP_HOLD_SECONDS
        with contextlib.suppress(OSError):
            while not self._stopped and (remaining := deadline - time.monotonic()) > 0:
                readable, _, _ = select.select([client], [], [], min(remaining, 0.5))
                if readable and not client.recv(65536):
                    break
        return True

    def _serve(self, client: socket.socket, peer: tuple[str, int] = ("", 0)) -> None:
        backend: socket.socket | None = None
        try:
            if self._dropped(client, peer):
                return
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # A client that connects and says nothing must not hold a thread forever.
            client.settimeout(HANDSHAKE_TIMEOUT)
            # SSLRequest and GSSENCRequest may each come once before the startup.
            for _ in range(3):
                body = _read_startup_packet(client)
                code = int.from_bytes(body[:4], "big")
                if code in (_SSL_REQUEST, _GSSENC_REQUEST):
                    client.sendall(b"N")  # no encryption; the client goes on in clear
                    continue
                break
            else:
                raise _ProtocolError("too many encryption requests")
            if code == _CANCEL_REQUEST:
                # The key names a backend of the shared server; pass it on as is.
                backend = self._connect_backend()
                backend.sendall((len(body) + 4).to_bytes(4, "big") + body)
                return
            packet, names = rewrite_startup(body, self._prefix)
            try:
                backend = self._connect_backend()
            except OSError:
                client.sendall(
                    error_response("the database system is not accepting connections", "57P03")
                )
                return
            backend.sendall(packet)
            client.settimeout(None)
            backend.settimeout(None)
            upstream = threading.Thread(target=_pipe, args=(client, backend), daemon=True)
            upstream.start()
            try:
                if names is not None:
                    _relay_startup_replies(backend, client, names)
                _pipe(backend, client)
            finally:
                # Close only once the other direction has let go of the sockets, so it
                # never touches a descriptor number the kernel has handed out again.
                _shutdown(client)
                _shutdown(backend)
                upstream.join()
        except _ProtocolError as exc:
            with contextlib.suppress(OSError):
                client.sendall(error_response(str(exc), "08P01"))
        except (OSError, EOFError):
            pass  # the client or the server went away; nothing to tell anyone
        finally:
            self._forget(client, backend)


def _shutdown(sock: socket.socket) -> None:
    """Wake any thread blocked on ``sock``; the owner thread closes it."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    """Copy bytes until either side ends, then end both so the other thread stops too."""
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        _shutdown(src)
        _shutdown(dst)


def _relay_startup_replies(backend: socket.socket, client: socket.socket, names: _Names) -> None:
    """Forward the server's replies up to ReadyForQuery, showing client names only.

    Messages are parsed only in this phase (authentication, parameters, errors);
    afterwards the connection is a plain byte pipe.
    """
    replace = names.replacements()
    while True:
        header = _recv_exact(backend, 5)
        kind = header[:1]
        body = _recv_exact(backend, int.from_bytes(header[1:], "big") - 4)
        if kind in (b"E", b"N"):
            body = _rewrite_fields(body, replace)
        elif kind == b"S":
            name, value = _cstrings(body)[:2]
            if name == "session_authorization":
                body = _encode_cstring(name) + _encode_cstring(replace.get(value, value))
        client.sendall(kind + (len(body) + 4).to_bytes(4, "big") + body)
        if kind in (b"Z", b"E"):  # ready for queries, or the server gave up
            return


# ---------------------------------------------------------------------------------- host


def _service_account() -> tuple[int, int] | None:
    """(uid, gid) to run PostgreSQL as, or None to run it as ourselves (not root)."""
    if os.geteuid() != 0:
        return None
    import pwd

    try:
        entry = pwd.getpwnam(SERVICE_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
             SERVICE_USER],
            check=True, capture_output=True,
        )  # fmt: skip
        entry = pwd.getpwnam(SERVICE_USER)
    return entry.pw_uid, entry.pw_gid


def _let_others_traverse(path: Path) -> None:
    """Add o+x (search only, not read) to ``path`` and its parents where missing.

    Needed only as root: the service account must reach the data directory and the
    binaries, which may sit below a private folder such as pytest's 0700 tmp dir.
    """
    for folder in [path, *path.parents]:
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH:
            folder.chmod(mode | stat.S_IXOTH)


def _scram_verifier(conn: psycopg.Connection, role: str, password: str) -> str:
    """The SCRAM-SHA-256 verifier of ``password``, made by libpq on our side.

    Sending the verifier instead of the password keeps the password out of the server
    log, whatever goes wrong with the statement.
    """
    return conn.pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256").decode()


class PostgresHost:
    """One shared PostgreSQL server and the RDS instances (fronts) that use it."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir).absolute()
        self._pgdata = self.data_dir / "pgdata"
        self._lock = threading.RLock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._admin: psycopg.Connection | None = None
        self._fronts: dict[str, _Front] = {}
        # admit(instance key, client address) -> whether the network rules let it in;
        # set by the data plane before instances are created.
        self.admit: Callable[[str, tuple[str, int]], bool] | None = None
        self._lock_fd: int | None = None
        self._socket_dir: Path | None = None
        self._account: tuple[int, int] | None = None

    # -- server ---------------------------------------------------------------------

    def start(self) -> None:
        """Start the server (initdb on first use); nothing to do if it is running."""
        with self._lock:
            if self._proc is not None and self._proc.poll() is None:
                return
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self._take_lock()
            try:
                self._account = _service_account()
                if self._account is not None:
                    _let_others_traverse(self.data_dir)
                    _let_others_traverse(_bin_dir())
                if not (self._pgdata / "PG_VERSION").exists():
                    self._initdb()
                (self._pgdata / "pg_hba.conf").write_text(_HBA)
                self._socket_dir = self._make_socket_dir()
                self._stop_orphan()
                self._spawn()
                self._admin_conn()
                atexit.register(self.stop)
            except BaseException:
                self._halt_server()
                self._release_lock()
                raise

    def stop(self) -> None:
        """Stop every front and the server, and wait until all its processes are gone."""
        with self._lock:
            for front in self._fronts.values():
                front.stop()
            self._fronts.clear()
            if self._admin is not None:
                with contextlib.suppress(psycopg.Error):
                    self._admin.close()
                self._admin = None
            self._halt_server()
            self._release_lock()
            atexit.unregister(self.stop)

    def pids(self) -> list[int]:
        """PIDs of the server's processes (postmaster first), for a last-resort kill."""
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                return []
            try:
                children = psutil.Process(self._proc.pid).children(recursive=True)
            except psutil.Error:
                children = []
            return [self._proc.pid, *(child.pid for child in children)]

    def __enter__(self) -> PostgresHost:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _take_lock(self) -> None:
        # One owner process per data directory; the kernel drops the lock if we die,
        # so a server left behind by a crashed owner can be recognised as an orphan.
        if self._lock_fd is not None:
            return
        fd = os.open(self.data_dir / "host.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise RuntimeError(f"{self.data_dir} is in use by another process") from exc
            raise
        self._lock_fd = fd

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _chown(self, path: Path) -> None:
        if self._account is not None:
            os.chown(path, *self._account)

    def _run_as(self) -> dict[str, Any]:
        """subprocess keyword arguments that drop root for PostgreSQL."""
        if self._account is None:
            return {}
        uid, gid = self._account
        return {"user": uid, "group": gid, "extra_groups": []}

    def _env(self) -> dict[str, str]:
        # PG* variables of the caller (PGDATA, PGPORT...) must not steer our server.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        return env

    def _initdb(self) -> None:
        # initdb into a scratch folder and rename it: a half-made cluster (crash, Ctrl-C)
        # is then never mistaken for a good one.
        scratch = self.data_dir / "pgdata.init"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(mode=0o700)
        self._chown(scratch)
        result = subprocess.run(
            [str(_bin_dir() / "initdb"), "-D", str(scratch), "-U", ADMIN_ROLE,
             "--auth-local=trust", "--auth-host=reject", "--encoding=UTF8", "--locale=C",
             "--no-instructions"],
            stdin=subprocess.DEVNULL, capture_output=True, env=self._env(), check=False,
            **self._run_as(),
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed: {result.stderr.decode(errors='replace')}")
        scratch.rename(self._pgdata)

    def _make_socket_dir(self) -> Path:
        """A private folder for the socket, short enough for a unix socket path."""
        folder = self.data_dir / "run"
        if len(str(folder / ".s.PGSQL.5432").encode()) > 100:  # sun_path holds ~107 bytes
            digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:12]
            folder = Path(tempfile.gettempdir()) / f"handson-pg-{digest}"
        folder.mkdir(mode=0o700, exist_ok=True)
        folder.chmod(0o700)
        self._chown(folder)
        return folder

    def _stop_orphan(self) -> None:
        """End a server that a crashed owner of this data directory left running."""
        pid_file = self._pgdata / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().split("\n", 1)[0])
            proc = psutil.Process(pid)
            is_ours = proc.name() == "postgres" and str(self._pgdata) in proc.cmdline()
        except (OSError, ValueError, psutil.Error):
            return
        if not is_ours:
            return
        log.warning("stopping orphaned PostgreSQL server %d of %s", pid, self._pgdata)
        with contextlib.suppress(psutil.Error):
            proc.send_signal(signal.SIGINT)  # fast shutdown: ends sessions, keeps data
            try:
                proc.wait(STOP_TIMEOUT)
            except psutil.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def _spawn(self) -> None:
        assert self._socket_dir is not None
        log_path = self.data_dir / "postgres.log"
        if log_path.exists() and log_path.stat().st_size > _LOG_ROTATE_BYTES:
            log_path.replace(log_path.with_suffix(".log.1"))
        settings = {
            "listen_addresses": "",  # no TCP at all: the fronts are the only way in
            "unix_socket_directories": f'"{self._socket_dir}"',
            "unix_socket_permissions": "0700",
            "port": "5432",
            "max_connections": str(MAX_CONNECTIONS),
            "password_encryption": "scram-sha-256",
            "logging_collector": "off",
        }
        argv = [str(_bin_dir() / "postgres"), "-D", str(self._pgdata)]
        for name, value in settings.items():
            argv += ["-c", f"{name}={value}"]
        with open(log_path, "ab") as log_file:
            self._proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file,
                env=self._env(),
                # Own session: Ctrl-C in the terminal must not shut the server down
                # behind our back; stop() does that in order.
                start_new_session=True,
                **self._run_as(),
            )  # fmt: skip
        self._wait_ready(log_path)

    def _wait_ready(self, log_path: Path) -> None:
        # postmaster.pid ends with "ready" once connections are accepted; pg_ctl -w
        # waits for the same line.
        assert self._proc is not None
        deadline = time.monotonic() + START_TIMEOUT
        pid_file = self._pgdata / "postmaster.pid"
        while True:
            if self._proc.poll() is not None:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"PostgreSQL exited with {self._proc.returncode}:\n{tail}")
            # The file is written in steps; a short read just means "not yet".
            with contextlib.suppress(OSError, ValueError, IndexError):
                lines = pid_file.read_text().splitlines()
                if int(lines[0]) == self._proc.pid and lines[7].strip() == "ready":
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL did not start within {START_TIMEOUT} s")
            time.sleep(0.02)

    def _halt_server(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        # SIGINT is PostgreSQL's fast shutdown: it ends the sessions, writes a checkpoint
        # and exits only after all its children are gone.
        for sig, wait in ((signal.SIGINT, STOP_TIMEOUT), (signal.SIGQUIT, 5.0)):
            proc.send_signal(sig)
            try:
                proc.wait(wait)
                return
            except subprocess.TimeoutExpired:
                log.warning("PostgreSQL did not stop on signal %d", sig)
        children = psutil.Process(proc.pid).children(recursive=True)
        proc.kill()
        proc.wait()
        for child in children:
            with contextlib.suppress(psutil.Error):
                child.kill()

    def _backend_path(self) -> str:
        assert self._socket_dir is not None
        return str(self._socket_dir / ".s.PGSQL.5432")

    def _admin_conn(self) -> psycopg.Connection:
        """The sandbox's own superuser connection (reopened if the server restarted)."""
        if self._proc is None or self._proc.poll() is not None:
            raise RuntimeError("the PostgreSQL host is not started")
        if self._admin is None or self._admin.closed or self._admin.broken:
            assert self._socket_dir is not None
            self._admin = psycopg.connect(
                host=str(self._socket_dir), port=5432, user=ADMIN_ROLE, dbname="postgres",
                sslmode="disable", gssencmode="disable", autocommit=True,
                application_name="handson-sandbox",
            )  # fmt: skip
            self._admin.execute(
                """CREATE TABLE IF NOT EXISTS handson_instance (
                       key text PRIMARY KEY,
                       prefix text NOT NULL UNIQUE,
                       master_user text NOT NULL,
                       created_at timestamptz NOT NULL DEFAULT now())"""
            )
            # The fronts never name these, but instance roles must not reach the
            # sandbox's own databases by any other way either.
            self._admin.execute("REVOKE CONNECT, TEMPORARY ON DATABASE postgres FROM PUBLIC")
            self._admin.execute("REVOKE CONNECT, TEMPORARY ON DATABASE template1 FROM PUBLIC")
        return self._admin

    # -- instances ------------------------------------------------------------------

    def create_instance(
        self,
        key: str,
        *,
        master_user: str,
        master_password: str,
        db_name: str | None,
        listen: tuple[str, int],
    ) -> None:
        """Create (or bring back) an instance: role, databases, front on ``listen``.

        Like RDS, the instance has a ``postgres`` database, plus ``db_name`` if given.
        Calling it again is safe: it sets the password and restarts the front if the
        address changed; existing data is kept.
        """
        with self._lock:
            conn = self._admin_conn()
            prefix = instance_prefix(key)
            row = conn.execute(
                "SELECT master_user FROM handson_instance WHERE key = %s", (key,)
            ).fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO handson_instance (key, prefix, master_user) VALUES (%s, %s, %s)",
                    (key, prefix, master_user),
                )
            elif row[0] != master_user:
                raise ValueError(
                    f"instance {key!r} exists with master user {row[0]!r}; delete it first"
                )
            role = private_name(prefix, master_user)
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
            verb = "ALTER" if exists else "CREATE"
            conn.execute(
                sql.SQL(verb + " ROLE {} LOGIN CONNECTION LIMIT {} PASSWORD {}").format(
                    sql.Identifier(role),
                    sql.Literal(CONNECTIONS_PER_INSTANCE),
                    sql.Literal(_scram_verifier(conn, role, master_password)),
                )
            )
            for name in dict.fromkeys(["postgres", *([db_name] if db_name else [])]):
                self._ensure_database(conn, private_name(prefix, name), role)
            front = self._fronts.get(key)
            if front is not None and front.listen == tuple(listen):
                return
            if front is not None:
                front.stop()
                del self._fronts[key]
            self._fronts[key] = _Front(
                (listen[0], listen[1]),
                self._backend_path(),
                prefix,
                admit=(lambda peer, key=key: self.admit(key, peer)) if self.admit else None,
            )

    @staticmethod
    def _ensure_database(conn: psycopg.Connection, database: str, owner: str) -> None:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone():
            return
        # FILE_COPY copies template1's files instead of writing them into the WAL: the
        # copy is a little slower, but 30 instances do not leave ~0.5 GB of WAL behind
        # nor push their templates through the shared buffer cache.
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {} STRATEGY FILE_COPY").format(
                sql.Identifier(database), sql.Identifier(owner)
            )
        )
        # PUBLIC may connect to any database by default; only the owner may here, so no
        # instance can reach another one's data even by naming its private database.
        conn.execute(
            sql.SQL("REVOKE CONNECT, TEMPORARY ON DATABASE {} FROM PUBLIC").format(
                sql.Identifier(database)
            )
        )

    def set_master_password(self, key: str, password: str) -> None:
        """Change the master password (ModifyDBInstance); open sessions stay open."""
        with self._lock:
            conn = self._admin_conn()
            row = conn.execute(
                "SELECT prefix, master_user FROM handson_instance WHERE key = %s", (key,)
            ).fetchone()
            if row is None:
                raise KeyError(key)
            role = private_name(row[0], row[1])
            conn.execute(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                    sql.Identifier(role), sql.Literal(_scram_verifier(conn, role, password))
                )
            )

    def delete_instance(self, key: str) -> None:
        """Stop the front, then drop the instance's databases and role (no-op if unknown)."""
        with self._lock:
            front = self._fronts.pop(key, None)
            if front is not None:
                front.stop()
            conn = self._admin_conn()
            row = conn.execute(
                "SELECT prefix, master_user FROM handson_instance WHERE key = %s", (key,)
            ).fetchone()
            if row is None:
                return
            role = private_name(row[0], row[1])
            databases = conn.execute(
                "SELECT d.datname FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba"
                " WHERE r.rolname = %s",
                (role,),
            ).fetchall()
            for (database,) in databases:
                # FORCE ends sessions still open on it (RDS deletes a busy instance too).
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(database)
                    )
                )
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
            conn.execute("DELETE FROM handson_instance WHERE key = %s", (key,))

    def instances(self) -> list[str]:
        """Keys of all instances in the cluster, also those without a front since restart."""
        with self._lock:
            rows = self._admin_conn().execute("SELECT key FROM handson_instance ORDER BY key")
            return [key for (key,) in rows.fetchall()]

    def address(self, key: str) -> tuple[str, int]:
        """Where the front of ``key`` listens (useful when created with port 0)."""
        with self._lock:
            return self._fronts[key].address
