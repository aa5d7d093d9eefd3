"""Chapter 8 on the sandbox: VPC endpoints and flow logs, then the NAT gateways go and a new
deployment still starts tasks that pull, read the secret and log."""

from __future__ import annotations

import pytest

from handson import chapters, checks, ecs, logs, network, teardown
from handson.exceptions import NotFoundError


@pytest.fixture(scope="module")
def chapter8(sandbox_server):
    """Chapters 1-7 for one student, then chapter 8's steps; what they returned."""
    from handson.connection import connect

    lab = connect("sandbox", student="endpoints-student")
    pre = chapters.build_prerequisites(lab)
    chapters.deploy_chapter7(lab, pre)
    before = {t for t in ecs.show_tasks(lab)["task"]}
    built = {
        "group": network.ensure_endpoints_security_group(lab),
        "s3": network.ensure_s3_gateway_endpoint(lab),
        "interfaces": network.ensure_interface_endpoints(lab),
        "flow_log": network.ensure_flow_logs(lab),
    }
    network.ensure_nat_gateways(lab, enabled=False)
    ecs.restart_service(lab)
    rollout = ecs.wait_for_rollout(lab, progress=lambda service: None, poll=0.1)
    return {"lab": lab, "pre": pre, "before": before, "rollout": rollout, **built}


def test_the_endpoints_are_available_with_private_dns(chapter8) -> None:
    table = network.show_endpoints(chapter8["lab"])
    assert sorted(table["service"]) == ["ecr.api", "ecr.dkr", "logs", "s3", "secretsmanager"]
    assert set(table["state"]) == {"available"}
    interfaces = table[table["type"] == "Interface"]
    assert interfaces["private_dns"].all()
    pre = chapter8["pre"]
    assert set(interfaces["in"]) == {", ".join(pre.network.private_subnet_ids)}
    s3 = table[table["service"] == "s3"].iloc[0]
    assert s3["type"] == "Gateway" and len(s3["in"].split(", ")) == 2  # the private tables


def test_the_endpoints_group_takes_https_from_the_vpc_only(chapter8) -> None:
    lab = chapter8["lab"]
    (group,) = lab.client("ec2").describe_security_groups(GroupIds=[chapter8["group"]])[
        "SecurityGroups"
    ]
    rules = [
        (p["IpProtocol"], p["FromPort"], p["ToPort"], r["CidrIp"])
        for p in group["IpPermissions"]
        for r in p.get("IpRanges", [])
    ]
    assert rules == [("tcp", 443, 443, chapter8["pre"].network.vpc_cidr_block)]


def test_without_nat_a_new_deployment_reaches_steady_state(chapter8) -> None:
    lab = chapter8["lab"]
    assert network.get_network(lab).nat_gateway_ids == ()
    assert chapter8["rollout"]["rollout_state"].tolist() == ["COMPLETED"]
    tasks = set(ecs.show_tasks(lab)["task"])
    assert len(tasks) == 2 and not tasks & chapter8["before"], "new tasks replaced the old"


def test_the_new_tasks_log_through_the_endpoint(chapter8) -> None:
    lab = chapter8["lab"]
    streams = set(logs.show_log_streams(lab, limit=10)["stream"])
    for task in ecs.show_tasks(lab)["task"]:
        assert any(stream.endswith(task) for stream in streams), task


def test_the_flow_log_writes_to_its_group_through_its_role(chapter8) -> None:
    lab = chapter8["lab"]
    (flow_log,) = lab.client("ec2").describe_flow_logs(FlowLogIds=[chapter8["flow_log"]])[
        "FlowLogs"
    ]
    assert flow_log["TrafficType"] == "ALL" and flow_log["MaxAggregationInterval"] == 60
    assert flow_log["LogGroupName"] == logs.flow_log_group_name(lab) == "/aws/vpc/my-project-dev"
    assert flow_log["DeliverLogsPermissionArn"].endswith(":role/my-project-dev-vpc-flow-logs-role")
    assert flow_log["ResourceId"] == chapter8["pre"].network.vpc_id


def test_running_chapter_8_again_changes_nothing(chapter8) -> None:
    lab = chapter8["lab"]
    before = len(lab.log.mutating())
    assert network.ensure_endpoints_security_group(lab) == chapter8["group"]
    assert network.ensure_s3_gateway_endpoint(lab) == chapter8["s3"]
    assert network.ensure_interface_endpoints(lab) == chapter8["interfaces"]
    assert network.ensure_flow_logs(lab) == chapter8["flow_log"]
    assert len(lab.log.mutating()) == before


def test_the_chapter_check_passes_and_the_cost_compares_both_ways_out(chapter8) -> None:
    lab = chapter8["lab"]
    assert checks.chapter(lab, "08").passed
    cost = network.endpoints_cost(lab).set_index("way out")
    nat = cost.loc["NAT gateways (chapter 2)"]
    endpoints = cost.loc["interface endpoints (chapter 8)"]
    # Tokyo: 2 x (0.062 + 0.005) for NAT; 4 endpoints x 2 zones x 0.014.
    assert (nat["usd_per_hour"], endpoints["usd_per_hour"]) == (0.134, 0.112)
    assert cost.loc["S3 gateway endpoint (chapter 8)", "usd_per_hour"] == 0


def test_interface_endpoints_need_their_security_group_first(lab) -> None:
    network.ensure_network(lab, enable_nat_gateway=False)
    with pytest.raises(NotFoundError, match="vpc-endpoints-sg"):
        network.ensure_interface_endpoints(lab)


def test_teardown_removes_chapter_8_and_leaves_nothing(chapter8) -> None:
    lab = chapter8["lab"]
    teardown.teardown(lab)
    assert teardown.leftovers(lab).empty
