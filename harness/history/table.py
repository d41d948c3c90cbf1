"""The terminal's view of the history: one row per recorded job, oldest first."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from harness.history.query import JobRecord
from harness.history.trend import commit_label
from harness.report.results import ERROR, FAILED, PASSED

_COLORS = {PASSED: "green", FAILED: "red", ERROR: "red"}
_NUMBERS = {"median ms", "p90 ms", "samples", "top-1 acc", "worst cosine", "peak MiB"}


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)


def history_table(records: list[JobRecord], where: str) -> Table:
    """Model, device, runtime and the figures of each job; a peak memory column once any job has one."""
    memory = any(r.peak_memory_kb is not None for r in records)
    table = Table(title=f"history · {where}", title_justify="left")
    columns = ["UTC time", "commit", "model", "profile", "runtime", "device", "status", "median ms", "p90 ms",
               "samples", "top-1 acc", "worst cosine", *(["peak MiB"] if memory else [])]
    for column in columns:
        table.add_column(column, overflow="fold", justify="right" if column in _NUMBERS else "left")
    for r in records:
        table.add_row(r.created.replace("+00:00", ""), commit_label(r), Text(r.model), r.profile, r.runtime,
                      Text(r.device_model or r.device or "-"), Text(r.status, style=_COLORS.get(r.status, "")),
                      _num(r.median_ms, "{:.3f}"), _num(r.p90_ms, "{:.3f}"), str(len(r.samples_ms)),
                      _num(r.top1_accuracy, "{:.4f}"), _num(r.cosine, "{:.6f}"),
                      *([_num(r.peak_memory_mib, "{:.1f}")] if memory else []))
    return table
