"""The class roster: every bad row is reported by line number before any account is touched."""

from __future__ import annotations

from pathlib import Path

import botocore.client
import pytest

from handson.classroom import Roster, Student, check_roster, load_roster
from handson.classroom.roster import as_roster
from handson.exceptions import ConfigurationError, RosterError

ROLE = "arn:aws:iam::{}:role/OrganizationAccountAccessRole"


def write(tmp_path: Path, text: str, *, encoding: str = "utf-8", name: str = "roster.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def problems(path: Path) -> list[tuple[int, str]]:
    """(line, column) of every problem the roster has."""
    with pytest.raises(RosterError) as error:
        load_roster(path)
    return [(p.line, p.column) for p in error.value.problems]


@pytest.fixture(autouse=True)
def _no_aws_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading a roster never calls AWS (nor the sandbox)."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the roster check made an API call")

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", refuse)


def test_a_good_roster(tmp_path) -> None:
    path = write(
        tmp_path,
        "\ufeffStudent,Account_ID,role_arn,region,profile,name,email\n"
        "student01,123456789012,,,,Taro Yamada,taro@example.com\n"
        "\n"
        f"student02,,{ROLE.format('210987654321')},us-east-1,teacher,,\n"
        f"student03,012345678901,{ROLE.format('012345678901')},,,,\n",
    )
    roster = load_roster(path)
    assert isinstance(roster, Roster) and roster.path == path and len(roster) == 3
    first, second, third = roster
    assert first == Student(
        student="student01",
        account_id="123456789012",
        role_arn=ROLE.format("123456789012"),
        region="ap-northeast-1",
        name="Taro Yamada",
        email="taro@example.com",
        line=2,
    )
    assert (second.account_id, second.region, second.profile, second.line) == (
        "210987654321",
        "us-east-1",
        "teacher",
        4,
    )
    assert third.account_id == "012345678901", "leading zeros are kept"
    assert check_roster(path).empty
    assert list(check_roster(path).columns) == ["line", "column", "problem"]


def test_notebook_parameters_identify_the_student_and_nothing_else(tmp_path) -> None:
    first, second = load_roster(
        write(
            tmp_path,
            "student,account_id,role_arn,profile,email\n"
            "student01,123456789012,,,a@example.com\n"
            f"student02,,{ROLE.format('210987654321')},teacher,\n",
        )
    )
    assert first.notebook_parameters("sandbox") == {
        "student": "student01",
        "region": "ap-northeast-1",
        "role_arn": ROLE.format("123456789012"),
        "backend": "sandbox",
    }
    assert second.notebook_parameters("aws") == {
        "student": "student02",
        "region": "ap-northeast-1",
        "role_arn": ROLE.format("210987654321"),
        "profile": "teacher",
        "backend": "aws",
    }
    with pytest.raises(ConfigurationError, match="choose 'sandbox'"):
        first.notebook_parameters("gcp")


def test_missing_student(tmp_path) -> None:
    path = write(tmp_path, "student,account_id\n,123456789012\nstudent02,210987654321\n")
    assert problems(path) == [(2, "student")]
    assert "empty" in check_roster(path)["problem"][0]


def test_duplicate_student_case_does_not_count(tmp_path) -> None:
    path = write(tmp_path, "student,account_id\nstudent01,123456789012\nStudent01,210987654321\n")
    assert problems(path) == [(3, "student")]
    assert "already on line 2" in check_roster(path)["problem"][0]


def test_neither_account_id_nor_role_arn(tmp_path) -> None:
    path = write(tmp_path, "student,account_id,role_arn\nstudent01,,\n")
    assert problems(path) == [(2, "account_id")]


def test_account_id_and_role_arn_must_agree(tmp_path) -> None:
    path = write(
        tmp_path,
        "student,account_id,role_arn\n"
        f"student01,123456789012,{ROLE.format('123456789012')}\n"
        f"student02,210987654321,{ROLE.format('999999999999')}\n",
    )
    assert problems(path) == [(3, "role_arn")]
    assert "in account 999999999999 but account_id is 210987654321" in str(
        check_roster(path)["problem"][0]
    )


@pytest.mark.parametrize("account_id", ["12345678901", "1234567890123", "12345678901a"])
def test_malformed_account_id(tmp_path, account_id) -> None:
    path = write(tmp_path, f"student,account_id\nstudent01,{account_id}\n")
    assert problems(path) == [(2, "account_id")]


def test_account_id_without_leading_zero_says_why(tmp_path) -> None:
    path = write(tmp_path, "student,account_id\nstudent01,12345678901\n")
    assert "leading zeros" in check_roster(path)["problem"][0]


@pytest.mark.parametrize(
    "role_arn",
    [
        "arn:aws:iam::12345678901:role/Admin",
        "arn:aws:iam::123456789012:user/Admin",
        "arn:aws:sts::123456789012:role/Admin",
        "OrganizationAccountAccessRole",
    ],
)
def test_malformed_role_arn(tmp_path, role_arn) -> None:
    path = write(tmp_path, f"student,role_arn\nstudent01,{role_arn}\n")
    assert problems(path) == [(2, "role_arn")]


def test_role_arn_with_a_path_is_fine(tmp_path) -> None:
    path = write(
        tmp_path, "student,role_arn\nstudent01,arn:aws:iam::123456789012:role/class/Admin\n"
    )
    (student,) = load_roster(path)
    assert student.account_id == "123456789012"


def test_unknown_region(tmp_path) -> None:
    path = write(tmp_path, "student,account_id,region\nstudent01,123456789012,ap-northeast-9\n")
    assert problems(path) == [(2, "region")]
    assert "did you mean 'ap-northeast-3'" in check_roster(path)["problem"][0]


@pytest.mark.parametrize("student", ["bad name", "student/01", "-" * 70])
def test_student_names_the_kit_cannot_use(tmp_path, student) -> None:
    path = write(tmp_path, f"student,account_id\n{student},123456789012\n")
    assert problems(path) == [(2, "student")]


def test_two_students_in_one_account(tmp_path) -> None:
    path = write(
        tmp_path,
        "student,account_id,role_arn\n"
        "student01,123456789012,\n"
        f"student02,,{ROLE.format('123456789012')}\n",
    )
    assert problems(path) == [(3, "role_arn")]


def test_a_directory_is_not_a_roster(tmp_path) -> None:
    assert problems(tmp_path) == [(0, "")]
    assert "is a directory" in check_roster(tmp_path)["problem"][0]


def test_a_missing_file(tmp_path) -> None:
    assert problems(tmp_path / "nope.csv") == [(0, "")]


def test_latin1_file_says_where_and_how_to_fix(tmp_path) -> None:
    path = write(
        tmp_path,
        "student,account_id,name\nstudent01,123456789012,Taro\nstudent02,210987654321,José\n",
        encoding="latin-1",
    )
    assert problems(path) == [(3, "")]
    assert "CSV UTF-8" in check_roster(path)["problem"][0]


def test_utf8_with_byte_order_mark_is_fine(tmp_path) -> None:
    path = write(
        tmp_path,
        "student,account_id,name\nstudent01,123456789012,山田 太郎\n",
        encoding="utf-8-sig",
    )
    (student,) = load_roster(path)
    assert (student.student, student.name) == ("student01", "山田 太郎")


def test_missing_header_columns(tmp_path) -> None:
    path = write(tmp_path, "name,email\nTaro,taro@example.com\n")
    assert problems(path) == [(1, "student"), (1, "account_id")]


def test_unknown_columns_are_problems(tmp_path) -> None:
    path = write(tmp_path, "student,account_id,regoin,seat\nstudent01,123456789012,us-east-1,4\n")
    assert problems(path) == [(1, "regoin"), (1, "seat")]
    assert "Did you mean 'region'?" in check_roster(path)["problem"][0]


def test_semicolons_instead_of_commas(tmp_path) -> None:
    path = write(tmp_path, "student;account_id\nstudent01;123456789012\n")
    table = check_roster(path)
    assert table["problem"].str.contains("commas, not semicolons").any()


def test_a_value_outside_the_header(tmp_path) -> None:
    path = write(
        tmp_path, "student,account_id\nstudent01,123456789012,\nstudent02,210987654321,x\n"
    )
    assert problems(path) == [(3, "")]


def test_an_empty_file_and_a_header_without_students(tmp_path) -> None:
    assert problems(write(tmp_path, "", name="empty.csv")) == [(1, "")]
    assert problems(write(tmp_path, "student,account_id\n", name="header.csv")) == [(0, "")]


def test_every_bad_row_is_reported_at_once(tmp_path) -> None:
    path = write(
        tmp_path,
        "student,account_id,region\n"
        "student01,123456789012,\n"
        ",210987654321,\n"
        "student03,123,\n"
        "student04,333333333333,mars-1\n"
        "student01,444444444444,\n",
    )
    with pytest.raises(RosterError) as error:
        load_roster(path)
    assert isinstance(error.value, ConfigurationError)
    assert [p.line for p in error.value.problems] == [3, 4, 5, 6]
    message = str(error.value)
    assert "4 problems" in message and "line 4, account_id" in message
    table = check_roster(path)
    assert table[["line", "column"]].values.tolist() == [
        [3, "student"],
        [4, "account_id"],
        [5, "region"],
        [6, "student"],
    ]


# ------------------------------------------------------------ parameter columns


def notebook_with(directory: Path, source: str) -> str:
    """A notebook of its own whose parameters cell is ``source`` (its path, as a key)."""
    import nbformat

    cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["parameters"]})
    path = directory / "exercise.ipynb"
    kernel = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    nbformat.write(nbformat.v4.new_notebook(cells=[cell], metadata=kernel), path)
    return str(path)


def test_parameter_columns_are_given_per_student(tmp_path) -> None:
    path = write(
        tmp_path,
        "student,account_id,Task_Memory,enable_nat_gateway,project_name\n"
        "student01,123456789012,1024,no,\n"
        "student02,210987654321,,,shop\n",
    )
    roster = load_roster(path)
    assert roster.parameters == ("task_memory", "enable_nat_gateway", "project_name")
    first, second = roster
    # Read as the type of the notebook's default; an empty cell is the notebook's default.
    assert first.parameters == {"task_memory": 1024, "enable_nat_gateway": False}
    assert second.parameters == {"project_name": "shop"}
    assert "task_memory" not in first.notebook_parameters("sandbox"), "identity only"


def test_a_parameter_of_the_notebooks_being_run(tmp_path) -> None:
    exercise = notebook_with(tmp_path, 'seat_row = "a"\nretries = 1')
    path = write(tmp_path, "student,account_id,seat_row\nstudent01,123456789012,c\n")
    (student,) = load_roster(path, notebooks=(exercise,))
    assert student.parameters == {"seat_row": "c"}
    assert problems(path) == [(1, "seat_row")], "no notebook of the kit has seat_row"
    with pytest.raises(RosterError) as error:
        load_roster(path, notebooks=("00",))
    assert "nor a parameter of notebook 00 (" in str(error.value)


def test_fault_is_a_parameter_of_the_break_and_fix_exercise(tmp_path) -> None:
    path = write(tmp_path, "student,account_id,fault\nstudent01,123456789012,wrong-port\n")
    (student,) = load_roster(path)
    assert student.parameters == {"fault": "wrong-port"}
    message = check_roster(path, notebooks=("00",))["problem"][0]
    assert "It is a parameter of notebook" in message
    assert "solutions/04_break_and_fix.ipynb" in message and "not run here." in message


def test_a_parameter_column_is_checked_again_for_the_notebooks_run(tmp_path) -> None:
    exercise = notebook_with(tmp_path, "retries = 1")
    path = write(tmp_path, "student,account_id,task_memory\nstudent01,123456789012,1024\n")
    roster = load_roster(path)
    with pytest.raises(RosterError) as error:
        as_roster(roster, notebooks=(exercise,))
    assert [(p.line, p.column) for p in error.value.problems] == [(1, "task_memory")]
    message = error.value.problems[0].message
    assert "It is a parameter of notebooks 00, 07, 99, not run here." in message
    assert as_roster(roster, notebooks=("00", "07")) is roster


@pytest.mark.parametrize("column", ["2nd_try", "task-memory", "task memory", "class"])
def test_a_parameter_column_must_be_a_python_identifier(tmp_path, column) -> None:
    path = write(tmp_path, f"student,account_id,{column}\nstudent01,123456789012,x\n")
    assert problems(path) == [(1, column)]
    assert "Python identifier" in check_roster(path)["problem"][0]


def test_backend_is_not_a_roster_column(tmp_path) -> None:
    path = write(tmp_path, "student,account_id,backend\nstudent01,123456789012,aws\n")
    assert problems(path) == [(1, "backend")]
    assert "comes from --backend" in check_roster(path)["problem"][0]


def test_an_unknown_parameter_names_the_notebooks_parameters(tmp_path) -> None:
    path = write(tmp_path, "student,account_id,task_memroy\nstudent01,123456789012,1024\n")
    assert problems(path) == [(1, "task_memroy")]
    problem = check_roster(path, notebooks=("00",))["problem"][0]
    assert "nor a parameter of notebook 00 (app_count, enable_nat_gateway," in problem
    assert "Did you mean 'task_memory'?" in problem


def test_bad_parameter_values_are_reported_by_line_with_the_rest(tmp_path) -> None:
    path = write(
        tmp_path,
        "student,account_id,task_memory,enable_nat_gateway,seat\n"
        "student01,1234,1024,yes,\n"
        "student02,210987654321,lots,,\n"
        "student03,333333333333,,maybe,\n",
    )
    assert problems(path) == [
        (1, "seat"),
        (2, "account_id"),
        (3, "task_memory"),
        (4, "enable_nat_gateway"),
    ]
    table = check_roster(path)
    assert (
        "'lots': task_memory is a whole number (the notebook's default is 512)"
        in (table["problem"][2])
    )
    assert "'maybe': enable_nat_gateway is true or false" in table["problem"][3]
