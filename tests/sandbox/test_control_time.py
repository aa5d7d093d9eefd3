"""The control plane takes time and refuses what AWS refuses, on a sandbox of its own
whose control-plane states last their AWS durations divided by 100 (NAT pending about
a second, an RDS instance creating a few seconds)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator

import pytest
from botocore.exceptions import ClientError
from world import World

from handson import sandbox
from handson.sandbox.config import SandboxConfig

pytestmark = pytest.mark.slow
CONTROL_SPEED = 100.0
_accounts = itertools.count(300000000001)


@pytest.fixture(scope="module")
def timed_sandbox() -> Iterator[SandboxConfig]:
    with sandbox.private(control_speed=CONTROL_SPEED) as config:
        yield config


@pytest.fixture
def world(timed_sandbox: SandboxConfig) -> World:
    return World(timed_sandbox.endpoint_url, str(next(_accounts)))


def _code(error: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    info = error.value.response["Error"]
    return info["Code"], info["Message"]


def _vpc(world: World) -> tuple[str, str, str]:
    ec2 = world.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    a = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24", AvailabilityZone="ap-northeast-1a")
    c = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.2.0/24", AvailabilityZone="ap-northeast-1c")
    return vpc, a["Subnet"]["SubnetId"], c["Subnet"]["SubnetId"]


def test_a_nat_gateway_is_pending_then_available_and_deleting_then_deleted(world) -> None:
    ec2 = world.client("ec2")
    vpc, subnet, _ = _vpc(world)
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    allocation = ec2.allocate_address(Domain="vpc")["AllocationId"]
    nat = ec2.create_nat_gateway(SubnetId=subnet, AllocationId=allocation)["NatGateway"]
    nat_id = nat["NatGatewayId"]
    assert nat["State"] == "pending"
    seen = ec2.describe_nat_gateways(NatGatewayIds=[nat_id])["NatGateways"][0]["State"]
    assert seen == "pending"
    ec2.get_waiter("nat_gateway_available").wait(
        NatGatewayIds=[nat_id], WaiterConfig={"Delay": 0.2, "MaxAttempts": 100}
    )
    # While the NAT gateway holds its EIP: the EIP can't be released, the IGW not detached.
    with pytest.raises(ClientError) as refused:
        ec2.release_address(AllocationId=allocation)
    assert _code(refused) == (
        "AuthFailure",
        "You do not have permission to access the specified resource.",
    )
    with pytest.raises(ClientError) as refused:
        ec2.detach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    assert _code(refused) == (
        "DependencyViolation",
        f"Network {vpc} has some mapped public address(es). Please unmap those public "
        "address(es) before detaching the gateway.",
    )
    with pytest.raises(ClientError) as refused:
        ec2.delete_subnet(SubnetId=subnet)
    assert _code(refused) == (
        "DependencyViolation",
        f"The subnet '{subnet}' has dependencies and cannot be deleted.",
    )
    ec2.delete_nat_gateway(NatGatewayId=nat_id)
    assert ec2.describe_nat_gateways(NatGatewayIds=[nat_id])["NatGateways"][0]["State"] == (
        "deleting"
    )
    ec2.get_waiter("nat_gateway_deleted").wait(
        NatGatewayIds=[nat_id], WaiterConfig={"Delay": 0.2, "MaxAttempts": 100}
    )
    # Deleted: the EIP is disassociated (not released), so all three go through now.
    ec2.release_address(AllocationId=allocation)
    ec2.detach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    ec2.delete_subnet(SubnetId=subnet)


def test_an_rds_instance_is_creating_then_available_and_deleting_then_gone(world) -> None:
    ec2, rds = world.client("ec2"), world.client("rds")
    _, a, c = _vpc(world)
    rds.create_db_subnet_group(
        DBSubnetGroupName="g", DBSubnetGroupDescription="g", SubnetIds=[a, c]
    )
    created = rds.create_db_instance(
        DBInstanceIdentifier="d",
        Engine="postgres",
        DBInstanceClass="db.t3.micro",
        AllocatedStorage=20,
        MasterUsername="postgres",
        MasterUserPassword="password-for-tests-1",
        DBSubnetGroupName="g",
        BackupRetentionPeriod=7,
    )["DBInstance"]
    assert created["DBInstanceStatus"] == "creating"
    states = set()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = rds.describe_db_instances(DBInstanceIdentifier="d")["DBInstances"][0][
            "DBInstanceStatus"
        ]
        states.add(state)
        if state == "available":
            break
        time.sleep(0.05)
    assert states >= {"creating", "backing-up", "available"}
    rds.get_waiter("db_instance_available").wait(DBInstanceIdentifier="d")
    with pytest.raises(ClientError) as refused:
        ec2.delete_subnet(SubnetId=a)
    assert _code(refused)[0] == "DependencyViolation"
    rds.delete_db_instance(DBInstanceIdentifier="d", SkipFinalSnapshot=True)
    found = rds.describe_db_instances(DBInstanceIdentifier="d")["DBInstances"][0]
    assert found["DBInstanceStatus"] == "deleting"
    with pytest.raises(ClientError) as refused:
        rds.delete_db_subnet_group(DBSubnetGroupName="g")
    assert _code(refused) == (
        "InvalidDBSubnetGroupStateFault",
        "Cannot delete the subnet group 'g' because at least one database instance: d is "
        "still using it.",
    )
    rds.get_waiter("db_instance_deleted").wait(
        DBInstanceIdentifier="d", WaiterConfig={"Delay": 0.2, "MaxAttempts": 200}
    )
    rds.delete_db_subnet_group(DBSubnetGroupName="g")


def test_an_alb_is_provisioning_then_active_and_its_enis_linger_after_deletion(world) -> None:
    ec2, elb = world.client("ec2"), world.client("elbv2")
    vpc, a, c = _vpc(world)
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    group = ec2.create_security_group(GroupName="alb", Description="alb", VpcId=vpc)["GroupId"]
    lb = elb.create_load_balancer(Name="lb", Subnets=[a, c], SecurityGroups=[group])[
        "LoadBalancers"
    ][0]
    assert lb["State"]["Code"] == "provisioning"
    arn = lb["LoadBalancerArn"]
    described = elb.describe_load_balancers(LoadBalancerArns=[arn])["LoadBalancers"][0]
    assert described["State"]["Code"] == "provisioning"
    elb.get_waiter("load_balancer_available").wait(
        LoadBalancerArns=[arn], WaiterConfig={"Delay": 0.2, "MaxAttempts": 100}
    )
    tg = elb.create_target_group(Name="tg", Protocol="HTTP", Port=3000, VpcId=vpc, TargetType="ip")[
        "TargetGroups"
    ][0]["TargetGroupArn"]
    elb.create_listener(
        LoadBalancerArn=arn,
        Protocol="HTTP",
        Port=80,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": tg}],
    )
    with pytest.raises(ClientError) as refused:
        elb.delete_target_group(TargetGroupArn=tg)
    assert _code(refused) == (
        "ResourceInUse",
        f"Target group '{tg}' is currently in use by a listener or a rule",
    )
    elb.delete_load_balancer(LoadBalancerArn=arn)
    # Right after the delete its network interfaces still hold the group, the subnets
    # and a public address; a moment later everything can go.
    with pytest.raises(ClientError) as refused:
        ec2.delete_security_group(GroupId=group)
    assert _code(refused) == ("DependencyViolation", f"resource {group} has a dependent object")
    with pytest.raises(ClientError) as refused:
        ec2.detach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    assert _code(refused)[0] == "DependencyViolation"
    _eventually(lambda: ec2.delete_security_group(GroupId=group))
    ec2.detach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    elb.delete_target_group(TargetGroupArn=tg)


def test_an_interface_endpoint_is_pending_then_available(world) -> None:
    ec2 = world.client("ec2")
    vpc, a, _ = _vpc(world)
    endpoint = ec2.create_vpc_endpoint(
        VpcId=vpc,
        ServiceName="com.amazonaws.ap-northeast-1.logs",
        VpcEndpointType="Interface",
        SubnetIds=[a],
    )["VpcEndpoint"]
    assert endpoint["State"].lower() == "pending"
    _eventually(
        lambda: _expect(
            ec2.describe_vpc_endpoints(VpcEndpointIds=[endpoint["VpcEndpointId"]])["VpcEndpoints"][
                0
            ]["State"].lower(),
            "available",
        )
    )


def test_a_security_group_named_by_another_groups_rule_cant_be_deleted(world) -> None:
    ec2 = world.client("ec2")
    vpc, _, _ = _vpc(world)
    alb = ec2.create_security_group(GroupName="alb", Description="alb", VpcId=vpc)["GroupId"]
    ecs = ec2.create_security_group(GroupName="ecs", Description="ecs", VpcId=vpc)["GroupId"]
    ec2.authorize_security_group_ingress(
        GroupId=ecs,
        IpPermissions=[
            {
                "IpProtocol": "tcp",
                "FromPort": 3000,
                "ToPort": 3000,
                "UserIdGroupPairs": [{"GroupId": alb}],
            }
        ],
    )
    with pytest.raises(ClientError) as refused:
        ec2.delete_security_group(GroupId=alb)
    assert _code(refused) == ("DependencyViolation", f"resource {alb} has a dependent object")
    ec2.delete_security_group(GroupId=ecs)
    ec2.delete_security_group(GroupId=alb)


def test_a_cluster_with_a_service_cant_be_deleted(world) -> None:
    ecs = world.client("ecs")
    ecs.create_cluster(clusterName="c")
    ecs.register_task_definition(
        family="f", containerDefinitions=[{"name": "x", "image": "y", "memory": 128}]
    )
    ecs.create_service(cluster="c", serviceName="s", taskDefinition="f", desiredCount=0)
    with pytest.raises(ClientError) as refused:
        ecs.delete_cluster(cluster="c")
    assert _code(refused) == (
        "ClusterContainsServicesException",
        "The Cluster cannot be deleted while Services are active.",
    )
    ecs.delete_service(cluster="c", service="s")
    _eventually(lambda: ecs.delete_cluster(cluster="c"))


def test_an_rds_instance_has_no_endpoint_while_creating(world) -> None:
    rds = world.client("rds")
    created = rds.create_db_instance(
        DBInstanceIdentifier="d",
        Engine="postgres",
        DBInstanceClass="db.t3.micro",
        AllocatedStorage=20,
        MasterUsername="postgres",
        MasterUserPassword="password-for-tests-1",
    )["DBInstance"]
    assert created["DBInstanceStatus"] == "creating"
    assert "Endpoint" not in created
    described = rds.describe_db_instances(DBInstanceIdentifier="d")["DBInstances"][0]
    assert described["DBInstanceStatus"] == "creating"
    assert "Endpoint" not in described
    rds.get_waiter("db_instance_available").wait(
        DBInstanceIdentifier="d", WaiterConfig={"Delay": 0.2, "MaxAttempts": 100}
    )
    endpoint = rds.describe_db_instances(DBInstanceIdentifier="d")["DBInstances"][0]["Endpoint"]
    assert endpoint["Address"].startswith("d.") and endpoint["Port"] == 5432


def test_a_stopped_tasks_network_interface_lingers_then_is_released(world) -> None:
    world.build_all()
    world.push_image()
    world.allow_secret()
    world.register_task_definition()
    world.create_service(desired=1)
    world.wait_steady(timeout=120)
    ec2 = world.client("ec2")
    group = world.ids["sgs"]["ecs"]
    task_enis = {
        e["NetworkInterfaceId"]
        for e in ec2.describe_network_interfaces(Filters=[{"Name": "group-id", "Values": [group]}])[
            "NetworkInterfaces"
        ]
    }
    assert len(task_enis) == 1
    world.stop_services()
    # The group of the stopped task's ENI is refused until the ENI is gone.
    _eventually(lambda: _expect(world.tasks(), []))
    rds_group = world.ids["sgs"]["rds"]  # names the ECS group in its rule: revoke first
    rule = ec2.describe_security_groups(GroupIds=[rds_group])["SecurityGroups"][0]
    ec2.revoke_security_group_ingress(GroupId=rds_group, IpPermissions=rule["IpPermissions"])
    _eventually(lambda: ec2.delete_security_group(GroupId=group))
    left = ec2.describe_network_interfaces(NetworkInterfaceIds=[])["NetworkInterfaces"]
    assert not task_enis & {e["NetworkInterfaceId"] for e in left}


def _expect(value: object, wanted: object) -> None:
    assert value == wanted, value


def _eventually(call, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            call()
            return
        except (ClientError, AssertionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
