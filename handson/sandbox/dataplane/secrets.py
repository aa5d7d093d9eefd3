"""Secrets in task definitions: parse ``valueFrom``, pick the value, word the failures.

Pure functions only: no AWS calls. The sandbox fetches the secret string itself and
uses this module to

* read a ``secrets[].valueFrom`` reference (docs/sandbox.md, "Secrets in task
  definitions"),
* extract the value the container gets, as the Fargate agent does (a JSON key is
  looked up with Go's ``encoding/json`` and formatted with ``%v``), and
* build the task's ``stoppedReason`` when that fails (docs/sandbox.md, "Task stop codes
  and reasons").
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final, Literal

from handson.sandbox.dataplane.iam_policy import IMPLICIT_DENY, Decision, denied_message

__all__ = [
    "LOG_GROUP_MISSING_REASON",
    "SecretRef",
    "SecretReferenceError",
    "SecretResolutionError",
    "extract_secret_value",
    "go_json_syntax_error",
    "parse_secret_reference",
    "stopped_reason_access_denied",
    "stopped_reason_log_group_missing",
    "stopped_reason_secret_not_found",
    "stopped_reason_secret_value",
]


class SecretReferenceError(ValueError):
    """A ``valueFrom`` string is not a usable Secrets Manager or SSM reference."""


class SecretResolutionError(Exception):
    """The secret was fetched but the value for the container could not be taken from it.

    ``reason`` is the agent's error text, e.g.
    "retrieved secret from Secrets Manager did not contain json key password".
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class SecretRef:
    """A parsed ``valueFrom``.

    For Secrets Manager, ``secret_arn`` is the ARN without the trailing
    ``:json-key:version-stage:version-id`` fields; empty fields become None.
    For SSM (``kind == "ssm"``), ``secret_arn`` is the parameter ARN or name as written.
    """

    secret_arn: str
    json_key: str | None = None
    version_stage: str | None = None
    version_id: str | None = None
    kind: Literal["secretsmanager", "ssm"] = "secretsmanager"


def parse_secret_reference(value_from: str) -> SecretRef:
    """Parse a ``valueFrom`` string (docs/sandbox.md, "Secrets in task definitions").

    Secrets Manager: ``arn:aws:secretsmanager:<region>:<acct>:secret:<name>`` optionally
    followed by ``:<json-key>:<version-stage>:<version-id>`` (all three colons kept).
    SSM: ``arn:aws:ssm:<region>:<acct>:parameter/<name>`` or a bare parameter name.
    Raises SecretReferenceError for anything else.
    """
    if not value_from or value_from != value_from.strip():
        raise SecretReferenceError(f"valueFrom {value_from!r} is empty or has surrounding spaces.")
    if not value_from.startswith("arn:"):
        return SecretRef(secret_arn=value_from, kind="ssm")
    parts = value_from.split(":")
    service = parts[2] if len(parts) > 2 else ""
    if service == "ssm":
        if len(parts) != 6 or not parts[5].startswith("parameter/") or parts[5] == "parameter/":
            raise SecretReferenceError(
                f"valueFrom {value_from!r} is not an SSM parameter ARN "
                "(arn:aws:ssm:<region>:<account>:parameter/<name>)."
            )
        return SecretRef(secret_arn=value_from, kind="ssm")
    if service != "secretsmanager":
        raise SecretReferenceError(
            f"valueFrom {value_from!r} must be a Secrets Manager secret ARN or an SSM parameter."
        )
    if len(parts) < 7 or parts[5] != "secret" or not parts[6]:
        raise SecretReferenceError(
            f"valueFrom {value_from!r} is not a Secrets Manager secret ARN "
            "(arn:aws:secretsmanager:<region>:<account>:secret:<name>)."
        )
    secret_arn = ":".join(parts[:7])
    if len(parts) == 7:
        return SecretRef(secret_arn=secret_arn)
    if len(parts) != 10:
        raise SecretReferenceError(
            f"valueFrom {value_from!r} has {len(parts) - 7} field(s) after the secret name; "
            "write all three (json-key:version-stage:version-id) and leave unused ones "
            f"empty, e.g. {secret_arn}:<json-key>::"
        )
    json_key, stage, version_id = (p or None for p in parts[7:])
    if stage and version_id:
        raise SecretReferenceError(
            f"valueFrom {value_from!r} sets both a version stage and a version id; "
            "they are mutually exclusive, keep one."
        )
    return SecretRef(secret_arn, json_key=json_key, version_stage=stage, version_id=version_id)


# --- Go encoding/json emulation -------------------------------------------------------

_SPACE: Final = frozenset(b" \t\r\n")
_DIGITS: Final = frozenset(b"0123456789")
_HEX: Final = frozenset(b"0123456789abcdefABCDEF")
_ESCAPES: Final = frozenset(b'bfnrt\\/"')
_MAX_DEPTH: Final = 10000
_OBJECT_KEY, _OBJECT_VALUE, _ARRAY_VALUE = range(3)
_GO_MAP_TYPE: Final = "map[string]interface {}"
_NAMED_ESCAPES: Final = {7: "\\a", 8: "\\b", 12: "\\f", 10: "\\n", 13: "\\r", 9: "\\t", 11: "\\v"}
_Step = Callable[[int], bool]


def _quote_char(c: int) -> str:
    """Go's encoding/json quoteChar: the byte as Go's strconv.Quote shows it."""
    if c == ord("'"):
        return "'\\''"
    if c == ord('"'):
        return "'\"'"
    if c == ord("\\"):
        body = "\\\\"
    elif c in _NAMED_ESCAPES:
        body = _NAMED_ESCAPES[c]
    elif c < 0x20 or c == 0x7F:
        body = f"\\x{c:02x}"
    elif c < 0x80 or chr(c).isprintable():
        body = chr(c)  # a byte >= 0x80 is shown as the rune U+0080..U+00FF, as Go does
    else:
        body = f"\\u{c:04x}"
    return f"'{body}'"


class _GoScanner:
    """Port of Go's encoding/json scanner, used only for its syntax error messages."""

    def __init__(self) -> None:
        self.step: _Step = self._begin_value
        self.stack: list[int] = []
        self.end_top = False
        self.err: str | None = None

    def check(self, data: bytes) -> str | None:
        for c in data:
            if not self.step(c):
                return self.err
        return self._eof()

    def _eof(self) -> str | None:
        if self.err is not None:
            return self.err
        if self.end_top:
            return None
        self.step(ord(" "))
        if self.end_top:
            return None
        if self.err is None:
            self.err = "unexpected end of JSON input"
        return self.err

    def _error(self, c: int, context: str) -> bool:
        self.step = self._stop
        self.err = f"invalid character {_quote_char(c)} {context}"
        return False

    def _stop(self, c: int) -> bool:
        return False

    def _push(self, c: int, state: int) -> bool:
        self.stack.append(state)
        if len(self.stack) > _MAX_DEPTH:
            return self._error(c, "exceeded max depth")
        return True

    def _pop(self) -> None:
        self.stack.pop()
        if not self.stack:
            self.step = self._end_top
            self.end_top = True
        else:
            self.step = self._end_value

    def _begin_value_or_empty(self, c: int) -> bool:
        if c in _SPACE:
            return True
        if c == ord("]"):
            return self._end_value(c)
        return self._begin_value(c)

    def _begin_value(self, c: int) -> bool:
        if c in _SPACE:
            return True
        simple = {
            ord('"'): self._in_string,
            ord("-"): self._neg,
            ord("0"): self._zero,
            ord("t"): self._literal("true", 1),
            ord("f"): self._literal("false", 1),
            ord("n"): self._literal("null", 1),
        }
        if c == ord("{"):
            self.step = self._begin_string_or_empty
            return self._push(c, _OBJECT_KEY)
        if c == ord("["):
            self.step = self._begin_value_or_empty
            return self._push(c, _ARRAY_VALUE)
        if c in simple:
            self.step = simple[c]
            return True
        if c in _DIGITS:
            self.step = self._one_to_nine
            return True
        return self._error(c, "looking for beginning of value")

    def _begin_string_or_empty(self, c: int) -> bool:
        if c in _SPACE:
            return True
        if c == ord("}"):
            self.stack[-1] = _OBJECT_VALUE
            return self._end_value(c)
        return self._begin_string(c)

    def _begin_string(self, c: int) -> bool:
        if c in _SPACE:
            return True
        if c == ord('"'):
            self.step = self._in_string
            return True
        return self._error(c, "looking for beginning of object key string")

    def _end_value(self, c: int) -> bool:
        if not self.stack:
            self.step = self._end_top
            self.end_top = True
            return self._end_top(c)
        if c in _SPACE:
            self.step = self._end_value
            return True
        state = self.stack[-1]
        if state == _OBJECT_KEY:
            if c == ord(":"):
                self.stack[-1] = _OBJECT_VALUE
                self.step = self._begin_value
                return True
            return self._error(c, "after object key")
        if state == _OBJECT_VALUE:
            if c == ord(","):
                self.stack[-1] = _OBJECT_KEY
                self.step = self._begin_string
                return True
            if c == ord("}"):
                self._pop()
                return True
            return self._error(c, "after object key:value pair")
        if c == ord(","):
            self.step = self._begin_value
            return True
        if c == ord("]"):
            self._pop()
            return True
        return self._error(c, "after array element")

    def _end_top(self, c: int) -> bool:
        if c not in _SPACE:
            return self._error(c, "after top-level value")
        return True

    def _in_string(self, c: int) -> bool:
        if c == ord('"'):
            self.step = self._end_value
        elif c == ord("\\"):
            self.step = self._in_string_esc
        elif c < 0x20:
            return self._error(c, "in string literal")
        return True

    def _in_string_esc(self, c: int) -> bool:
        if c in _ESCAPES:
            self.step = self._in_string
            return True
        if c == ord("u"):
            self.step = self._hex(4)
            return True
        return self._error(c, "in string escape code")

    def _hex(self, left: int) -> _Step:
        def step(c: int) -> bool:
            if c not in _HEX:
                return self._error(c, "in \\u hexadecimal character escape")
            self.step = self._in_string if left == 1 else self._hex(left - 1)
            return True

        return step

    def _neg(self, c: int) -> bool:
        if c == ord("0"):
            self.step = self._zero
            return True
        if c in _DIGITS:
            self.step = self._one_to_nine
            return True
        return self._error(c, "in numeric literal")

    def _one_to_nine(self, c: int) -> bool:
        if c in _DIGITS:
            return True
        return self._zero(c)

    def _zero(self, c: int) -> bool:
        if c == ord("."):
            self.step = self._dot
            return True
        if c in b"eE":
            self.step = self._exp
            return True
        return self._end_value(c)

    def _dot(self, c: int) -> bool:
        if c in _DIGITS:
            self.step = self._dot_digits
            return True
        return self._error(c, "after decimal point in numeric literal")

    def _dot_digits(self, c: int) -> bool:
        if c in _DIGITS:
            return True
        if c in b"eE":
            self.step = self._exp
            return True
        return self._end_value(c)

    def _exp(self, c: int) -> bool:
        if c in b"+-":
            self.step = self._exp_sign
            return True
        return self._exp_sign(c)

    def _exp_sign(self, c: int) -> bool:
        if c in _DIGITS:
            self.step = self._exp_digits
            return True
        return self._error(c, "in exponent of numeric literal")

    def _exp_digits(self, c: int) -> bool:
        if c in _DIGITS:
            return True
        return self._end_value(c)

    def _literal(self, word: str, pos: int) -> _Step:
        def step(c: int) -> bool:
            want = word[pos]
            if c != ord(want):
                return self._error(c, f"in literal {word} (expecting '{want}')")
            self.step = self._end_value if pos + 1 == len(word) else self._literal(word, pos + 1)
            return True

        return step


def go_json_syntax_error(text: str) -> str | None:
    """The message Go's ``json.Unmarshal`` gives for invalid JSON ``text``, or None if valid.

    E.g. "password" -> "invalid character 'p' looking for beginning of value".
    """
    return _GoScanner().check(text.encode("utf-8"))


def _go_float(literal: str) -> float:
    value = float(literal)
    if math.isinf(value):
        raise SecretResolutionError(
            f"json: cannot unmarshal number {literal} into Go value of type float64"
        )
    return value


def _go_format_float(value: float) -> str:
    """Go's ``fmt.Sprintf("%v", f)`` for a float64 (shortest digits; %e below 1e-4 or from 1e6)."""
    if value == 0:
        return "-0" if math.copysign(1, value) < 0 else "0"
    sign = "-" if value < 0 else ""
    dec = Decimal(repr(abs(value))).normalize()
    _, digit_tuple, exponent = dec.as_tuple()
    assert isinstance(exponent, int)
    digits = "".join(map(str, digit_tuple))
    point = len(digits) + exponent  # decimal point position, as in Go's decimalSlice.dp
    exp = point - 1
    if exp < -4 or exp >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return f"{sign}{digits}{'0' * (point - len(digits))}"
    return f"{sign}{digits[:point]}.{digits[point:]}"


def _go_format(value: Any) -> str:
    """Go's ``%v`` of a value decoded by encoding/json into ``interface{}``."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _go_format_float(value)
    if isinstance(value, list):
        return "[" + " ".join(_go_format(v) for v in value) + "]"
    if isinstance(value, dict):
        items = (f"{k}:{_go_format(value[k])}" for k in sorted(value))
        return "map[" + " ".join(items) + "]"
    return str(value)


def extract_secret_value(secret_string: str, ref: SecretRef) -> str:
    """The value the container receives from ``secret_string`` for ``ref``.

    Without a JSON key the whole string is used. With one, the string is decoded as
    a JSON object as the agent does (``json.Unmarshal`` into ``map[string]interface{}``,
    then ``fmt.Sprintf("%v", value)``, so numbers such as 5432 come out as "5432").
    Raises SecretResolutionError with the agent's error text (docs/sandbox.md, "Task stop
    codes and reasons").
    """
    if ref.json_key is None:
        return secret_string
    syntax_error = go_json_syntax_error(secret_string)
    if syntax_error is not None:
        raise SecretResolutionError(syntax_error)
    decoded = json.loads(secret_string, parse_float=_go_float, parse_int=_go_float)
    if decoded is None:
        decoded = {}  # Go: unmarshalling null into a map leaves it nil; no error
    if not isinstance(decoded, dict):
        kind = {str: "string", float: "number", bool: "bool", list: "array"}[type(decoded)]
        raise SecretResolutionError(
            f"json: cannot unmarshal {kind} into Go value of type {_GO_MAP_TYPE}"
        )
    if ref.json_key not in decoded:
        raise SecretResolutionError(
            f"retrieved secret from Secrets Manager did not contain json key {ref.json_key}"
        )
    return _go_format(decoded[ref.json_key])


# --- stoppedReason strings (docs/sandbox.md, "Task stop codes and reasons") -----------

_ASM_PREFIX: Final = (
    "ResourceInitializationError: unable to pull secrets or registry auth: "
    "execution resource retrieval failed: unable to retrieve secret from asm: "
    "service call has been retried {retries} time(s): "
)
_GET_SECRET_VALUE_ERROR: Final = (
    "failed to fetch secret {secret} from secrets manager: "
    "operation error Secrets Manager: GetSecretValue, "
    "https response error StatusCode: 400, RequestID: {request_id}, {error}"
)
LOG_GROUP_MISSING_REASON: Final = (
    "ResourceInitializationError: failed to validate logger args: create stream has been "
    "retried 1 times: failed to create Cloudwatch log stream: ResourceNotFoundException: "
    "The specified log group does not exist. : exit status 1"
)


def stopped_reason_access_denied(
    secret_arn: str,
    *,
    account_id: str,
    execution_role_name: str,
    task_id: str,
    request_id: str,
    resource_arn: str | None = None,
    decision: Decision = IMPLICIT_DENY,
    retries: int = 1,
) -> str:
    """stoppedReason when the execution role may not call secretsmanager:GetSecretValue.

    ``secret_arn`` is the secret as the task definition names it (without JSON-key
    fields); ``resource_arn`` the secret's full ARN if different; ``request_id`` a UUID.
    Follows the template seen on a real account in ap-northeast-1 in 2026 (docs/sandbox.md,
    "Task stop codes and reasons").
    """
    principal = f"arn:aws:sts::{account_id}:assumed-role/{execution_role_name}/{task_id}"
    message = denied_message(
        principal, "secretsmanager:GetSecretValue", resource_arn or secret_arn, decision
    )
    error = _GET_SECRET_VALUE_ERROR.format(
        secret=secret_arn,
        request_id=request_id,
        error=f"api error AccessDeniedException: {message}",
    )
    return _ASM_PREFIX.format(retries=retries) + error


def stopped_reason_secret_not_found(secret_arn: str, *, request_id: str, retries: int = 1) -> str:
    """stoppedReason when the secret does not exist.

    No real output known: built from the secret template (docs/sandbox.md, "Task stop codes
    and reasons") with the AWS SDK for Go v2 wording for a modelled exception
    ("<Code>: <message>", no "api error").
    """
    error = "ResourceNotFoundException: Secrets Manager can't find the specified secret."
    return _ASM_PREFIX.format(retries=retries) + _GET_SECRET_VALUE_ERROR.format(
        secret=secret_arn, request_id=request_id, error=error
    )


def stopped_reason_secret_value(error: SecretResolutionError, *, retries: int = 1) -> str:
    """stoppedReason when extract_secret_value failed (missing JSON key, not JSON...)."""
    return _ASM_PREFIX.format(retries=retries) + error.reason


def stopped_reason_log_group_missing() -> str:
    """stoppedReason when the awslogs group does not exist and create-group is off."""
    return LOG_GROUP_MISSING_REASON
