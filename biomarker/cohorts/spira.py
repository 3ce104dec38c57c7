"""Readers for the CSV layouts the SPIRA project published, turned into validated `CohortItem`s.

Three layouts exist (see shared/research/anchors-clinical.md §2):
- SPIRA-ACL 2021: `file_path,class` (0 control, 1 patient), optional `sexo,idade,nivel_falta_de_ar`;
- SPIRA phase 2: `file_path,insuficiencia_respiratoria`, where a `_<window index>` suffix on the file stem
  marks windows cut from one recording (so they share a speaker and must stay in one split);
- SpO2 tables: `arquivo,oxigenacao`; respiratory insufficiency is operationally SpO2 < 92 %.
SPIRA has one recording per participant, so by default the speaker id is the file stem (without window suffix).
Other groups' CSVs in these layouts may hold several recordings per person: a speaker column (`speaker_column`,
or one of `SPEAKER_COLUMNS` found in the header) or a regular expression on the file path (`speaker_pattern`,
its `speaker` group or first group) then names the speaker. When neither exists, `SpiraImport.speakers_from`
says so, because a split over files of unknown speakers is not speaker-disjoint.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from biomarker.cohorts.manifest import CohortItem, check_speaker_labels, raise_problems
from biomarker.records import CohortError

SPO2_RI_THRESHOLD = 92.0  # percent; below this the recording counts as respiratory insufficiency
_WINDOW_SUFFIX = re.compile(r"_\d+$")
SPEAKER_COLUMNS = ("speaker_id", "speaker", "participant", "participante", "paciente", "id_paciente")
FROM_FILE_NAME = "file name (each file its own speaker, window suffix removed)"


@dataclass(frozen=True)
class SpiraImport:
    """The items and where their speaker ids came from: a column, a pattern, or the file name."""

    items: list[CohortItem]
    speakers_from: str

    @property
    def speaker_disjoint(self) -> bool:
        """False when the speaker is only the file name: two files of one person may land in different splits."""
        return self.speakers_from != FROM_FILE_NAME


def _speaker_from_path(file_path: str) -> str:
    return _WINDOW_SUFFIX.sub("", Path(file_path).stem)


def _speaker_reader(fieldnames: list[str] | None, speaker_column: str | None,
                    speaker_pattern: str | None) -> tuple[Callable[[dict[str, str], str], str], str]:
    """How each row's speaker is found, and the words saying so."""
    columns = fieldnames or []
    if speaker_column is not None and speaker_column not in columns:
        raise CohortError(f"speaker column {speaker_column!r} is not in the header {columns}")
    if speaker_column is not None and speaker_pattern is not None:
        raise CohortError("give a speaker column or a speaker pattern, not both")
    column = speaker_column or next((c for c in SPEAKER_COLUMNS if c in columns), None) if speaker_pattern is None else None
    if column is not None:
        def from_column(row: dict[str, str], file_path: str) -> str:
            value = (row.get(column) or "").strip()
            if not value:
                raise ValueError(f"{column} (the speaker) is empty")
            return value

        return from_column, f"column {column!r}"
    if speaker_pattern is not None:
        try:
            pattern = re.compile(speaker_pattern)
        except re.error as error:
            raise CohortError(f"speaker pattern {speaker_pattern!r} is not a regular expression ({error})") from error
        if pattern.groups == 0:
            raise CohortError(f"speaker pattern {speaker_pattern!r} needs a group, e.g. '(?P<speaker>p\\d+)_'")

        def from_pattern(row: dict[str, str], file_path: str) -> str:
            match = pattern.search(file_path)
            if match is None:
                raise ValueError(f"speaker pattern {speaker_pattern!r} does not match {file_path!r}")
            return match.group("speaker") if "speaker" in pattern.groupindex else match.group(1)

        return from_pattern, f"pattern {speaker_pattern!r} on the file path"
    return (lambda row, file_path: _speaker_from_path(file_path)), FROM_FILE_NAME


def _binary(value: str, column: str) -> int:
    if value.strip() not in ("0", "1"):
        raise ValueError(f"{column} must be 0 or 1, got {value!r}")
    return int(value)


def _spo2_label(value: str, threshold: float) -> tuple[int, float]:
    try:
        spo2 = float(value.replace(",", "."))
    except ValueError:
        raise ValueError(f"oxigenacao must be a number, got {value!r}") from None
    if not 50.0 <= spo2 <= 100.0:
        raise ValueError(f"oxigenacao must lie in [50, 100] percent, got {value!r}")
    return int(spo2 < threshold), spo2


def _optional_number(row: dict[str, str], column: str) -> float | None:
    value = (row.get(column) or "").strip()
    if value == "":
        return None
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{column} must be a number, got {value!r}") from None


def detect_layout(fieldnames: list[str] | None) -> str:
    """Name the SPIRA layout from the header, or raise CohortError listing the accepted ones."""
    columns = set(fieldnames or [])
    if {"file_path", "class"} <= columns:
        return "acl2021"
    if {"file_path", "insuficiencia_respiratoria"} <= columns:
        return "phase2"
    if {"arquivo", "oxigenacao"} <= columns:
        return "spo2"
    raise CohortError(
        f"unrecognised SPIRA header {fieldnames}; expected file_path,class or "
        "file_path,insuficiencia_respiratoria or arquivo,oxigenacao"
    )


def read_spira_csv(
    path: str | Path,
    *,
    cohort: str = "spira",
    spo2_threshold: float = SPO2_RI_THRESHOLD,
    check_files: bool = True,
    speaker_column: str | None = None,
    speaker_pattern: str | None = None,
) -> SpiraImport:
    """Read any SPIRA layout; paths are relative to the CSV's folder. Bad rows raise, naming line and value."""
    path = Path(path)
    if not path.is_file():
        raise CohortError(f"{path}: SPIRA CSV not found")
    items: list[CohortItem] = []
    problems: list[str] = []
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        layout = detect_layout(reader.fieldnames)
        speaker_of, speakers_from = _speaker_reader(reader.fieldnames, speaker_column, speaker_pattern)
        for row in reader:
            try:
                items.append(_read_row(row, layout, path.parent, cohort, spo2_threshold, check_files, speaker_of))
            except ValueError as error:
                problems.append(f"line {reader.line_num}: {error}")
    raise_problems(path, problems)
    if not items:
        raise CohortError(f"{path}: SPIRA CSV has a header but no rows")
    check_speaker_labels(items, path)
    return SpiraImport(items, speakers_from)


def _read_row(
    row: dict[str, str], layout: str, base: Path, cohort: str, spo2_threshold: float, check_files: bool,
    speaker_of: Callable[[dict[str, str], str], str],
) -> CohortItem:
    file_column = "arquivo" if layout == "spo2" else "file_path"
    file_path = (row.get(file_column) or "").strip()
    if not file_path:
        raise ValueError(f"{file_column} is empty")
    audio = Path(file_path) if Path(file_path).is_absolute() else base / file_path
    if check_files and not audio.is_file():
        raise ValueError(f"audio file not found: {audio}")
    spo2 = None
    if layout == "acl2021":
        label = _binary(row["class"], "class")
    elif layout == "phase2":
        label = _binary(row["insuficiencia_respiratoria"], "insuficiencia_respiratoria")
    else:
        label, spo2 = _spo2_label(row["oxigenacao"], spo2_threshold)
    sex = (row.get("sexo") or "").strip().upper()[:1] or None
    if sex is not None and sex not in ("F", "M"):
        raise ValueError(f"sexo must be F or M, got {row['sexo']!r}")
    dyspnea = _optional_number(row, "nivel_falta_de_ar")
    return CohortItem(
        path=audio,
        label=label,
        speaker_id=speaker_of(row, file_path),
        cohort=cohort,
        sex=sex,
        age=_optional_number(row, "idade"),
        dyspnea=None if dyspnea is None else int(dyspnea),
        spo2=spo2,
    )
