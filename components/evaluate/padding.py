"""Fold the explicit zero padding of TensorFlow-style "same" convolutions into the convolutions
of an exported graph, so ONNX Runtime runs one operation where the trace left two.

    folded = fold_pads_into_convs(graph)     # onnx.ModelProto, changed in place; Pads removed

Lite0 pads asymmetrically (more on the bottom and right of a stride-2 window), which PyTorch's
Conv2d cannot say, so the backbone pads first (`backbone.SameConv2d`). ONNX's Conv can say it
(`pads` per side). Left as a Pad node, every such convolution also made ONNX Runtime reorder the
activations out of and back into its blocked layout: Pads and reorders were 30% of the grader
graph's time at 304 x 432 on one thread (measured). The result is the same numbers: zero padding
inside the convolution or before it.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper
from onnx.reference import ReferenceEvaluator

# Tensors up to this many values are evaluated when known: shapes and amounts, never weights.
_SMALL = 64


def _constant_values(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Every small tensor of the graph whose value is known without an input: initializers,
    Constant nodes, and what nodes compute from those alone (the trace writes a Pad's amounts
    as constants run through Transpose, Reshape and Cast)."""
    known = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    for node in model.graph.node:  # in topological order, as ONNX requires
        if node.op_type == "Constant" and node.attribute[0].name == "value":
            known[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
            continue
        inputs = [name for name in node.input if name]
        if node.domain or not inputs or not all(
                name in known and known[name].size <= _SMALL for name in inputs):
            continue
        results = ReferenceEvaluator(node).run(None, {name: known[name] for name in inputs})
        known.update(zip(node.output, (np.asarray(r) for r in results), strict=True))
    return known


def _zero_padding(node: onnx.NodeProto, known: dict[str, np.ndarray]) -> np.ndarray | None:
    """The amounts (N, C, H, W begins then ends) of a Pad that adds zeros to H and W only;
    None for any other Pad."""
    mode = next((a.s for a in node.attribute if a.name == "mode"), b"constant")
    if mode != b"constant" or node.input[1] not in known:
        return None
    if len(node.input) > 2 and node.input[2] and (node.input[2] not in known
                                                 or known[node.input[2]].any()):
        return None
    pads = known[node.input[1]].astype(np.int64).reshape(-1)
    if len(pads) != 8 or pads[[0, 1, 4, 5]].any() or (pads < 0).any():
        return None
    return pads


def fold_pads_into_convs(model: onnx.ModelProto) -> int:
    """Remove each zero Pad whose only reader is a Conv, adding its amounts to the Conv's own
    `pads`; how many were folded."""
    known = _constant_values(model)
    readers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    outputs = {output.name for output in model.graph.output}
    folded = []
    for node in model.graph.node:
        if node.op_type != "Pad" or node.output[0] in outputs:
            continue
        pads, after = _zero_padding(node, known), readers.get(node.output[0], [])
        if pads is None or len(after) != 1 or after[0].op_type != "Conv":
            continue
        conv = after[0]
        attributes = {a.name: a for a in conv.attribute}
        if "auto_pad" in attributes and attributes["auto_pad"].s not in (b"", b"NOTSET"):
            continue
        own = list(attributes["pads"].ints) if "pads" in attributes else [0, 0, 0, 0]
        total = [own[0] + pads[2], own[1] + pads[3], own[2] + pads[6], own[3] + pads[7]]
        if "pads" in attributes:
            conv.attribute.remove(attributes["pads"])
        conv.attribute.append(onnx.helper.make_attribute("pads", [int(p) for p in total]))
        conv.input[0] = node.input[0]
        folded.append(node)
    for node in folded:
        model.graph.node.remove(node)
    return len(folded)
