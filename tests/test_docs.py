"""The code cites docs/sandbox.md, never documents a maintainer can't open.

Pointers are written ``docs/sandbox.md, "<Heading>"`` (more headings follow as
``, "<Heading>"`` or `` and "<Heading>"``); each must name a ``## <Heading>`` of the page.
A pointer may wrap over lines of a comment or docstring.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "sandbox.md"
THIS = Path(__file__).resolve()

# Documents outside the repository, and their section numbers ("§3.5").
FORBIDDEN = re.compile(
    r"ecs-behaviour\.md|tooling-notes\.md|series-infrastructure\.md|shared/reference|§\d"
)
POINTER = re.compile(r'docs/sandbox\.md((?:(?:,| and) "[^"]+")+)')
# A line break inside a comment or docstring, with the next line's indent and "#".
LINE_BREAK = re.compile(r"[ \t]*\r?\n[ \t]*(?:#[ \t]*)?")


def _sources() -> list[Path]:
    files: list[Path] = []
    for folder in ("handson", "tests", "tools", "benchmarks"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix in {".py", ".md", ".txt", ".cfg", ".toml"} and path.is_file():
                files.append(path)
    files.append(ROOT / "README.md")
    for folder in ("notebooks", "solutions"):
        files.extend(sorted((ROOT / folder).glob("*.ipynb")))
    return [path for path in files if path.resolve() != THIS]


SOURCES = _sources()


def _headings() -> set[str]:
    return {
        line[3:].strip()
        for line in PAGE.read_text(encoding="utf-8").splitlines()
        if line.startswith("## ")
    }


def _pointers(text: str) -> list[str]:
    flat = LINE_BREAK.sub(" ", text)
    return [
        heading
        for match in POINTER.finditer(flat)
        for heading in re.findall(r'"([^"]+)"', match.group(1))
    ]


def test_sources_are_found() -> None:
    assert PAGE.is_file()
    assert any(path.name == "scheduler.py" for path in SOURCES)
    assert any(path.suffix == ".ipynb" for path in SOURCES)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_citation_of_outside_documents(path: Path) -> None:
    hits = [
        f"{number}: {line.strip()}"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if FORBIDDEN.search(line)
    ]
    assert not hits, "cite docs/sandbox.md by heading instead:\n" + "\n".join(hits)


def test_every_pointer_names_a_heading() -> None:
    headings = _headings()
    broken = []
    count = 0
    for path in SOURCES:
        for heading in _pointers(path.read_text(encoding="utf-8")):
            count += 1
            if heading not in headings:
                broken.append(f"{path.relative_to(ROOT)}: {heading!r}")
    assert count > 0, "no pointers found: has the pointer format changed?"
    assert not broken, "no such heading in docs/sandbox.md:\n" + "\n".join(broken)


def test_pointer_parsing() -> None:
    text = (
        '# grows (docs/sandbox.md, "Restart\n    # throttling"); see docs/sandbox.md, "A",\n'
        '"B" and "C".'
    )
    assert _pointers(text) == ["Restart throttling", "A", "B", "C"]
