"""The command line boundary: --help on every task, missing options as one line with exit code 2."""

import subprocess
import sys
from pathlib import Path

import pytest

import tasks

EDGELOOP = str(Path(sys.executable).parent / "edgeloop")
ALL_TASKS = sorted(tasks.ns.task_names)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EDGELOOP, *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("name", ALL_TASKS)
def test_help_works_for_every_task(name: str) -> None:
    result = run(name, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage:") and "Options:" in result.stdout


def test_missing_required_options_are_named_in_one_line() -> None:
    result = run("bundle", "--container", "x.onnx")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: missing --device, --runtime, --input-list (see the task's --help)"]
    assert "Traceback" not in result.stderr
