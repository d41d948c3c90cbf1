"""Atomic writes: a target that cannot be a file is one clear error, nothing is left beside it, and
artifacts get ordinary permissions."""

import os
import stat
from pathlib import Path

import pytest

from deploy.errors import EdgeloopError
from deploy.fsutil import atomic_path, atomic_write_text


def test_a_folder_as_target_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    with pytest.raises(EdgeloopError, match="is a folder, not a file name"):
        atomic_write_text(tmp_path / "out", "x")
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_a_file_standing_for_the_parent_folder_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("")
    with pytest.raises(EdgeloopError, match="cannot create its folder"):
        atomic_write_text(tmp_path / "plain" / "sub" / "c.onnx", "x")


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    atomic_write_text(tmp_path / "a.txt", "old")
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "a.txt") as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"] and (tmp_path / "a.txt").read_text() == "old"


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
