"""The sandbox alone: path mapping, escapes, writable areas, quota accounting, atomic writes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from emulator.sandbox import DeviceOSError, Sandbox

MB = 1024 * 1024


@pytest.fixture
def fs(tmp_path: Path) -> Sandbox:
    return Sandbox(tmp_path / "root", 4 * MB)


def error_of(call) -> str:
    with pytest.raises(DeviceOSError) as info:
        call()
    return info.value.message


def test_tree_is_android_like(tmp_path: Path) -> None:
    fs = Sandbox(tmp_path / "dsp", MB, hexagon=True)
    for folder in (
        "/data/local/tmp",
        "/sdcard",
        "/system/bin",
        "/system/lib64",
        "/vendor/lib64",
        "/vendor/lib/rfsa/adsp",
    ):
        assert fs.is_dir(folder), folder
    assert not Sandbox(tmp_path / "plain", MB).is_dir("/vendor/lib/rfsa/adsp")


@pytest.mark.parametrize(
    ("path", "cwd", "expected"),
    [
        ("a/b", "/data/local/tmp", "/data/local/tmp/a/b"),
        ("../../../../../etc/passwd", "/data/local/tmp", "/etc/passwd"),
        ("/sdcard/./x/../y", "/", "/sdcard/y"),
        ("..", "/", "/"),
        ("//system///bin/", "/", "/system/bin"),
    ],
)
def test_norm(fs: Sandbox, path: str, cwd: str, expected: str) -> None:
    assert fs.norm(path, cwd) == expected


def test_dotdot_never_leaves_the_root(fs: Sandbox, tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("host file")
    assert fs.host("../../../../secret", "/data/local/tmp") == fs.root.resolve() / "secret"
    assert error_of(lambda: fs.open_read("../secret", "/")) == "No such file or directory"


def test_absolute_host_path_is_a_device_path(fs: Sandbox, tmp_path: Path) -> None:
    host_file = tmp_path / "host.txt"
    host_file.write_text("host")
    assert error_of(lambda: fs.open_read(str(host_file))) == "No such file or directory"


def test_symlink_out_of_the_sandbox_is_refused(fs: Sandbox, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "passwd").write_text("host secret")
    os.symlink(outside, fs.root / "data/local/tmp/link")
    assert error_of(lambda: fs.open_read("/data/local/tmp/link/passwd")) == "Permission denied"
    assert error_of(lambda: fs.open_write("/data/local/tmp/link/new")) == "Permission denied"
    assert error_of(lambda: fs.listdir("/data/local/tmp/link")) == "Permission denied"
    assert list(outside.iterdir()) == [outside / "passwd"]


def test_lstat_describes_a_link_without_following_it(fs: Sandbox, tmp_path: Path) -> None:
    os.symlink(tmp_path, fs.root / "data/local/tmp/out")
    assert os.path.islink(fs.root / "data/local/tmp/out")
    assert stat.S_ISLNK(fs.lstat("/data/local/tmp/out").st_mode)
    assert error_of(lambda: fs.stat("/data/local/tmp/out")) == "Permission denied"
    assert stat.S_ISDIR(fs.lstat("/").st_mode)


def test_symlink_into_a_read_only_area_is_not_writable(fs: Sandbox) -> None:
    os.symlink(fs.root / "system/bin", fs.root / "data/local/tmp/bin")
    assert error_of(lambda: fs.open_write("/data/local/tmp/bin/sh")) == "Read-only file system"


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/system/bin/x", "Read-only file system"),
        ("/vendor/lib64/x.so", "Read-only file system"),
        ("/data/x", "Permission denied"),
        ("/x", "Permission denied"),
    ],
)
def test_writes_outside_writable_areas(fs: Sandbox, path: str, message: str) -> None:
    assert error_of(lambda: fs.open_write(path)) == message
    assert not fs.exists(path)


def test_writable_area_itself_cannot_be_removed(fs: Sandbox) -> None:
    assert error_of(lambda: fs.remove("/data/local/tmp", recursive=True)) == "Permission denied"
    assert fs.is_dir("/data/local/tmp")


def test_errno_messages(fs: Sandbox) -> None:
    with fs.open_write("/sdcard/f") as f:
        f.write(b"x")
    fs.mkdir("/sdcard/d/e", parents=True)
    assert error_of(lambda: fs.mkdir("/sdcard/d")) == "File exists"
    assert error_of(lambda: fs.listdir("/sdcard/f")) == "Not a directory"
    assert error_of(lambda: fs.open_read("/sdcard/d")) == "Is a directory"
    assert error_of(lambda: fs.remove("/sdcard/d")) == "Is a directory"
    assert error_of(lambda: fs.stat("/sdcard/missing")) == "No such file or directory"
    assert error_of(lambda: fs.rename("/sdcard/f", "/sdcard/d")) == "Is a directory"


def test_quota_is_a_running_total_that_matches_a_rescan(fs: Sandbox) -> None:
    with fs.open_write("/data/local/tmp/a", atomic=True) as f:
        f.write(b"a" * 1000)
    with fs.open_write("/data/local/tmp/a", append=True) as f:
        f.write(b"b" * 500)
    with fs.open_write("/sdcard/b") as f:
        f.write(b"c" * 300)
    fs.copy("/data/local/tmp/a", "/sdcard/c")
    fs.rename("/sdcard/c", "/sdcard/b")  # replaces b
    fs.mkdir("/sdcard/t/u", parents=True)
    fs.copy("/sdcard/b", "/sdcard/t/u/d")
    fs.remove("/sdcard/t", recursive=True)
    with fs.open_write("/data/local/tmp/a") as f:  # truncates
        f.write(b"d" * 10)
    assert fs.used_bytes() == Sandbox(fs.root, fs.quota_bytes).used_bytes() == 10 + 1500
    assert fs.free_bytes() == fs.quota_bytes - 1510


def test_quota_exceeded_leaves_no_partial_file(fs: Sandbox) -> None:
    with pytest.raises(DeviceOSError, match="No space left on device"):  # noqa: SIM117
        with fs.open_write("/data/local/tmp/big", atomic=True) as f:
            for _ in range(5):
                f.write(b"x" * MB)
    assert fs.listdir("/data/local/tmp") == []
    assert os.listdir(fs.root / "data/local/tmp") == []
    assert fs.used_bytes() == 0


def test_storage_full_fails_every_write(fs: Sandbox) -> None:
    fs.storage_full = True
    assert fs.free_bytes() == 0
    writer = fs.open_write("/sdcard/x", atomic=True)
    assert error_of(lambda: writer.write(b"1")) == "No space left on device"
    writer.abort()
    assert not fs.exists("/sdcard/x")


def test_partial_files_of_a_killed_device_are_cleaned_up(fs: Sandbox) -> None:
    writer = fs.open_write("/sdcard/x", atomic=True)
    writer.write(b"half")  # the device dies here: no close, no abort
    restarted = Sandbox(fs.root, fs.quota_bytes)
    assert os.listdir(fs.root / "sdcard") == []
    assert restarted.used_bytes() == 0


def test_chmod_and_mode(fs: Sandbox) -> None:
    with fs.open_write("/data/local/tmp/run.sh", mode=0o755) as f:
        f.write(b"#!/system/bin/sh\n")
    assert fs.stat("/data/local/tmp/run.sh").st_mode & 0o111
    fs.chmod("/data/local/tmp/run.sh", 0o644)
    assert not fs.stat("/data/local/tmp/run.sh").st_mode & 0o111
    assert error_of(lambda: fs.chmod("/system/bin", 0o777)) == "Read-only file system"
