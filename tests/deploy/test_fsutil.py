"""Atomic writes: a target that cannot be a file is one clear error, and nothing is left beside it."""

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
