"""The shipped example (examples/digits) converts, and its container reaches the README's float figures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from deploy.container import load_container
from deploy.convert import convert
from deploy.errors import EdgeloopError
from deploy.inputlist import iter_feeds, read_input_list
from deploy.opsupport import load_tables

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "digits"


@pytest.fixture(scope="module")
def container(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return convert(EXAMPLE / "digits_cnn.onnx", tmp_path_factory.mktemp("digits") / "digits.onnx", cache=False).path


def predict(container: Path, images: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(container), providers=["CPUExecutionProvider"])
    return np.array([session.run(None, {"digits": image[np.newaxis]})[0].argmax() for image in images])


def test_batchnorm_is_in_the_source_and_folded_in_the_container(container: Path) -> None:
    source_ops = [n.op_type for n in onnx.load(str(EXAMPLE / "digits_cnn.onnx")).graph.node]
    assert source_ops.count("BatchNormalization") == 2
    assert [n.op_type for n in onnx.load(str(container)).graph.node] == [
        op for op in source_ops if op != "BatchNormalization"]


def test_container_logits_equal_the_source_model(container: Path) -> None:
    plain = ort.SessionOptions()
    plain.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    source = ort.InferenceSession(str(EXAMPLE / "digits_cnn.onnx"), plain, providers=["CPUExecutionProvider"])
    folded = ort.InferenceSession(str(container), plain, providers=["CPUExecutionProvider"])
    _, meta = load_container(container)
    for feeds in iter_feeds(read_input_list(EXAMPLE / "validation" / "input_list.txt"), meta.inputs):
        np.testing.assert_allclose(folded.run(None, feeds)[0], source.run(None, feeds)[0], rtol=1e-5, atol=1e-5)


def test_validation_samples_match_their_labels(container: Path) -> None:
    listing = read_input_list(EXAMPLE / "validation" / "input_list.txt")
    labels = [int(line) for line in (EXAMPLE / "validation" / "labels.txt").read_text().split()]
    assert len(listing.entries) == len(labels) == 32
    session = ort.InferenceSession(str(container), providers=["CPUExecutionProvider"])
    _, meta = load_container(container)
    predictions = [int(session.run(None, feeds)[0].argmax()) for feeds in iter_feeds(listing, meta.inputs)]
    metrics = json.loads((EXAMPLE / "metrics.json").read_text())
    assert np.mean(np.array(predictions) == labels) == metrics["float_top1_validation_samples"]
    assert len(read_input_list(EXAMPLE / "calibration" / "input_list.txt").entries) == 64


def test_held_out_top1_is_the_readme_figure(container: Path) -> None:
    datasets = pytest.importorskip("sklearn.datasets")
    selection = pytest.importorskip("sklearn.model_selection")
    digits = datasets.load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, np.newaxis]
    _, x_test, _, y_test = selection.train_test_split(images, digits.target, test_size=0.25, random_state=0,
                                                      stratify=digits.target)
    top1 = float(np.mean(predict(container, x_test) == y_test))
    assert abs(top1 - json.loads((EXAMPLE / "metrics.json").read_text())["float_top1_held_out"]) <= 1 / len(y_test)
    assert top1 >= 0.97


def test_op_tables_cover_every_runtime_and_example_op() -> None:
    tables = load_tables()
    assert set(tables) == {"cpu", "gpu", "dsp", "aip"}
    for op in ("Conv", "Relu", "MaxPool", "Flatten", "Gemm"):
        assert all(op in table.ops for table in tables.values()), op
    assert all(set(table.notes) <= table.ops for table in tables.values())


@pytest.mark.parametrize("text, message", [
    ("runtime: gpu\nops: [Conv]\n", "'runtime' must be 'cpu'"),
    ("runtime: cpu\nops: Conv\n", "'ops' must be a list"),
    ("runtime: cpu\nops: [Conv]\nnotes: {Relu: fast}\n", "note for op 'Relu', which is not in 'ops'"),
    ("runtime: cpu\nops: [Conv]\nlimits: {Relu: {x: [1]}}\n", "limit for op 'Relu', which is not in 'ops'"),
    ("runtime: cpu\nops: [Conv]\nlimits: {Conv: {group: 1}}\n", "limits.Conv must map attribute names to lists"),
])
def test_a_malformed_op_table_is_a_clear_error(text: str, message: str, tmp_path: Path) -> None:
    (tmp_path / "cpu.yaml").write_text(text)
    with pytest.raises(EdgeloopError, match=message):
        load_tables(tmp_path)


def test_readme_commands_run(tmp_path: Path) -> None:
    """The build-side commands of the example's README work as written (build/ redirected to tmp)."""
    readme = (EXAMPLE / "README.md").read_text()
    commands = [line.split()[1:] for line in readme.splitlines()
                if line.startswith(("invoke convert", "invoke info", "invoke inputs"))]
    assert [c[0] for c in commands] == ["convert", "info", "inputs"]
    edgeloop = Path(sys.executable).parent / "edgeloop"
    env = {**os.environ, "EDGELOOP_BUILD": str(tmp_path / "cache")}
    for command in commands:
        args = [arg.replace("build/", f"{tmp_path}/") for arg in command]
        done = subprocess.run([str(edgeloop), *args], cwd=EXAMPLE.parents[1], env=env, capture_output=True, text=True)
        assert done.returncode == 0, (args, done.stderr)
    assert "32 inferences match" in done.stdout
