"""Run one piece of work per student in threads, for a whole class at once.

The work mostly waits on AWS, so threads are enough; each student has a Lab (and boto3
session) of its own, which is what makes them safe to use side by side.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from handson.classroom.roster import Roster, Student
from handson.exceptions import ConfigurationError, HandsonError
from handson.i18n import _

T = TypeVar("T")


def each_student(roster: Roster, work: Callable[[Student], T], *, parallel: int) -> list[T]:
    """``work(student)`` for every student, ``parallel`` at a time; results in roster order.

    ``work`` reports its own failures in what it returns, so that one student's problem
    never stops the others.
    """
    if isinstance(parallel, bool) or not isinstance(parallel, int) or parallel < 1:
        raise ConfigurationError(
            _("parallel={parallel!r}: give a whole number of 1 or more.").format(parallel=parallel)
        )
    if not roster.students:
        return []
    with ThreadPoolExecutor(max_workers=min(parallel, len(roster))) as pool:
        return list(pool.map(work, roster.students))


def error_text(error: BaseException) -> str:
    """An error on one line, for a table cell: the kit's message (with its hint), or the
    type and message of anything else."""
    text = str(error) if isinstance(error, HandsonError) else f"{type(error).__name__}: {error}"
    return " ".join(text.split())
