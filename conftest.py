"""nbval for the course and solution notebooks: a private sandbox for their kernels,
text/plain only.

The kernels inherit this process's environment when they start, so the sandbox's
settings are put in place just before the first notebook cell runs (before nbval starts
the kernel). Before the first solution notebook, notebook 00 runs for the solutions'
student, as a learner runs it before the exercises (``make outputs`` does the same).
pandas' HTML tables change between pandas versions: only ``text/plain`` is compared
(nbval compares every MIME type it is not told to skip). The course notebooks run in
``course.replay_order()`` (chapters 1-6's lessons after 99), as ``make outputs`` runs them.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

import pytest

from handson import course, sandbox
from handson.sandbox.config import environment, private_config

_state: dict[str, Any] = {}


def _is_notebook_cell(item: pytest.Item) -> bool:
    return item.path.suffix == ".ipynb"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    order = [course.notebook_path(key) for key in course.replay_order()]
    slots = [i for i, item in enumerate(items) if item.path in order]
    placed = sorted((items[i] for i in slots), key=lambda item: order.index(item.path))
    for i, item in zip(slots, placed, strict=True):
        items[i] = item
    for item in items:
        if _is_notebook_cell(item) and "text/html" not in item.parent.skip_compare:  # type: ignore[attr-defined]
            item.parent.skip_compare = (*item.parent.skip_compare, "text/html")  # type: ignore[attr-defined]


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if not _is_notebook_cell(item):
        return
    _start_sandbox()
    if item.path.parent == course.SOLUTIONS_DIR and not _state.get("prepared"):
        _state["prepared"] = True
        course.prepare_solutions()


def _start_sandbox() -> None:
    if "config" in _state:
        return
    # The same seed as `make outputs`, so most ids repeat; sanitize.cfg covers the rest.
    config = private_config(seed=7)
    variables = environment(config)
    _state["config"] = config
    _state["environ"] = {k: os.environ.get(k) for k in variables}
    os.environ.update(variables)
    sandbox.start(config)


def pytest_sessionfinish() -> None:
    config = _state.pop("config", None)
    if config is None:
        return
    sandbox.stop(config)
    shutil.rmtree(config.home, ignore_errors=True)
    for key, value in _state.pop("environ").items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
