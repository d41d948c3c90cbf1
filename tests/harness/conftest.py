"""Harness fixtures: a build cache and an emulator home shared by the session (the example is
converted once), set only while each test that asks for them runs."""

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
