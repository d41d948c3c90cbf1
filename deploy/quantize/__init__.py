"""The quantizer: float container + calibration input list -> QDQ container with AIMET encodings.

`quantize()` is the public entry point (the `quantize` task, the deploy loop and the emulated
DSP runtime call it). The result is cached by content: the container, the input list and every
raw file it names, and the options.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import onnx

from deploy.cache import build_root, cached
from deploy.container import ContainerMeta, load_container, save_container
from deploy.errors import EdgeloopError
from deploy.fsutil import atomic_path, check_writable, refuse_overwriting, sha256_file
from deploy.inputlist import InputList, read_input_list, validate_input_list
from deploy.quantize.aimet import export_encodings, plan_encodings, write_encodings
from deploy.quantize.options import QuantizeOptions
from deploy.quantize.pipeline import MEASURED, feeds_from, pooled, quantize_model

__all__ = ["QuantizeOptions", "QuantizeResult", "calibration_digest", "quantize"]

ARTIFACT = "quantized.onnx"
DEFAULTS = QuantizeOptions()  # frozen, so one shared default is safe


@dataclass
class QuantizeResult:
    path: Path
    meta: ContainerMeta
    sqnr_db: float
    cosine: float
    cached: bool
    notes: list[str]  # such as CLE dropped because it lowered the SQNR


def calibration_digest(list_path: Path, input_list: InputList) -> str:
    """Names a calibration set by content: the list and every raw file it names (the quantized
    container records it, so the debugger can tell whether it is given the same set)."""
    digest = hashlib.sha256(sha256_file(list_path).encode())
    for entry in input_list.entries:
        for path in entry.values():
            digest.update(sha256_file(input_list.resolve(path)).encode())
    return digest.hexdigest()


def _key_parts(container: Path, calibration: str, options: QuantizeOptions) -> dict:
    opts = options.to_json()
    if options.override_params is not None:
        opts["override_params"] = sha256_file(options.override_params)
    return {"container": sha256_file(container), "calibration": calibration, "options": opts}


def _refuse_overwriting_inputs(output: str | os.PathLike[str] | None, encodings_out: str | os.PathLike[str] | None,
                               sources: list[str | os.PathLike[str]]) -> None:
    """Neither written file may be one that quantize reads (the container, the list, a raw input, the
    overrides), nor may both be the same file."""
    for written, option in ((output, "--output"), (encodings_out, "--encodings-out")):
        for source in sources if written is not None else ():
            refuse_overwriting(written, source, option)
    if output is not None and encodings_out is not None and Path(output).resolve() == Path(encodings_out).resolve():
        raise EdgeloopError(f"--output and --encodings-out both name {output}", "give the encodings another file name")


def _check_batch(meta: ContainerMeta, container: Path) -> None:
    for tensor in meta.inputs:
        if tensor.layout.startswith("N") and tensor.shape and tensor.shape[0] != 1:
            dims = ",".join(["1", *map(str, tensor.shape[1:])])
            raise EdgeloopError(f"{container}: input '{tensor.name}' has batch {tensor.shape[0]}; "
                                "the model to quantize must have batch 1",
                                f"convert with --input-dim {tensor.name}={dims}")


def _build(model: onnx.ModelProto, meta: ContainerMeta, list_path: Path, input_list: InputList,
           options: QuantizeOptions, calibration: str, target: Path) -> None:
    feeds = feeds_from(input_list, meta, str(list_path))
    qmodel, plan, agreements = quantize_model(model, feeds, len(input_list.entries), options)
    total = pooled(agreements)
    activations, params = plan_encodings(plan)
    applied = {**options.to_json(), "algorithms": list(plan.algorithms)}  # the encodings describe these
    qmeta = ContainerMeta(
        kind="quantized", inputs=meta.inputs, outputs=meta.outputs, source_sha256=meta.source_sha256,
        options=meta.options, encodings=export_encodings(activations, params, "1.0.0", applied),
        quantization={**applied, "sqnr_db": round(total.sqnr_db, 4), "cosine": round(total.cosine, 6),
                      "calibration_inputs": len(input_list.entries), "calibration_sha256": calibration,
                      "sqnr_inputs": min(len(input_list.entries), MEASURED),  # the figures' inputs
                      "outputs": {name: {"sqnr_db": round(a.sqnr_db, 4), "cosine": round(a.cosine, 6)}
                                  for name, a in agreements.items()},
                      "notes": plan.notes})
    save_container(qmodel, qmeta, target)


def quantize(container: str | os.PathLike[str], input_list: str | os.PathLike[str],
             output: str | os.PathLike[str] | None = None, options: QuantizeOptions = DEFAULTS, *,
             encodings_out: str | os.PathLike[str] | None = None, cache: bool = True) -> QuantizeResult:
    """Quantize a float container with the calibration inputs of an SNPE input list.

    With `output=None` the cached artifact's path is returned. `encodings_out` also writes the
    encodings as AIMET 1.0.0 JSON (what `--quantization_overrides` of the vendor tools reads).
    """
    container, list_path = Path(container), Path(input_list)
    model, meta = load_container(container)
    if meta.quantized:
        raise EdgeloopError(f"{container}: already a quantized container", "quantize the float container instead")
    _check_batch(meta, container)
    parsed = read_input_list(list_path)
    validate_input_list(parsed, meta.inputs, str(list_path))
    if options.override_params is not None and not Path(options.override_params).is_file():
        raise EdgeloopError(f"{options.override_params}: no such encodings file")
    raw = [parsed.resolve(path) for entry in parsed.entries for path in entry.values()]
    _refuse_overwriting_inputs(output, encodings_out, [container, list_path, *raw,
                                                       *([options.override_params] if options.override_params else [])])
    if output is not None:
        check_writable(output)  # before calibrating, not after

    calibration = calibration_digest(list_path, parsed)

    def build(folder: Path) -> None:
        _build(model, meta, list_path, parsed, options, calibration, folder / ARTIFACT)

    # the encodings' folder is checked and their file prepared before the container is written, and
    # renamed into place after it: a failure leaves the earlier pair as it was, never a mixed one
    with contextlib.ExitStack() as stack:
        encodings_tmp = stack.enter_context(atomic_path(encodings_out)) if encodings_out is not None else None
        if cache:
            result = cached("quantize", _key_parts(container, calibration, options), build, ARTIFACT)
            built, hit = result.path, result.hit
        else:
            built, hit = Path(stack.enter_context(tempfile.TemporaryDirectory())) / ARTIFACT, False
            build(built.parent)
        _, qmeta = load_container(built)
        if encodings_tmp is not None:
            write_encodings(encodings_tmp, qmeta.encodings)
        path = Path(output) if output is not None else None
        if path is None and not cache:
            path = build_root() / "quantized" / f"{container.stem}.onnx"
        if path is not None:
            with atomic_path(path) as target:
                shutil.copyfile(built, target)
        path = path or built
    summary = qmeta.quantization or {}
    return QuantizeResult(path=path, meta=qmeta, sqnr_db=summary.get("sqnr_db", 0.0),
                          cosine=summary.get("cosine", 0.0), cached=hit, notes=summary.get("notes", []))
