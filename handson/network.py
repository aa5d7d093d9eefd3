"""The VPC network (chapter 1) and its security layers and NAT gateways (chapter 2).

A VPC ``10.0.0.0/16`` spans two Availability Zones. Each zone has a public subnet (its
route table sends 0.0.0.0/0 to the internet gateway: the ALB lives there) and a private
subnet (ECS tasks and RDS; out to the internet only through an optional NAT gateway).
Network ACLs filter traffic per subnet, security groups per network interface.

Every look-up filters on the student's tags (``lab.tag_filters()``) and the resource's
``Name``, so students sharing an account never see each other's network.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

import pandas as pd
from botocore.exceptions import WaiterError

from handson import pricing, waiting
from handson.aws_errors import step
from handson.connection import Lab
from handson.exceptions import AwsError, NotFoundError, WaitTimeoutError

__all__ = [
    "NatGateway",
    "Network",
    "NetworkAcls",
    "RouteTables",
    "SecurityGroups",
    "Subnet",
    "Subnets",
    "Vpc",
    "availability_zones",
    "delete_network",
    "ensure_internet_gateway",
    "ensure_nat_gateways",
    "ensure_network",
    "ensure_network_acls",
    "ensure_route_tables",
    "ensure_security_groups",
    "ensure_subnets",
    "ensure_vpc",
    "get_network",
    "nat_gateway_cost",
    "show_network",
]

VPC_CIDR: Final = "10.0.0.0/16"
ANYWHERE: Final = "0.0.0.0/0"
SERIES_REGION: Final = "ap-northeast-1"
SERIES_AZS: Final = ("ap-northeast-1a", "ap-northeast-1c")
PUBLIC_CIDRS: Final = ("10.0.1.0/24", "10.0.2.0/24")
PRIVATE_CIDRS: Final = ("10.0.11.0/24", "10.0.12.0/24")
NOT_BUILT_HINT: Final = "Run notebook 00 first: it builds chapters 1-6, starting with the VPC."
# A NAT gateway takes one to a few minutes to become available (and to be deleted).
NAT_WAIT_SECONDS: Final = 600.0
VPC_WAIT_SECONDS: Final = 60.0
LIVE_NAT_STATES: Final = ("pending", "available")
SHOW_COLUMNS: Final = ["kind", "name", "id", "details"]


@dataclass(frozen=True)
class NaclRule:
    """One network ACL entry; ``protocol`` "-1" means all traffic, "6" TCP."""

    number: int
    egress: bool
    protocol: str
    cidr: str
    ports: tuple[int, int] | None = None

    def entry(self) -> dict[str, Any]:
        """The fields DescribeNetworkAcls shows and CreateNetworkAclEntry takes."""
        entry: dict[str, Any] = {
            "RuleNumber": self.number,
            "Egress": self.egress,
            "Protocol": self.protocol,
            "RuleAction": "allow",
            "CidrBlock": self.cidr,
        }
        if self.ports:
            entry["PortRange"] = {"From": self.ports[0], "To": self.ports[1]}
        return entry


# Network ACLs are stateless: replies leave through the egress rules and come back to
# ephemeral ports 1024-65535, hence those inbound rules (chapter 2).
PUBLIC_NACL_RULES: Final = (
    NaclRule(100, False, "6", ANYWHERE, (80, 80)),
    NaclRule(110, False, "6", ANYWHERE, (443, 443)),
    NaclRule(120, False, "6", ANYWHERE, (1024, 65535)),
    NaclRule(100, True, "-1", ANYWHERE),
)
PRIVATE_NACL_RULES: Final = (
    NaclRule(100, False, "-1", VPC_CIDR),
    NaclRule(110, False, "6", ANYWHERE, (1024, 65535)),
    NaclRule(100, True, "-1", ANYWHERE),
)

# name suffix -> description, ingress (port, source: a CIDR or another group's suffix).
SECURITY_GROUPS: Final[dict[str, tuple[str, tuple[tuple[int, str], ...]]]] = {
    "alb-sg": ("Security group for the ALB", ((80, ANYWHERE), (443, ANYWHERE))),
    "ecs-sg": ("Security group for the ECS tasks", ((80, "alb-sg"), (3000, "alb-sg"))),
    "rds-sg": ("Security group for the RDS database", ((5432, "ecs-sg"),)),
}
# AWS gives every new security group this egress rule: all traffic to anywhere.
ALL_EGRESS: Final = {"IpProtocol": "-1", "IpRanges": [{"CidrIp": ANYWHERE}]}


@dataclass(frozen=True)
class Vpc:
    vpc_id: str
    cidr_block: str


@dataclass(frozen=True)
class Subnet:
    subnet_id: str
    name: str
    cidr_block: str
    availability_zone: str


@dataclass(frozen=True)
class Subnets:
    public: tuple[Subnet, ...]
    private: tuple[Subnet, ...]


@dataclass(frozen=True)
class RouteTables:
    public_route_table_id: str
    private_route_table_ids: tuple[str, ...]


@dataclass(frozen=True)
class NetworkAcls:
    public_network_acl_id: str
    private_network_acl_id: str


@dataclass(frozen=True)
class SecurityGroups:
    alb_security_group_id: str
    ecs_security_group_id: str
    rds_security_group_id: str


@dataclass(frozen=True)
class NatGateway:
    nat_gateway_id: str
    name: str
    availability_zone: str
    subnet_id: str
    allocation_id: str
    public_ip: str


@dataclass(frozen=True)
class Network:
    """What the series' Terraform outputs for chapters 1-2."""

    vpc_id: str
    vpc_cidr_block: str
    public_subnet_ids: tuple[str, ...]
    private_subnet_ids: tuple[str, ...]
    internet_gateway_id: str
    availability_zones: tuple[str, ...]
    alb_security_group_id: str
    ecs_security_group_id: str
    rds_security_group_id: str
    nat_gateway_ids: tuple[str, ...]
    nat_public_ips: tuple[str, ...]


# ------------------------------------------------------------------- helpers


def _name(resource: dict[str, Any]) -> str:
    return next((t["Value"] for t in resource.get("Tags") or [] if t["Key"] == "Name"), "")


def _owned(lab: Lab, names: Iterable[str], vpc_id: str | None = None) -> list[dict[str, Any]]:
    """EC2 filters: the student's tags, one of ``names``, and the VPC when given."""
    filters = [*lab.tag_filters(), {"Name": "tag:Name", "Values": list(names)}]
    if vpc_id:
        filters.append({"Name": "vpc-id", "Values": [vpc_id]})
    return filters


def _tag_spec(lab: Lab, resource_type: str, name: str, **extra: str) -> list[dict[str, Any]]:
    tags = lab.tag_list(name) + [{"Key": k, "Value": v} for k, v in extra.items()]
    return [{"ResourceType": resource_type, "Tags": tags}]


def _by_name(resources: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {_name(r): r for r in resources}


def _missing(what: str, code: str, operation: str) -> NotFoundError:
    return NotFoundError(
        f"{what} doesn't exist yet.", code=code, operation=operation, hint=NOT_BUILT_HINT
    )


def _suffix(zone: str) -> str:
    """``ap-northeast-1a`` -> ``a``: the series names per-zone resources after the letter."""
    return zone[-1]


def _find_vpc(lab: Lab) -> dict[str, Any] | None:
    vpcs = lab.client("ec2").describe_vpcs(Filters=_owned(lab, [lab.name("vpc")]))["Vpcs"]
    return vpcs[0] if vpcs else None


def _require_vpc(lab: Lab) -> dict[str, Any]:
    vpc = _find_vpc(lab)
    if vpc is None:
        raise _missing(f"The VPC {lab.name('vpc')}", "InvalidVpcID.NotFound", "DescribeVpcs")
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
            raise _missing(f"The subnet {name}", "InvalidSubnetID.NotFound", "DescribeSubnets")
    return [found[n] for n in names]


def _internet_gateways(lab: Lab) -> list[dict[str, Any]]:
    return lab.client("ec2").describe_internet_gateways(Filters=_owned(lab, [lab.name("igw")]))[
        "InternetGateways"
    ]


def _vpc_route_tables(lab: Lab, vpc_id: str) -> list[dict[str, Any]]:
    """All of the VPC's route tables (the main one too: it holds implicit associations)."""
    return lab.client("ec2").describe_route_tables(
        Filters=[{"Name": "vpc-id", "Values": [vpc_id]}]
    )["RouteTables"]


def _route_table_names(lab: Lab, zones: Iterable[str]) -> tuple[str, list[str]]:
    return lab.name("public-rt"), [lab.name(f"private-rt-{_suffix(z)}") for z in zones]


def _security_groups(lab: Lab, vpc_id: str | None) -> dict[str, dict[str, Any]]:
    names = [lab.name(suffix) for suffix in SECURITY_GROUPS]
    found = lab.client("ec2").describe_security_groups(Filters=_owned(lab, names, vpc_id))
    return _by_name(found["SecurityGroups"])


def _nat_names(lab: Lab, zones: Iterable[str]) -> list[str]:
    return [lab.name(f"nat-{_suffix(z)}") for z in zones]


def _eip_names(lab: Lab, zones: Iterable[str]) -> list[str]:
    return [lab.name(f"nat-eip-{_suffix(z)}") for z in zones]


def _nat_gateways(
    lab: Lab, vpc_id: str, zones: Iterable[str], states: Iterable[str]
) -> list[dict[str, Any]]:
    filters = [
        *_owned(lab, _nat_names(lab, zones), vpc_id),
        {"Name": "state", "Values": list(states)},
    ]
    return lab.client("ec2").describe_nat_gateways(Filter=filters)["NatGateways"]


def _wait_nat(lab: Lab, waiter: str, nat_ids: list[str]) -> None:
    """Wait on NAT gateways; a gateway that fails (e.g. no route to an IGW) is an error."""
    try:
        waiting.wait(lab.client("ec2"), waiter, timeout=NAT_WAIT_SECONDS, NatGatewayIds=nat_ids)
    except WaiterError as error:
        failed = [
            n for n in error.last_response.get("NatGateways", []) if n.get("State") == "failed"
        ]
        if failed:
            raise AwsError(
                f"NAT gateway {failed[0]['NatGatewayId']} failed: "
                f"{failed[0].get('FailureMessage', '')}",
                code=str(failed[0].get("FailureCode", "NatGatewayFailed")),
                operation="CreateNatGateway",
                hint="Check that the public subnet's route table sends 0.0.0.0/0 to the "
                "internet gateway, then run the cell again (a new NAT gateway is created).",
            ) from error
        raise WaitTimeoutError(
            f"NAT gateways {', '.join(nat_ids)} did not reach the expected state in 10 "
            f"minutes ({error.reason}). Look at them in the VPC console and run the cell again."
        ) from error


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


def _permission_keys(permissions: list[dict[str, Any]]) -> set[tuple[Any, ...]]:
    """(protocol, from port, to port, CIDR or group id) for each rule of a security group."""
    keys = set()
    for p in permissions:
        head = (p["IpProtocol"], p.get("FromPort"), p.get("ToPort"))
        keys |= {(*head, r["CidrIp"]) for r in p.get("IpRanges", [])}
        keys |= {(*head, g["GroupId"]) for g in p.get("UserIdGroupPairs", [])}
    return keys


def _ingress_permission(port: int, source: str, description: str) -> dict[str, Any]:
    permission: dict[str, Any] = {"IpProtocol": "tcp", "FromPort": port, "ToPort": port}
    if source.startswith("sg-"):
        permission["UserIdGroupPairs"] = [{"GroupId": source, "Description": description}]
    else:
        permission["IpRanges"] = [{"CidrIp": source, "Description": description}]
    return permission


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
    igws = _internet_gateways(lab)
    if not igws:
        raise _missing(
            f"The internet gateway {lab.name('igw')}",
            "InvalidInternetGatewayID.NotFound",
            "DescribeInternetGateways",
        )
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
    _ensure_default_route(lab, public, GatewayId=igws[0]["InternetGatewayId"])
    for subnet in public_subnets:
        _associate_route_table(lab, public["RouteTableId"], subnet["SubnetId"], tables)
    private_ids = []
    for name, subnet in zip(private_names, private_subnets, strict=True):
        private = table(name)
        _associate_route_table(lab, private["RouteTableId"], subnet["SubnetId"], tables)
        private_ids.append(private["RouteTableId"])
    return RouteTables(public["RouteTableId"], tuple(private_ids))


# ---------------------------------------------------------------- chapter 2


@step("Create the network ACLs")
def ensure_network_acls(lab: Lab) -> NetworkAcls:
    """Network ACLs are stateless subnet firewalls: the public one lets in HTTP, HTTPS and
    replies on ports 1024-65535; the private one lets in the VPC and replies.

    Calls DescribeVpcs, DescribeSubnets and DescribeNetworkAcls, then CreateNetworkAcl,
    CreateNetworkAclEntry (or ReplaceNetworkAclEntry for a rule that differs) and
    ReplaceNetworkAclAssociation (a subnet always has one ACL: the VPC's default until
    then) for what is missing. Idempotent. Chapter 2.
    """
    ec2 = lab.client("ec2")
    vpc_id = _require_vpc(lab)["VpcId"]
    public_names, private_names = _subnet_names(lab, availability_zones(lab))
    acls = ec2.describe_network_acls(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])[
        "NetworkAcls"
    ]
    ours = _by_name(a for a in acls if lab.owns(a.get("Tags")))
    associations = {a["SubnetId"]: a for acl in acls for a in acl.get("Associations", [])}
    ids = []
    for name, rules, subnet_names in (
        (lab.name("public-nacl"), PUBLIC_NACL_RULES, public_names),
        (lab.name("private-nacl"), PRIVATE_NACL_RULES, private_names),
    ):
        acl = (
            ours.get(name)
            or ec2.create_network_acl(
                VpcId=vpc_id, TagSpecifications=_tag_spec(lab, "network-acl", name)
            )["NetworkAcl"]
        )
        acl_id = acl["NetworkAclId"]
        entries = {(e["RuleNumber"], e["Egress"]): e for e in acl.get("Entries", [])}
        for rule in rules:
            wanted = rule.entry()
            current = entries.get((rule.number, rule.egress))
            if current is None:
                ec2.create_network_acl_entry(NetworkAclId=acl_id, **wanted)
            elif any(current.get(k) != v for k, v in wanted.items()) or (
                "PortRange" in current and "PortRange" not in wanted
            ):
                ec2.replace_network_acl_entry(NetworkAclId=acl_id, **wanted)
        for subnet in _require_subnets(lab, vpc_id, subnet_names):
            association = associations[subnet["SubnetId"]]
            if association["NetworkAclId"] != acl_id:
                ec2.replace_network_acl_association(
                    AssociationId=association["NetworkAclAssociationId"], NetworkAclId=acl_id
                )
        ids.append(acl_id)
    return NetworkAcls(public_network_acl_id=ids[0], private_network_acl_id=ids[1])


@step("Create the security groups")
def ensure_security_groups(lab: Lab) -> SecurityGroups:
    """Security groups are stateful firewalls on network interfaces: the ALB takes 80/443
    from anywhere, ECS tasks take 80 and 3000 from the ALB only, RDS takes 5432 from the
    ECS tasks only. Egress stays AWS's default: all traffic out.

    Calls DescribeVpcs and DescribeSecurityGroups, then CreateSecurityGroup,
    AuthorizeSecurityGroupIngress (and AuthorizeSecurityGroupEgress if the default rule was
    removed) for what is missing. Idempotent. Chapter 2.
    """
    ec2 = lab.client("ec2")
    vpc_id = _require_vpc(lab)["VpcId"]
    found = _security_groups(lab, vpc_id)
    groups: dict[str, dict[str, Any]] = {}
    # In dependency order: the ECS group's rules name the ALB group, RDS's the ECS group.
    for suffix, (description, ingress) in SECURITY_GROUPS.items():
        name = lab.name(suffix)
        group = found.get(name)
        if group is None:
            group_id = ec2.create_security_group(
                GroupName=name,
                Description=description,
                VpcId=vpc_id,
                TagSpecifications=_tag_spec(lab, "security-group", name),
            )["GroupId"]
            group = {"GroupId": group_id, "IpPermissions": [], "IpPermissionsEgress": [ALL_EGRESS]}
        groups[suffix] = group
        # A source is a CIDR or the suffix of a group made earlier in this loop.
        resolved = [
            (port, groups[src]["GroupId"], lab.name(src)) if src in groups else (port, src, src)
            for port, src in ingress
        ]
        have = _permission_keys(group.get("IpPermissions", []))
        missing = [
            _ingress_permission(port, source, f"from {label}")
            for port, source, label in resolved
            if ("tcp", port, port, source) not in have
        ]
        if missing:
            ec2.authorize_security_group_ingress(GroupId=group["GroupId"], IpPermissions=missing)
        if ("-1", None, None, ANYWHERE) not in _permission_keys(group["IpPermissionsEgress"]):
            ec2.authorize_security_group_egress(
                GroupId=group["GroupId"], IpPermissions=[ALL_EGRESS]
            )
    return SecurityGroups(*(groups[suffix]["GroupId"] for suffix in SECURITY_GROUPS))


@step("Estimate the NAT gateway cost")
def nat_gateway_cost(lab: Lab) -> pd.DataFrame:
    """What ``enable_nat_gateway=True`` costs: two NAT gateways (one per zone), each billed
    per hour plus its public IPv4 address, before data processing charges.

    Makes no API call (prices from handson.pricing). Chapter 2.
    """
    estimate = pricing.nat_gateways(lab.region, len(SERIES_AZS))
    return pd.DataFrame(
        [
            {
                "item": estimate.item,
                "quantity": estimate.quantity,
                "usd_per_hour": round(estimate.usd_per_hour, 4),
                "usd_per_month": round(estimate.usd_per_month, 2),
            }
        ]
    )


def _remove_nat_gateways(lab: Lab, vpc_id: str | None) -> None:
    """Private routes to NAT gateways, the gateways (waiting until deleted), their EIPs."""
    ec2 = lab.client("ec2")
    zones = availability_zones(lab)
    # Without the VPC no NAT gateway can be left (DeleteVpc refuses while one exists),
    # but its EIPs can.
    if vpc_id:
        _, private_tables = _route_table_names(lab, zones)
        for table in _vpc_route_tables(lab, vpc_id):
            if not (lab.owns(table.get("Tags")) and _name(table) in private_tables):
                continue
            for route in table.get("Routes", []):
                if route.get("DestinationCidrBlock") == ANYWHERE and "NatGatewayId" in route:
                    ec2.delete_route(
                        RouteTableId=table["RouteTableId"], DestinationCidrBlock=ANYWHERE
                    )
        nats = _nat_gateways(lab, vpc_id, zones, [*LIVE_NAT_STATES, "deleting"])
        for nat in nats:
            if nat["State"] in LIVE_NAT_STATES:
                ec2.delete_nat_gateway(NatGatewayId=nat["NatGatewayId"])
        if nats:
            # An EIP stays associated until its NAT gateway is fully deleted.
            _wait_nat(lab, "nat_gateway_deleted", [n["NatGatewayId"] for n in nats])
    for address in ec2.describe_addresses(Filters=_owned(lab, _eip_names(lab, zones)))["Addresses"]:
        ec2.release_address(AllocationId=address["AllocationId"])


@step("Create or remove the NAT gateways")
def ensure_nat_gateways(lab: Lab, *, enabled: bool) -> tuple[NatGateway, ...]:
    """A NAT gateway lets the private subnets reach the internet (ECR, CloudWatch Logs,
    Secrets Manager) without being reachable from it: one per zone, each with an Elastic IP,
    in the public subnets; each private route table sends 0.0.0.0/0 to its zone's gateway.
    It bills by the hour: see nat_gateway_cost(). With ``enabled=False`` the routes and
    gateways are deleted and the EIPs released (the series' enable_nat_gateway=false).

    Calls DescribeNatGateways, DescribeAddresses, DescribeRouteTables, then AllocateAddress,
    CreateNatGateway (waiting until available) and CreateRoute/ReplaceRoute; or DeleteRoute,
    DeleteNatGateway (waiting until deleted) and ReleaseAddress. Idempotent. Chapter 2.
    """
    ec2 = lab.client("ec2")
    vpc_id = _require_vpc(lab)["VpcId"]
    if not enabled:
        _remove_nat_gateways(lab, vpc_id)
        return ()
    zones = availability_zones(lab)
    public_names, _ = _subnet_names(lab, zones)
    public_subnets = _require_subnets(lab, vpc_id, public_names)
    nats = _by_name(_nat_gateways(lab, vpc_id, zones, LIVE_NAT_STATES))
    addresses = _by_name(
        ec2.describe_addresses(Filters=_owned(lab, _eip_names(lab, zones)))["Addresses"]
    )
    for nat_name, eip_name, subnet in zip(
        _nat_names(lab, zones), _eip_names(lab, zones), public_subnets, strict=True
    ):
        if nat_name in nats:
            continue
        address = addresses.get(eip_name) or ec2.allocate_address(
            Domain="vpc", TagSpecifications=_tag_spec(lab, "elastic-ip", eip_name)
        )
        nats[nat_name] = ec2.create_nat_gateway(
            SubnetId=subnet["SubnetId"],
            AllocationId=address["AllocationId"],
            TagSpecifications=_tag_spec(lab, "natgateway", nat_name),
        )["NatGateway"]
    pending = [n["NatGatewayId"] for n in nats.values() if n["State"] != "available"]
    if pending:
        _wait_nat(lab, "nat_gateway_available", pending)
        # The public IP is only filled in once the gateway is available.
        nats = _by_name(_nat_gateways(lab, vpc_id, zones, LIVE_NAT_STATES))
    _, private_tables = _route_table_names(lab, zones)
    tables = _by_name(t for t in _vpc_route_tables(lab, vpc_id) if lab.owns(t.get("Tags")))
    result = []
    for zone, nat_name, table_name, subnet in zip(
        zones, _nat_names(lab, zones), private_tables, public_subnets, strict=True
    ):
        if table_name not in tables:
            raise _missing(
                f"The route table {table_name}",
                "InvalidRouteTableID.NotFound",
                "DescribeRouteTables",
            )
        nat = nats[nat_name]
        _ensure_default_route(lab, tables[table_name], NatGatewayId=nat["NatGatewayId"])
        address = nat["NatGatewayAddresses"][0]
        result.append(
            NatGateway(
                nat_gateway_id=nat["NatGatewayId"],
                name=nat_name,
                availability_zone=zone,
                subnet_id=subnet["SubnetId"],
                allocation_id=address["AllocationId"],
                public_ip=address.get("PublicIp", ""),
            )
        )
    return tuple(result)


# ------------------------------------------------------------------ together


@step("Build the network")
def ensure_network(lab: Lab, *, enable_nat_gateway: bool) -> Network:
    """Chapters 1-2 in order: VPC, internet gateway, subnets, route tables, network ACLs,
    security groups, then NAT gateways on or off.

    Calls what each ensure_* step calls. Idempotent: a second run changes nothing, and a
    run with the other enable_nat_gateway setting adds or removes only the NAT gateways.
    """
    vpc = ensure_vpc(lab)
    igw_id = ensure_internet_gateway(lab)
    subnets = ensure_subnets(lab)
    ensure_route_tables(lab)
    ensure_network_acls(lab)
    groups = ensure_security_groups(lab)
    nats = ensure_nat_gateways(lab, enabled=enable_nat_gateway)
    return Network(
        vpc_id=vpc.vpc_id,
        vpc_cidr_block=vpc.cidr_block,
        public_subnet_ids=tuple(s.subnet_id for s in subnets.public),
        private_subnet_ids=tuple(s.subnet_id for s in subnets.private),
        internet_gateway_id=igw_id,
        availability_zones=tuple(s.availability_zone for s in subnets.public),
        alb_security_group_id=groups.alb_security_group_id,
        ecs_security_group_id=groups.ecs_security_group_id,
        rds_security_group_id=groups.rds_security_group_id,
        nat_gateway_ids=tuple(n.nat_gateway_id for n in nats),
        nat_public_ips=tuple(n.public_ip for n in nats),
    )


@step("Look up the network")
def get_network(lab: Lab) -> Network:
    """The ids of the network built in chapters 1-2 (the series' Terraform outputs), for
    the later chapters.

    Calls DescribeVpcs, DescribeInternetGateways, DescribeSubnets,
    DescribeSecurityGroups and DescribeNatGateways; changes nothing. Raises NotFoundError
    when a part is missing (run notebook 00 first). Chapters 1-2.
    """
    vpc = _require_vpc(lab)
    vpc_id = vpc["VpcId"]
    igws = [
        g
        for g in _internet_gateways(lab)
        if any(a["VpcId"] == vpc_id for a in g.get("Attachments", []))
    ]
    if not igws:
        raise _missing(
            f"The internet gateway {lab.name('igw')}",
            "InvalidInternetGatewayID.NotFound",
            "DescribeInternetGateways",
        )
    zones = availability_zones(lab)
    public_names, private_names = _subnet_names(lab, zones)
    subnets = _subnets(lab, vpc_id, public_names + private_names)
    for name in public_names + private_names:
        if name not in subnets:
            raise _missing(f"The subnet {name}", "InvalidSubnetID.NotFound", "DescribeSubnets")
    groups = _security_groups(lab, vpc_id)
    for suffix in SECURITY_GROUPS:
        if lab.name(suffix) not in groups:
            raise _missing(
                f"The security group {lab.name(suffix)}",
                "InvalidGroup.NotFound",
                "DescribeSecurityGroups",
            )
    nats = _by_name(_nat_gateways(lab, vpc_id, zones, LIVE_NAT_STATES))
    ordered_nats = [nats[n] for n in _nat_names(lab, zones) if n in nats]
    return Network(
        vpc_id=vpc_id,
        vpc_cidr_block=vpc["CidrBlock"],
        public_subnet_ids=tuple(subnets[n]["SubnetId"] for n in public_names),
        private_subnet_ids=tuple(subnets[n]["SubnetId"] for n in private_names),
        internet_gateway_id=igws[0]["InternetGatewayId"],
        availability_zones=zones,
        alb_security_group_id=groups[lab.name("alb-sg")]["GroupId"],
        ecs_security_group_id=groups[lab.name("ecs-sg")]["GroupId"],
        rds_security_group_id=groups[lab.name("rds-sg")]["GroupId"],
        nat_gateway_ids=tuple(n["NatGatewayId"] for n in ordered_nats),
        nat_public_ips=tuple(n["NatGatewayAddresses"][0].get("PublicIp", "") for n in ordered_nats),
    )


@step("Show the network")
def show_network(lab: Lab) -> pd.DataFrame:
    """One row per network resource of the student: kind, name, id and its settings (CIDR,
    zone, routes, rules, state). Empty when nothing is built.

    Calls the EC2 Describe* operations of each kind; changes nothing. Chapters 1-2.
    """
    ec2 = lab.client("ec2")
    vpc = _find_vpc(lab)
    if vpc is None:
        return pd.DataFrame([], columns=SHOW_COLUMNS)
    vpc_id = vpc["VpcId"]
    zones = availability_zones(lab)
    public_names, private_names = _subnet_names(lab, zones)
    found = _subnets(lab, vpc_id, public_names + private_names)
    subnets = [found[n] for n in public_names + private_names if n in found]
    igws = _internet_gateways(lab)
    tables = [t for t in _vpc_route_tables(lab, vpc_id) if lab.owns(t.get("Tags"))]
    acls = [
        a
        for a in ec2.describe_network_acls(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])[
            "NetworkAcls"
        ]
        if lab.owns(a.get("Tags"))
    ]
    groups = _security_groups(lab, vpc_id)
    nats = _nat_gateways(lab, vpc_id, zones, [*LIVE_NAT_STATES, "deleting", "failed"])
    addresses = ec2.describe_addresses(Filters=_owned(lab, _eip_names(lab, zones)))["Addresses"]
    # Routes, associations and rules show the names of what they point to, not ids.
    names = {vpc_id: _name(vpc)}
    names |= {i["InternetGatewayId"]: _name(i) for i in igws}
    names |= {s["SubnetId"]: _name(s) for s in subnets}
    names |= {n["NatGatewayId"]: _name(n) for n in nats}
    names |= {g["GroupId"]: name for name, g in groups.items()}
    dns = {
        key: ec2.describe_vpc_attribute(VpcId=vpc_id, Attribute=attribute)[key]["Value"]
        for attribute, key in (
            ("enableDnsSupport", "EnableDnsSupport"),
            ("enableDnsHostnames", "EnableDnsHostnames"),
        )
    }
    rows = [
        (
            "VPC",
            _name(vpc),
            vpc_id,
            f"{vpc['CidrBlock']}, DNS support {_on(dns['EnableDnsSupport'])}, "
            f"DNS hostnames {_on(dns['EnableDnsHostnames'])}",
        ),
        *(
            (
                "Internet gateway",
                _name(i),
                i["InternetGatewayId"],
                "attached to " + _names(names, (a["VpcId"] for a in i.get("Attachments", []))),
            )
            for i in igws
        ),
        *(
            (
                "Subnet",
                _name(s),
                s["SubnetId"],
                f"{s['CidrBlock']} in {s['AvailabilityZone']}, "
                + ("public IP on launch" if s.get("MapPublicIpOnLaunch") else "no public IP"),
            )
            for s in subnets
        ),
        *(("Route table", _name(t), t["RouteTableId"], _routes_text(t, names)) for t in tables),
        *(("Network ACL", _name(a), a["NetworkAclId"], _acl_text(a, names)) for a in acls),
        *(
            ("Security group", name, groups[name]["GroupId"], _ingress_text(groups[name], names))
            for name in (lab.name(suffix) for suffix in SECURITY_GROUPS)
            if name in groups
        ),
        *(
            (
                "NAT gateway",
                _name(n),
                n["NatGatewayId"],
                f"{n['State']} in {names.get(n['SubnetId'], n['SubnetId'])}, public IP "
                + (n.get("NatGatewayAddresses") or [{}])[0].get("PublicIp", "-"),
            )
            for n in nats
        ),
        *(("Elastic IP", _name(a), a["AllocationId"], a.get("PublicIp", "")) for a in addresses),
    ]
    return pd.DataFrame(rows, columns=SHOW_COLUMNS)


def _on(value: bool) -> str:
    return "on" if value else "off"


def _names(names: dict[str, str], ids: Iterable[str]) -> str:
    return ", ".join(names.get(i, i) for i in ids) or "-"


def _routes_text(table: dict[str, Any], names: dict[str, str]) -> str:
    routes = []
    for route in table.get("Routes", []):
        target = route.get("GatewayId") or route.get("NatGatewayId") or "?"
        state = "" if route.get("State", "active") == "active" else f" ({route['State']})"
        routes.append(f"{route.get('DestinationCidrBlock')} -> {names.get(target, target)}{state}")
    subnets = (a["SubnetId"] for a in table.get("Associations", []) if a.get("SubnetId"))
    return f"routes: {'; '.join(routes)}; subnets: {_names(names, subnets)}"


def _acl_text(acl: dict[str, Any], names: dict[str, str]) -> str:
    inbound = []
    for entry in sorted(acl.get("Entries", []), key=lambda e: e["RuleNumber"]):
        if entry["Egress"] or entry["RuleAction"] != "allow":
            continue
        ports = entry.get("PortRange")
        if entry["Protocol"] == "-1":
            what = "all"
        elif ports:
            low, high = ports["From"], ports["To"]
            what = f"tcp {low}" if low == high else f"tcp {low}-{high}"
        else:
            what = f"protocol {entry['Protocol']}"
        inbound.append(f"{entry['RuleNumber']} {what} from {entry['CidrBlock']}")
    subnets = (a["SubnetId"] for a in acl.get("Associations", []))
    return f"in: {'; '.join(inbound)}; subnets: {_names(names, subnets)}"


def _ingress_text(group: dict[str, Any], names: dict[str, str]) -> str:
    rules = sorted(
        (low, f"{proto} {low} from {names.get(source, source)}")
        for proto, low, _, source in _permission_keys(group.get("IpPermissions", []))
    )
    return "in: " + "; ".join(text for _, text in rules)


# ------------------------------------------------------------------ teardown


@step("Delete the network")
def delete_network(lab: Lab) -> None:
    """Tear down chapters 1-2 in dependency order: NAT gateways and their EIPs, security
    groups, network ACLs, route tables, subnets, the internet gateway, then the VPC.

    Calls DeleteRoute, DeleteNatGateway (waiting until deleted), ReleaseAddress,
    RevokeSecurityGroupIngress (rules naming another group, which would block its
    deletion), DeleteSecurityGroup, ReplaceNetworkAclAssociation (back to the default ACL),
    DeleteNetworkAcl, DisassociateRouteTable, DeleteRouteTable, DeleteSubnet,
    DetachInternetGateway, DeleteInternetGateway and DeleteVpc. A delete that AWS refuses
    with DependencyViolation because a deleted task's or ALB's network interface is not
    released yet is tried again (with growing pauses, up to 15 minutes). Idempotent: what
    is already gone is skipped. Chapters 1-2.
    """
    ec2 = lab.client("ec2")
    vpc = _find_vpc(lab)
    vpc_id = vpc["VpcId"] if vpc else None
    _remove_nat_gateways(lab, vpc_id)
    groups = list(_security_groups(lab, vpc_id).values())
    group_ids = {g["GroupId"] for g in groups}
    # A rule naming another group blocks that group's deletion. The pairs are revoked as
    # DescribeSecurityGroups shows them (with UserId and Description) to match exactly.
    for group in groups:
        references = [
            {
                "IpProtocol": p["IpProtocol"],
                **{k: p[k] for k in ("FromPort", "ToPort") if k in p},
                "UserIdGroupPairs": pairs,
            }
            for p in group.get("IpPermissions", [])
            if (pairs := [g for g in p.get("UserIdGroupPairs", []) if g["GroupId"] in group_ids])
        ]
        if references:
            ec2.revoke_security_group_ingress(GroupId=group["GroupId"], IpPermissions=references)
    for group in groups:
        waiting.retry_while_dependent(
            lambda group_id=group["GroupId"]: ec2.delete_security_group(GroupId=group_id)
        )
    if vpc_id:
        acls = ec2.describe_network_acls(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])[
            "NetworkAcls"
        ]
        default_id = next(a["NetworkAclId"] for a in acls if a["IsDefault"])
        for acl in acls:
            if acl["IsDefault"] or not lab.owns(acl.get("Tags")):
                continue
            for association in acl.get("Associations", []):
                ec2.replace_network_acl_association(
                    AssociationId=association["NetworkAclAssociationId"], NetworkAclId=default_id
                )
            ec2.delete_network_acl(NetworkAclId=acl["NetworkAclId"])
        for table in _vpc_route_tables(lab, vpc_id):
            if not lab.owns(table.get("Tags")):
                continue
            for association in table.get("Associations", []):
                if not association.get("Main"):
                    ec2.disassociate_route_table(
                        AssociationId=association["RouteTableAssociationId"]
                    )
            ec2.delete_route_table(RouteTableId=table["RouteTableId"])
        public_names, private_names = _subnet_names(lab, availability_zones(lab))
        for subnet in _subnets(lab, vpc_id, public_names + private_names).values():
            waiting.retry_while_dependent(
                lambda subnet_id=subnet["SubnetId"]: ec2.delete_subnet(SubnetId=subnet_id)
            )
    for igw in _internet_gateways(lab):
        for attachment in igw.get("Attachments", []):
            # A deleted ALB's public addresses stay mapped for a while.
            waiting.retry_while_dependent(
                lambda igw_id=igw["InternetGatewayId"], vpc=attachment["VpcId"]: (
                    ec2.detach_internet_gateway(InternetGatewayId=igw_id, VpcId=vpc)
                )
            )
        ec2.delete_internet_gateway(InternetGatewayId=igw["InternetGatewayId"])
    if vpc_id:
        waiting.retry_while_dependent(lambda: ec2.delete_vpc(VpcId=vpc_id))


def leftovers(lab: Lab) -> list[tuple[str, str, str]]:
    """What of this module is still tagged for the student: the VPC, subnets, internet
    gateway, route tables, network ACLs, security groups, Elastic IPs and NAT gateways
    (not the deleted ones), as (service, kind, id) rows for teardown.leftovers."""
    ec2, filters = lab.client("ec2"), lab.tag_filters()
    found: list[tuple[str, str, str]] = []
    listings: list[tuple[str, Callable[..., Any], str, str]] = [
        ("vpc", ec2.describe_vpcs, "Vpcs", "VpcId"),
        ("subnet", ec2.describe_subnets, "Subnets", "SubnetId"),
        (
            "internet gateway",
            ec2.describe_internet_gateways,
            "InternetGateways",
            "InternetGatewayId",
        ),
        ("route table", ec2.describe_route_tables, "RouteTables", "RouteTableId"),
        ("network acl", ec2.describe_network_acls, "NetworkAcls", "NetworkAclId"),
        ("security group", ec2.describe_security_groups, "SecurityGroups", "GroupId"),
        ("elastic ip", ec2.describe_addresses, "Addresses", "AllocationId"),
    ]
    for kind, call, key, id_key in listings:
        found += [("ec2", kind, item[id_key]) for item in call(Filters=filters)[key]]
    nats = ec2.describe_nat_gateways(Filters=filters)["NatGateways"]
    found += [
        ("ec2", "nat gateway", n["NatGatewayId"])
        for n in nats
        if n["State"] not in ("deleted", "deleting")
    ]
    return found
