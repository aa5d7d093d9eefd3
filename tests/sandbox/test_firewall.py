"""Security groups and network ACLs on the sandbox's data paths, with plain boto3.

Security groups are stateful (a reply needs no rule); network ACLs are stateless (the
reply needs an entry of its own). A dropped connection is never answered: health checks
time out (``Target.Timeout``), clients and the app see their own timeouts, and a task that
can't reach ECR or Secrets Manager over HTTPS stops with ``dial tcp <ip>:443: i/o timeout``.
"""

from __future__ import annotations

import re
import socket
import urllib.error
import urllib.request
from typing import Any

import pytest
from world import World

ALL_TRAFFIC = [{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]


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


def _use_acl(world: World, acl: str, subnets: list[str]) -> None:
    """Associate ``subnets`` with the network ACL ``acl``."""
    ec2 = world.client("ec2")
    vpc = world.ids["vpc"]
    acls = ec2.describe_network_acls(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["NetworkAcls"]
    for entry in acls:
        for association in entry["Associations"]:
            if association["SubnetId"] in subnets:
                ec2.replace_network_acl_association(
                    AssociationId=association["NetworkAclAssociationId"], NetworkAclId=acl
                )


def _start_times_out(world: World, address: str = r"[0-9.]+") -> None:
    """Launch the service's first deployment and wait for it to fail: its tasks can't
    reach ECR at ``address`` over HTTPS, as AWS reports it (docs/sandbox.md, "Security groups
    and network ACLs")."""
    world.push_image()
    world.register_task_definition()
    world.create_service(desired=1)
    task = world.wait_for(
        lambda: (t := world.tasks("STOPPED")) and t[0].get("stopCode") and t[0],
        what="a task that failed to start",
    )
    assert task["stopCode"] == "TaskFailedToStart"
    reason = task["stoppedReason"]
    assert reason.startswith(
        "ResourceInitializationError: unable to pull secrets or registry auth: "
    ), reason
    assert re.search(rf"dial tcp {address}:443: i/o timeout$", reason), reason
    world.wait_for(
        lambda: any(
            m.endswith("deployment failed: tasks failed to start.") for m in world.messages()
        ),
        what="the failed deployment's event",
    )


def _start_again(world: World) -> None:
    """Force a new deployment and wait until one of its tasks is running."""
    world.client("ecs").update_service(
        cluster=world.ids["cluster"], service=world.ids["service"], forceNewDeployment=True
    )
    world.wait_for(
        lambda: any(t["lastStatus"] == "RUNNING" for t in world.tasks()), what="a running task"
    )


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
    _assert_rds_rule_removal_times_out(world)


def _assert_rds_rule_removal_times_out(world: World) -> None:
    """Without the RDS group's rule for the ECS group, the app's database connect times out."""
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
    _use_acl(world, acl, public)

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


def test_tasks_without_https_egress_cannot_reach_aws(world: World) -> None:
    """The tasks' group needs egress to 443 for ECR, Secrets Manager and CloudWatch Logs
    (AWS's default all-traffic egress rule allows it)."""
    ec2 = world.client("ec2")
    ecs_sg = world.ids["sgs"]["ecs"]
    ec2.revoke_security_group_egress(GroupId=ecs_sg, IpPermissions=ALL_TRAFFIC)
    _start_times_out(world)

    # 443 is enough to start (the app's own connection to RDS on 5432 stays blocked).
    ec2.authorize_security_group_egress(GroupId=ecs_sg, IpPermissions=_rule(443, cidr="0.0.0.0/0"))
    _start_again(world)


def test_private_nacl_denying_https_out_stops_task_start(world: World) -> None:
    ec2 = world.client("ec2")
    subnets = world.ids["subnets"]
    acl = ec2.create_network_acl(VpcId=world.ids["vpc"])["NetworkAcl"]["NetworkAclId"]
    for number, egress, action, ports in (
        (90, True, "deny", {"From": 443, "To": 443}),
        (100, True, "allow", None),
        (100, False, "allow", None),
    ):
        ec2.create_network_acl_entry(
            NetworkAclId=acl,
            RuleNumber=number,
            Protocol="6" if ports else "-1",
            RuleAction=action,
            Egress=egress,
            CidrBlock="0.0.0.0/0",
            **({"PortRange": ports} if ports else {}),
        )
    _use_acl(world, acl, [subnets["private_a"], subnets["private_c"]])
    _start_times_out(world)

    ec2.delete_network_acl_entry(NetworkAclId=acl, RuleNumber=90, Egress=True)
    _start_again(world)


def test_interface_endpoints_need_their_group_to_admit_the_tasks(world: World) -> None:
    """Chapter 8: with private DNS, ECR, Secrets Manager and CloudWatch Logs resolve to the
    interface endpoints' addresses in the VPC, so the endpoints' group must allow 443
    from the tasks (the NAT gateway is still there but no longer on the way)."""
    ec2 = world.client("ec2")
    vpc, subnets, sgs = world.ids["vpc"], world.ids["subnets"], world.ids["sgs"]
    private = [subnets["private_a"], subnets["private_c"]]
    endpoints_sg = ec2.create_security_group(
        GroupName=f"{world.name}-vpc-endpoints-sg", Description="endpoints", VpcId=vpc
    )["GroupId"]
    for service in ("ecr.api", "ecr.dkr", "logs", "secretsmanager"):
        ec2.create_vpc_endpoint(
            VpcId=vpc,
            ServiceName=f"com.amazonaws.ap-northeast-1.{service}",
            VpcEndpointType="Interface",
            SubnetIds=private,
            SecurityGroupIds=[endpoints_sg],
            PrivateDnsEnabled=True,
        )
    _start_times_out(world, address=r"10\.0\.1[12]\.\d+")

    ec2.authorize_security_group_ingress(
        GroupId=endpoints_sg, IpPermissions=_rule(443, group=sgs["ecs"])
    )
    _start_again(world)
