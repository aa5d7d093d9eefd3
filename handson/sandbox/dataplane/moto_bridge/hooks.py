"""The hooks that route moto's API operations to the data plane.

``install(dataplane)`` wraps moto's response methods for the handful of operations where
the data plane must act or answer instead of moto (ECS services and tasks, target health,
RDS instances, IAM roles): checks run before moto, the data plane is told after, and what
it knows (deployments, events, counts) is written onto moto's objects before they are
serialised. It also patches what moto does slowly or unlike AWS: its per-request
look-ups and per-account set-up, filters it ignores, the time AWS takes to make and
remove resources, and AWS's refusals to delete what is still in use.

The server calls ``install`` once it has made its ``DataPlane``; the data plane never
imports this module (it reads and writes moto's state through ``views``).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import itertools
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from moto.core.responses import ActionResult
from moto.core.utils import utcnow
from moto.ec2.exceptions import EC2ClientError
from moto.ec2.models import ec2_backends
from moto.ec2.responses import EC2Response
from moto.ecs.exceptions import ECSException
from moto.ecs.models import ecs_backends
from moto.ecs.responses import EC2ContainerServiceResponse
from moto.elbv2.exceptions import ELBClientError
from moto.elbv2.models import FakeLoadBalancer, elbv2_backends
from moto.elbv2.responses import ELBV2Response
from moto.iam.exceptions import IAMException
from moto.iam.models import iam_backends
from moto.iam.responses import IamResponse
from moto.logs.exceptions import LogsClientError
from moto.logs.responses import LogsResponse
from moto.rds.exceptions import RDSClientError
from moto.rds.models import DBInstance, rds_backends
from moto.rds.responses import RDSResponse

from handson.sandbox.dataplane.moto_bridge.views import (
    ApiError,
    _forward_targets,
    _service_info,
    assign_subnet_address,
    cluster_arn,
    delete_eni,
    random_digits,
    rules_changed,
)

if TYPE_CHECKING:
    from handson.sandbox.dataplane.engine import DataPlane


@contextmanager
def _as_aws_errors(error_class: type[Exception]) -> Iterator[None]:
    # moto serialises an error with the service model of the module its class lives in,
    # so each service's errors must be raised as that service's exception class.
    try:
        yield
    except ApiError as exc:
        raise error_class(exc.code, exc.message) from exc  # type: ignore[call-arg]


# ------------------------------------------------------------------ hook install

_dp: DataPlane | None = None
_originals: dict[tuple[type, str], Callable[..., Any]] = {}


_ERROR_CLASSES: dict[type, type[Exception]] = {
    EC2ContainerServiceResponse: ECSException,
    ELBV2Response: ELBClientError,
    RDSResponse: RDSClientError,
    LogsResponse: LogsClientError,
    EC2Response: EC2ClientError,
    IamResponse: IAMException,
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
    _install_dispatch()
    _install_account_lookup()
    _install_account_setup()
    _install_filters()
    _install_ecs()
    _install_elbv2()
    _install_rds()
    _install_logs()
    _install_ecr()
    _install_ec2()
    _install_addresses()
    _install_iam()
    _install_rule_hooks()


def _plane() -> DataPlane:
    if _dp is None:
        raise RuntimeError("moto_bridge.hooks.install() was not called")
    return _dp


def _ctx(response: Any) -> tuple[str, str]:
    return str(response.current_account), str(response.region)


def _install_dispatch() -> None:
    """Work out once what moto works out again for every request.

    To tell a service name from a host name, moto lists its own package folder (180
    ``stat`` calls); to find the action's method, it lists the response class's methods
    (300 for EC2). Neither changes while the server runs (our hooks are installed before
    it serves). Measured in-process: 1.6 ms of the 4.7 ms a DescribeVpcs cost.
    """
    import moto.backends as moto_backends
    import moto.core.responses as moto_responses

    modules = tuple(moto_backends.list_of_moto_modules())
    moto_backends.list_of_moto_modules = lambda: modules  # type: ignore[assignment]
    moto_responses.method_names_from_class = functools.cache(  # type: ignore[assignment]
        moto_responses.method_names_from_class
    )


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


def _install_account_setup() -> None:
    """Do once what moto redoes for every new account.

    For each service, moto lists the service's regions from botocore's endpoint data
    again for every account (its cache is per account: 0.23 s for the kit's ten
    services), and parses the 4.6 MB of AWS managed policies and makes their 1,582
    objects again for the IAM backend of every account (0.05 s; a shallow copy of each
    takes 5 ms). A class of 30 is 30 accounts on the one server thread. As on AWS, an AWS
    managed policy has the same policy id in every account.
    """
    import moto.iam.models as iam_models
    from moto.core.base_backend import AccountSpecificBackend

    list_regions = AccountSpecificBackend._generate_regions.__wrapped__
    regions: dict[str, list[str]] = {}

    def _generate_regions(self: Any, service_name: str) -> list[str]:
        if service_name not in regions:
            regions[service_name] = list_regions(self, service_name)
        return list(regions[service_name])

    AccountSpecificBackend._generate_regions = _generate_regions  # type: ignore[method-assign]

    @functools.cache
    def policies(partition: str) -> tuple[Any, ...]:
        data = json.loads(iam_models.aws_managed_policies_data)
        return tuple(
            iam_models.AWSManagedPolicy.from_data(name, "aws", partition, policy)
            for name, policy in data.items()
        )

    def _init_aws_policies(self: Any) -> list[Any]:
        if not iam_models.load_iam_aws_managed_policies():
            return []
        made = []
        for template in policies(self.region_name):
            policy = copy.copy(template)  # its own attachment count, in its own account
            policy.account_id = self.account_id
            made.append(policy)
        return made

    iam_models.IAMBackend._init_aws_policies = _init_aws_policies  # type: ignore[method-assign]


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


def _publish(service: Any) -> None:
    """Write the data plane's view of a service onto moto's object before it's serialised."""
    view = _plane().service_view(service.arn)
    if view is None:
        return
    for key, value in view.items():
        setattr(service, key, value)


def _install_task_definition_revisions() -> None:
    """ECS never reuses a revision number: once a family's revisions are deleted
    (DeleteTaskDefinitions), the next one registered is numbered after the highest ever
    registered (docs/sandbox.md, "Task definition revisions"). moto numbers it after the highest one
    left, so a family deleted at teardown would start again at 1."""
    from moto.ecs.models import EC2ContainerServiceBackend

    backend_class = EC2ContainerServiceBackend
    highest_left = backend_class._get_last_task_definition_revision_id
    register = backend_class.register_task_definition

    def _get_last_task_definition_revision_id(self: Any, family: str) -> int | None:
        last = highest_left(self, family)
        if self.__dict__.get("_registering") == family:  # numbering a new revision
            last = max(last or 0, self.__dict__.get("_highest_revisions", {}).get(family, 0))
        return last or None

    def register_task_definition(self: Any, family: str, *args: Any, **kwargs: Any) -> Any:
        self._registering = family
        try:
            definition = register(self, family, *args, **kwargs)
        finally:
            self._registering = None
        highest = self.__dict__.setdefault("_highest_revisions", {})
        highest[family] = max(highest.get(family, 0), definition.revision)
        return definition

    backend_class._get_last_task_definition_revision_id = (  # type: ignore[method-assign]
        _get_last_task_definition_revision_id
    )
    backend_class.register_task_definition = register_task_definition  # type: ignore[method-assign]


def _install_ecs() -> None:
    _install_task_definition_revisions()
    cls = EC2ContainerServiceResponse

    @_wrap(cls, "register_task_definition")
    def register_task_definition(self: Any, original: Callable[..., Any]) -> Any:
        account, region = _ctx(self)
        _plane().check_task_definition(account, region, self._get_params())
        return original(self)

    @_wrap(cls, "delete_cluster")
    def delete_cluster(self: Any, original: Callable[..., Any]) -> Any:
        account, region = _ctx(self)
        name = self._get_param("cluster")
        try:
            arn = cluster_arn(account, region, name)
        except Exception:  # moto answers ClusterNotFoundException below
            return original(self)
        _plane().check_delete_cluster(account, region, arn)
        return original(self)

    @_wrap(cls, "create_service")
    def create_service(self: Any, original: Callable[..., Any]) -> Any:
        account, region = _ctx(self)
        params = self._get_params()
        _plane().check_create_service(account, region, params)
        result = original(self)
        service = result.result["service"]
        # AWS's Service has createdAt (moto's none): a service made again under the same
        # name is a new one, and its older namesake's stopped tasks came before it.
        service.created_at = utcnow()
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


def _ready_later(lb: Any) -> Callable[[], None]:
    def ready() -> None:
        lb._handson_ready = True

    return ready


def _activate(self: Any) -> None:
    # moto's FakeLoadBalancer.activate, kept "provisioning" until the data plane says so.
    if self.state == "provisioning" and getattr(self, "_handson_ready", True):
        self.state = "active"


def _install_elbv2() -> None:
    FakeLoadBalancer.activate = _activate  # type: ignore[method-assign]
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
        control = _plane().control
        for lb in result.result["LoadBalancers"]:
            if lb.dns_name.startswith(f"{lb.name}-1."):
                lb.dns_name = f"{lb.name}-{random_digits(10)}.{region}.elb.amazonaws.com"
            if not control.instant and not hasattr(lb, "_handson_ready"):
                # "provisioning" until set up (moto activates it on the next describe).
                lb._handson_ready = False
                control.later("load-balancer.provisioning", _ready_later(lb))
        return result

    @_wrap(cls, "delete_load_balancer")
    def delete_load_balancer(self: Any, original: Callable[..., Any]) -> Any:
        # The ALB's network interfaces are cleaned up after it is gone: for a while they
        # still hold its security groups, subnets and public addresses.
        account, region = _ctx(self)
        arn = self._get_param("LoadBalancerArn")
        lb = elbv2_backends[account][region].load_balancers.get(arn)
        result = original(self)
        if lb is not None:
            _plane().linger(
                account,
                region,
                "load-balancer.eni-release",
                security_groups=list(lb.security_groups or []),
                subnets=[getattr(s, "id", s) for s in lb.subnets],
                public_vpcs=[lb.vpc_id] if lb.scheme != "internal" else [],
            )
        return result

    @_wrap(cls, "delete_target_group")
    def delete_target_group(self: Any, original: Callable[..., Any]) -> Any:
        account, region = _ctx(self)
        arn = self._get_param("TargetGroupArn")
        for lb in _balancers(account, region):
            for listener in lb.listeners.values():
                actions = [*listener.default_actions]
                for rule in getattr(listener, "_non_default_rules", {}).values():
                    actions += list(getattr(rule, "actions", []))
                if any(t == arn for t, _ in _forward_targets(actions)):
                    raise ApiError(
                        "ResourceInUse",
                        f"Target group '{arn}' is currently in use by a listener or a rule",
                    )
        return original(self)


# -------------------------------------------------------------------------- RDS


def _rds_address(self: Any) -> str:
    # AWS: <id>.<12 characters unique to the account and region>.<region>.rds.amazonaws.com;
    # moto uses "aaaaaaaaaa" for everyone, so two students' endpoints would collide.
    unique = hashlib.sha256(f"{self.account_id}:{self.region}".encode()).hexdigest()[:12]
    return f"{self.db_instance_identifier}.{unique}.{self.region}.rds.amazonaws.com"


def _rds_endpoint(self: Any) -> dict[str, Any] | None:
    # AWS assigns the address while the instance is created: CreateDBInstance's answer and
    # DescribeDBInstances have no Endpoint while it is "creating" (README, sandbox section).
    if self.status == "creating":
        return None
    return {"Address": self.address, "Port": self.port}


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


def _subnet_group_name(instance: Any) -> str | None:
    group = getattr(instance, "db_subnet_group", None)
    return None if group is None else str(group.name)


def _install_rds() -> None:
    DBInstance.address = property(_rds_address)  # type: ignore[assignment,method-assign]
    DBInstance.endpoint = property(_rds_endpoint)  # type: ignore[assignment,method-assign]
    cls = RDSResponse

    @_wrap(cls, "create_db_instance")
    def create_db_instance(self: Any, original: Callable[..., Any]) -> Any:
        account, region = _ctx(self)
        password = self._get_param("MasterUserPassword")
        result = original(self)
        instance = result.result["DBInstance"]
        _plane().db_instance_created(account, region, _db_view(instance), password)
        control = _plane().control
        if not control.instant:
            instance.status = "creating"

            def created() -> None:
                if int(getattr(instance, "backup_retention_period", 0) or 0) > 0:
                    instance.status = "backing-up"
                    control.later("db-instance.backing-up", available)
                else:
                    available()

            def available() -> None:
                if instance.status in ("creating", "backing-up"):
                    instance.status = "available"

            control.later("db-instance.creating", created)
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
        control = _plane().control
        if not control.instant:
            # moto forgets the instance at once; AWS shows it "deleting" for minutes, and
            # its subnet group stays in use until it is gone.
            databases = rds_backends[account][region].databases
            identifier = instance.db_instance_identifier
            instance.status = "deleting"
            databases[identifier] = instance

            def gone() -> None:
                if databases.get(identifier) is instance:
                    del databases[identifier]

            control.later("db-instance.deleting", gone)
        return result

    @_wrap(cls, "delete_db_subnet_group")
    def delete_db_subnet_group(self: Any, original: Callable[..., Any]) -> Any:
        account, region = _ctx(self)
        name = self._get_param("DBSubnetGroupName")
        users = [
            db.db_instance_identifier
            for db in _databases(account, region)
            if _subnet_group_name(db) == name
        ]
        if users:
            raise ApiError(
                "InvalidDBSubnetGroupStateFault",
                f"Cannot delete the subnet group '{name}' because at least one database "
                f"instance: {users[0]} is still using it.",
            )
        return original(self)


# ------------------------------------------------------------------------- Logs


def _install_logs() -> None:
    from moto.logs.models import LogsBackend

    filter_events = LogsBackend.filter_log_events

    def always_interleaved(self: Any, *args: Any, **kwargs: Any) -> Any:
        # AWS ignores `interleaved` since 2019: it always merges the streams' events in
        # time order. moto keeps them stream by stream unless asked.
        if "interleaved" in kwargs:
            kwargs["interleaved"] = True
        elif len(args) == 8:
            args = (*args[:7], True)
        return filter_events(self, *args, **kwargs)

    LogsBackend.filter_log_events = always_interleaved  # type: ignore[method-assign]

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


# -------------------------------------------------------------------------- ECR


def _install_ecr() -> None:
    from moto.ecr.models import Image

    def compressed_layers(self: Any) -> int | None:
        # AWS reports the sum of the image's compressed layers (what was pushed); moto
        # reports the size of its config blob.
        manifest = json.loads(self.image_manifest)
        if "layers" not in manifest:
            return None
        return sum(int(layer.get("size", 0)) for layer in manifest["layers"])

    Image.get_image_size_in_bytes = compressed_layers  # type: ignore[method-assign]


# -------------------------------------------------------------------------- IAM


def _install_iam() -> None:
    # IAM is eventually consistent: ECS can't assume a role for a few seconds after it
    # was created or its trust policy changed (README, sandbox section).
    cls = IamResponse

    def propagating(self: Any) -> None:
        control = _plane().control
        if control.instant:
            return
        role = self.backend.get_role(self._get_param("RoleName"))
        token = object()  # a later change starts the wait again
        role._handson_propagating = token

        def propagated() -> None:
            if getattr(role, "_handson_propagating", None) is token:
                del role._handson_propagating

        control.later("iam-role.propagation", propagated)

    @_wrap(cls, "create_role")
    def create_role(self: Any, original: Callable[..., Any]) -> Any:
        result = original(self)
        propagating(self)
        return result

    @_wrap(cls, "update_assume_role_policy")
    def update_assume_role_policy(self: Any, original: Callable[..., Any]) -> Any:
        result = original(self)
        propagating(self)
        return result


# ------------------------------------------------- EC2: control-plane time, refusals
#
# AWS takes time to make and remove a NAT gateway, an interface endpoint, an ALB or an
# RDS instance, and refuses to delete what something still depends on (a security group
# or subnet with a network interface in it, an internet gateway while public addresses
# are mapped, an Elastic IP a NAT gateway holds). moto does neither; these hooks do, with
# AWS's codes and messages. The durations are the data plane's (control.py).


def _dependency(message: str) -> ApiError:
    return ApiError("DependencyViolation", message)


def _live_nats(backend: Any, vpc_id: str | None = None) -> list[Any]:
    return [
        n
        for n in backend.nat_gateways.values()
        if n.state != "deleted" and (vpc_id is None or n.vpc_id == vpc_id)
    ]


def _balancers(account: str, region: str) -> list[Any]:
    return list(elbv2_backends[account][region].load_balancers.values())


def _databases(account: str, region: str) -> list[Any]:
    return list(rds_backends[account][region].databases.values())


def _group_in_use(account: str, region: str, group_id: str) -> bool:
    backend = ec2_backends[account][region]
    for eni in list(backend.enis.values()):
        if group_id in {getattr(g, "id", g) for g in getattr(eni, "group_set", [])}:
            return True
    for groups in list(backend.groups.values()):
        for group in list(groups.values()):
            if group.id == group_id:
                continue
            for rule in [*group.ingress_rules, *group.egress_rules]:
                if (rule.source_group or {}).get("GroupId") == group_id:
                    return True
    if any(group_id in (lb.security_groups or []) for lb in _balancers(account, region)):
        return True
    if any(group_id in (db.vpc_security_group_ids or []) for db in _databases(account, region)):
        return True
    return _plane().lingering(account, region, "security_groups", group_id)


def _place_endpoint_interfaces(account: str, region: str, endpoint: Any) -> None:
    """An interface endpoint's network interfaces as AWS makes them: one per subnet, with
    that subnet's next free address, the endpoint's security groups (the VPC's default
    group when it names none), requester-managed and described as the endpoint's."""
    backend = ec2_backends[account][region]
    groups = [backend.get_security_group_from_id(g) for g in endpoint.security_group_ids or []]
    if not groups:
        groups = [backend.get_default_security_group(endpoint.vpc_id)]
    for eni_id in endpoint.network_interface_ids or []:
        eni = backend.enis.get(eni_id)
        if eni is None:
            continue
        assign_subnet_address(eni)
        eni._group_set = [g for g in groups if g is not None]
        eni.description = f"VPC Endpoint Interface {endpoint.id}"
        eni.interface_type = "vpc_endpoint"
        eni.requester_managed = True
        eni.status = "in-use"


def _subnet_in_use(account: str, region: str, subnet_id: str) -> bool:
    backend = ec2_backends[account][region]
    if any(eni.subnet.id == subnet_id for eni in list(backend.enis.values())):
        return True
    if any(n.subnet_id == subnet_id for n in _live_nats(backend)):
        return True
    for endpoint in backend.vpc_end_points.values():
        if endpoint.state != "deleted" and subnet_id in (endpoint.subnet_ids or []):
            return True
    for lb in _balancers(account, region):
        if subnet_id in {getattr(s, "id", s) for s in lb.subnets}:
            return True
    for db in _databases(account, region):
        group = getattr(db, "db_subnet_group", None)
        if group is not None and subnet_id in {s.id for s in group._subnets}:
            return True
    return _plane().lingering(account, region, "subnets", subnet_id)


def _public_addresses_mapped(account: str, region: str, vpc_id: str) -> bool:
    backend = ec2_backends[account][region]
    for address in backend.addresses:
        eni = address.eni
        if eni is not None and eni.subnet.vpc_id == vpc_id:
            return True
    for lb in _balancers(account, region):
        if lb.vpc_id == vpc_id and lb.scheme != "internal":
            return True
    return _plane().lingering(account, region, "public_vpcs", vpc_id)


def _finish_nat_deletion(account: str, region: str, nat: Any) -> None:
    """What AWS does when a NAT gateway is gone: its EIP is disassociated (not released)
    and its network interface deleted."""
    backend = ec2_backends[account][region]
    nat.state = "deleted"
    eni = getattr(nat, "_eni", None)
    for address in backend.addresses:
        if eni is not None and address.eni is eni:
            address.eni = None
            address.association_id = None
    if eni is not None:
        delete_eni(account, region, eni.id)


def _install_addresses() -> None:
    """Elastic IPs from a documentation range, 198.51.100.100 to .254 in turn (docs/sandbox.md,
    "Elastic IP addresses"), instead of moto's random loopback addresses."""
    from moto.ec2.models import elastic_ip_addresses

    counter = itertools.count()

    def public_address() -> str:
        return f"198.51.100.{100 + next(counter) % 155}"

    elastic_ip_addresses.random_ip = public_address  # type: ignore[attr-defined]


def _install_ec2() -> None:
    cls = EC2Response

    @_wrap(cls, "create_nat_gateway")
    def create_nat_gateway(self: Any, original: Callable[..., Any]) -> Any:
        result = original(self)
        nat = result.result["NatGateway"]
        control = _plane().control
        if not control.instant:
            nat.state = "pending"

            def available() -> None:
                if nat.state == "pending":
                    nat.state = "available"

            control.later("nat-gateway.pending", available)
        return result

    @_wrap(cls, "delete_nat_gateway")
    def delete_nat_gateway(self: Any, original: Callable[..., Any]) -> Any:
        account, region = _ctx(self)
        result = original(self)
        nat = ec2_backends[account][region].nat_gateways.get(result.result["NatGatewayId"])
        if nat is not None:
            nat.state = "deleting"
            _plane().control.later(
                "nat-gateway.deleting", lambda: _finish_nat_deletion(account, region, nat)
            )
        return result

    @_wrap(cls, "create_vpc_endpoint")
    def create_vpc_endpoint(self: Any, original: Callable[..., Any]) -> Any:
        result = original(self)
        endpoint = result.result["VpcEndpoint"]
        if endpoint.vpc_endpoint_type == "Interface":
            _place_endpoint_interfaces(*_ctx(self), endpoint)
        else:
            endpoint.private_dns_enabled = False  # a gateway endpoint is a route, not a name
        control = _plane().control
        if endpoint.vpc_endpoint_type == "Interface" and not control.instant:
            endpoint.state = "pending"

            def available() -> None:
                if endpoint.state == "pending":
                    endpoint.state = "available"

            control.later("vpc-endpoint.pending", available)
        return result

    @_wrap(cls, "delete_vpc_endpoints")
    def delete_vpc_endpoints(self: Any, original: Callable[..., Any]) -> Any:
        # moto drops the endpoints' interfaces but keeps their addresses taken.
        account, region = _ctx(self)
        backend = ec2_backends[account][region]
        ids = set(self._get_param("VpcEndpointIds", []))
        enis = [
            backend.enis[eni_id]
            for endpoint in list(backend.vpc_end_points.values())
            if endpoint.id in ids
            for eni_id in endpoint.network_interface_ids or []
            if eni_id in backend.enis
        ]
        result = original(self)
        for eni in enis:
            if eni.id not in backend.enis:
                eni.subnet.del_subnet_ip(eni.private_ip_address)
        return result

    @_wrap(cls, "delete_security_group")
    def delete_security_group(self: Any, original: Callable[..., Any]) -> Any:
        account, region = _ctx(self)
        group_id = self._get_param("GroupId")
        backend = ec2_backends[account][region]
        if group_id and backend.get_security_group_from_id(group_id) is not None:
            if _group_in_use(account, region, group_id):
                raise _dependency(f"resource {group_id} has a dependent object")
        return original(self)

    @_wrap(cls, "delete_subnet")
    def delete_subnet(self: Any, original: Callable[..., Any]) -> Any:
        account, region = _ctx(self)
        subnet_id = self._get_param("SubnetId")
        if _zone_of(account, region, subnet_id):
            if _subnet_in_use(account, region, subnet_id):
                raise _dependency(
                    f"The subnet '{subnet_id}' has dependencies and cannot be deleted."
                )
        return original(self)

    @_wrap(cls, "detach_internet_gateway")
    def detach_internet_gateway(self: Any, original: Callable[..., Any]) -> Any:
        account, region = _ctx(self)
        vpc_id = self._get_param("VpcId")
        if vpc_id and _public_addresses_mapped(account, region, vpc_id):
            raise _dependency(
                f"Network {vpc_id} has some mapped public address(es). Please unmap those "
                "public address(es) before detaching the gateway."
            )
        return original(self)

    @_wrap(cls, "release_address")
    def release_address(self: Any, original: Callable[..., Any]) -> Any:
        account, region = _ctx(self)
        backend = ec2_backends[account][region]
        allocation = self._get_param("AllocationId")
        address = next((a for a in backend.addresses if a.allocation_id == allocation), None)
        if address is not None and address.eni is not None:
            held = any(getattr(n, "_eni", None) is address.eni for n in _live_nats(backend))
            if held:
                raise ApiError(
                    "AuthFailure", "You do not have permission to access the specified resource."
                )
            raise ApiError(
                "InvalidIPAddress.InUse",
                f"The address with allocation id [{allocation}] is in use.",
            )
        return original(self)


def _zone_of(account: str, region: str, subnet_id: str) -> str:
    for zone, subnets in ec2_backends[account][region].subnets.items():
        if subnet_id in subnets:
            return str(zone)
    return ""


# ------------------------------------------- EC2: security-group and network-ACL rules
#
# Each operation that changes a rule moves views.rules_version on, so that the data
# plane's firewall drops what it has cached.

_RULE_OPERATIONS = (
    "authorize_security_group_ingress",
    "authorize_security_group_egress",
    "revoke_security_group_ingress",
    "revoke_security_group_egress",
    "modify_security_group_rules",
    "create_network_acl",
    "delete_network_acl",
    "create_network_acl_entry",
    "replace_network_acl_entry",
    "delete_network_acl_entry",
    "replace_network_acl_association",
    "modify_network_interface_attribute",
)


def _install_rule_hooks() -> None:
    def bump(name: str) -> None:
        if (EC2Response, name) in _originals or not hasattr(EC2Response, name):
            return  # already wrapped elsewhere; the firewall's short cache covers it

        @_wrap(EC2Response, name)
        def changed(self: Any, original: Callable[..., Any]) -> Any:
            result = original(self)
            rules_changed()
            return result

    for name in _RULE_OPERATIONS:
        bump(name)
