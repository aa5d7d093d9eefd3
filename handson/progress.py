"""Progress while waiting: a bar in a notebook, nothing elsewhere.

The bar is an ipywidgets widget updated in place, so a notebook keeps one output for the
whole wait instead of a line per poll. When the wait ends, the final state is printed
as a line of text, so a saved notebook (papermill, nbval, GitHub), where widgets don't run,
shows where the wait ended ("2/2 tasks running, 0 pending, rollout COMPLETED").
"""

from __future__ import annotations

from typing import Any, Protocol

from handson.i18n import _


def in_notebook() -> bool:
    """Whether this runs in a Jupyter kernel (where widgets can be shown)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def service_text(service: dict[str, Any]) -> str:
    """A service's progress in one line: its primary deployment's running tasks of the
    desired count, the pending ones and the rollout state."""
    primary = service["deployments"][0]
    # The rollout state is AWS's own (COMPLETED, IN_PROGRESS, FAILED): never translated.
    return _("{running}/{desired} tasks running, {pending} pending, rollout {state}").format(
        running=primary["runningCount"],
        desired=service["desiredCount"],
        pending=service["pendingCount"],
        state=primary.get("rolloutState", ""),
    )


class Progress(Protocol):
    """Told the service at each poll of a wait, and once more with ``final`` when it ends."""

    def __call__(self, service: dict[str, Any], *, final: bool = False) -> None: ...


def silent(service: dict[str, Any], *, final: bool = False) -> None:
    """Progress that shows nothing."""


class _LiveOutput:
    """A widget shown live, with a plain-text stand-in for where widgets don't run."""

    def __init__(self, widget: Any, text: str) -> None:
        self.widget = widget
        self.text = text

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle = dict(self.widget._repr_mimebundle_(**kwargs) or {})
        bundle["text/plain"] = self.text
        return bundle


def service_progress() -> Progress:
    """A bar of running/desired tasks with the rollout state, updated at each poll; when
    the wait ends, the final state as a line of text (what a saved notebook keeps)."""
    if not in_notebook():
        return silent
    import ipywidgets
    from IPython.display import display

    bar = ipywidgets.IntProgress(value=0, min=0, max=1, description=_("tasks"))
    label = ipywidgets.Label(value="")
    display(
        _LiveOutput(ipywidgets.HBox([bar, label]), _("(a live bar of the tasks while it waits)"))
    )

    def update(service: dict[str, Any], *, final: bool = False) -> None:
        bar.max = max(service["desiredCount"], 1)
        bar.value = min(service["deployments"][0]["runningCount"], bar.max)
        label.value = service_text(service)
        if final:
            print(label.value)

    return update
