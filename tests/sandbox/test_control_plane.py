"""Where moto alone differs from AWS, the sandbox answers as AWS does
(docs/sandbox.md says where moto alone differs and what AWS does)."""

from __future__ import annotations

import botocore.exceptions
import pytest
from botocore.config import Config
from world import EXECUTION_POLICY_ARN, World

from handson import sandbox


def error_of(call, **kwargs) -> botocore.exceptions.ClientError:
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call(**kwargs)
    return caught.value


def test_invalid_fargate_size_is_rejected(world: World) -> None:
    ecs = world.client("ecs")
    base = {
        "family": "x",
        "networkMode": "awsvpc",
        "requiresCompatibilities": ["FARGATE"],
        "containerDefinitions": [{"name": "x", "image": "x"}],
    }
    # Valid cpu, memory not allowed for it (docs/sandbox.md, "Fargate task sizes").
    error = error_of(ecs.register_task_definition, **base, cpu="256", memory="4096")
    assert error.response["Error"]["Code"] == "ClientException"
    assert error.response["Error"]["Message"] == "No Fargate configuration exists for given values."
    # A cpu value that is not in the table (docs/sandbox.md, "Fargate task sizes").
    error = error_of(ecs.register_task_definition, **base, cpu="300", memory="512")
    assert error.response["Error"]["Message"] == "Invalid 'cpu' setting for task."
    # Every pair of the table registers.
    assert (
        ecs.register_task_definition(**base, cpu="1024", memory="8192")["taskDefinition"][
            "revision"
        ]
        == 1
    )


def test_describe_services_echoes_configuration(world: World) -> None:
    world.push_image()
    world.register_task_definition()
    world.create_service(desired=1, healthCheckGracePeriodSeconds=30)
    service = world.service()
    assert service["deploymentConfiguration"] == {
        "maximumPercent": 200,
        "minimumHealthyPercent": 100,
        "deploymentCircuitBreaker": {"enable": True, "rollback": True},
    }
    assert service["healthCheckGracePeriodSeconds"] == 30
    assert service["loadBalancers"][0]["containerPort"] == 3000


def test_create_service_twice_fails_like_aws(world: World) -> None:
    world.register_task_definition()
    world.create_service(desired=0)
    error = error_of(world.create_service, desired=0)
    assert error.response["Error"]["Code"] == "InvalidParameterException"
    assert error.response["Error"]["Message"] == "Creation of service was not idempotent."


def test_create_service_checks_load_balancer_wiring(world: World) -> None:
    world.register_task_definition()
    lb = {"targetGroupArn": world.ids["tg"], "containerName": "nope", "containerPort": 3000}
    error = error_of(world.create_service, loadBalancers=[lb])
    assert (
        error.response["Error"]["Message"]
        == "The container nope does not exist in the task definition."
    )
    lb = {"targetGroupArn": world.ids["tg"], "containerName": "demo-dev-app", "containerPort": 8080}
    error = error_of(world.create_service, loadBalancers=[lb])
    assert "did not have a container port 8080 defined" in error.response["Error"]["Message"]
    config = {"maximumPercent": 50, "minimumHealthyPercent": 100}
    error = error_of(world.create_service, deploymentConfiguration=config)
    assert error.response["Error"]["Code"] == "InvalidParameterException"


def test_secrets_need_an_execution_role(world: World) -> None:
    error = error_of(world.register_task_definition, executionRoleArn="")
    assert "executionRoleArn" in error.response["Error"]["Message"]


def test_alb_dns_names_are_unique(world: World, new_account: World) -> None:
    new_account.build_network()
    new_account.build_alb()
    assert world.ids["alb_dns"] != new_account.ids["alb_dns"]
    assert world.ids["alb_dns"].endswith(".ap-northeast-1.elb.amazonaws.com")


def test_rds_endpoint_is_per_account(world: World) -> None:
    address = world.client("rds").describe_db_instances()["DBInstances"][0]["Endpoint"]["Address"]
    assert address.startswith("demo-dev-db.") and address.endswith(
        ".ap-northeast-1.rds.amazonaws.com"
    )
    assert ".aaaaaaaaaa." not in address


def test_throttling_is_survived_by_boto3_retries(world: World, sandbox_config) -> None:
    config = sandbox_config
    world.register_task_definition()
    world.create_service(desired=0)
    sandbox.inject_faults(0.3, services=["ecs"], seed=7, config=config)
    try:
        # Standard mode retries ThrottlingException; with enough attempts all pass
        # (docs/sandbox.md, "API throttling").
        patient = world.session.client(
            "ecs",
            endpoint_url=world.endpoint,
            config=Config(retries={"mode": "standard", "max_attempts": 10}),
        )
        for _ in range(30):
            patient.describe_services(cluster=world.ids["cluster"], services=[world.ids["service"]])
        # Without retries the same share of calls fails, with AWS's code and message.
        impatient = world.session.client(
            "ecs",
            endpoint_url=world.endpoint,
            config=Config(retries={"mode": "standard", "max_attempts": 1}),
        )
        errors = []
        for _ in range(30):
            try:
                impatient.describe_services(
                    cluster=world.ids["cluster"], services=[world.ids["service"]]
                )
            except botocore.exceptions.ClientError as exc:
                errors.append(exc.response["Error"])
        assert errors
        assert {(e["Code"], e["Message"]) for e in errors} == {
            ("ThrottlingException", "Rate exceeded")
        }
        assert sandbox.status(config).details["throttled"] > len(errors)
    finally:
        sandbox.inject_faults(0, config=config)


def test_nat_gateways_honour_tag_filters(world: World) -> None:
    ec2 = world.client("ec2")
    nats = ec2.describe_nat_gateways()["NatGateways"]
    assert len(nats) == 2
    ec2.create_tags(Resources=[nats[0]["NatGatewayId"]], Tags=[{"Key": "Student", "Value": "a"}])
    tagged = ec2.describe_nat_gateways(Filters=[{"Name": "tag:Student", "Values": ["a"]}])
    assert [n["NatGatewayId"] for n in tagged["NatGateways"]] == [nats[0]["NatGatewayId"]]


def test_missing_db_parameter_group_is_an_error(world: World) -> None:
    error = error_of(world.client("rds").describe_db_parameter_groups, DBParameterGroupName="nope")
    assert error.response["Error"]["Code"] == "DBParameterGroupNotFound"


def test_an_aws_managed_policy_is_one_policy_counted_per_account(
    world: World, new_account: World
) -> None:
    # The sandbox makes AWS's managed policies once and gives each account a copy (moto
    # alone makes them again for every account). On AWS the policy id is the same
    # everywhere; the attachment count is the account's own.
    attached = world.client("iam").get_policy(PolicyArn=EXECUTION_POLICY_ARN)["Policy"]
    fresh = new_account.client("iam").get_policy(PolicyArn=EXECUTION_POLICY_ARN)["Policy"]
    assert attached["PolicyId"] == fresh["PolicyId"]
    assert (attached["AttachmentCount"], fresh["AttachmentCount"]) == (1, 0)
    assert attached["DefaultVersionId"] == fresh["DefaultVersionId"]
    for account, roles in ((world, ["demo-dev-ecs-execution-role"]), (new_account, [])):
        found = account.client("iam").list_entities_for_policy(PolicyArn=EXECUTION_POLICY_ARN)
        assert [r["RoleName"] for r in found["PolicyRoles"]] == roles


def test_an_elastic_ip_is_an_address_of_the_documentation_range(lab) -> None:
    # docs/sandbox.md, "Elastic IP addresses": not moto's random 127.x.y.z.
    ec2 = lab.client("ec2")
    addresses = [ec2.allocate_address(Domain="vpc")["PublicIp"] for _ in range(2)]
    for address in addresses:
        network, last = address.rsplit(".", 1)
        assert network == "198.51.100" and 100 <= int(last) <= 254
    assert addresses[0] != addresses[1]
    assert {a["PublicIp"] for a in ec2.describe_addresses()["Addresses"]} >= set(addresses)
