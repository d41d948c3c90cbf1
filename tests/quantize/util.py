"""Helpers for the quantizer tests: float containers and calibration lists from test models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from deploy.container import ContainerMeta, TensorInfo, save_container
from deploy.inputlist import write_input_list


def _infos(values: list[onnx.ValueInfoProto]) -> list[TensorInfo]:
    return [TensorInfo(v.name, tuple(d.dim_value for d in v.type.tensor_type.shape.dim)) for v in values]


def make_container(model: onnx.ModelProto, path: Path) -> Path:
    initializers = {i.name for i in model.graph.initializer}
    meta = ContainerMeta(kind="float", inputs=_infos([v for v in model.graph.input if v.name not in initializers]),
                         outputs=_infos(list(model.graph.output)), source_sha256="test")
    return save_container(model, meta, path)


def make_input_list(model: onnx.ModelProto, folder: Path, count: int, seed: int = 0, scale: float = 1.0) -> Path:
    """`count` random inferences as raw files plus input_list.txt (name:=path lines)."""
    rng = np.random.default_rng(seed)
    inputs = _infos(list(model.graph.input))
    entries = []
    for i in range(count):
        entry = {}
        for tensor in inputs:
            path = folder / f"{tensor.name}_{i}.raw"
            (rng.standard_normal(tensor.shape) * scale).astype(np.float32).tofile(path)
            entry[tensor.name] = path.name
        entries.append(entry)
    list_path = folder / "input_list.txt"
    write_input_list(list_path, entries)
    return list_path
