"""Usage errors are one line, before any note: farm.devices with no adb server answering (exit 2, as
docs/farm.md says), deploy's bad --adb or --report-dir (no "has no dsp runtime" note first), an error
quoting a file's content (shortened), a profile's sizes bounded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from deploy.errors import EdgeloopError
from deploy.fsutil import SHOWN
from deploy.profiles import load_profile_file
from harness.console import quotes_shortened
from tests.conftest import free_port
from tests.harness.conftest import CONFIG, ROOT

EDGELOOP = str(Path(sys.executable).with_name("edgeloop"))


def _run(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EDGELOOP, *argv], capture_output=True, text=True, timeout=60, cwd=cwd)


def _one_line(done: subprocess.CompletedProcess[str], code: int = 2) -> str:
    assert done.returncode == code and done.stderr.count("\n") == 1 and done.stderr.startswith("error: "), done
    return done.stderr


def test_farm_devices_with_no_server_answering_is_bad_input(tmp_path: Path) -> None:
    (tmp_path / "farm.yaml").write_text(f"servers:\n  - 127.0.0.1:{free_port()}\n  - 127.0.0.1:{free_port()}\n")
    assert "no adb server of farm.yaml answered" in _one_line(_run("farm.devices", "--inventory", "farm.yaml",
                                                                   cwd=tmp_path))


@pytest.mark.parametrize(("flag", "value", "said"), [("--adb", "nohost:99999", "bad adb server address"),
                                                     ("--report-dir", "a-file/reports", "--report-dir")])
def test_a_usage_error_of_deploy_comes_before_any_note(flag: str, value: str, said: str, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    done = _run("deploy", "--config", str(CONFIG), "--emulate", flag, value, cwd=tmp_path)
    assert said in _one_line(done) and not done.stdout  # pixel has no dsp: said only once the input is good


def test_an_error_quoting_a_file_shortens_it(tmp_path: Path) -> None:
    (tmp_path / "farm.yaml").write_text(f"servers:\n  - 127.0.0.1:{free_port()}\n")
    (tmp_path / "matrix.yaml").write_text("config: /etc/passwd\nprofiles: [pixel]\n")
    said = _one_line(_run("farm.run", "--inventory", "farm.yaml", "--matrix", "matrix.yaml", cwd=tmp_path))
    assert said.startswith("error: /etc/passwd:1: must be a mapping") and len(said) < 250
    assert said.count("\n") == 1 and "characters)" in said
    kept = "job 'deploy pixel' on the device's lease, " + "a long explanation " * 10 + "of 'x'"
    assert quotes_shortened(kept) == kept  # apostrophes are not quotes
    assert len(quotes_shortened(repr("x" * 5000))) < sum(SHOWN) + 30


def test_a_profile_size_past_any_device_is_refused(tmp_path: Path) -> None:
    text = (ROOT / "deploy" / "device_profiles" / "pixel.yaml").read_text()
    huge = tmp_path / "huge.yaml"
    huge.write_text(text.replace("name: pixel", "name: huge").replace("storage_mb: 4096", "storage_mb: " + "9" * 20))
    with pytest.raises(EdgeloopError, match=r"storage_mb: must be at most"):
        load_profile_file(huge)
