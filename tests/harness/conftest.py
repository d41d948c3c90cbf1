"""Harness fixtures: a build cache and an emulator home shared by the session (the example is
converted once), set only while each test that asks for them runs."""

import re
from pathlib import Path

import pytest

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
