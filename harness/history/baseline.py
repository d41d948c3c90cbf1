"""`--baseline history[:N]`: a baseline taken from the history rather than from one report file.

For each job of the new run (model × device profile × runtime), the newest N passing jobs recorded
before the new run, as one result in report.json's form, which report.diff reads as it reads a file:
the newest job's result, with the per-inference latencies of all N pooled. Jobs whose latency was
measured elsewhere than the newest's (the emulated device's host, a phone) are left out of the pool.
A job with no passing run in the history is not in the baseline (report.diff lists it as new).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy.errors import EdgeloopError
from harness.history.location import describe
from harness.history.query import Filters, JobRecord, select_jobs
from harness.history.record import utc
from harness.report.diff import DiffOptions, DiffReport, diff_results, load_results
from harness.report.results import PASSED, LatencyStats

NAME = "history"
DEFAULT_RUNS = 5
Series = tuple[str, str, str]  # model, profile, runtime


@dataclass(frozen=True)
class HistoryBaseline:
    location: str
    runs: int = DEFAULT_RUNS

    def __str__(self) -> str:
        return f"{NAME}:{self.runs} ({describe(self.location)})"


Baseline = Path | HistoryBaseline


def parse_baseline(text: str, history: str | None) -> Baseline:
    """`--baseline`: a report file (read now, so a bad one fails before any device work), or `history` /
    `history:N` (the history at `history`)."""
    if text != NAME and not text.startswith(f"{NAME}:"):
        load_results(Path(text))
        return Path(text)
    count = text.partition(":")[2] if ":" in text else str(DEFAULT_RUNS)
    if not count.isdigit() or int(count) < 1:
        raise EdgeloopError(f"--baseline {text}: N of history:N is how many runs, got {count!r}",
                            f"e.g. {NAME}:{DEFAULT_RUNS}; a file named {text} is ./{text}")
    if history is None:
        raise EdgeloopError(f"--baseline {text}, but the history is off",
                            "give --history PATH or URL (or unset EDGELOOP_HISTORY=off)")
    return HistoryBaseline(history, int(count))


def _pooled_latency(latencies: list[dict[str, Any]]) -> dict[str, Any]:
    """The newest latency (last), with the lists of every run joined, oldest first: per-inference times and
    whatever else a report keeps per inference or per run (a list missing from one run is dropped: null),
    and the statistics of the joined times."""
    newest = latencies[-1]
    joined: dict[str, Any] = {}
    for key, value in newest.items():
        if isinstance(value, list) and key != "slowest_layers":
            parts = [latency.get(key) for latency in latencies]
            joined[key] = [x for part in parts for x in part] if all(isinstance(p, list) for p in parts) else None
    layers = {layer["name"]: layer["ms"] for layer in newest.get("slowest_layers", [])}
    stats = LatencyStats(newest.get("init_ms"), joined.get("inference_ms") or [], layers).to_json()
    return {**newest, **stats, **joined}


def pooled(records: list[JobRecord]) -> dict[str, Any]:
    """One baseline result from a series' jobs (oldest first): the newest's, latencies pooled."""
    newest = records[-1]
    latencies = [r.result["latency"] for r in records
                 if r.timing_source == newest.timing_source and r.result.get("latency")]
    result = dict(newest.result)
    if result.get("latency"):
        result["latency"] = _pooled_latency(latencies)
    return result


def from_history(source: HistoryBaseline, series: Iterable[Series], before: str | None = None) -> dict[str, Any]:
    """The baseline results of these series, keyed as report.diff keys them."""
    found = {}
    for model, profile, runtime in dict.fromkeys(series):
        records = select_jobs(source.location, Filters(model=model, profile=profile, runtime=runtime, status=PASSED,
                                                       before=before, last=source.runs))
        if records:
            found[f"{model}/{profile}/{runtime}"] = pooled(records)
    return found


def load_baseline(source: Baseline, series: Iterable[Series], before: str | None = None) -> dict[str, Any]:
    """A baseline file's results, or the history's for the given series (recorded before `before`)."""
    return load_results(source) if isinstance(source, Path) else from_history(source, series, before)


def _created(report: Path) -> str | None:
    """When a report (already read by load_results) was made, as the history keeps times."""
    created = json.loads(Path(report).read_text()).get("created")
    try:
        return utc(created) if isinstance(created, str) else None
    except ValueError:
        return None


def diff_report(source: Baseline, report: Path, options: DiffOptions) -> DiffReport:
    """report.diff of a written report.json or farm.json against a baseline; from the history, the runs
    recorded before that report was made (so a run already recorded is not its own baseline)."""
    new = load_results(report)
    series = [(r["model"], r["profile"], r["runtime"]) for r in new.values()]
    base = load_baseline(source, series, _created(report) if isinstance(source, HistoryBaseline) else None)
    return diff_results(base, new, options, base_name=str(source), new_name=str(report))
