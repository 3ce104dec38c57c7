"""The exported scoring graph runs each attention block as ONNX Runtime's MultiHeadAttention (issue 28), the pass
touches nothing but the exact pattern it knows, and a rewrite that would score differently is never kept."""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import onnx
import pytest

import biomarker.models.runtime as runtime
from biomarker.models.onnx_attention import fuse_attention
from biomarker.models.runtime import RuntimeConfig
from biomarker.screener import Screener, ScreenerConfig
from screening_helpers import TINY_ENCODER, burst_clip, save_tiny_screening_model, wav_bytes

CLIP = wav_bytes(burst_clip(1, np.random.default_rng(0)))
HEADS = TINY_ENCODER["num_heads"]


def exported_graph(model: Path, cache: Path, fused_attention: bool = True) -> onnx.ModelProto:
    """Score one clip through ONNX Runtime and return the graph it cached."""
    screener = Screener.load(model, device="cpu", config=ScreenerConfig(
        cpu_threads=1, runtime=RuntimeConfig("onnxruntime", cache_dir=cache, fused_attention=fused_attention)))
    screener.score(CLIP)
    [path] = cache.glob("*.onnx")
    return onnx.load(path)


def operators(graph: onnx.ModelProto) -> collections.Counter:
    return collections.Counter((node.domain, node.op_type) for node in graph.graph.node)


@pytest.fixture(scope="module")
def unfused(tmp_path_factory) -> onnx.ModelProto:
    """The tiny screener's graph as the exporter writes it (the pass switched off)."""
    root = tmp_path_factory.mktemp("unfused")
    return exported_graph(save_tiny_screening_model(root / "tiny"), root / "cache", fused_attention=False)


def test_the_cached_graph_runs_each_block_as_multihead_attention(unfused, tmp_path):
    graph = exported_graph(save_tiny_screening_model(tmp_path / "tiny"), tmp_path / "cache")
    counts = operators(graph)
    assert counts[("com.microsoft", "MultiHeadAttention")] == 1  # the tiny encoder has one block
    assert counts[("", "Attention")] == 0
    assert counts[("", "Transpose")] == operators(unfused)[("", "Transpose")] - 2  # the heads' layout copies


def test_the_pass_rewrites_the_exporters_pattern_and_leaves_a_causal_block_alone(unfused):
    assert operators(unfused)[("", "Attention")] == 1
    fused = onnx.ModelProto()
    fused.CopyFrom(unfused)
    assert fuse_attention(fused, HEADS) == 1
    onnx.checker.check_model(fused)
    causal = onnx.ModelProto()
    causal.CopyFrom(unfused)
    [attention] = [node for node in causal.graph.node if node.op_type == "Attention"]
    [flag] = [a for a in attention.attribute if a.name == "is_causal"]
    flag.i = 1  # not SelfAttention's export: MultiHeadAttention here would drop the causal mask
    assert fuse_attention(causal, HEADS) == 0
    assert operators(causal) == operators(unfused)


def test_the_pass_wants_the_encoders_head_count(unfused):
    """A head count the graph's reshape does not split into leaves the graph as it is."""
    copy = onnx.ModelProto()
    copy.CopyFrom(unfused)
    assert fuse_attention(copy, HEADS + 1) == 0 and operators(copy) == operators(unfused)


def test_a_rewrite_that_would_score_differently_is_not_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(runtime, "FUSION_TOLERANCE", -1.0)  # no two logits are ever this close
    graph = exported_graph(save_tiny_screening_model(tmp_path / "tiny"), tmp_path / "cache")
    assert operators(graph)[("", "Attention")] == 1
    assert operators(graph)[("com.microsoft", "MultiHeadAttention")] == 0

