"""The learner's language: chosen at connect (or by HANDSON_LANG), checked before anything,
and the kit's marked messages in Japanese from the compiled catalog, English the fallback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from handson import i18n
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
