"""Containers as local processes.

Fargate runs each container of a task in its own network namespace; the sandbox runs it
as a child process of the sandbox server, bound to a loopback address of its own
(``HOST``), so every task can listen on the same container port as on awsvpc.
Every process carries ``HANDSON_SANDBOX_ID`` in its environment so that ``sandbox stop``
can find and end it even when the server itself was killed.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

log = logging.getLogger(__name__)

RESOLVER_DIR = Path(__file__).parent / "resolver"
MARKER_ENV = "HANDSON_SANDBOX_ID"
# Interpreter names an image's CMD may use; the sandbox runs them with its own Python.
PYTHON_NAMES = {"python", "python3", f"python3.{sys.version_info.minor}"}

LineSink = Callable[[str, int], None]


class LoopbackPool:
    """Hands out loopback addresses (127.x.y.z) that stand in for task and DB ENIs."""

    def __init__(self, first: str = "127.1.0.1") -> None:
        self._next = int(ipaddress.IPv4Address(first))
        self._free: list[str] = []
        self._lock = threading.Lock()

    def allocate(self) -> str:
        with self._lock:
            if self._free:
                return self._free.pop()
            address = str(ipaddress.IPv4Address(self._next))
            self._next += 1
            if self._next & 0xFF in (0, 255):  # skip .0 and .255 to keep addresses tidy
                self._next += 2 if self._next & 0xFF == 255 else 1
            return address

    def release(self, address: str) -> None:
        with self._lock:
            self._free.append(address)


class ContainerProcess:
    """One running container: a process, its output lines sent to ``sink``."""

    def __init__(self, argv: list[str], *, cwd: Path, env: dict[str, str], sink: LineSink) -> None:
        self.argv = argv
        self._sink = sink
        self.popen = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self._readers = [
            threading.Thread(target=self._pump, args=(stream,), daemon=True)
            for stream in (self.popen.stdout, self.popen.stderr)
        ]
        for reader in self._readers:
            reader.start()

    def _pump(self, stream: object) -> None:
        # Each line becomes one log event stamped when it was produced, as with the
        # awslogs driver (ecs-behaviour.md §6).
        for raw in iter(stream.readline, b""):  # type: ignore[attr-defined]
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            self._sink(line, int(time.time() * 1000))
        stream.close()  # type: ignore[attr-defined]

    @property
    def pid(self) -> int:
        return self.popen.pid

    def poll(self) -> int | None:
        """The exit code once the process has ended and its output is read."""
        code = self.popen.poll()
        if code is None or any(r.is_alive() for r in self._readers):
            return None
        return code

    def signal(self, sig: int) -> None:
        if self.popen.poll() is None:
            try:
                self.popen.send_signal(sig)
            except ProcessLookupError:
                pass

    def terminate(self) -> None:
        self.signal(signal.SIGTERM)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)


def resolve_argv(argv: list[str]) -> list[str]:
    """Map the image's program to this machine: ``python`` is the kit's interpreter."""
    if not argv:
        raise ValueError("the container has no command: the image needs CMD or ENTRYPOINT")
    program = argv[0]
    if Path(program).name in PYTHON_NAMES:
        return [sys.executable, *argv[1:]]
    found = shutil.which(program, path=process_path())
    if found is None:
        raise FileNotFoundError(program)
    return [found, *argv[1:]]


def process_path() -> str:
    """PATH for containers: the kit's interpreter first, then the machine's."""
    return os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


def base_environment(sandbox_id: str, hosts_file: Path) -> dict[str, str]:
    """What every container process gets before the image's and task's variables."""
    env = {
        "PATH": process_path(),
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "PYTHONPATH": str(RESOLVER_DIR),
        "HANDSON_SANDBOX_HOSTS_FILE": str(hosts_file),
        MARKER_ENV: sandbox_id,
    }
    return env


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    """Whether something accepts TCP connections at host:port (loopback only)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def marked_processes(sandbox_id: str | None = None) -> Iterator[int]:
    """PIDs of processes started by a sandbox (any sandbox when ``sandbox_id`` is None)."""
    import psutil

    me = os.getpid()
    for proc in psutil.process_iter(["pid"]):
        if proc.pid == me:
            continue
        try:
            value = proc.environ().get(MARKER_ENV)
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess, OSError):
            continue
        if value and (sandbox_id is None or value == sandbox_id):
            yield proc.pid
