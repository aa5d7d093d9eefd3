"""Chapter 8 on the sandbox: VPC endpoints and flow logs, then the NAT gateways go and a new
deployment still starts tasks that pull, read the secret and log."""

from __future__ import annotations

import ipaddress

import pytest

from handson import chapters, checks, ecs, faults, logs, network, progress, teardown
from handson.exceptions import ConfigurationError, NotFoundError


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
    rollout = ecs.wait_for_rollout(lab, progress=progress.silent, poll=0.1)
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
    assert not s3["private_dns"], "a gateway endpoint is a route, with no DNS name of its own"


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


def _task_interfaces(lab) -> set[tuple[str, str]]:
    """Every task's network interface, running or stopped: (address, eni id) pairs (an
    address of a stopped task's released interface may be another task's since)."""
    ecs_client = lab.client("ecs")
    cluster = ecs.cluster_arn(lab)
    arns = [
        arn
        for status in ("RUNNING", "STOPPED")
        for arn in ecs_client.list_tasks(cluster=cluster, desiredStatus=status)["taskArns"]
    ]
    found = set()
    for task in ecs_client.describe_tasks(cluster=cluster, tasks=arns)["tasks"]:
        details = {d["name"]: d["value"] for d in task["attachments"][0]["details"]}
        found.add((details["privateIPv4Address"], details["networkInterfaceId"]))
    return found


def _cidrs(lab, subnet_ids) -> list[ipaddress.IPv4Network]:
    subnets = lab.client("ec2").describe_subnets(SubnetIds=list(subnet_ids))["Subnets"]
    return [ipaddress.ip_network(s["CidrBlock"]) for s in subnets]


def _inside(ip: str, networks: list[ipaddress.IPv4Network]) -> bool:
    return any(ipaddress.ip_address(ip) in n for n in networks)


def test_flow_logs_show_the_alb_reaching_the_tasks(chapter8) -> None:
    """docs/sandbox.md, "VPC Flow Logs": each side with a network interface logs what it
    saw, a connection as two records (out and back), in the default format."""
    lab, pre = chapter8["lab"], chapter8["pre"]
    records = network.wait_for_flow_logs(lab, action="ACCEPT", port=3000, timeout=120)
    tasks = _task_interfaces(lab)
    public = _cidrs(lab, pre.network.public_subnet_ids)
    inbound = records[records["dstport"] == 3000]
    replies = records[records["srcport"] == 3000]
    assert not inbound.empty and not replies.empty
    for row in inbound.itertuples():  # seen by the task's interface, from an ALB node
        assert (row.dstaddr, row.interface_id) in tasks
        assert _inside(row.srcaddr, public)
    for row in replies.itertuples():
        assert (row.srcaddr, row.interface_id) in tasks
    assert set(records["protocol"]) == {"6"} and set(records["log_status"]) == {"OK"}
    assert (records["packets"] > 0).all() and (records["bytes"] > 0).all()
    assert (records["start"] <= records["end"]).all()
    streams = lab.client("logs").describe_log_streams(logGroupName=logs.flow_log_group_name(lab))[
        "logStreams"
    ]
    assert {f"{eni}-all" for eni in inbound["interface_id"]} <= {
        s["logStreamName"] for s in streams
    }


def test_flow_logs_show_the_tasks_reaching_the_endpoints_and_the_db(chapter8) -> None:
    lab, pre = chapter8["lab"], chapter8["pre"]
    posted = lab.http(
        "POST", f"{pre.alb.url}/api/users", {"name": "Flow", "email": "flow@example.com"}
    )
    assert posted.status == 201, posted.text
    https = network.wait_for_flow_logs(lab, action="ACCEPT", port=443, timeout=120)
    enis = lab.client("ec2").describe_network_interfaces(
        Filters=[{"Name": "vpc-id", "Values": [pre.network.vpc_id]}]
    )["NetworkInterfaces"]
    endpoint_enis = {
        e["PrivateIpAddress"]: e["NetworkInterfaceId"]
        for e in enis
        if e["Description"].startswith("VPC Endpoint Interface vpce-")
    }
    assert len(endpoint_enis) == 2 * len(network.INTERFACE_SERVICES)  # one per private subnet
    private = _cidrs(lab, pre.network.private_subnet_ids)
    assert all(_inside(ip, private) for ip in endpoint_enis)
    outbound = https[https["dstport"] == 443]
    tasks = _task_interfaces(lab)
    # S3 through the gateway endpoint: a route to S3's public addresses, no interface.
    to_s3 = outbound[~outbound["dstaddr"].isin(set(endpoint_enis))]
    assert not to_s3.empty and set(to_s3["interface_id"]) <= {eni for _, eni in tasks}
    assert not any(_inside(ip, private) for ip in to_s3["dstaddr"])
    to_endpoints = outbound[outbound["dstaddr"].isin(set(endpoint_enis))]
    by_endpoint = to_endpoints[to_endpoints["interface_id"].isin(set(endpoint_enis.values()))]
    by_task = to_endpoints[~to_endpoints["interface_id"].isin(set(endpoint_enis.values()))]
    assert not by_endpoint.empty and not by_task.empty  # both ends log the connection
    for row in by_endpoint.itertuples():
        assert row.interface_id == endpoint_enis[row.dstaddr]
        assert row.srcaddr in {ip for ip, _ in tasks}
    for row in by_task.itertuples():
        assert (row.srcaddr, row.interface_id) in tasks
    db = network.wait_for_flow_logs(lab, action="ACCEPT", port=5432, timeout=120)
    to_db = db[db["dstport"] == 5432]
    assert not to_db.empty and set(to_db["srcaddr"]) <= {ip for ip, _ in tasks}
    assert all(_inside(ip, private) for ip in to_db["dstaddr"])  # the DB subnet group


def test_a_removed_rule_shows_as_reject_records_then_heals(chapter8) -> None:
    """Without the ECS group's rule for the ALB's, the health checks are dropped at the
    tasks' interfaces: REJECT records there (docs/sandbox.md, "VPC Flow Logs")."""
    lab = chapter8["lab"]
    faults.apply(lab, "alb-rule")
    try:
        rejected = network.wait_for_flow_logs(lab, action="REJECT", port=3000, timeout=120)
    finally:
        faults.repair(lab)
    tasks = _task_interfaces(lab)
    assert (rejected["dstport"] == 3000).all()
    for row in rejected.itertuples():
        assert (row.dstaddr, row.interface_id) in tasks
    assert (rejected["packets"] > 0).all()
    ecs.restart_service(lab)
    service = ecs.wait_for_rollout(lab, progress=progress.silent, poll=0.1)
    assert service[["desired", "running"]].values.tolist() == [[2, 2]]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"action": "accept"}, "ACCEPT or REJECT"),
        ({"port": 70000}, "from 0 to 65535"),
        ({"limit": 0}, "at least 1"),
    ],
)
def test_the_flow_log_view_refuses_a_bad_filter(chapter8, kwargs, message) -> None:
    with pytest.raises(ConfigurationError, match=message):
        network.show_flow_logs(chapter8["lab"], **kwargs)


def test_interface_endpoints_need_their_security_group_first(lab) -> None:
    network.ensure_network(lab, enable_nat_gateway=False)
    with pytest.raises(NotFoundError, match="vpc-endpoints-sg"):
        network.ensure_interface_endpoints(lab)


def test_teardown_removes_chapter_8_and_leaves_nothing(chapter8) -> None:
    lab = chapter8["lab"]
    teardown.teardown(lab)
    assert teardown.leftovers(lab).empty
