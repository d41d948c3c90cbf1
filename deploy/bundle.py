"""Push bundles: one folder with everything a device needs to run a container on one runtime.

`build/bundles/<id>/` holds `manifest.json`, the rendered `run.sh`, `model/<name>.onnx` (or what
the pack's convert hook makes of it), `inputs/<i>/<tensor>.raw`, `input_list.txt` with
bundle-relative paths, and the pack's files. The id hashes the manifest's file list, so the same
inputs give the same bundle, byte for byte; an existing bundle is reused, never rewritten.
Run contract: `cd <bundle on device> && sh run.sh <output_dir> [extra net-run args]`.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy import packs
from deploy.cache import build_root, cached, staging_dir
from deploy.container import TensorInfo, load_container
from deploy.errors import EdgeloopError
from deploy.fsutil import sha256_bytes, sha256_file
from deploy.inputlist import InputList, bind_entry, format_input_list, read_input_list, validate_input_list
from deploy.profiles import Profile

MANIFEST = "manifest.json"
MANIFEST_SCHEMA = 1
ID_LENGTH = 16
FILE_MODE, SCRIPT_MODE = 0o644, 0o755

Source = Path | bytes  # a host file to copy, or generated content


@dataclass(frozen=True)
class Bundle:
    id: str
    path: Path
    manifest: list[dict[str, Any]]  # {path, size, sha256, mode} per file, sorted by path
    pack: str
    runtime: str
    profile: str
    container_name: str  # bundle path of the model, e.g. "model/digits.onnx"
    outputs: list[TensorInfo]
    timings_format: str
    timings_path: str  # relative to the output folder given to run.sh
    input_list: str = "input_list.txt"
    manifest_sha256: str = ""  # of manifest.json itself: the bundle carries every digest the device store needs
    manifest_size: int = 0

    @classmethod
    def load(cls, path: Path) -> Bundle:
        """Read a bundle folder back from its manifest."""
        try:
            raw = (path / MANIFEST).read_bytes()
            data = json.loads(raw)
        except (OSError, ValueError) as exc:
            raise EdgeloopError(f"{path}: not a bundle ({exc})", "make one with `invoke bundle`") from None
        return cls(id=data["id"], path=path, manifest=data["files"], pack=data["pack"], runtime=data["runtime"],
                   profile=data["profile"], container_name=data["container"],
                   outputs=[TensorInfo.from_json(t) for t in data["outputs"]],
                   timings_format=data["timings"]["format"], timings_path=data["timings"]["path"],
                   input_list=data["input_list"], manifest_sha256=sha256_bytes(raw), manifest_size=len(raw))


def bundle(container: Path, profile: Profile, runtime: str, input_list: Path, *, pack: str = "builtin",
           options: dict | None = None, root: Path | None = None, name: str | None = None,
           sdk: Path | None = None, calibration_list: Path | None = None) -> Bundle:
    """Assemble (or reuse) the bundle of `container` for `profile` and `runtime` with the inputs of
    `input_list`; `options` are the pack's options (perf_profile, profiling_level, ...), `sdk` the
    SDK root for packs that need one, `calibration_list` the inputs a pack's host tools may
    quantize a float container with (SNPE's snpe-dlc-quantize, QNN's converter)."""
    container = Path(container)
    _, meta = load_container(container)
    name = _safe_name(name or container.stem)
    plan = packs.plan(packs.load_pack(pack), profile, runtime, meta.kind, name, meta.outputs, options, sdk)
    inputs = read_input_list(input_list)
    validate_input_list(inputs, meta.inputs, str(input_list))
    calibration = None
    if calibration_list is not None:
        calibration = read_input_list(calibration_list)
        validate_input_list(calibration, meta.inputs, str(calibration_list))
    files: dict[str, tuple[Source, int]] = {}

    def add(path: str, source: Source, mode: int = FILE_MODE) -> None:
        if path in files:
            raise EdgeloopError(f"two files would land at {path} in the bundle",
                                "rename one of the tensors or pack files")
        files[path] = (source, mode)

    add(plan.container_file, _model_file(container, plan, root, calibration_list, calibration))
    list_text = _bundle_input_list(inputs, meta.inputs, plan.pack.input_list_format, str(input_list), add)
    add("input_list.txt", list_text.encode())
    add("run.sh", plan.run_script.encode(), SCRIPT_MODE)
    for path, source_file, mode in plan.files:
        add(path, source_file, mode)

    listing = [{"path": path, "size": _size(src), "sha256": _sha256(src), "mode": f"{mode:04o}"}
               for path, (src, mode) in sorted(files.items())]
    bundle_id = hashlib.sha256(json.dumps(listing, sort_keys=True).encode()).hexdigest()[:ID_LENGTH]
    target = build_root(root) / "bundles" / bundle_id
    if (target / MANIFEST).is_file():
        return Bundle.load(target)
    manifest = {
        "schema": MANIFEST_SCHEMA, "id": bundle_id, "pack": plan.pack.name, "runtime": runtime,
        "profile": profile.name, "abi": profile.abi, "hexagon": plan.context["hexagon"],
        "container": plan.container_file, "container_kind": meta.kind, "container_sha256": sha256_file(container),
        "inputs": [t.to_json() for t in meta.inputs], "outputs": [t.to_json() for t in meta.outputs],
        "inferences": len(inputs.entries), "input_list": "input_list.txt",
        "timings": {"format": plan.pack.timings_format, "path": plan.pack.timings_path},
        "options": plan.context["options"],
        "sdk": {"layout": plan.context["sdk_layout"], "version": plan.context["sdk_version"]},
        "files": listing,
    }
    _write(target, files, manifest)
    return Bundle.load(target)


def _write(target: Path, files: dict[str, tuple[Source, int]], manifest: dict[str, Any]) -> None:
    """Build the folder beside `target` and rename it into place: a bundle is whole or absent."""
    with staging_dir(target) as tmp:
        for path, (src, mode) in files.items():
            dest = tmp / path
            dest.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(src, bytes):
                dest.write_bytes(src)
            else:
                shutil.copyfile(src, dest)
            dest.chmod(mode)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        (tmp / MANIFEST).chmod(FILE_MODE)


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text).strip(".") or "model"


def _size(source: Source) -> int:
    return len(source) if isinstance(source, bytes) else source.stat().st_size


def _sha256(source: Source) -> str:
    return sha256_bytes(source) if isinstance(source, bytes) else sha256_file(source)


def _bundle_input_list(inputs: InputList, tensors: list[TensorInfo], fmt: str, source: str,
                       add: Callable[[str, Source], None]) -> str:
    """Register each raw file under inputs/<i>/ and return the list rewritten with those paths."""
    if fmt == "bare" and len(tensors) != 1:
        raise EdgeloopError(f"this pack's input list takes bare paths, which need a single-input model; "
                            f"this one has {len(tensors)} inputs")
    entries = []
    for i, entry in enumerate(inputs.entries):
        bound = bind_entry(entry, tensors, f"{source} line {i + 1}")
        line = {}
        for tensor in tensors:
            path = f"inputs/{i}/{_safe_name(tensor.name)}.raw"
            add(path, inputs.resolve(bound[tensor.name]))
            line["" if fmt == "bare" else tensor.name] = path
        entries.append(line)
    header = [f"#{' '.join(inputs.output_layers)}\n"] if inputs.output_layers else []
    return "".join(header) + format_input_list(entries, inputs.output_tensors)


def _model_file(container: Path, plan: packs.PackPlan, root: Path | None, calibration_list: Path | None,
                calibration: InputList | None) -> Path:
    """The container itself, or what the pack's host commands make of it (cached by content: the
    calibration inputs count by their bytes, not their paths)."""
    if not plan.convert:
        return container
    filename = Path(plan.container_file).name

    def build(tmp: Path) -> None:
        markers = {"{source}": str(container), "{output}": str(tmp / filename),
                   "{calibration_list}": str(Path(calibration_list).resolve()) if calibration_list else ""}
        for command in plan.convert:
            args = [_substitute(a, markers) for a in command]
            try:
                done = subprocess.run(args, capture_output=True, text=True, check=False)
            except OSError as exc:
                raise EdgeloopError(f"pack '{plan.pack.name}': cannot run {args[0]} ({exc.strerror})",
                                    "check the SDK root") from None
            if done.returncode != 0:
                last = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
                raise EdgeloopError(f"pack '{plan.pack.name}': {Path(args[0]).name} failed "
                                    f"(exit {done.returncode}): {last}")
        if not (tmp / filename).is_file():
            raise EdgeloopError(f"pack '{plan.pack.name}': the convert commands did not write {filename}")

    # Content, not places: the SDK is known by its layout and version, so a moved SDK or virtualenv reuses the entry.
    places = {plan.context["sdk_root"]: "{sdk_root}", plan.context["python"]: "{python}"}
    key = {"container": sha256_file(container), "pack": plan.pack.name,
           "commands": [[_substitute(arg, places) for arg in command] for command in plan.convert],
           "sdk": [plan.context["sdk_layout"], plan.context["sdk_version"]],
           "calibration": [{name: sha256_file(calibration.resolve(path)) for name, path in entry.items()}
                           for entry in calibration.entries] if calibration else None}
    return cached("pack-convert", key, build, filename, root).path


def _substitute(arg: str, replacements: dict[str | None, str]) -> str:
    for old, new in replacements.items():
        if old:
            arg = arg.replace(old, new)
    return arg
