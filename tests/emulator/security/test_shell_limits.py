"""The emulated shell's memory is bounded (issue 12): a script that doubles a string forever, or
captures a command that never stops, ends with a message instead of exhausting the device."""

from __future__ import annotations

from pathlib import Path

from emulator.shell import VALUE_LIMIT
from tests.emulator.test_shell_support import ShellRunner


def test_a_variable_doubled_forever_stops_at_the_limit(tmp_path: Path) -> None:
    sh = ShellRunner(tmp_path)
    try:
        result = sh('x=aaaaaaaaaaaaaaaa; while true; do x="$x$x"; done; echo never')
        assert result.status == 1 and "never" not in result.out
        assert f"x: value too long (the emulated shell holds at most {VALUE_LIMIT} bytes)" in result.err
    finally:
        sh.close()


def test_capturing_an_endless_command_stops_at_the_limit(tmp_path: Path) -> None:
    sh = ShellRunner(tmp_path)
    try:
        result = sh("x=$(while true; do echo 0123456789abcdef0123456789abcdef; done); echo after $?")
        assert result.status == 1 and "after" not in result.out
        assert "command substitution: output too long" in result.err
        # ordinary captures are untouched
        assert sh('y=$(seq 3); echo "$y"').out == "1\n2\n3\n"
    finally:
        sh.close()
