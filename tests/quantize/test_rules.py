"""The per-op rules (deploy/quantize/rules.py) as the plan and the QDQ writer apply them: weight axes,
which static inputs are stored as integers, fusion, and ops that only move values."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from deploy.quantize.calibrate import TensorStats
from deploy.quantize.encodings import Encoding
from deploy.quantize.options import QuantizeOptions
from deploy.quantize.plan import Overrides, fused_tensors, make_plan
from deploy.quantize.qdq import write_qdq
from deploy.quantize.rules import WEIGHTED, rule, weight_axis
from deploy.quantize.runner import session


@pytest.mark.parametrize(("op", "attrs", "shape", "axis"), [
    ("Conv", {}, (8, 3, 3, 3), 0),
    ("ConvTranspose", {}, (3, 8, 3, 3), 1),
    ("ConvTranspose", {"group": 3}, (3, 1, 3, 3), None),
    ("Gemm", {"transB": 1}, (10, 4), 0),
    ("Gemm", {}, (4, 10), 1),
    ("MatMul", {}, (4, 10), 1),
    ("MatMul", {}, (2, 4, 10), None),
    ("Add", {}, (4,), None),
])
def test_weight_axis(op: str, attrs: dict, shape: tuple[int, ...], axis: int | None) -> None:
    node = helper.make_node(op, ["x", "w"], ["y"], **attrs)
    assert weight_axis(node, np.zeros(shape, np.float32)) == axis


def test_weighted_ops_and_other_domains() -> None:
    assert set(WEIGHTED) == {"Conv", "ConvTranspose", "Gemm", "MatMul"}
    assert rule(helper.make_node("Conv", ["x", "w"], ["y"], domain="com.example")).params == frozenset()


def _model(nodes: list[onnx.NodeProto], inits: list[onnx.TensorProto], out_shape: list[int]) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _stats(model: onnx.ModelProto, x: np.ndarray, names: list[str]) -> dict[str, TensorStats]:
    exposed = onnx.ModelProto()
    exposed.CopyFrom(model)
    exposed.graph.output.extend(onnx.ValueInfoProto(name=n) for n in names if n != "y")
    stats = {name: TensorStats() for name in names}
    for name, value in zip(names, session(exposed).run(names, {"x": x}), strict=True):
        stats[name].update(value)
    return stats


def reshape_net() -> onnx.ModelProto:
    """MatMul -> Relu -> Reshape -> Pow: a fused MatMul output, an op that moves values, an exponent."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((4, 6)).astype(np.float32), "w"),
             numpy_helper.from_array(np.array([2, 3], np.int64), "shape"),
             numpy_helper.from_array(np.array(2.0, np.float32), "exponent")]
    nodes = [helper.make_node("MatMul", ["x", "w"], ["mm"], name="mm"),
             helper.make_node("Relu", ["mm"], ["relu"], name="relu"),
             helper.make_node("Reshape", ["relu", "shape"], ["moved"], name="reshape"),
             helper.make_node("Pow", ["moved", "exponent"], ["y"], name="pow")]
    return _model(nodes, inits, [2, 3])


def test_rules_in_the_plan_and_the_qdq_graph() -> None:
    model = reshape_net()
    x = np.random.default_rng(1).standard_normal((1, 4)).astype(np.float32)
    names = ["x", "mm", "relu", "moved", "y"]
    stats = _stats(model, x, names)
    assert fused_tensors(model) == {"mm"}
    plan = make_plan(model, names, stats, QuantizeOptions(use_per_channel_quantization=True))
    assert set(plan.activations) == {"x", "relu", "moved", "y"}  # mm is fused into the Relu
    assert plan.params["w"].axis == 1 and "exponent" not in plan.params  # Pow's exponent stays float
    assert plan.activations["moved"] is plan.activations["relu"]  # the Reshape shares its input's encoding
    qmodel = write_qdq(model, plan)
    requantized = {n.input[0] for n in qmodel.graph.node if n.op_type == "QuantizeLinear"}
    assert requantized == {"x", "relu_float", "y_float"}  # no pair after the Reshape: its values are on the grid


def test_an_override_of_the_input_carries_over_to_the_moved_values() -> None:
    model = reshape_net()
    x = np.random.default_rng(2).standard_normal((1, 4)).astype(np.float32)
    names = ["x", "mm", "relu", "moved", "y"]
    overrides = Overrides(activations={"relu": Encoding(16)})
    plan = make_plan(model, names, _stats(model, x, names), QuantizeOptions(), overrides)
    assert plan.activations["moved"].bw == 16 and plan.activations["y"].bw == 8
    own = Overrides(activations={"relu": Encoding(16), "moved": Encoding(8)})
    plan = make_plan(model, names, _stats(model, x, names), QuantizeOptions(), own)
    assert plan.activations["moved"].bw == 8  # its own override wins
    assert any(n.op_type == "QuantizeLinear" and n.input[0] == "moved_float" for n in write_qdq(model, plan).graph.node)
