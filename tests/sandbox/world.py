"""Build the series' chapter 1-7 infrastructure in one sandbox account with plain boto3.

The sandbox tests drive raw boto3, as a learner or the AWS CLI would, so this module
does not use the handson library. ``World`` holds the ids the tests need.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from handson.image_format import build_manifest, image_digest, parse_dockerfile

REGION = "ap-northeast-1"
APP_DIR = Path(__file__).resolve().parents[2] / "app"
RETRIES = Config(retries={"mode": "standard", "max_attempts": 10})
# The trust policy of the chapter's roles: ECS tasks may assume them.
ECS_TASKS_TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
)
EXECUTION_POLICY_ARN = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"


def session_for(endpoint: str, account_id: str) -> boto3.Session:
    """A session in ``account_id``, reached with STS AssumeRole as on real AWS."""
    base = boto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
    )
    sts = base.client("sts", endpoint_url=endpoint)
    creds = sts.assume_role(
        RoleArn=f"arn:aws:iam::{account_id}:role/OrganizationAccountAccessRole",
        RoleSessionName="tests",
    )["Credentials"]
    return boto3.Session(
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        region_name=REGION,
    )


@dataclass
class World:
    endpoint: str
    account_id: str
    name: str = "demo-dev"
    ids: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.session = session_for(self.endpoint, self.account_id)

    def client(self, service: str) -> Any:
        return self.session.client(service, endpoint_url=self.endpoint, config=RETRIES)

    # ------------------------------------------------------------- chapters 1-6

    def build_network(self, *, nat: bool = True) -> None:
        ec2 = self.client("ec2")
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
        ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsSupport={"Value": True})
        igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
        ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
        subnets = {}
        for key, cidr, az in (
            ("public_a", "10.0.1.0/24", "ap-northeast-1a"),
            ("public_c", "10.0.2.0/24", "ap-northeast-1c"),
            ("private_a", "10.0.11.0/24", "ap-northeast-1a"),
            ("private_c", "10.0.12.0/24", "ap-northeast-1c"),
        ):
            subnets[key] = ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, AvailabilityZone=az)[
                "Subnet"
            ]["SubnetId"]
        public_rt = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
        ec2.create_route(RouteTableId=public_rt, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
        for key in ("public_a", "public_c"):
            ec2.associate_route_table(RouteTableId=public_rt, SubnetId=subnets[key])
        for key in ("private_a", "private_c"):
            rt = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
            ec2.associate_route_table(RouteTableId=rt, SubnetId=subnets[key])
            if nat:
                eip = ec2.allocate_address(Domain="vpc")["AllocationId"]
                public = subnets["public_a" if key.endswith("a") else "public_c"]
                nat_id = ec2.create_nat_gateway(SubnetId=public, AllocationId=eip)["NatGateway"][
                    "NatGatewayId"
                ]
                ec2.create_route(
                    RouteTableId=rt, DestinationCidrBlock="0.0.0.0/0", NatGatewayId=nat_id
                )
        sgs = {}
        for key in ("alb", "ecs", "rds"):
            sgs[key] = ec2.create_security_group(
                GroupName=f"{self.name}-{key}-sg", Description=key, VpcId=vpc
            )["GroupId"]

        # Chapter 2's rules: the ALB open to the internet on 80 and 443, the tasks open to
        # the ALB's group on 80 and 3000, the database open to the tasks' group on 5432.
        def allow(target: str, port: int, **source: Any) -> None:
            peer = (
                {"UserIdGroupPairs": [{"GroupId": source["group"]}]}
                if "group" in source
                else {"IpRanges": [{"CidrIp": source["cidr"]}]}
            )
            ec2.authorize_security_group_ingress(
                GroupId=target,
                IpPermissions=[{"IpProtocol": "tcp", "FromPort": port, "ToPort": port, **peer}],
            )

        for port in (80, 443):
            allow(sgs["alb"], port, cidr="0.0.0.0/0")
        for port in (80, 3000):
            allow(sgs["ecs"], port, group=sgs["alb"])
        allow(sgs["rds"], 5432, group=sgs["ecs"])
        self.ids.update(vpc=vpc, subnets=subnets, sgs=sgs)

    def build_alb(self, *, health_path: str = "/health", deregistration_delay: int = 60) -> None:
        elb = self.client("elbv2")
        subnets = self.ids["subnets"]
        lb = elb.create_load_balancer(
            Name=f"{self.name}-alb",
            Subnets=[subnets["public_a"], subnets["public_c"]],
            SecurityGroups=[self.ids["sgs"]["alb"]],
            Scheme="internet-facing",
            Type="application",
        )["LoadBalancers"][0]
        tg = elb.create_target_group(
            Name=f"{self.name}-ecs-tg",
            Protocol="HTTP",
            Port=3000,
            VpcId=self.ids["vpc"],
            TargetType="ip",
            HealthCheckPath=health_path,
            HealthCheckIntervalSeconds=30,
            HealthCheckTimeoutSeconds=5,
            HealthyThresholdCount=2,
            UnhealthyThresholdCount=2,
            Matcher={"HttpCode": "200"},
        )["TargetGroups"][0]["TargetGroupArn"]
        elb.modify_target_group_attributes(
            TargetGroupArn=tg,
            Attributes=[
                {"Key": "deregistration_delay.timeout_seconds", "Value": str(deregistration_delay)}
            ],
        )
        elb.create_listener(
            LoadBalancerArn=lb["LoadBalancerArn"],
            Protocol="HTTP",
            Port=80,
            DefaultActions=[{"Type": "forward", "TargetGroupArn": tg}],
        )
        self.ids.update(alb_arn=lb["LoadBalancerArn"], alb_dns=lb["DNSName"], tg=tg)

    def build_cluster_and_roles(self) -> None:
        ecs, iam, logs, ecr = (self.client(s) for s in ("ecs", "iam", "logs", "ecr"))
        cluster = ecs.create_cluster(clusterName=f"{self.name}-cluster")["cluster"]["clusterArn"]
        execution = iam.create_role(
            RoleName=f"{self.name}-ecs-execution-role", AssumeRolePolicyDocument=ECS_TASKS_TRUST
        )["Role"]["Arn"]
        iam.attach_role_policy(
            RoleName=f"{self.name}-ecs-execution-role", PolicyArn=EXECUTION_POLICY_ARN
        )
        task_role = iam.create_role(
            RoleName=f"{self.name}-ecs-task-role", AssumeRolePolicyDocument=ECS_TASKS_TRUST
        )["Role"]["Arn"]
        repo = ecr.create_repository(repositoryName=f"{self.name}-app")["repository"]
        logs.create_log_group(logGroupName=f"/ecs/{self.name}")
        self.ids.update(
            cluster=cluster,
            execution_role=execution,
            task_role=task_role,
            repo_uri=repo["repositoryUri"],
            repo_name=repo["repositoryName"],
            log_group=f"/ecs/{self.name}",
        )

    def build_database(self, password: str = "s3cret-Passw0rd-for-tests-only!!") -> None:
        rds, sm = self.client("rds"), self.client("secretsmanager")
        db_name = self.name.replace("-", "_") + "_db"
        identifier = f"{self.name}-db"
        rds.create_db_instance(
            DBInstanceIdentifier=identifier,
            Engine="postgres",
            EngineVersion="15.8",
            DBInstanceClass="db.t3.micro",
            AllocatedStorage=20,
            MasterUsername="postgres",
            MasterUserPassword=password,
            DBName=db_name,
            VpcSecurityGroupIds=[self.ids["sgs"]["rds"]],
        )
        # As on AWS, the endpoint exists only once the instance is no longer "creating".
        rds.get_waiter("db_instance_available").wait(
            DBInstanceIdentifier=identifier, WaiterConfig={"Delay": 0.2, "MaxAttempts": 600}
        )
        instance = rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]
        secret = sm.create_secret(
            Name=f"{self.name}-db-credentials",
            SecretString=json.dumps(
                {
                    "username": "postgres",
                    "password": password,
                    "engine": "postgres",
                    "host": instance["Endpoint"]["Address"],
                    "port": instance["Endpoint"]["Port"],
                    "dbname": db_name,
                }
            ),
        )["ARN"]
        self.ids.update(secret=secret, db_password=password)

    def allow_secret(self) -> None:
        """Chapter 7's inline policy: GetSecretValue on the DB secret only."""
        self.client("iam").put_role_policy(
            RoleName=f"{self.name}-ecs-execution-role",
            PolicyName=f"{self.name}-ecs-execution-policy",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Action": ["secretsmanager:GetSecretValue"],
                            "Resource": self.ids["secret"],
                        }
                    ],
                }
            ),
        )

    def push_image(self, tag: str = "latest", context: Path = APP_DIR) -> str:
        """The Docker-free push: the manifest records the build context and its config."""
        manifest = build_manifest(context, parse_dockerfile(context / "Dockerfile"))
        image = self.client("ecr").put_image(
            repositoryName=self.ids["repo_name"],
            imageManifest=manifest,
            imageManifestMediaType="application/vnd.oci.image.manifest.v1+json",
            imageTag=tag,
            imageDigest=image_digest(manifest),
        )["image"]
        return str(image["imageId"]["imageDigest"])

    def build_all(self, *, nat: bool = True, **alb: Any) -> None:
        self.build_network(nat=nat)
        self.build_alb(**alb)
        self.build_cluster_and_roles()
        self.build_database()
        self.allow_secret()

    # ---------------------------------------------------------------- chapter 7

    def register_task_definition(self, **changes: Any) -> str:
        """Chapter 7's task definition (its DB secrets only when the world has them)."""
        secret = self.ids.get("secret")
        container = {
            "name": f"{self.name}-app",
            "image": f"{self.ids['repo_uri']}:latest",
            "essential": True,
            "portMappings": [{"containerPort": 3000, "protocol": "tcp"}],
            "environment": [
                {"name": "APP_ENV", "value": "production"},
                {"name": "PORT", "value": "3000"},
            ],
            "secrets": [
                {"name": env, "valueFrom": f"{secret}:{key}::"}
                for env, key in (
                    ("DB_HOST", "host"),
                    ("DB_PORT", "port"),
                    ("DB_NAME", "dbname"),
                    ("DB_USER", "username"),
                    ("DB_PASSWORD", "password"),
                )
                if secret
            ],
            "logConfiguration": {
                "logDriver": "awslogs",
                "options": {
                    "awslogs-group": self.ids["log_group"],
                    "awslogs-region": REGION,
                    "awslogs-stream-prefix": "ecs",
                },
            },
        }
        container.update(changes.pop("container", {}))
        definition = {
            "family": f"{self.name}-app",
            "networkMode": "awsvpc",
            "requiresCompatibilities": ["FARGATE"],
            "cpu": "256",
            "memory": "512",
            "executionRoleArn": self.ids["execution_role"],
            "taskRoleArn": self.ids["task_role"],
            "containerDefinitions": [container],
        }
        definition.update(changes)
        arn = self.client("ecs").register_task_definition(**definition)["taskDefinition"][
            "taskDefinitionArn"
        ]
        self.ids["task_definition"] = arn
        return str(arn)

    def create_service(self, *, desired: int = 2, **changes: Any) -> str:
        """Chapter 7's service (behind the ALB when the world has one)."""
        subnets = self.ids["subnets"]
        params: dict[str, Any] = {
            "cluster": self.ids["cluster"],
            "serviceName": f"{self.name}-app-service",
            "taskDefinition": self.ids["task_definition"],
            "desiredCount": desired,
            "launchType": "FARGATE",
            "networkConfiguration": {
                "awsvpcConfiguration": {
                    "subnets": [subnets["private_a"], subnets["private_c"]],
                    "securityGroups": [self.ids["sgs"]["ecs"]],
                    "assignPublicIp": "DISABLED",
                }
            },
            "loadBalancers": [
                {
                    "targetGroupArn": self.ids["tg"],
                    "containerName": f"{self.name}-app",
                    "containerPort": 3000,
                }
            ]
            if "tg" in self.ids
            else [],
            "deploymentConfiguration": {
                "maximumPercent": 200,
                "minimumHealthyPercent": 100,
                "deploymentCircuitBreaker": {"enable": True, "rollback": True},
            },
        }
        params.update(changes)
        service = self.client("ecs").create_service(**params)["service"]
        self.ids["service"] = service["serviceName"]
        return str(service["serviceArn"])

    def run_task(self, **changes: Any) -> str:
        """RunTask of the task definition in a private subnet; the new task's ARN."""
        subnets = self.ids["subnets"]
        params: dict[str, Any] = {
            "cluster": self.ids["cluster"],
            "taskDefinition": self.ids["task_definition"],
            "launchType": "FARGATE",
            "networkConfiguration": {
                "awsvpcConfiguration": {
                    "subnets": [subnets["private_a"]],
                    "securityGroups": [self.ids["sgs"]["ecs"]],
                    "assignPublicIp": "DISABLED",
                }
            },
        }
        params.update(changes)
        return str(self.client("ecs").run_task(**params)["tasks"][0]["taskArn"])

    def stop_services(self) -> None:
        """Delete the account's services so their tasks stop (keeps the machine quiet
        for the tests that follow)."""
        ecs = self.client("ecs")
        for cluster in ecs.list_clusters()["clusterArns"]:
            for service in ecs.list_services(cluster=cluster)["serviceArns"]:
                ecs.delete_service(cluster=cluster, service=service, force=True)

    # ------------------------------------------------------------------- reads

    def service(self) -> dict[str, Any]:
        return dict(
            self.client("ecs").describe_services(
                cluster=self.ids["cluster"], services=[self.ids["service"]]
            )["services"][0]
        )

    def messages(self) -> list[str]:
        return [e["message"] for e in self.service()["events"]]

    def wait_for(self, predicate: Any, *, timeout: float = 60.0, what: str = "condition") -> Any:
        """Poll ``predicate`` until it returns something truthy (bounded)."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = predicate()
            if last:
                return last
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}; last value: {last!r}")

    def wait_steady(self, timeout: float = 60.0) -> dict[str, Any]:
        def steady() -> dict[str, Any] | None:
            service = self.service()
            deployments = service["deployments"]
            if (
                len(deployments) == 1
                and deployments[0]["rolloutState"] == "COMPLETED"
                and service["runningCount"] == service["desiredCount"]
                and service["pendingCount"] == 0
            ):
                return service
            return None

        return dict(self.wait_for(steady, timeout=timeout, what="steady state"))

    def target_health(self) -> list[dict[str, Any]]:
        return list(
            self.client("elbv2").describe_target_health(TargetGroupArn=self.ids["tg"])[
                "TargetHealthDescriptions"
            ]
        )

    def tasks(self, status: str = "RUNNING") -> list[dict[str, Any]]:
        ecs = self.client("ecs")
        arns = ecs.list_tasks(
            cluster=self.ids["cluster"], serviceName=self.ids["service"], desiredStatus=status
        )["taskArns"]
        if not arns:
            return []
        return list(ecs.describe_tasks(cluster=self.ids["cluster"], tasks=arns)["tasks"])
