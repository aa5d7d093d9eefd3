"""The learner's language: chosen at connect (or by HANDSON_LANG), checked before anything,
and the kit's marked messages in Japanese from the compiled catalog, English the fallback."""

from __future__ import annotations

import ast
import html
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from handson import exceptions, i18n
from handson.checks.base import CheckResult, Criterion
from handson.connection import connect
from handson.exceptions import ConfigurationError

RESULT = CheckResult(
    "07-service",
    "the service",
    (Criterion("2 tasks running", True, "2"), Criterion("targets healthy", False, "0", "wait")),
)


@pytest.fixture(autouse=True)
def english_after() -> Iterator[None]:
    yield
    i18n.use("en")


def test_the_language_comes_from_the_call_then_handson_lang_then_english() -> None:
    assert i18n.language(env={}) == "en"
    assert i18n.language(env={"HANDSON_LANG": " JA "}) == "ja"
    assert i18n.language("en", env={"HANDSON_LANG": "ja"}) == "en"
    with pytest.raises(ConfigurationError, match="lang='fr' is not a language of the kit"):
        i18n.language("fr")
    with pytest.raises(ConfigurationError, match="HANDSON_LANG='de' is not a language"):
        i18n.language(env={"HANDSON_LANG": "de"})


def test_a_bad_language_is_refused_at_connect_before_any_call() -> None:
    with pytest.raises(ConfigurationError, match="use one of en, ja"):
        connect("sandbox", student="i18n-student", lang="english")


def test_connect_in_japanese_makes_the_checks_speak_japanese(sandbox_server) -> None:
    lab = connect("sandbox", student="i18n-student", lang="ja")
    assert lab.lang == "ja" and "lang='ja'" in repr(lab)
    assert RESULT.summary() == "07-service(the service): 2項目中1項目を満たしています: まだです"
    assert "ヒント: wait" in repr(RESULT) and "<th>確認項目</th>" in RESULT._repr_html_()
    # What the learner wrote and what AWS says stay as they are.
    assert "[FAIL] targets healthy: 0" in repr(RESULT)
    connect("sandbox", student="i18n-student", lang="en")
    assert RESULT.summary() == "07-service (the service): 1 of 2 criteria passed: NOT YET"


def test_a_message_the_catalog_lacks_stays_english() -> None:
    i18n.use("ja")
    assert i18n._("No such message in the catalog") == "No such message in the catalog"


# --- Every message a learner can meet is marked, and the catalog translates it all. ---

LIBRARY = Path(i18n.__file__).parent
# The sandbox's AWS emulation speaks as AWS does; its lifecycle speaks to the learner.
SCANNED = sorted(
    path
    for path in LIBRARY.rglob("*.py")
    if "sandbox" not in path.relative_to(LIBRARY).parts
    or path.relative_to(LIBRARY).as_posix() in ("sandbox/config.py", "sandbox/lifecycle.py")
)
KIT_ERRORS = set(exceptions.__all__) - {"RosterProblem"}
MARKS = {"_", "N_"}
# (callable's last name, positions of its texts, keywords of its texts): where a learner
# reads what the kit wrote. A check's criteria and hints, its title, an error and its hint.
TEXT_ARGUMENTS = {
    **{name: ((0,), ("hint",)) for name in KIT_ERRORS},
    "expect": ((0, 3), ("criterion", "hint")),
    "equal": ((0, 3), ("criterion", "hint")),
    "register": ((1,), ("title",)),
    "Criterion": ((0, 3), ("criterion", "hint")),
    "_missing": ((0,), ()),  # what a not-found error says is missing
}
TABLES_OF_TEXTS = {"HINTS", "STOP_HINTS"}  # module-level tables of hints


def _is_text(node: ast.AST) -> bool:
    """A literal the learner reads: a string with a letter in it, an f-string, or a sum
    of those (a call, a name or an attribute is text made elsewhere)."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str) and any(ch.isalpha() for ch in node.value)
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.BinOp):
        return _is_text(node.left) or _is_text(node.right)
    if isinstance(node, ast.IfExp):
        return _is_text(node.body) or _is_text(node.orelse)
    return False


def _table_texts(table: ast.AST) -> list[ast.AST]:
    """The texts of a table of hints: a dict's values, or each pair's second item."""
    if isinstance(table, ast.Dict):
        return list(table.values)
    if isinstance(table, (ast.List, ast.Tuple)):
        return [pair.elts[-1] for pair in table.elts if isinstance(pair, ast.Tuple)]
    return []


def _called(node: ast.Call) -> str:
    func = node.func
    return func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")


def unmarked_messages(path: Path) -> list[str]:
    """``file:line: text`` for each learner-facing literal in ``path`` not in ``_()``/``N_()``."""
    tree = ast.parse(path.read_text())
    where = path.relative_to(LIBRARY.parent).as_posix()
    found: list[ast.AST] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _called(node) in TEXT_ARGUMENTS:
            positions, keywords = TEXT_ARGUMENTS[_called(node)]
            found += [node.args[i] for i in positions if i < len(node.args)]
            found += [k.value for k in node.keywords if k.arg in keywords]
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(getattr(t, "id", "") in TABLES_OF_TEXTS for t in targets) and node.value:
                found += _table_texts(node.value)
    marked = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and _called(node) in MARKS
        for inner in ast.walk(node)
    }
    return [
        f"{where}:{node.lineno}: {ast.unparse(node)[:70]}"
        for node in sorted(found, key=lambda n: (n.lineno, n.col_offset))
        if _is_text(node) and id(node) not in marked
    ]


def test_every_message_a_learner_can_meet_is_marked_for_the_catalog() -> None:
    """Errors and their hints, the hint tables, the checks' criteria, hints and titles:
    each literal one is ``_()`` (or ``N_()`` where it is defined ahead of its use)."""
    unmarked = [line for path in SCANNED for line in unmarked_messages(path)]
    assert not unmarked, f"{len(unmarked)} unmarked:\n" + "\n".join(unmarked)


def test_the_scan_finds_an_unmarked_message(tmp_path) -> None:
    sample = LIBRARY / "_scan_sample.py"
    sample.write_text(
        'raise ConfigurationError(f"No {x}.")\n'
        'raise ConfigurationError(_("No {x}.").format(x=x))\n'
        'criteria.expect("2 tasks", ok, saw, hint="wait")\n'
        'HINTS = {("*", "AccessDenied"): "Check the role.", ("*", "X"): N_("Fine.")}\n'
    )
    try:
        found = unmarked_messages(sample)
    finally:
        sample.unlink()
    assert [line.split(": ", 1)[0] for line in found] == [
        "handson/_scan_sample.py:1",
        "handson/_scan_sample.py:3",
        "handson/_scan_sample.py:3",
        "handson/_scan_sample.py:4",
    ]


def test_the_catalog_translates_every_marked_message(tool) -> None:
    """The library's catalog, brought up to the code, has a checked Japanese text for every
    marked message, and the committed .mo is the one compiled from it."""
    editions = tool("editions")
    catalog = editions.updated_library_catalog()
    assert len(catalog) > 0
    assert not editions.missing(catalog)
    compiled = editions.LIBRARY_PO.with_suffix(".mo").read_bytes()
    assert compiled == editions.compiled_library(), "run `make editions`"


def _dataframe_headings(path: Path) -> set[str]:
    """The column headings of the pandas tables in a notebook's saved outputs."""
    import nbformat

    headings: set[str] = set()
    for cell in nbformat.read(path, as_version=4).cells:
        for output in cell.get("outputs", []):
            page = output.get("data", {}).get("text/html", "")
            for table in re.findall(r'<table[^>]*class="dataframe".*?</thead>', page, re.S):
                headings |= {
                    html.unescape(h).strip() for h in re.findall(r"<th[^>]*>(.*?)</th>", table)
                }
    return headings


def test_every_table_heading_in_the_notebooks_is_in_the_catalog() -> None:
    """The English notebooks' tables are headed with the kit's column names: each is one
    of display.HEADINGS (a check's name or an index is data, not a heading)."""
    from handson import checks, display
    from handson.course import ROOT

    shown: set[str] = set()
    for path in sorted(ROOT.glob("notebooks/*.ipynb")) + sorted(ROOT.glob("solutions/*.ipynb")):
        shown |= _dataframe_headings(path)
    data = set(checks.names()) | {""}
    unknown = {h for h in shown - data if not h.isdigit()} - display.HEADINGS
    assert not unknown, sorted(unknown)
    assert {"stopped_reason", "last_status", "message"} <= shown


def test_a_table_is_headed_in_japanese_with_its_name_in_code() -> None:
    import pandas as pd

    from handson import display

    table = pd.DataFrame({"stopped_reason": ["CannotPullContainerError: ..."], "x": [1]})
    assert display.headed(table) is table  # English: as it is
    i18n.use("ja")
    shown = display.headed(table)
    assert list(shown.columns) == ["停止理由 (stopped_reason)", "x"]
    assert list(table.columns) == ["stopped_reason", "x"]  # the data is left alone
    assert shown.iloc[0, 0] == "CannotPullContainerError: ..."  # AWS's words stay
