"""Score a manifest's rows through the screener (the one inference path, quality gate included), cohort by cohort.

Shared by `biomarker evaluate`, acceptance-gated promotion and the drift reference, so all three measure a model
the same way: each manifest cohort is scored with the bundle cohort of that name when the bundle has one (else the
bundle's default, or the one named by `cohort`), at that cohort's own threshold and subject pooling.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from biomarker.cohorts.manifest import CohortItem
from biomarker.evaluate.calibration import SubjectPooling
from biomarker.records import AudioError, Score


@dataclass(frozen=True)
class ScoredManifest:
    """One entry per manifest row: its `Score`, or the refusal's problem (never dropped); per manifest cohort, the
    bundle cohort used, its threshold and subject pooling."""

    items: tuple[CohortItem, ...]
    scores: tuple[Score | None, ...]
    problems: tuple[str | None, ...]
    refusal_kinds: tuple[str | None, ...]  # the refusing error's class (e.g. TooShortError), as the store audits it
    bundle_cohorts: dict[str, str]
    thresholds: dict[str, float]
    poolings: dict[str, SubjectPooling]

    @property
    def probabilities(self) -> list[float | None]:
        return [None if score is None else score.probability for score in self.scores]


def score_items(screener, items: Sequence[CohortItem], *, cohort: str | None = None) -> ScoredManifest:
    """Score every row with `screener` (a `biomarker.screener.Screener`); `cohort` forces one bundle cohort."""
    known = set(screener.model.cohorts)
    scores: list[Score | None] = [None] * len(items)
    problems: list[str | None] = [None] * len(items)
    kinds: list[str | None] = [None] * len(items)
    chosen_by: dict[str, str] = {}
    thresholds: dict[str, float] = {}
    poolings: dict[str, SubjectPooling] = {}
    for manifest_cohort in sorted({item.cohort for item in items}):
        chosen = cohort or (manifest_cohort if manifest_cohort in known else None)
        rows = [k for k, item in enumerate(items) if item.cohort == manifest_cohort]
        spec = screener.model.cohort_spec(chosen)
        chosen_by[manifest_cohort] = screener.model.resolve_cohort(chosen)
        thresholds[manifest_cohort] = float(spec.threshold)
        poolings[manifest_cohort] = SubjectPooling.of(spec)
        for k, result in zip(rows, screener.score_many([items[k].path for k in rows], cohort=chosen)):
            if isinstance(result, AudioError):
                problems[k], kinds[k] = result.problem, type(result).__name__
            else:
                scores[k] = result
    return ScoredManifest(tuple(items), tuple(scores), tuple(problems), tuple(kinds), chosen_by, thresholds, poolings)
