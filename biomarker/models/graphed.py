"""CUDA-graph replay of the scoring forward: one replay instead of ~900 dispatched operations per clip.

WHY: scoring one 10 s clip with the shipped 7-block encoder is about a hundred small kernels. On a GPU their time is
the host dispatching them, not the arithmetic: 5.6 ms of model time on one lent H100's slow host against a 10 ms
end-to-end goal (docs/gpu.md). A CUDA graph records the kernels of one input shape once and replays them with a
single call. Clip lengths vary, so a clip's token columns are padded up to a bucket of `bucket_columns`; padded
tokens are masked exactly as in a padded batch (attention keys, Mamba state, the pooled mean), so a few graphs
cover every length and a clip's score does not depend on its bucket.

Only the encoder blocks, pooling and head are captured; tokenizing (it validates lengths on the host) and the
calibration stay eager. A shape whose capture fails (an encoder that asks the device mid-forward, e.g. learned
positions stretched per clip beyond their table) is remembered and scored eagerly.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from biomarker.models.screening import ScreeningModel


@dataclass(frozen=True)
class GraphConfig:
    """`bucket_columns` token columns per bucket (SSAST patches: 8 columns = 1.28 s; at most that much padding);
    `max_graphs` graphs kept (least recently used dropped first); `warmup` eager runs before a capture."""

    bucket_columns: int = 8
    max_graphs: int = 16
    warmup: int = 2


def bucket_width(columns: int, bucket_columns: int) -> int:
    """The padded number of token columns: `columns` rounded up to a multiple of `bucket_columns`."""
    return -(-columns // bucket_columns) * bucket_columns


def pad_to_columns(embeddings: torch.Tensor, rows: int, columns: int) -> torch.Tensor:
    """[B, rows x c, D] time-major embeddings -> [B, rows x columns, D]: whole columns of zeros appended at the end,
    which is where a time-major grid keeps a shorter clip's padding."""
    return F.pad(embeddings, (0, 0, 0, rows * columns - embeddings.shape[1]))


def padded_logits(model: ScreeningModel, cohort: str, embeddings: torch.Tensor, token_lengths: torch.Tensor) -> torch.Tensor:
    """What a graph captures: encoder blocks over padded embeddings, masked pooling, the cohort's head -> [B]."""
    return model.heads[cohort](model.encoder.encode_pooled(embeddings, token_lengths, has_padding=True))


class _Graph:
    """One captured shape: static input buffers, the graph, its static output."""

    def __init__(self, run: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], embeddings: torch.Tensor,
                 token_lengths: torch.Tensor, warmup: int):
        self.embeddings = embeddings.clone()
        self.token_lengths = token_lengths.clone()
        side = torch.cuda.Stream(device=embeddings.device)
        side.wait_stream(torch.cuda.current_stream(embeddings.device))
        with torch.cuda.stream(side):  # warm-up off the default stream, as CUDA graph capture asks
            for _ in range(warmup):
                run(self.embeddings, self.token_lengths)
        torch.cuda.current_stream(embeddings.device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.output = run(self.embeddings, self.token_lengths)

    def __call__(self, embeddings: torch.Tensor, token_lengths: torch.Tensor) -> torch.Tensor:
        self.embeddings.copy_(embeddings)
        self.token_lengths.copy_(token_lengths)
        self.graph.replay()
        return self.output.clone()


class GraphedScorer:
    """Recording logits of single clips through CUDA graphs keyed by (cohort, bucket); eager where not possible
    (off CUDA the same bucketed path runs eagerly, which is how the CPU tests check the padding)."""

    def __init__(self, model: ScreeningModel, config: GraphConfig = GraphConfig()):
        self.model = model
        self.config = config
        self._graphs: OrderedDict[tuple[str, int], _Graph] = OrderedDict()
        self._eager: set[tuple[str, int]] = set()

    def supports(self, features: torch.Tensor, cohort: str | None) -> bool:
        """A single clip on CUDA, scored whole (window-mean scoring splits clips on the host)."""
        return (features.is_cuda and features.shape[0] == 1
                and self.model.cohort_spec(cohort).scoring == "whole")

    @property
    def captured(self) -> list[tuple[str, int]]:
        """(cohort, bucket columns) of the graphs held, least recently used first."""
        return list(self._graphs)

    def logits(self, features: torch.Tensor, lengths: torch.Tensor, cohort: str | None = None) -> torch.Tensor:
        """features [1, T, F], lengths [1] frames -> uncalibrated recording logit [1], as `recording_logits`."""
        name = self.model.use_cohort(cohort)
        batch = self.model.encoder.tokenize(features, lengths)
        rows, columns = batch.grid
        width = bucket_width(columns, self.config.bucket_columns)
        embeddings = pad_to_columns(batch.embeddings, rows, width)
        key = (name, width)
        graph = self._graph(key, embeddings, batch.lengths) if embeddings.is_cuda else None
        if graph is None:
            return padded_logits(self.model, name, embeddings, batch.lengths)
        self._graphs.move_to_end(key)
        return graph(embeddings, batch.lengths)

    def _graph(self, key: tuple[str, int], embeddings: torch.Tensor, token_lengths: torch.Tensor) -> _Graph | None:
        if key in self._graphs or key in self._eager:
            return self._graphs.get(key)
        try:
            graph = _Graph(lambda e, n: padded_logits(self.model, key[0], e, n), embeddings, token_lengths,
                           self.config.warmup)
        except RuntimeError:  # an operation that syncs or allocates on the host cannot be captured
            torch.cuda.synchronize(embeddings.device)
            self._eager.add(key)
            return None
        self._graphs[key] = graph
        while len(self._graphs) > self.config.max_graphs:
            self._graphs.popitem(last=False)
        return graph
