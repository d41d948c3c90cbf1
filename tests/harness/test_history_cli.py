"""`edgeloop history` and `--baseline history[:N]` through the command line: the table, JSON, the trend
page, and one-line errors with exit code 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.history.record import record_report
from harness.report.results import DEVICE
from tests.harness.conftest import CONFIG
from tests.harness.history_fixtures import at, job, report

EDGELOOP = str(Path(sys.executable).parent / "edgeloop")
STEADY = [1.0, 1.02, 0.98, 1.01, 0.99, 1.0]


def edgeloop(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "EDGELOOP_HISTORY"}
    return subprocess.run([EDGELOOP, *args], capture_output=True, text=True, timeout=120, cwd=cwd,
                          env={**env, "COLUMNS": "200"}, stdin=subprocess.DEVNULL)


def _split(path: Path) -> Path:
    """Three runs of two inferences each, as `deploy --runs 3` reports them."""
    document = json.loads(path.read_text())
    for result in document["results"]:
        result["latency"]["run_inferences"] = [2, 2, 2]
    path.write_text(json.dumps(document))
    return path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A folder whose default history (.edgeloop/history.sqlite) holds four runs of digits on cpu and gpu."""
    where = str(tmp_path / ".edgeloop" / "history.sqlite")
    for day in range(1, 5):
        path = _split(report(tmp_path / f"r{day}", [job(samples=STEADY, timing_source=DEVICE),
                                                    job(runtime="gpu", samples=STEADY, timing_source=DEVICE)],
                             at(day)))
        record_report(where, path, kind="deploy", project=tmp_path)
    return tmp_path


def test_history_shows_a_table_json_and_a_trend_page(project: Path) -> None:
    table = edgeloop("history", cwd=project)
    assert table.returncode == 0, table.stderr
    assert table.stdout.count("digits") == 8 and "2025-01-04T12:00:00" in table.stdout
    assert "history · .edgeloop/history.sqlite" in table.stdout and "Pixel 7" in table.stdout

    shown = edgeloop("history", "--runtime", "cpu", "--last", "2", "--json", cwd=project)
    assert shown.returncode == 0, shown.stderr
    records = json.loads(shown.stdout)
    assert [r["created"][:10] for r in records] == ["2025-01-03", "2025-01-04"]
    assert records[0]["samples_ms"] == STEADY and records[0]["median_ms"] == pytest.approx(1.0)
    assert "result" not in records[0]

    page = edgeloop("history", "--html", "out/trend.html", "--since", "2025-01-02", cwd=project)
    assert page.returncode == 0, page.stderr
    assert page.stdout.strip() == "trend page: out/trend.html (6 jobs)"
    html = (project / "out" / "trend.html").read_text()
    assert html.count('class="plot trend-latency"') == 2 and html.count('class="plot trend-accuracy"') == 2


@pytest.mark.parametrize(("args", "message"), [
    (("history", "--since", "tomorrow"), "--since 'tomorrow' is neither a date nor an age"),
    (("history", "--last", "x"), "--last expects a number, got 'x'"),
    (("history", "--last", "-1"), "--last must be 0 (all) or more"),
    (("history", "--history", "off"), "the history is off (--history off)"),
    (("history", "--history", "nowhere.sqlite"), "no runs recorded in history nowhere.sqlite yet"),
    (("report.diff", "history:0", "r1/report.json"), "N of history:N is how many runs, got '0'"),
    (("report.diff", "history", "r1/report.json", "--history", "off"), "--baseline history, but the history is off"),
])
def test_bad_history_options_are_one_line(project: Path, args: tuple[str, ...], message: str) -> None:
    result = edgeloop(*args, cwd=project)
    assert result.returncode == 2 and message in result.stderr and result.stderr.count("\n") == 1, result.stderr


def test_report_diff_against_the_history(project: Path) -> None:
    slow = _split(report(project / "slow", [job(samples=[3 * s for s in STEADY], timing_source=DEVICE)], at(9)))
    regressed = edgeloop("report.diff", "history:4", str(slow), cwd=project)
    assert regressed.returncode == 1, regressed.stdout + regressed.stderr
    assert "regression" in regressed.stdout and "digits/pixel/cpu" in regressed.stdout
    same = _split(report(project / "same", [job(samples=STEADY, timing_source=DEVICE)], at(9)))
    passed = edgeloop("report.diff", "history", str(same), cwd=project)
    assert passed.returncode == 0 and "no regression" in passed.stdout, passed.stdout + passed.stderr


def test_a_history_that_cannot_be_made_fails_deploy_before_any_device(tmp_path: Path) -> None:
    """Bad input first: exit 2 naming the history, not a device error (no device is there to find)."""
    (tmp_path / "blocker").write_text("a file where the history's folder should be")
    result = edgeloop("deploy", "--device", "pixel", "--runtime", "cpu", "--config", str(CONFIG),
                      "--report-dir", str(tmp_path / "r"),
                      "--adb", "127.0.0.1:1", "--history", str(tmp_path / "blocker" / "h.sqlite"), cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "cannot create its folder" in result.stderr and "blocker is a file, not a folder" in result.stderr
