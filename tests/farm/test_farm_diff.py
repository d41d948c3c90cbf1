"""report.diff: verdicts from statistics. A latency regression needs a large enough growth of the median
and a significant one-sided Mann-Whitney U test over the runs; a large growth without it is undecided, and
farm.run reruns such a job once. A job that fails is one finding, "still failing" if it failed before."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.compare import default_limits, judge, measure
from harness.farm import RERUN, _rerun
from harness.report import write_reports
from harness.report.diff import (
    REGRESSION,
    STILL_FAILING,
    UNDECIDED,
    DiffOptions,
    diff_reports,
    diff_results,
    judge_with_rerun,
)
from harness.report.farm import job_result
from harness.report.results import PASSED, JobResult, LatencyStats, OutputResult
from harness.scheduler import Attempt, Outcome, Task

EDGELOOP = Path(sys.executable).parent / "edgeloop"
ROOT = Path(__file__).resolve().parents[2]
INFERENCES = 32  # per run, as the example's input list


def _latency(rng: np.random.Generator, runs: int, scale: float, host_speed: float | None = None,
             spread: float = 0.25) -> LatencyStats:
    """`runs` runs of INFERENCES: each run has a level of its own (the device's state then), inferences
    spread around it; with `host_speed`, the emulated device's host references too, both slowed by it."""
    levels = rng.normal(5.0, spread, size=(runs, 1))
    times = scale * levels * rng.lognormal(0.0, 0.05, size=(runs, INFERENCES))
    references = None
    if host_speed is not None:
        times *= host_speed
        references = list((host_speed * rng.normal(2.0, 0.02, size=times.size)).clip(min=0.1))
    return LatencyStats.from_timings(1.0, list(times.ravel()), run_inferences=[INFERENCES] * runs,
                                     host_reference_ms=references)


def _result(runtime: str, latency: LatencyStats | None, output_noise: float, seed: int) -> JobResult:
    """A job result measured like the deploy loop does: device outputs vs a float reference."""
    rng = np.random.default_rng(seed)
    reference = [rng.standard_normal((1, 10)).astype(np.float32) for _ in range(4)]
    device = [r + output_noise * rng.standard_normal(r.shape).astype(np.float32) for r in reference]
    metrics = measure(reference, device)
    limits = default_limits(runtime)
    output = OutputResult("logits", (1, 10), metrics, limits, judge(metrics, limits))
    status = PASSED if output.verdict.passed else "failed"
    failure = None if output.verdict.passed else "; ".join(output.verdict.reasons)
    return JobResult(model="digits", runtime=runtime, profile="pixel", device="emu-1", status=status, failure=failure,
                     outputs=[output], latency=latency, runs=len(latency.run_inferences) if latency else 0)


def _report(folder: Path, scale: float = 1.0, output_noise: float = 1e-4, seed: int = 0, runs: int = 6,
            host_speed: float | None = None, spread: float = 0.25) -> Path:
    """Latency samples differ per seed (a rerun is never the same); outputs of the same model do not."""
    rng = np.random.default_rng(seed)
    results = [_result(rt, _latency(rng, runs, scale, host_speed, spread), output_noise, 100 + i)
               for i, rt in enumerate(("cpu", "gpu"))]
    return write_reports(results, folder, devices={"emu-1": {"ro.product.model": "Pixel 7"}}, title="t").json


def _diff_cli(base: Path, new: Path, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(EDGELOOP), "report.diff", str(base), str(new), *options], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "250"})


def test_unchanged_reruns_pass_and_a_slower_one_is_a_regression(tmp_path: Path) -> None:
    base = _report(tmp_path / "base", seed=1)
    reruns = [diff_reports(base, _report(tmp_path / f"rerun{s}", seed=s)) for s in range(2, 12)]
    assert [r.findings for r in reruns] == [[]] * 10  # same distributions, different samples
    slow = diff_reports(base, _report(tmp_path / "slower", 1.3, seed=3))
    assert [(f.kind, f.verdict) for f in slow.findings] == [("latency", REGRESSION)] * 2
    assert 25 < float(re.search(r"\+([\d.]+)%", slow.findings[0].message)[1]) < 35
    assert "6 vs 6 runs: p = 0.0011 ≤ alpha 0.01" in slow.findings[0].message  # no overlap: 1/C(12, 6)

    ok = _diff_cli(base, _report(tmp_path / "again", seed=20))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "no regression" in ok.stdout
    bad = _diff_cli(base, tmp_path / "slower" / "report.json")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "median latency" in bad.stdout and "regression" in bad.stderr


def test_growth_below_the_minimum_effect_is_no_finding_however_significant(tmp_path: Path) -> None:
    base = _report(tmp_path / "base", seed=1, spread=0.01)  # a steady device: 6 % is plain to see
    slightly = _report(tmp_path / "slightly", 1.06, seed=2, spread=0.01)
    assert diff_reports(base, slightly).findings == []
    strict = diff_reports(base, slightly, DiffOptions(latency_pct=3.0))
    assert [f.verdict for f in strict.findings] == [REGRESSION] * 2


def test_too_few_runs_or_no_significance_is_undecided(tmp_path: Path) -> None:
    base = _report(tmp_path / "base", seed=1, runs=3)
    slower = _report(tmp_path / "slower", 1.5, seed=2, runs=3)
    report = diff_reports(base, slower)
    assert not report.regressed and report.undecided == ["digits/pixel/cpu", "digits/pixel/gpu"]
    assert all(f.verdict == UNDECIDED for f in report.findings)
    assert "too few runs to tell: at best p = 0.05 > alpha 0.01 (use at least 5 runs)" in report.findings[0].message
    assert "deploy --baseline and farm.run --baseline rerun such a job once" in report.findings[0].message
    shown = _diff_cli(base, slower)
    assert shown.returncode == 0 and "undecided" in shown.stdout and "2 latency verdicts undecided" in shown.stdout

    base_json = json.loads(_report(tmp_path / "b2", seed=4, runs=6).read_text())
    new_json = json.loads(_report(tmp_path / "n2", seed=5, runs=6).read_text())
    for result in new_json["results"]:  # the median grew by 20 %, but half the runs are as fast as before
        times = np.asarray(result["latency"]["inference_ms"]).reshape(6, INFERENCES)
        times[::2] *= 1.45
        result["latency"]["inference_ms"] = list(times.ravel())
    found = diff_results({"j": base_json["results"][0]}, {"j": new_json["results"][0]}, DiffOptions())
    (finding,) = found.findings
    assert finding.verdict == UNDECIDED and "not significant at alpha 0.01" in finding.message


def test_the_emulated_devices_latency_is_judged_relative_to_its_hosts_speed(tmp_path: Path) -> None:
    base = _report(tmp_path / "base", seed=1, host_speed=1.0)
    busy_host = _report(tmp_path / "busy", seed=2, host_speed=1.5)  # everything 50 % slower, the model too
    assert diff_reports(base, busy_host).findings == []
    slower = _report(tmp_path / "slower", 1.3, seed=3, host_speed=1.5)  # the model 30 % slower on a busy host
    findings = diff_reports(base, slower).findings
    assert [f.verdict for f in findings] == [REGRESSION] * 2
    assert "relative to the host's speed" in findings[0].message
    without = json.loads(busy_host.read_text())  # a baseline without references: raw times, as before
    for result in without["results"]:
        result["latency"]["host_reference_ms"] = None
    (tmp_path / "raw.json").write_text(json.dumps(without))
    assert [f.verdict for f in diff_reports(tmp_path / "raw.json", base).findings] == []
    assert [f.verdict for f in diff_reports(base, tmp_path / "raw.json").findings] == [REGRESSION] * 2


def test_a_failure_is_counted_once_and_one_already_in_the_baseline_is_still_failing(tmp_path: Path) -> None:
    base = _report(tmp_path / "base", seed=1)
    noisier = _report(tmp_path / "noisier", output_noise=0.3, seed=2)
    worse = diff_reports(base, noisier)
    assert [(f.kind, f.verdict) for f in worse.findings] == [("status", REGRESSION)] * 2
    assert "(passed in the baseline)" in worse.findings[0].message and "cosine" in worse.findings[0].message
    again = diff_reports(noisier, _report(tmp_path / "again", output_noise=0.3, seed=3))
    assert not again.regressed and [(f.kind, f.verdict) for f in again.findings] == [("status", STILL_FAILING)] * 2
    assert again.findings[0].message.startswith("still failing: failed: ")
    shown = _diff_cli(noisier, tmp_path / "again" / "report.json")
    assert shown.returncode == 0 and "still failing" in shown.stdout


def test_a_version_2_report_is_read_run_by_run(tmp_path: Path) -> None:
    """Before schema 3 a report had no run_inferences: its `runs` equal parts are the runs."""
    new = _report(tmp_path / "new", 1.3, seed=2)
    old = json.loads(_report(tmp_path / "base", seed=1).read_text())
    old["schema_version"] = 2
    for result in old["results"]:
        del result["latency"]["run_inferences"], result["latency"]["host_reference_ms"]
    (tmp_path / "v2.json").write_text(json.dumps(old))
    findings = diff_reports(tmp_path / "v2.json", new).findings
    assert [f.verdict for f in findings] == [REGRESSION] * 2 and "6 vs 6 runs" in findings[0].message


def test_missing_job_and_bad_input(tmp_path: Path) -> None:
    base = _report(tmp_path / "base", seed=1)
    (tmp_path / "empty.json").write_text('{"results": []}')
    report = diff_reports(base, tmp_path / "empty.json")
    assert [f.kind for f in report.regressions] == ["missing", "missing"]
    (tmp_path / "junk.json").write_text("not json")
    bad = _diff_cli(base, tmp_path / "junk.json")
    assert bad.returncode == 2 and "junk.json:1: not valid JSON" in bad.stderr and "Traceback" not in bad.stderr
    alpha = _diff_cli(base, base, "--alpha", "1.5")
    assert alpha.returncode == 2 and "--alpha must be between 0 and 1" in alpha.stderr


def test_a_rerun_without_latency_figures_says_latency_was_not_compared(tmp_path: Path) -> None:
    base = _report(tmp_path / "base", seed=1)
    results = [_result(rt, None, 1e-4, 100 + i) for i, rt in enumerate(("cpu", "gpu"))]
    for result in results:
        result.warnings = ["no latency figures: snpe-diagview not found"]
    unmeasured = write_reports(results, tmp_path / "new", devices={}, title="t").json
    report = diff_reports(base, unmeasured)
    assert not report.regressed and report.compared == 2
    assert [(f.kind, f.message) for f in report.findings] == [
        ("latency", "not compared: no latency figures: snpe-diagview not found")] * 2


class _Again:
    """The rerun scheduler's part farm._rerun uses: it runs the tasks it is given, once each."""

    def __init__(self, make: dict[str, JobResult]) -> None:
        self.make, self.asked = make, []

    def run(self, tasks: list[Task]) -> list[Outcome]:
        self.asked += [t.id for t in tasks]
        return [Outcome(t, "passed", [Attempt("emu-2", 0.0, 1.0, "passed")], result=self.make[t.id]) for t in tasks]


def _judged(outcomes: list[Outcome], base: JobResult, again: _Again) -> tuple[list[Outcome], object]:
    """farm.run's comparison: the shared judge_with_rerun with the farm's rerun of outcomes."""
    return judge_with_rerun({"digits/pixel/cpu": base.to_json()}, outcomes, lambda o: job_result(o).to_json(),
                            _rerun(again), DiffOptions(), base_name="b", new_name="n")


@pytest.mark.parametrize(("first_runs", "rerun_scale", "verdict"), [
    (3, 1.5, REGRESSION),  # 5 vs 3 runs cannot decide; with the rerun's 3 the slowdown is significant
    (3, 1.0, UNDECIDED),  # ... and a rerun as fast as the baseline leaves it undecided
    (5, 1.5, REGRESSION),  # a regression found in one session is confirmed by the next
    (5, 1.0, UNDECIDED),  # ... or not: one slow session alone is no regression
])
def test_farm_reruns_an_undecided_or_regressed_job_once_and_judges_both_runs(first_runs: int, rerun_scale: float,
                                                                              verdict: str) -> None:
    rng = np.random.default_rng(7)
    base = _result("cpu", _latency(rng, 5, 1.0, 1.0), 1e-4, 1)
    first = _result("cpu", _latency(rng, first_runs, 1.5, 1.0), 1e-4, 1)
    task = Task(id="digits/pixel/cpu", profile="pixel", model="digits", runtime="cpu")
    outcomes = [Outcome(task, "passed", [Attempt("emu-1", 0.0, 1.0, "passed")], result=first)]
    again = _Again({task.id: _result("cpu", _latency(rng, 3, rerun_scale, 1.0), 1e-4, 1)})
    judged, diff = _judged(outcomes, base, again)
    assert again.asked == [task.id]
    (outcome,) = judged
    runs = first_runs + 3
    assert outcome.result.runs == runs and outcome.result.latency.run_inferences == [INFERENCES] * runs
    assert [a.detail for a in outcome.attempts] == ["", RERUN]
    (finding,) = diff.findings
    assert finding.verdict == verdict and f"5 vs {runs} runs" in finding.message
    assert "relative to the host's speed" in finding.message and finding.message.endswith("after a rerun")


def test_farm_reruns_nothing_when_latency_is_not_in_question() -> None:
    rng = np.random.default_rng(8)
    base = _result("cpu", _latency(rng, 5, 1.0, 1.0), 1e-4, 1)
    task = Task(id="digits/pixel/cpu", profile="pixel", model="digits", runtime="cpu")
    outcomes = [Outcome(task, "passed", [Attempt("emu-1", 0.0, 1.0, "passed")],
                        result=_result("cpu", _latency(rng, 5, 1.0, 1.0), 1e-4, 1))]
    again = _Again({})
    judged, diff = _judged(outcomes, base, again)
    assert again.asked == [] and judged == outcomes and diff.findings == []
