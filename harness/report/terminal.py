"""The terminal's view of a deploy: a summary table and one line per job that did not pass."""

from __future__ import annotations

from rich.table import Table

from harness.report.results import ERROR, FAILED, PASSED, JobResult

_COLORS = {PASSED: "green", FAILED: "red", ERROR: "red"}


def summary_table(results: list[JobResult], device: str) -> Table:
    table = Table(title=f"edgeloop deploy · {device}", title_justify="left")
    for column in ("model", "runtime", "status", "worst cosine", "SQNR dB", "median ms", "pushed"):
        table.add_column(column, overflow="fold")
    for r in results:
        cosines = [o.metrics.cosine for o in r.outputs]
        sqnrs = [o.metrics.sqnr_db for o in r.outputs]
        median = r.latency.to_json()["median_ms"] if r.latency else None
        table.add_row(r.model, r.runtime, f"[{_COLORS[r.status]}]{r.status}[/]",
                      f"{min(cosines):.6f}" if cosines else "-", f"{min(sqnrs):.1f}" if sqnrs else "-",
                      f"{median:.3f}" if median is not None else "-", human_size(r.bytes_pushed))
    return table


def failure_lines(results: list[JobResult]) -> list[str]:
    """One line per job that did not pass, and per warning of one that did (e.g. no latency figures):
    what went wrong, for the console under the table."""
    return [f"{r.name}: {r.status}: {r.failure}" for r in results if not r.passed] + [
        f"{r.name}: warning: {w}" for r in results for w in r.warnings]


def human_size(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e5 else f"{n} B"
