"""`edgeloop history --html PATH`: one self-contained page (inline CSS and SVG, no script, no CDN) with the
trend of every model × device profile × runtime over its recorded runs: latency (median, whisker to
p90), accuracy (top-1, worst cosine) and peak memory, and a table of the runs."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from deploy.errors import EdgeloopError
from deploy.fsutil import atomic_write_text, write_reason
from harness.history.plot import Line, Run, trend_chart
from harness.history.query import JobRecord
from harness.report.results import HOST, HOST_TIMING, PASSED

_ENV = jinja2.Environment(loader=jinja2.PackageLoader("harness.history", "."), autoescape=True,
                          undefined=jinja2.StrictUndefined)
_ENV.filters["num"] = lambda v, fmt="%.4g": "-" if v is None else fmt % v


def commit_label(record: JobRecord) -> str:
    """The short commit, `+` when the checkout had changes, `-` outside a checkout."""
    if not record.git_commit:
        return "-"
    return record.git_commit[:7] + ("+" if record.git_dirty else "")


def _runs(records: list[JobRecord]) -> list[Run]:
    runs = []
    for r in records:
        moment = dt.datetime.fromisoformat(r.created)
        runs.append(Run(label=moment.strftime("%m-%d %H:%M"), sublabel=commit_label(r), passed=r.status == PASSED,
                        note=f"{moment:%Y-%m-%d %H:%M} UTC, {commit_label(r)}, {r.status}"))
    return runs


def series_plots(records: list[JobRecord]) -> dict[str, Markup]:
    """The three charts of one series (oldest first), each "" when its runs have no such figure."""
    runs = _runs(records)
    where = " (host CPU, emulated device)" if any(r.timing_source == HOST for r in records) else ""
    latency = trend_chart(runs, [Line("median (whisker: p90)", [r.median_ms for r in records],
                                      [r.p90_ms for r in records])],
                          title=f"Latency per inference{where}", axis="latency", unit="ms", css_class="trend-latency",
                          from_zero=True)
    accuracy = trend_chart(runs, [Line("top-1 accuracy", [r.top1_accuracy for r in records]),
                                  Line("top-1 agreement", [r.top1_agreement for r in records]),
                                  Line("worst cosine", [r.cosine for r in records])],
                           title="Accuracy (worst output)", axis="fraction", unit="1 = best",
                           css_class="trend-accuracy")
    memory = trend_chart(runs, [Line("peak resident memory", [r.peak_memory_mib for r in records])],
                         title="Peak memory of net-run", axis="memory", unit="MiB", css_class="trend-memory",
                         from_zero=True)
    return {"latency": Markup(latency), "accuracy": Markup(accuracy), "memory": Markup(memory)}


def _series(records: list[JobRecord]) -> list[dict[str, Any]]:
    ordered = sorted(records, key=lambda r: r.series)  # stable: each series keeps its runs' order
    out = []
    for (model, profile, runtime), group in itertools.groupby(ordered, key=lambda r: r.series):
        runs = list(group)
        devices = sorted({r.device_model or r.device for r in runs if r.device_model or r.device})
        out.append({"model": model, "profile": profile, "runtime": runtime, "id": f"{model}-{profile}-{runtime}",
                    "devices": devices, "records": runs, "plots": series_plots(runs),
                    "host": any(r.timing_source == HOST for r in runs)})
    return out


def render_trend(records: list[JobRecord], *, where: str, title: str = "edgeloop history") -> str:
    return _ENV.get_template("trend.html.j2").render(
        title=title, where=where, series=_series(records), records=records, commit=commit_label,
        HOST_TIMING=HOST_TIMING)


def write_trend(records: list[JobRecord], path: Path, *, where: str) -> Path:
    """Write the page atomically (a reader never sees half of it)."""
    try:
        atomic_write_text(path, render_trend(records, where=where))
    except OSError as exc:
        raise EdgeloopError(f"--html {path}: cannot write it ({write_reason(path, exc)})") from None
    return path
