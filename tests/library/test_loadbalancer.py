"""handson.loadbalancer against the sandbox: the chapter 3 ALB, its views and its teardown."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest

from handson import loadbalancer
from handson.exceptions import ConfigurationError, NotFoundError


@dataclass(frozen=True)
class Network:
    vpc_id: str
    subnet_ids: list[str]
    security_group_id: str


@pytest.fixture
def network(lab) -> Network:
    """Chapter 1-2's pieces the ALB needs, built with plain EC2 calls: a 10.0.0.0/16 VPC with
    an internet gateway, two public subnets (1a, 1c) and the ALB security group."""
    ec2 = lab.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    route_table = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=route_table, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    subnets = []
    for cidr, az in (("10.0.1.0/24", "ap-northeast-1a"), ("10.0.2.0/24", "ap-northeast-1c")):
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, AvailabilityZone=az)["Subnet"]
        ec2.associate_route_table(RouteTableId=route_table, SubnetId=subnet["SubnetId"])
        subnets.append(subnet["SubnetId"])
    group = ec2.create_security_group(GroupName=lab.name("alb-sg"), Description="ALB", VpcId=vpc)[
        "GroupId"
    ]
    ec2.authorize_security_group_ingress(
        GroupId=group,
        IpPermissions=[
            {
                "IpProtocol": "tcp",
                "FromPort": port,
                "ToPort": port,
                "IpRanges": [{"CidrIp": "0.0.0.0/0"}],
            }
            for port in (80, 443)
        ],
    )
    return Network(vpc, subnets, group)


@pytest.fixture
def alb(lab, network) -> loadbalancer.Alb:
    return loadbalancer.ensure_alb(
        lab,
        vpc_id=network.vpc_id,
        subnet_ids=network.subnet_ids,
        security_group_id=network.security_group_id,
    )


def tags_of(lab, arn: str) -> dict[str, str]:
    described = lab.client("elbv2").describe_tags(ResourceArns=[arn])["TagDescriptions"]
    return {t["Key"]: t["Value"] for t in described[0]["Tags"]}


def expected_tags(lab, name: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in lab.tag_list(name)}


# -------------------------------------------------------------------- creation


def test_load_balancer_is_internet_facing_in_the_public_subnets(lab, network, alb):
    lb = lab.client("elbv2").describe_load_balancers(Names=[lab.name("alb")])["LoadBalancers"][0]
    assert lb["LoadBalancerArn"] == alb.alb_arn
    assert (lb["Scheme"], lb["Type"], lb["State"]["Code"]) == (
        "internet-facing",
        "application",
        "active",
    )
    assert sorted(z["SubnetId"] for z in lb["AvailabilityZones"]) == sorted(network.subnet_ids)
    assert lb["SecurityGroups"] == [network.security_group_id]
    assert (alb.alb_dns_name, alb.alb_zone_id) == (lb["DNSName"], lb["CanonicalHostedZoneId"])
    assert alb.url == f"http://{lb['DNSName']}"
    assert tags_of(lab, alb.alb_arn) == expected_tags(lab, lab.name("alb"))


def test_target_group_has_the_series_health_check(lab, network, alb):
    elb = lab.client("elbv2")
    group = elb.describe_target_groups(Names=[lab.name("ecs-tg")])["TargetGroups"][0]
    assert group["TargetGroupArn"] == alb.target_group_arn
    assert {k: group[k] for k in ("Protocol", "Port", "TargetType", "VpcId")} == {
        "Protocol": "HTTP",
        "Port": 3000,
        "TargetType": "ip",
        "VpcId": network.vpc_id,
    }
    assert {k: group[k] for k in loadbalancer.HEALTH_CHECK} == {
        "HealthCheckProtocol": "HTTP",
        "HealthCheckPort": "traffic-port",
        "HealthCheckEnabled": True,
        "HealthCheckPath": "/health",
        "HealthCheckIntervalSeconds": 30,
        "HealthCheckTimeoutSeconds": 5,
        "HealthyThresholdCount": 2,
        "UnhealthyThresholdCount": 2,
        "Matcher": {"HttpCode": "200"},
    }
    attributes = elb.describe_target_group_attributes(TargetGroupArn=alb.target_group_arn)
    values = {a["Key"]: a["Value"] for a in attributes["Attributes"]}
    assert values["deregistration_delay.timeout_seconds"] == "60"
    assert tags_of(lab, alb.target_group_arn) == expected_tags(lab, lab.name("ecs-tg"))


def test_listener_forwards_http_80_to_the_target_group(lab, alb):
    listeners = lab.client("elbv2").describe_listeners(LoadBalancerArn=alb.alb_arn)["Listeners"]
    assert [(li["ListenerArn"], li["Protocol"], li["Port"]) for li in listeners] == [
        (alb.listener_arn, "HTTP", 80)
    ]
    [action] = listeners[0]["DefaultActions"]
    assert (action["Type"], action["TargetGroupArn"]) == ("forward", alb.target_group_arn)
    assert tags_of(lab, alb.listener_arn) == expected_tags(lab, lab.name("alb-http"))


def test_second_run_makes_no_changes(lab, make_lab, network, alb):
    again = make_lab(student=lab.student)
    same = loadbalancer.ensure_alb(
        again,
        vpc_id=network.vpc_id,
        subnet_ids=network.subnet_ids,
        security_group_id=network.security_group_id,
    )
    assert same == alb
    assert again.log.mutating() == []
    assert loadbalancer.get_alb(again) == alb
    assert again.log.mutating() == []


def test_health_check_drift_is_repaired_then_left_alone(lab, make_lab, network):
    elb = lab.client("elbv2")
    arn = elb.create_target_group(
        Name=lab.name("ecs-tg"),
        Protocol="HTTP",
        Port=3000,
        VpcId=network.vpc_id,
        TargetType="ip",
        HealthCheckPath="/",
        HealthCheckIntervalSeconds=10,
        HealthyThresholdCount=5,
        Matcher={"HttpCode": "200-299"},
    )["TargetGroups"][0]["TargetGroupArn"]
    before = len(lab.log.calls)

    assert loadbalancer.ensure_target_group(lab, vpc_id=network.vpc_id) == arn

    changes = [c.operation for c in lab.log.calls[before:] if c.mutating]
    assert changes == ["ModifyTargetGroup", "ModifyTargetGroupAttributes"]
    group = elb.describe_target_groups(TargetGroupArns=[arn])["TargetGroups"][0]
    assert {k: group[k] for k in loadbalancer.HEALTH_CHECK} == loadbalancer.HEALTH_CHECK
    again = make_lab(student=lab.student)
    loadbalancer.ensure_target_group(again, vpc_id=network.vpc_id)
    assert again.log.mutating() == []


def test_target_group_in_another_vpc_is_reported(lab, network):
    other_vpc = lab.client("ec2").create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
    loadbalancer.ensure_target_group(lab, vpc_id=other_vpc)
    with pytest.raises(ConfigurationError, match="delete_alb"):
        loadbalancer.ensure_target_group(lab, vpc_id=network.vpc_id)


def test_one_subnet_is_refused_before_any_call(lab, network):
    before = len(lab.log.calls)
    with pytest.raises(ConfigurationError, match="two Availability Zones"):
        loadbalancer.ensure_load_balancer(
            lab, subnet_ids=network.subnet_ids[:1], security_group_id=network.security_group_id
        )
    assert lab.log.calls[before:] == []


# ---------------------------------------------------------------- looking at it


def test_get_alb_before_notebook_00_says_what_to_run(lab):
    with pytest.raises(NotFoundError, match="run notebook 00 first") as caught:
        loadbalancer.get_alb(lab)
    assert caught.value.code == "LoadBalancerNotFound"


TARGET_HEALTH_COLUMNS = ["target", "port", "availability_zone", "state", "reason", "description"]


def test_target_health_of_an_empty_group_is_an_empty_table(lab, alb):
    table = loadbalancer.show_target_health(lab)
    assert table.empty
    assert list(table.columns) == TARGET_HEALTH_COLUMNS


def test_target_health_lists_a_registered_target(lab, alb):
    lab.client("elbv2").register_targets(
        TargetGroupArn=alb.target_group_arn, Targets=[{"Id": "10.0.1.50", "Port": 3000}]
    )
    # AWS lists a target as soon as it is registered; the sandbox picks registrations up on
    # its next reconcile tick (every 50 ms), so look again briefly.
    for _ in range(100):
        table = loadbalancer.show_target_health(lab)
        if not table.empty:
            break
        time.sleep(0.05)
    assert list(table.columns) == TARGET_HEALTH_COLUMNS
    [row] = table.to_dict("records")
    assert (row["target"], row["port"]) == ("10.0.1.50", 3000)
    assert row["state"] in {"initial", "unhealthy", "healthy", "unavailable"}


def test_target_health_lists_targets_in_zone_then_address_order(lab, alb):
    # DescribeTargetHealth has no set order; the view's rows must not change between runs.
    lab.client("elbv2").register_targets(
        TargetGroupArn=alb.target_group_arn,
        Targets=[{"Id": "10.0.1.61", "Port": 3000}, {"Id": "10.0.1.52", "Port": 3000}],
    )
    for _ in range(100):
        table = loadbalancer.show_target_health(lab)
        if len(table) == 2:
            break
        time.sleep(0.05)
    keys = list(zip(table["availability_zone"], table["target"], strict=True))
    assert len(keys) == 2 and keys == sorted(keys)


def test_alb_without_targets_answers_503(lab, alb):
    response = loadbalancer.call_alb(lab, "/health")
    assert response.status == 503
    assert "503 Service Temporarily Unavailable" in response.text
    assert response.url == f"{alb.url}/health"


def test_alb_responses_table_has_a_row_per_call(lab, alb):
    table = loadbalancer.show_alb_responses(
        lab,
        [
            ("GET", "/"),
            ("GET", "/health"),
            ("post", "/api/users", {"name": "Taro", "email": "taro@example.com"}),
        ],
    )
    assert list(table.columns) == ["method", "path", "status", "body"]
    assert table[["method", "path", "status"]].values.tolist() == [
        ["GET", "/", 503],
        ["GET", "/health", 503],
        ["POST", "/api/users", 503],
    ]


def test_path_without_slash_is_refused(lab):
    with pytest.raises(ConfigurationError, match="start the path with '/'"):
        loadbalancer.call_alb(lab, "health")
    assert lab.log.calls == []


# ------------------------------------------------------------------- teardown


def test_delete_leaves_nothing_and_can_run_again(lab, make_lab, alb):
    elb = lab.client("elbv2")
    elb.register_targets(TargetGroupArn=alb.target_group_arn, Targets=[{"Id": "10.0.1.50"}])

    loadbalancer.delete_alb(lab)

    assert elb.describe_load_balancers()["LoadBalancers"] == []
    assert elb.describe_target_groups()["TargetGroups"] == []
    with pytest.raises(NotFoundError):
        loadbalancer.get_alb(lab)
    again = make_lab(student=lab.student)
    loadbalancer.delete_alb(again)
    assert again.log.mutating() == []
