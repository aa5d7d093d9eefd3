"""``handson.connect``: credentials that last a class, and clear first-contact errors.

No test reaches real AWS: the real-AWS cases use a temporary AWS config file, fake keys
(tests/conftest.py) and a stubbed STS client (botocore's Stubber) for AWS's answers.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.credentials import RefreshableCredentials
from botocore.stub import Stubber

import handson.connection as connection
from handson.exceptions import AwsError, ConfigurationError

ROLE = "arn:aws:iam::123456789012:role/OrganizationAccountAccessRole"
ALICE = "arn:aws:iam::111122223333:user/alice"


@pytest.fixture
def sts(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stubber]:
    """The STS client connect() uses, stubbed: queue AWS's answers on it."""
    client = boto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="ap-northeast-1"
    ).client("sts")
    stubber = Stubber(client)
    monkeypatch.setattr(connection, "_sts_client", lambda base, endpoint: client)
    with stubber:
        yield stubber


@pytest.fixture
def no_sts(monkeypatch: pytest.MonkeyPatch) -> None:
    """connect() must fail before it calls AWS at all."""

    def refuse(base: Any, endpoint: Any) -> Any:
        raise AssertionError("connect() called STS")

    monkeypatch.setattr(connection, "_sts_client", refuse)


def identity(stubber: Stubber, arn: str = ALICE) -> None:
    stubber.add_response(
        "get_caller_identity",
        {"UserId": "AIDAEXAMPLE", "Account": arn.split(":")[4], "Arn": arn},
    )


def assumed(stubber: Stubber, *, duration: int = 3600, key: str = "ASIAEXAMPLEKEY000001") -> None:
    stubber.add_response(
        "assume_role",
        {
            "Credentials": {
                "AccessKeyId": key,
                "SecretAccessKey": "secret",
                "SessionToken": "token",
                "Expiration": dt.datetime.now(tz=dt.UTC) + dt.timedelta(seconds=duration),
            },
            "AssumedRoleUser": {
                "AssumedRoleId": "AROAEXAMPLE:handson-student07",
                "Arn": "arn:aws:sts::123456789012:assumed-role/OrganizationAccountAccessRole/x",
            },
        },
        expected_params={
            "RoleArn": ROLE,
            "RoleSessionName": "handson-student07",
            "DurationSeconds": duration,
        },
    )


# ------------------------------------------------------- credentials for a class


def test_sandbox_role_credentials_are_renewed_before_they_expire(
    make_lab: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    assume_roles: list[dict[str, Any]] = []
    original = connection.create_assume_role_refresher

    def counting(client: Any, params: dict[str, Any]) -> Callable[[], dict[str, Any]]:
        refresh = original(client, params)

        def counted() -> dict[str, Any]:
            assume_roles.append(params)
            return refresh()

        return counted

    monkeypatch.setattr(connection, "create_assume_role_refresher", counting)
    lab = make_lab(session_duration=900)
    assert len(assume_roles) == 1 and assume_roles[0]["DurationSeconds"] == 900
    credentials = lab.session.get_credentials()
    assert isinstance(credentials, RefreshableCredentials)
    assert credentials.method == "assume-role"
    assert not credentials.refresh_needed()  # 15 minutes left: not yet
    first_key = credentials.get_frozen_credentials().access_key
    account = lab.account_id
    lab.client("ecs").create_cluster(clusterName=lab.name("cluster"))

    # 14 minutes later: the credentials expire within a minute.
    credentials._expiry_time = dt.datetime.now(tz=dt.UTC) + dt.timedelta(seconds=60)
    assert credentials.refresh_needed()
    clusters = lab.client("ecs").list_clusters()["clusterArns"]

    assert len(assume_roles) == 2  # botocore assumed the role again by itself
    assert credentials.get_frozen_credentials().access_key != first_key
    assert not credentials.refresh_needed()
    assert any(arn.endswith(f"/{lab.name('cluster')}") for arn in clusters)  # same account
    assert lab.client("sts").get_caller_identity()["Account"] == account
    calls = list(lab.api_calls()["operation"])
    assert calls[-3:] == ["CreateCluster", "ListClusters", "GetCallerIdentity"]
    assert lab.cli_commands()[-1].startswith("aws ecs create-cluster")


def test_connects_in_one_kernel_read_each_service_model_once(
    make_lab: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = make_lab(student="models-a"), make_lab(student="models-b")
    loaders = {id(lab.session._session.get_component("data_loader")) for lab in (first, second)}
    assert len(loaders) == 1
    first.client("ecs")
    read: list[str] = []
    loader = first.session._session.get_component("data_loader")
    original = loader.file_loader.load_file

    def reading(path: str) -> Any:
        read.append(path)
        return original(path)

    monkeypatch.setattr(loader.file_loader, "load_file", reading)
    second.client("ecs").list_clusters()  # a client of its own, from the models already read
    assert read == []
    assert second.session.get_credentials() is not first.session.get_credentials()


def test_aws_role_is_assumed_with_refreshing_credentials(sts: Stubber) -> None:
    identity(sts)
    assumed(sts, duration=1800)
    lab = connection.connect("aws", role_arn=ROLE, student="student07", session_duration=1800)
    credentials = lab.session.get_credentials()
    assert isinstance(credentials, RefreshableCredentials)
    assert credentials.get_frozen_credentials().access_key == "ASIAEXAMPLEKEY000001"
    assert not credentials.refresh_needed()
    sts.assert_no_pending_responses()


@pytest.mark.parametrize("seconds", [899, 43201])
def test_session_duration_outside_what_aws_allows(seconds: int, no_sts: None) -> None:
    with pytest.raises(ConfigurationError, match="900 to 43200 seconds"):
        connection.connect("aws", role_arn=ROLE, session_duration=seconds)


# ------------------------------------------------------- first contact with real AWS


def test_no_credentials_says_how_to_configure_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, no_sts: None
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance-role lookup
    (tmp_path / "config").write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    with pytest.raises(ConfigurationError) as error:
        connection.connect("aws")
    message = str(error.value)
    assert "No AWS credentials found" in message
    assert "`aws configure`" in message and "profile=" in message
    assert "handson.connect()" in message  # the sandbox
    assert str(tmp_path / "config") in message


def write_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "config").write_text(
        "[default]\nregion = ap-northeast-1\n[profile dev]\nregion = ap-northeast-1\n"
    )
    (tmp_path / "credentials").write_text(
        "[teacher]\naws_access_key_id = AKIAEXAMPLE\naws_secret_access_key = secret\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))


def test_unknown_profile_names_the_profiles_that_exist(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, no_sts: None
) -> None:
    write_config(monkeypatch, tmp_path)
    with pytest.raises(ConfigurationError) as error:
        connection.connect("aws", profile="prod")
    message = str(error.value)
    assert "profile='prod' is not in your AWS config" in message
    assert "Profiles there: 'default', 'dev', 'teacher'." in message
    assert "aws configure --profile prod" in message


def test_unknown_profile_from_aws_profile(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, no_sts: None
) -> None:
    write_config(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_PROFILE", "prdo")
    with pytest.raises(ConfigurationError, match=r"'prdo' \(named by AWS_PROFILE\)"):
        connection.connect("aws")


@pytest.mark.parametrize(
    ("role_arn", "why"),
    [
        ("123456789012", "That is an account ID"),
        ("arn:aws:iam::12345:role/Admin", "must be exactly 12 digits"),
        ("arn:aws:iam::123456789012:user/alice", "not a role"),
        ("OrganizationAccountAccessRole", "is not an IAM role ARN"),
        ("arn:aws:iam:123456789012:role/Admin", "is not an IAM role ARN"),
    ],
)
@pytest.mark.parametrize("backend", ["aws", "sandbox"])
def test_malformed_role_arn_shows_the_shape(
    role_arn: str, why: str, backend: str, no_sts: None
) -> None:
    with pytest.raises(ConfigurationError) as error:
        connection.connect(backend, role_arn=role_arn)  # type: ignore[arg-type]
    assert why in str(error.value)
    assert "arn:aws:iam::<12-digit account>:role/<name>" in str(error.value)


def test_access_denied_on_assume_role_points_at_the_trust_policy(sts: Stubber) -> None:
    identity(sts)
    refusal = f"User: {ALICE} is not authorized to perform: sts:AssumeRole on resource: {ROLE}"
    sts.add_client_error(
        "assume_role", service_error_code="AccessDenied", service_message=refusal,
        http_status_code=403,
    )  # fmt: skip
    with pytest.raises(AwsError) as error:
        connection.connect("aws", role_arn=ROLE, student="student07")
    assert error.value.code == "AccessDenied" and error.value.operation == "AssumeRole"
    assert refusal in str(error.value)  # AWS's own words
    hint = error.value.hint
    assert "trust policy" in hint and ALICE in hint
    assert '"Principal": {"AWS": "arn:aws:iam::111122223333:root"}' in hint
    assert "account 123456789012" in hint


@pytest.mark.parametrize(
    ("code", "aws_message", "advice"),
    [
        ("ExpiredToken", "The security token included in the request is expired", "sso login"),
        (
            "InvalidClientTokenId",
            "The security token included in the request is invalid.",
            "aws configure list",
        ),
        (
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method.",
            "secret access key",
        ),
    ],
)
def test_expired_or_wrong_keys_are_named(
    code: str, aws_message: str, advice: str, sts: Stubber
) -> None:
    sts.add_client_error(
        "get_caller_identity", service_error_code=code, service_message=aws_message,
        http_status_code=403,
    )  # fmt: skip
    with pytest.raises(AwsError) as error:
        connection.connect("aws", role_arn=ROLE)
    assert error.value.code == code and error.value.operation == "GetCallerIdentity"
    assert aws_message in str(error.value)
    assert "the default credential chain" in str(error.value)
    assert advice in error.value.hint


@pytest.mark.parametrize(
    ("region", "expected"),
    [
        ("ap-northeast-9", "is not an AWS region"),
        ("ap-northest-1", "Did you mean 'ap-northeast-1'?"),
        ("tokyo", "is not an AWS region"),
        ("cn-north-1", "'aws-cn' partition"),
    ],
)
def test_region_that_cannot_run_the_course(region: str, expected: str, no_sts: None) -> None:
    with pytest.raises(ConfigurationError, match=expected.replace("?", r"\?")):
        connection.connect("aws", region=region)


def test_region_without_ecs(monkeypatch: pytest.MonkeyPatch, no_sts: None) -> None:
    monkeypatch.setattr(
        connection, "ecs_regions", lambda: frozenset({"ap-northeast-1", "us-east-1"})
    )
    with pytest.raises(ConfigurationError, match="ECS is not offered in this region"):
        connection.connect("aws", region="eu-south-2")
