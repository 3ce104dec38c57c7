"""The only inference path: audio in, calibrated `Score` out. The app, `biomarker score` and the benchmark all use it.

bytes / path ──► audio.load ──► quality gate ──► feature extractor ──► ScreeningModel ──► probability ──► Score
                 (decode, 16 kHz)  (require_quality)  (the model's own      (encoder + cohort head,    (threshold =
                                                        front-end config)    temperature-calibrated)    the model's)

One `Screener` is loaded per process and shared: decoding and the quality gate run in the caller's thread, the
model forward runs under a lock, so concurrent app sessions score safely without one model copy per session.
Bad input raises the specific `AudioError` subclass (or, from `score_many`, is returned in its slot) and is never
dropped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol, Sequence, Union

import numpy as np
import torch

from biomarker.audio import TARGET_RATE_HZ, AudioConfig, QualityConfig, load, require_quality
from biomarker.device import describe, pick_device
from biomarker.features import front_end, get_extractor
from biomarker.models import ScreeningModel, from_pretrained
from biomarker.models.catalog import Catalog, CatalogError
from biomarker.models.graphed import GraphConfig, GraphedScorer
from biomarker.models.runtime import OnnxScorer, RuntimeConfig
from biomarker.records import (
    DEFAULT_MODEL,
    DECISION_NEGATIVE,
    DECISION_POSITIVE,
    AudioError,
    ModelNotFoundError,
    QualityReport,
    Recording,
    Score,
    StorageFullError,
)

LOG = logging.getLogger(__name__)
AudioSource = Union[str, Path, bytes, BinaryIO]
_Accepted = tuple[int, Recording, QualityReport, float]  # score_many: source index, recording, gate report, decode ms

# Shipped models live in the repository's `pretrained/` folder, next to the package.
PRETRAINED_DIR = Path(__file__).resolve().parent.parent / "pretrained"


def resolve_model_dir(model: str | Path) -> Path:
    """A directory is used as is; a name (`ri-screener`, or `ri-screener@3` for one exact version) goes through
    the model catalog (shipped `pretrained/` plus `$BIOMARKER_HOME/models`, honouring `promote`). Missing means
    a clear error, not a traceback from deep inside safetensors."""
    candidate = Path(model)
    if candidate.is_dir():
        return candidate
    try:
        return Catalog(shipped_root=PRETRAINED_DIR).resolve(str(model))
    except (ModelNotFoundError, CatalogError) as error:
        raise ModelNotFoundError(
            f"model {str(model)!r}: {error}; pass --model DIR with a ScreeningModel saved by `biomarker finetune`"
        ) from None


@dataclass(frozen=True)
class ScreenerConfig:
    """Knobs of the inference path. `batch_size` bounds memory in `score_many`; the audio and quality
    configs are the same dataclasses `biomarker.audio` uses, so the app and the CLI gate recordings alike.

    `cpu_threads` sets torch's (process-wide) thread count when scoring on the CPU; None leaves it alone.
    `biomarker bench scoring` measured why it matters: on a busy 2-core machine one thread scored a 10 s clip
    end to end in 72 ms and two threads in 1312 ms (OpenMP workers stall waiting for each other).

    `graphs` (None: off) replays single clips on CUDA through CUDA graphs (`biomarker.models.graphed`): the same
    score with one launch instead of one per operation.

    `runtime` picks the CPU engine of the unpadded forward (`biomarker.models.runtime`): eager PyTorch, or ONNX
    Runtime (what `biomarker score` uses; chosen by measurement, issue 28). Every Score's `device` names the engine
    that computed it, e.g. `cpu/onnxruntime-1.32.0`; plain `cpu` is eager PyTorch."""

    audio: AudioConfig = field(default_factory=AudioConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    batch_size: int = 16
    cpu_threads: int | None = None
    graphs: GraphConfig | None = field(default_factory=GraphConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)


@dataclass(frozen=True)
class Assessment:
    """What the app shows for one recording: the decoded audio, its quality report and the score."""

    recording: Recording
    quality: QualityReport
    score: Score


class Screener:
    """A loaded screening model plus its own feature front-end on one device."""

    def __init__(self, model: torch.nn.Module, device: torch.device, config: ScreenerConfig = ScreenerConfig()):
        if device.type == "cpu" and config.cpu_threads is not None:
            torch.set_num_threads(config.cpu_threads)
        self.model = model.to(device).eval()
        self.extractor = front_end(model.feature_config).to(device).eval()
        # The clinician's plot is always an MFCC-gram, whatever front-end the model uses; it stays on the CPU.
        self._display_extractor = get_extractor("mfccgram").eval()
        self.device = device
        self.device_name = describe(device)
        self.config = config
        self._lock = threading.Lock()
        self.graphed = (GraphedScorer(self.model, config.graphs)
                         if device.type == "cuda" and config.graphs and isinstance(self.model, ScreeningModel) else None)
        self.onnx = (OnnxScorer(self.model, config.runtime)
                     if device.type == "cpu" and config.runtime.name == "onnxruntime" and isinstance(self.model, ScreeningModel)
                     else None)

    @classmethod
    def load(
        cls, model: str | Path = DEFAULT_MODEL, device: str = "auto", config: ScreenerConfig = ScreenerConfig()
    ) -> "Screener":
        """Load a shipped model by name or a bundle directory saved with `save_pretrained`."""
        directory = resolve_model_dir(model)
        bundle = from_pretrained(directory)
        if not isinstance(bundle, ScreeningModel):
            raise ModelNotFoundError(
                f"model {str(model)!r} ({directory}) is a bare {type(bundle).__name__}, not a screening model; "
                "fine-tune it into a ScreeningModel bundle with `biomarker finetune` first"
            )
        return cls(bundle, pick_device(device), config)

    # ---------------------------------------------------------------------------------------- identity
    @property
    def model_name(self) -> str:
        return str(self.model.name)

    @property
    def model_version(self) -> str:
        return str(self.model.version)

    @property
    def model_label(self) -> str:
        """Exact model identity for a CSV cell or a caption: `name@version`."""
        return f"{self.model_name}@{self.model_version}"

    @property
    def trained_on_synthetic(self) -> bool:
        """True unless the bundle says it saw real patients; the app then shows the synthetic-data disclaimer.
        Defaulting to True is the honest side: no model here has been validated on patients."""
        return bool(getattr(self.model, "trained_on_synthetic", True))

    # ----------------------------------------------------------------------------------------- scoring
    def load_audio(self, source: AudioSource, *, name: str | None = None) -> Recording:
        """Decode with the screener's audio config (raises the specific `AudioError`)."""
        return load(source, name=name, config=self.config.audio)

    def assess(self, source: AudioSource, *, name: str | None = None, cohort: str | None = None) -> Assessment:
        """Decode, gate and score one recording; latency covers all of it (bytes to probability)."""
        started = time.perf_counter()
        return self.assess_recording(self.load_audio(source, name=name), cohort=cohort, started=started)

    def assess_recording(
        self, recording: Recording, *, cohort: str | None = None, started: float | None = None
    ) -> Assessment:
        """Gate and score an already decoded recording. `started` (a `time.perf_counter()` value) lets the
        caller count its own decoding and saving in the reported latency."""
        started = time.perf_counter() if started is None else started
        quality = require_quality(recording, self.config.quality)
        [probability], engine = self._probabilities([recording], [quality], cohort)
        latency_ms = (time.perf_counter() - started) * 1000.0
        return Assessment(recording, quality, self._score(probability, cohort, quality, latency_ms, engine))

    def score(self, source: AudioSource, *, name: str | None = None, cohort: str | None = None) -> Score:
        """Score one recording. Raises an `AudioError` subclass naming the input when it cannot be scored."""
        return self.assess(source, name=name, cohort=cohort).score

    def score_many(
        self, sources: Sequence[AudioSource], *, names: Sequence[str] | None = None, cohort: str | None = None
    ) -> list[Score | AudioError]:
        """Score many recordings in padded batches for throughput. The result has one entry per source, in
        order: a `Score`, or the `AudioError` that stopped that source. Each score's latency is its share of
        its batch's model time plus its own decoding time."""
        if names is not None and len(names) != len(sources):
            raise ValueError(f"names has {len(names)} entries for {len(sources)} sources")
        results: list[Score | AudioError | None] = [None] * len(sources)
        accepted: list[_Accepted] = []
        for index, source in enumerate(sources):
            started = time.perf_counter()
            try:
                recording = self.load_audio(source, name=None if names is None else names[index])
                quality = require_quality(recording, self.config.quality)
            except AudioError as error:
                results[index] = error
                continue
            accepted.append((index, recording, quality, (time.perf_counter() - started) * 1000.0))
        # Similar lengths share a batch, so little compute goes to padding.
        accepted.sort(key=lambda item: len(item[1].samples))
        for batch in self._batches(accepted, cohort):
            started = time.perf_counter()
            probabilities, engine = self._probabilities([recording for _, recording, _, _ in batch],
                                                        [quality for _, _, quality, _ in batch], cohort)
            share_ms = (time.perf_counter() - started) * 1000.0 / len(batch)
            for (index, _, quality, decode_ms), probability in zip(batch, probabilities):
                results[index] = self._score(probability, cohort, quality, decode_ms + share_ms, engine)
        return [result for result in results if result is not None]

    @property
    def display_frames_per_second(self) -> float:
        return float(self._display_extractor.frames_per_second)

    def features_for_display(self, recording: Recording) -> np.ndarray:
        """The MFCC-gram [frames, coefficients] of a recording, for the app's plot (not used for scoring)."""
        waveform = torch.from_numpy(np.ascontiguousarray(recording.samples, dtype=np.float32))[None]  # [1, S]
        with torch.inference_mode():
            features, _ = self._display_extractor(waveform, torch.tensor([waveform.shape[1]]))
        return features[0].numpy()

    # ---------------------------------------------------------------------------------------- internals
    def _batches(self, accepted: list[_Accepted], cohort: str | None) -> Iterator[list[_Accepted]]:
        """Consecutive runs of `accepted` (sorted by length) of at most `batch_size`. Where ONNX Runtime scores the
        cohort, a run holds recordings of one length only: its graph takes no padding, and a padded batch falls
        back to eager PyTorch, which took 182 ms a 10 s clip in a batch against 106 ms alone through the graph
        (`biomarker bench scoring`, 1 thread)."""
        one_length = self.onnx is not None and self.onnx.applies(self.device, cohort)
        batch: list[_Accepted] = []
        for item in accepted:
            full = len(batch) == self.config.batch_size
            if batch and (full or (one_length and len(item[1].samples) != len(batch[0][1].samples))):
                yield batch
                batch = []
            batch.append(item)
        if batch:
            yield batch

    def _probabilities(self, recordings: Sequence[Recording], qualities: Sequence[QualityReport],
                       cohort: str | None) -> tuple[list[float], str | None]:
        """Calibrated probabilities for a batch of accepted recordings (padded, lengths passed along; each one's
        SNR estimate goes to the calibration), and the runtime that computed the logits (None: eager PyTorch)."""
        lengths = torch.tensor([len(recording.samples) for recording in recordings])
        snr_db = torch.tensor([quality.snr_db for quality in qualities])
        waveforms = torch.zeros(len(recordings), int(lengths.max()))  # [B, S], zero padding past each length
        for row, recording in enumerate(recordings):
            waveforms[row, : len(recording.samples)] = torch.from_numpy(np.asarray(recording.samples, np.float32))
        with self._lock, torch.inference_mode():
            logits, engine = self._waveform_logits(waveforms, lengths, cohort)
            probabilities = self.model.calibrate(logits, cohort, snr_db.to(self.device))
        return [float(p) for p in probabilities.float().cpu()], engine

    def _waveform_logits(self, waveforms: torch.Tensor, lengths: torch.Tensor,
                         cohort: str | None) -> tuple[torch.Tensor, str | None]:
        """Features of [B, S] waveforms (each `lengths[b]` samples long), then `_logits`; the caller holds the lock."""
        features, frame_lengths = self.extractor(waveforms.to(self.device), lengths.to(self.device))
        return self._logits(features, frame_lengths, cohort)

    def _logits(self, features: torch.Tensor, frame_lengths: torch.Tensor,
                cohort: str | None) -> tuple[torch.Tensor, str | None]:
        """Recording logits from the fastest engine that applies (CUDA graphs, ONNX Runtime, else eager PyTorch),
        and that engine's label (None: eager)."""
        logits, engine = None, None
        if self.graphed is not None and self.graphed.supports(features, cohort):
            logits = self.graphed.logits(features, frame_lengths, cohort)
        elif self.onnx is not None and self.onnx.supports(features, frame_lengths, cohort):
            logits = self.onnx.logits(features, frame_lengths, cohort)  # None: the encoder did not export
            engine = None if logits is None else self.onnx.label
        if logits is None:
            logits = self.model.recording_logits(features, frame_lengths, cohort)
        return logits, engine

    def warm_up(self, seconds: float = 4.0, cohort: str | None = None) -> None:
        """One forward of a noise clip through the engine real clips take, so the first patient does not wait
        for what a fresh process does once: the ONNX export or graph load and session start, the native scan's
        build, CUDA's first kernels. Nothing is scored or stored; the quality gate is not involved."""
        waveform = 0.1 * torch.randn(1, int(seconds * TARGET_RATE_HZ), generator=torch.Generator().manual_seed(0))
        with self._lock, torch.inference_mode():
            self._waveform_logits(waveform, torch.tensor([waveform.shape[1]]), cohort)

    def _score(self, probability: float, cohort: str | None, quality: QualityReport, latency_ms: float,
               engine: str | None = None) -> Score:
        cohort_name = self.model.resolve_cohort(cohort)
        threshold = float(self.model.cohort_spec(cohort_name).threshold)
        return Score(
            probability=probability,
            threshold=threshold,
            decision=DECISION_POSITIVE if probability >= threshold else DECISION_NEGATIVE,
            model_name=self.model_name,
            model_version=self.model_version,
            cohort=cohort_name,
            device=self.device_name if engine is None else f"{self.device_name}/{engine}",
            latency_ms=latency_ms,
            quality=quality,
        )


class ResultStore(Protocol):
    """What screening-and-logging needs from `biomarker.store.Store`; a protocol, so the screener never imports
    the store (the store stays torch-free and the screener stays database-free)."""

    def save_audio(self, data: bytes, suffix: str = ".wav") -> Path: ...

    def record_result(self, score: Score, **details: object) -> object: ...

    def record_attempt(self, **details: object) -> bool: ...


@dataclass(frozen=True)
class ScreeningOutcome:
    """A scored recording and what the store did with it (`record.stored` False means it was spooled).

    `not_stored` is set (and `record` is None) when the data folder had no room for the audio or the spool:
    the score is still here, and in the log, for the user to see and note.
    """

    assessment: Assessment
    record: object | None  # biomarker.store.RecordOutcome
    not_stored: StorageFullError | None = None


def screen_and_record(
    screener: Screener,
    store: ResultStore,
    data: bytes,
    *,
    name: str,
    actor: object,
    patient_id: str | None = None,
    site: str | None = None,
    cohort: str | None = None,
) -> ScreeningOutcome:
    """The app's and `biomarker score --log`'s path: decode, keep the audio on disk BEFORE scoring (a crash or
    a database outage never loses what was recorded), score, then store the result with its audit events.

    Undecodable bytes raise their `AudioError` before anything is written; a recording that decodes but fails
    the quality gate is kept on disk but never stored as a score. Either way the attempt is an audit event
    (`store.record_attempt`). The same audio again for the same patient is not stored twice: the outcome's
    `record.duplicate_of` names the earlier result. A full disk never loses the score: it is returned with
    `not_stored` saying which folder was full, and logged at ERROR level with every field.
    """
    started = time.perf_counter()
    sha256 = hashlib.sha256(data).hexdigest()
    try:
        recording = screener.load_audio(data, name=name)
    except AudioError as error:
        _record_refusal(store, error, "rejected", actor, patient_id, site, sha256)
        raise
    suffix = Path(name).suffix.lower() or ".wav"
    audio_path, not_stored = None, None
    try:
        audio_path = store.save_audio(data, suffix if suffix[1:].isalnum() and len(suffix) <= 9 else ".wav")
    except StorageFullError as error:
        not_stored = error  # score it all the same: the clinician sees the result, the log keeps it
    try:
        assessment = screener.assess_recording(recording, cohort=cohort, started=started)
    except AudioError as error:
        _record_refusal(store, error, "refused", actor, patient_id, site, sha256)
        raise
    record = None
    if not_stored is None:
        try:
            record = store.record_result(
                assessment.score,
                actor=actor,
                audio_path=audio_path,
                duration_s=recording.duration_s,
                sample_rate_hz=recording.original_sample_rate_hz,
                patient_id=patient_id,
                site=site,
            )
        except StorageFullError as error:
            not_stored = error
    if not_stored is not None:
        LOG.error("result NOT STORED (%s): %s", not_stored, json.dumps(
            {"input": name, "sha256": sha256, "probability": assessment.score.probability,
             "threshold": assessment.score.threshold, "decision": assessment.score.decision,
             "model": f"{assessment.score.model_name}@{assessment.score.model_version}",
             "cohort": assessment.score.cohort, "site": site or getattr(actor, "site", None),
             "actor": getattr(actor, "username", None)}))
    return ScreeningOutcome(assessment, record, not_stored)


def _record_refusal(store: ResultStore, error: AudioError, outcome: str, actor: object, patient_id: str | None,
                    site: str | None, sha256: str) -> None:
    """Every attempt leaves an audit event: a refused or rejected recording names its error class (not its
    message, which holds the file name the user chose)."""
    store.record_attempt(actor=actor, outcome=outcome, reason=type(error).__name__, patient_id=patient_id,
                         site=site, sha256=sha256)
