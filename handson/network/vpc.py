"""Chapter 1: the VPC, its internet gateway, the public and private subnets and their route
tables (the layout is in the package's docstring), with the look-ups of those resources
that the other network modules use.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from handson import waiting
from handson.aws_errors import step
from handson.connection import Lab
from handson.i18n import _
from handson.network.model import (
    ANYWHERE,
    PRIVATE_CIDRS,
    PUBLIC_CIDRS,
    SERIES_AZS,
    SERIES_REGION,
    VPC_CIDR,
    VPC_WAIT_SECONDS,
    RouteTables,
    Subnet,
    Subnets,
    Vpc,
    _by_name,
    _missing,
    _owned,
    _suffix,
    _tag_spec,
)

# ------------------------------------------------------------------- helpers


def _find_vpc(lab: Lab) -> dict[str, Any] | None:
    vpcs = lab.client("ec2").describe_vpcs(Filters=_owned(lab, [lab.name("vpc")]))["Vpcs"]
    return vpcs[0] if vpcs else None


def _require_vpc(lab: Lab) -> dict[str, Any]:
    vpc = _find_vpc(lab)
    if vpc is None:
        raise _missing(
            _("The VPC {name}").format(name=lab.name("vpc")),
            "InvalidVpcID.NotFound",
            "DescribeVpcs",
        )
    return vpc


def _subnet_names(lab: Lab, zones: Iterable[str]) -> tuple[list[str], list[str]]:
    zones = list(zones)
    return (
        [lab.name(f"public-subnet-{_suffix(z)}") for z in zones],
        [lab.name(f"private-subnet-{_suffix(z)}") for z in zones],
    )


def _subnets(lab: Lab, vpc_id: str, names: Iterable[str]) -> dict[str, dict[str, Any]]:
    found = lab.client("ec2").describe_subnets(Filters=_owned(lab, names, vpc_id))["Subnets"]
    return _by_name(found)


def _require_subnets(lab: Lab, vpc_id: str, names: list[str]) -> list[dict[str, Any]]:
    found = _subnets(lab, vpc_id, names)
    for name in names:
        if name not in found:
            raise _missing(
                _("The subnet {name}").format(name=name),
                "InvalidSubnetID.NotFound",
                "DescribeSubnets",
            )
    return [found[n] for n in names]


def _internet_gateways(lab: Lab) -> list[dict[str, Any]]:
    return lab.client("ec2").describe_internet_gateways(Filters=_owned(lab, [lab.name("igw")]))[
        "InternetGateways"
    ]


def _require_internet_gateway(lab: Lab, vpc_id: str) -> dict[str, Any]:
    """The student's internet gateway attached to ``vpc_id`` (NotFoundError if none)."""
    for gateway in _internet_gateways(lab):
        if any(a["VpcId"] == vpc_id for a in gateway.get("Attachments", [])):
            return gateway
    raise _missing(
        _("The internet gateway {name}").format(name=lab.name("igw")),
        "InvalidInternetGatewayID.NotFound",
        "DescribeInternetGateways",
    )


def _vpc_route_tables(lab: Lab, vpc_id: str) -> list[dict[str, Any]]:
    """All of the VPC's route tables (the main one too: it holds implicit associations)."""
    return lab.client("ec2").describe_route_tables(
        Filters=[{"Name": "vpc-id", "Values": [vpc_id]}]
    )["RouteTables"]


def _route_table_names(lab: Lab, zones: Iterable[str]) -> tuple[str, list[str]]:
    return lab.name("public-rt"), [lab.name(f"private-rt-{_suffix(z)}") for z in zones]


def _require_private_route_tables(lab: Lab, vpc_id: str) -> list[dict[str, Any]]:
    """The private route tables, one per zone in zone order (NotFoundError if one is
    missing)."""
    _public, names = _route_table_names(lab, availability_zones(lab))
    tables = _by_name(t for t in _vpc_route_tables(lab, vpc_id) if lab.owns(t.get("Tags")))
    missing = [n for n in names if n not in tables]
    if missing:
        raise _missing(
            _("The route table {name}").format(name=missing[0]),
            "InvalidRouteTableID.NotFound",
            "DescribeRouteTables",
        )
    return [tables[n] for n in names]


def _ensure_default_route(lab: Lab, table: dict[str, Any], **target: str) -> None:
    """0.0.0.0/0 to ``target`` (GatewayId=... or NatGatewayId=...) in a route table."""
    ec2 = lab.client("ec2")
    route = next(
        (r for r in table.get("Routes", []) if r.get("DestinationCidrBlock") == ANYWHERE), None
    )
    if route is None:
        ec2.create_route(
            RouteTableId=table["RouteTableId"], DestinationCidrBlock=ANYWHERE, **target
        )
    elif any(route.get(key) != value for key, value in target.items()):
        # A route left pointing at a deleted NAT gateway ("blackhole") is replaced in place.
        ec2.replace_route(
            RouteTableId=table["RouteTableId"], DestinationCidrBlock=ANYWHERE, **target
        )


def _associate_route_table(
    lab: Lab, table_id: str, subnet_id: str, tables: list[dict[str, Any]]
) -> None:
    """Associate a subnet with ``table_id``, moving it from another table if needed."""
    ec2 = lab.client("ec2")
    current = next(
        (
            a
            for t in tables
            for a in t.get("Associations", [])
            if a.get("SubnetId") == subnet_id and not a.get("Main")
        ),
        None,
    )
    if current is None:
        ec2.associate_route_table(RouteTableId=table_id, SubnetId=subnet_id)
    elif current["RouteTableId"] != table_id:
        ec2.replace_route_table_association(
            AssociationId=current["RouteTableAssociationId"], RouteTableId=table_id
        )


# ---------------------------------------------------------------- chapter 1


@step("Pick the Availability Zones")
def availability_zones(lab: Lab) -> tuple[str, ...]:
    """The two Availability Zones of the network: the series' 1a and 1c in Tokyo, else the
    region's first two zones (DescribeAvailabilityZones). Changes nothing. Chapter 1."""
    if lab.region == SERIES_REGION:
        return SERIES_AZS
    zones = lab.client("ec2").describe_availability_zones(
        Filters=[
            {"Name": "state", "Values": ["available"]},
            {"Name": "zone-type", "Values": ["availability-zone"]},
        ]
    )["AvailabilityZones"]
    return tuple(sorted(z["ZoneName"] for z in zones)[:2])


@step("Create the VPC")
def ensure_vpc(lab: Lab) -> Vpc:
    """A VPC is the student's private network, 10.0.0.0/16, with DNS support and DNS
    hostnames on (ECS and RDS endpoints need both).

    Calls DescribeVpcs and DescribeVpcAttribute, then CreateVpc if it's missing and
    ModifyVpcAttribute for a DNS setting that is off. Idempotent. Chapter 1.
    """
    ec2 = lab.client("ec2")
    vpc = _find_vpc(lab)
    if vpc is None:
        vpc = ec2.create_vpc(
            CidrBlock=VPC_CIDR, TagSpecifications=_tag_spec(lab, "vpc", lab.name("vpc"))
        )["Vpc"]
        waiting.wait(ec2, "vpc_available", timeout=VPC_WAIT_SECONDS, VpcIds=[vpc["VpcId"]])
    # A new VPC has DNS support on but DNS hostnames off; each attribute is its own call.
    for attribute, key in (
        ("enableDnsSupport", "EnableDnsSupport"),
        ("enableDnsHostnames", "EnableDnsHostnames"),
    ):
        if not ec2.describe_vpc_attribute(VpcId=vpc["VpcId"], Attribute=attribute)[key]["Value"]:
            ec2.modify_vpc_attribute(VpcId=vpc["VpcId"], **{key: {"Value": True}})
    return Vpc(vpc_id=vpc["VpcId"], cidr_block=vpc["CidrBlock"])


@step("Create the internet gateway")
def ensure_internet_gateway(lab: Lab) -> str:
    """An internet gateway connects the VPC to the internet; attached to the VPC, it is the
    target of the public subnets' default route. Returns its id.

    Calls DescribeVpcs and DescribeInternetGateways, then CreateInternetGateway and
    AttachInternetGateway when missing. Idempotent. Chapter 1.
    """
    ec2 = lab.client("ec2")
    vpc_id = _require_vpc(lab)["VpcId"]
    found = _internet_gateways(lab)
    if found:
        igw = found[0]
    else:
        igw = ec2.create_internet_gateway(
            TagSpecifications=_tag_spec(lab, "internet-gateway", lab.name("igw"))
        )["InternetGateway"]
    if not any(a["VpcId"] == vpc_id for a in igw.get("Attachments", [])):
        ec2.attach_internet_gateway(InternetGatewayId=igw["InternetGatewayId"], VpcId=vpc_id)
    return str(igw["InternetGatewayId"])


@step("Create the subnets")
def ensure_subnets(lab: Lab) -> Subnets:
    """Four subnets, one public and one private per Availability Zone; instances launched in
    a public subnet get a public IP.

    Calls DescribeVpcs and DescribeSubnets, then CreateSubnet for each missing one and
    ModifySubnetAttribute (MapPublicIpOnLaunch) where it is off. Idempotent. Chapter 1.
    """
    ec2 = lab.client("ec2")
    vpc_id = _require_vpc(lab)["VpcId"]
    zones = availability_zones(lab)
    public_names, private_names = _subnet_names(lab, zones)
    found = _subnets(lab, vpc_id, public_names + private_names)
    plan = [
        (names[i], cidrs[i], zone, kind)
        for kind, names, cidrs in (
            ("Public", public_names, PUBLIC_CIDRS),
            ("Private", private_names, PRIVATE_CIDRS),
        )
        for i, zone in enumerate(zones)
    ]
    made: dict[str, list[Subnet]] = {"Public": [], "Private": []}
    for name, cidr, zone, kind in plan:
        subnet = found.get(name)
        if subnet is None:
            subnet = ec2.create_subnet(
                VpcId=vpc_id,
                CidrBlock=cidr,
                AvailabilityZone=zone,
                TagSpecifications=_tag_spec(lab, "subnet", name, Type=kind),
            )["Subnet"]
        if kind == "Public" and not subnet.get("MapPublicIpOnLaunch"):
            ec2.modify_subnet_attribute(
                SubnetId=subnet["SubnetId"], MapPublicIpOnLaunch={"Value": True}
            )
        made[kind].append(
            Subnet(subnet["SubnetId"], name, subnet["CidrBlock"], subnet["AvailabilityZone"])
        )
    return Subnets(public=tuple(made["Public"]), private=tuple(made["Private"]))


@step("Create the route tables")
def ensure_route_tables(lab: Lab) -> RouteTables:
    """Route tables decide where a subnet's traffic goes: the public one sends 0.0.0.0/0 to
    the internet gateway; each private subnet gets its own (for its zone's NAT gateway).

    Calls DescribeVpcs, DescribeInternetGateways, DescribeSubnets and DescribeRouteTables,
    then CreateRouteTable, CreateRoute and AssociateRouteTable for what is missing.
    Idempotent. Chapter 1.
    """
    ec2 = lab.client("ec2")
    vpc_id = _require_vpc(lab)["VpcId"]
    gateway = _require_internet_gateway(lab, vpc_id)
    zones = availability_zones(lab)
    public_subnet_names, private_subnet_names = _subnet_names(lab, zones)
    public_subnets = _require_subnets(lab, vpc_id, public_subnet_names)
    private_subnets = _require_subnets(lab, vpc_id, private_subnet_names)
    tables = _vpc_route_tables(lab, vpc_id)
    ours = _by_name(t for t in tables if lab.owns(t.get("Tags")))
    public_name, private_names = _route_table_names(lab, zones)

    def table(name: str) -> dict[str, Any]:
        if name in ours:
            return ours[name]
        return ec2.create_route_table(
            VpcId=vpc_id, TagSpecifications=_tag_spec(lab, "route-table", name)
        )["RouteTable"]

    public = table(public_name)
    _ensure_default_route(lab, public, GatewayId=gateway["InternetGatewayId"])
    for subnet in public_subnets:
        _associate_route_table(lab, public["RouteTableId"], subnet["SubnetId"], tables)
    private_ids = []
    for name, subnet in zip(private_names, private_subnets, strict=True):
        private = table(name)
        _associate_route_table(lab, private["RouteTableId"], subnet["SubnetId"], tables)
        private_ids.append(private["RouteTableId"])
    return RouteTables(public["RouteTableId"], tuple(private_ids))
