"""Validated reading of YAML files whose errors name the file, the line and the key.

PyYAML's composed nodes keep their position: a file is composed into a `Node` tree, turned into
plain data and checked against its reader's JSON Schema (`validate`), and every problem, the
schema's or a reader's own (`Node.fail`), is an EdgeloopError `file:line: key: what is wrong`, with
a did-you-mean for a misspelt key or value. Every YAML file edgeloop reads comes through here (the
deployment file, packs, profiles, farm files, matrices, op tables), so all are read alike: UTF-8
text of at most MAX_BYTES, nested at most MAX_DEPTH deep, safe tags only, no key given twice, no
alias inside the collection it names and at most MAX_ALIASED values added by aliases (a "billion
laughs" file would otherwise hang the reader); anything else is one error that names the file.
"""

from __future__ import annotations

import copy
import difflib
import functools
import json
import math
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
MAX_ALIASED = 10_000  # values aliases may add to a file's own: a shared default list, never an exponential


def read_text(path: Path, what: str, max_bytes: int = MAX_BYTES) -> str:
    """The UTF-8 text of a file edgeloop reads, without the byte order mark Windows editors put first;
    a missing, oversized or non-UTF-8 file is one clear error."""
    try:
        with path.open("rb") as f:
            raw = f.read(max_bytes + 1)
    except OSError as exc:
        raise EdgeloopError(f"{path}: cannot read {what} ({exc.strerror})") from None
    if len(raw) > max_bytes:
        raise EdgeloopError(f"{path}: the {what} is larger than {max_bytes >> 20} MiB", "is it the right file?")
    try:
        return raw.decode("utf-8").removeprefix("\ufeff")
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
    _check_aliases(root, path, what, _check_depth(root, path, what))
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
    what is wrong where it was written: `file:line: key: message`, a did-you-mean for a misspelt
    key or value, the schema's `description` of the value at fault as the hint."""
    error = _schema_error(data, schema)
    if error is None:
        return
    path = list(error.absolute_path)
    node = root.at(path)
    if node.node is root.node and path:  # the text gave no lines (JSON that YAML cannot read): name the key
        node = Node(root.node, root.file, ".".join(map(str, path)))
    known = error.schema.get("properties", {})
    # a misspelt required key is also missing: the unknown key, with its did-you-mean, says more
    if error.validator == "additionalProperties" or (error.validator == "required"
                                                     and error.schema.get("additionalProperties") is False):
        unknown = sorted(set(error.instance) - set(known), key=str)
        if unknown:
            node.unknown(str(unknown[0]), known)
    if "propertyNames" in error.relative_schema_path:  # the key itself is at fault: its own line
        node = node.key_node(str(error.instance))
    node.fail(_schema_message(error), error.schema.get("description"))


def problem(data: Any, schema: dict[str, Any]) -> str | None:
    """The first problem of data that came from no file of its own (a container's metadata), in the
    words `validate` uses, led by the key path at fault; None when the data is valid."""
    error = _schema_error(data, schema)
    if error is None:
        return None
    key = "".join(f"[{step}]" if isinstance(step, int) else f".{step}" for step in error.absolute_path).lstrip(".")
    return f"{key}: {_schema_message(error)}" if key else _schema_message(error)


def one_or_list(item: dict[str, Any], **array: Any) -> dict[str, Any]:
    """A schema for one `item` or a list of them (`runtimes: cpu` or `runtimes: [cpu, gpu]`); `array`
    adds keywords for the list form (minItems); `listed` turns the value into a list."""
    return {"if": {"type": "array"}, "then": {"type": "array", "items": item, **array}, "else": item}


def listed(value: Any) -> list[Any]:
    """A value valid by `one_or_list`, as a list."""
    return value if isinstance(value, list) else [value]


def _finite_number(_checker: Any, value: Any) -> bool:
    """JSON's numbers, which YAML's .nan and .inf are not (a limit of .nan passes every comparison)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and (isinstance(value, int)
                                                                                or math.isfinite(value))


def _whole_number(_checker: Any, value: Any) -> bool:
    """An integer written as one: `3.0` is not a dimension or a bit width, whatever JSON Schema says."""
    return isinstance(value, int) and not isinstance(value, bool)


_VALIDATOR = jsonschema.validators.extend(jsonschema.Draft202012Validator, type_checker=(
    jsonschema.Draft202012Validator.TYPE_CHECKER.redefine_many({"number": _finite_number, "integer": _whole_number})))


def _schema_error(data: Any, schema: dict[str, Any]) -> jsonschema.ValidationError | None:
    validator = _VALIDATOR(schema, format_checker=jsonschema.FormatChecker())
    return jsonschema.exceptions.best_match(validator.iter_errors(data))


def _schema_message(error: jsonschema.ValidationError) -> str:
    """jsonschema's words, in edgeloop's ("must be ..."), for the checks the schemas use."""
    value, expected = error.instance, error.validator_value
    shown = _shown(value)
    words = {
        "type": lambda: f"must be {_wanted(value, expected)}, got {shown}",
        "minimum": lambda: f"must be at least {expected}, got {shown}",
        "exclusiveMinimum": lambda: f"must be more than {expected}, got {shown}",
        "maximum": lambda: f"must be at most {expected}, got {shown}",
        "const": lambda: f"must be {_shown(expected)}, got {shown}",
        "enum": lambda: _unknown_value(value, expected),
        "pattern": lambda: f"{shown} is not of the expected form"
                           + ("" if error.schema.get("description") else f" ({expected})"),
        "format": lambda: f"{shown} is not a {_FORMATS.get(expected, expected)}"
                          + (f" ({error.cause})" if error.cause else ""),
        "required": lambda: f"missing required key '{error.message.split(chr(39))[1]}'",
        "minItems": lambda: "must not be empty",
        "minLength": lambda: "must not be empty",
        "minProperties": lambda: "must not be empty",
    }
    return words.get(error.validator, lambda: error.message)()


def _wanted(value: Any, types: str | list[str]) -> str:
    """The types a value must have, in words; a YAML .nan or .inf (JSON's 1e999) is a number, but not a finite one."""
    if isinstance(value, float) and not math.isfinite(value) and "number" in listed(types):
        return "a finite number"
    return " or ".join(_TYPE_NAMES.get(_PY_TYPES.get(t, t), t) for t in listed(types))


def _unknown_value(value: Any, known: list[Any]) -> str:
    if isinstance(value, dict | list):
        return f"must be one of {', '.join(map(str, known))}, got {_shown(value)}"
    if all(isinstance(k, str) for k in known):
        return f"unknown value {_shown(value)} ({did_you_mean(str(value), known)})"
    return f"unknown value {_shown(value)} (known: {', '.join(map(_shown, known))})"


def _shown(value: Any) -> str:
    """A value as the file wrote it: YAML's true/false/null, a string quoted, a container by its kind."""
    if isinstance(value, dict | list):
        return "a mapping" if isinstance(value, dict) else "a list"
    return json.dumps(value) if value is None or isinstance(value, bool) else repr(value)


_PY_TYPES = {"string": "str", "integer": "int", "number": "float", "boolean": "bool", "null": "NoneType",
             "array": "list", "object": "dict"}
_FORMATS = {"regex": "regular expression"}


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return list(node.value) if isinstance(node, yaml.SequenceNode) else []


def _check_depth(root: yaml.Node, path: Path, what: str) -> int:
    """Refuse a file nested more than MAX_DEPTH deep as written; the number of its nodes, each alias's once."""
    pending, seen = [(root, 1)], set()
    while pending:
        node, depth = pending.pop()
        if depth > MAX_DEPTH:
            raise EdgeloopError(f"{path}:{node.start_mark.line + 1}: the {what} is nested more than {MAX_DEPTH} "
                                "levels deep")
        if id(node) in seen:  # an alias: its node was checked where it was anchored
            continue
        seen.add(id(node))
        pending += [(n, depth + 1) for n in _children(node)]
    return len(seen)


def _check_aliases(root: yaml.Node, path: Path, what: str, written: int) -> None:
    """Refuse what aliases would make of the file once expanded (as reading it into data does): a
    collection holding an alias of itself (endless), more than MAX_ALIASED values beyond the `written`
    ones, or more than MAX_DEPTH levels. One pass over the written nodes, each alias's size known once."""
    size: dict[int, tuple[int, int]] = {}  # id -> (values once expanded, levels once expanded)
    started: set[int] = set()  # collections entered and not yet finished: the ancestors of the next one
    pending: list[tuple[yaml.Node, bool]] = [(root, False)]
    while pending:
        node, finished = pending.pop()
        line = node.start_mark.line + 1
        if finished:
            below = [size[id(n)] for n in _children(node)]
            count, depth = 1 + sum(c for c, _ in below), 1 + max((d for _, d in below), default=0)
            if count > written + MAX_ALIASED or depth > MAX_DEPTH:
                raise EdgeloopError(f"{path}:{line}: the {what} grows too large through its aliases (*name): more "
                                    f"than {MAX_ALIASED} values beyond those written, or {MAX_DEPTH} levels deep",
                                    "write the values out, or alias smaller ones")
            size[id(node)] = (count, depth)
            started.discard(id(node))
        elif id(node) in started:
            raise EdgeloopError(f"{path}:{line}: this value holds an alias of itself, which never ends",
                                "an alias (*name) may not stand inside the value it names")
        elif id(node) not in size:
            started.add(id(node))
            pending.append((node, True))
            pending += [(n, False) for n in _children(node)]


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
        """The node at a path of keys and indexes below this one (as far as it goes: a single
        value stands for the one-item list `one_or_list` allows)."""
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

    def mapping(self) -> dict[str, Node]:
        """A mapping node's values by key."""
        return {name: value for name, (_, value) in self._pairs().items()}

    def key_node(self, name: str) -> Node:
        """The node of key `name` itself, for an error on the key's line rather than its value's
        (which may start lines below); this node when it is no mapping holding `name`."""
        pairs = self._pairs() if isinstance(self.node, yaml.MappingNode) else {}
        return pairs[name][0] if name in pairs else self

    def unknown(self, name: str, known: Collection[str], what: str = "key") -> NoReturn:
        """Refuse key `name` of this mapping on its own line, with a did-you-mean from `known`;
        `what` names the keys when they stand for something else (an input, an output)."""
        node = self.key_node(name)
        named = what != "key" or node is self  # without the key's own line, its path does not end in the name
        node.fail(f"unknown {what} '{name}'" if named else "unknown key", did_you_mean(name, known))

    def _pairs(self) -> dict[str, tuple[Node, Node]]:
        """A mapping node's key and value nodes by key, merge keys flattened; a key written twice is an error."""
        flat = _unshared(self.node)
        written = {id(k) for k, _ in flat.value}
        explicit: dict[str, Node] = {}
        yaml.SafeLoader("").flatten_mapping(flat)  # `<<: *anchor` merge keys become plain items
        pairs: dict[str, tuple[Node, Node]] = {}
        for key_node, value_node in flat.value:
            name = self.child(key_node, str(key_node.value))
            if not isinstance(key_node, yaml.ScalarNode):
                name.fail("keys must be plain names")
            key = str(key_node.value)
            if id(key_node) in written:  # merged-in keys may be overridden, written ones not repeated
                if key in explicit:
                    name.fail("key given twice", f"first given on line {explicit[key].line}")
                explicit[key] = name
            pairs[key] = (name, self.child(value_node, key))
        return pairs

    def sequence(self) -> list[Node]:
        """A sequence node's items."""
        return [self.child(item, i) for i, item in enumerate(self.node.value)]

    def listed(self) -> list[Node]:
        """The items of a value valid by `one_or_list`: a single value is a one-item list."""
        return self.sequence() if isinstance(self.node, yaml.SequenceNode) else [self]

    def value(self) -> Any:
        """The plain Python value (scalars, lists, mappings), as yaml.safe_load would give it; a tag
        safe_load refuses (`!!python/object`) is an error on its line."""
        try:
            return yaml.SafeLoader("").construct_object(_unshared(self.node), deep=True)
        except yaml.YAMLError as exc:
            self.fail(f"cannot read this value ({getattr(exc, 'problem', None) or str(exc).splitlines()[0]})")

    def data(self) -> Any:
        """The plain value with every mapping checked as `mapping()` checks it (no key given twice);
        a tagged mapping or list (`!!python/object/apply:os.system [...]`) is read as `value()` reads it."""
        if isinstance(self.node, yaml.MappingNode) and self.node.tag == _MAP:
            return {key: item.data() for key, item in self.mapping().items()}
        if isinstance(self.node, yaml.SequenceNode) and self.node.tag == _SEQ:
            return [item.data() for item in self.sequence()]
        return self.value()


_MAP, _SEQ = "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"  # what untagged mappings and lists resolve to


def _unshared(node: yaml.Node) -> yaml.Node:
    """A copy for PyYAML to flatten: its merge-key flattening rewrites nodes in place, which would
    make merged-in keys look written (so overriding one would read as a key given twice) on the
    next read of the same node, or of an alias of it."""
    return copy.deepcopy(node)
