"""A real deploy on the emulated device is recorded in the history, and is the next deploy's baseline."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.history.query import select_jobs
from harness.report.results import HOST, PASSED
from tests.harness.conftest import CONFIG, ROOT

pytestmark = pytest.mark.e2e
EDGELOOP = str(Path(sys.executable).parent / "edgeloop")


def test_a_deploy_is_recorded_and_is_the_next_ones_baseline(adb_server, deploy_env, tmp_path: Path) -> None:
    where = tmp_path / "team" / "history.sqlite"
    env = {**{k: v for k, v in os.environ.items() if k != "EDGELOOP_HISTORY"},
           "EDGELOOP_BUILD": str(deploy_env["build"]), "EDGELOOP_HOME": str(deploy_env["home"])}

    def deploy(folder: str, *more: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([EDGELOOP, "deploy", "--config", str(CONFIG), "--emulate", "--adb",
                               f"127.0.0.1:{adb_server.port}", "--runtime", "cpu", "--runs", "3", "--report-dir",
                               str(tmp_path / folder), "--history", str(where), *more], capture_output=True, text=True,
                              timeout=300, cwd=tmp_path, env=env, stdin=subprocess.DEVNULL)

    first = deploy("one")
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"history: run 1 recorded in {where}" in first.stderr
    (recorded,) = select_jobs(str(where))
    (report_dir,) = (tmp_path / "one").iterdir()
    assert (recorded.model, recorded.profile, recorded.runtime, recorded.status) == ("digits", "pixel", "cpu", PASSED)
    assert recorded.kind == "deploy" and recorded.report == str(report_dir.resolve())
    assert recorded.timing_source == HOST and recorded.device_model == "Pixel 7"
    assert recorded.samples_ms and len(recorded.samples_ms) % 3 == 0 and recorded.median_ms > 0
    assert recorded.top1_accuracy is not None and recorded.cosine >= 0.999
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    assert recorded.git_commit == head.stdout.strip()  # the deployment file's checkout
    assert recorded.result["latency"]["inference_ms"] == recorded.samples_ms
    assert recorded.peak_memory_kb == recorded.result["memory"]["peak_kb"] > 10_000  # net-run's VmHWM on the device

    # The same deploy against the history: it compares with the first run, not with itself, and passes.
    # Sub-millisecond host latencies on a shared machine: a wide allowance (the verdict is diff's to test).
    second = deploy("two", "--baseline", "history", "--latency-pct", "200")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "no regression" in second.stdout and "history: run 2 recorded" in second.stderr
    assert [r.run_id for r in select_jobs(str(where))] == [1, 2]
