"""Ctrl-C during a farm run: the jobs that finished are reported, the others as interrupted (never passed), and
nothing is left half-written; a farm run whose reports cannot be written ends on its verdict in one line."""

import json
import signal
import threading
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.farm import farm_run
from harness.report import ReportsNotWritten
from tests.farm.farm_helpers import echo_job, tasks, write_inventory, write_matrix

pytestmark = pytest.mark.e2e


def test_ctrl_c_during_a_farm_run_writes_the_reports(tmp_path: Path, adb_server, start_emulated) -> None:
    device = start_emulated("pixel", connect=False)
    inventory = write_inventory(tmp_path / "farm.yaml", {adb_server.port: [device.serial]})
    matrix = write_matrix(tmp_path / "matrix.yaml", profiles=["pixel"], timeout_s=30)
    jobs = tasks(3)
    release = threading.Event()

    cut_off = tmp_path / "r" / "jobs" / "job-1" / ".stdout.txt.0123456789ab.tmp"

    def execute(task, farm_device, attempt):
        if task.id == jobs[1].id:  # Ctrl-C while the second job runs, halfway through writing a file
            cut_off.parent.mkdir(parents=True)
            cut_off.write_text("half of it")
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
            release.wait(30)
        return echo_job(task, farm_device, attempt)

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt, match=r"farm\.html$"):  # Interrupted: it names the report
            farm_run(inventory, matrix, tasks=jobs, execute=execute, out_dir=tmp_path / "r",
                     lock_dir=tmp_path / "locks")
    finally:
        signal.signal(signal.SIGINT, previous)
        release.set()
    farm = json.loads((tmp_path / "r" / "farm.json").read_text())
    assert [j["status"] for j in farm["jobs"]] == ["passed", "interrupted", "interrupted"]
    assert farm["verdict"] == "failed" and farm["summary"]["interrupted"] == 2
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert [r["status"] for r in report["results"]] == ["passed", "error", "error"]
    cases = ET.parse(tmp_path / "r" / "junit.xml").getroot().find("testsuite").findall("testcase")
    assert [c.find("error") is not None for c in cases] == [False, True, True]
    assert (tmp_path / "r" / "farm.html").is_file()
    assert not cut_off.exists() and not list((tmp_path / "r").rglob("*.tmp"))
    assert cut_off.parent.is_dir()  # only the temporary went


def test_a_farm_run_whose_reports_cannot_be_written_ends_on_its_verdict_in_one_line(
        tmp_path: Path, adb_server, start_emulated) -> None:
    device = start_emulated("pixel", connect=False)
    inventory = write_inventory(tmp_path / "farm.yaml", {adb_server.port: [device.serial]})
    matrix = write_matrix(tmp_path / "matrix.yaml", profiles=["pixel"], timeout_s=30)
    (tmp_path / "r" / "junit.xml").mkdir(parents=True)  # in the way of the last report
    run = farm_run(inventory, matrix, tasks=tasks(2), execute=echo_job, out_dir=tmp_path / "r",
                   lock_dir=tmp_path / "locks")
    assert run.passed and run.unwritten is not None and not (tmp_path / "r" / "farm.json").exists()
    with pytest.raises(ReportsNotWritten) as info:  # every job passed, but CI would find no junit.xml: exit 2
        run.check()
    assert str(info.value).startswith(f"no report was written to {tmp_path / 'r'}: ") and "\n" not in str(info.value)
