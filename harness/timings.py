"""Timing files that net-runs leave beside their outputs, read into one shape whatever wrote them.

Formats (a pack names its format; see docs/runtime-packs.md):
- `edgeloop-diag`: the emulated net-run's `edgeloop_diag.json`, with the host's reference time after each
  inference (`host_reference_ms`, how fast the host was at that moment; docs/farm.md).
- `snpe-diag-log`: SNPE's binary `SNPEDiag_0.log`, read through the SDK's `snpe-diagview`
  (`snpe-diagview-text`: that tool's report, already produced).
- `qnn-profiling-log`: QNN's binary `qnn-profiling-data_0.log`, read through `qnn-profile-viewer`
  (`qnn-profile-viewer-text`: that tool's report).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deploy.errors import EdgeloopError
from deploy.sdk import host_tool, run_tool


@dataclass
class Timings:
    init_ms: float | None
    inference_ms: list[float]
    layers: dict[str, list[float]] = field(default_factory=dict)  # layer name -> ms per inference
    # the emulated device only: the host's fixed reference computation timed after each inference
    host_reference_ms: list[float] = field(default_factory=list)


def parse_timings(fmt: str, path: Path) -> Timings:
    """Read a timing file of the named format; a missing, malformed or unknown one is an EdgeloopError."""
    path = Path(path)
    if fmt in TOOL_FORMATS:  # a vendor's binary log: its SDK's host tool writes the report we parse
        kind, tool, fmt = TOOL_FORMATS[fmt]
        if not path.is_file():
            raise EdgeloopError(f"{path}: timings log not found", "did net-run finish? check its stderr")
        try:
            reader = host_tool(kind, tool)
        except EdgeloopError as exc:
            raise EdgeloopError(f"{path.name} is read by the {kind.upper()} SDK's {tool}: {exc.message}",
                                exc.hint) from None
        return TEXT_PARSERS[fmt](run_tool(reader, ["--input_log", str(path)]), str(path))
    parser = TEXT_PARSERS.get(fmt)
    if parser is None:
        known = sorted([*TEXT_PARSERS, *TOOL_FORMATS])
        raise EdgeloopError(f"unknown timings format '{fmt}'", f"known formats: {', '.join(known)}")
    try:
        text = path.read_text()
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
    reference = data.get("host_reference_ms", [])
    if not isinstance(reference, list) or len(reference) not in (0, len(inference)):
        raise EdgeloopError(f"{source}: 'host_reference_ms' must be a list with one number per inference")
    init = data.get("init_ms")
    return Timings(
        init_ms=None if init is None else _number(init, f"{source}: init_ms"),
        inference_ms=[_number(v, f"{source}: inference_ms[{i}]") for i, v in enumerate(inference)],
        layers={str(k): [_number(x, f"{source}: layers[{k}]") for x in v] for k, v in layers.items()},
        host_reference_ms=[_number(v, f"{source}: host_reference_ms[{i}]") for i, v in enumerate(reference)],
    )


_US = re.compile(r"^\s*(?P<name>[^:]+?)\s*:\s*(?P<value>\d+(?:\.\d+)?)\s*us\b")
_SNPE_LAYER = re.compile(r"^\s*(?P<index>\d+)\s*:\s*(?:(?P<name>.+?)\s*:\s*)?(?P<value>\d+(?:\.\d+)?)\s*us\b")


def _parse_snpe_diagview_text(text: str, source: str) -> Timings:
    """snpe-diagview's report: `Init: N us`, `Total Inference Time: N us` (per execution, or the
    average when only that is printed) and `Layer Times:` rows `<i>: [name :] N us : RUNTIME`
    (DSP rows counted in cycles are not times and are left out)."""
    init: float | None = None
    per_run: list[float] = []
    average: list[float] = []
    layers: dict[str, list[float]] = {}
    section = ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.endswith(":") and not _US.match(stripped):
            section = stripped.lower()
            continue
        if section.startswith("layer times"):
            row = _SNPE_LAYER.match(stripped)
            if row:
                layers.setdefault(row["name"] or row["index"], []).append(float(row["value"]) / 1000.0)
            continue
        stat = _US.match(stripped)
        if not stat:
            continue
        name, ms = stat["name"].lower(), float(stat["value"]) / 1000.0
        if name == "init":
            init = ms
        elif name == "total inference time":
            (average if "average" in section else per_run).append(ms)
    inference = per_run or average
    if not inference:
        raise EdgeloopError(f"{source}: no 'Total Inference Time' in the snpe-diagview report",
                            "was the run profiled (--profiling_level basic or higher)?")
    return Timings(init_ms=init, inference_ms=inference, layers=layers)


def _parse_qnn_profile_text(text: str, source: str) -> Timings:
    """qnn-profile-viewer's report: the `NetRun: N us` line of `Init Stats` and of each `Total
    Inference Time` (per execution, or the average section when only that is printed)."""
    init: float | None = None
    per_run: list[float] = []
    average: list[float] = []
    block, stats = "", ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.endswith(":") and not _US.match(stripped):
            lowered = stripped.lower()
            if "stats" in lowered:
                stats = lowered
            block = lowered
            continue
        stat = _US.match(stripped)
        if not stat or stat["name"].lower() != "netrun":
            continue
        ms = float(stat["value"]) / 1000.0
        if stats.startswith("init stats") and init is None:
            init = ms
        elif stats.startswith("execute stats") and block.startswith(("total inference time", "graph")):
            (average if "average" in stats else per_run).append(ms)
    inference = per_run or average
    if not inference:
        raise EdgeloopError(f"{source}: no 'Total Inference Time' in the qnn-profile-viewer report",
                            "was the run profiled (--profiling_level basic)?")
    return Timings(init_ms=init, inference_ms=inference)


TEXT_PARSERS: dict[str, Callable[[str, str], Timings]] = {
    "edgeloop-diag": _parse_edgeloop_diag,
    "snpe-diagview-text": _parse_snpe_diagview_text,
    "qnn-profile-viewer-text": _parse_qnn_profile_text,
}
# format -> (SDK, host tool run as `tool --input_log FILE`, format of the report it prints)
TOOL_FORMATS: dict[str, tuple[str, str, str]] = {
    "snpe-diag-log": ("snpe", "snpe-diagview", "snpe-diagview-text"),
    "qnn-profiling-log": ("qnn", "qnn-profile-viewer", "qnn-profile-viewer-text"),
}
