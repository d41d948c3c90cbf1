"""Timing files that net-runs leave beside their outputs, read into one shape whatever wrote them.

Formats (a pack names its format; see docs/runtime-packs.md):
- `edgeloop-diag`: the emulated net-run's `edgeloop_diag.json`.
- `snpe-diagview-csv`: `snpe-diagview --input_log SNPEDiag.log --output csv` (one row per statistic
  and inference; times in microseconds).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deploy.errors import EdgeloopError


@dataclass
class Timings:
    init_ms: float | None
    inference_ms: list[float]
    layers: dict[str, list[float]] = field(default_factory=dict)  # layer name -> ms per inference


def parse_timings(fmt: str, path: Path) -> Timings:
    """Read a timing file of the named format; a missing, malformed or unknown one is an EdgeloopError."""
    parser = PARSERS.get(fmt)
    if parser is None:
        raise EdgeloopError(f"unknown timings format '{fmt}'", f"known formats: {', '.join(sorted(PARSERS))}")
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise EdgeloopError(f"{path}: cannot read timings file ({getattr(exc, 'strerror', None) or exc})",
                            "did net-run finish? check its stderr in the run folder") from None
    return parser(text, str(path))


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise EdgeloopError(f"{where}: expected a non-negative number of ms, got {value!r}")
    return float(value)


def _parse_edgeloop_diag(text: str, source: str) -> Timings:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EdgeloopError(f"{source}: not valid JSON (line {exc.lineno}: {exc.msg})",
                            "the diag file is incomplete: the run probably did not finish") from None
    if not isinstance(data, dict) or data.get("format") != "edgeloop-diag":
        raise EdgeloopError(f"{source}: not an edgeloop diag file (no \"format\": \"edgeloop-diag\")")
    inference = data.get("inference_ms")
    if not isinstance(inference, list):
        raise EdgeloopError(f"{source}: 'inference_ms' must be a list of numbers")
    layers = data.get("layers", {})
    if not isinstance(layers, dict) or not all(isinstance(v, list) for v in layers.values()):
        raise EdgeloopError(f"{source}: 'layers' must map layer names to lists of ms")
    init = data.get("init_ms")
    return Timings(
        init_ms=None if init is None else _number(init, f"{source}: init_ms"),
        inference_ms=[_number(v, f"{source}: inference_ms[{i}]") for i, v in enumerate(inference)],
        layers={str(k): [_number(x, f"{source}: layers[{k}]") for x in v] for k, v in layers.items()},
    )


# snpe-diagview's csv statistics that give init and per-inference totals (microseconds).
_SNPE_INIT = ("Init Stats", "Load", "Deserialize", "Create")
_SNPE_TOTAL = ("Total Inference Time", "Forward Propagate Time")


def _parse_snpe_diagview_csv(text: str, source: str) -> Timings:
    """Rows look like `Execute ID,Name,Value (us),Runtime`; Execute ID 0 holds init, layers are `Layer ...`."""
    rows = list(csv.reader(text.splitlines()))
    if not rows or len(rows[0]) < 3:
        raise EdgeloopError(f"{source}: not a snpe-diagview csv (expected a header with Execute ID,Name,Value)")
    init_parts: dict[str, float] = {}
    totals: dict[int, float] = {}
    forward: dict[int, float] = {}
    layers: dict[str, list[float]] = {}
    for lineno, row in enumerate(rows[1:], 2):
        if not row or not "".join(row).strip():
            continue
        if len(row) < 3:
            raise EdgeloopError(f"{source}:{lineno}: expected at least 3 columns, got {len(row)}")
        try:
            execute_id, value_us = int(row[0]), float(row[2])
        except ValueError:
            raise EdgeloopError(f"{source}:{lineno}: Execute ID and value must be numbers, got {row[:3]}") from None
        name = row[1].strip()
        ms = value_us / 1000.0
        if name in _SNPE_INIT[1:] or name == _SNPE_INIT[0]:
            init_parts[name] = ms
        elif name == _SNPE_TOTAL[0]:
            totals[execute_id] = ms
        elif name == _SNPE_TOTAL[1]:
            forward[execute_id] = ms
        elif execute_id > 0:
            layers.setdefault(name, []).append(ms)
    per_run = totals or forward
    if not per_run:
        raise EdgeloopError(f"{source}: no '{_SNPE_TOTAL[0]}' rows", "was the run profiled (--profiling_level)?")
    init = init_parts.get(_SNPE_INIT[0])
    if init is None and init_parts:
        init = sum(init_parts.values())
    return Timings(init_ms=init, inference_ms=[per_run[k] for k in sorted(per_run)], layers=layers)


PARSERS: dict[str, Callable[[str, str], Timings]] = {
    "edgeloop-diag": _parse_edgeloop_diag,
    "snpe-diagview-csv": _parse_snpe_diagview_csv,
}
