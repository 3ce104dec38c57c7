"""Machine-readable cards: every shipped card opens with a Hugging Face model-card header that parses, whose
metrics agree with the card's own tables, and which links only images shipped beside it; a header value that
disagrees with its table is caught; `biomarker models show` prints the header's facts. Reads whatever cards exist."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from biomarker.cli import app
from biomarker.governance.cards import check_card, read_card, split_card

CARDS = sorted((Path(__file__).resolve().parent.parent / "pretrained").glob("*/card.md"))


@pytest.mark.parametrize("path", CARDS, ids=[p.parent.name for p in CARDS])
def test_every_shipped_card_header_parses_and_agrees_with_its_tables(path):
    card = read_card(path)
    assert card.results, f"{path}: model-index has no metrics"
    assert check_card(card) == []
    assert "## Subgroup performance" in card.body


def test_a_header_that_disagrees_with_its_table_is_caught(tmp_path):
    card = tmp_path / "card.md"
    card.write_text("""---
license: apache-2.0
intended_use: screening research
training_data: [synthetic]
model-index:
- name: m
  results:
  - dataset: {name: held-out set}
    metrics:
    - {type: auroc, name: AUROC, value: 0.91}
    - {type: sensitivity, name: sensitivity, value: 0.5}
---
| set | AUROC [95% CI] | sensitivity [CI] |
|---|---|---|
| held-out set | 0.910 [0.85, 0.95] | **0.600** [0.4, 0.8] |

![roc](roc.png)
""")
    problems = check_card(read_card(card))
    assert problems == ["'held-out set' / 'sensitivity': header says 0.5, table says 0.600",
                        "links roc.png, which is not shipped beside the card"]


def test_a_card_without_a_header_is_named():
    with pytest.raises(ValueError, match="no YAML header"):
        split_card("# a card\n", "x/card.md")


def test_models_show_reads_the_header_back():
    result = CliRunner().invoke(app, ["models", "show", "ri-screener"])
    assert result.exit_code == 0, result.output
    assert "license      apache-2.0" in result.output
    assert "metric       held-out espeak-ng voices and languages, wideband: sensitivity" in result.output
