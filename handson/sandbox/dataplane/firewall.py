"""Security groups and network ACLs: whether one TCP flow in a VPC gets through.

AWS filters every packet twice. A security group belongs to a network interface and is
stateful: a connection its rules let in (or out) may answer without a rule of its own.
A network ACL belongs to a subnet, is stateless and is evaluated only when traffic
crosses the subnet's boundary: its entries are read in rule-number order, the first one
that matches the packet decides, and the final ``*`` entry denies; the reply of a
connection is a packet of its own and needs its own entry (the ephemeral ports of the
side that opened the connection).

The data plane asks this module about the paths the course uses: the internet to the
ALB's listener, the ALB to a target (health checks and requests), a task to its RDS
instance, and a starting task to the AWS APIs it needs (ECR, Secrets Manager, CloudWatch
Logs, S3 for image layers) over HTTPS. Each side is an :class:`Endpoint` with the address
AWS would show (a task's ENI address, an address of the ALB in each of its subnets, the
DB instance's address, an interface VPC endpoint's address in the task's zone, a public
address for a client or an AWS service on the internet). Rules are read through
``moto_bridge`` and cached for a second at most; a rule change through the API drops the
cache at once, so a change takes effect within seconds, as on AWS.
"""

from __future__ import annotations

import hashlib
import ipaddress
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from handson.sandbox.dataplane import moto_bridge

# A client on the internet, as the ALB sees it (a documentation address, TEST-NET-3).
INTERNET_CLIENT = "203.0.113.25"
# Source ports of the side that opens a connection: Linux and Windows clients use ports
# from 32768 (Linux) or 49152 (Windows) up; load balancer nodes use 1024-65535. A reply
# gets through a network ACL only if every one of these ports is allowed back.
CLIENT_PORTS = (32768, 65535)
ALB_PORTS = (1024, 65535)
# A NAT gateway translates a connection to one of these source ports of its own.
NAT_PORTS = (1024, 65535)
# A public address of an AWS service's regional endpoint (api.ecr.<region>.amazonaws.com
# and the like), as a task dials it through a NAT or internet gateway.
AWS_SERVICE_IP = "3.112.64.10"
HTTPS = 443
CACHE_SECONDS = 1.0
TCP = "6"
# Where a flow was dropped (None: it got through).
Side = Literal["source", "way", "destination"] | None


@dataclass(frozen=True)
class Endpoint:
    """One side of a flow: an address, its subnet (None on the internet), its groups."""

    ip: str
    subnet_id: str | None = None
    groups: tuple[str, ...] = ()
    ports: tuple[int, int] = CLIENT_PORTS  # source ports when this side connects
    interface: str | None = None  # its network interface's id (eni-...), when it has one


@dataclass(frozen=True)
class Flow:
    """A TCP connection from ``source`` to ``destination`` on ``port``, translated by the
    NAT gateway ``via`` (its subnet, its ports) on its way to the internet."""

    source: Endpoint
    destination: Endpoint
    port: int
    via: Endpoint | None = None


def _protocol(value: Any) -> str:
    text = str(value if value is not None else "-1").lower()
    return {"tcp": TCP, "all": "-1", "udp": "17", "icmp": "1"}.get(text, text)


def _in(ip: str, cidr: str | None) -> bool:
    if not cidr:
        return False
    try:
        return ipaddress.ip_address(ip) in ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False


def _sg_allows(rules: list[dict[str, Any]], peer: Endpoint, port: int) -> bool:
    """Whether one of a security group's rules (one direction) allows ``peer`` on ``port``:
    the protocol and port range match, and the peer's address is in a CIDR of the rule or
    the peer's interface has a group the rule names."""
    for rule in rules:
        protocol = rule["protocol"]
        if protocol not in ("-1", TCP):
            continue
        if protocol == TCP and not (rule["from"] <= port <= rule["to"]):
            continue
        if any(_in(peer.ip, cidr) for cidr in rule["cidrs"]):
            return True
        if set(rule["groups"]) & set(peer.groups):
            return True
    return False


def _acl_decides(entries: list[dict[str, Any]], egress: bool, ip: str, low: int, high: int) -> bool:
    """Whether a network ACL lets TCP packets to/from ``ip`` through on every port in
    ``low``-``high``: entries in rule-number order, the first match decides, and what no
    entry allows is denied."""
    remaining = [(low, high)]
    for entry in entries:
        if entry["egress"] != egress or not _in(ip, entry["cidr"]):
            continue
        protocol = entry["protocol"]
        if protocol not in ("-1", TCP):
            continue
        start, end = (0, 65535) if protocol == "-1" else (entry["from"], entry["to"])
        left: list[tuple[int, int]] = []
        for a, b in remaining:
            overlap = (max(a, start), min(b, end))
            if overlap[0] > overlap[1]:
                left.append((a, b))
                continue
            if not entry["allow"]:
                return False
            if a < overlap[0]:
                left.append((a, overlap[0] - 1))
            if overlap[1] < b:
                left.append((overlap[1] + 1, b))
        remaining = left
        if not remaining:
            return True
    return False


class Firewall:
    """Answers "does this flow get through?" from an account's rules, cached briefly."""

    def __init__(self, lock: threading.RLock, *, cache_seconds: float = CACHE_SECONDS) -> None:
        self.lock = lock
        self.cache_seconds = cache_seconds
        self._cache: dict[tuple[str, str], tuple[float, int, dict[str, Any]]] = {}
        # Told of every decision: (account, region, flow, where it was dropped or None).
        self.observer: Callable[[str, str, Flow, Side], None] | None = None

    def clear(self) -> None:
        self._cache.clear()

    def rules(self, account: str, region: str) -> dict[str, Any]:
        """The account's security groups, subnets and ACL entries (see moto_bridge)."""
        key = (account, region)
        version = moto_bridge.rules_version()
        cached = self._cache.get(key)
        now = time.monotonic()
        if cached is not None and cached[1] == version and now - cached[0] < self.cache_seconds:
            return cached[2]
        with self.lock:
            rules = moto_bridge.network_rules(account, region)
        self._cache[key] = (now, version, rules)
        return rules

    def check(self, account: str, region: str, flow: Flow) -> str | None:
        """None when the flow gets through; otherwise what drops it, for the logs. The
        ``observer`` (the flow logs) hears of each decision and of the side that made it."""
        reason, side = self._decide(account, region, flow)
        if self.observer is not None:
            self.observer(account, region, flow, side)
        return reason

    def _decide(self, account: str, region: str, flow: Flow) -> tuple[str | None, Side]:
        """What drops the flow (None when nothing does) and where: at its source (the
        source's groups or subnet ACL), on its way (the NAT gateway's subnet ACL) or at
        its destination."""
        rules = self.rules(account, region)
        groups, acls = rules["groups"], rules["acls"]
        src, dst, port = flow.source, flow.destination, flow.port
        if src.subnet_id is not None and not any(
            _sg_allows(groups.get(g, {}).get("egress", []), dst, port) for g in src.groups
        ):
            return (
                f"the security groups of {src.ip} allow no outbound traffic to {dst.ip}:{port}",
                "source",
            )
        if src.subnet_id != dst.subnet_id:
            low, high = src.ports
            if src.subnet_id is not None:
                entries = acls.get(src.subnet_id, [])
                if not _acl_decides(entries, True, dst.ip, port, port):
                    return (
                        f"the network ACL of {src.subnet_id} denies outbound {dst.ip}:{port}",
                        "source",
                    )
                if not _acl_decides(entries, False, dst.ip, low, high):
                    return (
                        f"the network ACL of {src.subnet_id} denies the reply from {dst.ip} "
                        f"to ports {low}-{high}",
                        "source",
                    )
            if dst.subnet_id is not None:
                entries = acls.get(dst.subnet_id, [])
                if not _acl_decides(entries, False, src.ip, port, port):
                    return (
                        f"the network ACL of {dst.subnet_id} denies inbound {src.ip} -> {port}",
                        "destination",
                    )
                if not _acl_decides(entries, True, src.ip, low, high):
                    return (
                        f"the network ACL of {dst.subnet_id} denies the reply to {src.ip} "
                        f"ports {low}-{high}",
                        "destination",
                    )
        nat = flow.via
        if nat is not None and nat.subnet_id is not None:
            # The packets keep their far ends' addresses across the NAT gateway's subnet:
            # out to the destination and its replies in (to the gateway's ports), and,
            # when the source is in another subnet, in from it and the replies out to it.
            crossings = [(True, dst.ip, (port, port)), (False, dst.ip, nat.ports)]
            if nat.subnet_id != src.subnet_id:
                crossings += [(False, src.ip, (port, port)), (True, src.ip, src.ports)]
            entries = acls.get(nat.subnet_id, [])
            for egress, ip, (low, high) in crossings:
                if not _acl_decides(entries, egress, ip, low, high):
                    way = "outbound" if egress else "inbound"
                    return (
                        f"the network ACL of {nat.subnet_id} (NAT gateway {nat.ip}) denies "
                        f"{way} {ip} ports {low}-{high}",
                        "way",
                    )
        if dst.subnet_id is not None and not any(
            _sg_allows(groups.get(g, {}).get("ingress", []), src, port) for g in dst.groups
        ):
            return (
                f"the security groups of {dst.ip} allow no inbound traffic from {src.ip} on {port}",
                "destination",
            )
        return None, None

    # -- the course's endpoints ---------------------------------------------------------

    def subnet_zone(self, account: str, region: str, subnet_id: str) -> str:
        return str(self.rules(account, region)["subnets"].get(subnet_id, {}).get("az", ""))

    def placed(
        self,
        account: str,
        region: str,
        owner: str,
        subnet_ids: list[str],
        groups: list[str],
        *,
        zone: str = "",
        ports: tuple[int, int] = CLIENT_PORTS,
    ) -> Endpoint | None:
        """An endpoint for a resource AWS gives an address in one of ``subnet_ids`` (the
        ALB's node, the DB instance): the subnet in ``zone`` if any, else the first; its
        address is fixed for ``owner`` and that subnet. None when no subnet is known."""
        subnets = self.rules(account, region)["subnets"]
        known = [s for s in subnet_ids if s in subnets]
        if not known:
            return None
        subnet = next((s for s in known if subnets[s]["az"] == zone), known[0])
        network = ipaddress.ip_network(subnets[subnet]["cidr"], strict=False)
        # AWS keeps the first four addresses and the last one of every subnet.
        usable = max(network.num_addresses - 5, 1)
        digest = int(hashlib.sha256(f"{owner}:{subnet}".encode()).hexdigest(), 16)
        ip = str(network[4 + digest % usable])
        return Endpoint(ip, subnet, tuple(groups), ports)

    def endpoint_interface(
        self, account: str, region: str, endpoint: dict[str, Any], zone: str
    ) -> Endpoint | None:
        """An interface VPC endpoint's network interface in ``zone`` (else its first), with
        the endpoint's groups; None when it has none."""
        subnets = self.rules(account, region)["subnets"]
        interfaces = endpoint["interfaces"]
        if not interfaces:
            return None
        subnet = next(
            (s for s in interfaces if subnets.get(s, {}).get("az") == zone), next(iter(interfaces))
        )
        eni = interfaces[subnet]
        return Endpoint(eni["ip"], subnet, tuple(endpoint["groups"]), interface=eni["id"])

    def service_flow(
        self,
        account: str,
        region: str,
        task: Endpoint,
        zone: str,
        route: dict[str, Any],
        service: str,
    ) -> Flow:
        """The HTTPS connection a task opens to an AWS service (``service`` as in an
        endpoint's name: "ecr.api", "secretsmanager", ...), given its subnet's ``route``
        (``moto_bridge.egress``): to the service's interface endpoint in ``zone`` when the
        VPC has one with private DNS (its name resolves to the endpoint's addresses), else
        to the service's public address, through the NAT gateway of the default route
        unless a gateway endpoint carries it."""
        endpoint = route["interface_endpoints"].get(service)
        if endpoint is not None:
            node = self.endpoint_interface(account, region, endpoint, zone)
            if node is not None:
                return Flow(task, node, HTTPS)
        nat = route["nat"]
        via = None
        if nat is not None and service not in route["endpoint_services"]:
            via = self.placed(account, region, nat["id"], [nat["subnet"]], [], ports=NAT_PORTS)
        return Flow(task, Endpoint(AWS_SERVICE_IP), HTTPS, via)


def alb_endpoint(
    firewall: Firewall, account: str, region: str, lb: dict[str, Any], zone: str = ""
) -> Endpoint | None:
    """The ALB node (in ``zone`` when it has one there) as a network endpoint."""
    return firewall.placed(
        account,
        region,
        lb["arn"],
        list(lb.get("subnets") or []),
        list(lb.get("securityGroups") or []),
        zone=zone,
        ports=ALB_PORTS,
    )


def logged(check: Callable[[], str | None], log: Callable[..., None], what: str) -> bool:
    """Run a check, log what dropped the flow, and say whether it got through."""
    reason = check()
    if reason is not None:
        log("%s: dropped: %s", what, reason)
    return reason is None
