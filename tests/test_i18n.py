"""The one catalog: every key in both languages, every key the code asks for present, the same {fields} in
both, a plain message for every audio error, and the browser's language chosen sensibly."""

from __future__ import annotations

import ast
import string
from pathlib import Path

import pytest

from biomarker import records
from biomarker.i18n import LANGUAGES, TranslationError, catalog, negotiate, translator
from biomarker.store.auth import ACTIONS, ROLES
from biomarker.store.repository import EXPORT_TABLES

ROOT = Path(__file__).resolve().parent.parent
CODE = [*sorted((ROOT / "app").rglob("*.py")), *sorted((ROOT / "biomarker").rglob("*.py"))]


def literal_keys() -> set[str]:
    """Every `t("key", ...)` (or `t(key)` on a string constant) in the app and the library."""
    keys = set()
    for path in CODE:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "t"
                    and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                keys.add(node.args[0].value)
    return keys


def user_error_codes() -> set[str]:
    """Every `InvalidUserError(message, "code", ...)` the store raises: each must have words in the catalog."""
    codes = set()
    for path in sorted((ROOT / "biomarker" / "store").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "InvalidUserError"
                    and len(node.args) > 1 and isinstance(node.args[1], ast.Constant)):
                codes.add(node.args[1].value)
    return codes


def audio_error_classes() -> list[type]:
    found, todo = [], [records.AudioError]
    while todo:
        kind = todo.pop()
        found.append(kind)
        todo.extend(kind.__subclasses__())
    return found


def fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_both_languages_have_the_same_keys_each_with_text():
    english, portuguese = catalog("en"), catalog("pt_BR")
    assert set(english) == set(portuguese), set(english) ^ set(portuguese)
    assert [key for key in english if not english[key] or not portuguese[key]] == []


def test_every_key_the_code_uses_exists_in_both_languages():
    wanted = literal_keys() | {f"role.{role}" for role in ROLES} | {f"action.{action}" for action in ACTIONS} | {
        "decision.positive", "decision.negative"} | {f"audit.table.{table}" for table in EXPORT_TABLES} | {
        f"audio_error.{kind.__name__}" for kind in audio_error_classes()} | {
        f"user_error.{code}" for code in user_error_codes()}
    assert {"password_short", "password_weak", "last_admin"} <= user_error_codes()
    assert len(literal_keys()) > 100  # the scan itself found the pages' words
    for language in LANGUAGES:
        missing = sorted(key for key in wanted if key not in catalog(language))
        assert missing == [], (language, missing)


def test_both_languages_fill_the_same_fields():
    english, portuguese = catalog("en"), catalog("pt_BR")
    assert [key for key in english if fields(english[key]) != fields(portuguese[key])] == []


def test_a_missing_key_is_an_error_not_english():
    with pytest.raises(TranslationError, match="no.such.key"):
        translator("pt_BR")("no.such.key")


def test_every_audio_error_has_its_own_plain_words():
    t = translator("pt_BR")
    messages = [t(f"audio_error.{kind.__name__}") for kind in audio_error_classes()]
    assert len(set(messages)) == len(messages)
    assert t("audio_error.TooShortError").startswith("a gravação ficou curta demais")


@pytest.mark.parametrize("preferred, expected", [
    (["pt-BR"], "pt_BR"), (["en-US"], "en"), (["en-GB", "pt-BR"], "en"), (["pt-PT"], "pt_BR"), (["fr-FR"], "pt_BR"),
    ([None], "pt_BR"), ([], "pt_BR"),
])
def test_the_browser_language_picks_the_app_language(preferred, expected):
    assert negotiate(preferred) == expected


def test_numbers_and_dates_are_written_the_locale_way():
    from datetime import datetime

    assert translator("pt_BR").number(0.5712) == "0,57" and translator("en").number(0.5712) == "0.57"
    moment = datetime(2026, 12, 6, 19, 30)
    assert "16:30" in translator("pt_BR").datetime(moment, "America/Sao_Paulo")
    assert "Brasília" in translator("pt_BR").datetime(moment, "America/Sao_Paulo")
