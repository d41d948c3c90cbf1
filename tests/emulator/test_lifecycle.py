"""Background device processes: start, list, stop, the registry, faults while running, the CLI."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import adbutils
import pytest

from deploy.container import write_meta
from deploy.errors import DeviceError, EdgeloopError
from deploy.profiles import load_profile
from emulator.device import EmulatedDevice, Faults
from emulator.lifecycle import (
    STOP_TIMEOUT_S,
    RunningDevice,
    emulated_device,
    list_devices,
    start_device,
    stop_all,
    stop_device,
)
from tests.conftest import wait_until
from tests.deploy.models import conv_net
from tests.emulator.test_netrun import feeds_for, meta_for

REPO = Path(__file__).resolve().parents[2]


def wait_gone(pid: int, timeout: float = 10) -> bool:
    """Wait for a process that is not our child to end (a pidfd is readable once it has exited)."""
    import select

    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([fd], [], [], timeout)[0])
    finally:
        os.close(fd)


def test_start_list_stop(tmp_path: Path) -> None:
    first = start_device("pixel", home=tmp_path, exit_with_parent=True)
    second = start_device("pixel", home=tmp_path, exit_with_parent=True)
    try:
        assert (first.name, second.name) == ("pixel", "pixel-2")
        assert first.port != second.port
        assert {d.name: d.serial for d in list_devices(tmp_path)} == {"pixel": first.serial, "pixel-2": second.serial}
        with pytest.raises(EdgeloopError, match="already running"):
            start_device("pixel4", name="pixel", home=tmp_path)
        with pytest.raises(EdgeloopError, match="no running emulated device"):
            stop_device("nope", home=tmp_path)
        with socket.create_connection(("127.0.0.1", first.port), timeout=5):
            pass
        stop_device("pixel", home=tmp_path)
        assert not first.alive()
        assert [d.name for d in list_devices(tmp_path)] == ["pixel-2"]
    finally:
        assert stop_all(tmp_path) == ["pixel-2"]
    assert not second.alive()
    assert list_devices(tmp_path) == []
    assert [e["event"] for e in first.events()][-1] == "stopped"


def test_sandbox_survives_a_restart(tmp_path: Path) -> None:
    with emulated_device("generic-arm64", name="keep", home=tmp_path) as device:
        (device.sandbox_root / "sdcard/kept.txt").write_text("still here")
    with emulated_device("generic-arm64", name="keep", home=tmp_path) as again:
        assert (again.sandbox_root / "sdcard/kept.txt").read_text() == "still here"
    assert not again.alive()


def test_a_killed_device_leaves_the_registry(tmp_path: Path) -> None:
    device = start_device("pixel", home=tmp_path, exit_with_parent=True)
    os.kill(device.pid, signal.SIGKILL)
    assert wait_gone(device.pid)
    assert list_devices(tmp_path) == []
    assert not (device.state / "device.json").exists()
    device.stop()  # idempotent on a dead device


def test_port_out_of_range_is_a_user_error(tmp_path: Path) -> None:
    for port, adb_port, said in ((70000, None, r"invalid port 70000 \(a TCP port is 1-65535; leave --port out"),
                                 (None, 0, r"invalid adb port 0 \(a TCP port is 1-65535\)$")):
        with pytest.raises(EdgeloopError, match=said):
            start_device("pixel", port=port, adb_port=adb_port, home=tmp_path)
    assert list_devices(tmp_path) == []


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(DeviceError, match=rf"did not start: error: cannot listen on 127.0.0.1:{port}"):
            start_device("pixel", port=port, home=tmp_path)
    assert list_devices(tmp_path) == []


def test_failed_adb_connect_stops_the_new_device(tmp_path: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # nothing listens here
    with pytest.raises(DeviceError, match=f"adb server on port {port} cannot connect"):
        start_device("pixel", home=tmp_path, adb_port=port)
    assert list_devices(tmp_path) == []


def test_device_exits_with_the_process_that_started_it(tmp_path: Path) -> None:
    script = (
        "from pathlib import Path; from emulator.lifecycle import start_device; "
        f"print(start_device('pixel', home=Path({str(tmp_path)!r}), exit_with_parent=True).pid)"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, check=True, timeout=60, cwd=REPO)
    pid = int(out.stdout)
    assert wait_gone(pid), "the device outlived its parent"


def test_faults_change_while_running(adb_server, start_emulated, tmp_path: Path) -> None:
    device = start_emulated("pixel")
    client = adb_server.client.device(device.serial)
    payload = tmp_path / "payload"
    payload.write_bytes(os.urandom(3 * 1024 * 1024))

    device.set_faults(storage_full=True)
    with pytest.raises(adbutils.AdbError):
        client.sync.push(payload, "/sdcard/full.bin")
    assert [e["error"] for e in device.events() if e["event"] == "push-failed"] == ["No space left on device"]
    device.set_faults(storage_full=False, throttle_bps=2_000_000)
    started = time.monotonic()
    client.sync.push(payload, "/sdcard/slow.bin")
    throttled = time.monotonic() - started
    device.set_faults(throttle_bps=None)
    started = time.monotonic()
    client.sync.push(payload, "/sdcard/fast.bin")
    fast = time.monotonic() - started
    assert throttled >= 1.2  # 3 MiB at 2 MB/s is 1.57 s
    assert fast < throttled / 2
    assert not (device.sandbox_root / "sdcard/full.bin").exists()
    changes = [e for e in device.events() if e["event"] == "faults"]
    assert changes[0].get("storage_full") is True and changes[1].get("throttle_bps") == 2_000_000


def test_fault_values_are_validated() -> None:
    assert Faults.from_mapping({"drop-after-bytes": "100", "storage_full": "yes"}) == Faults(
        drop_after_bytes=100, storage_full=True
    )
    for bad in ({"drop_after_bytes": "-3"}, {"throttle_bps": "fast"}, {"storage_full": "maybe"}, {"wobble": 1}):
        with pytest.raises(EdgeloopError):
            Faults.from_mapping(bad)


def test_event_log_is_whole_json_lines_under_concurrency(tmp_path: Path) -> None:
    device = EmulatedDevice(
        load_profile("pixel"), name="log", port=1, sandbox_root=tmp_path / "sb", log_path=tmp_path / "log.jsonl"
    )
    threads = [
        threading.Thread(target=lambda k=k: [device.log("tick", worker=k, i=i) for i in range(500)]) for k in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    device.close()
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert len(records) == 8 * 500
    assert all({"t", "wall", "device", "event"} <= record.keys() for record in records)
    for k in range(8):
        ticks = [r["t"] for r in records if r.get("worker") == k]
        assert ticks == sorted(ticks)


def test_cli_start_list_fault_stop(tmp_path: Path) -> None:
    env = {**os.environ, "EDGELOOP_HOME": str(tmp_path)}

    def edgeloop(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "invoke", *args], env=env, capture_output=True, text=True, timeout=60, cwd=REPO
        )

    started = edgeloop("emulator.start", "--profile", "pixel4", "--name", "cli", "--fault", "throttle_bps=5000000")
    assert started.returncode == 0, started.stderr
    [device] = list_devices(tmp_path)
    try:
        assert started.stdout.strip() == device.serial
        assert device.faults.throttle_bps == 5_000_000
        listed = edgeloop("emulator.list")
        assert "cli" in listed.stdout and "pixel4" in listed.stdout
        changed = edgeloop("emulator.fault", "cli", "--clear", "--set", "netrun_crash")
        assert changed.returncode == 0, changed.stderr
        assert device.faults == Faults(netrun_crash=True)
        not_a_port = edgeloop("emulator.start", "--port", "abc")
        assert not_a_port.returncode == 2 and "--port expects a number" in not_a_port.stderr
        assert "Traceback" not in not_a_port.stderr
        helped = edgeloop("emulator.fault", "--help")  # not taken for a device named '--help'
        assert helped.returncode == 0 and "--set" in helped.stdout and "--clear" in helped.stdout
        bad = edgeloop("emulator.fault", "cli", "--set", "bogus=1")
        assert bad.returncode == 2 and "unknown fault 'bogus'" in bad.stderr and "Traceback" not in bad.stderr
        again = edgeloop("emulator.start", "--profile", "pixel4", "--name", "cli")
        assert again.returncode == 2 and "already running" in again.stderr
        hint = re.search(r"invoke (emulator\.stop [^)]*)", again.stderr)
        assert hint, again.stderr
        assert edgeloop(*hint[1].split()).returncode == 0  # the hint's command works as printed
        assert not device.alive()
        assert "no running emulated device named 'cli'" in edgeloop("emulator.fault", "cli", "--set", "x").stderr
    finally:
        device.stop()


def test_stop_disconnects_it_from_the_adb_servers_it_was_connected_to(adb_server, new_adb_server,
                                                                      tmp_path: Path) -> None:
    """Else adb lists a stopped device as `offline` until someone runs `adb disconnect`."""
    with new_adb_server() as other:
        device = start_device("pixel", home=tmp_path, exit_with_parent=True, adb_port=adb_server.port)
        device.connect(other.port)
        listed = [server.run("devices").stdout.decode() for server in (adb_server, other)]
        assert all(f"{device.serial}\tdevice" in text for text in listed)
        stop_device(device.name, home=tmp_path)  # as `invoke emulator.stop` does, from the registry
        for server in (adb_server, other):
            assert device.serial not in server.run("devices").stdout.decode()
    device.stop()  # again, with one of the servers gone: nothing left to do, no error


def test_stop_cancels_a_hung_net_run_promptly(adb_server, start_emulated) -> None:
    """SIGTERM ends the device's connections, which cancels what they run: no wait for the SIGKILL deadline."""
    model = conv_net()
    write_meta(model, meta_for(model))
    [(name, array)] = feeds_for(model, 1)[0].items()
    device = start_emulated("pixel", faults=Faults(netrun_hang=True))
    client = adb_server.client.device(device.serial)
    client.sync.push(model.SerializeToString(), "/data/local/tmp/hang/m.onnx")
    client.sync.push(array.tobytes(), "/data/local/tmp/hang/in.raw")
    client.sync.push(f"{name}:=in.raw\n".encode(), "/data/local/tmp/hang/list.txt")
    command = "cd /data/local/tmp/hang && edgeloop-net-run --container m.onnx --input_list list.txt"

    def run() -> None:
        with contextlib.suppress(adbutils.AdbError, EOFError, OSError):  # the device goes away under it
            client.shell2(command, v2=True)

    threading.Thread(target=run, daemon=True).start()
    wait_until(lambda: any(e["event"] == "netrun.start" for e in device.events()), "net-run to start")
    started = time.monotonic()
    device.stop()
    assert time.monotonic() - started < STOP_TIMEOUT_S / 2
    ends = [e for e in device.events() if e["event"] in ("netrun.end", "shell-end")]
    assert [e["event"] for e in ends] == ["netrun.end", "shell-end"] and ends[0]["rc"] == 130 and ends[1]["cancelled"]


def test_stop_signals_wait_for_the_main_thread(tmp_path: Path) -> None:
    """A SIGTERM the kernel hands to a helper thread would leave the device serving until the SIGKILL
    deadline: every thread of the device process blocks it, and the main thread takes it with sigwait."""
    with emulated_device("generic-arm64", home=tmp_path) as device:  # exit_with_parent: a helper thread too
        helpers = [t for t in Path(f"/proc/{device.pid}/task").iterdir() if t.name != str(device.pid)]
        blocked = [int(re.search(r"SigBlk:\s*([0-9a-f]+)", (t / "status").read_text())[1], 16) for t in helpers]
        assert len(helpers) >= 2  # the accept loop, the parent watcher (and numpy's threads)
        assert all(mask & (1 << (signal.SIGTERM - 1)) for mask in blocked)  # the main thread sigwaits for it
        os.kill(device.pid, signal.SIGTERM)
        assert wait_gone(device.pid, STOP_TIMEOUT_S / 2)
        assert device.events()[-1]["event"] == "stopped"  # a clean stop, not the SIGKILL


def test_events_leave_a_line_being_written(tmp_path: Path) -> None:
    """Tests poll the log while the device appends to it: a half-written last line is not an error."""
    device = RunningDevice("half", "pixel", 1, os.getpid(), tmp_path)
    (tmp_path / "device.log").write_text('{"event": "listening"}\n{"event": "conn')
    assert device.events() == [{"event": "listening"}]


def test_device_whose_parent_is_already_gone_stops(tmp_path: Path) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    command = [sys.executable, "-m", "emulator", "--profile", "pixel", "--name", "orphan",
               "--state", str(tmp_path / "orphan"), "--parent-pid", str(gone.pid)]
    ended = subprocess.run(command, capture_output=True, timeout=30, cwd=REPO)
    assert ended.returncode == 0 and b'"ready": true' in ended.stdout
    assert not (tmp_path / "orphan" / "device.json").exists()


def test_a_stale_record_whose_pid_was_reused_is_not_a_device(tmp_path: Path) -> None:
    """After a reboot a dead device's pid may be some other process: never listed, never signalled."""
    other = subprocess.Popen(["sleep", "60"])
    try:
        state = tmp_path / "emulators" / "ghost"
        state.mkdir(parents=True)
        (state / "device.json").write_text(json.dumps(
            {"name": "ghost", "profile": "pixel", "port": 1, "pid": other.pid, "state": str(state)}))
        ghost = RunningDevice("ghost", "pixel", 1, other.pid, state)
        assert not ghost.alive()
        ghost.stop()
        assert other.poll() is None  # not signalled
        assert list_devices(tmp_path) == [] and not (state / "device.json").exists()
        with pytest.raises(EdgeloopError, match="no running emulated device named 'ghost'"):
            stop_device("ghost", home=tmp_path)
    finally:
        other.kill()
        other.wait()
