"""Short flags and repeated options: `-1` was --top1-margin's short flag (so `--runs -1` lacked its value),
cpu_mask's was `--` (shown as `--=STRING`), and a single-value option given twice was an "unexpected
argument"."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tasks import ns

EDGELOOP = str(Path(sys.executable).with_name("edgeloop"))


@pytest.mark.parametrize("name", sorted(ns.task_names))
def test_every_short_flag_is_a_letter(name: str) -> None:
    for argument in ns[name].get_arguments():
        short = [n for n in argument.names if len(n) <= 1]
        assert all(n.isascii() and n.isalpha() for n in short), (name, argument.names)


def _run(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EDGELOOP, *argv], capture_output=True, text=True, timeout=60, cwd=cwd)


def test_a_negative_value_is_the_value_and_refused_as_such(tmp_path: Path) -> None:
    done = _run("deploy", "--emulate", "--runs", "-1", cwd=Path(__file__).parents[2])  # its edgeloop.yaml
    assert done.returncode == 2 and "needs a value" not in done.stderr and "--runs" in done.stderr, done.stderr
    assert "--=STRING" not in _run("deploy", "--help", cwd=tmp_path).stdout


@pytest.mark.parametrize(("argv", "flag"), [
    (["bundle", "--container", "a", "--device", "pixel", "--runtime", "cpu", "--runtime", "dsp"], "--runtime"),
    (["deploy", "--device", "pixel", "--device", "pixel4"], "--device"),
    (["report.diff", "--base", "a", "--new", "b", "--alpha", "0.1", "--alpha=0.2"], "--alpha")])
def test_a_single_value_option_given_twice_says_so(argv: list[str], flag: str, tmp_path: Path) -> None:
    done = _run(*argv, cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert f"{flag} was given twice" in done.stderr and "unexpected argument" not in done.stderr
