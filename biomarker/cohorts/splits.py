"""Speaker-disjoint, label-stratified train/val/test splits.

WHY speaker-disjoint: a model that has heard a speaker in training recognises the voice, not the condition;
the unit of evaluation is the speaker. Stratifying by label keeps each split's prevalence close to the
cohort's, so validation thresholds transfer to test.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence

from biomarker.cohorts.manifest import CohortItem
from biomarker.records import CohortError


@dataclass(frozen=True)
class SplitConfig:
    """Fractions of speakers per split (they must sum to 1) and the seed of the shuffle."""

    train: float = 0.6
    val: float = 0.2
    test: float = 0.2
    seed: int = 0

    def fractions(self) -> dict[str, float]:
        values = {"train": self.train, "val": self.val, "test": self.test}
        if any(v < 0 for v in values.values()) or abs(sum(values.values()) - 1.0) > 1e-6:
            raise CohortError(f"split fractions must be non-negative and sum to 1, got {values}")
        return values


def speaker_disjoint_split(items: Sequence[CohortItem], config: SplitConfig = SplitConfig()) -> list[CohortItem]:
    """Assign every item a split so that no speaker appears in two splits and labels are stratified.

    Speakers are grouped by (cohort, speaker_id) and label; within each label the speakers are shuffled and cut
    by the fractions (largest-remainder rounding so counts add up). Returns new items in the input order.
    """
    fractions = config.fractions()
    speakers_by_label: dict[int, list[tuple[str, str]]] = {}
    for item in items:
        key = (item.cohort, item.speaker_id)
        bucket = speakers_by_label.setdefault(item.label, [])
        if key not in bucket:
            bucket.append(key)
    rng = random.Random(config.seed)
    assignment: dict[tuple[str, str], str] = {}
    for label in sorted(speakers_by_label):
        speakers = sorted(speakers_by_label[label])
        rng.shuffle(speakers)
        counts = _largest_remainder(len(speakers), fractions)
        start = 0
        for split, count in counts.items():
            for speaker in speakers[start : start + count]:
                assignment[speaker] = split
            start += count
    return [item.with_split(assignment[(item.cohort, item.speaker_id)]) for item in items]


def _largest_remainder(total: int, fractions: dict[str, float]) -> dict[str, int]:
    """Integer counts per split summing to `total`, each as close as possible to total * fraction."""
    exact = {name: total * f for name, f in fractions.items()}
    counts = {name: int(value) for name, value in exact.items()}
    leftover = total - sum(counts.values())
    for name in sorted(exact, key=lambda n: exact[n] - counts[n], reverse=True)[:leftover]:
        counts[name] += 1
    return counts


def label_budget(items: Sequence[CohortItem], budget: int | None, seed: int) -> list[CohortItem]:
    """At most `budget` training recordings, whole speakers at a time, alternating classes (stratified). The one
    cap behind `biomarker finetune --labels N` and the baselines' `labels=N`, so both train on the same rows."""
    if budget is None or budget >= len(items):
        return list(items)
    by_label: dict[int, dict[str, list[CohortItem]]] = {0: {}, 1: {}}
    for item in items:
        by_label[item.label].setdefault(item.speaker_id, []).append(item)
    rng = random.Random(seed)
    queues = {label: rng.sample(sorted(speakers), len(speakers)) for label, speakers in by_label.items()}
    chosen: list[CohortItem] = []
    while len(chosen) < budget and any(queues.values()):
        for label in (1, 0):
            if queues[label] and len(chosen) < budget:
                chosen += by_label[label][queues[label].pop()][: budget - len(chosen)]
    return chosen
