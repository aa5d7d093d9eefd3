"""The one module that touches moto's internals.

moto answers the AWS APIs (the control plane). This module

* builds moto's WSGI application;
* hooks the handful of operations where the data plane must act or answer instead of
  moto (ECS services and tasks, target health, RDS instances), by wrapping moto's
  response methods: checks run before moto, the data plane is told after, and what it
  knows (deployments, events, counts) is written onto moto's objects before they are
  serialised;
* gives the data plane plain-data views of moto's state (task definitions, secrets,
  IAM policies, ECR images, log groups, target groups, load balancers).

Everything else in the sandbox works with plain dicts and never imports moto.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from moto.core.exceptions import ServiceException
from moto.core.responses import ActionResult
from moto.ec2.models import ec2_backends
from moto.ecr.models import ecr_backends
from moto.ecs.exceptions import ECSException
from moto.ecs.models import ecs_backends
from moto.ecs.responses import EC2ContainerServiceResponse
from moto.elbv2.exceptions import ELBClientError
from moto.elbv2.models import elbv2_backends
from moto.elbv2.responses import ELBV2Response
from moto.iam.models import iam_backends
from moto.logs.exceptions import LogsClientError
from moto.logs.models import logs_backends
from moto.logs.responses import LogsResponse
from moto.moto_api._internal import mock_random
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.rds.exceptions import RDSClientError
from moto.rds.models import DBInstance
from moto.rds.responses import RDSResponse
from moto.secretsmanager.models import secretsmanager_backends

if TYPE_CHECKING:
    from handson.sandbox.dataplane.engine import DataPlane


class ApiError(Exception):
    """An AWS error answer: ``code`` is the AWS error code, ``message`` its text."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@contextmanager
def _as_aws_errors(error_class: type[Exception]) -> Iterator[None]:
    # moto serialises an error with the service model of the module its class lives in,
    # so each service's errors must be raised as that service's exception class.
    try:
        yield
    except ApiError as exc:
        raise error_class(exc.code, exc.message) from exc  # type: ignore[call-arg]


# --------------------------------------------------------------------------- app


def wsgi_app() -> Callable[..., Any]:
    """moto's server application, dispatching each request to its service."""
    return DomainDispatcherApplication(create_backend_app)


def seed(value: int) -> None:
    """Seed moto's random stream, from which every sandbox id is drawn too."""
    mock_random.seed(value)


def reset() -> None:
    """Forget every resource in every account, as POST /moto-api/reset does."""
    from moto.moto_api._internal.models import moto_api_backend

    moto_api_backend.reset()


def random_hex(length: int) -> str:
    return mock_random.get_random_hex(length)


def random_uuid() -> str:
    return str(mock_random.uuid4())


def random_digits(length: int) -> str:
    return "".join(str(mock_random.randint(0, 9)) for _ in range(length))


# ------------------------------------------------------------------ hook install

_dp: DataPlane | None = None
_originals: dict[tuple[type, str], Callable[..., Any]] = {}


_ERROR_CLASSES: dict[type, type[Exception]] = {
    EC2ContainerServiceResponse: ECSException,
    ELBV2Response: ELBClientError,
    RDSResponse: RDSClientError,
    LogsResponse: LogsClientError,
}


def _wrap(cls: type, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
        original = _originals.setdefault((cls, name), getattr(cls, name))

        def method(self: Any) -> Any:
            with _as_aws_errors(_ERROR_CLASSES[cls]):
                return func(self, original)

        method.__name__ = name
        setattr(cls, name, method)
        return func

    return decorator


def install(dataplane: DataPlane) -> None:
    """Route the hooked operations to ``dataplane`` (idempotent)."""
    global _dp
    _dp = dataplane
    if _originals:
        return
    _install_account_lookup()
    _install_filters()
    _install_ecs()
    _install_elbv2()
    _install_rds()
    _install_logs()


def _plane() -> DataPlane:
    if _dp is None:
        raise RuntimeError("moto_bridge.install() was not called")
    return _dp


def _ctx(response: Any) -> tuple[str, str]:
    return str(response.current_account), str(response.region)


# --------------------------------------------------------------------- accounts


def _install_account_lookup() -> None:
    """Find the account of an access key without creating IAM backends.

    moto's ``get_account_id_from`` runs on every request and walks every account's six
    partitions, creating (and filling with 1,500 managed policies) the IAM backend of each
    partition it touches: with 30 students that is seconds of work and a gigabyte of
    memory. The sandbox is one partition, "aws", and a key's account never changes.
    """
    import moto.iam.models as iam_models

    known: dict[str, str] = {}

    def get_account_id_from(access_key: str) -> str:
        if access_key in known:
            return known[access_key]
        for account_id, account in list(iam_backends.items()):
            backend = dict.get(account, "aws")  # dict.get: never create a backend
            if backend is not None and access_key in backend.access_keys:
                known[access_key] = account_id
                return account_id
        return str(iam_models.DEFAULT_ACCOUNT_ID)

    iam_models.get_account_id_from = get_account_id_from  # type: ignore[assignment]


def _install_filters() -> None:
    """Filters moto ignores and AWS applies, which the kit relies on to tell students apart."""
    from moto.ec2.models.nat_gateways import NatGatewayBackend
    from moto.rds.models import RDSBackend

    describe_nat = NatGatewayBackend.describe_nat_gateways

    def describe_nat_gateways(self: Any, filters: Any, nat_gateway_ids: Any) -> list[Any]:
        found = describe_nat(self, filters, nat_gateway_ids)
        for key, values in (filters or {}).items():
            if key.startswith("tag:"):
                # self.tags: EC2's tag store, resource id -> {key: value}
                found = [n for n in found if self.tags.get(n.id, {}).get(key[4:]) in values]
        return list(found)

    NatGatewayBackend.describe_nat_gateways = describe_nat_gateways  # type: ignore[method-assign]

    describe_groups = RDSBackend.describe_db_parameter_groups

    def describe_db_parameter_groups(self: Any, kwargs: dict[str, Any]) -> list[Any]:
        found = describe_groups(self, kwargs)
        name = kwargs.get("db_parameter_group_name")
        if name and not found:
            raise RDSClientError("DBParameterGroupNotFound", f"DBParameterGroup not found: {name}")
        return list(found)

    RDSBackend.describe_db_parameter_groups = describe_db_parameter_groups  # type: ignore[method-assign]


# -------------------------------------------------------------------------- ECS


def _cluster(account: str, region: str, name_or_arn: str | None) -> Any:
    return ecs_backends[account][region]._get_cluster(name_or_arn or "default")


def cluster_arn(account: str, region: str, name_or_arn: str | None) -> str:
    """The ARN of an existing cluster (ClusterNotFoundException otherwise)."""
    return str(_cluster(account, region, name_or_arn).arn)


def task_definition(account: str, region: str, name_or_arn: str) -> dict[str, Any] | None:
    """A registered task definition in the API's shape, or None."""
    backend = ecs_backends[account][region]
    try:
        td = backend.describe_task_definition(name_or_arn)
    except ServiceException:
        return None
    return {
        "taskDefinitionArn": td.arn,
        "family": td.family,
        "revision": td.revision,
        "containerDefinitions": [dict(c) for c in td.container_definitions],
        "cpu": td.cpu,
        "memory": td.memory,
        "networkMode": td.network_mode,
        "executionRoleArn": getattr(td, "execution_role_arn", None),
        "taskRoleArn": getattr(td, "task_role_arn", None),
        "requiresCompatibilities": td.requires_compatibilities or [],
        "status": td.status,
    }


def _service_info(service: Any) -> dict[str, Any]:
    return {
        "serviceArn": service.arn,
        "serviceName": service.name,
        "clusterArn": service.cluster_arn,
        "taskDefinition": service.task_definition,
        "desiredCount": service.desired_count,
        "status": service.status,
        "loadBalancers": service.load_balancers,
        "networkConfiguration": service.network_configuration,
        "deploymentId": service.deployments[0]["id"] if service.deployments else None,
    }


def existing_service(account: str, region: str, cluster: str, name: str) -> dict[str, Any] | None:
    """The service with that name in the cluster (any status), or None."""
    backend = ecs_backends[account][region]
    try:
        service = backend._get_service(cluster, name)
    except ServiceException:
        return None
    return _service_info(service)


def _publish(service: Any) -> None:
    """Write the data plane's view of a service onto moto's object before it's serialised."""
    view = _plane().service_view(service.arn)
    if view is None:
        return
    for key, value in view.items():
        setattr(service, key, value)


def _install_ecs() -> None:
    cls = EC2ContainerServiceResponse

    @_wrap(cls, "register_task_definition")
    def register_task_definition(self: Any, original: Callable[..., Any]) -> Any:
        account, region = _ctx(self)
        _plane().check_task_definition(account, region, self._get_params())
        return original(self)

    @_wrap(cls, "create_service")
    def create_service(self: Any, original: Callable[..., Any]) -> Any:
        account, region = _ctx(self)
        params = self._get_params()
        _plane().check_create_service(account, region, params)
        result = original(self)
        service = result.result["service"]
        _plane().service_created(account, region, params, _service_info(service))
        _publish(service)
        return result

    @_wrap(cls, "update_service")
    def update_service(self: Any, original: Callable[..., Any]) -> Any:
        account, region = _ctx(self)
        params = self._get_params()
        _plane().check_update_service(account, region, params)
        result = original(self)
        service = result.result["service"]
        _plane().service_updated(account, region, params, _service_info(service))
        _publish(service)
        return result

    @_wrap(cls, "delete_service")
    def delete_service(self: Any, original: Callable[..., Any]) -> Any:
        account, region = _ctx(self)
        result = original(self)
        service = result.result["service"]
        _plane().service_deleted(service.arn)
        _publish(service)
        return result

    @_wrap(cls, "describe_services")
    def describe_services(self: Any, original: Callable[..., Any]) -> Any:
        result = original(self)
        for service in result.result["services"]:
            _publish(service)
        return result

    @_wrap(cls, "list_services")
    def list_services(self: Any, original: Callable[..., Any]) -> Any:
        # AWS lists ACTIVE and DRAINING services only; moto also lists INACTIVE ones.
        result = original(self)
        account, region = _ctx(self)
        backend = ecs_backends[account][region]
        inactive = {s.arn for s in backend.services.values() if s.status == "INACTIVE"}
        arns = [a for a in result.result["serviceArns"] if a not in inactive]
        return ActionResult({"serviceArns": arns})

    @_wrap(cls, "list_task_definitions")
    def list_task_definitions(self: Any, original: Callable[..., Any]) -> Any:
        # AWS sorts by family and revision, ASC by default, and pages with maxResults;
        # moto ignores sort and maxResults (so "sort=DESC, maxResults=1" found revision 1).
        params = self._get_params()
        arns = list(original(self).result["taskDefinitionArns"])

        def key(arn: str) -> tuple[str, int]:
            family, revision = arn.rsplit("/", 1)[-1].rsplit(":", 1)
            return family, int(revision)

        arns.sort(key=key, reverse=params.get("sort") == "DESC")
        start = int(params.get("nextToken") or 0)
        limit = int(params.get("maxResults") or 100)
        page: dict[str, Any] = {"taskDefinitionArns": arns[start : start + limit]}
        if start + limit < len(arns):
            page["nextToken"] = str(start + limit)
        return ActionResult(page)

    @_wrap(cls, "run_task")
    def run_task(self: Any, original: Callable[..., Any]) -> Any:
        account, region = _ctx(self)
        params = self._get_params()
        arn = cluster_arn(account, region, params.get("cluster"))
        tasks = _plane().run_task(account, region, arn, params)
        return ActionResult({"tasks": tasks, "failures": []})

    @_wrap(cls, "list_tasks")
    def list_tasks(self: Any, original: Callable[..., Any]) -> Any:
        account, region = _ctx(self)
        params = self._get_params()
        arn = cluster_arn(account, region, params.get("cluster"))
        return ActionResult({"taskArns": _plane().list_tasks(account, region, arn, params)})

    @_wrap(cls, "describe_tasks")
    def describe_tasks(self: Any, original: Callable[..., Any]) -> Any:
        account, region = _ctx(self)
        params = self._get_params()
        arn = cluster_arn(account, region, params.get("cluster"))
        tasks, failures = _plane().describe_tasks(account, region, arn, params)
        return ActionResult({"tasks": tasks, "failures": failures})

    @_wrap(cls, "stop_task")
    def stop_task(self: Any, original: Callable[..., Any]) -> Any:
        account, region = _ctx(self)
        params = self._get_params()
        arn = cluster_arn(account, region, params.get("cluster"))
        return ActionResult({"task": _plane().stop_task(account, region, arn, params)})


# ------------------------------------------------------------------------ ELBv2


def _target_group_view(tg: Any, backend: Any) -> dict[str, Any]:
    return {
        "arn": tg.arn,
        "name": tg.name,
        "protocol": tg.protocol,
        "port": int(tg.port) if tg.port else None,
        "targetType": tg.target_type,
        "healthCheckEnabled": tg.health_check_enabled,
        "healthCheckPath": tg.health_check_path or "/",
        "healthCheckPort": tg.health_check_port or "traffic-port",
        "healthCheckIntervalSeconds": int(tg.health_check_interval_seconds),
        "healthCheckTimeoutSeconds": int(tg.health_check_timeout_seconds),
        "healthyThresholdCount": int(tg.healthy_threshold_count),
        "unhealthyThresholdCount": int(tg.unhealthy_threshold_count),
        "matcher": str((getattr(tg, "matcher", None) or {}).get("HttpCode", "200")),
        "deregistrationDelay": int(tg.attributes.get("deregistration_delay.timeout_seconds", 300)),
        "loadBalancerArns": list(tg.load_balancer_arns),
        "targets": [
            {"Id": t["Id"], "Port": int(t.get("Port") or tg.port)} for t in tg.targets.values()
        ],
    }


def target_groups() -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Every target group of every account and region: (account, region, view)."""
    for account, regions in list(elbv2_backends.items()):
        for region, backend in list(regions.items()):
            for tg in list(backend.target_groups.values()):
                yield account, region, _target_group_view(tg, backend)


def target_group(account: str, region: str, arn: str) -> dict[str, Any] | None:
    backend = elbv2_backends[account][region]
    tg = backend.target_groups.get(arn)
    return None if tg is None else _target_group_view(tg, backend)


def register_target(account: str, region: str, tg_arn: str, ip: str, port: int) -> None:
    elbv2_backends[account][region].register_targets(tg_arn, [{"Id": ip, "Port": port}])


def deregister_target(account: str, region: str, tg_arn: str, ip: str, port: int) -> None:
    backend = elbv2_backends[account][region]
    tg = backend.target_groups.get(tg_arn)
    if tg is not None and ip in tg.targets:
        backend.deregister_targets(tg_arn, [{"Id": ip, "Port": port}])


def load_balancer_by_dns(dns_name: str) -> dict[str, Any] | None:
    """The load balancer answering at ``dns_name``, with its listeners' forward targets."""
    wanted = dns_name.lower().rstrip(".")
    for account, regions in list(elbv2_backends.items()):
        for region, backend in list(regions.items()):
            for lb in list(backend.load_balancers.values()):
                if lb.dns_name.lower() != wanted:
                    continue
                listeners: dict[int, list[tuple[str, int]]] = {}
                for listener in lb.listeners.values():
                    listeners[int(listener.port)] = _forward_targets(listener.default_actions)
                return {
                    "account": account,
                    "region": region,
                    "arn": lb.arn,
                    "listeners": listeners,
                }
    return None


def load_balancers() -> Iterator[dict[str, Any]]:
    """Every load balancer: account, region, name, DNS name, listener ports."""
    for account, regions in list(elbv2_backends.items()):
        for region, backend in list(regions.items()):
            for lb in list(backend.load_balancers.values()):
                yield {
                    "account": account,
                    "region": region,
                    "name": lb.name,
                    "dnsName": lb.dns_name,
                    "ports": sorted(int(li.port) for li in lb.listeners.values()),
                }


def _forward_targets(actions: list[Any]) -> list[tuple[str, int]]:
    for action in actions:
        data = getattr(action, "data", {})
        if data.get("Type") != "forward":
            continue
        if data.get("TargetGroupArn"):
            return [(data["TargetGroupArn"], 1)]
        groups = (data.get("ForwardConfig") or {}).get("TargetGroups") or []
        return [(g["TargetGroupArn"], int(g.get("Weight", 1))) for g in groups]
    return []


def _install_elbv2() -> None:
    cls = ELBV2Response

    @_wrap(cls, "describe_target_health")
    def describe_target_health(self: Any, original: Callable[..., Any]) -> Any:
        account, region = _ctx(self)
        arn = self._get_param("TargetGroupArn")
        targets = self._get_param("Targets", [])
        backend = elbv2_backends[account][region]
        if arn not in backend.target_groups:
            return original(self)  # moto raises TargetGroupNotFound
        descriptions = _plane().describe_target_health(account, region, arn, targets)
        return ActionResult({"TargetHealthDescriptions": descriptions})

    @_wrap(cls, "create_load_balancer")
    def create_load_balancer(self: Any, original: Callable[..., Any]) -> Any:
        # moto names every load balancer "<name>-1.<region>.elb.amazonaws.com", the same
        # in every account; AWS adds a number unique to that load balancer.
        _, region = _ctx(self)
        result = original(self)
        for lb in result.result["LoadBalancers"]:
            if lb.dns_name.startswith(f"{lb.name}-1."):
                lb.dns_name = f"{lb.name}-{random_digits(10)}.{region}.elb.amazonaws.com"
        return result


# -------------------------------------------------------------------------- RDS


def _rds_address(self: Any) -> str:
    # AWS: <id>.<12 characters unique to the account and region>.<region>.rds.amazonaws.com;
    # moto uses "aaaaaaaaaa" for everyone, so two students' endpoints would collide.
    unique = hashlib.sha256(f"{self.account_id}:{self.region}".encode()).hexdigest()[:12]
    return f"{self.db_instance_identifier}.{unique}.{self.region}.rds.amazonaws.com"


def _db_view(instance: Any) -> dict[str, Any]:
    return {
        "identifier": instance.db_instance_identifier,
        "engine": instance.engine,
        "address": instance.address,
        "port": int(instance.port),
        "masterUsername": instance.master_username,
        "dbName": instance.db_name,
        "arn": instance.db_instance_arn,
    }


def set_db_port(account: str, region: str, identifier: str, port: int) -> None:
    from moto.rds.models import rds_backends

    rds_backends[account][region].databases[identifier].port = port


def _install_rds() -> None:
    DBInstance.address = property(_rds_address)  # type: ignore[assignment,method-assign]
    cls = RDSResponse

    @_wrap(cls, "create_db_instance")
    def create_db_instance(self: Any, original: Callable[..., Any]) -> Any:
        account, region = _ctx(self)
        password = self._get_param("MasterUserPassword")
        result = original(self)
        instance = result.result["DBInstance"]
        _plane().db_instance_created(account, region, _db_view(instance), password)
        return result

    @_wrap(cls, "modify_db_instance")
    def modify_db_instance(self: Any, original: Callable[..., Any]) -> Any:
        account, region = _ctx(self)
        password = self._get_param("MasterUserPassword")
        result = original(self)
        if password:
            instance = result.result["DBInstance"]
            _plane().db_password_changed(account, region, _db_view(instance), password)
        return result

    @_wrap(cls, "delete_db_instance")
    def delete_db_instance(self: Any, original: Callable[..., Any]) -> Any:
        account, region = _ctx(self)
        result = original(self)
        instance = result.result["DBInstance"]
        _plane().db_instance_deleted(account, region, _db_view(instance))
        return result


# ------------------------------------------------------------------------- Logs


def _install_logs() -> None:
    @_wrap(LogsResponse, "filter_log_events")
    def filter_log_events(self: Any, original: Callable[..., Any]) -> Any:
        # moto ignores logStreamNamePrefix; AWS searches only the streams it names.
        result = original(self)
        prefix = self._get_param("logStreamNamePrefix")
        if not prefix or self._get_param("logStreamNames"):
            return result
        answer = json.loads(result)
        answer["events"] = [e for e in answer["events"] if e["logStreamName"].startswith(prefix)]
        answer["searchedLogStreams"] = [
            s for s in answer.get("searchedLogStreams", []) if s["logStreamName"].startswith(prefix)
        ]
        return json.dumps(answer)


# ------------------------------------------------------------- reads for tasks


def role_policies(account: str, role_arn: str) -> list[dict[str, Any]] | None:
    """Inline and attached policy documents of a role, or None if it doesn't exist."""
    name = role_arn.rsplit("/", 1)[-1]
    backend = iam_backends[account]["global"]
    try:
        role = backend.get_role(name)
    except Exception:  # moto raises IAMNotFoundException
        return None
    documents = [_document(doc) for doc in role.policies.values()]
    for policy in role.managed_policies.values():
        version = next((v for v in policy.versions if v.is_default), None)
        if version is not None:
            documents.append(_document(version.document))
    return documents


def _document(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    from urllib.parse import unquote

    text = str(raw)
    try:
        return dict(json.loads(text))
    except json.JSONDecodeError:
        return dict(json.loads(unquote(text)))


def secret(account: str, region: str, secret_id: str) -> dict[str, Any] | None:
    """A secret's ARN and current value ({"arn", "name", "secretString"}), or None."""
    backend = secretsmanager_backends[account][region]
    try:
        value = backend.get_secret_value(secret_id, version_id=None, version_stage=None)
    except Exception:  # moto raises its ResourceNotFoundException / InvalidRequestException
        return None
    return {"arn": value["ARN"], "name": value["Name"], "secretString": value.get("SecretString")}


def image_manifest(
    account: str, region: str, repository: str, tag: str | None, digest: str | None
) -> tuple[str, str] | None:
    """(manifest, digest) of an image in an ECR repository, or None when it isn't there."""
    try:
        repo = ecr_backends[account][region]._get_repository(repository)
    except Exception:  # RepositoryNotFoundException
        return None
    for image in repo.images:
        if (digest and image.image_digest == digest) or (tag and tag in image.image_tags):
            return str(image.image_manifest), str(image.image_digest)
    return None


def log_group_exists(account: str, region: str, name: str) -> bool:
    return name in logs_backends[account][region].groups


def create_log_group(account: str, region: str, name: str) -> None:
    backend = logs_backends[account][region]
    if name not in backend.groups:
        backend.create_log_group(name, tags={})


def put_log_events(
    account: str, region: str, group: str, stream: str, events: list[dict[str, Any]]
) -> bool:
    """Append events to a stream, creating the stream; False when the group is gone."""
    backend = logs_backends[account][region]
    if group not in backend.groups:
        return False
    backend.ensure_log_stream(group, stream)
    backend.put_log_events(group, stream, events)
    return True


# -------------------------------------------------------------------------- EC2


def create_eni(
    account: str, region: str, subnet_id: str, group_ids: list[str], description: str
) -> dict[str, Any]:
    """An ENI with an address from the subnet, as Fargate makes for each task."""
    backend = ec2_backends[account][region]
    subnet = backend.get_subnet(subnet_id)
    eni = backend.create_network_interface(
        subnet=subnet, private_ip_address=None, group_ids=group_ids, description=description
    )
    eni.private_ip_address = subnet.get_available_subnet_ip(eni)
    eni.status = "in-use"
    eni.interface_type = "interface"
    return {
        "id": eni.id,
        "ip": eni.private_ip_address,
        "mac": eni.mac_address,
        "availabilityZone": subnet.availability_zone,
    }


def delete_eni(account: str, region: str, eni_id: str) -> None:
    backend = ec2_backends[account][region]
    eni = backend.enis.get(eni_id)
    if eni is None:
        return
    try:
        eni.subnet.del_subnet_ip(eni.private_ip_address)
    except KeyError:
        pass
    backend.enis.pop(eni_id, None)


def egress(account: str, region: str, subnet_id: str) -> dict[str, Any]:
    """How a subnet reaches AWS services: its default route ("igw", "nat" or None) and
    the services it reaches through VPC endpoints (interface ones with private DNS, and
    gateway ones on its route table)."""
    backend = ec2_backends[account][region]
    subnet = backend.get_subnet(subnet_id)
    tables = [t for t in backend.route_tables.values() if t.vpc_id == subnet.vpc_id]
    table = next((t for t in tables if subnet_id in t._associations.values()), None)
    if table is None:
        table = next((t for t in tables if t.main_association_id), None)
    default_route = None
    for route in table.routes if table else []:
        if route.destination_cidr_block != "0.0.0.0/0":
            continue
        if route.nat_gateway is not None and route.nat_gateway.state == "available":
            default_route = "nat"
        elif route.gateway is not None and str(route.gateway.id).startswith("igw-"):
            default_route = "igw"
    services = set()
    for endpoint in backend.vpc_end_points.values():
        if endpoint.vpc_id != subnet.vpc_id or endpoint.state != "available":
            continue
        name = endpoint.service_name.split(f"{region}.", 1)[-1]
        if endpoint.vpc_endpoint_type == "Gateway":
            if table is not None and table.id in (endpoint.route_table_ids or []):
                services.add(name)
        elif endpoint.private_dns_enabled:
            services.add(name)
    return {"default_route": default_route, "endpoint_services": services}


def account_of(access_key_id: str) -> str:
    """The account an access key belongs to (assumed-role keys included)."""
    from moto.iam.models import get_account_id_from

    return str(get_account_id_from(access_key_id))


def accounts() -> list[str]:
    """Accounts that have made at least one ECS, ELB or EC2 call."""
    seen: set[str] = set()
    for backends in (ecs_backends, elbv2_backends, ec2_backends):
        seen.update(backends.keys())
    return sorted(seen)
