"""A baseline from the history: the last N passing runs of each job, pooled in report.diff's form."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deploy.errors import EdgeloopError
from harness.history.baseline import HistoryBaseline, diff_report, from_history, parse_baseline
from harness.history.record import record_report
from harness.report.diff import DiffOptions
from harness.report.results import DEVICE, FAILED, HOST
from tests.harness.history_fixtures import (  # noqa: F401  (fixtures)
    at,
    history_fixture,
    job,
    postgres_history_fixture,
    postgres_server_fixture,
    report,
)

CPU = ("digits", "pixel", "cpu")


def _record(where: str, folder: Path, jobs, day: int, runs: list[int] | None = None) -> Path:
    """Record a report of these jobs made on `day`; `runs` splits each job's inferences into runs."""
    path = report(folder, jobs, at(day))
    if runs is not None:
        document = json.loads(path.read_text())
        for result in document["results"]:
            result["latency"]["run_inferences"] = runs
        path.write_text(json.dumps(document))
    record_report(where, path, kind="deploy", project=folder)
    return path


def test_the_option_names_a_file_or_the_history(tmp_path: Path) -> None:
    path = report(tmp_path / "x", [job()], at(1))
    assert parse_baseline(str(path), "h.sqlite") == path
    with pytest.raises(EdgeloopError, match="cannot read report"):  # read at once: before any device work
        parse_baseline(str(tmp_path / "missing.json"), "h.sqlite")
    assert parse_baseline("history", "h.sqlite") == HistoryBaseline("h.sqlite", 5)
    assert parse_baseline("history:3", "postgresql://u:pw@db/e") == HistoryBaseline("postgresql://u:pw@db/e", 3)
    assert str(HistoryBaseline("postgresql://u:pw@db/e", 3)) == "history:3 (postgresql://u:***@db/e)"
    for bad in ("history:0", "history:x", "history:"):
        with pytest.raises(EdgeloopError, match="N of history:N is how many runs"):
            parse_baseline(bad, "h.sqlite")
    with pytest.raises(EdgeloopError, match="the history is off"):
        parse_baseline("history", None)


def test_the_last_n_passing_runs_are_pooled(history: str, tmp_path: Path) -> None:
    _record(history, tmp_path / "1", [job(samples=[1.0, 1.0]), job(runtime="gpu", samples=[5.0])], 1)
    _record(history, tmp_path / "2", [job(samples=[2.0, 2.0])], 2, runs=[1, 1])
    _record(history, tmp_path / "3", [job(samples=[9.0, 9.0], status=FAILED, noise=2.0)], 3)  # not passing
    _record(history, tmp_path / "4", [job(samples=[3.0, 3.0, 3.1])], 4, runs=[2, 1])
    _record(history, tmp_path / "5", [job(samples=[4.0, 4.0])], 5)  # the new run itself: after `before`

    base = from_history(HistoryBaseline(history, 2), [CPU, ("digits", "pixel", "gpu"), ("absent", "pixel", "cpu")],
                        before=at(5).isoformat())
    assert set(base) == {"digits/pixel/cpu", "digits/pixel/gpu"}  # no passing run of `absent`: not in the baseline
    latency = base["digits/pixel/cpu"]["latency"]
    assert latency["inference_ms"] == [2.0, 2.0, 3.0, 3.0, 3.1]  # runs of days 2 and 4, oldest first
    assert latency["run_inferences"] == [1, 1, 2, 1]  # per-run lists are joined too
    assert latency["median_ms"] == 3.0 and latency["min_ms"] == 2.0 and latency["max_ms"] == 3.1
    assert base["digits/pixel/cpu"]["passed"] and base["digits/pixel/cpu"]["outputs"][0]["name"] == "logits"

    everything = from_history(HistoryBaseline(history, 10), [CPU])["digits/pixel/cpu"]["latency"]["inference_ms"]
    assert everything == [1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 3.1, 4.0, 4.0]


def test_runs_timed_elsewhere_than_the_newest_are_left_out_of_the_pool(history: str, tmp_path: Path) -> None:
    _record(history, tmp_path / "1", [job(samples=[7.0], timing_source=HOST)], 1)
    _record(history, tmp_path / "2", [job(samples=[1.0], timing_source=DEVICE)], 2)
    _record(history, tmp_path / "3", [job(samples=[1.2], timing_source=DEVICE)], 3)
    pooled = from_history(HistoryBaseline(history, 5), [CPU])["digits/pixel/cpu"]
    assert pooled["latency"]["inference_ms"] == [1.0, 1.2] and pooled["timing_source"] == DEVICE


def test_report_diff_against_the_history(history: str, tmp_path: Path) -> None:
    """Three runs of three per job: a baseline of four recorded runs has twelve, enough for a verdict."""
    steady = [1.0, 1.02, 0.98, 1.01, 0.99, 1.0]
    for day in range(1, 5):
        _record(history, tmp_path / f"base{day}", [job(samples=steady, timing_source=DEVICE)], day, runs=[2, 2, 2])
    source = HistoryBaseline(history, 5)

    same = _record(history, tmp_path / "same", [job(samples=steady, timing_source=DEVICE)], 6, runs=[2, 2, 2])
    unchanged = diff_report(source, same, DiffOptions())  # recorded already, yet not its own baseline
    assert unchanged.compared == 1 and not unchanged.regressed, unchanged.findings

    slow = report(tmp_path / "slow", [job(samples=[3 * s for s in steady], timing_source=DEVICE)], at(7))
    document = json.loads(slow.read_text())
    document["results"][0]["latency"]["run_inferences"] = [2, 2, 2]
    slow.write_text(json.dumps(document))
    slower = diff_report(source, slow, DiffOptions())
    assert slower.regressed and [f.kind for f in slower.regressions] == ["latency"]
    assert slower.base == f"history:5 ({history})" and slower.regressions[0].job == "digits/pixel/cpu"

    # a job the history never saw pass is new, not missing: only the new report's jobs are looked up
    other = report(tmp_path / "other", [job("other", samples=steady, timing_source=DEVICE)], at(8))
    fresh = diff_report(source, other, DiffOptions())
    assert fresh.compared == 0 and [f.kind for f in fresh.findings] == ["new"] and not fresh.regressed
