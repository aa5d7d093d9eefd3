"""Tests for the sandbox's IAM identity-policy evaluation."""

import dataclasses

import pytest

from handson.sandbox.dataplane.iam_policy import Decision, denied_message, is_allowed

SECRET = "arn:aws:secretsmanager:ap-northeast-1:123456789012:secret:db-AbCdEf"
GET = "secretsmanager:GetSecretValue"


def policy(*statements):
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(action, resource="*", **extra):
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action, resource="*", **extra):
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


def test_no_policies_is_implicit_deny():
    assert is_allowed([], GET, SECRET) == Decision(False, "implicit_deny")


def test_simple_allow():
    assert is_allowed([policy(allow(GET, SECRET))], GET, SECRET) == Decision(True, "allowed")


def test_statement_may_be_a_single_dict():
    doc = {"Version": "2012-10-17", "Statement": allow(GET, SECRET)}
    assert is_allowed([doc], GET, SECRET).allowed


def test_action_and_resource_lists():
    doc = policy(allow(["logs:PutLogEvents", GET], ["arn:aws:s3:::x", SECRET]))
    assert is_allowed([doc], GET, SECRET).allowed
    assert not is_allowed([doc], "secretsmanager:DescribeSecret", SECRET).allowed


def test_action_match_is_case_insensitive():
    doc = policy(allow("SecretsManager:getsecretvalue", SECRET))
    assert is_allowed([doc], GET, SECRET).allowed
    assert is_allowed([policy(allow(GET, SECRET))], "SECRETSMANAGER:GETSECRETVALUE", SECRET).allowed


def test_resource_match_is_case_sensitive():
    assert not is_allowed([policy(allow(GET, SECRET.upper()))], GET, SECRET).allowed


@pytest.mark.parametrize(
    "pattern",
    ["*", "secretsmanager:*", "secretsmanager:Get*", "secretsmanager:GetSecret?alue", "*:Get*"],
)
def test_action_wildcards(pattern):
    assert is_allowed([policy(allow(pattern, SECRET))], GET, SECRET).allowed


@pytest.mark.parametrize("pattern", ["secretsmanager:List*", "secretsmanager:GetSecret?", "s3:*"])
def test_action_wildcards_that_do_not_match(pattern):
    assert not is_allowed([policy(allow(pattern, SECRET))], GET, SECRET).allowed


@pytest.mark.parametrize(
    "pattern",
    [
        "*",
        "arn:aws:secretsmanager:*",
        "arn:aws:secretsmanager:*:123456789012:secret:db-*",
        "arn:aws:secretsmanager:ap-northeast-1:123456789012:secret:db-??????",
        "arn:aws:secretsmanager:ap-northeast-1:*:secret:*",
        "arn:aws:secretsmanager:ap-northeast-?:123456789012:secret:db-AbCdEf",
    ],
)
def test_resource_wildcards(pattern):
    assert is_allowed([policy(allow(GET, pattern))], GET, SECRET).allowed


@pytest.mark.parametrize(
    "pattern",
    [
        "arn:aws:secretsmanager:ap-northeast-1:123456789012:secret:db-?????",
        "arn:aws:secretsmanager:us-east-1:*",
        "arn:aws:secretsmanager:ap-northeast-1:123456789012:secret:app-*",
        # a '*' inside a segment does not cross a colon
        "arn:aws:secretsmanager:ap-*-1:secret:db-AbCdEf",
    ],
)
def test_resource_wildcards_that_do_not_match(pattern):
    assert not is_allowed([policy(allow(GET, pattern))], GET, SECRET).allowed


def test_explicit_deny_beats_allow_in_another_policy():
    decision = is_allowed([policy(allow("*")), policy(deny(GET, SECRET))], GET, SECRET)
    assert decision == Decision(False, "explicit_deny")


def test_explicit_deny_beats_allow_in_the_same_policy_in_any_order():
    doc = policy(deny("secretsmanager:*"), allow(GET, SECRET))
    assert is_allowed([doc], GET, SECRET).reason == "explicit_deny"


def test_deny_that_does_not_match_leaves_allow():
    doc = policy(allow(GET), deny(GET, "arn:aws:secretsmanager:*:*:secret:prod-*"))
    assert is_allowed([doc], GET, SECRET).reason == "allowed"


def test_not_action_allow():
    doc = policy({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"})
    assert is_allowed([doc], GET, SECRET).allowed
    assert not is_allowed([doc], "iam:CreateUser", "*").allowed


def test_not_action_deny():
    doc = policy(allow("*"), {"Effect": "Deny", "NotAction": ["logs:*"], "Resource": "*"})
    assert is_allowed([doc], GET, SECRET).reason == "explicit_deny"
    assert is_allowed([doc], "logs:PutLogEvents", "arn:aws:logs:x").reason == "allowed"


def test_not_resource():
    doc = policy({"Effect": "Allow", "Action": GET, "NotResource": "arn:aws:*:*:*:secret:prod-*"})
    assert is_allowed([doc], GET, SECRET).allowed
    prod = "arn:aws:secretsmanager:ap-northeast-1:123456789012:secret:prod-XyZ123"
    assert is_allowed([doc], GET, prod).reason == "implicit_deny"


def test_conditions_are_ignored():
    condition = {"StringEquals": {"aws:SourceVpc": "vpc-1"}}
    assert is_allowed([policy(allow(GET, SECRET, Condition=condition))], GET, SECRET).allowed
    doc = policy(allow("*"), deny(GET, SECRET, Condition=condition))
    assert is_allowed([doc], GET, SECRET).reason == "explicit_deny"


def test_malformed_statements_never_match():
    docs = [
        policy({"Effect": "Allow", "Resource": "*"}),  # no action element
        policy({"Effect": "Allow", "Action": "*"}),  # no resource element
        policy({"Action": "*", "Resource": "*"}),  # no effect
        policy({"Effect": "allow", "Action": "*", "Resource": "*"}),  # effect is case-sensitive
        {"Version": "2012-10-17"},  # no statement at all
    ]
    assert is_allowed(docs, GET, SECRET).reason == "implicit_deny"


def test_decision_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        is_allowed([], GET, SECRET).allowed = True  # type: ignore[misc]


ROLE = (
    "arn:aws:sts::123456789012:assumed-role/ecsTaskExecutionRole/0123456789abcdef0123456789abcdef"
)


def test_denied_message_implicit():
    # AccessDeniedException inside the secret stoppedReason (docs/sandbox.md, "Task stop codes
    # and reasons")
    assert denied_message(ROLE, GET, SECRET, Decision(False, "implicit_deny")) == (
        f"User: {ROLE} is not authorized to perform: secretsmanager:GetSecretValue "
        f"on resource: {SECRET} because no identity-based policy allows the "
        "secretsmanager:GetSecretValue action"
    )


def test_denied_message_explicit():
    assert denied_message(ROLE, GET, SECRET, Decision(False, "explicit_deny")) == (
        f"User: {ROLE} is not authorized to perform: secretsmanager:GetSecretValue "
        f"on resource: {SECRET} with an explicit deny in an identity-based policy"
    )


def test_denied_message_refuses_an_allow():
    with pytest.raises(ValueError):
        denied_message(ROLE, GET, SECRET, Decision(True, "allowed"))
