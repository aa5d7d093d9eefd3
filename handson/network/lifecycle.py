"""The whole network at once: ``ensure_network`` builds chapters 1-2 in order (notebook
00), ``delete_network`` tears them down in dependency order and ``leftovers`` lists what is
still tagged for the student (for the teardown).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from handson import waiting
from handson.aws_errors import step
from handson.connection import Lab
from handson.network.model import (
    Network,
)
from handson.network.nat import (
    _remove_nat_gateways,
    ensure_nat_gateways,
)
from handson.network.security import (
    _security_groups,
    ensure_network_acls,
    ensure_security_groups,
)
from handson.network.vpc import (
    _find_vpc,
    _internet_gateways,
    _subnet_names,
    _subnets,
    _vpc_route_tables,
    availability_zones,
    ensure_internet_gateway,
    ensure_route_tables,
    ensure_subnets,
    ensure_vpc,
)

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
