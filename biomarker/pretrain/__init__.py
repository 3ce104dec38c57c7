"""Self-supervised pretraining: the masked-token objective (`objective`), unlabeled data (`data`) and one
run from data to a shippable encoder (`run`). The loop itself is `biomarker.train`, shared with fine-tuning."""

from biomarker.pretrain.objective import MaskedObjectiveConfig, MaskedTokenObjective

__all__ = ["MaskedObjectiveConfig", "MaskedTokenObjective"]
