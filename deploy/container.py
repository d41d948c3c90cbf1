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

META_KEY = "edgeloop"
META_SCHEMA = 1


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
    for prop in model.metadata_props:
        if prop.key == META_KEY:
            return ContainerMeta.from_json(json.loads(prop.value))
    raise EdgeloopError(f"{path}: not an edgeloop container (no '{META_KEY}' metadata)",
                        "make one with `invoke convert`")


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
