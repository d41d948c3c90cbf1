"""Which runtime can run which node: per-runtime op tables kept as data in deploy/opsupport/*.yaml.

Each table lists ONNX op types for one compute unit (cpu, gpu, dsp, aip); gpu_fp16 shares the gpu
table. An op left out on purpose can say why under `unsupported` (control flow: what is known of it),
which the op check reports with the node. Adding an op or a runtime is an edit of a YAML file, not of
this module.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx
from onnx import helper
from rich.table import Table

from deploy.errors import EdgeloopError
from deploy.profiles import RUNTIME_UNITS
from deploy.yamlnode import load_yaml

TABLES_DIR = Path(__file__).resolve().parent / "opsupport"
# The table each runtime reads: gpu and gpu_fp16 differ in precision, not in which ops they run.
RUNTIME_TABLES: dict[str, str] = {"cpu": "cpu", "gpu": "gpu", "gpu_fp16": "gpu", "dsp": "dsp", "aip": "aip"}
assert set(RUNTIME_TABLES) == set(RUNTIME_UNITS), "every runtime needs an op table"


@dataclass(frozen=True)
class OpTable:
    runtime: str
    ops: frozenset[str]
    notes: dict[str, str] = field(default_factory=dict)
    limits: dict[str, dict[str, tuple[Any, ...]]] = field(default_factory=dict)  # op -> attribute -> allowed
    unsupported: dict[str, str] = field(default_factory=dict)  # op not in `ops` -> why (what is known of it)


@dataclass(frozen=True)
class OpSupport:
    """One node of a graph and the runtimes (cpu, gpu, gpu_fp16, dsp, aip) whose tables list its op."""

    name: str
    op_type: str
    runtimes: tuple[str, ...]
    notes: dict[str, str] = field(default_factory=dict)  # runtime -> limitation worth knowing
    reasons: dict[str, str] = field(default_factory=dict)  # runtime -> why the op does not run there, when known

    def supported_on(self, runtime: str) -> bool:
        return runtime in self.runtimes

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "op_type": self.op_type, "runtimes": list(self.runtimes), "notes": self.notes,
                "reasons": self.reasons}


def _load_table(path: Path) -> OpTable:
    data = load_yaml(path, "op-support table")
    if not isinstance(data, dict) or data.get("runtime") != path.stem:
        raise EdgeloopError(f"{path}: 'runtime' must be '{path.stem}'", "the file name names the runtime")
    ops = data.get("ops")
    if not isinstance(ops, list) or not all(isinstance(op, str) for op in ops):
        raise EdgeloopError(f"{path}: 'ops' must be a list of ONNX op types")
    notes = data.get("notes") or {}
    limits = data.get("limits") or {}
    unsupported = data.get("unsupported") or {}
    for section, entries in (("note", notes), ("limit", limits)):
        stray = sorted(set(entries) - set(ops))
        if stray:
            raise EdgeloopError(f"{path}: {section} for op '{stray[0]}', which is not in 'ops'")
    if not isinstance(unsupported, dict) or not all(isinstance(v, str) and v for v in unsupported.values()):
        raise EdgeloopError(f"{path}: 'unsupported' must map op types to why the runtime does not run them")
    both = sorted(set(unsupported) & set(ops))
    if both:
        raise EdgeloopError(f"{path}: '{both[0]}' is both in 'ops' and in 'unsupported'", "keep it in one of them")
    for op, attrs in limits.items():
        if not isinstance(attrs, dict) or not all(isinstance(v, list) for v in attrs.values()):
            raise EdgeloopError(f"{path}: limits.{op} must map attribute names to lists of allowed values")
    return OpTable(path.stem, frozenset(ops), {str(k): str(v) for k, v in notes.items()},
                   {op: {attr: tuple(values) for attr, values in attrs.items()} for op, attrs in limits.items()},
                   {str(k): v for k, v in unsupported.items()})


@functools.cache
def load_tables(root: Path = TABLES_DIR) -> dict[str, OpTable]:
    """The tables by table name (cpu, gpu, dsp, aip), validated once per process."""
    tables = {path.stem: _load_table(path) for path in sorted(root.glob("*.yaml"))}
    missing = sorted(set(RUNTIME_TABLES.values()) - set(tables))
    if missing:
        raise EdgeloopError(f"{root}: no op-support table for '{missing[0]}'")
    return tables


def node_support(node: onnx.NodeProto, tables: dict[str, OpTable] | None = None) -> OpSupport:
    """Which runtimes list this node's op and accept its attributes (`limits`), and why the others do
    not run it where a table says (`limits`, `unsupported`); ops outside the default ONNX domain are in
    no table."""
    tables = tables or load_tables()
    op = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"
    runtimes, notes, reasons = [], {}, {}
    for runtime, name in RUNTIME_TABLES.items():
        table = tables[name]
        if op not in table.ops:
            if op in table.unsupported:
                reasons[runtime] = table.unsupported[op]
            continue
        refused = [f"{attr}={value!r} (supported: {', '.join(map(str, allowed))})"
                   for attr, allowed in table.limits.get(op, {}).items()
                   if (value := _attribute(node, attr)) not in allowed]
        if refused:
            reasons[runtime] = "; ".join(refused)
            continue
        runtimes.append(runtime)
        if op in table.notes:
            notes[runtime] = table.notes[op]
    return OpSupport(node.name, op, tuple(runtimes), notes, reasons)


def _attribute(node: onnx.NodeProto, name: str) -> Any:
    """The node's attribute value, or the ONNX schema's default when the node leaves it out."""
    for attr in node.attribute:
        if attr.name == name:
            value = helper.get_attribute_value(attr)
            return value.decode() if isinstance(value, bytes) else value
    try:
        default = onnx.defs.get_schema(node.op_type).attributes[name].default_value
    except (onnx.defs.SchemaError, KeyError):
        return None
    if not default.name:
        return None
    value = helper.get_attribute_value(default)
    return value.decode() if isinstance(value, bytes) else value


def check_graph(graph: onnx.GraphProto) -> list[OpSupport]:
    """Report every node; a node no runtime can run is an error naming the node and its op."""
    tables = load_tables()
    report = [node_support(node, tables) for node in graph.node]
    for op in report:
        if not op.runtimes:
            by_reason: dict[str, list[str]] = {}
            for runtime, why in op.reasons.items():
                by_reason.setdefault(why, []).append(runtime)
            why = "; ".join(f"{', '.join(runtimes)}: {reason}" for reason, runtimes in by_reason.items())
            raise EdgeloopError(f"node '{op.name}' uses op {op.op_type}, which no runtime supports"
                                + (f" ({why})" if why else ""),
                                "replace it in the source model or cut it off with --out-node")
    return report


def unsupported_by_runtime(report: list[OpSupport]) -> dict[str, list[OpSupport]]:
    """Runtime -> the nodes it cannot run (runtimes that run everything are left out)."""
    result: dict[str, list[OpSupport]] = {}
    for runtime in RUNTIME_TABLES:
        missing = [op for op in report if not op.supported_on(runtime)]
        if missing:
            result[runtime] = missing
    return result


def render_unsupported(report: list[OpSupport]) -> Table | None:
    """A table of the nodes some runtime cannot run (None when every runtime runs every node)."""
    missing = unsupported_by_runtime(report)
    if not missing:
        return None
    table = Table(title="op support: nodes some runtimes cannot run")
    for col in ("node", "op", "not on", "runs on", "why"):
        table.add_column(col, overflow="fold")
    for op in report:
        absent = [rt for rt, nodes in missing.items() if op in nodes]
        if absent:
            why = "; ".join(f"{rt}: {op.reasons[rt]}" for rt in absent if rt in op.reasons) or "op not in table"
            table.add_row(op.name, op.op_type, ",".join(absent), ",".join(op.runtimes), why)
    return table
