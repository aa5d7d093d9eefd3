"""Exercise 5 on the sandbox: ship version 2 with a rolling update the ALB never fails,
then watch the circuit breaker roll a broken revision back."""

from __future__ import annotations

import time

import pytest

from handson import chapters, checks, ecs, loadbalancer, progress, registry
from handson.exceptions import ConfigurationError, DeploymentError

QUIET = {"progress": progress.silent, "poll": 0.1}


@pytest.fixture(scope="module")
def built(sandbox_server):
    """Chapters 1-7 for one student: a steady 2-task service running version 1.0.0."""
    from handson.connection import connect

    lab = connect("sandbox", student="version2-module-student")
    pre = chapters.build_prerequisites(lab)
    chapters.deploy_chapter7(lab, pre)
    return lab, pre


def test_bad_input_is_rejected_before_any_aws_call(built) -> None:
    lab, _ = built
    calls = len(lab.log.calls)
    with pytest.raises(ConfigurationError, match="start the path"):
        loadbalancer.start_probe(lab, "health")
    with pytest.raises(ConfigurationError, match="interval"):
        loadbalancer.start_probe(lab, interval=0)
    with pytest.raises(ConfigurationError, match="image tag"):
        ecs.register_revision(lab, image_tag="not a tag")
    with pytest.raises(ConfigurationError, match="not a task definition revision"):
        ecs.deploy_revision(lab, "my-project-dev-app")
    with pytest.raises(ConfigurationError, match="not a task definition revision"):
        ecs.deregister_revision(lab, "")
    with pytest.raises(ConfigurationError, match="deployment_id"):
        ecs.wait_for_rollback(lab, "12345")
    with pytest.raises(ConfigurationError, match="name the copy"):
        registry.copy_app(lab, "../elsewhere")
    with pytest.raises(ConfigurationError, match="start_probe"):
        loadbalancer.show_probe("probe")  # type: ignore[arg-type]
    assert len(lab.log.calls) == calls


def test_the_copy_is_outside_the_repository_and_kept(built) -> None:
    lab, _ = built
    app_dir = registry.copy_app(lab, "copy-test")
    assert registry.APP_DIR not in app_dir.parents and (app_dir / "Dockerfile").is_file()
    assert registry.app_version(app_dir) == "1.0.0"
    assert registry.set_app_version(app_dir, "1.5.0") == "1.0.0"
    assert registry.set_app_version(app_dir, "1.5.0") == "1.5.0"  # again: no change
    assert registry.copy_app(lab, "copy-test") == app_dir  # again: the change is kept
    assert registry.app_version(app_dir) == "1.5.0"
    with pytest.raises(ConfigurationError, match="copy_app"):
        registry.set_app_version(registry.APP_DIR, "2.0.0")
    with pytest.raises(ConfigurationError, match="version="):
        registry.set_app_version(app_dir, "2.0.0; rm -rf /")
    assert registry.app_version(registry.APP_DIR) == "1.0.0"


def test_a_changed_file_is_a_new_image(built) -> None:
    lab, _ = built
    app_dir = registry.copy_app(lab, "digest-test")
    first = registry.push_image(lab, context=app_dir, tag="digest-test")
    assert registry.push_image(lab, context=app_dir, tag="digest-test") == first
    registry.set_app_version(app_dir, "9.9.9")
    changed = registry.push_image(lab, context=app_dir, tag="digest-test")
    assert changed.digest != first.digest


def test_the_check_fails_before_version_2(built) -> None:
    lab, _ = built
    result = checks.check(lab, "07-version-2")
    assert not result.passed
    assert "GET / answers the new version" in result.failing
    assert "the circuit breaker rolled back a failed deployment" in result.failing
    hints = dict(zip(result.table["criterion"], result.table["hint"], strict=True))
    assert "set_app_version" in hints["GET / answers the new version"]
    assert "register_revision" in hints["the circuit breaker rolled back a failed deployment"]


def test_rolling_update_to_version_2_loses_no_request(built) -> None:
    lab, _ = built
    app_dir = registry.copy_app(lab)
    registry.set_app_version(app_dir, "2.0.0")
    image = registry.push_image(lab, context=app_dir)
    with loadbalancer.start_probe(lab, "/", interval=0.02) as probe:
        while "1.0.0" not in probe.versions and probe.running:
            time.sleep(0.02)
        assert ecs.restart_service(lab, image_digest=image.digest) is not None
        ecs.wait_for_rollout(lab, **QUIET)
        while "2.0.0" not in probe.versions and probe.running:
            time.sleep(0.02)
    summary = loadbalancer.show_probe(probe)
    assert not probe.running
    assert probe.failed == 0, summary.to_string()
    assert set(probe.versions) == {"1.0.0", "2.0.0"}, summary.to_string()
    assert list(summary["answer"]) == ["version 1.0.0", "version 2.0.0"]
    assert summary["requests"].sum() == probe.requests
    assert loadbalancer.call_alb(lab, "/").json()["version"] == "2.0.0"
    # Run again: the same image is in ECR and running, so nothing is deployed.
    assert registry.push_image(lab, context=app_dir) == image
    assert ecs.restart_service(lab, image_digest=image.digest) is None


def test_a_new_probe_stops_the_previous_one(built) -> None:
    lab, _ = built
    first = loadbalancer.start_probe(lab, "/health", interval=0.05)
    second = loadbalancer.start_probe(lab, "/health", interval=0.05)
    assert not first.running
    second.stop()
    assert not second.running and second.stop().equals(second.summary())
    bounded = loadbalancer.start_probe(lab, "/health", interval=0.05, max_seconds=0.2)
    bounded._thread.join(5)  # stops by itself after max_seconds
    assert not bounded.running and bounded.requests >= 1


def test_the_circuit_breaker_rolls_a_broken_revision_back(built) -> None:
    lab, _ = built
    good = ecs.describe_service(lab)["taskDefinition"]
    broken = ecs.register_revision(lab, image_tag="does-not-exist")
    assert broken.arn != good
    assert ecs.register_revision(lab, image_tag="does-not-exist") == broken  # again: reused
    spec = lab.client("ecs").describe_task_definition(taskDefinition=broken.arn)
    assert spec["taskDefinition"]["containerDefinitions"][0]["image"].endswith(":does-not-exist")

    deployment = ecs.deploy_revision(lab, broken.arn)
    assert ecs.deploy_revision(lab, broken.arn) == deployment  # again: no new deployment
    with pytest.raises(ConfigurationError, match="still runs"):
        ecs.deregister_revision(lab, broken.arn)
    story = ecs.wait_for_rollback(lab, deployment, poll=0.1)
    messages = list(story["message"])
    failed = next(
        i for i, m in enumerate(messages) if f"(deployment {deployment}) deployment failed" in m
    )
    rolled = next(i for i, m in enumerate(messages) if "rolling back to deployment" in m)
    assert failed < rolled, messages
    service = ecs.describe_service(lab)
    assert service["taskDefinition"] == good
    reasons = ecs.show_stopped_tasks(lab)["stopped_reason"]
    assert reasons.str.startswith("CannotPullContainerError").any()
    assert loadbalancer.call_alb(lab, "/").json()["version"] == "2.0.0"

    result = checks.check(lab, "07-version-2")
    assert result.failing == ["the broken revision is deregistered"], repr(result)
    hint = result.table.set_index("criterion").loc["the broken revision is deregistered", "hint"]
    assert "deregister_revision" in hint

    ecs.deregister_revision(lab, broken.arn)
    ecs.deregister_revision(lab, broken.arn)  # again: already INACTIVE
    with pytest.raises(ConfigurationError, match="deregistered"):
        ecs.deploy_revision(lab, broken.arn)
    # Run again after the rollback: the service is steady, the story is its latest events.
    assert not ecs.wait_for_rollback(lab, deployment, poll=0.1).empty


def test_the_check_passes_after_the_solution(built) -> None:
    lab, _ = built
    result = checks.check(lab, "07-version-2")
    assert result.passed, repr(result)


def test_a_deployment_that_succeeds_is_no_rollback(built) -> None:
    lab, _ = built
    deployment = ecs.restart_service(lab)
    assert deployment is not None
    with pytest.raises(DeploymentError, match="nothing to roll back"):
        ecs.wait_for_rollback(lab, deployment, poll=0.1)
    assert checks.check(lab, "07-version-2").passed
