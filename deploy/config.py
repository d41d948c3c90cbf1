"""The deployment file (edgeloop.yaml): which models go to which devices and runtimes, and how
they are judged. Validated once on load; every error names the file, the line and the key.

Paths are relative to the file's folder, so a project can be deployed from anywhere. The keys
are documented in docs/config.md.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import onnx

from deploy.convert import TORCHSCRIPT_SUFFIXES, check_runnable, declared_dims, dims_example, graph_inputs
from deploy.errors import EdgeloopError
from deploy.inputlist import read_input_list, read_labels
from deploy.packs import available_packs, load_pack
from deploy.profiles import RUNTIME_UNITS, available_profiles
from deploy.quantize.options import QuantizeOptions
from deploy.yamlnode import Node, did_you_mean, load_yaml_node

DEFAULT_CONFIG = "edgeloop.yaml"
CONFIG_VERSION = 1

# docs/spec.md §8 (MACE's validator): minimum cosine similarity to the float reference, per runtime.
DEFAULT_MIN_COSINE: dict[str, float] = {"cpu": 0.999, "gpu": 0.995, "gpu_fp16": 0.995, "dsp": 0.98, "aip": 0.98}

# Threshold names (those of harness.compare.Limits) and the range a sensible value lies in.
METRIC_RANGES: dict[str, tuple[float, float]] = {
    "min_cosine": (-1.0, 1.0),
    "min_sqnr_db": (-1000.0, 1000.0),
    "max_abs": (0.0, float("inf")),
    "min_top1_agreement": (0.0, 1.0),
}

_DEPENDENT_OPTIONS = ("pack_4_bit_weights",)  # quantization options that are valid only beside others
_TOP_KEYS = ("version", "models", "runtimes", "devices", "pack", "pack_options")
_MODEL_KEYS = ("source", "input_dims", "out_nodes", "input_list", "labels", "calibration_list", "quantization",
               "thresholds", "runtimes")


@dataclass(frozen=True)
class Thresholds:
    """Limits per metric, set for every runtime, per runtime, and per output (most specific wins)."""

    common: dict[str, float] = field(default_factory=dict)
    runtimes: dict[str, dict[str, float]] = field(default_factory=dict)
    outputs: dict[str, Thresholds] = field(default_factory=dict)

    def limits(self, runtime: str, output: str | None = None) -> dict[str, float]:
        """The limits for one output on one runtime, keyed like harness.compare.Limits' fields."""
        result = {"min_cosine": DEFAULT_MIN_COSINE.get(runtime, DEFAULT_MIN_COSINE["cpu"])}
        levels = [self]
        if output is not None and output in self.outputs:
            levels.append(self.outputs[output])
        for level in levels:
            result.update(level.common)
            result.update(level.runtimes.get(runtime, {}))
        return result


@dataclass(frozen=True)
class ModelConfig:
    name: str
    source: Path
    input_list: Path
    input_dims: dict[str, list[int]] = field(default_factory=dict)
    out_nodes: list[str] = field(default_factory=list)
    labels: Path | None = None  # one integer class per inference line, for top-k
    calibration_list: Path | None = None
    quantization: QuantizeOptions = field(default_factory=QuantizeOptions)
    thresholds: Thresholds = field(default_factory=Thresholds)
    runtimes: list[str] = field(default_factory=list)  # this model's runtimes (defaults to the file's)


@dataclass(frozen=True)
class Config:
    path: Path
    models: dict[str, ModelConfig]
    runtimes: list[str]
    devices: list[str]  # device profile names
    pack: str = "builtin"  # a pack name, or the absolute folder of a pack given relative to the file
    pack_options: dict[str, str] = field(default_factory=dict)  # for bundle(options=...), checked against the pack


def find_config(path: Path | None = None) -> Path:
    """The file to use: `path`, else ./edgeloop.yaml; a clear error when there is none."""
    chosen = Path(path) if path is not None else Path(DEFAULT_CONFIG)
    if chosen.is_dir():
        raise EdgeloopError(f"{chosen}: a folder, not a deployment file", f"pass --config {chosen / DEFAULT_CONFIG}")
    if not chosen.is_file():
        raise EdgeloopError(f"{chosen}: no deployment file", "pass --config PATH or create edgeloop.yaml "
                                                             "(see docs/config.md)")
    return chosen


def load_config(path: Path) -> Config:
    path = Path(path).resolve()
    root = load_yaml_node(path, "deployment file")
    top = root.mapping(_TOP_KEYS, required=("models",))
    if "version" in top and top["version"].typed(int) != CONFIG_VERSION:
        top["version"].fail(f"unsupported version {top['version'].value()!r}", f"this edgeloop reads {CONFIG_VERSION}")
    runtimes = _runtimes(top["runtimes"]) if "runtimes" in top else ["cpu"]
    devices = _devices(top["devices"]) if "devices" in top else []
    pack, pack_options = _pack(top, path.parent)
    entries = top["models"].mapping()
    if not entries:
        top["models"].fail("needs at least one model")
    models = {name: _model(name, node, path.parent, runtimes) for name, node in entries.items()}
    return Config(path=path, models=models, runtimes=runtimes, devices=devices, pack=pack, pack_options=pack_options)


def _runtimes(node: Node) -> list[str]:
    names = [item.choice(RUNTIME_UNITS) for item in node.listed()]
    if not names:
        node.fail("needs at least one runtime")
    return list(dict.fromkeys(names))


def _devices(node: Node) -> list[str]:
    return list(dict.fromkeys(item.choice(available_profiles()) for item in node.listed()))


def _pack(top: dict[str, Node], base: Path) -> tuple[str, dict[str, str]]:
    """The pack (a known name, or a folder relative to the file) and its options, both checked now."""
    pack = "builtin"
    if "pack" in top:
        pack = top["pack"].string()
        if (base / pack / "pack.yaml").is_file():
            pack = str((base / pack).resolve())
        elif pack not in available_packs():
            top["pack"].fail(f"unknown runtime pack '{pack}'", did_you_mean(pack, available_packs()))
    if "pack_options" not in top:
        return pack, {}
    spec = load_pack(pack)
    options = {}
    for key, node in top["pack_options"].mapping(spec.options).items():
        value = node.text()
        choices = spec.options[key].choices
        if choices and value not in choices:
            node.fail(f"unknown value '{value}'", did_you_mean(value, choices))
        options[key] = value
    return pack, options


@dataclass(frozen=True)
class _SourceGraph:
    """The names a source ONNX model offers, to check the file's input_dims, out_nodes and per-output
    thresholds against before anything is converted."""

    inputs: dict[str, list[int | str] | None]  # real inputs (not initializers) → dims (None: no declared shape)
    outputs: list[str]
    node_outputs: dict[str, str]  # node name → its first output (what an out_node naming a node stands for)
    tensors: set[str]  # every tensor some node computes

    @classmethod
    def read(cls, node: Node, source: Path, out_nodes: list[str]) -> _SourceGraph | None:
        """The graph of an ONNX source (its weights' external data left unread); None for TorchScript,
        whose names exist only once it is exported."""
        if source.suffix.lower() in TORCHSCRIPT_SUFFIXES:
            return None
        try:
            model = onnx.load(str(source), load_external_data=False)
        except Exception as exc:  # DecodeError and friends: protobuf does not say much more
            node.fail(f"not an ONNX model ({str(exc).strip() or type(exc).__name__})",
                      "give an .onnx file, or a TorchScript file (.pt, .pth, .torchscript)")
        try:  # an opset beyond onnx/onnxruntime, or no outputs: refused at this line, as convert refuses them
            check_runnable(model, source, out_nodes)
        except EdgeloopError as exc:
            node.fail(exc.message, exc.hint)
        graph = model.graph
        return cls(inputs={v.name: declared_dims(v) for v in graph_inputs(graph)},
                   outputs=[v.name for v in graph.output],
                   node_outputs={n.name: n.output[0] for n in graph.node if n.name and n.output},
                   tensors={out for n in graph.node for out in n.output if out})


def _model(name: str, node: Node, base: Path, default_runtimes: list[str]) -> ModelConfig:
    keys = node.mapping(_MODEL_KEYS, required=("source", "input_list"))
    source = keys["source"].path(base)
    optional_path = {k: keys[k].path(base) if k in keys else None for k in ("labels", "calibration_list")}
    input_list = keys["input_list"].path(base)
    if optional_path["labels"] is not None:
        _check_labels(keys["labels"], optional_path["labels"], input_list)
    input_dims = _input_dims(keys["input_dims"]) if "input_dims" in keys else {}
    out_nodes = keys["out_nodes"].strings() if "out_nodes" in keys else []
    _check_against_source(node, keys, source, input_dims, out_nodes)
    return ModelConfig(
        name=name,
        source=source,
        input_list=input_list,
        input_dims=input_dims,
        out_nodes=out_nodes,
        labels=optional_path["labels"],
        calibration_list=optional_path["calibration_list"],
        quantization=_quantization(keys["quantization"], base) if "quantization" in keys else QuantizeOptions(),
        thresholds=_thresholds(keys["thresholds"], with_outputs=True) if "thresholds" in keys else Thresholds(),
        runtimes=_runtimes(keys["runtimes"]) if "runtimes" in keys else list(default_runtimes),
    )


def _check_labels(node: Node, labels: Path, input_list: Path) -> None:
    """One integer class per inference of the validation list, checked now rather than after a device run."""
    try:
        parsed = read_labels(labels)
    except EdgeloopError as exc:
        node.fail(exc.message, exc.hint)
    negative = next(((v, line) for v, line in zip(parsed.values, parsed.lines, strict=True) if v < 0), None)
    if negative is not None:  # the upper bound needs the converted model's outputs: the deploy loop checks it
        node.fail(f"{labels} line {negative[1]}: class {negative[0]} is negative", "labels are 0-based class indices")
    inferences = len(read_input_list(input_list).entries)
    if len(parsed.values) != inferences:
        node.fail(f"{labels} has {len(parsed.values)} labels for the {inferences} inferences of {input_list.name}",
                  "write one integer class per line of the input list")


def _input_dims(node: Node) -> dict[str, list[int]]:
    dims: dict[str, list[int]] = {}
    for name, value in node.mapping().items():
        items = value.sequence()
        if not items:
            value.fail("needs at least one dimension, e.g. [1, 3, 224, 224]")
        dims[name] = []
        for item in items:
            dim = item.typed(int)
            if dim < 1:
                item.fail(f"dimensions must be positive, got {dim}")
            dims[name].append(dim)
    return dims


def _check_against_source(node: Node, keys: dict[str, Node], source: Path, input_dims: dict[str, list[int]],
                          out_nodes: list[str]) -> None:
    """input_dims, out_nodes and per-output thresholds name what the source ONNX graph has, so a
    mistake is reported at its line now, not by convert without one (or, for thresholds, never)."""
    graph = _SourceGraph.read(keys["source"], source, out_nodes)
    if graph is None:
        return
    if "input_dims" in keys:
        _check_input_dims(keys["input_dims"], input_dims, graph)
    _check_concrete_inputs(keys.get("input_dims", node), input_dims, graph)
    outputs = _check_out_nodes(keys["out_nodes"], graph) if out_nodes else graph.outputs
    if "thresholds" in keys:
        _check_threshold_outputs(keys["thresholds"], outputs)


def _check_input_dims(node: Node, input_dims: dict[str, list[int]], graph: _SourceGraph) -> None:
    """Every name in input_dims is a model input, given as many dims as its rank."""
    for name, written in node.mapping(graph.inputs, what="input").items():
        declared = graph.inputs[name]
        if declared is not None and len(declared) != len(input_dims[name]):
            written.fail(f"{len(input_dims[name])} dims given, input '{name}' has rank {len(declared)} {declared}",
                         f"give {len(declared)} dims")


def _check_concrete_inputs(node: Node, input_dims: dict[str, list[int]], graph: _SourceGraph) -> None:
    """Every input whose declared dims are dynamic gets concrete ones from input_dims (`node` is
    input_dims, or the model section when that key is absent), as the container needs them."""
    for name, declared in graph.inputs.items():
        if name in input_dims or (declared is not None and all(isinstance(d, int) and d > 0 for d in declared)):
            continue
        shown, rest = dims_example(declared)
        node.fail(f"input '{name}' has dynamic dims {declared}; the container needs concrete ones",
                  f"give them in input_dims: {{{name}: [{', '.join(shown)}]}}{rest}")


def _check_out_nodes(node: Node, graph: _SourceGraph) -> list[str]:
    """Each out_node names a node or a tensor some node computes; returns the output tensors they make."""
    outputs = []
    for item in node.listed():
        name = item.string()
        if name in graph.inputs:
            item.fail(f"'{name}' is an input of the model, which no node computes",
                      "name a node, or a tensor that a node produces")
        if name not in graph.tensors and name not in graph.node_outputs:
            item.fail(f"'{name}' is not a node or tensor of the model",
                      did_you_mean(name, graph.tensors | set(graph.node_outputs)))
        outputs.append(name if name in graph.tensors else graph.node_outputs[name])
    return list(dict.fromkeys(outputs))


def _check_threshold_outputs(node: Node, outputs: list[str]) -> None:
    """A limit for an output the model does not have would never be applied: that is a mistake, not a no-op."""
    keys = node.mapping()
    if "outputs" in keys:
        keys["outputs"].mapping(outputs, what="output")


def _quantization(node: Node, base: Path) -> QuantizeOptions:
    """QuantizeOptions' own validation, with each problem put on the line of the option at fault."""
    items = node.mapping([f.name for f in dataclasses.fields(QuantizeOptions)], what="quantization option")
    data = {key: item.value() for key, item in items.items()}
    if data.get("override_params"):
        data["override_params"] = items["override_params"].path(base)
    try:
        return QuantizeOptions.from_mapping(data, f"{node.file}:{node.line}: {node.key}")
    except EdgeloopError:
        # One option checked alone fails only for its own value, except one valid only beside
        # others (pack_4_bit_weights needs weights_bitwidth 4): those are checked last.
        for key in sorted(items, key=lambda k: k in _DEPENDENT_OPTIONS):
            QuantizeOptions.from_mapping({key: data[key]}, f"{node.file}:{items[key].line}: {node.key}")
        raise


def _thresholds(node: Node, *, with_outputs: bool) -> Thresholds:
    known = [*METRIC_RANGES, *RUNTIME_UNITS, *(["outputs"] if with_outputs else [])]
    keys = node.mapping(known)
    common = _limits({k: v for k, v in keys.items() if k in METRIC_RANGES})
    runtimes = {rt: _limits(keys[rt].mapping(METRIC_RANGES)) for rt in RUNTIME_UNITS if rt in keys}
    outputs = {}
    if "outputs" in keys:
        outputs = {name: _thresholds(value, with_outputs=False) for name, value in keys["outputs"].mapping().items()}
    return Thresholds(common=common, runtimes=runtimes, outputs=outputs)


def _limits(items: dict[str, Node]) -> dict[str, float]:
    limits: dict[str, float] = {}
    for metric, value in items.items():
        number = value.number()
        low, high = METRIC_RANGES[metric]
        if not low <= number <= high:
            value.fail(f"{number} is out of range", f"{metric} lies between {low} and {high}")
        limits[metric] = number
    return limits
