"""On-Demand prices the kit shows before it creates something that costs money.

USD, Linux/x86, from AWS Price List records collected in 2026 (docs/sandbox.md,
"Prices"). Re-check before relying on them for billing.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from handson.exceptions import ConfigurationError
from handson.i18n import N_, _

# region -> item -> USD per hour (per GB-hour for memory)
HOURLY: dict[str, dict[str, float]] = {
    "ap-northeast-1": {
        "nat_gateway": 0.062,
        "alb": 0.0243,
        "alb_lcu": 0.008,
        "fargate_vcpu": 0.05056,
        "fargate_gb": 0.00553,
        "public_ipv4": 0.005,
        "interface_endpoint_az": 0.014,
        "rds_db.t3.micro": 0.026,
    },
    "us-east-1": {
        "nat_gateway": 0.045,
        "alb": 0.0225,
        "alb_lcu": 0.008,
        "fargate_vcpu": 0.04048,
        "fargate_gb": 0.004445,
        "public_ipv4": 0.005,
        "interface_endpoint_az": 0.01,
        "rds_db.t3.micro": 0.018,
    },
}
# region -> item -> USD per month (per GB-month for storage), or per GB for data
MONTHLY: dict[str, dict[str, float]] = {
    "ap-northeast-1": {"rds_gp2_gb": 0.138, "secret": 0.40, "logs_stored_gb": 0.033},
    "us-east-1": {"rds_gp2_gb": 0.115, "secret": 0.40, "logs_stored_gb": 0.03},
}
PER_GB: dict[str, dict[str, float]] = {
    "ap-northeast-1": {"logs_ingested": 0.76, "nat_processed": 0.062, "endpoint_processed": 0.01},
    "us-east-1": {"logs_ingested": 0.50, "nat_processed": 0.045, "endpoint_processed": 0.01},
}
HOURS_PER_MONTH = 730
# Every billed item the chapters create: (chapter, item, key, table, unit).
ITEMS: tuple[tuple[str, str, str, str, str], ...] = (
    ("02", N_("NAT gateway"), "nat_gateway", "hourly", N_("per hour")),
    ("02", N_("NAT gateway data processed"), "nat_processed", "per_gb", N_("per GB")),
    (
        "02, 03",
        N_("public IPv4 address (NAT's Elastic IP, each ALB node)"),
        "public_ipv4",
        "hourly",
        N_("per hour"),
    ),
    ("03", N_("Application Load Balancer"), "alb", "hourly", N_("per hour")),
    ("03", N_("ALB load balancer capacity unit (LCU)"), "alb_lcu", "hourly", N_("per LCU-hour")),
    ("04", N_("CloudWatch Logs ingested"), "logs_ingested", "per_gb", N_("per GB")),
    ("04", N_("CloudWatch Logs stored"), "logs_stored_gb", "monthly", N_("per GB-month")),
    (
        "05",
        N_("RDS db.t3.micro (PostgreSQL, single-AZ)"),
        "rds_db.t3.micro",
        "hourly",
        N_("per hour"),
    ),
    ("05", N_("RDS storage (gp2)"), "rds_gp2_gb", "monthly", N_("per GB-month")),
    ("05", N_("Secrets Manager secret"), "secret", "monthly", N_("per month")),
    ("07", N_("Fargate vCPU"), "fargate_vcpu", "hourly", N_("per vCPU-hour")),
    ("07", N_("Fargate memory"), "fargate_gb", "hourly", N_("per GB-hour")),
    (
        "08",
        N_("interface VPC endpoint, per zone"),
        "interface_endpoint_az",
        "hourly",
        N_("per hour"),
    ),
    (
        "08",
        N_("interface VPC endpoint data processed"),
        "endpoint_processed",
        "per_gb",
        N_("per GB"),
    ),
)


@dataclass(frozen=True)
class Estimate:
    """An hourly estimate with its parts, e.g. for a table."""

    item: str
    quantity: float
    usd_per_hour: float

    @property
    def usd_per_month(self) -> float:
        return self.usd_per_hour * HOURS_PER_MONTH


def prices(region: str) -> dict[str, float]:
    """The price table of a region (Tokyo's when the region is not listed)."""
    return HOURLY.get(region, HOURLY["ap-northeast-1"])


def _table(name: str, region: str) -> dict[str, float]:
    tables = {"hourly": HOURLY, "monthly": MONTHLY, "per_gb": PER_GB}[name]
    return tables.get(region, tables["ap-northeast-1"])


def price_table(region: str) -> pd.DataFrame:
    """Every billed item the chapters create, with its On-Demand price in ``region``
    (Tokyo's when the region is not listed) and the unit AWS bills it by."""
    rows = [
        {"chapter": chapter, "item": _(item), "usd": _table(table, region)[key], "unit": _(unit)}
        for chapter, item, key, table, unit in ITEMS
    ]
    return pd.DataFrame(rows, columns=["chapter", "item", "usd", "unit"])


def database(region: str, instance_class: str, storage_gb: int) -> Estimate:
    """An RDS instance bills per hour by its class, and its storage per GB-month."""
    hourly = prices(region)
    key = f"rds_{instance_class}"
    if key not in hourly:
        known = ", ".join(k.removeprefix("rds_") for k in hourly if k.startswith("rds_"))
        raise ConfigurationError(
            _(
                "The kit has no price for the DB instance class {instance_class!r} (it has "
                "{known}, the series' class): look it up on the Amazon RDS pricing page."
            ).format(instance_class=instance_class, known=known)
        )
    storage = storage_gb * _table("monthly", region)["rds_gp2_gb"] / HOURS_PER_MONTH
    return Estimate(f"RDS {instance_class}", 1, hourly[key] + storage)


def secrets(region: str, count: int) -> Estimate:
    """A Secrets Manager secret bills per month (plus API calls, $0.05 per 10,000)."""
    return Estimate(
        _("secret"), count, count * _table("monthly", region)["secret"] / HOURS_PER_MONTH
    )


def public_addresses(region: str, count: int) -> Estimate:
    """Every public IPv4 address bills per hour: an ALB has one per zone it is in."""
    return Estimate(_("public IPv4 address"), count, count * prices(region)["public_ipv4"])


def nat_gateways(region: str, count: int) -> Estimate:
    """NAT gateways bill per hour each, plus one public IPv4 address each."""
    p = prices(region)
    return Estimate(_("NAT gateway"), count, count * (p["nat_gateway"] + p["public_ipv4"]))


def interface_endpoints(region: str, count: int, zones: int) -> Estimate:
    """Interface VPC endpoints bill per hour in each zone they have an address in, before
    data processing charges (gateway endpoints, S3's and DynamoDB's, are free)."""
    p = prices(region)
    return Estimate(_("interface VPC endpoint"), count, count * zones * p["interface_endpoint_az"])


def fargate_tasks(region: str, count: int, cpu: int, memory_mib: int) -> Estimate:
    """Fargate bills vCPU-hours and GB-hours per task (1-minute minimum)."""
    p = prices(region)
    per_task = cpu / 1024 * p["fargate_vcpu"] + memory_mib / 1024 * p["fargate_gb"]
    return Estimate(_("Fargate task"), count, count * per_task)


def load_balancer(region: str) -> Estimate:
    """An ALB bills per hour plus LCUs (about one LCU-hour when idle)."""
    p = prices(region)
    return Estimate(_("Application Load Balancer"), 1, p["alb"] + p["alb_lcu"])
