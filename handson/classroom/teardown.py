"""Tear down a whole class: show what the kit made in every account, delete it, prove it's gone.

Only resources tagged by the kit for the student (``Project``, ``Environment``, ``Student``)
are listed and deleted; whatever else lives in a student's account is left alone.
"""

from __future__ import annotations

import os
from typing import Any

import pandas as pd

from handson import teardown as kit_teardown
from handson.classroom.parallel import each_student, error_text
from handson.classroom.roster import Roster, Student, as_roster, check_backend
from handson.connection import connect
from handson.i18n import _

__all__ = ["PLAN_COLUMNS", "SUMMARY_COLUMNS", "teardown_class", "teardown_plan"]

PLAN_COLUMNS = ["student", "service", "kind", "id", "error"]
SUMMARY_COLUMNS = ["student", "status", "error", "leftovers"]


def teardown_plan(
    roster: Roster | str | os.PathLike[str], *, backend: str, parallel: int = 8
) -> pd.DataFrame:
    """Everything the kit tagged in each student's account: a row per resource (student,
    service, kind, id), read ``parallel`` accounts at a time; changes nothing.

    A student whose account can't be read gets one row with ``error`` set (and nothing
    else), so an empty plan really means there is nothing left anywhere.
    """
    roster = as_roster(roster)
    check_backend(backend)

    def read(student: Student) -> list[dict[str, Any]]:
        try:
            lab = connect(**student.notebook_parameters(backend))  # type: ignore[arg-type]
            found = kit_teardown.leftovers(lab)
        except Exception as error:  # reported in the plan: one account never hides the others
            return [{"student": student.student, "error": error_text(error)}]
        return [{"student": student.student, **r, "error": ""} for r in found.to_dict("records")]

    rows = [r for found in each_student(roster, read, parallel=parallel) for r in found]
    return pd.DataFrame(rows, columns=PLAN_COLUMNS).fillna("")


def teardown_class(
    roster: Roster | str | os.PathLike[str], *, backend: str, parallel: int = 4
) -> pd.DataFrame:
    """Delete every student's resources (``handson.teardown.teardown``), ``parallel``
    accounts at a time, then count what is still tagged in each account.

    A row per student: status ``ok`` (deleted, 0 left) or ``failed`` with the error or what
    is left, and the ``leftovers`` count. A failing student never stops the others; run it
    again to retry (every deletion is idempotent).
    """
    roster = as_roster(roster)
    check_backend(backend)

    def run(student: Student) -> dict[str, Any]:
        row: dict[str, Any] = {"student": student.student, "status": "ok", "error": ""}
        errors: list[str] = []
        try:
            lab = connect(**student.notebook_parameters(backend))  # type: ignore[arg-type]
        except Exception as error:  # reported in the summary, with the other students'
            return {**row, "status": "failed", "error": error_text(error)}
        try:
            kit_teardown.teardown(lab)
        except Exception as error:  # still count what is left below
            errors.append(error_text(error))
        try:
            left = kit_teardown.leftovers(lab)
        except Exception as error:
            errors.append(
                _("could not check what is left: {error}").format(error=error_text(error))
            )
        else:
            row["leftovers"] = len(left)
            if len(left):
                kinds = ", ".join(sorted(set(left["kind"])))
                errors.append(
                    _("{count} tagged resources left ({kinds})").format(
                        count=len(left), kinds=kinds
                    )
                )
        if errors:
            row.update(status="failed", error="; ".join(errors))
        return row

    summary = pd.DataFrame(each_student(roster, run, parallel=parallel), columns=SUMMARY_COLUMNS)
    summary["leftovers"] = summary["leftovers"].astype("Int64")
    return summary
