"""The quantize tasks as users run them: flags with SNPE names, one-line errors, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.errors import EdgeloopError
from deploy.quantize import QuantizeOptions, quantize
from tests.deploy.models import conv_net
from tests.quantize.util import make_container, make_input_list

REPO = Path(__file__).resolve().parents[2]


def _edgeloop(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "EDGELOOP_BUILD": str(cwd / "build"), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "invoke", "-r", str(REPO), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_quantize_and_debug_tasks(tmp_path: Path) -> None:
    model = conv_net()
    make_container(model, tmp_path / "float.onnx")
    make_input_list(model, tmp_path, 3)
    done = _edgeloop("quantize", "--container", "float.onnx", "--input-list", "input_list.txt", "--output",
                     "q.onnx", "--param-quantizer", "enhanced", "--use-per-channel-quantization",
                     "--algorithms", "cle,bc", "--encodings-out", "enc.json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "output SQNR" in done.stdout and (tmp_path / "q.onnx").is_file()
    assert json.loads((tmp_path / "enc.json").read_text())["version"] == "1.0.0"
    report = _edgeloop("quantize.debug", "--container", "float.onnx", "--quantized", "q.onnx", "--input-list",
                       "input_list.txt", "--inputs", "2", "--json", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert len(json.loads(report.stdout)["layers"]) >= 6
    unmet = _edgeloop("quantize.debug", "--container", "float.onnx", "--quantized", "q.onnx", "--input-list",
                      "input_list.txt", "--inputs", "1", "--target-sqnr", "500", "--device", "galaxy-s23", cwd=tmp_path)
    assert unmet.returncode == 1, unmet.stderr  # a check that failed, as a deploy below its thresholds
    assert unmet.stderr.startswith("error: target 500 dB not met: ") and "target 500 dB not met" in unmet.stdout


def test_bad_flag_value_is_one_line_exit_2(tmp_path: Path) -> None:
    model = conv_net()
    make_container(model, tmp_path / "float.onnx")
    make_input_list(model, tmp_path, 1)
    done = _edgeloop("quantize", "--container", "float.onnx", "--input-list", "input_list.txt",
                     "--weights-bitwidth", "6", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == "error: command line: --weights-bitwidth must be one of 4, 8, 16, got 6"


@pytest.mark.parametrize(("args", "message"), [
    (("quantize", "--weights-bitwidth", "abc"),
     "error: command line: --weights-bitwidth must be an integer, got 'abc'"),
    (("quantize", "--act-bitwidth", "8.5"), "error: command line: --act-bitwidth must be an integer, got '8.5'"),
    (("quantize", "--min-range", "tiny"), "error: command line: --min-range must be a number, got 'tiny'"),
    (("quantize", "--min-range", "0"), "error: command line: --min-range must be more than 0 and at most 100, got 0.0 "
     "(usual values are 0.0001 to 0.01)"),
    (("quantize", "--min-range", "1e38"), "error: command line: --min-range must be more than 0 and at most 100, "
     "got 1e+38 (usual values are 0.0001 to 0.01)"),
    (("quantize", "--min-range", "inf"), "error: command line: --min-range must be more than 0 and at most 100, "
     "got inf (usual values are 0.0001 to 0.01)"),
    (("quantize", "--min-range", "nan"), "error: command line: --min-range must be more than 0 and at most 100, "
     "got nan (usual values are 0.0001 to 0.01)"),
    (("quantize", "--algorithms", "cle,adaroud"),
     "error: command line: --algorithms must be one of cle, bc, adaround, seqmse, got 'adaroud'"),
    (("quantize", "--pack-4-bit-weights"), "error: command line: --pack-4-bit-weights needs --weights-bitwidth 4 "
     "(set --weights-bitwidth 4 or drop --pack-4-bit-weights)"),
    (("quantize", "--adaround-iterations", "0"),
     "error: command line: --adaround-iterations must be a whole number >= 1, got 0"),
    (("quantize", "--override-params", "binary.json"),
     "error: binary.json: the encodings file is not UTF-8 text"),
    (("quantize.debug", "--quantized", "float.onnx", "--inputs", "few"), "error: --inputs expects a number, got 'few'"),
    (("quantize.debug", "--quantized", "float.onnx", "--worst", "3x"), "error: --worst expects a number, got '3x'"),
    (("quantize.debug", "--quantized", "float.onnx", "--target-sqnr", "high"),
     "error: --target-sqnr expects a number, got 'high'"),
])
def test_bad_values_are_one_line_exit_2(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    model = conv_net()
    make_container(model, tmp_path / "float.onnx")
    make_input_list(model, tmp_path, 1)
    (tmp_path / "binary.json").write_bytes(bytes(range(256)))
    done = _edgeloop(args[0], "--container", "float.onnx", "--input-list", "input_list.txt", *args[1:], cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(message) and len(done.stderr.strip().splitlines()) == 1, done.stderr


@pytest.mark.parametrize(("options", "message"), [
    ({"weights_bitwidth": 6}, "edgeloop.yaml:7: quantization: weights_bitwidth must be one of 4, 8, 16, got 6"),
    ({"pack_4_bit_weights": True}, "edgeloop.yaml:7: quantization: pack_4_bit_weights needs weights_bitwidth 4 "
     "(set weights_bitwidth: 4 or drop pack_4_bit_weights)"),
    ({"act_bits": 8}, "edgeloop.yaml:7: quantization: unknown quantization option 'act_bits' (known options: "
     "param_quantizer, "),
])
def test_options_from_a_config_file_name_its_keys(options: dict, message: str) -> None:
    """What the flags' errors say with --weights-bitwidth, a deployment file's say with its YAML key."""
    with pytest.raises(EdgeloopError) as caught:
        QuantizeOptions.from_mapping(options, "edgeloop.yaml:7: quantization")
    assert str(caught.value).startswith(message) and "--" not in str(caught.value)


@pytest.mark.parametrize("flag", ["--output", "--encodings-out"])
@pytest.mark.parametrize("source", ["float.onnx", "input_list.txt", "raw"])
def test_quantize_never_writes_over_its_inputs(tmp_path: Path, flag: str, source: str) -> None:
    model = conv_net()
    make_container(model, tmp_path / "float.onnx")
    make_input_list(model, tmp_path, 2)
    if source == "raw":  # a calibration input the list names
        source = f"{model.graph.input[0].name}_1.raw"
    before = (tmp_path / source).read_bytes()
    done = _edgeloop("quantize", "--container", "float.onnx", "--input-list", "input_list.txt", flag, source,
                     cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: {flag} {source} is the input file itself (write the result to another file)"
    assert (tmp_path / source).read_bytes() == before


def test_output_and_encodings_out_cannot_be_one_file(tmp_path: Path) -> None:
    model = conv_net()
    make_container(model, tmp_path / "float.onnx")
    make_input_list(model, tmp_path, 1)
    done = _edgeloop("quantize", "--container", "float.onnx", "--input-list", "input_list.txt", "--output", "q.onnx",
                     "--encodings-out", "./q.onnx", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == ("error: --output and --encodings-out both name q.onnx "
                                   "(give the encodings another file name)")
    assert not (tmp_path / "q.onnx").exists()


def test_a_failed_encodings_write_leaves_the_earlier_pair(tmp_path: Path) -> None:
    """The encodings' folder is checked before the container is replaced: never a new container beside
    old encodings."""
    model = conv_net()
    container = make_container(model, tmp_path / "float.onnx")
    listing = make_input_list(model, tmp_path, 2)
    quantize(container, listing, tmp_path / "q.onnx", encodings_out=tmp_path / "e.json", cache=False)
    before = (tmp_path / "q.onnx").read_bytes()
    (tmp_path / "blocker").write_text("a file where a folder should be")
    with pytest.raises(EdgeloopError, match="blocker is a file, not a folder"):
        quantize(container, listing, tmp_path / "q.onnx", QuantizeOptions(act_bitwidth=16),
                 encodings_out=tmp_path / "blocker" / "e.json", cache=False)
    assert (tmp_path / "q.onnx").read_bytes() == before


def test_a_batch_above_1_names_the_convert_option_as_it_is_spelt(tmp_path: Path) -> None:
    from deploy.container import ContainerMeta, TensorInfo, save_container

    model = conv_net()
    listing = make_input_list(model, tmp_path, 1)
    shape = tuple(d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim)
    name = model.graph.input[0].name
    meta = ContainerMeta("float", [TensorInfo(name, (2, *shape[1:]), layout="NCHW")],
                         [TensorInfo(model.graph.output[0].name, (2, 10))])
    container = save_container(model, meta, tmp_path / "b2.onnx")
    with pytest.raises(EdgeloopError) as info:
        quantize(container, listing, tmp_path / "q.onnx", cache=False)
    assert info.value.hint == f"convert with --input-dim {name}={','.join(['1', *map(str, shape[1:])])}"


def test_an_output_that_cannot_be_written_is_refused_before_calibrating(tmp_path: Path, monkeypatch) -> None:
    import deploy.quantize as quantize_module

    model = conv_net()
    container = make_container(model, tmp_path / "float.onnx")
    listing = make_input_list(model, tmp_path, 1)
    monkeypatch.setattr(quantize_module, "_build", lambda *args: pytest.fail("calibrated before the check"))
    with pytest.raises(EdgeloopError, match=r"^cannot write /proc/q\.onnx: the folder /proc cannot take new files"):
        quantize(container, listing, "/proc/q.onnx", cache=False)
