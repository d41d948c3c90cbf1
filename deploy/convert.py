"""Source model → float container: concrete shapes, chosen outputs, folded constants and BatchNorms.

The pipeline mirrors `snpe-onnx-to-dlc`: input-dim overrides, shape inference, `--out-node`
extraction, graph normalisation (onnxoptimizer's passes plus constant folding with onnx's
reference evaluator), an op-support check against the runtime tables, then metadata. The result is
cached by the source's content hash and the options (deploy.cache).
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxoptimizer
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from deploy.cache import build_root, cached_copy
from deploy.container import ContainerMeta, TensorInfo, load_container, load_model, save_container, shape_problem
from deploy.errors import EdgeloopError
from deploy.fsutil import atomic_path, refuse_overwriting, sha256_file, shortened
from deploy.opsupport import OpSupport, check_graph
from deploy.subgraphs import inline_constant_ifs, undefined_read
from deploy.yamlnode import did_you_mean

TORCHSCRIPT_SUFFIXES = frozenset({".pt", ".pth", ".torchscript"})
TORCH_OPSET = 17
# onnxoptimizer passes, in order; each keeps the graph's numbers (see docs/containers.md). Not
# eliminate_if_with_const_cond: it renames the inlined branch's tensors but not the reads of them in
# the bodies nested there (Silero VAD's LSTM Ifs), so convert inlines constant Ifs itself.
PASSES = [
    "extract_constant_to_initializer", "eliminate_identity", "eliminate_nop_dropout", "eliminate_nop_cast",
    "eliminate_nop_flatten", "eliminate_nop_pad", "eliminate_nop_reshape", "eliminate_nop_transpose",
    "eliminate_nop_concat",
    "eliminate_nop_split", "eliminate_nop_expand", "eliminate_shape_op", "eliminate_shape_gather",
    "eliminate_slice_after_shape",
    "fuse_consecutive_transposes", "fuse_consecutive_squeezes", "fuse_consecutive_unsqueezes",
    "fuse_consecutive_concats", "fuse_concat_into_reshape", "fuse_transpose_into_gemm", "fuse_pad_into_conv",
    "fuse_bn_into_conv", "fuse_add_bias_into_conv", "eliminate_deadend", "eliminate_unused_initializer",
    "eliminate_duplicate_initializer",
]
MAX_ROUNDS = 4
MAX_FOLD_GROWTH = 1 << 20  # bytes a folded node may add to the file
PASSTHROUGH = frozenset({"Identity", "Dropout"})  # no-ops at inference: converters drop them (seeds/000)
# Ops never folded even when every input is constant: their value is not a function of the inputs.
NOT_FOLDABLE = frozenset({"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
                          "Bernoulli", "If", "Loop", "Scan"})


@dataclass
class ConvertResult:
    path: Path  # the float container
    meta: ContainerMeta
    ops: list[OpSupport]  # every node with the runtimes that can run it
    cached: bool

    @property
    def notes(self) -> list[str]:
        """What convert did differently from usual (an onnxoptimizer round skipped), also on a cache hit."""
        return list(self.meta.options.get("notes", []))


def parse_input_dim(text: str) -> tuple[str, list[int]]:
    """`NAME=1,3,224,224` (SNPE's --input_dim takes NAME and dims as two words; one word suits invoke)."""
    name, sep, dims = text.rpartition("=")
    try:
        values = [int(d) for d in dims.split(",")]
    except ValueError:
        values = []
    if not sep or not name or not values or min(values) < 1:
        raise EdgeloopError(f"bad --input-dim '{text}'", "write NAME=1,3,224,224 (positive integers)")
    return name, values


def convert(model: str | Path, output: Path | None = None, *, input_dims: dict[str, list[int]] | None = None,
            out_nodes: list[str] | None = None, cache: bool = True) -> ConvertResult:
    """Convert `model` (ONNX, or TorchScript with `input_dims`) into a float container.

    With `output=None` the cached artifact is returned (or, with `cache=False`,
    `build/containers/<stem>.onnx`); otherwise the container is also written to `output`.
    """
    if not str(model).strip():  # Path("") is ".", which would be "no such file" of the working folder
        raise EdgeloopError("the model path is empty", "give the path of an .onnx or TorchScript .pt file")
    model = Path(model)
    if not model.is_file():
        raise EdgeloopError(f"{shortened(model)}: no such file", "give the path of an .onnx or TorchScript .pt file")
    if output is not None:
        refuse_overwriting(output, model)
    input_dims = {name: [int(d) for d in dims] for name, dims in (input_dims or {}).items()}
    for name, dims in input_dims.items():
        why = shape_problem(dims, "uint8")  # the input's dtype is not known yet: its bytes are checked at the end
        if why is not None:
            raise EdgeloopError(f"input dims {shortened(name)}={','.join(map(str, dims))}: {why}",
                                "give the dims the model runs with")
    out_nodes = list(out_nodes or [])
    options = {"input_dims": dict(sorted(input_dims.items())), "out_nodes": out_nodes}
    source_sha256 = sha256_file(model)
    filename = f"{model.stem}.onnx"

    built: dict[str, tuple[ContainerMeta, list[OpSupport]]] = {}

    def build(folder: Path) -> None:
        built["result"] = _convert_to(model, folder / filename, source_sha256, input_dims, out_nodes)

    if cache:
        result = cached_copy("convert", {"source_sha256": source_sha256, "options": options}, build, filename,
                             output)
        path, hit = result.path, result.hit
    else:
        path, hit = Path(output) if output is not None else build_root() / "containers" / filename, False
        with atomic_path(path) as tmp:
            built["result"] = _convert_to(model, tmp, source_sha256, input_dims, out_nodes)
    if "result" in built:
        meta, ops = built["result"]
    else:  # a cache hit: read what the earlier conversion recorded
        graph_model, meta = load_container(path)
        ops = check_graph(graph_model.graph)
    return ConvertResult(path, meta, ops, hit)


def _convert_to(source: Path, dest: Path, source_sha256: str, input_dims: dict[str, list[int]],
                out_nodes: list[str]) -> tuple[ContainerMeta, list[OpSupport]]:
    """The pure conversion: read `source`, write the container to `dest` (nothing else)."""
    if source.suffix.lower() in TORCHSCRIPT_SUFFIXES:
        exported = dest.with_name(dest.name + ".export.onnx")
        try:
            _export_torchscript(source, input_dims, exported)
            model = load_model(exported)
        finally:
            exported.unlink(missing_ok=True)
        source_format = "torchscript"
    else:
        model = load_model(source)
        source_format = "onnx"
    check_runnable(model, source, out_nodes)
    _apply_input_dims(model, input_dims)
    model = _infer_shapes(model)
    if out_nodes:
        model = _infer_shapes(_extract(model, out_nodes))
    model, notes = _normalise(model)
    ops = check_graph(model.graph)
    meta = ContainerMeta(
        kind="float",
        inputs=[_tensor_info(v, model) for v in graph_inputs(model.graph)],
        outputs=[_tensor_info(v, model) for v in model.graph.output],
        source_sha256=source_sha256,
        options={"input_dims": dict(sorted(input_dims.items())), "out_nodes": out_nodes,
                 "source_format": source_format, "source_name": source.name, "passes": PASSES,
                 "constant_folding": "onnx.reference", "nodes": len(ops), **({"notes": notes} if notes else {})},
    )
    save_container(model, meta, dest)
    return meta, ops


def _export_torchscript(source: Path, input_dims: dict[str, list[int]], dest: Path) -> None:
    try:
        import torch
    except ImportError:
        raise EdgeloopError("converting a TorchScript model needs PyTorch", "pip install torch==2.13.0 (CPU)") from None
    if not input_dims:
        raise EdgeloopError(f"{source}: a TorchScript model has no input shapes",
                            "give every input with --input-dim NAME=1,3,224,224 (in the model's argument order)")
    with warnings.catch_warnings():  # torch's TorchScript deprecation notices are not the user's problem
        warnings.simplefilter("ignore")
        try:
            module = torch.jit.load(str(source), map_location="cpu")
        except Exception as exc:  # torch raises RuntimeError/ValueError for files that are not TorchScript
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise EdgeloopError(f"{source}: not a TorchScript model ({first})",
                                "save it with torch.jit.save(torch.jit.script(model), path)") from None
        args = tuple(torch.zeros(dims) for dims in input_dims.values())
        try:
            torch.onnx.export(module, args, str(dest), input_names=list(input_dims), opset_version=TORCH_OPSET,
                              dynamo=False)
        except Exception as exc:  # shape mismatches and unsupported ops surface as RuntimeError
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise EdgeloopError(f"{source}: torch.onnx.export failed ({first})",
                                "check --input-dim against what the model's forward() expects") from None


def check_runnable(model: onnx.ModelProto, source: Path, out_nodes: Sequence[str] = ()) -> None:
    """Refuse what onnx reads but nothing can run, before any work: a default-domain opset beyond
    the installed onnx/onnxruntime (convert would pass, and the device stop with a C++ message), or a
    graph without outputs and no `out_nodes` to give it some (a container computing nothing)."""
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    newest = max_opset()
    if opset > newest:
        raise EdgeloopError(f"{source}: opset {opset} is newer than the newest this installation supports ({newest}: "
                            f"onnx {onnx.__version__}, onnxruntime {ort.__version__})",
                            f"re-export the model with an opset of at most {newest}, e.g. "
                            f"torch.onnx.export(..., opset_version={min(newest, TORCH_OPSET)})")
    if not model.graph.output and not out_nodes:
        raise EdgeloopError(f"{source}: the model has no outputs (its graph lists none)",
                            "re-export it with its outputs, or name the tensors to keep (--out-node; out_nodes in "
                            "edgeloop.yaml)")


@functools.cache
def max_opset() -> int:
    """The newest default-domain opset that onnx (shape inference, folding) and onnxruntime (the host
    reference, the emulated device) both support. onnxruntime has no public query for it, so it is
    asked to load an empty model stamped with onnx's newest opset, then older ones."""
    newest = onnx.defs.onnx_opset_version()
    return next((version for version in range(newest, 0, -1) if _onnxruntime_loads(version)), newest)


def _onnxruntime_loads(version: int) -> bool:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    model = helper.make_model(helper.make_graph([], "opset_probe", [x], [x]),
                              opset_imports=[helper.make_opsetid("", version)])
    model.ir_version = 8  # any IR onnxruntime reads: only the opset is asked about
    try:
        ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    except Exception:  # onnxruntime's Fail (a pybind class): the opset is beyond it
        return False
    return True


def graph_inputs(graph: onnx.GraphProto) -> list[onnx.ValueInfoProto]:
    """Real inputs only: old models (IR < 4) also list their initializers as inputs."""
    inits = {t.name for t in graph.initializer}
    return [v for v in graph.input if v.name not in inits]


def declared_dims(value: onnx.ValueInfoProto) -> list[int | str] | None:
    """A tensor's dims, a symbolic one by its name ('?' when it has none); None when no shape is declared.
    Both convert and the deployment file's checks (deploy.config) read a graph's shapes through it."""
    tensor = value.type.tensor_type
    if not tensor.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tensor.shape.dim]


def _apply_input_dims(model: onnx.ModelProto, input_dims: dict[str, list[int]]) -> None:
    """Set SNPE-style input dims, then require every input dim to be concrete."""
    inputs = {v.name: v for v in graph_inputs(model.graph)}
    for name, dims in input_dims.items():
        if name not in inputs:
            raise EdgeloopError(f"--input-dim names unknown input '{name}'",
                                f"the model's inputs are: {', '.join(inputs)}")
        shape = inputs[name].type.tensor_type.shape
        if len(shape.dim) != len(dims):
            raise EdgeloopError(f"--input-dim {name}: {len(dims)} dims given, the input has rank {len(shape.dim)} "
                                f"({declared_dims(inputs[name])})", f"give {len(shape.dim)} comma-separated dims")
        for dim, value in zip(shape.dim, dims, strict=True):  # fixed dims may change too, as in SNPE
            dim.Clear()
            dim.dim_value = value
    for name, value in inputs.items():
        dims = declared_dims(value)
        if dims is None or any(not isinstance(d, int) or d < 1 for d in dims):
            shown, rest = dims_example(dims)
            raise EdgeloopError(f"input '{name}' has dynamic dims {dims}; the container needs concrete ones",
                                f"give them with --input-dim {name}={','.join(shown)}{rest}")
    # Declared output shapes and intermediate shapes may still carry the old symbols: infer them again.
    del model.graph.value_info[:]
    for value in model.graph.output:
        value.type.tensor_type.ClearField("shape")


def dims_example(dims: list | None) -> tuple[list[str], str]:
    """The dims to suggest for an input with dynamic ones, and what to say of them: the fixed dims as
    they are, a dynamic batch as 1, the other dynamic dims as placeholders to replace with the sizes
    deployed with (a guessed 1 for a height would be wrong)."""
    if not dims:
        return ["1", "3", "224", "224"], " (the shape you deploy with)"
    shown = [str(d) if isinstance(d, int) and d > 0 else "1" if i == 0 else
             str(d).upper() if isinstance(d, str) and d else f"D{i}" for i, d in enumerate(dims)]
    todo = [text for i, text in enumerate(shown) if i > 0 and not (isinstance(dims[i], int) and dims[i] > 0)]
    return shown, f", with the sizes you deploy with for {', '.join(todo)}" if todo else ""


def _infer_shapes(model: onnx.ModelProto) -> onnx.ModelProto:
    inferred = _inferred(model)
    if isinstance(inferred, str):
        raise EdgeloopError(f"shape inference failed: {inferred}", "check --input-dim against the model")
    return inferred


def _inferred(model: onnx.ModelProto) -> onnx.ModelProto | str:
    """The model with inferred shapes, or the first line of why onnx's strict inference refuses it."""
    try:
        return onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    except Exception as exc:  # InferenceError, ValidationError
        return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _checked(model: onnx.ModelProto) -> onnx.ModelProto | str:
    """`_inferred`, refusing first a read of a tensor that nothing computes before it in its scope or
    the scopes around it: strict inference lets one through when a stale type is recorded for it."""
    return undefined_read(model.graph) or _inferred(model)


def _extract(model: onnx.ModelProto, out_nodes: list[str]) -> onnx.ModelProto:
    """Keep only what produces `out_nodes` (tensor names, or node names standing for their first output)."""
    tensors = {out for node in model.graph.node for out in node.output if out}
    inputs = [v.name for v in graph_inputs(model.graph)]
    node_outputs = {node.name: node.output[0] for node in model.graph.node if node.name and node.output}
    outputs = []
    for name in out_nodes:
        if name in inputs:
            raise EdgeloopError(f"--out-node '{name}' is an input of the model, which no node computes",
                                "name a node, or a tensor that a node produces")
        if name in tensors:
            outputs.append(name)
        elif name in node_outputs:
            outputs.append(node_outputs[name])
        else:
            raise EdgeloopError(f"--out-node '{name}' is not a node or tensor of the model",
                                did_you_mean(name, tensors | set(node_outputs)))
    outputs = list(dict.fromkeys(outputs))  # a node and its tensor, or a name given twice: one output
    extracted = onnx.utils.Extractor(model).extract_model(inputs, outputs)
    used = {name for node in extracted.graph.node for name in node.input} | set(outputs)
    kept = [v for v in extracted.graph.input if v.name in used]
    del extracted.graph.input[:]
    extracted.graph.input.extend(kept)
    return extracted


def _normalise(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    """Fold constants and BatchNorms, inline Ifs on constant conditions, drop no-ops; outputs keep
    their names and values. Also returns notes on what was done differently from usual."""
    output_names = [v.name for v in model.graph.output]
    notes: list[str] = []
    _bypass_passthrough(model.graph)
    # Each onnxoptimizer call costs a serialisation round trip of the whole model, so there are as few
    # as possible: BatchNorms are folded here in numpy (onnxoptimizer's fuse_bn_into_conv would emit the
    # new weights as constant subgraphs, needing a fold and a second round trip); a round only follows a
    # fold or an inlined If (a condition computed from shapes becomes constant once folded), since both
    # can open more fusions.
    _fold_batchnorms(model.graph)
    model = _optimize(model, notes)
    for _ in range(MAX_ROUNDS):
        if not _fold_constants(model) + inline_constant_ifs(model.graph):
            break
        model = _optimize(model, notes)
    if [v.name for v in model.graph.output] != output_names:
        raise EdgeloopError("graph normalisation renamed the model's outputs",
                            "please report this model; convert it with --out-node as a workaround")
    for i, node in enumerate(model.graph.node):
        if not node.name:
            node.name = f"{node.op_type.lower()}_{i}"
    inferred = _checked(model)
    if isinstance(inferred, str):  # shapes were inferred before normalising: it is not --input-dim's fault
        raise EdgeloopError(f"graph normalisation left a graph onnx refuses: {inferred}",
                            "please report this model; convert it with --out-node as a workaround")
    return inferred, notes


def _optimize(model: onnx.ModelProto, notes: list[str]) -> onnx.ModelProto:
    """onnxoptimizer's passes; its C++ assertions (RuntimeError) become one line naming the pass. A
    result that onnx refuses (a pass that mishandles a subgraph) is
    dropped for the graph as it was, with a note saying so."""
    try:
        optimized = onnxoptimizer.optimize(model, PASSES, fixed_point=True)
    except RuntimeError as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise EdgeloopError(f"graph normalisation failed in onnxoptimizer: {first.rsplit('/', 1)[-1]}",
                            "re-export the model with a recent opset (17), or cut the node off with --out-node"
                            ) from None
    problem = _checked(optimized)
    if not isinstance(problem, str):
        return problem
    notes.append(f"onnxoptimizer's passes broke the graph ({problem}): one round of them was skipped, "
                 "so the container may keep nodes they would have removed")
    return model


def _bypass_passthrough(graph: onnx.GraphProto) -> None:
    """Drop Identity and inference Dropout nodes, even those producing a graph output (which
    onnxoptimizer keeps so as not to rename outputs): their producer then writes the output name."""
    outputs = {v.name for v in graph.output}
    sources = {v.name for v in graph.input} | {t.name for t in graph.initializer}
    for node in list(graph.node):
        if node.op_type not in PASSTHROUGH or node.domain not in ("", "ai.onnx"):
            continue
        training = node.op_type == "Dropout" and len(node.input) > 2 and node.input[2]
        if training or any(node.output[1:]):  # a training-mode switch or a used mask: not a no-op
            continue
        src, dst = node.input[0], node.output[0]
        if dst in outputs:
            if src in outputs or src in sources:
                continue
            old, new = src, dst
        else:
            old, new = dst, src
        graph.node.remove(node)
        for other in graph.node:
            for names in (other.input, other.output):
                for i, name in enumerate(names):
                    if name == old:
                        names[i] = new
        for value in graph.value_info:
            if value.name == old:
                value.name = new


def _fold_batchnorms(graph: onnx.GraphProto) -> None:
    """Fold each inference BatchNormalization into the Conv before it when the Conv's output feeds only
    it and all parameters are initializers: W' = W·s, B' = (B - mean)·s + beta with s = gamma/√(var+ε).
    New initializers are written (the old ones may be shared); unused ones are dropped later."""
    inits = {t.name: t for t in graph.initializer}
    consumers: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            consumers[name] = consumers.get(name, 0) + 1
    producers = {node.output[0]: node for node in graph.node if node.output}
    graph_outputs = {v.name for v in graph.output}
    taken = set(inits) | {out for node in graph.node for out in node.output} | {v.name for v in graph.input}
    for bn in list(graph.node):
        conv = producers.get(bn.input[0]) if bn.op_type == "BatchNormalization" else None
        if (conv is None or conv.op_type != "Conv" or bn.domain not in ("", "ai.onnx")
                or conv.domain not in ("", "ai.onnx") or len(bn.input) < 5 or any(bn.output[1:])
                or any(a.name == "training_mode" and a.i for a in bn.attribute)
                or consumers.get(conv.output[0]) != 1 or conv.output[0] in graph_outputs
                or not all(name in inits for name in [*conv.input[1:], *bn.input[1:5]] if name)):
            continue
        weight = numpy_helper.to_array(inits[conv.input[1]])
        gamma, beta, mean, var = (numpy_helper.to_array(inits[name]) for name in bn.input[1:5])
        if any(p.shape != (weight.shape[0],) for p in (gamma, beta, mean, var)):  # e.g. opset < 9 spatial=0
            continue
        epsilon = next((a.f for a in bn.attribute if a.name == "epsilon"), 1e-5)
        scale = gamma / np.sqrt(var + np.float32(epsilon))
        bias = numpy_helper.to_array(inits[conv.input[2]]) if len(conv.input) > 2 and conv.input[2] else 0
        folded = {"_bn_weight": (weight * scale.reshape(-1, *[1] * (weight.ndim - 1))).astype(weight.dtype),
                  "_bn_bias": ((bias - mean) * scale + beta).astype(weight.dtype)}
        names = []
        for suffix, value in folded.items():
            name = _unused_name(f"{bn.output[0]}{suffix}", taken)
            taken.add(name)
            graph.initializer.append(numpy_helper.from_array(value, name))
            names.append(name)
        stale = [v for v in graph.value_info if v.name == conv.output[0]]
        for value in stale:
            graph.value_info.remove(value)
        del conv.input[1:]
        conv.input.extend(names)
        conv.output[0] = bn.output[0]
        graph.node.remove(bn)


def _unused_name(base: str, taken: set[str]) -> str:
    name, i = base, 0
    while name in taken:
        i += 1
        name = f"{base}_{i}"
    return name


def _fold_constants(model: onnx.ModelProto) -> int:
    """Replace every node whose inputs are all initializers, and every Shape or Size of a tensor whose
    inferred shape is concrete, by the initializers it computes; count them."""
    graph = model.graph
    consts = {t.name: t for t in graph.initializer}
    opsets = list(model.opset_import)
    graph_outputs = {v.name for v in graph.output}
    static = {v.name: dims for v in [*graph.input, *graph.value_info]
              if (dims := declared_dims(v)) is not None and all(isinstance(d, int) and d > 0 for d in dims)}
    kept = []
    for node in graph.node:
        shape = _shape_value(node, static) if not graph_outputs.intersection(node.output) else None
        if shape is not None:
            consts[node.output[0]] = numpy_helper.from_array(shape, node.output[0])
            graph.initializer.append(consts[node.output[0]])
            continue
        foldable = (node.domain in ("", "ai.onnx") and node.op_type not in NOT_FOLDABLE and node.input
                    and all(name in consts for name in node.input if name)
                    and not graph_outputs.intersection(node.output))
        if not foldable:
            kept.append(node)
            continue
        feeds = {name: numpy_helper.to_array(consts[name]) for name in node.input if name}
        values = ReferenceEvaluator(_single_node_model(node, consts, opsets)).run(None, feeds)
        grown = sum(np.asarray(v).nbytes for v in values) - sum(a.nbytes for a in feeds.values())
        if grown > MAX_FOLD_GROWTH:  # e.g. an Expand or Tile of a scalar: cheaper to compute than to store
            kept.append(node)
            continue
        for name, value in zip(node.output, values, strict=True):
            if name:
                consts[name] = numpy_helper.from_array(np.asarray(value), name)
                graph.initializer.append(consts[name])
    folded = len(graph.node) - len(kept)
    if folded:
        del graph.node[:]
        graph.node.extend(kept)
    return folded


def _shape_value(node: onnx.NodeProto, static: dict[str, list]) -> np.ndarray | None:
    """A Shape or Size node's value when its input's shape is concrete (None otherwise): conditions
    computed from shapes (`if x.shape[0] == 1`) become constants, and their Ifs can be inlined."""
    if node.op_type not in ("Shape", "Size") or node.domain not in ("", "ai.onnx") or node.input[0] not in static:
        return None
    dims = static[node.input[0]]
    if node.op_type == "Size":
        return np.array(math.prod(dims), dtype=np.int64)
    attrs = {a.name: a.i for a in node.attribute}  # Shape-15 start/end slice like Python's
    return np.array(dims[attrs.get("start", 0):attrs.get("end", len(dims))], dtype=np.int64)


def _single_node_model(node: onnx.NodeProto, consts: dict[str, onnx.TensorProto],
                       opsets: list[onnx.OperatorSetIdProto]) -> onnx.ModelProto:
    inputs = [helper.make_tensor_value_info(n, consts[n].data_type, None) for n in dict.fromkeys(node.input) if n]
    outputs = [helper.make_empty_tensor_value_info(n) for n in node.output if n]
    graph = helper.make_graph([node], "fold", inputs, outputs)
    return helper.make_model(graph, opset_imports=opsets)


def _tensor_info(value: onnx.ValueInfoProto, model: onnx.ModelProto) -> TensorInfo:
    dims = declared_dims(value)
    if dims is None or any(not isinstance(d, int) or d < 1 for d in dims):
        raise EdgeloopError(f"tensor '{value.name}' has no concrete shape after inference ({dims})",
                            "give every dynamic input dim with --input-dim")
    dtype = np.dtype(helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type)).name
    why = shape_problem(dims, dtype)
    if why is not None:
        raise EdgeloopError(f"tensor '{value.name}': {why}", "give smaller dims with --input-dim")
    return TensorInfo(value.name, tuple(int(d) for d in dims), dtype, _guess_layout(value.name, len(dims), model))


def _guess_layout(name: str, rank: int, model: onnx.ModelProto) -> str:
    """ONNX convolutions are channel-first, so a 4-D tensor of a conv model is NCHW; 2-D is NC."""
    if rank == 2:
        return "NC"
    if rank == 4 and any(node.op_type in ("Conv", "ConvTranspose") for node in model.graph.node):
        return "NCHW"
    return ""
