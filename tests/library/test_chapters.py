"""The chapters are declared once: their builds, deletes and leftovers look-ups."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import handson
from handson import chapters, course
from handson.chapters import CHAPTERS, COURSE
from handson.exceptions import ConfigurationError


def test_every_modules_leftovers_look_up_belongs_to_one_chapter() -> None:
    # A package (handson.network) counts by the modules its leftovers() are defined in.
    names = [m.name for m in pkgutil.walk_packages(handson.__path__, "handson.")]
    modules = [importlib.import_module(n) for n in names if not n.startswith("handson.sandbox")]
    with_leftovers = {
        m.leftovers.__module__ for m in modules if callable(getattr(m, "leftovers", None))
    }
    with_leftovers -= {"handson.teardown"}  # the one that asks them all
    declared = [finder.__module__ for chapter in CHAPTERS for finder in chapter.leftovers]
    assert sorted(declared) == sorted(with_leftovers)


def test_teardown_deletes_what_depends_first() -> None:
    order = [label for chapter in reversed(CHAPTERS) for label, _ in chapter.deletes]
    before = [
        ("ECS service", "ECS cluster"),
        ("ECS service", "ALB, listener, target group"),
        ("ECS task definitions", "IAM roles"),
        ("RDS database and its secret", "VPC network (NAT, subnets, ...)"),
        ("ALB, listener, target group", "VPC network (NAT, subnets, ...)"),
        ("VPC endpoints and flow logs", "VPC network (NAT, subnets, ...)"),
        ("VPC endpoints and flow logs", "IAM roles"),
    ]
    for first, then in before:
        assert order.index(first) < order.index(then), (first, then)
    assert order[-1] == "VPC network (NAT, subnets, ...)"


def test_chapters_run_in_order_and_the_course_is_chapter_7() -> None:
    keys = [chapter.key for chapter in CHAPTERS]
    assert keys == sorted(keys) == ["01", "02", "03", "04", "05", "06", "07", "08"]
    assert [c.key for c in CHAPTERS if c.build is not None and c.key < COURSE] == [
        "01",
        "03",
        "04",
        "05",
    ]
    assert chapters.chapter_notebooks() == {
        "01": "01_vpc.ipynb",
        "02": "02_security_and_nat.ipynb",
        "03": "03_alb.ipynb",
        "04": "04_ecs_ecr_iam.ipynb",
        "05": "05_rds.ipynb",
        "06": "06_image.ipynb",
        "07": "07_ecs_task_definition_and_service.ipynb",
        "08": "08_vpc_endpoints.ipynb",
    }
    for notebook in chapters.chapter_notebooks().values():
        assert (course.NOTEBOOK_DIR / notebook).is_file(), notebook


def test_an_unknown_chapter_is_refused_with_the_keys() -> None:
    with pytest.raises(ConfigurationError, match="choose from 01, 02, 03, 04, 05, 06, 07, 08"):
        chapters.chapter("09")
    with pytest.raises(ConfigurationError, match="no chapter '8'"):
        handson.checks.chapter(None, "8")  # type: ignore[arg-type]


def test_the_lessons_run_after_the_teardown_on_an_empty_account() -> None:
    assert course.replay_order() == [
        "00", "07", "08", "99", "01", "02", "03", "04", "05", "06", "instructor"
    ]  # fmt: skip
    assert course.expand_keys(["notebooks"]) == course.replay_order()


def test_a_chapter_check_fails_on_an_empty_account_with_what_it_saw(lab) -> None:
    result = handson.checks.chapter(lab, "01")
    assert not result.passed
    assert result.failing == [
        "ec2 vpc: 1",
        "ec2 subnet: 4",
        "ec2 internet gateway: 1",
        "ec2 route table: 3",
    ]
    assert set(result.table["saw"]) == {"0"}


def test_the_image_chapter_check_reads_the_dockerfile(tmp_path) -> None:
    assert handson.checks.chapter(None, "06").passed  # type: ignore[arg-type]
    (tmp_path / "Dockerfile").write_text('FROM python:3.11-slim\nCMD ["python", "main.py"]\n')
    result = handson.checks.chapter(None, "06", context=tmp_path)  # type: ignore[arg-type]
    assert result.failing == [
        "runs as a non-root user",
        "exposes port 3000",
        "has a HEALTHCHECK on /health",
    ]
    empty = handson.checks.chapter(None, "06", context=tmp_path / "missing")  # type: ignore[arg-type]
    assert empty.failing == ["what the check reads exists"]
    assert "No Dockerfile" in empty.table["saw"][0]


def test_the_lessons_01_to_06_leave_what_notebook_00_leaves(make_lab, tmp_path) -> None:
    # Two new students: one runs the lessons in order, the other notebook 00.
    by_lessons, by_setup = make_lab(), make_lab()
    for key in ["01", "02", "03", "04", "05", "06"]:
        path = tmp_path / by_lessons.student / f"{key}.ipynb"
        course.run_notebook(key, path, {"student": by_lessons.student})
    course.run_notebook("00", tmp_path / "00.ipynb", {"student": by_setup.student})

    inventory = chapters.inventory(by_lessons)
    assert inventory == chapters.inventory(by_setup)
    assert sum(inventory.values()) == 29
    # The same resources, by name and setting (ids differ between accounts).
    lessons = chapters.show_prerequisites(by_lessons, chapters.get_prerequisites(by_lessons))
    setup = chapters.show_prerequisites(by_setup, chapters.get_prerequisites(by_setup))
    assert lessons[["chapter", "resource", "name"]].equals(setup[["chapter", "resource", "name"]])
    for key in ["01", "02", "03", "04", "05", "06"]:
        assert handson.checks.chapter(by_setup, key).passed, key


def test_build_prerequisites_gives_every_output_of_chapters_1_to_6(lab) -> None:
    pre = chapters.build_prerequisites(lab, enable_nat_gateway=False)
    assert pre == chapters.get_prerequisites(lab)
    assert lab.log.mutating()  # it built, and a second run changes nothing
    before = len(lab.log.mutating())
    assert chapters.build_prerequisites(lab, enable_nat_gateway=False) == pre
    assert len(lab.log.mutating()) == before
