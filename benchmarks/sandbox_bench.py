"""Benchmarks for the local AWS sandbox (``handson.sandbox``).

Run from the repository root::

    .venv/bin/python benchmarks/sandbox_bench.py [--runs N] [--accounts 30] [--json]

Three measurements, each repeated ``--runs`` times (fresh ``HANDSON_HOME`` and sandbox
per run) and reported as median with min and max:

1. ``start``: wall time of ``handson.sandbox.start(config)`` until the server answers,
   then of ``stop(config)``, on an empty sandbox.
2. ``steady``: one account built with ``tests/sandbox/world.py`` (chapters 1-6), image
   pushed and task definition registered, then the time from ``create_service`` to
   ``World.wait_steady()`` returning for a 2-task service; also the whole chapter-7
   flow (push image + register task definition + create service + steady).
3. ``scale``: ``--accounts`` accounts on ONE sandbox, each built in its own thread with
   its own ``World`` (timed, not part of the headline), then every account's 2-task
   service created at once from a thread pool; the time until ALL are steady, the peak
   RSS of the sandbox server's process tree (server, task processes, PostgreSQL)
   sampled every 0.2 s, and the number of tasks RUNNING at the end.

The machine is small and shared, so nothing here asserts: read medians and ratios.
All traffic stays on 127.0.0.1; every wait is bounded and every sandbox is stopped in
``finally``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import itertools
import json
import os
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import psutil

from handson import sandbox
from handson.sandbox.config import SandboxConfig

ROOT = Path(__file__).resolve().parents[1]
WORLD_DIR = ROOT / "tests" / "sandbox"
MIB = 1024 * 1024
SAMPLE_SECONDS = 0.2
BUILD_PHASES = ("sts", "network", "alb", "cluster_roles", "database", "allow_secret")
_accounts = itertools.count(200000000001)


# --------------------------------------------------------------------------- helpers


def _world_module() -> ModuleType:
    """``tests/sandbox/world.py``, imported on first use (no import-time side effects)."""
    if str(WORLD_DIR) not in sys.path:
        sys.path.insert(0, str(WORLD_DIR))
    import world  # type: ignore[import-not-found]

    return world


def _fake_aws_environment() -> None:
    """As tests/sandbox/conftest.py: fake credentials, no profile, never a real account."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            del os.environ[name]
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="ap-northeast-1",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
    )
    loopback = "127.0.0.1,localhost"
    for name in ("NO_PROXY", "no_proxy"):
        current = os.environ.get(name)
        os.environ[name] = f"{current},{loopback}" if current else loopback


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def make_config(speed: float) -> SandboxConfig:
    """A private HANDSON_HOME on free ports (as tests/sandbox/conftest.py)."""
    home = Path(tempfile.mkdtemp(prefix="handson-bench-"))
    home.chmod(0o755)  # PostgreSQL runs as an unprivileged user when we are root
    return SandboxConfig(home=home, port=free_port(), alb_port=free_port(), speed=speed)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _watch_exit(pid: int, exited: list[float], timeout: float = 120.0) -> None:
    """Note when ``pid`` exits or turns zombie, without reaping it (lifecycle does)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().split(")")[-1].split()[0] == "Z":
                    break
        except OSError:
            break
        time.sleep(0.01)
    else:
        return
    exited.append(time.perf_counter())


@dataclass
class Sandbox:
    """One sandbox in a fresh home: ``start`` and ``stop`` timed, always cleaned up."""

    speed: float
    config: SandboxConfig = field(init=False)
    endpoint: str = ""
    pid: int = 0
    start_seconds: float = 0.0
    stop_seconds: float = 0.0
    server_exit_seconds: float | None = None
    _stopped: bool = False

    def __post_init__(self) -> None:
        self.config = make_config(self.speed)

    def start(self) -> None:
        began = time.perf_counter()
        current = sandbox.start(self.config)
        self.start_seconds = time.perf_counter() - began
        if not current.running or current.endpoint_url is None or current.pid is None:
            raise RuntimeError(f"sandbox did not start: {current}")
        self.endpoint, self.pid = current.endpoint_url, current.pid

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        exited: list[float] = []
        watcher = threading.Thread(target=_watch_exit, args=(self.pid, exited), daemon=True)
        began = time.perf_counter()
        if self.pid:
            watcher.start()
        try:
            sandbox.stop(self.config)
        finally:
            self.stop_seconds = time.perf_counter() - began
            if exited:
                self.server_exit_seconds = exited[0] - began

    def log_problems(self) -> list[str]:
        """ERROR lines and tracebacks in the server log (read before the home is removed)."""
        try:
            text = self.config.log_file.read_text(errors="replace")
        except OSError:
            return []
        return [
            line
            for line in text.splitlines()
            if " ERROR " in line or " CRITICAL " in line or line.startswith("Traceback")
        ]

    def cleanup(self) -> None:
        shutil.rmtree(self.config.home, ignore_errors=True)


@contextlib.contextmanager
def running_sandbox(speed: float, problems: list[str]) -> Iterator[Sandbox]:
    box = Sandbox(speed)
    try:
        box.start()
        yield box
    finally:
        try:
            box.stop()
        finally:
            problems.extend(box.log_problems())
            box.cleanup()


class OpStats:
    """Wall time of every boto3 API call, by service.Operation (botocore event hooks)."""

    def __init__(self) -> None:
        self.calls: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def watch(self, world: Any) -> None:
        events = world.session.events

        def before(model: Any, context: dict[str, Any], **_: Any) -> None:
            context["bench_t0"] = time.perf_counter()

        def after(model: Any, context: dict[str, Any], **_: Any) -> None:
            if "bench_t0" in context:
                key = f"{model.service_model.service_name}.{model.name}"
                with self._lock:
                    self.calls.setdefault(key, []).append(time.perf_counter() - context["bench_t0"])

        events.register("before-call", before)
        events.register("after-call", after)

    def top(self, count: int = 6) -> list[dict[str, Any]]:
        """The operations that took the most wall time in all."""
        rows = sorted(self.calls.items(), key=lambda kv: -sum(kv[1]))[:count]
        return [
            {
                "operation": key,
                "calls": len(values),
                "total_s": sum(values),
                "median_ms": statistics.median(values) * 1000,
                "max_ms": max(values) * 1000,
            }
            for key, values in rows
        ]


def make_world(
    endpoint: str, account_id: str, cache_clients: bool, ops: OpStats | None = None
) -> Any:
    """A ``World``; with ``cache_clients`` its boto3 clients are made once per service.

    ``World.client`` builds a new botocore client on every call (a few ms of CPU, more
    for the first client of a session), so 30 threads polling ``wait_steady`` every
    0.1 s spend the machine's 2 cores in the benchmark, not in the sandbox.
    """
    world = _world_module().World(endpoint, account_id)
    if ops is not None:
        ops.watch(world)
    if cache_clients:
        world.client = functools.lru_cache(maxsize=None)(world.client)
    return world


def new_world(
    endpoint: str, cache_clients: bool, ops: OpStats | None = None
) -> tuple[Any, dict[str, float]]:
    """A new account (STS AssumeRole) built with ``World.build_all()``; phase wall times."""
    began = time.perf_counter()
    world = make_world(endpoint, str(next(_accounts)), cache_clients, ops)
    sts = time.perf_counter() - began
    phases = build_world(world)
    phases["sts"] = sts
    phases["total"] += sts
    return world, phases


def build_world(world: Any) -> dict[str, float]:
    """``World.build_all()`` phase by phase, with each phase's wall time."""
    steps: tuple[tuple[str, Callable[[], None]], ...] = (
        ("network", world.build_network),
        ("alb", world.build_alb),
        ("cluster_roles", world.build_cluster_and_roles),
        ("database", world.build_database),
        ("allow_secret", world.allow_secret),
    )
    phases: dict[str, float] = {}
    began = time.perf_counter()
    for name, step in steps:
        t = time.perf_counter()
        step()
        phases[name] = time.perf_counter() - t
    phases["total"] = time.perf_counter() - began
    return phases


def api_latency_ms(world: Any, calls: int = 20) -> float:
    """Median wall time of ``describe_services`` (one request, the lock held server-side)."""
    ecs = world.client("ecs")
    samples = []
    for _ in range(calls):
        t = time.perf_counter()
        ecs.describe_services(cluster=world.ids["cluster"], services=[world.ids["service"]])
        samples.append((time.perf_counter() - t) * 1000)
    return statistics.median(samples)


def run_all(
    fn: Callable[[Any], Any], items: list[Any], workers: int, timeout: float, name: str
) -> list[Any]:
    """``fn`` over ``items`` in a thread pool, all results within ``timeout`` seconds.

    On a timeout the pool is abandoned (its threads end once the sandbox is stopped and
    their calls fail), so the caller's ``finally`` runs without waiting for them.
    """
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
    try:
        futures = [pool.submit(fn, item) for item in items]
        deadline = time.monotonic() + timeout
        return [f.result(timeout=max(0.0, deadline - time.monotonic())) for f in futures]
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def process_tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of the server, its live children and its reaped children."""
    total = 0.0
    for proc in process_tree(pid):
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
    return total


def own_cpu_seconds() -> float:
    times = psutil.Process().cpu_times()
    return times.user + times.system


def _kind(proc: psutil.Process, server_cmdline: list[str] | None = None) -> str:
    name = proc.name()
    if name.startswith("postgres"):
        return "postgres"
    cmdline = proc.cmdline()
    if server_cmdline is not None and cmdline == server_cmdline:
        return "fork"  # forked by subprocess, not yet exec'd: shares the server's pages
    return "task" if "main.py" in " ".join(cmdline[1:2]) else "other"


class RssSampler:
    """Sums the RSS of a process tree every ``interval`` seconds in a thread; keeps the peak.

    RSS counts shared pages (Python's libraries, PostgreSQL's shared buffers) once per
    process, so the sum overstates real use; ``pss_mib`` gives one proportional sample.
    """

    def __init__(self, pid: int, interval: float = SAMPLE_SECONDS) -> None:
        self.pid = pid
        self.interval = interval
        self.peak_bytes = 0
        self.peak_processes = 0
        self.peak_breakdown: dict[str, float] = {}
        self.first_bytes = 0
        self.samples = 0
        self.forks_skipped = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def __enter__(self) -> RssSampler:
        self.sample()
        self.first_bytes = self.peak_bytes
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        with contextlib.suppress(psutil.Error):
            self.sample()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with contextlib.suppress(psutil.Error):
                self.sample()

    def sample(self) -> None:
        total, count, kinds = 0, 0, {"server": 0, "task": 0, "postgres": 0, "other": 0}
        tree = process_tree(self.pid)
        server_cmdline = tree[0].cmdline()
        for proc in tree:
            try:
                rss = proc.memory_info().rss
                kind = "server" if proc.pid == self.pid else _kind(proc, server_cmdline)
            except psutil.Error:
                continue
            if kind == "fork":
                # A fork between fork() and exec() reports the server's whole RSS though
                # it shares those pages; counting it would add a phantom server.
                self.forks_skipped += 1
                continue
            total += rss
            count += 1
            kinds[kind] += rss
        self.samples += 1
        if total > self.peak_bytes:
            self.peak_bytes = total
            self.peak_processes = count
            self.peak_breakdown = {k: v / MIB for k, v in kinds.items()}

    def pss_mib(self) -> float:
        total = 0
        for proc in process_tree(self.pid):
            with contextlib.suppress(psutil.Error):
                total += proc.memory_full_info().pss
        return total / MIB


def task_processes(pid: int) -> int:
    count = 0
    for proc in process_tree(pid)[1:]:
        with contextlib.suppress(psutil.Error):
            count += _kind(proc) == "task"
    return count


# ------------------------------------------------------------------------ benchmarks


Results = dict[str, list[float]]


def add(results: Results, key: str, value: float) -> None:
    results.setdefault(key, []).append(float(value))


def bench_start(results: Results, problems: list[str], speed: float) -> None:
    """Start and stop an empty sandbox in a fresh home."""
    box = Sandbox(speed)
    try:
        box.start()
        box.stop()
        add(results, "start.start_s", box.start_seconds)
        add(results, "start.stop_s", box.stop_seconds)
        if box.server_exit_seconds is not None:
            add(results, "start.stop_server_exit_s", box.server_exit_seconds)
    finally:
        with contextlib.suppress(Exception):
            box.stop()
        problems.extend(box.log_problems())
        box.cleanup()


def bench_steady(
    results: Results, problems: list[str], speed: float, timeout: float, cache: bool
) -> None:
    """One account: chapters 1-6, then chapter 7 with create_service -> steady timed."""
    box_holder: list[Sandbox] = []
    with running_sandbox(speed, problems) as box:
        box_holder.append(box)
        ops = OpStats()
        world, phases = new_world(box.endpoint, cache, ops)
        for name, seconds in phases.items():
            add(results, f"steady.build_{name}_s", seconds)
        # The first call in a new account (CreateVpc) against the account's other calls.
        add(results, "steady.first_call_ms", ops.calls["ec2.CreateVpc"][0] * 1000)
        others = [v for k, vs in ops.calls.items() if k.startswith("ec2.") for v in vs][1:]
        add(results, "steady.other_ec2_call_ms", statistics.median(others) * 1000)
        began = time.perf_counter()
        world.push_image()
        world.register_task_definition()
        created = time.perf_counter()
        world.create_service()
        world.wait_steady(timeout=timeout)
        done = time.perf_counter()
        add(results, "steady.create_to_steady_s", done - created)
        add(results, "steady.chapter7_flow_s", done - began)
        add(results, "steady.running_tasks", len(world.tasks()))
        add(results, "steady.describe_services_ms", api_latency_ms(world))
        with RssSampler(box.pid) as sampler:
            pass
        add(results, "steady.rss_mib", sampler.peak_bytes / MIB)
    add(results, "steady.stop_s", box_holder[0].stop_seconds)
    if box_holder[0].server_exit_seconds is not None:
        add(results, "steady.stop_server_exit_s", box_holder[0].server_exit_seconds)


def _build_accounts(
    box: Sandbox,
    accounts: int,
    workers: int,
    cache: bool,
    results: Results,
    ops: OpStats,
    timeout: float,
) -> list[Any]:
    cpu_client, cpu_server = own_cpu_seconds(), tree_cpu_seconds(box.pid)
    rss_before = psutil.Process(box.pid).memory_info().rss / MIB
    began = time.perf_counter()
    built = run_all(
        lambda _: new_world(box.endpoint, cache, ops),
        list(range(accounts)),
        workers,
        timeout,
        "build",
    )
    wall = time.perf_counter() - began
    worlds = [world for world, _ in built]
    phases = [phase for _, phase in built]
    server_growth = psutil.Process(box.pid).memory_info().rss / MIB - rss_before
    add(results, "scale.build_server_rss_per_account_mib", server_growth / accounts)
    add(results, "scale.build_all_accounts_s", wall)
    add(results, "scale.build_cpu_bench_s", own_cpu_seconds() - cpu_client)
    add(results, "scale.build_cpu_sandbox_s", tree_cpu_seconds(box.pid) - cpu_server)
    for name in (*BUILD_PHASES, "total"):
        add(results, f"scale.build_{name}_median_s", statistics.median(p[name] for p in phases))
        add(results, f"scale.build_{name}_max_s", max(p[name] for p in phases))
    began = time.perf_counter()

    def prepare(world: Any) -> None:
        world.push_image()
        world.register_task_definition()

    run_all(prepare, worlds, workers, timeout, "prepare")
    add(results, "scale.push_and_register_s", time.perf_counter() - began)
    return worlds


def bench_scale(
    results: Results,
    problems: list[str],
    speed: float,
    accounts: int,
    build_workers: int,
    timeout: float,
    cache: bool,
    slow_ops: list[list[dict[str, Any]]],
) -> None:
    """``accounts`` 2-task services created at once on one sandbox; all steady, peak RSS."""
    box_holder: list[Sandbox] = []
    with running_sandbox(speed, problems) as box:
        box_holder.append(box)
        log(f"  building {accounts} accounts ({build_workers} threads)")
        ops = OpStats()
        worlds = _build_accounts(box, accounts, build_workers, cache, results, ops, timeout)
        slow_ops.append(ops.top())
        log(f"  creating {accounts} services at once")
        barrier = threading.Barrier(accounts, timeout=60)
        deadline = time.monotonic() + timeout

        def deploy(world: Any) -> tuple[float, float, float | None]:
            barrier.wait()
            began = time.perf_counter()
            world.create_service()
            created = time.perf_counter()
            try:
                world.wait_steady(timeout=max(1.0, deadline - time.monotonic()))
            except AssertionError:  # World.wait_for's timeout: reported, not raised
                return began, created, None
            return began, created, time.perf_counter()

        cpu_server = tree_cpu_seconds(box.pid)
        cpu_client = own_cpu_seconds()
        with RssSampler(box.pid) as sampler:
            spans = run_all(deploy, worlds, accounts, timeout + 120, "deploy")
            first = min(s[0] for s in spans)
            steady = [s for s in spans if s[2] is not None]
            add(results, "scale.services_not_steady", len(spans) - len(steady))
            if len(steady) == len(spans):
                add(results, "scale.all_steady_s", max(s[2] for s in steady) - first)
            else:
                log(f"  {len(spans) - len(steady)} services not steady within {timeout:.0f} s")
            add(results, "scale.cpu_bench_s", own_cpu_seconds() - cpu_client)
            add(results, "scale.cpu_sandbox_s", tree_cpu_seconds(box.pid) - cpu_server)
            add(
                results,
                "scale.per_service_steady_median_s",
                statistics.median(s[2] - s[0] for s in steady) if steady else timeout,
            )
            add(results, "scale.create_service_call_max_s", max(s[1] - s[0] for s in spans))
            running = sum(len(w.tasks()) for w in worlds)
            add(results, "scale.running_tasks", running)
            add(results, "scale.task_processes", task_processes(box.pid))
            add(results, "scale.describe_services_ms", api_latency_ms(worlds[0]))
            add(results, "scale.pss_mib", sampler.pss_mib())
        add(results, "scale.rss_before_mib", sampler.first_bytes / MIB)
        add(results, "scale.peak_rss_mib", sampler.peak_bytes / MIB)
        add(results, "scale.peak_processes", sampler.peak_processes)
        for kind, mib in sampler.peak_breakdown.items():
            if mib:
                add(results, f"scale.peak_rss_{kind}_mib", mib)
        add(results, "scale.rss_samples", sampler.samples)
        add(results, "scale.rss_forks_skipped", sampler.forks_skipped)
        log(f"  {running} tasks running; stopping the sandbox")
    add(results, "scale.stop_s", box_holder[0].stop_seconds)
    if box_holder[0].server_exit_seconds is not None:
        add(results, "scale.stop_server_exit_s", box_holder[0].server_exit_seconds)


# --------------------------------------------------------------------------- report

LABELS: dict[str, tuple[str, str]] = {
    "start.start_s": ("1. sandbox start (empty, fresh home)", "s"),
    "start.stop_s": ("1. sandbox stop (empty)", "s"),
    "start.stop_server_exit_s": ("1.   of which until the server exited", "s"),
    "steady.build_total_s": ("2. build chapters 1-6, 1 account", "s"),
    "steady.build_sts_s": ("2.   STS AssumeRole into the new account", "s"),
    "steady.build_network_s": ("2.   network: VPC, subnets, NAT, SGs (26 calls)", "s"),
    "steady.first_call_ms": ("2.     first call in the account (CreateVpc)", "ms"),
    "steady.other_ec2_call_ms": ("2.     other EC2 calls, median", "ms"),
    "steady.build_database_s": ("2.   create_db_instance + secret (PG start)", "s"),
    "steady.create_to_steady_s": ("2. create_service -> wait_steady, 2 tasks", "s"),
    "steady.chapter7_flow_s": ("2. chapter 7 flow (push+register+create+steady)", "s"),
    "steady.running_tasks": ("2. tasks RUNNING", ""),
    "steady.describe_services_ms": ("2. describe_services latency, 1 service", "ms"),
    "steady.rss_mib": ("2. RSS of sandbox tree, 2 tasks", "MiB"),
    "steady.stop_s": ("2. sandbox stop (2 tasks + PostgreSQL)", "s"),
    "steady.stop_server_exit_s": ("2.   of which until the server exited", "s"),
    "scale.build_all_accounts_s": ("3. build {n} accounts in parallel (setup)", "s"),
    "scale.build_cpu_bench_s": ("3.   CPU in benchmark process (boto3)", "s"),
    "scale.build_cpu_sandbox_s": ("3.   CPU in sandbox tree", "s"),
    "scale.build_server_rss_per_account_mib": ("3.   server RSS growth per account", "MiB"),
    "scale.build_total_median_s": ("3.   per-account build, median", "s"),
    "scale.build_sts_median_s": ("3.     STS AssumeRole, median", "s"),
    "scale.build_network_median_s": ("3.     network phase, median", "s"),
    "scale.build_alb_median_s": ("3.     alb phase, median", "s"),
    "scale.build_cluster_roles_median_s": ("3.     cluster+roles phase, median", "s"),
    "scale.build_database_median_s": ("3.     database phase, median", "s"),
    "scale.build_database_max_s": ("3.     database phase, max", "s"),
    "scale.push_and_register_s": ("3. push image + register TD, all accounts", "s"),
    "scale.all_steady_s": ("3. {n} services created at once -> ALL steady", "s"),
    "scale.per_service_steady_median_s": ("3.   per-service create -> steady, median", "s"),
    "scale.create_service_call_max_s": ("3.   slowest create_service call", "s"),
    "scale.cpu_bench_s": ("3.   CPU in benchmark process", "s"),
    "scale.cpu_sandbox_s": ("3.   CPU in sandbox tree", "s"),
    "scale.services_not_steady": ("3. services not steady before --timeout", ""),
    "scale.running_tasks": ("3. tasks RUNNING at the end (API)", ""),
    "scale.task_processes": ("3. task processes under the server", ""),
    "scale.describe_services_ms": ("3. describe_services latency, {n} services", "ms"),
    "scale.rss_before_mib": ("3. RSS of sandbox tree before create", "MiB"),
    "scale.peak_rss_mib": ("3. PEAK RSS of sandbox tree", "MiB"),
    "scale.peak_rss_server_mib": ("3.   server at peak", "MiB"),
    "scale.peak_rss_task_mib": ("3.   task processes at peak", "MiB"),
    "scale.peak_rss_postgres_mib": ("3.   PostgreSQL at peak", "MiB"),
    "scale.peak_rss_other_mib": ("3.   other processes at peak", "MiB"),
    "scale.peak_processes": ("3.   processes at peak", ""),
    "scale.pss_mib": ("3. PSS of sandbox tree at the end", "MiB"),
    "scale.stop_s": ("3. sandbox stop ({n} services)", "s"),
    "scale.stop_server_exit_s": ("3.   of which until the server exited", "s"),
}


def summarize(results: Results) -> dict[str, dict[str, float]]:
    return {
        key: {
            "median": statistics.median(values),
            "min": min(values),
            "max": max(values),
            "n": len(values),
        }
        for key, values in results.items()
    }


def ratios(summary: dict[str, dict[str, float]], n: int) -> dict[str, float]:
    def median(key: str) -> float | None:
        return summary[key]["median"] if key in summary else None

    pairs = {
        "all {n} steady / 1 steady": ("scale.all_steady_s", "steady.create_to_steady_s"),
        "per-service steady at {n} / alone": (
            "scale.per_service_steady_median_s",
            "steady.create_to_steady_s",
        ),
        "describe_services at {n} / alone": (
            "scale.describe_services_ms",
            "steady.describe_services_ms",
        ),
        "build {n} in parallel / build 1": ("scale.build_all_accounts_s", "steady.build_total_s"),
        "stop with 2 tasks / empty stop": ("steady.stop_s", "start.stop_s"),
        "stop with {n} services / empty stop": ("scale.stop_s", "start.stop_s"),
    }
    out = {}
    for label, (top, bottom) in pairs.items():
        a, b = median(top), median(bottom)
        if a is not None and b:
            out[label.format(n=n)] = a / b
    return out


def _fmt(value: float, unit: str) -> str:
    if (unit == "" and value == int(value)) or value >= 100:
        return f"{value:.0f}"
    return f"{value:.2f}" if unit == "s" else f"{value:.1f}"


def print_table(summary: dict[str, dict[str, float]], meta: dict[str, Any]) -> None:
    accounts = str(meta["accounts"])
    rows = [
        (LABELS[k][0].format(n=accounts), LABELS[k][1], summary[k]) for k in LABELS if k in summary
    ]
    width = max(len(r[0]) for r in rows)
    print(
        f"\nsandbox benchmark: runs={meta['runs']} accounts={accounts} speed={meta['speed']} "
        f"cpus={meta['cpus']} cached_clients={meta['cache_clients']} "
        f"load(1m) {meta['loadavg_before'][0]:.1f} -> {meta['loadavg_after'][0]:.1f} "
        f"total {meta['total_seconds']:.0f} s"
    )
    print(f"{'metric':<{width}}  {'unit':>4}  {'median':>8}  {'min':>8}  {'max':>8}")
    print("-" * (width + 36))
    for label, unit, s in rows:
        print(
            f"{label:<{width}}  {unit:>4}  {_fmt(s['median'], unit):>8}  "
            f"{_fmt(s['min'], unit):>8}  {_fmt(s['max'], unit):>8}"
        )
    rats = ratios(summary, meta["accounts"])
    if rats:
        print("\nratios of medians:")
        for label, value in rats.items():
            print(f"  {label:<40} x{value:.2f}")
    if meta["slowest_build_operations"]:
        print(f"\nAPI calls that took the most time while building {accounts} accounts (last run):")
        for row in meta["slowest_build_operations"][-1][:5]:
            print(
                f"  {row['operation']:<32} {row['calls']:>4} calls  total {row['total_s']:6.1f} s"
                f"  median {row['median_ms']:6.0f} ms  max {row['max_ms']:6.0f} ms"
            )
    if meta["problems"]:
        print(f"\nserver log: {len(meta['problems'])} ERROR/traceback lines, first ones:")
        for line in meta["problems"][:5]:
            print(f"  {line[:160]}")


# ----------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="repetitions (default 3)")
    parser.add_argument("--accounts", type=int, default=30, help="accounts in part 3")
    parser.add_argument(
        "--build-workers",
        type=int,
        default=None,
        help="threads building accounts (default: one per account)",
    )
    parser.add_argument("--speed", type=float, default=20.0, help="sandbox speed factor")
    parser.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        help="bound on each phase: building, each wait for steady state (s)",
    )
    parser.add_argument(
        "--only",
        choices=("start", "steady", "scale"),
        action="append",
        help="run only these parts (repeatable)",
    )
    parser.add_argument(
        "--no-client-cache",
        action="store_true",
        help="let World make a new boto3 client per call, as the tests do",
    )
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    _fake_aws_environment()
    parts = args.only or ["start", "steady", "scale"]
    cache = not args.no_client_cache
    results: Results = {}
    problems: list[str] = []
    slow_ops: list[list[dict[str, Any]]] = []
    load_before = os.getloadavg()
    began = time.perf_counter()
    for run in range(1, args.runs + 1):
        if "start" in parts:
            log(f"run {run}/{args.runs}: start/stop")
            bench_start(results, problems, args.speed)
        if "steady" in parts:
            log(f"run {run}/{args.runs}: one 2-task service")
            bench_steady(results, problems, args.speed, args.timeout, cache)
        if "scale" in parts:
            log(f"run {run}/{args.runs}: {args.accounts} accounts")
            bench_scale(
                results,
                problems,
                args.speed,
                args.accounts,
                args.build_workers or args.accounts,
                args.timeout,
                cache,
                slow_ops,
            )
    summary = summarize(results)
    meta = {
        "runs": args.runs,
        "accounts": args.accounts,
        "speed": args.speed,
        "cpus": os.cpu_count(),
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "cache_clients": cache,
        "total_seconds": time.perf_counter() - began,
        "problems": problems,
        "slowest_build_operations": slow_ops,
    }
    if args.json:
        print(
            json.dumps(
                {
                    "meta": meta,
                    "summary": summary,
                    "ratios": ratios(summary, args.accounts),
                    "raw": results,
                },
                indent=1,
            )
        )
    else:
        print_table(summary, meta)
    return 0


if __name__ == "__main__":
    sys.exit(main())
