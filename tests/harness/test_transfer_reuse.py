"""Pushes that reuse what the device already holds in other bundle folders, pushes and pulls cut off
by the device, and the stale run folders a dead run leaves: through a real adb server and the
emulated device."""

import os
import shutil
import signal
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from deploy.config import load_config
from deploy.errors import DeviceError
from deploy.profiles import load_profile
from harness.devices import connect
from harness.pipeline import Artifacts, Job, plan, prepare, run_job
from harness.report.results import PASSED
from harness.transfer import (
    DEVICE_ROOT,
    PushInterrupted,
    bundle_dir,
    cleanup_bundles,
    mark_used,
    pull_files,
    push_bundle,
)
from tests.conftest import wait_until
from tests.harness.conftest import CONFIG


@pytest.fixture
def job(deploy_env) -> Job:
    return plan(load_config(CONFIG), load_profile("pixel"), runtimes=["cpu"])[0]


@pytest.fixture
def art(job: Job) -> Artifacts:
    return prepare(job)


@pytest.fixture
def device(adb_server, start_emulated):
    running = start_emulated("pixel")
    return running, connect(adb_server.client, running.serial)


def _with_changed_input(job: Job, folder: Path, name: str) -> Job:
    """The job after one validation input (`name`) was edited: its bundle gets a new id."""
    inputs = folder / "validation"
    shutil.copytree(job.model.input_list.parent, inputs)
    raw = inputs / name
    (np.fromfile(raw, dtype=np.float32) + 1.0).astype(np.float32).tofile(raw)
    return replace(job, model=replace(job.model, input_list=inputs / "input_list.txt"))


def _on_device(running, bundle_id: str, path: str) -> Path:
    return running.sandbox_root / str(bundle_dir(bundle_id)).lstrip("/") / path


def test_a_changed_input_sends_only_that_file_and_reuses_the_rest(device, job, art, tmp_path: Path) -> None:
    running, dev = device
    old = art.bundle
    push_bundle(dev, old.path, old.id, old.manifest)
    changed = _with_changed_input(job, tmp_path / "one", "digit_005.raw")
    new = prepare(changed).bundle
    assert new.id != old.id
    held = {(e["sha256"], e["size"]) for e in old.manifest}
    fresh = [e for e in new.manifest if (e["sha256"], e["size"]) not in held]
    assert [e["path"] for e in fresh] == ["inputs/5/digits.raw"]

    # The deploy's "pushed" is what went over adb: the changed input and the manifest; and the
    # bundle assembled from copies runs.
    result = run_job(changed, dev, work_dir=tmp_path / "run")
    assert result.status == PASSED, result.failure
    assert result.bytes_pushed == fresh[0]["size"] + (new.path / "manifest.json").stat().st_size
    for entry in new.manifest:  # every file arrived whole, with its mode
        assert _on_device(running, new.id, entry["path"]).read_bytes() == (new.path / entry["path"]).read_bytes()
    mode = dev.shell2(f"stat -c %a {bundle_dir(new.id)}/run.sh", v2=True).stdout.strip()
    assert mode == "755"
    assert push_bundle(dev, new.path, new.id, new.manifest).bytes_sent == 0

    # A file an old manifest lists but whose size on the device is wrong is sent, never copied.
    model = new.container_name
    for held_id in (old.id, new.id):
        dev.shell2(f"echo broken > {bundle_dir(held_id) / model}", v2=True)
    third = prepare(_with_changed_input(job, tmp_path / "two", "digit_006.raw")).bundle
    pushed = push_bundle(dev, third.path, third.id, third.manifest)
    sizes = {e["path"]: e["size"] for e in third.manifest}
    sent = [model, "inputs/6/digits.raw"]
    assert pushed.files_sent == 2 and pushed.files_reused == len(third.manifest) - 2
    assert pushed.bytes_reused == sum(sizes.values()) - sum(sizes[p] for p in sent)
    assert pushed.bytes_sent == sum(sizes[p] for p in sent) + (third.path / "manifest.json").stat().st_size
    assert _on_device(running, third.id, model).read_bytes() == (third.path / model).read_bytes()


def test_a_push_cut_off_says_how_many_bytes_went_through(device, art) -> None:
    running, dev = device
    b = art.bundle
    running.set_faults(drop_after_bytes=12_000, drop_once=True)
    with pytest.raises(PushInterrupted) as info:
        push_bundle(dev, b.path, b.id, b.manifest)
    error = info.value
    assert isinstance(error, DeviceError)
    assert error.message.startswith(f"device {running.serial} stopped answering while pushing ")
    assert "Expected" not in str(error) and "Errno" not in str(error)
    assert error.hint.endswith("what was already sent is kept")
    # What the device kept whole went through, so it is counted (the file cut off may count as well).
    whole = sum(e["size"] for e in b.manifest if _on_device(running, b.id, e["path"]).is_file()
                and _on_device(running, b.id, e["path"]).read_bytes() == (b.path / e["path"]).read_bytes())
    assert whole > 0 and error.bytes_sent >= whole
    assert error.bytes_sent < sum(e["size"] for e in b.manifest)


def test_a_device_vanishing_mid_pull_is_one_clean_line(device) -> None:
    running, dev = device
    remote = DEVICE_ROOT / "pulltest" / "out"
    dev.sync.push(bytes(400_000), str(remote / "Result_0" / "logits.raw"))
    running.set_faults(throttle_bps=100_000)  # the pull takes about 4 s: long enough to pull the plug
    box: dict[str, BaseException] = {}

    def pull() -> None:
        try:
            pull_files(dev, remote, ["Result_0/logits.raw"], Path(running.state) / "pulled")
        except DeviceError as exc:
            box["error"] = exc

    worker = threading.Thread(target=pull)
    worker.start()
    wait_until(lambda: any(e["event"] == "shell" and "cat" in e["command"] for e in running.events()),
               "the pull to start")
    os.kill(running.pid, signal.SIGKILL)
    worker.join(60)
    assert not worker.is_alive()
    error = box["error"]
    assert error.message == f"device {running.serial} stopped answering while pulling {remote}/Result_0/logits.raw"
    assert "Expected" not in str(error) and "sent is kept" not in str(error)
    assert "adb devices -l" in error.hint


def test_stale_run_folders_go_at_the_next_push(device) -> None:
    """A run whose device died leaves `runs/<run id>` behind: the next cleanup removes the run folders
    of the bundles it keeps (no run is under way while a deploy pushes), and nothing else."""
    _, dev = device
    for name, when in (("older", 1000.0), ("current", 2000.0)):
        mark_used(dev, name, when=when)
        dev.sync.push(b"model", str(bundle_dir(name) / "model" / "m.onnx"))
        dev.sync.push(b"\0" * 40, str(bundle_dir(name) / "runs" / "dead" / "run-1" / "Result_0" / "logits.raw"))
    assert cleanup_bundles(dev, protect=("current",)) == []
    left = dev.shell2(f"cd {DEVICE_ROOT} && find . -type f", v2=True).stdout.split()
    assert sorted(left) == ["./current/.last_used", "./current/model/m.onnx", "./older/.last_used",
                            "./older/model/m.onnx"]
