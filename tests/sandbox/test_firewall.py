"""Security groups and network ACLs on the sandbox's data paths, with plain boto3.

Security groups are stateful (a reply needs no rule); network ACLs are stateless (the
reply needs an entry of its own). A dropped connection is never answered: health checks
time out (``Target.Timeout``), clients and the app see their own timeouts.
"""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from typing import Any

import pytest
from world import World


def _rule(port: int, **source: str) -> list[dict[str, Any]]:
    peer = (
        {"UserIdGroupPairs": [{"GroupId": source["group"]}]}
        if "group" in source
        else {"IpRanges": [{"CidrIp": source["cidr"]}]}
    )
    return [{"IpProtocol": "tcp", "FromPort": port, "ToPort": port, **peer}]


def _deploy(world: World) -> None:
    world.push_image()
    world.register_task_definition()
    world.create_service(desired=2)
    world.wait_steady()
    world.wait_for(
        lambda: [t["TargetHealth"]["State"] for t in world.target_health()] == ["healthy"] * 2,
        what="two healthy targets",
    )


def _all_timed_out(world: World) -> list[dict[str, Any]] | None:
    health = [t["TargetHealth"] for t in world.target_health()]
    timed_out = [h for h in health if h["State"] == "unhealthy"]
    if len(timed_out) >= 2 and all(
        h.get("Reason") == "Target.Timeout" and h.get("Description") == "Request timed out"
        for h in timed_out
    ):
        return timed_out
    return None


def _healthy(world: World) -> bool:
    health = [t["TargetHealth"]["State"] for t in world.target_health()]
    return health.count("healthy") == 2 and world.service()["runningCount"] == 2


def test_removed_alb_to_ecs_rule_times_out_targets_and_restoring_it_heals(world: World) -> None:
    _deploy(world)
    ec2 = world.client("ec2")
    sgs = world.ids["sgs"]
    first = {t["taskArn"] for t in world.tasks()}
    ec2.revoke_security_group_ingress(
        GroupId=sgs["ecs"], IpPermissions=_rule(3000, group=sgs["alb"])
    )

    world.wait_for(lambda: _all_timed_out(world), what="both targets unhealthy: Target.Timeout")
    # The scheduler replaces tasks that fail the ALB's health checks.
    stopped = world.wait_for(
        lambda: [t for t in world.tasks("STOPPED") if t["taskArn"] in first],
        what="an unhealthy task stopped",
    )
    assert any("health checks" in t.get("stoppedReason", "") for t in stopped)

    ec2.authorize_security_group_ingress(
        GroupId=sgs["ecs"], IpPermissions=_rule(3000, group=sgs["alb"])
    )
    world.wait_for(lambda: _healthy(world), timeout=90, what="two healthy targets again")


def test_removed_ecs_to_rds_rule_makes_the_apps_connect_time_out(world: World) -> None:
    sgs = world.ids["sgs"]
    world.client("ec2").revoke_security_group_ingress(
        GroupId=sgs["rds"], IpPermissions=_rule(5432, group=sgs["ecs"])
    )
    world.push_image()
    world.register_task_definition()
    world.create_service(desired=1)
    logs = world.client("logs")

    def timeout_logged() -> list[str]:
        events = logs.filter_log_events(logGroupName=world.ids["log_group"])["events"]
        return [e["message"] for e in events if "Database not ready" in e["message"]]

    lines = world.wait_for(timeout_logged, timeout=60, what="the app's database wait to fail")
    assert "timeout" in lines[0].lower(), lines


def test_client_blocked_by_the_albs_group_gets_a_timeout_not_an_answer(
    world: World, alb_proxy: str
) -> None:
    sgs = world.ids["sgs"]
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": alb_proxy}))
    url = f"http://{world.ids['alb_dns']}/health"
    with pytest.raises(urllib.error.HTTPError) as answered:
        opener.open(url, timeout=10)  # no targets yet: the ALB itself answers 503
    assert answered.value.code == 503

    world.client("ec2").revoke_security_group_ingress(
        GroupId=sgs["alb"], IpPermissions=_rule(80, cidr="0.0.0.0/0")
    )
    with pytest.raises((TimeoutError, socket.timeout)):
        opener.open(url, timeout=1)


def test_nacl_without_reply_ports_breaks_health_checks_the_groups_allow(world: World) -> None:
    _deploy(world)
    ec2 = world.client("ec2")
    vpc = world.ids["vpc"]
    public = [world.ids["subnets"]["public_a"], world.ids["subnets"]["public_c"]]
    acl = ec2.create_network_acl(VpcId=vpc)["NetworkAcl"]["NetworkAclId"]
    for number, port in ((100, 80), (110, 443)):
        ec2.create_network_acl_entry(
            NetworkAclId=acl,
            RuleNumber=number,
            Protocol="6",
            RuleAction="allow",
            Egress=False,
            CidrBlock="0.0.0.0/0",
            PortRange={"From": port, "To": port},
        )
    ec2.create_network_acl_entry(
        NetworkAclId=acl,
        RuleNumber=100,
        Protocol="-1",
        RuleAction="allow",
        Egress=True,
        CidrBlock="0.0.0.0/0",
    )
    acls = ec2.describe_network_acls(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["NetworkAcls"]
    for entry in acls:
        for association in entry["Associations"]:
            if association["SubnetId"] in public:
                ec2.replace_network_acl_association(
                    AssociationId=association["NetworkAclAssociationId"], NetworkAclId=acl
                )

    # The security groups still allow the checks; the tasks' replies to the ALB's ports
    # are what the public ACL now drops.
    world.wait_for(lambda: _all_timed_out(world), what="both targets unhealthy: Target.Timeout")

    ec2.create_network_acl_entry(
        NetworkAclId=acl,
        RuleNumber=120,
        Protocol="6",
        RuleAction="allow",
        Egress=False,
        CidrBlock="0.0.0.0/0",
        PortRange={"From": 1024, "To": 65535},
    )
    world.wait_for(lambda: _healthy(world), timeout=90, what="two healthy targets again")
