"""Chapter 2's security layers: network ACLs filter traffic per subnet, security groups per
network interface (the ALB, the ECS tasks, RDS).
"""

from __future__ import annotations

from typing import Any

from handson.aws_errors import step
from handson.connection import Lab
from handson.network.model import (
    ALL_EGRESS,
    ANYWHERE,
    PRIVATE_NACL_RULES,
    PUBLIC_NACL_RULES,
    SECURITY_GROUPS,
    NetworkAcls,
    SecurityGroups,
    _by_name,
    _owned,
    _tag_spec,
)
from handson.network.vpc import (
    _require_subnets,
    _require_vpc,
    _subnet_names,
    availability_zones,
)

# ------------------------------------------------------------------- helpers


def _security_groups(lab: Lab, vpc_id: str | None) -> dict[str, dict[str, Any]]:
    names = [lab.name(suffix) for suffix in SECURITY_GROUPS]
    found = lab.client("ec2").describe_security_groups(Filters=_owned(lab, names, vpc_id))
    return _by_name(found["SecurityGroups"])


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
