"""Fixtures of the emulator's own tests (the adb server and device fixtures are in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from emulator.lifecycle import RunningDevice
from tests.conftest import AdbServer
from tests.emulator.rawadb import Key
from tests.emulator.test_shell_support import ShellRunner


@pytest.fixture(scope="session")
def adb_test_key(tmp_path_factory: pytest.TempPathFactory) -> Key:
    """The raw-protocol tests' own adb key; their devices are started with `adb_keys=(key.public,)`."""
    return Key.make(tmp_path_factory.mktemp("adbkey") / "adbkey")


@pytest.fixture
def sh(tmp_path: Path) -> Iterator[ShellRunner]:
    """A pixel's shell on a fresh sandbox, without adb."""
    runner = ShellRunner(tmp_path)
    yield runner
    runner.close()


@pytest.fixture(params=["adb36", "adb29"])
def server(request: pytest.FixtureRequest, emulated_pixel: RunningDevice) -> AdbServer:
    """Each test that takes it runs once per adb client; the shared device is connected to both servers."""
    srv = request.getfixturevalue("adb_server" if request.param == "adb36" else "adb29_server")
    emulated_pixel.connect(srv.port)
    return srv
