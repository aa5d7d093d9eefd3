"""Sandbox settings, read at call time from ``HANDSON_*`` environment variables.

Precedence: built-in defaults < environment < explicit arguments.
"""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from handson.exceptions import SandboxError
from handson.home import kit_home
from handson.i18n import _

DEFAULT_PORT = 5454
DEFAULT_ALB_PORT = 5455
# AWS's intervals (30 s health checks, 300 s draining, ...) run this many times faster.
# 20 brings a new 2-task service to steady state in about 3 s; 1 gives AWS timing.
DEFAULT_SPEED = 20.0
# The control plane's asynchronous states (an RDS instance "creating", a NAT gateway
# "pending", a task's network interface released after it stopped, ...) last AWS's
# typical durations divided by the control speed. By default it is this many times the
# speed (200 at speed 20: an RDS instance is available in about 2 s), and 1 at speed 1,
# AWS timing; 0 makes them instant.
CONTROL_SPEED_FACTOR = 10.0
# How the data plane uses the loopback interface (README.md, "The sandbox"): "many" gives
# every task and database an address of its own (127.x.y.z, as Linux has them), "single"
# puts them all on 127.0.0.1 with ports of their own (macOS has only that address unless
# aliases are added), "auto" takes "many" where the machine can and "single" elsewhere.
LOOPBACK_MODES = ("auto", "many", "single")


def default_control_speed(speed: float) -> float:
    """The control speed that goes with ``speed`` when none is set."""
    return 1.0 if speed <= 1.0 else speed * CONTROL_SPEED_FACTOR


@dataclass(frozen=True)
class SandboxConfig:
    """Where the sandbox keeps its state and how it runs."""

    home: Path
    port: int = DEFAULT_PORT
    alb_port: int = DEFAULT_ALB_PORT
    speed: float = DEFAULT_SPEED
    seed: int | None = None
    control_speed: float | None = None  # None: default_control_speed(speed)
    loopback: str = "auto"  # one of LOOPBACK_MODES

    @property
    def effective_control_speed(self) -> float:
        if self.control_speed is None:
            return default_control_speed(self.speed)
        return self.control_speed

    @property
    def state_dir(self) -> Path:
        return self.home / "sandbox"

    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "server.log"

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def with_options(self, **options: object) -> SandboxConfig:
        """A copy with the options that are not None applied."""
        return replace(self, **{k: v for k, v in options.items() if v is not None})


def loopback_setting(env: Mapping[str, str] | None = None) -> str:
    """``HANDSON_SANDBOX_LOOPBACK`` from ``env`` (the environment by default), checked."""
    value = (env if env is not None else os.environ).get("HANDSON_SANDBOX_LOOPBACK", "")
    value = value.strip().lower() or "auto"
    if value not in LOOPBACK_MODES:
        raise SandboxError(
            _(
                "HANDSON_SANDBOX_LOOPBACK={value!r} is not a loopback mode; use one of "
                "{modes} (auto, the default, picks many where the machine "
                "has loopback addresses besides 127.0.0.1, else single)."
            ).format(value=value, modes=", ".join(LOOPBACK_MODES))
        )
    return value


def load_config(**overrides: object) -> SandboxConfig:
    """Build the settings from the environment, then apply explicit overrides."""
    env = os.environ
    home = kit_home()
    seed = env.get("HANDSON_SANDBOX_SEED")
    control = env.get("HANDSON_SANDBOX_CONTROL_SPEED")
    config = SandboxConfig(
        home=home,
        port=int(env.get("HANDSON_SANDBOX_PORT", DEFAULT_PORT)),
        alb_port=int(env.get("HANDSON_SANDBOX_ALB_PORT", DEFAULT_ALB_PORT)),
        speed=float(env.get("HANDSON_SANDBOX_SPEED", DEFAULT_SPEED)),
        seed=int(seed) if seed else None,
        control_speed=float(control) if control else None,
        loopback=loopback_setting(env),
    )
    return config.with_options(**overrides)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def private_config(
    *, seed: int | None = None, speed: float = DEFAULT_SPEED, control_speed: float | None = None
) -> SandboxConfig:
    """A sandbox of its own: a new HANDSON_HOME and free ports, for tests and for
    refreshing notebook outputs without touching the learner's sandbox. The loopback mode
    comes from the environment, as it depends on the machine."""
    home = Path(tempfile.mkdtemp(prefix="handson-"))
    # PostgreSQL runs as an unprivileged user when the sandbox runs as root: that user
    # must be able to reach the state directory.
    home.chmod(0o755)
    return SandboxConfig(
        home=home,
        port=free_port(),
        alb_port=free_port(),
        speed=speed,
        seed=seed,
        control_speed=control_speed,
        loopback=loopback_setting(),
    )


def environment(config: SandboxConfig) -> dict[str, str]:
    """The environment variables that point ``handson.connect()`` at ``config``'s sandbox."""
    variables = {
        "HANDSON_HOME": str(config.home),
        "HANDSON_SANDBOX_PORT": str(config.port),
        "HANDSON_SANDBOX_ALB_PORT": str(config.alb_port),
        "HANDSON_SANDBOX_SPEED": str(config.speed),
    }
    if config.seed is not None:
        variables["HANDSON_SANDBOX_SEED"] = str(config.seed)
    if config.control_speed is not None:
        variables["HANDSON_SANDBOX_CONTROL_SPEED"] = str(config.control_speed)
    if config.loopback != "auto":
        variables["HANDSON_SANDBOX_LOOPBACK"] = config.loopback
    return variables
