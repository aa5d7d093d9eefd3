"""VPC Flow Logs on the sandbox, with plain boto3 (docs/sandbox.md, "VPC Flow Logs").

A flow log of the VPC writes, through its role, a record per connection and direction to
its group, one stream per network interface, in the default format; a connection the
rules drop is a REJECT where it was dropped; a role the service can't use makes the flow
log say FAILED / "Access error" and writes nothing.
"""

from __future__ import annotations

import json
from typing import Any

from world import ECS_TASKS_TRUST, World

ALL_TRAFFIC = [{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
# The chapter's roles trust ECS tasks; the flow logs role trusts the flow logs service.
FLOW_LOGS_TRUST = ECS_TASKS_TRUST.replace("ecs-tasks.amazonaws.com", "vpc-flow-logs.amazonaws.com")
WRITE_LOGS = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": "*",
            }
        ],
    }
)
GROUP = "/aws/vpc/demo-dev"


def _flow_log(
    world: World, *, trust: str = FLOW_LOGS_TRUST, policy: str = WRITE_LOGS, group: bool = True
) -> str:
    iam, logs = world.client("iam"), world.client("logs")
    role = iam.create_role(RoleName="demo-dev-vpc-flow-logs-role", AssumeRolePolicyDocument=trust)
    iam.put_role_policy(
        RoleName="demo-dev-vpc-flow-logs-role", PolicyName="write", PolicyDocument=policy
    )
    if group:
        logs.create_log_group(logGroupName=GROUP)
    created = world.client("ec2").create_flow_logs(
        ResourceIds=[world.ids["vpc"]],
        ResourceType="VPC",
        TrafficType="ALL",
        LogDestinationType="cloud-watch-logs",
        LogGroupName=GROUP,
        DeliverLogsPermissionArn=role["Role"]["Arn"],
        MaxAggregationInterval=60,
    )
    return str(created["FlowLogIds"][0])


def _records(world: World) -> list[tuple[str, list[str]]]:
    """(stream, fields) of every record delivered so far (none while there is no group)."""
    logs = world.client("logs")
    try:
        events = logs.filter_log_events(logGroupName=GROUP)["events"]
    except logs.exceptions.ResourceNotFoundException:
        return []
    return [(e["logStreamName"], e["message"].split()) for e in events]


def _task_enis(world: World, status: str = "RUNNING") -> dict[str, str]:
    found = {}
    for task in world.tasks(status):
        details = {d["name"]: d["value"] for d in task["attachments"][0]["details"]}
        found[details["networkInterfaceId"]] = details["privateIPv4Address"]
    return found


def test_accepted_health_checks_are_two_records_in_the_default_format(world: World) -> None:
    flow_log = _flow_log(world)
    world.push_image()
    world.register_task_definition()
    world.create_service(desired=1)
    world.wait_steady()
    ((eni, ip),) = _task_enis(world).items()
    records = world.wait_for(
        lambda: [f for _, f in _records(world) if f[2] == eni and "3000" in (f[5], f[6])],
        timeout=60,
        what="records of the health checks",
    )
    for fields in records:
        assert len(fields) == 14 and fields[0] == "2" and fields[1] == world.account_id
        assert fields[7] == "6" and fields[12] == "ACCEPT" and fields[13] == "OK"
        assert int(fields[8]) > 0 and int(fields[9]) > 0 and int(fields[10]) <= int(fields[11])
    inbound = [f for f in records if f[4] == ip and f[6] == "3000"]
    back = [f for f in records if f[3] == ip and f[5] == "3000"]
    assert inbound and back
    assert {(f[3], f[5]) for f in inbound} >= {(f[4], f[6]) for f in back[:1]}
    streams = world.client("logs").describe_log_streams(logGroupName=GROUP)["logStreams"]
    assert f"{eni}-all" in {s["logStreamName"] for s in streams}
    (described,) = world.client("ec2").describe_flow_logs(FlowLogIds=[flow_log])["FlowLogs"]
    assert described["DeliverLogsStatus"] == "SUCCESS"


def test_a_connection_dropped_at_its_source_is_a_reject_there(world: World) -> None:
    """The tasks' group allows no egress: the starting task's HTTPS to ECR is a REJECT on
    the task's interface (and the packets never reach anything else)."""
    _flow_log(world)
    ec2 = world.client("ec2")
    ec2.revoke_security_group_egress(GroupId=world.ids["sgs"]["ecs"], IpPermissions=ALL_TRAFFIC)
    world.push_image()
    world.register_task_definition()
    world.create_service(desired=1)

    def rejected() -> list[tuple[str, list[str]]]:
        enis = _task_enis(world, "STOPPED")
        return [
            (s, f)
            for s, f in _records(world)
            if f[12] == "REJECT" and f[6] == "443" and f[2] in enis and f[3] == enis[f[2]]
        ]

    found = world.wait_for(rejected, timeout=60, what="a REJECT of the task's HTTPS")
    for stream, fields in found:
        assert stream == f"{fields[2]}-all"
    assert not [f for _, f in _records(world) if f[12] == "ACCEPT" and f[6] == "443"]


def test_a_role_that_does_not_trust_the_service_delivers_nothing(world: World) -> None:
    flow_log = _flow_log(world, trust=ECS_TASKS_TRUST)
    world.push_image()
    world.register_task_definition()
    world.create_service(desired=1)
    world.wait_steady()

    def failed() -> dict[str, Any] | None:
        (described,) = world.client("ec2").describe_flow_logs(FlowLogIds=[flow_log])["FlowLogs"]
        return described if described["DeliverLogsStatus"] == "FAILED" else None

    described = world.wait_for(failed, timeout=60, what="the flow log's failed delivery")
    assert described["DeliverLogsErrorMessage"] == "Access error"
    assert _records(world) == []


def test_a_missing_group_is_made_when_the_role_may_create_it(world: World) -> None:
    may_create = WRITE_LOGS.replace(
        '"logs:CreateLogStream"', '"logs:CreateLogGroup", "logs:CreateLogStream"'
    )
    _flow_log(world, policy=may_create, group=False)
    world.push_image()
    world.register_task_definition()
    world.create_service(desired=1)
    world.wait_steady()
    assert world.wait_for(lambda: _records(world), timeout=60, what="records in the new group")
