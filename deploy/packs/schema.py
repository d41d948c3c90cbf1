"""The pack.yaml schema: a JSON Schema (SCHEMA) checked on load through yamlnode, so errors name
the file, the line and the key.

Strings that are templates are compiled on load, so a syntax error surfaces when the pack is
read, not when a bundle is half built. docs/runtime-packs.md describes every key.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import jinja2

from deploy.errors import EdgeloopError
from deploy.profiles import RUNTIME_UNITS
from deploy.yamlnode import Node, did_you_mean, listed, load_yaml_node, one_or_list, validate

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
        """A template string (valid by SCHEMA), or (`expression`) a jinja2 expression such as `runtime == 'dsp'`."""
        text = node.value()
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


_TEXT = {"type": "string", "minLength": 1}
_TEMPLATE = {"type": "string", "description": "a jinja2 template, see docs/runtime-packs.md"}
_EXPRESSION = {"type": "string", "description": "a jinja2 expression such as runtime == 'dsp'"}
_COMMAND = {"type": "array", "items": _TEMPLATE}
_KINDS = one_or_list({"enum": list(CONTAINER_KINDS)}, minItems=1)
_NAMES = one_or_list(_TEXT, minItems=1)


def _object(properties: dict[str, Any], *required: str, **more: Any) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False, "required": list(required), "properties": properties,
            **more}


SCHEMA: dict[str, Any] = _object({  # pack.yaml (docs/runtime-packs.md, "Pack schema")
    "schema": {"type": "integer", "const": PACK_SCHEMA,
               "description": f"this edgeloop reads pack schema {PACK_SCHEMA}"},
    "name": _TEXT,
    "description": _TEXT,
    "runs_on": _object({"emulated": {"type": "boolean"}, "real": {"type": "boolean"}, "hint": _TEXT}),
    "abis": one_or_list(_TEXT),
    "sdk": _object({
        "env": _TEXT | {"description": "the environment variable naming the SDK root"},
        "layouts": {"type": "array", "items": _object({"name": _TEXT, "detect": _NAMES, "vars": {"type": "object"}},
                                                      "name", "detect")},
        "version_file": _TEXT,
        "version_regex": _TEXT | {"format": "regex"}}, "env"),
    "container": _object({"kinds": _KINDS, "file": _TEMPLATE, "convert": {"type": "array", "items": _COMMAND}}, "file"),
    "input_list": _object({"format": {"enum": ["named", "bare"]}}, "format"),
    "net_run": _object({"program": _TEMPLATE, "args": _COMMAND}, "program"),
    "runtimes": _object({runtime: _object({"flags": _COMMAND, "containers": _KINDS}) for runtime in RUNTIME_UNITS},
                        minProperties=1, description="at least one runtime the pack runs"),
    "options": {"type": "object", "additionalProperties": _object({
        "default": {"type": ["string", "number", "null"],
                    "description": 'quote a value YAML would read as true or false: "off"'},
        "choices": _NAMES, "flags": _COMMAND}, "flags")},
    "files": {"type": "array", "items": _object({
        "from": _TEMPLATE, "to": _TEMPLATE | {"minLength": 1}, "when": _EXPRESSION,
        "mode": {"type": "string", "pattern": "^0?[0-7]{3}$",
                 "description": 'a file mode, written as a quoted octal string such as "0755"'},
        "optional": {"type": "boolean"}, "hint": _TEMPLATE}, "from", "to")},
    "env": {"type": "object", "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_]*$", "description": (
        "an environment variable name: letters, digits and '_', not starting with a digit")},
        "additionalProperties": _object({
            "separator": _TEXT, "paths": one_or_list(_TEMPLATE), "inherit": {"type": "boolean"}, "when": _EXPRESSION,
            "append": one_or_list({"type": "string", "pattern": "^/[^\"'$`\\\\]*$",
                                   "description": "an absolute device path without quotes, '$', '`' or '\\'"})})},
    "outputs": _object({"timings": _object({"format": _TEXT, "path": _TEXT}, "format", "path")}, "timings"),
    "template": _TEXT | {"description": "the run script template, relative to the pack folder"},
    "extra": {"type": "object"},
}, "schema", "name", "container", "net_run", "runtimes", "outputs", "template")


def parse_pack(path: Path) -> Pack:
    """A pack.yaml checked against SCHEMA, then what a schema cannot say: its templates compile,
    its bundle paths stay inside the bundle, option defaults are among their choices."""
    root = load_yaml_node(path, "runtime pack")
    data = root.data()
    validate(root, data, SCHEMA)
    template = path.parent / data["template"]
    if not template.is_file():
        root.at(["template"]).fail(f"template not found: {template}")
    try:
        ENV.from_string(template.read_text())
    except jinja2.TemplateSyntaxError as exc:
        raise EdgeloopError(f"{template}:{exc.lineno}: template error: {exc.message}") from None
    container, net_run, runs_on = data["container"], data["net_run"], data.get("runs_on", {})
    convert = root.at(["container", "convert"]).sequence() if "convert" in container else []
    return Pack(
        name=data["name"],
        description=data.get("description", ""),
        folder=path.parent,
        runs_on_emulated=runs_on.get("emulated", True),
        runs_on_real=runs_on.get("real", True),
        device_hint=runs_on.get("hint", ""),
        abis=tuple(listed(data.get("abis", []))),
        container_kinds=tuple(listed(container.get("kinds", list(CONTAINER_KINDS)))),
        container_file=_bundle_path(root.at(["container", "file"])),
        convert=tuple(_command(command) for command in convert),
        input_list_format=data.get("input_list", {}).get("format", "named"),
        program=Template.of(root.at(["net_run", "program"])),
        args=_command(root.at(["net_run", "args"])) if "args" in net_run else (),
        runtimes={runtime: (_command(root.at(["runtimes", runtime, "flags"])) if "flags" in spec else (),
                            tuple(listed(spec.get("containers", list(CONTAINER_KINDS)))))
                  for runtime, spec in data["runtimes"].items()},
        options={name: _option(root.at(["options", name]), spec) for name, spec in data.get("options", {}).items()},
        files=tuple(_file_rule(root.at(["files", i]), spec) for i, spec in enumerate(data.get("files", []))),
        env=tuple(_env_var(name, root.at(["env", name]), spec) for name, spec in data.get("env", {}).items()),
        timings_format=data["outputs"]["timings"]["format"],
        timings_path=_relative(root.at(["outputs", "timings", "path"]), data["outputs"]["timings"]["path"]),
        template=template,
        sdk=_sdk(data["sdk"]) if "sdk" in data else None,
        extra=data.get("extra", {}),
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
    return tuple(Template.of(item) for item in node.sequence())


def _when(node: Node, spec: dict[str, Any]) -> Template | None:
    return Template.of(node.at(["when"]), expression=True) if "when" in spec else None


def _option(node: Node, spec: dict[str, Any]) -> Option:
    choices = tuple(listed(spec["choices"])) if "choices" in spec else None
    default = spec.get("default")
    if default is not None and choices and default not in choices:
        node.at(["default"]).fail(f"unknown value {default!r}", did_you_mean(str(default), choices))
    return Option(default=None if default is None else str(default), choices=choices,
                  flags=_command(node.at(["flags"])))


def _file_rule(node: Node, spec: dict[str, Any]) -> FileRule:
    to = _bundle_path(node.at(["to"]))
    parts = PurePosixPath(to.source).parts
    if not parts:
        node.at(["to"]).fail(f"'{to.source}' is the bundle folder itself", "give a folder inside it, such as lib/")
    if parts[0] in RESERVED:
        node.at(["to"]).fail(f"'{parts[0]}' is written by the bundler itself", f"reserved: {', '.join(RESERVED)}")
    return FileRule(source=Template.of(node.at(["from"])), to=to, when=_when(node, spec),
                    mode=int(spec.get("mode", "0644"), 8), optional=spec.get("optional", False),
                    hint=Template.of(node.at(["hint"])) if "hint" in spec else None)


def _env_var(name: str, node: Node, spec: dict[str, Any]) -> EnvVar:
    paths = tuple(_bundle_path(p) for p in node.at(["paths"]).listed()) if "paths" in spec else ()
    return EnvVar(name=name, separator=spec.get("separator", ":"), paths=paths,
                  append=tuple(listed(spec.get("append", []))), inherit=spec.get("inherit", False),
                  when=_when(node, spec))


def _sdk(spec: dict[str, Any]) -> Sdk:
    layouts = tuple(Layout(name=layout["name"], detect=tuple(listed(layout["detect"])), vars=layout.get("vars", {}))
                    for layout in spec.get("layouts", []))
    return Sdk(env=spec["env"], layouts=layouts, version_file=spec.get("version_file"),
               version_regex=spec.get("version_regex", r"(\d+(?:\.\d+)+)"))
