"""Course timings on the sandbox: notebooks 00 and 07 via papermill, and the library
against a raw boto3 script making the same changes; then chapters 00 -> 07 -> 99 with
the default (fast) control plane and with AWS's control-plane time scaled like the data
plane's (control speed = speed).

    python benchmarks/course_bench.py [--runs 3] [--control-speeds 200,20]

Each run uses a new student (a new sandbox account) on one private sandbox (one sandbox
per control speed). Prints medians (and min/max) over the runs, and ratios; it never
asserts: timings on a 2-core machine are noisy. Every failed notebook is printed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "sandbox"))

from handson import chapters, course, sandbox  # noqa: E402
from handson.connection import connect, sandbox_account_id  # noqa: E402
from handson.sandbox.config import environment, private_config  # noqa: E402


def timed(action: Callable[..., Any], *args: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    result = action(*args)
    return time.perf_counter() - start, result


def library_flow(student: str) -> int:
    """Chapters 1-7 through the library; returns the number of API calls it made."""
    lab = connect("sandbox", student=student)
    pre = chapters.build_prerequisites(lab, enable_nat_gateway=True)
    chapters.deploy_chapter7(lab, pre)
    return len(lab.log.calls)


def raw_flow(endpoint: str, account_id: str) -> int:
    """The same resources with plain boto3 calls (tests/sandbox/world.py): no look-ups."""
    from world import World

    world = World(endpoint, account_id)
    calls = [0]

    def count(**_: Any) -> None:
        calls[0] += 1

    world.session.events.register("provide-client-params.*.*", count)
    world.build_all()
    world.push_image()
    world.register_task_definition()
    world.create_service(desired=2)
    world.wait_steady()
    return calls[0]


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):8.2f} {min(values):8.2f} {max(values):8.2f}"


def chapter_times(control_speed: float, runs: int) -> tuple[dict[str, list[float]], list[str]]:
    """Seconds of notebooks 00, 07 and 99 per run on a sandbox with ``control_speed``."""
    times: dict[str, list[float]] = {"00": [], "07": [], "99": [], "00+07+99": []}
    failures: list[str] = []
    out = Path(tempfile.mkdtemp(prefix="course-bench-chapters-"))
    with sandbox.private(control_speed=control_speed):
        for run in range(runs):
            student = {"student": f"bench-chapters-{run}"}
            total = 0.0
            for key in ("00", "07", "99"):
                try:
                    seconds, _ = timed(
                        course.run_notebook, key, out / f"{run}-{key}.ipynb", student
                    )
                except course.NotebookFailed as error:
                    failures.append(f"control speed {control_speed:g}, run {run + 1}: {error}")
                    break
                times[key].append(seconds)
                total += seconds
            else:
                times["00+07+99"].append(total)
    return times, failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--control-speeds", default="200,20", help="e.g. 200,20 (0: instant)")
    args = parser.parse_args()
    saved = dict(os.environ)
    config = private_config()
    os.environ.update(environment(config))
    results: dict[str, list[float]] = {
        k: [] for k in ("nb00", "nb07", "lib", "raw", "lib_calls", "raw_calls")
    }
    try:
        status = sandbox.start(config)
        endpoint = status.endpoint_url or ""
        out = Path(tempfile.mkdtemp(prefix="course-bench-"))
        for run in range(args.runs):
            student = {"student": f"bench-notebooks-{run}"}
            seconds, _ = timed(course.run_notebook, "00", out / f"{run}-00.ipynb", student)
            results["nb00"].append(seconds)
            seconds, _ = timed(course.run_notebook, "07", out / f"{run}-07.ipynb", student)
            results["nb07"].append(seconds)
            seconds, calls = timed(library_flow, f"bench-library-{run}")
            results["lib"].append(seconds)
            results["lib_calls"].append(calls)
            account = sandbox_account_id(f"bench-raw-{run}")
            seconds, calls = timed(raw_flow, endpoint, account)
            results["raw"].append(seconds)
            results["raw_calls"].append(calls)
    finally:
        sandbox.stop(config)
        os.environ.clear()
        os.environ.update(saved)
    chapters_by_speed = {
        speed: chapter_times(speed, args.runs)
        for speed in (float(x) for x in args.control_speeds.split(","))
    }
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"course benchmark: {args.runs} runs, speed x{config.speed:g}, {os.cpu_count()} cpus, "
        f"load average {load}"
    )
    print(f"{'metric':46} {'median':>8} {'min':>8} {'max':>8}")
    print(f"{'notebook 00 via papermill (s)':46} {summary(results['nb00'])}")
    print(f"{'notebook 07 via papermill (s)':46} {summary(results['nb07'])}")
    print(f"{'library: chapters 1-7 in-process (s)':46} {summary(results['lib'])}")
    print(f"{'raw boto3 script, same resources (s)':46} {summary(results['raw'])}")
    print(f"{'library API calls':46} {summary(results['lib_calls'])}")
    print(f"{'raw boto3 API calls':46} {summary(results['raw_calls'])}")
    lib, raw = statistics.median(results["lib"]), statistics.median(results["raw"])
    lib_calls, raw_calls = (
        statistics.median(results["lib_calls"]),
        statistics.median(results["raw_calls"]),
    )
    print(f"ratio library/raw: time x{lib / raw:.2f}, API calls x{lib_calls / raw_calls:.2f}")
    for speed, (times, failures) in chapters_by_speed.items():
        print(f"\nchapters 00 -> 07 -> 99, control speed {speed:g} (data plane x{config.speed:g})")
        for key, values in times.items():
            shown = summary(values) if values else "     n/a"
            print(f"{'notebook ' + key + ' via papermill (s)':46} {shown}")
        print(f"failures: {len(failures)}")
        for line in failures:
            print(f"  FAILED {line}")


if __name__ == "__main__":
    main()
