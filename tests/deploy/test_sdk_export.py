"""What the SNPE and QNN packs hand the SDK converters for a quantized container: its float graph
(weights dequantized, activation pairs gone) in every scope, If/Loop/Scan bodies included."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from deploy.quantize import quantize
from deploy.quantize.runner import session
from deploy.sdk import export_for_sdk
from deploy.subgraphs import initializers, walk
from tests.quantize.test_subgraphs import if_net, loop_net, scan_net
from tests.quantize.util import make_container, make_input_list


@pytest.mark.parametrize("build", [if_net, loop_net, scan_net])
def test_bodies_are_dequantized_for_the_sdk(build, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGELOOP_BUILD", str(tmp_path / "build"))
    model = build()
    container = make_container(model, tmp_path / "float.onnx")
    input_list = make_input_list(model, tmp_path, 8)
    qpath = quantize(container, input_list, tmp_path / "q.onnx").path
    export_for_sdk(qpath, tmp_path / "model.onnx", tmp_path / "encodings.json")
    exported = onnx.load(str(tmp_path / "model.onnx"))
    onnx.checker.check_model(exported, full_check=True)
    assert {n.op_type for _, n in walk(exported.graph)} & {"QuantizeLinear", "DequantizeLinear"} == set()
    assert {n.op_type for _, n in walk(model.graph)} <= {n.op_type for _, n in walk(exported.graph)} | {"Identity"}
    # the body weights are the quantized values (what the encodings describe), not the float ones
    qinit = initializers(onnx.load(str(qpath)))
    weights = {n for _, n in walk(model.graph) for n in n.input if n in ("cw", "mw", "w")}
    for name in weights:
        value = numpy_helper.to_array(initializers(exported)[name])
        original = numpy_helper.to_array(initializers(model)[name])
        scale = numpy_helper.to_array(qinit[f"{name}_scale"])
        assert not np.array_equal(value, original) and np.abs(value - original).max() <= scale.max() / 2 + 1e-6
    shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    feed = {"x": np.fromfile(tmp_path / "x_0.raw", np.float32).reshape(shape)}
    got, want = session(exported).run(["y"], feed)[0], session(model).run(["y"], feed)[0]
    assert 10 * np.log10(np.sum(want ** 2) / np.sum((got - want) ** 2)) > 25
    # the body tensors' encodings go to the SDK with the others (AIMET 0.6.1: keyed by name)
    body = {n for graph, node in walk(model.graph) if graph is not model.graph for n in node.output}
    assert body & set(json.loads((tmp_path / "encodings.json").read_text())["activation_encodings"])
