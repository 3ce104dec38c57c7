"""A content-addressed folder for recordings: a file's name is the SHA-256 of its bytes.

The audio is written here before scoring, so a crash or a database outage never loses what the clinician
recorded; writing the same bytes twice is a no-op, and an edited file no longer matches its name.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from biomarker.atomic_files import write_atomically
from biomarker.records import StorageFullError
from biomarker.store.errors import AudioPathError

_SUFFIX = re.compile(r"^\.[a-z0-9]{1,8}$")


def audio_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def save_audio(audio_dir: Path, data: bytes, suffix: str = ".wav") -> Path:
    """Write `data` to `audio_dir/<sha[:2]>/<sha><suffix>` atomically and return that path."""
    suffix = suffix.lower()
    if not _SUFFIX.match(suffix):
        raise AudioPathError(f"audio suffix {suffix!r} must look like '.wav' (a dot and 1-8 letters or digits)")
    if not data:
        raise AudioPathError("refusing to store an empty recording (0 bytes)")
    sha = audio_sha256(data)
    path = audio_dir / sha[:2] / f"{sha}{suffix}"
    if path.exists():
        return path
    try:
        # A unique temporary per writer: two sessions (threads of one app process) often save the same recording.
        write_atomically(path, data)  # readers see the whole file or none of it
    except OSError as error:  # a full disk above all: no half-written file stays, and the folder is named
        raise StorageFullError(audio_dir, error, "the recording") from error
    return path


def relative_audio_path(audio_dir: Path, path: Path) -> str:
    """The path as stored in the database: relative to the audio folder, so the data folder can move.

    Raises `AudioPathError` for a file outside the folder (it was not saved with `save_audio`).
    """
    resolved = Path(path).resolve()
    try:
        relative = resolved.relative_to(audio_dir.resolve())
    except ValueError:
        raise AudioPathError(f"{path}: not inside the audio folder {audio_dir}; save it with store.save_audio first") from None
    if not resolved.is_file():
        raise AudioPathError(f"{path}: no such recording in the audio folder")
    return relative.as_posix()


def sha256_from_path(relative_path: str) -> str:
    """The content hash a content-addressed path carries in its file name."""
    return Path(relative_path).name.split(".", 1)[0]
