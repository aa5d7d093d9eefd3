"""Connect to a student's AWS account: the local sandbox, or real AWS.

This is the only module that knows which backend it talks to (as an httpx client never
knows its transport). Everything else asks the ``Lab`` for boto3 clients, for the tags
and names of the student's resources, and for an HTTP session that reaches the ALB.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import boto3
import pandas as pd
from botocore.config import Config

from handson import awscli
from handson.exceptions import ConfigurationError

Backend = Literal["sandbox", "aws"]
DEFAULT_REGION = "ap-northeast-1"
# botocore's standard retry mode (exponential backoff with jitter, retry quota), with a
# few more attempts than its default 3: classrooms of 30 share the ECS API rate limits.
RETRY_CONFIG = Config(retries={"mode": "standard", "max_attempts": 8})
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,19}$")
# Request fields whose values are secrets: never recorded, never shown.
SECRET_FIELDS = {"SecretString", "MasterUserPassword", "Password", "SecretBinary", "password"}


@dataclass(frozen=True)
class ApiCall:
    """One API call made through a Lab's clients (secrets redacted)."""

    step: str
    service: str
    operation: str
    params: dict[str, Any]

    @property
    def mutating(self) -> bool:
        return awscli.is_mutating(self.operation)

    @property
    def cli(self) -> str:
        return awscli.command(self.service, self.operation, self.params)


@dataclass
class CallLog:
    """Every API call a Lab made, grouped by the step that made it."""

    calls: list[ApiCall] = field(default_factory=list)
    step: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, service: str, operation: str, params: dict[str, Any]) -> None:
        with self._lock:
            self.calls.append(ApiCall(self.step, service, operation, _redact(params)))

    def mutating(self) -> list[ApiCall]:
        return [c for c in self.calls if c.mutating]


def _redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: "****" if k in SECRET_FIELDS else _redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value


class Lab:
    """A student's account: boto3 clients, names, tags and the API call log.

    Create one with :func:`connect`. ``lab.client("ecs")`` is a plain boto3 client for
    that account, to look further with boto3 yourself.
    """

    def __init__(
        self,
        *,
        backend: Backend,
        session: boto3.Session,
        region: str,
        student: str,
        project_name: str,
        environment: str,
        endpoint_url: str | None = None,
        alb_proxy_url: str | None = None,
    ) -> None:
        self.backend = backend
        self.session = session
        self.region = region
        self.student = student
        self.project_name = project_name
        self.environment = environment
        self._endpoint_url = endpoint_url
        self._alb_proxy_url = alb_proxy_url
        self._clients: dict[str, Any] = {}
        self._clients_lock = threading.Lock()
        self.log = CallLog()
        self._account_id: str | None = None

    def __repr__(self) -> str:
        return (
            f"Lab(backend={self.backend!r}, account={self.account_id!r}, region={self.region!r}, "
            f"student={self.student!r}, prefix={self.prefix!r})"
        )

    # ----------------------------------------------------------------- clients

    def client(self, service: str) -> Any:
        """A boto3 client for ``service`` in this student's account and region."""
        with self._clients_lock:
            if service not in self._clients:
                client = self.session.client(
                    service, endpoint_url=self._endpoint_url, config=RETRY_CONFIG
                )
                client.meta.events.register("provide-client-params.*.*", self._record)
                self._clients[service] = client
            return self._clients[service]

    def _record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.log.record(model.service_model.endpoint_prefix, model.name, params)

    @property
    def account_id(self) -> str:
        if self._account_id is None:
            self._account_id = str(self.client("sts").get_caller_identity()["Account"])
        return self._account_id

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Attribute the API calls made inside to the step ``name`` (for the CLI view)."""
        previous, self.log.step = self.log.step, name
        try:
            yield
        finally:
            self.log.step = previous

    def cli_commands(self, step: str | None = None) -> list[str]:
        """The AWS CLI equivalents of the changes made (by one step, or all)."""
        return [c.cli for c in self.log.mutating() if step is None or c.step == step]

    def api_calls(self) -> pd.DataFrame:
        """Every API call made so far: step, service, operation, whether it changed anything."""
        return pd.DataFrame(
            [
                {
                    "step": c.step,
                    "service": c.service,
                    "operation": c.operation,
                    "mutating": c.mutating,
                }
                for c in self.log.calls
            ],
            columns=["step", "service", "operation", "mutating"],
        )

    # ------------------------------------------------------------ names, tags

    @property
    def prefix(self) -> str:
        """``<project_name>-<environment>``: the series' name prefix (``P-E``)."""
        return f"{self.project_name}-{self.environment}"

    def name(self, suffix: str) -> str:
        return f"{self.prefix}-{suffix}"

    @property
    def tags(self) -> dict[str, str]:
        """Tags on everything the kit creates, so teardown and cost reports find it."""
        return {
            "Project": self.project_name,
            "Environment": self.environment,
            "Student": self.student,
            "ManagedBy": "handson",
        }

    def tag_list(
        self, name: str | None = None, *, key: str = "Key", value: str = "Value"
    ) -> list[dict[str, str]]:
        """The tags in AWS's list form (``[{"Key": ..., "Value": ...}]``), with ``Name``."""
        tags = dict(self.tags)
        if name:
            tags["Name"] = name
        return [{key: k, value: v} for k, v in tags.items()]

    def tag_filters(self) -> list[dict[str, Any]]:
        """EC2 ``Filters`` matching this student's resources."""
        return [
            {"Name": f"tag:{k}", "Values": [v]} for k, v in self.tags.items() if k != "ManagedBy"
        ]

    def owns(
        self,
        tags: list[dict[str, str]] | dict[str, str] | None,
        *,
        key: str = "Key",
        value: str = "Value",
    ) -> bool:
        """Whether a resource's tags mark it as this student's."""
        if isinstance(tags, list):
            tags = {t[key]: t[value] for t in tags}
        tags = tags or {}
        return all(tags.get(k) == v for k, v in self.tags.items() if k != "ManagedBy")

    # ------------------------------------------------------------------- HTTP

    def http(
        self, method: str, url: str, body: Any = None, *, timeout: float = 10.0
    ) -> HttpResponse:
        """An HTTP request to a URL such as ``http://<alb dns name>/health``.

        On the sandbox the ALB's DNS name is served by the sandbox's ALB proxy, so the
        request goes through it, exactly as ``curl --proxy <proxy> <url>`` would.
        """
        handlers = []
        if self._alb_proxy_url:
            handlers.append(urllib.request.ProxyHandler({"http": self._alb_proxy_url}))
        opener = urllib.request.build_opener(*handlers)
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            url, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with opener.open(request, timeout=timeout) as response:
                return HttpResponse(response.status, response.read().decode(), method, url)
        except urllib.error.HTTPError as error:
            return HttpResponse(error.code, error.read().decode(errors="replace"), method, url)

    def curl(self, url: str) -> str:
        """The curl command a learner types to reach ``url`` from a terminal."""
        if self._alb_proxy_url:
            return f"curl --proxy {self._alb_proxy_url} {url}"
        return f"curl {url}"

    @property
    def uses_docker(self) -> bool:
        """Whether images are built and pushed with Docker (real AWS) or recorded (sandbox)."""
        return self.backend == "aws"


@dataclass(frozen=True)
class HttpResponse:
    status: int
    text: str
    method: str
    url: str

    def json(self) -> Any:
        return json.loads(self.text)


def show_cli(lab: Lab) -> pd.DataFrame:
    """Every change made through ``lab``, as the AWS CLI command that does the same."""
    rows = [{"step": c.step, "command": c.cli} for c in lab.log.mutating()]
    return pd.DataFrame(rows, columns=["step", "command"])


def sandbox_account_id(student: str) -> str:
    """The sandbox account of a student: 12 digits derived from the name, stable."""
    digest = int(hashlib.sha256(student.encode()).hexdigest(), 16)
    return f"{100000000000 + digest % 800000000000:012d}"


@functools.cache
def ecs_regions() -> frozenset[str]:
    """AWS regions with ECS, from botocore's data (no network)."""
    return frozenset(boto3.Session().get_available_regions("ecs"))


def check_names(*, student: str, project_name: str, environment: str, region: str) -> None:
    """Reject names AWS would refuse later, before any call (series naming rules)."""
    for label, value in (("project_name", project_name), ("environment", environment)):
        if not NAME_PATTERN.match(value):
            raise ConfigurationError(
                f"{label}={value!r} can't be used in AWS resource names: use 1-20 lowercase "
                "letters, digits or hyphens, starting with a letter (e.g. 'my-project')."
            )
    if len(f"{project_name}-{environment}") > 24:
        raise ConfigurationError(
            f"'{project_name}-{environment}' is too long: the ALB and target group names "
            "(<project>-<environment>-ecs-tg) must stay within 32 characters. Shorten "
            "project_name or environment."
        )
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$", student):
        raise ConfigurationError(
            f"student={student!r}: use letters, digits, '.', '_', '@' or '-' (e.g. 'student01')."
        )
    if region not in ecs_regions():
        raise ConfigurationError(
            f"region={region!r} is not an AWS region with ECS (e.g. 'ap-northeast-1')."
        )


def connect(
    backend: Backend = "sandbox",
    *,
    region: str = DEFAULT_REGION,
    profile: str | None = None,
    role_arn: str | None = None,
    student: str = "student01",
    project_name: str = "my-project",
    environment: str = "dev",
) -> Lab:
    """Open a student's account: the local sandbox (started if needed) or real AWS.

    On the sandbox each student is an account of its own, reached with STS AssumeRole
    as on AWS. With ``backend="aws"`` the profile (or the default credential chain) is
    used, and ``role_arn`` is assumed when given (a per-student account).
    """
    check_names(student=student, project_name=project_name, environment=environment, region=region)
    endpoint = proxy = None
    if backend == "sandbox":
        from handson import sandbox

        status = sandbox.start()
        endpoint, proxy = status.endpoint_url, status.alb_proxy_url
        base = boto3.Session(
            aws_access_key_id="sandbox", aws_secret_access_key="sandbox", region_name=region
        )
        role_arn = role_arn or (
            f"arn:aws:iam::{sandbox_account_id(student)}:role/OrganizationAccountAccessRole"
        )
    elif backend == "aws":
        base = boto3.Session(profile_name=profile, region_name=region)
    else:
        raise ConfigurationError(
            f"backend={backend!r}: choose 'sandbox' (local) or 'aws' (real AWS)."
        )
    return Lab(
        backend=backend,
        session=_assume(base, role_arn, student, endpoint) if role_arn else base,
        region=region,
        student=student,
        project_name=project_name,
        environment=environment,
        endpoint_url=endpoint,
        alb_proxy_url=proxy,
    )


def _assume(
    base: boto3.Session, role_arn: str, student: str, endpoint: str | None
) -> boto3.Session:
    from handson.errors import aws_errors

    sts = base.client("sts", endpoint_url=endpoint, config=RETRY_CONFIG)
    with aws_errors("AssumeRole"):
        credentials = sts.assume_role(RoleArn=role_arn, RoleSessionName=f"handson-{student}"[:64])[
            "Credentials"
        ]
    return boto3.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        region_name=base.region_name,
    )
