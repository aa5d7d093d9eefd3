"""Provision a whole class: the chapter notebooks run once per student, in parallel.

For each student on the roster papermill executes the notebooks in order (by default
notebook 00 only, chapters 1-6: in a class on chapter 7 the students do chapter 7
themselves), with that student's parameters, into ``out/<student>/``. A student whose
notebook fails skips its later notebooks and never stops the others; the report
(``out/report.csv`` and ``out/report.html``) says who is done and, for a failure, which
cell raised what.

Each student runs in a process of its own, with kernels of its own: kernels talk over
ZeroMQ ``ipc`` sockets under a private directory (many kernels starting at once over TCP
sometimes collide on ports), a kernel that fails to start is started again, and a
watchdog ends a student's run that takes longer than ``timeout``.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.context import ForkServerContext
from pathlib import Path
from typing import Any

import pandas as pd
from jupyter_client import KernelManager
from jupyter_client.provisioning import LocalProvisioner
from traitlets.config import Config

from handson import i18n
from handson.classroom.kernels import PreforkedKernel
from handson.classroom.parallel import each_student
from handson.classroom.roster import (
    Roster,
    Student,
    as_roster,
    check_backend,
    notebook_parameter_defaults,
)
from handson.connection import prepare_backend
from handson.course import KERNEL_OPTIONS, notebook_path
from handson.exceptions import ConfigurationError
from handson.i18n import _

__all__ = [
    "COLUMNS",
    "DEFAULT_NOTEBOOKS",
    "DEFAULT_PARALLEL",
    "ProvisionReport",
    "is_done",
    "provision",
]

COLUMNS = ["student", "notebook", "status", "duration", "failing_cell", "error", "output"]
OK, FAILED, SKIPPED, DONE_BEFORE = "ok", "failed", "skipped", "done before"
# Chapters 1-6 only: the students do chapter 7 themselves (a demo runs ("00", "07")).
DEFAULT_NOTEBOOKS = ("00",)
# Measured with benchmarks/classroom_bench.py on 2 cores, 30 students, notebooks 00 + 07
# (before the sandbox's realistic control plane): 166 s with 2 at a time, 111 s with 4,
# 101 s with 6 and 98 s with 8. The run is CPU-bound past 4 (kernels, then the sandbox),
# but the waits in each notebook (rollouts) leave the cores idle unless enough students
# run at once; on real AWS, where a run is mostly waiting, 8 helps even more. With the
# realistic sandbox and one kernel per student, 8 at a time took 113-133 s; with that
# kernel forked from the worker (kernels.py), 100-110 s.
DEFAULT_PARALLEL = 8
START_RETRIES = 3
RESET_TIMEOUT = 60.0
# Clears the namespace the previous notebook left and opens a new history session, whose
# cells are numbered from 1 again (as %reset does, plus the new session).
RESET_CODE = "get_ipython().reset(new_session=True)"
# Parameters that say who and where a student is come from the roster and ``backend``.
FIXED_PARAMETERS = ("student", "backend")


@dataclass(frozen=True, eq=False)
class ProvisionReport:
    """What ``provision`` did: a row per student and notebook, and whether all are done.

    ``table`` columns: student, notebook, status ("ok", "failed", "skipped" after an
    earlier failure, "done before" when resuming), duration (seconds), failing_cell
    (the cell's execution count), error ("ename: evalue", first line) and output (the
    executed notebook).
    """

    table: pd.DataFrame
    ok: bool

    @property
    def failed(self) -> list[str]:
        """The students with a failed notebook, in roster order."""
        return list(dict.fromkeys(self.table.loc[self.table.status == FAILED, "student"]))


@dataclass(frozen=True)
class _Job:
    """One student's run, sent to its worker process."""

    student: str
    # Per notebook key: the parameters that notebook is given.
    parameters: dict[str, dict[str, Any]]
    notebooks: tuple[str, ...]
    directory: Path
    timeout: float
    lang: str
    # The caller's environment at the time of the call (the forkserver was started with
    # whatever environment it had then); kept out of reprs because it may hold keys.
    environ: dict[str, str] = field(repr=False)


def provision(
    roster: Roster | str | os.PathLike[str],
    *,
    notebooks: Sequence[str] = DEFAULT_NOTEBOOKS,
    parallel: int | None = None,
    out: Path = Path("runs"),
    resume: bool = False,
    backend: str = "sandbox",
    progress: bool = True,
    timeout: float = 1800.0,
    extra_parameters: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    lang: str | None = None,
) -> ProvisionReport:
    """Run ``notebooks`` in order for every student of ``roster``, ``parallel`` students
    at a time, and write ``out/report.csv`` and ``out/report.html``.

    ``notebooks`` defaults to ``("00",)``: chapters 1-6, so that the students do chapter 7
    themselves; give ``("00", "07")`` to build chapter 7 as well (a demo).

    Each notebook gets the student's parameters from the roster (student, region,
    role_arn, profile, backend; never credentials: the notebook assumes the student's
    role itself), then ``extra_parameters`` (for every student), then the roster's
    parameter columns (a cell per student, e.g. ``fault``; an empty cell leaves the value
    above), then ``overrides[student]`` (for one student, e.g.
    ``{"student07": {"task_memory": 1024}}``). A notebook is given only the parameters its
    ``parameters`` cell has.
    With ``resume=True`` only the students that are not done run again (done: every
    notebook's output exists and ran to the end without an exception); the others are
    reported "done before". A student's run longer than ``timeout`` seconds is stopped.
    ``lang`` ("en" or "ja"; else ``HANDSON_LANG``, else English) is the edition of the
    notebooks the students get, and the language the kit speaks to them in.
    """
    check_backend(backend)
    lang = i18n.language(lang)
    keys = tuple(notebooks)
    if not keys:
        raise ConfigurationError(_("notebooks=(): give at least one notebook, e.g. ('00', '07')."))
    for key in keys:
        notebook_path(key, lang)  # ConfigurationError naming the notebooks there are
    # The roster's parameter columns are checked against these notebooks, before anything.
    roster = as_roster(roster, notebooks=keys)
    if not timeout > 0:
        raise ConfigurationError(
            _("timeout={timeout!r}: give the seconds a student may take.").format(timeout=timeout)
        )
    parallel = DEFAULT_PARALLEL if parallel is None else parallel
    if isinstance(parallel, bool) or not isinstance(parallel, int) or parallel < 1:
        raise ConfigurationError(
            _("parallel={parallel!r}: give a whole number of 1 or more.").format(parallel=parallel)
        )
    parameters = _parameters(roster, backend, lang, keys, extra_parameters or {}, overrides or {})
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    done = {s.student for s in roster if resume and is_done(out / s.student, keys)}
    pending = Roster(roster.path, tuple(s for s in roster if s.student not in done))
    if pending.students:
        prepare_backend(backend)  # once, here, not in every student's kernel
    environ = dict(os.environ)
    jobs = {}
    for student in pending:
        directory = (out / student.student).resolve()
        directory.mkdir(exist_ok=True)
        jobs[student.student] = _Job(
            student=student.student,
            parameters=parameters[student.student],
            notebooks=keys,
            directory=directory,
            timeout=timeout,
            lang=lang,
            environ=environ,
        )
    results = _run_all(jobs, pending, parallel=parallel, progress=progress, done_before=len(done))
    rows: list[dict[str, Any]] = []
    for student in roster:
        if student.student in done:
            rows += _done_before_rows(out / student.student, keys)
        else:
            rows += results[student.student]
    for row in rows:
        row["output"] = str(out / row["student"] / row["output"]) if row["output"] else ""
    table = pd.DataFrame(rows, columns=COLUMNS).astype({"failing_cell": "Int64"})
    table["duration"] = table.duration.round(2)
    table.to_csv(out / "report.csv", index=False)
    table.to_html(out / "report.html", index=False, na_rep="", float_format="{:.1f}".format)
    return ProvisionReport(table=table, ok=bool(table.status.isin([OK, DONE_BEFORE]).all()))


def is_done(directory: Path, notebooks: Sequence[str]) -> bool:
    """Whether every notebook's output in ``directory`` ran to its end without an exception.

    papermill records ``exception`` only for a failing cell: a kernel that never started,
    died, or a run stopped by the watchdog leaves no exception but unexecuted cells.
    """
    import nbformat

    for key in notebooks:
        path = directory / notebook_path(key).name
        try:
            notebook = nbformat.read(path, as_version=4)
        except (OSError, ValueError, nbformat.ValidationError):
            return False
        meta = notebook.metadata.get("papermill", {})
        if meta.get("exception") or not meta.get("end_time"):
            return False
        for cell in notebook.cells:
            if cell.metadata.get("papermill", {}).get("status") != "completed":
                return False
            if cell.cell_type == "code" and cell.source.strip() and cell.execution_count is None:
                return False
    return True


# ------------------------------------------------------------------ parameters


def _parameters(
    roster: Roster,
    backend: str,
    lang: str,
    notebooks: Sequence[str],
    extra: Mapping[str, Any],
    overrides: Mapping[str, Mapping[str, Any]],
) -> dict[str, dict[str, dict[str, Any]]]:
    """Each student's parameters for each notebook (``{student: {notebook key: {...}}}``),
    checked against the notebooks' parameter cells so that a misspelt name fails here
    rather than in every student's notebook.

    Later sources win: the roster's fixed columns, ``backend`` and ``lang``, ``extra`` (everyone),
    the student's parameter columns, ``overrides[student]``. Each notebook gets the
    student's own parameters (who and where) and, of the others, those its parameters
    cell has.
    """
    declared = {key: set(notebook_parameter_defaults([key])) for key in notebooks}
    known = set().union(*declared.values())
    names = {s.student for s in roster}
    unknown_students = sorted(set(overrides) - names)
    if unknown_students:
        raise ConfigurationError(
            _("overrides for {students}: not on the roster {roster}.").format(
                students=", ".join(unknown_students), roster=roster.path
            )
        )
    given = [("extra_parameters", extra)]
    given += [(f"overrides[{s!r}]", values) for s, values in overrides.items()]
    for label, values in given:
        for name in values:
            if name in FIXED_PARAMETERS:
                raise ConfigurationError(
                    _(
                        "{label} sets {name!r}: that comes from the roster and backend=, "
                        "not from parameters."
                    ).format(label=label, name=name)
                )
            if name not in known:
                raise ConfigurationError(
                    _(
                        "{label} sets {name!r}, which the notebooks don't have: "
                        "choose from {names}."
                    ).format(
                        label=label,
                        name=name,
                        names=", ".join(sorted(known - set(FIXED_PARAMETERS))),
                    )
                )
    result: dict[str, dict[str, dict[str, Any]]] = {}
    for s in roster:
        merged = {
            **s.notebook_parameters(backend),
            "lang": lang,  # the edition, for the notebooks whose parameters cell has it
            **extra,
            **s.parameters,
            **overrides.get(s.student, {}),
        }
        own = s.notebook_parameters(backend)
        result[s.student] = {
            key: {n: v for n, v in merged.items() if n in own or n in declared[key]}
            for key in notebooks
        }
    return result


# ------------------------------------------------------------------ supervision


def _run_all(
    jobs: dict[str, _Job], pending: Roster, *, parallel: int, progress: bool, done_before: int
) -> dict[str, list[dict[str, Any]]]:
    from tqdm import tqdm

    if not jobs:
        return {}
    context = _context()
    counts = {OK: 0, FAILED: 0}
    lock = threading.Lock()
    bar = tqdm(
        total=len(jobs) + done_before,
        initial=done_before,
        desc="provision",
        unit="student",
        file=sys.stderr,
        disable=not progress,
    )

    def work(student: Student) -> list[dict[str, Any]]:
        job = jobs[student.student]
        try:
            rows = _supervise(job, context)
        except Exception as error:  # e.g. no process could start: this student only
            rows = _complete(job, [], f"{type(error).__name__}: {_first_line(str(error))}", 0.0)
        with lock:
            counts[FAILED if any(r["status"] == FAILED for r in rows) else OK] += 1
            progress_line = _("done {done}, failed {failed}").format(
                done=counts[OK], failed=counts[FAILED]
            )
            bar.set_postfix_str(progress_line, refresh=False)
            bar.update()
        return rows

    try:
        results = each_student(pending, work, parallel=parallel)
    finally:
        bar.close()
    return {s.student: rows for s, rows in zip(pending, results, strict=True)}


def _context() -> ForkServerContext:
    """The forkserver start method: a worker is forked from a clean server process that
    loaded papermill, ipykernel, handson and the service models once (``preload``; 3 s of
    CPU per student otherwise), never from this process with its threads."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["handson.classroom.preload", __name__])
    return context


def _supervise(job: _Job, context: ForkServerContext) -> list[dict[str, Any]]:
    """Run one student's worker; its rows, completed with failed/skipped ones if it died
    or hung."""
    receiver, sender = context.Pipe(duplex=False)
    # Short and private: unix socket paths are limited to 107 bytes.
    sockets = Path(tempfile.mkdtemp(prefix="handson-kernels-"))
    process = context.Process(
        target=_run_student,
        args=(job, sockets, sender),
        name=f"provision-{job.student}",
        daemon=True,
    )
    started = time.monotonic()
    deadline = started + job.timeout
    rows: list[dict[str, Any]] = []
    error = ""
    try:
        process.start()
        sender.close()
        with receiver:
            while len(rows) < len(job.notebooks):
                if not receiver.poll(max(deadline - time.monotonic(), 0)):
                    error = _(
                        "Timeout: the run took longer than {seconds:g} s and was "
                        "stopped (its kernel may have hung)"
                    ).format(seconds=job.timeout)
                    break
                try:
                    rows.append(receiver.recv())
                except EOFError:
                    break
        # The watchdog: a worker still there after its time (or after its last row, while
        # shutting its kernel down) is ended with its kernels.
        process.join(0 if error else max(deadline - time.monotonic(), 10.0))
        if process.is_alive():
            _kill_tree(process.pid)
            process.join()
    finally:
        shutil.rmtree(sockets, ignore_errors=True)  # with what a killed worker left there
    error = error or _("WorkerError: the student's process ended with code {code}").format(
        code=process.exitcode
    )
    return _complete(job, rows, error, time.monotonic() - started)


def _complete(
    job: _Job, rows: list[dict[str, Any]], error: str, elapsed: float
) -> list[dict[str, Any]]:
    """``rows`` with a row for every notebook: the first one missing failed with ``error``
    (the worker never reported it), the rest skipped."""
    if len(rows) == len(job.notebooks):
        return rows
    duration = elapsed - sum(r["duration"] or 0 for r in rows)
    failed = _row(job, job.notebooks[len(rows)], FAILED, duration, error=error)
    return [*rows, failed, *(_row(job, k, SKIPPED) for k in job.notebooks[len(rows) + 1 :])]


def _kill_tree(pid: int | None) -> None:
    """End a worker and its kernels (started in sessions of their own, so not its group)."""
    import psutil

    if pid is None:
        return
    try:
        worker = psutil.Process(pid)
        processes = [*worker.children(recursive=True), worker]
    except psutil.NoSuchProcess:
        return
    for process in processes:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(processes, timeout=10)


def _row(
    job: _Job,
    key: str,
    status: str,
    duration: float | None = None,
    *,
    cell: int | None = None,
    error: str = "",
) -> dict[str, Any]:
    name = notebook_path(key).name
    return {
        "student": job.student,
        "notebook": name,
        "status": status,
        "duration": duration,
        "failing_cell": cell,
        "error": error,
        # Relative to out/<student>/: provision joins it to ``out`` as the caller gave it.
        "output": name if status != SKIPPED else "",
    }


def _done_before_rows(directory: Path, keys: Sequence[str]) -> list[dict[str, Any]]:
    import nbformat

    rows = []
    for key in keys:
        name = notebook_path(key).name
        notebook = nbformat.read(directory / name, as_version=4)
        rows.append(
            {
                "student": directory.name,
                "notebook": name,
                "status": DONE_BEFORE,
                "duration": notebook.metadata.papermill.get("duration"),
                "failing_cell": None,
                "error": "",
                "output": name,
            }
        )
    return rows


# ---------------------------------------------------------------------- worker


def _run_student(job: _Job, sockets: Path, sender: Connection) -> None:
    """In the student's process: the notebooks in order in the student's one kernel, a row
    sent back for each."""
    # First, while this process has no thread: the child its kernel will be.
    preforked = PreforkedKernel(close=[sender])
    os.environ.clear()
    os.environ.update(job.environ)
    failed = False
    kernel = _StudentKernel(sockets, preforked)
    try:
        with sender:
            for key in job.notebooks:
                row = _row(job, key, SKIPPED) if failed else _run_notebook(job, key, kernel)
                failed = failed or row["status"] == FAILED
                sender.send(row)
    finally:
        kernel.discard()


class _StudentKernel:
    """The one kernel a student's notebooks run in, one after the other.

    Before each notebook after the first, the kernel's namespace is cleared and a new
    history session starts (cells numbered from 1 again): a notebook sees nothing the
    previous one defined, as in a fresh kernel. Only the imported modules stay, which is
    the point: a kernel's start and ``import handson`` cost two seconds of CPU, and a class
    shares 2 cores. A kernel that died or hung is replaced by a new one. The first kernel
    runs in the ``preforked`` child (``kernels``) if there is one; a replacement is
    launched as usual.
    """

    def __init__(self, directory: Path, preforked: PreforkedKernel | None = None) -> None:
        self.directory = directory
        self.preforked = preforked
        self.manager: _KernelManager | None = None
        self.started = 0

    def for_notebook(self) -> _KernelManager:
        """The kernel manager for the next notebook; nbclient starts its kernel if it has
        none yet."""
        if self.manager is not None and self.manager.has_kernel:
            try:
                self._reset(self.manager)
                return self.manager
            except Exception:  # dead or hung: a new kernel instead
                pass
        self._shut_down()
        self.started += 1
        # A private directory per kernel for its connection file and ipc sockets: a shared
        # socket prefix makes concurrent kernels bind each other's sockets.
        sockets = self.directory / f"kernel-{self.started}"
        sockets.mkdir(parents=True)
        config = {
            "KernelManager": {
                "transport": "ipc",
                "ip": str(sockets / "ipc"),
                "connection_file": str(sockets / "kernel.json"),
            }
        }
        self.manager = _KernelManager(kernel_name="python3", config=Config(config))
        self.manager.preforked = self.preforked
        return self.manager

    def discard(self) -> None:
        """Shut the kernel down (if any), close every channel opened to it and end the
        preforked child if no kernel used it: at the student's end, or after a kernel
        failed to start (the next try launches one as usual)."""
        if self.preforked is not None:
            self.preforked.discard()
        self._shut_down()

    def _shut_down(self) -> None:
        manager, self.manager = self.manager, None
        if manager is None:
            return
        manager.close_clients()
        with contextlib.suppress(Exception):
            if manager.has_kernel:
                manager.shutdown_kernel(now=True)
        with contextlib.suppress(Exception):
            manager.cleanup_resources()

    @staticmethod
    def _reset(manager: _KernelManager) -> None:
        manager.close_clients()  # those nbclient left open after the last notebook
        client = manager.client()
        client.start_channels()
        try:
            client.wait_for_ready(timeout=RESET_TIMEOUT)
            reply = client.execute_interactive(
                RESET_CODE, silent=True, store_history=False, timeout=RESET_TIMEOUT
            )
        finally:
            manager.close_clients()
        if reply["content"]["status"] != "ok":
            raise RuntimeError(f"kernel reset failed: {reply['content']}")


class _KernelManager(KernelManager):
    """A kernel manager that remembers the clients it made, to close their channels
    (nbclient leaves them open when it does not own the kernel manager), and that runs its
    kernel in the ``preforked`` child when it has an unused one."""

    _opened: list[Any]
    preforked: PreforkedKernel | None = None

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
        preforked = self.preforked
        provisioner = self.provisioner
        if (
            preforked is None
            or preforked.used
            or not preforked.can_run(kernel_cmd)
            or not isinstance(provisioner, LocalProvisioner)
        ):
            await super()._async_launch_kernel(kernel_cmd, **kw)
            return
        process = preforked.launch(kernel_cmd, env=kw["env"], cwd=kw.get("cwd"))
        # What LocalProvisioner.launch_kernel records of the process it starts.
        provisioner.process = process
        provisioner.pid = provisioner.pgid = process.pid  # the child leads its own session
        provisioner.cwd = kw.get("cwd") or os.getcwd()
        self._reconcile_connection_info(provisioner.connection_info)

    def client(self, **kwargs: Any) -> Any:
        client = super().client(**kwargs)
        self.__dict__.setdefault("_opened", []).append(client)
        return client

    def close_clients(self) -> None:
        for client in self.__dict__.pop("_opened", []):
            with contextlib.suppress(Exception):
                client.stop_channels()


def _run_notebook(job: _Job, key: str, kernel: _StudentKernel) -> dict[str, Any]:
    import papermill as pm

    started = time.monotonic()
    kernel_started = threading.Event()  # set by nbclient once the kernel answers
    attempt = 0
    while True:
        attempt += 1
        kernel_started.clear()
        try:
            source = notebook_path(key, job.lang)
            pm.execute_notebook(
                str(source),
                str(job.directory / source.name),
                parameters=job.parameters[key],
                cwd=str(source.parent),
                progress_bar=False,
                # Saving the whole notebook after every cell cost ~1.5 s of CPU per student
                # (a class shares 2 cores); it is saved when it starts and when it ends.
                request_save_on_cell_execute=False,
                execution_timeout=max(1, int(job.timeout)),  # per cell; 0 means none
                kernel_name="python3",
                km=kernel.for_notebook(),
                on_notebook_start=lambda notebook: kernel_started.set(),
                **KERNEL_OPTIONS,
            )
        except pm.PapermillExecutionError as error:
            return _row(
                job,
                key,
                FAILED,
                time.monotonic() - started,
                cell=error.exec_count,
                error=f"{error.ename}: {_first_line(error.evalue)}",
            )
        except Exception as error:
            # Before the kernel answered (ZMQ address in use, kernel died or timed out at
            # start) another try usually works; anything later is the notebook's failure.
            kernel.discard()
            if kernel_started.is_set() or attempt > START_RETRIES:
                where = (
                    ""
                    if kernel_started.is_set()
                    else _(" (kernel start, {tries} tries)").format(tries=attempt)
                )
                text = f"{type(error).__name__}: {_first_line(str(error))}{where}"
                return _row(job, key, FAILED, time.monotonic() - started, error=text)
            time.sleep(0.5 * attempt)
        else:
            return _row(job, key, OK, time.monotonic() - started)


def _first_line(text: str) -> str:
    lines = [line for line in str(text).splitlines() if line.strip()]
    return lines[0].strip() if lines else ""
