"""The spool: results kept as JSON files while the database is unreachable, replayed when it is back.

A result is spooled whole (recording facts, quality, score, who, where, when, pseudonym) so the replay writes
exactly what would have been written; its `result_uid` makes the replay idempotent.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from biomarker.store.errors import SpoolError


@dataclass(frozen=True)
class PendingResult:
    """Everything `record_result` writes, as plain JSON-able values (times as ISO text, naive UTC)."""

    result_uid: str
    created_at: str
    actor: str
    site: str | None
    pseudonym: str | None
    audio_path: str
    sha256: str
    duration_s: float
    sample_rate_hz: int
    quality: dict | None
    model_name: str
    model_version: str
    cohort: str
    probability: float
    threshold: float
    decision: str
    device: str
    latency_ms: float

    @classmethod
    def from_dict(cls, data: dict, source: str) -> "PendingResult":
        expected = {f.name for f in fields(cls)}
        missing, unknown = expected - data.keys(), data.keys() - expected
        if missing or unknown:
            raise SpoolError(f"{source}: missing fields {sorted(missing)}, unknown fields {sorted(unknown)}")
        return cls(**data)


class Spool:
    """A folder of `<result_uid>.json` files, oldest first."""

    def __init__(self, folder: Path):
        self.folder = folder

    def write(self, result: PendingResult) -> Path:
        """Persist `result` (atomically, fsynced: this is the only copy until the database is back)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{result.result_uid}.json"
        temporary = path.with_suffix(".tmp")
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(asdict(result), handle, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        return path

    def pending(self) -> list[Path]:
        """Spool files in the order they were written."""
        if not self.folder.is_dir():
            return []
        return sorted(self.folder.glob("*.json"), key=lambda p: (p.stat().st_mtime_ns, p.name))

    def read(self, path: Path) -> PendingResult:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise SpoolError(f"{path}: cannot be read back ({error})") from error
        if not isinstance(data, dict):
            raise SpoolError(f"{path}: expected a JSON object, found {type(data).__name__}")
        return PendingResult.from_dict(data, str(path))

    def remove(self, path: Path) -> None:
        path.unlink(missing_ok=True)
