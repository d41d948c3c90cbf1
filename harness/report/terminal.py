"""The terminal's view of a deploy or a farm run: tables and one line per problem, for tasks.py to print.

Text from devices, models and exceptions goes in as `rich.text.Text`, never as markup: a `[/x]` in a
device's error message must be shown, not parsed (rich would raise, or swallow it as a style).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.markup import escape
from rich.table import Table
from rich.text import Text

from harness.report.results import ERROR, FAILED, HOST, HOST_TIMING, PASSED, JobResult
from harness.scheduler import Event

if TYPE_CHECKING:  # the farm imports the pipeline, which imports this module
    from harness.farm import FarmRun
    from harness.inventory import Discovery
    from harness.report.diff import DiffReport

_COLORS = {PASSED: "green", FAILED: "red", ERROR: "red"}


def summary_table(results: list[JobResult], device: str) -> Table:
    """One row per job; the caption says so when the latencies are the host's (the emulated device). The
    narrowest table (its headers) is wider than the caption, which so stays one line."""
    host = any(r.timing_source == HOST for r in results)
    table = Table(title=f"edgeloop deploy · {escape(device)}", title_justify="left",
                  caption=HOST_TIMING if host else None, caption_justify="left")
    measured = any(r.measures for r in results)  # the device's figures, once a job has them
    for column in ("model", "runtime", "status", "worst cosine", "SQNR dB", "median ms",
                   *(["peak MiB", "°C before → after"] if measured else []), "pushed"):
        table.add_column(column, overflow="fold")
    for r in results:
        cosines = [o.metrics.cosine for o in r.outputs]
        sqnrs = [o.metrics.sqnr_db for o in r.outputs]
        median = r.latency.to_json()["median_ms"] if r.latency else None
        table.add_row(Text(r.model), r.runtime, Text(r.status, style=_COLORS[r.status]),
                      f"{min(cosines):.6f}" if cosines else "-", f"{min(sqnrs):.1f}" if sqnrs else "-",
                      f"{median:.3f}" if median is not None else "-", *(_measured(r) if measured else ()),
                      human_size(r.bytes_pushed))
    return table


def _measured(result: JobResult) -> tuple[str, str]:
    """Peak memory and the temperatures around the measured runs, '-' for what the device did not show."""
    memory = result.measures.memory_json() if result.measures else None
    thermal = result.measures.thermal_json() if result.measures else None
    peak = f"{memory['peak_kb'] / 1024:.1f}" if memory else "-"
    heat = "-"
    if thermal and thermal["before_c"] is not None and thermal["after_c"] is not None:
        heat = f"{thermal['before_c']:.1f} → {thermal['after_c']:.1f}"
    return peak, heat


def failure_lines(results: list[JobResult]) -> list[str]:
    """One line per job that did not pass, each followed by what to try next (its hints), and one per
    warning of a job (e.g. no latency figures): what went wrong, for the console under the table."""
    return [line for r in results if not r.passed
            for line in (f"{r.name}: {r.status}: {r.failure}", *(f"{r.name}: next: {h}" for h in r.hints))] + [
        f"{r.name}: warning: {w}" for r in results for w in r.warnings]


def human_size(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e5 else f"{n} B"


def farm_table(run: FarmRun) -> Table:
    """One row per farm job: its status, the device it ended on, and every attempt (a retry shows)."""
    table = Table(title=f"farm: {len(run.discovery.devices)} devices, {run.wall_s:.1f} s")
    for column in ("job", "status", "device", "attempts", "why"):
        table.add_column(column)
    for o in run.outcomes:
        tries = " → ".join(f"{a.device} {a.outcome}" for a in o.attempts)
        table.add_row(Text(o.task.id), Text(o.status, style="green" if o.status == PASSED else "red"),
                      Text(o.device.name if o.device else "-"), Text(tries), Text(o.detail))
    return table


def devices_table(found: Discovery) -> Table:
    table = Table(title=f"{len(found.devices)} usable devices")
    for column in ("serial", "adb server", "model", "profiles", "labels"):
        table.add_column(column)
    for d in found.devices:
        table.add_row(*(Text(v) for v in (d.serial, d.server.address, d.model, ", ".join(d.profiles),
                                          ", ".join(d.labels))))
    return table


def discovery_lines(found: Discovery) -> list[Text]:
    """What a farm could not use: servers that did not answer, devices that match no profile."""
    return ([Text.assemble((f"adb server {server} unreachable:", "red"), f" {why}")
             for server, why in found.unreachable.items()]
            + [Text(f"not used: {device}") for device in found.unmatched])


def event_line(event: Event) -> Text:
    """A farm event as it happens (retry, device-retired, job-hung, ...)."""
    return Text.assemble((event["kind"], "yellow"), f" {event['device'] or ''} {event['detail']}")


_VERDICT_STYLES = {"regression": "red", "undecided": "yellow", "still failing": "magenta"}


def findings_table(report: DiffReport) -> Table | None:
    """The differences from a baseline (None when there are none), each with its verdict: regressions in
    red, undecided latencies in yellow, jobs that failed in the baseline too as still failing."""
    if not report.findings:
        return None
    table = Table(title=f"{report.compared} jobs compared with the baseline")
    for column in ("job", "kind", "verdict", "finding"):
        table.add_column(column)
    for f in report.findings:
        table.add_row(Text(f.job), f.kind, Text(f.verdict, style=_VERDICT_STYLES.get(f.verdict, "")), Text(f.message))
    return table


def diff_verdict(report: DiffReport) -> str:
    undecided = f" ({len(report.undecided)} latency verdicts undecided)" if report.undecided else ""
    return ("[red]regression[/]" if report.regressed else "[green]no regression[/]") + undecided
