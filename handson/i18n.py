"""The learner's language: English, or Japanese (the seed article's).

``handson.connect(..., lang="ja")`` (or ``HANDSON_LANG=ja``) makes the kit's own words
Japanese: its errors, hints, check results and table headings, from the gettext catalog
``handson/locale/ja/LC_MESSAGES/handson.mo`` (made from ``handson.po`` with Babel:
``make editions``). English is the fallback for a message the catalog lacks. AWS's own
strings (states, stop reasons, error codes) are never translated.
"""

from __future__ import annotations

import gettext
import os
from collections.abc import Mapping
from pathlib import Path

from handson.exceptions import ConfigurationError

LANGUAGES = ("en", "ja")
LANG_ENV = "HANDSON_LANG"
LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "handson"

_current: dict[str, gettext.NullTranslations] = {}


def language(lang: str | None = None, env: Mapping[str, str] | None = None) -> str:
    """The language asked for: ``lang``, else ``HANDSON_LANG``, else English."""
    value = lang if lang is not None else (os.environ if env is None else env).get(LANG_ENV)
    chosen = (value or "en").strip().lower()
    if chosen not in LANGUAGES:
        where = f"lang={lang!r}" if lang is not None else f"{LANG_ENV}={value!r}"
        raise ConfigurationError(
            _("{where} is not a language of the kit; use one of {languages}.").format(
                where=where, languages=", ".join(LANGUAGES)
            )
        )
    return chosen


def use(lang: str) -> None:
    """Speak ``lang`` from now on (``connect`` calls this)."""
    _current["translations"] = gettext.translation(
        DOMAIN, localedir=LOCALE_DIR, languages=[lang], fallback=True
    )


def _(message: str) -> str:
    """``message`` in the learner's language (itself when there is no translation): the
    language ``connect`` chose, else ``HANDSON_LANG``'s (English if it names none)."""
    if "translations" not in _current:
        _current["translations"] = gettext.NullTranslations()  # English while it looks
        try:
            use(language())
        except ConfigurationError:  # a bad HANDSON_LANG: connect() says so; English till then
            pass
    return _current["translations"].gettext(message)


def N_(message: str) -> str:  # noqa: N802 (gettext's own name for it)
    """Mark ``message`` for the catalog where it is defined (a table of hints, say) and
    return it as it is: it is put into the learner's language with ``_()`` where it is
    shown, when the language is known."""
    return message
