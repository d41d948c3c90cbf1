"""convert refuses, in one line and before writing anything, models onnx reads but nothing can run:
an opset newer than the installed onnx/onnxruntime support, or a graph without outputs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import onnx
import onnxruntime as ort
import pytest

import deploy.convert as convert_module
from deploy.convert import convert, max_opset
from deploy.errors import EdgeloopError
from tests.deploy.models import conv_net, random_feeds, save

EDGELOOP = Path(sys.executable).parent / "edgeloop"
pytestmark = pytest.mark.usefixtures("build_root")


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def with_opset(model: onnx.ModelProto, version: int) -> onnx.ModelProto:
    model = onnx.ModelProto.FromString(model.SerializeToString())
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx"):
            opset.version = version
    return model


def without_outputs(model: onnx.ModelProto) -> onnx.ModelProto:
    model = onnx.ModelProto.FromString(model.SerializeToString())
    del model.graph.output[:]
    return model


def _runs(version: int) -> bool:
    """Whether onnxruntime runs a real model stamped with `version`."""
    model = with_opset(conv_net(), version)
    try:
        ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
            None, random_feeds(model))
    except Exception:  # onnxruntime's Fail: the opset is beyond it
        return False
    return True


def test_max_opset_is_the_newest_both_onnx_and_onnxruntime_take() -> None:
    newest = max_opset()
    assert newest <= onnx.defs.onnx_opset_version()
    assert _runs(newest)
    assert newest == onnx.defs.onnx_opset_version() or not _runs(newest + 1)


@pytest.mark.parametrize("version", [99, "newest + 1"])
def test_an_opset_beyond_the_installed_ones_is_one_line_and_leaves_nothing(
        version: int | str, tmp_path: Path, build_root: Path) -> None:
    opset = 99 if version == 99 else max_opset() + 1
    source = save(with_opset(conv_net(), opset), tmp_path / "m.onnx")
    with pytest.raises(EdgeloopError) as err:
        convert(source, tmp_path / "out" / "c.onnx")
    assert str(err.value).startswith(f"{source}: opset {opset} is newer than the newest this installation supports "
                                     f"({max_opset()}:")
    assert f"onnx {onnx.__version__}" in err.value.message and f"onnxruntime {ort.__version__}" in err.value.message
    assert err.value.hint == (f"re-export the model with an opset of at most {max_opset()}, e.g. "
                              f"torch.onnx.export(..., opset_version={min(max_opset(), convert_module.TORCH_OPSET)})")
    assert "\n" not in str(err.value)
    assert _files(tmp_path / "out") == [] and _files(build_root) == []


def test_the_newest_supported_opset_still_converts(tmp_path: Path) -> None:
    source = save(with_opset(conv_net(), max_opset()), tmp_path / "m.onnx")
    result = convert(source, tmp_path / "c.onnx")
    assert [t.name for t in result.meta.outputs] == ["probs"]


def test_a_model_without_outputs_is_refused(tmp_path: Path, build_root: Path) -> None:
    source = save(without_outputs(conv_net()), tmp_path / "m.onnx")
    with pytest.raises(EdgeloopError, match=r"m\.onnx: the model has no outputs") as err:
        convert(source, tmp_path / "out" / "c.onnx")
    assert "--out-node" in (err.value.hint or "")
    assert _files(tmp_path / "out") == [] and _files(build_root) == []


def test_a_model_without_outputs_converts_with_out_nodes(tmp_path: Path) -> None:
    """The tensors to keep can still be named: --out-node gives the container its outputs."""
    source = save(without_outputs(conv_net()), tmp_path / "m.onnx")
    assert [t.name for t in convert(source, out_nodes=["logits"]).meta.outputs] == ["logits"]


def test_the_check_runs_before_any_conversion_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = save(with_opset(conv_net(), 99), tmp_path / "m.onnx")
    monkeypatch.setattr(convert_module, "_infer_shapes", lambda model: pytest.fail("shape inference ran"))
    with pytest.raises(EdgeloopError, match="opset 99"):
        convert(source)


def test_cli_refuses_opset_99_with_exit_2_and_one_line(tmp_path: Path) -> None:
    source = save(with_opset(conv_net(), 99), tmp_path / "m.onnx")
    run = subprocess.run([str(EDGELOOP), "convert", "--model", str(source), "--output", "c.onnx"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2, run.stderr
    assert run.stderr.startswith(f"error: {source}: opset 99 is newer than") and "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and not (tmp_path / "c.onnx").exists()


@pytest.mark.parametrize(("dims", "words"), [
    ("99999999999999999999,1,8,8", "dims must be from 1 to 2147483647"),
    ("9223372036854775807,1,8,8", "dims must be from 1 to 2147483647"),
    ("65536,65536,1,1", "would hold more than 2 GiB"),
])
def test_input_dims_beyond_any_runtime_are_one_line(tmp_path: Path, dims: str, words: str) -> None:
    source = save(conv_net(), tmp_path / "m.onnx")
    name = conv_net().graph.input[0].name
    result = subprocess.run([str(EDGELOOP), "convert", "-m", str(source), "-i", f"{name}={dims}", "-o",
                             str(tmp_path / "c.onnx")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"error: input dims {name}={dims}: ") and words in result.stderr
    assert not (tmp_path / "c.onnx").exists()


def test_an_empty_model_path_is_named_so(tmp_path: Path) -> None:
    result = subprocess.run([str(EDGELOOP), "convert", "--model", ""], capture_output=True, text=True, timeout=120,
                            cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.startswith("error: the model path is empty"), result.stderr
