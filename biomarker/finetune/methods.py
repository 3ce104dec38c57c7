"""Fine-tuning methods are switches on one ScreeningModel, not copies of it.

- `full`: encoder and head train (the reference, most parameters);
- `linear`: frozen encoder, only the cohort's LayerNorm+Linear head trains (a linear probe);
- `adapter`: AAT bottleneck adapters (d -> d/4 -> d, zero-initialised up-projection; one sequential after
  attention, one parallel to the MLP) + head; backbone frozen (Liang et al., ICASSP 2024);
- `conv-adapter`: convolutional adapters on the token grid (Selvaraj et al., INTERSPEECH 2023) + head.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from biomarker.models import ScreeningModel
from biomarker.records import BiomarkerError

# User-facing method names -> adapter kinds of `biomarker.nn.adapters` (None: no adapter). The one table, for
# `biomarker finetune` and continual learning alike.
ADAPTER_KIND: dict[str, str | None] = {"full": None, "linear": None, "adapter": "aat", "conv-adapter": "conv"}
METHODS = tuple(ADAPTER_KIND)


class FinetuneError(BiomarkerError, ValueError):
    """A fine-tuning request cannot be carried out; the message names the setting and the value."""


class ContinualError(BiomarkerError, ValueError):
    """A continual-learning request cannot be honoured; the message names the cohort, file or setting."""


@dataclass(frozen=True)
class Trainable:
    """How much of the cohort's inference path trains: the number every comparison table reports."""

    method: str
    trainable_params: int
    path_params: int

    @property
    def percent(self) -> float:
        return 100.0 * self.trainable_params / self.path_params


def attach(bundle: ScreeningModel, cohort: str, method: str, *, adapter_options: dict[str, Any] | None = None,
           make_default: bool = True) -> Trainable:
    """Add `cohort` to the bundle for `method` and set requires_grad so exactly that method's parameters train.
    `adapter_options` size the cohort's adapter set (e.g. {"ratio": 0.125}, {"hidden": 32}; methods without an
    adapter ignore them); `make_default=False` keeps the bundle's default cohort (continual learning)."""
    if method not in ADAPTER_KIND:
        raise FinetuneError(f"method must be one of {METHODS}, got {method!r}")
    kind = ADAPTER_KIND[method]
    options = (adapter_options or {}) if kind is not None else {}
    bundle.add_cohort(cohort, kind, make_default=make_default, **options)
    trainable, on_path = bundle.train_only(cohort, encoder=method == "full")
    return Trainable(method, trainable, on_path)
