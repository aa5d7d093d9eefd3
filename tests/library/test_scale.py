"""Exercise 6 on the sandbox: scale 2 -> 3 -> 1 -> 2 and watch the targets come and go."""

from __future__ import annotations

import pytest

from handson import chapters, checks, ecs, loadbalancer, progress
from handson.exceptions import ConfigurationError, WaitTimeoutError

QUIET = {"progress": progress.silent, "poll": 0.1}
SCALE_IN = "tasks stopped by scale-in"


@pytest.fixture(scope="module")
def built(sandbox_server):
    """Chapters 1-7 for one student: a steady 2-task service behind the ALB."""
    from handson.connection import connect

    lab = connect("sandbox", student="scale-module-student")
    pre = chapters.build_prerequisites(lab)
    chapters.deploy_chapter7(lab, pre)
    return lab, pre


def states(watched, target: str) -> list[str]:
    return list(watched[watched["target"] == target]["state"])


def hint(result, criterion: str) -> str:
    return str(result.table.set_index("criterion").loc[criterion, "hint"])


def test_bad_input_is_rejected_before_any_aws_call(built) -> None:
    lab, _ = built
    calls = len(lab.log.calls)
    for bad in (-1, 11, 2.5, True, "3"):
        with pytest.raises(ConfigurationError, match="until_healthy"):
            loadbalancer.watch_targets(lab, until_healthy=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="timeout"):
        loadbalancer.watch_targets(lab, until_healthy=2, timeout=0)
    with pytest.raises(ConfigurationError, match="app_count"):
        ecs.scale_service(lab, 11)
    assert len(lab.log.calls) == calls


def test_the_check_fails_before_scaling(built) -> None:
    lab, _ = built
    result = checks.check(lab, "07-scale")
    assert result.failing == [SCALE_IN], repr(result)
    assert "scale_service(lab, 3)" in hint(result, SCALE_IN)


def test_scaling_out_and_back_by_one_is_not_enough(built) -> None:
    lab, _ = built
    ecs.scale_service(lab, 3)
    loadbalancer.watch_targets(lab, until_healthy=3, poll=0.02)
    ecs.scale_service(lab, 2)
    loadbalancer.watch_targets(lab, until_healthy=2, poll=0.02)
    ecs.wait_for_rollout(lab, **QUIET)
    result = checks.check(lab, "07-scale")
    assert result.failing == [SCALE_IN], repr(result)
    saw = result.table.set_index("criterion").loc[SCALE_IN, "saw"]
    assert saw.startswith("1 stopped task(s)")


def test_scale_out_in_and_back(built) -> None:
    lab, _ = built
    before = set(loadbalancer.show_target_health(lab)["target"])

    ecs.scale_service(lab, 3)
    out = loadbalancer.watch_targets(lab, until_healthy=3, poll=0.02)
    new = [t for t in dict.fromkeys(out["target"]) if t.rsplit(":", 1)[0] not in before]
    assert len(new) == 1, out.to_string()
    assert states(out, new[0])[-1] == "healthy", out.to_string()
    assert states(out, new[0])[0] in ("initial", "healthy"), out.to_string()
    assert list(out.columns) == ["target", "state", "reason", "first_seen_s"]
    result = checks.check(lab, "07-scale")
    assert "desired count back at 2" in result.failing

    ecs.scale_service(lab, 1)
    inn = loadbalancer.watch_targets(lab, until_healthy=1, poll=0.02)
    left = {t for t in inn["target"] if states(inn, t)[-1] == loadbalancer.GONE}
    assert len(left) == 2, inn.to_string()
    for target in left:
        assert states(inn, target)[-2:] == ["draining", loadbalancer.GONE], inn.to_string()
    reasons = inn[inn["state"] == "draining"]["reason"]
    assert set(reasons) == {"Target.DeregistrationInProgress"}

    primary = ecs.describe_service(lab)["deployments"][0]["id"]
    stopped = ecs.show_stopped_tasks(lab)
    scale_in = stopped[
        stopped["stopped_reason"] == f"Scaling activity initiated by (deployment {primary})"
    ]
    assert len(scale_in) >= 3  # 3 -> 2 earlier, then 3 -> 1
    assert set(scale_in["stop_code"]) == {"ServiceSchedulerInitiated"}

    ecs.scale_service(lab, 2)
    ecs.wait_for_rollout(lab, **QUIET)
    assert len(loadbalancer.watch_targets(lab, until_healthy=2, poll=0.02)) >= 2


def test_the_check_passes_after_the_solution(built) -> None:
    lab, _ = built
    result = checks.check(lab, "07-scale")
    assert result.passed, repr(result)


def test_watching_for_a_count_that_never_comes_times_out(built) -> None:
    lab, _ = built
    with pytest.raises(WaitTimeoutError, match="did not settle at 5 healthy targets"):
        loadbalancer.watch_targets(lab, until_healthy=5, timeout=0.3, poll=0.05)
