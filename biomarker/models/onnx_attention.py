"""One attention kernel per block in the exported scoring graph: ONNX's `Attention` and the layout shuffles around it
become ONNX Runtime's `com.microsoft.MultiHeadAttention` on [B, N, H*d] queries, keys and values.

WHY (issue 28, measured side by side in one process on the 2-core Xeon, shipped screener, 10 s clip, 1 thread, 40
interleaved rounds): the dynamo exporter writes each block's attention as Reshape -> Transpose -> three Slice/Squeeze
-> `Attention` on [B, H, N, d] -> Transpose -> Reshape. ONNX Runtime runs the Transposes as copies (about 3 ms of the
forward) and its opset-23 `Attention` kernel more slowly than its own `MultiHeadAttention`, which takes the projected
[B, N, H*d] tensors as they are. Rewritten, the forward took 77.8 ms against 85.5 ms, with the same logits to the
last bit. ONNX Runtime's own fusion tool (`onnxruntime.transformers.optimizer`, model_type "bert") does not match
the dynamo exporter's graph at opset 18 or 23 (it fused no attention), so this small pass is ours.

The pass only rewrites the exact pattern `biomarker.nn.attention.SelfAttention` exports (no mask, not causal,
default scale) and leaves anything else as it is; `runtime.py` keeps the rewritten graph only where ONNX Runtime's
logits on the export example equal the unrewritten graph's.
"""

from __future__ import annotations

import onnx
from onnx import helper, numpy_helper

ATTENTION_PASS = "multihead-1"  # in the exported graph's cache key: a changed pass never reuses an old file
CONTRIB_DOMAIN = "com.microsoft"
QKV_LAYOUT = [2, 0, 3, 1, 4]  # [B, N, 3, H, d] -> [3, B, H, N, d]
HEADS_LAYOUT = [0, 2, 1, 3]  # [B, H, N, d] -> [B, N, H, d]
DEFAULT_ATTRIBUTES = {"is_causal": 0, "softcap": 0.0, "qk_matmul_output_mode": 0}


def fuse_attention(model: onnx.ModelProto, num_heads: int) -> int:
    """Rewrite every matching attention block of `model` in place; returns how many were rewritten."""
    graph = model.graph
    constants = {tensor.name: numpy_helper.to_array(tensor).tolist() for tensor in graph.initializer}
    producer = {output: node for node in graph.node for output in node.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    replaced: dict[int, list[onnx.NodeProto]] = {}  # id(first node of a block's pattern) -> its replacement
    removed: set[int] = set()
    for node in graph.node:
        match = _match(node, num_heads, constants, producer, consumers) if node.op_type == "Attention" else None
        if match is None:
            continue
        projected, output, pattern = match
        q, k, v = (f"{node.name}/{part}" for part in "qkv")
        replaced[id(pattern[0])] = [
            helper.make_node("Split", [projected], [q, k, v], axis=-1, num_outputs=3, name=f"{node.name}/split"),
            helper.make_node("MultiHeadAttention", [q, k, v], [output], domain=CONTRIB_DOMAIN, num_heads=num_heads,
                             name=f"{node.name}/multihead")]
        removed.update(id(part) for part in pattern)
    if not replaced:
        return 0
    nodes = []
    for node in graph.node:
        if id(node) in replaced:
            nodes.extend(replaced[id(node)])
        elif id(node) not in removed:
            nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    used = {name for node in nodes for name in node.input} | {output.name for output in graph.output}
    unused = [tensor for tensor in graph.initializer if tensor.name not in used]  # the Slices' bounds
    for tensor in unused:
        graph.initializer.remove(tensor)
    if not any(opset.domain == CONTRIB_DOMAIN for opset in model.opset_import):
        model.opset_import.append(helper.make_opsetid(CONTRIB_DOMAIN, 1))
    return len(replaced)


def _match(attention: onnx.NodeProto, num_heads: int, constants: dict, producer: dict,
           consumers: dict) -> tuple[str, str, list[onnx.NodeProto]] | None:
    """(the [B, N, 3*H*d] projection, the block's [B, N, H*d] output name, the pattern's nodes, first one first), or
    None where `attention` is not exactly SelfAttention's unmasked, non-causal, default-scale export."""
    attributes = {a.name: helper.get_attribute_value(a) for a in attention.attribute}
    if (attention.domain or len(attention.input) != 3 or len(attention.output) != 1
            or any(attributes.get(name, default) != default for name, default in DEFAULT_ATTRIBUTES.items())
            or set(attributes) - set(DEFAULT_ATTRIBUTES)):  # a scale, a mask type, a KV cache: not ours
        return None
    squeezes = [producer.get(name) for name in attention.input]
    if not all(_is(s, "Squeeze") and _sole_use(s, consumers) and len(s.input) == 2 and constants.get(s.input[1]) == [0]
               for s in squeezes):
        return None
    slices = [producer.get(s.input[0]) for s in squeezes]
    for index, node in enumerate(slices):  # q, k, v: rows 0, 1, 2 of axis 0
        if not (_is(node, "Slice") and _sole_use(node, consumers) and len(node.input) >= 4
                and [constants.get(name) for name in node.input[1:4]] == [[index], [index + 1], [0]]
                and (len(node.input) == 4 or constants.get(node.input[4]) == [1])):
            return None
    transpose = producer.get(slices[0].input[0])
    if not (_is(transpose, "Transpose") and all(node.input[0] == transpose.output[0] for node in slices)
            and len(consumers.get(transpose.output[0], [])) == 3 and _perm(transpose) == QKV_LAYOUT):
        return None
    reshape = producer.get(transpose.input[0])
    if not (_is(reshape, "Reshape") and _sole_use(reshape, consumers) and _splits_heads(reshape, num_heads, constants,
                                                                                          producer)):
        return None
    users = consumers.get(attention.output[0], [])
    heads_transpose = users[0] if len(users) == 1 else None
    if not (_is(heads_transpose, "Transpose") and _perm(heads_transpose) == HEADS_LAYOUT
            and _sole_use(heads_transpose, consumers)):
        return None
    [merge] = consumers[heads_transpose.output[0]]
    if not (_is(merge, "Reshape") and _merges_heads(merge, num_heads, constants, producer)):
        return None
    pattern = [reshape, transpose, *slices, *squeezes, attention, heads_transpose, merge]
    return reshape.input[0], merge.output[0], pattern


def _is(node: onnx.NodeProto | None, op_type: str) -> bool:
    return node is not None and node.op_type == op_type and not node.domain


def _sole_use(node: onnx.NodeProto, consumers: dict) -> bool:
    return len(node.output) == 1 and len(consumers.get(node.output[0], [])) == 1


def _perm(node: onnx.NodeProto) -> list[int] | None:
    return next((list(helper.get_attribute_value(a)) for a in node.attribute if a.name == "perm"), None)


def _target_shape(reshape: onnx.NodeProto, constants: dict, producer: dict) -> list[int | None] | None:
    """A Reshape's target, entry by entry: a constant, or a Concat of one-element pieces, each a constant or a
    dynamic size (None). None when it is neither (the pattern is then left alone)."""
    shape = constants.get(reshape.input[1])
    if shape is not None:
        return shape if isinstance(shape, list) else None
    concat = producer.get(reshape.input[1])
    if not _is(concat, "Concat"):
        return None
    pieces = [constants.get(name) for name in concat.input]
    if any(piece is not None and not (isinstance(piece, list) and len(piece) == 1) for piece in pieces):
        return None
    return [None if piece is None else piece[0] for piece in pieces]


def _splits_heads(reshape: onnx.NodeProto, num_heads: int, constants: dict, producer: dict) -> bool:
    """The Reshape's target is [B, N, 3, H, d] with 3 and H constant (B and N are the graph's dynamic sizes)."""
    shape = _target_shape(reshape, constants, producer)
    return shape is not None and len(shape) == 5 and shape[2:4] == [3, num_heads]


def _merges_heads(reshape: onnx.NodeProto, num_heads: int, constants: dict, producer: dict) -> bool:
    """The Reshape's target is [B, N, H*d]: what MultiHeadAttention returns."""
    shape = _target_shape(reshape, constants, producer)
    return shape is not None and len(shape) == 3 and shape[2] is not None and shape[2] > 0 and shape[2] % num_heads == 0
