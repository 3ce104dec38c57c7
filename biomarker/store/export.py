"""Writes exported rows as CSV or JSON text. Formatting only; the store decides what is exported and to whom.

One schema per table, the same in both formats (docs/store.md "Export schemas"): a structured value (a result's
`quality`, an audit event's `payload`) is JSON in both, an object in a JSON export and JSON text in a CSV cell,
never a Python repr and never a JSON string inside the JSON.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from typing import Any, Sequence

from biomarker.store.chain import canonical_json
from biomarker.store.errors import ExportFormatError

FORMATS = ("csv", "json")
# Columns the database keeps as JSON text: the audit payload is stored as the exact canonical text that was hashed
# (so no round trip can change it), and is exported as the value that text holds.
JSON_TEXT_COLUMNS = frozenset({"payload"})
# A spreadsheet runs a cell that starts with one of these as a formula (OWASP "CSV injection"): a typed user
# name such as =cmd|' /C calc'!A0 must reach the auditor's spreadsheet as text.
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ExportFormatError(f"export format {fmt!r} is not one of {', '.join(FORMATS)}")
    return fmt


def _plain(value: Any) -> Any:
    return value.isoformat(timespec="microseconds") if isinstance(value, datetime) else value


def _value(column: str, value: Any) -> Any:
    """A cell as the schema has it: times as ISO text, JSON text columns parsed."""
    if column in JSON_TEXT_COLUMNS and isinstance(value, str):
        return json.loads(value)
    return _plain(value)


def _json_cell(value: Any) -> str:
    """A structured value as one CSV cell of JSON text. Characters a spreadsheet would not show become \\uXXXX
    escapes, which leave the JSON valid and meaning the same (they can only occur inside its strings)."""
    text = canonical_json(value)
    return "".join(ch if ch.isprintable() or ch == " " else json.dumps(ch)[1:-1] for ch in text)


def _csv_cell(value: Any) -> Any:
    """Text as a spreadsheet shows it without running it: a formula prefix gets a leading apostrophe, control
    characters become visible escapes. Numbers pass unchanged (-0.5 is a number, not a formula); objects and
    lists are JSON text (which starts with { or [, never a formula)."""
    if isinstance(value, (dict, list)):
        return _json_cell(value)
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
        document["rows"] = [{column: _value(column, row[column]) for column in columns} for row in rows]
        return json.dumps(document, indent=1, ensure_ascii=False)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({column: _csv_cell(_value(column, row[column])) for column in columns})
    return buffer.getvalue()
