"""The device half of the loop against the emulated device through a real adb server, in device
sessions: safe pull, resumed installs, and every fault a run can meet."""

import json
import os
import re
import shutil
import signal
import threading
import time
from pathlib import Path, PurePosixPath

import numpy as np
import pytest

from deploy.config import load_config
from deploy.container import TensorInfo
from deploy.profiles import load_profile
from emulator.programs import OMIT_ENV
from harness.devices import connect, find_device
from harness.pipeline import _JobFailed, load_outputs, plan, prepare, run_job
from harness.report.results import ERROR, PASSED
from harness.run import NETRUN, shell_v2
from harness.transfer import DEVICE_ROOT, pull_files, pull_tree, remove_remote
from tests.conftest import wait_until
from tests.harness.conftest import CONFIG, ROOT, config_with, open_session


@pytest.fixture
def cpu_job(deploy_env):
    return plan(load_config(CONFIG), load_profile("pixel"), runtimes=["cpu"])[0]


@pytest.fixture
def device(adb_server, start_emulated):
    """(the running emulated pixel, a session on it)"""
    running = start_emulated("pixel")
    with open_session(adb_server, running) as session:
        yield running, session


def test_find_device_matches_profile_and_explains_misses(adb_server, start_emulated) -> None:
    running = start_emulated("pixel4")
    found = find_device(adb_server.client, load_profile("pixel4"), serial=running.serial)
    assert found.props["ro.board.platform"] == "msmnile" and found.serial == running.serial
    with pytest.raises(Exception, match=r"does not match profile 'pixel'") as info:
        find_device(adb_server.client, load_profile("pixel"), serial=running.serial)
    assert "--device" in info.value.hint
    with pytest.raises(Exception, match=r"no device with serial 'nope'.*Google Pixel 4"):
        find_device(adb_server.client, load_profile("pixel4"), serial="nope")


def test_push_cut_off_by_the_device_is_a_clear_error_then_resumes(adb_server, start_emulated, cpu_job) -> None:
    running = start_emulated("pixel")
    prepare(cpu_job)
    running.set_faults(drop_after_bytes=20_000, drop_once=True)  # the inputs get through, the model does not
    with open_session(adb_server, running) as session:
        result = run_job(cpu_job, session, work_dir=Path(running.state) / "run1")
        assert result.status == ERROR and not result.passed and result.outputs == []
        assert re.search(r"stopped answering while pushing \S+", result.failure)
        # The device reconnects; the session still frees its lease on the way out.
        wait_until(lambda: _reconnected(adb_server, running.serial), what="the device to come back")
    # The next deploy sends only what did not arrive whole. Where the cut falls depends on how the adb
    # server packs the stream, so what arrived intact is read from the device's own storage: blobs in
    # place, or whole under their temporary names.
    bundle = prepare(cpu_job).bundle
    blobs = running.sandbox_root / str(DEVICE_ROOT / "blobs").lstrip("/")

    def intact(entry: dict) -> bool:
        local = (bundle.path / entry["path"]).read_bytes()
        return any((blobs / name).is_file() and (blobs / name).read_bytes() == local
                   for name in (entry["sha256"], f".tmp-{entry['sha256']}"))

    files = {e["sha256"]: e for e in bundle.manifest}  # a blob is sent once, whatever files share it
    missing = [e for e in files.values() if not intact(e)]
    assert 0 < len(missing) < len(files), "the cut should fall inside the bundle"
    # What reached the device before the cut is counted in the failed job's figures.
    assert result.bytes_pushed >= sum(e["size"] for e in files.values() if intact(e)) > 0
    with open_session(adb_server, running) as session:
        again = run_job(cpu_job, session, work_dir=Path(running.state) / "run2")
    assert again.status == PASSED, again.failure
    assert again.bytes_pushed == sum(e["size"] for e in missing) + bundle.manifest_size


def _reconnected(adb_server, serial: str) -> bool:
    adb_server.client.connect(serial, timeout=5)
    return any(i.serial == serial and i.state == "device" for i in adb_server.client.list())


def test_crash_hang_and_recovery(device, cpu_job, tmp_path: Path) -> None:
    running, dev = device
    running.set_faults(netrun_crash=True)
    crashed = run_job(cpu_job, dev, work_dir=tmp_path / "crash")
    assert crashed.status == ERROR and "exit code 139 (SIGSEGV)" in crashed.failure and crashed.outputs == []
    assert json.loads((tmp_path / "crash" / "run-1" / "exit.json").read_text())["exit_code"] == 139

    running.set_faults(netrun_crash=False, netrun_hang=True)
    start = time.monotonic()
    hung = run_job(cpu_job, dev, timeout=2.0, work_dir=tmp_path / "hang")
    assert hung.status == ERROR and "did not finish within" in hung.failure
    assert time.monotonic() - start < 30
    # Closing the stream stopped net-run on the device: its end is logged.
    wait_until(lambda: sum(e["event"] == "netrun.end" for e in running.events()) >= 2, what="net-run to stop")

    running.set_faults(netrun_hang=False)
    ok = run_job(cpu_job, dev, runs=2, work_dir=tmp_path / "ok")
    assert ok.status == PASSED, ok.failure
    assert ok.runs == 2 and (tmp_path / "ok" / "warmup" / "command.txt").is_file()
    inferences = ok.outputs[0].metrics.inferences
    assert len(ok.latency.inference_ms) == 2 * inferences  # the warm-up run is not counted
    assert (tmp_path / "ok" / "run.sh").read_text().startswith("#!/system/bin/sh")
    assert json.loads((tmp_path / "ok" / "device.json").read_text())["ro.product.model"] == "Pixel 7"
    assert "sh run.sh" in (tmp_path / "ok" / "run-2" / "command.txt").read_text()
    # Each run had a folder of its own: those pulled went with the request that pulled them; the
    # crashed run's and the warm-up's stay until the session ends.
    listing = dev.device.shell2(f"ls {DEVICE_ROOT}/runs/{dev.id}", v2=True).stdout.split()
    assert listing == ["0-run-1", "2-warmup"]


def test_device_vanishing_mid_run(device, cpu_job, tmp_path: Path) -> None:
    running, dev = device
    prepare(cpu_job)
    running.set_faults(netrun_hang=True)
    box = {}

    def gone() -> str | None:  # as deploy --emulate asks
        return None if running.alive() else "the emulated device stopped"

    worker = threading.Thread(target=lambda: box.update(r=run_job(cpu_job, dev, work_dir=tmp_path / "r",
                                                                  device_gone=gone)))
    worker.start()
    wait_until(lambda: any(e["event"] == "netrun.start" for e in running.events()), what="net-run to start")
    os.kill(running.pid, signal.SIGKILL)  # gone at once, like a phone unplugged mid-run
    worker.join(60)
    assert not worker.is_alive()
    result = box["r"]
    assert result.status == ERROR and "stopped answering during the run" in result.failure
    # the hint says the device is gone, not how to reconnect a phone
    assert result.failure.endswith("(the emulated device stopped)") and "adb devices" not in result.failure


def test_pull_checks_presence_and_size(device, tmp_path: Path) -> None:
    dev = device[1].device
    remote = DEVICE_ROOT / "pulltest" / "out"
    good = np.arange(10, dtype=np.float32)
    dev.sync.push(good.tobytes(), str(remote / "Result_0" / "logits.raw"))
    dev.sync.push(b"\x00" * 12, str(remote / "Result_1" / "logits.raw"))
    names = [f"Result_{i}/logits.raw" for i in range(3)]
    assert pull_files(dev, remote, names, tmp_path) == ["Result_2/logits.raw"]
    assert not (tmp_path / "Result_2").exists()  # nothing made up for a missing file
    tensors = [TensorInfo("logits", (1, 10))]
    assert np.array_equal(load_outputs(tmp_path, tensors, 1)["logits"][0].ravel(), good)
    with pytest.raises(_JobFailed, match=r"Result_1/logits.raw has 12 bytes, expected 40"):
        load_outputs(tmp_path, tensors, 2)
    with pytest.raises(ValueError, match="not a safe relative path"):
        pull_files(dev, remote, ["../escape.raw"], tmp_path)
    # A local symlink cannot redirect a pull outside the run folder.
    outside = tmp_path / "outside"
    outside.mkdir()
    local = tmp_path / "tree"
    local.mkdir()
    (local / "Result_0").symlink_to(outside, target_is_directory=True)
    written = pull_tree(dev, remote, local)
    assert not any(outside.iterdir())
    assert all(p.resolve().is_relative_to(local.resolve()) for p in written) and written
    assert pull_tree(dev, DEVICE_ROOT / "no-such-folder", tmp_path / "none") == []
    remove_remote(dev, DEVICE_ROOT / "pulltest")


def test_remove_remote_stays_in_the_store(device) -> None:
    with pytest.raises(ValueError):
        remove_remote(device[1].device, PurePosixPath("/data/local/tmp"))


def test_real_phone_without_an_sdk_pack(adb_server, start_emulated, cpu_job, tmp_path: Path, monkeypatch) -> None:
    """A device whose system image lacks edgeloop's net-run stands in for a real phone."""
    with monkeypatch.context() as mp:
        mp.setenv(OMIT_ENV, NETRUN)
        running = start_emulated("pixel")
    dev = connect(adb_server.client, running.serial)
    assert dev.shell2("test -x /system/bin/edgeloop-net-run", v2=True).returncode != 0
    with open_session(adb_server, running) as session:
        assert not session.emulated
        result = run_job(cpu_job, session, work_dir=tmp_path / "run")
    assert result.status == ERROR and not result.passed and result.outputs == []
    assert "has no built-in net-run" in result.failure
    assert "SNPE_ROOT" in result.failure and "QNN_SDK_ROOT" in result.failure
    assert result.bytes_pushed == 0  # nothing is sent to a device that cannot run it


def test_run_timeout_is_a_deadline_even_for_a_chatty_command(device) -> None:
    """adbutils' shell2 timeout is per read: a command that keeps printing would never time out."""
    dev = device[1].device
    received = (bytearray(), bytearray())
    start = time.monotonic()
    code = shell_v2(dev, "for i in 1 2 3 4 5 6 7 8 9 10 11 12; do echo tick $i; sleep 0.5; done", 1.5, received)
    elapsed = time.monotonic() - start
    assert code is None and 1.4 < elapsed < 5.0
    assert received[0].startswith(b"tick 1\n")  # the output so far is kept
    finished = (bytearray(), bytearray())
    assert shell_v2(dev, "echo done; echo oops >&2; exit 3", 10.0, finished) == 3
    assert finished == (bytearray(b"done\n"), bytearray(b"oops\n"))


def test_full_storage_is_named_as_such(device, cpu_job, tmp_path: Path) -> None:
    running, dev = device
    prepare(cpu_job)
    running.set_faults(storage_full=True)
    result = run_job(cpu_job, dev, work_dir=tmp_path / "full")
    assert result.status == ERROR and "No space left on device" in result.failure
    assert "stopped answering" not in result.failure and "free space" in result.failure
    assert result.device_fault  # the device's fault: a farm retries the job on another device


def test_unreadable_timings_keep_the_accuracy_and_say_why(device, deploy_env, tmp_path: Path, monkeypatch) -> None:
    """A pack whose timings are a vendor's binary log needs its SDK's host tool to read them; without
    it the outputs are still compared and the missing latency is a warning, not a failed job."""
    _, dev = device
    job = _job_with_pack(tmp_path, "vendorlog", {"pack.yaml": ("format: edgeloop-diag", "format: snpe-diag-log")})
    monkeypatch.delenv("SNPE_ROOT", raising=False)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # no snpe-diagview on it
    result = run_job(job, dev, work_dir=tmp_path / "run")
    assert result.status == PASSED, result.failure
    assert result.outputs and result.outputs[0].metrics.inferences == 32 and result.latency is None
    assert len(result.warnings) == 1 and "no latency figures" in result.warnings[0]
    assert "snpe-diagview" in result.warnings[0] and "SNPE_ROOT" in result.warnings[0]


def test_outputs_net_run_did_not_write_fail_the_job_and_are_kept_for_the_post_mortem(device, deploy_env,
                                                                                     tmp_path: Path) -> None:
    """net-run exits 0 but one output file is missing: nothing is compared, the job is an error that
    names the file, and what net-run did write is pulled into the run folder."""
    _, dev = device
    script = ('{{ command | join(" ") }} --output_dir "$@"',
              '{{ command | join(" ") }} --output_dir "$@" && rm "$1/Result_7/logits.raw"')
    job = _job_with_pack(tmp_path, "lossy", {"run.sh.j2": script})
    result = run_job(job, dev, work_dir=tmp_path / "run")
    assert result.status == ERROR and result.outputs == [] and result.latency is None
    assert result.failure == "net-run wrote no Result_7/logits.raw"
    pulled = tmp_path / "run" / "run-1" / "output"
    assert (pulled / "Result_6" / "logits.raw").is_file() and not (pulled / "Result_7" / "logits.raw").exists()


def _job_with_pack(folder: Path, name: str, edits: dict[str, tuple[str, str]]):
    """The example's cpu job with a copy of the built-in pack named `name`, each file's text edited
    (old, new), given as a folder beside the deployment file."""
    pack = folder / name
    shutil.copytree(ROOT / "deploy" / "packs" / "builtin", pack)
    edits = {"pack.yaml": ("", ""), **edits}
    for file, (old, new) in edits.items():
        text = (pack / file).read_text()
        assert old in text
        (pack / file).write_text(text.replace(old, new).replace("name: builtin", f"name: {name}"))
    return plan(load_config(config_with(folder, pack=name)), load_profile("pixel"), runtimes=["cpu"])[0]
