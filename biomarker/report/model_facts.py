"""What the report (and the app's result pages) say about the model that produced a result: its weights' sha256,
its training data and which calibration set its threshold.

Why a separate step: a result row records only `name@version`; the weights behind it are identified by this
server's catalog (versions are immutable, so the catalog's hash of that version's weights is the hash of the
weights that scored). A version this server does not hold is said in words, never left blank.

No torch: the catalog is passed in (anything with `get("name@version")`), and "trained on synthetic data" is
read from the version's `config.json` with the rule `ScreeningModel.from_description` applies (missing means
True: no model here has been validated on patients, so the honest default is the caveat).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from biomarker.records import BiomarkerError

# What the report can say about the weights; each has its own words in report.po.
WEIGHTS_VERIFIED = "verified"  # the weights hash to the sha256 recorded when the version was published
WEIGHTS_UNVERIFIED = "unverified"  # hashed here, but nothing was recorded to compare with
WEIGHTS_MISMATCH = "mismatch"  # the weights on disk are not the ones published
WEIGHTS_MISSING = "missing"  # the version is known but its weights file is absent
NOT_IN_CATALOG = "not_in_catalog"
WEIGHTS_STATUSES = (WEIGHTS_VERIFIED, WEIGHTS_UNVERIFIED, WEIGHTS_MISMATCH, WEIGHTS_MISSING, NOT_IN_CATALOG)


class CatalogEntry(Protocol):
    """The part of `biomarker.models.catalog.ModelVersion` the report reads."""

    path: Path
    sha256: str | None
    recorded_sha256: str | None
    metrics: dict
    created_utc: str | None


class ModelCatalog(Protocol):
    """The part of `biomarker.models.catalog.Catalog` the report uses (a protocol keeps torch out)."""

    def get(self, ref: str) -> CatalogEntry: ...


@dataclass(frozen=True)
class SiteCalibrationFacts:
    """A version made by `biomarker calibrate`: whose calibration it replaced, on which labelled sample, when.
    A clinician reading a result must be able to tell a site's own threshold from the one shipped with training."""

    parent: str
    manifest: str
    manifest_sha256: str
    patients: int
    controls: int
    created_utc: str | None


@dataclass(frozen=True)
class ModelFacts:
    """The weights' sha256 (None when this server cannot name them), why, whether the data was synthetic, and the
    site calibration that set the version's threshold (None: the calibration fitted at training, on validation)."""

    sha256: str | None
    status: str
    synthetic: bool = True
    site_calibration: SiteCalibrationFacts | None = None

    def __post_init__(self) -> None:
        if self.status not in WEIGHTS_STATUSES:
            raise ValueError(f"weights status {self.status!r} is not one of {', '.join(WEIGHTS_STATUSES)}")
        if (self.sha256 is None) != (self.status in (WEIGHTS_MISSING, NOT_IN_CATALOG)):
            raise ValueError(f"weights status {self.status!r} does not fit sha256 {self.sha256!r}")


def trained_on_synthetic(version_dir: Path) -> bool:
    """The bundle's own flag, as the screener reads it; absent or unreadable means True (the caveat stays)."""
    try:
        config = json.loads((version_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return True
    return bool(config.get("trained_on_synthetic", True)) if isinstance(config, dict) else True


def site_calibration_facts(entry: CatalogEntry) -> SiteCalibrationFacts | None:
    """What version.json's `metrics.site_calibration` (written by `biomarker calibrate`) says; None when absent."""
    record = entry.metrics.get("site_calibration")
    if not isinstance(record, dict):
        return None
    subjects = record.get("subjects") or {}
    return SiteCalibrationFacts(parent=str(record.get("parent", "?")), manifest=str(record.get("manifest", "?")),
                                manifest_sha256=str(record.get("manifest_sha256", "")),
                                patients=int(subjects.get("patients", 0)), controls=int(subjects.get("controls", 0)),
                                created_utc=entry.created_utc)


def model_facts(catalog: ModelCatalog, name: str, version: str) -> ModelFacts:
    """Look `name@version` up in `catalog` and say what can be said about its weights."""
    try:
        entry = catalog.get(f"{name}@{version}")
    except BiomarkerError:  # ModelNotFoundError, or a name/version the catalog refuses (CatalogError)
        return ModelFacts(sha256=None, status=NOT_IN_CATALOG, synthetic=True)
    synthetic, calibration = trained_on_synthetic(Path(entry.path)), site_calibration_facts(entry)
    if entry.sha256 is None:
        return ModelFacts(sha256=None, status=WEIGHTS_MISSING, synthetic=synthetic, site_calibration=calibration)
    if entry.recorded_sha256 is None:
        status = WEIGHTS_UNVERIFIED
    else:
        status = WEIGHTS_VERIFIED if entry.sha256 == entry.recorded_sha256 else WEIGHTS_MISMATCH
    return ModelFacts(sha256=entry.sha256, status=status, synthetic=synthetic, site_calibration=calibration)
