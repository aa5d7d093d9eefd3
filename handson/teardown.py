"""Delete everything the kit made for a student, then prove nothing tagged is left.

The chapters' deletes run in reverse (the service before the cluster and the target group,
the ALB before the subnets, the NAT gateways before their Elastic IPs, ...), as each
chapter declares them (:data:`handson.chapters.CHAPTERS`). Every step is idempotent, so a
teardown that was interrupted can simply be run again.
"""

from __future__ import annotations

import pandas as pd

from handson.aws_errors import aws_errors
from handson.chapters import CHAPTERS
from handson.connection import Lab
from handson.i18n import _


def teardown(lab: Lab) -> pd.DataFrame:
    """Delete the student's resources, the last chapter's first; a row per step."""
    rows = []
    for chapter in reversed(CHAPTERS):
        for label, delete in chapter.deletes:
            delete(lab)
            rows.append({"step": _(label), "status": _("deleted")})
    return pd.DataFrame(rows)


def leftovers(lab: Lab) -> pd.DataFrame:
    """Everything still tagged for this student, chapter by chapter (empty when clean).

    Reads EC2, ELBv2, ECS, ECR, CloudWatch Logs, IAM, Secrets Manager and RDS.
    """
    rows: list[dict[str, str]] = []
    with aws_errors("leftovers"):
        for chapter in CHAPTERS:
            for finder in chapter.leftovers:
                rows += [
                    {"service": service, "kind": kind, "id": rid}
                    for service, kind, rid in finder(lab)
                ]
    return pd.DataFrame(rows, columns=["service", "kind", "id"])
