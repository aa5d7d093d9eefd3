"""moto's state as plain data: what the data plane reads from moto, and writes there.

moto answers the AWS APIs (the control plane). This module

* builds moto's WSGI application, seeds its random stream (from which every sandbox id
  is drawn too) and resets it;
* gives the data plane plain-data views of moto's state (task definitions, services,
  secrets, IAM policies, ECR images, log groups, target groups, load balancers, security
  groups, subnets and network ACLs) and makes the few changes the data plane makes there
  (task network interfaces, target registrations, log groups and events);
* defines ``ApiError``, the AWS error answer of the data plane's checks.

It imports none of the data plane's modules, so that all of them can import it; the
hooks that call the data plane back are in ``hooks``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from moto.core.exceptions import ServiceException
from moto.ec2.models import ec2_backends
from moto.ecr.models import ecr_backends
from moto.ecs.models import ecs_backends
from moto.elbv2.models import elbv2_backends
from moto.iam.models import iam_backends
from moto.logs.models import logs_backends
from moto.moto_api._internal import mock_random
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.rds.models import rds_backends
from moto.secretsmanager.models import secretsmanager_backends


class ApiError(Exception):
    """An AWS error answer: ``code`` is the AWS error code, ``message`` its text."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# --------------------------------------------------------------------------- app


def wsgi_app() -> Callable[..., Any]:
    """moto's server application, dispatching each request to its service."""
    return DomainDispatcherApplication(create_backend_app)


def seed(value: int) -> None:
    """Seed moto's random stream, from which every sandbox id is drawn too."""
    mock_random.seed(value)


def reset() -> None:
    """Forget every resource in every account, as POST /moto-api/reset does."""
    from moto.moto_api._internal.models import moto_api_backend

    moto_api_backend.reset()


def random_hex(length: int) -> str:
    return mock_random.get_random_hex(length)


def random_uuid() -> str:
    return str(mock_random.uuid4())


def random_digits(length: int) -> str:
    return "".join(str(mock_random.randint(0, 9)) for _ in range(length))


# -------------------------------------------------------------------------- ECS


def _cluster(account: str, region: str, name_or_arn: str | None) -> Any:
    return ecs_backends[account][region]._get_cluster(name_or_arn or "default")


def cluster_arn(account: str, region: str, name_or_arn: str | None) -> str:
    """The ARN of an existing cluster (ClusterNotFoundException otherwise)."""
    return str(_cluster(account, region, name_or_arn).arn)


def task_definition(account: str, region: str, name_or_arn: str) -> dict[str, Any] | None:
    """A registered task definition in the API's shape, or None."""
    backend = ecs_backends[account][region]
    try:
        td = backend.describe_task_definition(name_or_arn)
    except ServiceException:
        return None
    return {
        "taskDefinitionArn": td.arn,
        "family": td.family,
        "revision": td.revision,
        "containerDefinitions": [dict(c) for c in td.container_definitions],
        "cpu": td.cpu,
        "memory": td.memory,
        "networkMode": td.network_mode,
        "executionRoleArn": getattr(td, "execution_role_arn", None),
        "taskRoleArn": getattr(td, "task_role_arn", None),
        "requiresCompatibilities": td.requires_compatibilities or [],
        "status": td.status,
    }


def _service_info(service: Any) -> dict[str, Any]:
    return {
        "serviceArn": service.arn,
        "serviceName": service.name,
        "clusterArn": service.cluster_arn,
        "taskDefinition": service.task_definition,
        "desiredCount": service.desired_count,
        "status": service.status,
        "loadBalancers": service.load_balancers,
        "networkConfiguration": service.network_configuration,
        "deploymentId": service.deployments[0]["id"] if service.deployments else None,
    }


def existing_service(account: str, region: str, cluster: str, name: str) -> dict[str, Any] | None:
    """The service with that name in the cluster (any status), or None."""
    backend = ecs_backends[account][region]
    try:
        service = backend._get_service(cluster, name)
    except ServiceException:
        return None
    return _service_info(service)


# ------------------------------------------------------------------------ ELBv2


def _target_group_view(tg: Any, backend: Any) -> dict[str, Any]:
    return {
        "arn": tg.arn,
        "name": tg.name,
        "protocol": tg.protocol,
        "port": int(tg.port) if tg.port else None,
        "targetType": tg.target_type,
        "healthCheckEnabled": tg.health_check_enabled,
        "healthCheckPath": tg.health_check_path or "/",
        "healthCheckPort": tg.health_check_port or "traffic-port",
        "healthCheckIntervalSeconds": int(tg.health_check_interval_seconds),
        "healthCheckTimeoutSeconds": int(tg.health_check_timeout_seconds),
        "healthyThresholdCount": int(tg.healthy_threshold_count),
        "unhealthyThresholdCount": int(tg.unhealthy_threshold_count),
        "matcher": str((getattr(tg, "matcher", None) or {}).get("HttpCode", "200")),
        "deregistrationDelay": int(tg.attributes.get("deregistration_delay.timeout_seconds", 300)),
        "loadBalancerArns": list(tg.load_balancer_arns),
        "targets": [
            {"Id": t["Id"], "Port": int(t.get("Port") or tg.port)} for t in tg.targets.values()
        ],
    }


def target_groups() -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Every target group of every account and region: (account, region, view)."""
    for account, regions in list(elbv2_backends.items()):
        for region, backend in list(regions.items()):
            for tg in list(backend.target_groups.values()):
                yield account, region, _target_group_view(tg, backend)


def target_group(account: str, region: str, arn: str) -> dict[str, Any] | None:
    backend = elbv2_backends[account][region]
    tg = backend.target_groups.get(arn)
    return None if tg is None else _target_group_view(tg, backend)


def register_target(account: str, region: str, tg_arn: str, ip: str, port: int) -> None:
    elbv2_backends[account][region].register_targets(tg_arn, [{"Id": ip, "Port": port}])


def deregister_target(account: str, region: str, tg_arn: str, ip: str, port: int) -> None:
    backend = elbv2_backends[account][region]
    tg = backend.target_groups.get(tg_arn)
    if tg is not None and ip in tg.targets:
        backend.deregister_targets(tg_arn, [{"Id": ip, "Port": port}])


def load_balancer_by_dns(dns_name: str) -> dict[str, Any] | None:
    """The load balancer answering at ``dns_name``, with its listeners' forward targets."""
    wanted = dns_name.lower().rstrip(".")
    for account, regions in list(elbv2_backends.items()):
        for region, backend in list(regions.items()):
            for lb in list(backend.load_balancers.values()):
                if lb.dns_name.lower() != wanted:
                    continue
                listeners: dict[int, list[tuple[str, int]]] = {}
                for listener in lb.listeners.values():
                    listeners[int(listener.port)] = _forward_targets(listener.default_actions)
                return {
                    "account": account,
                    "region": region,
                    "arn": lb.arn,
                    "listeners": listeners,
                    "subnets": [getattr(s, "id", s) for s in lb.subnets],
                    "securityGroups": list(lb.security_groups or []),
                }
    return None


def load_balancers() -> Iterator[dict[str, Any]]:
    """Every load balancer: account, region, name, DNS name, listener ports."""
    for account, regions in list(elbv2_backends.items()):
        for region, backend in list(regions.items()):
            for lb in list(backend.load_balancers.values()):
                yield {
                    "account": account,
                    "region": region,
                    "name": lb.name,
                    "dnsName": lb.dns_name,
                    "ports": sorted(int(li.port) for li in lb.listeners.values()),
                }


def _forward_targets(actions: list[Any]) -> list[tuple[str, int]]:
    for action in actions:
        data = getattr(action, "data", {})
        if data.get("Type") != "forward":
            continue
        if data.get("TargetGroupArn"):
            return [(data["TargetGroupArn"], 1)]
        groups = (data.get("ForwardConfig") or {}).get("TargetGroups") or []
        return [(g["TargetGroupArn"], int(g.get("Weight", 1))) for g in groups]
    return []


# -------------------------------------------------------------------------- RDS


def set_db_port(account: str, region: str, identifier: str, port: int) -> None:
    from moto.rds.models import rds_backends

    rds_backends[account][region].databases[identifier].port = port


# ------------------------------------------------------------- reads for tasks


def role_policies(account: str, role_arn: str) -> list[dict[str, Any]] | None:
    """Inline and attached policy documents of a role, or None if it doesn't exist."""
    name = role_arn.rsplit("/", 1)[-1]
    backend = iam_backends[account]["global"]
    try:
        role = backend.get_role(name)
    except Exception:  # moto raises IAMNotFoundException
        return None
    documents = [_document(doc) for doc in role.policies.values()]
    for policy in role.managed_policies.values():
        version = next((v for v in policy.versions if v.is_default), None)
        if version is not None:
            documents.append(_document(version.document))
    return documents


def _role(account: str, role_arn: str) -> Any:
    """moto's role of ``account`` with that ARN, or None."""
    if f":{account}:role/" not in role_arn:
        return None  # a role of another account (or not a role ARN at all)
    try:
        return iam_backends[account]["global"].get_role(role_arn.rsplit("/", 1)[-1])
    except Exception:  # moto raises IAMNotFoundException
        return None


def role_trust_policy(account: str, role_arn: str) -> dict[str, Any] | None:
    """A role's trust policy (who may assume it), or None if the role doesn't exist."""
    role = _role(account, role_arn)
    return None if role is None else _document(role.assume_role_policy_document or "{}")


def role_propagating(account: str, role_arn: str) -> bool:
    """Whether the role was created, or its trust policy changed, too recently for ECS to
    assume it (IAM is eventually consistent)."""
    return hasattr(_role(account, role_arn), "_handson_propagating")


def _document(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    from urllib.parse import unquote

    text = str(raw)
    try:
        return dict(json.loads(text))
    except json.JSONDecodeError:
        return dict(json.loads(unquote(text)))


def secret(account: str, region: str, secret_id: str) -> dict[str, Any] | None:
    """A secret's ARN and current value ({"arn", "name", "secretString"}), or None."""
    backend = secretsmanager_backends[account][region]
    try:
        value = backend.get_secret_value(secret_id, version_id=None, version_stage=None)
    except Exception:  # moto raises its ResourceNotFoundException / InvalidRequestException
        return None
    return {"arn": value["ARN"], "name": value["Name"], "secretString": value.get("SecretString")}


def image_manifest(
    account: str, region: str, repository: str, tag: str | None, digest: str | None
) -> tuple[str, str] | None:
    """(manifest, digest) of an image in an ECR repository, or None when it isn't there."""
    try:
        repo = ecr_backends[account][region]._get_repository(repository)
    except Exception:  # RepositoryNotFoundException
        return None
    for image in repo.images:
        if (digest and image.image_digest == digest) or (tag and tag in image.image_tags):
            return str(image.image_manifest), str(image.image_digest)
    return None


def log_group_exists(account: str, region: str, name: str) -> bool:
    return name in logs_backends[account][region].groups


def create_log_group(account: str, region: str, name: str) -> None:
    backend = logs_backends[account][region]
    if name not in backend.groups:
        backend.create_log_group(name, tags={})


def put_log_events(
    account: str, region: str, group: str, stream: str, events: list[dict[str, Any]]
) -> bool:
    """Append events to a stream, creating the stream; False when the group is gone."""
    backend = logs_backends[account][region]
    if group not in backend.groups:
        return False
    backend.ensure_log_stream(group, stream)
    backend.put_log_events(group, stream, events)
    return True


# -------------------------------------------------------------------------- EC2


def create_eni(
    account: str, region: str, subnet_id: str, group_ids: list[str], description: str
) -> dict[str, Any]:
    """An ENI with an address from the subnet, as Fargate makes for each task."""
    backend = ec2_backends[account][region]
    subnet = backend.get_subnet(subnet_id)
    eni = backend.create_network_interface(
        subnet=subnet, private_ip_address=None, group_ids=group_ids, description=description
    )
    assign_subnet_address(eni)
    eni.status = "in-use"
    eni.interface_type = "interface"
    return {
        "id": eni.id,
        "ip": eni.private_ip_address,
        "mac": eni.mac_address,
        "availabilityZone": subnet.availability_zone,
    }


def assign_subnet_address(eni: Any) -> None:
    """Give a moto ENI the next free address of its subnet, as AWS does (moto draws a
    random one, which may be any address of the subnet or, for an endpoint's, outside it)."""
    ip = eni.subnet.get_available_subnet_ip(eni)
    eni.private_ip_address = ip
    eni.private_ip_addresses = [{"Primary": True, "PrivateIpAddress": ip}]
    if getattr(eni, "private_dns_name", None):
        eni.private_dns_name = f"ip-{ip.replace('.', '-')}.{eni.private_dns_name.split('.', 1)[1]}"


def delete_eni(account: str, region: str, eni_id: str) -> None:
    backend = ec2_backends[account][region]
    eni = backend.enis.get(eni_id)
    if eni is None:
        return
    try:
        eni.subnet.del_subnet_ip(eni.private_ip_address)
    except KeyError:
        pass
    backend.enis.pop(eni_id, None)


def egress(account: str, region: str, subnet_id: str) -> dict[str, Any]:
    """How a subnet reaches AWS services: its default route ("igw", "nat" or None), the
    NAT gateway that route names ({"id", "subnet"}, else None), the services it reaches
    through VPC endpoints (interface ones with private DNS, and gateway ones on its route
    table) and each interface one's {"id", "subnets", "groups"} by service (the VPC's
    default security group when the endpoint names none, as AWS associates it), with its
    network interface in each subnet ({"id", "ip"} by subnet id)."""
    backend = ec2_backends[account][region]
    subnet = backend.get_subnet(subnet_id)
    tables = [t for t in backend.route_tables.values() if t.vpc_id == subnet.vpc_id]
    table = next((t for t in tables if subnet_id in t._associations.values()), None)
    if table is None:
        table = next((t for t in tables if t.main_association_id), None)
    default_route, nat = None, None
    for route in table.routes if table else []:
        if route.destination_cidr_block != "0.0.0.0/0":
            continue
        if route.nat_gateway is not None and route.nat_gateway.state == "available":
            default_route = "nat"
            nat = {"id": route.nat_gateway.id, "subnet": route.nat_gateway.subnet_id}
        elif route.gateway is not None and str(route.gateway.id).startswith("igw-"):
            default_route = "igw"
    services = set()
    interfaces: dict[str, dict[str, Any]] = {}
    default_group = backend.get_default_security_group(subnet.vpc_id)
    for endpoint in backend.vpc_end_points.values():
        if endpoint.vpc_id != subnet.vpc_id or endpoint.state != "available":
            continue
        name = endpoint.service_name.split(f"{region}.", 1)[-1]
        if endpoint.vpc_endpoint_type == "Gateway":
            if table is not None and table.id in (endpoint.route_table_ids or []):
                services.add(name)
        elif endpoint.private_dns_enabled:
            services.add(name)
            groups = list(endpoint.security_group_ids) or (
                [default_group.id] if default_group is not None else []
            )
            enis = [backend.enis.get(i) for i in endpoint.network_interface_ids or []]
            interfaces[name] = {
                "id": endpoint.id,
                "subnets": list(endpoint.subnet_ids or []),
                "groups": groups,
                "interfaces": {
                    eni.subnet.id: {"id": eni.id, "ip": eni.private_ip_address}
                    for eni in enis
                    if eni is not None
                },
            }
    return {
        "default_route": default_route,
        "nat": nat,
        "endpoint_services": services,
        "interface_endpoints": interfaces,
    }


def flow_logs(account: str, region: str) -> list[dict[str, Any]]:
    """An account's active flow logs that publish to CloudWatch Logs: {"id", "resource"
    (a VPC, subnet or ENI id), "traffic" (ALL, ACCEPT or REJECT), "group", "role",
    "interval" (seconds)}."""
    backend = ec2_backends[account][region]
    return [
        {
            "id": f.id,
            "resource": f.resource_id,
            "traffic": f.traffic_type,
            "group": f.log_group_name,
            "role": f.deliver_logs_permission_arn,
            "interval": int(f.max_aggregation_interval or 600),
        }
        for f in list(backend.flow_logs.values())
        if f.flow_log_status == "ACTIVE"
        and (f.log_destination_type or "cloud-watch-logs") == "cloud-watch-logs"
    ]


def set_flow_log_delivery(account: str, region: str, flow_log_id: str, error: str | None) -> None:
    """Record whether a flow log's last delivery worked: DeliverLogsStatus SUCCESS, or
    FAILED with ``error`` as its DeliverLogsErrorMessage."""
    flow_log = ec2_backends[account][region].flow_logs.get(flow_log_id)
    if flow_log is not None:
        flow_log.deliver_logs_status = "FAILED" if error else "SUCCESS"
        flow_log.deliver_logs_error_message = error


def account_of(access_key_id: str) -> str:
    """The account an access key belongs to (assumed-role keys included)."""
    from moto.iam.models import get_account_id_from

    return str(get_account_id_from(access_key_id))


def accounts() -> list[str]:
    """Accounts that have made at least one ECS, ELB or EC2 call."""
    seen: set[str] = set()
    for backends in (ecs_backends, elbv2_backends, ec2_backends):
        seen.update(backends.keys())
    return sorted(seen)


# ------------------------------------------------ EC2: security groups and network ACLs
#
# Plain-data views for the data plane's firewall, and a counter that moves whenever an
# operation changes a rule (see hooks), so that the firewall drops what it has cached.

_rules_version = 0


def rules_version() -> int:
    """A number that changes whenever a security-group or network-ACL rule changes."""
    return _rules_version


def rules_changed() -> None:
    """Move ``rules_version`` on (the hooks call this after each rule-changing operation)."""
    global _rules_version
    _rules_version += 1


def _rule_view(rule: Any) -> dict[str, Any]:
    protocol = str(rule.ip_protocol if rule.ip_protocol is not None else "-1")
    protocol = {"tcp": "6", "udp": "17", "icmp": "1", "all": "-1"}.get(protocol, protocol)
    cidr = (getattr(rule, "ip_range", None) or {}).get("CidrIp")
    group = (getattr(rule, "source_group", None) or {}).get("GroupId")
    return {
        "protocol": protocol,
        "from": int(rule.from_port) if rule.from_port is not None else 0,
        "to": int(rule.to_port) if rule.to_port is not None else 65535,
        "cidrs": [cidr] if cidr else [],
        "groups": [group] if group else [],
    }


def _acl_entry_view(entry: Any) -> dict[str, Any]:
    protocol = str(entry.protocol if entry.protocol is not None else "-1").lower()
    protocol = {"tcp": "6", "udp": "17", "icmp": "1", "all": "-1"}.get(protocol, protocol)
    return {
        "number": int(entry.rule_number),
        "protocol": protocol,
        "allow": str(entry.rule_action).lower() == "allow",
        "egress": str(entry.egress).lower() == "true",
        "cidr": entry.cidr_block,
        "from": int(entry.port_range_from) if entry.port_range_from not in (None, "") else 0,
        "to": int(entry.port_range_to) if entry.port_range_to not in (None, "") else 65535,
    }


def network_rules(account: str, region: str) -> dict[str, Any]:
    """An account's security groups ({"ingress", "egress"} rule lists by group id), its
    subnets ({"cidr", "az", "vpc"}) and each subnet's network ACL entries in rule-number
    order (the VPC's default ACL for a subnet associated with none)."""
    backend = ec2_backends[account][region]
    groups: dict[str, Any] = {}
    for by_id in list(backend.groups.values()):
        for group in list(by_id.values()):
            groups[group.id] = {
                "vpc": group.vpc_id,
                "ingress": [_rule_view(r) for r in list(group.ingress_rules)],
                "egress": [_rule_view(r) for r in list(group.egress_rules)],
            }
    subnets: dict[str, Any] = {}
    for zone in list(backend.subnets.values()):
        for subnet in list(zone.values()):
            subnets[subnet.id] = {
                "cidr": subnet.cidr_block,
                "az": subnet.availability_zone,
                "vpc": subnet.vpc_id,
            }
    acls: dict[str, list[dict[str, Any]]] = {}
    defaults: dict[str, list[dict[str, Any]]] = {}
    for acl in list(backend.network_acls.values()):
        entries = sorted((_acl_entry_view(e) for e in list(acl.network_acl_entries)),
                         key=lambda e: e["number"])  # fmt: skip
        if acl.default:
            defaults[acl.vpc_id] = entries
        for association in list(acl._associations.values()):
            acls[association.subnet_id] = entries
    for subnet_id, info in subnets.items():
        if subnet_id not in acls:
            acls[subnet_id] = defaults.get(info["vpc"], [])
    return {"groups": groups, "subnets": subnets, "acls": acls}


def load_balancer_network(account: str, region: str, arn: str) -> dict[str, Any] | None:
    """A load balancer's subnets and security groups, or None."""
    lb = elbv2_backends[account][region].load_balancers.get(arn)
    if lb is None:
        return None
    return {
        "arn": lb.arn,
        "subnets": [getattr(s, "id", s) for s in lb.subnets],
        "securityGroups": list(lb.security_groups or []),
    }


def db_instance_network(account: str, region: str, identifier: str) -> dict[str, Any] | None:
    """A DB instance's security groups and the subnets AWS may place it in (its subnet
    group's; without one, those of its security group's VPC), or None."""
    backend = rds_backends[account][region]
    instance = backend.databases.get(identifier)
    if instance is None:
        return None
    groups = list(instance.vpc_security_group_ids or [])
    subnets: list[str] = []
    # moto keeps the subnet group object (its name property is write-only) and lists its
    # subnets as DescribeDBSubnetGroups answers them.
    group = getattr(instance, "db_subnet_group", None)
    if group is not None:
        subnets = [s["SubnetIdentifier"] for s in group.subnets]
    elif groups:
        ec2 = ec2_backends[account][region]
        sg = ec2.get_security_group_from_id(groups[0])
        if sg is not None:
            for zone in list(ec2.subnets.values()):
                subnets += sorted(s.id for s in zone.values() if s.vpc_id == sg.vpc_id)
    return {"securityGroups": groups, "subnets": subnets, "port": int(instance.port)}
