"""Fargate task sizes: the valid cpu/memory pairs and AWS's messages for wrong ones.

The Linux table, 74 pairs, and the ClientException messages (docs/sandbox.md, "Fargate task
sizes").
Windows tasks only support the 1024/2048/4096 rows; this module checks Linux sizes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import Decimal
from types import MappingProxyType
from typing import Final

import pandas as pd

from handson.exceptions import FargateSizeError
from handson.i18n import _

__all__ = [
    "FARGATE_TASK_SIZES",
    "INVALID_CPU_MESSAGE",
    "MISSING_CPU_MESSAGE",
    "MISSING_MEMORY_MESSAGE",
    "NO_CONFIGURATION_MESSAGE",
    "VALID_CPU",
    "check_task_size",
    "explain_size",
    "parse_cpu",
    "parse_memory",
    "register_error",
    "valid_memory",
    "vcpu_label",
]


def _steps(low: int, high: int, step: int) -> tuple[int, ...]:
    return tuple(range(low, high + 1, step))


# cpu units -> allowed task memory in MiB, Linux (docs/sandbox.md, "Fargate task sizes").
FARGATE_TASK_SIZES: Final = MappingProxyType(
    {
        256: (512, 1024, 2048),
        512: _steps(1024, 4096, 1024),
        1024: _steps(2048, 8192, 1024),
        2048: _steps(4096, 16384, 1024),
        4096: _steps(8192, 30720, 1024),
        8192: _steps(16384, 61440, 4096),  # needs Linux platform >= 1.4.0
        16384: _steps(32768, 122880, 8192),  # needs Linux platform >= 1.4.0
    }
)
VALID_CPU: Final[tuple[int, ...]] = tuple(FARGATE_TASK_SIZES)

# ClientException messages of RegisterTaskDefinition (docs/sandbox.md, "Fargate task sizes").
INVALID_CPU_MESSAGE: Final = "Invalid 'cpu' setting for task."
NO_CONFIGURATION_MESSAGE: Final = "No Fargate configuration exists for given values."
# As seen on real accounts: AWS outputs quoted in public issue threads
# (hashicorp/terraform-provider-aws#6879, mongodb/terraform-aws-ecs-task-definition#38
# for cpu; aws/amazon-ecs-cli#982 for memory).
MISSING_CPU_MESSAGE: Final = "Fargate requires that 'cpu' be defined at the task level."
MISSING_MEMORY_MESSAGE: Final = "Fargate requires that 'memory' be defined at the task level."

_CPU_UNITS_PER_VCPU: Final = 1024
_MIB_PER_GB: Final = 1024
_VCPU_RE: Final = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)\s*vcpu$", re.IGNORECASE)
_GB_RE: Final = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)\s*gb$", re.IGNORECASE)
_INT_RE: Final = re.compile(r"^\d+$")


def vcpu_label(cpu: int) -> str:
    """Return the vCPU form AWS uses in its table, e.g. 256 -> ".25 vCPU"."""
    text = format(Decimal(cpu) / _CPU_UNITS_PER_VCPU, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    if text.startswith("0."):
        text = text[1:]
    return f"{text} vCPU"


def valid_memory(cpu: int) -> list[int]:
    """Memory sizes (MiB) Fargate allows with ``cpu`` units; empty if cpu is not valid."""
    return list(FARGATE_TASK_SIZES.get(cpu, ()))


def _scaled(value: str | int, what: str, pattern: re.Pattern[str], factor: int) -> int:
    """Parse an integer, or a number with a unit (scaled by ``factor``), into an int."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise FargateSizeError(_unreadable(what, value))
    if isinstance(value, int):
        number = Decimal(value)
    else:
        text = value.strip()
        match = pattern.match(text)
        if _INT_RE.match(text):
            number = Decimal(text)
        elif match:
            number = Decimal(match.group(1)) * factor
        else:
            raise FargateSizeError(_unreadable(what, value))
    if number <= 0 or number != number.to_integral_value():
        raise FargateSizeError(_unreadable(what, value))
    return int(number)


def _unreadable(what: str, value: object) -> str:
    if what == "cpu":
        examples = _('CPU units such as 256 or "1024", or vCPUs such as "1 vCPU" or ".25 vCPU"')
    else:
        examples = _('MiB such as 512 or "2048", or GB such as "1GB" or "2 GB"')
    return _("Cannot read {value!r} as a Fargate {what} value. Write it in {examples}.").format(
        value=value, what=what, examples=examples
    )


def parse_cpu(value: str | int) -> int:
    """Convert a task cpu value to CPU units: 256, "256", "1 vCPU", ".25 vCPU", "0.5 vcpu".

    Raises FargateSizeError if the value cannot be read (it does not check the table).
    """
    return _scaled(value, "cpu", _VCPU_RE, _CPU_UNITS_PER_VCPU)


def parse_memory(value: str | int) -> int:
    """Convert a task memory value to MiB: 512, "512" (MiB), "1GB", "1 GB", "0.5 GB".

    Raises FargateSizeError if the value cannot be read (it does not check the table).
    """
    return _scaled(value, "memory", _GB_RE, _MIB_PER_GB)


def _join_or(values: list[int]) -> str:
    words = [str(v) for v in values]
    if len(words) == 1:
        return words[0]
    return _("{values} or {last}").format(values=", ".join(words[:-1]), last=words[-1])


def _memory_choices(cpu: int) -> str:
    allowed = valid_memory(cpu)
    if len(allowed) <= 4:
        return f"{_join_or(allowed)} MiB"
    step = allowed[1] - allowed[0]
    return _("any multiple of {step} from {low} to {high} MiB ({low_gb} to {high_gb} GB)").format(
        step=step,
        low=allowed[0],
        high=allowed[-1],
        low_gb=allowed[0] // _MIB_PER_GB,
        high_gb=allowed[-1] // _MIB_PER_GB,
    )


def check_task_size(cpu: str | int, memory: str | int) -> tuple[int, int]:
    """Parse and validate a Fargate task size; return ``(cpu_units, memory_mib)``.

    Raises FargateSizeError with a message that says which values would work.
    """
    cpu_units = parse_cpu(cpu)
    if cpu_units not in FARGATE_TASK_SIZES:
        choices = ", ".join(f"{c} ({vcpu_label(c)})" for c in VALID_CPU)
        raise FargateSizeError(
            _(
                "Fargate has no task size with {cpu} CPU units. "
                "The cpu value must be one of: {choices}."
            ).format(cpu=cpu_units, choices=choices)
        )
    memory_mib = parse_memory(memory)
    if memory_mib not in FARGATE_TASK_SIZES[cpu_units]:
        message = _(
            "Fargate has no task size with {cpu} CPU units and {memory} MiB "
            "of memory. With {cpu} CPU units ({vcpu}) the memory "
            "can be {choices}."
        ).format(
            cpu=cpu_units,
            memory=memory_mib,
            vcpu=vcpu_label(cpu_units),
            choices=_memory_choices(cpu_units),
        )
        cpus_for_memory = [c for c, mems in FARGATE_TASK_SIZES.items() if memory_mib in mems]
        if cpus_for_memory:
            message += _(" To keep {memory} MiB, set cpu to {cpus}.").format(
                memory=memory_mib, cpus=_join_or(cpus_for_memory)
            )
        raise FargateSizeError(message)
    return cpu_units, memory_mib


def explain_size(cpu: str | int, memory: str | int) -> str:
    """Say whether Fargate offers this cpu/memory pair, and if not, which values would
    work (the message :func:`check_task_size` raises), without raising."""
    try:
        cpu_units, memory_mib = check_task_size(cpu, memory)
    except FargateSizeError as error:
        return str(error)
    return _("{cpu} CPU units ({vcpu}) with {memory} MiB is a Fargate task size.").format(
        cpu=cpu_units, vcpu=vcpu_label(cpu_units), memory=memory_mib
    )


def register_error(cpu: str | int | None, memory: str | int | None) -> str | None:
    """The ClientException message RegisterTaskDefinition gives a FARGATE task, or None.

    ``None`` for cpu or memory means the task-level field is missing. Follows the
    practical reading of AWS's two messages (docs/sandbox.md, "Fargate task sizes"): an
    unknown cpu gives "Invalid 'cpu' setting for task."; a valid cpu with a memory it does not allow
    gives "No Fargate configuration exists for given values.".
    """
    if cpu is None:
        return MISSING_CPU_MESSAGE
    if memory is None:
        return MISSING_MEMORY_MESSAGE
    try:
        cpu_units = parse_cpu(cpu)
    except FargateSizeError:
        return INVALID_CPU_MESSAGE
    if cpu_units not in FARGATE_TASK_SIZES:
        return INVALID_CPU_MESSAGE
    try:
        memory_mib = parse_memory(memory)
    except FargateSizeError:
        # Assumption: AWS's text for unreadable memory is not documented; treat it
        # like any other memory value the cpu does not allow.
        return NO_CONFIGURATION_MESSAGE
    if memory_mib not in FARGATE_TASK_SIZES[cpu_units]:
        return NO_CONFIGURATION_MESSAGE
    return None


def table(cpus: Sequence[int] | None = None) -> pd.DataFrame:
    """The Fargate task sizes: for each CPU value, the memory (MiB) it allows."""
    rows = [
        {"cpu": cpu, "vcpu": vcpu_label(cpu), "memory (MiB)": _memory_choices(cpu)}
        for cpu in (cpus or VALID_CPU)
    ]
    return pd.DataFrame(rows)
