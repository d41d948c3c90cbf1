"""info: layer shapes, params, MACs and memory counted by hand from the builders' dimensions; encodings shown."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from rich.console import Console

from deploy.container import ContainerMeta, TensorInfo, save_container
from deploy.convert import convert
from deploy.errors import EdgeloopError
from deploy.info import ContainerInfo, inspect_container, render_info
from tests.deploy.models import conv_net, save, transformer_block

EDGELOOP = Path(sys.executable).parent / "edgeloop"


@pytest.fixture(autouse=True)
def build_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGELOOP_BUILD", str(tmp_path / "build"))


def conv(cout: int, cin_per_group: int, k: int, out_hw: int) -> tuple[int, int]:
    """(params, MACs) of a biased convolution."""
    return cout * cin_per_group * k * k + cout, cout * out_hw * out_hw * cin_per_group * k * k


def test_conv_net_layers_and_totals(tmp_path: Path) -> None:
    container = convert(save(conv_net(size=16, channels=8, classes=10), tmp_path / "m.onnx")).path
    info = inspect_container(container)
    by_name = {layer.name: layer for layer in info.layers}
    expected = {"conv1": conv(8, 3, 3, 16), "dw2": conv(8, 1, 3, 16), "conv3": conv(16, 8, 1, 8),
                "fc": (16 * 10 + 10, 16 * 10)}
    for name, (params, macs) in expected.items():
        assert (by_name[name].params, by_name[name].macs) == (params, macs), name
    assert info.params == sum(p for p, _ in expected.values())
    assert info.macs == sum(m for _, m in expected.values())
    assert info.weight_bytes == 4 * info.params  # float32 weights, no other initializers
    assert [t.shape for t in by_name["pool2"].inputs] == [(1, 8, 16, 16)]
    assert [t.shape for t in by_name["pool2"].outputs] == [(1, 8, 8, 8)]
    # conv1's input (3x16x16) and output (8x16x16) are live together, then relu1 reads conv1's output
    # while writing its own (2 x 8x16x16): the larger, 16 KiB, is the peak.
    assert info.peak_activation_bytes == max(4 * (3 + 8) * 256, 4 * 2 * 8 * 256)


def test_transformer_block_matmul_macs(tmp_path: Path) -> None:
    tokens, dim, heads = 8, 16, 2
    info = inspect_container(convert(save(transformer_block(tokens=tokens, dim=dim, heads=heads),
                                          tmp_path / "t.onnx")).path)
    projections = 4 * tokens * dim * dim
    attention = 2 * heads * tokens * tokens * (dim // heads)
    mlp = 2 * tokens * dim * 2 * dim
    assert info.macs == projections + attention + mlp
    assert {layer.op_type for layer in info.layers if layer.macs} == {"MatMul"}
    ln = next(layer for layer in info.layers if layer.name == "ln1")
    assert ln.params == 2 * dim and "aip" not in ln.runtimes


def test_render_shows_layers_and_a_quantized_containers_encodings(tmp_path: Path) -> None:
    model = conv_net()
    meta = ContainerMeta(
        kind="quantized", inputs=[TensorInfo("image", (1, 3, 16, 16), layout="NCHW")],
        outputs=[TensorInfo("probs", (1, 10), layout="NC")],
        encodings={"activation_encodings": [{"name": "relu1", "dtype": "INT", "bw": 8, "is_sym": False,
                                             "scale": [0.0503], "offset": [0]}],
                   "param_encodings": [{"name": "conv1.weight", "dtype": "INT", "bw": 8, "is_sym": True,
                                        "scale": [0.01, 0.02, 0.03], "offset": [-128, -128, -128]}]},
        quantization={"sqnr_db": 31.5})
    path = save_container(onnx.shape_inference.infer_shapes(model), meta, tmp_path / "q.onnx")
    console = Console(record=True, width=200)
    for renderable in render_info(inspect_container(path)):
        console.print(renderable)
    text = console.export_text()
    assert "quantized container" in text and "encodings" in text
    assert "relu1" in text and "0.0503" in text and "conv1.weight" in text and "0.01 (+2)" in text
    assert re.search(r"sqnr_db\s*│\s*31.5", text)


def test_info_of_a_plain_onnx_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EdgeloopError, match="not an edgeloop container"):
        inspect_container(save(conv_net(), tmp_path / "plain.onnx"))


def test_cli_json_has_the_totals(tmp_path: Path) -> None:
    container = convert(save(conv_net(), tmp_path / "m.onnx"), tmp_path / "c.onnx").path
    out = subprocess.run([str(EDGELOOP), "info", "--container", str(container), "--json"], capture_output=True,
                         text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    info = inspect_container(container)
    assert data["totals"]["params"] == info.params and data["totals"]["macs"] == info.macs
    assert [layer["name"] for layer in data["layers"]] == [layer.name for layer in info.layers]
    assert data["meta"]["kind"] == "float" and data["meta"]["inputs"][0]["shape"] == [1, 3, 16, 16]


def test_quantized_example_keeps_params_and_macs_and_saves_weight_bytes(tmp_path: Path) -> None:
    from deploy.quantize import quantize

    example = Path(__file__).resolve().parents[2] / "examples" / "digits"
    float_path = convert(example / "digits_cnn.onnx", tmp_path / "f.onnx").path
    quantized = quantize(float_path, example / "calibration" / "input_list.txt", tmp_path / "q.onnx").path
    f, q = inspect_container(float_path), inspect_container(quantized)
    assert q.meta.quantized and q.qdq_nodes > 0 and f.qdq_nodes == 0
    assert [(layer.name, layer.op_type) for layer in q.layers] == [(layer.name, layer.op_type) for layer in f.layers]
    assert (q.params, q.macs) == (f.params, f.macs)
    def shapes(info: ContainerInfo) -> list[tuple[int, ...] | None]:
        return [t.shape for layer in info.layers for t in [*layer.inputs, *layer.outputs]]

    assert shapes(q) == shapes(f)
    assert q.weight_bytes < f.weight_bytes / 3  # int8 weights (int32 biases) instead of float32
