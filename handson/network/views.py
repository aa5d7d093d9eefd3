"""Reading the built network: ``get_network`` gives its ids to the later chapters,
``show_network`` one row per resource with its settings as text. Both change nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

from handson.aws_errors import step
from handson.connection import Lab
from handson.i18n import _
from handson.network.model import (
    LIVE_NAT_STATES,
    SECURITY_GROUPS,
    SHOW_COLUMNS,
    Network,
    _by_name,
    _missing,
    _name,
    _owned,
)
from handson.network.nat import (
    _eip_names,
    _nat_gateways,
    _nat_names,
)
from handson.network.security import (
    _permission_keys,
    _security_groups,
)
from handson.network.vpc import (
    _find_vpc,
    _internet_gateways,
    _require_internet_gateway,
    _require_subnets,
    _require_vpc,
    _subnet_names,
    _subnets,
    _vpc_route_tables,
    availability_zones,
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
    gateway = _require_internet_gateway(lab, vpc_id)
    zones = availability_zones(lab)
    public_names, private_names = _subnet_names(lab, zones)
    public = _require_subnets(lab, vpc_id, public_names)
    private = _require_subnets(lab, vpc_id, private_names)
    groups = _security_groups(lab, vpc_id)
    for suffix in SECURITY_GROUPS:
        if lab.name(suffix) not in groups:
            raise _missing(
                _("The security group {name}").format(name=lab.name(suffix)),
                "InvalidGroup.NotFound",
                "DescribeSecurityGroups",
            )
    nats = _by_name(_nat_gateways(lab, vpc_id, zones, LIVE_NAT_STATES))
    ordered_nats = [nats[n] for n in _nat_names(lab, zones) if n in nats]
    return Network(
        vpc_id=vpc_id,
        vpc_cidr_block=vpc["CidrBlock"],
        public_subnet_ids=tuple(s["SubnetId"] for s in public),
        private_subnet_ids=tuple(s["SubnetId"] for s in private),
        internet_gateway_id=gateway["InternetGatewayId"],
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
        for proto, low, _high, source in _permission_keys(group.get("IpPermissions", []))
    )
    return "in: " + "; ".join(text for _rule, text in rules)
