"""The class roster: a CSV with one student per row, checked whole before any account is used.

Columns (header names are case-insensitive):

- ``student`` (required): the student's name in the kit (tags, session names, ``runs/<student>/``).
- ``account_id`` or ``role_arn`` (one of them, or both when they agree): the student's own
  account. With only ``account_id`` the kit assumes
  ``arn:aws:iam::<account_id>:role/OrganizationAccountAccessRole`` (the role AWS
  Organizations creates in member accounts). On the sandbox the same ids pick the student's
  account on the local server.
- ``region`` (default ap-northeast-1), ``profile`` (the instructor's AWS profile that may
  assume the role), ``name``, ``email`` (for the instructor; never sent to AWS).
- Any other column is a notebook parameter given per student, e.g. ``fault`` (the fault a
  student gets in the break-and-fix exercise) or ``task_memory``: its name must be a
  parameter of at least one of the notebooks being run (their ``parameters`` cell), and an
  empty cell means "use the notebook's default". A value is read as the type of the
  notebook's default (``task_memory`` 1024 is a number, ``enable_nat_gateway`` false a
  boolean, anything else text).

Unknown columns are problems, not warnings: a misspelt optional column (``regoin``) would
otherwise be ignored silently and a student provisioned in the default region.
"""

from __future__ import annotations

import ast
import csv
import difflib
import io
import keyword
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd

from handson.connection import DEFAULT_REGION, check_names, ecs_regions
from handson.exceptions import ConfigurationError, RosterError, RosterProblem
from handson.i18n import _

__all__ = [
    "COLUMNS",
    "Roster",
    "RosterError",
    "RosterProblem",
    "Student",
    "as_roster",
    "check_backend",
    "check_roster",
    "load_roster",
    "notebook_parameter_defaults",
]

COLUMNS = ("student", "account_id", "role_arn", "region", "profile", "name", "email")
DEFAULT_ROLE = "OrganizationAccountAccessRole"
BACKENDS = ("sandbox", "aws")
# Notebook parameters that never come from a parameter column: the fixed columns above say
# who and where a student is, and the backend comes from backend= (--backend).
RESERVED_PARAMETERS = ("backend",)
BOOLEANS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
ACCOUNT_ID = re.compile(r"^\d{12}$")
# IAM role ARNs, with an optional path (role/teaching/student-admin); aws-cn and aws-us-gov
# are partitions of their own.
ROLE_ARN = re.compile(
    r"^arn:aws(?:-cn|-us-gov)?:iam::(?P<account>\d{12}):role/(?:[\w+=,.@-]+/)*[\w+=,.@-]{1,64}$"
)


@dataclass(frozen=True)
class Student:
    """One row of the roster: who the student is and how to reach their account.

    Give ``account_id`` or ``role_arn``; the other is derived (the account of the role, or
    the account's OrganizationAccountAccessRole).
    """

    student: str
    account_id: str | None = None
    role_arn: str | None = None
    region: str = DEFAULT_REGION
    profile: str | None = None
    name: str | None = None
    email: str | None = None
    line: int | None = None
    # The row's notebook parameters (its parameter columns with a value), e.g. {"fault": ...}.
    parameters: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if self.role_arn is None and self.account_id:
            object.__setattr__(
                self, "role_arn", f"arn:aws:iam::{self.account_id}:role/{DEFAULT_ROLE}"
            )
        elif self.account_id is None and self.role_arn:
            match = ROLE_ARN.match(self.role_arn)
            if match:
                object.__setattr__(self, "account_id", match["account"])
        if not self.role_arn:
            raise ConfigurationError(
                _("Student {student!r} has no account: give account_id or role_arn.").format(
                    student=self.student
                )
            )

    def notebook_parameters(self, backend: str) -> dict[str, str]:
        """The parameters that point a course notebook (and ``handson.connect``) at this
        student's account. Never credentials: the notebook assumes the role itself."""
        check_backend(backend)
        parameters = {
            "student": self.student,
            "region": self.region,
            "role_arn": str(self.role_arn),
        }
        if self.profile:
            parameters["profile"] = self.profile
        parameters["backend"] = backend
        return parameters


@dataclass(frozen=True)
class Roster:
    """The students of a class, in the roster's order.

    ``parameters`` names the roster's parameter columns (header order) and
    ``header_line`` is the header's line in the file (for problems about those columns).
    """

    path: Path
    students: tuple[Student, ...] = field(default_factory=tuple)
    parameters: tuple[str, ...] = ()
    header_line: int = 1

    def __len__(self) -> int:
        return len(self.students)

    def __iter__(self) -> Iterator[Student]:
        return iter(self.students)


def load_roster(path: str | os.PathLike[str], *, notebooks: Sequence[str] | None = None) -> Roster:
    """Read and check a roster CSV. Every bad row is reported at once, by line number, in a
    RosterError raised before any account is touched (no AWS call is made).

    Parameter columns must be parameters of ``notebooks`` (e.g. ``("00", "07")``, the
    notebooks to be run); by default of any notebook a student runs (the course's 00, 07
    and 99, the exercises and their solutions).
    """
    path = Path(path)
    problems: list[RosterProblem] = []
    text = _read_text(path, problems)
    roster = _parse(path, text, _notebook_keys(notebooks), problems) if text is not None else None
    if problems or roster is None:
        raise RosterError(str(path), sorted(problems, key=lambda p: p.line))
    return roster


def check_roster(
    path: str | os.PathLike[str], *, notebooks: Sequence[str] | None = None
) -> pd.DataFrame:
    """The roster's problems, one row each (line, column, problem); empty when it's fine.

    ``notebooks`` are the notebooks the parameter columns are checked against (as in
    :func:`load_roster`)."""
    try:
        load_roster(path, notebooks=notebooks)
    except RosterError as error:
        rows = [(p.line, p.column, p.message) for p in error.problems]
    else:
        rows = []
    return pd.DataFrame(rows, columns=["line", "column", "problem"])


def as_roster(
    roster: Roster | str | os.PathLike[str], *, notebooks: Sequence[str] | None = None
) -> Roster:
    """A loaded roster, or the roster read (and checked) from a CSV path.

    With ``notebooks`` a roster loaded earlier is checked again: each of its parameter
    columns must be a parameter of one of these notebooks (RosterError otherwise).
    """
    if not isinstance(roster, Roster):
        return load_roster(roster, notebooks=notebooks)
    if notebooks is not None and roster.parameters:
        keys = _notebook_keys(notebooks)
        problems: list[RosterProblem] = []
        for name in roster.parameters:
            _check_parameter_column(roster.header_line, name, keys, problems)
        if problems:
            raise RosterError(str(roster.path), problems)
    return roster


def notebook_parameter_defaults(notebooks: Sequence[str]) -> dict[str, str]:
    """The parameters of the notebooks' ``parameters`` cells with their defaults as
    written there (e.g. ``{"task_memory": "512", ...}``); for a name several notebooks have,
    the first notebook's. Reads the notebook files only (papermill's inspection)."""
    defaults: dict[str, str] = {}
    for key in notebooks:
        for name, default in _defaults(key).items():
            defaults.setdefault(name, default)
    return defaults


def _notebook_keys(notebooks: Sequence[str] | None) -> tuple[str, ...]:
    """The notebooks given (each checked to exist), or by default every notebook a student
    runs: the course's (00, 07, 99) and the exercises' and their solutions' (by path)."""
    from handson.course import NOTEBOOK_DIR, NOTEBOOKS, notebook_path

    if notebooks is None:
        course = [k for k in NOTEBOOKS if k != "instructor"]
        kit = NOTEBOOK_DIR.parent
        practice = sorted(
            str(p) for d in ("exercises", "solutions") for p in (kit / d).glob("*.ipynb")
        )
        return (*course, *practice)
    keys = tuple(notebooks)
    for key in keys:
        notebook_path(key)  # ConfigurationError naming the notebooks there are
    return keys


def _notebooks_label(keys: Sequence[str]) -> str:
    from handson.course import NOTEBOOK_DIR

    kit = NOTEBOOK_DIR.parent
    names = [str(Path(k).relative_to(kit)) if Path(k).is_relative_to(kit) else k for k in keys]
    listed = ", ".join(names)
    if len(keys) == 1:
        return _("notebook {names}").format(names=listed)
    return _("notebooks {names}").format(names=listed)


def _defaults(key: str) -> dict[str, str]:
    from handson.course import notebook_path

    path = notebook_path(key)
    return _inspect(str(path), path.stat().st_mtime_ns)


@cache
def _inspect(path: str, mtime_ns: int) -> dict[str, str]:
    import papermill as pm

    return {name: str(p["default"]) for name, p in pm.inspect_notebook(path).items()}


def check_backend(backend: str) -> str:
    """Check the backend name before any account is touched."""
    if backend not in BACKENDS:
        raise ConfigurationError(
            _("backend={backend!r}: choose 'sandbox' (local) or 'aws' (real AWS).").format(
                backend=backend
            )
        )
    return backend


# ------------------------------------------------------------------- reading


def _read_text(path: Path, problems: list[RosterProblem]) -> str | None:
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        problems.append(
            RosterProblem(0, "", _("{path} is a directory, not a CSV file.").format(path=path))
        )
        return None
    except FileNotFoundError:
        problems.append(RosterProblem(0, "", _("{path} doesn't exist.").format(path=path)))
        return None
    except OSError as error:
        problems.append(
            RosterProblem(
                0,
                "",
                _("{path} can't be read: {reason}.").format(path=path, reason=error.strerror),
            )
        )
        return None
    try:
        # utf-8-sig: Excel's "CSV UTF-8" starts the file with a byte order mark.
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        problems.append(
            RosterProblem(
                line,
                "",
                _(
                    "the file is not UTF-8 (byte 0x{byte:02x}): save it as UTF-8 (in Excel: "
                    "'CSV UTF-8 (Comma delimited)'; plain 'CSV' is Shift_JIS or Latin-1)."
                ).format(byte=data[error.start]),
            )
        )
        return None


def _parse(
    path: Path, text: str, notebooks: tuple[str, ...], problems: list[RosterProblem]
) -> Roster | None:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        rows = [(reader.line_num, row) for row in reader if any(c.strip() for c in row)]
    except csv.Error as error:
        problems.append(
            RosterProblem(
                reader.line_num, "", _("not a valid CSV line: {error}.").format(error=error)
            )
        )
        return None
    if not rows:
        problems.append(
            RosterProblem(
                1, "", _("the file is empty: start with a header such as student,account_id.")
            )
        )
        return None
    (header_line, header), data = rows[0], rows[1:]
    names = [c.strip().lower() for c in header]
    parameters = _check_header(header_line, names, notebooks, problems)
    if not data:
        problems.append(
            RosterProblem(0, "", _("the roster has no students: add one row per student."))
        )
    rows_checker = _RowChecker(names, parameters, problems)
    students = [s for line, row in data if (s := rows_checker.check(line, row)) is not None]
    return Roster(path, tuple(students), tuple(parameters), header_line)


def _check_header(
    line: int, names: Sequence[str], notebooks: tuple[str, ...], problems: list[RosterProblem]
) -> dict[str, str]:
    """Check the header; returns the valid parameter columns with their notebook defaults."""
    parameters: dict[str, str] = {}
    if "student" not in names:
        problems.append(RosterProblem(line, "student", _("the header has no student column.")))
    if "account_id" not in names and "role_arn" not in names:
        problems.append(
            RosterProblem(
                line, "account_id", _("the header needs an account_id or a role_arn column.")
            )
        )
    for i, name in enumerate(names):
        if name and name in names[:i]:
            problems.append(
                RosterProblem(line, name, _("this column appears twice in the header."))
            )
        elif name and name not in COLUMNS:
            if ";" in name or "\t" in name:
                advice = _("Separate the columns with commas, not semicolons or tabs.")
                problems.append(
                    RosterProblem(line, name, _("unknown column. {advice}").format(advice=advice))
                )
            elif _check_parameter_column(line, name, notebooks, problems):
                parameters[name] = notebook_parameter_defaults(notebooks)[name]
    return parameters


def _check_parameter_column(
    line: int, name: str, notebooks: tuple[str, ...], problems: list[RosterProblem]
) -> bool:
    """Whether ``name`` can be a parameter column for ``notebooks``; records why not."""
    if not name.isidentifier() or keyword.iskeyword(name):
        close = difflib.get_close_matches(name, COLUMNS, n=1)
        advice = _(" Did you mean {column!r}?").format(column=close[0]) if close else ""
        problems.append(
            RosterProblem(
                line,
                name,
                _(
                    "unknown column: not a roster column ({columns}), and a notebook "
                    "parameter column is named as a Python identifier (letters, digits and _, "
                    "not starting with a digit, e.g. task_memory).{advice}"
                ).format(columns=", ".join(COLUMNS), advice=advice),
            )
        )
        return False
    if name in RESERVED_PARAMETERS:
        problems.append(
            RosterProblem(
                line,
                name,
                _(
                    "{name} can't be a roster column: it comes from --backend (backend=) for "
                    "the whole class. Remove the column."
                ).format(name=name),
            )
        )
        return False
    known = notebook_parameter_defaults(notebooks)
    if name in known:
        return True
    close = difflib.get_close_matches(name, [*COLUMNS, *known], n=1)
    advice = _("Did you mean {column!r}? ").format(column=close[0]) if close else ""
    elsewhere = [k for k in _notebook_keys(None) if k not in notebooks and name in _defaults(k)]
    if elsewhere:
        advice += _("It is a parameter of {notebooks}, not run here.").format(
            notebooks=_notebooks_label(elsewhere)
        )
    choices = sorted(set(known) - set(COLUMNS) - set(RESERVED_PARAMETERS))
    problems.append(
        RosterProblem(
            line,
            name,
            _(
                "unknown column: neither a roster column ({columns}) nor a parameter "
                "of {notebooks} ({parameters}). {advice}"
            )
            .format(
                columns=", ".join(COLUMNS),
                notebooks=_notebooks_label(notebooks),
                parameters=", ".join(choices) or _("none"),
                advice=advice,
            )
            .strip(),
        )
    )
    return False


class _RowChecker:
    """Checks the roster's rows one by one, remembering the students and accounts seen."""

    def __init__(
        self, names: list[str], parameters: dict[str, str], problems: list[RosterProblem]
    ) -> None:
        self.names = names
        self.parameters = parameters
        self.problems = problems
        # Without either column the header problem says it all; no need to repeat per row.
        self.has_account_column = "account_id" in names or "role_arn" in names
        self.regions = set(ecs_regions())
        self.students: dict[str, tuple[str, int]] = {}
        self.accounts: dict[str, tuple[str, int]] = {}

    def check(self, line: int, row: list[str]) -> Student | None:
        """The row's student, or None (with its problems recorded) when the row is bad."""
        before = len(self.problems)
        cells = self._cells(line, row)
        student = cells.get("student", "")
        if "student" in self.names:
            _check_student(line, student, self.students, self.problems)
        account = _check_account(line, cells, self.problems) if self.has_account_column else None
        if account and student:
            self._check_unique_account(line, account, student, cells)
        region = cells.get("region") or DEFAULT_REGION
        if region not in self.regions:
            close = difflib.get_close_matches(region, sorted(self.regions), n=1)
            suggestion = _(" (did you mean {region!r}?)").format(region=close[0]) if close else ""
            self.problems.append(
                RosterProblem(
                    line,
                    "region",
                    _("{region!r} is not an AWS region with ECS{suggestion}.").format(
                        region=region, suggestion=suggestion
                    ),
                )
            )
        parameters = {}
        for name, default in self.parameters.items():
            if cells.get(name):  # an empty cell: the notebook's default
                value = _parameter_value(line, name, cells[name], default, self.problems)
                parameters[name] = value
        if len(self.problems) > before or not student:
            return None
        return Student(
            student=student,
            account_id=cells.get("account_id") or None,
            role_arn=cells.get("role_arn") or None,
            region=region,
            profile=cells.get("profile") or None,
            name=cells.get("name") or None,
            email=cells.get("email") or None,
            line=line,
            parameters=parameters,
        )

    def _cells(self, line: int, row: list[str]) -> dict[str, str]:
        # Spreadsheets pad rows with empty cells: only values outside the header count.
        extra = [i + 1 for i, c in enumerate(row) if c.strip() and i >= len(self.names)]
        unnamed = [
            i + 1 for i, c in enumerate(row[: len(self.names)]) if c.strip() and not self.names[i]
        ]
        if extra:
            self.problems.append(
                RosterProblem(
                    line,
                    "",
                    _(
                        "a value in column {column}, but the header has {columns} "
                        "columns (a value with a comma in it needs double quotes)."
                    ).format(column=extra[0], columns=len(self.names)),
                )
            )
        if unnamed:
            self.problems.append(
                RosterProblem(
                    line,
                    "",
                    _("a value in column {column}, which has no name.").format(column=unnamed[0]),
                )
            )
        return {n: c.strip() for n, c in zip(self.names, row, strict=False) if n}

    def _check_unique_account(
        self, line: int, account: str, student: str, cells: dict[str, str]
    ) -> None:
        earlier = self.accounts.setdefault(account, (student, line))
        if earlier[1] != line:
            self.problems.append(
                RosterProblem(
                    line,
                    "account_id" if cells.get("account_id") else "role_arn",
                    _(
                        "account {account} is already {student}'s (line {line}): each "
                        "student needs an account of their own (the kit's resource names, "
                        "my-project-dev-*, would collide)."
                    ).format(account=account, student=earlier[0], line=earlier[1]),
                )
            )


def _parameter_value(
    line: int, name: str, text: str, default: str, problems: list[RosterProblem]
) -> Any:
    """A parameter cell read as the type of the notebook's default (text when the default
    is text, None or an expression)."""
    try:
        example = ast.literal_eval(default)
    except (ValueError, SyntaxError):
        example = None
    if isinstance(example, bool):
        if text.lower() in BOOLEANS:
            return BOOLEANS[text.lower()]
        expected = _("true or false")
    elif isinstance(example, int):
        try:
            return int(text)
        except ValueError:
            expected = _("a whole number")
    elif isinstance(example, float):
        try:
            return float(text)
        except ValueError:
            expected = _("a number")
    else:
        return text
    problems.append(
        RosterProblem(
            line,
            name,
            _(
                "{text!r}: {name} is {expected} (the notebook's default is {default}); "
                "leave the cell empty for the default."
            ).format(text=text, name=name, expected=expected, default=default),
        )
    )
    return None


def _check_student(
    line: int, student: str, seen: dict[str, tuple[str, int]], problems: list[RosterProblem]
) -> None:
    if not student:
        problems.append(RosterProblem(line, "student", _("the student's name is empty.")))
        return
    try:
        check_names(
            student=student, project_name="my-project", environment="dev", region=DEFAULT_REGION
        )
    except ConfigurationError as error:
        problems.append(RosterProblem(line, "student", str(error)))
    # Case-insensitively: runs/<student>/ would collide on macOS and Windows file systems.
    earlier = seen.setdefault(student.casefold(), (student, line))
    if earlier[1] != line:
        spelt = _(" as {name!r}").format(name=earlier[0]) if earlier[0] != student else ""
        problems.append(
            RosterProblem(
                line,
                "student",
                _(
                    "{student!r} is already on line {line}{spelt}: "
                    "student names must be unique (case doesn't count)."
                ).format(student=student, line=earlier[1], spelt=spelt),
            )
        )


def _check_account(line: int, cells: dict[str, str], problems: list[RosterProblem]) -> str | None:
    """The row's account id when its account_id / role_arn are valid and agree."""
    account_id, role_arn = cells.get("account_id", ""), cells.get("role_arn", "")
    if not account_id and not role_arn:
        problems.append(
            RosterProblem(
                line,
                "account_id",
                _(
                    "no account: give account_id (12 digits) or role_arn "
                    "(arn:aws:iam::<account_id>:role/{role})."
                ).format(role=DEFAULT_ROLE),
            )
        )
        return None
    valid = True
    if account_id and not ACCOUNT_ID.match(account_id):
        valid = False
        advice = _("an AWS account id is 12 digits")
        if account_id.isdigit() and 9 <= len(account_id) < 12:
            advice += _(
                " (a spreadsheet may have dropped leading zeros: format the column as text)"
            )
        problems.append(
            RosterProblem(
                line,
                "account_id",
                _("{account_id!r}: {advice}.").format(account_id=account_id, advice=advice),
            )
        )
    match = ROLE_ARN.match(role_arn) if role_arn else None
    if role_arn and match is None:
        valid = False
        problems.append(
            RosterProblem(
                line,
                "role_arn",
                _(
                    "{role_arn!r} is not an IAM role ARN: "
                    "arn:aws:iam::<12-digit account>:role/<name>."
                ).format(role_arn=role_arn),
            )
        )
    if not valid:
        return None
    if match and account_id and match["account"] != account_id:
        problems.append(
            RosterProblem(
                line,
                "role_arn",
                _(
                    "the role is in account {role_account} but account_id is {account_id}: "
                    "give one of them, or make them agree."
                ).format(role_account=match["account"], account_id=account_id),
            )
        )
        return None
    return account_id or (match["account"] if match else None)
