"""quantize() end to end: the container it writes, the integers onnxruntime computes in it, the
cache, opset handling, streaming calibration and the errors users see."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, numpy_helper

from deploy.container import load_container
from deploy.errors import EdgeloopError
from deploy.inputlist import read_input_list
from deploy.quantize import QuantizeOptions, quantize
from deploy.quantize.calibrate import BATCH_BYTES, calibrate
from deploy.quantize.encodings import Encoding, fake_quantize, quantize_array
from deploy.quantize.pipeline import feeds_from
from deploy.quantize.runner import expose, float_activations, session
from tests.deploy.models import conv_net, transformer_block
from tests.quantize.util import make_container, make_input_list


@pytest.fixture
def build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EDGELOOP_BUILD", str(tmp_path / "build"))
    return tmp_path


def _encodings(meta_encodings: dict, section: str) -> dict[str, Encoding]:
    result = {}
    for e in meta_encodings[section]:
        if e["dtype"] == "INT":
            many = e["enc_type"] == "PER_CHANNEL"
            result[e["name"]] = Encoding(e["bw"], np.asarray(e["scale"] if many else e["scale"][0]),
                                         np.asarray(e["offset"] if many else e["offset"][0]), e["is_sym"],
                                         0 if many else None)
    return result


def test_conv_net_tf8_end_to_end(build: Path) -> None:
    model = conv_net()
    container = make_container(model, build / "float.onnx")
    input_list = make_input_list(model, build, 6)
    result = quantize(container, input_list, build / "q.onnx", encodings_out=build / "enc.json")
    qmodel, meta = load_container(result.path)
    assert meta.kind == "quantized" and not result.cached
    assert meta.encodings["version"] == "1.0.0" and (build / "enc.json").is_file()
    assert result.sqnr_db > 25 and result.cosine > 0.995
    assert meta.quantization["sqnr_db"] == pytest.approx(result.sqnr_db)
    ops = {n.op_type for n in qmodel.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    stored = {i.name: i.data_type for i in qmodel.graph.initializer}
    assert stored["conv1.weight_quantized"] == TensorProto.UINT8
    assert stored["conv1.bias_quantized"] == TensorProto.INT32
    assert "conv1.weight" not in stored  # no float copy of a quantized weight
    # same inputs and options: a cache hit, no work
    again = quantize(container, input_list, build / "q2.onnx")
    assert again.cached and (build / "q2.onnx").read_bytes() == result.path.read_bytes()


def test_qdq_integers_match_our_simulation(build: Path) -> None:
    """Every activation's integers in onnxruntime equal quantize_array() of its float input; every
    dequantized weight equals fake_quantize() of the float weight."""
    model = conv_net()
    container = make_container(model, build / "float.onnx")
    input_list = make_input_list(model, build, 3)
    qmodel, meta = load_container(quantize(container, input_list, build / "q.onnx").path)
    acts = _encodings(meta.encodings, "activation_encodings")
    names = [f"{n}_float" for n in acts if f"{n}_float" in {o for node in qmodel.graph.node for o in node.output}]
    names += [f"{n[:-6]}_quantized" for n in names]
    x = np.random.default_rng(9).standard_normal((1, 3, 16, 16)).astype(np.float32)
    values = dict(zip(names, session(expose(qmodel, names)).run(names, {"image": x}), strict=True))
    checked = 0
    for name, enc in acts.items():
        if f"{name}_float" in values:
            assert np.array_equal(values[f"{name}_quantized"], quantize_array(values[f"{name}_float"], enc)), name
            checked += 1
    assert checked >= 7  # and Flatten's output, on its input's grid, needs no pair of its own
    params = _encodings(meta.encodings, "param_encodings")
    weight = numpy_helper.to_array(next(i for i in model.graph.initializer if i.name == "fc.weight"))
    dq = session(expose(qmodel, ["fc.weight"])).run(["fc.weight"], {"image": x})[0]
    assert np.allclose(dq, fake_quantize(weight, params["fc.weight"]), atol=0, rtol=1e-6)


def test_16bit_activations_and_packed_4bit_weights_use_opset21(build: Path) -> None:
    model = transformer_block()
    container = make_container(model, build / "float.onnx")
    input_list = make_input_list(model, build, 4)
    options = QuantizeOptions(act_bitwidth=16, weights_bitwidth=4, pack_4_bit_weights=True,
                              use_per_channel_quantization=True)
    qmodel, meta = load_container(quantize(container, input_list, build / "q.onnx", options).path)
    assert next(o.version for o in qmodel.opset_import if o.domain == "") == 21
    types = {i.name: i.data_type for i in qmodel.graph.initializer}
    assert types["q.weight_quantized"] == TensorProto.INT4
    assert types["ln1_out_zero_point"] == TensorProto.UINT16
    assert meta.quantization["cosine"] > 0.95


def test_8bit_model_keeps_its_opset_and_attributes(build: Path) -> None:
    model = conv_net()
    container = make_container(model, build / "float.onnx")
    qmodel, _ = load_container(quantize(container, make_input_list(model, build, 2), build / "q.onnx").path)
    assert next(o.version for o in qmodel.opset_import if o.domain == "") == 17
    for node in qmodel.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            assert {a.name for a in node.attribute} <= {"axis"}


def test_calibration_memory_does_not_grow_with_inputs(tmp_path: Path) -> None:
    model = conv_net(size=32)
    container = make_container(model, tmp_path / "float.onnx")
    _, meta = load_container(container)
    peaks = []
    for count in (16, 64):
        folder = tmp_path / str(count)
        folder.mkdir()
        input_list = read_input_list(make_input_list(model, folder, count))
        tensors = float_activations(model)
        tracemalloc.start()
        stats = calibrate(model, tensors, feeds_from(input_list, meta, "l")(), count, histograms=True).stats
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert stats["relu1"].counts.sum() == count * 8 * 32 * 32
        per_input = 4 * sum(int(s.counts.sum()) for s in stats.values()) / count
        # Calibration holds back up to BATCH_BYTES of activations: both lists must be longer than
        # that, or this would measure the batch and not the bound.
        assert count * per_input > 1.5 * BATCH_BYTES
    assert peaks[1] < peaks[0] * 1.3, peaks


@pytest.mark.parametrize("inputs_per_fold", [3, 1000])
def test_calibration_in_folds_equals_one_input_at_a_time(monkeypatch: pytest.MonkeyPatch,
                                                         inputs_per_fold: int) -> None:
    """Whatever BATCH_BYTES cuts the list into (a few inputs per fold, or all in one), every tensor's
    statistics are those of a budget of 0, which folds each input in alone (`update`). Inputs grow,
    so histograms re-bin inside a fold."""
    model = conv_net()
    rng = np.random.default_rng(5)
    feeds = [{"image": (rng.standard_normal((1, 3, 16, 16)) * (1 + i)).astype(np.float32)} for i in range(10)]
    tensors = float_activations(model)
    monkeypatch.setattr("deploy.quantize.calibrate.BATCH_BYTES", 0)
    alone = calibrate(model, tensors, feeds, len(feeds), histograms=True).stats
    per_input = sum(a.nbytes for a in session(expose(model, tensors)).run(tensors, feeds[0]))
    monkeypatch.setattr("deploy.quantize.calibrate.BATCH_BYTES", inputs_per_fold * per_input)
    folded = calibrate(model, tensors, feeds, len(feeds), histograms=True).stats
    for name in tensors:
        a, b = alone[name], folded[name]
        assert (b.min, b.max, b.lo, b.hi) == (a.min, a.max, a.lo, a.hi), name
        assert np.array_equal(b.counts, a.counts), name
    assert alone["image"].counts.sum() == 10 * 3 * 16 * 16
    assert alone["image"].hi > 5 * float(np.abs(feeds[0]["image"]).max())  # re-binned past the first range


def test_sessions_do_not_spin_between_inferences() -> None:
    """Spinning onnxruntime workers took the cores the quantizer's numpy work needs between
    inferences (1.3-1.6x the quantization time on 2 busy cores; bench/README.md, Quantizer)."""
    options = session(conv_net()).get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_input_file_that_does_not_fit_the_model(build: Path) -> None:
    model = conv_net()
    container = make_container(model, build / "float.onnx")
    input_list = make_input_list(model, build, 2)
    (build / "image_1.raw").write_bytes(b"\0" * 100)
    with pytest.raises(EdgeloopError, match=r"wrong size for input 'image': expected 3072 bytes.*got 100"):
        quantize(container, input_list, build / "q.onnx")


def test_quantized_container_cannot_be_quantized_again(build: Path) -> None:
    model = conv_net()
    container = make_container(model, build / "float.onnx")
    input_list = make_input_list(model, build, 2)
    quantize(container, input_list, build / "q.onnx")
    with pytest.raises(EdgeloopError, match="already a quantized container"):
        quantize(build / "q.onnx", input_list)


def test_packing_needs_4bit_weights() -> None:
    with pytest.raises(EdgeloopError, match="pack_4_bit_weights needs weights_bitwidth 4"):
        QuantizeOptions.from_mapping({"pack_4_bit_weights": True}, "cfg.yaml")
    with pytest.raises(EdgeloopError, match=r"cfg\.yaml: weights_bitwidth must be one of 4, 8, 16, got 6"):
        QuantizeOptions.from_mapping({"weights_bitwidth": 6}, "cfg.yaml")
    with pytest.raises(EdgeloopError, match="unknown quantization option 'act_bits'"):
        QuantizeOptions.from_mapping({"act_bits": 8}, "cfg.yaml")


def test_symmetric_activations_and_8bit_biases(build: Path) -> None:
    model = conv_net()
    container = make_container(model, build / "float.onnx")
    options = QuantizeOptions(param_quantizer="symmetric", act_quantizer="symmetric", bias_bitwidth=8)
    result = quantize(container, make_input_list(model, build, 3), build / "q.onnx", options)
    qmodel, meta = load_container(result.path)
    types = {i.name: i.data_type for i in qmodel.graph.initializer}
    assert types["relu1_zero_point"] == TensorProto.INT8  # signed storage, zero point 0
    assert types["conv1.bias_quantized"] == TensorProto.INT8  # an ordinary 8-bit parameter
    biases = {e["name"]: e for e in meta.encodings["param_encodings"]}
    assert biases["conv1.bias"]["bw"] == 8 and biases["conv1.bias"]["offset"] == [-128]
    assert result.cosine > 0.99


def test_final_sqnr_is_the_same_with_and_without_kept_calibration_values(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The final pass reuses the float outputs kept from calibration: in memory while they fit the
    budget, past it from a temporary file: same numbers."""
    from deploy.quantize import calibrate as calibrate_module
    from deploy.quantize.pipeline import pooled, quantize_model

    model = conv_net()
    container = make_container(model, tmp_path / "float.onnx")
    _, meta = load_container(container)
    input_list = read_input_list(make_input_list(model, tmp_path, 5))
    feeds = feeds_from(input_list, meta, "l")
    kept = pooled(quantize_model(model, feeds, 5, QuantizeOptions())[2])
    monkeypatch.setattr(calibrate_module, "OUTPUT_BUDGET", 0)
    calibration = calibrate(model, ["relu1"], feeds(), 5, histograms=False, keep=["probs"])
    assert calibration.kept is not None and calibration.kept.memory == [] and len(calibration.kept.spilled) == 5
    streamed = pooled(quantize_model(model, feeds, 5, QuantizeOptions())[2])
    assert kept.count == streamed.count == 5 * 10
    assert streamed.sqnr_db == pytest.approx(kept.sqnr_db, abs=1e-3)  # two sessions: float rounding only


def test_the_container_names_the_inputs_its_figures_come_from(tmp_path: Path) -> None:
    """Calibration reads every input; the SQNR and cosine it records, only the first MEASURED."""
    model = conv_net()
    container = make_container(model, tmp_path / "float.onnx")
    listing = make_input_list(model, tmp_path, 70)
    summary = quantize(container, listing, tmp_path / "q.onnx", cache=False).meta.quantization
    assert summary["calibration_inputs"] == 70 and summary["sqnr_inputs"] == 64
