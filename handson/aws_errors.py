"""One place where AWS errors become the kit's errors, with what to check next.

Every library step runs inside :func:`aws_errors`; a ``botocore`` ``ClientError`` is
re-raised as :class:`~handson.exceptions.AwsError` (``raise ... from``), keeping AWS's
code and message for instructors and adding a hint a beginner can act on.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    WaiterError,
)

from handson.exceptions import AwsError, ConfigurationError, NotFoundError, WaitTimeoutError
from handson.i18n import N_, _

P = ParamSpec("P")
R = TypeVar("R")

# (operation or "*", error code) -> what to check next.
HINTS: dict[tuple[str, str], str] = {
    ("*", "AccessDenied"): N_(
        "These credentials may not do this. Check the profile or role "
        "(role_arn) you connected with, and its IAM policies."
    ),
    ("*", "AccessDeniedException"): N_(
        "These credentials may not do this. Check the profile or "
        "role (role_arn) you connected with, and its IAM policies."
    ),
    (
        "*",
        "UnauthorizedOperation",
    ): N_("These credentials may not do this in EC2. Check the role's policies."),
    ("*", "ExpiredToken"): N_("The session expired. Run the connect cell again."),
    ("GetCallerIdentity", "ExpiredToken"): N_(
        "The temporary credentials you connect with have "
        "expired. Get new ones (`aws sso login --profile <name>` for an SSO profile, or new "
        "temporary keys with their AWS_SESSION_TOKEN), then run the connect cell again."
    ),
    ("*", "InvalidClientTokenId"): N_(
        "AWS doesn't know this access key ID: it was deleted, "
        "deactivated or mistyped. Check it with `aws configure list` and enter a current key with "
        "`aws configure`. (In an opt-in region such as ap-east-1 it can also mean the account "
        "hasn't enabled that region.)"
    ),
    ("*", "UnrecognizedClientException"): N_(
        "AWS doesn't know this access key ID: it was "
        "deleted, deactivated or mistyped. Enter a current key with `aws configure`."
    ),
    ("*", "SignatureDoesNotMatch"): N_(
        "The secret access key doesn't go with this access key ID "
        "(often a copy-paste slip or a stray space), or this computer's clock is off by more than "
        "5 minutes. Enter the pair again with `aws configure`."
    ),
    ("AssumeRole", "AccessDenied"): N_(
        "You may not assume this role: its trust policy must allow "
        "sts:AssumeRole to your account or principal, and your own policies must allow "
        "sts:AssumeRole on it."
    ),
    ("AssumeRole", "ValidationError"): N_(
        "Check session_duration: at most the role's maximum "
        "session duration (1 h unless raised), and 1 h when the credentials you connect with are "
        "themselves an assumed role (role chaining). The kit renews credentials anyway, so the "
        "default 3600 is enough."
    ),
    ("AssumeRole", "RegionDisabledException"): N_(
        "STS is not activated in this region for the "
        "account: activate it (IAM > Account settings > Security Token Service) or pick another "
        "region."
    ),
    ("*", "ExpiredTokenException"): N_("The session expired. Run the connect cell again."),
    (
        "*",
        "ThrottlingException",
    ): N_("AWS is rate-limiting this account. Wait a minute and run the cell again."),
    ("*", "Throttling"): N_(
        "AWS is rate-limiting this account. Wait a minute and run the cell again."
    ),
    ("*", "ClusterNotFoundException"): N_(
        "The ECS cluster doesn't exist yet: run notebook 00 (chapters 1-6) first."
    ),
    ("*", "ServiceNotFoundException"): N_(
        "The ECS service doesn't exist yet: run the 'create the service' step of chapter 7 first."
    ),
    (
        "*",
        "RepositoryNotFoundException",
    ): N_("The ECR repository doesn't exist yet: run notebook 00 first."),
    ("*", "ResourceNotFoundException"): N_(
        "Something this step needs doesn't exist yet: run the earlier steps (notebook 00) first."
    ),
    ("*", "TargetGroupNotFound"): N_("The target group doesn't exist yet: run notebook 00 first."),
    ("*", "DBInstanceNotFound"): N_("The database doesn't exist yet: run notebook 00 first."),
    ("RegisterTaskDefinition", "ClientException"): N_(
        "Check task_cpu and task_memory against the "
        "Fargate table (e.g. 256 CPU allows 512, 1024 or 2048 MB), and the roles' ARNs."
    ),
    ("CreateService", "InvalidParameterException"): N_(
        "Check the service's target group (it must be "
        "attached to the ALB listener), container name and port 3000, and the subnets."
    ),
    ("*", "InvalidParameterException"): N_("A parameter was rejected: read AWS's message above."),
    ("*", "LimitExceededException"): N_(
        "An account limit was reached. Tear down resources you "
        "no longer need (notebook 99) or ask for a higher quota."
    ),
    ("DeleteVpc", "DependencyViolation"): N_(
        "Something still uses the VPC (the ALB, ECS tasks, "
        "RDS): tear down the later chapters first (notebook 99 does it in order)."
    ),
    ("*", "DependencyViolation"): N_(
        "Another resource still uses this one: delete that first "
        "(notebook 99 deletes in dependency order)."
    ),
    ("*", "AddressLimitExceeded"): N_(
        "The account has no Elastic IPs left: release unused ones or keep enable_nat_gateway=False."
    ),
}

# Substrings of a task's stoppedReason -> what to check (the seed's "common causes").
STOP_HINTS: list[tuple[str, str]] = [
    (
        "CannotPullContainerError",
        N_(
            "The image isn't in ECR (or the tag is wrong): push it with "
            "push_image(), then force a new deployment."
        ),
    ),
    (
        "connection issue",
        N_(
            "Tasks in private subnets need a way out to AWS services: enable the "
            "NAT gateway (enable_nat_gateway=True) or add VPC endpoints (chapter 8)."
        ),
    ),
    (
        "unable to pull secrets",
        N_(
            "The execution role may not read the DB secret: check its "
            "inline policy (secretsmanager:GetSecretValue on the secret)."
        ),
    ),
    (
        "did not contain json key",
        N_("The secret has no such JSON key: check the ':key::' part of each valueFrom."),
    ),
    (
        "log group does not exist",
        N_("The log group is missing: run notebook 00 again (it creates /ecs/<project>-<env>)."),
    ),
    (
        "unable to assume the role",
        N_(
            "ECS could not assume the execution or task role: its trust policy must let "
            "ecs-tasks.amazonaws.com assume it. Right after a role is created IAM needs a few "
            "seconds: then deploy again (restart_service)."
        ),
    ),
    ("OutOfMemory", N_("The container ran out of memory: raise task_memory.")),
    (
        "ELB health checks",
        N_(
            "The ALB health check failed: the app must answer 200 on /health "
            "at port 3000. Look at the task's logs."
        ),
    ),
    (
        "Essential container in task exited",
        N_(
            "The app exited: look at its logs (show_logs) for the error, e.g. the database "
            "connection."
        ),
    ),
]


def hint_for(operation: str, code: str) -> str:
    """What to check next for AWS's error ``code`` from ``operation``, in the learner's
    language ("" when the kit knows none)."""
    hint = HINTS.get((operation, code)) or HINTS.get(("*", code), "")
    return _(hint) if hint else ""


def stop_hint(reason: str) -> str:
    """What to check for a task's stoppedReason."""
    for needle, hint in STOP_HINTS:
        if needle.lower() in reason.lower():
            return _(hint)
    return ""


def translate(error: ClientError) -> AwsError:
    """The kit's error for a boto3 ClientError."""
    info = error.response.get("Error", {})
    code = str(info.get("Code", "Unknown"))
    operation = str(error.operation_name)
    message = _("{operation} failed: {code}: {message}").format(
        operation=operation, code=code, message=info.get("Message", "")
    )
    cls = NotFoundError if "NotFound" in code or code.endswith("NotFoundException") else AwsError
    return cls(message, code=code, operation=operation, hint=hint_for(operation, code))


@contextmanager
def aws_errors(operation: str = "") -> Iterator[None]:
    """Turn boto3's errors into the kit's errors, keeping the cause."""
    try:
        yield
    except ClientError as error:
        raise translate(error) from error
    except WaiterError as error:
        # A waiter gives up after its attempts, or when the resource reaches a failure
        # state (a NAT gateway "failed", a service "INACTIVE"...).
        raise WaitTimeoutError(
            _("{operation}: {error}").format(operation=operation or _("Waiting"), error=error)
        ) from error
    except NoCredentialsError as error:
        raise ConfigurationError(
            _(
                "No AWS credentials found. Run `aws configure` (or pass profile=...) before "
                "connect(backend='aws'), or use the sandbox: connect()."
            )
        ) from error
    except EndpointConnectionError as error:
        raise AwsError(
            _("Could not reach {endpoint}.").format(
                endpoint=error.kwargs.get("endpoint_url", "AWS")
            ),
            code="EndpointConnectionError",
            operation=operation,
            hint=_("Check the network, or start the sandbox: handson sandbox start"),
        ) from error


def step(name: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Mark a library function as a course step: its API calls are grouped under
    ``name`` (for the AWS CLI view) and AWS errors are translated."""

    def decorator(func: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            lab: Any = args[0]
            with lab.step(name), aws_errors(name):
                return func(*args, **kwargs)

        return wrapper

    return decorator
