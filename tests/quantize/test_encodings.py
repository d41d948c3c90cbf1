"""docs/spec.md §5 worked examples, the rounding rule, symmetric/per-channel/16/4-bit against onnxruntime."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from deploy.quantize.encodings import (
    dequantize_array,
    enhanced_encoding,
    pack_4bit,
    per_channel_encoding,
    quantize_array,
    symmetric_encoding,
    tf_encoding,
)


def test_spec_first_example() -> None:
    x = np.array([-1.8, -1.0, 0.0, 0.5], dtype=np.float32)
    enc = tf_encoding(x.min(), x.max(), 8)
    assert float(enc.scale) == pytest.approx(2.3 / 255, rel=1e-6)  # float32 inputs
    assert int(enc.offset) == -200
    assert float(enc.min) == pytest.approx(-1.803922, abs=1e-6)
    assert float(enc.max) == pytest.approx(0.496078, abs=1e-6)
    q = quantize_array(x, enc)
    assert q.tolist() == [0, 89, 200, 255]
    assert np.allclose(dequantize_array(q, enc), [-1.8039, -1.0012, 0.0, 0.4961], atol=1e-4)
    assert int(enc.zero_point()) == 200


def test_spec_second_example() -> None:
    enc = tf_encoding(-5.1, 5.1, 8)
    assert float(enc.min) == pytest.approx(-5.12, abs=1e-9)
    assert float(enc.max) == pytest.approx(5.08, abs=1e-9)
    assert quantize_array(np.zeros(1, np.float32), enc).tolist() == [128]


def test_rounding_is_half_to_even() -> None:
    enc = tf_encoding(0.0, 127.5, 8)  # scale exactly 0.5, offset 0
    assert float(enc.scale) == 0.5
    ties = np.array([0.25, 0.75, 1.25, 1.75], dtype=np.float32)  # x/scale = 0.5, 1.5, 2.5, 3.5
    assert quantize_array(ties, enc).tolist() == [0, 2, 2, 4]


def test_minimum_range_is_a_setting() -> None:
    assert float(tf_encoding(0.0, 0.0, 8).max) == pytest.approx(1e-4, rel=1e-6)
    assert float(tf_encoding(0.0, 0.0, 8, min_range=0.01).max) == pytest.approx(0.01, rel=1e-6)


def _ort_quantize(x: np.ndarray, scale: np.ndarray, zp: np.ndarray, axis: int | None) -> np.ndarray:
    """Run a one-node QuantizeLinear (opset 21) in onnxruntime."""
    attrs = {"axis": axis} if axis is not None else {}
    node = helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["y"], **attrs)
    zp_type = helper.np_dtype_to_tensor_dtype(zp.dtype)
    graph = helper.make_graph(
        [node], "q", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
        [helper.make_tensor_value_info("y", zp_type, list(x.shape))],
        [numpy_helper.from_array(scale.astype(np.float32), "s"), numpy_helper.from_array(zp, "zp")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    onnx.checker.check_model(model)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


@pytest.mark.parametrize(("bw", "symmetric"), [(8, False), (8, True), (16, False), (16, True)])
def test_per_tensor_integers_equal_onnxruntime(bw: int, symmetric: bool) -> None:
    rng = np.random.default_rng(bw + symmetric)
    x = (rng.standard_normal(4096) * 3 + 0.7).astype(np.float32)
    enc = (symmetric_encoding(np.abs(x).max(), bw) if symmetric
           else tf_encoding(x.min() * 0.8, x.max() * 0.8, bw))  # clipped values too
    ours = quantize_array(x, enc)
    assert ours.dtype == enc.storage_dtype()
    theirs = _ort_quantize(x, np.asarray(enc.scale), enc.zero_point(), None)
    assert theirs.dtype == ours.dtype
    assert np.array_equal(ours, theirs)


def test_per_channel_integers_equal_onnxruntime() -> None:
    rng = np.random.default_rng(5)
    w = (rng.standard_normal((6, 3, 3, 3)) * rng.uniform(0.01, 5, (6, 1, 1, 1))).astype(np.float32)
    enc = per_channel_encoding(w, 0, 8, "tf")
    assert enc.symmetric and enc.channels == 6
    assert (enc.offset == -128).all()
    ours = quantize_array(w, enc)
    assert np.array_equal(ours, _ort_quantize(w, enc.scale, enc.zero_point(), 0))
    # each channel uses its own range: the largest |value| of every channel maps to +-127
    assert (np.abs(ours.reshape(6, -1).astype(int)).max(axis=1) == 127).all()


def test_4bit_integers_equal_onnxruntime_int4() -> None:
    rng = np.random.default_rng(6)
    w = rng.standard_normal((4, 8)).astype(np.float32)
    enc = per_channel_encoding(w, 0, 4, "tf")
    ours = quantize_array(w, enc)
    assert ours.min() >= -8 and ours.max() <= 7
    node = helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["y"], axis=0)
    cast = helper.make_node("Cast", ["y"], ["z"], to=TensorProto.INT8)
    graph = helper.make_graph(
        [node, cast], "q4", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 8])],
        [helper.make_tensor_value_info("z", TensorProto.INT8, [4, 8])],
        [numpy_helper.from_array(enc.scale.astype(np.float32), "s"),
         helper.make_tensor("zp", TensorProto.INT4, [4], [0, 0, 0, 0])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    assert np.array_equal(ours, sess.run(None, {"x": w})[0])


def test_4bit_packing_nibble_order() -> None:
    assert pack_4bit(np.array([10, 4], dtype=np.uint8)) == bytes([0b0100_1010])
    assert pack_4bit(np.array([10, 4, 7], dtype=np.uint8)) == bytes([0x4A, 0x07])
    # per channel: every channel starts on a byte boundary, ceil(3/2) = 2 bytes each
    two = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.uint8)
    assert pack_4bit(two, axis=0) == bytes([0x21, 0x03, 0x54, 0x06])
    # signed values keep their two's-complement nibble, as ONNX INT4 does
    signed = np.array([-1, 3], dtype=np.int8)
    assert pack_4bit(signed) == bytes([0x3F])
    assert helper.make_tensor("t", TensorProto.INT4, [2], [-1, 3]).raw_data in (b"", bytes([0x3F]))


def test_enhanced_tighter_than_tf_on_long_tail() -> None:
    rng = np.random.default_rng(7)
    x = np.concatenate([rng.standard_normal(20000), rng.standard_normal(20) * 40]).astype(np.float32)
    tf = tf_encoding(x.min(), x.max(), 8)
    lo, hi = float(x.min()), float(x.max())
    counts, _ = np.histogram(x, bins=512, range=(lo, hi))
    enh = enhanced_encoding(counts, lo, hi, lo, hi, 8)
    assert float(enh.max - enh.min) < float(tf.max - tf.min)

    def mse(enc):
        return float(np.mean((dequantize_array(quantize_array(x, enc), enc) - x) ** 2))

    assert mse(enh) < mse(tf)
