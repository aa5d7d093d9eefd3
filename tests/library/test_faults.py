"""handson.faults and the "07-break-and-fix" check on the sandbox: each fault, applied to a
working chapter-7 deployment, shows AWS's symptom; its documented repair makes it work."""

from __future__ import annotations

import pytest

from handson import chapters, ecs, faults, progress
from handson.checks import check
from handson.exceptions import ConfigurationError, NotFoundError

# fault -> what AWS says while it is in place (a stopped reason or a target health reason).
SYMPTOMS = {
    "image-tag": ("CannotPullContainerError: pull image manifest has been retried",),
    "secret-policy": ("ResourceInitializationError: unable to pull secrets or registry auth",),
    "health-check-path": (
        "Target.ResponseCodeMismatch (Health checks failed with these codes: [404])",
        "Task failed ELB health checks in (target-group",
    ),
    "container-port": (
        "Target.FailedHealthChecks (Health checks failed)",
        "Task failed ELB health checks in (target-group",
    ),
    "nat-route": ("ResourceInitializationError: unable to pull secrets or registry auth",),
    "out-of-memory": ("OutOfMemoryError: Container killed due to memory usage, exit code 137",),
    "alb-rule": (
        "Target.Timeout (Request timed out)",
        "Task failed ELB health checks in (target-group",
    ),
}
QUIET = {"poll": 0.2, "progress": progress.silent}


@pytest.fixture
def working(make_lab):
    """A new student's account with chapter 7 deployed and steady; scaled to 0 afterwards,
    so that the next tests' health checks don't share the machine with these tasks."""
    lab = make_lab()
    pre = chapters.build_prerequisites(lab)
    chapters.deploy_chapter7(lab, pre)
    yield lab
    ecs.scale_service(lab, 0)


def criterion(result, prefix):
    return next(c for c in result.criteria if c.criterion.startswith(prefix))


@pytest.mark.parametrize("name", list(faults.FAULTS))
def test_fault_shows_its_symptom_and_its_repair_works(working, name) -> None:
    lab = working
    assert check(lab, "07-break-and-fix").failing == ["a fault was applied"]

    applied = faults.apply(lab, name)
    assert (applied.name, applied.changed) == (name, True)
    assert name not in repr(applied), "the notebook's output does not give the answer away"
    said = faults.wait_for_symptom(lab, timeout=60, poll=0.2)
    assert any(s in said for s in SYMPTOMS[name]), said
    if name == "nat-route":
        assert "i/o timeout" in said
    if name == "out-of-memory":
        assert said.startswith("a task stopped: Essential container in task exited (container ")

    result = check(lab, "07-break-and-fix")
    assert not result.passed
    assert criterion(result, "a fault was applied").saw.startswith(name)
    broken = criterion(result, "repaired:")
    assert not broken.passed
    assert "AWS says: " in broken.saw and any(s in broken.saw for s in SYMPTOMS[name]), broken.saw
    assert broken.hint == faults.FAULTS[name].repair
    shown = faults.show_fault(lab).set_index("item")["value"]
    assert shown["fault"] == name and shown["repaired"].startswith("no")

    other = next(n for n in faults.FAULTS if n != name)
    with pytest.raises(ConfigurationError, match=f"Another fault \\({name}\\) is applied"):
        faults.apply(lab, other)
    again = faults.apply(lab, name)
    assert (again.changed, again.stopped_tasks, again.applied_at) == (False, (), applied.applied_at)

    call = faults.repair(lab)
    assert call.startswith("handson.") and call in faults.FAULTS[name].repair
    assert faults.repaired(lab).repaired
    ecs.restart_service(lab)
    ecs.wait_for_rollout(lab, timeout=120, **QUIET)
    result = check(lab, "07-break-and-fix")
    assert result.passed, repr(result)


def test_pick_is_stable_and_spreads_over_the_faults() -> None:
    # The same on every run and machine (sha256, not hash()).
    assert faults.pick("student01") == faults.pick("student01") == "health-check-path"
    assert faults.pick("student02") == "container-port"
    # Seven faults: student08 is student01's fault again.
    assert faults.pick("student08") == "health-check-path"
    picks = [faults.pick(f"student{i:02d}") for i in range(1, 31)]
    assert set(picks) == set(faults.FAULTS)
    assert all(a != b for a, b in zip(picks, picks[1:], strict=False)), "neighbours differ"
    assert {faults.pick(s) for s in ("alice", "bob", "carol", "dave", "erin", "frank")} <= set(
        faults.FAULTS
    )


def test_unknown_fault_is_refused_before_any_aws_call(lab) -> None:
    before = len(lab.log.calls)
    with pytest.raises(ConfigurationError, match="image-tag, secret-policy"):
        faults.apply(lab, "no-such-fault")
    with pytest.raises(ConfigurationError, match="not one of the lab's faults"):
        faults.apply(lab, 3)  # type: ignore[arg-type]
    assert len(lab.log.calls) == before


def test_apply_without_a_service_says_to_deploy_first(lab) -> None:
    with pytest.raises(NotFoundError, match="no service to break") as refused:
        faults.apply(lab, "image-tag")
    assert "Deploy chapter 7 first" in refused.value.hint
    assert not lab.log.mutating()
    result = check(lab, "07-break-and-fix")
    assert not result.passed and result.failing == ["what the check reads exists"]


def test_fault_names_and_texts() -> None:
    for name, fault in faults.FAULTS.items():
        assert fault.name == name and name == name.lower() and " " not in name
        assert fault.title and fault.repaired_when and fault.symptom and fault.look_at
        assert "handson." in fault.repair and "restart_service" in fault.repair
    assert "07-break-and-fix" in __import__("handson").checks.names()
