"""The device store and device sessions, through a real adb server and the emulated device: blobs shared
by every job, damaged or tampered files found and repaired, garbage collection by budget and last use,
leases held on the device itself, and the device vanishing mid-request."""

import json
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
from harness.lease import DeviceHolder
from harness.pipeline import Artifacts, Job, plan, prepare, run_job
from harness.report.results import PASSED
from harness.session import DeviceBusy
from harness.store import STORE_MTIME, PushInterrupted
from harness.transfer import DEVICE_ROOT, pull_files, shell_quote
from tests.conftest import wait_until
from tests.harness.conftest import CONFIG, open_session


@pytest.fixture
def jobs(deploy_env) -> list[Job]:
    return plan(load_config(CONFIG), load_profile("pixel"), runtimes=["cpu", "gpu", "gpu_fp16"])


@pytest.fixture
def art(jobs: list[Job]) -> Artifacts:
    return prepare(jobs[0])


def _store(running) -> Path:
    return running.sandbox_root / str(DEVICE_ROOT).lstrip("/")


def _with_changed_input(job: Job, folder: Path, name: str) -> Job:
    """The job after one validation input (`name`) was edited: its bundle gets a new id."""
    inputs = folder / "validation"
    shutil.copytree(job.model.input_list.parent, inputs)
    raw = inputs / name
    (np.fromfile(raw, dtype=np.float32) + 1.0).astype(np.float32).tofile(raw)
    return replace(job, model=replace(job.model, input_list=inputs / "input_list.txt"))


def test_jobs_share_blobs_and_a_changed_input_sends_only_that_file(adb_server, start_emulated, jobs, art,
                                                                  tmp_path: Path) -> None:
    running = start_emulated("pixel")
    old = art.bundle
    with open_session(adb_server, running) as session:
        first = session.install(old)
        blobs = {e["sha256"] for e in old.manifest} | {old.manifest_sha256}
        assert first.files_sent == len(blobs) and first.bytes_sent >= sum(e["size"] for e in old.manifest)
        changed = _with_changed_input(jobs[0], tmp_path / "one", "digit_005.raw")
        new = prepare(changed).bundle
        assert new.id != old.id
        fresh = [e for e in new.manifest if e["sha256"] not in blobs]
        assert [e["path"] for e in fresh] == ["inputs/5/digits.raw"]
        # "pushed" is what went over adb: the changed input and the job's manifest; the job runs.
        result = run_job(changed, session, work_dir=tmp_path / "run")
        assert result.status == PASSED, result.failure
        assert result.bytes_pushed == fresh[0]["size"] + new.manifest_size
        assert session.install(new).bytes_sent == 0
    store = _store(running)
    for entry in new.manifest:  # every job file is its blob (one inode), whole, with its mode
        held = store / "jobs" / new.id / entry["path"]
        assert held.read_bytes() == (new.path / entry["path"]).read_bytes()
        assert os.path.samefile(held, store / "blobs" / entry["sha256"])
        assert int(held.stat().st_mtime) == STORE_MTIME
    assert oct((store / "jobs" / new.id / "run.sh").stat().st_mode & 0o777) == "0o755"
    assert json.loads((store / "jobs" / new.id / "manifest.json").read_text())["id"] == new.id


def test_a_truncated_blob_and_a_tampered_run_script_are_found_and_pushed_again(adb_server, start_emulated,
                                                                               art, tmp_path: Path) -> None:
    running = start_emulated("pixel")
    b = art.bundle
    with open_session(adb_server, running) as session:
        session.install(b)
    job = f"{DEVICE_ROOT}/jobs/{b.id}"
    model, script = b.container_name, (b.path / "run.sh").read_text()
    tampered = script.replace("#!/system/bin/sh", "#!/system/bin/sh\nid;exit").ljust(len(script))[:len(script)]
    assert len(tampered) == len(script) and tampered != script
    device = session.device
    # written in place through the job's own paths (so into the blobs): a truncated model, and a run
    # script of the same size
    device.shell2(f"echo broken > {job}/{model}", v2=True)
    device.shell2(f"printf '%s' {shell_quote(tampered)} > {job}/run.sh", v2=True)
    # replaced by another file: the blob is intact, the job file is linked to it again
    device.sync.push(b"#tampered list\n", f"{job}/input_list.txt")
    held = _store(running) / "jobs" / b.id
    # and an input whose mtime alone changed (long ago: a change within the second the store is read
    # would be hashed again next time too): hashed on the device again, found intact, kept
    os.utime(held / "inputs/0/digits.raw", (1_500_000_000, 1_500_000_000))
    assert (held / "run.sh").read_text() == tampered
    with open_session(adb_server, running) as session:
        repaired = session.install(b)
        sizes = {e["path"]: e["size"] for e in b.manifest}
        assert repaired.bytes_sent == sizes[model] + sizes["run.sh"]
        assert repaired.files_sent == 2 and repaired.files_rehashed == 2  # run.sh and the touched input
        result = run_job(_cpu_job(), session, work_dir=tmp_path / "run", artifacts=art)
        assert result.status == PASSED, result.failure
    for name in (model, "run.sh", "input_list.txt"):
        assert (held / name).read_bytes() == (b.path / name).read_bytes()
    # the intact input was verified once: the next session trusts it by its stat again
    with open_session(adb_server, running) as session:
        again = session.install(b)
    assert again.bytes_sent == 0 and again.files_rehashed == 0


def _cpu_job() -> Job:
    return plan(load_config(CONFIG), load_profile("pixel"), runtimes=["cpu"])[0]


def test_gc_keeps_the_budget_by_last_use_and_never_what_the_session_uses(adb_server, start_emulated, jobs,
                                                                          monkeypatch) -> None:
    running = start_emulated("pixel")
    built = [prepare(job).bundle for job in jobs]
    store = _store(running)
    with open_session(adb_server, running) as session:
        for b in built:
            session.install(b)
    (store / "0123456789abcdef").mkdir()  # a bundle folder of an older edgeloop
    (store / "0123456789abcdef" / "run.sh").write_text("old")
    dead = store / "runs" / "deadbeef0000"
    (dead / "0-run-1").mkdir(parents=True)
    os.utime(dead, (1_000_000_000, 1_000_000_000))  # long ago: its session is over
    # gpu was used later than gpu_fp16: with a budget for little more than one job, gpu_fp16 goes first
    index = json.loads((store / "index.json").read_text())
    index["last_used"][built[1].id] += 10
    (store / "index.json").write_text(json.dumps(index))
    monkeypatch.setenv("EDGELOOP_STORE_BUDGET_MB", str(_blob_bytes(built[:2]) / 2**20))
    with open_session(adb_server, running) as session:
        assert session.install(built[0]).bytes_sent == 0
    assert sorted(p.name for p in (store / "jobs").iterdir()) == sorted([built[0].id, built[1].id])
    live = {e["sha256"] for b in built[:2] for e in b.manifest} | {b.manifest_sha256 for b in built[:2]}
    assert {p.name for p in (store / "blobs").iterdir()} == live
    assert sorted(p.name for p in store.iterdir()) == ["blobs", "index.json", "jobs", "runs"]
    assert list((store / "runs").iterdir()) == []
    # a budget smaller than the session's own job never removes it
    monkeypatch.setenv("EDGELOOP_STORE_BUDGET_MB", "0")
    with open_session(adb_server, running) as session:
        session.install(built[0])
    assert [p.name for p in (store / "jobs").iterdir()] == [built[0].id]


def _blob_bytes(bundles) -> int:
    """The store space the bundles' blobs take together (each distinct file once)."""
    sizes = {e["sha256"]: e["size"] for b in bundles for e in b.manifest}
    return sum(sizes.values()) + sum({b.manifest_sha256: b.manifest_size for b in bundles}.values())


def test_a_second_session_waits_for_the_lease_or_gives_up_naming_the_holder(adb_server, start_emulated) -> None:
    running = start_emulated("pixel")
    seen: list[DeviceHolder] = []
    with open_session(adb_server, running, job="first"):
        busy = pytest.raises(DeviceBusy, match=r"stayed leased by pid \d+ on .*job 'first'")
        with busy as info, open_session(adb_server, running, job="second", lease_timeout=0.6, on_wait=seen.append):
            pass
        assert "--lease-timeout" in info.value.hint and seen and seen[0].job == "first"
        box: dict[str, float] = {}

        def second() -> None:
            with open_session(adb_server, running, job="second", lease_timeout=30) as session:
                box["got"] = session.store.now

        waiter = threading.Thread(target=second)
        waiter.start()
        wait_until(lambda: any("lease" in e.get("command", "") and "second" in e.get("command", "")
                               for e in running.events()), "the second session to ask")
        assert "got" not in box
    waiter.join(30)
    assert "got" in box  # it took the device as soon as the first session ended
    assert not (_store(running) / "lease").exists()


def test_a_lease_whose_holder_stopped_renewing_it_is_taken_over(adb_server, start_emulated) -> None:
    """A holder on another host that crashed: its record names a TTL it no longer renews."""
    running = start_emulated("pixel")
    lease = _store(running) / "lease"
    lease.mkdir(parents=True)
    record = {"token": "t0", "host": "elsewhere", "pid": 1, "job": "crashed farm run", "ttl_s": 5}
    (lease / "owner").write_text(json.dumps(record) + "\n")
    os.utime(lease, (1_000_000_000, 1_000_000_000))
    with open_session(adb_server, running, lease_timeout=5) as session:
        assert json.loads((lease / "owner").read_text())["token"] == session.lease.token
    # a live one is not: renewed just now by a holder elsewhere
    lease.mkdir()
    (lease / "owner").write_text(json.dumps(record | {"ttl_s": 600}) + "\n")
    with pytest.raises(DeviceBusy, match="crashed farm run"), open_session(adb_server, running, lease_timeout=0.3):
        pass


def test_a_push_cut_off_says_how_many_bytes_went_through(adb_server, start_emulated, art) -> None:
    running = start_emulated("pixel")
    b = art.bundle
    running.set_faults(drop_after_bytes=12_000, drop_once=True)
    with open_session(adb_server, running) as session, pytest.raises(PushInterrupted) as info:
        session.install(b)
    error = info.value
    assert isinstance(error, DeviceError)
    assert error.message.startswith(f"device {running.serial} stopped answering while pushing ")
    assert "Expected" not in str(error) and "Errno" not in str(error)
    assert error.hint.endswith("what was already sent is kept")
    blobs = _store(running) / "blobs"
    whole = sum(e["size"] for e in {e["sha256"]: e for e in b.manifest}.values()
                if (blobs / f".tmp-{e['sha256']}").is_file()
                and (blobs / f".tmp-{e['sha256']}").read_bytes() == (b.path / e["path"]).read_bytes())
    assert whole > 0 and error.bytes_sent >= whole
    assert error.bytes_sent < sum(e["size"] for e in b.manifest)


def test_a_device_vanishing_mid_pull_is_one_clean_line(adb_server, start_emulated) -> None:
    running = start_emulated("pixel")
    with open_session(adb_server, running) as session:
        dev = session.device
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


def test_a_session_whose_lease_was_taken_over_stops(adb_server, start_emulated, art, monkeypatch) -> None:
    """A holder that stopped renewing (its host was cut off) finds, at its next renewal, that another
    host took the device: its next request is an error instead of running beside the new holder."""
    from harness import lease as lease_module

    monkeypatch.setattr(lease_module, "HEARTBEAT_S", 0.05)
    running = start_emulated("pixel")
    owner = _store(running) / "lease" / "owner"
    with open_session(adb_server, running) as session:
        owner.write_text(json.dumps({"token": "other", "host": "elsewhere", "pid": 1, "job": "farm b",
                                     "ttl_s": 60}) + "\n")
        wait_until(lambda: session.lease.lost, "the renewal to notice")
        with pytest.raises(DeviceError, match="another host took over this session's lease"):
            session.install(art.bundle)
    assert json.loads(owner.read_text())["job"] == "farm b"  # closing did not free the other's lease
