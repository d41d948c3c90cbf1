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


@pytest.mark.parametrize("name", ALL_TASKS)
def test_dash_h_is_help_and_every_option_says_what_it_does(name: str) -> None:
    """`inputs -h` was `--check` (invoke gave -h away as a short flag); `report.diff --help` and
    `emulator.fault --help` printed their options without a word (invoke consumed the texts)."""
    result = run(name, "-h")
    assert result.returncode == 0 and result.stdout.startswith("Usage:"), result.stderr
    options = result.stdout.split("Options:", 1)[1].splitlines() if "Options:" in result.stdout else []
    starts = [line for line in options if line.startswith("  -")]
    assert not any(line.startswith("  -h") for line in starts)
    silent = [line.strip() for line in starts if len(line.strip().split("   ")) < 2]
    assert not silent, f"options without help: {silent}"
