"""Decide every tensor's encoding: which initializers are weights or biases, per-channel axes,
activation encodings from calibration, overrides and float islands (docs/spec.md §5-6), in the
main graph and in the bodies of If/Loop/Scan alike (tensor names are unique across scopes).

What an op type implies comes from rules.py; the plan is pure data: qdq.py turns it into a graph,
aimet.py into JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import numpy_helper

from deploy.errors import EdgeloopError
from deploy.quantize.calibrate import TensorStats
from deploy.quantize.encodings import (
    Encoding,
    encoding_for_values,
    enhanced_encoding,
    float_encoding,
    per_channel_encoding,
    symmetric_encoding,
    tf_encoding,
)
from deploy.quantize.options import QuantizeOptions
from deploy.quantize.rules import rule, weight_axis
from deploy.subgraphs import initializers, scopes, walk
from deploy.yamlnode import did_you_mean


@dataclass
class Overrides:
    """Encodings read from an AIMET file: per tensor, resolved or bitwidth-only, int or float."""

    activations: dict[str, Encoding] = field(default_factory=dict)
    params: dict[str, Encoding] = field(default_factory=dict)
    algorithms: tuple[str, ...] | None = None  # quantizer_args.algorithms of an exported file; None: not said


@dataclass
class Plan:
    activations: dict[str, Encoding]  # every float activation: int (Q/DQ) or float (left alone)
    params: dict[str, Encoding]  # initializers stored as integers (weights, 8-bit biases)
    biases: dict[str, tuple[str, str]]  # 32-bit bias -> (input activation, weight) giving its scale
    float_nodes: set[str]  # nodes that run in float (islands)
    conversions: dict[str, Encoding]  # float-island outputs read by int nodes: float -> int convert
    bias_bitwidth: int = 32
    algorithms: tuple[str, ...] = ()  # what the kept result applied (CLE may be dropped: pipeline.py)
    notes: list[str] = field(default_factory=list)  # lines for the user, said once by quantize()

    def bias_encoding(self, bias: str) -> Encoding:
        """scale = input scale x weight scale (per channel), zero point 0, int32 (docs/spec.md §7)."""
        act, weight = self.biases[bias]
        act_enc = self.conversions.get(act) or self.activations[act]
        w_enc = self.params[weight]
        scale = np.asarray(act_enc.scale, dtype=np.float64) * np.asarray(w_enc.scale, dtype=np.float64)
        offset = np.full(scale.shape, -(1 << 31), dtype=np.int64)
        return Encoding(bw=32, scale=scale, offset=offset, symmetric=True, axis=0 if scale.ndim else None)


def activation_encoding(stats: TensorStats, bw: int, quantizer: str, min_range: float) -> Encoding:
    if quantizer == "symmetric":
        return symmetric_encoding(max(abs(stats.min), abs(stats.max)), bw, min_range)
    if quantizer == "enhanced" and stats.counts is not None:
        return enhanced_encoding(stats.counts, stats.lo, stats.hi, stats.min, stats.max, bw, min_range)
    return tf_encoding(stats.min, stats.max, bw, min_range)


def _readers(model: onnx.ModelProto) -> dict[str, list[onnx.NodeProto]]:
    """Tensor -> the nodes reading it, in every scope (a body's read of an outer tensor included)."""
    result: dict[str, list[onnx.NodeProto]] = {}
    for _, node in walk(model.graph):
        for name in node.input:
            result.setdefault(name, []).append(node)
    return result


def check_override_algorithms(overrides: Overrides, algorithms: tuple[str, ...], source: str) -> None:
    """Encodings exported after CLE describe equalized weights and activations (channels rescaled by
    up to 100x), so they only fit a model equalized the same way, and the other way round."""
    if overrides.algorithms is None or ("cle" in overrides.algorithms) == ("cle" in algorithms):
        return
    if "cle" in overrides.algorithms:
        made, run, fix = "with", "without", f"--algorithms {','.join(overrides.algorithms)}"
    else:
        made, run, fix = "without", "with", "no cle in --algorithms"
    raise EdgeloopError(f"{source}: these encodings were made {made} CLE, this quantization runs {run} it, "
                        "so they do not fit the weights",
                        f"quantize with {fix} as the file was made, or drop quantizer_args from the file to force it")


def check_override_names(model: onnx.ModelProto, activations: list[str], overrides: Overrides, source: str) -> None:
    """Every tensor an encodings file names must exist: a typo would otherwise silently do nothing."""
    for names, known, what in ((overrides.activations, set(activations), "activation"),
                               (overrides.params, set(initializers(model)), "param")):
        unknown = sorted(set(names) - known)
        if unknown:
            raise EdgeloopError(f"{source}: {what} encoding for unknown tensor '{unknown[0]}'",
                                f"the model has no {what} tensor of that name; {did_you_mean(unknown[0], known)}")


def _param_encoding(name: str, values: np.ndarray, axis: int | None, options: QuantizeOptions, bw: int,
                    override: Encoding | None, per_channel: bool) -> Encoding:
    """A static input's encoding; `axis` is its output-channel axis when it is the op's weight."""
    if override is not None and override.resolved:
        if np.size(override.scale) > 1:
            if axis is None or np.size(override.scale) != values.shape[axis]:
                raise EdgeloopError(f"override for '{name}' has {np.size(override.scale)} channel "
                                    f"encodings, the weight has shape {list(values.shape)}",
                                    "give one encoding, or one per output channel")
            return Encoding(override.bw, override.scale, override.offset, override.symmetric, axis)
        return override
    if per_channel and axis is not None:
        return per_channel_encoding(values, axis, bw, options.param_quantizer, options.min_range)
    return encoding_for_values(values, bw, options.param_quantizer, options.min_range)


def fused_tensors(model: onnx.ModelProto) -> set[str]:
    """Outputs of an op whose rule `fuses` read only by one `fused` op (and not an output of any scope):
    runtimes fuse the two, so that tensor never exists in fixed point and gets no encoding (SNPE/QNN
    and onnxruntime's QDQ do the same)."""
    readers = _readers(model)
    outputs = {o.name for graph in scopes(model.graph) for o in graph.output}
    return {node.output[0] for _, node in walk(model.graph)
            if rule(node).fuses and node.output[0] not in outputs
            and len(readers.get(node.output[0], [])) == 1 and rule(readers[node.output[0]][0]).fused}


def _shared_encoding(node: onnx.NodeProto | None, plan: Plan, float_nodes: set[str]) -> Encoding | None:
    """The int encoding of the input whose values an op only rearranges (Reshape, Transpose...), which
    its output shares; None for other ops. Calibrating such an output gives the same encoding anyway
    (the same values); sharing also carries an override of the input over to it."""
    if node is None or not rule(node).moves_values or node.name in float_nodes:
        return None
    enc = plan.activations.get(node.input[0])
    return enc if enc is not None and not enc.is_float else None


def make_plan(model: onnx.ModelProto, activations: list[str], stats: dict[str, TensorStats],
              options: QuantizeOptions, overrides: Overrides | None = None) -> Plan:
    overrides = overrides or Overrides()
    inits = initializers(model)
    nodes = [node for _, node in walk(model.graph)]
    producer = {o: node for node in nodes for o in node.output}

    # Float islands: a float output, weight or bias of a weighted op makes all three float.
    float_nodes: set[str] = set()
    for node in nodes:
        named = [o for o in node.output if o in overrides.activations]
        if rule(node).weight is not None:
            named += [n for n in node.input[1:] if n in overrides.params]
            encs = [overrides.activations.get(n) or overrides.params.get(n) for n in named]
        else:
            encs = [overrides.activations[n] for n in named]
        if any(e.is_float for e in encs):
            float_nodes.add(node.name)

    plan = Plan(activations={}, params={}, biases={}, float_nodes=float_nodes, conversions={},
                bias_bitwidth=options.bias_bitwidth)
    fused = fused_tensors(model)
    for name in activations:
        if name in fused or name not in stats or not np.isfinite(stats[name].min):
            continue
        node = producer.get(name)
        override = overrides.activations.get(name)
        shared = _shared_encoding(node, plan, float_nodes) if override is None else None
        if shared is not None:
            enc = shared
        elif override is not None and override.resolved and not override.is_float:
            enc = override
        else:
            bw = override.bw if override is not None and not override.is_float else options.act_bitwidth
            enc = activation_encoding(stats[name], bw, options.act_quantizer, options.min_range)
        if (node is not None and node.name in float_nodes) or (override is not None and override.is_float):
            plan.activations[name] = override if override is not None and override.is_float else float_encoding()
            plan.conversions[name] = enc
        else:
            plan.activations[name] = enc

    for node in nodes:
        if node.name in float_nodes:
            continue
        op = rule(node)
        for i, name in enumerate(node.input):
            if name not in inits or name in plan.params or name in plan.biases:
                continue
            if i in op.params:
                values = numpy_helper.to_array(inits[name])
                if values.dtype != np.float32:
                    continue
                override = overrides.params.get(name)
                if override is not None and override.is_float:
                    continue
                bw = override.bw if override is not None else options.weights_bitwidth
                axis = weight_axis(node, values) if i == op.weight else None
                plan.params[name] = _param_encoding(name, values, axis, options, bw, override,
                                                    options.use_per_channel_quantization and i == op.weight)
            elif i == op.bias:
                plan.biases[name] = (node.input[0], node.input[op.weight])

    # Biases: 32-bit ones take their scale from input and weight; 8-bit ones are ordinary params.
    for bias, (act, weight) in list(plan.biases.items()):
        act_int = act in plan.conversions or (act in plan.activations and not plan.activations[act].is_float)
        override = overrides.params.get(bias)
        if override is not None and override.is_float:
            del plan.biases[bias]
        elif weight in plan.params and act_int and options.bias_bitwidth == 32 and override is None:
            continue
        else:
            del plan.biases[bias]
            values = numpy_helper.to_array(inits[bias])
            bw = override.bw if override is not None else options.bias_bitwidth
            plan.params[bias] = (override if override is not None and override.resolved
                                 else encoding_for_values(values, bw, "symmetric" if bw == 32 else
                                                          options.param_quantizer, options.min_range))
    return plan
