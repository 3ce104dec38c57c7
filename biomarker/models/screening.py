"""The screening model bundle: one shared encoder, and per cohort an adapter set, a head and a calibration.

A cohort is a population the model was adapted to (a hospital, a language, a microphone); its name is the task
id at inference. Adding a cohort only adds parameters (its adapter set and head) and never touches an existing
one, so every earlier cohort's outputs stay bit-identical (adapter-incremental continual learning, AI-CL).
The bundle screens: `probability` is the calibrated probability of respiratory insufficiency, compared with the
cohort's operating threshold to refer for an SpO2 check. It never estimates SpO2.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from biomarker.models.checkpoint import write_checkpoint
from biomarker.models.encoder import ADAPTER_NAME, Encoder
from biomarker.models.heads import LogitHead
from biomarker.models.kinds import class_for_kind, register_kind
from biomarker.records import CohortError, ModelConfigError


@dataclass(frozen=True)
class CohortSpec:
    """A cohort's path and calibration: `adapter_set` (None: plain encoder), decision `threshold` on the
    calibrated probability, the `temperature` that divides the logit (fitted on validation), and how a
    recording is scored: `whole` utterance pooled once, or `window-mean` (the mean probability of windows of
    `window_frames` every `hop_frames`); the calibrated probability is
    sigmoid(logit / temperature + bias + snr_slope · snr_covariate(recording's SNR)), the SNR being the quality
    gate's estimate (`snr_slope` 0: the SNR is not used). Fine-tuning measures both scoring modes on validation
    and keeps the better one here, so the app scores a recording exactly as the calibration and the threshold
    were fitted. A subject with several recordings is scored sigmoid(subject_scale · mean log-odds +
    subject_shift) (`biomarker.evaluate.calibration.SubjectPooling`, fitted on validation subjects)."""

    adapter_set: str | None = None
    threshold: float = 0.5
    temperature: float = 1.0
    bias: float = 0.0
    snr_slope: float = 0.0
    subject_scale: float = 1.0
    subject_shift: float = 0.0
    scoring: str = "whole"
    window_frames: int = 400
    hop_frames: int = 100

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold <= 1.0:
            raise ModelConfigError(f"threshold {self.threshold} is not a probability in [0, 1]")
        if not self.temperature > 0.0:
            raise ModelConfigError(f"temperature {self.temperature} must be positive")
        if self.scoring not in SCORING_MODES:
            raise ModelConfigError(f"scoring {self.scoring!r} is not one of {SCORING_MODES}")
        if not 0 < self.hop_frames <= self.window_frames:
            raise ModelConfigError(f"windows of {self.window_frames} frames every {self.hop_frames}: need 0 < hop <= window")


SCORING_MODES = ("whole", "window-mean")
SNR_RANGE_DB = (0.0, 50.0)  # the quality gate's SNR estimate, clipped: calibration never extrapolates far
SNR_REFERENCE_DB, SNR_SCALE_DB = 20.0, 10.0


def snr_covariate(snr_db):
    """(clipped SNR - 20 dB) / 10 dB, for numpy arrays and torch tensors alike: the calibration's noise term.

    WHY: ward noise moves the logits of BOTH classes (measured on the shipped screener: negatives -1.1 clean,
    -1.7 noisy; positives 3.8 and 1.9), so one temperature and bias fitted on a mix is off in opposite directions
    for each condition. The quality gate already estimates every recording's SNR; a bias that moves with it
    (Platt scaling with a covariate) is one parameter more and needs no condition label."""
    low, high = SNR_RANGE_DB
    return (snr_db.clip(low, high) - SNR_REFERENCE_DB) / SNR_SCALE_DB


def windows(clip: torch.Tensor, window_frames: int, hop_frames: int) -> list[torch.Tensor]:
    """[T, F] -> windows of `window_frames` every `hop_frames` (a clip shorter than one window is one window)."""
    if clip.shape[0] <= window_frames:
        return [clip]
    starts = list(range(0, clip.shape[0] - window_frames + 1, hop_frames))
    if starts[-1] + window_frames < clip.shape[0]:
        starts.append(clip.shape[0] - window_frames)  # cover the tail
    return [clip[s : s + window_frames] for s in starts]


def mean_probability_logit(window_logits: torch.Tensor, counts: list[int]) -> torch.Tensor:
    """Per recording, the logit of the mean probability of its windows (`counts[i]` consecutive windows each),
    so temperature scaling applies to window-mean and whole-utterance scores alike."""
    means = torch.stack([chunk.sigmoid().mean() for chunk in torch.split(window_logits.double(), counts)])
    return torch.logit(means.clamp(1e-6, 1 - 1e-6)).to(window_logits.dtype)


@register_kind
class ScreeningModel(nn.Module):
    """Feature config + shared encoder + per-cohort {adapter set, LayerNorm->Linear head, threshold, temperature}."""

    kind: ClassVar[str] = "screening"

    def __init__(
        self, encoder: Encoder, *, name: str, version: str = "1", parent: str | None = None, trained_on_synthetic: bool = True
    ):
        super().__init__()
        self.encoder = encoder
        self.heads = nn.ModuleDict()
        self.cohorts: dict[str, CohortSpec] = {}
        self.default_cohort: str | None = None
        self.name = name
        self.version = version
        self.parent = parent  # the encoder (or earlier bundle version) this one was built from
        # True until a bundle has seen real patients; the app and every report then show the synthetic-data
        # disclaimer. Defaulting to True is the honest side.
        self.trained_on_synthetic = trained_on_synthetic

    @property
    def feature_config(self) -> dict[str, Any]:
        return self.encoder.feature_config

    # ------------------------------------------------------------------------------------------ cohorts
    def add_cohort(
        self,
        cohort: str,
        adapter: str | None = None,
        *,
        threshold: float = 0.5,
        temperature: float = 1.0,
        make_default: bool = False,
        **adapter_options: Any,
    ) -> None:
        """Add `cohort` with a fresh head and, if `adapter` is 'aat' or 'conv', its own adapter set (named after
        the cohort). The first cohort becomes the default. Existing cohorts are never changed."""
        if not ADAPTER_NAME.match(cohort):
            raise CohortError(f"cohort name {cohort!r} may hold only letters, digits, '_' and '-'")
        if cohort in self.cohorts:
            raise CohortError(f"cohort {cohort!r} is already in bundle {self.name!r}; add it under a new name")
        spec = CohortSpec(cohort if adapter else None, threshold, temperature)
        if adapter:
            self.encoder.add_adapter_set(cohort, adapter, **adapter_options)
        reference = self.encoder.mask_embedding
        self.heads[cohort] = LogitHead(self.encoder.pooled_dim).to(reference.device, reference.dtype).train(self.training)
        self.cohorts[cohort] = spec
        if make_default or self.default_cohort is None:
            self.default_cohort = cohort

    def set_calibration(self, cohort: str, *, threshold: float | None = None, temperature: float | None = None,
                        bias: float | None = None, snr_slope: float | None = None, subject_scale: float | None = None,
                        subject_shift: float | None = None, scoring: str | None = None, window_frames: int | None = None,
                        hop_frames: int | None = None) -> None:
        """Store what was fitted on `cohort`'s validation split: the operating threshold, the temperature, bias and
        SNR slope, the subject pooling, and the recording scoring mode they belong to."""
        spec = self.cohort_spec(cohort)
        given = (("threshold", threshold), ("temperature", temperature), ("bias", bias), ("snr_slope", snr_slope),
                 ("subject_scale", subject_scale), ("subject_shift", subject_shift),
                 ("scoring", scoring), ("window_frames", window_frames), ("hop_frames", hop_frames))
        self.cohorts[cohort] = dataclasses.replace(spec, **{k: v for k, v in given if v is not None})

    def cohort_spec(self, cohort: str | None = None) -> CohortSpec:
        return self.cohorts[self.resolve_cohort(cohort)]

    def resolve_cohort(self, cohort: str | None) -> str:
        """The cohort asked for, or the default; an unknown name is an error naming the known ones."""
        chosen = self.default_cohort if cohort is None else cohort
        if chosen is None:
            raise CohortError(f"bundle {self.name!r} has no cohorts yet; call add_cohort first")
        if chosen not in self.cohorts:
            raise CohortError(f"bundle {self.name!r} has no cohort {chosen!r}; it has {sorted(self.cohorts)}")
        return chosen

    def train_only(self, cohort: str, *, encoder: bool = False) -> tuple[int, int]:
        """Make only `cohort`'s head and adapter set trainable (plus the whole encoder when `encoder=True`,
        for full fine-tuning). Returns (trainable parameters, parameters on the cohort's inference path)."""
        name = self.resolve_cohort(cohort)
        for parameter in self.parameters():
            parameter.requires_grad_(False)
        trainable = self.encoder.freeze_backbone(self.cohorts[name].adapter_set)
        if encoder:
            for parameter in self.encoder.parameters():
                parameter.requires_grad_(True)
            trainable = self.encoder.backbone_parameter_count() + trainable
        for parameter in self.heads[name].parameters():
            parameter.requires_grad_(True)
        head = sum(p.numel() for p in self.heads[name].parameters())
        adapters = self.cohorts[name].adapter_set
        on_path = self.encoder.backbone_parameter_count() + head
        if adapters is not None:
            on_path += sum(p.numel() for p in self.encoder.adapter_parameters(adapters))
        return trainable + head, on_path

    # ------------------------------------------------------------------------------------------- scoring
    def logits(self, features: torch.Tensor, lengths: torch.Tensor | None = None, cohort: str | None = None) -> torch.Tensor:
        """features: [B, T, F] from this bundle's front-end, lengths: [B] frames -> uncalibrated logits [B]."""
        name = self.use_cohort(cohort)
        return self.heads[name](self.encoder(features, lengths))

    def use_cohort(self, cohort: str | None = None) -> str:
        """Switch the encoder to `cohort`'s adapter set (none for the base cohort); returns the resolved name."""
        name = self.resolve_cohort(cohort)
        self.encoder.use_adapter_set(self.cohorts[name].adapter_set)
        return name

    def recording_logits(self, features: torch.Tensor, lengths: torch.Tensor | None = None, cohort: str | None = None) -> torch.Tensor:
        """Uncalibrated logit per recording [B] under the cohort's scoring mode (whole or window-mean)."""
        spec = self.cohort_spec(cohort)
        if spec.scoring == "whole":
            return self.logits(features, lengths, cohort)
        frames = [features.shape[1]] * features.shape[0] if lengths is None else lengths.tolist()
        pieces = [windows(clip[:n], spec.window_frames, spec.hop_frames) for clip, n in zip(features, frames)]
        flat = [w for piece in pieces for w in piece]
        window_lengths = torch.tensor([len(w) for w in flat], device=features.device)
        batch = nn.utils.rnn.pad_sequence(flat, batch_first=True)
        return mean_probability_logit(self.logits(batch, window_lengths, cohort), [len(p) for p in pieces])

    def probability(self, features: torch.Tensor, lengths: torch.Tensor | None = None, cohort: str | None = None,
                    snr_db: torch.Tensor | None = None) -> torch.Tensor:
        """Calibrated probability of respiratory insufficiency [B]: the recording logit under the cohort's scoring
        mode, divided by the cohort temperature, plus the cohort bias and its SNR term, then sigmoid. `snr_db` [B]
        (the quality gate's estimate) is required when the cohort's calibration uses it."""
        return self.calibrate(self.recording_logits(features, lengths, cohort), cohort, snr_db)

    def calibrate(self, logits: torch.Tensor, cohort: str | None = None, snr_db: torch.Tensor | None = None) -> torch.Tensor:
        """Recording logits [B] -> calibrated probabilities [B] (temperature, bias, SNR term; see `probability`)."""
        spec = self.cohort_spec(cohort)
        calibrated = logits / spec.temperature + spec.bias
        if spec.snr_slope:
            if snr_db is None:
                raise ModelConfigError(f"cohort {self.resolve_cohort(cohort)!r} is calibrated with the recording's SNR: "
                                       "pass snr_db (the quality gate's estimate)")
            calibrated = calibrated + spec.snr_slope * snr_covariate(snr_db.to(calibrated))
        return torch.sigmoid(calibrated)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor | None = None, cohort: str | None = None) -> torch.Tensor:
        return self.logits(features, lengths, cohort)

    # ---------------------------------------------------------------------------------------- checkpoint
    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "version": self.version,
            "parent": self.parent,
            "trained_on_synthetic": self.trained_on_synthetic,
            "default_cohort": self.default_cohort,
            "cohorts": {name: dataclasses.asdict(spec) for name, spec in self.cohorts.items()},
            "features": self.feature_config,
            "encoder": self.encoder.describe(),
        }

    @classmethod
    def from_description(cls, description: dict[str, Any]) -> "ScreeningModel":
        encoder_description = description["encoder"]
        encoder = class_for_kind(encoder_description["kind"]).from_description(encoder_description)
        bundle = cls(
            encoder,
            name=description["name"],
            version=description["version"],
            parent=description.get("parent"),
            trained_on_synthetic=description.get("trained_on_synthetic", True),
        )
        reference = encoder.mask_embedding
        for name, spec in description["cohorts"].items():
            bundle.heads[name] = LogitHead(encoder.pooled_dim).to(reference.device, reference.dtype)
            bundle.cohorts[name] = CohortSpec(**spec)
        bundle.default_cohort = description.get("default_cohort")
        return bundle

    def save_pretrained(self, directory: str | Path, dtype: torch.dtype = torch.float16) -> Path:
        """One bundle directory: model.safetensors (encoder, every adapter set and head) + config.json."""
        return write_checkpoint(self, self.describe(), directory, dtype)
