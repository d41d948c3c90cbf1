"""The pack.yaml schema: parsed and validated once, with errors naming the file, the line and the key.

Strings that are templates are compiled on load, so a syntax error surfaces when the pack is
read, not when a bundle is half built. docs/runtime-packs.md describes every key.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import jinja2

from deploy.errors import EdgeloopError
from deploy.profiles import RUNTIME_UNITS
from deploy.yamlnode import Node, load_yaml_node

PACK_SCHEMA = 1
CONTAINER_KINDS = ("float", "quantized")
# Bundle paths the bundler writes itself; pack files may not land there.
RESERVED = ("manifest.json", "run.sh", "input_list.txt", "model", "inputs", "runs")

ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, trim_blocks=True,
                          lstrip_blocks=True, autoescape=False)


@functools.lru_cache(maxsize=512)
def _compiled(source: str) -> jinja2.Template:
    """Each template compiled once per process: a deploy renders the same few dozen for every job."""
    return ENV.from_string(source)


@functools.lru_cache(maxsize=512)
def _expression(source: str) -> Any:
    return ENV.compile_expression(source, undefined_to_none=False)


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
            ENV.compile_expression(text) if expression else ENV.from_string(text)
        except jinja2.TemplateSyntaxError as exc:
            node.fail(f"template error: {exc.message}")
        return cls(text, f"{node.file}:{node.line}: {node.key}")

    def render(self, context: dict[str, Any]) -> str:
        try:
            return _compiled(self.source).render(context)
        except jinja2.TemplateError as exc:
            raise EdgeloopError(f"{self.where}: cannot render the template: {exc}") from None

    def test(self, context: dict[str, Any]) -> bool:
        try:
            return bool(_expression(self.source)(**context))
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
    hint: Template | None  # rendered into the error when nothing matches


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
        ENV.from_string(template.read_text())
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
                    hint=Template.of(keys["hint"]) if "hint" in keys else None)


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
