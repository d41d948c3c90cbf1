"""The services a user-build phone refuses or answers briefly (issue 12): asked of the emulated device
through the real adb CLI, they get adbd's own words; `adb reboot` takes the device away and it comes
back with its storage."""

from __future__ import annotations

import pytest

from tests.conftest import wait_until


@pytest.mark.parametrize(("args", "said"), [
    (("root",), "adbd cannot run as root in production builds"),
    (("unroot",), "adbd not running as root"),
    (("remount",), 'Not running as root. Try "adb root" first.'),
    (("tcpip", "5555"), "restarting in TCP mode port: 5555"),
])
def test_privileged_services_answer_as_a_user_build(adb_server, start_emulated, args, said) -> None:
    running = start_emulated("pixel")
    result = adb_server.run("-s", running.serial, *args)
    assert said in (result.stdout + result.stderr).decode()
    # and the device is still the same user build, still answering
    assert adb_server.run("-s", running.serial, "shell", "id -u").stdout.strip() == b"2000"


def test_reverse_forwarding_is_refused_with_a_reason(adb_server, start_emulated) -> None:
    running = start_emulated("pixel")
    listed = adb_server.run("-s", running.serial, "reverse", "--list")
    assert listed.returncode == 0 and listed.stdout.strip() == b""
    forward = adb_server.run("-s", running.serial, "reverse", "tcp:6100", "tcp:7100")
    assert forward.returncode != 0 and b"not supported by the emulated device" in forward.stderr


def test_reboot_takes_the_device_away_and_it_comes_back_with_its_storage(adb_server, start_emulated) -> None:
    running = start_emulated("pixel")
    assert adb_server.run("-s", running.serial, "shell", "echo kept > /data/local/tmp/f").returncode == 0
    adb_server.run("-s", running.serial, "reboot")
    wait_until(lambda: any(e["event"] == "reboot" for e in running.events()), "the reboot")

    def back() -> bool:
        adb_server.run("connect", running.serial)
        return adb_server.run("-s", running.serial, "shell", "cat /data/local/tmp/f").stdout == b"kept\n"

    wait_until(back, "the device to come back", timeout=30)
    disconnects = [e for e in running.events() if e["event"] == "disconnect"]
    assert disconnects, "the reboot did not drop the host"
