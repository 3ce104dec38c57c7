"""Writes exported rows as CSV or JSON text. Formatting only; the store decides what is exported and to whom."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from typing import Any, Sequence

from biomarker.store.errors import ExportFormatError

FORMATS = ("csv", "json")
# A spreadsheet runs a cell that starts with one of these as a formula (OWASP "CSV injection"): a typed user
# name such as =cmd|' /C calc'!A0 must reach the auditor's spreadsheet as text.
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ExportFormatError(f"export format {fmt!r} is not one of {', '.join(FORMATS)}")
    return fmt


def _plain(value: Any) -> Any:
    return value.isoformat(timespec="microseconds") if isinstance(value, datetime) else value


def _csv_cell(value: Any) -> Any:
    """Text as a spreadsheet shows it without running it: a formula prefix gets a leading apostrophe, control
    characters become visible escapes. Numbers pass unchanged (-0.5 is a number, not a formula)."""
    value = _plain(value)
    if not isinstance(value, str):
        return value
    value = "".join(ch if ch.isprintable() or ch == " " else ch.encode("unicode_escape").decode() for ch in value)
    return "'" + value if value.startswith(_FORMULA_PREFIXES) else value


def render(rows: Sequence[dict[str, Any]], columns: Sequence[str], fmt: str, header: dict[str, Any]) -> str:
    """CSV: one line per row with `columns` as header. JSON: `header` fields plus `rows`.

    The CSV has no room for `header`; whoever needs the period and the chain check alongside uses JSON.
    """
    if check_format(fmt) == "json":
        document = {key: _plain(value) for key, value in header.items()}
        document["rows"] = [{column: _plain(row[column]) for column in columns} for row in rows]
        return json.dumps(document, indent=1, ensure_ascii=False)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({column: _csv_cell(row[column]) for column in columns})
    return buffer.getvalue()
