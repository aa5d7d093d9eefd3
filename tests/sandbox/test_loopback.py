"""Single-address loopback mode: the whole data plane on 127.0.0.1 (macOS has no other
loopback address unless aliases are added), with AWS's view unchanged.

The end-to-end tests run on a sandbox of their own forced into single mode, whatever
the machine could do; the session's sandbox is left as the environment chose it.
"""

from __future__ import annotations

import errno
import json
import socket
from collections.abc import Iterator
from typing import Any

import psutil
import pytest
from test_firewall import _all_timed_out, _assert_rds_rule_removal_times_out, _deploy, _rule
from test_traffic import Alb
from world import APP_DIR, World

from handson import sandbox
from handson.exceptions import SandboxError
from handson.image_format import parse_dockerfile
from handson.sandbox.config import SandboxConfig, load_config, private_config
from handson.sandbox.dataplane.runtime import SLOT_PORTS, Slot, loopback_mode


def test_auto_is_single_when_no_extra_address_binds(monkeypatch: pytest.MonkeyPatch) -> None:
    real_bind = socket.socket.bind

    def only_localhost(sock: socket.socket, address: Any) -> None:
        if address[0] != "127.0.0.1":
            raise OSError(errno.EADDRNOTAVAIL, "Can't assign requested address")
        real_bind(sock, address)

    assert loopback_mode("many", "127.1.0.1") == "many"
    assert loopback_mode("single", "127.1.0.1") == "single"
    monkeypatch.setattr(socket.socket, "bind", only_localhost)
    assert loopback_mode("auto", "127.1.0.1") == "single"
    assert loopback_mode("many", "127.1.0.1") == "many"  # asked for: not probed


def test_the_session_sandbox_chose_its_mode_by_itself(
    sandbox_config: SandboxConfig, sandbox_server: sandbox.SandboxStatus
) -> None:
    assert sandbox_server.details is not None
    chosen = sandbox_server.details["loopback"]
    if sandbox_config.loopback == "auto":
        # Any address besides 127.0.0.1 binds when one does (Linux has all of 127/8).
        assert chosen == loopback_mode("auto", "127.16.0.1")
    else:
        assert chosen == sandbox_config.loopback


def test_two_sandboxes_never_share_a_slot() -> None:
    # Two sandboxes whose ALB ports point at the same slot (a learner's and a test run's,
    # or two test workers) each get one of their own; a slot is free again once released.
    first = Slot(7)
    second = Slot(7)
    try:
        assert first.index != second.index
        assert first.first_address != second.first_address
        assert abs(first.first_port - second.first_port) >= SLOT_PORTS
        held = first.index
        first.release()
        again = Slot(held)
        assert again.index == held
        again.release()
    finally:
        first.release()
        second.release()


def test_a_bad_value_says_which_values_are_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HANDSON_SANDBOX_LOOPBACK", "several")
    for make in (load_config, private_config):
        with pytest.raises(SandboxError, match="'several'.*auto, many, single"):
            make()
    monkeypatch.setenv("HANDSON_SANDBOX_LOOPBACK", " Single ")
    assert load_config().loopback == "single"


# ------------------------------------------------------------- forced single mode


@pytest.fixture(scope="module")
def single_sandbox() -> Iterator[SandboxConfig]:
    config = private_config(control_speed=0).with_options(loopback="single")
    sandbox.start(config)
    try:
        yield config
    finally:
        sandbox.stop(config)


@pytest.fixture
def endpoint(single_sandbox: SandboxConfig) -> str:
    """The conftest's ``world`` fixture builds its account in the single-mode sandbox."""
    return single_sandbox.endpoint_url


@pytest.fixture
def alb_proxy(single_sandbox: SandboxConfig) -> str:
    return f"http://127.0.0.1:{single_sandbox.alb_port}"


def _listeners(process: psutil.Process) -> set[tuple[str, int]]:
    """The TCP addresses a process listens on."""
    return {
        (conn.laddr.ip, conn.laddr.port)
        for conn in process.net_connections(kind="tcp")
        if conn.status == psutil.CONN_LISTEN
    }


def test_two_tasks_on_port_3000_are_healthy_and_reach_rds(
    world: World, alb_proxy: str, single_sandbox: SandboxConfig
) -> None:
    status = sandbox.status(single_sandbox)
    assert status.details is not None and status.details["loopback"] == "single"
    _deploy(world)
    # What AWS shows does not change: the tasks' VPC addresses, the container port.
    targets = [t["Target"] for t in world.target_health()]
    assert [t["Port"] for t in targets] == [3000, 3000]
    assert all(t["Id"].startswith("10.0.1") for t in targets)
    alb = Alb(alb_proxy, world.ids["alb_dns"])
    code, body, _ = alb.call("GET", "/health")
    assert code == 200 and body["status"] == "healthy"
    # The apps reach their RDS database by its endpoint name and port 5432.
    code, body, _ = alb.call("POST", "/api/users", {"name": "Mac User", "email": "mac@x.org"})
    assert code == 201, body
    seen = {alb.call("GET", "/api/users")[1]["users"][0]["email"] for _ in range(4)}
    assert seen == {"mac@x.org"}
    events = world.client("logs").filter_log_events(logGroupName=world.ids["log_group"])
    lines = [e["message"] for e in events["events"]]
    assert sum("Database is ready" in line for line in lines) == 2
    # The apps believe they listen on port 3000 of an address of their own...
    listening = [line for line in lines if "Server listening on http://127." in line]
    assert len(listening) == 2
    assert all(line.endswith(":3000 (environment=production)") for line in listening), listening
    # ... while each has a port of its own on 127.0.0.1, as has every listener of the
    # data plane (API, ALB proxy, RDS front).
    assert status.pid is not None
    server = psutil.Process(status.pid)
    apps = [p for p in server.children() if "main.py" in " ".join(p.cmdline())]
    assert len(apps) == 2
    app_listeners = [_listeners(app) for app in apps]
    assert all(len(found) == 1 for found in app_listeners)
    assert app_listeners[0] != app_listeners[1]
    everything = set().union(_listeners(server), *app_listeners)
    assert {ip for ip, _ in everything} == {"127.0.0.1"}
    ports = json.loads((single_sandbox.state_dir / "dns" / "ports.json").read_text())
    assert {port for _, port in set().union(*app_listeners)} <= set(ports.values())
    assert sum(key.endswith(":5432") for key in ports) == 1


def test_the_dockerfile_healthcheck_reaches_its_own_app(world: World) -> None:
    """The image's HEALTHCHECK asks 127.0.0.1:3000, the container's own port; as a task
    definition's healthCheck, the sandbox runs it and it reaches the app."""
    image_check = parse_dockerfile(APP_DIR / "Dockerfile").healthcheck
    assert image_check is not None and "127.0.0.1:3000" in image_check["test"][1]
    check = {"command": image_check["test"], "interval": 5, "timeout": 4, "retries": 2}
    world.push_image()
    world.register_task_definition(container={"healthCheck": check})
    world.create_service(desired=1)
    world.wait_steady()
    world.wait_for(
        lambda: [t["healthStatus"] for t in world.tasks()] == ["HEALTHY"], what="HEALTHY"
    )


def test_removed_alb_to_ecs_rule_times_out_the_targets(world: World) -> None:
    _deploy(world)
    sgs = world.ids["sgs"]
    world.client("ec2").revoke_security_group_ingress(
        GroupId=sgs["ecs"], IpPermissions=_rule(3000, group=sgs["alb"])
    )
    world.wait_for(lambda: _all_timed_out(world), what="both targets unhealthy: Target.Timeout")


def test_removed_ecs_to_rds_rule_times_out_the_apps_connect(world: World) -> None:
    _assert_rds_rule_removal_times_out(world)
