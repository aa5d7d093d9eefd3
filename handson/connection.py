"""Connect to a student's AWS account: the local sandbox, or real AWS.

This is the only module that knows which backend it talks to (as an httpx client never
knows its transport). Everything else asks the ``Lab`` for boto3 clients, for the tags
and names of the student's resources, and for an HTTP session that reaches the ALB.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import json
import os
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import boto3
import botocore.loaders
import botocore.session
import pandas as pd
from botocore.config import Config
from botocore.credentials import (
    CredentialProvider,
    CredentialResolver,
    RefreshableCredentials,
    create_assume_role_refresher,
)
from botocore.exceptions import BotoCoreError, ClientError, ProfileNotFound

from handson import awscli, i18n
from handson.exceptions import AwsError, ConfigurationError
from handson.i18n import _

if TYPE_CHECKING:
    from handson.sandbox import SandboxStatus

Backend = Literal["sandbox", "aws"]
DEFAULT_REGION = "ap-northeast-1"
# The sandbox's fixed test keys (its only credentials; each student's role is assumed
# with them): not a secret.
SANDBOX_KEY = "sandbox"
# botocore's standard retry mode (exponential backoff with jitter, retry quota), with a
# few more attempts than its default 3: classrooms of 30 share the ECS API rate limits.
RETRY_CONFIG = Config(retries={"mode": "standard", "max_attempts": 8})
# The AWS services the kit calls.
SERVICES = ("sts", "iam", "ec2", "ecs", "elbv2", "ecr", "logs", "rds", "secretsmanager")
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,19}$")
# Request fields whose values are secrets: never recorded, never shown.
SECRET_FIELDS = {"SecretString", "MasterUserPassword", "Password", "SecretBinary", "password"}
# IAM role ARNs, with an optional path (role/teaching/student-admin), as the roster accepts.
ROLE_ARN = re.compile(
    r"^arn:aws(?:-cn|-us-gov)?:iam::(?P<account>\d{12}):role/(?:[\w+=,.@-]+/)*[\w+=,.@-]{1,64}$"
)
ROLE_ARN_SHAPE = "arn:aws:iam::<12-digit account>:role/<name>"
# How long one AssumeRole's credentials last (AWS allows 900 s up to the role's maximum
# session duration, at most 12 h). botocore assumes the role again before they expire.
DEFAULT_SESSION_DURATION = 3600
MIN_SESSION_DURATION, MAX_SESSION_DURATION = 900, 43200


@dataclass(frozen=True)
class ApiCall:
    """One API call made through a Lab's clients (secrets redacted)."""

    step: str
    service: str
    operation: str
    params: dict[str, Any]
    # What a learner types for this call when it is not an AWS CLI command of its own: an
    # image reaches ECR through `docker push`, so its PutImage is shown as the push commands.
    typed_as: tuple[str, ...] = ()

    @property
    def mutating(self) -> bool:
        return awscli.is_mutating(self.operation)

    @property
    def commands(self) -> list[str]:
        """The terminal commands that do what this call did (usually one AWS CLI command)."""
        if self.typed_as:
            return list(self.typed_as)
        return [awscli.command(self.service, self.operation, self.params)]


@dataclass
class CallLog:
    """Every API call a Lab made, grouped by the step that made it."""

    calls: list[ApiCall] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # The step and typed commands of the calls being made, per thread: a live view polls
    # from a thread of its own while the notebook's cells make their calls.
    _current: threading.local = field(default_factory=threading.local)

    @property
    def step(self) -> str:
        return str(getattr(self._current, "step", ""))

    @step.setter
    def step(self, name: str) -> None:
        self._current.step = name

    def record(self, service: str, operation: str, params: dict[str, Any]) -> None:
        typed_as = getattr(self._current, "typed_as", ())
        with self._lock:
            call = ApiCall(self.step, service, operation, _redact(params), typed_as)
            self.calls.append(call)

    @contextmanager
    def typed_as(self, commands: list[str]) -> Iterator[None]:
        """Show the calls recorded inside as ``commands``, what a learner types instead."""
        previous = getattr(self._current, "typed_as", ())
        self._current.typed_as = tuple(commands)
        try:
            yield
        finally:
            self._current.typed_as = previous

    def mutating(self) -> list[ApiCall]:
        return [c for c in self.calls if c.mutating]


def _redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _redact_field(k, v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value


def _redact_field(key: str, value: Any) -> Any:
    """A secret field as ``****``; a JSON secret (the DB's connection) keeps its shape, so
    that its command shows what to type: only the fields that are secret are masked."""
    if key not in SECRET_FIELDS:
        return _redact(value)
    if key == "SecretString" and isinstance(value, str):
        with suppress(ValueError):
            fields = json.loads(value)
            if isinstance(fields, dict):
                return json.dumps(_redact(fields))
    return "****"


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
        lang: str = "en",
    ) -> None:
        self.backend = backend
        self.lang = lang
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
            f"student={self.student!r}, prefix={self.prefix!r}, lang={self.lang!r})"
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

    def _record(self, params: dict[str, Any], model: Any, **_kwargs: Any) -> None:
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
        return [
            line
            for call in self.log.mutating()
            if step is None or call.step == step
            for line in call.commands
        ]

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
        """The curl command a learner types to reach ``url`` from a terminal: the article's
        own, as written. On the sandbox it works in a terminal of ``make lab`` or after
        ``eval "$(handson sandbox env)"``, whose ``http_proxy`` sends it to the ALB proxy."""
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
    """Every change made through ``lab``, and every view the article shows as a command
    (``describe-services ... --output table``), as what a learner types in a terminal: the
    AWS CLI command that does the same, or the ``docker`` commands of a push."""
    rows: list[dict[str, str]] = []
    shown: tuple[str, ...] = ()
    for call in lab.log.calls:
        if not (call.mutating or call.typed_as):
            continue  # a look-up the library makes for itself
        if call.typed_as and call.typed_as is shown:
            continue  # the same typed commands, already listed for this step
        shown = call.typed_as
        rows += [{"step": call.step, "command": line} for line in call.commands]
    return pd.DataFrame(rows, columns=["step", "command"])


def sandbox_account_id(student: str) -> str:
    """The sandbox account of a student: 12 digits derived from the name, stable."""
    digest = int(hashlib.sha256(student.encode()).hexdigest(), 16)
    return f"{100000000000 + digest % 800000000000:012d}"


@functools.cache
def ecs_regions() -> frozenset[str]:
    """AWS regions with ECS, from botocore's data (no network)."""
    return frozenset(boto3.Session().get_available_regions("ecs"))


@functools.cache
def aws_regions() -> dict[str, str]:
    """Every region botocore knows, in any partition, and its partition (no network)."""
    session = boto3.Session()
    regions: dict[str, str] = {}
    for partition in session.get_available_partitions():
        for region in session.get_available_regions("ec2", partition_name=partition):
            regions.setdefault(region, partition)
    return regions


def check_region(region: str) -> None:
    """Reject a region that is not a real AWS region, or one where the kit can't run ECS."""
    if region in ecs_regions():
        return
    partition = aws_regions().get(region)
    if partition == "aws":
        raise ConfigurationError(
            _(
                "region={region!r}: Amazon ECS is not offered in this region, so the course "
                "can't run there. Use a region with ECS, e.g. 'ap-northeast-1' (Tokyo)."
            ).format(region=region)
        )
    if partition is not None:
        raise ConfigurationError(
            _(
                "region={region!r} belongs to the separate {partition!r} partition (its own "
                "accounts and sign-in); the kit runs in the standard AWS regions. Use one of "
                "them, e.g. 'ap-northeast-1' (Tokyo)."
            ).format(region=region, partition=partition)
        )
    close = difflib.get_close_matches(region.lower(), sorted(ecs_regions()), n=1)
    guess = _(" Did you mean {close!r}?").format(close=close[0]) if close else ""
    raise ConfigurationError(
        _(
            "region={region!r} is not an AWS region.{guess} A region is a code such as "
            "'ap-northeast-1' (Tokyo) or 'us-east-1' (N. Virginia); if yours is newer than "
            "your boto3, upgrade it: pip install -U boto3."
        ).format(region=region, guess=guess)
    )


def check_role_arn(role_arn: str) -> None:
    """Reject a role ARN that AWS would refuse as malformed, before any call."""
    if ROLE_ARN.match(role_arn):
        return
    example = "arn:aws:iam::123456789012:role/OrganizationAccountAccessRole"
    if re.fullmatch(r"\d{12}", role_arn):
        why = _(
            " That is an account ID; its role's ARN is e.g. "
            "arn:aws:iam::{account}:role/OrganizationAccountAccessRole."
        ).format(account=role_arn)
    elif (account := re.match(r"^arn:[^:]*:iam::([^:]*):", role_arn)) and not re.fullmatch(
        r"\d{12}", account.group(1)
    ):
        why = _(" Its account part {account!r} must be exactly 12 digits.").format(
            account=account.group(1)
        )
    elif re.match(r"^arn:[^:]*:iam::\d{12}:(user|group|policy|instance-profile)/", role_arn):
        why = _(" It names an IAM user, group, policy or instance profile, not a role.")
    else:
        why = ""
    raise ConfigurationError(
        _(
            "role_arn={role_arn!r} is not an IAM role ARN.{why} The shape is {shape}, "
            "e.g. {example} (the IAM console shows it on the role's page, as 'ARN')."
        ).format(role_arn=role_arn, why=why, shape=ROLE_ARN_SHAPE, example=example)
    )


def check_session_duration(session_duration: int) -> None:
    """Reject an AssumeRole duration AWS would refuse (900 s to 12 h)."""
    if not MIN_SESSION_DURATION <= session_duration <= MAX_SESSION_DURATION:
        raise ConfigurationError(
            _(
                "session_duration={session_duration!r}: AWS allows {minimum} to "
                "{maximum} seconds (15 min to 12 h) for one AssumeRole. The kit "
                "assumes the role again before the credentials expire, so the default "
                "{default} is fine for a whole day."
            ).format(
                session_duration=session_duration,
                minimum=MIN_SESSION_DURATION,
                maximum=MAX_SESSION_DURATION,
                default=DEFAULT_SESSION_DURATION,
            )
        )


def check_names(*, student: str, project_name: str, environment: str, region: str) -> None:
    """Reject names AWS would refuse later, before any call (series naming rules)."""
    for label, value in (("project_name", project_name), ("environment", environment)):
        if not NAME_PATTERN.match(value):
            raise ConfigurationError(
                _(
                    "{label}={value!r} can't be used in AWS resource names: use 1-20 lowercase "
                    "letters, digits or hyphens, starting with a letter (e.g. 'my-project')."
                ).format(label=label, value=value)
            )
    if len(f"{project_name}-{environment}") > 24:
        raise ConfigurationError(
            _(
                "'{prefix}' is too long: the ALB and target group names "
                "(<project>-<environment>-ecs-tg) must stay within 32 characters. Shorten "
                "project_name or environment."
            ).format(prefix=f"{project_name}-{environment}")
        )
    check_student(student)
    check_region(region)


def check_student(student: str) -> None:
    """Reject a student name that can't be part of a role session name or a profile."""
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$", student):
        raise ConfigurationError(
            _(
                "student={student!r}: use letters, digits, '.', '_', '@' or '-' (e.g. 'student01')."
            ).format(student=student)
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
    session_duration: int = DEFAULT_SESSION_DURATION,
    lang: str | None = None,
) -> Lab:
    """Open a student's account: the local sandbox (started if needed) or real AWS.

    On the sandbox each student is an account of its own, reached with STS AssumeRole
    as on AWS. With ``backend="aws"`` the profile (or the default credential chain) is
    used, and ``role_arn`` is assumed when given (a per-student account).

    An assumed role's credentials last ``session_duration`` seconds (900 to 43200) and
    are renewed by botocore before they expire, so a kernel keeps working all day.
    Mistakes found at connect (an unknown profile, no credentials, expired or wrong
    keys, a malformed role ARN, a role that doesn't trust you) raise the kit's
    ``ConfigurationError`` or ``AwsError`` with what to do next; nothing is created.

    ``lang`` is the kit's language, "en" or "ja" (default: ``HANDSON_LANG``, else "en").
    """
    chosen = i18n.language(lang)
    i18n.use(chosen)  # from here on, the kit speaks the learner's language
    check_names(student=student, project_name=project_name, environment=environment, region=region)
    if role_arn is not None:
        check_role_arn(role_arn)
    check_session_duration(session_duration)
    endpoint = proxy = None
    caller = ""
    if backend == "sandbox":
        access = sandbox_access(student)
        endpoint, proxy = access.endpoint_url, access.alb_proxy_url
        base = boto3.Session(
            aws_access_key_id=access.access_key,
            aws_secret_access_key=access.secret_key,
            region_name=region,
            botocore_session=_botocore_session(),
        )
        role_arn = role_arn or access.role_arn
    elif backend == "aws":
        base = _aws_session(profile, region)
        caller = _caller_arn(base, profile)
    else:
        raise ConfigurationError(
            _("backend={backend!r}: choose 'sandbox' (local) or 'aws' (real AWS).").format(
                backend=backend
            )
        )
    session = base
    if role_arn:
        session = _assume(
            base, role_arn, student, endpoint, duration=session_duration, caller=caller
        )
    return Lab(
        backend=backend,
        session=session,
        region=region,
        student=student,
        project_name=project_name,
        environment=environment,
        endpoint_url=endpoint,
        alb_proxy_url=proxy,
        lang=chosen,
    )


class _KeepingLoader(botocore.loaders.Loader):  # type: ignore[misc]
    """botocore's data loader, also keeping the files a session reads itself (its
    endpoints and partitions), not only the service models."""

    @botocore.loaders.instance_cache  # type: ignore[misc]
    def load_data_with_path(self, name: str) -> Any:
        return super().load_data_with_path(name)


@functools.cache
def _service_models() -> _KeepingLoader:
    """One botocore data loader for the process, so that the service models it has read
    (JSON files of up to a few MB each, for EC2) are read once per kernel, not again at
    every connect()."""
    paths = botocore.session.Session().get_config_variable("data_path")
    return _KeepingLoader(extra_search_paths=paths.split(os.pathsep) if paths else None)


def load_service_models(region: str = DEFAULT_REGION) -> None:
    """Read the models of every service the kit calls into the process's data loader, as
    making a client does, without any request (about 0.4 s of CPU), so that processes
    forked afterwards start with them."""
    session = boto3.Session(
        botocore_session=_botocore_session(),
        region_name=region,
        aws_access_key_id="not-used",
        aws_secret_access_key="not-used",
    )
    for service in SERVICES:
        session.client(service, config=RETRY_CONFIG)


def _botocore_session() -> botocore.session.Session:
    """A new botocore session (its own credentials and settings) that shares the process's
    data loader."""
    core = botocore.session.Session()
    core.register_component("data_loader", _service_models())
    return core


@dataclass(frozen=True)
class SandboxAccess:
    """How to reach the running sandbox as a student: its AWS endpoint, its ALB proxy, the
    fixed test keys it accepts, the student's role there, its home directory and the id
    of this run of its server."""

    endpoint_url: str
    alb_proxy_url: str
    role_arn: str
    home: str
    sandbox_id: str
    access_key: str = SANDBOX_KEY
    secret_key: str = SANDBOX_KEY


def prepare_backend(backend: Backend) -> None:
    """Have ``backend`` ready before many processes connect() at once (a class): the
    sandbox is started here if it is not running, once, so that it is no student kernel's
    child and the kernels do not queue on its start lock. Real AWS needs nothing."""
    if backend == "sandbox":
        _started_sandbox()


def _started_sandbox() -> SandboxStatus:
    """The sandbox's status, started if it was not running (a note about a dead or
    replaced one is shown as a warning)."""
    import warnings

    from handson import sandbox

    status = sandbox.start()
    if status.note:
        warnings.warn(status.note, stacklevel=4)
    return status


def sandbox_access(student: str) -> SandboxAccess:
    """Start the sandbox if it is not running (a note about a dead or replaced one is
    shown as a warning) and say how to reach it as ``student``."""
    status = _started_sandbox()
    return SandboxAccess(
        endpoint_url=str(status.endpoint_url),
        alb_proxy_url=str(status.alb_proxy_url),
        role_arn=f"arn:aws:iam::{sandbox_account_id(student)}:role/OrganizationAccountAccessRole",
        home=str(status.home),
        sandbox_id=str(status.sandbox_id),
    )


def _sts_client(base: boto3.Session, endpoint: str | None) -> Any:
    """The STS client connect() uses for GetCallerIdentity and AssumeRole (tests stub it)."""
    return base.client("sts", endpoint_url=endpoint, config=RETRY_CONFIG)


def _where(profile: str | None) -> str:
    """Where the credentials come from, in words."""
    if profile:
        return _("profile {profile!r}").format(profile=profile)
    if os.environ.get("AWS_PROFILE"):
        return _("profile {profile!r} (from AWS_PROFILE)").format(profile=os.environ["AWS_PROFILE"])
    return _("the default credential chain: AWS_* variables, then the default profile")


def _aws_session(profile: str | None, region: str) -> boto3.Session:
    """A boto3 session for real AWS whose credentials can at least be found."""
    try:
        base = boto3.Session(profile_name=profile, region_name=region)
    except ProfileNotFound as error:
        raise _unknown_profile(profile or os.environ.get("AWS_PROFILE", "")) from error
    try:
        credentials = base.get_credentials()
    except BotoCoreError as error:  # an expired SSO login, a key without its secret, ...
        raise ConfigurationError(
            _(
                "The AWS credentials of {where} can't be loaded: {error} "
                "Fix them (`aws configure`, or `aws sso login` for an SSO profile) and run the "
                "connect cell again."
            ).format(where=_where(profile), error=error)
        ) from error
    if credentials is None:
        files = ", ".join(_config_files())
        raise ConfigurationError(
            _(
                "No AWS credentials found for connect('aws'): none in the AWS_ACCESS_KEY_ID/"
                "AWS_SECRET_ACCESS_KEY variables, {files} or an instance role. Configure them "
                "with `aws configure` (access keys) or `aws configure sso` (IAM Identity "
                "Center), then connect('aws') or connect('aws', profile='<name>') for a named "
                "profile; or use the local sandbox, which needs no account: handson.connect()."
            ).format(files=files)
        )
    return base


def _config_files() -> tuple[str, str]:
    """The AWS CLI's credentials and config files (``AWS_SHARED_CREDENTIALS_FILE``,
    ``AWS_CONFIG_FILE`` or their defaults)."""
    core = botocore.session.Session()
    return (
        str(core.get_config_variable("credentials_file")),
        str(core.get_config_variable("config_file")),
    )


def _unknown_profile(name: str) -> ConfigurationError:
    core = botocore.session.Session()
    credentials_file, config_file = _config_files()
    files = _("{first} and {second}").format(first=credentials_file, second=config_file)
    try:
        profiles = sorted(core.available_profiles)
    except BotoCoreError:
        profiles = []
    known = (
        _("Profiles there: {profiles}.").format(profiles=", ".join(repr(p) for p in profiles))
        if profiles
        else _("There is no profile there yet.")
    )
    source = "" if "AWS_PROFILE" not in os.environ else _(" (named by AWS_PROFILE)")
    return ConfigurationError(
        _(
            "profile={name!r}{source} is not in your AWS config ({files}). {known} Pass one of "
            "them as profile=..., or create it: aws configure --profile {name}"
        ).format(name=name, source=source, files=files, known=known)
    )


def _caller_arn(base: boto3.Session, profile: str | None) -> str:
    """Who the credentials are (GetCallerIdentity), or the kit's error if AWS refuses them."""
    from handson.aws_errors import aws_errors, translate

    try:
        with aws_errors("GetCallerIdentity"):
            try:
                return str(_sts_client(base, None).get_caller_identity()["Arn"])
            except ClientError as error:
                cause = translate(error)
                raise AwsError(
                    _("{message} [credentials from {where}]").format(
                        message=cause.message, where=_where(profile)
                    ),
                    code=cause.code,
                    operation=cause.operation,
                    hint=cause.hint,
                ) from error
    except BotoCoreError as error:
        if isinstance(error, ProfileNotFound):  # a source_profile that doesn't exist
            raise _unknown_profile(str(error.kwargs.get("profile", ""))) from error
        raise ConfigurationError(
            _("The AWS credentials of {where} can't be used: {error}").format(
                where=_where(profile), error=error
            )
        ) from error


class _AssumedRole(CredentialProvider):  # type: ignore[misc]
    """Hands botocore the assumed role's refreshing credentials."""

    METHOD = "assume-role"
    CANONICAL_NAME = "handson-assume-role"

    def __init__(self, credentials: RefreshableCredentials) -> None:
        super().__init__()
        self._credentials = credentials

    def load(self) -> RefreshableCredentials:
        return self._credentials


def _assume(
    base: boto3.Session,
    role_arn: str,
    student: str,
    endpoint: str | None,
    *,
    duration: int,
    caller: str = "",
) -> boto3.Session:
    """A session in the role's account whose credentials botocore renews (AssumeRole again)
    shortly before they expire, as it does for a profile's ``role_arn``."""
    from handson.aws_errors import aws_errors, translate

    sts = _sts_client(base, endpoint)
    refresh = create_assume_role_refresher(
        sts,
        {
            "RoleArn": role_arn,
            "RoleSessionName": f"handson-{student}"[:64],
            "DurationSeconds": duration,
        },
    )
    with aws_errors("AssumeRole"):
        try:
            first = refresh()  # now, so that a refusal is reported at connect
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code", ""))
            if code not in ("AccessDenied", "AccessDeniedException") or not caller:
                raise
            cause = translate(error)
            account = ROLE_ARN.match(role_arn)
            caller_account = caller.split(":")[4] if caller.count(":") >= 5 else "<account>"
            raise AwsError(
                cause.message,
                code=cause.code,
                operation=cause.operation,
                hint=_(
                    "You ({caller}) may not assume {role_arn}. Check the role's trust policy "
                    "(IAM console > Roles > {role_name} > Trust "
                    "relationships, in account {account}"
                    "): it must allow sts:AssumeRole to your account or principal, e.g. "
                    '"Principal": {{"AWS": "arn:aws:iam::{caller_account}:root"}}. Your own '
                    "IAM policies must also allow sts:AssumeRole on that role."
                ).format(
                    caller=caller,
                    role_arn=role_arn,
                    role_name=role_arn.rsplit("/", 1)[-1],
                    account=account.group("account") if account else "?",
                    caller_account=caller_account,
                ),
            ) from error
    # botocore refreshes 15 min (advisory) and 10 min (mandatory) before expiry; scaled
    # down for short sessions so a 15-minute one isn't renewed on every call.
    credentials = RefreshableCredentials.create_from_metadata(
        first,
        refresh_using=refresh,
        method="assume-role",
        advisory_timeout=min(15 * 60, duration // 4),
        mandatory_timeout=min(10 * 60, duration // 6),
    )
    core = _botocore_session()
    core.register_component("credential_provider", CredentialResolver([_AssumedRole(credentials)]))
    return boto3.Session(botocore_session=core, region_name=base.region_name)
