"""The sandbox's stand-in for VPC DNS, loaded by every task process it starts.

The sandbox puts this folder first on ``PYTHONPATH`` and sets
``HANDSON_SANDBOX_HOSTS_FILE`` to a JSON object such as
``{"my-db.abc123.ap-northeast-1.rds.amazonaws.com": "127.1.0.7"}``. Python imports
``sitecustomize`` at start-up, so the task's code resolves those names (any case,
trailing dot or not) to the loopback address of the sandbox's stand-in, as it would
resolve them through the VPC's DNS on AWS. Other names go to the real resolver.

What is covered: everything that resolves through Python's ``socket`` module:
``socket.create_connection``, urllib/requests, asyncio's ``loop.getaddrinfo`` and
psycopg 3.2 and later, whose ``connect()`` (sync and async) looks the host up in Python
and hands libpq the address as ``hostaddr``. Not covered: C libraries that resolve by
themselves, such as libpq used directly (psycopg2, ``psql``), which would see the
real DNS.

Single-address loopback mode (README.md, "The sandbox"): where the machine has no
loopback address but 127.0.0.1, the sandbox's addresses are stand-ins, and each stand-in
address and port a listener needs is a port of its own on 127.0.0.1.
``HANDSON_SANDBOX_PORTS_FILE`` then names a JSON object such as
``{"127.17.0.5:3000": 20001, "127.17.0.7:5432": 20002}`` and ``HANDSON_SANDBOX_ADDRESS``
the task's own stand-in address, and this module patches ``socket.socket`` so that the
task's program sees the addresses and ports it asked for:

* ``bind`` to the task's address (or all addresses) and a port binds 127.0.0.1 and the
  port the sandbox gave that address and port; a port the sandbox gave none (one the task
  definition does not map) gets a free port, known to this process only;
* ``connect``/``connect_ex`` to a stand-in address and port (127.0.0.1 and ``localhost``
  meaning the task's own address, as in a container) go to the port behind it;
* ``getsockname``/``getpeername`` answer with the stand-in address and port again.

libpq connects in C, past these patches: for psycopg 3.2 and later, the connection
attempts psycopg computes in Python (``psycopg.conninfo.conninfo_attempts`` and its async
twin: one ``hostaddr`` and ``port`` each) are redirected the same way, as soon as that
module is imported. libpq's own error messages then name 127.0.0.1 and the real port.

Both files are read again whenever their modification time or size changes; writers
should replace them atomically (write a temporary file, then rename). Without the
variables this module changes nothing. Either way it then runs the next
``sitecustomize`` on the path, which this one would otherwise hide.
"""

from __future__ import annotations

import importlib.machinery
import json
import os
import socket
import sys
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

HOSTS_FILE_ENV = "HANDSON_SANDBOX_HOSTS_FILE"
PORTS_FILE_ENV = "HANDSON_SANDBOX_PORTS_FILE"
ADDRESS_ENV = "HANDSON_SANDBOX_ADDRESS"
_LOOPBACK = "127.0.0.1"
_ALL_ADDRESSES = ("", "0.0.0.0")
_OWN_NAMES = ("127.0.0.1", "localhost")  # what a container calls itself
_PG_DEFAULT_PORT = 5432

_real_getaddrinfo = socket.getaddrinfo
_real_gethostbyname = socket.gethostbyname
_real_gethostbyname_ex = socket.gethostbyname_ex


class _JsonMap:
    """The object of a JSON file, cached until the file changes; ``entry(key, value)``
    gives the pair to keep (normalised) or None to drop it."""

    def __init__(self, path: str, entry: Callable[[str, Any], tuple[str, Any] | None]) -> None:
        self.path = path
        self._entry = entry
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._map: dict[str, Any] = {}

    def current(self) -> dict[str, Any]:
        try:
            info = os.stat(self.path)
        except OSError:
            return {}  # no file (yet): nothing is mapped
        stamp = (info.st_mtime_ns, info.st_size)
        with self._lock:
            if stamp != self._stamp:
                try:
                    with open(self.path, encoding="utf-8") as file:
                        data = json.load(file)
                except (OSError, ValueError):
                    return self._map  # mid-write or broken: keep the last good map
                if isinstance(data, dict):
                    pairs = (self._entry(str(key), value) for key, value in data.items())
                    self._map = dict(pair for pair in pairs if pair is not None)
                    self._stamp = stamp
            return self._map


def _host_entry(name: str, value: Any) -> tuple[str, str] | None:
    """A hosts-file pair, its name in the form lookups use (lower case, no final dot)."""
    return (name.rstrip(".").lower(), value) if isinstance(value, str) else None


def _port_entry(key: str, value: Any) -> tuple[str, int] | None:
    """A ports-file pair: ``"address:port"`` and the port on 127.0.0.1 behind it."""
    return (key, value) if isinstance(value, int) else None


class _HostsFile(_JsonMap):
    """The name -> address map of a JSON file, cached until the file changes."""

    def __init__(self, path: str) -> None:
        super().__init__(path, _host_entry)

    def lookup(self, host: str | bytes | None) -> str | None:
        """The mapped address of ``host``, or None to let the real resolver answer."""
        if host is None:
            return None
        if isinstance(host, (bytes, bytearray)):
            host = bytes(host).decode("ascii", "replace")
        return self.current().get(host.rstrip(".").lower())


class _Ports:
    """Single-address mode: the port on 127.0.0.1 behind a stand-in address and port."""

    def __init__(self, path: str, own: str) -> None:
        self.own = own
        self._file = _JsonMap(path, _port_entry)
        # Ports this process bound for its own address where the sandbox gave none.
        self._mine: dict[str, int] = {}

    def _real(self, host: str, port: int) -> int | None:
        key = f"{host}:{port}"
        return self._mine.get(key) or self._file.current().get(key)

    def bind_to(self, address: tuple[str, int]) -> tuple[str, int]:
        """Where to bind for ``address``: the task's own address, or all addresses with a
        port, go to 127.0.0.1 and the port behind the task's address (0: a free one)."""
        host, port = address
        if host != self.own and not (host in _ALL_ADDRESSES and port):
            return address
        real = self._real(self.own, port) if port else None
        return _LOOPBACK, real or 0

    def bound(self, port: int, real: int) -> None:
        """Remember that this process listens for the task's ``port`` on ``real``."""
        self._mine[f"{self.own}:{port}"] = real

    def connect_to(self, address: tuple[str, int]) -> tuple[str, int]:
        """Where a connection to ``address`` goes."""
        host, port = address
        real = self._real(self.own if host in _OWN_NAMES else host, port)
        return (_LOOPBACK, real) if real else address

    def stand_in(self, address: tuple[str, int]) -> tuple[str, int] | None:
        """The stand-in address and port behind which ``address`` (on 127.0.0.1) is."""
        if address[0] != _LOOPBACK:
            return None
        for table in (self._mine, self._file.current()):
            for key, real in table.items():
                if real == address[1]:
                    host, _, port = key.rpartition(":")
                    return host, int(port)
        return None


def _install(hosts: _HostsFile) -> None:
    """Put the map in front of the socket module's resolver functions."""

    def getaddrinfo(
        host: str | bytes | None,
        port: str | int | None,
        family: int = 0,
        type: int = 0,  # the socket module's own parameter name
        proto: int = 0,
        flags: int = 0,
    ) -> list:
        address = hosts.lookup(host)
        if address is None:
            return _real_getaddrinfo(host, port, family, type, proto, flags)
        # A numeric host never reaches DNS; the real function still does the rest
        # (ports, service names, family checks) exactly as usual.
        answers = _real_getaddrinfo(
            address, port, family, type, proto, flags | socket.AI_NUMERICHOST
        )
        if flags & socket.AI_CANONNAME and answers:
            # The canonical name is the name asked for, not the address it maps to.
            name = host.decode() if isinstance(host, (bytes, bytearray)) else str(host)
            answers[0] = (*answers[0][:3], name, answers[0][4])
        return answers

    def gethostbyname(hostname: str) -> str:
        address = hosts.lookup(hostname)
        return _real_gethostbyname(hostname) if address is None else address

    def gethostbyname_ex(hostname: str) -> tuple[str, list[str], list[str]]:
        address = hosts.lookup(hostname)
        if address is None:
            return _real_gethostbyname_ex(hostname)
        return hostname, [], [address]

    for fake, real in (
        (getaddrinfo, _real_getaddrinfo),
        (gethostbyname, _real_gethostbyname),
        (gethostbyname_ex, _real_gethostbyname_ex),
    ):
        fake.__doc__ = real.__doc__
        fake.__wrapped__ = real  # type: ignore[attr-defined]
    socket.getaddrinfo = getaddrinfo
    socket.gethostbyname = gethostbyname
    socket.gethostbyname_ex = gethostbyname_ex


def _install_ports(ports: _Ports) -> None:
    """Put the single-address mode's ports behind ``socket.socket``'s methods."""
    cls = socket.socket
    real_bind, real_connect, real_connect_ex = cls.bind, cls.connect, cls.connect_ex
    real_getsockname, real_getpeername = cls.getsockname, cls.getpeername

    def inet(sock: socket.socket, address: Any) -> bool:
        return (
            sock.family == socket.AF_INET
            and isinstance(address, tuple)
            and len(address) == 2
            and isinstance(address[0], str)
            and isinstance(address[1], int)
        )

    def bind(self: socket.socket, address: Any) -> None:
        if not inet(self, address):
            return real_bind(self, address)
        target = ports.bind_to(address)
        real_bind(self, target)
        if address[1] and not target[1]:
            ports.bound(address[1], real_getsockname(self)[1])

    def connect(self: socket.socket, address: Any) -> None:
        return real_connect(self, ports.connect_to(address) if inet(self, address) else address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        return real_connect_ex(self, ports.connect_to(address) if inet(self, address) else address)

    def getsockname(self: socket.socket) -> Any:
        address = real_getsockname(self)
        return (ports.stand_in(address) if inet(self, address) else None) or address

    def getpeername(self: socket.socket) -> Any:
        address = real_getpeername(self)
        return (ports.stand_in(address) if inet(self, address) else None) or address

    for fake, real in (
        (bind, real_bind),
        (connect, real_connect),
        (connect_ex, real_connect_ex),
        (getsockname, real_getsockname),
        (getpeername, real_getpeername),
    ):
        fake.__doc__ = real.__doc__
        fake.__wrapped__ = real  # type: ignore[attr-defined]
        setattr(cls, real.__name__, fake)
    sys.meta_path.insert(0, _AfterImport("psycopg.conninfo", lambda m: _redirect_psycopg(m, ports)))


class _AfterImport:
    """A meta path finder that runs ``patch(module)`` right after the module ``name`` is
    executed, before any other module can import names from it."""

    def __init__(self, name: str, patch: Callable[[ModuleType], None]) -> None:
        self.name = name
        self.patch = patch

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name != self.name:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        loader = spec.loader if spec is not None else None
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        execute = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            execute(module)
            self.patch(module)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def _redirect_psycopg(conninfo: ModuleType, ports: _Ports) -> None:
    """Send each of psycopg's connection attempts (``hostaddr`` and ``port``, which libpq
    connects to in C) to the port behind that stand-in address and port."""

    def redirect(attempt: dict[str, Any]) -> dict[str, Any]:
        host = attempt.get("hostaddr")
        try:
            port = int(attempt.get("port") or _PG_DEFAULT_PORT)
        except ValueError:
            return attempt
        if not host or (target := ports.connect_to((str(host), port))) == (host, port):
            return attempt
        return {**attempt, "hostaddr": target[0], "port": str(target[1])}

    attempts = getattr(conninfo, "conninfo_attempts", None)
    attempts_async = getattr(conninfo, "conninfo_attempts_async", None)
    if attempts is not None:

        def conninfo_attempts(params: Any) -> list[dict[str, Any]]:
            return [redirect(attempt) for attempt in attempts(params)]

        conninfo.conninfo_attempts = conninfo_attempts  # type: ignore[attr-defined]
    if attempts_async is not None:

        async def conninfo_attempts_async(params: Any) -> list[dict[str, Any]]:
            return [redirect(attempt) for attempt in await attempts_async(params)]

        conninfo.conninfo_attempts_async = conninfo_attempts_async  # type: ignore[attr-defined]


def _run_next_sitecustomize() -> None:
    """Run the ``sitecustomize`` this one hides (the interpreter's or a venv's), if any."""
    import importlib.machinery
    import importlib.util

    here = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)


if os.environ.get(HOSTS_FILE_ENV):
    _install(_HostsFile(os.environ[HOSTS_FILE_ENV]))
if os.environ.get(PORTS_FILE_ENV):
    _install_ports(_Ports(os.environ[PORTS_FILE_ENV], os.environ.get(ADDRESS_ENV, "")))
_run_next_sitecustomize()
