"""Farm fixtures: a second private adb server (the first is tests/conftest.py's `adb_server`)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import adbutils
import pytest

from tests.conftest import ADB36, AdbServer, free_port


@pytest.fixture
def second_adb_server() -> Iterator[AdbServer]:
    """Another adb server on its own free port: a second farm host, as seen from this one."""
    port = free_port()
    env = {**os.environ, "ANDROID_ADB_SERVER_PORT": str(port)}
    subprocess.run([ADB36, "-P", str(port), "start-server"], env=env, check=True, capture_output=True, timeout=30)
    try:
        yield AdbServer(ADB36, port, adbutils.AdbClient(host="127.0.0.1", port=port, socket_timeout=30))
    finally:
        subprocess.run([ADB36, "-P", str(port), "kill-server"], env=env, capture_output=True, timeout=30)
