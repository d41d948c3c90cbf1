"""Which runtime can run which node: per-runtime op tables kept as data in deploy/opsupport/*.yaml.

Each table lists ONNX op types for one compute unit (cpu, gpu, dsp, aip); gpu_fp16 shares the gpu
table. Adding an op or a runtime is an edit of a YAML file, not of this module.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import onnx
import yaml
from rich.table import Table

from deploy.errors import EdgeloopError
from deploy.profiles import RUNTIME_UNITS

TABLES_DIR = Path(__file__).resolve().parent / "opsupport"
# The table each runtime reads: gpu and gpu_fp16 differ in precision, not in which ops they run.
RUNTIME_TABLES: dict[str, str] = {"cpu": "cpu", "gpu": "gpu", "gpu_fp16": "gpu", "dsp": "dsp", "aip": "aip"}
assert set(RUNTIME_TABLES) == set(RUNTIME_UNITS), "every runtime needs an op table"


@dataclass(frozen=True)
class OpTable:
    runtime: str
    ops: frozenset[str]
    notes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class OpSupport:
    """One node of a graph and the runtimes (cpu, gpu, gpu_fp16, dsp, aip) whose tables list its op."""

    name: str
    op_type: str
    runtimes: tuple[str, ...]
    notes: dict[str, str] = field(default_factory=dict)  # runtime -> limitation worth knowing

    def supported_on(self, runtime: str) -> bool:
        return runtime in self.runtimes

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "op_type": self.op_type, "runtimes": list(self.runtimes), "notes": self.notes}


def _load_table(path: Path) -> OpTable:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise EdgeloopError(f"{path}: cannot read op-support table ({exc})") from None
    if not isinstance(data, dict) or data.get("runtime") != path.stem:
        raise EdgeloopError(f"{path}: 'runtime' must be '{path.stem}'", "the file name names the runtime")
    ops = data.get("ops")
    if not isinstance(ops, list) or not all(isinstance(op, str) for op in ops):
        raise EdgeloopError(f"{path}: 'ops' must be a list of ONNX op types")
    notes = data.get("notes") or {}
    stray = sorted(set(notes) - set(ops))
    if stray:
        raise EdgeloopError(f"{path}: note for op '{stray[0]}', which is not in 'ops'")
    return OpTable(path.stem, frozenset(ops), {str(k): str(v) for k, v in notes.items()})


@functools.cache
def load_tables(root: Path = TABLES_DIR) -> dict[str, OpTable]:
    """The tables by table name (cpu, gpu, dsp, aip), validated once per process."""
    tables = {path.stem: _load_table(path) for path in sorted(root.glob("*.yaml"))}
    missing = sorted(set(RUNTIME_TABLES.values()) - set(tables))
    if missing:
        raise EdgeloopError(f"{root}: no op-support table for '{missing[0]}'")
    return tables


def node_support(node: onnx.NodeProto, tables: dict[str, OpTable] | None = None) -> OpSupport:
    """Which runtimes list this node's op; ops outside the default ONNX domain are in no table."""
    tables = tables or load_tables()
    op = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"
    runtimes = tuple(rt for rt, table in RUNTIME_TABLES.items() if op in tables[table].ops)
    notes = {rt: tables[RUNTIME_TABLES[rt]].notes[op] for rt in runtimes if op in tables[RUNTIME_TABLES[rt]].notes}
    return OpSupport(node.name, op, runtimes, notes)


def check_graph(graph: onnx.GraphProto) -> list[OpSupport]:
    """Report every node; a node no runtime can run is an error naming the node and its op."""
    tables = load_tables()
    report = [node_support(node, tables) for node in graph.node]
    for op in report:
        if not op.runtimes:
            raise EdgeloopError(f"node '{op.name}' uses op {op.op_type}, which no runtime supports",
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
    for col in ("node", "op", "not on", "runs on"):
        table.add_column(col)
    for op in report:
        absent = [rt for rt, nodes in missing.items() if op in nodes]
        if absent:
            table.add_row(op.name, op.op_type, ",".join(absent), ",".join(op.runtimes))
    return table
