"""Where an emulated device's state lives and how long: kept for the profile's own name and names given
by hand (warm deploys), gone for scratch `<profile>-N` devices, deleted by `invoke emulator.reset` unless
the device runs, and never by a project's `invoke clean --all`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from emulator.lifecycle import emulated_device, list_devices, remove_stopped_states, start_device, stopped_states
from tests.emulator.test_lifecycle import wait_gone

REPO = Path(__file__).resolve().parents[2]


def _leave(device_sandbox: Path, text: str) -> Path:
    """A file pushed earlier, as the device's storage holds it."""
    path = device_sandbox / "data/local/tmp/left.txt"
    path.write_text(text)
    return path


def test_profile_named_state_stays_and_a_scratch_devices_goes(tmp_path: Path) -> None:
    with emulated_device("pixel", home=tmp_path) as first, emulated_device("pixel", home=tmp_path) as second:
        assert (first.name, second.name) == ("pixel", "pixel-2")
        kept = _leave(first.sandbox_root, "first")
        _leave(second.sandbox_root, "second")
    assert kept.read_text() == "first"
    assert not second.state.exists()
    with emulated_device("pixel", home=tmp_path) as again:  # what the next deploy --emulate finds
        assert (again.name, (again.sandbox_root / "data/local/tmp/left.txt").read_text()) == ("pixel", "first")


def test_a_killed_scratch_device_is_wiped_when_its_name_is_reused(tmp_path: Path) -> None:
    with emulated_device("pixel", home=tmp_path):
        scratch = start_device("pixel", home=tmp_path, exit_with_parent=True)
        left = _leave(scratch.sandbox_root, "stale")
        os.kill(scratch.pid, signal.SIGKILL)
        assert wait_gone(scratch.pid)
        assert left.exists()  # nobody stopped it: the state is still there
        with emulated_device("pixel", home=tmp_path) as reused:
            assert reused.name == scratch.name
            assert not (reused.sandbox_root / "data/local/tmp/left.txt").exists()


def test_a_stopped_device_named_by_hand_is_not_taken_for_scratch(tmp_path: Path) -> None:
    with emulated_device("pixel", name="pixel-2", home=tmp_path) as by_hand:
        mine = _leave(by_hand.sandbox_root, "mine")
    with emulated_device("pixel", home=tmp_path), emulated_device("pixel", home=tmp_path) as other:
        assert other.name == "pixel-3"
    assert mine.read_text() == "mine"
    assert not other.state.exists()


def test_reset_all_removes_stopped_states_and_clean_all_never_does(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with emulated_device("generic-arm64", name="gone", home=home) as stopped:
        _leave(stopped.sandbox_root, "x")
    with emulated_device("pixel", home=home) as running:
        kept = _leave(running.sandbox_root, "running")
        work = tmp_path / "project"
        (work / "reports").mkdir(parents=True)
        env = {**os.environ, "EDGELOOP_HOME": str(home), "EDGELOOP_BUILD": str(work / "build")}

        def invoke(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(REPO), *args],
                                  cwd=work, env=env, capture_output=True, text=True, timeout=60)

        assert stopped_states(home) == ["gone"]
        assert "stopped, state kept: gone (invoke emulator.reset -n NAME" in invoke("emulator.list").stdout
        refused = invoke("emulator.reset", "-n", "pixel")
        assert refused.returncode == 0 and "kept the state of running pixel" in refused.stdout
        typo = invoke("emulator.reset", "-n", "gonne")
        assert typo.returncode == 2 and "no emulated device named 'gonne'" in typo.stderr
        assert stopped.state.exists() and kept.read_text() == "running"
        cleaned = invoke("clean", "--all")  # a project's own output; the devices serve every project
        assert cleaned.returncode == 0, cleaned.stderr
        assert "kept the state of emulated gone (shared by every project; invoke emulator.reset --all" in cleaned.stdout
        assert stopped.state.exists() and not (work / "reports").exists()
        done = invoke("emulator.reset", "--all")
        assert done.returncode == 0, done.stderr
        assert "deleted the state of gone" in done.stdout and "kept the state of running pixel" in done.stdout
        assert not stopped.state.exists()
        assert kept.read_text() == "running" and running.alive()
        assert [d.name for d in list_devices(home)] == ["pixel"]
        assert "state kept" not in invoke("emulator.list").stdout
    with emulated_device("pixel4", home=home):
        pass
    assert remove_stopped_states(home, names=["pixel"]) == (["pixel"], [])  # emulator.reset -n pixel
    assert stopped_states(home) == ["pixel4"]
    assert remove_stopped_states(home).removed == ["pixel4"]
    assert remove_stopped_states(home) == ([], [])


def test_a_relative_home_names_the_same_folder_for_the_device_and_its_starter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The device process runs in the checkout's folder: a relative state path there was another folder.
    monkeypatch.chdir(tmp_path)
    with emulated_device("pixel", home=Path("home")) as device:
        assert device.state == tmp_path / "home/emulators/pixel"
        assert [d.name for d in list_devices(Path("home"))] == ["pixel"]
        assert _leave(device.sandbox_root, "here").is_file()
    assert not (REPO / "home").exists()


def test_reset_leaves_a_link_in_the_emulators_folder_and_what_it_points_at(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "scratch").touch()  # even looking like a scratch device's state
    root = tmp_path / "home" / "emulators"
    root.mkdir(parents=True)
    (root / "linked").symlink_to(outside, target_is_directory=True)
    assert stopped_states(tmp_path / "home") == []
    assert remove_stopped_states(tmp_path / "home") == ([], [])
    assert (root / "linked").is_symlink() and (outside / "scratch").exists()
