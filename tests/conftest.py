"""Session fixtures: one private sandbox for the whole test run; no real AWS.

The sandbox runs in its own HANDSON_HOME on free ports (set in the environment for the
session, so ``handson.connect()`` finds it), never the developer's own sandbox.
"""

from __future__ import annotations

import functools
import importlib.util
import itertools
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from handson import sandbox
from handson.sandbox.config import SandboxConfig, environment, private_config

_students = itertools.count(1)
TOOLS_DIR = Path(__file__).resolve().parents[1] / "tools"


@functools.cache
def _load_tool(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, TOOLS_DIR / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def lab_overrides() -> Iterator[Path]:
    """The kit environment's JupyterLab defaults (``handson lab --lang`` writes them),
    put back as they were after the test."""
    from handson.terminal import LAB_OVERRIDES

    saved = LAB_OVERRIDES.read_bytes() if LAB_OVERRIDES.is_file() else None
    yield LAB_OVERRIDES
    if saved is None:
        LAB_OVERRIDES.unlink(missing_ok=True)
    else:
        LAB_OVERRIDES.write_bytes(saved)


@pytest.fixture(scope="session")
def tool() -> Callable[[str], ModuleType]:
    """A maintainer's script of tools/ (not a package) as a module: ``tool("editions")``."""
    return _load_tool


@pytest.fixture(autouse=True, scope="session")
def _no_real_aws() -> Iterator[None]:
    """No test can reach a real account: credentials are fake, profiles are ignored.

    Session-wide, so that module- and session-scoped fixtures are covered too.
    """
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("AWS_"):
                patch.delenv(name)
        patch.setenv("AWS_ACCESS_KEY_ID", "testing")
        patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        patch.setenv("AWS_DEFAULT_REGION", "ap-northeast-1")
        patch.setenv("AWS_CONFIG_FILE", os.devnull)
        patch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
        yield


@pytest.fixture(scope="session")
def sandbox_config() -> Iterator[SandboxConfig]:
    # Control-plane states are instant here; the notebooks (nbval) and
    # tests/sandbox/test_control_time.py run them with their scaled AWS durations.
    config = private_config(control_speed=0)
    variables = environment(config)
    saved = {k: os.environ.get(k) for k in variables}
    os.environ.update(variables)
    yield config
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def sandbox_server(sandbox_config: SandboxConfig) -> Iterator[sandbox.SandboxStatus]:
    status = sandbox.start(sandbox_config)
    try:
        yield status
    finally:
        sandbox.stop(sandbox_config)
        shutil.rmtree(sandbox_config.home, ignore_errors=True)


@pytest.fixture
def make_lab(sandbox_server: sandbox.SandboxStatus) -> Callable[..., object]:
    """``make_lab(**options)``: connect() to a new student's sandbox account."""
    from handson.connection import connect

    def factory(**options: object) -> object:
        options.setdefault("student", f"test-student-{next(_students):03d}")
        return connect("sandbox", **options)  # type: ignore[arg-type]

    return factory


@pytest.fixture
def lab(make_lab: Callable[..., object]) -> object:
    """A new student's sandbox account, empty."""
    return make_lab()
