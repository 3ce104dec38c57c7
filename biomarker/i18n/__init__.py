"""Every user-facing string, in Brazilian Portuguese and English, from one catalog.

The catalog is a set of gettext PO files per language (`locales/<language>/*.po`, one file per area: the app,
audio errors, the report), read with Babel, the maintained i18n library of the Python world; Babel also
negotiates the browser's language and formats dates and numbers the way each locale writes them. Message ids
are symbolic keys ("screen.title") so that a key missing in either language is a test failure, not a silent
fallback to English. No torch, no Streamlit: the app, the CLI and the PDF report all translate through here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone, tzinfo
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Mapping

from babel import Locale
from babel.dates import format_datetime, get_timezone
from babel.messages.pofile import read_po
from babel.numbers import format_decimal

from biomarker.records import BiomarkerError

LOCALES_DIR = Path(__file__).with_name("locales")
LANGUAGES = ("pt_BR", "en")  # the target clinics are Brazilian: Portuguese first, and the fallback default
DEFAULT_LANGUAGE = "pt_BR"
LANGUAGE_NAMES = {"pt_BR": "Português (Brasil)", "en": "English"}


class TranslationError(BiomarkerError, LookupError):
    """A message key that one language's catalog lacks, or a language the app does not speak."""


@lru_cache(maxsize=None)
def catalog(language: str) -> Mapping[str, str]:
    """Every key → text of `language` (all PO files of its folder merged; a key defined twice is an error)."""
    if language not in LANGUAGES:
        raise TranslationError(f"language {language!r} is not one of {', '.join(LANGUAGES)}")
    messages: dict[str, str] = {}
    for path in sorted((LOCALES_DIR / language).glob("*.po")):
        with path.open("rb") as handle:
            for message in read_po(handle, locale=language):
                if not message.id:
                    continue  # the PO header
                if message.id in messages:
                    raise TranslationError(f"{path}: key {message.id!r} is defined twice for {language}")
                messages[message.id] = message.string
    return messages


@dataclass(frozen=True)
class Translator:
    """`t("key", name=value)`: the text of `key` in this language, with `{name}` fields filled in."""

    language: str

    def __call__(self, key: str, **fields: object) -> str:
        text = catalog(self.language).get(key)
        if not text:
            raise TranslationError(f"key {key!r} has no {self.language} text in {LOCALES_DIR / self.language}")
        return text.format(**fields) if fields else text

    def has(self, key: str) -> bool:
        return bool(catalog(self.language).get(key))

    def datetime(self, moment: datetime, zone: str | tzinfo | None = None) -> str:
        """`moment` (naive means UTC, as the store keeps it) in `zone`, with the zone's name written out."""
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        zone_info = get_timezone(zone) if isinstance(zone, str) or zone is None else zone
        return format_datetime(moment, "medium", tzinfo=zone_info, locale=self.language) + " " + \
            format_datetime(moment, "zzzz", tzinfo=zone_info, locale=self.language)

    def datetime_short(self, moment: datetime, zone: str | tzinfo | None = None) -> str:
        """The same moment for a table cell: short date and time with the UTC offset ("06/12/2026 16:30
        UTC-03:00"), the same in every language."""
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        zone_info = get_timezone(zone) if isinstance(zone, str) or zone is None else zone
        return format_datetime(moment, "short", tzinfo=zone_info, locale=self.language) + " UTC" + \
            format_datetime(moment, "xxx", tzinfo=zone_info, locale=self.language)

    def number(self, value: float, digits: int = 2) -> str:
        """0.57 as "0,57" in Portuguese and "0.57" in English."""
        return format_decimal(round(value, digits), format=f"0.{'0' * digits}", locale=self.language)


def translator(language: str | None) -> Translator:
    """The translator for `language` (an unknown or missing one gets the default, Portuguese)."""
    return Translator(language if language in LANGUAGES else DEFAULT_LANGUAGE)


def negotiate(preferred: Iterable[str | None]) -> str:
    """The app's language for a browser's preferred locales ("pt-BR", "en-US", ...), else the default."""
    wanted = [tag.replace("-", "_") for tag in preferred if tag]
    found = Locale.negotiate(wanted, list(LANGUAGES), sep="_") if wanted else None
    if found is None:  # "pt_PT" and "pt" still read Portuguese best
        found = next((language for tag in wanted for language in LANGUAGES
                      if language.split("_")[0] == tag.split("_")[0]), None)
    return str(found) if found is not None else DEFAULT_LANGUAGE
