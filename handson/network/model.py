"""What the network modules share: the series' CIDRs, zones and names, the network ACL
rules and security groups as tables, the dataclasses the steps return, and the helpers
that name, tag and filter the student's resources (by their tags and ``Name``: see
the package's docstring).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from handson.connection import Lab
from handson.exceptions import NotFoundError
from handson.i18n import N_, _

VPC_CIDR: Final = "10.0.0.0/16"
ANYWHERE: Final = "0.0.0.0/0"
SERIES_REGION: Final = "ap-northeast-1"
SERIES_AZS: Final = ("ap-northeast-1a", "ap-northeast-1c")
PUBLIC_CIDRS: Final = ("10.0.1.0/24", "10.0.2.0/24")
PRIVATE_CIDRS: Final = ("10.0.11.0/24", "10.0.12.0/24")
NOT_BUILT_HINT: Final = N_("Run notebook 00 first: it builds chapters 1-6, starting with the VPC.")
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
        _("{what} doesn't exist yet.").format(what=what),
        code=code,
        operation=operation,
        hint=_(NOT_BUILT_HINT),
    )


def _suffix(zone: str) -> str:
    """``ap-northeast-1a`` -> ``a``: the series names per-zone resources after the letter."""
    return zone[-1]
