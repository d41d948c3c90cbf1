"""Shared fixtures: a private adb server per test session and emulated devices connected to it.

Never the default adb port 5037 (other suites run adb at the same time): each session (each
xdist worker) starts its own server on a free port and kills it at the end.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import adbutils
import pytest

from emulator.lifecycle import RunningDevice, start_device
from harness.devices import AdbClient

# deploys run by tests record no history in the checkout (.edgeloop/): the history tests name their own
os.environ.setdefault("EDGELOOP_HISTORY", "off")

ADB36 = str(Path(adbutils.__file__).parent / "binaries" / "adb")  # platform-tools 36, shipped in the wheel
ADB29 = "/usr/bin/adb"  # Debian's adb package


T = TypeVar("T")


def wait_until(condition: Callable[[], T], what: str, timeout: float = 20.0) -> T:
    """The first truthy value of condition(), polled until the deadline: waiting on an effect, not a delay."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)
    return value


def free_port() -> int:
    """A free ephemeral loopback port (never 5037 nor the emulator range 5555-5585)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class AdbServer:
    adb: str  # the adb binary that started the server (adb 36)
    port: int
    client: AdbClient  # never starts a stray server on 5037 when this one dies

    @property
    def env(self) -> dict[str, str]:
        """Environment for adb CLI calls that must reach this server and no other."""
        return {**os.environ, "ANDROID_ADB_SERVER_PORT": str(self.port)}

    def run(
        self, *args: str, adb: str | None = None, timeout: float = 60, **kwargs: Any
    ) -> subprocess.CompletedProcess:
        """Run an adb CLI command against this server (adb 36 unless another binary is given).
        stdin is empty unless `input` is given: `adb shell` forwards whatever it reads."""
        if "input" not in kwargs:
            kwargs.setdefault("stdin", subprocess.DEVNULL)
        return subprocess.run(
            [adb or self.adb, "-P", str(self.port), *args],
            env=self.env,
            capture_output=True,
            timeout=timeout,
            **kwargs,
        )


@contextlib.contextmanager
def private_adb_server(adb: str = ADB36) -> Iterator[AdbServer]:
    """An adb server of the given binary on a free port, killed on exit."""
    port = free_port()
    env = {**os.environ, "ANDROID_ADB_SERVER_PORT": str(port)}
    subprocess.run([adb, "-P", str(port), "start-server"], env=env, check=True, capture_output=True, timeout=30)
    try:
        yield AdbServer(adb, port, AdbClient(host="127.0.0.1", port=port, socket_timeout=30))
    finally:
        subprocess.run([adb, "-P", str(port), "kill-server"], env=env, capture_output=True, timeout=30)


@pytest.fixture(scope="session")
def adb_server() -> Iterator[AdbServer]:
    """The session's adb server (platform-tools 36 from adbutils' wheel)."""
    with private_adb_server(ADB36) as server:
        yield server


@pytest.fixture(scope="session")
def adb29_server() -> Iterator[AdbServer]:
    """A second server run by Debian's adb 29, for tests that must pass with both clients."""
    with private_adb_server(ADB29) as server:
        yield server


@pytest.fixture
def new_adb_server() -> Callable[..., contextlib.AbstractContextManager[AdbServer]]:
    """private_adb_server itself, for tests that need a server started at a given moment."""
    return private_adb_server


StartDevice = Callable[..., RunningDevice]


@pytest.fixture
def start_emulated(adb_server: AdbServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartDevice]:
    """Factory: start_emulated(profile="pixel", connect=True, **start_device_kwargs) -> RunningDevice.

    Devices run as real background processes, are `adb connect`ed to the session's server and
    are stopped (and disconnected) when the test ends.
    """
    started: list[RunningDevice] = []
    home = tmp_path_factory.mktemp("edgeloop-home")

    def start(profile: str = "pixel", *, connect: bool = True, **kwargs: Any) -> RunningDevice:
        kwargs.setdefault("home", home)
        device = start_device(profile, exit_with_parent=True, **kwargs)
        started.append(device)
        if connect:
            device.connect(adb_server.port)
        return device

    yield start
    for device in started:
        device.stop()
        with contextlib.suppress(adbutils.AdbError):
            adb_server.client.disconnect(device.serial)


@pytest.fixture(scope="session")
def _pixel_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDevice]:
    device = start_device("pixel", home=tmp_path_factory.mktemp("edgeloop-home"), exit_with_parent=True)
    yield device
    device.stop()


@pytest.fixture
def emulated_pixel(adb_server: AdbServer, _pixel_process: RunningDevice) -> Iterator[RunningDevice]:
    """A `pixel` device shared by the session's tests (do not stop it or set faults), `adb connect`ed
    to `adb_server` for the duration of the test only, so that between tests the shared server lists
    no device of ours (tests that enumerate all of a server's devices stay exact)."""
    _pixel_process.connect(adb_server.port)
    yield _pixel_process
    with contextlib.suppress(adbutils.AdbError):
        adb_server.client.disconnect(_pixel_process.serial)
