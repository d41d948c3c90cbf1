"""Per-op quantization rules, in one table: everything the plan and the QDQ writer know about op
types (docs/quantization.md, "Per-op rules and subgraphs").

An op without a rule is quantized the default way: each float output gets its own calibrated
encoding, and a static (initializer) input stays float. A rule says which static inputs are
stored as integers (weights and constant operands) and which are biases, the weight's per-channel
axis, whether the op's output is fused with an activation reading it, and whether the op only
moves values (its output then shares its input's encoding, as SNPE and QNN do: no requantization).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx

Axis = Callable[[dict, np.ndarray], "int | None"]  # (node attributes, weight) -> output-channel axis


@dataclass(frozen=True)
class Rule:
    params: frozenset[int] = frozenset()  # static float inputs stored as integers; other static inputs stay float
    weight: int | None = None  # the weight: float islands take it with the output; per-channel; bias scale
    axis: Axis | None = None  # the weight's output-channel axis (None: per-tensor only)
    bias: int | None = None  # bias input: int32 with scale = input scale x weight scale
    fuses: bool = False  # the output is fused into a FUSED activation that alone reads it: no encoding
    fused: bool = False  # an activation (or BN) that runtimes fuse into the op before it
    moves_values: bool = False  # output = a rearrangement of input 0's values: it shares that encoding


def _weighted(axis: Axis, bias: bool = True) -> Rule:
    return Rule(params=frozenset({1}), weight=1, axis=axis, bias=2 if bias else None, fuses=True)


BOTH = frozenset({0, 1})
RULES: dict[str, Rule] = {
    "Conv": _weighted(lambda attrs, w: 0),
    "ConvTranspose": _weighted(lambda attrs, w: 1 if attrs.get("group", 1) == 1 else None),
    "Gemm": _weighted(lambda attrs, w: 0 if attrs.get("transB", 0) else 1),
    "MatMul": Rule(params=BOTH, weight=1, axis=lambda attrs, w: 1 if w.ndim == 2 else None, fuses=True),
    "PRelu": Rule(params=frozenset({1})),
    "Add": Rule(params=BOTH, fuses=True),
    "Sub": Rule(params=BOTH),
    "Mul": Rule(params=BOTH),
    "Div": Rule(params=frozenset({1})),
    "BatchNormalization": Rule(fuses=True, fused=True),
    "Relu": Rule(fused=True),
    "Clip": Rule(fused=True),
    **{op: Rule(moves_values=True) for op in ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose",
                                              "Identity", "DepthToSpace", "SpaceToDepth")},
}
DEFAULT = Rule()
WEIGHTED = tuple(op for op, rule in RULES.items() if rule.weight is not None)  # output, weight, bias float together


def rule(node: onnx.NodeProto) -> Rule:
    """The node's rule; ops of other domains get the default one."""
    return RULES.get(node.op_type, DEFAULT) if node.domain in ("", "ai.onnx") else DEFAULT


def weight_axis(node: onnx.NodeProto, weight: np.ndarray) -> int | None:
    """The output-channel axis of a node's weight, or None where per-channel does not apply."""
    axis = rule(node).axis
    if axis is None:
        return None
    return axis({a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}, weight)
