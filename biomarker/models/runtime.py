"""ONNX Runtime for the CPU scoring forward: the same logits as eager PyTorch, from a maintained inference engine.

WHY this runtime (issue 28, measured side by side by `biomarker bench scoring` on the shared 2-core EPYC; numbers in
docs/performance.md): for the shipped encoder on a 10 s clip at 1 thread, ONNX Runtime ran the unpadded forward in
about 0.86x eager PyTorch's CPU time with logits equal to 1e-6; torch.compile (inductor, dynamic shapes) reached about
0.89x but took 118 s to compile and 47 s more for the next clip length, on every process start; int8 dynamic
quantisation of the linear layers reached about 0.7x but moved a logit by 4e-3, which breaks "probabilities equal
within 1e-4". A padded batch (attention with a mask) ran slower in ONNX Runtime than eager, so only unpadded
forwards (a single clip, or clips of one length) go through it; padded batches stay eager.

What is exported is the seam CUDA graphs use (`graphed.padded_logits` without padding): positions, encoder blocks,
final norm, masked mean pooling and the cohort's head, from patch embeddings [B, N, D] to logits [B]; each block's
attention then runs as ONNX Runtime's MultiHeadAttention (`onnx_attention`: 0.91x the exported graph's forward at 1
thread, 0.58x at 2, same logits), kept only where it scores the export example as the exported graph does. Tokenizing
(it validates lengths on the host) and the calibration stay eager. Exporting takes seconds (15 s for the shipped
model on a busy 2-core machine), so the exported graph is kept on disk, keyed by a hash of the weights it holds,
and a second process (the app after a restart, each `torchrun` rank) loads it in well under a second.
An encoder that cannot be exported (SSAMBA's native scan: `Encoder.onnx_exportable` is False) is scored eagerly
without trying, and its scores say so.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from biomarker.atomic_files import write_atomically
from biomarker.models.screening import ScreeningModel

if TYPE_CHECKING:
    import onnx

LOG = logging.getLogger(__name__)

RUNTIMES = ("eager", "onnxruntime")
# Opset 23 has ONNX's own Attention operator: the exporter writes each SDPA call as one node, which ONNX Runtime runs
# as one fused kernel instead of MatMul, Softmax and MatMul over the N x N scores (the shipped screener's forward at 1
# thread: 89 ms against 97 ms at opset 18, measured side by side; same logits).
ONNX_OPSET = 23
# The graph pass applied after export (biomarker/models/onnx_attention.py), in the cache key: a changed pass never
# reuses an old file.
ATTENTION_PASS = "multihead-1"
FUSION_TOLERANCE = 1e-5  # logits: the fused graph is kept only where it scores as the exported one does
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "biomarker" / "onnx"


@dataclass(frozen=True)
class RuntimeConfig:
    """`name`: `eager` (PyTorch) or `onnxruntime`; `cache_dir`: where exported graphs are kept (default
    `$XDG_CACHE_HOME/biomarker/onnx`); `fused_attention`: run attention blocks as ONNX Runtime's MultiHeadAttention
    (`onnx_attention`); ONNX Runtime's thread count follows torch's at the time of each call."""

    name: str = "eager"
    cache_dir: Path = field(default_factory=lambda: DEFAULT_CACHE)
    fused_attention: bool = True  # False: the graph as exported (`biomarker bench scoring` measures both)

    def __post_init__(self) -> None:
        if self.name not in RUNTIMES:
            raise ValueError(f"runtime {self.name!r} is not one of {', '.join(RUNTIMES)}")


def runtime_label() -> str:
    """What a Score's `device` field gains when ONNX Runtime computed its logit, e.g. `onnxruntime-1.32.0`."""
    import onnxruntime  # lazy: the optional engine is loaded only when a screener asks for it

    return f"onnxruntime-{onnxruntime.__version__}"


class _Unpadded(torch.nn.Module):
    """The exported function: embeddings [B, N, D] (no padding), token_lengths [B] -> logits [B]."""

    def __init__(self, model: ScreeningModel, cohort: str):
        super().__init__()
        self.model, self.cohort = model, cohort

    def forward(self, embeddings: torch.Tensor, token_lengths: torch.Tensor) -> torch.Tensor:
        return self.model.heads[self.cohort](self.model.encoder.encode_pooled(embeddings, token_lengths, has_padding=False))


def weights_key(model: ScreeningModel, cohort: str, passes: str = ATTENTION_PASS) -> str:
    """sha256 over everything the exported graph bakes in: the encoder's and the cohort head's tensors, the active
    adapter set, the encoder config, the torch version (a new exporter may write a different graph) and the graph
    passes applied after export."""
    digest = hashlib.sha256(f"{torch.__version__}|{ONNX_OPSET}|{passes}|{model.encoder.config}|{cohort}|"
                            f"{model.cohorts[cohort].adapter_set}".encode())
    for module in (model.encoder, model.heads[cohort]):
        for name, tensor in module.state_dict().items():
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:32]


class OnnxScorer:
    """Recording logits of unpadded whole-clip forwards through ONNX Runtime, one session per (cohort, threads);
    `supports` says when it applies, as `GraphedScorer` does on CUDA."""

    def __init__(self, model: ScreeningModel, config: RuntimeConfig = RuntimeConfig()):
        self.model = model
        self.config = config
        self.label = runtime_label()
        self._sessions: dict[tuple[str, int], object] = {}
        self._failed: set[str] = set()  # cohorts whose export failed: scored eagerly from then on

    def applies(self, device: torch.device | str, cohort: str | None) -> bool:
        """CPU, a cohort scored whole, and an encoder that exports (and did): batches without padding of such a
        cohort run here."""
        name = self.model.resolve_cohort(cohort)
        return (torch.device(device).type == "cpu" and self.model.encoder.onnx_exportable
                and self.model.cohorts[name].scoring == "whole" and name not in self._failed)

    def supports(self, features: torch.Tensor, frame_lengths: torch.Tensor, cohort: str | None) -> bool:
        """`applies`, no padding in the batch (the graph has no attention mask), and a clip length the graph
        covers (`Encoder.onnx_covers`: not longer than a learned position table)."""
        return (self.applies(features.device, cohort) and bool((frame_lengths == features.shape[1]).all())
                and self.model.encoder.onnx_covers(features.shape[1]))

    def logits(self, features: torch.Tensor, frame_lengths: torch.Tensor, cohort: str | None) -> torch.Tensor | None:
        """features [B, T, F] (none padded), frame_lengths [B] -> logits [B]; None when the encoder cannot be
        exported (the caller then runs it eagerly)."""
        name = self.model.use_cohort(cohort)
        batch = self.model.encoder.tokenize(features, frame_lengths)
        session = self._session(name, batch.embeddings, batch.lengths)
        if session is None:
            return None
        inputs = session.get_inputs()
        [logits] = session.run(None, {inputs[0].name: batch.embeddings.numpy(),
                                      inputs[1].name: batch.lengths.numpy().astype(np.int64)})
        return torch.from_numpy(logits)

    def _session(self, cohort: str, embeddings: torch.Tensor, token_lengths: torch.Tensor) -> object | None:
        threads = torch.get_num_threads()
        key = (cohort, threads)
        if key not in self._sessions:
            try:
                path = self._exported(cohort, embeddings, token_lengths)
            except Exception as error:  # noqa: BLE001 - any exporter failure means "score this encoder eagerly"
                LOG.warning("ONNX export of %s (cohort %s) failed, scoring it eagerly: %s: %s",
                            self.model.name, cohort, type(error).__name__, error)
                self._failed.add(cohort)
                return None
            self._sessions[key] = _open_session(path, threads)
        return self._sessions[key]

    def _exported(self, cohort: str, embeddings: torch.Tensor, token_lengths: torch.Tensor) -> Path:
        """The cached graph of (weights, cohort), exported now if absent. Written to a temporary name and renamed,
        so ranks exporting at once never read half a file."""
        key = weights_key(self.model, cohort, ATTENTION_PASS if self.config.fused_attention else "none")
        path = Path(self.config.cache_dir) / f"{self.model.name}-{cohort}-{key}.onnx"
        if path.exists():
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        tokens = torch.export.Dim("tokens", min=2, max=1_000_000)
        batch = torch.export.Dim("batch", min=1, max=65_536)
        # Out of inference mode (the screener calls in under it; the exporter traces with autograd's machinery);
        # its progress lines go to stderr, never into a CSV written to stdout.
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad(), \
                contextlib.redirect_stdout(sys.stderr):
            warnings.simplefilter("ignore")  # the exporter's deprecation chatter is not the user's business
            program = torch.onnx.export(_Unpadded(self.model, cohort).eval(),
                                        (embeddings.clone(), token_lengths.clone().to(torch.int64)),
                                        dynamo=True, dynamic_shapes=({0: batch, 1: tokens}, {0: batch}),
                                        opset_version=ONNX_OPSET, optimize=True, verbose=False)
        graph = program.model_proto
        if self.config.fused_attention:
            graph = _with_fused_attention(graph, self.model, (embeddings, token_lengths))
        write_atomically(path, graph.SerializeToString())
        return path


def _with_fused_attention(graph: onnx.ModelProto, model: ScreeningModel,
                          example: tuple[torch.Tensor, torch.Tensor]) -> onnx.ModelProto:
    """`graph` with its attention blocks on ONNX Runtime's MultiHeadAttention (`onnx_attention`), where any matched
    and the rewritten graph's logits on the export example equal the exported graph's; else `graph` unchanged."""
    import onnx  # lazy: 1 s of import, paid only when a graph is exported

    from biomarker.models.onnx_attention import fuse_attention

    heads = getattr(model.encoder.config, "num_heads", None)
    fused = onnx.ModelProto()
    fused.CopyFrom(graph)
    if heads is None or not fuse_attention(fused, heads):
        return graph
    feeds = [example[0].numpy(), example[1].numpy().astype(np.int64)]
    try:
        expected, rewritten = (_run_once(candidate, feeds) for candidate in (graph, fused))
    except Exception as error:  # noqa: BLE001 - an engine that rejects the rewrite gets the graph as exported
        LOG.warning("fused attention rejected by ONNX Runtime (%s: %s); keeping the exported graph",
                    type(error).__name__, error)
        return graph
    return fused if float(np.abs(rewritten - expected).max()) <= FUSION_TOLERANCE else graph


def _run_once(graph: onnx.ModelProto, feeds: list[np.ndarray]) -> np.ndarray:
    import onnxruntime  # lazy: see runtime_label

    session = onnxruntime.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, dict(zip((i.name for i in session.get_inputs()), feeds)))[0]


def _open_session(path: Path, threads: int) -> object:
    import onnxruntime  # lazy: see runtime_label

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
