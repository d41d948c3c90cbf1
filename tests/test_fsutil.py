"""Atomic writes: nothing half-written is left, and artifacts get ordinary permissions."""

import os
import stat
from pathlib import Path

import pytest

from deploy.fsutil import atomic_path, atomic_write_text


def test_artifacts_get_the_umask_permissions_not_0600(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "report.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "report.json").stat().st_mode) == 0o644


def test_a_mode_set_inside_the_block_is_kept(tmp_path: Path) -> None:
    with atomic_path(tmp_path / "run.sh") as tmp:
        tmp.write_text("echo hi\n")
        tmp.chmod(0o755)
    assert stat.S_IMODE((tmp_path / "run.sh").stat().st_mode) == 0o755


def test_a_failing_block_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "out.bin") as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
