"""The chain's anchor: an append-only file of signed chain heads, kept outside the database.

Why: the head row (`audit_head`) lives in the same database as the chain, so whoever can delete the newest
events can move it back too, or empty both tables ("intact: 0 rows"). After every transaction that appends to
the chain, the store appends one line `{"seq", "hash", "at", "mac"}` here; `mac` is an HMAC under the audit key,
so the lines cannot be made up by someone without the key. `audit verify` then requires that the chain still
reaches every anchored head, with the same hash there: truncation, a reset to genesis and a rewritten prefix
all disagree with some line. The same line goes into every export and, when `BIOMARKER_AUDIT_WITNESS` names a
command, to that command's standard input, for a copy out of reach of whoever holds this server.

The file may lag the chain (a crash between commit and append, a full disk): an anchor is a lower bound on the
chain, never a second copy of it, so a missing line weakens the check but can never fail a genuine chain.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Mapping

from biomarker.store.chain import VerifyResult, canonical_json
from biomarker.store.errors import StoreError
from biomarker.store.schema import utc_now

LOG = logging.getLogger(__name__)
WITNESS_TIMEOUT_S = 10.0


class WitnessError(StoreError):
    """The witness command failed or timed out: the anchor line was kept locally but not witnessed."""


@dataclass(frozen=True)
class AnchorLine:
    """One signed chain head: the chain had reached row `seq`, whose hash was `hash`, at time `at` (UTC)."""

    seq: int
    hash: str
    at: str
    mac: str

    def to_json(self) -> str:
        return canonical_json(asdict(self))


class Anchor:
    """The anchor file of one data folder (0600, appended with O_APPEND so concurrent writers never interleave)."""

    def __init__(self, path: Path, key: bytes):
        self.path = path
        self._key = hmac.new(key, b"biomarker audit anchor v1", hashlib.sha256).digest()

    def _mac(self, seq: int, digest: str, at: str) -> str:
        body = canonical_json({"seq": seq, "hash": digest, "at": at})
        return hmac.new(self._key, body.encode("utf-8"), hashlib.sha256).hexdigest()

    def sign(self, seq: int, digest: str) -> AnchorLine:
        at = utc_now().isoformat(timespec="microseconds")
        return AnchorLine(seq, digest, at, self._mac(seq, digest, at))

    def append(self, seq: int, digest: str) -> AnchorLine | None:
        """Sign and append the head `(seq, digest)`; None (with a warning) when the file cannot be written.

        Never raises for a write problem: the transaction it anchors has committed already, and failing now
        would tell the user a stored result was lost. No fsync: a line lost to a power cut only lets the anchor
        lag, which `verify` tolerates.
        """
        line = self.sign(seq, digest)
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, (line.to_json() + "\n").encode("utf-8"))  # one write: atomic under O_APPEND
            finally:
                os.close(fd)
        except OSError as error:
            LOG.warning("audit anchor %s not written (%s): chain head %d %s", self.path, error, seq, digest)
            return None
        return line

    def _key_check(self, line: AnchorLine) -> bool:
        return hmac.compare_digest(line.mac, self._mac(line.seq, line.hash, line.at))

    def check(self, hashes: Mapping[int, str], source: Path | None = None) -> VerifyResult:
        """Compare the chain (`seq -> stored hash`) with every anchored head in `source` (default: this file)."""
        anchored, problem = read_lines(source or self.path, self._key_check)
        if problem is not None:
            return problem
        last = max(hashes, default=0)
        newest = 0
        for number, line in enumerate(anchored, start=1):
            if line.seq > last:
                return VerifyResult(False, len(hashes), last + 1,
                                    f"row {last + 1} is missing: the anchor (line {number}, {line.at} UTC) vouches "
                                    f"for row {line.seq} but the chain ends at row {last} (truncated or reset)")
            if line.seq > 0 and hashes.get(line.seq) != line.hash:
                return VerifyResult(False, len(hashes), line.seq,
                                    f"row {line.seq}: its hash differs from the one anchored at {line.at} UTC "
                                    "(the chain was rewritten at or before this row)")
            newest = max(newest, line.seq)
        return VerifyResult(True, len(hashes), anchored_seq=newest)

    def witness(self, line: AnchorLine, command: str) -> None:
        """Hand `line` to the external witness command; raises `WitnessError` naming what went wrong."""
        try:
            done = subprocess.run(command, shell=True, input=line.to_json() + "\n", text=True,  # noqa: S602
                                  capture_output=True, timeout=WITNESS_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            raise WitnessError(f"audit witness {command!r} did not finish in {WITNESS_TIMEOUT_S:.0f} s") from None
        except OSError as error:
            raise WitnessError(f"audit witness {command!r} could not start: {error}") from None
        if done.returncode != 0:
            raise WitnessError(f"audit witness {command!r} failed (exit {done.returncode}): "
                               f"{done.stderr.strip()[:200]}")


def _bundle_anchors(bundle: dict) -> list[str]:
    """The anchor a FHIR Bundle export carries in `meta.extension` (biomarker.fhir.bundle; matched by the end of
    its URL, so the store needs no FHIR code)."""
    return [extension.get("valueString", "") for extension in (bundle.get("meta") or {}).get("extension", [])
            if str(extension.get("url", "")).endswith("/audit-anchor")]


def read_lines(path: Path, genuine: Callable[[AnchorLine], bool]) -> tuple[list[AnchorLine], VerifyResult | None]:
    """Anchor lines from a file: an anchor file (JSON lines), an export whose JSON header carries `anchor`, or a
    FHIR Bundle export."""
    if not path.exists():
        return [], None
    text = path.read_text(encoding="utf-8")
    try:
        document = json.loads(text)
    except ValueError:
        document = None
    raw = [document["anchor"]] if isinstance(document, dict) and isinstance(document.get("anchor"), dict) \
        else _bundle_anchors(document) if isinstance(document, dict) and document.get("resourceType") == "Bundle" \
        else [entry for entry in text.splitlines() if entry.strip()]
    anchored: list[AnchorLine] = []
    for number, entry in enumerate(raw, start=1):
        try:
            fields = json.loads(entry) if isinstance(entry, str) else entry
            line = AnchorLine(seq=int(fields["seq"]), hash=str(fields["hash"]), at=str(fields["at"]),
                              mac=str(fields["mac"]))
        except (ValueError, TypeError, KeyError):
            return anchored, VerifyResult(False, 0, None, f"{path} line {number}: not an anchor line", "anchor")
        if not genuine(line):
            return anchored, VerifyResult(False, 0, None, f"{path} line {number}: its signature does not match "
                                          "(edited, or not written with this audit key)", "anchor")
        anchored.append(line)
    return anchored, None
