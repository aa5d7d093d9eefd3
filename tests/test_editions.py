"""The Japanese edition: built from the English notebooks (shared code cells) and a gettext
catalog per notebook (the Japanese markdown); a built notebook behind its source fails."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import nbformat
import pytest

from handson import course
from handson.exceptions import ConfigurationError

JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")  # kana and kanji


def test_every_japanese_notebook_is_built_from_its_source(tool: Any) -> None:
    editions = tool("editions")
    assert len(editions.sources()) == 17
    assert editions.stale() == [], "run: make editions"


def test_every_library_message_has_its_japanese_text(tool: Any) -> None:
    editions = tool("editions")
    messages = editions.library_messages()
    assert "{name} ({title}): {done} of {total} criteria passed: {verdict}" in messages
    catalog = editions.updated_library_catalog()
    assert editions.missing(catalog) == []
    assert {str(m.id) for m in catalog if m.id} == set(messages)


def test_the_editions_share_their_code_and_differ_in_their_words(tool: Any) -> None:
    editions = tool("editions")
    for source in editions.sources():
        english = nbformat.read(source, as_version=4).cells
        japanese = nbformat.read(editions.edition_path(source), as_version=4).cells
        assert [c.cell_type for c in english] == [c.cell_type for c in japanese]
        for en, ja in zip(english, japanese, strict=True):
            if en.cell_type == "code":
                assert ja.source == en.source.replace('lang = "en"', 'lang = "ja"'), source.name
            elif en.source.strip():
                assert JAPANESE.search(ja.source), f"{source.name}: {en.source[:40]!r}"
                # Commands, names and code in backticks stay as they are (in any order).
                spans = [sorted(re.findall(r"`[^`]+`", c.source)) for c in (ja, en)]
                assert spans[0] == spans[1], f"{source.name}: {en.source[:40]!r}"


@pytest.fixture
def copied(tmp_path: Path) -> Path:
    """Notebook 06 and its catalog, in a folder of their own."""
    source = course.NOTEBOOK_DIR / "06_image.ipynb"
    (tmp_path / "locale" / "ja").mkdir(parents=True)
    shutil.copy(source, tmp_path / source.name)
    shutil.copy(course.NOTEBOOK_DIR / "locale" / "ja" / "06_image.po", tmp_path / "locale" / "ja")
    return tmp_path / source.name


def test_a_code_change_in_the_source_reaches_both_editions(copied: Path, tool: Any) -> None:
    editions = tool("editions")
    notebook = nbformat.read(copied, as_version=4)
    code = next(c for c in notebook.cells if "connect(" in c.source)
    code.source += "\nprint('one change')"
    nbformat.write(notebook, copied)
    built = editions.built(copied)
    assert code.source in [c.source for c in built.cells], "the same code cell in Japanese"
    (params,) = [c for c in built.cells if "parameters" in c.metadata.get("tags", [])]
    assert 'lang = "ja"' in params.source and 'lang = "en"' not in params.source


def test_a_changed_english_text_waits_for_its_translation(copied: Path, tool: Any) -> None:
    editions = tool("editions")
    notebook = nbformat.read(copied, as_version=4)
    heading = next(c for c in notebook.cells if c.cell_type == "markdown")
    old = heading.source
    heading.source = old.replace("Docker image", "container image")
    nbformat.write(notebook, copied)
    catalog = editions.updated_catalog(copied)
    changed = catalog[heading.source]
    assert changed.fuzzy and JAPANESE.search(changed.string), "the old translation as a hint"
    assert old not in [m.id for m in catalog], "the old text is gone"
    with pytest.raises(editions.EditionError, match="1 text.*fuzzy"):
        editions.built(copied)


def test_the_course_finds_each_editions_notebooks() -> None:
    assert course.notebook_path("07") == course.NOTEBOOK_DIR / (
        "07_ecs_task_definition_and_service.ipynb"
    )
    assert course.notebook_path("07", "ja") == course.NOTEBOOK_DIR / "ja" / (
        "07_ecs_task_definition_and_service.ipynb"
    )
    assert course.notebook_path("solutions/01_task_definition.ipynb", "ja").parent == (
        course.SOLUTIONS_DIR / "ja"
    )
    with pytest.raises(ConfigurationError, match="'fr' is not a language of the kit"):
        course.notebook_path("07", "fr")
