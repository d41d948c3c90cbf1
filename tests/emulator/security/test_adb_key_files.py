"""`emulator.start --adb-key FILE` accepts the key of an adbkey.pub; any other file (/etc/passwd, the
private half, /dev/zero, a folder) is one line before a device is started."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.errors import EdgeloopError
from emulator.auth import key_file_problem
from emulator.lifecycle import start_device
from tests.emulator.rawadb import Key


def test_an_adbkey_pub_holds_a_key(adb_test_key: Key) -> None:
    assert key_file_problem(adb_test_key.public) is None


@pytest.mark.parametrize(("path", "words"), [
    ("/etc/passwd", "holds no adb public key"),
    ("/dev/zero", "larger than 64 KiB, so not an adbkey.pub"),
    ("/", "cannot read it (Is a directory)"),
    ("/nonexistent/adbkey.pub", "no such file"),
])
def test_a_file_without_a_key_is_said_what_it_is(path: str, words: str) -> None:
    assert (key_file_problem(Path(path)) or "").startswith(words)


def test_the_private_half_is_named(adb_test_key: Key) -> None:
    assert key_file_problem(adb_test_key.private).startswith("a private key; give its public half")


def test_start_refuses_a_file_that_is_no_key_before_starting(tmp_path: Path) -> None:
    with pytest.raises(EdgeloopError) as info:
        start_device("pixel", home=tmp_path, adb_keys=(Path("/etc/passwd"),))
    assert str(info.value).startswith("--adb-key /etc/passwd: holds no adb public key")
    assert not any(tmp_path.rglob("*.log"))
