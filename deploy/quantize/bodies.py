"""Calibrating tensors inside If/Loop/Scan bodies, which onnxruntime cannot return as graph outputs.

`expose_bodies` rewrites a copy of the model so that each wanted body tensor also reaches a main
graph output of its own name, holding its values of one inference as a [1, N] row (the body
tensor itself is renamed inside its body to free the name):
- If: the branch holding it outputs it (reshaped to [1, -1]), the other branch an empty [1, 0];
  the If gets one more output. A branch that did not run contributes nothing.
- Loop: a loop-carried accumulator, `acc = Concat(acc, reshape(t, [1, -1]), axis=1)`, starting
  from an empty [1, 0]: every iteration's values, whatever their shapes (copies grow with the
  number of iterations: quadratic in it, fine for calibration-sized loops).
- Scan: one more scan output (`reshape(t, [1, -1])` per iteration, stacked by Scan), reshaped to
  [1, -1] after the Scan: iterations must give the same number of values.
Nested bodies chain: an inner If's exposed output is a tensor of the outer body, exposed in turn.
The model's own outputs and values are unchanged; calibration then sees body tensors as it sees
the others (min/max and histograms do not depend on the values' order or shape).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from deploy.subgraphs import bodies, defined, fresh, rename_definition, scopes


def body_activations(inferred: onnx.ModelProto) -> list[str]:
    """The float tensors that bodies define (their inputs and node outputs), by scope, from a model
    with inferred types. A name defined twice in the model (sibling branches may reuse one) is left
    out: encodings are keyed by name, so it could not have one encoding of its own."""
    graphs = list(_bodies(inferred.graph))
    counts = Counter(name for graph in scopes(inferred.graph) for name in defined(graph))
    names = []
    for graph in graphs:
        types = {v.name: v.type.tensor_type.elem_type for v in [*graph.input, *graph.value_info, *graph.output]}
        inits = {i.name for i in graph.initializer}
        own = [v.name for v in graph.input] + [o for node in graph.node for o in node.output if o]
        names += [n for n in own if n not in inits and counts[n] == 1 and types.get(n) == TensorProto.FLOAT]
    return names


def _control_flow(node: onnx.NodeProto) -> bool:
    return node.op_type in ("If", "Loop", "Scan") and node.domain in ("", "ai.onnx")


def _bodies(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    """The bodies of If/Loop/Scan nodes in `graph`, nested ones too (other ops' bodies are not
    quantized: nothing could expose their tensors)."""
    for node in graph.node:
        for _, body in bodies(node) if _control_flow(node) else []:
            yield body
            yield from _bodies(body)


def expose_bodies(model: onnx.ModelProto, names: list[str]) -> onnx.ModelProto:
    """A copy of `model` whose main graph also outputs each body tensor of `names` (module docstring)."""
    exposed = onnx.ModelProto()
    exposed.CopyFrom(model)
    inner = {name for graph in _bodies(exposed.graph) for name in defined(graph)} & set(names)
    if not inner:
        return exposed
    taken = {name for graph in scopes(exposed.graph) for name in defined(graph)}
    taken |= {name for graph in scopes(exposed.graph) for node in graph.node for name in node.input}
    found = _Exposer(inner, taken).scope(exposed.graph, top=True)
    exposed.graph.output.extend(onnx.ValueInfoProto(name=found[name]) for name in names if name in found)
    return exposed


class _Exposer:
    def __init__(self, wanted: set[str], taken: set[str]) -> None:
        self.wanted, self.taken = wanted, taken

    def scope(self, graph: onnx.GraphProto, top: bool) -> dict[str, str]:
        """Rewire the nodes of `graph` so that each wanted tensor of their bodies has a [1, N] tensor in
        `graph`'s scope holding its values; return {tensor: that tensor's name}."""
        found: dict[str, str] = {}
        nodes: list[onnx.NodeProto] = []
        for node in graph.node:
            inner = {attr: self.body(body) for attr, body in bodies(node)} if _control_flow(node) else {}
            if not any(inner.values()):
                nodes.append(node)
                continue
            tensors = list(dict.fromkeys(t for local in inner.values() for t in local))
            outer = {t: t if top else fresh(f"{t}_exposed", self.taken) for t in tensors}
            wire = {"If": self.wire_if, "Loop": self.wire_loop, "Scan": self.wire_scan}[node.op_type]
            nodes += wire(node, inner, outer)
            found.update(outer)
        del graph.node[:]
        graph.node.extend(nodes)
        return found

    def body(self, body: onnx.GraphProto) -> dict[str, str]:
        """Free the names of the wanted tensors `body` defines (renamed inside it), expose the ones of
        its own bodies; {tensor: its name in `body`}."""
        local = {}
        for name in sorted(defined(body) & self.wanted):
            local[name] = fresh(f"{name}_body", self.taken)
            rename_definition(body, name, local[name])
        local.update(self.scope(body, top=False))
        return local

    def row(self, graph: onnx.GraphProto, tensor: str) -> str:
        """Append to `graph` a node giving `tensor` as one [1, N] row; its name."""
        shape = self.constant(graph, np.array([1, -1], np.int64), "row_shape")
        out = fresh(f"{tensor}_row", self.taken)
        graph.node.append(helper.make_node("Reshape", [tensor, shape], [out], name=out))
        return out

    def constant(self, graph: onnx.GraphProto, value: np.ndarray, base: str) -> str:
        graph.node.append(self.constant_node(value, base))
        return graph.node[-1].output[0]

    def constant_node(self, value: np.ndarray, base: str) -> onnx.NodeProto:
        name = fresh(base, self.taken)
        return helper.make_node("Constant", [], [name], name=name, value=numpy_helper.from_array(value, name))

    def wire_if(self, node: onnx.NodeProto, inner: dict[str, dict[str, str]],
            outer: dict[str, str]) -> list[onnx.NodeProto]:
        branches = dict(bodies(node))
        for attr, branch in branches.items():
            for tensor in outer:
                local = inner[attr].get(tensor)
                value = self.row(branch, local) if local is not None else self.constant(
                    branch, np.zeros((1, 0), np.float32), "not_run")
                branch.output.append(helper.make_tensor_value_info(value, TensorProto.FLOAT, None))
        node.output.extend(outer.values())
        return [node]

    def wire_loop(self, node: onnx.NodeProto, inner: dict[str, dict[str, str]],
             outer: dict[str, str]) -> list[onnx.NodeProto]:
        body, carried = dict(bodies(node))["body"], len(node.input) - 2
        start = self.constant_node(np.zeros((1, 0), np.float32), f"{node.name}_empty")
        outputs = []
        for tensor in outer:
            before, after = fresh(f"{tensor}_seen", self.taken), fresh(f"{tensor}_seen_next", self.taken)
            row = self.row(body, inner["body"][tensor])
            body.node.append(helper.make_node("Concat", [before, row], [after], name=after, axis=1))
            body.input.append(helper.make_tensor_value_info(before, TensorProto.FLOAT, None))
            outputs.append(helper.make_tensor_value_info(after, TensorProto.FLOAT, None))
            node.input.append(start.output[0])
        values = list(body.output)
        del body.output[:]
        body.output.extend([*values[:1 + carried], *outputs, *values[1 + carried:]])
        names = list(node.output)
        node.output[:] = [*names[:carried], *outer.values(), *names[carried:]]
        return [start, node]

    def wire_scan(self, node: onnx.NodeProto, inner: dict[str, dict[str, str]],
             outer: dict[str, str]) -> list[onnx.NodeProto]:
        body = dict(bodies(node))["body"]
        reshapes = []
        shape = self.constant_node(np.array([1, -1], np.int64), "row_shape")
        for tensor, name in outer.items():
            row = self.row(body, inner["body"][tensor])
            body.output.append(helper.make_tensor_value_info(row, TensorProto.FLOAT, None))
            stacked = fresh(f"{tensor}_stacked", self.taken)
            node.output.append(stacked)
            reshapes.append(helper.make_node("Reshape", [stacked, shape.output[0]], [name], name=name))
        for attr in node.attribute:
            if attr.name in ("scan_output_axes", "scan_output_directions"):
                attr.ints.extend([0] * len(outer))
        return [shape, node, *reshapes]
