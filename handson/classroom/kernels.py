"""A student's kernel forked from its worker, which has already imported the kit.

A kernel started the usual way is a new Python process: it imports ipykernel, then the
notebook's first cell imports handson (pandas, boto3) and reads botocore's service
models, about 1.5 s of CPU per student, and a class shares 2 cores. A student's worker
is forked from a forkserver that imported all of that once (``provision._context``), so
here the worker forks again, at its start while it is still single-threaded, and the
child waits: when jupyter_client launches the kernel, the child is given the command line,
environment and working directory that ``Popen`` would have been given, and runs ipykernel
in place. The kernel is the worker's child, as a launched one is: the worker reaps it,
ipykernel's parent poller ends it if the worker dies, and the watchdog's tree kill finds it.

Only the first kernel of a student is forked; one started again after a crash is launched
as usual (by then the worker has threads, and forking a threaded process is unsafe).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Iterable
from typing import Any, Protocol

__all__ = ["ForkedProcess", "PreforkedKernel"]

# What jupyter_client runs for the python3 kernel spec, after the interpreter.
KERNEL_MODULE = ["-m", "ipykernel_launcher"]
POLL = 0.05


class _Closable(Protocol):
    def close(self) -> None: ...


class ForkedProcess:
    """What jupyter_client's local provisioner needs of a ``Popen``, for a forked kernel."""

    stdin = stdout = stderr = None

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        """The exit code if the kernel has ended (reaping it), else None."""
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped already
                self.returncode = 0
            else:
                if pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the kernel to end, as ``Popen.wait`` does (blocking without a timeout,
        polling with one)."""
        if timeout is None and self.returncode is None:
            try:
                _pid, status = os.waitpid(self.pid, 0)
                self.returncode = os.waitstatus_to_exitcode(status)
            except ChildProcessError:  # reaped already
                self.returncode = 0
        deadline = time.monotonic() + (timeout or 0)
        while (code := self.poll()) is None:
            if time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(str(self.pid), timeout or 0)
            time.sleep(POLL)
        return code

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class PreforkedKernel:
    """A child forked now that becomes a kernel when ``launch`` gives it its command line.

    Create it while the process is single-threaded (before any ZeroMQ context, asyncio
    loop or thread). ``close`` are objects the child closes at once, so that it holds no
    end of its parent's pipes (the worker's pipe to its supervisor must see EOF when the
    worker ends).
    """

    def __init__(self, close: Iterable[_Closable] = ()) -> None:
        read, self._write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            os.close(self._write)
            for thing in close:
                with contextlib.suppress(OSError):
                    thing.close()
            _wait_and_run(read)
        os.close(read)
        self.pid = pid
        self.used = False

    @staticmethod
    def can_run(cmd: list[str]) -> bool:
        """Whether ``cmd`` is ipykernel in this interpreter, which the child already is."""
        return (
            len(cmd) > 3
            and os.path.realpath(cmd[0]) == os.path.realpath(sys.executable)
            and cmd[1:3] == KERNEL_MODULE
        )

    def launch(self, cmd: list[str], *, env: dict[str, str], cwd: str | None) -> ForkedProcess:
        """Turn the child into the kernel ``cmd`` describes, with ``env`` and ``cwd``."""
        if self.used or not self.can_run(cmd):
            raise RuntimeError(f"the forked child cannot run {cmd!r}")
        self.used = True
        # As jupyter_client's launch_kernel adds it: the parent ipykernel watches.
        env = {**env, "JPY_PARENT_PID": str(os.getpid())}
        argv = [os.path.expanduser(arg) for arg in cmd[3:]]
        spec = {"argv": argv, "env": env, "cwd": cwd or os.getcwd()}
        with os.fdopen(self._write, "w") as pipe:
            json.dump(spec, pipe)
        return ForkedProcess(self.pid)

    def discard(self) -> None:
        """End the child if it was never used (it exits at EOF) and reap it."""
        if not self.used:
            self.used = True
            os.close(self._write)
            ForkedProcess(self.pid).wait()


def _wait_and_run(read: int) -> None:
    """In the child: read the launch spec, become that kernel, exit with its code."""
    code = 0
    try:
        with os.fdopen(read) as pipe:
            text = pipe.read()
        if text:
            _run_kernel(json.loads(text))
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _run_kernel(spec: dict[str, Any]) -> None:
    # What Popen(start_new_session=True, stdin=..., env=..., cwd=...) would have done.
    os.setsid()
    os.chdir(spec["cwd"])
    os.environ.clear()
    os.environ.update(spec["env"])
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    sys.path.insert(0, spec["cwd"])  # as ``python -m`` puts its working directory first
    _become_main_process()
    from ipykernel.kernelapp import IPKernelApp

    # ipykernel reads JPY_PARENT_PID when it is imported (in the forkserver, where it is
    # unset); given here, its poller ends the kernel when the worker is gone.
    argv = [*spec["argv"], f"--IPKernelApp.parent_handle={os.environ['JPY_PARENT_PID']}"]
    sys.argv = [sys.executable, *argv]
    IPKernelApp.launch_instance(argv=argv)


def _become_main_process() -> None:
    """Make multiprocessing see the kernel as a program's main process, as a launched
    kernel is, not as the worker it was forked from (a daemonic process, which may not
    start processes of its own)."""
    import multiprocessing.process as mp_process
    import multiprocessing.util as mp_util

    current = mp_process.current_process()
    current._config.pop("daemon", None)  # type: ignore[attr-defined]
    current._name = "MainProcess"  # type: ignore[attr-defined]
    current._identity = ()  # type: ignore[attr-defined]
    current._parent_pid = None  # type: ignore[attr-defined]
    mp_process._parent_process = None  # type: ignore[attr-defined]
    mp_process._children = set()  # type: ignore[attr-defined]
    mp_util._finalizer_registry.clear()  # type: ignore[attr-defined]
