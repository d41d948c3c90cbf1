"""Validated reading of YAML files whose errors name the file, the line and the key.

PyYAML's composed nodes keep their position; `Node` walks them and turns every problem into an
EdgeloopError `file:line: key: what is wrong` (with a did-you-mean for misspelt keys). Every YAML
file edgeloop reads comes through here (the deployment file, packs, profiles, farm files, op
tables), so all are read alike: UTF-8 text of at most MAX_BYTES, nested at most MAX_DEPTH deep,
safe tags only, no key given twice; anything else is one error that names the file.
"""

from __future__ import annotations

import copy
import difflib
import functools
import json
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import jsonschema
import yaml

from deploy.errors import EdgeloopError

_TYPE_NAMES = {"str": "a string", "int": "an integer", "float": "a number", "bool": "true or false",
               "NoneType": "empty", "list": "a list", "dict": "a mapping"}


MAX_BYTES = 4 << 20  # no configuration file edgeloop reads comes near this
MAX_DEPTH = 64


def read_text(path: Path, what: str, max_bytes: int = MAX_BYTES) -> str:
    """The UTF-8 text of a file edgeloop reads; a missing, oversized or non-UTF-8 file is one clear error."""
    try:
        with path.open("rb") as f:
            raw = f.read(max_bytes + 1)
    except OSError as exc:
        raise EdgeloopError(f"{path}: cannot read {what} ({exc.strerror})") from None
    if len(raw) > max_bytes:
        raise EdgeloopError(f"{path}: the {what} is larger than {max_bytes >> 20} MiB", "is it the right file?")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EdgeloopError(f"{path}: the {what} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset "
                            f"{exc.start})", "save it as UTF-8") from None


def load_json(path: Path, what: str, schema: dict[str, Any], max_bytes: int = MAX_BYTES) -> Any:
    """A JSON file's data, read as YAML files are (size, UTF-8, depth) and checked against a JSON
    Schema. JSON's own parser reads it (fast, for large encodings files); only when the data is
    wrong is the text composed as YAML, of which JSON is a subset, to find the line at fault."""
    path = Path(path)
    text = read_text(path, what, max_bytes)

    def not_finite(word: str) -> NoReturn:
        line = text.count("\n", 0, max(text.find(word), 0)) + 1
        raise EdgeloopError(f"{path}:{line}: {word} is not a finite number", "write the number itself")

    try:
        data = json.loads(text, parse_constant=not_finite, object_pairs_hook=functools.partial(_unique_keys, path))
    except json.JSONDecodeError as exc:
        raise EdgeloopError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    except RecursionError:
        raise EdgeloopError(f"{path}: the {what} is nested too deeply (at most {MAX_DEPTH} levels)") from None
    if _schema_error(data, schema) is not None:
        try:
            root = Node(yaml.compose(text, Loader=yaml.SafeLoader), path, "")
        except (yaml.YAMLError, RecursionError):
            root = Node(yaml.compose("{}", Loader=yaml.SafeLoader), path, "")  # no lines to give, the key path stays
        validate(root, data, schema)
    return data


def _unique_keys(path: Path, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object as a dict, refusing a key given twice (json keeps the last one without a word)."""
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in data:
            raise EdgeloopError(f"{path}: key '{key}' given twice in one object", "keep one of them")
        data[key] = value
    return data


def load_yaml_node(path: Path, what: str) -> Node:
    """Compose `path` into a root Node; a missing, oversized, non-UTF-8, too deeply nested or
    malformed file is one clear error."""
    path = Path(path)
    text = read_text(path, what)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise EdgeloopError(f"{path}{line}: not valid YAML ({problem})") from None
    except RecursionError:
        raise EdgeloopError(f"{path}: the {what} is nested too deeply (at most {MAX_DEPTH} levels)") from None
    if root is None:
        raise EdgeloopError(f"{path}: the {what} is empty")
    _check_depth(root, path, what)
    return Node(root, path, "")


def load_yaml(path: Path, what: str, schema: dict[str, Any] | None = None) -> Any:
    """The plain data of a YAML file (mappings, lists, scalars), read as load_yaml_node reads it;
    with a JSON Schema, validated against it: the first problem is an error on its own line."""
    root = load_yaml_node(path, what)
    data = root.data()
    if schema is not None:
        validate(root, data, schema)
    return data


def validate(root: Node, data: Any, schema: dict[str, Any]) -> None:
    """Check `data` (read from `root`) against a JSON Schema (jsonschema, draft 2020-12), and say
    what is wrong where it was written: `file:line: key: message`, a did-you-mean for a misspelt key."""
    error = _schema_error(data, schema)
    if error is None:
        return
    path = list(error.absolute_path)
    node = root.at(path)
    if node.node is root.node and path:  # the text gave no lines (JSON that YAML cannot read): name the key
        node = Node(root.node, root.file, ".".join(map(str, path)))
    if error.validator == "additionalProperties":
        known = error.schema.get("properties", {})
        extra = sorted(set(error.instance) - set(known), key=str)[0]
        items = node.mapping() if isinstance(node.node, yaml.MappingNode) else {}
        if str(extra) in items:
            items[str(extra)].fail("unknown key", did_you_mean(str(extra), known))
        node.fail(f"unknown key '{extra}'", did_you_mean(str(extra), known))
    node.fail(_schema_message(error), error.schema.get("description"))


def _schema_error(data: Any, schema: dict[str, Any]) -> jsonschema.ValidationError | None:
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    return jsonschema.exceptions.best_match(validator.iter_errors(data))


def _schema_message(error: jsonschema.ValidationError) -> str:
    """jsonschema's words, in edgeloop's ("must be ..."), for the checks the schemas use."""
    value, expected = error.instance, error.validator_value
    shown = "a mapping" if isinstance(value, dict) else "a list" if isinstance(value, list) else repr(value)
    words = {
        "type": lambda: f"must be {' or '.join(_TYPE_NAMES.get(_PY_TYPES.get(t, t), t) for t in _listed(expected))}, "
                        f"got {shown}",
        "minimum": lambda: f"must be at least {expected}, got {shown}",
        "exclusiveMinimum": lambda: f"must be more than {expected}, got {shown}",
        "maximum": lambda: f"must be at most {expected}, got {shown}",
        "enum": lambda: f"unknown value {shown} (known: {', '.join(map(str, expected))})",
        "pattern": lambda: f"{shown} is not of the expected form ({expected})",
        "required": lambda: f"missing required key '{error.message.split(chr(39))[1]}'",
        "minItems": lambda: "must not be empty",
        "minLength": lambda: "must not be empty",
    }
    return words.get(error.validator, lambda: error.message)()


_PY_TYPES = {"string": "str", "integer": "int", "number": "float", "boolean": "bool", "null": "NoneType",
             "array": "list", "object": "dict"}


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _check_depth(root: yaml.Node, path: Path, what: str) -> None:
    pending, seen = [(root, 1)], set()
    while pending:
        node, depth = pending.pop()
        if depth > MAX_DEPTH:
            raise EdgeloopError(f"{path}:{node.start_mark.line + 1}: the {what} is nested more than {MAX_DEPTH} "
                                "levels deep")
        if id(node) in seen:  # an alias: its node was checked where it was anchored
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            pending += [(n, depth + 1) for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            pending += [(n, depth + 1) for n in node.value]


MAX_LISTED = 12  # beyond this many known names (a model's tensors), a hint shows the nearest few instead


def did_you_mean(word: str, choices: Collection[str]) -> str:
    """The hint for a misspelt name: the closest known name, then the known names (the nearest few of many)."""
    names = sorted(choices)
    close = difflib.get_close_matches(word, names, n=1, cutoff=0.6)
    if len(names) > MAX_LISTED:
        listed = f"nearest of {len(names)} known: " + ", ".join(difflib.get_close_matches(word, names, n=5, cutoff=0))
    else:
        listed = "known: " + ", ".join(names)
    return f"did you mean '{close[0]}'? {listed}" if close else listed


@dataclass(frozen=True)
class Node:
    """One YAML node plus where it is: its file, and its dotted key path from the root."""

    node: yaml.Node
    file: Path
    key: str

    @property
    def line(self) -> int:
        return self.node.start_mark.line + 1

    def fail(self, message: str, hint: str | None = None) -> NoReturn:
        where = f"{self.file}:{self.line}: {self.key}: " if self.key else f"{self.file}:{self.line}: "
        raise EdgeloopError(where + message, hint)

    def at(self, path: list[str | int]) -> Node:
        """The node at a path of keys and indexes below this one (as far as it goes)."""
        node = self
        for step in path:
            items = node.mapping() if isinstance(node.node, yaml.MappingNode) else None
            if items is not None and str(step) in items:
                node = items[str(step)]
            elif isinstance(node.node, yaml.SequenceNode) and isinstance(step, int) and step < len(node.node.value):
                node = node.sequence()[step]
            else:
                break
        return node

    def child(self, node: yaml.Node, name: str | int) -> Node:
        key = f"{self.key}[{name}]" if isinstance(name, int) else f"{self.key}.{name}" if self.key else name
        return Node(node, self.file, key)

    # ---- containers ------------------------------------------------------------------------

    def mapping(self, known: Collection[str] | None = None, required: Collection[str] = (), *,
                what: str = "key") -> dict[str, Node]:
        """The mapping's items by key; keys outside `known` (when given) and missing `required`
        keys are errors. `what` names the keys when they stand for something else (an input, an output)."""
        if not isinstance(self.node, yaml.MappingNode):
            self.fail(f"must be a mapping, got {self._kind()}")
        flat = _unshared(self.node)
        written = {id(k) for k, _ in flat.value}
        explicit: set[str] = set()
        yaml.SafeLoader("").flatten_mapping(flat)  # `<<: *anchor` merge keys become plain items
        items: dict[str, Node] = {}
        for key_node, value_node in flat.value:
            name = self.child(key_node, str(key_node.value))
            if not isinstance(key_node, yaml.ScalarNode):
                name.fail("keys must be plain names")
            key = str(key_node.value)
            if id(key_node) in written:  # merged-in keys may be overridden, written ones not repeated
                if key in explicit:
                    name.fail("key given twice", f"first given on line {items[key].line}")
                explicit.add(key)
            if known is not None and key not in known:
                name.fail("unknown key" if what == "key" else f"unknown {what} '{key}'", did_you_mean(key, known))
            items[key] = self.child(value_node, key)
        missing = [k for k in required if k not in items]
        if missing:
            self.fail(f"missing required key '{missing[0]}'")
        return items

    def sequence(self) -> list[Node]:
        if not isinstance(self.node, yaml.SequenceNode):
            self.fail(f"must be a list, got {self._kind()}")
        return [self.child(item, i) for i, item in enumerate(self.node.value)]

    # ---- scalars ---------------------------------------------------------------------------

    def value(self) -> Any:
        """The plain Python value (scalars, lists, mappings), as yaml.safe_load would give it; a tag
        safe_load refuses (`!!python/object`) is an error on its line."""
        try:
            return yaml.SafeLoader("").construct_object(_unshared(self.node), deep=True)
        except yaml.YAMLError as exc:
            self.fail(f"cannot read this value ({getattr(exc, 'problem', None) or str(exc).splitlines()[0]})")

    def data(self) -> Any:
        """The plain value with every mapping checked as mapping() checks it (no key given twice)."""
        if isinstance(self.node, yaml.MappingNode):
            return {key: item.data() for key, item in self.mapping().items()}
        if isinstance(self.node, yaml.SequenceNode):
            return [item.data() for item in self.sequence()]
        return self.value()

    def typed(self, *kinds: type) -> Any:
        value = self.value()
        # bool is an int subclass in Python, never in a config file
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            wanted = " or ".join(_TYPE_NAMES.get(k.__name__, k.__name__) for k in kinds)
            self.fail(f"must be {wanted}, got {self._kind()}")
        return value

    def string(self) -> str:
        text = self.typed(str)
        if not text.strip():
            self.fail("must not be empty")
        return text

    def text(self) -> str:
        """A scalar's text as written, for values that are strings to their consumer whatever YAML
        would make of them (`profiling_level: off` is the string "off", not false)."""
        if not isinstance(self.node, yaml.ScalarNode) or self.node.value == "":
            self.fail(f"must be a single value, got {self._kind()}")
        return str(self.node.value)

    def number(self) -> float:
        return float(self.typed(int, float))

    def choice(self, choices: Collection[str]) -> str:
        text = self.string()
        if text not in choices:
            self.fail(f"unknown value '{text}'", did_you_mean(text, choices))
        return text

    def listed(self) -> list[Node]:
        """A list's items; a single scalar is accepted as a one-item list (`runtimes: cpu`)."""
        return [self] if isinstance(self.node, yaml.ScalarNode) else self.sequence()

    def strings(self) -> list[str]:
        return [item.string() for item in self.listed()]

    def path(self, base: Path) -> Path:
        """An existing file, relative to `base` (the YAML file's folder) unless absolute or `~/...`."""
        path = (base / Path(self.string()).expanduser()).resolve()
        if path.is_dir():
            self.fail(f"{path} is a folder, not a file")
        if not path.is_file():
            self.fail(f"file not found: {path}")
        return path

    def _kind(self) -> str:
        if isinstance(self.node, yaml.MappingNode):
            return "a mapping"
        if isinstance(self.node, yaml.SequenceNode):
            return "a list"
        value = self.value()
        return f"{_TYPE_NAMES.get(type(value).__name__, type(value).__name__)} ({self.node.value!r})"


def _unshared(node: yaml.Node) -> yaml.Node:
    """A copy for PyYAML to flatten: its merge-key flattening rewrites nodes in place, which would
    make merged-in keys look written (so overriding one would read as a key given twice) on the
    next read of the same node, or of an alias of it."""
    return copy.deepcopy(node)
