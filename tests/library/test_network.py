"""Tests for handson.network (chapters 1-2): the VPC, its subnets, routes, NACLs, security
groups and NAT gateways, checked with EC2 describe calls against the sandbox."""

import pytest

from handson import network
from handson.connection import connect
from handson.exceptions import NotFoundError

ANYWHERE = "0.0.0.0/0"
LIVE_NAT_STATES = ["pending", "available", "deleting", "failed"]


def mutations_during(lab, action):
    """Run ``action`` and return the mutating API calls it made."""
    before = len(lab.log.calls)
    result = action()
    return result, [c.operation for c in lab.log.calls[before:] if c.mutating]


def tags_of(resource):
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}


def expected_tags(lab, name, **extra):
    return {**lab.tags, "Name": name, **extra}


def owned(lab, *names):
    return [*lab.tag_filters(), {"Name": "tag:Name", "Values": list(names)}]


def by_name(resources):
    return {tags_of(r)["Name"]: r for r in resources}


def default_route(table):
    return next(r for r in table["Routes"] if r.get("DestinationCidrBlock") == ANYWHERE)


def ingress_rules(group):
    rules = set()
    for p in group["IpPermissions"]:
        head = (p["IpProtocol"], p.get("FromPort"), p.get("ToPort"))
        rules |= {(*head, r["CidrIp"]) for r in p["IpRanges"]}
        rules |= {(*head, g["GroupId"]) for g in p["UserIdGroupPairs"]}
    return rules


def everything_tagged(lab):
    """Every EC2 network resource tagged for the student (NAT gateways not yet deleted)."""
    ec2 = lab.client("ec2")
    filters = lab.tag_filters()
    return {
        "vpcs": ec2.describe_vpcs(Filters=filters)["Vpcs"],
        "subnets": ec2.describe_subnets(Filters=filters)["Subnets"],
        "internet gateways": ec2.describe_internet_gateways(Filters=filters)["InternetGateways"],
        "route tables": ec2.describe_route_tables(Filters=filters)["RouteTables"],
        "network acls": ec2.describe_network_acls(Filters=filters)["NetworkAcls"],
        "security groups": ec2.describe_security_groups(Filters=filters)["SecurityGroups"],
        "nat gateways": [
            n
            for n in ec2.describe_nat_gateways(Filter=filters)["NatGateways"]
            if lab.owns(n.get("Tags")) and n["State"] in LIVE_NAT_STATES
        ],
        "addresses": ec2.describe_addresses(Filters=filters)["Addresses"],
    }


@pytest.fixture
def built(lab):
    """The student's network with NAT gateways on, as chapter 7 needs it."""
    return lab, network.ensure_network(lab, enable_nat_gateway=True)


# ------------------------------------------------------------------- settings


def test_vpc_has_the_series_cidr_dns_settings_and_tags(built):
    lab, net = built
    ec2 = lab.client("ec2")
    vpc = ec2.describe_vpcs(VpcIds=[net.vpc_id])["Vpcs"][0]
    assert vpc["CidrBlock"] == net.vpc_cidr_block == "10.0.0.0/16"
    assert tags_of(vpc) == expected_tags(lab, "my-project-dev-vpc")
    support = ec2.describe_vpc_attribute(VpcId=net.vpc_id, Attribute="enableDnsSupport")
    hostnames = ec2.describe_vpc_attribute(VpcId=net.vpc_id, Attribute="enableDnsHostnames")
    assert support["EnableDnsSupport"]["Value"] is True
    assert hostnames["EnableDnsHostnames"]["Value"] is True
    # DNS support is on in a new VPC: only hostnames needed a change.
    modified = [c.params for c in lab.log.calls if c.operation == "ModifyVpcAttribute"]
    assert modified == [{"VpcId": net.vpc_id, "EnableDnsHostnames": {"Value": True}}]


def test_internet_gateway_is_attached_and_tagged(built):
    lab, net = built
    igw = lab.client("ec2").describe_internet_gateways(
        InternetGatewayIds=[net.internet_gateway_id]
    )["InternetGateways"][0]
    assert [a["VpcId"] for a in igw["Attachments"]] == [net.vpc_id]
    assert tags_of(igw) == expected_tags(lab, "my-project-dev-igw")


def test_subnets_have_the_series_cidrs_zones_and_tags(built):
    lab, net = built
    assert net.availability_zones == ("ap-northeast-1a", "ap-northeast-1c")
    subnets = {
        s["SubnetId"]: s
        for s in lab.client("ec2").describe_subnets(
            SubnetIds=[*net.public_subnet_ids, *net.private_subnet_ids]
        )["Subnets"]
    }
    expected = [
        (net.public_subnet_ids[0], "10.0.1.0/24", "ap-northeast-1a", "public-subnet-a", "Public"),
        (net.public_subnet_ids[1], "10.0.2.0/24", "ap-northeast-1c", "public-subnet-c", "Public"),
        (
            net.private_subnet_ids[0],
            "10.0.11.0/24",
            "ap-northeast-1a",
            "private-subnet-a",
            "Private",
        ),
        (
            net.private_subnet_ids[1],
            "10.0.12.0/24",
            "ap-northeast-1c",
            "private-subnet-c",
            "Private",
        ),
    ]
    for subnet_id, cidr, zone, suffix, kind in expected:
        subnet = subnets[subnet_id]
        assert subnet["VpcId"] == net.vpc_id
        assert (subnet["CidrBlock"], subnet["AvailabilityZone"]) == (cidr, zone)
        assert subnet["MapPublicIpOnLaunch"] is (kind == "Public")
        assert tags_of(subnet) == expected_tags(lab, f"my-project-dev-{suffix}", Type=kind)


def test_route_tables_send_public_traffic_to_the_igw_and_private_to_each_zones_nat(built):
    lab, net = built
    tables = by_name(
        lab.client("ec2").describe_route_tables(
            Filters=[{"Name": "vpc-id", "Values": [net.vpc_id]}, *lab.tag_filters()]
        )["RouteTables"]
    )
    assert set(tables) == {
        "my-project-dev-public-rt",
        "my-project-dev-private-rt-a",
        "my-project-dev-private-rt-c",
    }
    for name, table in tables.items():
        assert tags_of(table) == expected_tags(lab, name)
    public = tables["my-project-dev-public-rt"]
    assert default_route(public)["GatewayId"] == net.internet_gateway_id
    assert sorted(a["SubnetId"] for a in public["Associations"]) == sorted(net.public_subnet_ids)
    for suffix, subnet_id, nat_id in zip(
        "ac", net.private_subnet_ids, net.nat_gateway_ids, strict=True
    ):
        private = tables[f"my-project-dev-private-rt-{suffix}"]
        assert [a["SubnetId"] for a in private["Associations"]] == [subnet_id]
        assert default_route(private)["NatGatewayId"] == nat_id


def test_network_acls_have_the_series_rules_and_subnets(built):
    lab, net = built
    acls = by_name(
        lab.client("ec2").describe_network_acls(
            Filters=[{"Name": "vpc-id", "Values": [net.vpc_id]}, *lab.tag_filters()]
        )["NetworkAcls"]
    )
    assert set(acls) == {"my-project-dev-public-nacl", "my-project-dev-private-nacl"}

    def allowed(acl):
        return {
            (
                e["RuleNumber"],
                e["Egress"],
                e["Protocol"],
                e["CidrBlock"],
                (e["PortRange"]["From"], e["PortRange"]["To"]) if "PortRange" in e else None,
            )
            for e in acl["Entries"]
            if e["RuleAction"] == "allow"
        }

    public, private = acls["my-project-dev-public-nacl"], acls["my-project-dev-private-nacl"]
    assert allowed(public) == {
        (100, False, "6", ANYWHERE, (80, 80)),
        (110, False, "6", ANYWHERE, (443, 443)),
        (120, False, "6", ANYWHERE, (1024, 65535)),
        (100, True, "-1", ANYWHERE, None),
    }
    assert allowed(private) == {
        (100, False, "-1", "10.0.0.0/16", None),
        (110, False, "6", ANYWHERE, (1024, 65535)),
        (100, True, "-1", ANYWHERE, None),
    }
    assert sorted(a["SubnetId"] for a in public["Associations"]) == sorted(net.public_subnet_ids)
    assert sorted(a["SubnetId"] for a in private["Associations"]) == sorted(net.private_subnet_ids)
    for name, acl in acls.items():
        assert tags_of(acl) == expected_tags(lab, name)


def test_security_groups_chain_alb_to_ecs_to_rds(built):
    lab, net = built
    groups = {
        g["GroupId"]: g
        for g in lab.client("ec2").describe_security_groups(
            GroupIds=[
                net.alb_security_group_id,
                net.ecs_security_group_id,
                net.rds_security_group_id,
            ]
        )["SecurityGroups"]
    }
    alb, ecs, rds = (
        groups[net.alb_security_group_id],
        groups[net.ecs_security_group_id],
        groups[net.rds_security_group_id],
    )
    assert ingress_rules(alb) == {("tcp", 80, 80, ANYWHERE), ("tcp", 443, 443, ANYWHERE)}
    assert ingress_rules(ecs) == {
        ("tcp", 80, 80, net.alb_security_group_id),
        ("tcp", 3000, 3000, net.alb_security_group_id),
    }
    assert ingress_rules(rds) == {("tcp", 5432, 5432, net.ecs_security_group_id)}
    for suffix, group in (("alb-sg", alb), ("ecs-sg", ecs), ("rds-sg", rds)):
        name = f"my-project-dev-{suffix}"
        assert group["GroupName"] == name
        assert group["VpcId"] == net.vpc_id
        assert tags_of(group) == expected_tags(lab, name)
        assert [
            (p["IpProtocol"], p["IpRanges"][0]["CidrIp"]) for p in group["IpPermissionsEgress"]
        ] == [("-1", ANYWHERE)]


def test_nat_gateways_one_per_zone_in_the_public_subnets_with_tagged_eips(built):
    lab, net = built
    ec2 = lab.client("ec2")
    nats = {
        n["NatGatewayId"]: n
        for n in ec2.describe_nat_gateways(NatGatewayIds=list(net.nat_gateway_ids))["NatGateways"]
    }
    addresses = by_name(
        ec2.describe_addresses(
            Filters=owned(lab, "my-project-dev-nat-eip-a", "my-project-dev-nat-eip-c")
        )["Addresses"]
    )
    assert len(net.nat_gateway_ids) == 2
    for suffix, nat_id, subnet_id, public_ip in zip(
        "ac", net.nat_gateway_ids, net.public_subnet_ids, net.nat_public_ips, strict=True
    ):
        nat = nats[nat_id]
        assert nat["State"] == "available"
        assert nat["SubnetId"] == subnet_id
        assert tags_of(nat) == expected_tags(lab, f"my-project-dev-nat-{suffix}")
        eip = addresses[f"my-project-dev-nat-eip-{suffix}"]
        assert tags_of(eip) == expected_tags(lab, f"my-project-dev-nat-eip-{suffix}")
        assert nat["NatGatewayAddresses"][0]["AllocationId"] == eip["AllocationId"]
        assert eip["PublicIp"] == public_ip


def test_get_network_returns_the_built_outputs(built):
    lab, net = built
    assert network.get_network(lab) == net


def test_steps_record_their_cli_commands(built):
    lab, _ = built
    assert any(c.startswith("aws ec2 create-vpc") for c in lab.cli_commands("Create the VPC"))
    assert any(
        c.startswith("aws ec2 create-nat-gateway")
        for c in lab.cli_commands("Create or remove the NAT gateways")
    )


# --------------------------------------------------------------- idempotency


def test_second_run_makes_no_changes(built):
    lab, net = built
    again, changes = mutations_during(
        lab, lambda: network.ensure_network(lab, enable_nat_gateway=True)
    )
    assert changes == []
    assert again == net


def test_drift_is_repaired_and_only_drift(built):
    lab, net = built
    ec2 = lab.client("ec2")
    ec2.modify_vpc_attribute(VpcId=net.vpc_id, EnableDnsHostnames={"Value": False})
    ec2.revoke_security_group_ingress(
        GroupId=net.alb_security_group_id,
        IpPermissions=[
            {
                "IpProtocol": "tcp",
                "FromPort": 443,
                "ToPort": 443,
                "IpRanges": [{"CidrIp": ANYWHERE}],
            }
        ],
    )
    public_acl = by_name(
        ec2.describe_network_acls(Filters=owned(lab, "my-project-dev-public-nacl"))["NetworkAcls"]
    )["my-project-dev-public-nacl"]
    ec2.replace_network_acl_entry(
        NetworkAclId=public_acl["NetworkAclId"],
        RuleNumber=110,
        Protocol="6",
        RuleAction="allow",
        Egress=False,
        CidrBlock=ANYWHERE,
        PortRange={"From": 8443, "To": 8443},
    )
    _, changes = mutations_during(lab, lambda: network.ensure_network(lab, enable_nat_gateway=True))
    assert sorted(changes) == [
        "AuthorizeSecurityGroupIngress",
        "ModifyVpcAttribute",
        "ReplaceNetworkAclEntry",
    ]
    entry = next(
        e
        for e in ec2.describe_network_acls(NetworkAclIds=[public_acl["NetworkAclId"]])[
            "NetworkAcls"
        ][0]["Entries"]
        if e["RuleNumber"] == 110 and not e["Egress"]
    )
    assert entry["PortRange"] == {"From": 443, "To": 443}


def test_switching_nat_off_removes_routes_gateways_and_eips(built):
    lab, net = built
    ec2 = lab.client("ec2")
    off, changes = mutations_during(
        lab, lambda: network.ensure_network(lab, enable_nat_gateway=False)
    )
    assert sorted(changes) == sorted(
        ["DeleteRoute"] * 2 + ["DeleteNatGateway"] * 2 + ["ReleaseAddress"] * 2
    )
    assert (off.nat_gateway_ids, off.nat_public_ips) == ((), ())
    assert off.vpc_id == net.vpc_id
    states = {
        n["State"]
        for n in ec2.describe_nat_gateways(NatGatewayIds=list(net.nat_gateway_ids))["NatGateways"]
    }
    assert states == {"deleted"}
    assert everything_tagged(lab)["addresses"] == []
    for table_id in network.ensure_route_tables(lab).private_route_table_ids:
        table = ec2.describe_route_tables(RouteTableIds=[table_id])["RouteTables"][0]
        assert all(r.get("DestinationCidrBlock") != ANYWHERE for r in table["Routes"])
    # Off stays off without changes; on again builds new gateways and routes.
    _, changes = mutations_during(
        lab, lambda: network.ensure_network(lab, enable_nat_gateway=False)
    )
    assert changes == []
    on = network.ensure_network(lab, enable_nat_gateway=True)
    assert len(on.nat_gateway_ids) == 2
    assert set(on.nat_gateway_ids).isdisjoint(net.nat_gateway_ids)
    assert network.get_network(lab) == on


def test_nat_gateway_cost_in_tokyo(lab):
    cost = network.nat_gateway_cost(lab)
    assert cost.to_dict("records") == [
        {
            "item": "NAT gateway",
            "quantity": 2,
            "usd_per_hour": pytest.approx(2 * (0.062 + 0.005)),
            "usd_per_month": pytest.approx(2 * (0.062 + 0.005) * 730, abs=0.01),
        }
    ]
    assert lab.log.calls == []


def test_other_regions_use_their_first_two_zones_and_prices(make_lab):
    lab = make_lab(region="us-east-1")
    assert network.availability_zones(lab) == ("us-east-1a", "us-east-1b")
    network.ensure_vpc(lab)
    subnets = network.ensure_subnets(lab)
    assert [(s.name, s.availability_zone) for s in subnets.public] == [
        ("my-project-dev-public-subnet-a", "us-east-1a"),
        ("my-project-dev-public-subnet-b", "us-east-1b"),
    ]
    cost = network.nat_gateway_cost(lab).iloc[0]
    assert cost["usd_per_hour"] == pytest.approx(2 * (0.045 + 0.005))


# ------------------------------------------------------------ missing, show


def test_get_network_before_notebook_00_says_what_to_run(lab):
    with pytest.raises(NotFoundError) as caught:
        network.get_network(lab)
    assert "my-project-dev-vpc" in str(caught.value)
    assert "notebook 00" in caught.value.hint


def test_steps_after_the_vpc_need_the_vpc(lab):
    with pytest.raises(NotFoundError, match="my-project-dev-vpc"):
        network.ensure_subnets(lab)
    assert lab.log.mutating() == []


def test_show_network_lists_every_resource(built):
    lab, net = built
    table = network.show_network(lab)
    assert list(table.columns) == ["kind", "name", "id", "details"]
    assert table["kind"].value_counts().to_dict() == {
        "VPC": 1,
        "Internet gateway": 1,
        "Subnet": 4,
        "Route table": 3,
        "Network ACL": 2,
        "Security group": 3,
        "NAT gateway": 2,
        "Elastic IP": 2,
    }
    rows = table.set_index("name")
    assert rows.loc["my-project-dev-vpc", "id"] == net.vpc_id
    assert "10.0.0.0/16" in rows.loc["my-project-dev-vpc", "details"]
    assert rows.loc["my-project-dev-private-subnet-c", "details"].startswith(
        "10.0.12.0/24 in ap-northeast-1c"
    )
    assert "available" in rows.loc["my-project-dev-nat-a", "details"]


def test_show_network_is_empty_before_anything_is_built(lab):
    table = network.show_network(lab)
    assert table.empty
    assert list(table.columns) == ["kind", "name", "id", "details"]


# ------------------------------------------------------------------ teardown


def test_delete_network_leaves_nothing_tagged(built):
    lab, _ = built
    network.delete_network(lab)
    assert {kind: len(found) for kind, found in everything_tagged(lab).items()} == dict.fromkeys(
        everything_tagged(lab), 0
    )
    _, changes = mutations_during(lab, lambda: network.delete_network(lab))
    assert changes == []
    with pytest.raises(NotFoundError):
        network.get_network(lab)


def test_delete_network_after_nat_was_switched_off(built):
    lab, _ = built
    network.ensure_network(lab, enable_nat_gateway=False)
    network.delete_network(lab)
    assert all(found == [] for found in everything_tagged(lab).values())


# ----------------------------------------------------------------- isolation


def test_students_sharing_an_account_never_see_each_other(make_lab):
    first = make_lab()
    second = connect(
        "sandbox",
        student=f"{first.student}-b",
        role_arn=f"arn:aws:iam::{first.account_id}:role/OrganizationAccountAccessRole",
    )
    assert second.account_id == first.account_id
    mine = network.ensure_network(first, enable_nat_gateway=True)
    shown = network.show_network(first)

    with pytest.raises(NotFoundError):
        network.get_network(second)
    assert network.show_network(second).empty
    theirs = network.ensure_network(second, enable_nat_gateway=False)
    assert theirs.vpc_id != mine.vpc_id
    assert set(theirs.public_subnet_ids).isdisjoint(mine.public_subnet_ids)

    network.delete_network(second)
    assert all(found == [] for found in everything_tagged(second).values())
    assert network.get_network(first) == mine
    assert network.show_network(first).equals(shown)
    network.delete_network(first)
    assert all(found == [] for found in everything_tagged(first).values())
