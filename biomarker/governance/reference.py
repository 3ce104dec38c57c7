"""A model version's validation reference: what its inputs and outputs looked like on the data its threshold was
fitted on, stored beside the weights (`reference.json`) so drift monitoring compares a site's weeks with the very
version that scored them.

Kept: the distributions of the calibrated probability, the quality gate's SNR estimate and the duration (as up to
`QUANTILES` quantiles, which is all PSI and KS need and keeps the file small), the referral rate at the version's
threshold, and the gate's refusals by reason. Writing it adds a file to the version folder; the weights, config
and card are never touched.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

import numpy as np

from biomarker.records import BiomarkerError, DECISION_POSITIVE

REFERENCE_FILE = "reference.json"
QUANTILES = 512
VARIABLES = ("probability", "snr_db", "duration_s")


class ReferenceError(BiomarkerError, ValueError):
    """A reference file is missing, malformed, or cannot be built from the rows given."""


@dataclass(frozen=True)
class ValidationReference:
    model: str  # name@version that scored the rows
    source: dict  # manifest path, its sha256, split, cohort used
    created_utc: str
    n: int  # recordings scored
    threshold: float
    referral_rate: float
    refusals: dict[str, int]  # quality-gate refusals by reason (error class)
    samples: dict[str, list[float]]  # per variable: its quantiles (or every value, when fewer)

    @property
    def refusal_rate(self) -> float:
        attempts = self.n + sum(self.refusals.values())
        return sum(self.refusals.values()) / attempts if attempts else 0.0

    def values(self, variable: str) -> np.ndarray:
        return np.asarray(self.samples[variable], float)


def summarise(values: np.ndarray) -> list[float]:
    """Every value when few, else QUANTILES evenly spaced quantiles (a faithful stand-in for PSI and KS)."""
    values = np.sort(np.asarray(values, float)[np.isfinite(values)])
    if len(values) > QUANTILES:
        values = np.quantile(values, np.linspace(0, 1, QUANTILES))
    return [round(float(v), 5) for v in values]


def read_reference(path: str | Path) -> ValidationReference:
    path = Path(path)
    if not path.is_file():
        raise ReferenceError(f"{path}: no validation reference; write one with `biomarker models reference NAME@V "
                             "--manifest VAL.csv`")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return ValidationReference(**{**raw, "samples": {k: list(raw["samples"][k]) for k in VARIABLES}})
    except (json.JSONDecodeError, TypeError, KeyError) as error:
        raise ReferenceError(f"{path}: not a validation reference ({error})") from error


def reference_for(version) -> ValidationReference | None:
    """The reference stored beside a catalog `ModelVersion`, or None when it has none."""
    path = Path(version.path) / REFERENCE_FILE
    return read_reference(path) if path.is_file() else None


def references_for(catalog, models: Iterable[str]) -> tuple[dict[str, ValidationReference | None], dict[str, str]]:
    """The reference of every `name@version` in `models` (a catalog's `get` resolves each), and why a model has
    none when the catalog cannot resolve it: the monitor judges a week only against the version that scored it."""
    references: dict[str, ValidationReference | None] = {}
    errors: dict[str, str] = {}
    for model in sorted(set(models)):
        try:
            references[model] = reference_for(catalog.get(model))
        except BiomarkerError as error:
            references[model], errors[model] = None, str(error)
    return references, errors


def build_reference(version, manifest: Path, out: Path, *, split: str = "val", cohort: str | None = None,
                    device: str = "cpu") -> ValidationReference:
    """Score `manifest`'s `split` rows with `version` (a catalog `ModelVersion`) and write the reference to `out`."""
    # lazy: building a reference scores audio (torch); the reading side (reference_for, REFERENCE_FILE) serves
    # `import biomarker.cli` and the app's Drift page without it (see biomarker/governance/acceptance.py's note)
    from biomarker.cohorts.manifest import read_manifest
    from biomarker.evaluate.scoring import score_items
    from biomarker.models.catalog import sha256_of_file
    from biomarker.screener import Screener

    items = read_manifest(manifest)
    if split != "all" and any(item.split for item in items):
        items = [item for item in items if item.split == split]
    if not items:
        raise ReferenceError(f"{manifest} has no rows in split {split!r}")
    screener = Screener.load(str(version.path), device=device)
    scored = score_items(screener, items, cohort=cohort)
    scores = [s for s in scored.scores if s is not None]
    if not scores:
        raise ReferenceError(f"none of the {len(items)} rows of {manifest} could be scored")
    built = ValidationReference(
        model=screener.model_label,
        source={"manifest": str(manifest), "sha256": sha256_of_file(manifest), "split": split,
                "cohorts": scored.bundle_cohorts},
        created_utc=datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
        n=len(scores),
        threshold=float(np.mean([s.threshold for s in scores])),
        referral_rate=float(np.mean([s.decision == DECISION_POSITIVE for s in scores])),
        refusals=dict(Counter(kind for kind in scored.refusal_kinds if kind is not None)),
        samples={
            "probability": summarise(np.array([s.probability for s in scores])),
            "snr_db": summarise(np.array([s.quality.snr_db for s in scores if s.quality is not None])),
            "duration_s": summarise(np.array([s.quality.duration_s for s in scores if s.quality is not None])),
        },
    )
    out.write_text(json.dumps(asdict(built), indent=1) + "\n", encoding="utf-8")
    return built
