"""``handson sandbox start|stop|status|reset``: one server per home, no orphans."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
from world import World

from handson import sandbox
from handson.exceptions import SandboxError
from handson.sandbox.config import private_config
from handson.sandbox.dataplane.runtime import MARKER_ENV


def sandbox_processes(sandbox_id: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if proc.environ().get(MARKER_ENV) == sandbox_id:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def run_cli(config, *args: str) -> subprocess.CompletedProcess:
    env = dict(
        os.environ,
        HANDSON_HOME=str(config.home),
        HANDSON_SANDBOX_PORT=str(config.port),
        HANDSON_SANDBOX_ALB_PORT=str(config.alb_port),
    )
    return subprocess.run(
        [sys.executable, "-m", "handson", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def deploy_with_database(endpoint: str) -> World:
    world = World(endpoint, "222222222222")
    world.build_all()
    world.push_image()
    world.register_task_definition()
    world.create_service(desired=2)
    world.wait_steady()
    return world


@pytest.fixture
def config():
    cfg = private_config()
    yield cfg
    sandbox.stop(cfg)


def test_cli_start_is_idempotent_and_status_reports_it(config) -> None:
    first = run_cli(config, "sandbox", "start")
    assert first.returncode == 0, first.stderr
    assert f"http://127.0.0.1:{config.port}" in first.stdout
    second = run_cli(config, "sandbox", "start")
    assert second.returncode == 0
    status = run_cli(config, "sandbox", "status", "--json")
    details = json.loads(status.stdout)
    assert details["running"] is True
    assert details["endpoint_url"] == f"http://127.0.0.1:{config.port}"
    assert details["alb_proxy_url"] == f"http://127.0.0.1:{config.alb_port}"
    # One server only: the second start found the first.
    servers = [
        p
        for p in psutil.process_iter(["cmdline"])
        if "handson.sandbox.server" in " ".join(p.info["cmdline"] or [])
        and f"--port {config.port}" in " ".join(p.info["cmdline"] or [])
    ]
    assert len(servers) == 1
    assert run_cli(config, "sandbox", "stop").returncode == 0
    stopped = run_cli(config, "sandbox", "status")
    assert stopped.returncode == 3 and "not running" in stopped.stdout


def test_busy_port_gets_a_clear_message(config) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", config.port))
        squatter.listen()
        with pytest.raises(
            SandboxError, match=rf"Port {config.port} .* already in use .* HANDSON_SANDBOX_PORT"
        ):
            sandbox.start(config)
        result = run_cli(config, "sandbox", "start")
        assert result.returncode == 1 and "already in use" in result.stderr
    assert not sandbox.status(config).running


def test_stale_state_file_is_replaced(config) -> None:
    config.state_dir.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    config.state_file.write_text(
        json.dumps({"pid": dead.pid, "port": config.port, "sandbox_id": "gone"})
    )
    status = sandbox.start(config)
    assert status.running and status.pid != dead.pid


def test_stop_leaves_no_process_behind(config) -> None:
    status = sandbox.start(config)
    deploy_with_database(status.endpoint_url)
    sandbox_id = json.loads(config.state_file.read_text())["sandbox_id"]
    before = sandbox_processes(sandbox_id)
    names = " ".join(p.name() for p in before)
    # The server, two app tasks and PostgreSQL are all running.
    assert "postgres" in names
    assert sum("main.py" in " ".join(p.cmdline()) for p in before) == 2
    assert sandbox.stop(config) is True
    assert sandbox_processes(sandbox_id) == []
    assert not config.state_file.exists()
    assert sandbox.stop(config) is False


def test_stop_after_the_server_was_killed(config) -> None:
    status = sandbox.start(config)
    deploy_with_database(status.endpoint_url)
    sandbox_id = json.loads(config.state_file.read_text())["sandbox_id"]
    os.kill(status.pid, signal.SIGKILL)
    time.sleep(0.2)
    orphans = sandbox_processes(sandbox_id)
    assert orphans, "tasks and PostgreSQL outlive a killed server"
    assert not sandbox.status(config).running
    sandbox.stop(config)
    assert sandbox_processes(sandbox_id) == []


def test_reset_empties_every_account(config) -> None:
    status = sandbox.start(config)
    world = World(status.endpoint_url, "333333333333")
    world.build_network()
    world.build_cluster_and_roles()
    sandbox.reset(config)
    after = World(status.endpoint_url, "333333333333")
    assert after.client("ecs").list_clusters()["clusterArns"] == []
    assert (
        after.client("ec2").describe_vpcs(Filters=[{"Name": "cidr", "Values": ["10.0.0.0/16"]}])[
            "Vpcs"
        ]
        == []
    )


def test_reset_needs_a_running_sandbox(config) -> None:
    with pytest.raises(SandboxError, match="not running"):
        sandbox.reset(config)


def test_server_log_has_no_secret(config) -> None:
    status = sandbox.start(config)
    world = deploy_with_database(status.endpoint_url)
    sandbox.stop(config)
    log = Path(config.log_file).read_text()
    assert world.ids["db_password"] not in log


def test_stop_survives_a_shutdown_answer_cut_short(config, monkeypatch) -> None:
    import http.client

    from handson.sandbox import lifecycle

    status = sandbox.start(config)
    sandbox_id = json.loads(config.state_file.read_text())["sandbox_id"]
    real_request = lifecycle._request

    def cut_short(url: str, method: str = "GET", *args, **kwargs) -> dict:
        answer = real_request(url, method, *args, **kwargs)
        if url.endswith("/_handson/shutdown"):
            raise http.client.IncompleteRead(b"{", 10)  # the server left mid-answer
        return answer

    monkeypatch.setattr(lifecycle, "_request", cut_short)
    assert sandbox.stop(config) is True
    assert not config.state_file.exists()
    assert sandbox_processes(sandbox_id) == []
    assert not psutil.pid_exists(status.pid) or psutil.Process(status.pid).status() == "zombie"


def test_status_and_stop_say_a_killed_server_died(config) -> None:
    status = sandbox.start(config)
    deploy_with_database(status.endpoint_url)
    sandbox_id = json.loads(config.state_file.read_text())["sandbox_id"]
    os.kill(status.pid, signal.SIGKILL)
    time.sleep(0.2)

    report = sandbox.status(config)
    assert not report.running and report.died and report.pid == status.pid
    shown = run_cli(config, "sandbox", "status")
    assert shown.returncode == 3
    assert (
        f"the sandbox server (pid {status.pid}) died; its accounts, services and databases "
        "are gone: run `handson sandbox start` for a new, empty one"
    ) in shown.stdout
    assert "PostgreSQL" in shown.stdout and "not running (start" not in shown.stdout
    assert json.loads(run_cli(config, "sandbox", "status", "--json").stdout)["died"] is True

    stopped = run_cli(config, "sandbox", "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert f"(pid {status.pid}) died" in stopped.stdout
    assert "ended what it left running: 2 task processes and PostgreSQL" in stopped.stdout
    assert sandbox_processes(sandbox_id) == []
    assert not config.state_file.exists()
    assert run_cli(config, "sandbox", "stop").stdout.strip() == "sandbox: was not running"


def test_start_after_a_killed_server_says_it_is_a_new_sandbox(config) -> None:
    first = sandbox.start(config)
    os.kill(first.pid, signal.SIGKILL)
    time.sleep(0.2)
    started = run_cli(config, "sandbox", "start")
    assert started.returncode == 0, started.stderr
    assert (
        f"the sandbox server (pid {first.pid}) died; its accounts, services and databases are "
        "gone: starting a new, empty sandbox"
    ) in started.stdout
    again = sandbox.status(config)
    assert again.running and again.pid != first.pid and not again.note
    assert "starting a new" not in run_cli(config, "sandbox", "start").stdout


def test_start_waits_for_a_busy_server_instead_of_replacing_it(config, monkeypatch) -> None:
    # A class keeps the server busy: a student's connect() that finds it slow to answer
    # must not replace it (which would empty every student's account).
    from handson.sandbox import lifecycle

    monkeypatch.setattr(lifecycle, "STATUS_TIMEOUT", 0.5)
    first = sandbox.start(config)
    world = World(first.endpoint_url, "111122223333")
    vpc = world.client("ec2").create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    server = psutil.Process(first.pid)
    server.suspend()  # alive, but answers nothing for a while
    try:
        assert not sandbox.status(config).running
        resume = threading.Timer(3.0, server.resume)
        resume.start()
        again = sandbox.start(config)
    finally:
        server.resume()
    assert again.running and again.pid == first.pid and not again.note
    vpcs = world.client("ec2").describe_vpcs(VpcIds=[vpc])["Vpcs"]
    assert [v["VpcId"] for v in vpcs] == [vpc]
