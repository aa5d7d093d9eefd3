"""Progress while waiting: a bar in a notebook, nothing elsewhere.

The bar is an ipywidgets widget updated in place, so a notebook keeps one output for the
whole wait instead of a line per poll.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def service_progress() -> Callable[[dict[str, Any]], None]:
    """A callback that shows running/desired tasks and the rollout state of a service."""
    if not _in_notebook():
        return lambda service: None
    import ipywidgets
    from IPython.display import display

    bar = ipywidgets.IntProgress(value=0, min=0, max=1, description="tasks")
    label = ipywidgets.Label(value="")
    display(ipywidgets.HBox([bar, label]))

    def update(service: dict[str, Any]) -> None:
        primary = service["deployments"][0]
        bar.max = max(service["desiredCount"], 1)
        bar.value = min(primary["runningCount"], bar.max)
        label.value = (
            f"{primary['runningCount']}/{service['desiredCount']} running, "
            f"{service['pendingCount']} pending, rollout {primary.get('rolloutState', '')}"
        )

    return update
