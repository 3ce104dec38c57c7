"""Writes exported rows as CSV or JSON text. Formatting only; the store decides what is exported and to whom."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from typing import Any, Sequence

from biomarker.store.errors import ExportFormatError

FORMATS = ("csv", "json")


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ExportFormatError(f"export format {fmt!r} is not one of {', '.join(FORMATS)}")
    return fmt


def _plain(value: Any) -> Any:
    return value.isoformat(timespec="microseconds") if isinstance(value, datetime) else value


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
        writer.writerow({column: _plain(row[column]) for column in columns})
    return buffer.getvalue()
