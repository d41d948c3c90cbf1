"""AIMET encodings JSON (docs/spec.md §6): export 0.6.1 and 1.0.0, import 0.6.1, 1.0.0 and 2.0.0.

These files are how encodings travel to vendor converters (`--quantization_overrides`) and how
users pin encodings (`--override-params`). Offsets are SNPE offsets (<= 0); a positive offset
in a 0.6.1 file is read as a zero point (files in the wild use both), i.e. negated.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from deploy.errors import EdgeloopError
from deploy.fsutil import atomic_write_text
from deploy.quantize.encodings import Encoding, float_encoding, tf_encoding
from deploy.quantize.plan import Overrides, Plan
from deploy.yamlnode import load_json

INT_BITWIDTHS = (4, 8, 16, 32)
EXPORT_VERSIONS = ("0.6.1", "1.0.0", "2.0.0")


def plan_encodings(plan: Plan) -> tuple[dict[str, Encoding], dict[str, Encoding]]:
    """Activation and param encodings of a plan, biases included, in graph order."""
    params = dict(plan.params)
    params.update({bias: plan.bias_encoding(bias) for bias in plan.biases})
    return dict(plan.activations), params


def _v1_entry(name: str, enc: Encoding) -> dict[str, Any]:
    if enc.is_float:
        return {"name": name, "enc_type": "PER_TENSOR", "dtype": "FLOAT", "bw": enc.bw}
    return {"name": name, "enc_type": "PER_CHANNEL" if enc.axis is not None else "PER_TENSOR", "dtype": "INT",
            "bw": enc.bw, "is_sym": enc.symmetric, "scale": np.atleast_1d(enc.scale).tolist(),
            "offset": [int(o) for o in np.atleast_1d(enc.offset)]}


def _legacy_entries(enc: Encoding) -> list[dict[str, Any]]:
    if enc.is_float:
        return [{"bitwidth": enc.bw, "dtype": "float"}]
    return [{"bitwidth": enc.bw, "dtype": "int", "is_symmetric": str(enc.symmetric), "max": float(mx),
             "min": float(mn), "offset": int(o), "scale": float(s)}
            for s, o, mn, mx in zip(np.atleast_1d(enc.scale), np.atleast_1d(enc.offset),
                                    np.atleast_1d(enc.min), np.atleast_1d(enc.max), strict=True)]


def _v2_entry(name: str, enc: Encoding) -> dict[str, Any]:
    if enc.is_float:
        return {"name": name, "output_dtype": f"float{enc.bw}"}
    entry: dict[str, Any] = {"name": name, "output_dtype": f"{'int' if enc.symmetric else 'uint'}{enc.bw}",
                             "y_scale": np.asarray(enc.scale).tolist(),
                             "y_zero_point": enc.zero_point().astype(np.int64).tolist()}
    if enc.axis is not None:
        entry["axis"] = enc.axis
    return entry


def export_encodings(activations: dict[str, Encoding], params: dict[str, Encoding], version: str = "1.0.0",
                     quantizer_args: dict[str, Any] | None = None) -> dict[str, Any]:
    if version == "1.0.0":
        return {"version": "1.0.0",
                "activation_encodings": [_v1_entry(n, e) for n, e in activations.items()],
                "param_encodings": [_v1_entry(n, e) for n, e in params.items()],
                "excluded_layers": [], "quantizer_args": quantizer_args or {}}
    if version == "0.6.1":
        return {"version": "0.6.1",
                "activation_encodings": {n: _legacy_entries(e) for n, e in activations.items()},
                "param_encodings": {n: _legacy_entries(e) for n, e in params.items()},
                "excluded_layers": [], "quantizer_args": quantizer_args or {}}
    if version == "2.0.0":
        return {"version": "2.0.0", "encodings": [_v2_entry(n, e) for n, e in [*activations.items(),
                                                                              *params.items()]]}
    raise EdgeloopError(f"cannot export AIMET encodings version {version}",
                        f"choose one of {', '.join(EXPORT_VERSIONS)}")


def write_encodings(path: str | os.PathLike[str], data: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(data, indent=1) + "\n")


_BLOCKWISE = "block-wise encodings (PER_BLOCK, LPBQ, VECTOR, block_size) are not supported"
_NUMBERS = {"type": "array", "minItems": 1, "items": {"type": "number"}}
_INTEGERS = {"type": "array", "minItems": 1, "items": {"type": "integer"}}
_SECTIONS = {"excluded_layers": {"type": "array"}, "quantizer_args": {"type": "object"}}
_LEGACY_ENTRY = {"type": "object", "required": ["bitwidth"], "additionalProperties": False, "properties": {
    "bitwidth": {"type": "integer"}, "dtype": {"enum": ["int", "float"]},
    "is_symmetric": {"enum": ["True", "False", "true", "false"], "description": 'the string "True" or "False"'},
    "min": {"type": "number"}, "max": {"type": "number"}, "scale": {"type": "number"}, "offset": {"type": "integer"}}}
_LEGACY = {"type": "object", "additionalProperties": False, "properties": {
    "version": {"const": "0.6.1"}, **_SECTIONS,
    **{key: {"type": "object", "additionalProperties": {
        "oneOf": [_LEGACY_ENTRY, {"type": "array", "minItems": 1, "items": _LEGACY_ENTRY}]}}
       for key in ("activation_encodings", "param_encodings")}}}
_V1_ENTRY = {"type": "object", "required": ["name", "bw"], "additionalProperties": False, "properties": {
    "name": {"type": "string"}, "enc_type": {"enum": ["PER_TENSOR", "PER_CHANNEL"], "description": _BLOCKWISE},
    "dtype": {"enum": ["INT", "FLOAT"]}, "bw": {"type": "integer"}, "is_sym": {"type": "boolean"},
    "scale": _NUMBERS, "offset": _INTEGERS}}
_V1 = {"type": "object", "additionalProperties": False, "properties": {
    "version": {"const": "1.0.0"}, **_SECTIONS,
    "activation_encodings": {"type": "array", "items": _V1_ENTRY},
    "param_encodings": {"type": "array", "items": _V1_ENTRY}}}
_V2_ENTRY = {"type": "object", "required": ["name", "output_dtype"], "additionalProperties": False, "properties": {
    "name": {"type": "string"},
    "output_dtype": {"enum": [f"{sign}int{bw}" for bw in INT_BITWIDTHS for sign in ("u", "")] + ["float16", "float32"]},
    "y_scale": {"type": ["number", "array"], "minItems": 1, "items": {"type": "number"}},
    "y_zero_point": {"type": ["integer", "array"], "minItems": 1, "items": {"type": "integer"}},
    "axis": {"type": "integer"}}}
_V2 = {"type": "object", "required": ["encodings"], "additionalProperties": False, "properties": {
    "version": {"const": "2.0.0"}, "encodings": {"type": "array", "items": _V2_ENTRY}}}
_VERSION = {"enum": list(EXPORT_VERSIONS), "description": "AIMET encodings 0.6.1 (the default), 1.0.0 or 2.0.0"}
SCHEMA: dict[str, Any] = {  # the three AIMET encodings formats (docs/spec.md §6), told apart by `version`
    "type": "object", "properties": {"version": _VERSION},
    "if": {"required": ["version"], "properties": {"version": {"const": "2.0.0"}}}, "then": _V2,
    "else": {"if": {"required": ["version"], "properties": {"version": {"const": "1.0.0"}}}, "then": _V1,
             "else": {"if": {"properties": {"version": {"const": "0.6.1"}}}, "then": _LEGACY}}}  # also without one
MAX_BYTES = 256 << 20  # per-channel encodings of a large model run to tens of MiB


class _Reader:
    """Turns one file's entries (valid by SCHEMA) into Encodings; what a schema cannot say (a scale
    that is not positive, min above max, an offset past the bitwidth) names the file and tensor."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, name: str, what: str) -> EdgeloopError:
        return EdgeloopError(f"{self.source}: encoding of '{name}': {what}",
                             "see docs/quantization.md for the AIMET formats")

    def bitwidth(self, name: str, value: int, is_float: bool) -> int:
        allowed = (16, 32) if is_float else INT_BITWIDTHS
        if value not in allowed:
            raise self.fail(name, f"bitwidth {value!r} is not one of {', '.join(map(str, allowed))}"
                            f" for {'float' if is_float else 'int'}")
        return value

    def legacy(self, name: str, entries: dict[str, Any] | list[dict[str, Any]]) -> Encoding:
        entries = entries if isinstance(entries, list) else [entries]
        first = entries[0]
        is_float = first.get("dtype", "int") == "float"
        bw = self.bitwidth(name, first["bitwidth"], is_float)
        if is_float:
            return float_encoding(bw)
        symmetric = first.get("is_symmetric", "False").lower() == "true"
        if not any(k in first for k in ("scale", "min", "max")):
            return Encoding(bw=bw, symmetric=symmetric)
        scales, offsets = [], []
        for entry in entries:
            if "scale" in entry and "offset" in entry:
                offset = entry["offset"]
                scales.append(float(entry["scale"]))
                offsets.append(-offset if offset > 0 else offset)
            elif "min" in entry and "max" in entry:
                if entry["min"] > entry["max"]:
                    raise self.fail(name, f"min {entry['min']} is above max {entry['max']}")
                enc = tf_encoding(entry["min"], entry["max"], bw)
                scales.append(float(enc.scale))
                offsets.append(int(enc.offset))
            else:
                raise self.fail(name, "needs scale and offset, or min and max")
        return self.make(name, bw, scales, offsets, symmetric)

    def make(self, name: str, bw: int, scales: list[float], offsets: list[int], symmetric: bool) -> Encoding:
        if not all(0 < s < float("inf") for s in scales):
            raise self.fail(name, "scale must be a finite number > 0")
        if any(o > 0 or o < -((1 << bw) - 1) for o in offsets):
            raise self.fail(name, f"offset out of range for {bw} bits")
        many = len(scales) > 1
        return Encoding(bw=bw, scale=np.asarray(scales if many else scales[0], dtype=np.float64),
                        offset=np.asarray(offsets if many else offsets[0], dtype=np.int64), symmetric=symmetric,
                        axis=0 if many else None)

    def v1(self, entry: dict[str, Any]) -> tuple[str, Encoding]:
        name = entry["name"]
        is_float = entry.get("dtype", "INT") == "FLOAT"
        bw = self.bitwidth(name, entry["bw"], is_float)
        if is_float:
            return name, float_encoding(bw)
        symmetric = entry.get("is_sym", False)
        if "scale" not in entry:
            return name, Encoding(bw=bw, symmetric=symmetric)
        scales = [float(s) for s in entry["scale"]]
        offsets = [int(o) for o in entry.get("offset", [0] * len(scales))]
        if len(offsets) != len(scales):
            raise self.fail(name, "scale and offset lists differ in length")
        return name, self.make(name, bw, scales, offsets, symmetric)

    def v2(self, entry: dict[str, Any]) -> tuple[str, Encoding]:
        name, dtype = entry["name"], entry["output_dtype"]
        if dtype.startswith("float"):
            return name, float_encoding(int(dtype[5:]))
        signed = dtype.startswith("int")
        bw = int(dtype.removeprefix("u").removeprefix("int"))
        scales = [float(s) for s in np.atleast_1d(entry.get("y_scale", []))]
        zps = [int(z) for z in np.atleast_1d(entry.get("y_zero_point", [0] * len(scales)))]
        if not scales or len(zps) != len(scales):
            raise self.fail(name, "needs y_scale and a matching y_zero_point")
        if signed and any(zps):
            raise self.fail(name, "signed encodings need zero point 0")
        offsets = [-(1 << (bw - 1))] * len(zps) if signed else [-z for z in zps]
        return name, self.make(name, bw, scales, offsets, signed)


def parse_encodings(data: dict[str, Any], source: str, param_names: set[str]) -> Overrides:
    """Read encodings valid by SCHEMA (any supported AIMET version); 2.0.0 has one list, split by
    whether a name is a param."""
    reader = _Reader(source)
    version = data.get("version", "0.6.1")
    overrides = Overrides()
    if version == "2.0.0":
        for entry in data["encodings"]:
            name, enc = reader.v2(entry)
            (overrides.params if name in param_names else overrides.activations)[name] = enc
        return overrides
    args = data.get("quantizer_args")
    if isinstance(args, dict) and isinstance(args.get("algorithms"), list):
        overrides.algorithms = tuple(str(a) for a in args["algorithms"])
    for key, target in (("activation_encodings", overrides.activations), ("param_encodings", overrides.params)):
        section = data.get(key, {})
        if version == "1.0.0":
            target.update(reader.v1(entry) for entry in section)
        else:
            target.update((name, reader.legacy(name, entries)) for name, entries in section.items())
    return overrides


def read_encodings(path: str | os.PathLike[str], param_names: set[str]) -> Overrides:
    data = load_json(Path(path), "encodings file", SCHEMA, MAX_BYTES)
    return parse_encodings(data, str(path), param_names)
