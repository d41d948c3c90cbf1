"""If, Loop and Scan bodies are quantized: calibration sees their tensors (every run of a body), the
plan has entries for them and the QDQ graph has its pairs inside the bodies, and onnxruntime runs it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from deploy.container import load_container
from deploy.quantize import QuantizeOptions, quantize
from deploy.quantize.aimet import export_encodings, parse_encodings
from deploy.quantize.bodies import expose_bodies
from deploy.quantize.calibrate import calibrate
from deploy.quantize.runner import float_activations, session
from deploy.subgraphs import walk
from tests.quantize.util import make_container, make_input_list


@pytest.fixture
def build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EDGELOOP_BUILD", str(tmp_path / "build"))
    return tmp_path


def _value(name: str, shape: list | None, dtype: int = TensorProto.FLOAT) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, dtype, shape)


def _model(nodes: list[onnx.NodeProto], inputs: list[onnx.ValueInfoProto], output: onnx.ValueInfoProto,
           inits: dict[str, np.ndarray]) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, [output], [numpy_helper.from_array(v, n) for n, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def if_net(bias: float = 0.0) -> onnx.ModelProto:
    """`y = sigmoid(relu(conv(x)) + s if mean(x) + bias > 0 else matmul(s, w) + b)`, s = stem(x): the
    branches read the outer `x` and `s` and weights of the main graph. A Reshape to the same shape
    in the else branch: an op that only moves values."""
    rng = np.random.default_rng(0)
    then = helper.make_graph([helper.make_node("Conv", ["x", "cw", "cb"], ["t_conv"], name="then/conv", pads=[1] * 4),
                              helper.make_node("Relu", ["t_conv"], ["t_relu"], name="then/relu"),
                              helper.make_node("Add", ["t_relu", "s"], ["t_out"], name="then/add")],
                             "then", [], [_value("t_out", None)])
    otherwise = helper.make_graph([helper.make_node("MatMul", ["s", "mw"], ["e_mm"], name="else/matmul"),
                                   helper.make_node("Reshape", ["e_mm", "shape"], ["e_shaped"], name="else/reshape"),
                                   helper.make_node("Add", ["e_shaped", "mb"], ["e_out"], name="else/add")],
                                  "else", [], [_value("e_out", None)])
    nodes = [helper.make_node("Conv", ["x", "sw"], ["s"], name="stem", pads=[1] * 4),
             helper.make_node("ReduceMean", ["x"], ["m"], name="mean", keepdims=0),
             helper.make_node("Add", ["m", "shift"], ["score"], name="shift"),
             helper.make_node("Greater", ["score", "zero"], ["c"], name="greater"),
             helper.make_node("If", ["c"], ["branch"], name="if", then_branch=then, else_branch=otherwise),
             helper.make_node("Sigmoid", ["branch"], ["y"], name="sigmoid")]
    inits = {"sw": rng.standard_normal((4, 3, 3, 3)) * 0.3, "cw": rng.standard_normal((4, 3, 3, 3)) * 0.3,
             "cb": rng.standard_normal(4) * 0.1, "mw": rng.standard_normal((8, 8)) * 0.3,
             "mb": rng.standard_normal(8) * 0.1, "shift": np.array(bias), "zero": np.array(0.0)}
    return _model(nodes, [_value("x", [1, 3, 8, 8])], _value("y", [1, 4, 8, 8]),
                  {**{n: v.astype(np.float32) for n, v in inits.items()}, "shape": np.array([1, 4, 8, 8])})


STEPS = 5


def loop_net() -> onnx.ModelProto:
    """h <- tanh(h @ w + bias), STEPS times from h = x; y = h * x."""
    rng = np.random.default_rng(1)
    body = helper.make_graph([helper.make_node("MatMul", ["h_in", "w"], ["b_mm"], name="body/matmul"),
                              helper.make_node("Add", ["b_mm", "bias"], ["b_add"], name="body/add"),
                              helper.make_node("Tanh", ["b_add"], ["h_out"], name="body/tanh"),
                              helper.make_node("Identity", ["cond_in"], ["cond_out"], name="body/cond")],
                             "body", [_value("i", [], TensorProto.INT64), _value("cond_in", [], TensorProto.BOOL),
                                      _value("h_in", [1, 8])],
                             [_value("cond_out", [], TensorProto.BOOL), _value("h_out", [1, 8])])
    nodes = [helper.make_node("Loop", ["steps", "", "x"], ["h"], name="loop", body=body),
             helper.make_node("Mul", ["h", "x"], ["y"], name="mul")]
    inits = {"w": (rng.standard_normal((8, 8)) * 0.5).astype(np.float32),
             "bias": (rng.standard_normal(8) * 0.1).astype(np.float32), "steps": np.array(STEPS, np.int64)}
    return _model(nodes, [_value("x", [1, 8])], _value("y", [1, 8]), inits)


def scan_net() -> onnx.ModelProto:
    """A running sum over 6 rows: state <- state + row @ w, each step's state also a scan output."""
    rng = np.random.default_rng(2)
    body = helper.make_graph([helper.make_node("MatMul", ["row", "w"], ["s_mm"], name="body/matmul"),
                              helper.make_node("Add", ["state_in", "s_mm"], ["state_out"], name="body/add"),
                              helper.make_node("Identity", ["state_out"], ["step"], name="body/step")],
                             "body", [_value("state_in", [1, 4]), _value("row", [1, 4])],
                             [_value("state_out", [1, 4]), _value("step", [1, 4])])
    nodes = [helper.make_node("Scan", ["init", "x"], ["final", "y"], name="scan", body=body, num_scan_inputs=1)]
    graph_out = _value("y", [6, 1, 4])
    model = _model(nodes, [_value("x", [6, 1, 4])], graph_out,
                   {"w": (rng.standard_normal((4, 4)) * 0.5).astype(np.float32), "init": np.zeros((1, 4), np.float32)})
    return model


def _quantize(model: onnx.ModelProto, build: Path, count: int = 16) -> tuple[onnx.ModelProto, dict, float]:
    container = make_container(model, build / "float.onnx")
    result = quantize(container, make_input_list(model, build, count), build / "q.onnx",
                      QuantizeOptions(use_per_channel_quantization=True), encodings_out=build / "enc.json")
    qmodel, _ = load_container(result.path)
    return qmodel, json.loads((build / "enc.json").read_text()), result.sqnr_db


def _paired_in_bodies(qmodel: onnx.ModelProto) -> set[str]:
    """Body tensors a DequantizeLinear of their own body writes."""
    return {node.output[0] for graph, node in walk(qmodel.graph)
            if graph is not qmodel.graph and node.op_type == "DequantizeLinear"}


def test_if_branches_are_quantized(build: Path) -> None:
    qmodel, encodings, sqnr = _quantize(if_net(), build)
    acts = {e["name"] for e in encodings["activation_encodings"]}
    assert {"t_relu", "t_out", "e_mm", "e_shaped", "e_out"} <= acts and "t_conv" not in acts  # fused into the Relu
    assert {"cw", "cb", "mw", "mb"} <= {e["name"] for e in encodings["param_encodings"]}
    # In a body even the Reshape's output has its pair: onnxruntime's QDQ propagation aborted on
    # a body op that moves values without one (a Squeeze of Silero VAD's LSTM state).
    assert _paired_in_bodies(qmodel) == {"t_relu", "t_out", "e_mm", "e_shaped", "e_out"}
    assert sqnr > 30
    x = np.random.default_rng(5).standard_normal((1, 3, 8, 8)).astype(np.float32)
    assert np.isfinite(session(qmodel).run(None, {"x": x})[0]).all()


def test_a_branch_calibration_never_took_stays_float(build: Path) -> None:
    model = if_net(bias=100.0)  # mean(x) + 100 > 0: the else branch never runs
    stats = calibrate(model, float_activations(model), iter([{"x": np.ones((1, 3, 8, 8), np.float32)}]), 1,
                      histograms=False).stats
    assert stats["e_mm"].min == np.inf and stats["t_relu"].min == 0.0
    qmodel, _, sqnr = _quantize(model, build, count=4)
    assert _paired_in_bodies(qmodel) == {"t_relu", "t_out"} and sqnr > 30


def test_loop_body_is_calibrated_over_every_iteration_and_quantized(build: Path) -> None:
    model = loop_net()
    x = np.random.default_rng(3).standard_normal((1, 8)).astype(np.float32)
    stats = calibrate(model, float_activations(model), iter([{"x": x}]), 1, histograms=True).stats
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    h, seen = x, []
    for _ in range(STEPS):
        seen.append(h @ inits["w"])
        h = np.tanh(seen[-1] + inits["bias"])
    assert stats["b_mm"].min == pytest.approx(float(np.min(seen)), rel=1e-6)
    assert stats["b_mm"].max == pytest.approx(float(np.max(seen)), rel=1e-6)
    assert stats["b_mm"].counts.sum() == STEPS * 8
    qmodel, encodings, sqnr = _quantize(model, build)
    assert {"h_in", "b_mm", "b_add", "h_out"} <= {e["name"] for e in encodings["activation_encodings"]}
    assert {"b_mm", "b_add", "h_out"} <= _paired_in_bodies(qmodel)
    assert sqnr > 25


def test_scan_body_is_quantized(build: Path) -> None:
    model = scan_net()
    x = np.random.default_rng(4).standard_normal((6, 1, 4)).astype(np.float32)
    stats = calibrate(model, float_activations(model), iter([{"x": x}]), 1, histograms=False).stats
    w = numpy_helper.to_array(next(i for i in model.graph.initializer if i.name == "w"))
    assert stats["s_mm"].max == pytest.approx(float((x @ w).max()), rel=1e-6)
    qmodel, _, sqnr = _quantize(model, build)
    assert {"s_mm", "state_out"} <= _paired_in_bodies(qmodel) and sqnr > 25


def test_exposing_body_tensors_leaves_the_outputs_alone() -> None:
    model = if_net()
    exposed = expose_bodies(model, ["t_relu", "e_mm", "y"])
    x = np.random.default_rng(6).standard_normal((1, 3, 8, 8)).astype(np.float32)
    y, relu, mm = session(exposed).run(["y", "t_relu", "e_mm"], {"x": x})
    assert np.array_equal(y, session(model).run(["y"], {"x": x})[0])
    assert (relu.size, mm.size) in ((256, 0), (0, 256)) and relu.shape[0] == mm.shape[0] == 1


def test_a_full_override_in_aimet_2_names_body_tensors_and_a_body_weight(build: Path) -> None:
    """AIMET 2.0.0 has one list: a name is a param when the model has an initializer of that name,
    in a body too."""
    model = if_net()
    weight = next(i for i in model.graph.initializer if i.name == "mw")
    model.graph.initializer.remove(weight)
    next(a.g for a in model.graph.node[4].attribute if a.name == "else_branch").initializer.append(weight)
    _, encodings, sqnr = _quantize(model, build)
    parsed = parse_encodings(encodings, "enc.json", {e["name"] for e in encodings["param_encodings"]})
    assert "mw" in parsed.params
    overrides = build / "v2.json"
    overrides.write_text(json.dumps(export_encodings(parsed.activations, parsed.params, "2.0.0")))
    again = quantize(build / "float.onnx", build / "input_list.txt", build / "again.onnx",
                     QuantizeOptions(use_per_channel_quantization=True, override_params=overrides))
    assert again.sqnr_db == pytest.approx(sqnr, abs=0.05)
