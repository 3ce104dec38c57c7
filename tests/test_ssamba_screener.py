"""`ri-screener-ssamba`: the second named screener (SSAMBA-tiny encoder) loads from the catalog, scores through the
one inference path like `ri-screener`, and ships a card that leads with the decision on every held-out set."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile

from biomarker.models.catalog import Catalog
from biomarker.records import DECISION_POSITIVE
from biomarker.screener import Screener, ScreenerConfig

ROOT = Path(__file__).resolve().parents[1]
NAME = "ri-screener-ssamba"


def _clip_bytes(seconds: float = 4.0) -> bytes:
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * 16000)) / 16000
    voice = sum(np.sin(2 * np.pi * 130 * k * t) / k for k in range(1, 25)) * (np.sin(2 * np.pi * 1.2 * t) > -0.2)
    buffer = io.BytesIO()
    soundfile.write(buffer, (0.2 * voice + 0.002 * rng.standard_normal(len(t))).astype(np.float32), 16000, format="WAV")
    return buffer.getvalue()


def test_the_catalog_lists_both_screeners_with_verified_weights(tmp_path):
    catalog = Catalog(user_root=tmp_path / "models", shipped_root=ROOT / "pretrained")
    assert {"ri-screener", NAME} <= set(catalog.names())
    entry = catalog.get(NAME)
    assert entry.source == "shipped" and entry.integrity == "ok" and entry.is_default


def test_it_scores_through_the_one_inference_path_by_name():
    screener = Screener.load(NAME, device="cpu", config=ScreenerConfig(cpu_threads=1))
    score = screener.score(_clip_bytes(), name="probe.wav")
    assert score.model_name == NAME
    assert 0.0 <= score.probability <= 1.0
    assert (score.decision == DECISION_POSITIVE) == (score.probability >= score.threshold)


def test_the_card_leads_with_sensitivity_and_specificity_per_held_out_set_and_says_synthetic():
    card = (ROOT / "pretrained" / NAME / "card.md").read_text()
    first_table = next(line for line in card.splitlines() if line.startswith("|"))
    assert first_table.index("sensitivity") < first_table.index("specificity") < first_table.index("AUROC")
    assert "SYNTHETIC" in card and "not clinically validated" in card.lower()
    assert card.index("## Read this first") < card.index("- weights:")  # the decision comes before the recipe
    for held_out in ("independent-real", "independent-real-telephone", "independent-espeak", "independent-espeak-telephone",
                     "synthetic-heldout"):
        assert f"| {held_out}" in card, held_out
