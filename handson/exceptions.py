"""Exceptions raised by the handson kit.

Every error the kit raises on purpose derives from ``HandsonError``::

    HandsonError
    ├── ConfigurationError      bad input from the learner, found before any AWS call
    │   ├── FargateSizeError    cpu/memory pair that Fargate does not offer
    │   └── RosterError         a class roster CSV with bad rows; ``problems`` lists them all
    ├── SandboxError            local sandbox lifecycle: busy port, stale state, not running
    ├── DeploymentError         an ECS deployment failed (circuit breaker), with the reasons
    ├── WaitTimeoutError        waiting for a state took longer than allowed
    ├── DockerError             docker login/build/push failed (its output is in the message)
    └── AwsError                an AWS (or sandbox) API call failed; has code/operation/hint
        └── NotFoundError       the named resource does not exist

Catch ``HandsonError`` to handle anything the kit reports; catch a subclass to
handle one kind of problem.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "AwsError",
    "ConfigurationError",
    "DeploymentError",
    "DockerError",
    "FargateSizeError",
    "HandsonError",
    "NotFoundError",
    "RosterError",
    "RosterProblem",
    "SandboxError",
    "WaitTimeoutError",
]


class HandsonError(Exception):
    """Base class of every error the kit raises on purpose."""


class ConfigurationError(HandsonError):
    """The learner's input is wrong; detected before any AWS call is made."""


class FargateSizeError(ConfigurationError):
    """The task cpu/memory pair is not a Fargate task size."""


@dataclass(frozen=True)
class RosterProblem:
    """One thing wrong in a roster: the file's line (1 is the header, 0 the file itself),
    the column concerned ("" for the whole row or file) and what to fix."""

    line: int
    column: str
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line else "file"
        return (
            f"{where}, {self.column}: {self.message}" if self.column else f"{where}: {self.message}"
        )


class RosterError(ConfigurationError):
    """A class roster can't be used; ``problems`` lists every bad row (not just the first),
    found before any account is touched."""

    def __init__(self, path: str, problems: list[RosterProblem]) -> None:
        lines = "\n".join(f"  {p}" for p in problems)
        count = f"{len(problems)} problem" + ("s" if len(problems) != 1 else "")
        super().__init__(f"The roster {path} has {count}:\n{lines}")
        self.path = path
        self.problems = problems


class SandboxError(HandsonError):
    """The local sandbox cannot be started, used or stopped (port busy, stale state...)."""


class AwsError(HandsonError):
    """An AWS API call failed.

    ``code`` is the AWS error code (e.g. ``ClientException``), ``operation`` the API
    operation (e.g. ``RegisterTaskDefinition``) and ``hint`` what the learner should
    check next (may be empty).
    """

    def __init__(self, message: str, *, code: str, operation: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.operation = operation
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\nHint: {self.hint}" if self.hint else self.message

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, code={self.code!r}, "
            f"operation={self.operation!r}, hint={self.hint!r})"
        )


class NotFoundError(AwsError):
    """The resource named in an AWS call does not exist."""


class DeploymentError(HandsonError):
    """An ECS deployment failed (e.g. the circuit breaker tripped): the message lists the
    stopped tasks' reasons and what to check."""


class WaitTimeoutError(HandsonError):
    """Waiting for AWS to reach a state took longer than allowed."""


class DockerError(HandsonError):
    """A ``docker login``, ``build`` or ``push`` failed; the message has Docker's output."""
