"""Encoders (SSAST-style transformer, SSAMBA, MFCC-gram Transformer), heads, checkpoints and the screening bundle.

    from biomarker.models import create_model, from_pretrained
    encoder = create_model("ssast-tiny-patch")
    tokens, token_lengths = encoder.forward_features(features, frame_lengths)
"""

from biomarker.models.checkpoint import from_pretrained
from biomarker.models.config import EncoderConfig, MambaConfig, TransformerConfig
from biomarker.models.encoder import Encoder
from biomarker.models.heads import LogitHead
from biomarker.models.registry import create_model, list_models, model_config
from biomarker.models.screening import CohortSpec, ScreeningModel
from biomarker.models.ssamba import MambaEncoder
from biomarker.models.ssast import TransformerEncoder
from biomarker.nn.tokens import TokenBatch

__all__ = [
    "CohortSpec",
    "Encoder",
    "EncoderConfig",
    "LogitHead",
    "MambaConfig",
    "MambaEncoder",
    "ScreeningModel",
    "TokenBatch",
    "TransformerConfig",
    "TransformerEncoder",
    "create_model",
    "from_pretrained",
    "list_models",
    "model_config",
]
