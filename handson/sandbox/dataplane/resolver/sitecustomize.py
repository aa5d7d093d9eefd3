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

The file is read again whenever its modification time or size changes; writers should
replace it atomically (write a temporary file, then rename). Without the variable this
module changes nothing. Either way it then runs the next ``sitecustomize`` on the path,
which this one would otherwise hide.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading

HOSTS_FILE_ENV = "HANDSON_SANDBOX_HOSTS_FILE"

_real_getaddrinfo = socket.getaddrinfo
_real_gethostbyname = socket.gethostbyname
_real_gethostbyname_ex = socket.gethostbyname_ex


class _HostsFile:
    """The name -> address map of a JSON file, cached until the file changes."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._hosts: dict[str, str] = {}

    def lookup(self, host: str | bytes | None) -> str | None:
        """The mapped address of ``host``, or None to let the real resolver answer."""
        if host is None:
            return None
        if isinstance(host, (bytes, bytearray)):
            host = bytes(host).decode("ascii", "replace")
        return self._current().get(host.rstrip(".").lower())

    def _current(self) -> dict[str, str]:
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
                    return self._hosts  # mid-write or broken: keep the last good map
                if isinstance(data, dict):
                    self._hosts = {
                        str(name).rstrip(".").lower(): value
                        for name, value in data.items()
                        if isinstance(value, str)
                    }
                    self._stamp = stamp
            return self._hosts


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
_run_next_sitecustomize()
