"""deploy --baseline on the emulated device: the comparison is the deploy's own, a latency verdict that too few
runs leave undecided runs once more in the same session (farm.run's path), and the findings are in report.json
and junit.xml."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from rich.console import Console

from deploy.errors import CheckFailed
from harness.pipeline import deploy
from harness.report.diff import REGRESSION
from tests.harness.conftest import CONFIG

pytestmark = pytest.mark.e2e
INFERENCES, BASE_RUNS = 32, 6  # the example's input list; 6 baseline runs against 3 cannot reach p <= 0.01


def _fast_baseline(path: Path) -> Path:
    """A baseline in which digits/cpu was far faster than any host makes it (relative to the host's speed)."""
    count = INFERENCES * BASE_RUNS
    result = {"model": "digits", "profile": "pixel", "runtime": "cpu", "status": "passed", "passed": True,
              "outputs": [], "timing_source": "host", "runs": BASE_RUNS,
              "latency": {"inference_ms": [1e-4 * (1 + i % 7) for i in range(count)],
                          "run_inferences": [INFERENCES] * BASE_RUNS, "host_reference_ms": [1.0] * count}}
    path.write_text(json.dumps({"schema_version": 3, "results": [result]}))
    return path


def test_an_undecided_latency_is_rerun_once_and_judged_on_both(adb_server, deploy_env, tmp_path: Path) -> None:
    said = io.StringIO()
    with pytest.raises(CheckFailed) as failed:
        deploy(None, config_path=CONFIG, runtimes=["cpu"], adb=f"127.0.0.1:{adb_server.port}", emulate=True,
               runs=3, report_root=tmp_path / "reports", baseline=_fast_baseline(tmp_path / "base.json"),
               console=Console(file=said, width=200)).check()
    assert failed.value.message == f"1 regression(s) against {tmp_path / 'base.json'}"
    assert "digits/cpu: run once more to settle its latency verdict against the baseline" in said.getvalue()
    (folder,) = (tmp_path / "reports").iterdir()
    document = json.loads((folder / "report.json").read_text())
    (result,) = document["results"]
    assert result["status"] == "passed" and result["runs"] == 6  # 3 measured runs, and 3 of the rerun
    assert result["latency"]["run_inferences"] == [INFERENCES] * 6 and len(result["memory"]["run_peak_kb"]) == 6
    assert (folder / "reruns" / "digits-cpu" / "run-3" / "command.txt").is_file()
    (finding,) = document["baseline"]["findings"]
    assert finding["verdict"] == REGRESSION and finding["message"].endswith("after a rerun")
    assert f"over {BASE_RUNS} vs 6 runs" in finding["message"]
    case = ET.parse(folder / "junit.xml").getroot().find("testsuite/testcase")
    assert case.find("failure").get("type") == "baseline regression"
