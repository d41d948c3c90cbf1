"""The emulated device through real adb servers and clients (adb 36 and Debian's adb 29, adbutils):
identity, push/pull, folders, escape attempts, quota, dropped connections, several devices."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import pytest

from deploy.errors import DeviceError
from deploy.fsutil import sha256_file
from deploy.profiles import load_profile
from emulator.device import Faults
from emulator.lifecycle import RunningDevice
from tests.conftest import wait_until

MB = 1024 * 1024


@pytest.fixture(scope="session")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("big") / "big.bin"
    data = os.urandom(50 * MB)
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


def adb_label(value: str) -> str:
    """How `adb devices -l` prints a banner value: anything but letters and digits becomes '_'."""
    return re.sub(r"[^A-Za-z0-9]", "_", value)


def sandbox_file(device: RunningDevice, device_path: str) -> Path:
    return device.sandbox_root / device_path.lstrip("/")


def test_devices_lists_the_profile_identity(server, emulated_pixel: RunningDevice) -> None:
    out = server.run("devices", "-l").stdout.decode()
    line = next(line for line in out.splitlines() if line.startswith(emulated_pixel.serial))
    props = load_profile("pixel").props
    assert re.search(r"\sdevice\s", line)
    assert f"model:{adb_label(props['ro.product.model'])}" in line
    assert f"product:{props['ro.product.name']}" in line
    assert f"device:{props['ro.product.device']}" in line


def test_push_pull_50mb_with_the_cli(server, emulated_pixel: RunningDevice, big_file, tmp_path: Path) -> None:
    source, digest = big_file
    remote = f"/data/local/tmp/cli-{Path(server.adb).parent.name}/big.bin"  # parent folder created by the device
    pushed = server.run("-s", emulated_pixel.serial, "push", str(source), remote)
    assert pushed.returncode == 0, pushed.stderr
    assert sha256_file(sandbox_file(emulated_pixel, remote)) == digest
    back = tmp_path / "back.bin"
    pulled = server.run("-s", emulated_pixel.serial, "pull", remote, str(back))
    assert pulled.returncode == 0, pulled.stderr
    assert sha256_file(back) == digest


def test_push_pull_50mb_with_adbutils(adb_server, emulated_pixel: RunningDevice, big_file, tmp_path: Path) -> None:
    source, digest = big_file
    device = adb_server.client.device(emulated_pixel.serial)
    device.sync.push(source, "/sdcard/adbutils/big.bin")
    assert device.sync.stat("/sdcard/adbutils/big.bin").size == 50 * MB
    device.sync.pull("/sdcard/adbutils/big.bin", tmp_path / "back.bin")
    assert sha256_file(tmp_path / "back.bin") == digest
    assert [entry.path for entry in device.sync.list("/sdcard/adbutils")] == ["big.bin"]


def test_folder_push_and_pull(server, emulated_pixel: RunningDevice, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    files = {"a.txt": b"alpha\n", "sub/b.raw": os.urandom(3 * MB + 17), "sub/deeper/c": b""}
    for name, data in files.items():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_bytes(data)
    remote = f"/data/local/tmp/folder-{Path(server.adb).parent.name}"
    assert server.run("-s", emulated_pixel.serial, "push", str(tree), remote).returncode == 0
    back = tmp_path / "back"
    pulled = server.run("-s", emulated_pixel.serial, "pull", remote, str(back))
    assert pulled.returncode == 0, pulled.stderr
    got = {str(p.relative_to(back)): p.read_bytes() for p in back.rglob("*") if p.is_file()}
    assert got == files


def test_symbolic_links_through_sync(server, emulated_pixel: RunningDevice, tmp_path: Path) -> None:
    """LIST and v1 STAT describe a link itself, as adbd's lstat does; adb then asks `link/` to learn
    that one leads to a folder, and pulls what links lead to."""
    remote = f"/data/local/tmp/links-{Path(server.adb).parent.name}"
    made = server.run("-s", emulated_pixel.serial, "shell",
                      f"rm -rf {remote} && mkdir -p {remote}/d && echo hi >{remote}/d/f && cd {remote} && "
                      "ln -s d ld && ln -s d/f lf && ln -s /etc/passwd out")
    assert made.returncode == 0, made.stderr
    listing = server.run("-s", emulated_pixel.serial, "ls", remote).stdout.decode().splitlines()
    assert {line.split()[-1]: line.split()[0] for line in listing if line.split()[-1] in ("ld", "lf", "d")} == {
        "ld": "0000a1ff", "lf": "0000a1ff", "d": "000041ed"}  # S_IFLNK | 0777, S_IFDIR | 0755
    pulled = server.run("-s", emulated_pixel.serial, "pull", remote, str(tmp_path / "back"))
    assert pulled.returncode == 0, pulled.stderr
    got = {str(p.relative_to(tmp_path / "back")): p.read_bytes() for p in (tmp_path / "back").rglob("*") if p.is_file()}
    # `out` leads to the device's /etc/passwd, which does not exist: skipped, never the host's
    assert got == {name: b"hi\n" for name in ("d/f", "ld/f", "lf")}


def test_escape_attempts_are_refused(adb_server, emulated_pixel: RunningDevice, tmp_path: Path) -> None:
    serial = emulated_pixel.serial
    payload = tmp_path / "payload"
    payload.write_text("overwrite attempt\n")
    passwd_before = sha256_file("/etc/passwd")

    dotdot = adb_server.run("-s", serial, "push", str(payload), "/data/local/tmp/../../../../etc/passwd")
    assert dotdot.returncode != 0
    assert b"Permission denied" in dotdot.stderr
    assert sha256_file("/etc/passwd") == passwd_before

    pulled = adb_server.run("-s", serial, "pull", "/etc/passwd", str(tmp_path / "passwd"))
    assert pulled.returncode != 0
    assert not (tmp_path / "passwd").exists()

    host_target = tmp_path / "host-target"  # an absolute host path is just a device path
    absolute = adb_server.run("-s", serial, "push", str(payload), str(host_target))
    assert absolute.returncode != 0
    assert not host_target.exists()

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("host secret\n")
    os.symlink(outside, sandbox_file(emulated_pixel, "/data/local/tmp/planted"))
    via_link = adb_server.run("-s", serial, "pull", "/data/local/tmp/planted/secret", str(tmp_path / "secret"))
    assert via_link.returncode != 0
    assert not (tmp_path / "secret").exists()
    pushed = adb_server.run("-s", serial, "push", str(payload), "/data/local/tmp/planted/new")
    assert pushed.returncode != 0
    assert sorted(os.listdir(outside)) == ["secret"]


def test_read_only_areas(adb_server, emulated_pixel: RunningDevice, tmp_path: Path) -> None:
    payload = tmp_path / "payload"
    payload.write_text("x")
    result = adb_server.run("-s", emulated_pixel.serial, "push", str(payload), "/system/bin/evil")
    assert result.returncode != 0
    assert b"Read-only file system" in result.stderr
    assert not sandbox_file(emulated_pixel, "/system/bin/evil").exists()


def test_quota_exceeded_leaves_no_partial_file(adb_server, start_emulated, big_file, tmp_path: Path) -> None:
    profile = tmp_path / "small.yaml"
    profile.write_text(re.sub(r"storage_mb: \d+", "storage_mb: 20", load_profile("pixel").path.read_text()))
    device = start_emulated(str(profile))
    result = adb_server.run("-s", device.serial, "push", str(big_file[0]), "/data/local/tmp/big.bin")
    assert result.returncode != 0
    assert b"No space left on device" in result.stderr
    assert os.listdir(sandbox_file(device, "/data/local/tmp")) == []
    small = tmp_path / "small.bin"
    small.write_bytes(os.urandom(MB))
    assert adb_server.run("-s", device.serial, "push", str(small), "/data/local/tmp/small.bin").returncode == 0
    assert sha256_file(sandbox_file(device, "/data/local/tmp/small.bin")) == sha256_file(small)


def wait_for_state(server, serial: str, state: str, timeout: float = 20) -> None:
    """Poll `adb devices` until the serial shows the state (adb reconnects on its own schedule)."""
    wait_until(lambda: f"{serial}\t{state}" in server.run("devices").stdout.decode(), f"{serial} {state}", timeout)


def test_connection_dropped_mid_transfer(adb_server, start_emulated, big_file, tmp_path: Path) -> None:
    device = start_emulated("pixel", faults=Faults(drop_after_bytes=5 * MB))
    result = adb_server.run("-s", device.serial, "push", str(big_file[0]), "/data/local/tmp/big.bin")
    assert result.returncode != 0
    assert result.stderr.startswith(b"adb: error:")
    assert b"Traceback" not in result.stderr
    # No partial file: the device removes it once it sees the stream end, which may be after adb reports.
    wait_until(lambda: os.listdir(sandbox_file(device, "/data/local/tmp")) == [], "the partial push to be removed")
    assert any(event["event"] == "fault-drop" for event in device.events())
    device.set_faults(drop_after_bytes=None)
    wait_for_state(adb_server, device.serial, "device")  # the device kept serving; adb reconnected
    assert adb_server.run("-s", device.serial, "push", str(big_file[0]), "/data/local/tmp/big.bin").returncode == 0
    assert sha256_file(sandbox_file(device, "/data/local/tmp/big.bin")) == big_file[1]


def test_two_devices_at_once(adb_server, start_emulated, tmp_path: Path) -> None:
    pixel, s23 = start_emulated("pixel"), start_emulated("galaxy-s23")
    listing = adb_server.run("devices", "-l").stdout.decode()
    for device in (pixel, s23):
        model = adb_label(load_profile(device.profile).props["ro.product.model"])
        assert re.search(rf"{re.escape(device.serial)}\s+device .*model:{re.escape(model)}", listing)
    for device in (pixel, s23):
        local = tmp_path / f"{device.name}.bin"
        local.write_bytes(device.name.encode() * 1000)
        assert adb_server.run("-s", device.serial, "push", str(local), "/sdcard/who.bin").returncode == 0
    for device in (pixel, s23):
        assert sandbox_file(device, "/sdcard/who.bin").read_bytes() == device.name.encode() * 1000
    assert sandbox_file(s23, "/vendor/lib/rfsa/adsp").is_dir()  # a Hexagon profile
    assert not sandbox_file(pixel, "/vendor/lib/rfsa/adsp").exists()


def test_discovered_as_emulator_without_adb_connect(start_emulated, new_adb_server, tmp_path: Path) -> None:
    device = None
    for port in range(5555, 5586, 2):
        try:
            device = start_emulated("pixel4", port=port, connect=False)
            break
        except DeviceError:  # port taken by someone else: try the next odd one
            continue
    assert device is not None, "no free odd port in 5555-5585"
    serial = f"emulator-{device.port - 1}"
    with new_adb_server() as server:  # a starting adb server scans 5555-5585 by itself
        wait_for_state(server, serial, "device", timeout=10)
        assert "model:Pixel_4" in server.run("devices", "-l").stdout.decode()
        payload = tmp_path / "p"
        payload.write_bytes(b"found")
        assert server.run("-s", serial, "push", str(payload), "/sdcard/p").returncode == 0
    assert sandbox_file(device, "/sdcard/p").read_bytes() == b"found"


def test_announced_to_a_running_server(adb_server, start_emulated) -> None:
    device = start_emulated("generic-arm64", connect=False)
    device.announce(adb_server.port)
    wait_for_state(adb_server, f"emulator-{device.port - 1}", "device", timeout=10)
    stat = adb_server.client.device(f"emulator-{device.port - 1}").sync.stat("/data/local/tmp")
    assert stat.mode & 0o040000


def test_concurrent_streams_on_one_connection(adb_server, emulated_pixel: RunningDevice, tmp_path: Path) -> None:
    """The adb server multiplexes all of a device's commands over one connection: pushes, pulls and
    shells in parallel must not mix their bytes."""
    from concurrent.futures import ThreadPoolExecutor

    device = adb_server.client.device(emulated_pixel.serial)

    def round_trip(k: int) -> bool:
        data = os.urandom(4 * MB + k)
        local = tmp_path / f"in{k}"
        local.write_bytes(data)
        device.sync.push(local, f"/data/local/tmp/concurrent/{k}.bin")
        listing = device.shell2(f"ls /data/local/tmp/concurrent/{k}.bin", v2=True)
        device.sync.pull(f"/data/local/tmp/concurrent/{k}.bin", tmp_path / f"out{k}")
        return listing.returncode == 0 and (tmp_path / f"out{k}").read_bytes() == data

    with ThreadPoolExecutor(max_workers=6) as pool:
        assert all(pool.map(round_trip, range(6)))


def test_drop_once_fires_a_single_time(adb_server, start_emulated, big_file) -> None:
    device = start_emulated("pixel", faults=Faults(drop_after_bytes=2 * MB, drop_once=True))
    first = adb_server.run("-s", device.serial, "push", str(big_file[0]), "/sdcard/a.bin")
    assert first.returncode != 0
    assert device.faults == Faults()  # switched itself off
    wait_for_state(adb_server, device.serial, "device")
    second = adb_server.run("-s", device.serial, "push", str(big_file[0]), "/sdcard/a.bin")
    assert second.returncode == 0, second.stderr
    assert [e["event"] for e in device.events()].count("fault-drop") == 1
