"""Vendor SDKs on the host (SNPE 2.x and 1.x, QNN): their host tools, and driving them to turn an
edgeloop container into the SDK's own model file.

The SNPE and QNN packs (deploy/packs/snpe, deploy/packs/qnn) call this module from their
`container.convert` command (`python -m deploy.sdk convert ...`): a quantized container goes to
the SDK as its float graph plus edgeloop's encodings (AIMET 0.6.1 JSON through
`--quantization_overrides`), so the SDK keeps edgeloop's quantization instead of recalibrating.
Which SDK files go into a bundle is data in the packs; this module only runs host tools.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from deploy.container import ContainerMeta, load_container
from deploy.errors import EdgeloopError
from deploy.inputlist import read_input_list, write_input_list
from deploy.subgraphs import initializers, scopes, walk

HOST_BIN = "bin/x86_64-linux-clang"
SDK_ENV = {"snpe": "SNPE_ROOT", "qnn": "QNN_SDK_ROOT"}
SUPPORTED_MAJOR = {"snpe1": "1", "snpe2": "2", "qnn": "2"}  # layout -> SDK major version it must carry
QNN_TARGETS = {"arm64-v8a": "aarch64-android"}


def sdk_root(kind: str, root: str | os.PathLike[str] | None = None) -> Path:
    """The SDK folder from `root` (--sdk) or the SDK's environment variable, with one clear error."""
    env = SDK_ENV[kind]
    text = str(root) if root else os.environ.get(env, "")
    if not text:
        raise EdgeloopError(f"no {kind.upper()} SDK: ${env} is not set", f"set {env} or pass --sdk PATH")
    path = Path(text).expanduser().resolve()
    if not path.is_dir():
        raise EdgeloopError(f"{kind.upper()} SDK folder not found: {path}", f"check ${env} or --sdk")
    return path


def host_tool(kind: str, name: str, root: str | os.PathLike[str] | None = None) -> Path:
    """A host tool of the SDK (`bin/x86_64-linux-clang/<name>`), checked to exist and be executable.
    Without `root` or the SDK variable, a tool on PATH will do (the SDKs' envsetup.sh puts it there)."""
    on_path = shutil.which(name)
    if not root and not os.environ.get(SDK_ENV[kind]) and on_path:
        return Path(on_path)
    tool = sdk_root(kind, root) / HOST_BIN / name
    if not (tool.is_file() and os.access(tool, os.X_OK)):
        raise EdgeloopError(f"{tool}: {name} not found in the {kind.upper()} SDK",
                            f"is ${SDK_ENV[kind]} the SDK root (the folder holding bin/ and lib/)?")
    return tool


def run_tool(tool: Path, args: list[str]) -> str:
    """Run a host tool; a failure is one error with the tool's exit code and the end of its stderr."""
    try:
        done = subprocess.run([str(tool), *args], capture_output=True, text=True, check=False)
    except OSError as exc:
        raise EdgeloopError(f"cannot run {tool} ({exc.strerror})", "check the SDK installation") from None
    if done.returncode != 0:
        tail = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-3:]
        raise EdgeloopError(f"{tool.name} failed (exit {done.returncode}): {' | '.join(tail)}",
                            f"command: {tool} {' '.join(args)}")
    return done.stdout


def check_version(layout: str, version: str | None) -> None:
    """Refuse an SDK whose version does not fit its layout (an unknown, newer or mislabelled SDK)."""
    major = SUPPORTED_MAJOR.get(layout)
    if major is None:
        raise EdgeloopError(f"unknown SDK layout '{layout}'", f"known: {', '.join(SUPPORTED_MAJOR)}")
    if not version or version.split(".")[0] != major:
        raise EdgeloopError(f"unsupported SDK version {version or '(none found)'} for the {layout} layout",
                            f"edgeloop knows {layout} as version {major}.x; name the SDK folder by its version "
                            f"(e.g. .../{major}.20.0.240223)")


def dequantized_graph(model: onnx.ModelProto, node_prefix: str = "") -> onnx.ModelProto:
    """The float graph of a QDQ container: constant DequantizeLinear become float weights, activation
    Quantize/Dequantize pairs become Identity nodes (named `node_prefix` + the DQ's name). In every
    scope: If/Loop/Scan bodies hold pairs of their own and read weights, scales and zero points of the
    main graph as outer-scope values, so what is still read is judged over all scopes. In place."""
    inits = initializers(model)
    quantized_from = {n.output[0]: n.input[0] for _, n in walk(model.graph) if n.op_type == "QuantizeLinear"}
    for graph in _innermost_first(model):
        kept: list[onnx.NodeProto] = []
        for node in graph.node:
            source = node.input[0] if node.op_type == "DequantizeLinear" else None
            if source is None:
                kept.append(node)
            elif source in inits:
                graph.initializer.append(numpy_helper.from_array(_dequantize(node, inits), node.output[0]))
            elif source in quantized_from:
                kept.append(helper.make_node("Identity", [quantized_from[source]], [node.output[0]],
                                             name=f"{node_prefix}{node.name or node.output[0]}"))
            else:
                kept.append(node)
        _replace(graph.node, kept)
    used = _read(model)
    for graph in _innermost_first(model):
        _replace(graph.node, [n for n in graph.node if not (n.op_type == "QuantizeLinear" and n.output[0] not in used)])
    used = _read(model)
    for graph in _innermost_first(model):
        _replace(graph.initializer, [i for i in graph.initializer if i.name in used])
    return model


def _innermost_first(model: onnx.ModelProto) -> list[onnx.GraphProto]:
    """Every scope, bodies before the graph holding them: rebuilding a graph's nodes copies the bodies
    in them, so a body is rewritten before its holder is (and the list is taken anew after)."""
    return list(scopes(model.graph))[::-1]


def _read(model: onnx.ModelProto) -> set[str]:
    """The tensors some node of any scope reads, or some scope outputs."""
    return ({name for _, node in walk(model.graph) for name in node.input}
            | {o.name for graph in scopes(model.graph) for o in graph.output})


def _replace(field, items: list) -> None:
    """Set a repeated protobuf field to `items` (copies of them)."""
    items = list(items)
    del field[:]
    field.extend(items)


def _dequantize(node: onnx.NodeProto, inits: dict[str, onnx.TensorProto]) -> np.ndarray:
    q = numpy_helper.to_array(inits[node.input[0]]).astype(np.float32)
    scale = numpy_helper.to_array(inits[node.input[1]]).astype(np.float32)
    zero = (numpy_helper.to_array(inits[node.input[2]]).astype(np.float32)
            if len(node.input) > 2 and node.input[2] else np.zeros_like(scale))
    if scale.ndim == 1 and q.ndim > 1:  # per-channel: broadcast along the DQ's axis
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1) % q.ndim
        shape = [1] * q.ndim
        shape[axis] = -1
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    return ((q - zero) * scale).astype(np.float32)


def export_for_sdk(container: Path, float_onnx: Path, encodings: Path) -> ContainerMeta:
    """Write the container's float graph (without edgeloop metadata) and, for a quantized container,
    its encodings as AIMET 0.6.1 JSON, the format SNPE's and QNN's --quantization_overrides read."""
    from deploy.quantize.aimet import export_encodings, parse_encodings, write_encodings

    model, meta = load_container(container)
    if meta.quantized:
        params = {i.name for i in model.graph.initializer}
        overrides = parse_encodings(meta.encodings or {}, f"{container} (encodings)", params)
        write_encodings(encodings, export_encodings(overrides.activations, overrides.params, "0.6.1"))
        dequantized_graph(model)
    del model.metadata_props[:]
    onnx.save(model, str(float_onnx))
    return meta


def activation_bitwidth(meta: ContainerMeta) -> int:
    """The widest integer activation encoding of a quantized container (8 when it has none)."""
    acts = (meta.encodings or {}).get("activation_encodings") or []
    bws = [int(e.get("bw", 8)) for e in acts if isinstance(e, dict) and str(e.get("dtype", "INT")).upper() == "INT"]
    return 16 if bws and max(bws) > 8 else 8


def convert_snpe(root: Path, layout: str, version: str | None, container: Path, output: Path,
                 calibration: Path | None = None) -> None:
    """snpe-onnx-to-dlc, then for a quantized container snpe-dlc-quantize with edgeloop's encodings
    (--override_params). SNPE 2.x needs no calibration data then (--float_fallback); 1.x always wants
    an input list, so it gets one all-zero input per tensor, which the overrides make irrelevant.
    A float container with a `calibration` list is quantized by snpe-dlc-quantize itself."""
    check_version(layout, version)
    with tempfile.TemporaryDirectory(prefix="edgeloop-snpe-") as tmp:
        work = Path(tmp)
        meta = export_for_sdk(container, work / "model.onnx", work / "encodings.json")
        sdk_quantizes = not meta.quantized and calibration is not None
        float_dlc = work / "model_float.dlc" if meta.quantized or sdk_quantizes else output
        args = ["--input_network", str(work / "model.onnx"), "--output_path", str(float_dlc)]
        if meta.quantized:
            args += ["--quantization_overrides", str(work / "encodings.json")]
        run_tool(host_tool("snpe", "snpe-onnx-to-dlc", root), args)
        if meta.quantized:
            args = ["--input_dlc", str(float_dlc), "--output_dlc", str(output), "--override_params",
                    "--act_bitwidth", str(activation_bitwidth(meta))]
            if layout == "snpe1":
                args += ["--input_list", str(_zero_inputs(meta, work))]
            else:
                args += ["--float_fallback"]
            run_tool(host_tool("snpe", "snpe-dlc-quantize", root), args)
        elif sdk_quantizes:
            args = ["--input_dlc", str(float_dlc), "--input_list", str(_absolute_list(calibration, work)),
                    "--output_dlc", str(output)]
            run_tool(host_tool("snpe", "snpe-dlc-quantize", root), args)


def convert_qnn(root: Path, version: str | None, abi: str, container: Path, output: Path, *,
                model_format: str = "library", runtime: str = "cpu", hexagon: str = "",
                calibration: Path | None = None) -> None:
    """qnn-onnx-converter (with edgeloop's encodings for a quantized container, or quantizing a float
    container itself from a `calibration` list, its --input_list), then either
    qnn-model-lib-generator building the model library for the device's ABI, or (model_format
    "context", HTP only) a host model library turned into an HTP context binary for `hexagon`."""
    check_version("qnn", version)
    target = "x86_64-linux-clang" if model_format == "context" else QNN_TARGETS.get(abi)
    if target is None:
        raise EdgeloopError(f"QNN model libraries are built for {', '.join(QNN_TARGETS)}, not {abi}")
    if model_format == "context" and (runtime != "dsp" or not hexagon):
        raise EdgeloopError(f"a QNN context binary is prepared for the HTP backend, not for {runtime}",
                            "use the pack option model=library for cpu, gpu and Hexagon DSPs without HTP")
    with tempfile.TemporaryDirectory(prefix="edgeloop-qnn-") as tmp:
        work = Path(tmp)
        meta = export_for_sdk(container, work / "model.onnx", work / "encodings.json")
        args = ["--input_network", str(work / "model.onnx"), "--output_path", str(work / "model.cpp")]
        if meta.quantized:
            args += ["--quantization_overrides", str(work / "encodings.json"), "--float_fallback",
                     "--act_bw", str(activation_bitwidth(meta))]
        elif calibration is not None:
            args += ["--input_list", str(_absolute_list(calibration, work))]
        run_tool(host_tool("qnn", "qnn-onnx-converter", root), args)
        args = ["-c", str(work / "model.cpp"), "-b", str(work / "model.bin"), "-o", str(work / "libs"),
                "-t", target, "-l", "model"]
        run_tool(host_tool("qnn", "qnn-model-lib-generator", root), args)
        built = work / "libs" / target / "libmodel.so"
        if not built.is_file():
            raise EdgeloopError(f"qnn-model-lib-generator did not write {built.relative_to(work)}",
                                "its toolchain must be installed (the Android NDK for aarch64-android)")
        if model_format == "context":
            built = _context_binary(root, built, hexagon, work)
        shutil.copyfile(built, output)


def _context_binary(root: Path, host_library: Path, hexagon: str, work: Path) -> Path:
    """qnn-context-binary-generator with the host HTP backend, configured for the device's Hexagon arch."""
    backend = root / "lib/x86_64-linux-clang/libQnnHtp.so"
    extensions = root / "lib/x86_64-linux-clang/libQnnHtpNetRunExtensions.so"
    for lib in (backend, extensions):
        if not lib.is_file():
            raise EdgeloopError(f"{lib}: not found in the QNN SDK", "context binaries need the host HTP backend")
    (work / "htp_config.json").write_text(json.dumps({"devices": [{"dsp_arch": hexagon}]}))
    (work / "htp_extensions.json").write_text(json.dumps({"backend_extensions": {
        "shared_library_path": str(extensions), "config_file_path": str(work / "htp_config.json")}}))
    run_tool(host_tool("qnn", "qnn-context-binary-generator", root),
             ["--backend", str(backend), "--model", str(host_library), "--binary_file", "model",
              "--output_dir", str(work / "context"), "--config_file", str(work / "htp_extensions.json")])
    binary = work / "context" / "model.bin"
    if not binary.is_file():
        raise EdgeloopError("qnn-context-binary-generator did not write model.bin")
    return binary


def _absolute_list(calibration: Path, work: Path) -> Path:
    """The calibration list with absolute paths: the SDK tools run in their own folders."""
    parsed = read_input_list(calibration)
    entries = [{name: str(parsed.resolve(path).resolve()) for name, path in entry.items()} for entry in parsed.entries]
    write_input_list(work / "calibration_list.txt", entries)
    return work / "calibration_list.txt"


def _zero_inputs(meta: ContainerMeta, work: Path) -> Path:
    items = []
    for tensor in meta.inputs:
        raw = work / f"zero_{len(items)}.raw"
        np.zeros(tensor.shape, dtype="<f4").tofile(raw)
        items.append(f"{tensor.name}:={raw}")
    (work / "zero_list.txt").write_text(" ".join(items) + "\n")
    return work / "zero_list.txt"


def main(argv: list[str] | None = None) -> int:
    """`python -m deploy.sdk convert {snpe,qnn} ...`: what the SNPE and QNN packs' convert hook runs."""
    parser = argparse.ArgumentParser(prog="python -m deploy.sdk", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    convert = sub.add_parser("convert", help="container -> SDK model file (DLC or QNN model library)")
    convert.add_argument("kind", choices=sorted(SDK_ENV))
    convert.add_argument("--root", required=True)
    convert.add_argument("--layout", required=True)
    convert.add_argument("--version", default="")
    convert.add_argument("--abi", default="arm64-v8a")
    convert.add_argument("--model-format", choices=("library", "context"), default="library")
    convert.add_argument("--runtime", default="cpu")
    convert.add_argument("--hexagon", default="")
    convert.add_argument("--calibration-list", default="", help="inputs for the SDK's own quantizer (float only)")
    convert.add_argument("container", type=Path)
    convert.add_argument("output", type=Path)
    args = parser.parse_args(argv)
    try:
        root = sdk_root(args.kind, args.root)
        calibration = Path(args.calibration_list) if args.calibration_list else None
        if args.kind == "snpe":
            convert_snpe(root, args.layout, args.version or None, args.container, args.output, calibration)
        else:
            convert_qnn(root, args.version or None, args.abi, args.container, args.output,
                        model_format=args.model_format, runtime=args.runtime, hexagon=args.hexagon,
                        calibration=calibration)
    except EdgeloopError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
