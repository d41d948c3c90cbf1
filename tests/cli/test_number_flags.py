"""Numeric flags (issue: NaN margins disabled regression detection): no flag takes a non-finite value,
and each diff margin has its range, so no check can be switched off by a number."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from deploy.errors import EdgeloopError
from harness.console import number
from harness.report.diff import DiffOptions


@pytest.mark.parametrize("text", ["nan", "NaN", "inf", "-inf", "infinity"])
def test_a_flag_refuses_a_non_finite_number(text: str) -> None:
    with pytest.raises(EdgeloopError, match=f"--sqnr-margin expects a finite number, got '{text}'"):
        number(text, "--sqnr-margin")


def test_a_flag_with_a_range_refuses_a_value_outside_it() -> None:
    assert number("0.5", "--x", low=0, high=1) == 0.5
    with pytest.raises(EdgeloopError, match=r"--x must be between 0 and 1, got 5"):
        number("5", "--x", low=0, high=1)
    with pytest.raises(EdgeloopError, match=r"--y must be at least 1, got 0"):
        number("0", "--y", int, low=1)


@pytest.mark.parametrize(("field", "value", "flag"), [
    ("top1_margin", 5.0, "--top1-margin"), ("top1_margin", -0.1, "--top1-margin"),
    ("cosine_margin", float("nan"), "--cosine-margin"), ("cosine_margin", 3.0, "--cosine-margin"),
    ("sqnr_margin_db", float("inf"), "--sqnr-margin"), ("sqnr_margin_db", -1.0, "--sqnr-margin"),
    ("latency_pct", float("inf"), "--latency-pct")])
def test_each_margin_has_its_range(field: str, value: float, flag: str) -> None:
    with pytest.raises(EdgeloopError, match=flag):
        DiffOptions(**{field: value})


@pytest.mark.parametrize("argv", [
    ["report.diff", "--base", "R1.json", "--new", "worse.json", "--cosine-margin", "nan"],
    ["report.diff", "--base", "R1.json", "--new", "worse.json", "--top1-margin", "5"],
    ["deploy", "--emulate", "--sqnr-margin", "nan"], ["deploy", "--emulate", "--sqnr-margin", "inf"],
    ["deploy", "--emulate", "--lease-timeout", "nan"], ["deploy", "--emulate", "--lease-timeout", "inf"],
    ["deploy", "--emulate", "--lease-timeout", "-1"]])
def test_the_command_line_refuses_them_in_one_line(argv: list[str], tmp_path: Path) -> None:
    done = subprocess.run([str(Path(sys.executable).with_name("edgeloop")), *argv], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and argv[-2] in done.stderr and not done.stdout
