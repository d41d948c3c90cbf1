"""The QDQ writer: a float graph plus a Plan -> an ONNX graph that onnxruntime runs as the
quantized model.

Weights are stored as integers behind DequantizeLinear; every int activation gets a
QuantizeLinear/DequantizeLinear pair right after its producer (the tensor keeps its name, so
graph outputs, encodings and the debugger all use the float graph's names), except after an op
that only moves values of an input with the same encoding (rules.py): its values are on that grid
already (in the main graph only, see _Scope.rewrite). Float islands keep float tensors; where an
int node reads one, a Q/DQ "convert" is inserted for that reader only. Bodies of If/Loop/Scan get
their pairs inside, after the producer, as their own inputs do; weights stored as integers (a
body's too), scales and zero points live in the main graph, which every body can read.
The opset is raised only when needed: 13 for per-channel `axis`, 21 for 16-bit or packed 4-bit
types; no attribute the resulting opset lacks is ever written.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper, version_converter

from deploy.errors import EdgeloopError
from deploy.quantize.encodings import Encoding, quantize_array
from deploy.quantize.plan import Plan
from deploy.quantize.rules import rule
from deploy.subgraphs import bodies, scopes, walk

PER_CHANNEL_OPSET = 13
WIDE_TYPES_OPSET = 21
WIDE_TYPES_IR = 10


def required_opset(plan: Plan, pack_4bit: bool) -> int:
    encs = [*plan.activations.values(), *plan.conversions.values(), *plan.params.values()]
    ints = [e for e in encs if not e.is_float]
    if any(e.bw == 16 for e in ints) or (pack_4bit and any(e.bw == 4 for e in plan.params.values())):
        return WIDE_TYPES_OPSET
    if any(e.axis is not None for e in plan.params.values()):
        return PER_CHANNEL_OPSET
    return 10


def _opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)


def upgrade_opset(model: onnx.ModelProto, version: int) -> onnx.ModelProto:
    if _opset(model) >= version:
        return model
    try:
        upgraded = version_converter.convert_version(model, version)
    except Exception as exc:  # the converter raises plain RuntimeErrors naming the op
        raise EdgeloopError(f"cannot upgrade the model to opset {version} for 16-bit/4-bit types ({exc})",
                            "use 8-bit activations and unpacked weights, or re-export at opset 21") from None
    if version >= WIDE_TYPES_OPSET:
        upgraded.ir_version = max(upgraded.ir_version, WIDE_TYPES_IR)
    return upgraded


class _Writer:
    def __init__(self, model: onnx.ModelProto, pack_4bit: bool) -> None:
        self.model = model
        self.pack_4bit = pack_4bit
        self.names = {n for _, node in walk(model.graph) for n in (*node.input, *node.output)}
        self.names |= {v.name for graph in scopes(model.graph) for v in (*graph.initializer, *graph.input)}
        self.inits: list[onnx.TensorProto] = []

    def fresh(self, base: str) -> str:
        name, i = base, 1
        while name in self.names:
            name, i = f"{base}_{i}", i + 1
        self.names.add(name)
        return name

    def qparams(self, tensor: str, enc: Encoding) -> tuple[str, str]:
        scale = self.fresh(f"{tensor}_scale")
        zero_point = self.fresh(f"{tensor}_zero_point")
        self.inits.append(numpy_helper.from_array(np.asarray(enc.scale, dtype=np.float32), scale))
        if self.packed(enc):
            zp = enc.zero_point().astype(np.int64)
            self.inits.append(helper.make_tensor(zero_point, self.int4_type(enc), list(zp.shape),
                                                 zp.reshape(-1).tolist()))
        else:
            self.inits.append(numpy_helper.from_array(enc.zero_point(), zero_point))
        return scale, zero_point

    def packed(self, enc: Encoding) -> bool:
        return self.pack_4bit and enc.bw == 4

    @staticmethod
    def int4_type(enc: Encoding) -> int:
        return TensorProto.INT4 if enc.symmetric else TensorProto.UINT4

    def dequantized_param(self, name: str, values: np.ndarray, enc: Encoding) -> onnx.NodeProto:
        """Store `values` as integers and return the DequantizeLinear node that rebuilds `name`."""
        ints = quantize_array(values, enc)
        stored = self.fresh(f"{name}_quantized")
        if self.packed(enc):  # ONNX INT4/UINT4: two values per byte, first in the low nibble
            self.inits.append(helper.make_tensor(stored, self.int4_type(enc), list(ints.shape),
                                                 ints.reshape(-1).astype(np.int64).tolist()))
        else:
            self.inits.append(numpy_helper.from_array(ints, stored))
        scale, zero_point = self.qparams(name, enc)
        return self.dq([stored, scale, zero_point], name, enc)

    def dq(self, inputs: list[str], output: str, enc: Encoding) -> onnx.NodeProto:
        attrs = {"axis": enc.axis} if enc.axis is not None else {}
        return helper.make_node("DequantizeLinear", inputs, [output], name=self.fresh(f"{output}_dequantize"),
                                **attrs)

    def qdq(self, source: str, output: str, enc: Encoding) -> list[onnx.NodeProto]:
        scale, zero_point = self.qparams(output, enc)
        stored = self.fresh(f"{output}_quantized")
        q = helper.make_node("QuantizeLinear", [source, scale, zero_point], [stored],
                             name=self.fresh(f"{output}_quantize"))
        return [q, self.dq([stored, scale, zero_point], output, enc)]


def write_qdq(model: onnx.ModelProto, plan: Plan, pack_4bit: bool = False) -> onnx.ModelProto:
    """Return the QDQ graph for `plan`; `model` is not modified."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    out = upgrade_opset(out, required_opset(plan, pack_4bit))
    graph = out.graph
    w = _Writer(out, pack_4bit)
    quantized = set(plan.params) | set(plan.biases)
    params: list[onnx.NodeProto] = []
    for scope in scopes(graph):
        for init in scope.initializer:
            if init.name in quantized:
                enc = plan.params.get(init.name) or plan.bias_encoding(init.name)
                params.append(w.dequantized_param(init.name, numpy_helper.to_array(init), enc))
        kept = [i for i in scope.initializer if i.name not in quantized]
        del scope.initializer[:]
        scope.initializer.extend(kept)
    readers_int = {i for _, node in walk(graph) if node.name not in plan.float_nodes for i in node.input}
    _Scope(w, plan, readers_int).rewrite(graph, params)
    graph.initializer.extend(w.inits)
    inputs = [v for v in graph.input if v.name not in quantized]
    del graph.input[:]
    graph.input.extend(inputs)
    onnx.checker.check_model(out)
    return out


class _Scope:
    """Rewrites a graph and the bodies in it: Q/DQ after each int tensor's producer or at the start
    of the scope for its inputs, readers of quantized inputs and float-island outputs renamed in
    every scope (tensor names are unique across scopes)."""

    def __init__(self, w: _Writer, plan: Plan, readers_int: set[str]) -> None:
        self.w, self.plan, self.readers_int = w, plan, readers_int
        self.renamed: dict[str, str] = {}  # quantized graph or body input -> its dequantized copy

    def is_int(self, name: str) -> bool:
        return name in self.plan.activations and not self.plan.activations[name].is_float

    def rewrite(self, graph: onnx.GraphProto, nodes: list[onnx.NodeProto], main: bool = True) -> None:
        """Rewrite `graph` after `nodes`; pairs are skipped after ops that move values in the main graph
        only: in a body, onnxruntime's QDQ propagation (its basic optimisations) aborted the process on
        such a Squeeze of an LSTM state (Silero VAD)."""
        plan, w = self.plan, self.w
        for value in graph.input:  # quantized in place: their readers get the dequantized copy
            if self.is_int(value.name):
                self.renamed[value.name] = w.fresh(f"{value.name}_dequantized")
                nodes += w.qdq(value.name, self.renamed[value.name], plan.activations[value.name])
            elif value.name in plan.conversions:
                w.names.add(f"{value.name}_converted")
                nodes += w.qdq(value.name, f"{value.name}_converted", plan.conversions[value.name])
        for node in graph.node:
            for _, body in bodies(node):
                self.rewrite(body, [], main=False)
            converted = node.name not in plan.float_nodes
            for i, name in enumerate(node.input):
                if name in self.renamed:
                    node.input[i] = self.renamed[name]
                elif converted and name in plan.conversions:
                    node.input[i] = f"{name}_converted"
            after: list[onnx.NodeProto] = []
            for i, name in enumerate(node.output):
                if self.is_int(name) and not (main and self.on_grid(node, name)):
                    node.output[i] = w.fresh(f"{name}_float")
                    after += w.qdq(node.output[i], name, plan.activations[name])
                elif name in plan.conversions and name in self.readers_int:
                    w.names.add(f"{name}_converted")
                    after += w.qdq(name, f"{name}_converted", plan.conversions[name])
            nodes += [node, *after]
        del graph.node[:]
        graph.node.extend(nodes)

    def on_grid(self, node: onnx.NodeProto, output: str) -> bool:
        """An op that only moves its int input's values, with that input's encoding: no requantization."""
        if not rule(node).moves_values or node.name in self.plan.float_nodes:
            return False
        source = self.plan.activations.get(node.input[0])
        return source is not None and _same(source, self.plan.activations[output])


def _same(a: Encoding, b: Encoding) -> bool:
    return ((a.bw, a.symmetric, a.dtype, a.axis) == (b.bw, b.symmetric, b.dtype, b.axis)
            and np.array_equal(a.scale, b.scale) and np.array_equal(a.offset, b.offset))
