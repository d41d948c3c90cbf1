"""The float reference: the float container run on the host with onnxruntime, cached by content.

Its outputs are what every device run is judged against, so they come from the float container
(the normalised source graph), never from a quantized one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from deploy.cache import cached
from deploy.container import TensorInfo, load_container
from deploy.fsutil import sha256_file
from deploy.inputlist import bind_entry, iter_feeds, read_input_list

FILENAME = "reference.npz"

Outputs = dict[str, list[np.ndarray]]  # output name -> one array per inference


def _key(name: str, index: int) -> str:
    return f"{index}/{name}"


def _input_hashes(input_list: Path, inputs: list[TensorInfo]) -> list[dict[str, str]]:
    """The content of every input file, line by line: what the reference depends on, not the paths."""
    parsed = read_input_list(input_list)
    return [{name: sha256_file(parsed.resolve(path)) for name, path in
             bind_entry(entry, inputs, f"{input_list} line {i}").items()}
            for i, entry in enumerate(parsed.entries, 1)]


def compute_reference(container: Path, input_list: Path) -> tuple[list[TensorInfo], Outputs]:
    """Run every line of the input list through the float container on the host CPU."""
    model, meta = load_container(container)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [t.name for t in meta.outputs]
    outputs: Outputs = {name: [] for name in names}
    for feed in iter_feeds(read_input_list(input_list), meta.inputs, str(input_list)):
        for name, value in zip(names, session.run(names, feed), strict=True):
            outputs[name].append(np.asarray(value))
    return meta.outputs, outputs


def reference_outputs(container: Path, input_list: Path, *, cache: bool = True,
                      root: Path | None = None) -> tuple[Outputs, bool]:
    """Reference outputs per output tensor; the bool says whether they came from the cache."""
    _, meta = load_container(container)
    if not cache:
        return compute_reference(container, input_list)[1], False

    def build(tmp: Path) -> None:
        tensors, outputs = compute_reference(container, input_list)
        np.savez(tmp / FILENAME, **{_key(t.name, i): a for t in tensors for i, a in enumerate(outputs[t.name])})

    key = {"container_sha256": sha256_file(container), "inputs": _input_hashes(input_list, meta.inputs),
           "onnxruntime": ort.__version__}
    result = cached("reference", key, build, FILENAME, root=root)
    with np.load(result.path) as data:
        count = len(data.files) // max(len(meta.outputs), 1)
        return {t.name: [data[_key(t.name, i)] for i in range(count)] for t in meta.outputs}, result.hit
