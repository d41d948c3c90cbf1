"""Calibration at scale: batched onnxruntime calls, chunked histograms, float outputs kept on disk."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from deploy.container import load_container
from deploy.inputlist import read_input_list
from deploy.quantize import calibrate as calibrate_module
from deploy.quantize.calibrate import Kept, TensorStats, _bin_counts, calibrate
from deploy.quantize.options import QuantizeOptions
from deploy.quantize.pipeline import feeds_from, pooled, quantize_model
from deploy.quantize.runner import float_activations, per_feed, run_batched
from tests.deploy.models import conv_net
from tests.quantize.util import make_container, make_input_list


def _feeds(count: int, shape: tuple[int, ...] = (1, 3, 16, 16)) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(4)
    return [{"image": rng.standard_normal(shape).astype(np.float32) * (1 + i % 3)} for i in range(count)]


def _flattening_net() -> onnx.ModelProto:
    """Conv then a Reshape to the constant shape (1, -1), as exporters write: it cannot take a batch."""
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    shape = numpy_helper.from_array(np.array([1, -1], np.int64), "shape")
    nodes = [helper.make_node("Conv", ["image", "w"], ["c"], name="conv"),
             helper.make_node("Reshape", ["c", "shape"], ["y"], name="flat")]
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 16, 16])
    graph = helper.make_graph(nodes, "flat", [image], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 784])],
                              [w, shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


@pytest.mark.parametrize(("model", "batched"), [(conv_net(), True), (_flattening_net(), False)])
def test_batched_runs_give_the_values_of_one_feed_at_a_time(model: onnx.ModelProto, batched: bool) -> None:
    feeds = _feeds(11)
    names = [o.name for o in model.graph.output]
    counts = [count for count, _ in run_batched(model, names, feeds, 1 << 20)]
    assert sum(counts) == 11 and (max(counts) > 1) == batched, counts
    one_by_one = list(per_feed(run_batched(model, names, feeds, 0)))
    together = list(per_feed(run_batched(model, names, feeds, 1 << 20)))
    assert len(one_by_one) == len(together) == 11
    for a, b in zip(one_by_one, together, strict=True):
        assert all(np.array_equal(x, y) and x.shape == y.shape for x, y in zip(a, b, strict=True))


def test_batched_calibration_equals_one_input_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    model = conv_net()
    tensors = float_activations(model)
    feeds = _feeds(10)
    monkeypatch.setattr(calibrate_module, "BATCH_BYTES", 0)  # one input per call, each folded alone
    alone = calibrate(model, tensors, feeds, 10, histograms=True).stats
    monkeypatch.setattr(calibrate_module, "BATCH_BYTES", 1 << 22)
    batched = calibrate(model, tensors, feeds, 10, histograms=True).stats
    for name in tensors:
        assert (batched[name].min, batched[name].max, batched[name].lo, batched[name].hi) == (
            alone[name].min, alone[name].max, alone[name].lo, alone[name].hi), name
        assert np.array_equal(batched[name].counts, alone[name].counts), name


def test_histogram_in_chunks_counts_every_value_in_its_bin(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of 7 values over 100: the counts of a plain clip-and-bincount, with the values at the
    range's ends (x == hi falls in the last bin) included."""
    x = np.concatenate([[-2.0, 3.0], np.random.default_rng(1).uniform(-2, 3, 98)]).astype(np.float32)
    whole = _bin_counts(x, -2.0, 3.0)
    monkeypatch.setattr(calibrate_module, "CHUNK", 7)
    index = np.clip((x - np.float32(-2.0)) * np.float32(512 / 5.0), 0, 511).astype(np.intp)
    expected = np.bincount(index, minlength=512)
    assert np.array_equal(_bin_counts(x, -2.0, 3.0), expected) and np.array_equal(whole, expected)
    assert expected[511] >= 1 and expected[0] >= 1


def test_rows_of_one_block_are_inputs_in_order() -> None:
    rows = np.array([[1.0, 2.0], [-5.0, 9.0], [0.5, 0.5]], np.float32)
    block, one = TensorStats(histogram=True), TensorStats(histogram=True)
    block.update_rows([rows])
    for row in rows:
        one.update(row)
    assert (block.lo, block.hi, block.min, block.max) == (one.lo, one.hi, one.min, one.max) == (
        one.lo, one.hi, -5.0, 9.0)
    assert np.array_equal(block.counts, one.counts) and block.counts.sum() == 6


def test_kept_outputs_past_the_budget_go_to_a_file_and_come_back(monkeypatch: pytest.MonkeyPatch) -> None:
    values = [[np.full((1, 3), i, np.float32), np.arange(i, dtype=np.int64)] for i in range(5)]
    monkeypatch.setattr(calibrate_module, "OUTPUT_BUDGET", 32)  # the first two inputs: 12 + 0 and 12 + 8 bytes
    kept = Kept()
    for v in values:
        kept.add(v)
    assert len(kept.memory) == 2 and len(kept) == 5 and kept.file is not None
    for _ in range(2):  # each pass reads the file again from the start
        back = list(kept)
        assert all(a.dtype == b.dtype and np.array_equal(a, b) for want, got in zip(values, back, strict=True)
                   for a, b in zip(want, got, strict=True))


def test_final_sqnr_is_the_same_with_outputs_kept_in_memory_or_on_disk(tmp_path, monkeypatch) -> None:
    model = conv_net()
    container = make_container(model, tmp_path / "float.onnx")
    _, meta = load_container(container)
    feeds = feeds_from(read_input_list(make_input_list(model, tmp_path, 6)), meta, "l")
    options = QuantizeOptions(act_quantizer="enhanced")
    in_memory = pooled(quantize_model(model, feeds, 6, options)[2])
    monkeypatch.setattr(calibrate_module, "OUTPUT_BUDGET", 0)
    on_disk = pooled(quantize_model(model, feeds, 6, options)[2])
    assert on_disk.count == in_memory.count == 6 * 10
    assert (on_disk.signal, on_disk.noise) == (in_memory.signal, in_memory.noise)


def test_final_sqnr_pass_runs_the_first_measured_inputs_and_calibration_all(tmp_path, monkeypatch) -> None:
    from deploy.quantize import pipeline as pipeline_module

    model = conv_net()
    container = make_container(model, tmp_path / "float.onnx")
    _, meta = load_container(container)
    feeds = feeds_from(read_input_list(make_input_list(model, tmp_path, 6)), meta, "l")
    options = QuantizeOptions(act_quantizer="enhanced")
    _, full_plan, full = quantize_model(model, feeds, 6, options)
    monkeypatch.setattr(pipeline_module, "MEASURED", 2)
    _, plan, first = quantize_model(model, feeds, 6, options)
    assert pooled(full).count == 6 * 10 and pooled(first).count == 2 * 10  # probs: 10 values per input
    assert pooled(first).signal != pooled(full).signal
    assert plan.activations == full_plan.activations  # encodings still from all 6 inputs
    kept = calibrate(model, ["relu1"], feeds(), 6, histograms=False, keep=["probs"], keep_inputs=2).kept
    assert kept is not None and len(kept) == 2
