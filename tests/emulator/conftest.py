"""Fixtures of the emulator's own tests (the adb server and device fixtures are in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.emulator.test_shell_support import ShellRunner


@pytest.fixture
def sh(tmp_path: Path) -> Iterator[ShellRunner]:
    """A pixel's shell on a fresh sandbox, without adb."""
    runner = ShellRunner(tmp_path)
    yield runner
    runner.close()
