"""A class provisioned on the sandbox: ``handson.classroom.provision`` for 30 students.

    .venv/bin/python benchmarks/classroom_bench.py [--runs 1] [--students 30]
                                                   [--parallel 2,4,8] [--notebooks 00,07]

Each run provisions ``--students`` students (notebooks 00 and 07 by default) on a fresh
private sandbox (its own HANDSON_HOME and free ports), with the library's default
parallelism unless ``--parallel`` lists others to compare. For each parallelism it prints
medians over the runs of: total wall time, each student's time (median), peak RSS of the
sandbox's process tree plus this process's children (forkserver, student workers,
kernels; sampled every 0.5 s), the CPU seconds spent by each side, and where a student's
time goes (kernel start and shutdown versus the slowest cells). It never asserts: the
machine is small and shared, so read the load average in the header.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from statistics import median

import nbformat
import pandas as pd
import psutil

from handson import sandbox
from handson.classroom.provision import DEFAULT_PARALLEL, provision
from handson.connection import sandbox_account_id

MIB = 1024 * 1024
SAMPLE_SECONDS = 0.5
REST_SECONDS = 10.0


def descendants(children: dict[int, list[int]], pid: int) -> set[int]:
    found, stack = set(), [pid]
    while stack:
        current = stack.pop()
        found.add(current)
        stack.extend(children.get(current, []))
    return found


class Sampler:
    """Peak of the summed RSS (and its split) of the sandbox tree and this process's
    children: sandbox (server, tasks, PostgreSQL), kernel, worker (forkserver, workers).

    One scan of the process table per sample (walking each process's parents instead cost
    a sizeable share of a core). RSS counts shared pages once per process (forked workers
    share the forkserver's), so the sum overstates real use.
    """

    def __init__(self, server: int) -> None:
        self.server = server
        self.peak = 0
        self.split: dict[str, float] = {}
        self.kernels = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self.sample()

    def sample(self) -> None:
        table = {}
        children: dict[int, list[int]] = defaultdict(list)
        for process in psutil.process_iter(["ppid", "cmdline", "memory_info"]):
            if process.info["memory_info"] is not None:
                table[process.pid] = process.info
                children[process.info["ppid"]].append(process.pid)
        sandbox_pids = descendants(children, self.server)
        ours = (descendants(children, os.getpid()) - {os.getpid()}) | sandbox_pids
        # A student's first kernel is forked from its worker (same command line): the
        # workers are the forkserver's children, their children kernels.
        forkservers = [
            pid
            for pid in children[os.getpid()]
            if "forkserver" in " ".join(table.get(pid, {}).get("cmdline") or [])
        ]
        workers = {w for f in forkservers for w in children[f]}
        forked = {k for w in workers for k in children[w]}
        split: dict[str, int] = defaultdict(int)
        kernels = 0
        for pid in ours & table.keys():
            info = table[pid]
            if pid in sandbox_pids:
                part = "sandbox"
            elif pid in forked or "ipykernel_launcher" in (info["cmdline"] or []):
                part, kernels = "kernel", kernels + 1
            else:
                part = "worker"
            split[part] += info["memory_info"].rss
        total = sum(split.values())
        if total > self.peak:
            self.peak = total
            self.split = {k: v / MIB for k, v in split.items()}
            self.kernels = kernels


def cpu_seconds(process: psutil.Process, *, reaped: bool = True) -> float:
    """CPU time of a process and of its children, live ones and (``reaped``) ended ones."""
    total = 0.0
    for p in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            total += t.user + t.system + (t.children_user + t.children_system if reaped else 0)
    return total


def rest_load(server: psutil.Process) -> dict[str, float]:
    """Share of a core the sandbox uses once the class is provisioned (every student's
    tasks running, health-checked and watched): the server alone, and with its children."""
    before = {"server": sum(server.cpu_times()[:2]), "sandbox": cpu_seconds(server)}
    time.sleep(REST_SECONDS)
    after = {"server": sum(server.cpu_times()[:2]), "sandbox": cpu_seconds(server)}
    return {k: (after[k] - before[k]) / REST_SECONDS for k in before}


def notebook_overhead(table: pd.DataFrame) -> tuple[list[float], dict[str, list[float]]]:
    """Per notebook run: seconds outside its cells (kernel start and shutdown, saving), and
    the seconds of each code cell by its first line."""
    overhead: list[float] = []
    cells: dict[str, list[float]] = defaultdict(list)
    for row in table.itertuples():
        if row.status != "ok":
            continue
        notebook = nbformat.read(row.output, as_version=4)
        spent = 0.0
        for cell in notebook.cells:
            seconds = cell.metadata.get("papermill", {}).get("duration") or 0.0
            spent += seconds
            if cell.cell_type == "code":
                first = cell.source.strip().splitlines()[0][:60]
                cells[f"{Path(row.notebook).name[:2]}: {first}"].append(seconds)
        overhead.append(row.duration - spent)
    return overhead, cells


def failure_lines(table: pd.DataFrame) -> list[str]:
    """One line per failed notebook run: student, notebook, the cell's first line, error."""
    lines = []
    for row in table[table["status"] == "failed"].itertuples():
        cell = "no cell (the kernel did not start)"
        if not pd.isna(row.failing_cell) and Path(row.output).exists():
            notebook = nbformat.read(row.output, as_version=4)
            for candidate in notebook.cells:
                if candidate.get("execution_count") == row.failing_cell:
                    first = candidate.source.strip().splitlines()[0]
                    cell = f"cell [{row.failing_cell}] {first}"
        lines.append(f"{row.student} {Path(row.notebook).name}: {cell}: {row.error}")
    return lines


@dataclass
class Run:
    wall: float
    ok: int
    student: float
    per_notebook: dict[str, float]
    overhead: float
    cells: dict[str, float]
    peak_rss: float
    split: dict[str, float]
    kernels_at_peak: int
    cpu: dict[str, float]
    at_rest: dict[str, float]
    failures: list[str]


def one_run(students: int, parallel: int, notebooks: tuple[str, ...]) -> Run:
    work = Path(tempfile.mkdtemp(prefix="classroom-bench-"))
    roster = work / "roster.csv"
    names = [f"bench{i:02d}" for i in range(1, students + 1)]
    roster.write_text(
        "student,account_id\n" + "".join(f"{n},{sandbox_account_id(n)}\n" for n in names)
    )
    try:
        with sandbox.private() as config:
            status = sandbox.status(config)
            server = psutil.Process(status.pid)
            me = psutil.Process()

            def notebooks_cpu() -> float:
                # Workers are reaped by the forkserver (a child of this process), kernels by
                # the workers: the forkserver's children times hold them once they have ended.
                return sum(cpu_seconds(c) for c in me.children() if c.pid != server.pid)

            cpu_before = {
                "sandbox": cpu_seconds(server),
                "notebooks": notebooks_cpu(),
                "this": sum(me.cpu_times()[:2]),
            }
            with Sampler(status.pid) as sampler:
                start = time.perf_counter()
                report = provision(
                    roster,
                    notebooks=notebooks,
                    parallel=parallel,
                    out=work / "runs",
                    progress=False,
                )
                wall = time.perf_counter() - start
            cpu = {
                "sandbox": cpu_seconds(server) - cpu_before["sandbox"],
                "notebooks": notebooks_cpu() - cpu_before["notebooks"],
                "this": sum(me.cpu_times()[:2]) - cpu_before["this"],
            }
            at_rest = rest_load(server)
            table = report.table
            per_student = table.groupby("student")["duration"].sum()
            overhead, cells = notebook_overhead(table)
            failures = failure_lines(table)
            if failures:
                keep = Path(tempfile.mkdtemp(prefix="classroom-bench-failed-"))
                shutil.copytree(work / "runs", keep / "runs")
                if config.log_file.exists():
                    shutil.copy(config.log_file, keep / "server.log")
                failures.append(f"the failed runs' notebooks and the server log: {keep}")
            return Run(
                wall=wall,
                ok=int((table.groupby("student")["status"].agg(set) == {"ok"}).sum()),
                student=median(per_student),
                per_notebook={n: median(g["duration"]) for n, g in table.groupby("notebook")},
                overhead=median(overhead) if overhead else float("nan"),
                cells={k: median(v) for k, v in cells.items()},
                peak_rss=sampler.peak / MIB,
                split=sampler.split,
                kernels_at_peak=sampler.kernels,
                cpu=cpu,
                at_rest=at_rest,
                failures=failures,
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--parallel", default=str(DEFAULT_PARALLEL), help="e.g. 2,4,8")
    parser.add_argument("--notebooks", default="00,07")
    args = parser.parse_args()
    notebooks = tuple(args.notebooks.split(","))
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"classroom benchmark: {args.students} students x notebooks {'+'.join(notebooks)}, "
        f"{args.runs} run(s), {os.cpu_count()} cpus, load average {load}"
    )
    for parallel in (int(p) for p in args.parallel.split(",")):
        runs = [one_run(args.students, parallel, notebooks) for _ in range(args.runs)]

        print(f"\nparallel {parallel}" + (" (default)" if parallel == DEFAULT_PARALLEL else ""))
        walls = sorted(r.wall for r in runs)
        spread = f" (min {walls[0]:.1f}, max {walls[-1]:.1f})" if len(walls) > 1 else ""
        print(f"  total wall time                 {median(walls):8.1f} s{spread}")
        print(f"  students ok                     {median(r.ok for r in runs):8.0f}")
        for number, run in enumerate(runs, 1):
            print(f"  run {number}: {run.ok}/{args.students} ok, {run.wall:.1f} s")
            for line in run.failures:
                print(f"    FAILED {line}")
        print(f"  per student (median)            {median(r.student for r in runs):8.1f} s")
        for name in runs[0].per_notebook:
            value = median(r.per_notebook[name] for r in runs)
            print(f"    {name[:28]:30}{value:8.1f} s")
        overhead = median(r.overhead for r in runs)
        print(f"    outside cells, per notebook   {overhead:8.1f} s (kernel start/stop)")
        print(f"  peak RSS                        {median(r.peak_rss for r in runs):8.0f} MiB")
        for part, mib in sorted(runs[len(runs) // 2].split.items()):
            print(f"    {part:30}{mib:8.0f} MiB")
        print(f"    kernels at the peak           {median(r.kernels_at_peak for r in runs):8.0f}")
        for part in ("sandbox", "notebooks", "this"):
            print(f"  CPU seconds, {part:19}{median(r.cpu[part] for r in runs):8.1f} s")
        for part in ("server", "sandbox"):
            share = median(r.at_rest[part] for r in runs)
            print(f"  at rest afterwards, {part:12}{share:8.0%} of a core")
        print("  slowest cells (median per student)")
        cells = runs[0].cells
        for cell in sorted(cells, key=lambda c: cells[c], reverse=True)[:6]:
            print(f"    {median(r.cells.get(cell, 0.0) for r in runs):6.1f} s  {cell}")


if __name__ == "__main__":
    main()
