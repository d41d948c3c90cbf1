"""CLE on every conv shape (1-D, 2-D, 3-D, grouped, depthwise), and never a silent loss of SQNR."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from deploy.container import load_container
from deploy.inputlist import read_input_list
from deploy.quantize import quantize
from deploy.quantize.cle import equalize
from deploy.quantize.options import QuantizeOptions
from deploy.quantize.pipeline import feeds_from, pooled, quantize_model
from deploy.quantize.runner import session
from tests.quantize.test_algorithms import mismatched_net
from tests.quantize.util import make_container, make_input_list


def _net(shape: list[int], layers: list[tuple[str, np.ndarray, dict]], seed: int = 0) -> onnx.ModelProto:
    """Input 'x' of `shape` through `layers`: ("conv", weight, attrs) with a seeded bias, or
    ("relu" | "relu6" | "bn", channels, {})."""
    rng = np.random.default_rng(seed)
    nodes, inits, x = [], [], "x"
    for i, (op, value, attrs) in enumerate(layers):
        out = f"t{i}"
        if op == "conv":
            inits += [numpy_helper.from_array(value.astype(np.float32), f"w{i}"),
                      numpy_helper.from_array(rng.normal(0, 0.1, value.shape[0]).astype(np.float32), f"b{i}")]
            nodes.append(helper.make_node("Conv", [x, f"w{i}", f"b{i}"], [out], name=f"conv{i}", **attrs))
        elif op == "bn":
            c = int(value)
            for stat, v in (("scale", rng.uniform(0.5, 1.5, c)), ("bias", rng.uniform(-0.2, 0.2, c)),
                            ("mean", rng.uniform(-0.2, 0.2, c)), ("var", rng.uniform(0.5, 2.0, c))):
                inits.append(numpy_helper.from_array(v.astype(np.float32), f"bn{i}.{stat}"))
            nodes.append(helper.make_node("BatchNormalization", [x, *(f"bn{i}.{s}" for s in
                                                                      ("scale", "bias", "mean", "var"))],
                                          [out], name=f"bn{i}"))
        elif op == "relu6":
            inits += [numpy_helper.from_array(np.array(0, np.float32), f"lo{i}"),
                      numpy_helper.from_array(np.array(6, np.float32), f"hi{i}")]
            nodes.append(helper.make_node("Clip", [x, f"lo{i}", f"hi{i}"], [out], name=f"clip{i}"))
        else:
            nodes.append(helper.make_node("Relu", [x], [out], name=f"relu{i}"))
        x = out
    graph = helper.make_graph(nodes, "cle", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info(x, TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    model = onnx.shape_inference.infer_shapes(model)  # fills in the output's shape
    model.graph.ClearField("value_info")
    onnx.checker.check_model(model, full_check=True)
    return model


def _weights(rng: np.random.Generator, *shape: int, spread: bool = False) -> np.ndarray:
    """Gaussian weights; with `spread`, output channels whose ranges span three decades."""
    w = rng.standard_normal(shape)
    return w * np.logspace(-1.5, 1.5, shape[0]).reshape(-1, *[1] * (len(shape) - 1)) if spread else w


def _inits(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}


RNG = np.random.default_rng(3)
CASES = {
    "conv1d + bn": ([1, 3, 32], [("conv", _weights(RNG, 8, 3, 3, spread=True), {"pads": [1, 1]}), ("bn", 8, {}),
                                 ("relu", 0, {}), ("conv", _weights(RNG, 4, 8, 5), {"pads": [2, 2]})]),
    "conv2d -> grouped": ([1, 4, 10, 10], [("conv", _weights(RNG, 8, 4, 3, 3, spread=True), {"pads": [1] * 4}),
                                           ("relu", 0, {}), ("conv", _weights(RNG, 6, 4, 3, 3), {"group": 2}),
                                           ("relu", 0, {}), ("conv", _weights(RNG, 2, 3, 1, 1), {"group": 2})]),
    "depthwise triplet": ([1, 3, 9, 9], [("conv", _weights(RNG, 6, 3, 1, 1, spread=True), {}), ("relu6", 0, {}),
                                         ("conv", _weights(RNG, 6, 1, 3, 3), {"group": 6, "pads": [1] * 4}),
                                         ("relu", 0, {}), ("conv", _weights(RNG, 5, 6, 1, 1), {})]),
    "depthwise x2 second": ([1, 3, 8, 8], [("conv", _weights(RNG, 4, 3, 3, 3, spread=True), {}), ("relu", 0, {}),
                                           ("conv", _weights(RNG, 8, 1, 3, 3), {"group": 4})]),
    "conv3d": ([1, 2, 5, 6, 6], [("conv", _weights(RNG, 4, 2, 3, 3, 3, spread=True), {"pads": [1] * 6}),
                                 ("relu", 0, {}), ("conv", _weights(RNG, 3, 4, 1, 3, 3), {})]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_equalization_keeps_the_float_function_and_evens_out_ranges(name: str) -> None:
    shape, layers = CASES[name]
    model = _net(shape, layers)
    equalized = equalize(model)
    x = np.random.default_rng(1).uniform(-0.01, 0.01, shape).astype(np.float32)  # small: no ReLU6 reaches 6
    ref = session(model).run(None, {"x": x})[0]
    out = session(equalized).run(None, {"x": x})[0]
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5 * np.abs(ref).max())
    assert _spread(equalized) < _spread(model) / 10


def _spread(model: onnx.ModelProto) -> float:
    """Largest over smallest output-channel range of the first conv."""
    w = _inits(model)["w0"]
    ranges = np.abs(w).reshape(w.shape[0], -1).max(axis=1)
    return float(ranges.max() / ranges.min())


def test_conv1d_pair_scales_by_hand_computed_factors() -> None:
    """r1 = max|W1[i]| = (4, 1), r2 = max|W2[:, i]| = (1, 4): s = sqrt(r1 r2) / r2 = (2, 0.5), so
    W1 rows are divided by (2, 0.5), W2 columns multiplied by it, and every range becomes 2."""
    w1 = np.array([[[4.0, -1.0, 2.0]], [[0.5, 1.0, -0.25]]])  # (2 out, 1 in, 3 taps)
    w2 = np.array([[[1.0], [4.0]], [[-0.5], [-2.0]]])  # (2 out, 2 in, 1 tap)
    model = _net([1, 1, 8], [("conv", w1, {}), ("relu", 0, {}), ("conv", w2, {})])
    b1 = _inits(model)["b0"]
    inits = _inits(equalize(model))
    s = np.array([2.0, 0.5])
    np.testing.assert_allclose(inits["w0"], w1 / s[:, None, None], rtol=1e-6)
    np.testing.assert_allclose(inits["b0"], b1 / s, rtol=1e-6)
    np.testing.assert_allclose(inits["w2"], w2 * s[None, :, None], rtol=1e-6)
    assert np.abs(inits["w0"]).reshape(2, -1).max(axis=1).tolist() == [2.0, 2.0]


def test_grouped_second_conv_scales_each_input_channel_by_its_group() -> None:
    """Group 2, 4 inputs: output 0 reads inputs 0-1, output 1 inputs 2-3, so r2 = (1, 2, 3, 4); with
    r1 = 1 everywhere s = 1 / sqrt(r2), W1 rows become sqrt(r2) and W2 (1, sqrt 2; sqrt 3, 2)."""
    w1 = np.ones((4, 1, 1, 1))
    w2 = np.array([1.0, 2.0, 3.0, 4.0]).reshape(2, 2, 1, 1)
    model = _net([1, 1, 4, 4], [("conv", w1, {}), ("relu", 0, {}), ("conv", w2, {"group": 2})])
    inits = _inits(equalize(model))
    root = np.sqrt([1.0, 2.0, 3.0, 4.0])
    np.testing.assert_allclose(inits["w0"].ravel(), root, rtol=1e-6)
    np.testing.assert_allclose(inits["w2"].ravel(), root, rtol=1e-6)


def _quantize(model: onnx.ModelProto, tmp_path, options: QuantizeOptions, count: int = 8):
    container = make_container(model, tmp_path / "float.onnx")
    input_list = read_input_list(make_input_list(model, tmp_path, count, scale=3.0))
    _, meta = load_container(container)
    return quantize_model(model, feeds_from(input_list, meta, "l"), count, options)


def test_cle_that_lowers_sqnr_is_dropped_and_said(tmp_path) -> None:
    """Equalizing turns a ReLU6 into ReLU (docs): where inputs push it past 6 the equalized model
    computes another function, and its quantization a worse SQNR than the plain one."""
    shape, layers = CASES["depthwise triplet"]
    model = _net(shape, layers)
    options = QuantizeOptions(use_per_channel_quantization=True)
    _, plain_plan, plain = _quantize(model, tmp_path, options)
    _, plan, kept = _quantize(model, tmp_path, QuantizeOptions(use_per_channel_quantization=True,
                                                               algorithms=("cle",)))
    assert plan.algorithms == () and plain_plan.algorithms == ()
    [note] = plan.notes
    assert note.startswith("CLE lowered the calibration SQNR to ")
    assert note.endswith(f"from {pooled(plain).sqnr_db:.2f} dB without it: kept the quantization without CLE")
    assert pooled(kept).sqnr_db == pooled(plain).sqnr_db


def test_cle_that_helps_is_kept(tmp_path) -> None:
    _, plan, _ = _quantize(mismatched_net(), tmp_path, QuantizeOptions(algorithms=("cle", "bc")))
    assert plan.algorithms == ("cle", "bc") and plan.notes == []


def test_quantize_says_cle_was_dropped_and_records_what_it_applied(tmp_path) -> None:
    """The note reaches the user (QuantizeResult, cached or not), and the container and its
    encodings name the algorithms the kept result applied, so an --override-params import of them
    does not re-equalize."""
    model = _net(*CASES["depthwise triplet"])
    container = make_container(model, tmp_path / "float.onnx")
    listing = make_input_list(model, tmp_path, 8, scale=3.0)
    options = QuantizeOptions(use_per_channel_quantization=True, algorithms=("cle",))
    for _ in range(2):  # built, then from the cache
        result = quantize(container, listing, options=options)
        [note] = result.notes
        assert note.startswith("CLE lowered the calibration SQNR to ")
        assert result.meta.quantization["algorithms"] == []
        assert result.meta.encodings["quantizer_args"]["algorithms"] == []
    assert result.cached
