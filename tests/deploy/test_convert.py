"""convert: folding keeps outputs, overrides and extraction work, a cache hit does no work, bad input is one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import deploy.convert as convert_module
from deploy.container import load_container
from deploy.convert import convert, parse_input_dim
from deploy.errors import EdgeloopError
from deploy.fsutil import sha256_file
from deploy.opsupport import unsupported_by_runtime
from tests.deploy.models import (
    ARCHITECTURES,
    conv_net,
    exported_style_net,
    random_feeds,
    save,
    transformer_block,
    unsupported_op_net,
    with_batch,
)

EDGELOOP = Path(sys.executable).parent / "edgeloop"

pytestmark = pytest.mark.usefixtures("build_root")


def run_unoptimised(model: onnx.ModelProto | Path, feeds: dict[str, np.ndarray],
                    outputs: list[str] | None = None) -> list[np.ndarray]:
    """onnxruntime with its own fusions off, so the source graph is executed as written."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    source = str(model) if isinstance(model, Path) else model.SerializeToString()
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"]).run(outputs, feeds)


def with_output(model: onnx.ModelProto, tensor: str) -> onnx.ModelProto:
    """A copy that also exposes the intermediate `tensor` as a graph output."""
    inferred = onnx.shape_inference.infer_shapes(model)
    value = next(v for v in inferred.graph.value_info if v.name == tensor)
    inferred.graph.output.append(value)
    return inferred


def artifacts(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_folded_container_gives_the_source_outputs(arch: str, tmp_path: Path) -> None:
    source_model = ARCHITECTURES[arch]()
    source = save(source_model, tmp_path / f"{arch}.onnx")
    result = convert(source, tmp_path / "out" / "c.onnx")
    assert result.path == tmp_path / "out" / "c.onnx" and not result.cached
    container, meta = load_container(result.path)
    assert meta.kind == "float" and meta.source_sha256 == sha256_file(source)
    assert [t.name for t in meta.outputs] == [v.name for v in source_model.graph.output]
    feeds = random_feeds(source_model, seed=7)
    for want, got in zip(run_unoptimised(source_model, feeds), run_unoptimised(result.path, feeds), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    for tensor, value in zip(meta.outputs, run_unoptimised(result.path, feeds), strict=True):
        assert tensor.shape == value.shape
    assert "BatchNormalization" not in {n.op_type for n in container.graph.node}
    assert all(node.name for node in container.graph.node)


def test_batchnorm_folding_removes_nodes_and_records_options(tmp_path: Path) -> None:
    source_model = conv_net()
    result = convert(save(source_model, tmp_path / "m.onnx"))
    bn_count = sum(n.op_type == "BatchNormalization" for n in source_model.graph.node)
    assert bn_count == 3
    assert len(result.ops) == len(source_model.graph.node) - bn_count
    assert result.meta.options["out_nodes"] == [] and "fuse_bn_into_conv" in result.meta.options["passes"]
    assert result.meta.inputs[0].layout == "NCHW" and result.meta.outputs[0].layout == "NC"


def test_batchnorms_fold_in_one_optimiser_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = convert_module.onnxoptimizer.optimize

    def counting(*args: object, **kwargs: object) -> onnx.ModelProto:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(convert_module.onnxoptimizer, "optimize", counting)
    result = convert(save(conv_net(), tmp_path / "m.onnx"), cache=False, output=tmp_path / "c.onnx")
    assert len(calls) == 1  # each call serialises the whole model (bench/README.md)
    assert "BatchNormalization" not in {op.op_type for op in result.ops}


def test_shared_conv_weights_and_chained_batchnorms_keep_the_numbers(tmp_path: Path) -> None:
    """Two Convs share one weight tensor (each folds into its own copy); a BN after a BN folds too."""
    rng = np.random.default_rng(5)
    inits = [numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")]
    nodes = [helper.make_node("Conv", ["x", "w"], ["a"], name="conv_a", pads=[1] * 4),
             helper.make_node("Conv", ["x", "w"], ["b"], name="conv_b", pads=[1] * 4)]
    for i, (src, dst) in enumerate([("a", "a1"), ("a1", "a2"), ("b", "b1")]):
        params = [rng.uniform(0.5, 1.5, 4), rng.uniform(-0.3, 0.3, 4), rng.uniform(-0.2, 0.2, 4),
                  rng.uniform(0.5, 2.0, 4)]
        names = [f"bn{i}_{k}" for k in range(4)]
        inits += [numpy_helper.from_array(v.astype(np.float32), n) for v, n in zip(params, names, strict=True)]
        nodes.append(helper.make_node("BatchNormalization", [src, *names], [dst], name=f"bn{i}", epsilon=1e-3))
    nodes.append(helper.make_node("Add", ["a2", "b1"], ["y"], name="add"))
    graph = helper.make_graph(nodes, "shared", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])], inits)
    source_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    source_model.ir_version = 8
    result = convert(save(source_model, tmp_path / "m.onnx"), tmp_path / "c.onnx", cache=False)
    assert [op.op_type for op in result.ops].count("BatchNormalization") == 0
    feeds = random_feeds(source_model, seed=1)
    np.testing.assert_allclose(run_unoptimised(result.path, feeds)[0], run_unoptimised(source_model, feeds)[0],
                               rtol=1e-5, atol=1e-5)


def test_per_element_batchnorm_of_old_opsets_is_one_clear_error(tmp_path: Path) -> None:
    """Opset 8's BatchNormalization with spatial=0 has (C, H, W) parameters: no per-channel fold applies,
    and onnxoptimizer's fuse_bn_into_conv asserts on it, which must reach the user as one line."""
    rng = np.random.default_rng(9)
    inits = [numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")]
    names = ["scale", "bias", "mean", "var"]
    inits += [numpy_helper.from_array(rng.uniform(0.5, 1.5, (4, 8, 8)).astype(np.float32), n) for n in names]
    nodes = [helper.make_node("Conv", ["x", "w"], ["a"], name="conv", pads=[1] * 4),
             helper.make_node("BatchNormalization", ["a", *names], ["y"], name="bn", spatial=0)]
    graph = helper.make_graph(nodes, "old", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])], inits)
    source_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 8)])
    source_model.ir_version = 4
    with pytest.raises(EdgeloopError, match=r"onnxoptimizer: fuse_bn_into_conv\.h:\d+: modify_conv") as err:
        convert(save(source_model, tmp_path / "m.onnx"), tmp_path / "c.onnx", cache=False)
    assert "opset" in err.value.hint
    assert not (tmp_path / "c.onnx").exists()


def test_dynamic_batch_needs_input_dim_then_becomes_concrete(tmp_path: Path) -> None:
    source_model = with_batch(conv_net(), "N")
    source = save(source_model, tmp_path / "dyn.onnx")
    with pytest.raises(EdgeloopError, match=r"input 'image' has dynamic dims \['N', 3, 16, 16\]") as err:
        convert(source)
    assert "--input-dim image=1,3,16,16" in err.value.hint
    result = convert(source, input_dims={"image": [2, 3, 16, 16]})
    assert result.meta.inputs[0].shape == (2, 3, 16, 16) and result.meta.outputs[0].shape == (2, 10)
    feeds = {"image": np.random.default_rng(3).standard_normal((2, 3, 16, 16)).astype(np.float32)}
    np.testing.assert_allclose(run_unoptimised(result.path, feeds)[0], run_unoptimised(source_model, feeds)[0],
                               rtol=1e-5, atol=1e-6)


def test_exporter_debris_is_folded_away(tmp_path: Path) -> None:
    source_model = exported_style_net()
    result = convert(save(source_model, tmp_path / "e.onnx"), input_dims={"x": [2, 4, 6]})
    container, meta = load_container(result.path)
    assert [n.op_type for n in container.graph.node] == ["Reshape", "MatMul", "Mul"]
    assert [(t.name, t.shape) for t in meta.outputs] == [("y", (2, 5))]  # the Dropout's output name is kept
    feeds = {"x": np.random.default_rng(4).standard_normal((2, 4, 6)).astype(np.float32)}
    np.testing.assert_allclose(run_unoptimised(result.path, feeds)[0], run_unoptimised(source_model, feeds)[0],
                               rtol=1e-6, atol=1e-6)


def test_folding_does_not_store_a_large_broadcast(tmp_path: Path) -> None:
    """An Expand of a scalar to 4 MiB stays a node; the small Mul of constants beside it is folded."""
    inits = [numpy_helper.from_array(np.array([0.5], np.float32), "half"),
             numpy_helper.from_array(np.array([1024, 1024], np.int64), "big_shape"),
             numpy_helper.from_array(np.array([2.0], np.float32), "two")]
    nodes = [helper.make_node("Expand", ["half", "big_shape"], ["big"], name="expand"),
             helper.make_node("Mul", ["half", "two"], ["one"], name="one"),
             helper.make_node("Add", ["x", "big"], ["plus"], name="plus"),
             helper.make_node("Mul", ["plus", "one"], ["y"], name="y")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1024, 1024])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1024, 1024])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    result = convert(save(model, tmp_path / "e.onnx"))
    container, _ = load_container(result.path)
    assert [n.op_type for n in container.graph.node] == ["Expand", "Add", "Mul"]
    assert result.path.stat().st_size < 100_000
    feeds = {"x": np.random.default_rng(0).standard_normal((1024, 1024)).astype(np.float32)}
    np.testing.assert_allclose(run_unoptimised(result.path, feeds)[0], feeds["x"] + 0.5, rtol=1e-6)


def test_input_dim_can_resize_a_fully_convolutional_input(tmp_path: Path) -> None:
    result = convert(save(conv_net(), tmp_path / "m.onnx"), input_dims={"image": [1, 3, 32, 32]})
    assert result.meta.inputs[0].shape == (1, 3, 32, 32)
    container, _ = load_container(result.path)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in container.graph.value_info}
    assert shapes["pool2"] == [1, 8, 16, 16]


def test_out_node_by_tensor_or_node_name_extracts_the_subgraph(tmp_path: Path) -> None:
    source_model = conv_net()
    source = save(source_model, tmp_path / "m.onnx")
    feeds = random_feeds(source_model, seed=1)
    by_tensor = convert(source, out_nodes=["relu2"])
    assert [t.name for t in by_tensor.meta.outputs] == ["relu2"]
    assert by_tensor.meta.outputs[0].shape == (1, 8, 16, 16)
    assert {op.op_type for op in by_tensor.ops} == {"Conv", "Relu"}
    want = run_unoptimised(with_output(source_model, "relu2"), feeds, ["relu2"])[0]
    np.testing.assert_allclose(run_unoptimised(by_tensor.path, feeds)[0], want, rtol=1e-5, atol=1e-5)
    by_node = convert(source, out_nodes=["conv1"])  # node 'conv1' produces tensor 'conv1_out'
    assert [t.name for t in by_node.meta.outputs] == ["conv1_out"] and len(by_node.ops) == 1
    twice = convert(source, out_nodes=["conv1", "conv1_out", "relu2", "relu2"])  # one output per tensor
    assert [t.name for t in twice.meta.outputs] == ["conv1_out", "relu2"]
    with pytest.raises(EdgeloopError, match="--out-node 'image' is an input of the model"):
        convert(source, out_nodes=["image"])


def test_out_node_keeps_only_the_inputs_it_needs(tmp_path: Path) -> None:
    source = save(ARCHITECTURES["branchy_net"](), tmp_path / "b.onnx")
    left_only = convert(source, out_nodes=["relu_a"])
    assert [t.name for t in left_only.meta.inputs] == ["left"]
    both = convert(source, out_nodes=["pooled"])
    assert [t.name for t in both.meta.inputs] == ["left", "right"]


def test_reconversion_is_a_cache_hit_that_builds_nothing(tmp_path: Path, build_root: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    source = save(conv_net(), tmp_path / "m.onnx")
    first = convert(source)
    mtime = first.path.stat().st_mtime_ns

    def must_not_run(*args: object) -> None:
        raise AssertionError("the conversion ran again")

    monkeypatch.setattr(convert_module, "_convert_to", must_not_run)
    again = convert(source, tmp_path / "copy.onnx")
    assert again.cached and first.path.stat().st_mtime_ns == mtime
    assert sha256_file(again.path) == sha256_file(first.path)
    with pytest.raises(AssertionError):  # other options are another artifact
        convert(source, out_nodes=["relu1"])


def test_ops_unsupported_on_some_runtimes_are_reported_per_node(tmp_path: Path) -> None:
    result = convert(save(transformer_block(), tmp_path / "t.onnx"))
    missing = unsupported_by_runtime(result.ops)
    assert set(missing) == {"aip"}
    assert {op.op_type for op in missing["aip"]} == {"MatMul", "LayerNormalization"}
    ln = next(op for op in result.ops if op.name == "ln1")
    assert ln.runtimes == ("cpu", "gpu", "gpu_fp16", "dsp")


def test_attribute_limits_exclude_a_runtime_with_the_reason(tmp_path: Path) -> None:
    model = ARCHITECTURES["branchy_net"]()
    nearest = convert(save(model, tmp_path / "nearest.onnx"))
    assert next(op for op in nearest.ops if op.name == "up").supported_on("aip")
    resize = next(n for n in model.graph.node if n.op_type == "Resize")
    next(a for a in resize.attribute if a.name == "mode").s = b"linear"
    linear = next(op for op in convert(save(model, tmp_path / "linear.onnx")).ops if op.name == "up")
    assert linear.runtimes == ("cpu", "gpu", "gpu_fp16", "dsp")
    assert linear.reasons == {"aip": "mode='linear' (supported: nearest)"}


def _bad_sources(tmp_path: Path) -> dict[str, tuple[Path, dict, str]]:
    good = save(conv_net(), tmp_path / "good.onnx")
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    return {
        "missing file": (tmp_path / "absent.onnx", {}, r"absent.onnx: no such file"),
        "corrupt": (corrupt, {}, r"corrupt.onnx: not a valid ONNX model"),
        "truncated": (truncated, {}, r"truncated.onnx: not a valid ONNX model"),
        "unknown input": (good, {"input_dims": {"imgae": [1, 3, 16, 16]}},
                          r"--input-dim names unknown input 'imgae'"),
        "wrong rank": (good, {"input_dims": {"image": [1, 3, 16]}},
                       r"--input-dim image: 3 dims given, the input has rank 4"),
        "unknown out-node": (good, {"out_nodes": ["rleu2"]}, r"--out-node 'rleu2' is not a node or tensor"),
        "unsupported op": (save(unsupported_op_net(), tmp_path / "det.onnx"), {},
                           r"node 'det' uses op Det, which no runtime supports"),
    }


@pytest.mark.parametrize("case", ["missing file", "corrupt", "truncated", "unknown input", "wrong rank",
                                  "unknown out-node", "unsupported op"])
def test_bad_input_is_one_clear_line_and_leaves_nothing(case: str, tmp_path: Path, build_root: Path) -> None:
    source, kwargs, message = _bad_sources(tmp_path)[case]
    out = tmp_path / "out"
    with pytest.raises(EdgeloopError, match=message) as err:
        convert(source, out / "c.onnx", **kwargs)
    assert "\n" not in str(err.value)
    assert artifacts(out) == [] and artifacts(build_root) == []


def test_unknown_out_node_hint_lists_the_nearest_names(tmp_path: Path) -> None:
    with pytest.raises(EdgeloopError) as err:
        convert(save(conv_net(), tmp_path / "m.onnx"), out_nodes=["rleu2"])
    assert err.value.hint.startswith("did you mean 'relu2'?")


@pytest.mark.parametrize("text", ["image", "image=", "=1,2", "image=1,x", "image=1,0,3"])
def test_parse_input_dim_rejects_malformed_text(text: str) -> None:
    with pytest.raises(EdgeloopError, match="bad --input-dim"):
        parse_input_dim(text)
    assert parse_input_dim("a=b=1,3") == ("a=b", [1, 3])


def test_cli_converts_and_fails_cleanly(tmp_path: Path, build_root: Path) -> None:
    source = save(with_batch(transformer_block(), "batch"), tmp_path / "t.onnx")
    env_cwd = {"cwd": tmp_path, "capture_output": True, "text": True}
    ok = subprocess.run([str(EDGELOOP), "convert", "--model", str(source), "--output", "c.onnx",
                         "--input-dim", "tokens=1,8,16", "--out-node", "res1"], **env_cwd)
    assert ok.returncode == 0, ok.stderr
    assert "converted: c.onnx" in ok.stdout and "aip" in ok.stdout  # the per-node op-support table
    _, meta = load_container(tmp_path / "c.onnx")
    assert [t.name for t in meta.outputs] == ["res1"]
    bad = subprocess.run([str(EDGELOOP), "convert", "--model", str(source), "--output", "d.onnx"], **env_cwd)
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: input 'tokens' has dynamic dims") and "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and not (tmp_path / "d.onnx").exists()


TORCH_MISSING = """
import sys
sys.modules["torch"] = None  # import torch now raises ImportError, as on a machine without it
from pathlib import Path
from deploy.convert import convert
from deploy.errors import EdgeloopError
try:
    convert(Path(sys.argv[1]), input_dims={"x": [1, 4]})
except EdgeloopError as exc:
    print(exc)
"""


def test_torchscript_without_torch_is_a_clear_error(tmp_path: Path) -> None:
    model = tmp_path / "m.pt"
    model.write_bytes(b"not needed: torch is checked first")
    out = subprocess.run([sys.executable, "-c", TORCH_MISSING, str(model)], capture_output=True, text=True,
                         env={"EDGELOOP_BUILD": str(tmp_path / "build"), "PATH": "/usr/bin:/bin"})
    assert out.stdout.strip() == "converting a TorchScript model needs PyTorch (pip install torch==2.13.0 (CPU))"
    assert not (tmp_path / "build").exists() or artifacts(tmp_path / "build") == []


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.script/save in the test itself
def test_torchscript_converts_to_the_same_numbers(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                              torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 5)).eval()
    with torch.no_grad():
        net[1].running_mean.uniform_(-0.5, 0.5)
        net[1].running_var.uniform_(0.5, 2.0)
    path = tmp_path / "net.pt"
    torch.jit.save(torch.jit.script(net), str(path))
    with pytest.raises(EdgeloopError, match="a TorchScript model has no input shapes"):
        convert(path)
    result = convert(path, input_dims={"pixels": [1, 3, 6, 6]})
    assert result.meta.options["source_format"] == "torchscript"
    assert [t.name for t in result.meta.inputs] == ["pixels"] and result.meta.outputs[0].shape == (1, 5)
    x = np.random.default_rng(5).standard_normal((1, 3, 6, 6)).astype(np.float32)
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(run_unoptimised(result.path, {"pixels": x})[0], want, rtol=1e-4, atol=1e-5)
    with pytest.raises(EdgeloopError, match="not a TorchScript model"):
        bogus = tmp_path / "bogus.pt"
        bogus.write_bytes(b"\x00" * 64)
        convert(bogus, input_dims={"pixels": [1, 3, 6, 6]})


def test_the_dynamic_dims_hint_never_guesses_a_spatial_size(tmp_path: Path) -> None:
    """It suggested `image=1,3,1,1` for [N, 3, H, W]: a size of 1 that the model would then be built for."""
    source_model = with_batch(conv_net(), "N")
    for dim, symbol in zip(source_model.graph.input[0].type.tensor_type.shape.dim[2:], ("h", "w"), strict=True):
        dim.Clear()
        dim.dim_param = symbol
    with pytest.raises(EdgeloopError) as err:
        convert(save(source_model, tmp_path / "dyn.onnx"))
    assert err.value.hint == "give them with --input-dim image=1,3,H,W, with the sizes you deploy with for H, W"
