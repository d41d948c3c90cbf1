"""convert on a graph shaped like Silero VAD's: Ifs on conditions computed from shapes, whose branches
read outer-scope values and hold Ifs of their own. They are inlined once the shapes are concrete,
the container computes what the source does, and a pass that breaks a subgraph is not --input-dim's fault."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import deploy.convert as convert_module
from deploy.container import load_container
from deploy.convert import convert
from deploy.errors import EdgeloopError
from deploy.subgraphs import walk

pytestmark = pytest.mark.usefixtures("build_root")


def _value(name: str, shape: list | None) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def vad_like(constant_condition: bool = False) -> onnx.ModelProto:
    """`y = (relu(x @ w) if t.ndim == 2 else -(x @ w)) + b if x.shape[0] == 1 else sigmoid(x)`, written
    the way torch exports it: the outer If's condition from Shape/Gather (or an initializer), the inner
    If's from Shape/Size of a tensor of the outer branch, which the inner branches read from the outer
    scope."""
    inner_then = helper.make_graph([helper.make_node("Relu", ["t"], ["u1"], name="inner/relu")], "inner_then", [],
                                   [_value("u1", None)])
    inner_else = helper.make_graph([helper.make_node("Neg", ["t"], ["u2"], name="inner/neg")], "inner_else", [],
                                   [_value("u2", None)])
    then = helper.make_graph([
        helper.make_node("MatMul", ["x", "w"], ["t"], name="then/matmul"),
        helper.make_node("Shape", ["t"], ["t_shape"], name="then/shape"),
        helper.make_node("Size", ["t_shape"], ["t_rank"], name="then/size"),
        helper.make_node("Equal", ["t_rank", "two"], ["is_2d"], name="then/equal"),
        helper.make_node("If", ["is_2d"], ["u"], name="then/if", then_branch=inner_then, else_branch=inner_else),
        helper.make_node("Add", ["u", "b"], ["y1"], name="then/add")], "then", [], [_value("y1", None)])
    otherwise = helper.make_graph([helper.make_node("Sigmoid", ["x"], ["y2"], name="else/sigmoid")], "else", [],
                                  [_value("y2", None)])
    nodes = [helper.make_node("Shape", ["x"], ["x_shape"], name="shape"),
             helper.make_node("Gather", ["x_shape", "zero"], ["batch"], name="gather", axis=0),
             helper.make_node("Equal", ["batch", "one"], ["single"], name="equal"),
             helper.make_node("If", ["single"], ["y"], name="if", then_branch=then, else_branch=otherwise)]
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(np.array(v, np.int64), n) for n, v in (("zero", 0), ("one", 1), ("two", 2))]
    if constant_condition:
        del nodes[:3]
        inits.append(numpy_helper.from_array(np.array(True), "single"))
    inits += [numpy_helper.from_array(rng.standard_normal((4, 4)).astype(np.float32), "w"),
              numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "b")]
    graph = helper.make_graph(nodes, "vad_like", [_value("x", ["batch", 4])], [_value("y", ["batch", 4])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    return model


def _run(model: onnx.ModelProto | Path, x: np.ndarray) -> np.ndarray:
    source = str(model) if isinstance(model, Path) else model.SerializeToString()
    return ort.InferenceSession(source, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


def test_shape_conditioned_ifs_are_inlined_and_keep_the_outputs(tmp_path: Path) -> None:
    source = tmp_path / "vad_like.onnx"
    onnx.save(vad_like(), source)
    result = convert(source, tmp_path / "c.onnx", input_dims={"x": [1, 4]})
    container, meta = load_container(result.path)
    assert [n.op_type for n in container.graph.node] == ["MatMul", "Relu", "Add"]
    assert {n.name for n in container.graph.node} == {"then/matmul", "inner/relu", "then/add"}
    assert result.notes == [] and meta.outputs[0].shape == (1, 4)
    x = np.random.default_rng(1).standard_normal((1, 4)).astype(np.float32)
    np.testing.assert_allclose(_run(result.path, x), _run(vad_like(), x), rtol=1e-6, atol=1e-6)


def test_a_pass_that_breaks_a_subgraph_is_skipped_with_a_note(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """onnxoptimizer's eliminate_if_with_const_cond renames the inlined branch's tensors but not the
    inner Ifs' reads of them; convert used to fail on it blaming --input-dim. An initializer condition
    reaches the pass before convert's own inlining."""
    monkeypatch.setattr(convert_module, "PASSES", [*convert_module.PASSES, "eliminate_if_with_const_cond"])
    source = tmp_path / "vad_like.onnx"
    onnx.save(vad_like(constant_condition=True), source)
    result = convert(source, tmp_path / "c.onnx", input_dims={"x": [1, 4]}, cache=False)
    assert len(result.notes) == 1 and "onnxoptimizer's passes broke the graph" in result.notes[0]
    assert "If" not in {node.op_type for _, node in walk(load_container(result.path)[0].graph)}
    x = np.random.default_rng(2).standard_normal((1, 4)).astype(np.float32)
    np.testing.assert_allclose(_run(result.path, x), _run(vad_like(), x), rtol=1e-6, atol=1e-6)


def test_a_graph_broken_by_normalisation_does_not_blame_input_dim(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    def drop_a_node(model: onnx.ModelProto) -> int:  # a folding bug: a node removed, its readers left
        del model.graph.node[0]
        return 0

    monkeypatch.setattr(convert_module, "_fold_constants", drop_a_node)
    source = tmp_path / "vad_like.onnx"
    onnx.save(vad_like(), source)
    with pytest.raises(EdgeloopError) as err:
        convert(source, tmp_path / "c.onnx", input_dims={"x": [1, 4]}, cache=False)
    assert str(err.value).startswith("graph normalisation left a graph onnx refuses")
    assert "--input-dim" not in str(err.value)


def test_an_if_on_a_runtime_value_is_kept_and_refused_by_the_op_check(tmp_path: Path) -> None:
    """An If on an input's value cannot be inlined, and no runtime table lists If."""
    model = vad_like()
    model.graph.input.append(helper.make_tensor_value_info("single", TensorProto.BOOL, []))
    del model.graph.node[:3]
    source = tmp_path / "runtime_if.onnx"
    onnx.save(model, source)
    with pytest.raises(EdgeloopError, match="node 'if' uses op If, which no runtime supports"):
        convert(source, tmp_path / "c.onnx", input_dims={"x": [1, 4]})
