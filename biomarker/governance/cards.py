"""Machine-readable model cards: a Hugging Face model-card YAML header over the Markdown a person reads.

The header (between `---` lines at the very top, read with PyYAML's safe loader) holds `license`, `tags`,
`intended_use`, `training_data` and a `model-index` whose `results` give metrics per evaluated set, as the Hugging
Face Hub's model-index convention does:

    model-index:
    - name: ri-screener@7
      results:
      - task: {type: audio-classification, name: respiratory-insufficiency screening}
        dataset: {name: "held-out espeak-ng voices and languages, wideband", type: independent-espeak}
        metrics:
        - {type: sensitivity, name: sensitivity, value: 0.125}

So that the header can never say something the card's tables do not, `check_card` finds, for every result, the
table row whose first cell is the dataset's name and the column whose heading starts with the metric's `name`, and
compares the cell's first number with the value at the cell's precision. It also checks that every image the card
links exists beside it. Generic: it reads whatever cards exist (a new card needs no code here). No torch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from biomarker.records import BiomarkerError

REQUIRED_KEYS = ("license", "intended_use", "training_data", "model-index")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")


class CardError(BiomarkerError, ValueError):
    """A card's header is missing or malformed."""


@dataclass(frozen=True)
class CardResult:
    model: str
    dataset: str
    metric: str  # the table column's heading starts with this
    kind: str  # the metric type, e.g. sensitivity
    value: float


@dataclass(frozen=True)
class Card:
    path: Path
    header: dict[str, Any]
    body: str

    @property
    def results(self) -> list[CardResult]:
        found = []
        for model in self.header.get("model-index") or []:
            for result in model.get("results") or []:
                dataset = (result.get("dataset") or {}).get("name", "")
                for metric in result.get("metrics") or []:
                    found.append(CardResult(model.get("name", ""), dataset, metric.get("name", metric.get("type", "")),
                                            metric.get("type", ""), float(metric["value"])))
        return found


def split_card(text: str, where: str = "card") -> tuple[dict[str, Any], str]:
    """(header, body) of a card's text; a card without a header is an error naming it."""
    if not text.startswith("---\n"):
        raise CardError(f"{where}: no YAML header (the card must open with a '---' line)")
    end = text.find("\n---\n", 4)
    if end < 0:
        raise CardError(f"{where}: the YAML header is not closed by a '---' line")
    try:
        header = yaml.safe_load(text[4:end])
    except yaml.YAMLError as error:
        raise CardError(f"{where}: the YAML header does not parse ({error})") from error
    if not isinstance(header, dict):
        raise CardError(f"{where}: the YAML header is not a mapping")
    return header, text[end + 5:]


def read_card(path: str | Path) -> Card:
    path = Path(path)
    header, body = split_card(path.read_text(encoding="utf-8"), str(path))
    return Card(path, header, body)


def _tables(body: str) -> list[tuple[list[str], list[list[str]]]]:
    """Every Markdown table: (heading cells, rows of cells)."""
    tables, lines = [], body.splitlines()
    index = 0
    while index < len(lines) - 1:
        if lines[index].startswith("|") and re.match(r"^\|[\s:|-]+\|$", lines[index + 1].strip()):
            heading = [c.strip() for c in lines[index].strip().strip("|").split("|")]
            rows, index = [], index + 2
            while index < len(lines) and lines[index].startswith("|"):
                rows.append([c.strip() for c in lines[index].strip().strip("|").split("|")])
                index += 1
            tables.append((heading, rows))
        else:
            index += 1
    return tables


def _plain(cell: str) -> str:
    return re.sub(r"[*`]", "", cell).strip()


def table_value(body: str, dataset: str, metric: str) -> str | None:
    """The cell at the row named `dataset` and the column whose heading starts with `metric` (first match)."""
    for heading, rows in _tables(body):
        columns = [k for k, h in enumerate(heading) if _plain(h).lower().startswith(metric.lower())]
        if not columns:
            continue
        for row in rows:
            if row and _plain(row[0]) == dataset and columns[0] < len(row):
                return row[columns[0]]
    return None


def check_card(card: Card) -> list[str]:
    """Every disagreement between header and body (empty: they agree), and every linked image that is absent."""
    problems = [f"header lacks {key!r}" for key in REQUIRED_KEYS if key not in card.header]
    results = card.results
    if "model-index" in card.header and not results:
        problems.append("model-index has no metrics")
    for result in results:
        cell = table_value(card.body, result.dataset, result.metric)
        if cell is None:
            problems.append(f"no table row {result.dataset!r} with a column {result.metric!r}")
            continue
        match = _NUMBER.search(_plain(cell))
        if match is None:
            problems.append(f"{result.dataset!r} / {result.metric!r}: cell {cell!r} holds no number")
            continue
        decimals = len(match.group().partition(".")[2])
        if round(result.value, decimals) != float(match.group()):
            problems.append(f"{result.dataset!r} / {result.metric!r}: header says {result.value}, table says {match.group()}")
    for link in _IMAGE.findall(card.body):
        if not re.match(r"^[a-z]+://", link) and not (card.path.parent / link).is_file():
            problems.append(f"links {link}, which is not shipped beside the card")
    return problems


def summary(card: Card) -> list[str]:
    """What `biomarker models show` prints from the header: license, intended use, training data, metrics."""
    header = card.header
    lines = [f"license      {header.get('license')}", f"intended use {_one_line(header.get('intended_use'))}",
             f"training     {_one_line(header.get('training_data'))}"]
    for result in card.results:
        lines.append(f"metric       {result.dataset}: {result.kind} {result.value:g}")
    return lines


def _one_line(value: Any) -> str:
    if isinstance(value, list):
        return "; ".join(str(v) for v in value)
    return " ".join(str(value).split())
