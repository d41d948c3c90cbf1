"""report.diff: an unchanged rerun passes, a slower or less accurate one is flagged (exit 1)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from harness.compare import default_limits, judge, measure
from harness.report import write_reports
from harness.report.diff import DiffOptions, diff_reports, latency_finding
from harness.report.results import PASSED, JobResult, LatencyStats, OutputResult

EDGELOOP = Path(sys.executable).parent / "edgeloop"
ROOT = Path(__file__).resolve().parents[2]


def _result(runtime: str, latency_ms: np.ndarray, output_noise: float, seed: int) -> JobResult:
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
                     outputs=[output], latency=LatencyStats.from_timings(1.0, list(latency_ms)), runs=len(latency_ms))


def _report(folder: Path, latency_scale: float, output_noise: float, seed: int) -> Path:
    """Latency samples differ per seed (a rerun is never the same); outputs of the same model do not."""
    rng = np.random.default_rng(seed)
    results = [_result(rt, latency_scale * rng.normal(5.0, 0.4, size=30), output_noise, 100 + i)
               for i, rt in enumerate(("cpu", "gpu"))]
    return write_reports(results, folder, devices={"emu-1": {"ro.product.model": "Pixel 7"}}, title="t").json


def _diff_cli(base: Path, new: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(EDGELOOP), "report.diff", str(base), str(new)], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)


def test_unchanged_rerun_passes_and_regressions_are_flagged(tmp_path: Path) -> None:
    base = _report(tmp_path / "base", 1.0, 1e-4, seed=1)
    rerun = _report(tmp_path / "rerun", 1.0, 1e-4, seed=2)  # same distributions, different samples
    slower = _report(tmp_path / "slower", 1.5, 1e-4, seed=3)
    noisier = _report(tmp_path / "noisier", 1.0, 0.3, seed=4)

    assert not diff_reports(base, rerun).regressed
    slow = diff_reports(base, slower)
    assert {f.kind for f in slow.regressions} == {"latency"} and len(slow.regressions) == 2
    worse = diff_reports(base, noisier)
    kinds = {f.kind for f in worse.regressions}
    assert {"accuracy", "threshold", "status"} <= kinds and "latency" not in kinds

    ok = _diff_cli(base, rerun)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "no regression" in ok.stdout
    bad = _diff_cli(base, slower)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "median latency" in bad.stdout and "regression" in bad.stderr


def test_latency_noise_widens_the_allowance() -> None:
    rng = np.random.default_rng(0)
    steady = rng.normal(10.0, 0.05, size=40)
    options = DiffOptions(latency_pct=5.0)
    assert latency_finding("j", list(steady), list(steady * 1.08), options) is not None
    noisy_base = np.concatenate([steady, steady * 1.3])  # a device whose runs spread by 30%
    noisy_new = noisy_base * 1.08
    assert latency_finding("j", list(noisy_base), list(noisy_new), options) is None


def test_missing_job_and_bad_input(tmp_path: Path) -> None:
    base = _report(tmp_path / "base", 1.0, 1e-4, seed=1)
    (tmp_path / "empty.json").write_text('{"results": []}')
    report = diff_reports(base, tmp_path / "empty.json")
    assert [f.kind for f in report.regressions] == ["missing", "missing"]
    (tmp_path / "junk.json").write_text("not json")
    bad = _diff_cli(base, tmp_path / "junk.json")
    assert bad.returncode == 2 and "is not JSON" in bad.stderr and "Traceback" not in bad.stderr


def test_a_rerun_without_latency_figures_says_latency_was_not_compared(tmp_path: Path) -> None:
    base = _report(tmp_path / "base", 1.0, 1e-4, seed=1)
    results = [_result(rt, np.array([5.0]), 1e-4, 100 + i) for i, rt in enumerate(("cpu", "gpu"))]
    for result in results:
        result.latency, result.warnings = None, ["no latency figures: snpe-diagview not found"]
    unmeasured = write_reports(results, tmp_path / "new", devices={}, title="t").json
    report = diff_reports(base, unmeasured)
    assert not report.regressed and report.compared == 2
    assert [(f.kind, f.message) for f in report.findings] == [
        ("latency", "not compared: no latency figures: snpe-diagview not found")] * 2
