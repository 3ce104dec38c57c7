"""Typed records that travel through the pipeline, and the specific errors raised on bad input.

No torch here: the store, the CLI's audit commands and the app import this module without a GPU stack.
Units are part of the field names (`duration_s`, `sample_rate_hz`) so no reader has to guess them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


# --------------------------------------------------------------------------------------------------- errors
DEFAULT_MODEL = "ri-screener"  # the shipped screener every command and the app use unless told otherwise


class BiomarkerError(Exception):
    """Base of every error the library raises on purpose."""


class AudioError(BiomarkerError, ValueError):
    """A recording could not be accepted. The message names the input and the problem."""

    def __init__(self, source: str, problem: str):
        self.source = source
        self.problem = problem
        super().__init__(f"{source}: {problem}")


class EmptyAudioError(AudioError):
    """Zero bytes, or a valid header with zero samples."""


class NotAudioError(AudioError):
    """The bytes are not a recognised audio container."""


class TruncatedAudioError(AudioError):
    """The header promises more data than the file holds, or the header itself is cut short."""


class UnsupportedCodecError(AudioError):
    """A known container holding an encoding no available decoder reads."""


class NonFiniteAudioError(AudioError):
    """NaN or infinite samples (float WAV)."""


class FileTooLargeError(AudioError):
    """The input is larger than the configured size cap (checked before decoding)."""


class SampleRateTooLowError(AudioError):
    """Below 8 kHz there is not enough bandwidth for the speech features the models use."""


class TooManyChannelsError(AudioError):
    """More channels than any microphone set-up we accept."""


class QualityError(AudioError):
    """The recording decoded but failed the quality gate; `report` holds the measurements."""

    def __init__(self, source: str, problem: str, report: "QualityReport | None" = None):
        self.report = report
        super().__init__(source, problem)


class TooShortError(QualityError):
    """Shorter than the minimum duration."""


class TooLongError(QualityError):
    """Longer than the maximum duration."""


class SilentAudioError(QualityError):
    """No speech energy above the silence floor."""


class DrownedInNoiseError(QualityError):
    """Loud enough, but nothing rises out of the recording's own background (a steady hum, or noise as loud as the
    voice): telling the clinician "silent" would send them looking for a muted microphone."""


class ClippedAudioError(QualityError):
    """Too many samples at full scale: the microphone gain was too high."""


class StorageFullError(BiomarkerError, OSError):
    """A folder of the data store has no space left, or cannot be written: the result could not be kept there.

    Here, not in the store, because the screener reports it too (`screen_and_record` keeps the score in its
    outcome and the log when the store cannot), and the screener never imports the store. `folder` is named in
    the message and kept for the user's language.
    """

    def __init__(self, folder: Path | str, error: OSError, what: str):
        self.folder = str(folder)
        reason = error.strerror or str(error)
        super().__init__(f"{what} could not be written to {self.folder}: {reason}")


class CohortError(BiomarkerError, ValueError):
    """A cohort manifest row is invalid; the message names the file, the row and the problem."""


class ModelNotFoundError(BiomarkerError, LookupError):
    """No model of that name or directory."""


class FeatureError(BiomarkerError, ValueError):
    """A feature extractor was asked for by an unknown name, with a bad setting, or given a badly shaped batch."""


class ModelConfigError(BiomarkerError, ValueError):
    """A model was asked for with an unknown setting or a value it cannot be built with (the message names both)."""


class ModelInputError(BiomarkerError, ValueError):
    """A batch does not fit the model: wrong feature count, a clip shorter than one token, lengths out of range."""


# -------------------------------------------------------------------------------------------------- records
@dataclass(frozen=True)
class Recording:
    """Decoded mono audio at `sample_rate_hz`, float32 in [-1, 1].

    `original_sample_rate_hz` and `original_channels` describe the input before resampling and mix-down,
    so the audit trail says what the clinician actually uploaded.
    """

    samples: np.ndarray
    sample_rate_hz: int
    source: str
    original_sample_rate_hz: int
    original_channels: int
    sha256: str

    @property
    def duration_s(self) -> float:
        return len(self.samples) / float(self.sample_rate_hz)


@dataclass(frozen=True)
class QualityReport:
    """Measured quality of one recording and the verdict of the gate.

    `reasons` lists every failed check in plain words (empty when `passed`).
    """

    duration_s: float
    speech_ratio: float
    clipping_ratio: float
    peak: float
    rms_dbfs: float
    snr_db: float
    passed: bool
    reasons: tuple[str, ...] = ()

    def summary(self) -> str:
        """One line for a CSV cell or a UI caption: 'ok' or the reasons joined."""
        return "ok" if self.passed else "; ".join(self.reasons)


DECISION_POSITIVE = "positive"  # refer for an SpO2 check
DECISION_NEGATIVE = "negative"  # no sign of respiratory insufficiency


@dataclass(frozen=True)
class Score:
    """The screener's answer for one recording.

    `probability` is the calibrated probability of respiratory insufficiency; `decision` compares it with the
    model's operating `threshold`. This screens (refer for an SpO2 check); it never estimates SpO2.
    """

    probability: float
    threshold: float
    decision: str
    model_name: str
    model_version: str
    cohort: str
    device: str
    latency_ms: float
    quality: QualityReport | None = None
    extras: dict = field(default_factory=dict)

    @property
    def refer(self) -> bool:
        return self.decision == DECISION_POSITIVE


# ---------------------------------------------------------------------- limits read before decoding (issue 24)
class SampleRateTooHighError(AudioError):
    """Above the accepted range: no microphone records it, and resampling from it costs memory out of all
    proportion to the file's size (a 40 KB WAV claiming 1,000,003 Hz once asked for 64 GB)."""


class TooMuchAudioError(AudioError):
    """The container claims more audio (duration, or frames x channels) than is ever decoded; refused from the
    header, before any sample is decoded, so a small file that unpacks to hours cannot take the machine's memory."""


class CorruptAudioError(AudioError):
    """The decoder skipped damaged frames (it said so, or the stream ended before its container's own count):
    what is left is not the recording the clinician made, so it is not scored."""


class NotARegularFileError(AudioError):
    """A directory, FIFO, device or socket where a file was expected (reading a FIFO would block the batch)."""


class UnreadableFileError(AudioError):
    """The path does not exist or the operating system refused to read it; the message carries its reason."""
