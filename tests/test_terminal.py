"""The article's own terminal commands, as written, against the sandbox: the installed AWS
CLI after ``eval "$(handson sandbox env)"`` (its Python equivalent), ``curl`` on the ALB's
DNS name, and ``handson logs tail``."""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyterlab_server.translation_utils import get_language_packs

import handson
from handson import awscli, chapters, ecs, loadbalancer, progress, registry, terminal
from handson.connection import ApiCall, Lab, connect, sandbox_account_id
from handson.terminal import SOURCE_PROFILE, terminal_environment

STUDENT = "term01"
BIN = Path(sys.executable).parent
AWS = str(BIN / "aws")
HANDSON = str(BIN / "handson")


@pytest.fixture(scope="module")
def built(
    sandbox_server: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """Chapter 7 built for one student, and the shell environment of its terminal (with a
    home of its own: the AWS CLI caches assumed-role keys in ~/.aws/cli/cache)."""
    lab = connect("sandbox", student=STUDENT)
    answers: list[tuple[str, dict[str, Any]]] = []
    # Before the lab's first client: each client copies the session's handlers.
    lab.session.events.register("after-call", functools.partial(keep_answer, answers))
    pre = chapters.build_prerequisites(lab)
    before = len(handson.show_cli(lab))  # chapters 1-6's commands come first
    chapter00 = handson.show_cli(lab).iloc[:before]
    chapter00_calls = answered(lab.log.calls, answers)
    chapters.deploy_chapter7(lab, pre)
    chapter7 = handson.show_cli(lab).iloc[before:]
    outputs = dict(chapters.outputs(lab, pre).itertuples(index=False))
    terminal = terminal_environment(STUDENT)
    home = str(tmp_path_factory.mktemp("home"))
    env = terminal.apply({**os.environ, "HOME": home, "PATH": f"{BIN}:{os.environ['PATH']}"})
    yield {
        "lab": lab,
        "pre": pre,
        "outputs": outputs,
        "env": env,
        "terminal": terminal,
        "chapter7": chapter7,
        "chapter00": chapter00,
        "chapter00_calls": chapter00_calls,
        "home": home,
    }


def keep_answer(
    answers: list[tuple[str, dict[str, Any]]], parsed: dict[str, Any], model: Any, **_: Any
) -> None:
    """A botocore ``after-call`` handler: what each call answered, in order (a copy, since
    the library may change the dict it is handed)."""
    answer = {k: v for k, v in parsed.items() if k != "ResponseMetadata"}
    answers.append((model.name, copy.deepcopy(answer)))


def answered(
    calls: list[ApiCall], answers: list[tuple[str, dict[str, Any]]]
) -> list[tuple[ApiCall, dict[str, Any]]]:
    """Each logged call with its answer. One thread made them (build_prerequisites starts
    none), so the n-th answer is the n-th call's: checked call by call."""
    calls, answers = list(calls), list(answers)
    assert [c.operation for c in calls] == [operation for operation, _ in answers]
    return [(call, answer) for call, (_, answer) in zip(calls, answers, strict=True)]


def run(built: dict[str, Any], *args: str, timeout: float = 120) -> str:
    done = subprocess.run(
        args, env=built["env"], capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{args[0]} failed ({done.returncode}): {done.stderr}"
    return done.stdout


def aws(built: dict[str, Any], *args: str) -> str:
    return run(built, AWS, *args)


def table_rows(text: str) -> list[list[str]]:
    """The cells of an ``--output table`` answer, row by row (title and borders dropped:
    the rows come after the first ``+---+`` border)."""
    rows, bordered = [], False
    for line in text.splitlines():
        bordered = bordered or line.startswith("+")
        if bordered and line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def table_record(text: str, keys: set[str]) -> dict[str, str]:
    """One object from ``--output table``: a header row and a value row, or (when that
    would be too wide for the terminal) one key-value row per field."""
    rows = table_rows(text)
    if rows and set(rows[0]) == keys:
        return dict(zip(rows[0], rows[1], strict=True))
    return {key: value for key, value in rows}


def curl(built: dict[str, Any], *args: str) -> Any:
    """``curl`` itself when the machine has it, else a client that honours http_proxy."""
    if shutil.which("curl"):
        return json.loads(run(built, "curl", "-sS", "--fail", "--max-time", "30", *args))
    url, data, headers, method = args[-1], None, {}, "GET"
    options = list(args[:-1])
    while options:
        option = options.pop(0)
        if option == "-X":
            method = options.pop(0)
        elif option == "-H":
            name, _, value = options.pop(0).partition(":")
            headers[name] = value.strip()
        elif option == "-d":
            data = options.pop(0).encode()
    handler = urllib.request.ProxyHandler({"http": built["env"]["http_proxy"]})
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    with urllib.request.build_opener(handler).open(request, timeout=30) as answer:
        return json.loads(answer.read())


# The article's command, with `handson output` where the series has `terraform output`.
ARTICLE_DESCRIBE_SERVICES = """
aws ecs describe-services \\
  --cluster $(handson output -raw ecs_cluster_id) \\
  --services $(handson output -raw ecs_service_name) \\
  --query 'services[0].{Status:status,RunningCount:runningCount,DesiredCount:desiredCount}' \\
  --output table
"""


def test_describe_services_as_the_article_writes_it(built) -> None:
    text = run(built, "bash", "-c", ARTICLE_DESCRIBE_SERVICES)
    assert "DescribeServices" in text.splitlines()[1]
    assert table_record(text, {"DesiredCount", "RunningCount", "Status"}) == {
        "DesiredCount": "2",
        "RunningCount": "2",
        "Status": "ACTIVE",
    }


def test_handson_output_is_the_series_terraform_output(built) -> None:
    out = built["outputs"]
    assert run(built, HANDSON, "output", "-raw", "alb_dns_name").strip() == out["alb_dns_name"]
    listed = run(built, HANDSON, "output").splitlines()
    assert f'target_group_arn = "{out["target_group_arn"]}"' in listed
    missing = subprocess.run(
        [HANDSON, "output", "alb_dns"], env=built["env"], capture_output=True, text=True
    )
    assert missing.returncode == 1
    assert "No output 'alb_dns'. The outputs: vpc_id, alb_dns_name" in missing.stderr


def test_force_new_deployment_then_the_stopped_tasks_say_why(built) -> None:
    out, lab = built["outputs"], built["lab"]
    answer = json.loads(
        aws(
            built,
            "ecs",
            "update-service",
            "--cluster",
            out["ecs_cluster_id"],
            "--service",
            out["ecs_service_name"],
            "--force-new-deployment",
        )  # fmt: skip
    )
    assert len(answer["service"]["deployments"]) == 2
    service = ecs.wait_for_rollout(lab, poll=0.2, progress=progress.silent)
    assert service[["desired", "running"]].values.tolist() == [[2, 2]]
    stopped = aws(
        built,
        "ecs", "list-tasks",
        "--cluster", out["ecs_cluster_id"],
        "--desired-status", "STOPPED",
        "--query", "taskArns[0]",
        "--output", "text",
    ).strip()  # fmt: skip
    assert stopped.startswith("arn:aws:ecs:")
    text = aws(
        built,
        "ecs", "describe-tasks",
        "--cluster", out["ecs_cluster_id"],
        "--tasks", stopped,
        "--query", "tasks[0].{StopCode:stopCode,StoppedReason:stoppedReason}",
        "--output", "table",
    )  # fmt: skip
    reason = table_record(text, {"StopCode", "StoppedReason"})
    assert reason["StopCode"] == "ServiceSchedulerInitiated"
    assert reason["StoppedReason"].startswith("Scaling activity initiated by (deployment ecs-svc/")


def test_describe_target_health_shows_both_targets(built) -> None:
    query = (
        "TargetHealthDescriptions[*].{Target:Target.Id,Health:TargetHealth.State,"
        "Description:TargetHealth.Description}"
    )
    text = aws(
        built,
        "elbv2", "describe-target-health",
        "--target-group-arn", built["outputs"]["target_group_arn"],
        "--query", query,
        "--output", "table",
    )  # fmt: skip
    header, *rows = table_rows(text)
    assert header == ["Description", "Health", "Target"]
    assert len(rows) == 2
    assert all(health == "healthy" for _, health, _ in rows)
    assert all(re.fullmatch(r"10\.0\.\d+\.\d+", target) for *_, target in rows)


def test_describe_log_streams_newest_first(built) -> None:
    text = aws(
        built,
        "logs", "describe-log-streams",
        "--log-group-name", built["outputs"]["cloudwatch_log_group_name"],
        "--order-by", "LastEventTime",
        "--descending",
        "--query", "logStreams[0:3].logStreamName",
        "--output", "table",
    )  # fmt: skip
    streams = [cells[0] for cells in table_rows(text)]
    assert 1 <= len(streams) <= 3
    assert all(s.startswith("ecs/") for s in streams)


def test_curl_on_the_alb_dns_name(built) -> None:
    alb = f"http://{built['outputs']['alb_dns_name']}"
    assert curl(built, f"{alb}/")["endpoints"] == {"health": "/health", "users": "/api/users"}
    assert curl(built, f"{alb}/health")["status"] == "healthy"
    email = f"{uuid.uuid4().hex[:8]}@example.com"
    created = curl(
        built,
        "-X", "POST",
        "-H", "Content-Type: application/json",
        "-d", json.dumps({"name": "Test User", "email": email}),
        f"{alb}/api/users",
    )  # fmt: skip
    user = created["user"]
    assert user["email"] == email
    assert email in [u["email"] for u in curl(built, f"{alb}/api/users")["users"]]
    assert curl(built, f"{alb}/api/users/{user['id']}")["user"]["email"] == email


def test_logs_tail_follow_shows_a_new_request(built) -> None:
    group = built["outputs"]["cloudwatch_log_group_name"]
    tail = subprocess.Popen(
        [HANDSON, "logs", "tail", group, "--follow", "--format", "short", "--student", STUDENT],
        env=built["env"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(tail.stdout.readline, "")))
    reader.start()
    try:
        # A user that doesn't exist: the app logs "GET /api/users/<id> 404".
        marker = f"/api/users/{uuid.uuid4().int % 10**12 + 10**12}"
        proxy = urllib.request.ProxyHandler({"http": built["env"]["http_proxy"]})
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not any(marker in line for line in lines):
            with pytest.raises(urllib.error.HTTPError) as missing:
                urllib.request.build_opener(proxy).open(
                    f"http://{built['outputs']['alb_dns_name']}{marker}", timeout=30
                )
            assert missing.value.code == 404
            time.sleep(1)
        found = [line for line in lines if marker in line]
        assert found, f"no log line for {marker}; tail printed {lines[-5:]}"
        # --format short: "<time> <message>", the time as aws logs tail prints it.
        assert re.match(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2} ", found[0])
    finally:
        tail.terminate()
        tail.wait(timeout=30)
        reader.join(timeout=30)


def test_sandbox_env_leaves_your_own_aws_config_alone(built, tmp_path) -> None:
    home = tmp_path / "home"
    (home / ".aws").mkdir(parents=True)
    own = home / ".aws" / "config"
    own.write_text("[default]\nregion = us-west-2\n")
    env = {**os.environ, "HOME": str(home)}
    printed = subprocess.run(
        [HANDSON, "sandbox", "env", "--student", "term02"],
        env=env, capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    assert own.read_text() == "[default]\nregion = us-west-2\n"
    assert sorted(p.name for p in (home / ".aws").iterdir()) == ["config"]
    assert "export AWS_PROFILE=term02" in printed.splitlines()
    config = Path(re.search(r"export AWS_CONFIG_FILE=(\S+)", printed).group(1))
    assert not config.is_relative_to(home / ".aws")
    text = config.read_text()
    assert f"[profile {SOURCE_PROFILE}]" in text and "[profile term02]" in text
    assert f"[profile {STUDENT}]" in text  # the other student's profile stays
    # Nothing secret: the only keys are the sandbox's fixed test keys.
    secrets = re.findall(r"aws_secret_access_key = (\S+)", text)
    assert secrets == ["sandbox"]
    assert "aws_session_token" not in text and "SECRET" not in printed.upper().replace(
        "AWS_SECRET_ACCESS_KEY", ""
    )


def test_sandbox_env_shell_lines_are_what_eval_applies(built) -> None:
    terminal = built["terminal"]
    script = (
        terminal.shell()
        + 'printf "%s\\n" "$AWS_PROFILE" "$http_proxy" "${AWS_ACCESS_KEY_ID-unset}"'
    )
    shown = subprocess.run(
        ["bash", "-c", script], env=os.environ, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert shown == [STUDENT, terminal.variables["http_proxy"], "unset"]


def test_the_terminal_reaches_the_same_account_as_the_library(built) -> None:
    lab: Lab = built["lab"]
    who = json.loads(aws(built, "sts", "get-caller-identity"))
    assert who["Account"] == lab.account_id


def test_handson_lab_starts_jupyterlab_as_root_with_the_terminal_set_up(
    built, tmp_path, lab_overrides
) -> None:
    import socket

    import psutil

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "HOME": str(tmp_path),
        "BROWSER": "true",
        "JUPYTER_RUNTIME_DIR": str(tmp_path),
    }
    argv = [HANDSON, "lab", "--student", STUDENT, "--lang", "ja", "--", "--no-browser"]
    lab = subprocess.Popen(
        [*argv, f"--ServerApp.port={port}"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        said: list[str] = []
        for line in lab.stderr:
            said.append(line)
            if "is running at" in line or "Jupyter Server" in line and "running" in line:
                break
        assert any("running at" in line for line in said), "".join(said[-20:])
        assert not any("Running as root is not recommended" in line for line in said)
        environ = psutil.Process(lab.pid).environ()
        assert environ["AWS_PROFILE"] == STUDENT
        assert environ["PATH"].split(os.pathsep)[0] == str(BIN)
        assert "AWS_ACCESS_KEY_ID" not in environ
        if os.geteuid() == 0:
            assert "--allow-root" in psutil.Process(lab.pid).cmdline()
        # Japanese: JupyterLab's own menus too (its language pack is installed), and the kit.
        assert environ["HANDSON_LANG"] == "ja"
        settings = json.loads(lab_overrides.read_text())
        assert settings[terminal.TRANSLATION_PLUGIN]["locale"] == "ja_JP"
        assert "ja_JP" in get_language_packs("en")[0]
    finally:
        lab.terminate()
        lab.wait(timeout=30)


def test_the_lab_defaults_keep_other_defaults(tmp_path) -> None:
    overrides = tmp_path / "settings" / "overrides.json"
    terminal.set_lab_defaults("ja", overrides)
    settings = json.loads(overrides.read_text())
    settings["@jupyterlab/apputils-extension:themes"] = {"theme": "JupyterLab Dark"}
    overrides.write_text(json.dumps(settings))
    terminal.set_lab_defaults("en", overrides)
    assert json.loads(overrides.read_text()) == {
        terminal.TRANSLATION_PLUGIN: {"locale": "en"},
        terminal.NEWS_PLUGIN: {"fetchNews": "false"},
        "@jupyterlab/apputils-extension:themes": {"theme": "JupyterLab Dark"},
    }


def test_the_lab_defaults_keep_a_news_choice(tmp_path) -> None:
    overrides = tmp_path / "overrides.json"
    overrides.write_text(json.dumps({terminal.NEWS_PLUGIN: {"fetchNews": "true"}}))
    terminal.set_lab_defaults("en", overrides)
    assert json.loads(overrides.read_text())[terminal.NEWS_PLUGIN] == {"fetchNews": "true"}


def test_the_cli_views_read_commands_run_as_shown(built) -> None:
    from handson import logs

    lab = built["lab"]
    ecs.show_service(lab)
    loadbalancer.show_target_health(lab)
    logs.show_log_streams(lab)
    ecs.show_stopped_tasks(lab)
    commands = handson.show_cli(lab)["command"].tolist()
    # The push's `aws ecr get-login-password | docker login ...` needs Docker: not here.
    reads = [
        c
        for c in commands
        if c.split()[:1] == ["aws"] and not is_mutating(c.split()[2]) and "docker" not in c
    ]
    starts = ["aws ecs describe-services", "aws elbv2 describe-target-health"]
    starts += ["aws logs describe-log-streams", "aws ecs describe-tasks"]
    for start in starts:
        assert any(c.startswith(start) for c in reads), start
    assert any("--output table" in c and "--query" in c for c in reads)
    for line in reads:
        text = run(built, "bash", "-c", line)
        assert table_rows(text), f"{line}\n{text}"
    assert [c.split()[:2] for c in commands if "docker" in c] == [
        ["aws", "ecr"],
        ["docker", "build"],
        ["docker", "tag"],
        ["docker", "push"],
    ]  # the push as the ECR console lists it, once


def is_mutating(cli_operation: str) -> bool:
    return awscli.is_mutating("".join(p.title() for p in cli_operation.split("-")))


SDK_CHECK = """
import boto3
session = boto3.Session()  # AWS_PROFILE, AWS_CONFIG_FILE: nothing else
print(session.client("sts").get_caller_identity()["Account"])
print(session.client("ecs").describe_services(
    cluster="my-project-dev-cluster", services=["my-project-dev-app-service"]
)["services"][0]["runningCount"])
"""


def test_any_sdk_reaches_the_sandbox_through_the_profile(built) -> None:
    # A fresh process with only the terminal's environment: boto3 reads the profile's
    # endpoint_url and role from the kit's config file, as the AWS CLI does.
    account, running = run(built, sys.executable, "-c", SDK_CHECK).split()
    assert account == built["lab"].account_id
    assert running == "2"


def leaves(value: Any) -> list[str]:
    """The strings in a dataclass of IDs and ARNs, in field order."""
    if dataclasses.is_dataclass(value):
        return [s for f in dataclasses.fields(value) for s in leaves(getattr(value, f.name))]
    if isinstance(value, list | tuple):
        return [s for v in value for s in leaves(v)]
    return [value] if isinstance(value, str) else []


def test_chapter_7s_commands_as_shown_deploy_it_in_another_account(built) -> None:
    """The chapter's commands from show_cli, typed in another student's terminal, with
    that student's own IDs and ARNs of chapters 1-6 (what its `terraform output` says)."""
    lab_a: Lab = built["lab"]
    lab_b = connect("sandbox", student="term03")
    pre_b = chapters.build_prerequisites(lab_b)
    ids = dict(zip(leaves(built["pre"]), leaves(pre_b), strict=True))
    ids[lab_a.account_id] = lab_b.account_id
    env = terminal_environment("term03").apply(
        {**os.environ, "HOME": built["home"], "PATH": built["env"]["PATH"]}
    )
    pushed = False
    typed = []
    for step, line in built["chapter7"].itertuples(index=False):
        if "docker" in line:  # the push: no Docker engine here, the kit pushes instead
            if not pushed:
                registry.push_image(lab_b)
                pushed = True
            continue
        for a, b in sorted(ids.items(), key=lambda kv: -len(kv[0])):
            line = line.replace(a, b)
        typed.append(step)
        done = subprocess.run(
            ["bash", "-c", line], env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, f"{line}\n{done.stderr}"
    assert pushed
    assert {"Register the task definition", "Create the ECS service"} <= set(typed)
    service = ecs.wait_for_rollout(lab_b, poll=0.2, progress=progress.silent)
    assert service[["desired", "running"]].values.tolist() == [[2, 2]]
    # The running tasks' targets. (A target of the first deployment, replaced by the
    # forced one typed right after create-service, was once seen staying `initial`.)
    running = set(ecs.show_tasks(lab_b).private_ip)
    health = loadbalancer.show_target_health(lab_b)
    assert health[health.target.isin(running)].state.tolist() == ["healthy", "healthy"]


# A student whose account nothing else in the tests touches: empty until the test types.
EMPTY_STUDENT = "term05"
# The DB master password, `****` in the log and in the secret's JSON (secrets are never
# recorded): a learner types one of their own choosing (RDS refuses '/', '@', '"', spaces).
CHOSEN_PASSWORD = "Learner-chosen-Passw0rd"
# What an AWS identifier looks like: an ARN, an EC2-style ID (vpc-0abc..., aclassoc-...), an
# AWS DNS name (the ALB's, the DB's), an account ID, or an IPv4 address the account was
# given (an Elastic IP: no command types one, but the NAT gateways' are in the outputs).
# Only these are mapped from one account to another; other strings that differ (times,
# as B's JSON prints them) are not.
IDENTIFIER = re.compile(
    r"arn:aws[\w-]*:[^\s'\"]+|\b[a-z][a-z0-9]*-[0-9a-f]{8,17}\b"
    r"|[\w.-]+\.amazonaws\.com|\b\d{12}\b|\b(?:\d{1,3}\.){3}\d{1,3}\b(?!/)"
)


def strings(value: Any) -> set[str]:
    """Every string in a parsed answer (dicts, lists and scalars)."""
    if isinstance(value, dict):
        return {s for v in value.values() for s in strings(v)}
    if isinstance(value, list):
        return {s for v in value for s in strings(v)}
    return {value} if isinstance(value, str) else set()


def pair_ids(a: Any, b: Any, ids: dict[str, str], where: str = "") -> None:
    """Add to ``ids`` the identifiers in which two answers to the same call differ (account
    A's answer, as botocore parsed it, and B's, as ``aws --output json`` printed it), place
    by place. Times are datetimes in A's and strings in B's: not compared."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in a.keys() & b.keys():
            pair_ids(a[key], b[key], ids, f"{where}.{key}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), f"{where}: {len(a)} items in A's answer, {len(b)} in B's"
        for n, (x, y) in enumerate(zip(a, b, strict=True)):
            pair_ids(x, y, ids, f"{where}[{n}]")
    elif isinstance(a, str) and isinstance(b, str) and a != b and IDENTIFIER.fullmatch(a):
        assert ids.setdefault(a, b) == b, f"{where}: {a} is both {ids[a]} and {b}"


def substitute(line: str, ids: dict[str, str]) -> str:
    """``line`` with account A's identifiers replaced by B's (the longest first, so that an
    ARN is replaced whole before an ID inside it)."""
    for a, b in sorted(ids.items(), key=lambda kv: -len(kv[0])):
        line = line.replace(a, b)
    return line


def lookups_to_type(calls: list[tuple[ApiCall, dict[str, Any]]], known: set[str]) -> set[int]:
    """The library's own look-ups (read calls, not in show_cli) whose answer is the only
    source of an identifier a later shown command uses: a learner types them too. Returns
    their indices in ``calls``. ``known``: what the learner knows beforehand."""
    known, lookups = set(known), set()
    for n, (call, answer) in enumerate(calls):
        if not call.mutating:
            continue
        for token in set(IDENTIFIER.findall(call.commands[0])) - known:
            sources = [
                m for m in range(n) if not calls[m][0].mutating and token in strings(calls[m][1])
            ]
            if sources:  # else a constant (a managed policy's ARN) or built from the account
                lookups.add(sources[-1])
        known |= strings(answer)
    return lookups


def test_chapter_00s_commands_as_shown_build_chapters_1_to_6_in_an_empty_account(built) -> None:
    """Chapter 00's commands from show_cli (chapters 1-6: VPC to RDS), typed one by one in
    an empty account's terminal, each with the IDs the earlier ones answered there, build
    exactly what the library builds: its build_prerequisites then finds everything and
    changes nothing."""
    lab_a: Lab = built["lab"]
    calls: list[tuple[ApiCall, dict[str, Any]]] = built["chapter00_calls"]
    changes = [call for call, _ in calls if call.mutating]
    rows = list(built["chapter00"].itertuples(index=False, name=None))
    assert rows == [(call.step, call.commands[0]) for call in changes]  # one command each
    assert len(rows) > 50 and not any("docker" in line for _, line in rows)  # no push here
    assert not [call.operation for call, answer in calls if call.mutating and "Error" in answer]
    # A's student and account become B's: the Student tag (a JSON string in the --tags and
    # --tag-specifications), and the account in the ARNs the commands build themselves.
    assert all(line.count(STUDENT) == line.count(f'"{STUDENT}"') for _, line in rows)
    ids = {
        f'"{STUDENT}"': f'"{EMPTY_STUDENT}"',
        lab_a.account_id: sandbox_account_id(EMPTY_STUDENT),
    }
    lookups = lookups_to_type(calls, {lab_a.account_id})
    env = terminal_environment(EMPTY_STUDENT).apply(
        {**os.environ, "HOME": built["home"], "PATH": built["env"]["PATH"]}
    )

    def typed(line: str) -> Any:
        done = subprocess.run(
            ["bash", "-c", f"{line} --output json"],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, f"{line}\n{done.stderr}"
        return json.loads(done.stdout) if done.stdout.strip() else {}

    replayed: list[str] = []
    created: dict[str, Any] = {}  # create-db-instance's parameters
    for n, (call, answer_a) in enumerate(calls):
        if call.mutating:
            line = substitute(call.commands[0], ids)
        elif n in lookups:
            line = substitute(awscli.command(call.service, call.operation, call.params), ids)
        else:
            continue
        if call.operation == "CreateDBInstance":
            assert "--master-user-password '****'" in line
            line = line.replace("'****'", shlex.quote(CHOSEN_PASSWORD))
            created = call.params
        if call.operation == "CreateSecret":
            # The secret is the DB's connection as the tasks read it, its password masked
            # in the view: the learner's own, and the address RDS gave the DB there (a
            # describe the learner types; paired with A's own look-up of the DB).
            describe = (
                "aws rds describe-db-instances --db-instance-identifier "
                f"{created['DBInstanceIdentifier']} --query 'DBInstances[0]'"
            )
            db_b = typed(describe)
            replayed.append(describe)
            db_a = next(
                answer["DBInstances"][0]
                for c, answer in reversed(calls[:n])
                if c.operation == "DescribeDBInstances" and answer.get("DBInstances")
            )
            pair_ids(db_a, db_b, ids)
            line = substitute(call.commands[0], ids)
            assert '"password": "****"' in line
            line = line.replace('"password": "****"', f'"password": "{CHOSEN_PASSWORD}"')
            assert db_b["Endpoint"]["Address"] in line
        assert "****" not in line
        pair_ids(answer_a, typed(line), ids)
        replayed.append(line)
    assert len(replayed) == len(rows) + len(lookups) + 1
    # The one look-up typed: the subnets' associations with the VPC's default network ACL,
    # which replace-network-acl-association names (show_cli lists only the changes).
    assert [calls[n][0].operation for n in sorted(lookups)] == ["DescribeNetworkAcls"]
    # The library, in B: every ensure_* finds what the commands built, and changes nothing.
    lab_b = connect("sandbox", student=EMPTY_STUDENT)
    assert lab_b.account_id == sandbox_account_id(EMPTY_STUDENT)
    pre_b = chapters.build_prerequisites(lab_b)
    changed = [f"{c.step}: {c.commands[0]}" for c in lab_b.log.mutating()]
    assert not changed, "the library still changed:\n" + "\n".join(changed)
    assert [substitute(s, ids) for s in leaves(built["pre"])] == leaves(pre_b)
    outputs_b = dict(chapters.outputs(lab_b, pre_b).itertuples(index=False))
    assert outputs_b == {k: substitute(built["outputs"][k], ids) for k in outputs_b}


def test_commands_spell_options_as_the_aws_cli_names_them() -> None:
    # The CLI renames some options: `--no-egress` is `--ingress` (ec2), and the ECS one.
    entry = {"NetworkAclId": "acl-1", "RuleNumber": 100, "Egress": False}
    assert awscli.command("ec2", "CreateNetworkAclEntry", entry).split()[-1] == "--ingress"
    assert awscli.command("ec2", "CreateNetworkAclEntry", {**entry, "Egress": True}).endswith(
        " --egress"
    )
    assert awscli.command("ecs", "CreateService", {"enableExecuteCommand": False}) == (
        "aws ecs create-service --disable-execute-command"
    )
    assert awscli.command("rds", "CreateDBInstance", {"MultiAZ": False}).endswith(" --no-multi-az")


def test_rendering_a_command_leaves_the_process_as_it_was() -> None:
    # Importing the awscli package sets AWS_DATA_PATH, which changes how boto3 reads
    # profiles in the learner's kernel: the renames are read from its source instead.
    check = (
        "import os, sys; from handson import awscli; "
        "line = awscli.command('ec2', 'CreateNetworkAclEntry', {'Egress': False}); "
        "print(line.split()[-1], 'awscli' in sys.modules, 'AWS_DATA_PATH' in os.environ)"
    )
    env = {k: v for k, v in os.environ.items() if k != "AWS_DATA_PATH"}
    done = subprocess.run(
        [sys.executable, "-c", check], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["--ingress", "False", "False"]


@pytest.mark.parametrize(
    ("student", "message"),
    [
        ("handson-sandbox", "the name of the kit's own source profile"),
        ("bad name", "student='bad name': use letters, digits"),
    ],
)
def test_sandbox_env_refuses_a_bad_student_before_writing(student, message, sandbox_server) -> None:
    from handson.exceptions import ConfigurationError

    with pytest.raises(ConfigurationError, match=message):
        terminal_environment(student)
