"""Chapter 2's NAT gateways: one per zone in the public subnets, each with an Elastic IP,
that the private route tables send 0.0.0.0/0 to; their cost, creation and removal.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd
from botocore.exceptions import WaiterError

from handson import pricing, waiting
from handson.aws_errors import step
from handson.connection import Lab
from handson.exceptions import AwsError, WaitTimeoutError
from handson.i18n import _
from handson.network.model import (
    ANYWHERE,
    LIVE_NAT_STATES,
    NAT_WAIT_SECONDS,
    SERIES_AZS,
    NatGateway,
    _by_name,
    _name,
    _owned,
    _suffix,
    _tag_spec,
)
from handson.network.vpc import (
    _ensure_default_route,
    _require_private_route_tables,
    _require_subnets,
    _require_vpc,
    _route_table_names,
    _subnet_names,
    _vpc_route_tables,
    availability_zones,
)

# ------------------------------------------------------------------- helpers


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
                _("NAT gateway {nat} failed: {reason}").format(
                    nat=failed[0]["NatGatewayId"], reason=failed[0].get("FailureMessage", "")
                ),
                code=str(failed[0].get("FailureCode", "NatGatewayFailed")),
                operation="CreateNatGateway",
                hint=_(
                    "Check that the public subnet's route table sends 0.0.0.0/0 to the "
                    "internet gateway, then run the cell again (a new NAT gateway is created)."
                ),
            ) from error
        raise WaitTimeoutError(
            _(
                "NAT gateways {nats} did not reach the expected state in 10 "
                "minutes ({reason}). Look at them in the VPC console and run the cell again."
            ).format(nats=", ".join(nat_ids), reason=error.reason)
        ) from error


# ---------------------------------------------------------------- chapter 2


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
        _public, private_tables = _route_table_names(lab, zones)
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
    public_names, _private = _subnet_names(lab, zones)
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
    tables = _require_private_route_tables(lab, vpc_id)
    result = []
    for zone, nat_name, table, subnet in zip(
        zones, _nat_names(lab, zones), tables, public_subnets, strict=True
    ):
        nat = nats[nat_name]
        _ensure_default_route(lab, table, NatGatewayId=nat["NatGatewayId"])
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
