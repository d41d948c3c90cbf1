"""`cmd` and `pm` on the emulated device (Android's wording and exit codes), and what the real clients
do now that the banner advertises `cmd`: adb 36 and 29 install by streaming to `cmd package`,
uninstall through it, and adbutils lists packages with `pm`."""

from __future__ import annotations

from pathlib import Path

import adbutils
import pytest

from deploy.profiles import load_profile
from emulator.adbd import FEATURES
from emulator.cmd_services import INSTALL_FAILED
from emulator.lifecycle import RunningDevice
from tests.conftest import AdbServer
from tests.emulator.test_shell_support import ShellRunner

PACKAGES = ("android", "com.android.shell", "com.android.settings")


def with_packages(tmp_path: Path) -> Path:
    """The pixel profile plus a `packages` list."""
    profile = tmp_path / "pixel-apps.yaml"
    profile.write_text(load_profile("pixel").path.read_text() + f"packages: [{', '.join(PACKAGES)}]\n")
    return profile


def test_cmd_lists_its_services_and_refuses_unknown_ones(sh: ShellRunner) -> None:
    listed = sh("cmd -l")
    assert (listed.status, listed.out.splitlines()) == (0, ["Currently running services:", "  package"])
    missing = sh("cmd activity start -n x/.Y")
    assert (missing.status, missing.out, missing.err) == (20, "", "cmd: Can't find service: activity\n")
    bare = sh("cmd")
    assert bare.status == 20 and bare.err.startswith("cmd: No service specified; use -l")
    assert sh("cmd -w package list packages").status == 0  # -w: wait for a service that is up already


def test_package_service_lists_the_profiles_packages(tmp_path: Path) -> None:
    sh = ShellRunner(tmp_path, profile=str(with_packages(tmp_path)))
    try:
        everything = sh("cmd package list packages")
        assert (everything.status, everything.out) == (0, "".join(f"package:{p}\n" for p in PACKAGES))
        assert sh("pm list packages -s shell").out == "package:com.android.shell\n"
        assert sh("pm list packages --user 0 -e settings").out == "package:com.android.settings\n"
        assert sh("pm list packages -3").out == ""  # third-party: nothing was installed
        assert sh("pm list packages -i android").out.splitlines()[0] == "package:android  installer=null"
        for command, out in (("pm list packages -z", "Error: Unknown option: -z\n"),
                             ("pm list features", "Error: unknown list type 'features'\n"),
                             ("pm list", "Error: didn't specify type of data to list\n"),
                             ("cmd package frobnicate", "Unknown command: frobnicate\n")):
            result = sh(command)
            assert (result.status, result.out) == (255, out), command
        assert sh("pm help").out.startswith("Package manager (package) commands:")
    finally:
        sh.close()


def test_install_reads_the_streamed_package_before_failing(sh: ShellRunner) -> None:
    apk = b"PK\x03\x04" + bytes(300_000)
    result = sh(f"cmd package install -S {len(apk)}; echo status=$?; cat", stdin=apk + b"left")
    assert result.out == f"{INSTALL_FAILED}\nstatus=1\nleft"  # took exactly the announced bytes
    # adb puts the user's options first: `adb install -i com.store --user 0 app.apk` streams as this
    result = sh(f"cmd package install -i com.store --user 0 -r -S {len(apk)}; cat", stdin=apk + b"left")
    assert result.out == f"{INSTALL_FAILED}\nleft"


def test_banner_advertises_cmd_as_the_spec_says(adb_server: AdbServer, emulated_pixel: RunningDevice) -> None:
    assert FEATURES == ("shell_v2", "cmd", "stat_v2", "fixed_push_mkdir")
    features = adb_server.run("-s", emulated_pixel.serial, "features")
    assert features.returncode == 0 and "cmd" in features.stdout.decode().split()


def test_adb_install_streams_to_cmd_package_and_fails_cleanly(server: AdbServer, emulated_pixel: RunningDevice,
                                                             tmp_path: Path) -> None:
    apk = tmp_path / "app.apk"
    apk.write_bytes(b"PK\x03\x04" + bytes(3 << 20))  # bigger than adb's window: the device must drain it
    serial = emulated_pixel.serial
    installed = server.run("-s", serial, "install", str(apk), timeout=30)
    assert installed.returncode == 1
    assert b"Performing Streamed Install" in installed.stdout  # chosen because of the cmd feature
    assert f"adb: failed to install {apk}: {INSTALL_FAILED}".encode() in installed.stderr
    pushed = server.run("-s", serial, "install", "--no-streaming", str(apk), timeout=30)  # push, then pm install
    assert pushed.returncode == 1 and b"Performing Push Install" in pushed.stdout
    assert INSTALL_FAILED.encode() in pushed.stdout
    multiple = server.run("-s", serial, "install-multiple", str(apk), str(apk), timeout=30)
    assert multiple.returncode == 1 and b"Unknown command: install-create" in multiple.stderr
    removed = server.run("-s", serial, "uninstall", "com.example.app")
    assert removed.returncode == 1 and b"Failure [DELETE_FAILED_INTERNAL_ERROR]" in removed.stdout + removed.stderr
    assert server.run("-s", serial, "shell", "cmd -l").stdout == b"Currently running services:\n  package\n"
    assert server.run("-s", serial, "shell", "cmd nope").returncode == 20
    assert server.run("-s", serial, "shell", "ls /data/local/tmp/app.apk").returncode == 1  # nothing left behind


def test_adbutils_lists_packages_through_pm(adb_server: AdbServer, emulated_pixel: RunningDevice) -> None:
    device = adb_server.client.device(emulated_pixel.serial)
    assert device.list_packages() == []  # the shipped profiles list no packages
    assert device.shell2("cmd package list packages", v2=True).returncode == 0
    with pytest.raises(adbutils.AdbError):
        device.install_remote("/data/local/tmp/none.apk")
