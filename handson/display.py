"""How the kit's tables show in a notebook: whole values, never cut with "...".

pandas cuts every cell at 50 characters by default, which cuts the lessons themselves
(stopped reasons, service events, hints, CLI commands). ``import handson`` applies these
options once for the learner's kernel.
"""

from __future__ import annotations

import pandas as pd

OPTIONS = {
    "display.max_colwidth": None,  # whole values
    "display.max_rows": 200,
    "display.max_columns": None,
    "display.width": 200,
}


def apply() -> None:
    """Set the kit's pandas display options (idempotent)."""
    for name, value in OPTIONS.items():
        pd.set_option(name, value)
