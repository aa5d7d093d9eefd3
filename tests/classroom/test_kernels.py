"""A student's kernel forked from its worker (handson/classroom/kernels.py).

Each check runs in a fresh Python process of its own, single-threaded as a worker is when
it forks (pytest's process has threads).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

from handson.classroom.kernels import PreforkedKernel

# Imports handson first, as the forkserver does, then forks the child.
START = """
import json, os, sys, tempfile
from pathlib import Path

import handson  # noqa: F401
from handson.classroom.kernels import PreforkedKernel
from handson.classroom.provision import _StudentKernel

preforked = PreforkedKernel()
kernel = _StudentKernel(Path(tempfile.mkdtemp(prefix="kernels-")), preforked)
manager = kernel.for_notebook()
manager.start_kernel()
client = manager.client()
client.start_channels()
client.wait_for_ready(timeout=60)
printed = []
client.execute_interactive(
    "import os, sys, json, multiprocessing as mp\\n"
    "print(json.dumps([os.getpid(), os.getppid(), os.getsid(0), 'pandas' in sys.modules,"
    " os.environ.get('JPY_PARENT_PID'), [mp.current_process().name, mp.current_process().daemon], sys.path[0], os.getcwd()]))",
    output_hook=lambda m: m["msg_type"] == "stream" and printed.append(m["content"]["text"]),
    timeout=60,
)
kernel_pid, parent, session, pandas_there, parent_env, process, path, cwd = json.loads(printed[0])
"""


def run(code: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with open(f"/proc/{pid}/stat") as stat:  # a zombie nobody reaped is gone too
        return stat.read().split(") ", 1)[1].startswith("Z")


def test_the_first_kernel_is_the_forked_child_with_the_kit_already_imported() -> None:
    seen = run(
        START
        + """
manager.shutdown_kernel(now=True)
reaped = manager.provisioner is None or manager.provisioner.process is None
try:
    os.waitpid(kernel_pid, os.WNOHANG)
    waited = False
except ChildProcessError:
    waited = True
kernel.discard()
print(json.dumps({"preforked": preforked.pid, "me": os.getpid(), "kernel": kernel_pid,
    "parent": parent, "session": session, "pandas": pandas_there, "parent_env": parent_env,
    "reaped": waited, "process": process, "path": path, "cwd": cwd}))
"""
    )
    assert seen["kernel"] == seen["preforked"], "the kernel runs in the preforked child"
    assert seen["parent"] == seen["me"], "the kernel is the worker's own child"
    assert seen["session"] == seen["kernel"], "it leads a session, as jupyter_client's does"
    # A kernel launched as usual starts without pandas; the forked one has it already.
    assert seen["pandas"] is True
    assert seen["parent_env"] == str(seen["me"]), "jupyter_client's environment is applied"
    assert seen["reaped"], "shutting the kernel down reaped its process"
    # As in a kernel started with ``python -m ipykernel_launcher``:
    assert seen["process"] == ["MainProcess", False], "multiprocessing sees a main process"
    assert seen["path"] == seen["cwd"], "the working directory comes first on sys.path"


def test_a_kernel_ends_when_its_worker_dies() -> None:
    seen = run(
        START
        + """
print(json.dumps({"kernel": kernel_pid}))
sys.stdout.flush()
os._exit(0)  # the worker dies without shutting its kernel down
"""
    )
    # ipykernel's parent poller looks every second; give it plenty of time.
    deadline = time.monotonic() + 60
    while not gone(seen["kernel"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert gone(seen["kernel"]), "the orphaned kernel should have ended"


def test_an_unused_child_ends_when_discarded_and_holds_none_of_the_given_pipes() -> None:
    seen = run(
        """
import json, os, select
from handson.classroom.kernels import PreforkedKernel

read, write = os.pipe()
pipe = os.fdopen(write, "w")
preforked = PreforkedKernel(close=[pipe])
pipe.close()
# EOF at once: the child closed its copy of the write end.
ready, _, _ = select.select([read], [], [], 30)
eof = bool(ready) and os.read(read, 1) == b""
pid = preforked.pid
preforked.discard()
try:
    os.waitpid(pid, os.WNOHANG)
    reaped = False
except ChildProcessError:
    reaped = True
print(json.dumps({"eof": eof, "reaped": reaped, "used": preforked.used}))
"""
    )
    assert seen == {"eof": True, "reaped": True, "used": True}


def test_only_ipykernel_in_this_interpreter_runs_in_the_child() -> None:
    assert PreforkedKernel.can_run([sys.executable, "-m", "ipykernel_launcher", "-f", "k.json"])
    assert not PreforkedKernel.can_run(["/usr/bin/python2", "-m", "ipykernel_launcher", "-f", "k"])
    assert not PreforkedKernel.can_run([sys.executable, "-m", "other_kernel", "-f", "k.json"])
    assert not PreforkedKernel.can_run([sys.executable, "-m", "ipykernel_launcher"])
