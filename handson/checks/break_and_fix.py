"""Check of exercise 4: the fault applied by ``handson.faults.apply`` is repaired, and the
service is steady again with healthy targets."""

from __future__ import annotations

from handson import faults
from handson.checks.base import Criteria, register
from handson.checks.service import steady
from handson.connection import Lab


@register("07-break-and-fix", "Break and fix")
def check_break_and_fix(lab: Lab, c: Criteria) -> None:
    """Exercise 4: which fault was applied (the service's ``handson:fault`` tag), whether
    it is repaired (with what AWS reports while it is not), then the steady state."""
    found = faults.assess(lab)
    applied, fault, state = found.applied, found.fault, found.state
    if not c.expect(
        "a fault was applied",
        applied is not None,
        None if applied is None else f"{applied.name} (at {applied.applied_at})",
        "Apply the lab's fault first: handson.faults.apply(lab) (exercise 4's first cells).",
    ):
        return
    assert fault is not None and state is not None
    saw = state.saw
    if not state.repaired:
        # Name what the learner sees in AWS: the stopped reason or the target's reason.
        saw += f"; AWS says: {found.symptom}" if found.symptom else "; AWS reports nothing yet"
    c.expect(f"repaired: {fault.repaired_when}", state.repaired, saw, state.hint)
    steady(c, lab, found.service, found.target_group_arn)
