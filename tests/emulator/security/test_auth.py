"""adb's RSA authentication on the emulated device (issue 12): the port had no AUTH, so any local
user's client could drive it. The device now accepts the keys of the user who started it (and keys it
is given), as a phone with `ro.adb.secure=1` accepts the computers its user allowed."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import pytest
from adb_shell.adb_device import AdbDeviceTcp
from adb_shell.auth.sign_pythonrsa import PythonRSASigner

from emulator.auth import SIGNATURE, TOKEN
from emulator.proto import A_AUTH, A_CNXN, A_OKAY
from tests.conftest import private_adb_server, wait_until
from tests.emulator.rawadb import Key, RawHost


def test_the_adb_server_of_the_user_who_started_the_device_is_let_in(tmp_path: Path, monkeypatch,
                                                                    start_emulated) -> None:
    """A user whose adb server has never run: its key appears after the device started, and still counts."""
    monkeypatch.setenv("HOME", str(tmp_path))
    running = start_emulated("pixel", connect=False)
    assert not (tmp_path / ".android" / "adbkey.pub").exists()
    with private_adb_server() as server:  # writes ~/.android/adbkey on its first start
        running.connect(server.port)
        device = server.client.device(running.serial)
        assert device.shell2("getprop ro.adb.secure", v2=True).stdout.strip() == "1"
    assert any(e["event"] == "auth" for e in running.events())


def test_another_users_adb_server_stays_unauthorized(tmp_path: Path, monkeypatch, start_emulated) -> None:
    running = start_emulated("pixel", connect=False)  # started by this user, with this user's keys
    monkeypatch.setenv("HOME", str(tmp_path))  # another user's server: a key of its own
    with private_adb_server() as server:
        server.run("connect", running.serial)
        state = wait_until(lambda: _state(server, running.serial), "adb to list the device")
        assert state == "unauthorized"
        shell = server.run("-s", running.serial, "shell", "id")
        assert shell.returncode != 0 and b"unauthorized" in shell.stderr
    assert any(e["event"] == "auth-refused" for e in running.events())
    assert not any(e["event"] in ("shell", "auth") for e in running.events())


def _state(server, serial: str) -> str | None:
    for line in server.run("devices").stdout.decode().splitlines()[1:]:
        name, _, state = line.partition("\t")
        if name == serial and state.strip() not in ("", "connecting", "authorizing"):
            return state.strip()
    return None


def test_before_auth_nothing_is_served_and_a_bad_signature_gets_a_new_token(start_emulated, adb_test_key: Key,
                                                                           tmp_path: Path) -> None:
    running = start_emulated("pixel", connect=False, adb_keys=(adb_test_key.public,))
    host = RawHost(running.port)  # no key to sign with
    command, kind, _, _, token = host.banner
    assert (command, kind, len(token)) == (A_AUTH, TOKEN, 20)
    host.send(0x4E45504F, 1, 0, b"shell:id\0")  # OPEN before auth: ignored, as adbd does
    stranger = Key.make(tmp_path / "stranger")
    host.send(A_AUTH, SIGNATURE, 0, stranger.sign(token))
    command, kind, _, _, again = host.read()
    assert (command, kind) == (A_AUTH, TOKEN) and again != token  # a fresh token, never a shell
    host.send(A_AUTH, SIGNATURE, 0, adb_test_key.sign(again))
    assert host.expect(A_CNXN)[4].startswith(b"device::")
    assert host.open("shell:echo in") and host.expect(0x45545257)[4] == b"in\n"
    assert not any(e["event"] == "shell" and e["command"] == "id" for e in running.events())


def test_an_insecure_device_lets_any_host_in(start_emulated) -> None:
    running = start_emulated("pixel", connect=False, secure=False)
    host = RawHost(running.port)
    assert host.banner[0] == A_CNXN
    host.open("shell:getprop ro.adb.secure")
    assert host.expect(0x45545257)[4] == b"0\n" and A_OKAY


def test_the_pure_python_adb_shell_client_authenticates_and_works(start_emulated, adb_test_key: Key,
                                                                  tmp_path: Path) -> None:
    """adb-shell speaks the transport itself (version 0x01000000: checksums) and waits for CLSE replies."""
    running = start_emulated("pixel", connect=False, adb_keys=(adb_test_key.public,))
    client = AdbDeviceTcp("127.0.0.1", running.port, default_transport_timeout_s=10)
    start = time.monotonic()
    assert client.connect(rsa_keys=[PythonRSASigner.FromRSAKeyPath(str(adb_test_key.private))], auth_timeout_s=5)
    assert client.shell("echo $((6 * 7))").strip() == "42"
    local = tmp_path / "payload.bin"
    local.write_bytes(bytes(range(256)) * 1000)
    client.push(str(local), "/data/local/tmp/payload.bin")
    client.pull("/data/local/tmp/payload.bin", str(tmp_path / "back.bin"))
    assert (tmp_path / "back.bin").read_bytes() == local.read_bytes()
    names = [entry.filename.decode() for entry in client.list("/data/local/tmp")]
    assert "payload.bin" in names
    mode, size, _mtime = client.stat("/data/local/tmp/payload.bin")
    assert size == 256_000 and stat.S_ISREG(mode)
    client.close()
    assert time.monotonic() - start < 10  # each sync call used to hang 10 s for an unanswered CLSE


@pytest.mark.parametrize("version", [0x01000000, 0x01000001])
def test_a_signed_handshake_works_at_both_protocol_versions(start_emulated, adb_test_key: Key, version: int) -> None:
    running = start_emulated("pixel", connect=False, adb_keys=(adb_test_key.public,))
    host = RawHost(running.port, adb_test_key, version=version)
    assert host.banner[0] == A_CNXN and host.banner[1] == version
