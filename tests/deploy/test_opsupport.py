"""The op tables against the SNPE layer table (SPEC, seeds/000): layers it marks as supported on
CPU, GPU and DSP/AIP alike must be in every runtime's table; ops they leave out on purpose say why."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from deploy.errors import EdgeloopError
from deploy.opsupport import RUNTIME_TABLES, check_graph, load_tables, node_support

# SNPE layer -> ONNX op: batch normalisation, concatenation, convolution and depthwise convolution,
# crop, cross-channel normalisation (an LRN option), deconvolution, element-wise SUM/PROD/MAX,
# flatten, fully connected. Dropout is removed by the converters (and by edgeloop's convert).
EVERYWHERE = ["BatchNormalization", "Concat", "Conv", "Slice", "LRN", "ConvTranspose", "Sum", "Add", "Mul", "Max",
              "Flatten", "Gemm"]


@pytest.mark.parametrize("runtime", sorted(RUNTIME_TABLES))
def test_layers_snpe_runs_on_every_runtime_are_in_each_table(runtime: str) -> None:
    table = load_tables()[RUNTIME_TABLES[runtime]]
    assert [op for op in EVERYWHERE if op not in table.ops] == []
    assert "Dropout" not in table.ops


CONTROL_FLOW = ("If", "Loop", "Scan")


def _if_node() -> onnx.NodeProto:
    branch = helper.make_graph([helper.make_node("Identity", ["x"], ["out"])], "b", [],
                               [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)])
    return helper.make_node("If", ["c"], ["y"], name="if", then_branch=branch, else_branch=branch)


@pytest.mark.parametrize("runtime", sorted(RUNTIME_TABLES))
def test_every_table_says_what_it_knows_of_control_flow(runtime: str) -> None:
    """If, Loop and Scan are listed, or said not to run with why (here: nothing documents them)."""
    table = load_tables()[RUNTIME_TABLES[runtime]]
    for op in CONTROL_FLOW:
        assert op in table.ops or table.unsupported.get(op), op


def test_an_if_says_why_no_runtime_runs_it() -> None:
    support = node_support(_if_node())
    assert support.runtimes == () and set(support.reasons) == set(RUNTIME_TABLES)
    assert all("not documented" in why for why in support.reasons.values())
    graph = helper.make_graph([_if_node()], "g", [helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    with pytest.raises(EdgeloopError) as err:
        check_graph(graph)
    message = str(err.value)
    assert message.startswith("node 'if' uses op If, which no runtime supports (cpu, gpu, gpu_fp16, dsp, aip: ")
    assert message.count("not documented") == 1  # one reason for all, said once


def test_an_op_both_listed_and_unsupported_is_refused(tmp_path: Path) -> None:
    (tmp_path / "cpu.yaml").write_text("runtime: cpu\nops: [Conv, If]\nunsupported: {If: no control flow}\n")
    with pytest.raises(EdgeloopError, match="'If' is both in 'ops' and in 'unsupported'"):
        load_tables(tmp_path)


def test_an_unsupported_entry_must_say_why(tmp_path: Path) -> None:
    (tmp_path / "cpu.yaml").write_text("runtime: cpu\nops: [Conv]\nunsupported: {If: no}\n")  # YAML reads no as false
    with pytest.raises(EdgeloopError, match="'unsupported' must map op types to why the runtime does not run them"):
        load_tables(tmp_path)
