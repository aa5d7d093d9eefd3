"""Chapter 8: VPC endpoints instead of the NAT gateways, and VPC Flow Logs.

A task in a private subnet needs four AWS APIs to start and run: ECR (``ecr.api`` for the
registry token, ``ecr.dkr`` for the image manifest, S3 for the image's layers), Secrets
Manager for the DB password and CloudWatch Logs. Interface endpoints put an address of
each API in the private subnets (with private DNS, the usual names resolve to them), the
S3 gateway endpoint adds S3 to the private route tables, and the NAT gateways can go.
Flow Logs record every connection the VPC's network interfaces accept or reject.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import pandas as pd

from handson import iam, logs, pricing, waiting
from handson.aws_errors import step
from handson.connection import Lab
from handson.exceptions import AwsError, ConfigurationError, WaitTimeoutError
from handson.i18n import _
from handson.network.model import (
    SERIES_AZS,
    _by_name,
    _missing,
    _name,
    _owned,
    _tag_spec,
)
from handson.network.security import _ingress_permission, _permission_keys
from handson.network.vpc import (
    _require_private_route_tables,
    _require_subnets,
    _require_vpc,
    _subnet_names,
    availability_zones,
)

__all__ = [
    "INTERFACE_SERVICES",
    "delete_endpoints",
    "endpoints_cost",
    "ensure_endpoints_security_group",
    "ensure_flow_logs",
    "ensure_interface_endpoints",
    "ensure_s3_gateway_endpoint",
    "show_endpoints",
    "show_flow_logs",
    "wait_for_flow_logs",
]

INTERFACE_SERVICES = ("ecr.api", "ecr.dkr", "logs", "secretsmanager")
GATEWAY_SERVICE = "s3"
HTTPS = 443
ENDPOINT_WAIT_SECONDS = 600.0
AGGREGATION_SECONDS = 60
# A flow log record's fields in the default format (version 2), in AWS's order.
FLOW_LOG_FIELDS = (
    "version",
    "account_id",
    "interface_id",
    "srcaddr",
    "dstaddr",
    "srcport",
    "dstport",
    "protocol",
    "packets",
    "bytes",
    "start",
    "end",
    "action",
    "log_status",
)
FLOW_LOG_COLUMNS = FLOW_LOG_FIELDS[2:]  # the version and account are the same on every line
FLOW_ACTIONS = ("ACCEPT", "REJECT")
# AWS delivers records "typically within about 5 minutes"; allow twice that.
FLOW_LOG_WAIT_SECONDS = 900.0
# A record's timestamp is the start of its window, and it arrives up to the interval (600 s)
# and the delivery (about 5 minutes) later (docs/sandbox.md, "VPC Flow Logs"): each poll
# reads again from 20 minutes before the newest record seen.
FLOW_LOG_LATE_MS = 20 * 60 * 1000
# DescribeVpcEndpoints' states; "deleted" ones are listed for a while after a delete.
GONE_STATES = ("deleting", "deleted", "rejected", "failed", "expired")


def _group_name(lab: Lab) -> str:
    return lab.name("vpc-endpoints-sg")


def _endpoint_name(lab: Lab, service: str) -> str:
    return lab.name(f"{service.replace('.', '-')}-endpoint")


def _service_name(lab: Lab, service: str) -> str:
    return f"com.amazonaws.{lab.region}.{service}"


def _endpoints(lab: Lab, vpc_id: str | None, names: list[str]) -> dict[str, dict[str, Any]]:
    found = lab.client("ec2").describe_vpc_endpoints(Filters=_owned(lab, names, vpc_id))
    return _by_name(e for e in found["VpcEndpoints"] if e["State"].lower() not in GONE_STATES)


def _all_names(lab: Lab) -> list[str]:
    return [_endpoint_name(lab, s) for s in (GATEWAY_SERVICE, *INTERFACE_SERVICES)]


def _endpoints_group(lab: Lab, vpc_id: str) -> dict[str, Any] | None:
    found = lab.client("ec2").describe_security_groups(
        Filters=_owned(lab, [_group_name(lab)], vpc_id)
    )["SecurityGroups"]
    return found[0] if found else None


# ---------------------------------------------------------------- chapter 8


@step("Create the VPC endpoints' security group")
def ensure_endpoints_security_group(lab: Lab) -> str:
    """The security group of the interface endpoints' network interfaces: HTTPS (443) from
    anywhere in the VPC, which is how the tasks call the AWS APIs.

    Calls DescribeVpcs and DescribeSecurityGroups, then CreateSecurityGroup and
    AuthorizeSecurityGroupIngress for what is missing. Idempotent. Chapter 8.
    """
    ec2 = lab.client("ec2")
    vpc = _require_vpc(lab)
    vpc_id, cidr = vpc["VpcId"], vpc["CidrBlock"]
    group = _endpoints_group(lab, vpc_id)
    if group is None:
        name = _group_name(lab)
        group_id = ec2.create_security_group(
            GroupName=name,
            Description="VPC endpoints: HTTPS from the VPC",
            VpcId=vpc_id,
            TagSpecifications=_tag_spec(lab, "security-group", name),
        )["GroupId"]
        group = {"GroupId": group_id, "IpPermissions": []}
    if ("tcp", HTTPS, HTTPS, cidr) not in _permission_keys(group.get("IpPermissions", [])):
        ec2.authorize_security_group_ingress(
            GroupId=group["GroupId"],
            IpPermissions=[_ingress_permission(HTTPS, cidr, "HTTPS from the VPC")],
        )
    return str(group["GroupId"])


@step("Create the S3 gateway endpoint")
def ensure_s3_gateway_endpoint(lab: Lab) -> str:
    """A gateway endpoint adds S3 to route tables, free of charge: here the private ones,
    so that the tasks fetch the image's layers (ECR keeps them in S3) without a NAT gateway.

    Calls DescribeVpcs, DescribeRouteTables and DescribeVpcEndpoints, then
    CreateVpcEndpoint, or ModifyVpcEndpoint for a route table it lacks. Idempotent.
    Chapter 8. Returns the endpoint's id.
    """
    ec2 = lab.client("ec2")
    vpc_id = _require_vpc(lab)["VpcId"]
    tables = [t["RouteTableId"] for t in _require_private_route_tables(lab, vpc_id)]
    name = _endpoint_name(lab, GATEWAY_SERVICE)
    endpoint = _endpoints(lab, vpc_id, [name]).get(name)
    if endpoint is None:
        endpoint = ec2.create_vpc_endpoint(
            VpcEndpointType="Gateway",
            VpcId=vpc_id,
            ServiceName=_service_name(lab, GATEWAY_SERVICE),
            RouteTableIds=tables,
            TagSpecifications=_tag_spec(lab, "vpc-endpoint", name),
        )["VpcEndpoint"]
    else:
        missing = [t for t in tables if t not in endpoint.get("RouteTableIds", [])]
        if missing:
            ec2.modify_vpc_endpoint(
                VpcEndpointId=endpoint["VpcEndpointId"], AddRouteTableIds=missing
            )
    return str(endpoint["VpcEndpointId"])


@step("Create the interface endpoints")
def ensure_interface_endpoints(lab: Lab) -> tuple[str, ...]:
    """An interface endpoint gives an AWS API an address in each private subnet; with
    private DNS its usual name (``api.ecr.ap-northeast-1.amazonaws.com``) resolves to it
    inside the VPC. One each for ecr.api, ecr.dkr, logs and secretsmanager, behind the
    endpoints' security group. They bill per hour and zone: see endpoints_cost().

    Calls DescribeVpcs, DescribeSubnets, DescribeSecurityGroups and DescribeVpcEndpoints,
    CreateVpcEndpoint for each missing one, then DescribeVpcEndpoints until all are
    ``available`` (``pending`` for a minute or two on AWS). Idempotent. Chapter 8.
    """
    ec2 = lab.client("ec2")
    vpc_id = _require_vpc(lab)["VpcId"]
    group = _endpoints_group(lab, vpc_id)
    if group is None:
        raise _missing(
            _("The security group {name}").format(name=_group_name(lab)),
            "InvalidGroup.NotFound",
            "DescribeSecurityGroups",
        )
    _public, private_names = _subnet_names(lab, availability_zones(lab))
    subnets = [s["SubnetId"] for s in _require_subnets(lab, vpc_id, private_names)]
    names = [_endpoint_name(lab, s) for s in INTERFACE_SERVICES]
    found = _endpoints(lab, vpc_id, names)
    for service, name in zip(INTERFACE_SERVICES, names, strict=True):
        if name not in found:
            found[name] = ec2.create_vpc_endpoint(
                VpcEndpointType="Interface",
                VpcId=vpc_id,
                ServiceName=_service_name(lab, service),
                SubnetIds=subnets,
                SecurityGroupIds=[group["GroupId"]],
                PrivateDnsEnabled=True,
                TagSpecifications=_tag_spec(lab, "vpc-endpoint", name),
            )["VpcEndpoint"]
    ids = [found[n]["VpcEndpointId"] for n in names]
    _wait_available(lab, ids)
    return tuple(ids)


def _wait_available(lab: Lab, ids: list[str]) -> None:
    ec2 = lab.client("ec2")
    states: dict[str, str] = {}

    def ready() -> bool:
        for endpoint in ec2.describe_vpc_endpoints(VpcEndpointIds=ids)["VpcEndpoints"]:
            states[endpoint["VpcEndpointId"]] = endpoint["State"].lower()
        failed = [i for i, state in states.items() if state in ("failed", "rejected")]
        if failed:
            raise AwsError(
                _("VPC endpoint {endpoint} is {state}.").format(
                    endpoint=failed[0], state=states[failed[0]]
                ),
                code="VpcEndpointFailed",
                operation="CreateVpcEndpoint",
                hint=_("Delete it in the VPC console and run the cell again."),
            )
        return all(state == "available" for state in states.values())

    if not waiting.until(ready, timeout=ENDPOINT_WAIT_SECONDS):
        now = ", ".join(f"{i} {s}" for i, s in states.items())
        raise WaitTimeoutError(
            _(
                "The VPC endpoints did not become available within 10 minutes ({now}). Look "
                "at them in the VPC console and run the cell again."
            ).format(now=now)
        )


@step("Turn on VPC Flow Logs")
def ensure_flow_logs(lab: Lab) -> str:
    """VPC Flow Logs writes a record of every connection the VPC's network interfaces
    accept or reject (``TrafficType=ALL``) to the log group ``/aws/vpc/P-E``, through a
    role it assumes, gathered over one minute (AWS's default is ten).

    Calls what ensure_flow_log_group and ensure_flow_logs_role call, DescribeFlowLogs, then
    CreateFlowLogs when the VPC has none to that group. Idempotent. Chapter 8. Returns the
    flow log's id.
    """
    ec2 = lab.client("ec2")
    vpc_id = _require_vpc(lab)["VpcId"]
    group = logs.ensure_flow_log_group(lab)
    role_arn = iam.ensure_flow_logs_role(lab, log_group_arn=logs.flow_log_group_arn(lab))
    existing = ec2.describe_flow_logs(
        Filters=[{"Name": "resource-id", "Values": [vpc_id]}, *lab.tag_filters()]
    )["FlowLogs"]
    for flow_log in existing:
        if flow_log.get("LogGroupName") == group:
            return str(flow_log["FlowLogId"])
    created = ec2.create_flow_logs(
        ResourceIds=[vpc_id],
        ResourceType="VPC",
        TrafficType="ALL",
        LogDestinationType="cloud-watch-logs",
        LogGroupName=group,
        DeliverLogsPermissionArn=role_arn,
        # Records gathered over 1 minute instead of AWS's default 10: a lesson sees them.
        MaxAggregationInterval=AGGREGATION_SECONDS,
        TagSpecifications=_tag_spec(lab, "vpc-flow-log", lab.name("vpc-flow-log")),
    )
    if created.get("Unsuccessful"):
        error = created["Unsuccessful"][0]["Error"]
        raise AwsError(
            _("CreateFlowLogs: {message}").format(message=error.get("Message", "")),
            code=str(error.get("Code", "FlowLogFailed")),
            operation="CreateFlowLogs",
            hint=_("Check the flow logs role's trust policy and run the cell again."),
        )
    return str(created["FlowLogIds"][0])


def _flow_reader(lab: Lab, since_minutes: float | None) -> logs.EventReader:
    start = None if since_minutes is None else int((time.time() - since_minutes * 60) * 1000)
    group = logs.flow_log_group_name(lab)
    return logs.EventReader(lab, group, start, overlap_ms=FLOW_LOG_LATE_MS)


def _flow_records(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each flow log line's fields by name; lines of another format are skipped."""
    records = []
    for event in events:
        values = event["message"].split()
        if len(values) != len(FLOW_LOG_FIELDS):
            continue
        record: dict[str, Any] = dict(zip(FLOW_LOG_FIELDS, values, strict=True))
        for field in ("srcport", "dstport", "packets", "bytes", "start", "end"):
            if record[field] != "-":
                record[field] = int(record[field])
        records.append(record)
    return records


def _check_flow_filter(action: str | None, port: int | None) -> None:
    if action is not None and action not in FLOW_ACTIONS:
        raise ConfigurationError(
            _(
                "action={action!r}: flow log records say ACCEPT or REJECT; give one of those "
                "(in capitals) or None for both."
            ).format(action=action)
        )
    if port is not None and not (isinstance(port, int) and 0 <= port <= 65535):
        raise ConfigurationError(
            _("port={port!r}: give a TCP port from 0 to 65535, or None.").format(port=port)
        )


def _flow_table(
    records: list[dict[str, Any]], action: str | None, port: int | None
) -> pd.DataFrame:
    kept = [
        r
        for r in records
        if (action is None or r["action"] == action)
        and (port is None or port in (r["srcport"], r["dstport"]))
    ]
    rows = [
        {
            **{f: r[f] for f in FLOW_LOG_COLUMNS},
            "start": _utc_seconds(r["start"]),
            "end": _utc_seconds(r["end"]),
        }
        for r in sorted(kept, key=lambda r: (r["start"], r["end"]))
    ]
    return pd.DataFrame(rows, columns=list(FLOW_LOG_COLUMNS))


def _utc_seconds(value: int | str) -> pd.Timestamp | str:
    return value if isinstance(value, str) else pd.Timestamp(value, unit="s", tz="UTC")


@step("Show the flow log records")
def show_flow_logs(
    lab: Lab,
    *,
    action: str | None = None,
    port: int | None = None,
    limit: int = 20,
    since_minutes: float | None = None,
) -> pd.DataFrame:
    """The latest ``limit`` records VPC Flow Logs wrote, oldest first. Each is one direction
    of one connection as one network interface saw it over the aggregation interval:
    source and destination address and port, protocol (6 is TCP), packets, bytes, the
    capture window, and ACCEPT or REJECT (what the security groups and network ACLs
    decided). ``action`` keeps ACCEPT or REJECT records; ``port`` keeps those with that
    port at either end (3000: the ALB and the tasks; 443: the endpoints; 5432: the DB).

    Calls FilterLogEvents on ``/aws/vpc/P-E``. Read-only. Chapter 8. AWS delivers the
    records a few minutes after their interval: an empty table may only be early.
    """
    _check_flow_filter(action, port)
    if limit < 1:
        raise ConfigurationError(
            _("limit={limit!r}: ask for at least 1 record.").format(limit=limit)
        )
    table = _flow_table(_flow_records(_flow_reader(lab, since_minutes).read()), action, port)
    return table.tail(limit).reset_index(drop=True)


@step("Wait for flow log records")
def wait_for_flow_logs(
    lab: Lab,
    *,
    action: str = "ACCEPT",
    port: int | None = None,
    since_minutes: float | None = None,
    timeout: float = FLOW_LOG_WAIT_SECONDS,
) -> pd.DataFrame:
    """Wait until VPC Flow Logs has delivered a record with ``action`` (and ``port`` at
    either end), then return those records, as show_flow_logs does. AWS delivers a
    record some minutes after the traffic (up to about 10), so this can take a while.

    Calls FilterLogEvents every few seconds. Read-only. Chapter 8.
    """
    _check_flow_filter(action, port)
    found = pd.DataFrame(columns=list(FLOW_LOG_COLUMNS))
    reader = _flow_reader(lab, since_minutes)
    records: list[dict[str, Any]] = []

    def delivered() -> bool:
        nonlocal found
        records.extend(_flow_records(reader.read()))  # only what arrived since the last poll
        found = _flow_table(records, action, port)
        return not found.empty

    if not waiting.until(delivered, timeout=timeout):
        where = _(" on port {port}").format(port=port) if port is not None else ""
        raise WaitTimeoutError(
            _(
                "No {action} record{where} reached {group} within "
                "{minutes:g} minutes. Check in the VPC console (your VPC, Flow logs tab) "
                "that the flow log's delivery status is SUCCESS, that traffic flows, and run the "
                "cell again."
            ).format(
                action=action,
                where=where,
                group=logs.flow_log_group_name(lab),
                minutes=timeout / 60,
            )
        )
    return found


@step("Show the VPC endpoints")
def show_endpoints(lab: Lab) -> pd.DataFrame:
    """The VPC's endpoints: the AWS API each serves, its type and state, whether its private
    DNS name is on, and where it is (subnets for interface ones, route tables for S3's).

    Calls DescribeVpcs and DescribeVpcEndpoints. Read-only. Chapter 8.
    """
    vpc_id = _require_vpc(lab)["VpcId"]
    rows = [
        {
            "name": _name(e),
            "service": e["ServiceName"].rsplit(f"{lab.region}.", 1)[-1],
            "type": e["VpcEndpointType"],
            "state": e["State"].lower(),
            "private_dns": bool(e.get("PrivateDnsEnabled")),
            "in": ", ".join(e.get("SubnetIds") or e.get("RouteTableIds") or []),
        }
        for e in _endpoints(lab, vpc_id, _all_names(lab)).values()
    ]
    columns = ["name", "service", "type", "state", "private_dns", "in"]
    return pd.DataFrame(rows, columns=columns).sort_values("name", ignore_index=True)


def hourly_cost(lab: Lab) -> pricing.Estimate:
    """What the student's interface endpoints cost per hour (each zone it has an address
    in; the S3 gateway endpoint is free). Calls DescribeVpcEndpoints. Read-only."""
    listed = lab.client("ec2").describe_vpc_endpoints(Filters=lab.tag_filters())["VpcEndpoints"]
    zones = sum(
        len(e.get("SubnetIds") or [])
        for e in listed
        if e["VpcEndpointType"] == "Interface" and e["State"].lower() not in GONE_STATES
    )
    return pricing.interface_endpoints(lab.region, zones, 1)  # one per endpoint and zone


@step("Compare the NAT gateways with the VPC endpoints")
def endpoints_cost(lab: Lab) -> pd.DataFrame:
    """What the private subnets' way out costs: two NAT gateways (with their public IPv4
    addresses) against four interface endpoints in two zones and the free S3 gateway
    endpoint, per hour and per month, before data charges.

    Makes no API call (prices from handson.pricing). Chapter 8.
    """
    zones = len(SERIES_AZS)
    estimates = [
        ("NAT gateways (chapter 2)", pricing.nat_gateways(lab.region, zones)),
        (
            "interface endpoints (chapter 8)",
            pricing.interface_endpoints(lab.region, len(INTERFACE_SERVICES), zones),
        ),
        ("S3 gateway endpoint (chapter 8)", pricing.Estimate("gateway VPC endpoint", 1, 0.0)),
    ]
    rows = [
        {
            "way out": label,
            "quantity": e.quantity,
            "usd_per_hour": round(e.usd_per_hour, 4),
            "usd_per_month": round(e.usd_per_month, 2),
        }
        for label, e in estimates
    ]
    return pd.DataFrame(rows)


# ------------------------------------------------------------------ teardown


@step("Delete the VPC endpoints and flow logs")
def delete_endpoints(lab: Lab) -> None:
    """Tear down chapter 8: the flow logs, the endpoints (waiting until they are gone, as
    their network interfaces hold the security group), the endpoints' security group, the
    flow logs role and log group.

    Calls DescribeFlowLogs, DeleteFlowLogs, DescribeVpcEndpoints, DeleteVpcEndpoints,
    DescribeSecurityGroups, DeleteSecurityGroup (again while AWS answers
    DependencyViolation), and what delete_flow_logs_role and delete_flow_log_group call.
    Idempotent. Chapter 8.
    """
    ec2 = lab.client("ec2")
    flow_logs = ec2.describe_flow_logs(Filters=lab.tag_filters())["FlowLogs"]
    if flow_logs:
        ec2.delete_flow_logs(FlowLogIds=[f["FlowLogId"] for f in flow_logs])
    endpoints = _endpoints(lab, None, _all_names(lab))
    ids = [e["VpcEndpointId"] for e in endpoints.values()]
    if ids:
        ec2.delete_vpc_endpoints(VpcEndpointIds=ids)
        gone = waiting.until(
            lambda: not _endpoints(lab, None, _all_names(lab)), timeout=ENDPOINT_WAIT_SECONDS
        )
        if not gone:
            raise WaitTimeoutError(
                _(
                    "The VPC endpoints were not deleted within 10 minutes. Look at them in the "
                    "VPC console and run the cell again."
                )
            )
    found = ec2.describe_security_groups(Filters=_owned(lab, [_group_name(lab)]))["SecurityGroups"]
    for group in found:
        waiting.retry_while_dependent(
            lambda group_id=group["GroupId"]: ec2.delete_security_group(GroupId=group_id)
        )
    iam.delete_flow_logs_role(lab)
    logs.delete_flow_log_group(lab)


def leftovers(lab: Lab) -> list[tuple[str, str, str]]:
    """Chapter 8's EC2 resources still tagged for the student (the endpoints' security
    group is among the network's security groups): endpoints and flow logs."""
    ec2, filters = lab.client("ec2"), lab.tag_filters()
    endpoints = ec2.describe_vpc_endpoints(Filters=filters)["VpcEndpoints"]
    found = [
        ("ec2", "vpc endpoint", e["VpcEndpointId"])
        for e in endpoints
        if e["State"].lower() not in GONE_STATES
    ]
    found += [
        ("ec2", "flow log", f["FlowLogId"])
        for f in ec2.describe_flow_logs(Filters=filters)["FlowLogs"]
    ]
    return found
