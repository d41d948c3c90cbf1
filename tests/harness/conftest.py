"""Harness fixtures: a build cache and an emulator home shared by the session (the example is
converted once), set only while each test that asks for them runs."""

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.devices import FoundDevice, connect, device_props
from harness.session import DeviceSession, device_session

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "edgeloop.yaml"


@pytest.fixture(scope="session")
def deploy_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {"build": tmp_path_factory.mktemp("build"), "home": tmp_path_factory.mktemp("edgeloop-home")}


@pytest.fixture
def deploy_env(deploy_dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    monkeypatch.setenv("EDGELOOP_BUILD", str(deploy_dirs["build"]))
    monkeypatch.setenv("EDGELOOP_HOME", str(deploy_dirs["home"]))
    return deploy_dirs


def config_with(folder: Path, **top: str) -> Path:
    """The example deployment file, written into `folder` with top-level keys set (values as YAML text)."""
    text = CONFIG.read_text().replace("examples/", f"{ROOT}/examples/")
    for key, value in top.items():
        line = f"{key}: {value}"
        text, found = re.subn(rf"^{key}:.*$", line, text, flags=re.MULTILINE)
        text = text if found else text.replace("models:", f"{line}\nmodels:", 1)
    path = folder / "edgeloop.yaml"
    path.write_text(text)
    return path


@contextlib.contextmanager
def open_session(adb_server, running, job: str = "test", **options) -> Iterator[DeviceSession]:
    """A device session on an emulated device, as deploy opens one."""
    device = connect(adb_server.client, running.serial)
    with device_session(FoundDevice(running.serial, device_props(device), device), job, **options) as session:
        yield session
