"""On-Demand prices the kit shows before it creates something that costs money.

USD, Linux/x86, from AWS Price List records collected in 2026 (docs/sandbox.md,
"Prices"). Re-check before relying on them for billing.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    },
    "us-east-1": {
        "nat_gateway": 0.045,
        "alb": 0.0225,
        "alb_lcu": 0.008,
        "fargate_vcpu": 0.04048,
        "fargate_gb": 0.004445,
        "public_ipv4": 0.005,
        "interface_endpoint_az": 0.01,
    },
}
HOURS_PER_MONTH = 730


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


def nat_gateways(region: str, count: int) -> Estimate:
    """NAT gateways bill per hour each, plus one public IPv4 address each."""
    p = prices(region)
    return Estimate("NAT gateway", count, count * (p["nat_gateway"] + p["public_ipv4"]))


def interface_endpoints(region: str, count: int, zones: int) -> Estimate:
    """Interface VPC endpoints bill per hour in each zone they have an address in, before
    data processing charges (gateway endpoints, S3's and DynamoDB's, are free)."""
    p = prices(region)
    return Estimate("interface VPC endpoint", count, count * zones * p["interface_endpoint_az"])


def fargate_tasks(region: str, count: int, cpu: int, memory_mib: int) -> Estimate:
    """Fargate bills vCPU-hours and GB-hours per task (1-minute minimum)."""
    p = prices(region)
    per_task = cpu / 1024 * p["fargate_vcpu"] + memory_mib / 1024 * p["fargate_gb"]
    return Estimate("Fargate task", count, count * per_task)


def load_balancer(region: str) -> Estimate:
    """An ALB bills per hour plus LCUs (about one LCU-hour when idle)."""
    p = prices(region)
    return Estimate("Application Load Balancer", 1, p["alb"] + p["alb_lcu"])
