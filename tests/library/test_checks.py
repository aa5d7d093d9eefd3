"""The self-checks: read-only, pass on the chapter's answer, fail with a hint on a wrong
one (each wrong answer made with plain boto3, as a learner's mistake would be)."""

from __future__ import annotations

import copy

import pytest

from handson import chapters, checks, ecs, progress
from handson.exceptions import ConfigurationError

pytestmark = pytest.mark.slow


def _row(result: checks.CheckResult, criterion: str) -> dict:
    rows = result.table.set_index("criterion")
    assert criterion in rows.index, list(rows.index)
    return rows.loc[criterion].to_dict()


def test_unknown_check_names_the_checks(lab) -> None:
    with pytest.raises(ConfigurationError, match="07-task-definition"):
        checks.check(lab, "07-nope")


def test_checks_before_notebook_00_fail_with_its_hint(lab) -> None:
    result = checks.check(lab, "07-task-definition")
    assert not result.passed
    assert "notebook 00" in result.table.hint[0]
    assert "NOT YET" in repr(result) and "#cf222e" in result._repr_html_()


@pytest.fixture
def built(lab):
    return lab, chapters.build_prerequisites(lab)


def _register(lab, spec: dict) -> None:
    lab.client("ecs").register_task_definition(**spec)


def test_the_chapters_task_definition_passes_and_the_check_changes_nothing(built) -> None:
    lab, pre = built
    ecs.ensure_task_definition(lab, chapters.task_definition_spec(lab, pre))
    before = len(lab.log.mutating())
    result = checks.check(lab, "07-task-definition")
    assert result.passed, repr(result)
    assert len(lab.log.mutating()) == before, "a check only reads"
    assert "#1a7f37" in result._repr_html_()


def test_a_secret_without_its_key_form_fails_with_the_valuefrom_hint(built) -> None:
    lab, pre = built
    spec = chapters.task_definition_spec(lab, pre)
    container = spec["containerDefinitions"][0]
    container["secrets"][0]["valueFrom"] = pre.database.secret_arn  # the whole secret
    _register(lab, spec)
    result = checks.check(lab, "07-task-definition")
    row = _row(result, "secret DB_HOST")
    assert not result.passed and not row["passed"]
    assert "valueFrom must be `<secret ARN>:<json key>::`" in row["hint"]
    assert f"{pre.database.secret_arn}:host::" in row["hint"]
    assert result.failing == ["secret DB_HOST"]


def test_a_password_in_plain_environment_fails_without_showing_it(built) -> None:
    lab, pre = built
    spec = chapters.task_definition_spec(lab, pre)
    container = spec["containerDefinitions"][0]
    secret = lab.client("secretsmanager").get_secret_value(SecretId=pre.database.secret_arn)
    password = __import__("json").loads(secret["SecretString"])["password"]
    container["environment"].append({"name": "DB_PASS", "value": password})
    _register(lab, spec)
    result = checks.check(lab, "07-task-definition")
    row = _row(result, "no database password in plain environment")
    assert not row["passed"] and "DB_PASS" in row["saw"]
    assert "give it as a secret" in row["hint"]
    assert password not in repr(result) and password not in result._repr_html_()


def test_wrong_image_port_and_logs_each_fail_with_their_hint(built) -> None:
    lab, pre = built
    spec = chapters.task_definition_spec(lab, pre)
    container = spec["containerDefinitions"][0]
    container["image"] = f"{pre.repository.uri}:v1"
    container["portMappings"] = [{"containerPort": 8080, "protocol": "tcp"}]
    container["logConfiguration"]["options"].pop("awslogs-stream-prefix")
    _register(lab, spec)
    result = checks.check(lab, "07-task-definition")
    assert set(result.failing) == {"image", "port mapping", "awslogs stream prefix"}
    assert ":latest" in _row(result, "image")["hint"]
    assert "3000" in _row(result, "port mapping")["hint"]


def test_task_size_the_chapters_default_is_too_small(built) -> None:
    lab, pre = built
    ecs.ensure_task_definition(lab, chapters.task_definition_spec(lab, pre))
    result = checks.check(lab, "07-task-size")
    assert set(result.failing) == {
        "at least 0.5 vCPU",
        "at least 1 GiB of memory",
        "the cheapest size that fits",
    }
    assert "512 units allow 1024 to 4096" in _row(result, "the cheapest size that fits")["hint"]


def test_task_size_too_big_is_not_the_cheapest(built) -> None:
    lab, pre = built
    ecs.ensure_task_definition(
        lab, chapters.task_definition_spec(lab, pre, task_cpu=1024, task_memory=2048)
    )
    result = checks.check(lab, "07-task-size")
    assert result.failing == ["the cheapest size that fits"]
    ecs.ensure_task_definition(lab, ecs.spec_from_latest(lab, cpu=512, memory=1024))
    assert checks.check(lab, "07-task-size").passed


def test_spec_from_latest_refuses_a_size_fargate_does_not_offer(built) -> None:
    lab, pre = built
    ecs.ensure_task_definition(lab, chapters.task_definition_spec(lab, pre))
    with pytest.raises(ConfigurationError, match="512, 1024 or 2048"):
        ecs.spec_from_latest(lab, cpu=256, memory=4096)


def test_service_with_a_public_ip_fails_then_create_service_fixes_it(built) -> None:
    lab, pre = built
    chapters.deploy_chapter7(lab, pre)
    assert checks.check(lab, "07-service").passed
    service = ecs.describe_service(lab)
    lab.client("ecs").update_service(
        cluster=lab.name("cluster"),
        service=service["serviceName"],
        deploymentConfiguration={"maximumPercent": 200, "minimumHealthyPercent": 50},
    )
    result = checks.check(lab, "07-service")
    row = _row(result, "minimum healthy percent")
    assert not row["passed"] and "never drops below" in row["hint"]
    spec = ecs.service_spec(
        lab,
        task_definition_arn=service["taskDefinition"],
        private_subnet_ids=list(pre.network.private_subnet_ids),
        security_group_id=pre.network.ecs_security_group_id,
        target_group_arn=pre.alb.target_group_arn,
    )
    wrong = copy.deepcopy(spec)
    wrong["networkConfiguration"]["awsvpcConfiguration"]["assignPublicIp"] = "ENABLED"
    ecs.create_service(lab, wrong)
    result = checks.check(lab, "07-service")
    assert "no public IP" in result.failing
    ecs.create_service(lab, spec)
    ecs.wait_for_rollout(lab, poll=0.2, progress=progress.silent)
    result = checks.check(lab, "07-service")
    assert result.passed, repr(result)


def test_create_service_checks_the_spec_before_any_call(lab) -> None:
    with pytest.raises(ConfigurationError, match="serviceName"):
        ecs.create_service(lab, {"cluster": lab.name("cluster")})
    with pytest.raises(ConfigurationError, match="app-service"):
        ecs.create_service(
            lab,
            {
                "cluster": lab.name("cluster"),
                "serviceName": "web",
                "taskDefinition": "x:1",
                "desiredCount": 2,
                "launchType": "FARGATE",
            },
        )
    assert lab.log.calls == []
