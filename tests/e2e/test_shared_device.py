"""One device shared by several deploys and farm runs at once, as CI jobs and farms share phones; and
the adb server going away under a deploy. Real processes, the real adb server, the emulated device."""

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from deploy.errors import DeviceError
from harness.pipeline import deploy
from tests.conftest import wait_until
from tests.farm.farm_helpers import assert_no_overlap, busy_intervals, write_config, write_inventory, write_matrix
from tests.harness.conftest import ROOT

pytestmark = pytest.mark.e2e
INVOKE = str(Path(sys.executable).with_name("invoke"))


def _sessions(events: list[dict]) -> list[str]:
    """The session id of each net-run, in the order they ran (its output folder names it)."""
    ids = []
    for event in events:
        if event["event"] == "program_start" and "edgeloop-net-run" in event["program"]:
            folder = next(a for a in event["argv"] if "/runs/" in a)
            ids.append(folder.split("/runs/")[1].split("/")[0])
    return ids


def test_four_concurrent_deploys_to_one_device_all_pass(adb_server, start_emulated, deploy_env,
                                                       tmp_path: Path) -> None:
    running = start_emulated("pixel")
    env = {**os.environ, "EDGELOOP_BUILD": str(deploy_env["build"]), "EDGELOOP_HOME": str(deploy_env["home"])}
    procs = [subprocess.Popen([INVOKE, "-r", str(ROOT), "deploy", "--device", "pixel", "--serial", running.serial,
                               "--adb", f"127.0.0.1:{adb_server.port}", "--report-dir", str(tmp_path / f"r{i}")],
                              env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(4)]
    said = [p.communicate(timeout=300) for p in procs]
    for proc, (out, err) in zip(procs, said, strict=True):
        assert proc.returncode == 0, out + err
    for i in range(4):
        (folder,) = (tmp_path / f"r{i}").iterdir()
        results = json.loads((folder / "report.json").read_text())["results"]
        assert [r["runtime"] for r in results] == ["cpu", "gpu", "gpu_fp16"] and all(r["passed"] for r in results)
        assert results[0]["outputs"][0]["metrics"]["cosine"] > 0.999
    # One session at a time: each deploy's runs form one block in the device's own log, never interleaved.
    order = _sessions(running.events())
    assert len(order) == 12 and len(set(order)) == 4
    blocks = [s for k, s in enumerate(order) if k == 0 or order[k - 1] != s]
    assert len(blocks) == 4, order
    assert_no_overlap(busy_intervals(running.events()), "net-run")
    assert any("is in use by" in err for _, err in said), "no deploy ever waited for another"


def test_two_farm_runs_with_separate_lock_folders_never_overlap_on_a_shared_device(adb_server, start_emulated,
                                                                                   deploy_env, tmp_path: Path) -> None:
    """As two hosts sharing a farm's adb server would: their local lock folders know nothing of each
    other, and the lease on the device keeps them apart."""
    running = start_emulated("pixel", connect=False)
    inventory = write_inventory(tmp_path / "farm.yaml", {adb_server.port: [running.serial]})
    write_config(tmp_path / "edgeloop.yaml")
    matrix = write_matrix(tmp_path / "matrix.yaml", profiles=["pixel"], runs=1, timeout_s=120)
    procs = []
    for name in ("a", "b"):
        env = {**os.environ, "EDGELOOP_BUILD": str(deploy_env["build"]), "EDGELOOP_HOME": str(deploy_env["home"]),
               "EDGELOOP_LOCK_DIR": str(tmp_path / f"locks-{name}")}
        procs.append(subprocess.Popen([INVOKE, "-r", str(ROOT), "farm.run", "--inventory", str(inventory),
                                       "--matrix", str(matrix), "--report-dir", str(tmp_path / f"farm-{name}")],
                                      env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    said = [p.communicate(timeout=300) for p in procs]
    for proc, (out, err) in zip(procs, said, strict=True):
        assert proc.returncode == 0, out + err
    order = _sessions(running.events())
    assert len(order) == 12 and len(set(order)) == 12  # 2 runs × 2 models × 3 runtimes, a session per job
    assert_no_overlap(busy_intervals(running.events()), "net-run")
    for name in ("a", "b"):
        farm = json.loads((tmp_path / f"farm-{name}" / "farm.json").read_text())
        assert [j["status"] for j in farm["jobs"]] == ["passed"] * 6


def test_three_models_on_three_runtimes_warm_deploys_push_nothing(adb_server, deploy_env, tmp_path: Path) -> None:
    config = write_config(tmp_path / "edgeloop.yaml", models=("digits", "digits_b", "digits_c"))
    pushed = []
    for n in range(3):
        outcome = deploy("pixel", config_path=config, adb=f"127.0.0.1:{adb_server.port}", emulate=True,
                         report_root=tmp_path / f"r{n}")
        assert len(outcome.results) == 9 and outcome.passed, [r.failure for r in outcome.results]
        pushed.append(outcome.bytes_pushed)
    assert pushed[0] > 0 and pushed[1:] == [0, 0]


def test_the_adb_server_killed_mid_run_is_named_as_such(new_adb_server, start_emulated, deploy_env,
                                                         tmp_path: Path) -> None:
    with new_adb_server() as server:
        running = start_emulated("pixel", connect=False)
        running.connect(server.port)
        running.set_faults(netrun_hang=True)
        box: dict = {}

        def run() -> None:
            try:
                deploy("pixel", config_path=write_config(tmp_path / "edgeloop.yaml", models=("digits",)),
                       adb=f"127.0.0.1:{server.port}", serial=running.serial, runtimes=["cpu"],
                       report_root=tmp_path / "r", timeout=60).check()
            except DeviceError as exc:
                box["error"] = exc

        worker = threading.Thread(target=run)
        worker.start()
        wait_until(lambda: any(e["event"] == "netrun.start" for e in running.events()), "net-run to start")
        server.run("kill-server")
        worker.join(90)
    assert not worker.is_alive()
    error = box["error"]
    assert error.message == f"the adb server at 127.0.0.1:{server.port} stopped; restart it (`adb start-server`) " \
                            "and run again"
    assert "report.html" in error.hint  # the reports of what did run were written
    (folder,) = (tmp_path / "r").iterdir()
    (result,) = json.loads((folder / "report.json").read_text())["results"]
    assert result["status"] == "error" and "adb server" in result["failure"]
