"""Evidence for the latency verdicts (issue 16): with a CPU burner loading the host, 20 unchanged reruns of
the example on the emulated pixel give no false regression, and a real 30 % slowdown (the emulator's
slowdown fault) is flagged every time.

Every verdict comes from measured runs. Four reruns are real farm runs against the baseline (a job left
undecided is rerun once, as farm.run does); the other sixteen draw their runs from the pool of those four
reruns' measured runs (8 of the 32 of each job, without replacement), so they cost no device time.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.farm import farm_run
from harness.report.diff import REGRESSION, DiffOptions, DiffReport, diff_results, load_results
from tests.farm.farm_helpers import write_config, write_inventory, write_matrix

pytestmark = pytest.mark.e2e

RUNS = 8  # measured runs per job: enough for p = 1/C(16, 8) ≈ 8e-5 at best, against alpha 0.01
REAL, SAMPLED = 4, 16


def _burn(stop: Any) -> None:
    """A busy core, as another build or test on the same machine."""
    while not stop.is_set():
        sum(i * i for i in range(20_000))


@pytest.fixture
def loaded_host() -> Iterator[None]:
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    burner = context.Process(target=_burn, args=(stop,), daemon=True)
    burner.start()
    yield
    stop.set()
    burner.join(10)
    if burner.is_alive():
        burner.kill()


def _runs(result: dict[str, Any]) -> list[dict[str, Any]]:
    """A result's measured runs: the inference times and host references of each."""
    latency = result["latency"]
    bounds = np.cumsum(latency["run_inferences"])[:-1]
    return [{"inference_ms": list(t), "host_reference_ms": list(r)} for t, r in
            zip(np.split(np.asarray(latency["inference_ms"]), bounds),
                np.split(np.asarray(latency["host_reference_ms"]), bounds), strict=True)]


def _sampled_rerun(pool: dict[str, list[dict[str, Any]]], template: dict[str, dict[str, Any]],
                   rng: np.random.Generator) -> dict[str, dict[str, Any]]:
    """A rerun whose runs are RUNS measured runs of each job drawn from the pool."""
    results = {}
    for key, runs in pool.items():
        chosen = [runs[i] for i in rng.choice(len(runs), RUNS, replace=False)]
        latency = {**template[key]["latency"], "run_inferences": [len(r["inference_ms"]) for r in chosen],
                   "inference_ms": [t for r in chosen for t in r["inference_ms"]],
                   "host_reference_ms": [t for r in chosen for t in r["host_reference_ms"]]}
        results[key] = {**template[key], "latency": latency, "runs": RUNS}
    return results


def test_unchanged_reruns_on_a_loaded_host_pass_and_a_30_percent_slowdown_is_flagged(
        tmp_path: Path, adb_server, start_emulated, loaded_host: None) -> None:
    device = start_emulated("pixel", connect=False)
    inventory = write_inventory(tmp_path / "farm.yaml", {adb_server.port: [device.serial]})
    write_config(tmp_path / "edgeloop.yaml", models=("digits",))
    matrix = write_matrix(tmp_path / "matrix.yaml", profiles=["pixel"], runs=RUNS, timeout_s=120)

    def farm(name: str, baseline: Path | None = None):
        run = farm_run(inventory, matrix, baseline=baseline, out_dir=tmp_path / name, lock_dir=tmp_path / "locks")
        assert all(o.status == "passed" for o in run.outcomes), [(o.task.id, o.detail) for o in run.outcomes]
        return run

    base = farm("base")
    baseline = load_results(base.paths.json)
    assert sorted(baseline) == ["digits/pixel/cpu", "digits/pixel/gpu", "digits/pixel/gpu_fp16"]
    assert all(len(r["latency"]["host_reference_ms"]) == len(r["latency"]["inference_ms"]) for r in baseline.values())

    real = [farm(f"rerun-{i}", base.paths.json) for i in range(REAL)]
    pool: dict[str, list[dict[str, Any]]] = {key: [] for key in baseline}
    for run in real:
        for key, result in load_results(run.paths.json).items():
            pool[key] += _runs(result)
    rng = np.random.default_rng(16)
    sampled = [diff_results(baseline, _sampled_rerun(pool, baseline, rng), DiffOptions()) for _ in range(SAMPLED)]
    verdicts: list[DiffReport] = [r.baseline for r in real] + sampled
    assert len(verdicts) == 20 and sum(v.compared for v in verdicts) == 60
    false = [f"{f.job}: {f.message}" for v in verdicts for f in v.findings if f.verdict == REGRESSION]
    assert false == [], "\n".join(false)
    assert all(r.passed for r in real)

    device.set_faults(slowdown=1.3)  # from now on every inference computes 30 % longer
    for i in range(2):
        slow = farm(f"slow-{i}", base.paths.json)
        flagged = sorted((f.job, f.kind, f.verdict) for f in slow.baseline.findings)
        assert flagged == [(key, "latency", REGRESSION) for key in sorted(baseline)], \
            "\n".join(f.message for f in slow.baseline.findings)
        assert not slow.passed
