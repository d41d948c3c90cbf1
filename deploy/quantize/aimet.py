"""AIMET encodings JSON (SPEC §6): export 0.6.1 and 1.0.0, import 0.6.1, 1.0.0 and 2.0.0.

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


class _Reader:
    """Turns one file's entries into Encodings, naming the file and tensor in every error."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, name: str, what: str) -> EdgeloopError:
        return EdgeloopError(f"{self.source}: encoding of '{name}': {what}",
                             "see docs/quantization.md for the AIMET formats")

    def bitwidth(self, name: str, value: Any, is_float: bool) -> int:
        allowed = (16, 32) if is_float else INT_BITWIDTHS
        if isinstance(value, bool) or not isinstance(value, int | float) or int(value) not in allowed:
            raise self.fail(name, f"bitwidth {value!r} is not one of {', '.join(map(str, allowed))}"
                            f" for {'float' if is_float else 'int'}")
        return int(value)

    def number(self, name: str, entry: dict[str, Any], key: str) -> float:
        try:
            return float(entry[key])
        except (TypeError, ValueError):
            raise self.fail(name, f"'{key}' is not a number: {entry[key]!r}") from None

    def legacy(self, name: str, entries: Any) -> Encoding:
        if isinstance(entries, dict):
            entries = [entries]
        if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
            raise self.fail(name, "expected a list of encoding objects")
        first = entries[0]
        is_float = str(first.get("dtype", "int")).lower() == "float"
        bw = self.bitwidth(name, first.get("bitwidth"), is_float)
        if is_float:
            return float_encoding(bw)
        symmetric = str(first.get("is_symmetric", "False")).lower() == "true"
        if not any(k in first for k in ("scale", "min", "max")):
            return Encoding(bw=bw, symmetric=symmetric)
        scales, offsets = [], []
        for entry in entries:
            if "scale" in entry and "offset" in entry:
                offset = round(self.number(name, entry, "offset"))
                scales.append(self.number(name, entry, "scale"))
                offsets.append(-offset if offset > 0 else offset)
            elif "min" in entry and "max" in entry:
                enc = tf_encoding(self.number(name, entry, "min"), self.number(name, entry, "max"), bw)
                scales.append(float(enc.scale))
                offsets.append(int(enc.offset))
            else:
                raise self.fail(name, "needs scale and offset, or min and max")
        return self.make(name, bw, scales, offsets, symmetric)

    def make(self, name: str, bw: int, scales: list[float], offsets: list[int], symmetric: bool) -> Encoding:
        if any(not s > 0 for s in scales):
            raise self.fail(name, "scale must be > 0")
        if any(o > 0 or o < -((1 << bw) - 1) for o in offsets):
            raise self.fail(name, f"offset out of range for {bw} bits")
        many = len(scales) > 1
        return Encoding(bw=bw, scale=np.asarray(scales if many else scales[0], dtype=np.float64),
                        offset=np.asarray(offsets if many else offsets[0], dtype=np.int64), symmetric=symmetric,
                        axis=0 if many else None)

    def v1(self, entry: Any) -> tuple[str, Encoding]:
        if not isinstance(entry, dict) or "name" not in entry:
            raise EdgeloopError(f"{self.source}: every 1.0.0 encoding needs a 'name'")
        name = str(entry["name"])
        is_float = str(entry.get("dtype", "INT")).upper() == "FLOAT"
        bw = self.bitwidth(name, entry.get("bw"), is_float)
        if is_float:
            return name, float_encoding(bw)
        symmetric = bool(entry.get("is_sym", False))
        if "scale" not in entry:
            return name, Encoding(bw=bw, symmetric=symmetric)
        scales = [float(s) for s in np.atleast_1d(entry["scale"])]
        offsets = [round(float(o)) for o in np.atleast_1d(entry.get("offset", [0] * len(scales)))]
        if len(offsets) != len(scales):
            raise self.fail(name, "scale and offset lists differ in length")
        return name, self.make(name, bw, scales, offsets, symmetric)

    def v2(self, entry: Any) -> tuple[str, Encoding]:
        if not isinstance(entry, dict) or "name" not in entry:
            raise EdgeloopError(f"{self.source}: every 2.0.0 encoding needs a 'name'")
        name = str(entry["name"])
        dtype = str(entry.get("output_dtype", ""))
        if dtype in ("float16", "float32"):
            return name, float_encoding(int(dtype[5:]))
        signed = dtype.startswith("int")
        try:
            bw = self.bitwidth(name, int(dtype.removeprefix("u").removeprefix("int")), False)
        except ValueError:
            raise self.fail(name, f"unknown output_dtype {dtype!r}") from None
        if "block_size" in entry:
            raise self.fail(name, "block-wise encodings are not supported")
        scales = [float(s) for s in np.atleast_1d(entry.get("y_scale", []))]
        zps = [int(z) for z in np.atleast_1d(entry.get("y_zero_point", [0] * len(scales)))]
        if not scales or len(zps) != len(scales):
            raise self.fail(name, "needs y_scale and a matching y_zero_point")
        if signed and any(zps):
            raise self.fail(name, "signed encodings need zero point 0")
        offsets = [-(1 << (bw - 1))] * len(zps) if signed else [-z for z in zps]
        return name, self.make(name, bw, scales, offsets, signed)


def parse_encodings(data: Any, source: str, param_names: set[str]) -> Overrides:
    """Read any supported AIMET version; 2.0.0 has one list, split by whether a name is a param."""
    if not isinstance(data, dict):
        raise EdgeloopError(f"{source}: an encodings file must be a JSON object")
    reader = _Reader(source)
    version = str(data.get("version", "0.6.1"))
    overrides = Overrides()
    if version == "2.0.0":
        for entry in data.get("encodings", []):
            name, enc = reader.v2(entry)
            (overrides.params if name in param_names else overrides.activations)[name] = enc
        return overrides
    args = data.get("quantizer_args")
    if isinstance(args, dict) and isinstance(args.get("algorithms"), list):
        overrides.algorithms = tuple(str(a) for a in args["algorithms"])
    if version not in ("0.6.1", "1.0.0"):
        raise EdgeloopError(f"{source}: unsupported encodings version {version}", "use 0.6.1, 1.0.0 or 2.0.0")
    for key, target in (("activation_encodings", overrides.activations), ("param_encodings", overrides.params)):
        section = data.get(key, [] if version == "1.0.0" else {})
        if version == "1.0.0" and isinstance(section, list):
            target.update(reader.v1(entry) for entry in section)
        elif isinstance(section, dict):
            target.update((name, reader.legacy(name, entries)) for name, entries in section.items())
        else:
            raise EdgeloopError(f"{source}: '{key}' must be a {'list' if version == '1.0.0' else 'mapping'}")
    return overrides


def read_encodings(path: str | os.PathLike[str], param_names: set[str]) -> Overrides:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise EdgeloopError(f"{path}: cannot read encodings ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise EdgeloopError(f"{path}: not a text file, so not AIMET encodings JSON",
                            "pass the .json encodings file (0.6.1, 1.0.0 or 2.0.0)") from None
    except json.JSONDecodeError as exc:
        raise EdgeloopError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    return parse_encodings(data, str(path), param_names)
