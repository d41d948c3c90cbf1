"""NaN and inf never pass quantization: a calibration input holding them is refused naming its raw
file and input, and an output whose SQNR comes out NaN (a model computing NaN or inf) is refused
rather than printed as a result; nothing is written either way."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from deploy.errors import EdgeloopError
from deploy.quantize import QuantizeOptions, quantize
from deploy.quantize.metrics import Agreement
from deploy.quantize.pipeline import check_measured
from tests.deploy.models import conv_net
from tests.quantize.util import make_container, make_input_list

EDGELOOP = Path(sys.executable).parent / "edgeloop"


@pytest.fixture
def build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EDGELOOP_BUILD", str(tmp_path / "build"))
    return tmp_path


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def _spoil(raw: Path, value: float, index: int = 5) -> None:
    data = np.fromfile(raw, dtype="<f4")
    data[index] = value
    data.tofile(raw)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("act_quantizer", ["tf", "enhanced"])
def test_a_non_finite_calibration_input_names_the_raw_file_and_writes_nothing(
        value: float, act_quantizer: str, build: Path) -> None:
    model = conv_net()
    container = make_container(model, build / "float.onnx")
    input_list = make_input_list(model, build, 4)
    _spoil(build / "image_2.raw", value)
    with pytest.raises(EdgeloopError) as err:
        quantize(container, input_list, build / "q.onnx", QuantizeOptions(act_quantizer=act_quantizer))
    assert err.value.message == (f"{input_list} line 3: {build / 'image_2.raw'}: input 'image' holds 1 NaN or inf "
                                 f"value (the first, {value}, at flat index 5)")
    assert "\n" not in str(err.value) and err.value.hint
    assert not (build / "q.onnx").exists() and _files(build / "build") == []


def _sqrt_net() -> onnx.ModelProto:
    """y = sqrt(x): NaN for every negative input, so the float model itself computes NaN."""
    graph = helper.make_graph([helper.make_node("Sqrt", ["x"], ["y"])], "sqrt",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_a_model_computing_nan_is_refused_not_printed_as_sqnr_nan(build: Path) -> None:
    model = _sqrt_net()
    container = make_container(model, build / "float.onnx")
    input_list = make_input_list(model, build, 3)  # standard normal inputs: about half negative
    with pytest.raises(EdgeloopError, match=r"^output 'y': the float model computes NaN or inf on the "
                                            r"calibration inputs, so its SQNR against float is nan dB") as err:
        quantize(container, input_list, build / "q.onnx")
    assert "onnxruntime" in (err.value.hint or "")
    assert not (build / "q.onnx").exists() and _files(build / "build") == []


@pytest.mark.parametrize(("agreement", "side"), [
    (Agreement(signal=np.inf, noise=np.inf, test_power=1.0), "float model"),
    (Agreement(signal=1.0, noise=np.nan, test_power=np.nan), "quantized model"),
])
def test_the_check_says_which_model_computed_nan_or_inf(agreement: Agreement, side: str) -> None:
    with pytest.raises(EdgeloopError, match=f"output 'out': the {side} computes NaN or inf"):
        check_measured({"fine": Agreement(signal=1.0, noise=0.01, dot=1.0, test_power=1.0), "out": agreement})
    check_measured({"fine": Agreement(signal=1.0, noise=0.01, dot=1.0, test_power=1.0)})  # finite: no error


def test_cli_refuses_nan_calibration_with_exit_2_and_one_line(build: Path) -> None:
    model = conv_net()
    container = make_container(model, build / "float.onnx")
    input_list = make_input_list(model, build, 2)
    _spoil(build / "image_1.raw", np.nan)
    run = subprocess.run([str(EDGELOOP), "quantize", "--container", str(container), "--input-list", str(input_list),
                          "--output", "q.onnx"], cwd=build, capture_output=True, text=True, timeout=300)
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.stderr.startswith(f"error: {input_list} line 2: {build / 'image_1.raw'}: input 'image' holds 1 NaN")
    assert len(run.stderr.strip().splitlines()) == 1 and "SQNR" not in run.stdout
    assert not (build / "q.onnx").exists()
