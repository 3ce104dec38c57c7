"""SSAMBA (Shams et al., SLT 2024): SSAST's tokens, positions and objective with bidirectional Mamba blocks.

Depth 24, d 192/384/768, d_state 16, d_conv 4, expand 2. Vim's default initialization for the mixer
(PyTorch's Linear init, Mamba's dt and S4D-real A init, in `biomarker.nn.mamba`).
"""

from __future__ import annotations

from typing import ClassVar

from biomarker.models.config import MambaConfig
from biomarker.models.encoder import Encoder
from biomarker.models.kinds import register_kind
from biomarker.nn.mamba import MambaBlock


@register_kind
class MambaEncoder(Encoder):
    """Grid tokens -> bidirectional MambaBlocks (directions averaged) -> LayerNorm."""

    kind: ClassVar[str] = "ssamba"
    config_class = MambaConfig
    onnx_exportable: ClassVar[bool] = False  # the native scan is a C kernel called through ctypes: nothing to trace
    config: MambaConfig

    def build_block(self) -> MambaBlock:
        c = self.config
        return MambaBlock(c.embed_dim, c.d_state, c.d_conv, c.expand, c.dt_min, c.dt_max)
