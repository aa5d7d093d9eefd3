"""The machinery of the self-checks: criteria, results and the registry of checks.

A check reads the learner's own account with boto3 and changes nothing; it returns a
:class:`CheckResult`, a table of criteria (what was expected, whether it held, what the
check saw, and a hint when it did not) that shows green and red in a notebook.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from botocore.exceptions import ClientError

from handson.aws_errors import translate
from handson.connection import Lab
from handson.exceptions import ConfigurationError, HandsonError
from handson.i18n import N_, _

COLUMNS = ["criterion", "passed", "saw", "hint"]


@dataclass(frozen=True)
class Criterion:
    """One thing a check expects: ``passed`` says whether it holds, ``saw`` what the
    check found in the account, ``hint`` what to do when it does not hold."""

    criterion: str
    passed: bool
    saw: str
    hint: str = ""


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check. ``passed`` is True when every criterion holds."""

    name: str
    title: str
    criteria: tuple[Criterion, ...]

    @property
    def passed(self) -> bool:
        return bool(self.criteria) and all(c.passed for c in self.criteria)

    @property
    def failing(self) -> list[str]:
        """The criteria that do not hold, in order."""
        return [c.criterion for c in self.criteria if not c.passed]

    @property
    def table(self) -> pd.DataFrame:
        """One row per criterion; the hint is shown only where the criterion failed."""
        rows = [
            {
                "criterion": c.criterion,
                "passed": c.passed,
                "saw": c.saw,
                "hint": "" if c.passed else c.hint,
            }
            for c in self.criteria
        ]
        return pd.DataFrame(rows, columns=COLUMNS)

    def __bool__(self) -> bool:
        return self.passed

    def summary(self) -> str:
        """``07-service: 9 of 10 criteria passed`` and the verdict."""
        done = sum(c.passed for c in self.criteria)
        verdict = _("PASSED") if self.passed else _("NOT YET")
        total = len(self.criteria)
        return _("{name} ({title}): {done} of {total} criteria passed: {verdict}").format(
            name=self.name, title=self.title, done=done, total=total, verdict=verdict
        )

    def __repr__(self) -> str:
        lines = [self.summary()]
        for c in self.criteria:
            mark = "ok  " if c.passed else "FAIL"
            lines.append(f"  [{mark}] {c.criterion}: {c.saw}")
            if not c.passed and c.hint:
                lines.append("         " + _("hint: {hint}").format(hint=c.hint))
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        colour = "#1a7f37" if self.passed else "#cf222e"
        headings = "".join(
            f"<th>{html.escape(h)}</th>" for h in (_("criterion"), _("saw"), _("hint"))
        )
        rows = []
        for c in self.criteria:
            background = "#dafbe1" if c.passed else "#ffebe9"
            mark = "&#10004;" if c.passed else "&#10008;"
            hint = "" if c.passed else html.escape(c.hint)
            rows.append(
                f'<tr style="background:{background}"><td>{mark}</td>'
                f"<td>{html.escape(c.criterion)}</td><td><code>{html.escape(c.saw)}</code></td>"
                f"<td>{hint}</td></tr>"
            )
        return (
            f'<div><p style="color:{colour};font-weight:bold">{html.escape(self.summary())}</p>'
            f"<table><thead><tr><th></th>{headings}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></div>"
        )


class Criteria:
    """Collects the criteria of one check run, in the order they are met."""

    def __init__(self) -> None:
        self.items: list[Criterion] = []

    def expect(self, criterion: str, passed: bool, saw: Any, hint: str = "") -> bool:
        """Record one criterion and return whether it held (to skip dependent ones)."""
        self.items.append(Criterion(criterion, bool(passed), _text(saw), hint))
        return bool(passed)

    def equal(self, criterion: str, saw: Any, expected: Any, hint: str = "") -> bool:
        """A criterion that holds when ``saw == expected``."""
        return self.expect(criterion, saw == expected, saw, hint)


def _text(value: Any) -> str:
    if value is None:
        return _("(none)")
    if isinstance(value, (list, tuple, set, frozenset)):
        return ", ".join(str(v) for v in value) or _("(none)")
    return str(value)


CheckFunction = Callable[[Lab, Criteria], None]


@dataclass(frozen=True)
class Check:
    """A named check: its title and the function that adds its criteria."""

    name: str
    title: str
    run: CheckFunction = field(repr=False)


REGISTRY: dict[str, Check] = {}


def register(name: str, title: str) -> Callable[[CheckFunction], CheckFunction]:
    """Decorator: make a function ``(lab, criteria) -> None`` the check ``name``."""

    def decorator(func: CheckFunction) -> CheckFunction:
        REGISTRY[name] = Check(name, title, func)
        return func

    return decorator


def names() -> list[str]:
    """Every check's name, in the order of the exercises."""
    return list(REGISTRY)


def get(name: str) -> Check:
    """The check called ``name`` (ConfigurationError listing the names if unknown)."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ConfigurationError(
            _("There is no check called {name!r}. The checks are: {checks}.").format(
                name=name, checks=", ".join(names())
            )
        ) from None


def check(lab: Lab, name: str) -> CheckResult:
    """Run the check ``name`` on the learner's own account; read-only.

    A look-up the check cannot make (something not built yet) becomes a failed
    criterion with the kit's hint, never an exception.
    """
    found = get(name)
    criteria = Criteria()
    try:
        found.run(lab, criteria)
    except ClientError as error:
        _could_not_read(criteria, translate(error))
    except HandsonError as error:
        _could_not_read(criteria, error)
    return CheckResult(found.name, _(found.title), tuple(criteria.items))


EARLIER_STEPS = N_("Run the earlier steps first (notebook 00, then the exercises in order).")


def _could_not_read(criteria: Criteria, error: HandsonError) -> None:
    hint = str(getattr(error, "hint", "") or _(EARLIER_STEPS))
    criteria.expect(_("what the check reads exists"), False, str(error).split("\n")[0], hint)
