"""The pytest plugin, run as users run it: pytest in a subprocess on a generated test file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.farm.farm_helpers import ROOT, assert_no_overlap, write_inventory

HOLD_TESTS = """
import json, os, time
from pathlib import Path
import pytest

@pytest.mark.parametrize("i", range(6))
def test_hold(edgeloop_device, i):
    start = time.time()
    for _ in range(8):  # real work on the device while it is leased
        assert edgeloop_device.adb.shell2("echo busy").output.strip() == "busy"
    end = time.time()
    out = Path(os.environ["EDGELOOP_TEST_OUT"]) / f"{i}.json"
    out.write_text(json.dumps({"serial": edgeloop_device.serial, "worker": os.environ.get("PYTEST_XDIST_WORKER"),
                               "start": start, "end": end, "profile": edgeloop_device.profile.name}))
"""

DEPLOY_TESTS = """
import pytest

@pytest.mark.parametrize("runtime", ["cpu", "gpu"])
def test_digits(edgeloop_deploy, edgeloop_device, runtime):
    results = edgeloop_deploy(runtimes=[runtime])
    assert [(r.model, r.runtime, r.status) for r in results] == [("digits", runtime, "passed")], results[0].failure
    assert results[0].device == edgeloop_device.serial
"""

INERT_TESTS = """
import sys

def test_plugin_is_loaded_but_idle(request, edgeloop_device):
    raise AssertionError("edgeloop_device must skip without the plugin's options")

def test_nothing_imported(request):
    assert request.config.pluginmanager.has_plugin("edgeloop")
    assert not {"adbutils", "harness.inventory", "emulator.lifecycle"} & set(sys.modules)
"""


def _pytest(folder: Path, source: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    (folder / "test_generated.py").write_text(textwrap.dedent(source))
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args, "test_generated.py"],
                          cwd=folder, capture_output=True, text=True, timeout=180,
                          env={**os.environ, **(env or {}), "PYTHONPATH": str(ROOT)})


def test_plugin_is_inert_without_its_options(tmp_path: Path) -> None:
    result = _pytest(tmp_path, INERT_TESTS, "-rs")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed, 1 skipped" in result.stdout and "--edgeloop-device" in result.stdout


@pytest.mark.e2e
def test_leases_hold_across_xdist_workers(tmp_path: Path, second_adb_server, start_emulated) -> None:
    """On a server of its own: the plugin leases any matching device its server lists."""
    device = start_emulated("pixel", connect=False)
    inventory = write_inventory(tmp_path / "farm.yaml", {second_adb_server.port: [device.serial]})
    out = tmp_path / "out"
    out.mkdir()
    env = {"EDGELOOP_TEST_OUT": str(out), "EDGELOOP_LOCK_DIR": str(tmp_path / "locks")}
    result = _pytest(tmp_path, HOLD_TESTS, "-n", "2", "--edgeloop-inventory", str(inventory), env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    records = [json.loads(p.read_text()) for p in out.glob("*.json")]
    assert len(records) == 6
    assert {r["serial"] for r in records} == {device.serial} and {r["profile"] for r in records} == {"pixel"}
    assert {r["worker"] for r in records} == {"gw0", "gw1"}, "both workers must have run tests on the one device"
    assert_no_overlap([(r["start"], r["end"]) for r in records], device.serial)


@pytest.mark.e2e
def test_deploy_fixture_on_emulated_devices_under_xdist(tmp_path: Path, adb_server) -> None:
    env = {"ANDROID_ADB_SERVER_PORT": str(adb_server.port), "EDGELOOP_LOCK_DIR": str(tmp_path / "locks")}
    result = _pytest(tmp_path, DEPLOY_TESTS, "-n", "2", "--edgeloop-device", "pixel", "--edgeloop-emulate",
                     "--edgeloop-config", str(ROOT / "edgeloop.yaml"), env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
