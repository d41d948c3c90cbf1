"""Farm faults with trivial jobs (one shell round trip each): an adb server that goes away, a job
that hangs, a device another run holds past its lease, bad inventory and matrix files."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from deploy.errors import EdgeloopError
from harness.devices import DEVICE_FAILURES, AdbServer
from harness.farm import farm_run, load_matrix
from harness.inventory import load_inventory
from harness.lease import LeaseBook
from tests.farm.farm_helpers import (
    assert_no_overlap,
    echo_job,
    tasks,
    write_config,
    write_inventory,
    write_matrix,
)

pytestmark = pytest.mark.e2e


def test_jobs_move_off_an_adb_server_that_goes_away(tmp_path: Path, adb_server, second_adb_server,
                                                    start_emulated) -> None:
    near, far = start_emulated("pixel", connect=False), start_emulated("pixel", connect=False)
    inventory = write_inventory(tmp_path / "farm.yaml", {adb_server.port: [near.serial],
                                                         second_adb_server.port: [far.serial]})
    matrix = write_matrix(tmp_path / "matrix.yaml", profiles=["pixel"], timeout_s=30)
    killed = threading.Event()

    def execute(task, device, attempt):
        if device.serial == far.serial and not killed.is_set():
            killed.set()
            second_adb_server.run("kill-server")  # the far host's adb server dies under a running job
        return echo_job(task, device, attempt)

    run = farm_run(inventory, matrix, tasks=tasks(6), execute=execute, out_dir=tmp_path / "r",
                   lock_dir=tmp_path / "locks")
    assert killed.is_set()
    assert [o.status for o in run.outcomes] == ["passed"] * 6 and run.passed
    assert {o.device.serial for o in run.outcomes} == {near.serial}
    moved = [o for o in run.outcomes if o.retried]
    assert len(moved) == 1 and [a.outcome for a in moved[0].attempts] == ["lost", "passed"]
    assert "adb says server-down" in moved[0].attempts[0].detail
    assert [e["kind"] for e in run.events].count("server-down") == 1

    # The farm without that host, against the first run as baseline: unchanged jobs pass, a job
    # that no longer ran is a regression, and the dead server is listed as unreachable.
    again = farm_run(inventory, matrix, tasks=tasks(6), execute=echo_job, out_dir=tmp_path / "r2",
                     lock_dir=tmp_path / "locks", baseline=run.paths.json)
    assert again.passed and not again.baseline.regressed and again.baseline.compared == 6
    assert list(again.discovery.unreachable) == [f"127.0.0.1:{second_adb_server.port}"]
    fewer = farm_run(inventory, matrix, tasks=tasks(5), execute=echo_job, out_dir=tmp_path / "r3",
                     lock_dir=tmp_path / "locks", baseline=run.paths.json)
    assert not fewer.passed and [(f.job, f.kind) for f in fewer.baseline.regressions] == [("m5/pixel/cpu", "missing")]
    assert "Against the baseline" in fewer.paths.html.read_text()


def test_two_concurrent_farm_runs_share_devices_one_job_at_a_time(tmp_path: Path, adb_server,
                                                                   start_emulated) -> None:
    devices = [start_emulated("pixel", connect=False) for _ in range(2)]
    inventory = write_inventory(tmp_path / "farm.yaml", {adb_server.port: [d.serial for d in devices]})
    matrix = write_matrix(tmp_path / "matrix.yaml", profiles=["pixel"], timeout_s=30)

    def busy_job(task, device, attempt):
        for _ in range(4):  # a few real round trips, so that two runs would collide without leases
            echo_job(task, device, attempt)
        return echo_job(task, device, attempt)

    runs = {}

    def farm(name: str) -> None:
        runs[name] = farm_run(inventory, matrix, tasks=tasks(6, model=name), execute=busy_job,
                              out_dir=tmp_path / name, lock_dir=tmp_path / "locks")

    threads = [threading.Thread(target=farm, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert runs["a"].passed and runs["b"].passed
    per_device: dict[str, list[tuple[float, float]]] = {}
    for run in runs.values():
        for outcome in run.outcomes:
            for a in outcome.attempts:
                per_device.setdefault(a.device, []).append((a.started, a.started + a.seconds))
    assert len(per_device) == 2 and sum(len(v) for v in per_device.values()) == 12
    for name, intervals in per_device.items():
        assert_no_overlap(intervals, name)


def test_retries_are_bounded_and_nothing_is_double_counted(tmp_path: Path, adb_server, start_emulated) -> None:
    """Every device dies under its first job: each job gets at most max_tries devices, each device
    is tried once, and every job ends exactly once, as lost."""
    devices = {d.serial: d for d in (start_emulated("pixel", connect=False) for _ in range(3))}
    inventory = write_inventory(tmp_path / "farm.yaml", {adb_server.port: list(devices)})
    matrix = write_matrix(tmp_path / "matrix.yaml", profiles=["pixel"], timeout_s=30, max_tries=2)

    def execute(task, device, attempt):
        devices[device.serial].stop()  # unplugged as the job starts
        return echo_job(task, device, attempt)

    run = farm_run(inventory, matrix, tasks=tasks(2), execute=execute, out_dir=tmp_path / "r",
                   lock_dir=tmp_path / "locks")
    assert [o.status for o in run.outcomes] == ["lost", "lost"] and not run.passed
    attempts = [a for o in run.outcomes for a in o.attempts]
    assert all(a.outcome == "lost" for a in attempts) and all(len(o.attempts) <= 2 for o in run.outcomes)
    assert sorted(a.device.split("@")[0] for a in attempts) == sorted(devices), "each device tried exactly once"
    assert all("lost" in o.detail or "no other pixel device" in o.detail for o in run.outcomes)


def test_a_device_that_refuses_but_still_answers_has_its_jobs_retried_elsewhere(tmp_path: Path, adb_server,
                                                                                 start_emulated) -> None:
    """Full storage: pushes are refused (a DeviceError) though the device answers every probe. Its
    jobs move to the other device, the refusing one stays in the farm, and junit.xml shows the retries."""
    good, full = start_emulated("pixel", connect=False), start_emulated("pixel", connect=False)
    full.set_faults(storage_full=True)
    inventory = write_inventory(tmp_path / "farm.yaml", {adb_server.port: [good.serial, full.serial]})
    matrix = write_matrix(tmp_path / "matrix.yaml", profiles=["pixel"], timeout_s=30)

    def push_then_echo(task, device, attempt):
        """As run_job does: a DeviceError becomes an error result marked as the device's fault."""
        import io

        from deploy.errors import DeviceError
        from harness.report.results import ERROR, JobResult
        from harness.transfer import DEVICE_ROOT, send_file, vanished

        try:
            try:
                send_file(device.adb(), io.BytesIO(b"x"), DEVICE_ROOT / "farm-test")
            except DEVICE_FAILURES as exc:
                raise vanished(device.adb(), "pushing farm-test", exc) from None
        except DeviceError as exc:
            return JobResult(model=task.model, runtime=task.runtime, profile=task.profile, device=device.serial,
                             status=ERROR, failure=str(exc), device_fault=True)
        return echo_job(task, device, attempt)

    run = farm_run(inventory, matrix, tasks=tasks(4), execute=push_then_echo, out_dir=tmp_path / "r",
                   lock_dir=tmp_path / "locks")
    assert run.passed and {o.device.serial for o in run.outcomes} == {good.serial}
    moved = [o for o in run.outcomes if o.retried]
    assert moved, "the refusing device took no job"
    for outcome in moved:
        assert [(a.device.split("@")[0], a.outcome) for a in outcome.attempts] == [(full.serial, "lost"),
                                                                                   (good.serial, "passed")]
        assert "No space left on device" in outcome.attempts[0].detail
    retired = [e["device"] for e in run.events if e["kind"] == "device-retired" and e["detail"]]
    assert not any(d.startswith(full.serial) for d in retired), "a device that answers is not retired"
    suite = ET.parse(run.paths.deploy.junit).getroot()
    cases = {case.get("classname").split(".")[0]: case for case in suite.iter("testcase")}
    for outcome in moved:
        case = cases[outcome.task.model]
        properties = {p.get("name"): p.get("value") for p in case.iter("property")}
        assert properties == {"attempts": "2", "retried": "true"}
        out = case.findtext("system-out")
        assert f"attempt 1 on {full.serial}" in out and "No space" in out


def test_a_dead_host_or_phone_hides_nothing_and_starts_no_adb_server(tmp_path: Path, adb_server, start_emulated,
                                                                      monkeypatch) -> None:
    """A farm host whose adb server is gone is unreachable; a network phone that does not answer
    `adb connect` is listed as not connected, without hiding the other devices of its host. Neither
    makes adbutils start an adb server of its own (it would, on $ANDROID_ADB_SERVER_PORT or 5037)."""
    from harness.devices import AdbServer
    from harness.inventory import FarmDevice, device_state, discover
    from tests.conftest import ADB36, free_port

    sentinel, dead_host, dead_phone = free_port(), free_port(), free_port()
    monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", str(sentinel))
    device = start_emulated("pixel", connect=False)
    inventory = write_inventory(tmp_path / "farm.yaml", {adb_server.port: [f"127.0.0.1:{dead_phone}", device.serial],
                                                         dead_host: []})
    try:
        found = discover(load_inventory(inventory), ["pixel"])
        assert device.serial in [d.serial for d in found.devices]
        assert list(found.unreachable) == [f"127.0.0.1:{dead_host}"]
        assert any(u.startswith(f"127.0.0.1:{dead_phone}@") and "not connected" in u for u in found.unmatched)
        assert device_state(FarmDevice(AdbServer("127.0.0.1", dead_host), "x", ("pixel",))) == "server-down"
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", sentinel)) != 0, "an adb server was started behind our back"
    finally:
        subprocess.run([ADB36, "-P", str(sentinel), "kill-server"], capture_output=True, timeout=30)


def test_hung_job_and_device_held_past_its_lease(tmp_path: Path, adb_server, start_emulated) -> None:
    free, held = start_emulated("pixel", connect=False), start_emulated("pixel", connect=False)
    inventory = write_inventory(tmp_path / "farm.yaml", {adb_server.port: [free.serial, held.serial]})
    matrix = write_matrix(tmp_path / "matrix.yaml", profiles=["pixel"], timeout_s=2)
    book = LeaseBook(tmp_path / "locks")
    devices = {d.serial: d for d in farm_devices(inventory)}
    other_run = book.try_acquire(devices[held.serial].key, "another farm run", lease_s=0.01)
    release = threading.Event()
    jobs = tasks(4)

    def execute(task, device, attempt):
        if task.id == jobs[-1].id:
            release.wait(60)  # never answers within the job timeout
        return echo_job(task, device, attempt)

    try:
        run = farm_run(inventory, matrix, tasks=jobs, execute=execute, out_dir=tmp_path / "r",
                       lock_dir=tmp_path / "locks", lease_wait_s=1.0)
    finally:
        release.set()
        other_run.release()
    assert [o.status for o in run.outcomes] == ["passed", "passed", "passed", "timeout"] and not run.passed
    assert {o.device.serial for o in run.outcomes} == {free.serial}
    assert "job hung" in run.outcomes[-1].detail
    busy = [e for e in run.events if e["kind"] == "busy-past-lease"]
    assert busy and "another farm run" in busy[0]["detail"] and busy[0]["device"].startswith(held.serial)
    retired = {e["device"].split("@")[0]: e["detail"] for e in run.events if e["kind"] == "device-retired"}
    assert "hung" in retired[free.serial]
    farm = json.loads(run.paths.json.read_text())
    assert farm["verdict"] == "failed" and farm["summary"]["timeout"] == 1


def farm_devices(inventory: Path) -> list:
    from harness.inventory import discover

    return discover(load_inventory(inventory), ["pixel"]).devices


@pytest.mark.parametrize(("load", "text", "message"), [
    (load_inventory, "servers: []", "at least one adb server"),
    (load_inventory, "servers: [nohost]", ":1: servers[0]: 'nohost' is not host:port"),
    (load_inventory, "servers: ['127.0.0.1:99999']", "is not host:port"),
    (load_inventory, "servers: [{address: '127.0.0.1:5037', conect: []}]",
     ":1: servers[0].conect: unknown key (did you mean 'connect'?"),
    (load_inventory, "servers: ['127.0.0.1:5037']\ndevices: {X: {labels: fast}}",
     ":2: devices.X.labels: must be a list, got 'fast'"),
    (load_inventory, "servers: ['127.0.0.1:5037']\ndevices: {X: {profile: nokia}}",
     ":2: devices.X.profile: unknown device profile 'nokia'"),
    (load_inventory, "servers: [", "not valid YAML"),
    (load_inventory, "- a list", ":1: must be a mapping, got a list"),
    (load_matrix, "models: [digits]", ":1: missing required key 'profiles'"),
    (load_matrix, "profiles: [pixel, nokia]", "unknown device profile 'nokia'"),
    (load_matrix, "profiles: [my/phone.yaml]", "'my/phone.yaml' is a file; the matrix names profiles (put the YAML"),
    (load_matrix, "profiles: [pixel]\nruns: 0", ":2: runs: must be an integer of at least 1, got 0"),
    (load_matrix, "profiles: [pixel]\nruns: .inf", ":2: runs: must be an integer, got inf"),
    (load_matrix, "profiles: [pixel]\ntimeout: 5", ":2: timeout: unknown key (did you mean 'timeout_s'?"),
    (load_matrix, "profiles: pixel", ":1: profiles: must be a list, got 'pixel'"),
    (load_matrix, "profiles: []", ":1: profiles: must not be empty"),
    (load_matrix, "profiles: [pixel", "not valid YAML"),
])
def test_inventory_and_matrix_errors_name_the_file_and_the_problem(tmp_path: Path, load, text: str,
                                                                   message: str) -> None:
    path = tmp_path / "farm.yaml"
    path.write_text(text)
    with pytest.raises(EdgeloopError) as caught:
        load(path)
    assert message in str(caught.value) and str(path) in str(caught.value)


def test_unreachable_farm_is_one_clear_line(tmp_path: Path) -> None:
    from tests.conftest import free_port

    inventory = write_inventory(tmp_path / "farm.yaml", {free_port(): []})
    write_config(tmp_path / "edgeloop.yaml")
    matrix = write_matrix(tmp_path / "matrix.yaml", profiles=["pixel"])
    result = subprocess.run([str(Path(sys.executable).parent / "edgeloop"), "farm.run",
                             "--inventory", str(inventory), "--matrix", str(matrix)],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 2 and "no adb server of" in result.stderr and "Traceback" not in result.stderr


def test_jobs_go_only_to_devices_with_their_profile_and_labels() -> None:
    from harness.devices import AdbServer
    from harness.inventory import FarmDevice
    from harness.scheduler import Task

    server = AdbServer("127.0.0.1", 5999)
    pixel_rack = FarmDevice(server, "a", ("pixel", "generic-arm64"), ("rack-a", "cool"))
    pixel = FarmDevice(server, "b", ("pixel", "generic-arm64"))
    galaxy = FarmDevice(server, "c", ("galaxy-s23", "generic-arm64"), ("rack-a",))
    job = Task("m/pixel/cpu", "pixel", labels=("rack-a",))
    assert [d.serial for d in (pixel_rack, pixel, galaxy) if job.fits(d)] == ["a"]
    generic = Task("m/generic-arm64/cpu", "generic-arm64")
    assert all(generic.fits(d) for d in (pixel_rack, pixel, galaxy))


def test_a_probe_raising_eof_is_a_job_error_in_the_report(tmp_path: Path, adb_server, start_emulated,
                                                          monkeypatch) -> None:
    """adbutils raises EOFError when a server half-closes a connection. Raised by a job and then by the
    probe that follows it, it used to end the device's worker and the run (KeyError, no report)."""
    import adbutils

    device = start_emulated("pixel", connect=False)
    inventory = write_inventory(tmp_path / "farm.yaml", {adb_server.port: [device.serial]})
    matrix = write_matrix(tmp_path / "matrix.yaml", profiles=["pixel"], timeout_s=30)
    shell2 = adbutils.AdbDevice.shell2

    def half_closed(self, command, *args, **kwargs):
        if command == "echo ok":  # the scheduler's probe
            raise EOFError("Expected 4 bytes, got 0")
        return shell2(self, command, *args, **kwargs)

    def job(task, farm_device, attempt):
        raise EOFError("Expected 4 bytes, got 0")

    monkeypatch.setattr(adbutils.AdbDevice, "shell2", half_closed)
    run = farm_run(inventory, matrix, tasks=tasks(2), execute=job, out_dir=tmp_path / "r", lock_dir=tmp_path / "l")
    assert not run.passed and [o.status for o in run.outcomes] == ["lost", "no-device"]
    assert "EOFError" in run.outcomes[0].attempts[0].detail
    report = json.loads(run.paths.json.read_text())
    assert [j["status"] for j in report["jobs"]] == ["lost", "no-device"]


def test_a_worker_that_fails_ends_its_job_as_an_error_and_the_run_goes_on() -> None:
    """Whatever escapes a worker (here: the probe itself), its job ends with a reason and run() returns."""
    from harness.inventory import FarmDevice
    from harness.scheduler import Scheduler

    devices = [FarmDevice(AdbServer("127.0.0.1", 1), "emulator-5554", ("pixel",), ("this-test",))]

    def probe(device):
        raise KeyError("t0")

    def broken_event(event):
        if event["kind"] == "probe-error":
            raise RuntimeError("a reporting hook that breaks")

    scheduler = Scheduler(devices, lambda task, device, attempt: None, passed=lambda r: False,
                          leases=LeaseBook(), probe=probe, on_event=broken_event)
    outcomes = scheduler.run(tasks(2))
    assert [o.status for o in outcomes] == ["error", "no-device"]
    assert "scheduler error" in outcomes[0].detail and "a reporting hook that breaks" in outcomes[0].detail
