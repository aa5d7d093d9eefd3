"""Tests for secret references, value extraction and the secret/log stoppedReasons."""

import pytest

from handson.sandbox.dataplane.iam_policy import Decision
from handson.sandbox.dataplane.secrets import (
    SecretRef,
    SecretReferenceError,
    SecretResolutionError,
    extract_secret_value,
    go_json_syntax_error,
    parse_secret_reference,
    stopped_reason_access_denied,
    stopped_reason_log_group_missing,
    stopped_reason_secret_not_found,
    stopped_reason_secret_value,
)

ARN = "arn:aws:secretsmanager:ap-northeast-1:123456789012:secret:appauthexample-AbCdEf"
VERSION_ID = "9d4cb84b-ad69-40c0-a0ab-cead3EXAMPLE"
REQUEST_ID = "6f2ad8a8-1c5e-4a6b-9a53-2f9a3c2b7e10"
TASK_ID = "e48b873c7f984222abba8d6abfc77957"
PREFIX = (
    "ResourceInitializationError: unable to pull secrets or registry auth: "
    "execution resource retrieval failed: unable to retrieve secret from asm: "
    "service call has been retried 1 time(s): "
)


# --- parse_secret_reference (docs/sandbox.md, "Secrets in task definitions") --------------


@pytest.mark.parametrize(
    ("value_from", "expected"),
    [
        # Whole secret (docs/sandbox.md, "Secrets in task definitions").
        (ARN, SecretRef(ARN)),
        # One JSON key, trailing colons kept (docs/sandbox.md, "Secrets in task definitions").
        (f"{ARN}:username1::", SecretRef(ARN, json_key="username1")),
        # Staging label (docs/sandbox.md, "Secrets in task definitions").
        (f"{ARN}::AWSPREVIOUS:", SecretRef(ARN, version_stage="AWSPREVIOUS")),
        # Version id (docs/sandbox.md, "Secrets in task definitions").
        (f"{ARN}:::{VERSION_ID}", SecretRef(ARN, version_id=VERSION_ID)),
        # Key + stage (docs/sandbox.md, "Secrets in task definitions").
        (
            f"{ARN}:username1:AWSPREVIOUS:",
            SecretRef(ARN, json_key="username1", version_stage="AWSPREVIOUS"),
        ),
        # key + version id
        (f"{ARN}:host::{VERSION_ID}", SecretRef(ARN, json_key="host", version_id=VERSION_ID)),
        # all three fields empty = whole secret, default stage
        (f"{ARN}:::", SecretRef(ARN)),
    ],
)
def test_parse_secrets_manager_forms(value_from, expected):
    ref = parse_secret_reference(value_from)
    assert ref == expected
    assert ref.kind == "secretsmanager"


def test_parse_db_host_example():
    # "…:secret:db-AbCdEf:host::" injects only the host field (docs/sandbox.md, "Secrets in
    # task definitions").
    ref = parse_secret_reference(
        "arn:aws:secretsmanager:us-east-1:111122223333:secret:db-AbCdEf:host::"
    )
    assert ref.secret_arn == "arn:aws:secretsmanager:us-east-1:111122223333:secret:db-AbCdEf"
    assert ref.json_key == "host"


def test_stage_and_version_id_are_mutually_exclusive():
    # "Stage and id are mutually exclusive." (docs/sandbox.md, "Secrets in task definitions")
    with pytest.raises(SecretReferenceError, match="mutually exclusive"):
        parse_secret_reference(f"{ARN}::AWSCURRENT:{VERSION_ID}")


@pytest.mark.parametrize("value_from", [f"{ARN}:username1", f"{ARN}:username1:", f"{ARN}::::"])
def test_trailing_fields_need_all_colons(value_from):
    # "the colons must be kept to use defaults" (docs/sandbox.md, "Secrets in task definitions")
    with pytest.raises(SecretReferenceError):
        parse_secret_reference(value_from)


@pytest.mark.parametrize(
    "value_from",
    [
        "",
        " " + ARN,
        "arn:aws:secretsmanager:ap-northeast-1:123456789012:secret:",
        "arn:aws:secretsmanager:ap-northeast-1:123456789012:rotation:x",
        "arn:aws:s3:::bucket/key",
        "arn:aws:ssm:ap-northeast-1:123456789012:document/x",
        "arn:aws:ssm:ap-northeast-1:123456789012:parameter/",
    ],
)
def test_bad_references(value_from):
    with pytest.raises(SecretReferenceError):
        parse_secret_reference(value_from)


@pytest.mark.parametrize(
    "value_from",
    [
        "arn:aws:ssm:ap-northeast-1:123456789012:parameter/app/db-password",
        "arn:aws:ssm:ap-northeast-1:123456789012:parameter/token",
        "/app/db-password",
        "token",
    ],
)
def test_ssm_references(value_from):
    # SSM full parameter ARN, or the name if in the same region (docs/sandbox.md, "Secrets
    # in task definitions").
    ref = parse_secret_reference(value_from)
    assert ref == SecretRef(value_from, kind="ssm")


# --- extract_secret_value ------------------------------------------------------------------


def ref(key=None):
    return SecretRef(ARN, json_key=key)


def test_whole_secret_is_returned_as_is():
    assert extract_secret_value("p@ss word", ref()) == "p@ss word"
    assert extract_secret_value('{"a": 1}', ref()) == '{"a": 1}'


def test_json_key_string_value():
    assert extract_secret_value('{"username1": "admin", "password": "x"}', ref("username1")) == (
        "admin"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("5432", "5432"),
        ("1.5", "1.5"),
        ("1000000", "1e+06"),
        ("123456", "123456"),
        ("true", "true"),
        ("null", "<nil>"),
        ('[1, "a"]', "[1 a]"),
        ('{"b": 2, "a": "x"}', "map[a:x b:2]"),
    ],
)
def test_non_string_values_are_formatted_like_go(value, expected):
    # The agent returns fmt.Sprintf("%v", value) of a Go interface{} value.
    assert extract_secret_value(f'{{"k": {value}}}', ref("k")) == expected


def test_missing_json_key():
    # "retrieved secret from Secrets Manager did not contain json key <key>"
    # (docs/sandbox.md, "Task stop codes and reasons")
    with pytest.raises(SecretResolutionError) as info:
        extract_secret_value('{"user": "a"}', ref("password"))
    assert info.value.reason == (
        "retrieved secret from Secrets Manager did not contain json key password"
    )


def test_json_null_secret_has_no_keys():
    with pytest.raises(SecretResolutionError, match="did not contain json key k"):
        extract_secret_value("null", ref("k"))


def test_non_json_secret_with_key_literal_true():
    # "invalid character 'p' in literal true (expecting 'r')" (docs/sandbox.md, "Task stop
    # codes and reasons")
    with pytest.raises(SecretResolutionError) as info:
        extract_secret_value("tpassword", ref("password"))
    assert info.value.reason == "invalid character 'p' in literal true (expecting 'r')"


def test_non_json_secret_with_key_plain_word():
    with pytest.raises(SecretResolutionError) as info:
        extract_secret_value("password123", ref("password"))
    assert info.value.reason == "invalid character 'p' looking for beginning of value"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "unexpected end of JSON input"),
        ('{"a":', "unexpected end of JSON input"),
        ("{'a': 1}", "invalid character '\\'' looking for beginning of object key string"),
        ('{"a" 1}', "invalid character '1' after object key"),
        ('{"a": 1 "b": 2}', "invalid character '\"' after object key:value pair"),
        ("[1 2]", "invalid character '2' after array element"),
        ('{"a": 1}x', "invalid character 'x' after top-level value"),
        ("01", "invalid character '1' after top-level value"),
        ("1.x", "invalid character 'x' after decimal point in numeric literal"),
        ("1ex", "invalid character 'x' in exponent of numeric literal"),
        ("-x", "invalid character 'x' in numeric literal"),
        ('"a\nb"', "invalid character '\\n' in string literal"),
        ('"\\q"', "invalid character 'q' in string escape code"),
        ('"\\u12g4"', "invalid character 'g' in \\u hexadecimal character escape"),
        ("nul", "invalid character ' ' in literal null (expecting 'l')"),
        ("fals!", "invalid character '!' in literal false (expecting 'e')"),
        ('{"a": 1}', None),
        (' [1, 2.5e-3, true, false, null, "\\u00e9"] ', None),
    ],
)
def test_go_json_syntax_errors(text, message):
    assert go_json_syntax_error(text) == message


def test_json_that_is_not_an_object():
    with pytest.raises(SecretResolutionError) as info:
        extract_secret_value('"just a string"', ref("k"))
    assert info.value.reason == (
        "json: cannot unmarshal string into Go value of type map[string]interface {}"
    )


# --- stoppedReason strings (docs/sandbox.md, "Task stop codes and reasons") ---------------


def test_stopped_reason_access_denied():
    # The 2026-03-28 ap-northeast-1 template (docs/sandbox.md, "Task stop codes and reasons").
    reason = stopped_reason_access_denied(
        ARN,
        account_id="123456789012",
        execution_role_name="ecsTaskExecutionRole",
        task_id=TASK_ID,
        request_id=REQUEST_ID,
    )
    assert reason == (
        "ResourceInitializationError: unable to pull secrets or registry auth: "
        "execution resource retrieval failed: unable to retrieve secret from asm: "
        "service call has been retried 1 time(s): failed to fetch secret "
        f"{ARN} from secrets manager: operation error Secrets Manager: GetSecretValue, "
        f"https response error StatusCode: 400, RequestID: {REQUEST_ID}, "
        "api error AccessDeniedException: User: arn:aws:sts::123456789012:assumed-role/"
        f"ecsTaskExecutionRole/{TASK_ID} is not authorized to perform: "
        f"secretsmanager:GetSecretValue on resource: {ARN} because no identity-based "
        "policy allows the secretsmanager:GetSecretValue action"
    )


def test_stopped_reason_access_denied_explicit_and_resource_arn():
    partial = "arn:aws:secretsmanager:ap-northeast-1:123456789012:secret:appauthexample"
    reason = stopped_reason_access_denied(
        partial,
        account_id="123456789012",
        execution_role_name="ecsTaskExecutionRole",
        task_id=TASK_ID,
        request_id=REQUEST_ID,
        resource_arn=ARN,
        decision=Decision(False, "explicit_deny"),
    )
    assert f"failed to fetch secret {partial} from secrets manager" in reason
    assert reason.endswith(f"on resource: {ARN} with an explicit deny in an identity-based policy")


def test_stopped_reason_missing_json_key():
    # Missing JSON key (real output) (docs/sandbox.md, "Task stop codes and reasons").
    with pytest.raises(SecretResolutionError) as info:
        extract_secret_value('{"other": "x"}', ref("MY_SECRET"))
    assert stopped_reason_secret_value(info.value) == (
        "ResourceInitializationError: unable to pull secrets or registry auth: "
        "execution resource retrieval failed: unable to retrieve secret from asm: "
        "service call has been retried 1 time(s): retrieved secret from Secrets Manager "
        "did not contain json key MY_SECRET"
    )


def test_stopped_reason_non_json_secret():
    # "…invalid character 'p' in literal true (expecting 'r')" (docs/sandbox.md, "Task
    # stop codes and reasons")
    with pytest.raises(SecretResolutionError) as info:
        extract_secret_value("tp", ref("k"))
    reason = stopped_reason_secret_value(info.value)
    assert reason == PREFIX + "invalid character 'p' in literal true (expecting 'r')"


def test_stopped_reason_secret_not_found():
    # With Secrets Manager's ResourceNotFoundException text (docs/sandbox.md, "Task stop codes
    # and reasons").
    reason = stopped_reason_secret_not_found(ARN, request_id=REQUEST_ID)
    assert reason == (
        PREFIX + f"failed to fetch secret {ARN} from secrets manager: "
        "operation error Secrets Manager: GetSecretValue, https response error "
        f"StatusCode: 400, RequestID: {REQUEST_ID}, "
        "ResourceNotFoundException: Secrets Manager can't find the specified secret."
    )


def test_stopped_reason_retry_count():
    reason = stopped_reason_secret_not_found(ARN, request_id=REQUEST_ID, retries=5)
    assert "service call has been retried 5 time(s): " in reason


def test_stopped_reason_log_group_missing():
    # Missing log group (docs/sandbox.md, "Task stop codes and reasons" and "awslogs and
    # CloudWatch Logs").
    assert stopped_reason_log_group_missing() == (
        "ResourceInitializationError: failed to validate logger args: create stream has been "
        "retried 1 times: failed to create Cloudwatch log stream: ResourceNotFoundException: "
        "The specified log group does not exist. : exit status 1"
    )
