"""Compare a new report with a baseline and flag regressions (`invoke report.diff`, `farm.run --baseline`).

Jobs are matched by model/profile/runtime (not by device: a farm may run a job on any matching phone).
A job that does not pass is one finding: a regression when it passed in the baseline, "still failing"
when it did not. A job that passes regresses when it is missing, when an accuracy metric is worse than
the baseline's by more than a margin, or when its latency grew by at least `latency_pct` on the median
*and* a one-sided Mann-Whitney U test over the runs finds the growth significant at `alpha`: each run is
one sample (its median), since the inferences of one run share the state of the device or host then.
A large growth that is not significant, or too few runs to tell, is "undecided": farm.run reruns such a
job once (docs/farm.md). Latencies measured on the host (the emulated device) are compared relative to
the host's speed at the time (`host_reference_ms`), and never with a phone's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from deploy.errors import EdgeloopError
from harness.console import check_range
from harness.stats import mann_whitney_greater, smallest_p

REGRESSION, UNDECIDED, STILL_FAILING, NOTE = "regression", "undecided", "still failing", "note"
Job = TypeVar("Job")  # what a run produced for one job: a deploy's JobResult, a farm's Outcome


@dataclass(frozen=True)
class DiffOptions:
    latency_pct: float = 10.0  # the smallest growth of the median latency that can be a regression
    alpha: float = 0.01  # significance level of the one-sided Mann-Whitney U test over the runs
    cosine_margin: float = 0.001  # allowed drop of an output's worst-inference cosine
    sqnr_margin_db: float = 1.0  # allowed drop of an output's SQNR
    top1_margin: float = 0.01  # allowed drop of top-1 agreement / accuracy (fractions)

    def __post_init__(self) -> None:
        """Each option in its range, NaN and infinities refused: a NaN margin compared false with every
        drop, which silently switched the check off."""
        if not 0 < self.alpha < 1:
            raise EdgeloopError(f"--alpha must be between 0 and 1, got {self.alpha:g}", "the default is 0.01")
        check_range(self.latency_pct, "--latency-pct", low=0)
        check_range(self.cosine_margin, "--cosine-margin", low=0, high=2)  # cosines lie in [-1, 1]
        check_range(self.sqnr_margin_db, "--sqnr-margin", low=0)
        check_range(self.top1_margin, "--top1-margin", low=0, high=1)  # a fraction

    @property
    def min_runs(self) -> int:
        """Runs on each side below which no latency growth can be significant at `alpha`."""
        return next(n for n in range(1, 64) if smallest_p(n, n) <= self.alpha)


# metric -> the DiffOptions field holding its allowed drop (all are "higher is better")
_MARGINS = {"cosine": "cosine_margin", "sqnr_db": "sqnr_margin_db", "top1_agreement": "top1_margin",
            "top1_accuracy": "top1_margin"}


@dataclass(frozen=True)
class Finding:
    job: str  # model/profile/runtime
    kind: str  # status | accuracy | latency | missing | new
    message: str
    verdict: str = NOTE  # regression | undecided | still failing | note (nothing to act on)

    @property
    def regression(self) -> bool:
        return self.verdict == REGRESSION

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "regression": self.regression}


@dataclass
class DiffReport:
    base: str
    new: str
    compared: int
    findings: list[Finding]

    @property
    def regressions(self) -> list[Finding]:
        return [f for f in self.findings if f.regression]

    @property
    def regressed(self) -> bool:
        return bool(self.regressions)

    @property
    def undecided(self) -> list[str]:
        """Jobs whose latency verdict more runs could settle."""
        return [f.job for f in self.findings if f.verdict == UNDECIDED]

    @property
    def to_confirm(self) -> list[str]:
        """Jobs whose latency a rerun should settle or confirm: undecided, or a regression found in one
        session (a host's or device's state can shift a whole session; a real slowdown stays)."""
        return [f.job for f in self.findings if f.kind == "latency" and f.verdict in (UNDECIDED, REGRESSION)]

    def to_json(self) -> dict[str, Any]:
        return {"base": self.base, "new": self.new, "compared": self.compared, "regressed": self.regressed,
                "findings": [f.to_json() for f in self.findings]}


def job_key(result: dict[str, Any]) -> str:
    return f"{result['model']}/{result['profile']}/{result['runtime']}"


def load_results(path: Path) -> dict[str, dict[str, Any]]:
    """The `results` of a deploy report.json or a farm.json, keyed by model/profile/runtime."""
    from harness.report.reading import read_report  # here: reading imports document, which imports this module

    return {job_key(r): r for r in read_report(path)["results"]}


@dataclass(frozen=True)
class RunSamples:
    """A job's latency as a verdict sees it: every inference's figure and each run's median of them, in ms
    or, `relative`, as a multiple of the host's reference time measured right after it."""

    inference: np.ndarray
    runs: np.ndarray
    relative: bool


def _run_sizes(latency: dict[str, Any], count: int, runs: Any) -> list[int]:
    """Inferences per run: as the report says (schema 3), else `runs` equal parts (the deploy loop runs
    every input each run), else all of them as one run."""
    sizes = latency.get("run_inferences")
    if isinstance(sizes, list) and sum(sizes) == count and all(isinstance(n, int) and n > 0 for n in sizes):
        return sizes
    if isinstance(runs, int) and runs > 0 and count % runs == 0:
        return [count // runs] * runs
    return [count]


def run_samples(result: dict[str, Any], relative: bool) -> RunSamples | None:
    """A report result's latency samples (None when it has none); `relative` needs host_reference_ms."""
    latency = result.get("latency") or {}
    times = np.asarray(latency.get("inference_ms") or [], dtype=np.float64)
    if not times.size:
        return None
    values = times / np.asarray(latency["host_reference_ms"], dtype=np.float64) if relative else times
    bounds = np.cumsum(_run_sizes(latency, times.size, result.get("runs")))[:-1]
    return RunSamples(values, np.array([np.median(run) for run in np.split(values, bounds)]), relative)


def _has_references(result: dict[str, Any]) -> bool:
    latency = result.get("latency") or {}
    references = latency.get("host_reference_ms") or []
    return len(references) == len(latency.get("inference_ms") or []) > 0 and min(references) > 0


def latency_finding(key: str, base: RunSamples, new: RunSamples, options: DiffOptions, *,
                    raw_ms: tuple[float, float], reran: bool = False) -> Finding | None:
    """Median growth of at least `latency_pct` is a regression when significant at `alpha`, else
    undecided; `raw_ms` are the two medians as measured, for the message."""
    was, now = float(np.median(base.inference)), float(np.median(new.inference))
    growth = (now / was - 1) * 100 if was > 0 else math.inf
    if growth < options.latency_pct:
        return None
    test = mann_whitney_greater(base.runs, new.runs)
    nb, nn = base.runs.size, new.runs.size
    where = " relative to the host's speed" if base.relative else ""
    said = (f"median latency {raw_ms[0]:.3f} → {raw_ms[1]:.3f} ms, +{growth:.1f}%{where} (at least "
            f"{options.latency_pct:g}% counts); one-sided Mann-Whitney U over {nb} vs {nn} runs: p = {test.p:.2g}")
    if test.p <= options.alpha:
        return Finding(key, "latency", f"{said} ≤ alpha {options.alpha:g}" + (", after a rerun" if reran else ""),
                       REGRESSION)
    floor = smallest_p(nb, nn)
    why = (f"too few runs to tell: at best p = {floor:.2g} > alpha {options.alpha:g} (use at least "
           f"{options.min_runs} runs)" if floor > options.alpha else f"not significant at alpha {options.alpha:g}")
    after = "after a rerun" if reran else ("a rerun would settle it (deploy --baseline and farm.run --baseline "
                                           "rerun such a job once)")
    return Finding(key, "latency", f"undecided: {said}; {why}; {after}", UNDECIDED)


def _accuracy_findings(key: str, base: dict[str, Any], new: dict[str, Any], options: DiffOptions) -> list[Finding]:
    found = []
    base_outputs = {o["name"]: o for o in base.get("outputs", [])}
    for output in new.get("outputs", []):
        name = output["name"]
        old = base_outputs.get(name)
        if old is None:
            continue
        for metric, field_name in _MARGINS.items():
            was, now = old["metrics"].get(metric), output["metrics"].get(metric)
            if was is None or now is None:  # not measured, or infinite/NaN (JSON null): nothing to compare
                continue
            margin = getattr(options, field_name)
            if was - now > margin:
                found.append(Finding(key, "accuracy", f"output {name}: {metric} {was:.6g} → {now:.6g} "
                                     f"(worse by {was - now:.3g}, margin {margin:g})", REGRESSION))
    return found


_WHERE = {"host": "on the host (emulated device)", "device": "on the device"}


def _timed_elsewhere(base: dict[str, Any], new: dict[str, Any]) -> str | None:
    """Why two latencies cannot be compared: one was measured on the host (the emulated device), the other
    on a phone. Reports of schema 1 do not say (`timing_source` is absent): their latencies are compared."""
    was, now = base.get("timing_source"), new.get("timing_source")
    if was in _WHERE and now in _WHERE and was != now:
        return f"the baseline's latency was measured {_WHERE[was]}, the new one's {_WHERE[now]}"
    return None


def _latency_findings(key: str, old: dict[str, Any], result: dict[str, Any], options: DiffOptions,
                      reran: bool) -> list[Finding]:
    elsewhere = _timed_elsewhere(old, result)
    relative = _has_references(old) and _has_references(result)
    base, new = run_samples(old, relative), run_samples(result, relative)
    if elsewhere and base and new:
        return [Finding(key, "latency", f"not compared: {elsewhere}")]
    if base and new:
        raw = (float(np.median(old["latency"]["inference_ms"])), float(np.median(result["latency"]["inference_ms"])))
        found = latency_finding(key, base, new, options, raw_ms=raw, reran=reran)
        return [found] if found else []
    if base:  # it ran and passed, but its timings could not be read: say that latency was not compared
        why = "; ".join(result.get("warnings", [])) or "no latency figures"
        return [Finding(key, "latency", f"not compared: {why}")]
    return []


def diff_results(base: dict[str, dict[str, Any]], new: dict[str, dict[str, Any]], options: DiffOptions,
                 *, base_name: str = "base", new_name: str = "new", reran: Collection[str] = ()) -> DiffReport:
    """Every finding of `new` against `base`; `reran` names the jobs already run twice (a rerun settled
    what it could)."""
    findings: list[Finding] = []
    for key, old in base.items():
        result = new.get(key)
        if result is None:
            findings.append(Finding(key, "missing", "in the baseline but not in the new report", REGRESSION))
        elif not result.get("passed"):  # one finding: the failure line names every missed limit
            failure = f"{result.get('status')}: {result.get('failure')}"
            findings.append(Finding(key, "status", f"{failure} (passed in the baseline)", REGRESSION)
                            if old.get("passed") else Finding(key, "status", f"still failing: {failure}",
                                                              STILL_FAILING))
        else:
            findings += _accuracy_findings(key, old, result, options)
            findings += _latency_findings(key, old, result, options, key in reran)
    for key in sorted(set(new) - set(base)):
        findings.append(Finding(key, "new", "not in the baseline (nothing to compare)",
                                NOTE if new[key].get("passed") else REGRESSION))
    return DiffReport(base_name, new_name, len(set(base) & set(new)), findings)


def diff_reports(base: Path, new: Path, options: DiffOptions = DiffOptions()) -> DiffReport:
    """Compare two report files (deploy report.json or farm.json, in any combination)."""
    return diff_results(load_results(base), load_results(new), options, base_name=str(base), new_name=str(new))


def judge_with_rerun(base: dict[str, dict[str, Any]], jobs: list[Job], result: Callable[[Job], dict[str, Any]],
          rerun: Callable[[list[Job]], list[Job]], options: DiffOptions, *, base_name: str,
          new_name: str) -> tuple[list[Job], DiffReport]:
    """The comparison of a run's jobs with a baseline, as `deploy --baseline` and `farm.run --baseline` make
    it: the jobs whose latency verdict is undecided or a regression run once more (`rerun` gives each of
    them back with its rerun's runs added) and are judged on the runs of both, so a regression must hold
    over two sessions (a device's or host's state can shift a whole session; a real slowdown stays).
    `result` is a job's report.json result."""

    def keyed(items: list[Job]) -> dict[str, Job]:
        return {job_key(result(item)): item for item in items}

    def compare(items: list[Job], reran: Collection[str] = ()) -> DiffReport:
        return diff_results(base, {key: result(item) for key, item in keyed(items).items()}, options,
                            base_name=base_name, new_name=new_name, reran=reran)

    diff = compare(jobs)
    by_key = keyed(jobs)
    again = [by_key[key] for key in diff.to_confirm if key in by_key]
    if not again:
        return jobs, diff
    redone = {id(first): second for first, second in zip(again, rerun(again), strict=True)}
    jobs = [redone.get(id(job), job) for job in jobs]
    return jobs, compare(jobs, diff.to_confirm)
