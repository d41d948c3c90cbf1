"""`--help` on tasks with required positional arguments (report.diff BASE NEW, emulator.fault NAME):
invoke would take `--help` for the first positional and then fail on the next; they print their help."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EDGELOOP = [str(Path(sys.executable).parent / "edgeloop")]
INVOKE = [sys.executable, "-m", "invoke", "--search-root", str(REPO)]


def run(command: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=60, cwd=REPO)


@pytest.mark.parametrize("args", [("report.diff", "--help"), ("report.diff", "-h"),
                                  ("report.diff", "base.json", "--help")])
def test_report_diff_help(args: tuple[str, ...]) -> None:
    for command, usage in ((EDGELOOP, "Usage: edgeloop "), (INVOKE, "Usage: inv[oke] ")):
        result = run(command, *args)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(usage) and "report.diff" in result.stdout
        assert "--base" in result.stdout and "--latency-pct" in result.stdout
        assert "cannot read report" not in result.stdout + result.stderr


def test_emulator_fault_help_and_positionals_still_positional(tmp_path: Path) -> None:
    helped = run(INVOKE, "emulator.fault", "--help")
    assert helped.returncode == 0 and "--clear" in helped.stdout
    compared = run(EDGELOOP, "report.diff", str(tmp_path / "a.json"), str(tmp_path / "b.json"))
    assert compared.returncode == 2
    assert compared.stderr.startswith(f"error: {tmp_path / 'a.json'}: cannot read report")
