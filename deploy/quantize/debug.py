"""The layer-wise accuracy debugger: which layer breaks the quantized model, and what fixes it.

For every layer output it reports the SQNR against float twice:
- cumulative: in the whole quantized model, so errors of all earlier layers are included;
- isolated: measured at the model outputs with only that layer quantized (its weights, bias and
  output, with the quantized model's encodings) and everything else float: that layer's own
  damage, which is what ranking needs (a layer after the culprit inherits its cumulative error,
  and one channel's energy can hide damage to all others in a single tensor's SQNR).
Layers rank by isolated SQNR. The overrides file it writes keeps the worst layers at 16 bit (or
float); with a target it promotes the worst layers one at a time, re-quantizing each time, until
the output SQNR reaches the target, and reports the cost. Every re-quantization is `quantize()`
itself on the whole input list, so the figure reported for the overrides is the one `quantize
--override-params` gives; with a device profile only promotions its runtime can run are proposed.
Layers inside If/Loop/Scan bodies are layers too: a body tensor is compared over all its values of
an inference (every iteration; nothing for a branch that did not run), as calibration sees it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from deploy.container import load_container
from deploy.errors import EdgeloopError
from deploy.fsutil import atomic_write_text, check_writable
from deploy.inputlist import read_input_list, validate_input_list
from deploy.profiles import Profile
from deploy.quantize import calibration_digest, quantize
from deploy.quantize.aimet import parse_encodings
from deploy.quantize.calibrate import progress
from deploy.quantize.metrics import Agreement
from deploy.quantize.options import QuantizeOptions
from deploy.quantize.pipeline import check_measured, feeds_from, pooled
from deploy.quantize.plan import Plan, fused_tensors
from deploy.quantize.qdq import write_qdq
from deploy.quantize.rules import WEIGHTED, weight_axis
from deploy.quantize.runner import expose, session
from deploy.quantize.targets import default_runtime, promotion_refusal
from deploy.subgraphs import initializers, scopes, walk

PROMOTIONS = ("16", "float")


@dataclass
class LayerReport:
    tensor: str
    node: str
    op_type: str
    cumulative_sqnr_db: float | None  # None when the quantized graph has no such tensor (folded by CLE)
    isolated_sqnr_db: float


@dataclass
class DebugReport:
    layers: list[LayerReport]  # graph order
    output_sqnr_db: float
    overrides: dict[str, Any]  # AIMET 1.0.0 partial overrides for the promoted layers
    promoted: list[str] = field(default_factory=list)  # tensors, in promotion order
    final_sqnr_db: float | None = None  # what `quantize` gives with the overrides, when they were verified
    target_met: bool | None = None
    size_bytes: int = 0  # stored parameter bytes of the quantized model
    final_size_bytes: int | None = None
    calibration_inputs: int = 0  # the inputs every re-quantization calibrated on (the whole list)
    notes: list[str] = field(default_factory=list)  # what the figures mean when it is not the obvious

    @property
    def ranking(self) -> list[LayerReport]:
        """Worst first: the layers that lose most on their own."""
        return sorted(self.layers, key=lambda layer: layer.isolated_sqnr_db)

    def to_json(self) -> dict[str, Any]:
        return {"output_sqnr_db": self.output_sqnr_db, "layers": [vars(layer) for layer in self.layers],
                "ranking": [layer.tensor for layer in self.ranking], "promoted": self.promoted,
                "final_sqnr_db": self.final_sqnr_db, "target_met": self.target_met, "size_bytes": self.size_bytes,
                "final_size_bytes": self.final_size_bytes, "calibration_inputs": self.calibration_inputs,
                "notes": self.notes}


def parameter_bytes(model: onnx.ModelProto) -> int:
    """Bytes the initializers of every scope take as stored (int4 packed, int8, float32...)."""
    total = 0
    for init in initializers(model).values():
        count = int(np.prod(init.dims)) if init.dims else 1
        bits = {onnx.TensorProto.INT4: 4, onnx.TensorProto.UINT4: 4}.get(
            init.data_type, 8 * helper.tensor_dtype_to_np_dtype(init.data_type).itemsize)
        total += (count * bits + 7) // 8
    return total


def _plan_from(meta_encodings: dict[str, Any], model: onnx.ModelProto, made_from: str) -> Plan:
    """The quantized container's encodings as a Plan (biases as plain int32 params). A tensor that no
    scope of the float graph (main graph or body) has means the quantized container was made from
    another model."""
    inits = initializers(model)
    parsed = parse_encodings(meta_encodings, "<quantized container>", set(inits))
    known = {*inits, *(v.name for graph in scopes(model.graph) for v in graph.input),
             *(o for _, n in walk(model.graph) for o in n.output)}
    unknown = sorted({*parsed.activations, *parsed.params} - known)
    if unknown:
        raise EdgeloopError(f"{made_from}: its encodings name tensor '{unknown[0]}', which the float container "
                            "does not have", "pass the float container the quantized one was made from")
    acts = {n: e for n, e in parsed.activations.items() if e.resolved}
    params = {n: e for n, e in parsed.params.items() if e.resolved and not e.is_float}
    for _, node in walk(model.graph):  # the file has no axis for per-channel weights: the op decides
        weight = node.input[1] if len(node.input) > 1 else ""
        if weight in params and params[weight].axis is not None:
            axis = weight_axis(node, numpy_helper.to_array(inits[weight]))
            params[weight] = dataclasses.replace(params[weight], axis=axis)
    return Plan(activations=acts, params=params, biases={}, float_nodes=set(), conversions={})


def _only(plan: Plan, node: onnx.NodeProto) -> Plan:
    """The part of `plan` that quantizes one layer: its weights, bias and output."""
    return Plan(activations={o: plan.activations[o] for o in node.output if o in plan.activations},
                params={p: plan.params[p] for p in node.input if p in plan.params}, biases={},
                float_nodes=set(), conversions={})


def layer_sqnr(model: onnx.ModelProto, reference: onnx.ModelProto, qmodel: onnx.ModelProto,
               encodings: dict[str, Any], feeds, total: int, made_from: str = "<quantized container>"
               ) -> tuple[list[LayerReport], float]:
    """Per layer: cumulative SQNR at its output in the quantized model, and isolated SQNR at the
    model outputs with only that layer quantized (its sensitivity). Layers and intermediate
    tensors come from `reference`, the float graph the quantized one was built from (CLE rescales
    channels, so only it is comparable tensor by tensor); the output SQNR is against `model`."""
    plan = _plan_from(encodings, reference, made_from)
    def quantized(node: onnx.NodeProto) -> bool:  # its output, or its weights when a fused op follows
        out = plan.activations.get(node.output[0]) if node.output else None
        return (out is not None and not out.is_float) or any(p in plan.params for p in node.input)

    nodes = [n for _, n in walk(reference.graph) if n.output and quantized(n)]
    names = [n.output[0] for n in nodes]
    outputs = [o.name for o in model.graph.output]
    in_quantized = {o for _, n in walk(qmodel.graph) for o in n.output}
    watched = list(dict.fromkeys([*(n for n in names if n in in_quantized), *outputs]))
    float_sess = session(expose(reference, watched))
    truth_sess = None if reference is model else session(model)
    quant_sess = session(expose(qmodel, watched))
    alone = [session(write_qdq(reference, _only(plan, n))) for n in nodes]
    cumulative = {n: Agreement() for n in names}
    isolated = {n: Agreement() for n in names}
    output = {n: Agreement() for n in outputs}
    with progress("debugging layers") as bar:
        task = bar.add_task("debugging layers", total=total)
        for feed in feeds:
            ref = dict(zip(watched, float_sess.run(watched, feed), strict=True))
            truth = ref if truth_sess is None else dict(zip(outputs, truth_sess.run(outputs, feed), strict=True))
            quant = dict(zip(watched, quant_sess.run(watched, feed), strict=True))
            for name in names:  # a body tensor's row is empty, or another length, where the runs differ
                if name in quant and quant[name].shape == ref[name].shape:
                    cumulative[name].add(ref[name], quant[name])
            for name in outputs:
                output[name].add(truth[name], quant[name])
            for name, sess in zip(names, alone, strict=True):
                for out, value in zip(outputs, sess.run(outputs, feed), strict=True):
                    isolated[name].add(ref[out], value)
            bar.advance(task)
    check_measured(output)
    reports = [LayerReport(n.output[0], n.name, n.op_type,
                           round(cumulative[n.output[0]].sqnr_db, 3) if cumulative[n.output[0]].count else None,
                           round(isolated[n.output[0]].sqnr_db, 3)) for n in nodes]
    return reports, pooled(output).sqnr_db


def reference_graph(model: onnx.ModelProto, quantization: dict[str, Any]) -> onnx.ModelProto:
    """The float graph a quantized container was built from: with CLE, the equalized one (CLE is
    deterministic, so re-applying it to the float container gives the same weights)."""
    if "cle" in (quantization.get("algorithms") or ()):
        from deploy.quantize.cle import equalize

        return equalize(model)
    return model


def _carrier(model: onnx.ModelProto, tensor: str, fused: set[str]) -> str:
    """The tensor that holds `tensor`'s encoding: a fused op's output has none, the activation
    fused into it (Conv -> Relu, Conv -> BN -> Relu) carries it."""
    reader = {i: n for _, n in walk(model.graph) for i in n.input}
    while tensor in fused:
        tensor = reader[tensor].output[0]
    return tensor


def promotion_overrides(model: onnx.ModelProto, tensors: list[str], promote: str) -> dict[str, Any]:
    """AIMET 1.0.0 partial overrides keeping these layers (output, and weight of weighted ops) at
    16 bit or float; bitwidth-only entries take their range from calibration. A layer fused into
    the activation after it is promoted with that activation's output, which is its output on the
    device."""
    producer = {o: n for _, n in walk(model.graph) for o in n.output}
    inits = set(initializers(model))
    fused = fused_tensors(model)
    entry = ({"dtype": "FLOAT", "bw": 32} if promote == "float" else {"dtype": "INT", "bw": 16, "is_sym": False})
    acts: dict[str, dict[str, Any]] = {}
    params = []
    for tensor in tensors:
        acts[tensor] = {"name": tensor, "enc_type": "PER_TENSOR", **entry}
        carrier = _carrier(model, tensor, fused)
        acts.setdefault(carrier, {"name": carrier, "enc_type": "PER_TENSOR", **entry})
        node = producer.get(tensor)
        if node is not None and node.op_type in WEIGHTED and len(node.input) > 1 and node.input[1] in inits:
            params.append({"name": node.input[1], "enc_type": "PER_TENSOR", **entry,
                           **({"is_sym": True} if promote == "16" else {})})
    return {"version": "1.0.0", "activation_encodings": list(acts.values()), "param_encodings": params,
            "excluded_layers": [], "quantizer_args": {}}


def _options_of(quantization: dict[str, Any]) -> QuantizeOptions:
    known = {f for f in QuantizeOptions.__dataclass_fields__}
    return QuantizeOptions.from_mapping({k: v for k, v in quantization.items() if k in known}, "<quantized container>")


def debug(container: str | os.PathLike[str], quantized: str | os.PathLike[str], input_list: str | os.PathLike[str],
          *, inputs: int = 8, target_sqnr: float | None = None, promote: str = "16", worst: int = 3,
          overrides_out: str | os.PathLike[str] | None = None, device: Profile | None = None,
          runtime: str | None = None) -> DebugReport:
    """Compare float and quantized containers layer by layer on the first `inputs` lines of the list;
    the overrides proposed are verified by quantizing with them on the whole list, as `quantize` does.
    With `device`, only promotions its `runtime` (default: its DSP) can run are proposed."""
    if inputs < 1 or worst < 0:
        raise EdgeloopError(f"--inputs must be at least 1 and --worst at least 0, got {inputs} and {worst}")
    if promote not in PROMOTIONS:
        raise EdgeloopError(f"promote must be one of {', '.join(PROMOTIONS)}, got {promote!r}")
    if device is None and runtime is not None:
        raise EdgeloopError("--runtime needs --device: the runtime is one of a device profile's",
                            "add --device PROFILE (see `edgeloop profiles`)")
    refusal = promotion_refusal(device, runtime or default_runtime(device), promote) if device else None
    if refusal is not None and (target_sqnr is not None or overrides_out is not None):
        raise refusal
    if overrides_out is not None:
        check_writable(overrides_out)
    model, meta = load_container(container)
    qmodel, qmeta = load_container(quantized)
    if meta.quantized or not qmeta.quantized or not qmeta.encodings:
        raise EdgeloopError(f"{container} must be a float container and {quantized} a quantized one",
                            "pass --container FLOAT.onnx --quantized Q.onnx")
    parsed = read_input_list(input_list)
    validate_input_list(parsed, meta.inputs, str(input_list))
    sample = dataclasses.replace(parsed, entries=parsed.entries[:inputs])
    count = len(sample.entries)
    reference = reference_graph(model, qmeta.quantization or {})
    if [t.name for t in meta.outputs] != [t.name for t in qmeta.outputs]:
        raise EdgeloopError(f"{quantized} was not made from {container}: their outputs differ",
                            "pass the float container the quantized one was made from")
    feeds = feeds_from(sample, meta, str(input_list))
    layers, output_sqnr = layer_sqnr(model, reference, qmodel, qmeta.encodings, feeds(), count, str(quantized))
    report = DebugReport(layers=layers, output_sqnr_db=round(output_sqnr, 3), overrides={},
                         size_bytes=parameter_bytes(qmodel), calibration_inputs=len(parsed.entries))
    if calibration_digest(Path(input_list), parsed) != (qmeta.quantization or {}).get("calibration_sha256"):
        report.notes.append(f"{quantized} was calibrated on other inputs than {input_list}: the overrides are "
                            f"verified on {input_list}; quantize with it to get the same figure")
    if refusal is not None:  # the ranking still says where the damage is; nothing is proposed
        report.notes.append(str(refusal))
        worst = 0
    ranking = [layer.tensor for layer in report.ranking]
    options = _options_of(qmeta.quantization or {})
    with tempfile.TemporaryDirectory() as tmp:
        def verify(tensors: list[str]) -> None:
            """Quantize with these promotions as `quantize --override-params` would, and keep its figures."""
            path = Path(tmp) / "overrides.json"
            path.write_text(json.dumps(promotion_overrides(reference, tensors, promote)))
            result = quantize(container, input_list, Path(tmp) / "candidate.onnx",
                              dataclasses.replace(options, override_params=path), cache=False)
            report.final_sqnr_db = round(result.sqnr_db, 3)
            report.final_size_bytes = parameter_bytes(load_container(result.path)[0])

        if target_sqnr is None:
            report.promoted = ranking[:worst]
            if report.promoted and overrides_out is not None:
                verify(report.promoted)
        else:
            report.target_met = output_sqnr >= target_sqnr
            for tensor in ranking:
                if report.target_met:
                    break
                report.promoted.append(tensor)
                verify(report.promoted)
                report.target_met = report.final_sqnr_db >= target_sqnr
    report.overrides = promotion_overrides(reference, report.promoted, promote)
    if overrides_out is not None:
        atomic_write_text(overrides_out, json.dumps(report.overrides, indent=1) + "\n")
    return report
