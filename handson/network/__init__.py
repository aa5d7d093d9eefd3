"""The VPC network (chapter 1) and its security layers and NAT gateways (chapter 2).

A VPC ``10.0.0.0/16`` spans two Availability Zones. Each zone has a public subnet (its
route table sends 0.0.0.0/0 to the internet gateway: the ALB lives there) and a private
subnet (ECS tasks and RDS; out to the internet only through an optional NAT gateway).
Network ACLs filter traffic per subnet, security groups per network interface.

Every look-up filters on the student's tags (``lab.tag_filters()``) and the resource's
``Name``, so students sharing an account never see each other's network.

One module per concern: ``model`` (constants, tables, dataclasses, shared helpers),
``vpc`` (chapter 1), ``security`` (network ACLs and security groups), ``nat`` (NAT
gateways), ``endpoints`` (chapter 8: VPC endpoints and flow logs), ``views``
(get_network, show_network) and ``lifecycle`` (ensure_network,
delete_network, leftovers). This package only gathers their public names.
"""

from __future__ import annotations

from handson.network import endpoints as endpoints
from handson.network.endpoints import (
    INTERFACE_SERVICES,
    delete_endpoints,
    endpoints_cost,
    ensure_endpoints_security_group,
    ensure_flow_logs,
    ensure_interface_endpoints,
    ensure_s3_gateway_endpoint,
    show_endpoints,
    show_flow_logs,
    wait_for_flow_logs,
)
from handson.network.lifecycle import delete_network, ensure_network
from handson.network.lifecycle import leftovers as leftovers
from handson.network.model import ANYWHERE as ANYWHERE
from handson.network.model import LIVE_NAT_STATES as LIVE_NAT_STATES
from handson.network.model import NOT_BUILT_HINT as NOT_BUILT_HINT
from handson.network.model import (
    NatGateway,
    Network,
    NetworkAcls,
    RouteTables,
    SecurityGroups,
    Subnet,
    Subnets,
    Vpc,
)
from handson.network.nat import ensure_nat_gateways, nat_gateway_cost
from handson.network.security import ensure_network_acls, ensure_security_groups
from handson.network.views import get_network, show_network
from handson.network.vpc import (
    availability_zones,
    ensure_internet_gateway,
    ensure_route_tables,
    ensure_subnets,
    ensure_vpc,
)

__all__ = [
    "INTERFACE_SERVICES",
    "NatGateway",
    "Network",
    "NetworkAcls",
    "RouteTables",
    "SecurityGroups",
    "Subnet",
    "Subnets",
    "Vpc",
    "availability_zones",
    "delete_endpoints",
    "delete_network",
    "endpoints_cost",
    "ensure_endpoints_security_group",
    "ensure_flow_logs",
    "ensure_interface_endpoints",
    "ensure_internet_gateway",
    "ensure_nat_gateways",
    "ensure_network",
    "ensure_network_acls",
    "ensure_route_tables",
    "ensure_s3_gateway_endpoint",
    "ensure_security_groups",
    "ensure_subnets",
    "ensure_vpc",
    "get_network",
    "nat_gateway_cost",
    "show_endpoints",
    "show_flow_logs",
    "show_network",
    "wait_for_flow_logs",
]
