"""Memory limits of task containers, enforced on each container's process tree.

On Fargate a container's ``memory`` is a hard limit: a container that tries to use more is
killed (SIGKILL, so its exit code is 137) and ECS gives it the reason
``OutOfMemoryError: Container killed due to memory usage``; an essential container's
task then stops (docs/sandbox.md, "Memory limits"). ``memoryReservation`` is a soft limit and is
not enforced. The task's ``memory`` is the limit for all of its containers together: when
they use more, the largest one is killed, as the kernel's OOM killer does.

The sandbox has no cgroups to lean on, so a watcher thread samples the resident memory
(RSS) of every container's process and its descendants, and kills the whole tree when it
is over the limit. A task is sampled every 0.05 s when it is close to a limit, less often
(up to every second) the further it is from one. Only the container's own processes count
(the sandbox's resolver shim runs inside them, as a wrapper of the image would on AWS); the
sandbox server does not.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Final

import psutil

from handson import fargate
from handson.exceptions import FargateSizeError

log = logging.getLogger(__name__)

MIB: Final = 1024 * 1024
OOM_REASON: Final = "OutOfMemoryError: Container killed due to memory usage"
OOM_EXIT_CODE: Final = 137  # 128 + SIGKILL
# Real seconds between two samples of a container close to its limit (memory use does not
# follow the sandbox clock), and of one far from it. A sample of a task costs ~0.3 ms of
# CPU: 60 tasks sampled every 0.05 s took a third of a core, so a task is sampled again
# when it could have reached its limit growing at GROWTH_BYTES_PER_SECOND, within these.
SAMPLE_SECONDS: Final = 0.05
MAX_SAMPLE_SECONDS: Final = 1.0
GROWTH_BYTES_PER_SECOND: Final = 1024 * MIB


def container_limit(definition: dict[str, Any]) -> int | None:
    """The container's hard limit in bytes (``memory``), or None."""
    value = definition.get("memory")
    return int(value) * MIB if value not in (None, "", 0) else None


def _task_mib(value: Any) -> int | None:
    if value in (None, ""):
        return None
    try:
        return fargate.parse_memory(value)
    except FargateSizeError:
        return None


def task_limit(task_definition: dict[str, Any], overrides: dict[str, Any]) -> int | None:
    """The task's memory in bytes (an override of RunTask first), or None."""
    mib = _task_mib(overrides.get("memory") or task_definition.get("memory"))
    return None if mib is None else mib * MIB


def register_error(params: dict[str, Any]) -> str | None:
    """RegisterTaskDefinition's ClientException message for the memory settings, or None
    (docs/sandbox.md, "Memory limits")."""
    task_mib = _task_mib(params.get("memory"))
    reserved = 0
    for cdef in params.get("containerDefinitions") or []:
        name = cdef.get("name", "")
        hard, soft = cdef.get("memory"), cdef.get("memoryReservation")
        if task_mib is None and hard is None and soft is None:
            return (
                f"Invalid setting for container '{name}'. At least one of 'memory' or "
                "'memoryReservation' must be specified."
            )
        if hard is not None and task_mib is not None and int(hard) > task_mib:
            return f"The 'memory' setting for container '{name}' is greater than for the task."
        # AWS accepts memory equal to memoryReservation (the developer guide was corrected
        # to "greater than or equal to"); only a hard limit below the soft one is refused.
        # Assumption: AWS's exact text for it is not recorded; this says what is wrong.
        if hard is not None and soft is not None and int(hard) < int(soft):
            return (
                f"Invalid setting for container '{name}'. The 'memory' setting must be greater "
                "than or equal to 'memoryReservation'."
            )
        reserved += int(soft if soft is not None else hard or 0)
    if task_mib is not None and reserved > task_mib:
        return (
            "The sum of all container 'memoryReservation' values cannot be greater than the "
            "value of the task 'memory'."
        )
    return None


@dataclass
class Watched:
    """The containers of one task: root process and hard limit of each."""

    roots: dict[str, psutil.Process]
    limits: dict[str, int | None]
    task_limit: int | None
    peak: dict[str, int] = field(default_factory=dict)
    due: float = 0.0  # time.monotonic() of the next sample


def next_sample_in(headroom: float) -> float:
    """Seconds until a task with ``headroom`` bytes left below its nearest limit is sampled
    again: the time it would take to grow that much, between SAMPLE_SECONDS and
    MAX_SAMPLE_SECONDS."""
    return min(MAX_SAMPLE_SECONDS, max(SAMPLE_SECONDS, headroom / GROWTH_BYTES_PER_SECOND))


def _children(pid: int) -> list[int]:
    """Direct children of ``pid``: from /proc (cheap), else psutil's scan."""
    found: list[int] = []
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        threads = []
    read_any = False
    for tid in threads:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as handle:
                found += [int(p) for p in handle.read().split()]
            read_any = True
        except OSError:
            continue
    if read_any:
        return found
    try:
        return [p.pid for p in psutil.Process(pid).children()]
    except psutil.Error:
        return []


def process_tree(root: psutil.Process) -> list[psutil.Process]:
    """``root`` and its descendants that are still alive."""
    tree, queue = [], [root]
    while queue:
        process = queue.pop()
        tree.append(process)
        for pid in _children(process.pid):
            try:
                queue.append(psutil.Process(pid))
            except psutil.Error:
                continue
    return tree


def tree_rss(tree: list[psutil.Process]) -> int:
    total = 0
    for process in tree:
        try:
            total += process.memory_info().rss
        except psutil.Error:
            continue
    return total


def _headroom(entry: Watched, usage: dict[str, int]) -> float:
    """Bytes left below the nearest limit of the task (containers' and the task's)."""
    left = [
        limit - usage[name]
        for name, limit in entry.limits.items()
        if limit is not None and name in usage
    ]
    if entry.task_limit is not None:
        left.append(entry.task_limit - sum(usage.values()))
    return max(0, min(left, default=0))


class MemoryWatcher:
    """Samples the memory of watched containers and kills those over their limits."""

    def __init__(self, interval: float = SAMPLE_SECONDS) -> None:
        self.interval = interval
        self._lock = threading.Lock()
        self._tasks: dict[str, Watched] = {}
        self._killed: set[tuple[str, str]] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(
        self,
        task_arn: str,
        containers: dict[str, tuple[int, int | None]],
        task_limit: int | None,
    ) -> None:
        """Watch a task's containers: name -> (root pid, hard limit in bytes or None)."""
        if task_limit is None and all(limit is None for _, limit in containers.values()):
            return
        roots: dict[str, psutil.Process] = {}
        for name, (pid, _) in containers.items():
            try:
                roots[name] = psutil.Process(pid)
            except psutil.Error:
                continue
        with self._lock:
            self._tasks[task_arn] = Watched(
                roots, {n: limit for n, (_, limit) in containers.items()}, task_limit
            )
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="memory-watcher", daemon=True
                )
                self._thread.start()

    def forget(self, task_arn: str) -> None:
        with self._lock:
            self._tasks.pop(task_arn, None)
            self._killed = {k for k in self._killed if k[0] != task_arn}

    def killed(self, task_arn: str, container: str) -> bool:
        """Whether the container was killed for its memory."""
        with self._lock:
            return (task_arn, container) in self._killed

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sample()
            except Exception:  # keep watching; the log says what broke
                log.exception("memory sample failed")

    def sample(self, now: float | None = None) -> None:
        """One round: measure every watched container whose sample is due (all of them
        at first), kill those over a limit."""
        now = time.monotonic() if now is None else now
        with self._lock:
            watched = [(arn, entry) for arn, entry in self._tasks.items() if entry.due <= now]
        for task_arn, entry in watched:
            trees: dict[str, list[psutil.Process]] = {}
            usage: dict[str, int] = {}
            for name, root in entry.roots.items():
                if (task_arn, name) in self._killed or not root.is_running():
                    continue
                trees[name] = process_tree(root)
                usage[name] = tree_rss(trees[name])
                entry.peak[name] = max(entry.peak.get(name, 0), usage[name])
            over = [
                n
                for n, used in usage.items()
                if (limit := entry.limits.get(n)) is not None and used > limit
            ]
            if not over and entry.task_limit is not None and usage:
                if sum(usage.values()) > entry.task_limit:
                    over = [max(usage, key=lambda n: usage[n])]
            for name in over:
                self._kill(task_arn, name, trees[name])
            entry.due = now + next_sample_in(_headroom(entry, usage))

    def _kill(self, task_arn: str, name: str, tree: list[psutil.Process]) -> None:
        with self._lock:
            if task_arn not in self._tasks:
                return
            self._killed.add((task_arn, name))
        # Descendants first, so none is re-parented and left behind.
        for process in reversed(tree):
            try:
                process.kill()
            except psutil.Error:
                continue
