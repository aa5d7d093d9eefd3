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
from pathlib import Path
from typing import Any

import pytest

from handson import course, i18n, sandbox
from handson.sandbox.config import environment, private_config

_state: dict[str, Any] = {}


def _is_notebook_cell(item: pytest.Item) -> bool:
    return item.path.suffix == ".ipynb"


def _edition(path: Path) -> str:
    """A notebook's edition: its folder's language for ``notebooks/ja/`` and
    ``solutions/ja/``, else "en"."""
    return path.parent.name if path.parent.name in i18n.LANGUAGES else "en"


def _source(path: Path) -> Path:
    """The English notebook a notebook of either edition is built from."""
    return path.parent.parent / path.name if _edition(path) != "en" else path


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    order = [course.notebook_path(key) for key in course.replay_order()]
    slots = [i for i, item in enumerate(items) if _source(item.path) in order]
    placed = sorted(
        (items[i] for i in slots),
        key=lambda item: (_edition(item.path), order.index(_source(item.path))),
    )
    for i, item in zip(slots, placed, strict=True):
        items[i] = item
    for item in items:
        if _is_notebook_cell(item) and "text/html" not in item.parent.skip_compare:  # type: ignore[attr-defined]
            item.parent.skip_compare = (*item.parent.skip_compare, "text/html")  # type: ignore[attr-defined]
    # The notebooks first, one edition after the other: with pytest-xdist they are the
    # longest units of work, which workers start with while the others take the test files.
    items.sort(key=_run_order)


def _run_order(item: pytest.Item) -> tuple[bool, str]:
    return (False, _edition(item.path)) if _is_notebook_cell(item) else (True, "")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """pytest-xdist (``make test`` runs ``-n``): each test file runs on one worker, so its
    module fixtures are made once, and each edition's notebooks run on one worker, in
    order (each goes on from the account the one before left)."""
    from xdist.scheduler import LoadScopeScheduling

    class ByFile(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            if path.endswith(".ipynb"):
                return f"notebooks ({_edition(Path(path))})"
            return path

    return ByFile(config, log)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if not _is_notebook_cell(item):
        return
    # Each edition runs from an empty sandbox of its own, as a learner's course does.
    if _state.get("edition", _edition(item.path)) != _edition(item.path):
        _stop_sandbox()
    _state["edition"] = _edition(item.path)
    _start_sandbox()
    if _source(item.path).parent == course.SOLUTIONS_DIR and not _state.get("prepared"):
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


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    # After the last notebook cell, its sandbox goes and the environment is as it was, for
    # the tests that run next in this process.
    if _is_notebook_cell(item) and (nextitem is None or not _is_notebook_cell(nextitem)):
        _stop_sandbox()


def pytest_sessionfinish() -> None:
    _stop_sandbox()


def _stop_sandbox() -> None:
    _state.pop("prepared", None)
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
