"""The ``handson`` command: parses options, calls the library, maps errors to exit codes."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from handson import i18n, sandbox
from handson.connection import DEFAULT_REGION
from handson.exceptions import ConfigurationError, HandsonError, RosterProblem
from handson.i18n import _


def _sandbox_config(args: argparse.Namespace) -> sandbox.SandboxConfig:
    return sandbox.load_config(
        port=args.port,
        alb_port=args.alb_port,
        speed=args.speed,
        control_speed=args.control_speed,
    )


def _print_status(status: sandbox.SandboxStatus, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(status.as_dict(), indent=2, default=str))
        return
    if status.note:
        print(_("sandbox: {note}").format(note=status.note))
    if not status.running:
        if not status.died:
            print(_("sandbox: not running (start it with: handson sandbox start)"))
        return
    details = status.details or {}
    print(
        _("sandbox: running (pid {pid}, speed x{speed:g})").format(
            pid=status.pid, speed=status.speed
        )
    )
    print(_("  AWS endpoint:  {url}").format(url=status.endpoint_url))
    print(_("  ALB proxy:     {url}").format(url=status.alb_proxy_url))
    print(
        _(
            "  accounts: {accounts}  services: {services}"
            "  tasks running: {tasks_running}"
            "  databases: {databases}"
        ).format(
            accounts=len(details.get("accounts", [])),
            services=details.get("services", 0),
            tasks_running=details.get("tasks_running", 0),
            databases=details.get("databases", 0),
        )
    )
    for lb in details.get("load_balancers", []):
        for port in lb["ports"]:
            url = f"http://{lb['dnsName']}" + ("" if port == 80 else f":{port}")
            print(
                _("  ALB {name} (account {account}): {url}  ->  {command}").format(
                    name=lb["name"],
                    account=lb["account"],
                    url=url,
                    command=f"curl --proxy {status.alb_proxy_url} {url}/health",
                )
            )


def cmd_sandbox(args: argparse.Namespace) -> int:
    config = _sandbox_config(args)
    if args.action == "start":
        _print_status(sandbox.start(config), as_json=args.json)
    elif args.action == "stop":
        from handson.sandbox.lifecycle import shutdown

        report = shutdown(config)
        print(
            _("sandbox: {note}").format(note=report.note)
            if report.note
            else (_("sandbox: stopped") if report.stopped else _("sandbox: was not running"))
        )
    elif args.action == "status":
        status = sandbox.status(config)
        _print_status(status, as_json=args.json)
        return 0 if status.running else 3
    elif args.action == "reset":
        sandbox.reset(config)
        print(_("sandbox: every account is empty again"))
    elif args.action == "env":
        from handson.terminal import terminal_environment

        terminal = terminal_environment(args.student, region=args.region)
        print(f"# handson: this shell now talks to the sandbox as {terminal.student}")
        print(terminal.shell(), end="")
    return 0


def cmd_lab(args: argparse.Namespace) -> int:
    from handson.terminal import jupyter_lab, set_lab_defaults, terminal_environment

    lang = i18n.language(args.lang)
    terminal = terminal_environment(args.student)
    argv, env = jupyter_lab(terminal, os.environ, root=os.geteuid() == 0)
    argv += [a for a in args.jupyter_args if a != "--"]
    env[i18n.LANG_ENV] = lang
    set_lab_defaults(lang)
    print(
        _("handson: JupyterLab ({lang}), its terminals on the sandbox as {student}").format(
            lang=lang, student=terminal.student
        )
    )
    os.execve(argv[0], argv, env)  # replaces this process: Ctrl+C stops JupyterLab


def cmd_output(args: argparse.Namespace) -> int:
    from handson import chapters

    lab = _account(args)
    values = dict(chapters.outputs(lab, chapters.get_prerequisites(lab)).itertuples(index=False))
    if args.name is None:
        for name, value in values.items():
            print(f'{name} = "{value}"')
        return 0
    if args.name not in values:
        raise ConfigurationError(
            _("No output {name!r}. The outputs: {names}.").format(
                name=args.name, names=", ".join(values)
            )
        )
    print(values[args.name] if args.raw else f'"{values[args.name]}"')
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    from handson.logs import tail_log_events

    tail_log_events(
        _account(args),
        args.group,
        since=args.since,
        follow=args.follow,
        fmt=args.format,
        write=lambda line: print(line, flush=True),
    )
    return 0


def cmd_course(args: argparse.Namespace) -> int:
    from handson import course

    lang = i18n.language(args.lang)
    i18n.use(lang)  # this command's own lines in the edition's language too
    parameters = {"backend": args.backend}
    runs = course.run_course(
        student=args.student,
        notebooks=args.notebooks.split(","),
        out=args.out,
        parameters=parameters,
        lang=lang,
    )
    for path in runs:
        print(_("ran {path}").format(path=path))
    print()
    for title, table in course.summary(student=args.student, backend=args.backend, lang=lang):
        print(f"== {title} ==")
        print(table.to_string(index=False) if not table.empty else _("(none)"))
        print()
    return 0


def _print_table(table: Any) -> None:
    print(table.to_string(index=False) if not table.empty else _("(none)"))


def cmd_roster(args: argparse.Namespace) -> int:
    from handson import classroom

    notebooks = tuple(args.notebooks.split(",")) if args.notebooks else None
    problems = classroom.check_roster(args.roster, notebooks=notebooks)
    if problems.empty:
        print(_("{roster}: no problems").format(roster=args.roster))
        return 0
    print(_("{roster}: {count} problem(s)").format(roster=args.roster, count=len(problems)))
    for row in problems.itertuples(index=False):
        print(f"  {RosterProblem(*row)}")
    return 1


def cmd_provision(args: argparse.Namespace) -> int:
    from handson import classroom

    report = classroom.provision(
        args.roster,
        notebooks=tuple(args.notebooks.split(",")),
        parallel=args.parallel,
        out=args.out,
        resume=args.resume,
        backend=args.backend,
        lang=args.lang,
    )
    _print_table(report.table)
    return 0 if report.ok else 1


def cmd_grade(args: argparse.Namespace) -> int:
    from handson import classroom

    checks = args.checks.split(",") if args.checks is not None else None
    book = classroom.grade(args.roster, checks, parallel=args.parallel, backend=args.backend)
    _print_table(book.table)
    for path in book.write(args.out):
        print(_("wrote {path}").format(path=path))
    return 0 if book.ok else 1


def cmd_status(args: argparse.Namespace) -> int:
    from handson import classroom

    board = classroom.status(args.roster, backend=args.backend, parallel=args.parallel)
    _print_table(board)
    print()
    _print_table(classroom.class_cost(board))
    if args.csv:
        board.to_csv(args.csv, index=False)
        print(_("wrote {path}").format(path=args.csv))
    return 0


def cmd_teardown(args: argparse.Namespace) -> int:
    from handson import classroom

    roster = classroom.load_roster(args.roster)
    plan = classroom.teardown_plan(roster, backend=args.backend, parallel=args.parallel)
    if plan.empty:
        print(_("Nothing tagged by the kit in these accounts: nothing to delete."))
        return 0
    _print_table(plan)
    if not args.yes:
        try:
            answer = input(_("Delete all of this? [y/N] "))
        except EOFError:  # no terminal to ask: the safe answer
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            print(_("Nothing deleted."))
            return 1
    summary = classroom.teardown_class(roster, backend=args.backend, parallel=args.parallel)
    print()
    _print_table(summary)
    return 0 if (summary["status"] == "ok").all() else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="handson",
        description="The handson course kit: the local AWS sandbox, the course, the classroom.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    box = commands.add_parser("sandbox", help="run the local AWS sandbox")
    box.add_argument(
        "action",
        choices=["start", "stop", "status", "reset", "env"],
        help='env prints the shell lines for a terminal: eval "$(handson sandbox env)"',
    )
    box.add_argument("--student", default=_default_student(), help="for env (default student01)")
    box.add_argument("--region", default=DEFAULT_REGION, help="for env")
    box.add_argument("--port", type=int, help="AWS API port (default 5454, HANDSON_SANDBOX_PORT)")
    box.add_argument("--alb-port", type=int, help="ALB proxy port (default 5455)")
    box.add_argument("--speed", type=float, help="time speed factor (default 20; 1 = AWS timing)")
    box.add_argument(
        "--control-speed",
        type=float,
        help="how much faster RDS, NAT, ALB... get ready (default 10 x speed; 0 = instant)",
    )
    box.add_argument("--json", action="store_true", help="print the status as JSON")
    box.set_defaults(func=cmd_sandbox)
    run = commands.add_parser("course", help="run the course notebooks headless for one student")
    run.add_argument("--student", default="student01")
    run.add_argument("--notebooks", default="00,07", help="comma-separated: 00,07,99")
    run.add_argument("--backend", default="sandbox", choices=["sandbox", "aws"])
    run.add_argument("--out", type=Path, default=Path("runs"))
    run.add_argument(
        "--lang", choices=i18n.LANGUAGES, help="the edition (default: HANDSON_LANG, else en)"
    )
    run.set_defaults(func=cmd_course)
    lab = commands.add_parser("lab", help="JupyterLab whose terminals talk to the sandbox")
    lab.add_argument("--student", default=_default_student())
    lab.add_argument(
        "--lang", choices=i18n.LANGUAGES, help="JupyterLab's language (default: HANDSON_LANG)"
    )
    lab.add_argument(
        "jupyter_args", nargs=argparse.REMAINDER, help="after --: passed to jupyter lab"
    )
    lab.set_defaults(func=cmd_lab)
    output = commands.add_parser(
        "output", help="the values the series reads with `terraform output` (e.g. alb_dns_name)"
    )
    output.add_argument("name", nargs="?", help="one output (default: all of them)")
    output.add_argument("-raw", "--raw", action="store_true", help="the value alone, unquoted")
    _add_account_options(output)
    output.set_defaults(func=cmd_output)
    logs = commands.add_parser("logs", help="CloudWatch Logs from a terminal")
    logs_actions = logs.add_subparsers(dest="action", required=True)
    tail = logs_actions.add_parser(
        "tail", help="print the log group's events as `aws logs tail` does (AWS CLI v2 only)"
    )
    tail.add_argument("group", nargs="?", help="log group (default: the chapter's /ecs/P-E)")
    tail.add_argument("--follow", action="store_true", help="keep printing new events (Ctrl-C)")
    tail.add_argument("--since", default="10m", help="10m, 2h, 1d... or an ISO 8601 time")
    tail.add_argument("--format", default="detailed", choices=["detailed", "short"])
    _add_account_options(tail)
    tail.set_defaults(func=cmd_logs)
    _add_classroom(commands)
    return parser


def _add_account_options(command: argparse.ArgumentParser) -> None:
    """Whose account a terminal command looks at (by default the terminal's student)."""
    command.add_argument("--student", default=_default_student())
    command.add_argument("--backend", default="sandbox", choices=["sandbox", "aws"])
    command.add_argument("--profile", help="AWS profile (backend aws)")
    command.add_argument("--region", default=DEFAULT_REGION)


def _account(args: argparse.Namespace) -> Any:
    """The Lab of the account ``_add_account_options`` names."""
    from handson.connection import connect

    return connect(args.backend, student=args.student, region=args.region, profile=args.profile)


def _default_student() -> str:
    """The student a terminal set up by ``handson sandbox env`` talks as, or student01."""
    return os.environ.get("HANDSON_STUDENT") or "student01"


def _add_classroom(commands: Any) -> None:
    """The instructor's commands: a roster CSV, one student per row (handson.classroom)."""
    roster = commands.add_parser("roster", help="check a class roster CSV (touches no account)")
    roster_actions = roster.add_subparsers(dest="action", required=True)
    check = roster_actions.add_parser("check", help="list every bad row by line number")
    check.add_argument("roster", type=Path)
    check.add_argument(
        "--notebooks",
        help="the notebooks its parameter columns are for, e.g. 00,07 (default: any notebook)",
    )
    check.set_defaults(func=cmd_roster)

    def classroom_command(name: str, help_text: str, parallel: int | None) -> Any:
        command = commands.add_parser(name, help=help_text)
        command.add_argument("roster", type=Path, help="the roster CSV")
        command.add_argument("--backend", default="sandbox", choices=["sandbox", "aws"])
        command.add_argument("--parallel", type=int, default=parallel, help="students at a time")
        return command

    provision = classroom_command(
        "provision", "run the chapter notebooks for every student of a roster", None
    )
    provision.add_argument(
        "--notebooks", default="00", help="comma-separated (default 00: chapters 1-6); 00,07"
    )
    provision.add_argument("--out", type=Path, default=Path("runs"))
    provision.add_argument("--resume", action="store_true", help="continue a previous run in --out")
    provision.add_argument(
        "--lang",
        choices=i18n.LANGUAGES,
        help="the students' edition (default: HANDSON_LANG, else en)",
    )
    provision.set_defaults(func=cmd_provision)
    status = classroom_command("status", "the class board: one row per student", 8)
    status.add_argument("--csv", type=Path, help="also write the board to this CSV file")
    status.set_defaults(func=cmd_status)
    grade = classroom_command(
        "grade", "run the exercises' self-checks for every student (changes nothing)", 8
    )
    grade.add_argument("--checks", help="comma-separated check names (default: every check)")
    grade.add_argument("--out", type=Path, default=Path("runs"), help="writes gradebook.csv/.html")
    grade.set_defaults(func=cmd_grade)
    teardown = classroom_command(
        "teardown", "delete everything the kit made in every student's account", 4
    )
    teardown.add_argument("--yes", action="store_true", help="don't ask before deleting")
    teardown.set_defaults(func=cmd_teardown)


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        code = args.func(args)
    except HandsonError as exc:
        print(_("error: {error}").format(error=exc), file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)
