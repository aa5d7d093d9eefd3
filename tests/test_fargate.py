"""Tests for handson.fargate: the Fargate task-size table and its error messages."""

import pytest

from handson.exceptions import ConfigurationError, FargateSizeError, HandsonError
from handson.fargate import (
    FARGATE_TASK_SIZES,
    VALID_CPU,
    check_task_size,
    parse_cpu,
    parse_memory,
    register_error,
    valid_memory,
    vcpu_label,
)

# The Linux table, row by row (docs/sandbox.md, "Fargate task sizes").
EXPECTED_ROWS = {
    256: [512, 1024, 2048],
    512: list(range(1024, 4096 + 1, 1024)),
    1024: list(range(2048, 8192 + 1, 1024)),
    2048: list(range(4096, 16384 + 1, 1024)),
    4096: list(range(8192, 30720 + 1, 1024)),
    8192: list(range(16384, 61440 + 1, 4096)),
    16384: list(range(32768, 122880 + 1, 8192)),
}
ALL_PAIRS = [(cpu, mem) for cpu, mems in EXPECTED_ROWS.items() for mem in mems]


def test_table_has_74_pairs():
    # "Total: 74 valid pairs", counts 3/4/7/13/23/12/12 (docs/sandbox.md, "Fargate task sizes").
    assert len(ALL_PAIRS) == 74
    assert sum(len(m) for m in FARGATE_TASK_SIZES.values()) == 74
    assert [len(valid_memory(c)) for c in VALID_CPU] == [3, 4, 7, 13, 23, 12, 12]
    assert {c: valid_memory(c) for c in VALID_CPU} == EXPECTED_ROWS


@pytest.mark.parametrize(("cpu", "memory"), ALL_PAIRS)
def test_every_pair_is_valid(cpu, memory):
    assert check_task_size(cpu, memory) == (cpu, memory)
    assert check_task_size(str(cpu), str(memory)) == (cpu, memory)
    assert register_error(cpu, memory) is None
    assert register_error(str(cpu), str(memory)) is None


def test_valid_memory_unknown_cpu_is_empty():
    assert valid_memory(300) == []
    # There is no cpu=32768 (docs/sandbox.md, "Fargate task sizes").
    assert valid_memory(32768) == []


def test_valid_memory_returns_a_copy():
    valid_memory(256).append(4096)
    assert valid_memory(256) == [512, 1024, 2048]


def test_256_with_4096_is_rejected_with_the_allowed_memory():
    with pytest.raises(FargateSizeError) as info:
        check_task_size(256, 4096)
    message = str(info.value)
    assert message.startswith(
        "Fargate has no task size with 256 CPU units and 4096 MiB of memory. "
        "With 256 CPU units (.25 vCPU) the memory can be 512, 1024 or 2048 MiB."
    )
    for allowed in ("512", "1024", "2048"):
        assert allowed in message
    # and it says which cpu values would keep the memory
    assert "To keep 4096 MiB, set cpu to 512, 1024 or 2048." in message


def test_large_rows_are_described_as_ranges():
    with pytest.raises(FargateSizeError, match=r"any multiple of 1024 from 8192 to 30720 MiB"):
        check_task_size(4096, 4000)


@pytest.mark.parametrize(("cpu", "memory"), [(1024, 9216), (8192, 17408), (16384, 33792)])
def test_probed_out_of_range_or_off_step_values_are_rejected(cpu, memory):
    # Rejected by RegisterTaskDefinition in the 2026 probe (docs/sandbox.md, "Fargate task sizes").
    with pytest.raises(FargateSizeError):
        check_task_size(cpu, memory)
    # The practical reading: valid cpu, wrong memory (docs/sandbox.md, "Fargate task sizes").
    assert register_error(cpu, memory) == "No Fargate configuration exists for given values."


def test_unknown_cpu_lists_the_valid_cpu_values():
    with pytest.raises(FargateSizeError) as info:
        check_task_size(300, 512)
    message = str(info.value)
    assert "300 CPU units" in message
    for cpu in VALID_CPU:
        assert str(cpu) in message
    assert "256 (.25 vCPU)" in message and "16384 (16 vCPU)" in message


def test_fargate_size_error_is_a_configuration_error():
    assert issubclass(FargateSizeError, ConfigurationError)
    assert issubclass(FargateSizeError, HandsonError)


@pytest.mark.parametrize(
    ("value", "units"),
    [
        ("256", 256),
        (256, 256),
        ("1 vCPU", 1024),
        ("1 vcpu", 1024),
        ("1vCPU", 1024),
        (".25 vCPU", 256),
        ("0.25 vCPU", 256),
        ("0.5 vcpu", 512),
        (".5 vCPU", 512),
        ("2 vCPU", 2048),
        ("16 vCPU", 16384),
        (" 512 ", 512),
    ],
)
def test_parse_cpu(value, units):
    # Strings such as "1 vCPU" become CPU units (docs/sandbox.md, "Fargate task sizes").
    assert parse_cpu(value) == units


@pytest.mark.parametrize(
    ("value", "mib"),
    [("512", 512), (512, 512), ("1GB", 1024), ("1 GB", 1024), ("2gb", 2048), ("0.5 GB", 512)],
)
def test_parse_memory(value, mib):
    # Strings such as "1GB" become MiB (docs/sandbox.md, "Fargate task sizes").
    assert parse_memory(value) == mib


@pytest.mark.parametrize("value", ["", "abc", "1 core", "0.3 vCPU", "-256", "0", True, 1.5])
def test_parse_cpu_rejects_unreadable_values(value):
    with pytest.raises(FargateSizeError, match="Fargate cpu value"):
        parse_cpu(value)


@pytest.mark.parametrize("value", ["", "1 TB", "512 MiB", "1.3 GB", "-1"])
def test_parse_memory_rejects_unreadable_values(value):
    with pytest.raises(FargateSizeError, match="Fargate memory value"):
        parse_memory(value)


def test_check_task_size_accepts_string_forms():
    assert check_task_size(".25 vCPU", "0.5 GB") == (256, 512)
    assert check_task_size("1 vCPU", "2 GB") == (1024, 2048)
    assert check_task_size("0.5 vcpu", "1GB") == (512, 1024)


def test_vcpu_label():
    # AWS's table: "256 (.25 vCPU)", "512 (.5 vCPU)", "1024 (1 vCPU)" (docs/sandbox.md,
    # "Fargate task sizes").
    assert [vcpu_label(c) for c in VALID_CPU] == [
        ".25 vCPU",
        ".5 vCPU",
        "1 vCPU",
        "2 vCPU",
        "4 vCPU",
        "8 vCPU",
        "16 vCPU",
    ]


def test_register_error_invalid_cpu():
    # A cpu not in the list -> "Invalid 'cpu' setting for task." (docs/sandbox.md, "Fargate
    # task sizes").
    assert register_error(300, 512) == "Invalid 'cpu' setting for task."
    assert register_error("32768", "65536") == "Invalid 'cpu' setting for task."
    assert register_error("two cores", 512) == "Invalid 'cpu' setting for task."


def test_register_error_valid_cpu_wrong_memory():
    # Valid cpu, memory not allowed for it (docs/sandbox.md, "Fargate task sizes").
    assert register_error(256, 4096) == "No Fargate configuration exists for given values."
    assert register_error("1 vCPU", "1GB") == "No Fargate configuration exists for given values."


def test_register_error_missing_task_level_values():
    # Wording as seen on real accounts (see handson/fargate.py).
    assert register_error(None, 512) == "Fargate requires that 'cpu' be defined at the task level."
    assert (
        register_error(256, None) == "Fargate requires that 'memory' be defined at the task level."
    )
    assert register_error(None, None) == (
        "Fargate requires that 'cpu' be defined at the task level."
    )


def test_register_error_accepts_string_forms():
    assert register_error(".25 vCPU", "0.5 GB") is None
    assert register_error("1 vcpu", "2 GB") is None
