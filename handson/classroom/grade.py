"""Grade a whole class: the exercises' self-checks, run in every student's account.

``grade(roster)`` runs the checks of :mod:`handson.checks` (``07-task-definition``,
``07-service``, ...) for every student, a few accounts at a time, and collects them into a
:class:`Gradebook`: a row per student, a column per check (True when every criterion of
the check holds) and a column naming the criteria that do not. The checks only read, so
grading changes nothing in any account and can be run as often as wanted.
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from handson import checks as kit_checks
from handson.checks import base as check_base
from handson.checks.base import CheckResult, Criterion
from handson.classroom.parallel import each_student, error_text
from handson.classroom.roster import Roster, Student, as_roster, check_backend
from handson.connection import Lab, connect
from handson.exceptions import ConfigurationError
from handson.i18n import N_, _

__all__ = ["DEFAULT_PARALLEL", "Gradebook", "check_names", "grade", "grade_lab", "score"]

DEFAULT_PARALLEL = 8
# Columns after the checks' own ones.
SCORE, FAILING, ERROR = "score", "failing", "error"
CHECK_FAILED = N_("the check could run")


@dataclass(frozen=True, eq=False)
class Gradebook:
    """What ``grade`` found: a row per student (roster order) in ``table``.

    ``table`` columns: student, one column per check (True when the student passes it,
    False when not, empty when the account could not be reached), score ("2/3": checks
    passed of checks run), failing (each failed criterion as "check: criterion", separated
    by "; ") and error (why the account could not be reached). ``result(student, check)``
    is the full result of one check, with what it saw and its hints.
    """

    table: pd.DataFrame
    checks: tuple[str, ...]
    results: dict[str, dict[str, CheckResult]] = field(repr=False)

    @property
    def ok(self) -> bool:
        """True when every student passes every check."""
        return not self.failed

    @property
    def passed(self) -> list[str]:
        """The students who pass every check, in roster order."""
        failed = set(self.failed)
        return [s for s in self.table["student"] if s not in failed]

    @property
    def failed(self) -> list[str]:
        """The students who fail a check or whose account could not be reached."""
        if not self.checks:
            return []
        done = self.table[list(self.checks)].fillna(False).astype(bool).all(axis=1)
        return list(self.table.loc[~done, "student"])

    def result(self, student: str, check: str) -> CheckResult:
        """One student's result of one check (a table with what it saw and the hints)."""
        try:
            return self.results[student][check]
        except KeyError:
            raise ConfigurationError(
                _(
                    "No result of {check!r} for {student!r}: the gradebook has the checks "
                    "{checks} for {students} (a student whose account could not be reached "
                    "has none)."
                ).format(
                    check=check,
                    student=student,
                    checks=", ".join(self.checks),
                    students=", ".join(self.results) or _("nobody"),
                )
            ) from None

    def write(self, out: str | os.PathLike[str] = "runs") -> tuple[Path, Path]:
        """Write ``out/gradebook.csv`` and ``out/gradebook.html``; returns both paths."""
        directory = Path(out)
        directory.mkdir(parents=True, exist_ok=True)
        csv_path, html_path = directory / "gradebook.csv", directory / "gradebook.html"
        self.table.to_csv(csv_path, index=False)
        html_path.write_text(
            '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
            f"<title>{html.escape(_('Gradebook'))}</title>"
            f"</head><body>\n{self._repr_html_()}\n</body></html>\n",
            encoding="utf-8",
        )
        return csv_path, html_path

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in self.table.columns)
        rows = []
        for record in self.table.to_dict("records"):
            cells = []
            for column, value in record.items():
                if column in self.checks:
                    cells.append(_mark(value))
                else:
                    text = "" if pd.isna(value) else str(value)
                    cells.append(f"<td>{html.escape(text)}</td>")
            rows.append(f"<tr>{''.join(cells)}</tr>")
        verdict = (
            _("every student passes every check")
            if self.ok
            else _("{passed} of {students} students pass every check").format(
                passed=len(self.passed), students=len(self.table)
            )
        )
        return (
            f"<div><p><b>{html.escape(verdict)}</b></p><table><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></div>"
        )


def _mark(value: Any) -> str:
    if pd.isna(value):
        return "<td></td>"
    if value:
        label = html.escape(_("passed"))
        return f'<td style="background:#dafbe1;color:#1a7f37">&#10004; {label}</td>'
    label = html.escape(_("not yet"))
    return f'<td style="background:#ffebe9;color:#cf222e">&#10008; {label}</td>'


def check_names(checks: Sequence[str] | str | None = None) -> tuple[str, ...]:
    """The checks to run: every check in exercise order when ``checks`` is None, else the
    names given (in their order, each once). ConfigurationError naming every unknown name
    and listing the checks there are."""
    known = kit_checks.names()
    if checks is None:
        return tuple(known)
    wanted = [checks] if isinstance(checks, str) else list(checks)
    wanted = list(dict.fromkeys(name.strip() for name in wanted if name.strip()))
    if not wanted:
        raise ConfigurationError(
            _("No check given: choose from {checks}.").format(checks=", ".join(known))
        )
    unknown = [name for name in wanted if name not in known]
    if unknown:
        listed = ", ".join(repr(name) for name in unknown)
        raise ConfigurationError(
            _("There is no check called {names}. The checks are: {checks}.").format(
                names=listed, checks=", ".join(known)
            )
        )
    return tuple(wanted)


def grade(
    roster: Roster | str | os.PathLike[str],
    checks: Sequence[str] | str | None = None,
    *,
    parallel: int = DEFAULT_PARALLEL,
    backend: str = "sandbox",
) -> Gradebook:
    """Run ``checks`` (every check by default, see ``handson.checks.names()``) in every
    student's account, ``parallel`` accounts at a time, and return the gradebook.

    Nothing is changed in any account: the checks only read. The roster, the backend and
    the check names are all checked before any account is touched. A student whose
    account cannot be reached gets a row saying so in ``error`` and never stops the
    others; a check that itself breaks counts as not passed, with its error as the
    failing criterion.
    """
    names = check_names(checks)
    check_backend(backend)
    roster = as_roster(roster)

    def run(student: Student) -> tuple[dict[str, Any], dict[str, CheckResult]]:
        row: dict[str, Any] = {"student": student.student, FAILING: "", ERROR: ""}
        try:
            lab = connect(**student.notebook_parameters(backend))  # type: ignore[arg-type]
            lab.account_id  # noqa: B018  (GetCallerIdentity: is the account reachable?)
        except Exception as error:  # reported in the row: one account never stops the class
            reason = _("could not reach the account: {error}").format(error=error_text(error))
            return {**row, ERROR: reason}, {}
        results = grade_lab(lab, names)
        row.update({name: result.passed for name, result in results.items()})
        row[SCORE] = score(results)
        row[FAILING] = failing(results)
        return row, results

    graded = each_student(roster, run, parallel=parallel)
    columns = ["student", *names, SCORE, FAILING, ERROR]
    table = pd.DataFrame([row for row, _found in graded], columns=columns)
    table[list(names)] = table[list(names)].astype("boolean")
    table[SCORE] = table[SCORE].fillna("")
    results = {row["student"]: found for row, found in graded if found}
    return Gradebook(table=table, checks=names, results=results)


def grade_lab(lab: Lab, checks: Sequence[str]) -> dict[str, CheckResult]:
    """Run ``checks`` (names) in one student's account; read-only. A check that raises
    (a bug, an account that stopped answering) becomes a failed result saying so."""
    results = {}
    for name in checks:
        try:
            results[name] = kit_checks.check(lab, name)
        except Exception as error:  # this check only: the student's other checks still run
            title = _(check_base.get(name).title)
            criterion = Criterion(
                _(CHECK_FAILED),
                False,
                error_text(error),
                _(
                    "The check could not read the account; run it again, and if it keeps "
                    "failing run it in the student's notebook: handson.checks.check(lab, name)."
                ),
            )
            results[name] = CheckResult(name, title, (criterion,))
    return results


def score(results: dict[str, CheckResult]) -> str:
    """``"2/3"``: how many of the checks run were passed."""
    return f"{sum(r.passed for r in results.values())}/{len(results)}"


def failing(results: dict[str, CheckResult]) -> str:
    """Every failed criterion as ``check: criterion``, separated by "; "."""
    return "; ".join(f"{name}: {c}" for name, r in results.items() for c in r.failing)
