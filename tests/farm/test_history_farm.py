"""farm.run records its runs in the history, and takes a baseline from it (trivial jobs on an emulated pixel)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.farm import farm_run
from harness.history.baseline import HistoryBaseline
from harness.history.query import Filters, select_jobs
from harness.report.results import FAILED, PASSED
from tests.farm.farm_helpers import echo_job, tasks, write_inventory, write_matrix

pytestmark = pytest.mark.e2e


def test_farm_runs_are_recorded_and_judged_against_the_history(tmp_path: Path, adb_server, start_emulated) -> None:
    pixel = start_emulated("pixel", connect=False)
    inventory = write_inventory(tmp_path / "farm.yaml", {adb_server.port: [pixel.serial]})
    matrix = write_matrix(tmp_path / "matrix.yaml", profiles=["pixel"], timeout_s=30)
    where = str(tmp_path / "history.sqlite")

    first = farm_run(inventory, matrix, tasks=tasks(2), execute=echo_job, out_dir=tmp_path / "r1",
                     lock_dir=tmp_path / "locks", history=where)
    assert first.passed and first.history_note == f"history: run 1 recorded in {where}"
    recorded = select_jobs(where)
    assert [(r.model, r.status, r.kind, r.device) for r in recorded] == [("m0", PASSED, "farm", pixel.serial),
                                                                       ("m1", PASSED, "farm", pixel.serial)]
    assert recorded[0].report == str((tmp_path / "r1").resolve())

    def m1_breaks(task, device, attempt):
        result = echo_job(task, device, attempt)
        if task.model == "m1":
            result.status, result.failure = FAILED, "echo answered something else"
        return result

    second = farm_run(inventory, matrix, tasks=tasks(2), execute=m1_breaks, out_dir=tmp_path / "r2",
                      lock_dir=tmp_path / "locks", history=where, baseline=HistoryBaseline(where, 5))
    assert not second.passed and second.baseline.compared == 2
    assert second.baseline.base == f"history:5 ({where})"
    assert [(f.job, f.kind) for f in second.baseline.regressions] == [("m1/pixel/cpu", "status")]  # passed before
    assert second.history_note == f"history: run 2 recorded in {where}"
    assert [r.status for r in select_jobs(where, Filters(model="m1"))] == [PASSED, FAILED]

    # the failed run is not a baseline: against the history, m1's baseline is still the first run's pass
    third = farm_run(inventory, matrix, tasks=tasks(2), execute=echo_job, out_dir=tmp_path / "r3",
                     lock_dir=tmp_path / "locks", baseline=HistoryBaseline(where, 1))
    assert third.passed and not third.baseline.regressed and third.history_note is None
    assert len(select_jobs(where)) == 4  # a run without a history is not recorded
