"""How the kit's tables show in a notebook: whole values, never cut with "...", and
headed in the learner's language.

pandas cuts every cell at 50 characters by default, which cuts the lessons themselves
(stopped reasons, service events, hints, CLI commands). ``import handson`` applies these
options once for the learner's kernel.

A view's DataFrame keeps its column names (``table[["stopped_reason"]]`` works in every
edition); in Japanese its HTML table is headed ``停止理由 (stopped_reason)``: what the
column means, and the name to write in code.
"""

from __future__ import annotations

import pandas as pd

from handson.i18n import N_, _
from handson.progress import in_notebook

OPTIONS = {
    "display.max_colwidth": None,  # whole values
    "display.max_rows": 200,
    "display.max_columns": None,
    "display.width": 200,
}

# The columns of the kit's views (their names in code), each a message of the catalog.
HEADINGS = frozenset(
    {
        N_("action"),
        N_("alb_health"),
        N_("answer"),
        N_("arn"),
        N_("attached policies"),
        N_("availability_zone"),
        N_("body"),
        N_("bytes"),
        N_("chapter"),
        N_("check"),
        N_("checks"),
        N_("class"),
        N_("column"),
        N_("command"),
        N_("cpu"),
        N_("criterion"),
        N_("db name"),
        N_("deployment"),
        N_("deployment_running"),
        N_("description"),
        N_("desired"),
        N_("details"),
        N_("digest"),
        N_("dstaddr"),
        N_("dstport"),
        N_("end"),
        N_("endpoint"),
        N_("engine"),
        N_("error"),
        N_("failed"),
        N_("failed_tasks"),
        N_("failing"),
        N_("failing_cell"),
        N_("first_at_s"),
        N_("first_seen_s"),
        N_("healthy_targets"),
        N_("hint"),
        N_("id"),
        N_("id / value"),
        N_("identifier"),
        N_("in"),
        N_("inline policies"),
        N_("interface_id"),
        N_("item"),
        N_("kind"),
        N_("last_at_s"),
        N_("last_status"),
        N_("leftovers"),
        N_("line"),
        N_("log_status"),
        N_("memory (MiB)"),
        N_("message"),
        N_("method"),
        N_("name"),
        N_("notebook"),
        N_("output"),
        N_("packets"),
        N_("passed"),
        N_("path"),
        N_("pending"),
        N_("port"),
        N_("private_dns"),
        N_("private_ip"),
        N_("problem"),
        N_("protocol"),
        N_("pushed_at"),
        N_("quantity"),
        N_("reason"),
        N_("registered_targets"),
        N_("requests"),
        N_("resource"),
        N_("role"),
        N_("rollout"),
        N_("rollout_state"),
        N_("running"),
        N_("saw"),
        N_("score"),
        N_("service"),
        N_("setting"),
        N_("size"),
        N_("srcaddr"),
        N_("srcport"),
        N_("start"),
        N_("state"),
        N_("status"),
        N_("step"),
        N_("stop_code"),
        N_("stopped_reason"),
        N_("stream"),
        N_("student"),
        N_("students"),
        N_("tags"),
        N_("target"),
        N_("task"),
        N_("task_definition"),
        N_("time"),
        N_("type"),
        N_("usd_per_hour"),
        N_("usd_per_month"),
        N_("value"),
        N_("vcpu"),
        N_("version"),
        N_("way out"),
        N_("zones"),
    }
)


def headed(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with its kit columns headed in the learner's language, the name in code
    after it (``停止理由 (stopped_reason)``); itself in English."""
    names = {
        column: f"{_(column)} ({column})"
        for column in table.columns
        if isinstance(column, str) and column in HEADINGS and _(column) != column
    }
    return table.rename(columns=names) if names else table


def _html(table: pd.DataFrame) -> str | None:
    return headed(table)._repr_html_()


def apply() -> None:
    """Set the kit's pandas display options, and in a notebook head its tables' HTML in
    the learner's language (idempotent)."""
    for name, value in OPTIONS.items():
        pd.set_option(name, value)
    if in_notebook():  # the CLI and scripts print plain pandas tables
        from IPython import get_ipython

        get_ipython().display_formatter.formatters["text/html"].for_type(pd.DataFrame, _html)
