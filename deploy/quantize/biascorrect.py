"""Empirical bias correction: remove the mean shift that quantization adds to each layer's output.

Weight rounding errors do not average out per output channel: E[W_q x] - E[W x] is a constant
shift per channel. Each layer's own shift is measured on the calibration inputs inside the QDQ
model: next to every Conv/ConvTranspose/Gemm runs a float twin (float weights and bias) on the
same quantized input, so shift = mean(quantized layer - float twin) excludes what earlier layers
contribute and all layers can be corrected in one pass without counting a shift twice. The shift
is subtracted from the float bias; the caller then quantizes the corrected model again.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from deploy.quantize.calibrate import progress
from deploy.quantize.plan import Plan
from deploy.quantize.qdq import write_qdq
from deploy.quantize.runner import expose, session

CORRECTED = ("Conv", "ConvTranspose", "Gemm")


def _channel_sums(x: np.ndarray, axis: int) -> np.ndarray:
    return np.moveaxis(x, axis, 0).reshape(x.shape[axis], -1).sum(axis=1, dtype=np.float64)


def correct_biases(model: onnx.ModelProto, plan: Plan, feeds, total: int, pack_4bit: bool) -> onnx.ModelProto:
    """Return a copy of `model` whose int-quantized layers have bias -= mean(quantized - float)."""
    targets = [n for n in model.graph.node if n.op_type in CORRECTED and n.name not in plan.float_nodes
               and n.input[1] in plan.params]
    if not targets:
        return model
    qmodel = write_qdq(model, plan, pack_4bit)
    inits = {i.name: i for i in model.graph.initializer}
    quantized_nodes = {n.name: n for n in qmodel.graph.node}
    pairs = []
    for target in targets:
        twin = onnx.NodeProto()
        twin.CopyFrom(quantized_nodes[target.name])
        twin.name = f"{target.name}_float_twin"
        for i, name in enumerate(twin.input[1:], 1):
            if name in inits:
                twin.input[i] = f"{name}_float_twin"
                qmodel.graph.initializer.append(numpy_helper.from_array(numpy_helper.to_array(inits[name]),
                                                                        twin.input[i]))
        twin.output[0] = f"{target.output[0]}_float_twin"
        qmodel.graph.node.append(twin)
        pairs.append((quantized_nodes[target.name].output[0], twin.output[0]))
    names = [name for pair in pairs for name in pair]
    test_sess = session(expose(qmodel, names))
    diffs: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    with progress("bias correction") as bar:
        task = bar.add_task("bias correction", total=total)
        for feed in feeds():
            values = dict(zip(names, test_sess.run(names, feed), strict=True))
            for target, (actual, twin) in zip(targets, pairs, strict=True):
                out, ref = values[actual], values[twin]
                axis = 1 if ref.ndim > 1 else 0
                key = target.output[0]
                diffs[key] = diffs.get(key, 0) + _channel_sums(out.astype(np.float64) - ref, axis)
                counts[key] = counts.get(key, 0) + ref.size // ref.shape[axis]
            bar.advance(task)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    inits = {i.name: i for i in out.graph.initializer}
    nodes = {n.name: n for n in out.graph.node}
    for target in targets:
        node = nodes[target.name]
        shift = diffs[target.output[0]] / counts[target.output[0]]
        if len(node.input) > 2 and node.input[2]:
            old = inits[node.input[2]]
            bias = numpy_helper.to_array(old).astype(np.float64) - shift
            old.CopyFrom(numpy_helper.from_array(bias.astype(np.float32), old.name))
        else:
            name = f"{node.name}.corrected_bias"
            out.graph.initializer.append(numpy_helper.from_array((-shift).astype(np.float32), name))
            if len(node.input) == 2:
                node.input.append(name)
            else:
                node.input[2] = name
    return out
