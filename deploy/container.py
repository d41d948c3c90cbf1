"""Containers: ONNX files whose metadata says what they are (the contract every stage reads).

A float container is the normalised float graph; a quantized container is a QDQ graph whose
metadata also carries the encodings. The metadata lives under one `metadata_props` key,
`edgeloop`, as JSON (see docs/containers.md).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from deploy import TOOL_VERSION
from deploy.errors import EdgeloopError
from deploy.fsutil import atomic_path
from deploy.yamlnode import problem

META_KEY = "edgeloop"
META_SCHEMA = 1
MAX_DIM = 2**31 - 1  # what runtimes index a dimension with (int32)
MAX_TENSOR_BYTES = 1 << 31  # 2 GiB: one input or output of a model meant for a phone, far beyond any real one
DTYPES = ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float16", "float32",
          "float64")
_TENSOR = {"type": "object", "required": ["name", "shape"], "properties": {
    "name": {"type": "string", "minLength": 1},
    "shape": {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": MAX_DIM}},
    "dtype": {"enum": list(DTYPES)},
    "layout": {"type": "string"}}}
META_JSON_SCHEMA: dict[str, Any] = {"type": "object", "required": ["kind", "inputs", "outputs"], "properties": {
    "schema": {"type": "integer"},
    "kind": {"enum": ["float", "quantized"]},
    "inputs": {"type": "array", "items": _TENSOR},
    "outputs": {"type": "array", "items": _TENSOR},
    "source_sha256": {"type": "string"},
    "tool_version": {"type": "string"},
    "options": {"type": "object"},
    "encodings": {"type": ["object", "null"]},
    "quantization": {"type": ["object", "null"]}}}


def shape_problem(shape: tuple[int, ...] | list[int], dtype: str = "float32") -> str | None:
    """What is wrong with a tensor's shape (a dim beyond MAX_DIM, more than MAX_TENSOR_BYTES in all),
    or None: convert's --input-dim and a container's metadata are held to the same bounds."""
    if any(d < 1 or d > MAX_DIM for d in shape):
        return f"dims must be from 1 to {MAX_DIM}"
    if math.prod(shape) * np.dtype(dtype).itemsize > MAX_TENSOR_BYTES:
        return f"a tensor of shape {list(shape)} would hold more than {MAX_TENSOR_BYTES >> 30} GiB"
    return None


@dataclass(frozen=True)
class TensorInfo:
    """A graph input or output as it crosses the device boundary (raw files, Result_N)."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"  # numpy dtype name
    layout: str = ""  # "NCHW", "NHWC", "NC", ... or "" when unknown

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.size * np.dtype(self.dtype).itemsize

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype, "layout": self.layout}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TensorInfo:
        return cls(data["name"], tuple(int(d) for d in data["shape"]), data.get("dtype", "float32"),
                   data.get("layout", ""))


@dataclass
class ContainerMeta:
    kind: str  # "float" or "quantized"
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    source_sha256: str = ""
    tool_version: str = TOOL_VERSION
    options: dict[str, Any] = field(default_factory=dict)
    # Quantized containers: AIMET 1.0.0-style encodings and the quantizer's own summary.
    encodings: dict[str, Any] | None = None
    quantization: dict[str, Any] | None = None

    @property
    def quantized(self) -> bool:
        return self.kind == "quantized"

    def input(self, name: str) -> TensorInfo:
        return _by_name(self.inputs, name, "input")

    def output(self, name: str) -> TensorInfo:
        return _by_name(self.outputs, name, "output")

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["schema"] = META_SCHEMA
        data["inputs"] = [t.to_json() for t in self.inputs]
        data["outputs"] = [t.to_json() for t in self.outputs]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ContainerMeta:
        return cls(
            kind=data["kind"],
            inputs=[TensorInfo.from_json(t) for t in data["inputs"]],
            outputs=[TensorInfo.from_json(t) for t in data["outputs"]],
            source_sha256=data.get("source_sha256", ""),
            tool_version=data.get("tool_version", ""),
            options=data.get("options", {}),
            encodings=data.get("encodings"),
            quantization=data.get("quantization"),
        )


def _by_name(tensors: list[TensorInfo], name: str, what: str) -> TensorInfo:
    for tensor in tensors:
        if tensor.name == name:
            return tensor
    names = ", ".join(t.name for t in tensors)
    raise EdgeloopError(f"unknown {what} tensor '{name}'", f"the container's {what}s are: {names}")


def load_model(path: str | os.PathLike[str]) -> onnx.ModelProto:
    """Load an ONNX file, turning every way it can be broken into one clear error."""
    path = Path(path)
    if not path.is_file():
        raise EdgeloopError(f"{path}: no such file")
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as exc:  # onnx raises DecodeError, ValidationError, OSError...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EdgeloopError(f"{path}: not a valid ONNX model ({first})", "re-export the model") from None
    return model


def read_meta(model: onnx.ModelProto, path: str | os.PathLike[str] = "<model>") -> ContainerMeta:
    """The container's metadata, checked once here against META_JSON_SCHEMA and the shape bounds, so
    no later stage meets a damaged entry (a list, an unknown dtype, a negative shape)."""
    for prop in model.metadata_props:
        if prop.key == META_KEY:
            return ContainerMeta.from_json(_checked_meta(prop.value, path))
    raise EdgeloopError(f"{path}: not an edgeloop container (no '{META_KEY}' metadata)",
                        "make one with `invoke convert`")


def _checked_meta(text: str, path: str | os.PathLike[str]) -> dict[str, Any]:
    def damaged(why: str) -> EdgeloopError:
        return EdgeloopError(f"{path}: not an edgeloop container (its '{META_KEY}' metadata {why})",
                             "convert the model again")

    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise damaged(f"is not valid JSON: {str(exc).splitlines()[0][:80]}") from None
    why = problem(data, META_JSON_SCHEMA)
    if why is not None:
        raise damaged(why)
    for group in ("inputs", "outputs"):
        for i, tensor in enumerate(data[group]):
            why = shape_problem(tensor["shape"], tensor.get("dtype", "float32"))
            if why is not None:
                raise damaged(f"{group}[{i}].shape: {why}")
    return data


def load_container(path: str | os.PathLike[str]) -> tuple[onnx.ModelProto, ContainerMeta]:
    model = load_model(path)
    return model, read_meta(model, path)


def write_meta(model: onnx.ModelProto, meta: ContainerMeta) -> None:
    value = json.dumps(meta.to_json(), sort_keys=True)
    for prop in model.metadata_props:
        if prop.key == META_KEY:
            prop.value = value
            return
    model.metadata_props.add(key=META_KEY, value=value)


def save_container(model: onnx.ModelProto, meta: ContainerMeta, path: str | os.PathLike[str]) -> Path:
    """Write the container atomically; the same graph and metadata give the same bytes."""
    write_meta(model, meta)
    with atomic_path(path) as tmp:
        onnx.save(model, str(tmp))
    return Path(path)
