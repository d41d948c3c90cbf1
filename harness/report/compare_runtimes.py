"""report.html's comparison of the runtimes of each model × device profile: latency (p50, p90), speed-up
against the cpu runtime, the containers (float against quantized) and accuracy, from report.json alone.

A speed-up is the cpu job's median latency over the runtime's, so above 1 is faster than cpu; it needs a cpu
job of the same model and profile whose latencies were measured in the same place (a phone's cpu against
the emulated device's host CPU would say nothing).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from harness.report.results import HOST

CPU = "cpu"


@dataclass(frozen=True)
class Row:
    """One result of the model × profile, with the figures the comparison shows of it."""

    result: dict[str, Any]
    speedup: float | None
    top1_accuracy: float | None  # these four: the worst output's, None when no output has it
    top1_agreement: float | None
    cosine: float | None
    sqnr_db: float | None

    @property
    def runtime(self) -> str:
        return self.result["runtime"]

    @property
    def latency(self) -> dict[str, Any] | None:
        latency = self.result["latency"]
        return latency if latency and latency["median_ms"] is not None else None

    @property
    def container_bytes(self) -> int | None:
        return self.result.get("container_bytes")


@dataclass(frozen=True)
class Comparison:
    model: str
    profile: str
    rows: list[Row]
    no_speedup: str  # why no runtime has a speed-up figure; "" when some have

    @property
    def host(self) -> bool:
        return any(row.result["timing_source"] == HOST for row in self.rows)

    @property
    def has_sizes(self) -> bool:
        return any(row.container_bytes is not None for row in self.rows)

    def container_bytes(self, kind: str) -> int | None:
        """The size of the first container of that kind (`float`, `quantized`) with a size."""
        return next((row.container_bytes for row in self.rows
                     if row.result["container_kind"] == kind and row.container_bytes is not None), None)


def _worst(outputs: Iterable[dict[str, Any]], metric: str, *, none_is_worst: bool = False) -> float | None:
    """The lowest figure of the outputs; None when none has one, or (`none_is_worst`: a cosine that is not a
    finite number) when any has none."""
    values = [o["metrics"].get(metric) for o in outputs]
    if none_is_worst and None in values:
        return None
    known = [v for v in values if v is not None]
    return min(known) if known else None


def _speedups(results: list[dict[str, Any]]) -> tuple[list[float | None], str]:
    """Each result's speed-up against the first cpu job with latencies, and why there are none, if so."""
    cpus = [r for r in results if r["runtime"] == CPU]
    reference = next((r for r in cpus if r["latency"] and r["latency"]["median_ms"]), None)
    if reference is None:
        return [None] * len(results), ("no cpu job of this model and profile in the report" if not cpus
                                       else "the cpu job has no latency figures")
    base = reference["latency"]["median_ms"]
    speedups = [base / r["latency"]["median_ms"] if r["latency"] and r["latency"]["median_ms"]
                and r["timing_source"] == reference["timing_source"] else None for r in results]
    return speedups, ""


def compare(document: dict[str, Any]) -> list[Comparison]:
    """One comparison per model × profile, in the order of the report's results."""
    first: dict[tuple[str, str], int] = {}
    for i, r in enumerate(document["results"]):
        first.setdefault((r["model"], r["profile"]), i)
    ordered = sorted(document["results"], key=lambda r: first[(r["model"], r["profile"])])
    comparisons = []
    for (model, profile), group in itertools.groupby(ordered, key=lambda r: (r["model"], r["profile"])):
        results = list(group)
        speedups, why = _speedups(results)
        rows = [Row(r, s, _worst(r["outputs"], "top1_accuracy"), _worst(r["outputs"], "top1_agreement"),
                    _worst(r["outputs"], "cosine", none_is_worst=True), _worst(r["outputs"], "sqnr_db"))
                for r, s in zip(results, speedups, strict=True)]
        comparisons.append(Comparison(model, profile, rows, why))
    return comparisons
