"""The cohort manifest: one CSV row per recording, validated row by row.

WHY a strict reader: a clinical cohort with a silently dropped or mislabelled row gives a metric nobody can
audit. Every problem is reported with the manifest file, the CSV line number and the offending value, and the
reader refuses the whole file rather than skipping rows.

Columns: `path,label,speaker_id,cohort` are required; `sex,age,dyspnea,spo2,split` are optional; any other
column is kept verbatim in `CohortItem.extras` (the synthesizer records severity, voice, sentence there).
Paths are relative to the manifest's folder unless absolute.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Sequence

from biomarker.records import CohortError

REQUIRED_COLUMNS = ("path", "label", "speaker_id", "cohort")
OPTIONAL_COLUMNS = ("sex", "age", "dyspnea", "spo2", "split")
SPLITS = ("train", "val", "test")
SEXES = ("F", "M")
MAX_PROBLEMS_LISTED = 20


@dataclass(frozen=True)
class CohortItem:
    """One labelled recording. `label` is 1 for respiratory insufficiency (patient), 0 for control."""

    path: Path
    label: int
    speaker_id: str
    cohort: str
    sex: str | None = None
    age: float | None = None
    dyspnea: int | None = None
    spo2: float | None = None
    split: str | None = None
    extras: dict[str, str] = field(default_factory=dict)

    def with_split(self, split: str) -> "CohortItem":
        return replace(self, split=split)


def _parse_label(value: str) -> int:
    if value.strip() not in ("0", "1"):
        raise ValueError(f"label must be 0 or 1, got {value!r}")
    return int(value)


def _parse_optional_float(name: str, value: str, low: float, high: float) -> float | None:
    if value.strip() == "":
        return None
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number) or not low <= number <= high:
        raise ValueError(f"{name} must lie in [{low:g}, {high:g}], got {value!r}")
    return number


def _parse_row(row: dict[str, str], base: Path, check_files: bool) -> CohortItem:
    """Turn one CSV row into a CohortItem; raises ValueError with a message naming the bad field."""
    for column in REQUIRED_COLUMNS:
        if (row.get(column) or "").strip() == "":
            raise ValueError(f"{column} is empty")
    path = Path(row["path"].strip())
    if not path.is_absolute():
        path = base / path
    if check_files and not path.is_file():
        raise ValueError(f"audio file not found: {path}")
    sex = (row.get("sex") or "").strip().upper() or None
    if sex is not None and sex not in SEXES:
        raise ValueError(f"sex must be one of {SEXES} or empty, got {row['sex']!r}")
    split = (row.get("split") or "").strip() or None
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS} or empty, got {split!r}")
    dyspnea = _parse_optional_float("dyspnea", row.get("dyspnea") or "", 0, 10)
    extras = {k: v for k, v in row.items() if k not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS and k is not None}
    return CohortItem(
        path=path,
        label=_parse_label(row["label"]),
        speaker_id=row["speaker_id"].strip(),
        cohort=row["cohort"].strip(),
        sex=sex,
        age=_parse_optional_float("age", row.get("age") or "", 0, 130),
        dyspnea=None if dyspnea is None else int(dyspnea),
        spo2=_parse_optional_float("spo2", row.get("spo2") or "", 0, 100),
        split=split,
        extras=extras,
    )


def raise_problems(source: Path | str, problems: Sequence[str]) -> None:
    """Raise one CohortError listing every problem found (not just the first), so one fix round suffices."""
    if not problems:
        return
    shown = list(problems[:MAX_PROBLEMS_LISTED])
    if len(problems) > MAX_PROBLEMS_LISTED:
        shown.append(f"... and {len(problems) - MAX_PROBLEMS_LISTED} more")
    raise CohortError(f"{source}: {len(problems)} invalid row(s):\n  " + "\n  ".join(shown))


def read_manifest(path: str | Path, *, check_files: bool = True) -> list[CohortItem]:
    """Read and validate a manifest CSV; raise CohortError naming every bad row (line number and problem)."""
    path = Path(path)
    if not path.is_file():
        raise CohortError(f"{path}: manifest not found")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise CohortError(f"{path}: missing column(s) {missing}; header is {reader.fieldnames}")
        items: list[CohortItem] = []
        problems: list[str] = []
        for row in reader:
            try:
                items.append(_parse_row(row, path.parent, check_files))
            except ValueError as error:
                problems.append(f"line {reader.line_num}: {error}")
    raise_problems(path, problems)
    if not items:
        raise CohortError(f"{path}: manifest has a header but no rows")
    check_speaker_labels(items, path)
    return items


def check_speaker_labels(items: Iterable[CohortItem], source: Path | str) -> None:
    """A speaker is either a patient or a control within one cohort; mixed labels point at a labelling error."""
    labels: dict[tuple[str, str], set[int]] = {}
    for item in items:
        labels.setdefault((item.cohort, item.speaker_id), set()).add(item.label)
    mixed = [f"speaker {s!r} in cohort {c!r} has both labels" for (c, s), ls in labels.items() if len(ls) > 1]
    raise_problems(source, mixed)


def write_manifest(items: Sequence[CohortItem], path: str | Path) -> Path:
    """Write items as a manifest CSV with paths relative to the manifest's folder where possible."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    extra_columns = sorted({k for item in items for k in item.extras})
    columns = list(REQUIRED_COLUMNS + OPTIONAL_COLUMNS) + extra_columns
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for item in items:
            try:
                shown_path = item.path.resolve().relative_to(path.parent.resolve())
            except ValueError:
                shown_path = item.path
            writer.writerow(
                {
                    "path": str(shown_path),
                    "label": item.label,
                    "speaker_id": item.speaker_id,
                    "cohort": item.cohort,
                    "sex": item.sex or "",
                    "age": "" if item.age is None else f"{item.age:g}",
                    "dyspnea": "" if item.dyspnea is None else item.dyspnea,
                    "spo2": "" if item.spo2 is None else f"{item.spo2:g}",
                    "split": item.split or "",
                    **{k: item.extras.get(k, "") for k in extra_columns},
                }
            )
    return path


def select_split(items: Sequence[CohortItem], split: str) -> list[CohortItem]:
    """Items of one split; an empty result is an error because it would make every metric meaningless."""
    chosen = [item for item in items if item.split == split]
    if not chosen:
        raise CohortError(f"no items in split {split!r} (splits present: {sorted({i.split for i in items}, key=str)})")
    return chosen
