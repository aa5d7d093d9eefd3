"""Evaluate IAM identity-based policies for one request (action + resource).

The logic follows the IAM evaluation rules for a single account with identity
policies only:

* an explicit ``Deny`` in any matching statement wins;
* otherwise a matching ``Allow`` allows;
* otherwise the request is implicitly denied.

Supported: ``Statement`` as a dict or a list; ``Action``/``NotAction`` and
``Resource``/``NotResource`` as a string or a list; ``*`` and ``?`` wildcards.
Actions match case-insensitively. Resources match case-sensitively; a ``*`` that
ends an ARN segment (before a ``:`` or at the end) may match across colons, any
other ``*`` or ``?`` stays inside one segment (IAM User Guide, "IAM JSON policy
elements: Resource").

Not supported, on purpose:

* ``Condition`` blocks are **ignored**: a statement with a condition is treated as
  if the condition were true. An Allow with a condition therefore allows more than
  on AWS, and a Deny with a condition denies more.
* Policy variables such as ``${aws:username}`` are matched literally.
* Resource policies, permission boundaries, SCPs and session policies.

Statements that lack ``Effect``, an action element or a resource element (which
IAM would reject as malformed) never match.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

__all__ = [
    "ALLOWED",
    "EXPLICIT_DENY",
    "IMPLICIT_DENY",
    "Decision",
    "denied_message",
    "is_allowed",
    "trusts_service",
]


@dataclass(frozen=True)
class Decision:
    """The outcome of evaluating a request against identity policies."""

    allowed: bool
    reason: Literal["allowed", "explicit_deny", "implicit_deny"]


ALLOWED = Decision(True, "allowed")
EXPLICIT_DENY = Decision(False, "explicit_deny")
IMPLICIT_DENY = Decision(False, "implicit_deny")


@lru_cache(maxsize=1024)
def _action_regex(pattern: str) -> re.Pattern[str]:
    parts = [".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern]
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


@lru_cache(maxsize=1024)
def _resource_regex(pattern: str) -> re.Pattern[str]:
    parts: list[str] = []
    for i, ch in enumerate(pattern):
        if ch == "*":
            ends_segment = i + 1 == len(pattern) or pattern[i + 1] == ":"
            parts.append(".*" if ends_segment else "[^:]*")
        elif ch == "?":
            parts.append("[^:]")
        else:
            parts.append(re.escape(ch))
    return re.compile("".join(parts), re.DOTALL)


def _as_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [v for v in value if isinstance(v, str)]
    return []


def _any_action(patterns: Iterable[str], action: str) -> bool:
    return any(_action_regex(p).fullmatch(action) for p in patterns)


def _any_resource(patterns: Iterable[str], resource: str) -> bool:
    return any(_resource_regex(p).fullmatch(resource) for p in patterns)


def _statement_matches(statement: dict[str, Any], action: str, resource: str) -> bool:
    if "Action" in statement:
        action_ok = _any_action(_as_list(statement["Action"]), action)
    elif "NotAction" in statement:
        action_ok = not _any_action(_as_list(statement["NotAction"]), action)
    else:
        return False
    if not action_ok:
        return False
    if "Resource" in statement:
        return _any_resource(_as_list(statement["Resource"]), resource)
    if "NotResource" in statement:
        return not _any_resource(_as_list(statement["NotResource"]), resource)
    return False


def _statements(policy: dict[str, Any]) -> list[dict[str, Any]]:
    raw = policy.get("Statement", [])
    items = raw if isinstance(raw, list) else [raw]
    return [s for s in items if isinstance(s, dict)]


def is_allowed(policies: list[dict[str, Any]], action: str, resource: str) -> Decision:
    """Decide whether identity ``policies`` allow ``action`` on ``resource``.

    ``policies`` are policy documents (``{"Version": ..., "Statement": ...}``).
    Condition blocks are ignored (see the module docstring).
    """
    allowed = False
    for policy in policies:
        for statement in _statements(policy):
            effect = statement.get("Effect")
            if effect not in ("Allow", "Deny"):
                continue
            if not _statement_matches(statement, action, resource):
                continue
            if effect == "Deny":
                return EXPLICIT_DENY
            allowed = True
    return ALLOWED if allowed else IMPLICIT_DENY


def denied_message(principal_arn: str, action: str, resource: str, decision: Decision) -> str:
    """AWS's AccessDenied message for a denied ``decision``.

    Raises ValueError if the decision allows the request.
    """
    head = f"User: {principal_arn} is not authorized to perform: {action} on resource: {resource}"
    if decision.reason == "explicit_deny":
        return f"{head} with an explicit deny in an identity-based policy"
    if decision.reason == "implicit_deny":
        return f"{head} because no identity-based policy allows the {action} action"
    raise ValueError("denied_message() needs a decision that denies the request")


def trusts_service(document: dict[str, Any], service: str) -> bool:
    """Whether a role's trust policy lets ``service`` (e.g. ``ecs-tasks.amazonaws.com``)
    call sts:AssumeRole: an Allow naming the service (or ``*``) and no Deny doing so.
    Conditions are ignored, as in :func:`is_allowed`."""

    def listed(value: Any) -> list[str]:
        return [value] if isinstance(value, str) else list(value or [])

    def matches(statement: dict[str, Any]) -> bool:
        principal = statement.get("Principal")
        named = principal == "*" or (
            isinstance(principal, dict)
            and (service in listed(principal.get("Service")) or "*" in listed(principal.get("AWS")))
        )
        actions = [a.lower() for a in listed(statement.get("Action"))]
        return named and any(a in ("sts:assumerole", "sts:*", "*") for a in actions)

    statements = document.get("Statement") or []
    statements = [statements] if isinstance(statements, dict) else list(statements)
    effects = {str(s.get("Effect")) for s in statements if isinstance(s, dict) and matches(s)}
    return "Allow" in effects and "Deny" not in effects
