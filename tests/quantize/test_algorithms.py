"""CLE and bias correction do what they promise on models built to need them."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from deploy.container import load_container
from deploy.inputlist import read_input_list
from deploy.quantize.cle import equalize
from deploy.quantize.metrics import Agreement
from deploy.quantize.options import QuantizeOptions
from deploy.quantize.pipeline import feeds_from, pooled, quantize_model
from deploy.quantize.runner import session
from tests.deploy.models import conv_net
from tests.quantize.util import make_container, make_input_list


def mismatched_net(seed: int = 0, high_beta: float = 0.2) -> onnx.ModelProto:
    """Conv-BN-ReLU-Conv-BN-ReLU-Conv whose first conv's output channels span four decades of range
    (the next conv compensates), the situation CLE is for; `high_beta` shifts the second BN."""
    rng = np.random.default_rng(seed)
    c = 8
    spread = np.logspace(-2, 2, c)
    inits = [
        numpy_helper.from_array((rng.standard_normal((c, 3, 3, 3)) * spread[:, None, None, None] * 0.3)
                                .astype(np.float32), "w1"),
        numpy_helper.from_array(rng.standard_normal(c).astype(np.float32) * 0.1, "b1"),
        numpy_helper.from_array((rng.standard_normal((c, c, 3, 3)) / spread[None, :, None, None] * 0.1)
                                .astype(np.float32), "w2"),
        numpy_helper.from_array(rng.standard_normal(c).astype(np.float32) * 0.1, "b2"),
        numpy_helper.from_array((rng.standard_normal((4, c, 1, 1)) * 0.3).astype(np.float32), "w3"),
    ]
    for name, beta in (("bn1", 0.2), ("bn2", high_beta)):
        inits += [numpy_helper.from_array(rng.uniform(0.5, 1.5, c).astype(np.float32), f"{name}.scale"),
                  numpy_helper.from_array((rng.uniform(-0.2, 0.2, c) + beta).astype(np.float32), f"{name}.bias"),
                  numpy_helper.from_array(np.zeros(c, np.float32), f"{name}.mean"),
                  numpy_helper.from_array(np.ones(c, np.float32), f"{name}.var")]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c1", "bn1.scale", "bn1.bias", "bn1.mean", "bn1.var"], ["n1"],
                         name="bn1"),
        helper.make_node("Relu", ["n1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c2", "bn2.scale", "bn2.bias", "bn2.mean", "bn2.var"], ["n2"],
                         name="bn2"),
        helper.make_node("Relu", ["n2"], ["r2"], name="relu2"),
        helper.make_node("Conv", ["r2", "w3"], ["y"], name="conv3"),
    ]
    graph = helper.make_graph(nodes, "mismatched",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return _with_true_bn_statistics(model, rng)


def _with_true_bn_statistics(model: onnx.ModelProto, rng: np.random.Generator) -> onnx.ModelProto:
    """Set each BN's mean/var to its input's real statistics, as training would, layer by layer."""
    x = rng.standard_normal((64, 3, 8, 8)).astype(np.float32)
    inits = {i.name: i for i in model.graph.initializer}
    for bn, conv_out in (("bn1", "c1"), ("bn2", "c2")):
        probe = onnx.ModelProto()
        probe.CopyFrom(model)
        probe.graph.output.append(onnx.ValueInfoProto(name=conv_out))
        probe.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
        values = session(probe).run([conv_out], {"x": x})[0]
        for stat, value in (("mean", values.mean(axis=(0, 2, 3))), ("var", values.var(axis=(0, 2, 3)))):
            inits[f"{bn}.{stat}"].CopyFrom(numpy_helper.from_array(value.astype(np.float32), f"{bn}.{stat}"))
    return model


def _quantized_agreement(model, tmp_path, options: QuantizeOptions, count: int = 8) -> Agreement:
    container = make_container(model, tmp_path / "float.onnx")
    input_list = read_input_list(make_input_list(model, tmp_path, count))
    _, meta = load_container(container)
    _, _, agreements = quantize_model(model, feeds_from(input_list, meta, "l"), count, options)
    return pooled(agreements)


def test_cle_keeps_the_float_function(tmp_path) -> None:
    rng = np.random.default_rng(1)
    for model, shape in ((mismatched_net(), (1, 3, 8, 8)), (conv_net(), (1, 3, 16, 16))):
        equalized = equalize(model)
        assert "BatchNormalization" not in {n.op_type for n in equalized.graph.node}
        name = model.graph.input[0].name
        for _ in range(3):
            x = rng.standard_normal(shape).astype(np.float32)
            ref = session(model).run(None, {name: x})[0]
            out = session(equalized).run(None, {name: x})[0]
            assert np.allclose(out, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


def test_high_bias_absorption_moves_bias_into_the_next_layer() -> None:
    model = mismatched_net(high_beta=4.0)
    equalized = equalize(model)
    inits = {i.name: numpy_helper.to_array(i) for i in equalized.graph.initializer}
    assert "conv3.bias" in inits and np.abs(inits["conv3.bias"]).max() > 0.1  # conv3 had no bias before
    x = np.random.default_rng(2).standard_normal((1, 3, 8, 8)).astype(np.float32)
    ref = session(model).run(None, {"x": x})[0]
    out = session(equalized).run(None, {"x": x})[0]
    # exact while the pre-activation stays above the absorbed amount: almost everywhere
    close = np.isclose(out, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
    assert close.mean() > 0.9 and np.abs(out - ref).mean() < 0.01 * np.abs(ref).mean()


def test_cle_equalizes_ranges_and_lowers_quantized_error(tmp_path) -> None:
    model = mismatched_net()
    equalized = equalize(model)

    def spread(m: onnx.ModelProto) -> float:
        w1 = numpy_helper.to_array(next(i for i in m.graph.initializer if i.name == "w1"))
        ranges = np.abs(w1).reshape(8, -1).max(axis=1)
        return float(ranges.max() / ranges.min())

    assert spread(equalized) < spread(model) / 20
    plain = _quantized_agreement(model, tmp_path, QuantizeOptions())
    with_cle = _quantized_agreement(model, tmp_path, QuantizeOptions(algorithms=("cle",)))
    assert with_cle.sqnr_db > plain.sqnr_db + 3, (plain.sqnr_db, with_cle.sqnr_db)


def _logits_net(seed: int) -> onnx.ModelProto:
    """conv_net without its Softmax: a softmax output's mean is 1/classes whatever the shift."""
    model = conv_net(seed=seed)
    softmax = model.graph.node[-1]
    model.graph.node.remove(softmax)
    model.graph.output[0].name = softmax.input[0]
    return model


def test_bias_correction_lowers_mean_output_shift(tmp_path) -> None:
    model = _logits_net(seed=4)
    options = QuantizeOptions(weights_bitwidth=4)
    plain = _quantized_agreement(model, tmp_path, options, count=16)
    corrected = _quantized_agreement(model, tmp_path, QuantizeOptions(weights_bitwidth=4, algorithms=("bc",)),
                                     count=16)
    assert abs(corrected.mean_shift) < abs(plain.mean_shift) * 0.7, (plain.mean_shift, corrected.mean_shift)
