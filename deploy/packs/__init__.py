"""Runtime packs: data (a pack.yaml and jinja2 templates) saying how a bundle runs on a device.

A pack names the files to copy from an SDK for an ABI, Hexagon arch and runtime, the run
script's environment and net-run command line, the containers it accepts and where timings
land. Adding a runtime (SNPE, QNN, TFLite's benchmark_model) is a new pack folder, not code.
The schema is documented in docs/runtime-packs.md ("Pack schema").
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import jinja2

from deploy.container import TensorInfo
from deploy.errors import EdgeloopError
from deploy.profiles import RUNTIME_UNITS, Profile
from deploy.yamlnode import Node, did_you_mean, load_yaml_node

PACKS_DIR = Path(__file__).resolve().parent
PACK_SCHEMA = 1
CONTAINER_KINDS = ("float", "quantized")
# Bundle paths the bundler writes itself; pack files may not land there.
RESERVED = ("manifest.json", "run.sh", "input_list.txt", "model", "inputs", "runs")

_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, trim_blocks=True,
                          lstrip_blocks=True, autoescape=False)


@dataclass(frozen=True)
class Template:
    """A jinja2 string or expression from a pack, compiled on load and remembering where it came from."""

    source: str
    where: str  # "file:line: key", for errors at render time

    @classmethod
    def of(cls, node: Node, *, expression: bool = False) -> Template:
        """A template string, or (`expression`) a jinja2 expression such as `runtime == 'dsp'`."""
        text = node.typed(str)
        try:
            _ENV.compile_expression(text) if expression else _ENV.from_string(text)
        except jinja2.TemplateSyntaxError as exc:
            node.fail(f"template error: {exc.message}")
        return cls(text, f"{node.file}:{node.line}: {node.key}")

    def render(self, context: dict[str, Any]) -> str:
        try:
            return _ENV.from_string(self.source).render(context)
        except jinja2.TemplateError as exc:
            raise EdgeloopError(f"{self.where}: cannot render '{self.source}': {exc}") from None

    def test(self, context: dict[str, Any]) -> bool:
        try:
            return bool(_ENV.compile_expression(self.source, undefined_to_none=False)(**context))
        except jinja2.TemplateError as exc:
            raise EdgeloopError(f"{self.where}: cannot evaluate '{self.source}': {exc}") from None


@dataclass(frozen=True)
class FileRule:
    """Copy SDK files matching `source` (a glob under the SDK root) to `to` in the bundle."""

    source: Template
    to: Template  # ends with "/": a folder keeping the file names; otherwise the file's bundle path
    when: Template | None
    mode: int
    optional: bool
    hint: str | None


@dataclass(frozen=True)
class EnvVar:
    """One exported variable: bundle folders (made absolute with $PWD) and device paths, joined."""

    name: str
    separator: str
    paths: tuple[Template, ...]  # relative to the bundle folder on the device
    append: tuple[str, ...]  # absolute device paths, after the bundle's
    inherit: bool  # keep the device's existing value at the end
    when: Template | None


@dataclass(frozen=True)
class Option:
    default: str | None
    choices: tuple[str, ...] | None
    flags: tuple[Template, ...]  # rendered with `value`; left out when the value is None


@dataclass(frozen=True)
class Layout:
    name: str
    detect: tuple[str, ...]  # globs under the SDK root that must all match
    vars: dict[str, Any]


@dataclass(frozen=True)
class Sdk:
    env: str  # the environment variable naming the SDK root (overridden by --sdk)
    layouts: tuple[Layout, ...]
    version_file: str | None  # glob under the root; None: the version is read from the root's name
    version_regex: str


@dataclass(frozen=True)
class Pack:
    name: str
    description: str
    folder: Path
    runs_on_emulated: bool
    runs_on_real: bool
    device_hint: str
    abis: tuple[str, ...]
    container_kinds: tuple[str, ...]
    container_file: Template
    convert: tuple[tuple[Template, ...], ...]  # host commands turning the container into container_file
    input_list_format: str  # "named" (name:=path) or "bare" (single-input models only)
    program: Template
    args: tuple[Template, ...]
    runtimes: dict[str, tuple[tuple[Template, ...], tuple[str, ...]]]  # runtime -> (flags, container kinds)
    options: dict[str, Option]
    files: tuple[FileRule, ...]
    env: tuple[EnvVar, ...]
    timings_format: str
    timings_path: str
    template: Path
    sdk: Sdk | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def check_device(self, emulated: bool) -> None:
        """Refuse a device kind the pack cannot run on (the built-in pack has no real-phone binaries)."""
        if not (self.runs_on_emulated if emulated else self.runs_on_real):
            kind = "the emulated device" if emulated else "a real device"
            raise EdgeloopError(f"pack '{self.name}' cannot run on {kind}", self.device_hint or None)


@dataclass(frozen=True)
class PackPlan:
    """What a pack resolves to for one device and runtime: everything the bundler needs from it."""

    pack: Pack
    context: dict[str, Any]  # what templates saw (also recorded in the manifest)
    container_file: str  # bundle path of the model
    convert: list[list[str]]  # host commands still holding {output} and {source} markers
    files: list[tuple[str, Path, int]]  # (bundle path, host file, mode)
    run_script: str


def available_packs() -> dict[str, Path]:
    """Pack folders by name: the shipped ones, then $EDGELOOP_PACKS (colon separated) overriding them."""
    found: dict[str, Path] = {}
    extra = [Path(p) for p in os.environ.get("EDGELOOP_PACKS", "").split(os.pathsep) if p]
    for folder in [PACKS_DIR, *extra]:
        for pack_yaml in sorted(folder.glob("*/pack.yaml")):
            found[pack_yaml.parent.name] = pack_yaml.parent
    return found


def load_pack(name: str) -> Pack:
    """Load a pack by name, or from a folder holding a pack.yaml."""
    folder = Path(name)
    if not (folder / "pack.yaml").is_file():
        known = available_packs()
        if name not in known:
            raise EdgeloopError(f"unknown runtime pack '{name}'", did_you_mean(name, known))
        folder = known[name]
    return parse_pack(folder / "pack.yaml")


_TOP = ("schema", "name", "description", "runs_on", "abis", "sdk", "container", "input_list", "net_run",
        "runtimes", "options", "files", "env", "outputs", "template", "extra")


def parse_pack(path: Path) -> Pack:
    root = load_yaml_node(path, "runtime pack")
    top = root.mapping(_TOP, required=("schema", "name", "container", "net_run", "runtimes", "outputs",
                                       "template"))
    if top["schema"].value() != PACK_SCHEMA:
        top["schema"].fail(f"unsupported pack schema {top['schema'].value()!r}", f"this edgeloop reads {PACK_SCHEMA}")
    runs_on = top["runs_on"].mapping(("emulated", "real", "hint")) if "runs_on" in top else {}
    container = top["container"].mapping(("kinds", "file", "convert"), required=("file",))
    net_run = top["net_run"].mapping(("program", "args"), required=("program",))
    outputs = top["outputs"].mapping(("timings",), required=("timings",))
    timings = outputs["timings"].mapping(("format", "path"), required=("format", "path"))
    template = path.parent / top["template"].string()
    if not template.is_file():
        top["template"].fail(f"template not found: {template}")
    try:
        _ENV.from_string(template.read_text())
    except jinja2.TemplateSyntaxError as exc:
        raise EdgeloopError(f"{template}:{exc.lineno}: template error: {exc.message}") from None
    return Pack(
        name=top["name"].string(),
        description=top["description"].string() if "description" in top else "",
        folder=path.parent,
        runs_on_emulated=runs_on["emulated"].typed(bool) if "emulated" in runs_on else True,
        runs_on_real=runs_on["real"].typed(bool) if "real" in runs_on else True,
        device_hint=runs_on["hint"].string() if "hint" in runs_on else "",
        abis=tuple(top["abis"].strings()) if "abis" in top else (),
        container_kinds=tuple(k.choice(CONTAINER_KINDS) for k in container["kinds"].listed())
        if "kinds" in container else CONTAINER_KINDS,
        container_file=_bundle_path(container["file"]),
        convert=tuple(_command(c) for c in container["convert"].sequence()) if "convert" in container else (),
        input_list_format=top["input_list"].mapping(("format",), required=("format",))["format"].choice(
            ("named", "bare")) if "input_list" in top else "named",
        program=Template.of(net_run["program"]),
        args=_command(net_run["args"]) if "args" in net_run else (),
        runtimes=_runtimes(top["runtimes"]),
        options={k: _option(v) for k, v in top["options"].mapping().items()} if "options" in top else {},
        files=tuple(_file_rule(item) for item in top["files"].sequence()) if "files" in top else (),
        env=tuple(_env_var(name, value) for name, value in top["env"].mapping().items()) if "env" in top else (),
        timings_format=timings["format"].string(),
        timings_path=_relative(timings["path"], timings["path"].string()),
        template=template,
        sdk=_sdk(top["sdk"]) if "sdk" in top else None,
        extra=top["extra"].typed(dict) if "extra" in top else {},
    )


def _relative(node: Node, text: str) -> str:
    """A path inside the bundle (or output folder): relative, no '..'."""
    pure = PurePosixPath(text)
    if pure.is_absolute() or ".." in pure.parts:
        node.fail(f"'{text}' must be a relative path inside the bundle")
    return text


def _bundle_path(node: Node) -> Template:
    template = Template.of(node)
    _relative(node, template.source)
    return template


def _command(node: Node) -> tuple[Template, ...]:
    items = node.sequence()
    return tuple(Template.of(item) for item in items)


def _when(keys: dict[str, Node]) -> Template | None:
    return Template.of(keys["when"], expression=True) if "when" in keys else None


def _runtimes(node: Node) -> dict[str, tuple[tuple[Template, ...], tuple[str, ...]]]:
    result = {}
    for runtime, value in node.mapping(RUNTIME_UNITS).items():
        keys = value.mapping(("flags", "containers"))
        flags = _command(keys["flags"]) if "flags" in keys else ()
        kinds = tuple(k.choice(CONTAINER_KINDS) for k in keys["containers"].listed()) \
            if "containers" in keys else CONTAINER_KINDS
        result[runtime] = (flags, kinds)
    if not result:
        node.fail("needs at least one runtime")
    return result


def _option(node: Node) -> Option:
    keys = node.mapping(("default", "choices", "flags"), required=("flags",))
    choices = tuple(keys["choices"].strings()) if "choices" in keys else None
    default = None
    if "default" in keys and keys["default"].value() is not None:
        default = keys["default"].choice(choices) if choices else str(keys["default"].typed(str, int, float))
    return Option(default=default, choices=choices, flags=_command(keys["flags"]))


def _file_rule(node: Node) -> FileRule:
    keys = node.mapping(("from", "to", "when", "mode", "optional", "hint"), required=("from", "to"))
    to = _bundle_path(keys["to"])
    top = PurePosixPath(to.source).parts[0]
    if top in RESERVED:
        keys["to"].fail(f"'{top}' is written by the bundler itself", f"reserved: {', '.join(RESERVED)}")
    mode = keys["mode"].typed(str) if "mode" in keys else "0644"
    if not re.fullmatch(r"0?[0-7]{3}", mode):
        keys["mode"].fail(f"'{mode}' is not a file mode", "write it as a quoted octal string such as \"0755\"")
    return FileRule(source=Template.of(keys["from"]), to=to, when=_when(keys), mode=int(mode, 8),
                    optional=keys["optional"].typed(bool) if "optional" in keys else False,
                    hint=keys["hint"].string() if "hint" in keys else None)


def _env_var(name: str, node: Node) -> EnvVar:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        node.fail("not a valid environment variable name")
    keys = node.mapping(("separator", "paths", "append", "inherit", "when"))
    paths = tuple(_bundle_path(p) for p in keys["paths"].listed()) if "paths" in keys else ()
    append = tuple(keys["append"].strings()) if "append" in keys else ()
    for item, text in zip(keys["append"].listed() if append else [], append, strict=True):
        if not text.startswith("/") or re.search(r"[\"'$`\\]", text):
            item.fail(f"'{text}' must be an absolute device path without quotes or '$'")
    return EnvVar(name=name, separator=keys["separator"].string() if "separator" in keys else ":",
                  paths=paths, append=append, inherit=keys["inherit"].typed(bool) if "inherit" in keys else False,
                  when=_when(keys))


def _sdk(node: Node) -> Sdk:
    keys = node.mapping(("env", "layouts", "version_file", "version_regex"), required=("env",))
    layouts = []
    for item in keys["layouts"].sequence() if "layouts" in keys else []:
        layout = item.mapping(("name", "detect", "vars"), required=("name", "detect"))
        layouts.append(Layout(name=layout["name"].string(), detect=tuple(layout["detect"].strings()),
                              vars=layout["vars"].typed(dict) if "vars" in layout else {}))
    regex = keys["version_regex"].string() if "version_regex" in keys else r"(\d+(?:\.\d+)+)"
    try:
        re.compile(regex)
    except re.error as exc:
        keys["version_regex"].fail(f"not a regular expression ({exc})")
    return Sdk(env=keys["env"].string(), layouts=tuple(layouts),
               version_file=keys["version_file"].string() if "version_file" in keys else None, version_regex=regex)


# ---- resolving a pack for one device and runtime ----------------------------------------------


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
        **_resolve_sdk(pack, sdk),
    }
    context["container"] = container_file = _safe_path(pack.container_file.render(context), pack.container_file)
    return PackPlan(
        pack=pack, context=context, container_file=container_file,
        convert=[[arg.render({**context, "source": "{source}", "output": "{output}"}) for arg in command]
                 for command in pack.convert],
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
                                f"ABI {context['abi']})", rule.hint and _ENV.from_string(rule.hint).render(context))
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
    text = _ENV.from_string(pack.template.read_text()).render(
        {**context, "env": env, "command": [shlex.quote(arg) for arg in command if arg != ""]})
    return text
