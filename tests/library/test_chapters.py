"""The chapters are declared once: their builds, deletes and leftovers look-ups."""

from __future__ import annotations

import importlib
import pkgutil

import handson
from handson import chapters
from handson.chapters import CHAPTERS, COURSE


def test_every_modules_leftovers_look_up_belongs_to_one_chapter() -> None:
    # A package (handson.network) counts by the module its leftovers() is defined in.
    modules = [
        importlib.import_module(f"handson.{m.name}") for m in pkgutil.iter_modules(handson.__path__)
    ]
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
    ]
    for first, then in before:
        assert order.index(first) < order.index(then), (first, then)
    assert order[-1] == "VPC network (NAT, subnets, ...)"


def test_chapters_run_in_order_and_the_course_is_chapter_7() -> None:
    keys = [chapter.key for chapter in CHAPTERS]
    assert keys == sorted(keys) == ["01", "02", "03", "04", "05", "06", "07"]
    assert [c.key for c in CHAPTERS if c.build is not None and c.key < COURSE] == [
        "01",
        "03",
        "04",
        "05",
    ]
    assert chapters.chapter_notebooks() == {"07": "07_ecs_task_definition_and_service.ipynb"}


def test_build_prerequisites_gives_every_output_of_chapters_1_to_6(lab) -> None:
    pre = chapters.build_prerequisites(lab, enable_nat_gateway=False)
    assert pre == chapters.get_prerequisites(lab)
    assert lab.log.mutating()  # it built, and a second run changes nothing
    before = len(lab.log.mutating())
    assert chapters.build_prerequisites(lab, enable_nat_gateway=False) == pre
    assert len(lab.log.mutating()) == before
