"""The spool: results kept as JSON files while the database is unreachable, replayed when it is back.

A result is spooled whole (recording facts, quality, score, who, where, when, pseudonym) so the replay writes
exactly what would have been written; its `result_uid` makes the replay idempotent.

Each file is signed: an HMAC-SHA256 over its canonical JSON with a key derived from the server secret. Why: the
spool folder is a way into the database that bypasses every check of a live write, so a file edited to
probability 7.5, or forged with an unknown actor and `../../../etc/passwd` as its audio, must be refused. A file
that fails its signature or cannot be read is moved to `rejected/` beside the spool (kept for the auditor, never
deleted) and named in the flush report; the store re-checks the values of a genuine one as a live write would.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from biomarker.atomic_files import write_atomically
from biomarker.records import StorageFullError
from biomarker.store.chain import canonical_json
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


REJECTED_DIR = "rejected"


class Spool:
    """A folder of signed `<result_uid>.json` files, oldest first; refused files go to `rejected/`."""

    def __init__(self, folder: Path, secret: bytes):
        self.folder = folder
        self._key = hmac.new(secret, b"biomarker spool v1", hashlib.sha256).digest()

    def _signature(self, body: str) -> str:
        return hmac.new(self._key, body.encode("utf-8"), hashlib.sha256).hexdigest()

    def write(self, result: PendingResult) -> Path:
        """Persist `result` (atomically, fsynced: this is the only copy until the database is back). Raises
        `StorageFullError` naming the folder when it cannot be written (a full disk), leaving no partial file."""
        path = self.folder / f"{result.result_uid}.json"
        body = canonical_json(asdict(result))
        signed = json.dumps({"result": json.loads(body), "hmac": self._signature(body)}, indent=1)
        try:  # no half-written file is left behind, whatever failed
            write_atomically(path, signed.encode("utf-8"), durable=True)
        except OSError as error:
            raise StorageFullError(self.folder, error, "the result (database unreachable, spool full)") from error
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
        if not isinstance(data, dict) or not isinstance(data.get("result"), dict):
            raise SpoolError(f"{path}: expected a signed spool record, found something else")
        body = canonical_json(data["result"])
        if not hmac.compare_digest(str(data.get("hmac", "")), self._signature(body)):
            raise SpoolError(f"{path}: its signature does not match (edited, or not written by this server)")
        return PendingResult.from_dict(data["result"], str(path))

    def remove(self, path: Path) -> None:
        path.unlink(missing_ok=True)

    def reject(self, path: Path) -> Path | None:
        """Move a refused file aside into `rejected/` (None when another flusher moved or wrote it first)."""
        target = self.folder / REJECTED_DIR / path.name
        target.parent.mkdir(mode=0o700, exist_ok=True)
        try:
            os.replace(path, target)
        except FileNotFoundError:
            return None
        return target
