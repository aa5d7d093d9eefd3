"""Start, stop, inspect and reset the background sandbox server.

One server per ``HANDSON_HOME``: its state file records the process, ports and the
sandbox id that every process it starts carries in its environment, so ``stop`` can
end them all even when the server itself was killed. A lock file makes concurrent
``start`` calls wait for each other instead of starting two servers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import functools
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from handson.exceptions import SandboxError
from handson.i18n import N_, _
from handson.sandbox.config import SandboxConfig, load_config
from handson.sandbox.dataplane.runtime import MARKER_ENV, marked_processes

START_TIMEOUT = 60.0
# A live server may take seconds to answer while a class keeps it busy (each answer is
# made under one lock): status waits this long, and start gives a live but silent server
# this long before it calls it hung and replaces it (replacing it loses every account).
STATUS_TIMEOUT = 10.0
HUNG_AFTER = 60.0
# What a request to the server can fail with: refused, reset, cut short (IncompleteRead,
# RemoteDisconnected), timed out, or an answer that isn't JSON.
REQUEST_ERRORS = (OSError, urllib.error.URLError, http.client.HTTPException, ValueError)
GONE = N_("its accounts, services and databases are gone")


@dataclass(frozen=True)
class SandboxStatus:
    """What ``handson sandbox status`` reports."""

    running: bool
    endpoint_url: str | None = None
    alb_proxy_url: str | None = None
    pid: int | None = None
    speed: float | None = None
    details: dict[str, Any] | None = None
    # The server of the state file is gone (killed, crashed) with everything it held.
    died: bool = False
    # What to tell the learner besides the status (a dead server, a replaced one), or "".
    note: str = ""
    # The sandbox's HANDSON_HOME (state, logs, the terminal's AWS config).
    home: str | None = None
    # This run of the server (a new one at every start).
    sandbox_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class StopReport:
    """What ``handson sandbox stop`` did: ``stopped`` is False when there was no sandbox;
    ``died`` when its server was already dead, ``leftovers`` what it had left running."""

    stopped: bool
    pid: int | None = None
    died: bool = False
    leftovers: tuple[str, ...] = ()
    note: str = ""


def _read_state(config: SandboxConfig) -> dict[str, Any] | None:
    try:
        return dict(json.loads(config.state_file.read_text()))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (killed, not yet reaped) is not a running server.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _server_alive(state: dict[str, Any]) -> bool:
    """Whether the state file's server process still runs (not a reused pid)."""
    pid = int(state["pid"])
    if not _alive(pid):
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            command = handle.read()
    except OSError:
        return True
    return not command or b"handson.sandbox.server" in command


def _leftovers(state: dict[str, Any]) -> list[int]:
    """Processes the state file's sandbox started that still run (not the server)."""
    return [
        pid
        for pid in marked_processes(str(state.get("sandbox_id")))
        if pid != int(state["pid"]) and _alive(pid)
    ]


def _describe(pids: Iterable[int]) -> tuple[str, ...]:
    """``("2 task processes", "PostgreSQL")`` for a set of sandbox processes."""
    postgres, others = False, 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/comm") as handle:
                name = handle.read().strip()
        except OSError:
            name = ""
        if name.startswith(("postgres", "pg_")):
            postgres = True
        else:
            others += 1
    counted = _("{count} task process") if others == 1 else _("{count} task processes")
    described = [counted.format(count=others)] if others else []
    return (*described, *(["PostgreSQL"] if postgres else []))


def _both(items: Iterable[str]) -> str:
    """``"2 task processes and PostgreSQL"``: the items joined with "and"."""
    return str(
        functools.reduce(
            lambda first, second: _("{first} and {second}").format(first=first, second=second),
            items,
        )
    )


def _died(pid: int) -> str:
    return _("the sandbox server (pid {pid}) died; {gone}").format(pid=pid, gone=_(GONE))


def _request(
    url: str, method: str = "GET", body: dict[str, Any] | None = None, timeout: float = 2.0
) -> dict[str, Any]:
    data = json.dumps(body).encode() if body is not None else (b"" if method == "POST" else None)
    request = urllib.request.Request(url, data=data, method=method)
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (loopback)
        return dict(json.loads(response.read() or b"{}"))


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@contextlib.contextmanager
def _start_lock(config: SandboxConfig) -> Iterator[None]:
    config.state_dir.mkdir(parents=True, exist_ok=True)
    with open(config.state_dir / "start.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def status(config: SandboxConfig | None = None) -> SandboxStatus:
    """Whether a sandbox server is running for this ``HANDSON_HOME``, and where."""
    config = config or load_config()
    state = _read_state(config)
    if state is None:
        return SandboxStatus(running=False)
    if not _server_alive(state):
        left = _describe(_leftovers(state))
        end = (
            _(" ({processes} it started still run: `handson sandbox stop` ends them)").format(
                processes=_both(left)
            )
            if left
            else ""
        )
        return SandboxStatus(
            running=False,
            pid=int(state["pid"]),
            died=True,
            note=_("{died}: run `handson sandbox start` for a new, empty one{end}.").format(
                died=_died(int(state["pid"])), end=end
            ),
        )
    endpoint = f"http://127.0.0.1:{state['port']}"
    try:
        details = _request(f"{endpoint}/_handson/status", timeout=STATUS_TIMEOUT)
    except REQUEST_ERRORS:
        return SandboxStatus(running=False, pid=int(state["pid"]))
    return SandboxStatus(
        running=True,
        endpoint_url=endpoint,
        alb_proxy_url=details.get("alb_proxy"),
        pid=int(state["pid"]),
        speed=float(details.get("speed", 0)),
        details=details,
        home=str(config.home),
        sandbox_id=state.get("sandbox_id"),
    )


def start(config: SandboxConfig | None = None, *, timeout: float = START_TIMEOUT) -> SandboxStatus:
    """Start the sandbox in the background and return once it answers (idempotent)."""
    config = config or load_config()
    with _start_lock(config):
        current = status(config)
        if current.running:
            return current
        state = _read_state(config)
        if state is not None and _server_alive(state):
            # Alive but silent: busy, most likely. Replace it only once it is clearly hung.
            current = _await_answer(config, HUNG_AFTER)
            if current.running:
                return current
        note = ""
        if state is not None:
            # A stale state file: the server died (or hangs). End whatever it left running.
            pid, died = int(state["pid"]), not _server_alive(state)
            left = _terminate(state)
            config.state_file.unlink(missing_ok=True)
            what = (
                _died(pid)
                if died
                else _("the sandbox server (pid {pid}) did not answer").format(pid=pid)
            )
            ended = (
                _(" (ended what it left running: {processes})").format(processes=_both(left))
                if left
                else ""
            )
            note = _("{what}: starting a new, empty sandbox{ended}.").format(what=what, ended=ended)
        for port, variable in (
            (config.port, "HANDSON_SANDBOX_PORT"),
            (config.alb_port, "HANDSON_SANDBOX_ALB_PORT"),
        ):
            if not _port_free(port):
                raise SandboxError(
                    _(
                        "Port {port} on 127.0.0.1 is already in use by another program, so the "
                        "sandbox can't listen there. Stop that program, or pick a free port: "
                        "{variable}=<port> handson sandbox start"
                    ).format(port=port, variable=variable)
                )
        started = _spawn(config, timeout)
        return dataclasses.replace(started, note=note) if note else started


def _await_answer(config: SandboxConfig, seconds: float) -> SandboxStatus:
    """Ask the server for its status until it answers, it dies, or ``seconds`` pass."""
    deadline = time.monotonic() + seconds
    current = SandboxStatus(running=False)
    while time.monotonic() < deadline:
        state = _read_state(config)
        if state is None or not _server_alive(state):
            break
        current = status(config)
        if current.running:
            break
        time.sleep(0.5)
    return current


def _spawn(config: SandboxConfig, timeout: float) -> SandboxStatus:
    sandbox_id = uuid.uuid4().hex
    command = [
        sys.executable, "-m", "handson.sandbox.server",
        "--port", str(config.port),
        "--alb-port", str(config.alb_port),
        "--speed", str(config.speed),
        "--control-speed", str(config.effective_control_speed),
        "--loopback", config.loopback,
        "--state-dir", str(config.state_dir),
        "--sandbox-id", sandbox_id,
    ]  # fmt: skip
    if config.seed is not None:
        command += ["--seed", str(config.seed)]
    env = dict(os.environ, **{MARKER_ENV: sandbox_id})
    config.state_dir.mkdir(parents=True, exist_ok=True)
    with open(config.log_file, "ab") as log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=env,
            start_new_session=True,  # not killed with the notebook kernel or the terminal
        )
    state = {
        "pid": process.pid,
        "port": config.port,
        "alb_port": config.alb_port,
        "speed": config.speed,
        "sandbox_id": sandbox_id,
        "started_at": time.time(),
    }
    config.state_file.write_text(json.dumps(state, indent=1))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            config.state_file.unlink(missing_ok=True)
            raise SandboxError(
                _(
                    "The sandbox server exited during start (code {code}). "
                    "Its log is {log_file}:\n{tail}"
                ).format(
                    code=process.returncode, log_file=config.log_file, tail=_tail(config.log_file)
                )
            )
        current = status(config)
        if current.running:
            return current
        time.sleep(0.05)
    _terminate(state)
    config.state_file.unlink(missing_ok=True)
    raise SandboxError(
        _("The sandbox server did not answer within {timeout:.0f} s; see {log_file}.").format(
            timeout=timeout, log_file=config.log_file
        )
    )


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def stop(config: SandboxConfig | None = None) -> bool:
    """Stop the sandbox and every process it started; False if none was running."""
    return shutdown(config).stopped


def shutdown(config: SandboxConfig | None = None) -> StopReport:
    """Stop the sandbox and every process it started, saying what was found: a running
    server, or a dead one (killed, crashed) and what it left running. Never fails on a
    server that breaks off its answer; the state file is removed in every case."""
    config = config or load_config()
    with _start_lock(config):
        state = _read_state(config)
        if state is None:
            return StopReport(stopped=False)
        pid = int(state["pid"])
        died, left = not _server_alive(state), ()
        try:
            if died:
                left = _describe(_leftovers(state))
            else:
                # The server may answer, break off (IncompleteRead), or not answer at all.
                with contextlib.suppress(*REQUEST_ERRORS):
                    _request(f"http://127.0.0.1:{state['port']}/_handson/shutdown", "POST")
                _wait_gone([pid], 10.0)
        finally:
            _terminate(state)
            config.state_file.unlink(missing_ok=True)
        if not died:
            return StopReport(stopped=True, pid=pid)
        ended = (
            _("ended what it left running: {processes}").format(processes=_both(left))
            if left
            else _("nothing it started was still running")
        )
        return StopReport(
            stopped=True,
            pid=pid,
            died=True,
            leftovers=left,
            note=_("{died}; {ended}. `handson sandbox start` starts a new, empty one.").format(
                died=_died(pid), ended=ended
            ),
        )


def _terminate(state: dict[str, Any]) -> tuple[str, ...]:
    """End the server, its process tree and every process carrying its sandbox id: TERM,
    then KILL. Returns what was ended besides the server (``_describe``)."""
    server = int(state["pid"])
    pids = {server, *_leftovers(state)} if _server_alive(state) else set(_leftovers(state))
    if server in pids:
        with contextlib.suppress(Exception):
            import psutil

            pids |= {child.pid for child in psutil.Process(server).children(recursive=True)}
    pids = {p for p in pids if _alive(p)}
    ended = _describe(pids - {server})
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        pids = _wait_gone(pids, 5.0)
        pids |= set(_leftovers(state))
        if not pids:
            break
    return ended


def _wait_gone(pids: Iterable[int], timeout: float) -> set[int]:
    remaining = set(pids)
    deadline = time.monotonic() + timeout
    while remaining and time.monotonic() < deadline:
        for pid in list(remaining):
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)  # reap our own child so it isn't a zombie
            if not _alive(pid):
                remaining.discard(pid)
        if remaining:
            time.sleep(0.05)
    return remaining


def reset(config: SandboxConfig | None = None) -> None:
    """Forget every resource in every account; the server keeps running."""
    config = config or load_config()
    current = status(config)
    if not current.running or current.endpoint_url is None:
        raise SandboxError(_("The sandbox is not running. Start it with: handson sandbox start"))
    _request(f"{current.endpoint_url}/_handson/reset", "POST", timeout=30)


def inject_faults(
    throttle_rate: float,
    *,
    services: list[str] | None = None,
    seed: int = 0,
    config: SandboxConfig | None = None,
) -> None:
    """Make a share of API calls fail with ThrottlingException (0 turns it off)."""
    config = config or load_config()
    current = status(config)
    if not current.running or current.endpoint_url is None:
        raise SandboxError(_("The sandbox is not running. Start it with: handson sandbox start"))
    _request(
        f"{current.endpoint_url}/_handson/faults",
        "POST",
        {"throttle_rate": throttle_rate, "services": services or [], "seed": seed},
    )


def mutating_calls(account_id: str, config: SandboxConfig | None = None) -> dict[str, int]:
    """Successful API calls that changed something in ``account_id`` since the sandbox
    started, by ``service:Operation`` (e.g. ``{"ecs:CreateService": 1}``)."""
    config = config or load_config()
    current = status(config)
    if not current.running or current.endpoint_url is None:
        raise SandboxError(_("The sandbox is not running. Start it with: handson sandbox start"))
    answer = _request(f"{current.endpoint_url}/_handson/calls?account={account_id}")
    return {k: int(v) for k, v in answer["mutating_calls"].items()}


@contextlib.contextmanager
def private(
    *, seed: int | None = None, speed: float | None = None, control_speed: float | None = None
) -> Iterator[SandboxConfig]:
    """A sandbox of its own for the duration of a ``with`` block: a new HANDSON_HOME and
    free ports, pointed at by this process's environment (so ``handson.connect()`` and
    the kernels it starts find it), stopped and removed afterwards with the environment
    restored. For tests, benchmarks and refreshing committed outputs, never the
    learner's own sandbox."""
    import shutil

    from handson.sandbox.config import DEFAULT_SPEED, environment, private_config

    config = private_config(
        seed=seed, speed=DEFAULT_SPEED if speed is None else speed, control_speed=control_speed
    )
    saved = dict(os.environ)
    os.environ.update(environment(config))
    try:
        start(config)
        yield config
    finally:
        stop(config)
        os.environ.clear()
        os.environ.update(saved)
        shutil.rmtree(config.home, ignore_errors=True)
