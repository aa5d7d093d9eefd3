"""The ``handson`` command: parses options, calls the library, maps errors to exit codes."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from handson import sandbox
from handson.exceptions import HandsonError


def _sandbox_config(args: argparse.Namespace) -> sandbox.SandboxConfig:
    return sandbox.load_config(port=args.port, alb_port=args.alb_port, speed=args.speed)


def _print_status(status: sandbox.SandboxStatus, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(status.as_dict(), indent=2, default=str))
        return
    if not status.running:
        print("sandbox: not running (start it with: handson sandbox start)")
        return
    details = status.details or {}
    print(f"sandbox: running (pid {status.pid}, speed x{status.speed:g})")
    print(f"  AWS endpoint:  {status.endpoint_url}")
    print(f"  ALB proxy:     {status.alb_proxy_url}")
    print(
        f"  accounts: {len(details.get('accounts', []))}  services: {details.get('services', 0)}"
        f"  tasks running: {details.get('tasks_running', 0)}"
        f"  databases: {details.get('databases', 0)}"
    )
    for lb in details.get("load_balancers", []):
        for port in lb["ports"]:
            url = f"http://{lb['dnsName']}" + ("" if port == 80 else f":{port}")
            print(
                f"  ALB {lb['name']} (account {lb['account']}): {url}"
                f"  ->  curl --proxy {status.alb_proxy_url} {url}/health"
            )


def cmd_sandbox(args: argparse.Namespace) -> int:
    config = _sandbox_config(args)
    if args.action == "start":
        _print_status(sandbox.start(config), as_json=args.json)
    elif args.action == "stop":
        stopped = sandbox.stop(config)
        print("sandbox: stopped" if stopped else "sandbox: was not running")
    elif args.action == "status":
        status = sandbox.status(config)
        _print_status(status, as_json=args.json)
        return 0 if status.running else 3
    elif args.action == "reset":
        sandbox.reset(config)
        print("sandbox: every account is empty again")
    return 0


def cmd_course(args: argparse.Namespace) -> int:
    from handson import course

    parameters = {"backend": args.backend}
    runs = course.run_course(
        student=args.student,
        notebooks=args.notebooks.split(","),
        out=args.out,
        parameters=parameters,
    )
    for path in runs:
        print(f"ran {path}")
    print()
    for title, table in course.summary(student=args.student, backend=args.backend):
        print(f"== {title} ==")
        print(table.to_string(index=False) if not table.empty else "(none)")
        print()
    return 0


def cmd_outputs(args: argparse.Namespace) -> int:
    from handson import course

    for path in course.refresh_outputs(args.notebooks.split(",")):
        print(f"refreshed {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="handson", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    box = commands.add_parser("sandbox", help="run the local AWS sandbox")
    box.add_argument("action", choices=["start", "stop", "status", "reset"])
    box.add_argument("--port", type=int, help="AWS API port (default 5454, HANDSON_SANDBOX_PORT)")
    box.add_argument("--alb-port", type=int, help="ALB proxy port (default 5455)")
    box.add_argument("--speed", type=float, help="time speed factor (default 20; 1 = AWS timing)")
    box.add_argument("--json", action="store_true", help="print the status as JSON")
    box.set_defaults(func=cmd_sandbox)
    run = commands.add_parser("course", help="run the course notebooks headless for one student")
    run.add_argument("--student", default="student01")
    run.add_argument("--notebooks", default="00,07", help="comma-separated: 00,07,99")
    run.add_argument("--backend", default="sandbox", choices=["sandbox", "aws"])
    run.add_argument("--out", type=Path, default=Path("runs"))
    run.set_defaults(func=cmd_course)
    outputs = commands.add_parser(
        "outputs", help="re-execute the notebooks in place on a fresh sandbox (committed outputs)"
    )
    outputs.add_argument("--notebooks", default="00,07,99")
    outputs.set_defaults(func=cmd_outputs)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        code = args.func(args)
    except HandsonError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)
