"""Self-checks for the exercises: ``handson.checks.check(lab, "07-task-definition")``.

A check looks at the learner's own account with boto3, changes nothing, and returns a
:class:`CheckResult`: a green/red table in a notebook (criterion, passed, what it saw,
and a hint when it failed); ``result.passed`` is the verdict. It reads the same on the
sandbox and on real AWS. ``names()`` lists the checks in the order of the exercises.
"""

# Imported in the order of the exercises: each module registers its checks.
from handson.checks import task_definition  # noqa: I001  (order matters)
from handson.checks import service
from handson.checks import break_and_fix
from handson.checks import version2
from handson.checks import scaling
from handson.checks.base import CheckResult, Criterion, check, names
from handson.checks.chapters import chapter

__all__ = [
    "CheckResult",
    "Criterion",
    "break_and_fix",
    "chapter",
    "check",
    "names",
    "scaling",
    "service",
    "task_definition",
    "version2",
]
