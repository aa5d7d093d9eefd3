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
import selectors
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

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


class OutputPump:
    """One thread that reads every container's stdout and stderr.

    A thread per pipe would mean hundreds of threads with a classroom of tasks, all
    fighting for the GIL; a selector over non-blocking pipes needs one.
    """

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = os.pipe()
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._thread = threading.Thread(target=self._run, name="container-output", daemon=True)
        self._thread.start()

    def add(self, stream: IO[bytes], sink: LineSink, on_eof: Callable[[], None]) -> None:
        os.set_blocking(stream.fileno(), False)
        with self._lock:
            self._selector.register(stream, selectors.EVENT_READ, (sink, on_eof, bytearray()))
        os.write(self._wake_w, b"x")

    def _run(self) -> None:
        while True:
            for key, _ in self._selector.select():
                if key.data is None:
                    os.read(self._wake_r, 4096)
                    continue
                self._read(key)

    def _read(self, key: selectors.SelectorKey) -> None:
        sink, on_eof, pending = key.data
        stream = key.fileobj
        try:
            chunk = os.read(stream.fileno(), 65536)  # type: ignore[union-attr]
        except BlockingIOError:
            return
        # Each line becomes one log event stamped when it was read, as with the awslogs
        # driver (ecs-behaviour.md §6).
        stamp = int(time.time() * 1000)
        pending.extend(chunk)
        *lines, rest = pending.split(b"\n")
        pending[:] = rest
        for line in lines:
            sink(line.decode("utf-8", "replace").rstrip("\r"), stamp)
        if not chunk:
            if pending:
                sink(pending.decode("utf-8", "replace"), stamp)
            with self._lock:
                self._selector.unregister(stream)
            stream.close()  # type: ignore[union-attr]
            on_eof()


_pump: OutputPump | None = None
_pump_lock = threading.Lock()


def output_pump() -> OutputPump:
    global _pump
    with _pump_lock:
        if _pump is None:
            _pump = OutputPump()
        return _pump


class ContainerProcess:
    """One running container: a process, its output lines sent to ``sink``."""

    def __init__(self, argv: list[str], *, cwd: Path, env: dict[str, str], sink: LineSink) -> None:
        self.argv = argv
        self.popen = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self._open_streams = 2
        pump = output_pump()
        for stream in (self.popen.stdout, self.popen.stderr):
            assert stream is not None
            pump.add(stream, sink, self._closed)

    def _closed(self) -> None:
        self._open_streams -= 1

    @property
    def pid(self) -> int:
        return self.popen.pid

    def poll(self) -> int | None:
        """The exit code once the process has ended and its output is read."""
        code = self.popen.poll()
        if code is None or self._open_streams > 0:
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
