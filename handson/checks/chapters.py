"""The check at the end of each of chapters 1-6: ``handson.checks.chapter(lab, "01")``.

Chapters 1-5 are checked against what their declaration says the account holds
(``handson.chapters.CHAPTERS``, ``expects``), counted by the same look-ups teardown uses;
chapter 6 builds nothing in AWS, so its check reads the image's Dockerfile. These checks
belong to the lessons, not to the exercises: ``handson grade`` does not run them.
"""

from __future__ import annotations

from pathlib import Path

from botocore.exceptions import ClientError

from handson import chapters, registry
from handson.aws_errors import translate
from handson.checks.base import CheckResult, Criteria
from handson.connection import Lab
from handson.exceptions import HandsonError

__all__ = ["chapter"]

IMAGE = "06"
PORT = 3000
EARLIER = "Run this chapter's cells above again, after the chapters before it."


def chapter(lab: Lab, key: str, *, context: Path = registry.APP_DIR) -> CheckResult:
    """Whether the student's account has what chapter ``key`` builds, tagged for them
    (chapter 6: whether the image's Dockerfile runs the API as the task definition needs).

    Read-only: lists the tagged resources (as teardown's leftovers look-up does).
    """
    declared = chapters.chapter(key)
    criteria = Criteria()
    try:
        if key == IMAGE:
            _image(criteria, context)
        else:
            _inventory(lab, criteria, declared)
    except ClientError as error:
        criteria.expect("what the check reads exists", False, str(translate(error)), EARLIER)
    except HandsonError as error:
        criteria.expect("what the check reads exists", False, str(error), EARLIER)
    return CheckResult(f"chapter-{key}", f"Chapter {key}: {declared.title}", tuple(criteria.items))


def _inventory(lab: Lab, criteria: Criteria, declared: chapters.Chapter) -> None:
    found = chapters.inventory(lab)
    for service, kind, counts in declared.expects:
        right = " or ".join(str(n) for n in counts)
        criteria.expect(
            f"{service} {kind}: {right}",
            found[(service, kind)] in counts,
            found[(service, kind)],
            f"Expected {right} tagged for {lab.student}; run the chapter's cells again "
            "(each step creates only what is missing).",
        )


def _image(criteria: Criteria, context: Path) -> None:
    config = registry.image_config(context)
    criteria.expect(
        "runs as a non-root user",
        config.user not in (None, "root", "0"),
        config.user,
        "Add a USER instruction with an unprivileged user.",
    )
    criteria.expect(
        f"exposes port {PORT}",
        PORT in config.exposed_ports,
        config.exposed_ports,
        f"EXPOSE {PORT}: the task definition's container port.",
    )
    test = " ".join((config.healthcheck or {}).get("test", []))
    criteria.expect(
        "has a HEALTHCHECK on /health",
        "/health" in test,
        test or None,
        "Add HEALTHCHECK ... CMD calling http://127.0.0.1:3000/health.",
    )
    criteria.expect(
        "has a command",
        bool(config.cmd or config.entrypoint),
        [*config.entrypoint, *config.cmd],
        'Add CMD ["python", "main.py"].',
    )
