"""What a deploy leaves behind when it is cut short, and what it refuses before touching a device."""

import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from deploy.errors import EdgeloopError
from harness.pipeline import deploy
from tests.conftest import wait_until
from tests.harness.conftest import CONFIG, ROOT

pytestmark = pytest.mark.e2e


def test_ctrl_c_mid_run_writes_the_reports_with_the_unfinished_jobs_as_errors(adb_server, start_emulated,
                                                                              deploy_env, tmp_path: Path) -> None:
    running = start_emulated("pixel")
    running.set_faults(netrun_hang=True)
    env = {**os.environ, "EDGELOOP_BUILD": str(deploy_env["build"]), "EDGELOOP_HOME": str(deploy_env["home"])}
    invoke = Path(sys.executable).with_name("invoke")
    process = subprocess.Popen(
        [str(invoke), "-r", str(ROOT), "deploy", "--device", "pixel", "--config", str(CONFIG), "--runtime", "cpu",
         "--runtime", "gpu", "--serial", running.serial, "--adb", f"127.0.0.1:{adb_server.port}",
         "--report-dir", str(tmp_path / "reports")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        wait_until(lambda: any(e["event"] == "netrun.start" for e in running.events()), "net-run to start",
                   timeout=120)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, err
    (folder,) = (tmp_path / "reports").iterdir()
    assert err.strip() == f"interrupted (reports: {folder})"  # where the evidence is
    assert {"report.json", "report.html", "junit.xml", "runs"} <= {p.name for p in folder.iterdir()}
    doc = json.loads((folder / "report.json").read_text())
    assert [(r["runtime"], r["status"], r["failure"]) for r in doc["results"]] == [
        ("cpu", "error", "interrupted before it finished"), ("gpu", "error", "interrupted before it finished")]
    assert doc["results"][0]["run_dir"] and not doc["results"][1]["run_dir"]  # the cpu run's folder is kept
    assert doc["summary"]["passed"] == 0


@pytest.mark.parametrize("where", ["file", "file/sub", "/proc/edgeloop-reports"])
def test_a_report_dir_that_cannot_hold_reports_fails_before_any_device(where: str, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    root = tmp_path / where
    with pytest.raises(EdgeloopError, match=r"^--report-dir .*: cannot write reports there") as info:
        deploy("pixel", config_path=CONFIG, emulate=True, adb="127.0.0.1:1", report_root=root)
    assert info.value.exit_code == 2 and "\n" not in str(info.value)


def test_serial_and_emulate_together_are_refused(tmp_path: Path) -> None:
    """--emulate deploys to the device it starts: a --serial beside it would be silently ignored."""
    with pytest.raises(EdgeloopError, match="--serial R5CW30 and --emulate exclude each other"):
        deploy("pixel", config_path=CONFIG, emulate=True, serial="R5CW30", adb="127.0.0.1:1", report_root=tmp_path)


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGTERM], ids=["killed", "emulator.stop"])
def test_a_deploys_own_emulated_device_that_stops_is_named_and_ends_the_deploy(stop: signal.Signals, adb_server,
                                                                              deploy_env, tmp_path: Path,
                                                                              monkeypatch) -> None:
    """SIGTERM is what `invoke emulator.stop` sends from another shell: the device's process then lives on
    while its connections wind down, yet the failed job and the ones after it must say it stopped."""
    home = tmp_path / "home"
    monkeypatch.setenv("EDGELOOP_HOME", str(home))  # this test's device is the only one there
    box: dict = {}
    worker = threading.Thread(target=lambda: box.update(outcome=deploy(
        "pixel", config_path=CONFIG, runtimes=["cpu", "gpu"], adb=f"127.0.0.1:{adb_server.port}", emulate=True,
        runs=500, report_root=tmp_path / "reports")))
    worker.start()
    wait_until(lambda: list((tmp_path / "reports").glob("*/runs/digits-cpu/run-2")), "the second run", timeout=120)
    (record,) = home.glob("emulators/*/device.json")
    os.kill(json.loads(record.read_text())["pid"], stop)  # the emulated device dies, or is stopped, mid-run
    worker.join(120)
    assert not worker.is_alive()
    cpu, gpu = box["outcome"].results
    assert cpu.status == "error" and cpu.device_fault and "adb devices" not in cpu.failure
    assert re.search(r"\(the emulated device pixel\S* stopped; deploy again\)$", cpu.failure), cpu.failure
    assert re.fullmatch(r"not run: the emulated device pixel\S* stopped; deploy again", gpu.failure)
