"""The deployment file (edgeloop.yaml): which models go to which devices and runtimes, and how
they are judged. Validated once on load; every error names the file, the line and the key.

Paths are relative to the file's folder, so a project can be deployed from anywhere. The keys
are documented in docs/config.md.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx

from deploy.convert import TORCHSCRIPT_SUFFIXES, check_runnable, declared_dims, dims_example, graph_inputs
from deploy.errors import EdgeloopError
from deploy.inputlist import read_input_list, read_labels
from deploy.packs import available_packs, load_pack
from deploy.profiles import RUNTIME_UNITS, available_profiles
from deploy.quantize.options import (
    ACT_BITWIDTHS,
    ALGORITHMS,
    BIAS_BITWIDTHS,
    QUANTIZERS,
    WEIGHT_BITWIDTHS,
    QuantizeOptions,
)
from deploy.yamlnode import Node, did_you_mean, listed, load_yaml_node, one_or_list, validate

DEFAULT_CONFIG = "edgeloop.yaml"
CONFIG_VERSION = 1

# docs/spec.md §8 (MACE's validator): minimum cosine similarity to the float reference, per runtime.
DEFAULT_MIN_COSINE: dict[str, float] = {"cpu": 0.999, "gpu": 0.995, "gpu_fp16": 0.995, "dsp": 0.98, "aip": 0.98}

# The limits, named like harness.compare.Limits' fields, and the range a sensible value lies in.
_LIMITS: dict[str, dict[str, Any]] = {
    "min_cosine": {"type": "number", "minimum": -1, "maximum": 1,
                   "description": "a cosine similarity lies between -1 and 1"},
    "min_sqnr_db": {"type": "number", "minimum": -1000, "maximum": 1000,
                    "description": "an SQNR in dB, between -1000 and 1000"},
    "max_abs": {"type": "number", "minimum": 0, "description": "an absolute difference is at least 0"},
    "min_top1_agreement": {"type": "number", "minimum": 0, "maximum": 1,
                           "description": "a share of the inferences, between 0 and 1"},
}
_PER_RUNTIME = {runtime: {"type": "object", "additionalProperties": False, "properties": _LIMITS}
                for runtime in RUNTIME_UNITS}
_LEVEL = {"type": "object", "additionalProperties": False, "properties": _LIMITS | _PER_RUNTIME}
_RUNTIMES = one_or_list({"enum": list(RUNTIME_UNITS)}, minItems=1)
_NAME = {"type": "string", "minLength": 1}
_FILE = {"type": "string", "minLength": 1, "description": "a file, relative to the deployment file's folder"}
_PACK_4_BIT = "pack_4_bit_weights packs 4-bit weights: set weights_bitwidth: 4, or drop pack_4_bit_weights"
_QUANTIZATION = {  # QuantizeOptions' fields; from_mapping builds the options
    "type": "object", "additionalProperties": False, "properties": {
        "param_quantizer": {"enum": list(QUANTIZERS)},
        "act_quantizer": {"enum": list(QUANTIZERS)},
        "weights_bitwidth": {"type": "integer", "enum": list(WEIGHT_BITWIDTHS)},
        "act_bitwidth": {"type": "integer", "enum": list(ACT_BITWIDTHS)},
        "bias_bitwidth": {"type": "integer", "enum": list(BIAS_BITWIDTHS)},
        "use_per_channel_quantization": {"type": "boolean"},
        "algorithms": one_or_list({"enum": list(ALGORITHMS)}),
        "override_params": _FILE | {"description": "AIMET encodings JSON, relative to the deployment file's folder"},
        "pack_4_bit_weights": {"type": "boolean"},
        "min_range": {"type": "number", "exclusiveMinimum": 0},
        "adaround_iterations": {"type": "integer", "minimum": 1},
    },
    "if": {"required": ["pack_4_bit_weights"], "properties": {"pack_4_bit_weights": {"const": True}}},
    "then": {"required": ["weights_bitwidth"], "description": _PACK_4_BIT,
             "properties": {"weights_bitwidth": {"const": 4, "description": _PACK_4_BIT}}},
}
_MODEL = {
    "type": "object", "required": ["source", "input_list"], "additionalProperties": False, "properties": {
        "source": _FILE, "input_list": _FILE, "labels": _FILE, "calibration_list": _FILE,
        "input_dims": {"type": "object", "additionalProperties": {
            "type": "array", "minItems": 1, "description": "the input's dimensions, e.g. [1, 3, 224, 224]",
            "items": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1,
                      "description": "a dimension is a positive 32-bit integer"}}},
        "out_nodes": one_or_list(_NAME),
        "quantization": _QUANTIZATION,
        "thresholds": _LEVEL | {"properties": _LEVEL["properties"] | {
            "outputs": {"type": "object", "additionalProperties": _LEVEL,
                        "description": "output tensor name -> its limits"}}},
        "runtimes": _RUNTIMES,
    },
}
# The run settings: edgeloop.yaml's `run:` keys, matrix.yaml's keys of the same names and deploy's flags.
# The schema checks their types only; run_setting checks their values, the same for a file and a flag.
RUN_FLAGS = {"runs": "--runs", "timeout_s": "--timeout", "cooldown_temp": "--cooldown-temp", "cpu_mask": "--cpu-mask"}
COOLDOWN_RANGE_C = (1.0, 120.0)  # a cool-down limit outside it is a mistake (a phone idles at 25-40 °C)
MAX_TIMEOUT_S = 7 * 24 * 3600.0
RUN_PROPERTIES: dict[str, Any] = {
    "runs": {"type": "integer"},
    "timeout_s": {"type": "number"},
    "cooldown_temp": {"type": "number"},
    "cpu_mask": {"type": "string", "description": "a hexadecimal mask of CPU cores, quoted where YAML would "
                                                  "read a number: cpu_mask: '10'"},
}
_HISTORY = {"type": ["string", "boolean"], "minLength": 1,  # YAML reads an unquoted `off` as false
            "description": "an SQLite file (relative to the deployment file's folder), a postgresql:// URL, or off"}
_RUN = {"type": "object", "additionalProperties": False, "properties": RUN_PROPERTIES | {"history": _HISTORY}}
SCHEMA: dict[str, Any] = {  # edgeloop.yaml (docs/config.md)
    "type": "object", "required": ["models"], "additionalProperties": False, "properties": {
        "version": {"type": "integer", "const": CONFIG_VERSION,
                    "description": f"this edgeloop reads version {CONFIG_VERSION} of the deployment file"},
        "models": {"type": "object", "minProperties": 1, "additionalProperties": _MODEL,
                   "description": "model name -> its section, at least one"},
        "runtimes": _RUNTIMES,
        "devices": one_or_list(_NAME),
        "pack": _NAME,
        "pack_options": {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"],
                                                                    "minLength": 1}},
        "run": _RUN,
    },
}


def _as_number(value: Any, kind: type[int] | type[float]) -> float:
    """A flag's text or a file's number as `kind`; NaN for anything else, which every rule below refuses."""
    if isinstance(value, bool):
        return math.nan
    try:
        number = kind(value)
    except (TypeError, ValueError, OverflowError):
        return math.nan
    return number if kind is float or number == value or isinstance(value, str) else math.nan


def _run_rule(key: str, value: Any) -> tuple[Any, str, str]:
    """(the normalised value or None when it breaks the rule, the rule in words, an example value)."""
    if key == "runs":
        runs = _as_number(value, int)
        return (int(runs) if runs >= 1 else None), "must be an integer of at least 1", "5"
    if key == "timeout_s":
        seconds = _as_number(value, float)
        return (seconds if 0 < seconds <= MAX_TIMEOUT_S else None), \
            f"must be a positive number of seconds (at most {MAX_TIMEOUT_S:g})", "600"
    if key == "cooldown_temp":
        low, high = COOLDOWN_RANGE_C
        celsius = _as_number(value, float)
        return (celsius if low <= celsius <= high else None), \
            f"must be a temperature in °C from {low:g} to {high:g}", "40"
    mask = value.lower().removeprefix("0x") if isinstance(value, str) else ""  # 240 or 0xf0 in YAML: a number
    valid = re.fullmatch(r"[0-9a-f]{1,16}", mask) is not None and int(mask, 16) != 0
    return (mask if valid else None), "must be a hexadecimal mask of CPU cores", "f0: cores 4-7, as taskset writes it"


def run_setting(key: str, value: Any, where: str | None = None) -> Any:
    """One run setting (a key of RUN_FLAGS) checked and normalised: the rule for deploy's flag, the
    `run:` section and matrix.yaml. `where` names the file's key (`file:line: run.runs`); None, the flag."""
    checked, rule, example = _run_rule(key, value)
    if checked is None:
        if where is None:
            raise EdgeloopError(f"{RUN_FLAGS[key]} {rule}, got {value!r}", f"e.g. {RUN_FLAGS[key]} {example}")
        raise EdgeloopError(f"{where}: {rule}, got {value!r}", f"e.g. {key}: {example}")
    return checked


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
class RunSettings:
    """The `run:` section as written (None where a key is absent: the flag, else the default, applies);
    `history` an absolute SQLite path, a URL, or `off`."""

    runs: int | None = None
    timeout_s: float | None = None
    cooldown_temp: float | None = None
    cpu_mask: str | None = None
    history: str | None = None


@dataclass(frozen=True)
class Config:
    path: Path
    models: dict[str, ModelConfig]
    runtimes: list[str]
    devices: list[str]  # device profile names
    pack: str = "builtin"  # a pack name, or the absolute folder of a pack given relative to the file
    pack_options: dict[str, str] = field(default_factory=dict)  # for bundle(options=...), checked against the pack
    run: RunSettings = field(default_factory=RunSettings)


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
    """Read `path`, check it against SCHEMA, then what a schema cannot know: the files, the
    profiles and pack named, and each source model's graph."""
    path = Path(path).resolve()
    root, data = _read(path)
    run = _run(root, data.get("run", {}), path.parent)
    runtimes = _unique(data.get("runtimes", "cpu"))
    if "devices" in data:
        _check_devices(root.at(["devices"]), listed(data["devices"]))
    pack, pack_options = _pack(root, data, path.parent)
    models = {name: _model(name, root.at(["models", name]), spec, path.parent, runtimes)
              for name, spec in data["models"].items()}
    return Config(path=path, models=models, runtimes=runtimes, devices=_unique(data.get("devices", [])), pack=pack,
                  pack_options=pack_options, run=run)


def read_run_settings(path: Path) -> RunSettings:
    """The `run:` section alone (the file's structure checked, its models not): what deploy needs to
    know before it builds anything, such as where the history is."""
    path = Path(path).resolve()
    root, data = _read(path)
    return _run(root, data.get("run", {}), path.parent)


def _read(path: Path) -> tuple[Node, dict[str, Any]]:
    root = load_yaml_node(path, "deployment file")
    data = root.data()
    validate(root, data, SCHEMA)
    return root, data


def _run(root: Node, spec: dict[str, Any], base: Path) -> RunSettings:
    """The run section valid by SCHEMA, its values checked by run_setting at their lines."""
    values = {}
    for key, value in spec.items():
        node = root.at(["run", key])
        if key == "history":  # a URL or `off` as written (harness.history.location reads them), else a file
            if value is True:
                node.fail("must be an SQLite file, a postgresql:// URL or off, got true", _HISTORY["description"])
            value = "off" if value is False else value
            plain = "://" in value or value.strip().lower() == "off"
            values[key] = value if plain else str((base / Path(value).expanduser()).resolve())
        else:
            values[key] = run_setting(key, value, f"{node.file}:{node.line}: {node.key}")
    return RunSettings(**values)


def _check_devices(node: Node, names: list[str]) -> None:
    """Each device names a profile (shipped, or in $EDGELOOP_PROFILES)."""
    profiles = available_profiles()
    for item, name in zip(node.listed(), names, strict=True):
        if name not in profiles:
            item.fail(f"unknown device profile '{name}'", did_you_mean(name, profiles))


def _unique(value: str | list[str]) -> list[str]:
    """A one-or-list of names as a list, each once."""
    return list(dict.fromkeys(listed(value)))


def _pack(root: Node, data: dict[str, Any], base: Path) -> tuple[str, dict[str, str]]:
    """The pack (a known name, or a folder relative to the file) and its options, both checked now."""
    pack = data.get("pack", "builtin")
    if "pack" in data and (base / pack / "pack.yaml").is_file():
        pack = str((base / pack).resolve())
    elif pack not in available_packs():
        root.at(["pack"]).fail(f"unknown runtime pack '{pack}'", did_you_mean(pack, available_packs()))
    if "pack_options" not in data:
        return pack, {}
    spec = load_pack(pack)
    options = {}
    for key in data["pack_options"]:
        if key not in spec.options:
            root.at(["pack_options"]).unknown(key, spec.options)
        node = root.at(["pack_options", key])
        value = str(node.node.value)  # as written: `profiling_level: off` is the string "off", not false
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


def _model(name: str, node: Node, spec: dict[str, Any], base: Path, default_runtimes: list[str]) -> ModelConfig:
    """One model section, valid by SCHEMA, with its files found and checked against its source."""
    source, input_list = _file(node.at(["source"]), base), _file(node.at(["input_list"]), base)
    optional = {key: _file(node.at([key]), base) if key in spec else None for key in ("labels", "calibration_list")}
    if optional["labels"] is not None:
        _check_labels(node.at(["labels"]), optional["labels"], input_list)
    input_dims = {name: list(dims) for name, dims in spec.get("input_dims", {}).items()}
    out_nodes = listed(spec.get("out_nodes", []))
    _check_against_source(node, spec, source, input_dims, out_nodes)
    return ModelConfig(
        name=name,
        source=source,
        input_list=input_list,
        input_dims=input_dims,
        out_nodes=out_nodes,
        labels=optional["labels"],
        calibration_list=optional["calibration_list"],
        quantization=_quantization(node, spec, base),
        thresholds=_thresholds(spec.get("thresholds", {})),
        runtimes=_unique(spec["runtimes"]) if "runtimes" in spec else list(default_runtimes),
    )


def _file(node: Node, base: Path) -> Path:
    """An existing file, relative to `base` (the deployment file's folder) unless absolute or `~/...`."""
    path = (base / Path(node.value()).expanduser()).resolve()
    if path.is_dir():
        node.fail(f"{path} is a folder, not a file")
    if not path.is_file():
        node.fail(f"file not found: {path}")
    return path


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


def _check_against_source(node: Node, spec: dict[str, Any], source: Path, input_dims: dict[str, list[int]],
                          out_nodes: list[str]) -> None:
    """input_dims, out_nodes and per-output thresholds name what the source ONNX graph has, so a
    mistake is reported at its line now, not by convert without one (or, for thresholds, never)."""
    graph = _SourceGraph.read(node.at(["source"]), source, out_nodes)
    if graph is None:
        return
    if "input_dims" in spec:
        _check_input_dims(node.at(["input_dims"]), input_dims, graph)
    _check_concrete_inputs(node.at(["input_dims"]) if "input_dims" in spec else node, input_dims, graph)
    outputs = _check_out_nodes(node.at(["out_nodes"]), out_nodes, graph) if out_nodes else graph.outputs
    # a limit for an output the model does not have would never be applied: a mistake, not a no-op
    for name in spec.get("thresholds", {}).get("outputs", {}):
        if name not in outputs:
            node.at(["thresholds", "outputs"]).unknown(name, outputs, what="output")


def _check_input_dims(node: Node, input_dims: dict[str, list[int]], graph: _SourceGraph) -> None:
    """Every name in input_dims is a model input, given as many dims as its rank."""
    for name, dims in input_dims.items():
        if name not in graph.inputs:
            node.unknown(name, graph.inputs, what="input")
        declared = graph.inputs[name]
        if declared is not None and len(declared) != len(dims):
            node.at([name]).fail(f"{len(dims)} dims given, input '{name}' has rank {len(declared)} {declared}",
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


def _check_out_nodes(node: Node, names: list[str], graph: _SourceGraph) -> list[str]:
    """Each out_node names a node or a tensor some node computes; returns the output tensors they make."""
    outputs = []
    for item, name in zip(node.listed(), names, strict=True):
        if name in graph.inputs:
            item.fail(f"'{name}' is an input of the model, which no node computes",
                      "name a node, or a tensor that a node produces")
        if name not in graph.tensors and name not in graph.node_outputs:
            item.fail(f"'{name}' is not a node or tensor of the model",
                      did_you_mean(name, graph.tensors | set(graph.node_outputs)))
        outputs.append(name if name in graph.tensors else graph.node_outputs[name])
    return list(dict.fromkeys(outputs))


def _quantization(node: Node, spec: dict[str, Any], base: Path) -> QuantizeOptions:
    """The options SCHEMA let through, built by QuantizeOptions (which also builds them from flags)."""
    options = dict(spec.get("quantization", {}))
    section = node.at(["quantization"])
    if "override_params" in options:
        options["override_params"] = _file(section.at(["override_params"]), base)
    return QuantizeOptions.from_mapping(options, f"{section.file}:{section.line}: {section.key}")


def _thresholds(spec: dict[str, Any]) -> Thresholds:
    """A thresholds section (or one output's) valid by SCHEMA."""
    return Thresholds(common={k: float(v) for k, v in spec.items() if k in _LIMITS},
                      runtimes={rt: {k: float(v) for k, v in spec[rt].items()} for rt in RUNTIME_UNITS if rt in spec},
                      outputs={name: _thresholds(level) for name, level in spec.get("outputs", {}).items()})
