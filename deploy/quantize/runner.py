"""onnxruntime plumbing shared by calibration, bias correction, metrics and the debugger."""

from __future__ import annotations

import onnx
import onnxruntime as ort
from onnx import TensorProto

from deploy.quantize.bodies import body_activations, expose_bodies


def session(model: onnx.ModelProto) -> ort.InferenceSession:
    """A CPU session without graph fusions: a QDQ graph then computes exactly the float
    quantize-dequantize simulation (fusing into QLinear kernels would requantize in integers).

    Idle worker threads sleep instead of spinning: between inferences the quantizer's own numpy
    work (histograms, metrics) runs on the main thread, and spinning workers took the cores it
    needs (on 2 busy cores the digits quantization took 1.3x as long, the OCR models 1.5x)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def float_activations(model: onnx.ModelProto) -> list[str]:
    """Names of the float tensors that flow between nodes (graph inputs, then node outputs in order,
    then those of If/Loop/Scan bodies)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type.tensor_type.elem_type
             for v in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]}
    initializers = {i.name for i in model.graph.initializer}
    names = [v.name for v in model.graph.input if v.name not in initializers]
    names += [o for node in model.graph.node for o in node.output if o]
    return [n for n in names if types.get(n) == TensorProto.FLOAT] + body_activations(inferred)


def expose(model: onnx.ModelProto, names: list[str]) -> onnx.ModelProto:
    """A copy of `model` that also returns the given intermediate tensors as graph outputs (a body
    tensor as one [1, N] row of all its values in the inference: bodies.expose_bodies)."""
    exposed = expose_bodies(model, names)
    present = {o.name for o in exposed.graph.output}
    for name in names:
        if name not in present:
            exposed.graph.output.append(onnx.ValueInfoProto(name=name))  # type left to inference
    return exposed
