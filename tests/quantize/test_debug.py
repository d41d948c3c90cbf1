"""The debugger points at the layer that was made hard to quantize, and promotion fixes it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from deploy.errors import EdgeloopError
from deploy.quantize import quantize
from deploy.quantize.debug import debug
from tests.deploy.models import conv_net
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
