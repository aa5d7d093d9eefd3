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
from handson.i18n import N_, _

__all__ = ["chapter"]

IMAGE = "06"
PORT = 3000
EARLIER = N_("Run this chapter's cells above again, after the chapters before it.")


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
        criteria.expect(_("what the check reads exists"), False, str(translate(error)), _(EARLIER))
    except HandsonError as error:
        criteria.expect(_("what the check reads exists"), False, str(error), _(EARLIER))
    # The chapter's title is a message of handson.chapters' table (N_() there).
    title = _("Chapter {key}: {title}").format(key=key, title=_(declared.title))
    return CheckResult(f"chapter-{key}", title, tuple(criteria.items))


def _inventory(lab: Lab, criteria: Criteria, declared: chapters.Chapter) -> None:
    found = chapters.inventory(lab)
    for service, kind, counts in declared.expects:
        right = _(" or ").join(str(n) for n in counts)
        # The look-up's own names (as teardown's leftovers name them) and the counts.
        criterion = f"{service} {kind}: {right}"
        criteria.expect(
            criterion,
            found[(service, kind)] in counts,
            found[(service, kind)],
            _(
                "Expected {counts} tagged for {student}; run the chapter's cells again "
                "(each step creates only what is missing)."
            ).format(counts=right, student=lab.student),
        )


def _image(criteria: Criteria, context: Path) -> None:
    config = registry.image_config(context)
    criteria.expect(
        _("runs as a non-root user"),
        config.user not in (None, "root", "0"),
        config.user,
        _("Add a USER instruction with an unprivileged user."),
    )
    criteria.expect(
        _("exposes port {port}").format(port=PORT),
        PORT in config.exposed_ports,
        config.exposed_ports,
        _("EXPOSE {port}: the task definition's container port.").format(port=PORT),
    )
    test = " ".join((config.healthcheck or {}).get("test", []))
    criteria.expect(
        _("has a HEALTHCHECK on /health"),
        "/health" in test,
        test or None,
        _("Add HEALTHCHECK ... CMD calling http://127.0.0.1:3000/health."),
    )
    criteria.expect(
        _("has a command"),
        bool(config.cmd or config.entrypoint),
        [*config.entrypoint, *config.cmd],
        _('Add CMD ["python", "main.py"].'),
    )
