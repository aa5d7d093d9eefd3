"""VPC Flow Logs: a record for each connection the firewall decides, in CloudWatch Logs.

AWS captures the traffic of every network interface a flow log covers (a VPC's, a
subnet's or one interface), sums it per connection and direction over the aggregation
interval (60 or 600 seconds), and delivers the records, a few minutes after the interval
ends, to the log group through the flow log's role, one stream per interface. A record
is a line in the default format (version 2): ``version account-id interface-id srcaddr
dstaddr srcport dstport protocol packets bytes start end action log-status``.

The sandbox records the connections its firewall decides (the ALB to a task, a task to
its DB instance, a task to the AWS APIs or their interface endpoints) for each side that
has a network interface (tasks and interface endpoints). Each side logs what it saw: an
accepted connection as two records (the packets out and the replies in), a dropped one
as a REJECT where it was dropped, and nothing on a side the packets never reached. The
sandbox does not count packets: each connection counts as the packets and bytes of one
small HTTP exchange (docs/sandbox.md, "VPC Flow Logs").
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from typing import Any

from handson.sandbox.dataplane import moto_bridge
from handson.sandbox.dataplane.clock import Clock
from handson.sandbox.dataplane.firewall import TCP, Endpoint, Firewall, Flow, Side
from handson.sandbox.dataplane.iam_policy import is_allowed, trusts_service

FLOW_LOGS_PRINCIPAL = "vpc-flow-logs.amazonaws.com"
# AWS seconds from the end of an aggregation interval to its records in CloudWatch Logs
# (AWS: "typically within about 5 minutes" of capture, counting the interval).
DELIVERY_DELAY = 120.0
# Packets and bytes of one connection, by direction: the opener's request (handshake,
# request, acknowledgements and close) and the answer; a dropped one is its SYN sent
# three times.
REQUEST = (6, 520)
ANSWER = (5, 1220)
DROPPED = (3, 180)
CONFIG_SECONDS = 1.0  # how long the flow logs of an account are read once for


@dataclass(frozen=True)
class _Direction:
    """One direction of one connection as one network interface saw it, and what its rules
    decided."""

    interface: str
    source: str
    destination: str
    source_port: int
    destination_port: int
    action: str


@dataclass
class _Record:
    """One line of a flow log in the making: a direction of a connection during one
    aggregation interval."""

    account: str
    region: str
    flow_log: dict[str, Any]
    direction: _Direction
    window: int  # which interval of the sandbox clock: clock time // the flow log's interval
    start: int
    end: int
    packets: int = 0
    bytes: int = 0

    @property
    def due(self) -> float:
        """Sandbox time when it is delivered: its interval's end, plus the delivery delay."""
        return (self.window + 1) * self.flow_log["interval"] + DELIVERY_DELAY

    def line(self) -> str:
        d = self.direction
        return " ".join(
            str(v)
            for v in (
                2,
                self.account,
                d.interface,
                d.source,
                d.destination,
                d.source_port,
                d.destination_port,
                TCP,
                self.packets,
                self.bytes,
                self.start,
                self.end,
                d.action,
                "OK",
            )
        )


class FlowLogs:
    """Collects the records of the flows the firewall decides and delivers them."""

    def __init__(self, clock: Clock, firewall: Firewall, lock: threading.RLock) -> None:
        self.clock = clock
        self.firewall = firewall
        self.lock = lock  # the data plane's: moto's state is read under it
        self._records: dict[tuple[Any, ...], _Record] = {}
        self._records_lock = threading.Lock()
        self._configs: dict[tuple[str, str], tuple[float, list[dict[str, Any]]]] = {}
        self._ports = random.Random()

    def clear(self) -> None:
        with self._records_lock:
            self._records.clear()
        self._configs.clear()

    def _flow_logs(self, account: str, region: str) -> list[dict[str, Any]]:
        key, now = (account, region), time.monotonic()
        cached = self._configs.get(key)
        if cached is None or now - cached[0] > CONFIG_SECONDS:
            with self.lock:
                cached = (now, moto_bridge.flow_logs(account, region))
            self._configs[key] = cached
        return cached[1]

    def observe(self, account: str, region: str, flow: Flow, dropped_at: Side) -> None:
        """Record one connection, dropped where ``dropped_at`` says (None: accepted)."""
        flow_logs = self._flow_logs(account, region)
        if not flow_logs:
            return
        src, dst, port = flow.source, flow.destination, flow.port
        low, high = src.ports
        sport = self._ports.randint(max(low, 1024), high)
        out = (src.ip, dst.ip, sport, port)
        back = (dst.ip, src.ip, port, sport)
        seen: list[tuple[Endpoint, tuple[str, str, int, int], str, tuple[int, int]]] = []
        if dropped_at == "source":
            seen.append((src, out, "REJECT", DROPPED))
        elif dropped_at is not None:
            seen.append((src, out, "ACCEPT", DROPPED))
            if dropped_at == "destination":
                seen.append((dst, out, "REJECT", DROPPED))
        else:
            for side in (src, dst):
                seen += [(side, out, "ACCEPT", REQUEST), (side, back, "ACCEPT", ANSWER)]
        for side, addresses, action, (packets, size) in seen:
            if side.interface is None:
                continue
            direction = _Direction(side.interface, *addresses, action)
            for flow_log in self._covering(account, region, flow_logs, side, action):
                self._add(account, region, flow_log, direction, packets, size)

    def _covering(
        self,
        account: str,
        region: str,
        flow_logs: list[dict[str, Any]],
        side: Endpoint,
        action: str,
    ) -> list[dict[str, Any]]:
        """The flow logs that capture ``side``'s ``action`` records: of its interface, its
        subnet or its VPC, whose traffic type is ALL or that action."""
        subnets = self.firewall.rules(account, region)["subnets"]
        vpc = subnets.get(side.subnet_id or "", {}).get("vpc")
        resources = {side.interface, side.subnet_id, vpc} - {None}
        return [
            f for f in flow_logs if f["resource"] in resources and f["traffic"] in ("ALL", action)
        ]

    def _add(
        self,
        account: str,
        region: str,
        flow_log: dict[str, Any],
        direction: _Direction,
        packets: int,
        size: int,
    ) -> None:
        window = int(self.clock.now() // flow_log["interval"])
        now = int(time.time())
        key = (flow_log["id"], direction, window)
        with self._records_lock:
            record = self._records.get(key)
            if record is None:
                record = _Record(account, region, flow_log, direction, window, now, now)
                self._records[key] = record
            record.packets += packets
            record.bytes += size
            record.end = max(record.end, now + 1)

    def deliver(self) -> None:
        """Write the records whose time has come to their flow logs' groups, one stream per
        interface, if the flow log's role lets the service write there; else the flow log
        says "Access error" (DeliverLogsStatus FAILED), as on AWS."""
        now = self.clock.now()
        with self._records_lock:
            due = [k for k, r in self._records.items() if r.due <= now]
            records = [self._records.pop(k) for k in due]
        batches: dict[tuple[str, str, str], list[_Record]] = {}
        for record in records:
            batches.setdefault((record.account, record.region, record.flow_log["id"]), []).append(
                record
            )
        for (account, region, _), batch in batches.items():
            with self.lock:
                self._write(account, region, batch[0].flow_log, batch)

    def _write(
        self, account: str, region: str, flow_log: dict[str, Any], records: list[_Record]
    ) -> None:
        group = flow_log["group"]
        error = self._access_error(account, region, flow_log)
        if error is None and not moto_bridge.log_group_exists(account, region, group):
            # The service makes the group itself when its role may.
            if self._allowed(account, region, flow_log, "logs:CreateLogGroup"):
                moto_bridge.create_log_group(account, region, group)
            else:
                error = "Access error"
        moto_bridge.set_flow_log_delivery(account, region, flow_log["id"], error)
        if error is not None:
            return
        streams: dict[str, list[dict[str, Any]]] = {}
        for record in sorted(records, key=lambda r: (r.start, r.end)):
            stream = f"{record.direction.interface}-{flow_log['traffic'].lower()}"
            streams.setdefault(stream, []).append(
                {"timestamp": record.start * 1000, "message": record.line()}
            )
        for stream, events in streams.items():
            moto_bridge.put_log_events(account, region, group, stream, events)

    def _access_error(self, account: str, region: str, flow_log: dict[str, Any]) -> str | None:
        """None when the flow log's role trusts the flow logs service and may create
        streams and put events in its group; else the error AWS reports."""
        trust = moto_bridge.role_trust_policy(account, flow_log["role"] or "")
        if trust is None or not trusts_service(trust, FLOW_LOGS_PRINCIPAL):
            return "Access error"
        for action in ("logs:CreateLogStream", "logs:PutLogEvents"):
            if not self._allowed(account, region, flow_log, action):
                return "Access error"
        return None

    def _allowed(self, account: str, region: str, flow_log: dict[str, Any], action: str) -> bool:
        """Whether the flow log's role may do ``action`` on its log group."""
        policies = moto_bridge.role_policies(account, flow_log["role"] or "")
        arn = f"arn:aws:logs:{region}:{account}:log-group:{flow_log['group']}:*"
        return policies is not None and is_allowed(policies, action, arn).allowed
