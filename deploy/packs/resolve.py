"""Resolving a pack for one device, runtime and container: files, run script, convert commands.

Everything here is a pure function of the pack, the profile, the options and the SDK tree, so
the bundler can hash the result before copying anything.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from deploy.container import TensorInfo
from deploy.errors import EdgeloopError
from deploy.packs.schema import Pack, Template
from deploy.profiles import Profile
from deploy.yamlnode import did_you_mean

# Host paths known only when the bundle is built: convert commands keep them as `{name}` markers,
# which the bundler replaces (calibration_list is "" without one).
CONVERT_MARKERS = ("source", "output", "calibration_list")


@dataclass(frozen=True)
class PackPlan:
    """What a pack resolves to for one device and runtime: everything the bundler needs from it."""

    pack: Pack
    context: dict[str, Any]  # what templates saw (also recorded in the manifest)
    container_file: str  # bundle path of the model
    convert: list[list[str]]  # host commands still holding the CONVERT_MARKERS
    files: list[tuple[str, Path, int]]  # (bundle path, host file, mode)
    run_script: str


def plan(pack: Pack, profile: Profile, runtime: str, container_kind: str, name: str,
         outputs: list[TensorInfo], options: dict[str, Any] | None = None, sdk: Path | None = None) -> PackPlan:
    """Everything the pack contributes to one bundle; errors say which requirement is not met."""
    profile.require_runtime(runtime)
    if runtime not in pack.runtimes:
        raise EdgeloopError(f"pack '{pack.name}' has no {runtime} runtime", f"it has {', '.join(pack.runtimes)}")
    flags, kinds = pack.runtimes[runtime]
    if container_kind not in kinds:
        raise EdgeloopError(f"runtime {runtime} needs a {' or '.join(kinds)} container, this one is {container_kind}",
                            "quantize it first (`invoke quantize`)")
    if container_kind not in pack.container_kinds:
        raise EdgeloopError(f"pack '{pack.name}' does not accept {container_kind} containers")
    if pack.abis and profile.abi not in pack.abis:
        raise EdgeloopError(f"pack '{pack.name}' has nothing for ABI {profile.abi}", f"it has {', '.join(pack.abis)}")
    context: dict[str, Any] = {
        "pack": pack.name, "profile": profile.name, "abi": profile.abi, "runtime": runtime, "name": name,
        "container_kind": container_kind, "input_list": "input_list.txt",
        "outputs": [t.name for t in outputs],
        "hexagon": {"arch": profile.hexagon.arch, "kind": profile.hexagon.kind,
                    "version": int(profile.hexagon.arch[1:])} if profile.hexagon else None,
        "options": _resolve_options(pack, options or {}),
        "python": sys.executable,  # for convert commands that run edgeloop's own host helpers (deploy.sdk)
        **_resolve_sdk(pack, sdk),
    }
    context["container"] = container_file = _safe_path(pack.container_file.render(context), pack.container_file)
    return PackPlan(
        pack=pack, context=context, container_file=container_file,
        convert=[[arg.render({**context, **{marker: f"{{{marker}}}" for marker in CONVERT_MARKERS}})
                  for arg in command] for command in pack.convert],
        files=_files(pack, context),
        run_script=_run_script(pack, context, flags),
    )


def _resolve_options(pack: Pack, given: dict[str, Any]) -> dict[str, str | None]:
    unknown = sorted(set(given) - set(pack.options))
    if unknown:
        raise EdgeloopError(f"pack '{pack.name}' has no option '{unknown[0]}'", did_you_mean(unknown[0], pack.options))
    resolved: dict[str, str | None] = {}
    for key, option in pack.options.items():
        value = given.get(key, option.default)
        value = None if value is None else str(value)
        if value is not None and option.choices and value not in option.choices:
            raise EdgeloopError(f"option {key}: unknown value '{value}'", did_you_mean(value, option.choices))
        resolved[key] = value
    return resolved


def _resolve_sdk(pack: Pack, sdk: Path | None) -> dict[str, Any]:
    """The SDK's root, layout, variables and version, for templates; none for a pack without an SDK."""
    if pack.sdk is None:
        return {"sdk_root": None, "sdk_layout": None, "sdk_version": None, "vars": {}}
    spec = pack.sdk
    root_text = str(sdk) if sdk is not None else os.environ.get(spec.env, "")
    if not root_text:
        raise EdgeloopError(f"pack '{pack.name}' needs its SDK", f"set {spec.env} or pass --sdk PATH")
    root = Path(root_text).resolve()
    if not root.is_dir():
        raise EdgeloopError(f"SDK folder not found: {root}", f"check {spec.env} or --sdk")
    layout = next((lay for lay in spec.layouts if all(any(root.glob(d)) for d in lay.detect)), None)
    if spec.layouts and layout is None:
        expected = "; ".join(f"{lay.name}: {', '.join(lay.detect)}" for lay in spec.layouts)
        raise EdgeloopError(f"{root}: not a known {pack.name} SDK layout", f"expected {expected}")
    version_text = root.name
    if spec.version_file:
        found = sorted(root.glob(spec.version_file))
        version_text = found[0].read_text(errors="replace") if found else ""
    match = re.search(spec.version_regex, version_text)
    return {"sdk_root": str(root), "sdk_layout": layout.name if layout else None,
            "sdk_version": match.group(1) if match and match.groups() else match.group(0) if match else None,
            "vars": layout.vars if layout else {}}


def _safe_path(text: str, template: Template) -> str:
    pure = PurePosixPath(text)
    if not text or pure.is_absolute() or ".." in pure.parts or any(c in text for c in "\"'$`\\\n"):
        raise EdgeloopError(f"{template.where}: '{text}' is not a plain relative path inside the bundle")
    return str(pure)


def _files(pack: Pack, context: dict[str, Any]) -> list[tuple[str, Path, int]]:
    chosen: dict[str, tuple[Path, int]] = {}
    for rule in pack.files:
        if rule.when is not None and not rule.when.test(context):
            continue
        pattern = rule.source.render(context)
        root = Path(context["sdk_root"] or pack.folder)
        matches = sorted(p for p in root.glob(pattern) if p.is_file())
        if not matches and not rule.optional:
            where = f"${pack.sdk.env}" if pack.sdk else str(pack.folder)
            raise EdgeloopError(f"pack '{pack.name}': no file matches {where}/{pattern} (runtime {context['runtime']}, "
                                f"ABI {context['abi']})", rule.hint.render(context) if rule.hint else None)
        to = rule.to.render(context)
        for match in matches:
            dest = _safe_path(to + match.name if to.endswith("/") else to, rule.to)
            chosen[dest] = (match, rule.mode)
    return [(dest, src, mode) for dest, (src, mode) in sorted(chosen.items())]


def _run_script(pack: Pack, context: dict[str, Any], runtime_flags: tuple[Template, ...]) -> str:
    command = [pack.program.render(context), *(a.render(context) for a in pack.args),
               *(f.render(context) for f in runtime_flags)]
    for key, option in pack.options.items():
        value = context["options"][key]
        if value is not None:
            command += [f.render({**context, "value": value}) for f in option.flags]
    env = []
    for var in pack.env:
        if var.when is not None and not var.when.test(context):
            continue
        parts = [f"$PWD/{_safe_path(p.render(context), p)}" for p in var.paths] + list(var.append)
        if var.inherit:
            parts.append(f"${var.name}")
        env.append((var.name, '"' + var.separator.join(parts) + '"'))
    script = Template(pack.template.read_text(), str(pack.template))
    return script.render({**context, "env": env, "command": [shlex.quote(arg) for arg in command if arg != ""]})
