"""Every encoder by name: `create_model("ssamba-tiny", depth=2)`, `list_models()`.

Names: ssast-{tiny,small,base}-{patch,frame}, ssamba-{tiny,small,base}, mfccgram-transformer. Overrides are
config fields (a typo is an error) plus `features=` for the front-end's config dict.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from biomarker.models.config import EncoderConfig, MambaConfig, TransformerConfig
from biomarker.models.encoder import Encoder
from biomarker.models.mfccgram import MFCCGRAM_CONFIG, MFCCGRAM_FEATURES
from biomarker.models.ssamba import MambaEncoder
from biomarker.models.ssast import TransformerEncoder
from biomarker.records import ModelNotFoundError

SIZES = {"tiny": (192, 3), "small": (384, 6), "base": (768, 12)}  # embed_dim, attention heads
# Patch: 16x16, stride 16 as in pretraining (128 x 1024 frames -> 8 x 64 = 512 tokens).
# Frame: 128x2, stride 2 (1 x 512 tokens for the same 10.24 s).
TOKENS = {
    "patch": dict(patch=(16, 16), stride=(16, 16), max_columns=64),
    "frame": dict(patch=(128, 2), stride=(128, 2), max_columns=512),
}


@dataclass(frozen=True)
class ModelSpec:
    encoder_class: type[Encoder]
    config: EncoderConfig
    features: dict[str, Any]


def _specs() -> dict[str, ModelSpec]:
    fbank = {"name": "fbank"}
    specs: dict[str, ModelSpec] = {}
    for size, (dim, heads) in SIZES.items():
        for tokens, token_config in TOKENS.items():
            config = TransformerConfig(embed_dim=dim, depth=12, num_heads=heads, **token_config)
            specs[f"ssast-{size}-{tokens}"] = ModelSpec(TransformerEncoder, config, fbank)
        specs[f"ssamba-{size}"] = ModelSpec(MambaEncoder, MambaConfig(embed_dim=dim, depth=24, **TOKENS["patch"]), fbank)
    specs["mfccgram-transformer"] = ModelSpec(TransformerEncoder, MFCCGRAM_CONFIG, MFCCGRAM_FEATURES)
    return specs


_SPECS = _specs()


def list_models() -> list[str]:
    return sorted(_SPECS)


def model_config(name: str, **overrides: Any) -> EncoderConfig:
    """The typed config `create_model(name, **overrides)` would build with."""
    if name not in _SPECS:
        raise ModelNotFoundError(f"no model named {name!r}; registered: {', '.join(list_models())}")
    return _SPECS[name].config.replace(**overrides)


def create_model(name: str, **overrides: Any) -> Encoder:
    """A freshly initialized encoder. `features=` replaces the front-end config; other keys the config's fields."""
    features = overrides.pop("features", None)
    config = model_config(name, **overrides)
    spec = _SPECS[name]
    return spec.encoder_class(config, dict(spec.features if features is None else features))
