"""The debugger points at the layer that was made hard to quantize, and promotion fixes it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from deploy.errors import EdgeloopError
from deploy.profiles import Hexagon, load_profile
from deploy.quantize import QuantizeOptions, quantize
from deploy.quantize.debug import PROMOTIONS, debug, promotion_overrides
from deploy.quantize.runner import expose, session
from deploy.quantize.targets import promotion_refusal, promotions
from tests.deploy.models import conv_net
from tests.quantize.test_algorithms import mismatched_net
from tests.quantize.test_subgraphs import if_net, loop_net
from tests.quantize.util import make_container, make_input_list


def hard_layer_net() -> onnx.ModelProto:
    """conv_net whose conv3 output channel 0 is 60x larger than the others (bn3 scales it back, so
    the float model is unchanged in spirit): per-tensor 8 bit then rounds conv3's other channels,
    weights and output, to a few levels, while every other layer quantizes well."""
    model = conv_net(seed=3)
    for init in model.graph.initializer:
        if init.name in ("conv3.weight", "conv3.bias", "bn3.mean", "bn3.var", "bn3.scale"):
            value = numpy_helper.to_array(init).astype(np.float64).copy()
            value[0] = value[0] * {"bn3.var": 3600.0, "bn3.scale": 1.0}.get(init.name, 60.0)
            init.CopyFrom(numpy_helper.from_array(value.astype(np.float32), init.name))
    return model


@pytest.fixture
def quantized(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, Path]:
    monkeypatch.setenv("EDGELOOP_BUILD", str(tmp_path / "build"))
    model = hard_layer_net()
    container = make_container(model, tmp_path / "float.onnx")
    input_list = make_input_list(model, tmp_path, 6)
    result = quantize(container, input_list, tmp_path / "q.onnx")
    return container, result.path, input_list


def test_debugger_ranks_the_hard_layer_first(quantized, tmp_path: Path) -> None:
    container, qpath, input_list = quantized
    report = debug(container, qpath, input_list, inputs=4, overrides_out=tmp_path / "fix.json")
    assert report.ranking[0].tensor == "conv3_out"
    by_name = {layer.tensor: layer for layer in report.layers}
    # isolated SQNR separates the culprit from the layers after it, which only inherit its error
    others = [layer.isolated_sqnr_db for layer in report.layers if layer.tensor != "conv3_out"]
    assert by_name["conv3_out"].isolated_sqnr_db < min(others) - 6
    written = json.loads((tmp_path / "fix.json").read_text())
    assert written["activation_encodings"][0]["name"] == "conv3_out"
    assert {"name": "conv3.weight"}.items() <= written["param_encodings"][0].items()


def test_target_sqnr_promotes_until_met(quantized) -> None:
    container, qpath, input_list = quantized
    report = debug(container, qpath, input_list, inputs=4, target_sqnr=30.0)
    assert report.output_sqnr_db < 30
    assert report.target_met and report.final_sqnr_db >= 30
    assert report.promoted[0] == "conv3_out" and len(report.promoted) <= 3
    assert report.final_size_bytes > report.size_bytes  # 16-bit weights cost bytes


def test_debugger_needs_float_and_quantized(quantized) -> None:
    container, qpath, input_list = quantized
    with pytest.raises(EdgeloopError, match="must be a float container"):
        debug(qpath, container, input_list)


def test_fused_layer_promotes_the_activation_that_carries_its_output(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """conv3 -> bn3 -> relu3 run as one op on the device: keeping conv3 at 16 bit must also keep
    relu3's output (the only encoded tensor of the three) at 16 bit, not only conv3's weight."""
    monkeypatch.setenv("EDGELOOP_BUILD", str(tmp_path / "build"))
    model = hard_layer_net()
    overrides = promotion_overrides(model, ["conv3_out"], "16")
    path = tmp_path / "fix.json"
    path.write_text(json.dumps(overrides))
    container = make_container(model, tmp_path / "float.onnx")
    input_list = make_input_list(model, tmp_path, 2)
    result = quantize(container, input_list, tmp_path / "q.onnx", QuantizeOptions(override_params=path))
    bitwidths = {e["name"]: e["bw"] for e in result.meta.encodings["activation_encodings"]}
    assert bitwidths["relu3"] == 16 and bitwidths["relu1"] == 8


def test_cle_container_is_compared_with_the_equalized_float_graph(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """CLE rescales channels by up to 100x here; comparing the equalized intermediate tensors with
    the unequalized float model would report garbage SQNR for layers that quantize well."""
    monkeypatch.setenv("EDGELOOP_BUILD", str(tmp_path / "build"))
    model = mismatched_net()
    container = make_container(model, tmp_path / "float.onnx")
    input_list = make_input_list(model, tmp_path, 4)
    result = quantize(container, input_list, tmp_path / "q.onnx", QuantizeOptions(algorithms=("cle",)))
    report = debug(container, result.path, input_list, inputs=4)
    assert abs(report.output_sqnr_db - result.sqnr_db) < 3  # the outputs are still measured against float
    # errors only accumulate along this chain: no layer can be much worse than the model output
    assert min(layer.cumulative_sqnr_db for layer in report.layers) > report.output_sqnr_db - 3
    assert min(layer.isolated_sqnr_db for layer in report.layers) > report.output_sqnr_db - 3


def test_quantized_container_of_another_model_is_one_line(quantized, tmp_path: Path) -> None:
    container, qpath, input_list = quantized
    other = tmp_path / "other"
    other.mkdir()
    renamed = hard_layer_net()  # same outputs, but the tensor relu1 is called act1
    for node in renamed.graph.node:
        for field in (node.input, node.output):
            field[:] = ["act1" if name == "relu1" else name for name in field]
    with pytest.raises(EdgeloopError, match=r"q\.onnx: its encodings name tensor 'relu1', which the float"):
        debug(make_container(renamed, other / "float.onnx"), qpath, input_list)
    different = conv_net(classes=4)
    different.graph.output[0].name = "scores"
    for node in different.graph.node:
        node.output[:] = ["scores" if name == "probs" else name for name in node.output]
    with pytest.raises(EdgeloopError, match="their outputs differ"):
        debug(make_container(different, other / "different.onnx"), qpath, input_list)
    with pytest.raises(EdgeloopError, match="--inputs must be at least 1"):
        debug(container, qpath, input_list, inputs=0)


def test_target_figure_is_what_quantize_gives_with_the_overrides(quantized, tmp_path: Path) -> None:
    """The layers are ranked on 2 inputs, but the overrides are verified as `quantize --override-params`
    runs them, on all 6 of the list: the figure the debugger reports is the one the user then gets."""
    container, qpath, input_list = quantized
    fix = tmp_path / "fix.json"
    report = debug(container, qpath, input_list, inputs=2, target_sqnr=30.0, overrides_out=fix)
    assert report.target_met and report.calibration_inputs == 6 and report.notes == []
    applied = quantize(container, input_list, tmp_path / "fixed.onnx", QuantizeOptions(override_params=fix))
    assert report.final_sqnr_db == round(applied.sqnr_db, 3)


def test_overrides_without_target_are_verified(quantized, tmp_path: Path) -> None:
    container, qpath, input_list = quantized
    fix = tmp_path / "fix.json"
    report = debug(container, qpath, input_list, inputs=2, worst=1, overrides_out=fix)
    applied = quantize(container, input_list, tmp_path / "fixed.onnx", QuantizeOptions(override_params=fix))
    assert report.promoted == ["conv3_out"] and report.final_sqnr_db == round(applied.sqnr_db, 3)
    assert report.final_sqnr_db > report.output_sqnr_db


def test_other_calibration_inputs_are_named(quantized, tmp_path: Path) -> None:
    container, qpath, _ = quantized
    other = tmp_path / "other"
    other.mkdir()
    report = debug(container, qpath, make_input_list(hard_layer_net(), other, 3, seed=9), inputs=2)
    assert len(report.notes) == 1 and "calibrated on other inputs" in report.notes[0]


def test_unreachable_target_is_reported_not_met(quantized) -> None:
    container, qpath, input_list = quantized
    report = debug(container, qpath, input_list, inputs=2, target_sqnr=500.0)
    assert report.target_met is False and report.final_sqnr_db < 500
    assert set(report.promoted) == {layer.tensor for layer in report.layers}  # it tried every layer


def test_device_limits_what_is_proposed(quantized) -> None:
    """Pixel 4's Hexagon v66 is an HVX DSP: 8-bit only, so no promotion can run there; the v73 HTP
    of the Galaxy S23 runs 16-bit activations and fp16."""
    container, qpath, input_list = quantized
    pixel4 = load_profile("pixel4")
    with pytest.raises(EdgeloopError, match=r"pixel4's dsp \(Hexagon v66, DSP\) runs 8-bit activations and weights"):
        debug(container, qpath, input_list, inputs=1, device=pixel4, target_sqnr=30.0)
    ranked = debug(container, qpath, input_list, inputs=2, device=pixel4)  # still says where the damage is
    assert ranked.ranking[0].tensor == "conv3_out" and ranked.promoted == []
    assert ranked.overrides["activation_encodings"] == []
    assert "runs 8-bit activations and weights only" in ranked.notes[0]
    for promote in PROMOTIONS:
        debug(container, qpath, input_list, inputs=1, worst=0, device=load_profile("galaxy-s23"), promote=promote)
    # the pixel4 has a gpu: there every promotion runs
    debug(container, qpath, input_list, inputs=1, worst=0, device=load_profile("pixel4"), runtime="gpu")


def test_promotions_follow_the_hexagon_generation() -> None:
    s23 = load_profile("galaxy-s23")
    v68 = dataclasses.replace(s23, hexagon=Hexagon("v68", "htp"))
    assert promotions(s23, "dsp") == ("16", "float")
    assert promotions(v68, "dsp") == ("16",)
    assert promotions(load_profile("pixel4"), "dsp") == ()
    assert promotions(load_profile("pixel"), "cpu") == ("16", "float")
    assert "cannot run layers promoted to float" in promotion_refusal(v68, "dsp", "float").message
    assert promotion_refusal(v68, "dsp", "16") is None
    with pytest.raises(EdgeloopError, match="has no dsp runtime"):
        promotions(load_profile("pixel"), "dsp")


def hard_body_net() -> onnx.ModelProto:
    """loop_net whose body weight has one column 40x the others: per-tensor 8 bit then rounds the
    body MatMul's other columns (weights and output) to a few levels, in every iteration."""
    model = loop_net()
    for init in model.graph.initializer:
        if init.name == "w":
            value = numpy_helper.to_array(init).copy()
            value[:, 0] *= 40.0
            init.CopyFrom(numpy_helper.from_array(value, "w"))
    return model


def _body_sqnr(model: onnx.ModelProto, qmodel: onnx.ModelProto, tensor: str, feeds: list[dict]) -> float:
    """SQNR of a body tensor's values over every iteration, float against quantized, computed apart
    from the debugger."""
    signal = noise = 0.0
    for feed in feeds:
        ref, = session(expose(model, [tensor])).run([tensor], feed)
        out, = session(expose(qmodel, [tensor])).run([tensor], feed)
        signal += float(np.sum(ref.astype(np.float64) ** 2))
        noise += float(np.sum((ref.astype(np.float64) - out) ** 2))
    return 10 * np.log10(signal / noise)


def test_loop_body_layers_are_debugged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A container whose encodings name Loop body tensors is taken: body layers are measured over
    every iteration, ranked with the others, and promoted by the overrides."""
    monkeypatch.setenv("EDGELOOP_BUILD", str(tmp_path / "build"))
    model = hard_body_net()
    container = make_container(model, tmp_path / "float.onnx")
    input_list = make_input_list(model, tmp_path, 6)
    qpath = quantize(container, input_list, tmp_path / "q.onnx").path
    report = debug(container, qpath, input_list, inputs=4, worst=2, overrides_out=tmp_path / "fix.json")
    by_name = {layer.tensor: layer for layer in report.layers}
    assert {"b_mm", "b_add", "h_out", "y"} <= set(by_name)
    worst, rest = report.ranking[:2], report.ranking[2:]
    assert {layer.tensor for layer in worst} == {"b_mm", "b_add"}  # both carry the large column
    assert max(layer.isolated_sqnr_db for layer in worst) < min(layer.isolated_sqnr_db for layer in rest) - 20
    feeds = [{"x": np.fromfile(tmp_path / f"x_{i}.raw", np.float32).reshape(1, 8)} for i in range(4)]
    qmodel = onnx.load(str(qpath))
    assert by_name["b_add"].cumulative_sqnr_db == pytest.approx(_body_sqnr(model, qmodel, "b_add", feeds), abs=0.01)
    written = json.loads((tmp_path / "fix.json").read_text())
    assert {e["name"] for e in written["activation_encodings"]} == {"b_mm", "b_add"}
    assert [e["name"] for e in written["param_encodings"]] == ["w"]
    assert report.final_sqnr_db > report.output_sqnr_db  # the body layer at 16 bit, verified by quantize


def test_if_branch_layers_are_debugged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both branches of an If are layers; a branch one input does not take adds nothing for that input,
    also where float and quantized models take different branches."""
    monkeypatch.setenv("EDGELOOP_BUILD", str(tmp_path / "build"))
    model = if_net()
    container = make_container(model, tmp_path / "float.onnx")
    input_list = make_input_list(model, tmp_path, 8)
    qpath = quantize(container, input_list, tmp_path / "q.onnx").path
    # an input whose mean is near 0, on the side that quantization (of x and of the mean) flips: float
    # and quantized models take different branches for it
    centred = np.fromfile(tmp_path / "x_0.raw", np.float32).reshape(1, 3, 8, 8)
    centred -= centred.mean()
    sessions = [session(expose(m, ["t_out"])) for m in (model, onnx.load(str(qpath)))]
    flipped = next(x for x in (centred + np.float32(shift) for shift in np.linspace(-2e-3, 2e-3, 41))
                   if len({sess.run(["t_out"], {"x": x})[0].size for sess in sessions}) == 2)
    flipped.tofile(tmp_path / "x_0.raw")
    report = debug(container, qpath, input_list, inputs=8)
    by_name = {layer.tensor: layer for layer in report.layers}
    assert {"t_conv", "t_relu", "t_out", "e_mm", "e_out", "s", "y"} <= set(by_name)
    assert all(by_name[t].cumulative_sqnr_db > 20 for t in ("t_relu", "t_out", "e_mm", "e_out"))
    assert all(np.isfinite(layer.isolated_sqnr_db) for layer in report.layers)
