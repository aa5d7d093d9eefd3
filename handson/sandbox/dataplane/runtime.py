"""Containers as local processes.

Fargate runs each container of a task in its own network namespace; the sandbox runs it
as a child process of the sandbox server, bound to a loopback address of its own
(``HOST``), so every task can listen on the same container port as on awsvpc. Where the
machine has no loopback address but 127.0.0.1 (macOS), those addresses are stand-ins
only and each of their ports is a port of its own on 127.0.0.1 (see ``Loopback``).
Every process carries ``HANDSON_SANDBOX_ID`` in its environment so that ``sandbox stop``
can find and end it even when the server itself was killed.
"""

from __future__ import annotations

import errno
import fcntl
import ipaddress
import json
import logging
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
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
# What a task process reads in single-address mode (resolver/sitecustomize.py).
PORTS_FILE_ENV = "HANDSON_SANDBOX_PORTS_FILE"
ADDRESS_ENV = "HANDSON_SANDBOX_ADDRESS"
LOCALHOST = "127.0.0.1"
# Single-address mode hands out ports from here: below the ports Linux (32768-60999) and
# macOS (49152-65535) pick for outgoing connections, so no client connection holds one.
FIRST_PORT = 20000
LAST_PORT = 32767

# Sandboxes on one machine share its loopback interface: each holds one of these slots
# (a 127.x.0.0/16, and a run of ports for single mode) for as long as it runs.
SLOTS = 230
SLOT_PORTS = (LAST_PORT - FIRST_PORT + 1) // SLOTS
SLOTS_DIR = Path(tempfile.gettempdir()) / "handson-sandbox-slots"

LineSink = Callable[[str, int], None]


class Slot:
    """One sandbox's share of the loopback interface, held with a lock on a file under
    ``SLOTS_DIR`` so that two sandboxes running at once (a learner's and a test run's, or
    two test workers) never hand out the same task addresses or ports. The lock goes with
    the process, so a killed sandbox frees its slot too."""

    def __init__(self, start: int) -> None:
        SLOTS_DIR.mkdir(parents=True, exist_ok=True)
        for step in range(SLOTS):
            index = (start + step) % SLOTS
            handle = open(SLOTS_DIR / f"{index}.lock", "a")  # noqa: SIM115 (held until close)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                continue
            self.index = index
            self._handle: IO[str] | None = handle
            return
        raise OSError(errno.EADDRINUSE, f"all {SLOTS} sandbox slots are in use ({SLOTS_DIR})")

    @property
    def first_address(self) -> str:
        return f"127.{16 + self.index}.0.1"

    @property
    def first_port(self) -> int:
        return FIRST_PORT + self.index * SLOT_PORTS

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()  # closing the file drops the lock
            self._handle = None


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


def loopback_mode(setting: str, address: str) -> str:
    """The loopback mode to run in: ``setting``, unless it is "auto", which is "many" when
    ``address`` (a loopback address besides 127.0.0.1) can be bound and "single" if not."""
    if setting != "auto":
        return setting
    try:
        with socket.socket() as probe:
            probe.bind((address, 0))
    except OSError:
        return "single"
    return "many"


class Loopback:
    """Where the sockets behind the stand-in addresses of task and DB ENIs are.

    The addresses come from a ``LoopbackPool`` in either mode, and the data plane knows
    tasks and databases by them. In "many" mode they are real: a listener binds its own
    address and port, and connections go there. In "single" mode only 127.0.0.1 exists:
    every (address, port) a listener needs gets a port of its own on 127.0.0.1, and the
    ports file maps ``"address:port"`` to it for the task processes, whose resolver shim
    (resolver/sitecustomize.py) binds and connects there while the program sees the
    address and port it asked for.
    """

    def __init__(self, first: str, *, mode: str, ports_file: Path, first_port: int) -> None:
        self.mode = mode
        self.ports_file = ports_file
        self._pool = LoopbackPool(first)
        self._ports: dict[tuple[str, int], int] = {}
        self._next_port = first_port
        self._lock = threading.Lock()
        # Single mode: a port that is bound but never listens, so that connecting to an
        # address and port nothing was given is refused, as in many mode.
        self._refusing: socket.socket | None = None
        if mode == "single":
            self._refusing = socket.socket()
            self._refusing.bind((LOCALHOST, 0))

    def allocate(self) -> str:
        return self._pool.allocate()

    def release(self, address: str) -> None:
        """Give the address back, with the ports it had in single mode."""
        with self._lock:
            gone = [key for key in self._ports if key[0] == address]
            for key in gone:
                del self._ports[key]
            if gone:
                self._write()
        self._pool.release(address)

    def listen_address(self, address: str, port: int) -> tuple[str, int]:
        """Where a listener for ``address``:``port`` binds; single mode gives it a port
        on 127.0.0.1 the first time."""
        if self._refusing is None:
            return address, port
        with self._lock:
            real = self._ports.get((address, port))
            if real is None:
                real = self._ports[(address, port)] = self._free_port()
                self._write()
        return LOCALHOST, real

    def dial(self, address: str, port: int) -> tuple[str, int]:
        """Where a connection to ``address``:``port`` goes."""
        if self._refusing is None:
            return address, port
        with self._lock:
            real = self._ports.get((address, port))
        return LOCALHOST, real or int(self._refusing.getsockname()[1])

    def environment(self, address: str) -> dict[str, str]:
        """What a process of the task with ``address`` needs to find its ports."""
        if self._refusing is None:
            return {}
        return {PORTS_FILE_ENV: str(self.ports_file), ADDRESS_ENV: address}

    def _free_port(self) -> int:
        span = LAST_PORT - FIRST_PORT + 1
        taken = set(self._ports.values())
        for _ in range(span):
            # Round the range: a port comes back only after all others, so connections
            # a stopped task left in TIME_WAIT are long gone by then.
            port = self._next_port
            self._next_port = FIRST_PORT + (port + 1 - FIRST_PORT) % span
            if port in taken:
                continue
            try:
                with socket.socket() as probe:
                    probe.bind((LOCALHOST, port))
            except OSError:
                continue  # another program's
            return port
        raise OSError(errno.EADDRINUSE, f"no free port on {LOCALHOST} for the sandbox")

    def _write(self) -> None:
        mapping = {f"{a}:{p}": real for (a, p), real in sorted(self._ports.items())}
        self.ports_file.parent.mkdir(parents=True, exist_ok=True)
        scratch = self.ports_file.with_suffix(".tmp")
        scratch.write_text(json.dumps(mapping, indent=1))
        scratch.replace(self.ports_file)  # task processes never read half a file


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
        # driver (docs/sandbox.md, "awslogs and CloudWatch Logs").
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
