"""What a container holds, like `snpe-dlc-info`: layers with shapes, params and MACs, and totals.

Shapes come from the value_info that convert stores (full shape inference), so no engine runs.
Counting rules (docs/containers.md): params are the elements of weight initializers (floating or
quantized integer tensors; int64 shape/axis constants and Q/DQ scales/zero-points are not
params) credited to the node that uses them, through a DequantizeLinear in quantized containers;
MACs count Conv, ConvTranspose, Gemm and MatMul (one multiply-accumulate per weight use);
weight bytes are the stored bytes of all initializers; peak activation memory walks the nodes in
order, keeping each tensor alive from its producer to its last consumer.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper
from rich.table import Table

from deploy.container import ContainerMeta, load_container
from deploy.opsupport import RUNTIME_TABLES, OpSupport, check_graph

QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})
NOT_PARAMS = frozenset({TensorProto.INT64, TensorProto.BOOL, TensorProto.STRING})


@dataclass(frozen=True)
class Tensor:
    name: str
    shape: tuple[int, ...] | None  # None when unknown
    dtype: str

    @property
    def nbytes(self) -> int:
        return 0 if self.shape is None else math.prod(self.shape) * np.dtype(self.dtype).itemsize


@dataclass
class Layer:
    name: str
    op_type: str
    inputs: list[Tensor]  # activations only (weights are counted in params)
    outputs: list[Tensor]
    params: int
    macs: int
    runtimes: tuple[str, ...]
    reasons: dict[str, str] = field(default_factory=dict)  # runtime -> why its table's limits exclude this node

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "op_type": self.op_type, "params": self.params, "macs": self.macs,
                "inputs": [_tensor_json(t) for t in self.inputs], "outputs": [_tensor_json(t) for t in self.outputs],
                "runtimes": list(self.runtimes), "reasons": self.reasons}


@dataclass
class ContainerInfo:
    path: Path
    meta: ContainerMeta
    layers: list[Layer]
    params: int
    macs: int
    weight_bytes: int
    peak_activation_bytes: int
    opset: int
    ops: list[OpSupport] = field(default_factory=list)  # every node, Q/DQ included
    qdq_nodes: int = 0  # QuantizeLinear/DequantizeLinear nodes, not listed among the layers

    def to_json(self) -> dict[str, Any]:
        return {"path": str(self.path), "meta": self.meta.to_json(), "opset": self.opset,
                "totals": {"layers": len(self.layers), "qdq_nodes": self.qdq_nodes, "params": self.params,
                           "macs": self.macs,
                           "weight_bytes": self.weight_bytes, "peak_activation_bytes": self.peak_activation_bytes},
                "layers": [layer.to_json() for layer in self.layers]}


def _tensor_json(t: Tensor) -> dict[str, Any]:
    return {"name": t.name, "shape": None if t.shape is None else list(t.shape), "dtype": t.dtype}


def inspect_container(path: str | os.PathLike[str]) -> ContainerInfo:
    """Read a container and compute its layer table and totals."""
    model, meta = load_container(path)
    if len(model.graph.value_info) < len(model.graph.node) - len(model.graph.output):
        model = onnx.shape_inference.infer_shapes(model)  # quantized containers may not record shapes
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    tensors = _known_tensors(model)
    weights = _weight_sources(graph, inits)
    producers = {node.output[0]: node.input[0] for node in graph.node if node.op_type in QDQ_OPS}
    ops = check_graph(graph)
    layers = []
    for node, support in zip(graph.node, ops, strict=True):
        if node.op_type in QDQ_OPS:  # quantization plumbing: counted in qdq_nodes, not listed as layers
            continue
        acts = [tensors.get(n, Tensor(n, None, "float32")) for n in node.input if n and n not in weights]
        acts = [tensors.get(producers.get(t.name, t.name), t) for t in acts]  # a DQ output has its Q input's shape
        outs = [tensors.get(n, Tensor(n, None, "float32")) for n in node.output if n]
        params = sum(
            math.prod(inits[weights[n]].dims) for n in set(node.input) if n in weights
            and inits[weights[n]].data_type not in NOT_PARAMS)
        layers.append(Layer(node.name, node.op_type, acts, outs, params, _macs(node, tensors, inits, weights),
                            support.runtimes, support.reasons))
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    return ContainerInfo(
        path=Path(path), meta=meta, layers=layers,
        params=sum(layer.params for layer in layers), macs=sum(layer.macs for layer in layers),
        weight_bytes=sum(_stored_bytes(t) for t in graph.initializer),
        peak_activation_bytes=_peak_activation(graph, tensors, set(weights)), opset=opset, ops=ops,
        qdq_nodes=sum(node.op_type in QDQ_OPS for node in graph.node))


def _known_tensors(model: onnx.ModelProto) -> dict[str, Tensor]:
    result = {}
    for value in [*model.graph.input, *model.graph.value_info, *model.graph.output]:
        ttype = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in ttype.shape.dim]
        shape = tuple(dims) if ttype.HasField("shape") and min(dims, default=0) >= 0 else None
        result[value.name] = Tensor(value.name, shape, _dtype_name(ttype.elem_type))
    for init in model.graph.initializer:
        result[init.name] = Tensor(init.name, tuple(init.dims), _dtype_name(init.data_type))
    return result


def _dtype_name(elem_type: int) -> str:
    try:
        return np.dtype(helper.tensor_dtype_to_np_dtype(elem_type)).name
    except (KeyError, TypeError):
        return TensorProto.DataType.Name(elem_type).lower()


def _weight_sources(graph: onnx.GraphProto, inits: dict[str, TensorProto]) -> dict[str, str]:
    """Tensor name -> the initializer it is: initializers, and DequantizeLinear outputs of initializers."""
    sources = {name: name for name in inits}
    for node in graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in inits:
            sources[node.output[0]] = node.input[0]
    return sources


def _stored_bytes(tensor: TensorProto) -> int:
    if tensor.raw_data:
        return len(tensor.raw_data)
    try:
        itemsize = np.dtype(helper.tensor_dtype_to_np_dtype(tensor.data_type)).itemsize
    except (KeyError, TypeError):
        itemsize = 1
    return math.prod(tensor.dims) * itemsize


def _macs(node: onnx.NodeProto, tensors: dict[str, Tensor], inits: dict[str, TensorProto],
          weights: dict[str, str]) -> int:
    """Multiply-accumulates of the linear-algebra ops; other ops count 0 (as snpe-dlc-info's MACs)."""
    out = tensors.get(node.output[0])
    if out is None or out.shape is None or len(node.input) < 2:
        return 0
    w = tensors.get(weights.get(node.input[1], node.input[1]))
    a = tensors.get(node.input[0])
    if node.op_type == "Conv" and w is not None and w.shape:
        return math.prod(out.shape) * math.prod(w.shape[1:])
    if node.op_type == "ConvTranspose" and a is not None and a.shape and w is not None and w.shape:
        return math.prod(a.shape) * math.prod(w.shape[1:])
    if node.op_type in ("Gemm", "MatMul") and a is not None and a.shape:
        trans_a = any(attr.name == "transA" and attr.i for attr in node.attribute)
        inner = a.shape[-2] if trans_a else a.shape[-1]
        return math.prod(out.shape) * inner
    return 0


def _peak_activation(graph: onnx.GraphProto, tensors: dict[str, Tensor], weights: set[str]) -> int:
    """Largest sum of live activation bytes while running the nodes in their (topological) order."""
    end = len(graph.node)
    last_use: dict[str, int] = {v.name: end for v in graph.output}
    for i, node in enumerate(graph.node):
        for name in node.input:
            if name and name not in weights:
                last_use[name] = max(last_use.get(name, i), i)
    live = {v.name for v in graph.input if v.name not in weights}
    size = sum(tensors[n].nbytes for n in live if n in tensors)
    peak = size
    for i, node in enumerate(graph.node):
        for name in node.output:
            if name and name not in weights and name not in live:
                live.add(name)
                size += tensors[name].nbytes if name in tensors else 0
        peak = max(peak, size)
        for name in [n for n in live if last_use.get(n, i) <= i]:
            live.discard(name)
            size -= tensors[name].nbytes if name in tensors else 0
    return peak


def _shape_text(tensors: list[Tensor]) -> str:
    return " ".join("?" if t.shape is None else "x".join(map(str, t.shape)) for t in tensors)


def _count(n: int) -> str:
    return f"{n:,}"


def render_info(info: ContainerInfo) -> list[Any]:
    """rich renderables for the `info` task: summary, inputs/outputs, layers, encodings."""
    meta = info.meta
    summary = Table(title=f"{info.path.name}: {meta.kind} container", show_header=False)
    for key, value in [("tool version", meta.tool_version), ("source sha256", meta.source_sha256[:16]),
                       ("opset", info.opset), ("layers", len(info.layers)), ("Q/DQ nodes", info.qdq_nodes),
                       ("params", _count(info.params)),
                       ("MACs", _count(info.macs)), ("weight bytes", _count(info.weight_bytes)),
                       ("peak activation bytes", _count(info.peak_activation_bytes))]:
        summary.add_row(key, str(value))
    io = Table(title="inputs and outputs")
    for col in ("", "name", "shape", "dtype", "layout"):
        io.add_column(col)
    for kind, tensors in (("input", meta.inputs), ("output", meta.outputs)):
        for t in tensors:
            io.add_row(kind, t.name, "x".join(map(str, t.shape)), t.dtype, t.layout)
    layers = Table(title="layers")
    for col in ("#", "name", "op", "input shapes", "output shapes", "params", "MACs", "runtimes"):
        layers.add_column(col, justify="right" if col in ("#", "params", "MACs") else "left", overflow="fold")
    every = len(RUNTIME_TABLES)
    for i, layer in enumerate(info.layers):
        runtimes = "all" if len(layer.runtimes) == every else ",".join(layer.runtimes)
        layers.add_row(str(i), layer.name, layer.op_type, _shape_text(layer.inputs), _shape_text(layer.outputs),
                       _count(layer.params), _count(layer.macs), runtimes)
    out: list[Any] = [summary, io, layers]
    if meta.quantized:
        out += [render_encodings(meta), render_quantization(meta)]
    return out


def render_encodings(meta: ContainerMeta) -> Table:
    """The encodings of a quantized container (AIMET 1.0.0-style lists, or 0.6.1-style dicts)."""
    table = Table(title="encodings")
    for col in ("kind", "tensor", "dtype", "bw", "sym", "scale", "offset"):
        table.add_column(col, overflow="fold")
    encodings = meta.encodings or {}
    for kind in ("activation", "param"):
        entries = encodings.get(f"{kind}_encodings", [])
        if isinstance(entries, dict):  # 0.6.1: name -> [encoding per channel]
            entries = [{"name": name, **(encs[0] if encs else {}), "channels": len(encs)} for name, encs in
                       entries.items()]
        for enc in entries:
            scale = enc.get("scale")
            offset = enc.get("offset")
            table.add_row(kind, str(enc.get("name", "")), str(enc.get("dtype", "")),
                          str(enc.get("bw", enc.get("bitwidth", ""))),
                          str(enc.get("is_sym", enc.get("is_symmetric", ""))), _first(scale), _first(offset))
    return table


def render_quantization(meta: ContainerMeta) -> Table:
    """The quantizer's summary (options and accuracy figures), one row per key."""
    table = Table(title="quantization", show_header=False)
    for key, value in sorted((meta.quantization or {}).items()):
        table.add_row(key, str(value))
    return table


def _first(value: Any) -> str:
    """A per-channel list shows its first value and how many more follow."""
    if isinstance(value, list):
        return "" if not value else _number(value[0]) + (f" (+{len(value) - 1})" if len(value) > 1 else "")
    return "" if value is None else _number(value)


def _number(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)
