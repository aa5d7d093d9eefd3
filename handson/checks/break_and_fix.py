"""Check of exercise 4: the fault applied by ``handson.faults.apply`` is repaired, and the
service is steady again with healthy targets."""

from __future__ import annotations

from handson import faults
from handson.checks.base import Criteria, register
from handson.checks.service import steady
from handson.connection import Lab
from handson.i18n import N_, _


@register("07-break-and-fix", N_("Break and fix"))
def check_break_and_fix(lab: Lab, c: Criteria) -> None:
    """Exercise 4: which fault was applied (the service's ``handson:fault`` tag), whether
    it is repaired (with what AWS reports while it is not), then the steady state."""
    found = faults.assess(lab)
    applied, fault, state = found.applied, found.fault, found.state
    if not c.expect(
        _("a fault was applied"),
        applied is not None,
        None
        if applied is None
        else _("{fault} (at {applied_at})").format(
            fault=applied.name, applied_at=applied.applied_at
        ),
        _("Apply the lab's fault first: handson.faults.apply(lab) (exercise 4's first cells)."),
    ):
        return
    assert fault is not None and state is not None
    saw = state.saw
    if not state.repaired:
        # Name what the learner sees in AWS: the stopped reason or the target's reason.
        saw += (
            _("; AWS says: {symptom}").format(symptom=found.symptom)
            if found.symptom
            else _("; AWS reports nothing yet")
        )
    # The fault's condition is a message of handson.faults' table (N_() there).
    condition = _(fault.repaired_when)
    c.expect(
        _("repaired: {condition}").format(condition=condition), state.repaired, saw, state.hint
    )
    steady(c, lab, found.service, found.target_group_arn)
